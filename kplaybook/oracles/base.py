"""What every kplaybook oracle shares: a real seed, infeasible-aware failure counting, study metadata."""

import json
import random

import keras_tuner as kt
from keras_tuner.src.engine import objective as obj_module

from kplaybook.errors import StudyError
from kplaybook.records import markers
from kplaybook.records.layout import STATE_KEY


def resolve_seed(seed):
    """`seed` as an int; None draws one. Unlike KerasTuner's `seed or random`, 0 stays 0."""
    if seed is None:
        return random.randint(1, 2**31 - 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}.")
    return seed


class PlaybookOracle(kt.Oracle):
    """Base class of kplaybook's oracles.

    It keeps KerasTuner's whole trial life cycle (save/reload, retries,
    chief/worker mode) and changes three things: the seed is honoured as
    given, 0 included; trials that ended infeasible do not count towards
    `max_consecutive_failed_trials`; and the study's own settings are saved in
    `oracle.json` under the key ``"kplaybook"`` so that `kp.Study.load` can
    read a study without the user's code, and a resumed study can be checked
    against the arguments it is resumed with.
    """

    #: Written to oracle.json; `kp.Study` uses it to read the study.
    study_kind = None

    def __init__(self, objective=None, max_trials=None, seed=None, **kwargs):
        self._explicit_seed = seed is not None
        seed = resolve_seed(seed)
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        if isinstance(self.objective, obj_module.MultiObjective):
            raise ValueError(
                "kplaybook studies take one objective (a str or kt.Objective); "
                "pass the metric to compare trials on."
            )
        self.seed = seed
        self._seed_state = seed

    def study_config(self):
        """The settings that define this study; a resumed study must match them."""
        return {"kind": self.study_kind, "seed": self.seed}

    def _adopt_saved_config(self, saved, mine):
        """Check the saved settings against the constructor's; subclasses restore their own."""
        mine = _normalise(mine)
        saved_cmp = _normalise(saved)
        if not self._explicit_seed:
            mine["seed"] = saved_cmp.get("seed")
        for key in self._resumable_keys():
            mine.pop(key, None)
            saved_cmp.pop(key, None)
        if mine != saved_cmp:
            differing = sorted(
                k for k in set(mine) | set(saved_cmp) if mine.get(k) != saved_cmp.get(k)
            )
            raise StudyError(
                f"The study in {self._project_dir} was started with different "
                f"settings ({', '.join(differing)}: saved "
                f"{ {k: saved_cmp.get(k) for k in differing} }); pass the same "
                "arguments to resume it, or use another project_name or "
                "overwrite=True to start a new study."
            )
        self.seed = saved["seed"]

    def _resumable_keys(self):
        """Settings that may change when a study is resumed."""
        return ()

    def get_state(self):
        state = super().get_state()
        state[STATE_KEY] = {
            "config": self.study_config(),
            "objective": {
                "name": self.objective.name,
                "direction": self.objective.direction,
            },
        }
        return state

    def set_state(self, state):
        # KerasTuner's set_state overwrites the seed: take the constructor's first.
        mine = self.study_config()
        super().set_state(state)
        if STATE_KEY not in state:
            raise StudyError(
                f"{self._project_dir} holds a KerasTuner project that kplaybook did "
                "not create; use another project_name or overwrite=True."
            )
        self._adopt_saved_config(state[STATE_KEY]["config"], mine)

    def reload(self):
        """KerasTuner's reload, minus re-running trials that had already ended.

        `Oracle.end_trial` writes oracle.json while the ended trial is still
        listed as ongoing, and `reload` sends every ongoing trial for retry:
        a process killed between the two would run a finished trial again.
        Each trial's own trial.json, written first, says whether it ended.
        """
        super().reload()
        ended = (kt.engine.trial.TrialStatus.COMPLETED, kt.engine.trial.TrialStatus.FAILED)
        self._retry_queue = [
            trial_id
            for trial_id in self._retry_queue
            if self.trials[trial_id].status not in ended
        ]

    def score_trial(self, trial):
        """Scores a completed trial from the score kplaybook's tuners report (KerasTuner's rule otherwise).

        kplaybook's tuners record every epoch of every execution as the
        trial's curves and report the trial's score separately
        (`markers.SCORE`), computed as KerasTuner computes it: what
        `HyperModel.fit` returned, or each execution's best epoch averaged
        over executions. Trials reported by other tuners are scored as
        KerasTuner scores them.
        """
        score = trial.metrics.metrics.get(markers.SCORE)
        best_step = trial.metrics.metrics.get(markers.BEST_STEP)
        if score is None or best_step is None or not score.get_history():
            super().score_trial(trial)
            return
        trial.score = float(score.get_history()[-1].mean())
        trial.best_step = int(best_step.get_history()[-1].mean())

    def _check_consecutive_failures(self):
        # KerasTuner's rule, except that infeasible trials are neither
        # failures nor successes: they are skipped. The check runs after
        # every ended trial, so only the streak ending now matters: walk back
        # from the newest trial instead of rescanning the whole history.
        consecutive_failures = 0
        newest_failure = None
        for trial_id in reversed(self.end_order):
            trial = self.trials[trial_id]
            if trial.status != kt.engine.trial.TrialStatus.FAILED:
                break
            if markers.reason_in(trial.metrics.metrics) is not None:
                continue
            consecutive_failures += 1
            newest_failure = newest_failure or trial
        if consecutive_failures >= self.max_consecutive_failed_trials:
            # KerasTuner raises before writing this trial's record; write
            # it, so the study on disk says the trial failed.
            self._save_trial(self.trials[self.end_order[-1]])
            raise RuntimeError(
                "Number of consecutive failures exceeded the limit "
                f"of {self.max_consecutive_failed_trials}.\n"
                + (newest_failure.message or "")
            )


def _normalise(config):
    """JSON round trip, so tuples and lists (and saved and live configs) compare equal."""
    return json.loads(json.dumps(config))
