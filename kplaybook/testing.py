"""Helpers for testing code that reads studies: synthetic study directories, written without training.

Like `optuna.testing`, this module is public so that users can test their
own analysis code on studies with known properties.


`write_study` writes ``oracle.json`` and one ``trial_<id>/trial.json`` (plus
``steps.json`` when per-step values are given) per trial, in the formats
`kp.PlaybookTuner` and `kp.QuasiRandomSearch` write them, so that
`kp.Study.load` reads the directory like a real study. Tests and benchmarks
use it to build studies with known properties (a best trial at the edge of
the search space, overfitting curves, 10,000 trials) in a fraction of a
second per thousand trials.

The oracle's state comes from a real `NestedStudyOracle` (or
`QuasiRandomSearchOracle` without scientific hyperparameters) brought to the
point a search starts at, with its trial bookkeeping set to the trials
written. Each trial is recorded the way `StudyTuner._run_and_update_trial`
reports it (every epoch at ``step=epoch``, the objective first and NaN where
it was not logged, the infeasibility marker at the last epoch) and scored
the way `keras_tuner.Oracle.score_trial` scores it. ``trial.json`` is written
from one template per study rather than through `Trial.save`, which is
several times slower; the bytes are the same (the tests check it).

Example:

```python
import keras_tuner as kt
import kplaybook as kp
from kplaybook.testing import SyntheticTrial, write_study

space = kt.HyperParameters()
space.Float("learning_rate", 1e-4, 1e-1, sampling="log")
space.Int("num_layers", 1, 3)
trials = [
    SyntheticTrial({"learning_rate": 1e-3, "num_layers": 1},
                   {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}),
    SyntheticTrial({"learning_rate": 1e-1, "num_layers": 2},
                   {"loss": [1.0, float("nan")]}, status="infeasible", reason="nan_loss"),
]
study = kp.Study.load(write_study("runs/synthetic", space, trials,
                                  scientific={"num_layers": [1, 2]}))
study.to_dataframe()   # trial 0 completed (objective 0.7 at epoch 1), 1 infeasible
```
"""

import dataclasses
import json
import math
import os
import warnings

import keras_tuner as kt
from keras_tuner.engine import hyperparameters as hp_module
from keras_tuner.engine import trial as trial_module
from keras_tuner.engine.metrics_tracking import infer_metric_direction

from kplaybook import roles
from kplaybook.oracles.nested import NestedStudyOracle
from kplaybook.oracles.quasi_random import QuasiRandomSearchOracle
from kplaybook.oracles.sampling import plain
from kplaybook.records import layout
from kplaybook.records import markers
from kplaybook.records.files import write_text
from kplaybook.records.steps import STEP_KEYS
from kplaybook.records.steps import StepRecord
from kplaybook.records.steps import write_steps
from kplaybook.training.runner import is_finite

STATUSES = ("completed", "infeasible", "failed")

_KT_STATUS = {
    "completed": trial_module.TrialStatus.COMPLETED,
    "infeasible": trial_module.TrialStatus.FAILED,
    "failed": trial_module.TrialStatus.FAILED,
}

# KerasTuner stores `traceback.format_exc()` as a failed trial's message; a
# synthetic trial has no traceback, but keeps the last line readers look at.
_MESSAGE = (
    'Traceback (most recent call last):\n  File "<synthetic trial>", line 1, in <module>\n{}\n'
)


@dataclasses.dataclass
class SyntheticTrial:
    """One trial of a synthetic study: its hyperparameters, curves and outcome.

    Attributes:
        values: dict name -> value of every active hyperparameter
            (scientific, nuisance and fixed; fixed ones may be left out).
        curves: dict metric name -> per-epoch values (epoch 0, 1, ...), e.g.
            ``{"loss": [...], "val_loss": [...]}``; a None entry is an epoch
            where the metric was not logged. Completed trials need a finite
            value of the objective; infeasible ones may have none.
        status: "completed", "infeasible" or "failed".
        reason: the infeasibility reason ("nan_loss", "oom", "diverged", or
            a `kp.InfeasibleTrial` message), required when infeasible; for a
            failed trial, the error message (optional).
        steps: dict of equally long per-step lists, keys among ``grad_norm``,
            ``lr``, ``clip_fraction``, ``step_loss``; step numbers are 1..n.

    Example:

    ```python
    SyntheticTrial({"learning_rate": 0.01, "num_layers": 2},
                   curves={"loss": [0.9, 0.5, 0.3], "val_loss": [1.0, 0.8, 0.9]},
                   steps={"grad_norm": [3.0, 2.0, 1.5], "lr": [0.01] * 3})
    ```
    """

    values: dict
    curves: dict | None = None
    status: str = "completed"
    reason: str | None = None
    steps: dict | None = None


def write_study(
    directory,
    space,
    trials,
    *,
    scientific=None,
    fixed=None,
    objective="val_loss",
    direction="min",
    seed=0,
    trials_per_study=None,
):
    """Write a study directory that `kp.Study.load` reads like one a kplaybook tuner wrote.

    With `scientific`, the study is a `kp.PlaybookTuner` study (a
    `NestedStudyOracle`, quasi-random nuisance search, paired); without it, a
    `kp.QuasiRandomSearch` study. Trial ``i`` of `trials` gets id ``i``,
    zero-padded as KerasTuner pads it (to the width of the study's
    `max_trials`). Each trial belongs to the scientific value its `values`
    name; PlaybookTuner creates them round-robin over the values, but any
    order is written consistently. One execution per trial.

    Args:
        directory: the study's folder (the one holding ``oracle.json``);
            created if needed, and must not already hold a study.
        space: `keras_tuner.HyperParameters` declaring every hyperparameter,
            as `build(hp)` would.
        trials: iterable of `SyntheticTrial`.
        scientific: dict name -> list of compared values, as for
            `kp.PlaybookTuner`; None or {} for a quasi-random search.
        fixed: dict name -> value, as for `kp.PlaybookTuner`; without
            `scientific` (`kp.QuasiRandomSearch` has no roles), those names
            are declared as `hp.Fixed` in the space instead.
        objective: name of the objective metric.
        direction: "min" or "max".
        seed: the study's seed.
        trials_per_study: trials per scientific value (default: the most any
            value has here); without `scientific`, the search's `max_trials`
            (default: the number of trials).

    Returns:
        The directory, as a str.

    Raises:
        ValueError: a trial whose values, status, curves or steps a real
            study could not hold.
        FileExistsError: `directory` already holds a study.

    Example:

    ```python
    space = kt.HyperParameters()
    space.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    trials = [SyntheticTrial({"learning_rate": lr}, {"val_loss": [1.0, lr * 10]})
              for lr in (1e-4, 1e-3, 1e-2)]
    study = kp.Study.load(write_study("runs/synthetic", space, trials))
    ```
    """
    directory = os.path.normpath(os.fspath(directory))
    _check_empty(directory)
    trials = list(trials)
    for trial in trials:
        if not isinstance(trial, SyntheticTrial):
            raise TypeError(f"trials must be SyntheticTrial objects, got {trial!r}.")
    if direction not in ("min", "max"):
        raise ValueError(f'direction must be "min" or "max", got {direction!r}.')
    kt_objective = kt.Objective(objective, direction)
    scientific = dict(scientific or {})
    fixed = dict(fixed or {})

    if scientific:
        # The cells are needed before the oracle to size it; the oracle
        # repeats this check (and its warnings) itself, so silence them here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            checked, _ = roles.check_role_arguments(scientific, fixed)
        cells = roles.scientific_cells(checked)
        cell_index = {tuple(cell.values()): i for i, cell in enumerate(cells)}
        names = list(checked)
        trial_cells = []
        for i, trial in enumerate(trials):
            key = tuple(trial.values.get(name) for name in names)
            if key not in cell_index:
                raise ValueError(
                    f"Trial {i} has scientific values {dict(zip(names, key))}, which are "
                    f"not among {checked}; give each trial one of the compared values."
                )
            trial_cells.append(cell_index[key])
        counts = [trial_cells.count(i) for i in range(len(cells))]
        if trials_per_study is None:
            trials_per_study = max([1, *counts])
        elif max(counts) > trials_per_study:
            raise ValueError(
                f"trials_per_study={trials_per_study}, but a scientific value has "
                f"{max(counts)} trials; raise trials_per_study or drop trials."
            )
        oracle = NestedStudyOracle(
            objective=kt_objective,
            scientific=scientific,
            fixed=fixed,
            trials_per_study=trials_per_study,
            seed=seed,
        )
    else:
        if fixed:
            space = _with_fixed(space, fixed)
        max_trials = len(trials) if trials_per_study is None else trials_per_study
        if max_trials < len(trials):
            raise ValueError(
                f"trials_per_study={trials_per_study} (max_trials) is less than "
                f"the {len(trials)} trials given."
            )
        oracle = QuasiRandomSearchOracle(
            objective=kt_objective, max_trials=max(max_trials, 1), seed=seed
        )

    oracle._set_project_dir(os.path.dirname(directory) or ".", os.path.basename(directory))
    oracle.verbose = 0
    # What a search does before its first trial: the tuner declares the space
    # (roles are applied), then the first point is drawn (the quasi-random
    # dimensions are fixed). The trial bookkeeping is then set to ours.
    oracle.update_space(space.copy())
    oracle.populate_space("synthetic")
    search_space = oracle.hyperparameters

    # Every trial is checked before anything is written, so a bad trial
    # leaves no half-written study behind.
    width = len(str(oracle.max_trials))
    writer = _TrialWriter(search_space, kt_objective)
    prepared = []
    for i, trial in enumerate(trials):
        trial_id = f"{i:0{width}d}"
        values = _check_values(i, trial.values, search_space)
        text = writer.trial_json(trial_id, values, trial, i)
        record = _step_record(i, trial.steps) if trial.steps else None
        prepared.append((trial_id, values, text, record))
    ids = []
    for trial_id, values, text, record in prepared:
        study_layout = layout.StudyLayout(directory)
        os.makedirs(study_layout.trial_dir(trial_id), exist_ok=True)
        write_text(study_layout.trial_file(trial_id), text)
        if record is not None:
            write_steps(study_layout.steps_file(trial_id), [record])
        ids.append(trial_id)
        oracle._trial_values[trial_id] = dict(values)
        value_hash = oracle._compute_values_hash(values)
        oracle._tried_so_far.add(value_hash)
        oracle._id_to_hash[trial_id] = value_hash
        oracle._run_times[trial_id] = 1

    oracle.start_order = list(ids)
    oracle.end_order = list(ids)
    oracle.ongoing_trials = {}
    oracle._retry_queue = []
    if scientific:
        # Slot k belongs to cell k % n: the j-th trial of cell c takes slot
        # j * n + c, so `cell_of` gives every trial its own scientific value.
        seen = [0] * len(cells)
        oracle._trial_slots = {}
        for trial_id, cell in zip(ids, trial_cells):
            oracle._trial_slots[trial_id] = seen[cell] * len(cells) + cell
            seen[cell] += 1
        # Nuisance point p is sequence index p (no duplicate was skipped).
        oracle._point_index = list(range(max(seen, default=0)))
    else:
        oracle._next_point = len(trials)
    # Written last, as a search writes it after each trial's own file.
    oracle.save()
    return directory


# -- checks ------------------------------------------------------------------


def _with_fixed(space, fixed):
    """`space` with the `fixed` names declared as `hp.Fixed`.

    `kp.QuasiRandomSearch` has no roles: a value held constant there is an
    `hp.Fixed` of the space, which is what this writes.
    """
    unknown = sorted(set(fixed) - {hp.name for hp in space.space})
    if unknown:
        raise ValueError(f"fixed names {unknown[0]!r}, which the space does not declare.")
    result = hp_module.HyperParameters()
    for hp in space.space:
        if hp.name in fixed:
            hp = hp_module.Fixed(hp.name, fixed[hp.name], conditions=hp.conditions)
        result.merge([hp])
    return result


def _check_empty(directory):
    if not os.path.isdir(directory):
        return
    taken = [
        name for name in os.listdir(directory) if name == "oracle.json" or name.startswith("trial_")
    ]
    if taken:
        raise FileExistsError(
            f"{directory} already holds a study ({taken[0]}); write the synthetic "
            "study to a new or empty directory."
        )


def _check_values(index, given, space):
    """The trial's values in declaration order, as the oracle would hold them."""
    # Numpy scalars (from np.linspace, say) become Python ones, as the
    # samplers make them: KerasTuner's JSON cannot hold numpy integers.
    given = {name: plain(value) for name, value in given.items()}
    declared = {hp.name for hp in space.space}
    unknown = sorted(set(given) - declared)
    if unknown:
        raise ValueError(
            f"Trial {index} sets {unknown[0]!r}, which the space does not declare "
            f"(declared: {sorted(declared)})."
        )
    values = {}
    for hp in space.space:
        if hp.name in values:
            continue
        if not all(condition.is_active(values) for condition in hp.conditions):
            continue
        if isinstance(hp, hp_module.Fixed):
            value = given.get(hp.name, hp.value)
            if value != hp.value:
                raise ValueError(
                    f"Trial {index} sets fixed {hp.name!r} to {value!r}; it is fixed "
                    f"at {hp.value!r}."
                )
            values[hp.name] = hp.value
            continue
        if hp.name not in given:
            raise ValueError(
                f"Trial {index} has no value for {hp.name!r}; give every hyperparameter a value."
            )
        value = given[hp.name]
        if not _fits(hp, value):
            raise ValueError(
                f"Trial {index} sets {hp.name!r} to {value!r}, outside its declaration "
                f"{type(hp).__name__}({hp.get_config()})."
            )
        values[hp.name] = value
    inactive = sorted(set(given) - set(values))
    if inactive:
        raise ValueError(
            f"Trial {index} sets {inactive[0]!r}, which is inactive for its other "
            "values; KerasTuner keeps only active values, so leave it out."
        )
    return values


def _fits(hp, value):
    if isinstance(hp, hp_module.Boolean):
        return isinstance(value, bool)
    if isinstance(hp, hp_module.Choice):
        return value in hp.values
    if isinstance(hp, hp_module.Int):
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (hp.min_value <= value <= hp.max_value)
        )
    if isinstance(hp, hp_module.Float):
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and hp.min_value <= value <= hp.max_value
        )
    return True


def _step_record(index, steps):
    unknown = sorted(set(steps) - set(STEP_KEYS))
    if unknown:
        raise ValueError(
            f"Trial {index} has steps {unknown[0]!r}; the per-step record keeps "
            f"only {list(STEP_KEYS)}."
        )
    lengths = {len(column) for column in steps.values()}
    if len(lengths) > 1:
        raise ValueError(
            f"Trial {index} has per-step lists of different lengths {sorted(lengths)}."
        )
    # The same record the tuner's StepLog fills, so thinning past 2,000 steps
    # and the file's columns are exactly a real search's.
    record = StepRecord(STEP_KEYS)
    for i in range(lengths.pop() if lengths else 0):
        record.add(
            i + 1,
            {key: float(column[i]) for key, column in steps.items() if column[i] is not None},
        )
    return record


# -- trial.json --------------------------------------------------------------


class _TrialWriter:
    """Makes trial.json texts byte for byte as `Trial.save` after `Oracle.end_trial` would."""

    def __init__(self, space, objective):
        self.space_config = space.get_config()["space"]
        self.objective = objective
        self._directions = {objective.name: objective.direction}

    def direction(self, name):
        # As `Oracle.update_trial` registers a metric: the objective's own
        # direction, else KerasTuner's guess from the name, else "min".
        if name not in self._directions:
            self._directions[name] = infer_metric_direction(name) or "min"
        return self._directions[name]

    def trial_json(self, trial_id, values, trial, index):
        """The text of one trial's trial.json."""
        if trial.status not in STATUSES:
            raise ValueError(f"Trial {index} has status {trial.status!r}; use one of {STATUSES}.")
        if trial.status == "infeasible" and not trial.reason:
            raise ValueError(
                f"Trial {index} is infeasible without a reason; pass reason= "
                '(e.g. "nan_loss", "oom", "diverged").'
            )
        if trial.status == "completed" and trial.reason:
            # Most likely a forgotten status="infeasible".
            raise ValueError(
                f"Trial {index} has reason {trial.reason!r} but is completed; pass "
                'status="infeasible" (or "failed"), or drop the reason.'
            )
        name = self.objective.name
        reports = _reports(trial.curves or {})
        metrics = {}
        score, best_step, message = None, 0, None
        if trial.status == "completed":
            if not any(is_finite(logs.get(name)) for _, logs in reports):
                raise ValueError(
                    f"Trial {index} is completed but its curves have no finite {name!r}; "
                    "a real search records such a trial as infeasible (nan_loss)."
                )
            # `MetricHistory.get_best_value`/`get_best_step`: NaN ignored,
            # the first epoch reaching the best value.
            values_only = [
                logs[name] for _, logs in reports if not math.isnan(logs.get(name, math.nan))
            ]
            score = min(values_only) if self.objective.direction == "min" else max(values_only)
            best_step = next(epoch for epoch, logs in reports if logs.get(name, math.nan) == score)
        elif trial.status == "infeasible":
            message = _MESSAGE.format(
                f"keras_tuner.src.errors.FailedTrialError: Infeasible trial: {trial.reason}"
            )
            reports = reports or [(0, {})]
        else:
            message = _MESSAGE.format(f"RuntimeError: {trial.reason or 'synthetic failure'}")
        for i, (epoch, logs) in enumerate(reports):
            # `StudyTuner._run_and_update_trial`: the objective first (NaN when
            # not logged), the marker at the last epoch of an infeasible trial.
            row = {name: math.nan, **logs}
            if i == len(reports) - 1:
                if trial.status == "infeasible":
                    row[markers.marker(trial.reason)] = 1.0
                elif trial.status == "completed":
                    # With the last epoch: the score and its step (`StudyTuner._report`).
                    row[markers.SCORE] = score
                    row[markers.BEST_STEP] = float(best_step)
            for metric, value in row.items():
                if metric not in metrics:
                    metrics[metric] = {"direction": self.direction(metric), "observations": []}
                metrics[metric]["observations"].append({"value": [value], "step": epoch})
        state = {
            "trial_id": trial_id,
            "hyperparameters": {"space": self.space_config, "values": values},
            "metrics": {"metrics": metrics},
            "score": score,
            "best_step": best_step,
            "status": _KT_STATUS[trial.status],
            "message": message,
        }
        return json.dumps(state)


def _reports(curves):
    """[(epoch, {metric: value})] as `EpochLog` collects them from the curves."""
    epochs = max((len(curve) for curve in curves.values()), default=0)
    reports = []
    for epoch in range(epochs):
        logs = {}
        for name, curve in curves.items():
            if epoch < len(curve) and curve[epoch] is not None:
                logs[name] = float(curve[epoch])
        reports.append((epoch, logs))
    return reports
