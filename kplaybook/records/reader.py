"""`StudyReader`: a study directory read back as records, tables and curves, without TensorFlow.

Everything that reads a study (the analysis, the report, `kp.compare`, the
command line) goes through the public methods of a `StudyReader`;
`kp.Study` is a `StudyReader` with the analysis, plotting, export and
replicate methods on top.
"""

import collections
import gc
import math
import os
import warnings

import numpy as np
import pandas as pd

from kplaybook import validation
from kplaybook.errors import StudyError
from kplaybook.records import files
from kplaybook.records import index as index_module
from kplaybook.records import layout as layout_module
from kplaybook.records import notes as notes_module
from kplaybook.records import replicates as replicates_module
from kplaybook.records import steps as steps_module
from kplaybook.records.trials import STATUSES
from kplaybook.records.trials import TrialRecord
from kplaybook.records.trials import best_position
from kplaybook.records.trials import sign

_BASE_COLUMNS = ["trial_id", "status", "infeasible_reason", "objective", "best_step", "epochs"]
_RESERVED = frozenset(_BASE_COLUMNS + ["executions", "objective_std"])

#: The columns of `StudyReader.replicates()` after the scientific names.
REPLICATE_COLUMNS = [
    "cell",
    "trial_id",
    "seed",
    "status",
    "infeasible_reason",
    "objective",
    "best_step",
]


def _record_from_entry(entry, retrying, path):
    """The record of an index entry, or None when the entry cannot give it."""
    try:
        return TrialRecord.from_entry(
            entry, retrying=str(entry.summary["trial_id"]) in retrying, source=path
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None  # an index written by other code: decode the file


def _decode(folder_id, content, own_digest, retrying, path, advice):
    """(record, index entry) of a trial decoded from its ``trial.json`` bytes."""
    data = files.parse_json(content, path, advice)
    try:
        record = TrialRecord(data, retrying=str(data["trial_id"]) in retrying, source=path)
        entry = index_module.Entry(
            folder_id, own_digest, record.entry_summary(), record.curve_arrays()
        )
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as e:
        raise StudyError(
            f"{path} cannot be read (a field is missing or malformed: {e!r}); {advice}."
        ) from None
    if record.execution_count <= 1:
        # Its curves are all the study needs of KerasTuner's metrics: let the
        # decoded JSON (thousands of objects) go now. (Its warnings were given.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            record = TrialRecord.from_entry(
                entry, retrying=record.trial_id in retrying, source=path
            )
    return record, entry


def hp_column(name):
    """The `to_dataframe()` column of hyperparameter `name`: the name, or ``hp:name`` on a clash.

    A hyperparameter named like one of the table's own columns (``epochs``,
    ``objective``, ...) gets the prefix, so neither hides the other.
    """
    return f"hp:{name}" if name in _RESERVED else name


class Hyperparameter(
    collections.namedtuple(
        "Hyperparameter",
        [
            "name",
            "kind",
            "min_value",
            "max_value",
            "step",
            "sampling",
            "values",
            "ordered",
            "value",
            "conditions",
        ],
    )
):
    """One declared hyperparameter of a study's search space, as saved in ``oracle.json``.

    `kind` is KerasTuner's class name: "Float", "Int", "Choice", "Boolean"
    or "Fixed". Numeric kinds have `min_value`, `max_value`, `step` and
    `sampling` ("linear", "log" or "reverse_log"); "Choice" has `values` and
    `ordered`; "Fixed" has `value`. `conditions` is the list of KerasTuner
    condition configs (empty when the hyperparameter is always active).
    """

    __slots__ = ()

    @classmethod
    def from_config(cls, entry):
        """From one item of KerasTuner's ``HyperParameters.get_config()["space"]``."""
        config = entry["config"]
        kind = entry["class_name"]
        values = config.get("values")
        if kind == "Boolean":
            values = [False, True]
        return cls(
            name=config["name"],
            kind=kind,
            min_value=config.get("min_value"),
            max_value=config.get("max_value"),
            step=config.get("step"),
            sampling=config.get("sampling") or "linear",
            values=values,
            ordered=bool(config.get("ordered", kind in ("Int", "Float"))),
            value=config.get("value"),
            conditions=list(config.get("conditions") or []),
        )

    @property
    def numeric(self):
        """True for Int and Float."""
        return self.kind in ("Int", "Float")

    @property
    def tunable(self):
        """False for a Fixed hyperparameter."""
        return self.kind != "Fixed"


class StudyReader:
    """A study directory, read: settings, roles, trials, tables, curves, per-step values, notes, replicates.

    Reading needs neither the code that built the models nor TensorFlow.
    `kp.Study` (what users load) is a `StudyReader` with analysis methods on
    top; the analysis itself only uses the public methods here.

    Example:

    ```python
    reader = StudyReader.load("saved_studies/depth")
    reader.to_dataframe()               # one row per trial
    reader.trial("03").values           # its hyperparameters
    reader.curves("03")                 # its per-epoch metrics
    ```
    """

    def __init__(self, directory, state, trials, problems=()):
        self.directory = os.fspath(directory)
        self.layout = layout_module.StudyLayout(self.directory)
        self._state = state
        own = state[layout_module.STATE_KEY]
        # Fail here (as an incomplete oracle.json) rather than later in an analysis.
        self._objective = (str(own["objective"]["name"]), str(own["objective"]["direction"]))
        self._config = dict(own["config"])
        self._own = own
        self._cells = [dict(cell) for cell in (own.get("cells") or [{}])]
        self._space = [
            Hyperparameter.from_config(entry) for entry in state["hyperparameters"]["space"]
        ]
        self._trials = dict(
            sorted(trials.items(), key=lambda item: layout_module.trial_order(item[0]))
        )
        #: Damaged or missing records noticed while reading (one sentence each).
        self.problems = list(problems)
        self._frame = None

    # -- loading -------------------------------------------------------------

    @classmethod
    def load(cls, directory):
        """Read the study in `directory` (the folder holding ``oracle.json``).

        Raises:
            StudyError: the directory is missing, is not a kplaybook study, or
                holds a damaged file (the error names it and what to do).
            TypeError: `directory` is not a str or os.PathLike.
        """
        directory = validation.path(
            directory, "directory", "the study's folder (directory/project_name)"
        )
        if not os.path.isdir(directory):
            what = "is a file, not a directory" if os.path.exists(directory) else "does not exist"
            raise StudyError(
                f"No study at {directory}: the directory {what}; pass the "
                "study's folder (directory/project_name)."
            )
        study_layout = layout_module.StudyLayout(directory)
        oracle_file = study_layout.oracle_file
        if not os.path.exists(oracle_file):
            raise StudyError(
                f"{directory} is not a study: it has no {layout_module.ORACLE_FILE}; pass the "
                "folder a kplaybook tuner wrote (directory/project_name)."
            )
        state = files.read_json(oracle_file, "restore it or re-run the study")
        if not isinstance(state, dict) or layout_module.STATE_KEY not in state:
            raise StudyError(
                f"{directory} was not written by a kplaybook tuner ({layout_module.ORACLE_FILE} "
                f"has no {layout_module.STATE_KEY!r} entry); load a study that kp.PlaybookTuner "
                "or kp.QuasiRandomSearch wrote."
            )
        retrying = set(state.get("retry_queue") or [])
        # Decoding JSON makes no reference cycles, but its many small objects
        # trigger collections that rescan everything the process holds
        # (TensorFlow's ~500k objects): a third of a 10,000-trial load.
        collecting = gc.isenabled()
        gc.disable()
        try:
            trials, problems = cls._read_trials(study_layout, retrying)
            try:
                return cls(directory, state, trials, problems)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise StudyError(
                    f"{oracle_file} is incomplete ({type(e).__name__}: {e}); restore it or "
                    "re-run the study."
                ) from None
        finally:
            if collecting:
                gc.enable()

    @staticmethod
    def _read_trials(study_layout, retrying):
        """Every trial record of the study, and the problems noticed reading them.

        A trial whose ``trial.json`` has the bytes the study's index was
        built from comes from the index; the others are decoded from their
        file, and the index is rewritten with them (`kplaybook.records.index`).
        """
        indexed = index_module.read_index(study_layout)
        trials, problems, entries, stale = {}, [], [], False
        advice = "resume the search to run that trial again, or restore the file"
        for trial_id, folder in study_layout.trial_dirs().items():
            # Absolute: a record may read its file again after a change of directory.
            path = os.path.abspath(os.path.join(folder, layout_module.TRIAL_FILE))
            try:
                with open(path, "rb") as f:
                    content = f.read()
            except FileNotFoundError:
                problems.append(
                    f"{folder} has no {layout_module.TRIAL_FILE}, so trial {trial_id} is left "
                    "out; resuming the search runs its slot again."
                )
                continue
            except OSError as e:
                raise StudyError(f"{path} cannot be read ({e.strerror or e}); {advice}.") from None
            own_digest = index_module.digest(content)
            record = None
            entry = indexed.get(trial_id)
            if entry is not None and entry.digest == own_digest:
                if entry.summary["executions"] > 1:
                    # Its per-execution values stay with the study once loaded.
                    record = _decode(trial_id, content, own_digest, retrying, path, advice)[0]
                else:
                    record = _record_from_entry(entry, retrying, path)
            if record is None:
                stale = True
                record, entry = _decode(trial_id, content, own_digest, retrying, path, advice)
            trials[record.trial_id] = record
            entries.append(entry)
        if stale or len(indexed) != len(entries):
            index_module.write_index(study_layout, entries)
        return trials, problems

    # -- what the study is ---------------------------------------------------

    @property
    def name(self):
        """The study's name (its folder's name)."""
        return os.path.basename(os.path.normpath(self.directory))

    @property
    def config(self):
        """The settings the study was started with (kind, seed, search, ...)."""
        return dict(self._config)

    @property
    def objective(self):
        """The objective's name, e.g. "val_loss"."""
        return self._objective[0]

    @property
    def direction(self):
        """ "min" or "max"."""
        return self._objective[1]

    @property
    def scientific(self):
        """dict name -> list of compared values ({} for a plain search)."""
        return dict(self._config.get("scientific", {}))

    @property
    def fixed(self):
        """dict name -> fixed value."""
        return dict(self._config.get("fixed", {}))

    @property
    def cells(self):
        """The scientific combinations compared, as a list of dicts ([{}] without scientific values)."""
        return [dict(cell) for cell in self._cells]

    @property
    def hyperparameters(self):
        """The declared search space: a list of `Hyperparameter` (fixed ones included)."""
        return list(self._space)

    @property
    def space_config(self):
        """The search space as KerasTuner saved it (``HyperParameters.get_config()``)."""
        return self._state["hyperparameters"]

    @property
    def nuisance(self):
        """Names of the nuisance hyperparameters: tunable, neither scientific nor fixed."""
        names = []
        for hp in self._space:
            if hp.tunable and hp.name not in self.scientific and hp.name not in self.fixed:
                if hp.name not in names:
                    names.append(hp.name)
        return names

    @property
    def trial_ids(self):
        """All trial ids, in creation order."""
        return list(self._trials)

    def __repr__(self):
        counts = self.status_counts()
        return (
            f"<Study {self.name!r}: {len(self._trials)} trials "
            f"({', '.join(f'{n} {s}' for s, n in counts.items() if n)}), "
            f"objective {self.objective} ({self.direction})>"
        )

    # -- trials --------------------------------------------------------------

    def trial(self, trial_id):
        """The `TrialRecord` of a trial ("3" finds "03").

        Raises:
            KeyError: no such trial (the message lists a few that exist).
        """
        key = str(trial_id)
        if key in self._trials:
            return self._trials[key]
        if key.isdigit():
            for existing, record in self._trials.items():
                if existing.isdigit() and int(existing) == int(key):
                    return record
        raise KeyError(
            f"No trial {trial_id!r} in study {self.name!r}; its trials are "
            f"{self.trial_ids[:3] + (['...'] if len(self._trials) > 3 else [])}."
        )

    def trials(self):
        """Every `TrialRecord`, in creation order."""
        return list(self._trials.values())

    def status(self, trial_id):
        """One of "completed", "infeasible", "failed", "running" for a trial."""
        return self.trial(trial_id).status

    def status_counts(self):
        """dict status -> number of trials."""
        counts = dict.fromkeys(STATUSES, 0)
        for record in self._trials.values():
            counts[record.status] += 1
        return counts

    def trial_dir(self, trial_id):
        """The folder of a trial."""
        return self.layout.trial_dir(self.trial(trial_id).trial_id)

    # -- tables --------------------------------------------------------------

    def to_dataframe(self):
        """One row per trial.

        Columns: `trial_id`, `status`, `infeasible_reason`, `objective` (the
        trial's score, as KerasTuner scores it; NaN unless completed),
        `best_step` (the epoch of that value), `epochs` (how many were
        recorded), with ``executions_per_trial > 1`` also `executions` and
        `objective_std` (the spread of the executions' own best values), then
        one column per hyperparameter, named exactly as the
        hyperparameter (empty where it was inactive); a hyperparameter named
        like one of those columns (e.g. ``epochs``) is ``hp:epochs``.
        """
        if self._frame is None:
            self._frame = self._build_frame()
        return self._frame.copy()

    def _hp_names(self):
        names = []
        for hp in self._space:
            if hp.name not in names:
                names.append(hp.name)
        return names

    def _build_frame(self):
        hp_names = self._hp_names()
        records = list(self._trials.values())
        data = {
            "trial_id": [r.trial_id for r in records],
            "status": [r.status for r in records],
            "infeasible_reason": [r.infeasible_reason for r in records],
            "objective": np.array([r.objective for r in records], dtype=float),
            "best_step": pd.array([r.best_step for r in records], dtype="Int64"),
            "epochs": pd.array([r.epochs for r in records], dtype="Int64"),
        }
        columns = list(_BASE_COLUMNS)
        scores = [r.execution_scores(self.objective, self.direction) for r in records]
        if any(len(s) > 1 for s in scores):
            # executions_per_trial > 1: how much the executions of a trial disagree.
            data["executions"] = pd.array([len(s) for s in scores], dtype="Int64")
            data["objective_std"] = [
                float(np.std(s, ddof=1)) if len(s) > 1 else np.nan for s in scores
            ]
            columns += ["executions", "objective_std"]
        for name in hp_names:
            data[hp_column(name)] = [r.values.get(name) for r in records]
        return pd.DataFrame(data, columns=columns + [hp_column(n) for n in hp_names])

    def cell_of(self, trial_id):
        """The index into `cells` of a trial's scientific combination (-1 when it matches none)."""
        record = self.trial(trial_id)
        for index, cell in enumerate(self._cells):
            if _in_cell(record, cell):
                return index
        return -1

    def ranked(self, cell=None):
        """Ids of the completed trials with a finite objective, best first (ties in creation order).

        Args:
            cell: optional index into `cells`: only that scientific value's trials.
        """
        records = self.trials()
        if cell is not None:
            records = [r for r in records if _in_cell(r, self._cells[cell])]
        keyed = [
            (sign(self.direction) * r.objective, i, r.trial_id)
            for i, r in enumerate(records)
            if math.isfinite(r.objective)
        ]
        return [trial_id for _, _, trial_id in sorted(keyed)]

    def best_trial_id(self, trial_ids=None):
        """The id of the best completed trial (among `trial_ids`, default all), or None."""
        records = [self.trial(t) for t in trial_ids] if trial_ids is not None else self.trials()
        position = best_position([r.objective for r in records], self.direction)
        return None if position is None else records[position].trial_id

    def best_per_scientific(self):
        """The isolation comparison: one row per scientific value (combination).

        Columns: the scientific names, `trial_id`, `objective`, `best_step`,
        the counts `trials`, `completed`, `infeasible`, `failed`, `running`,
        then the best trial's nuisance values. A value with no completed trial
        has an empty `trial_id` and a NaN objective. A study without
        scientific hyperparameters gives one row.
        """
        names = list(self.scientific)
        nuisance = self.nuisance
        rows = []
        cells = self.cells
        records = self.trials()
        where = [self.cell_of(r.trial_id) for r in records]
        for index, cell in enumerate(cells):
            group = [r for r, w in zip(records, where) if w == index]
            row = {hp_column(name): format_cell_value(value) for name, value in cell.items()}
            row.update({"trial_id": None, "objective": np.nan, "best_step": None})
            row["trials"] = len(group)
            for status in STATUSES:
                row[status] = sum(r.status == status for r in group)
            position = best_position([r.objective for r in group], self.direction)
            if position is not None:
                best = group[position]
                row.update(trial_id=best.trial_id, objective=best.score, best_step=best.best_step)
                for name in nuisance:
                    row[hp_column(name)] = best.values.get(name)
            rows.append(row)
        columns = (
            [hp_column(n) for n in names]
            + ["trial_id", "objective", "best_step", "trials"]
            + list(STATUSES)
            + [hp_column(n) for n in nuisance]
        )
        result = pd.DataFrame(rows, columns=columns)
        result["best_step"] = result["best_step"].astype("Int64")
        return result

    # -- curves and per-step values -------------------------------------------

    def curve_arrays(self, trial_id):
        """(epochs, {metric: float array}) of one trial, NaN where a metric has no value.

        The arrays are shared, not copied: read them, do not change them.
        """
        return self.trial(trial_id).curve_arrays()

    def curves(self, trial_id):
        """Per-epoch metrics of one trial: one row per epoch (index `epoch`), one column per metric.

        With `executions_per_trial > 1` each value is the mean over executions.
        """
        epochs, columns = self.curve_arrays(trial_id)
        return pd.DataFrame(
            {name: values.copy() for name, values in columns.items()},
            index=pd.Index(epochs.copy(), name="epoch"),
        )

    def has_steps(self, trial_id):
        """Whether the trial stored per-step values (``steps.json``)."""
        return os.path.exists(self.layout.steps_file(self.trial(trial_id).trial_id))

    def steps(self, trial_id, execution=0):
        """Per-step values of one trial: ``grad_norm``, ``lr``, ``clip_fraction`` (index `step`).

        They are there when the search ran with kplaybook's callbacks
        (`kp.callbacks.GradientNormLogger`, `GradientClipping`, `Warmup`):
        every step up to 2,000 steps, then evenly thinned. `step` counts
        optimizer updates (the first is 1). A trial without such logs gives
        an empty frame.

        Args:
            trial_id: the trial.
            execution: which execution (an int from 0), with
                `executions_per_trial > 1`.

        Example:

        ```python
        norms = study.steps("03")["grad_norm"]
        print(norms.quantile(0.9))
        ```
        """
        execution = validation.integer(execution, "execution")
        path = self.layout.steps_file(self.trial(trial_id).trial_id)
        executions = steps_module.read_steps(path)
        if not executions:
            return pd.DataFrame(
                columns=list(steps_module.STEP_KEYS), index=pd.Index([], name="step"), dtype=float
            )
        if not 0 <= execution < len(executions):
            raise IndexError(
                f"Trial {trial_id!r} has {len(executions)} execution(s); pass execution "
                f"in 0..{len(executions) - 1}."
            )
        return steps_module.steps_frame(executions[execution])

    # -- notes and replicates ------------------------------------------------

    @property
    def notes(self):
        """What the search recorded about itself: ``goal`` and ``command`` (dict; {} if nothing).

        `goal` is the `goal=` passed to the tuner; `command` is the command
        line that ran the search (None from an interactive session).
        """
        try:
            return notes_module.read_notes(self.layout.notes_file)
        except StudyError:
            return {}

    def replicate_runs(self):
        """The raw replicate runs of ``replicates.json`` (list of dicts; [] without replicates)."""
        return replicates_module.read_runs(self.layout.replicates_file)

    def replicates(self):
        """The recorded seed replicates: one row per run (empty without `replicate()`).

        Columns: the scientific hyperparameters, `cell` (index of the
        scientific value in `cells`), `trial_id` (the replicated trial),
        `seed`, `status` ("completed" or "infeasible"), `infeasible_reason`,
        `objective` (the run's best objective over its epochs) and `best_step`.
        """
        names = list(self.scientific)
        runs = self.replicate_runs()
        frame = pd.DataFrame(
            [{**{n: r["scientific"].get(n) for n in names}, **r} for r in runs],
            columns=names + REPLICATE_COLUMNS,
        )
        frame["objective"] = pd.to_numeric(frame["objective"], errors="coerce").astype(float)
        return frame

    def replicate_curves(self, trial_id, seed):
        """Per-epoch metrics of one replicate run (index `epoch`), like `curves`."""
        for run in self.replicate_runs():
            if str(run["trial_id"]) == str(trial_id) and run["seed"] == seed:
                curves = dict(run["curves"])
                epochs = curves.pop("epoch")
                return pd.DataFrame(curves, index=pd.Index(epochs, name="epoch"), dtype=float)
        raise KeyError(f"No replicate of trial {trial_id!r} with seed {seed!r} was recorded.")


def is_interval(value):
    """True for a binned cell's value: [low, high] (a joint study's scientific range)."""
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )


def in_cell(value, cell_value):
    """Whether a trial's `value` belongs to a cell's `cell_value` (a value, or a [low, high] bin)."""
    if is_interval(cell_value):
        low, high = cell_value
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
        )
    return value == cell_value


def format_cell_value(value):
    """A cell's value as shown in tables: itself, or "[low, high]" for a bin."""
    if is_interval(value):
        return f"[{value[0]:.4g}, {value[1]:.4g}]"
    return value


def _in_cell(record, cell):
    return all(in_cell(record.values.get(name), value) for name, value in cell.items())
