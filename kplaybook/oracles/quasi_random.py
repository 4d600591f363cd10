"""Quasi-random search: the playbook's exploration-phase algorithm as a KerasTuner oracle."""

from keras_tuner.engine import trial as trial_module

from kplaybook import validation
from kplaybook.oracles.base import PlaybookOracle
from kplaybook.oracles.sampling import DEFAULT_SKIP
from kplaybook.oracles.sampling import QuasiRandomSampler
from kplaybook.records.layout import STATE_KEY


class QuasiRandomSearchOracle(PlaybookOracle):
    """Quasi-random search over a KerasTuner space with a scrambled Halton sequence.

    The playbook ("Why use quasi-random search instead of more sophisticated
    black box optimization algorithms during the exploration phase of tuning?")
    recommends quasi-random search for the
    exploration phase: it is non-adaptive (the objective can be changed
    afterwards without re-running), reproducible, covers the space more
    uniformly than random search, runs the same in parallel as in sequence,
    and copes with infeasible trials. Points come from
    `scipy.stats.qmc.Halton(scramble=True, seed=seed)`, skipping the first
    `skip` points, and are mapped through each hyperparameter's own
    `prob_to_value` (log dimensions uniform in log space, equal mass per
    `Choice` value).

    The dimension count is fixed from the space declared when the first trial
    is created (every tunable hyperparameter, conditional ones included: an
    inactive one's coordinate is unused, so activity never moves the other
    dimensions). The seed, the dimensions and the sequence position are saved
    with the oracle, so a reloaded search continues the same sequence.

    Args:
        objective: str or `keras_tuner.Objective`, the metric to optimise.
        max_trials: int, number of trials to run.
        seed: int or None, the scrambling seed; 0 is a seed. None draws one,
            saved with the study.
        hyperparameters: optional `keras_tuner.HyperParameters` to override or
            pre-register hyperparameters, as in KerasTuner.
        skip: int, initial points of the sequence to skip.
        **kwargs: `allow_new_entries`, `tune_new_entries`,
            `max_retries_per_trial`, `max_consecutive_failed_trials`, as for
            `keras_tuner.oracles.RandomSearchOracle`.

    Example:

    ```python
    oracle = kp.oracles.QuasiRandomSearchOracle("val_loss", max_trials=20, seed=0)
    tuner = kt.Tuner(oracle=oracle, hypermodel=build, directory="runs")
    ```
    """

    study_kind = "quasi_random"

    def __init__(
        self,
        objective=None,
        max_trials=10,
        seed=None,
        hyperparameters=None,
        skip=DEFAULT_SKIP,
        **kwargs,
    ):
        skip = validation.non_negative_int(skip, "skip")
        # KerasTuner reads None as "search forever": a quasi-random sequence has no end.
        max_trials = validation.positive_int(max_trials, "max_trials")
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            seed=seed,
            hyperparameters=hyperparameters,
            **kwargs,
        )
        self._sampler = QuasiRandomSampler(self.seed, skip)
        self._next_point = 0

    def populate_space(self, trial_id):
        """Values for the next new point of the sequence (see `keras_tuner.Oracle.populate_space`).

        A point whose values an earlier trial already had (a small discrete
        space) is skipped; when none is new within KerasTuner's collision
        limit, the space is exhausted and the search ends, as KerasTuner's
        own oracles end it.
        """
        for _ in range(self._max_collisions + 1):
            values = self._sampler.values(self.hyperparameters, self._next_point)
            self._next_point += 1
            if not self._duplicate(values):
                return {"status": trial_module.TrialStatus.RUNNING, "values": values}
        return {"status": trial_module.TrialStatus.STOPPED, "values": None}

    def study_config(self):
        return {**super().study_config(), "skip": self._sampler.skip}

    def get_state(self):
        state = super().get_state()
        state[STATE_KEY]["sampler"] = self._sampler.get_state()
        state[STATE_KEY]["next_point"] = self._next_point
        return state

    def set_state(self, state):
        super().set_state(state)
        self._sampler = QuasiRandomSampler.from_state(state[STATE_KEY]["sampler"])
        self._next_point = state[STATE_KEY]["next_point"]
