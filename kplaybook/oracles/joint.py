"""Joint studies: scientific and nuisance hyperparameters in one search space (`design="joint"`).

When there are too many scientific values for one nuisance study each, the
playbook puts the scientific and nuisance hyperparameters in the same search
space and lets the search sample both ("Creating a set of studies",
https://github.com/google-research/tuning_playbook#creating-a-set-of-studies).
Each scientific hyperparameter is then one more dimension of the
quasi-random sequence (or of the Bayesian search): a list of values gets
equal mass per value, and a numeric one may be a range (weight decay as the
scientific quantity). `max_trials` is the whole budget.

For the analysis, the trials are grouped into cells: one per listed value
(combination), and a range cut into `JOINT_BINS` equal bins of the
coordinate the search samples in. Each cell's best comes from fewer trials
than in a nested design, and `study.check()` says so.
"""

import itertools
import math
import warnings

from keras_tuner.engine import hyperparameters as hp_module
from keras_tuner.engine import trial as trial_module

from kplaybook import roles
from kplaybook import validation
from kplaybook.errors import PlaybookWarning
from kplaybook.errors import RoleError
from kplaybook.fatal_errors import fatal
from kplaybook.oracles.base import PlaybookOracle
from kplaybook.oracles.sampling import DEFAULT_SKIP
from kplaybook.oracles.sampling import QuasiRandomSampler
from kplaybook.oracles.sampling import SequenceDimensions
from kplaybook.oracles.sampling import stream_seed
from kplaybook.oracles.warm_start import warm_start_records
from kplaybook.records import markers
from kplaybook.records.layout import STATE_KEY

SEARCHES = ("quasi_random", "bayesian")
#: Bins a scientific range is cut into for the analysis (isolation plot,
#: best per scientific value): equal widths in the sampled coordinate.
JOINT_BINS = 4


def check_joint_scientific(scientific):
    """`scientific` of a joint study: name -> list of values, (low, high) or None (the declared range).

    Returns:
        (lists, ranges): dict name -> values, dict name -> (low, high) or None.
    """
    if scientific is None or not isinstance(scientific, dict) or not scientific:
        raise fatal(
            RoleError,
            "design='joint' needs scientific= as a dict of name -> list of values, "
            "(low, high) or None (the range build(hp) declares).",
        )
    lists, ranges = {}, {}
    for name, spec in scientific.items():
        if spec is None:
            ranges[name] = None
        elif (
            isinstance(spec, tuple)
            and len(spec) == 2
            and all(validation.is_number(v) for v in spec)
        ):
            low, high = (float(v) if isinstance(v, float) else v for v in spec)
            if not low < high:
                raise fatal(
                    RoleError,
                    f"scientific[{name!r}] = {spec!r} is not a range (low < high); pass (low, high).",
                )
            ranges[name] = (low, high)
        else:
            lists[name] = spec
    checked, _ = roles.check_role_arguments(lists, {})
    return checked, ranges


class JointStudyOracle(PlaybookOracle):
    """One search over the scientific and nuisance hyperparameters together.

    See the module docstring. Scientific hyperparameters given as lists are
    searched as a `Choice` of those values (equal mass per value); given as a
    range ``(low, high)`` (or None: the range `build(hp)` declares) they are
    searched like any numeric dimension, on the declaration's scale. Fixed
    and nuisance hyperparameters are as in `NestedStudyOracle`.

    Args:
        objective: str or `keras_tuner.Objective`.
        scientific: dict name -> list of values, (low, high) or None.
        fixed: dict name -> value held constant.
        max_trials: int, the whole budget.
        search: "quasi_random" or "bayesian" (after `num_initial_points`
            quasi-random trials, or `warm_start`'s).
        seed: int or None; 0 is a seed.
        hyperparameters, skip, num_initial_points, warm_start: as for
            `NestedStudyOracle`.
        **kwargs: as for `PlaybookOracle`.

    Example:

    ```python
    oracle = kp.oracles.JointStudyOracle(
        "val_loss", scientific={"width": [16, 32, 64, 128, 256, 512]}, max_trials=60, seed=0)
    ```
    """

    study_kind = "joint"

    def __init__(
        self,
        objective=None,
        scientific=None,
        fixed=None,
        max_trials=60,
        search="quasi_random",
        seed=None,
        hyperparameters=None,
        num_initial_points=None,
        skip=DEFAULT_SKIP,
        warm_start=None,
        **kwargs,
    ):
        self.lists, self.ranges = check_joint_scientific(scientific)
        _, self.fixed = roles.check_role_arguments({}, fixed)
        both = sorted((set(self.lists) | set(self.ranges)) & set(self.fixed))
        if both:
            raise fatal(RoleError, f"{both[0]!r} is both scientific and fixed; give it one role.")
        validation.one_of(search, "search", SEARCHES)
        skip = validation.non_negative_int(skip, "skip")
        if num_initial_points is not None:
            num_initial_points = validation.positive_int(num_initial_points, "num_initial_points")
            if search != "bayesian":
                raise ValueError(
                    "num_initial_points applies only to search='bayesian'; drop it or pass "
                    "search='bayesian'."
                )
        if warm_start is not None and search != "bayesian":
            raise ValueError(
                "warm_start seeds a Bayesian search with earlier trials; pass search='bayesian' "
                f"with it, not {search!r}."
            )
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            seed=seed,
            hyperparameters=hyperparameters,
            **kwargs,
        )
        self.search = search
        self.skip = skip
        self.num_initial_points = num_initial_points
        self._warm, self.warm_start = warm_start_records(
            warm_start, self.objective.name, self.objective.direction, self.fixed
        )
        self._dimensions = SequenceDimensions()
        self._sampler = QuasiRandomSampler(self.seed, skip, self._dimensions)
        self._next_point = 0
        self._roles_applied = False
        self.cells = []

    @property
    def scientific(self):
        """dict name -> the scientific specification (list of values, or [low, high] / None)."""
        return {
            **self.lists,
            **{n: (list(r) if r is not None else None) for n, r in self.ranges.items()},
        }

    # -- roles ---------------------------------------------------------------

    def update_space(self, hyperparameters):
        """Merge newly declared hyperparameters, then apply the roles (scientific ones reshaped)."""
        if all(
            self.hyperparameters._exists(hp.name, hp.conditions) for hp in hyperparameters.space
        ):
            return
        super().update_space(hyperparameters)
        if self.hyperparameters.space:
            self.hyperparameters = self._apply_roles(self.hyperparameters, register=False)

    def undeclared_role_names(self):
        """The scientific and fixed names the search space does not declare yet."""
        return roles.undeclared(self.hyperparameters, self.scientific, self.fixed)

    def _apply_roles(self, space, register):
        space = roles.apply_roles(space, self.lists, self.fixed, register_undeclared=register)
        result = hp_module.HyperParameters()
        declared = {hp.name for hp in space.space}
        for hp in space.space:
            if hp.name in self.lists:
                values = self.lists[hp.name]
                ordered = all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
                )
                hp = hp_module.Choice(hp.name, values, ordered=ordered, conditions=hp.conditions)
            elif hp.name in self.ranges:
                hp = _ranged(hp, self.ranges[hp.name])
            result.merge([hp])
        missing = [n for n in self.ranges if n not in declared]
        if missing and register:
            raise fatal(
                RoleError,
                f"scientific {missing[0]!r} is a range, but no code declares it; declare it with "
                "hp.Float or hp.Int in build(hp) or HyperModel.fit.",
            )
        return result

    def _first_trial(self):
        missing = self.undeclared_role_names()
        if missing and not getattr(self, "declarations_checked", False):
            warnings.warn(
                "No code declared "
                + ", ".join(f"{role} {name!r}" for role, name in missing)
                + " before the first trial; it is registered so that HyperModel.fit or "
                "run_trial reads the trial's value.",
                PlaybookWarning,
                stacklevel=3,
            )
        self.hyperparameters = self._apply_roles(self.hyperparameters, register=True)
        self.cells = self._cells()
        self._roles_applied = True

    def _cells(self):
        """The analysis' cells: each listed value (combination), each range cut into bins."""
        axes = []
        for name, values in self.lists.items():
            axes.append([(name, v) for v in values])
        for name in self.ranges:
            hp = next(h for h in self.hyperparameters.space if h.name == name)
            edges = [hp.prob_to_value(k / JOINT_BINS) for k in range(JOINT_BINS)] + [hp.max_value]
            axes.append([(name, [edges[k], edges[k + 1]]) for k in range(JOINT_BINS)])
        return [dict(combo) for combo in itertools.product(*axes)]

    def nuisance_names(self):
        """The nuisance hyperparameters: declared, tunable, not scientific."""
        return roles.nuisance_names(self.hyperparameters, self.scientific)

    # -- scheduling ----------------------------------------------------------

    def populate_space(self, trial_id):
        """Values for the next point: quasi-random over every dimension, or the Bayesian search's."""
        if not self._roles_applied:
            self._first_trial()
        finished = sum(
            t.status == trial_module.TrialStatus.COMPLETED
            or markers.reason_in(t.metrics.metrics) is not None
            for t in self.trials.values()
        )
        if self.search == "bayesian" and finished + len(self._warm) >= self._initial_points():
            values = self.bayesian_values(
                self.hyperparameters,
                {},
                list(self.trials),
                self._warm,
                stream_seed(self.seed, len(self.trials)),
            )
            return {"status": trial_module.TrialStatus.RUNNING, "values": values}
        for _ in range(self._max_collisions + 1):
            values = self._sampler.values(self.hyperparameters, self._next_point)
            self._next_point += 1
            if not self._duplicate(values):
                return {"status": trial_module.TrialStatus.RUNNING, "values": values}
        return {"status": trial_module.TrialStatus.STOPPED, "values": None}

    def _initial_points(self):
        if self.num_initial_points is not None:
            return self.num_initial_points
        tunable = [h for h in self.hyperparameters.space if not isinstance(h, hp_module.Fixed)]
        return max(3, 3 * len(tunable))

    # -- state ---------------------------------------------------------------

    def study_config(self):
        return {
            **super().study_config(),
            "design": "joint",
            "scientific": self.scientific,
            "fixed": self.fixed,
            "search": self.search,
            "skip": self.skip,
            "num_initial_points": self.num_initial_points,
            "warm_start": self.warm_start,
            "max_trials": self.max_trials,
        }

    def _resumable_keys(self):
        return ("max_trials",)

    def get_state(self):
        state = super().get_state()
        state[STATE_KEY].update(
            {
                "sampler": self._sampler.get_state(),
                "next_point": self._next_point,
                "roles_applied": self._roles_applied,
                "cells": self.cells,
                "nuisance": self.nuisance_names(),
            }
        )
        return state

    def set_state(self, state):
        super().set_state(state)
        saved = state[STATE_KEY]
        self._sampler = QuasiRandomSampler.from_state(saved["sampler"])
        self._dimensions = self._sampler.dimensions
        self._next_point = saved["next_point"]
        self._roles_applied = saved["roles_applied"]
        self.cells = saved["cells"]


def _ranged(hp, bounds):
    """`hp` (Int or Float) limited to `bounds`, on its own scale; the declaration itself for None."""
    if not isinstance(hp, (hp_module.Int, hp_module.Float)):
        raise fatal(
            RoleError,
            f"scientific {hp.name!r} is a range, but it is declared as {type(hp).__name__}; "
            "declare it with hp.Float or hp.Int, or give its values as a list.",
        )
    if bounds is None:
        return hp
    low, high = bounds
    if low < hp.min_value or high > hp.max_value:
        raise fatal(
            RoleError,
            f"scientific {hp.name!r} range ({low}, {high}) is outside its declaration "
            f"[{hp.min_value}, {hp.max_value}]; widen the declaration or the range.",
        )
    if isinstance(hp, hp_module.Int):
        return hp_module.Int(
            hp.name,
            int(math.ceil(low)),
            int(math.floor(high)),
            step=hp.step,
            sampling=hp.sampling,
            conditions=hp.conditions,
        )
    return hp_module.Float(
        hp.name,
        float(low),
        float(high),
        step=hp.step,
        sampling=hp.sampling,
        conditions=hp.conditions,
    )
