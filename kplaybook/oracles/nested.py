"""Nested studies: one nuisance search of equal budget per scientific value.

The playbook's "Creating a set of studies"
(https://github.com/google-research/tuning_playbook#creating-a-set-of-studies).
"""

import warnings

from keras_tuner.engine import hyperparameters as hp_module
from keras_tuner.engine import trial as trial_module
from keras_tuner.oracles import BayesianOptimizationOracle

from kplaybook import roles
from kplaybook import validation
from kplaybook.errors import PlaybookWarning
from kplaybook.oracles.base import PlaybookOracle
from kplaybook.oracles.sampling import DEFAULT_SKIP
from kplaybook.oracles.sampling import PseudoRandomSampler
from kplaybook.oracles.sampling import QuasiRandomSampler
from kplaybook.oracles.sampling import SequenceDimensions
from kplaybook.oracles.sampling import plain
from kplaybook.oracles.sampling import stream_seed
from kplaybook.oracles.warm_start import warm_start_records
from kplaybook.records import markers
from kplaybook.records.layout import STATE_KEY

SEARCHES = ("quasi_random", "random", "bayesian", "bayesian_kt")


class NestedStudyOracle(PlaybookOracle):
    """Runs one nuisance study per scientific value, with equal budgets.

    The playbook compares scientific values fairly by giving each its own
    search over the nuisance hyperparameters, of the same size, and then
    comparing each study's best trial. This oracle does that inside one
    KerasTuner search:

    - every hyperparameter `build(hp)` declares is *scientific* (named in
      `scientific`), *fixed* (named in `fixed`, registered as `hp.Fixed`) or
      *nuisance* (everything else);
    - each combination of scientific values (the Cartesian product when
      several names are given) gets exactly `trials_per_study` trials;
    - trials are scheduled round-robin over the combinations, so a study
      stopped early stays balanced;
    - with `paired=True` (the default) every scientific value sees the same
      nuisance points, a paired comparison; `paired=False` gives each its own
      sequence;
    - `search="quasi_random"` (scrambled Halton), `"random"`, or
      `"bayesian"`: the feasibility-aware Bayesian search of
      `kplaybook.oracles.bayesian` (expected improvement times the
      probability of not diverging) over the nuisance dimensions only,
      fitted to each scientific value's own trials (and `warm_start`'s),
      after `num_initial_points` quasi-random trials per value;
      `"bayesian_kt"` is KerasTuner's Gaussian-process search instead, the
      baseline it is measured against.

    Trial slot `k` belongs to scientific combination `k % n` and nuisance
    point `k // n`. KerasTuner retries an interrupted or crashed trial under
    its own id before creating new ones, so after a resume no slot is lost or
    run twice. All decisions are made here, on the chief, which keeps
    KerasTuner's distributed chief/worker mode working unchanged.

    Args:
        objective: str or `keras_tuner.Objective`.
        scientific: dict name -> list of values to compare.
        fixed: dict name -> value held constant.
        trials_per_study: int, nuisance trials per scientific combination.
        search: "quasi_random", "random", "bayesian" or "bayesian_kt".
        seed: int or None; 0 is a seed.
        paired: bool, whether all scientific values share nuisance points.
        hyperparameters: optional `keras_tuner.HyperParameters` to
            pre-register hyperparameters.
        num_initial_points: for a Bayesian search, quasi-random trials per
            scientific value before the model takes over, earlier studies'
            trials included (default 3 per nuisance dimension, at least 3,
            as in KerasTuner).
        warm_start: for `search="bayesian"`, earlier studies (`kp.Study` or
            directories) whose trials the model starts from: each scientific
            value uses the trials of its own value. A study whose fixed
            values differ from `fixed` is refused.
        skip: int, initial Halton points skipped.
        **kwargs: `max_retries_per_trial`, `max_consecutive_failed_trials`,
            `allow_new_entries`, `tune_new_entries`, as for KerasTuner oracles.

    Example:

    ```python
    oracle = kp.oracles.NestedStudyOracle(
        "val_loss", scientific={"num_layers": [1, 2, 3]},
        fixed={"activation": "relu"}, trials_per_study=16,
        search="quasi_random", seed=0)
    ```
    """

    study_kind = "nested"

    def __init__(
        self,
        objective=None,
        scientific=None,
        fixed=None,
        trials_per_study=16,
        search="quasi_random",
        seed=None,
        paired=True,
        hyperparameters=None,
        num_initial_points=None,
        skip=DEFAULT_SKIP,
        warm_start=None,
        **kwargs,
    ):
        self.scientific, self.fixed = roles.check_role_arguments(scientific, fixed)
        validation.one_of(search, "search", SEARCHES)
        trials_per_study = validation.positive_int(trials_per_study, "trials_per_study")
        skip = validation.non_negative_int(skip, "skip")
        paired = validation.boolean(paired, "paired")
        if num_initial_points is not None:
            num_initial_points = validation.positive_int(num_initial_points, "num_initial_points")
            if not search.startswith("bayesian"):
                raise ValueError(
                    "num_initial_points applies only to search='bayesian' (the quasi-random "
                    f"trials before the Bayesian search); drop it or pass search='bayesian', not {search!r}."
                )
        if warm_start is not None and not search.startswith("bayesian"):
            raise ValueError(
                "warm_start seeds a Bayesian search with earlier trials; pass search='bayesian' "
                f"with it, not {search!r}."
            )
        self.cells = roles.scientific_cells(self.scientific)
        super().__init__(
            objective=objective,
            max_trials=len(self.cells) * trials_per_study,
            seed=seed,
            hyperparameters=hyperparameters,
            **kwargs,
        )
        self.trials_per_study = trials_per_study
        self.search = search
        self.paired = bool(paired)
        self.skip = int(skip)
        self.num_initial_points = num_initial_points
        self._warm, self.warm_start = warm_start_records(
            warm_start, self.objective.name, self.objective.direction, self.fixed
        )
        self._trial_slots = {}
        self._roles_applied = False
        # The quasi-random sequence's dimensions, shared by every sampler of the
        # study (a late hyperparameter gets the same dimension in all of them).
        self._dimensions = SequenceDimensions()
        # Nuisance point p (slot // number of cells) -> index in the sequence:
        # a point whose values repeat an earlier one's is skipped.
        self._point_index = []
        self._samplers = {}

    # -- roles ---------------------------------------------------------------

    def update_space(self, hyperparameters):
        """Merge newly declared hyperparameters, then apply and check the roles."""
        if all(
            self.hyperparameters._exists(hp.name, hp.conditions) for hp in hyperparameters.space
        ):
            return  # called after every trial; usually nothing is new
        super().update_space(hyperparameters)
        if self.hyperparameters.space:
            self.hyperparameters = roles.apply_roles(
                self.hyperparameters, self.scientific, self.fixed
            )

    def undeclared_role_names(self):
        """The scientific and fixed names the search space does not declare yet: [(role, name)]."""
        return roles.undeclared(self.hyperparameters, self.scientific, self.fixed)

    def _apply_roles_for_first_trial(self):
        """Registers the role names no code declared yet, so the first trial carries their values.

        A name only `HyperModel.fit` or `run_trial` reads gets its scheduled
        value from the first trial on. kplaybook's tuners check beforehand
        that some code declares every name (a typo is an error before any
        training); under another tuner a `PlaybookWarning` says it.
        """
        missing = self.undeclared_role_names()
        if missing and not getattr(self, "declarations_checked", False):
            warnings.warn(
                "No code declared "
                + ", ".join(f"{role} {name!r}" for role, name in missing)
                + " before the first trial; it is registered so that HyperModel.fit or "
                "run_trial reads the trial's value. If build(hp) should declare it, check "
                "the name.",
                PlaybookWarning,
                stacklevel=3,
            )
        self.hyperparameters = roles.apply_roles(
            self.hyperparameters, self.scientific, self.fixed, register_undeclared=True
        )
        self._roles_applied = True

    def nuisance_names(self):
        """The nuisance hyperparameters: declared, tunable, not scientific."""
        return roles.nuisance_names(self.hyperparameters, self.scientific)

    # -- scheduling ----------------------------------------------------------

    def cell_of(self, trial_id):
        """Index into `self.cells` of the scientific combination a trial belongs to."""
        return self._trial_slots[trial_id] % len(self.cells)

    def populate_space(self, trial_id):
        """Values for the next slot, round-robin over the scientific combinations.

        Nuisance point p is the same for every scientific value (paired):
        the sequence's next point whose values no earlier trial had. When a
        small discrete space has no new point left, the search ends, as
        KerasTuner's oracles end it: every scientific value then has the
        same number of trials.
        """
        if not self._roles_applied:
            self._apply_roles_for_first_trial()
        slot = len(self._trial_slots)
        cell_index = slot % len(self.cells)
        point = slot // len(self.cells)
        cell = self.cells[cell_index]
        if self.search.startswith("bayesian") and self._finished_in_cell(cell_index) >= (
            self._initial_points()
        ):
            if self.search == "bayesian":
                values = self.bayesian_values(
                    self.hyperparameters,
                    cell,
                    list(self._trials_in_cell(cell_index)),
                    self._warm,
                    stream_seed(self.seed, cell_index, slot),
                )
            else:
                values = self._keras_tuner_gp_values(cell_index, trial_id)
        else:
            sampler = self._sampler(cell_index)
            index = self._sequence_index(sampler, point, cell)
            if index is None:
                return {"status": trial_module.TrialStatus.STOPPED, "values": None}
            values = sampler.values(self.hyperparameters, index, cell)
        self._trial_slots[trial_id] = slot
        return {"status": trial_module.TrialStatus.RUNNING, "values": values}

    def _sequence_index(self, sampler, point, cell):
        """The sequence index of nuisance point `point`, or None when the space has no new point.

        Decided once per point (by the first scientific value that needs it)
        and shared by all, so the comparison stays paired.
        """
        if point < len(self._point_index):
            return self._point_index[point] if self.paired else point
        if not self.paired:
            return point
        start = self._point_index[-1] + 1 if self._point_index else 0
        for index in range(start, start + self._max_collisions + 1):
            values = sampler.values(self.hyperparameters, index, cell)
            if not self._duplicate(values):
                self._point_index.append(index)
                return index
        return None

    def _sampler(self, cell_index):
        stream = 0 if self.paired else cell_index
        if stream not in self._samplers:
            seed = self.seed if self.paired else stream_seed(self.seed, cell_index)
            if self.search == "random":
                sampler = PseudoRandomSampler(seed)
            else:
                sampler = QuasiRandomSampler(seed, self.skip, self._dimensions)
            self._samplers[stream] = sampler
        return self._samplers[stream]

    def _check_consecutive_failures(self):
        super()._check_consecutive_failures()
        # A real error in one scientific value's models alone never fails
        # trials in a row across the round-robin: count per value too.
        newest = self.end_order[-1] if self.end_order else None
        if newest not in self._trial_slots:
            return
        cell = self.cell_of(newest)
        in_cell = [t for t in self.end_order if t in self._trial_slots and self.cell_of(t) == cell]
        label = ", ".join(f"{name}={value}" for name, value in self.cells[cell].items())
        self._stop_on_failure_streak(in_cell, f" for {label}" if label else "")

    def _initial_points(self):
        if self.num_initial_points is not None:
            return self.num_initial_points
        return max(3, 3 * len(self.nuisance_names()))

    def _trials_in_cell(self, cell_index):
        return {
            trial_id: trial
            for trial_id, trial in self.trials.items()
            if trial_id in self._trial_slots and self.cell_of(trial_id) == cell_index
        }

    def _finished_in_cell(self, cell_index):
        """Trials of this scientific value the Bayesian search can learn from (earlier studies' too)."""
        cell = self.cells[cell_index]
        if self.search == "bayesian_kt":  # KerasTuner's GP learns from completed trials only
            return sum(
                trial.status == trial_module.TrialStatus.COMPLETED
                for trial in self._trials_in_cell(cell_index).values()
            )
        own = sum(
            trial.status == trial_module.TrialStatus.COMPLETED
            or markers.reason_in(trial.metrics.metrics) is not None
            for trial in self._trials_in_cell(cell_index).values()
        )
        warm = sum(
            all(r.values.get(name) == value for name, value in cell.items()) for r in self._warm
        )
        return own + warm

    def _keras_tuner_gp_values(self, cell_index, trial_id):
        # search="bayesian_kt", the baseline: KerasTuner's Gaussian-process
        # oracle (it drops infeasible trials), shown only this scientific
        # value's trials and a space where the scientific hyperparameters are
        # Fixed: it models and proposes the nuisance dimensions alone.
        cell = self.cells[cell_index]
        space = hp_module.HyperParameters()
        for hp in self.hyperparameters.space:
            if hp.name in cell:
                hp = hp_module.Fixed(hp.name, cell[hp.name], conditions=hp.conditions)
            space.merge([hp])
        in_cell = self._trials_in_cell(cell_index)
        gp_oracle = BayesianOptimizationOracle(
            objective=self.objective,
            num_initial_points=self._initial_points(),
            seed=stream_seed(self.seed, cell_index, len(self._trial_slots)) + 1,
            hyperparameters=space,
        )
        gp_oracle.trials = in_cell
        gp_oracle.ongoing_trials = {
            tuner_id: trial
            for tuner_id, trial in self.ongoing_trials.items()
            if trial.trial_id in in_cell
        }
        response = gp_oracle.populate_space(trial_id)
        values = {name: plain(value) for name, value in response["values"].items()}
        values.update(cell)
        return values

    # -- state ---------------------------------------------------------------

    def study_config(self):
        return {
            **super().study_config(),
            "scientific": self.scientific,
            "fixed": self.fixed,
            "trials_per_study": self.trials_per_study,
            "search": self.search,
            "paired": self.paired,
            "skip": self.skip,
            "num_initial_points": self.num_initial_points,
            "warm_start": self.warm_start,
        }

    def _resumable_keys(self):
        # More (or fewer) trials per study keeps every slot's meaning.
        return ("trials_per_study",)

    def get_state(self):
        state = super().get_state()
        state[STATE_KEY].update(
            {
                "trial_slots": self._trial_slots,
                "point_index": self._point_index,
                **self._dimensions.get_state(),
                "roles_applied": self._roles_applied,
                "cells": self.cells,
                "nuisance": self.nuisance_names(),
            }
        )
        return state

    def set_state(self, state):
        super().set_state(state)
        saved = state[STATE_KEY]
        self._trial_slots = dict(saved["trial_slots"])
        self._dimensions = SequenceDimensions.from_state(saved)
        # Studies saved before duplicates were skipped used point p = index p.
        points = max(self._trial_slots.values(), default=-1) // len(self.cells) + 1
        self._point_index = list(saved.get("point_index", range(points)))
        self._roles_applied = saved["roles_applied"]
        self._samplers = {}
