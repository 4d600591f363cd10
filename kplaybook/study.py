"""`Study`: read a study's directory back as tables, curves and an export."""

import glob
import json
import math
import os

import numpy as np
import pandas as pd
from keras_tuner.engine import hyperparameters as hp_module
from keras_tuner.engine import trial as trial_module

from kplaybook import infeasibility
from kplaybook.callbacks._step_record import STEP_KEYS
from kplaybook.callbacks._step_record import STEPS_FILE
from kplaybook.callbacks._step_record import read_steps
from kplaybook.errors import StudyError
from kplaybook.oracles.base import STATE_KEY

STATUSES = ("completed", "infeasible", "failed", "running")

_BASE_COLUMNS = ["trial_id", "status", "infeasible_reason", "objective", "best_step"]


class Study:
    """A study on disk: every trial, its status, its hyperparameters and its curves.

    A study is the directory a `kp.PlaybookTuner` or `kp.QuasiRandomSearch`
    writes (`directory/project_name`). `Study.load` reads it without the code
    that built the models, so a study can be read, compared and shared on any
    machine; `tuner.study()` returns the same object for a running tuner.

    Example:

    ```python
    study = kp.Study.load("saved_studies/depth")
    study.to_dataframe()            # one row per trial
    study.curves("03")              # per-epoch metrics of trial 03
    study.best_per_scientific()     # one row per scientific value
    study.export()                  # trials.csv and study.json
    ```
    """

    def __init__(self, directory, state, trials):
        self.directory = os.fspath(directory)
        self._state = state
        self._extra = state[STATE_KEY]
        self._trials = dict(sorted(trials.items(), key=lambda item: _trial_order(item[0])))
        self.space = hp_module.HyperParameters.from_config(state["hyperparameters"])

    # -- loading -------------------------------------------------------------

    @classmethod
    def load(cls, directory):
        """Read the study in `directory` (the folder holding `oracle.json`).

        Raises:
            StudyError: the directory is missing, is not a kplaybook study, or
                holds a corrupt file.
        """
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            raise StudyError(
                f"No study at {directory}: the directory does not exist; pass the "
                "study's folder (directory/project_name)."
            )
        oracle_file = os.path.join(directory, "oracle.json")
        if not os.path.exists(oracle_file):
            raise StudyError(
                f"{directory} is not a study: it has no oracle.json; pass the "
                "folder a kplaybook tuner wrote (directory/project_name)."
            )
        try:
            with open(oracle_file) as f:
                state = json.load(f)
        except (OSError, ValueError) as e:
            raise StudyError(
                f"{oracle_file} cannot be read ({e}); restore it or re-run the study."
            ) from None
        if not isinstance(state, dict) or STATE_KEY not in state:
            raise StudyError(
                f"{directory} was not written by a kplaybook tuner (oracle.json has no "
                f"{STATE_KEY!r} entry); load a study that kp.PlaybookTuner or "
                "kp.QuasiRandomSearch wrote."
            )
        trials = {}
        for fname in glob.glob(os.path.join(directory, "trial_*", "trial.json")):
            try:
                trial = trial_module.Trial.load(fname)
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise StudyError(
                    f"{fname} cannot be read ({e!r}); restore it or delete its "
                    "trial folder so the trial is run again."
                ) from None
            trials[trial.trial_id] = trial
        return cls(directory, state, trials)

    # -- what the study is ---------------------------------------------------

    @property
    def name(self):
        """The study's name (its folder's name)."""
        return os.path.basename(os.path.normpath(self.directory))

    @property
    def config(self):
        """The settings the study was started with (kind, seed, search, ...)."""
        return dict(self._extra["config"])

    @property
    def objective(self):
        """The objective's name, e.g. "val_loss"."""
        return self._extra["objective"]["name"]

    @property
    def direction(self):
        """ "min" or "max"."""
        return self._extra["objective"]["direction"]

    @property
    def scientific(self):
        """dict name -> list of compared values ({} for a plain search)."""
        return dict(self._extra["config"].get("scientific", {}))

    @property
    def fixed(self):
        """dict name -> fixed value."""
        return dict(self._extra["config"].get("fixed", {}))

    @property
    def nuisance(self):
        """Names of the nuisance hyperparameters."""
        return [
            hp.name
            for hp in self.space.space
            if not isinstance(hp, hp_module.Fixed) and hp.name not in self.scientific
        ]

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

    # -- tables --------------------------------------------------------------

    def status(self, trial_id):
        """One of "completed", "infeasible", "failed", "running" for a trial."""
        trial = self._trial(trial_id)
        if trial.status == trial_module.TrialStatus.COMPLETED:
            return "completed"
        if infeasibility.reason_of(trial) is not None:
            return "infeasible"
        if trial.status in (trial_module.TrialStatus.RUNNING, trial_module.TrialStatus.IDLE):
            return "running"
        if trial.trial_id in self._state.get("retry_queue", []):
            return "running"  # waiting for KerasTuner's retry
        return "failed"

    def status_counts(self):
        """dict status -> number of trials."""
        counts = dict.fromkeys(STATUSES, 0)
        for trial_id in self._trials:
            counts[self.status(trial_id)] += 1
        return counts

    def to_dataframe(self):
        """One row per trial.

        Columns: `trial_id`, `status`, `infeasible_reason`, `objective` (the
        trial's best objective value over its epochs; NaN unless completed),
        `best_step` (the epoch of that value), `epochs` (how many were
        recorded), then one column per hyperparameter, named exactly as the
        hyperparameter (empty where it was inactive).
        """
        hp_names = []
        for hp in self.space.space:
            if hp.name not in hp_names:
                hp_names.append(hp.name)
        rows = []
        for trial_id, trial in self._trials.items():
            status = self.status(trial_id)
            completed = status == "completed"
            row = {
                "trial_id": trial_id,
                "status": status,
                "infeasible_reason": infeasibility.reason_of(trial),
                "objective": float(trial.score)
                if completed and trial.score is not None
                else np.nan,
                "best_step": trial.best_step if completed else None,
                "epochs": len(self._steps(trial)),
            }
            for name in hp_names:
                row[name] = trial.hyperparameters.values.get(name)
            rows.append(row)
        columns = _BASE_COLUMNS + ["epochs"] + hp_names
        frame = pd.DataFrame(rows, columns=columns)
        frame["best_step"] = frame["best_step"].astype("Int64")
        frame["epochs"] = frame["epochs"].astype("Int64")
        return frame

    def curves(self, trial_id):
        """Per-epoch metrics of one trial: one row per epoch (index `epoch`), one column per metric.

        With `executions_per_trial > 1` each value is the mean over executions.
        """
        trial = self._trial(trial_id)
        data = {}
        for name, history in trial.metrics.metrics.items():
            if name.startswith(infeasibility.MARKER_PREFIX):
                continue
            data[name] = {obs.step: float(obs.mean()) for obs in history.get_history()}
        frame = pd.DataFrame(data, index=pd.Index(self._steps(trial), name="epoch"))
        return frame.sort_index()

    def steps(self, trial_id, execution=0):
        """Per-step values of one trial: ``grad_norm``, ``lr``, ``clip_fraction`` (index `step`).

        They are there when the search ran with kplaybook's callbacks
        (`kp.callbacks.GradientNormLogger`, `GradientClipping`, `Warmup`):
        every step up to 2,000 steps, then evenly thinned. `step` counts
        optimizer updates (the first is 1). A trial without such logs gives
        an empty frame.

        Args:
            trial_id: the trial.
            execution: which execution, with `executions_per_trial > 1`.

        Example:

        ```python
        norms = study.steps("03")["grad_norm"]
        print(norms.quantile(0.9))
        ```
        """
        self._trial(trial_id)
        try:
            executions = read_steps(self._trial_dir(trial_id))
        except (OSError, ValueError) as e:
            raise StudyError(
                f"{os.path.join(self._trial_dir(trial_id), STEPS_FILE)} cannot be read "
                f"({e}); delete it to drop the per-step record."
            ) from None
        if not executions:
            return pd.DataFrame(
                columns=list(STEP_KEYS), index=pd.Index([], name="step"), dtype=float
            )
        if not 0 <= execution < len(executions):
            raise IndexError(
                f"Trial {trial_id!r} has {len(executions)} recorded execution(s); "
                f"pass execution between 0 and {len(executions) - 1}."
            )
        data = executions[execution]
        frame = pd.DataFrame(data["rows"], columns=data["columns"], dtype=float)
        frame["step"] = frame["step"].astype(int)
        return frame.set_index("step")

    def best_per_scientific(self):
        """The best completed trial of each scientific value: one row per value (combination).

        Columns: the scientific names, `trial_id`, `objective`, `best_step`,
        the counts `trials`, `completed`, `infeasible`, `failed`, `running`,
        then the best trial's nuisance values. A value with no completed trial
        has an empty `trial_id` and a NaN objective. A study without
        scientific hyperparameters gives one row.
        """
        frame = self.to_dataframe()
        names = list(self.scientific)
        cells = self._extra.get("cells") or [{}]
        rows = []
        for cell in cells:
            mask = np.ones(len(frame), dtype=bool)
            for name, value in cell.items():
                mask &= (frame[name] == value).to_numpy()
            group = frame[mask]
            row = dict(cell)
            row.update({"trial_id": None, "objective": np.nan, "best_step": None})
            for status in STATUSES:
                row[status] = int((group["status"] == status).sum())
            row["trials"] = len(group)
            done = group[group["status"] == "completed"]
            if len(done):
                best = done.loc[
                    done["objective"].idxmin()
                    if self.direction == "min"
                    else done["objective"].idxmax()
                ]
                row.update(
                    trial_id=best["trial_id"],
                    objective=best["objective"],
                    best_step=best["best_step"],
                )
                for name in self.nuisance:
                    row[name] = best[name]
            rows.append(row)
        columns = (
            names
            + ["trial_id", "objective", "best_step", "trials"]
            + list(STATUSES)
            + self.nuisance
        )
        result = pd.DataFrame(rows, columns=columns)
        result["best_step"] = result["best_step"].astype("Int64")
        return result

    # -- export --------------------------------------------------------------

    def export(self, directory=None):
        """Write `trials.csv` and `study.json` into the study directory (or `directory`).

        `study.json` is self-contained: the study's settings, roles, status
        counts, best trial per scientific value and every trial with its
        hyperparameters and curves.

        Returns:
            dict file name -> path written.
        """
        directory = os.fspath(directory or self.directory)
        os.makedirs(directory, exist_ok=True)
        frame = self.to_dataframe()
        paths = {
            "trials.csv": os.path.join(directory, "trials.csv"),
            "study.json": os.path.join(directory, "study.json"),
        }
        frame.to_csv(paths["trials.csv"], index=False)
        trials = []
        for record in frame.to_dict("records"):
            curves = self.curves(record["trial_id"])
            record["curves"] = {
                "epoch": [int(e) for e in curves.index],
                **{name: curves[name].tolist() for name in curves.columns},
            }
            steps = self.steps(record["trial_id"])
            if len(steps):
                record["steps"] = {
                    "step": [int(s) for s in steps.index],
                    **{name: steps[name].tolist() for name in steps.columns},
                }
            trials.append(record)
        summary = {
            "name": self.name,
            "directory": os.path.abspath(self.directory),
            "objective": {"name": self.objective, "direction": self.direction},
            "config": self.config,
            "scientific": self.scientific,
            "fixed": self.fixed,
            "nuisance": self.nuisance,
            "status_counts": self.status_counts(),
            "best_per_scientific": self.best_per_scientific().to_dict("records"),
            "trials": trials,
        }
        with open(paths["study.json"], "w") as f:
            json.dump(_json_safe(summary), f, indent=1, allow_nan=False)
        return paths

    # -- helpers -------------------------------------------------------------

    def _trial(self, trial_id):
        key = str(trial_id)
        if key in self._trials:
            return self._trials[key]
        for existing, trial in self._trials.items():
            if existing.isdigit() and key.isdigit() and int(existing) == int(key):
                return trial
        raise KeyError(
            f"No trial {trial_id!r} in study {self.name!r}; its trials are "
            f"{self.trial_ids[:3] + (['...'] if len(self._trials) > 3 else [])}."
        )

    def _trial_dir(self, trial_id):
        return os.path.join(self.directory, f"trial_{self._trial(trial_id).trial_id}")

    @staticmethod
    def _steps(trial):
        steps = set()
        for name, history in trial.metrics.metrics.items():
            if not name.startswith(infeasibility.MARKER_PREFIX):
                steps.update(obs.step for obs in history.get_history())
        return sorted(steps)


def _trial_order(trial_id):
    return (0, int(trial_id), "") if str(trial_id).isdigit() else (1, 0, str(trial_id))


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
