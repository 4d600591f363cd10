"""`Study`: read a study's directory back as tables, curves and an export."""

import glob
import json
import math
import os

import numpy as np
import pandas as pd
import tensorflow as tf
from keras_tuner.engine import hyperparameters as hp_module
from keras_tuner.engine import trial as trial_module

from kplaybook import infeasibility
from kplaybook.callbacks._step_record import STEP_KEYS
from kplaybook.callbacks._step_record import STEPS_FILE
from kplaybook.callbacks._step_record import read_steps
from kplaybook.errors import StudyError
from kplaybook.oracles.base import STATE_KEY

STATUSES = ("completed", "infeasible", "failed", "running")

#: Written by the tuner when a search starts: the goal and the command line.
NOTES_FILE = "kplaybook_notes.json"

_BASE_COLUMNS = ["trial_id", "status", "infeasible_reason", "objective", "best_step"]
_RESERVED = frozenset(_BASE_COLUMNS + ["epochs"])


def hp_column(name):
    """The `to_dataframe()` column of hyperparameter `name`: the name, or ``hp:name`` on a clash.

    A hyperparameter named like one of the table's own columns (``epochs``,
    ``objective``, ...) gets the prefix, so neither hides the other.
    """
    return f"hp:{name}" if name in _RESERVED else name


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
        # Fail here (as an incomplete oracle.json) rather than later in an analysis.
        self._extra["objective"]["name"], self._extra["objective"]["direction"]
        self._extra["config"].get("scientific", {})
        self._trials = dict(sorted(trials.items(), key=lambda item: _trial_order(item[0])))
        self.space = hp_module.HyperParameters.from_config(state["hyperparameters"])
        self._curve_cache = {}
        self._frame = None

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
            what = "is a file, not a directory" if os.path.exists(directory) else "does not exist"
            raise StudyError(
                f"No study at {directory}: the directory {what}; pass the "
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
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise StudyError(
                    f"{fname} cannot be read ({e!r}); restore it or delete its "
                    "trial folder so the trial is run again."
                ) from None
            except tf.errors.OpError as e:  # KerasTuner reads through tf.io.gfile
                raise StudyError(
                    f"{fname} cannot be read ({e.message}); restore it or delete its "
                    "trial folder so the trial is run again."
                ) from None
            trials[trial.trial_id] = trial
        try:
            return cls(directory, state, trials)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise StudyError(
                f"{oracle_file} is incomplete ({type(e).__name__}: {e}); restore it or "
                "re-run the study."
            ) from None

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
        hyperparameter (empty where it was inactive); a hyperparameter named
        like one of those columns (e.g. ``epochs``) is ``hp:epochs``.
        """
        if self._frame is None:
            self._frame = self._build_frame()
        return self._frame.copy()

    def _build_frame(self):
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
                "epochs": len(self._curve_arrays(trial_id)[0]),
            }
            for name in hp_names:
                row[hp_column(name)] = trial.hyperparameters.values.get(name)
            rows.append(row)
        columns = _BASE_COLUMNS + ["epochs"] + [hp_column(name) for name in hp_names]
        frame = pd.DataFrame(rows, columns=columns)
        frame["best_step"] = frame["best_step"].astype("Int64")
        frame["epochs"] = frame["epochs"].astype("Int64")
        return frame

    def curves(self, trial_id):
        """Per-epoch metrics of one trial: one row per epoch (index `epoch`), one column per metric.

        With `executions_per_trial > 1` each value is the mean over executions.
        """
        epochs, columns = self._curve_arrays(trial_id)
        return pd.DataFrame(
            {name: values.copy() for name, values in columns.items()},
            index=pd.Index(epochs.copy(), name="epoch"),
        )

    def _curve_arrays(self, trial_id):
        """(epochs, {metric: float array}) of one trial, NaN where a metric has no value; cached.

        The checks, the plots and the export read curves through this, so a
        study of 10,000 trials is parsed once and without a DataFrame per trial.
        """
        trial = self._trial(trial_id)
        cached = self._curve_cache.get(trial.trial_id)
        if cached is not None:
            return cached
        histories = {}
        steps = set()
        for name, history in trial.metrics.metrics.items():
            if name.startswith(infeasibility.MARKER_PREFIX):
                continue
            observations = history.get_history()
            histories[name] = observations
            steps.update(obs.step for obs in observations)
        epochs = np.array(sorted(steps), dtype=np.int64)
        position = {int(step): i for i, step in enumerate(epochs)}
        columns = {}
        for name, observations in histories.items():
            values = np.full(len(epochs), np.nan)
            for obs in observations:
                # MetricObservation.mean() is np.mean of a list: ~6 us per call,
                # most of reading a 10,000-trial study. One execution is one value.
                v = obs.value
                values[position[int(obs.step)]] = v[0] if len(v) == 1 else sum(v) / len(v)
            columns[name] = values
        self._curve_cache[trial.trial_id] = (epochs, columns)
        return epochs, columns

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
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
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
        try:
            frame = pd.DataFrame(data["rows"], columns=data["columns"], dtype=float)
            frame["step"] = frame["step"].astype(int)
        except (ValueError, TypeError) as e:
            raise StudyError(
                f"{os.path.join(self._trial_dir(trial_id), STEPS_FILE)} holds malformed "
                f"rows ({e}); delete it to drop the per-step record."
            ) from None
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
                mask &= (frame[hp_column(name)] == value).to_numpy()
            group = frame[mask]
            row = {hp_column(name): value for name, value in cell.items()}
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
                    row[hp_column(name)] = best[hp_column(name)]
            rows.append(row)
        columns = (
            [hp_column(n) for n in names]
            + ["trial_id", "objective", "best_step", "trials"]
            + list(STATUSES)
            + [hp_column(n) for n in self.nuisance]
        )
        result = pd.DataFrame(rows, columns=columns)
        result["best_step"] = result["best_step"].astype("Int64")
        return result

    # -- analysis ------------------------------------------------------------

    @property
    def notes(self):
        """What the search recorded about itself: ``goal`` and ``command`` (dict; {} if nothing).

        `goal` is the `goal=` passed to the tuner; `command` is the command
        line that ran the search (None from an interactive session).
        """
        path = os.path.join(self.directory, NOTES_FILE)
        if not os.path.exists(path):
            return {}
        try:
            with open(path) as f:
                notes = json.load(f)
        except (OSError, ValueError):
            return {}
        return notes if isinstance(notes, dict) else {}

    def check(self):
        """The playbook's checks on this study: a list of `kp.Finding`, warnings first.

        Codes: ``boundary``, ``infeasible_fraction``, ``sampling_density``,
        ``overfitting``, ``late_variance``, ``still_improving``,
        ``saturated``, ``best_step_early``, ``best_step_late``,
        ``aggressive_clipping``, ``fixed_optimizer_hparams``. A problem
        that is not there gives no finding. The thresholds are the named
        constants of `kplaybook.analysis.checks`.

        Example:

        ```python
        for f in kp.Study.load("saved_studies/depth").check():
            print(f"{f.severity:8} {f.code:22} {f.message}")
            print(" " * 32, "->", f.recommendation)
        ```
        """
        from kplaybook.analysis.checks import run_checks

        return run_checks(self)

    def plot_axis(self, hp_name=None):
        """Basic hyperparameter axis plots (PLAYBOOK.md 18); a matplotlib Figure.

        One panel per varied hyperparameter (or only `hp_name`): each trial's
        best objective against the hyperparameter (log axis for log
        dimensions), coloured by scientific value, infeasible trials as red X
        at the top, the top 3 trials starred, the search-space bounds dashed.

        Example: ``study.plot_axis("learning_rate").savefig("lr.png")``
        """
        from kplaybook.analysis import plot_data
        from kplaybook.analysis import plots

        return plots.render_axis(plot_data.axis_plot_data(self, hp_name))

    def plot_isolation(self):
        """The isolation plot (PLAYBOOK.md 11): best objective per scientific value.

        With seed replicates (`replicate()`), their mean ± std is drawn
        beside each best trial. Example: ``study.plot_isolation()``
        """
        from kplaybook.analysis import plot_data
        from kplaybook.analysis import plots

        return plots.render_isolation(plot_data.isolation_plot_data(self))

    def plot_curves(self, which="best"):
        """Training (``loss``) and validation curves; a matplotlib Figure.

        Args:
            which: "best" (each scientific value's best trial bold, its next
                10 faint), "all" (every completed trial), or a list of trial ids.

        Example: ``study.plot_curves(["03", "07"])``
        """
        from kplaybook.analysis import plot_data
        from kplaybook.analysis import plots

        return plots.render_curves(plot_data.curves_plot_data(self, which))

    def plot_grad_norms(self, trial_id=None):
        """Gradient norm against step and its histogram, with clip thresholds (PLAYBOOK.md 29, 32).

        Needs per-step norms (the search ran with
        `kp.callbacks.GradientNormLogger` or `GradientClipping`). Draws the
        logged clip threshold and the 90th percentile of the norms, the
        playbook's suggested threshold.

        Args:
            trial_id: the trial; default: the best trial that logged norms.

        Example: ``study.plot_grad_norms("03")``
        """
        from kplaybook.analysis import plot_data
        from kplaybook.analysis import plots

        if trial_id is None:
            trial_id = self._best_trial_with_steps()
        return plots.render_grad_norms(plot_data.grad_norm_plot_data(self, trial_id))

    def plot_sampling(self):
        """Best of k trials against k, per scientific value (PLAYBOOK.md 20); a matplotlib Figure.

        Box plots of the best of k trials drawn with replacement from the
        completed ones (the playbook's bootstrap, computed exactly): when the
        boxes stop moving down as k grows, the space was sampled densely
        enough. Example: ``study.plot_sampling()``
        """
        from kplaybook.analysis import plot_data
        from kplaybook.analysis import plots

        return plots.render_sampling(plot_data.sampling_plot_data(self))

    def replicate(
        self, top_k=1, seeds=5, *, hypermodel=None, distribution_strategy=None, **fit_kwargs
    ):
        """Re-train the best trial(s) of each scientific value with new seeds (PLAYBOOK.md 36).

        Each run builds the trial's hyperparameters with
        `keras.utils.set_random_seed(seed)` (initialisation, dropout and
        shuffling change) and trains as the search did; its best objective
        is stored in ``replicates.json`` in the study directory. The
        isolation plot, the report and `kp.compare` then use mean ± std of
        the replicates: the study's own best value is the maximum of many
        noisy trials, so it is left out of them. Runs already recorded are
        not repeated, so an interrupted call resumes.

        On `tuner.study()` after `tuner.search(...)` nothing else is needed:
        the tuner's hypermodel and search arguments are reused. On a study
        from `Study.load`, pass `hypermodel=` and the fit arguments.

        Args:
            top_k: int, best trials per scientific value to replicate.
            seeds: int n (seeds 1..n) or a list of int seeds.
            hypermodel: `keras_tuner.HyperModel` or `build(hp)` function.
            distribution_strategy: optional `tf.distribute.Strategy`.
            **fit_kwargs: passed to `HyperModel.fit` / `model.fit` (x, y,
                validation_data, epochs, batch_size, callbacks, ...).

        Returns:
            DataFrame of all recorded replicate runs (`read_replicates`).

        Example:

        ```python
        study = tuner.study()
        study.replicate(top_k=1, seeds=5)
        study.plot_isolation()

        study = kp.Study.load("saved_studies/depth")
        study.replicate(seeds=3, hypermodel=build, x=x, y=y,
                        validation_data=(xv, yv), epochs=10)
        ```
        """
        from kplaybook.analysis.replicates import run_replicates

        fit_args = ()
        source = getattr(self, "_source_tuner", None)
        if hypermodel is None and source is not None:
            hypermodel = source.hypermodel
            if distribution_strategy is None:
                distribution_strategy = source.distribution_strategy
            searched_args, searched_kwargs = getattr(source, "_search_arguments", ((), {}))
            if not fit_kwargs:
                fit_args, fit_kwargs = searched_args, dict(searched_kwargs)
        result = run_replicates(
            self,
            top_k=top_k,
            seeds=seeds,
            hypermodel=hypermodel,
            fit_args=fit_args,
            fit_kwargs=fit_kwargs,
            distribution_strategy=distribution_strategy,
        )
        return result

    def replicates(self):
        """The recorded seed replicates: one row per run (empty without `replicate()`)."""
        from kplaybook.analysis.replicates import read_replicates

        return read_replicates(self)

    # -- export --------------------------------------------------------------

    def export(self, directory=None, formats=("html", "md", "csv", "json")):
        """Write the study's summary into the study directory (or `directory`).

        - ``"csv"``: `trials.csv` (one row per trial), `best_per_scientific.csv`,
          `spreadsheet_row.csv` (study, goal, trials run, best result, command
          to reproduce; PLAYBOOK.md 38) and `replicates.csv` when replicates exist;
        - ``"json"``: `study.json` (self-contained: settings, roles, counts,
          every trial with its hyperparameters, curves and per-step values,
          the findings and the spreadsheet row) and `findings.json`;
        - ``"md"``: `summary.md`, linking `plots/*.png`;
        - ``"html"``: `report.html`, one self-contained file (plots embedded)
          that opens offline, and `plots/*.png`.

        Returns:
            dict file name -> path written.

        Example:

        ```python
        paths = kp.Study.load("saved_studies/depth").export()
        print(paths["report.html"])
        ```
        """
        from kplaybook.analysis import report

        formats = report.check_formats(formats)
        return report.write(self, os.fspath(directory or self.directory), formats)

    def _write_study_json(self, path, frame, extra=None):
        trials = []
        for record in frame.to_dict("records"):
            epochs, columns = self._curve_arrays(record["trial_id"])
            record["curves"] = {
                "epoch": epochs.tolist(),
                **{name: _finite_list(values) for name, values in columns.items()},
            }
            if os.path.exists(os.path.join(self._trial_dir(record["trial_id"]), STEPS_FILE)):
                steps = self.steps(record["trial_id"])
                if len(steps):
                    record["steps"] = {
                        "step": [int(s) for s in steps.index],
                        **{name: _finite_list(steps[name].to_numpy()) for name in steps.columns},
                    }
            trials.append(record)
        summary = {
            "name": self.name,
            "directory": os.path.abspath(self.directory),
            "objective": {"name": self.objective, "direction": self.direction},
            "config": self.config,
            "notes": self.notes,
            "scientific": self.scientific,
            "fixed": self.fixed,
            "nuisance": self.nuisance,
            "status_counts": self.status_counts(),
            "best_per_scientific": self.best_per_scientific().to_dict("records"),
            **(extra or {}),
            "trials": trials,
        }
        curves = [(t.pop("curves"), t.pop("steps", None)) for t in trials]
        summary = _json_safe(summary)
        for record, (curve, steps) in zip(summary["trials"], curves):
            # Already JSON-safe (NaN -> None): kept out of the recursive walk.
            record["curves"] = curve
            if steps is not None:
                record["steps"] = steps
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            # json.dumps uses the C encoder (json.dump to a file does not).
            f.write(json.dumps(summary, allow_nan=False))
        os.replace(tmp, path)

    def _best_trial_with_steps(self):
        frame = self.to_dataframe()
        done = frame[frame["status"] == "completed"].sort_values(
            "objective", ascending=self.direction == "min"
        )
        for trial_id in done["trial_id"]:
            if os.path.exists(os.path.join(self._trial_dir(trial_id), STEPS_FILE)):
                if "grad_norm" in self.steps(trial_id):
                    return trial_id
        raise ValueError(
            f"No trial of study {self.name!r} logged per-step gradient norms; run the "
            "search with kp.callbacks.GradientNormLogger() among the callbacks."
        )

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


def _trial_order(trial_id):
    return (0, int(trial_id), "") if str(trial_id).isdigit() else (1, 0, str(trial_id))


def _finite_list(values):
    """A float array as a JSON list: NaN and infinities as None."""
    values = np.asarray(values, dtype=float)
    out = values.tolist()
    if not np.isfinite(values).all():
        out = [v if math.isfinite(v) else None for v in out]
    return out


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
