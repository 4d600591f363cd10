"""A KerasTuner `Tuner` that keeps full learning curves and records infeasible trials."""

import datetime
import json
import math
import os
import shlex
import sys

import keras
import keras_tuner as kt
from keras_tuner.src.engine import tuner_utils

from kplaybook import infeasibility
from kplaybook.callbacks import DivergenceMonitor
from kplaybook.callbacks._step_record import STEP_KEYS
from kplaybook.callbacks._step_record import StepRecord
from kplaybook.callbacks._step_record import write_steps
from kplaybook.distribute.strategy import StrategyWrapper


class EpochLog(keras.callbacks.Callback):
    """Records every epoch's logs, and stops training when the loss is NaN or infinite.

    `StudyTuner` adds one to each execution of each trial; it does nothing per
    batch.
    """

    def __init__(self):
        super().__init__()
        self.epochs = []
        self.nonfinite = False

    def on_epoch_end(self, epoch, logs=None):
        values = {}
        for name, value in (logs or {}).items():
            try:
                values[name] = float(value)
            except (TypeError, ValueError):
                continue
        self.epochs.append((epoch, values))
        if "loss" in values and not math.isfinite(values["loss"]):
            self.nonfinite = True
            self.model.stop_training = True


class StepLog(keras.callbacks.Callback):
    """Records the per-step ``grad_norm``, ``lr`` and ``clip_fraction`` that kplaybook's callbacks log.

    `StudyTuner` adds one to each execution; it records nothing when no such
    key is logged. Every step is kept up to 2,000 steps, then the record is
    thinned evenly (see `StepRecord`).
    """

    async_safe = True

    def __init__(self):
        super().__init__()
        self.record = StepRecord(STEP_KEYS)

    def on_train_begin(self, logs=None):
        self.record.begin(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self.record.add_batch(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.record.end_epoch()


class StudyTuner(kt.Tuner):
    """Base tuner of kplaybook: every epoch recorded, infeasible trials recorded, not fatal.

    Compared with `keras_tuner.Tuner`:

    - every epoch's metrics (train and validation) of every execution are
      reported to the oracle at `step=epoch`, so the trial keeps its whole
      learning curve and `best_step` is the epoch of the best objective;
    - a trial whose loss becomes NaN/Inf ("nan_loss"), that runs out of
      memory ("oom", recognised by exception class and by the known OOM
      messages, XLA's included) or that raises `kp.InfeasibleTrial` (its
      message) ends as an infeasible trial with that reason; the search goes
      on and such trials do not count towards
      `max_consecutive_failed_trials`;
    - a `kp.callbacks.DivergenceMonitor` among the callbacks that stops
      training makes the trial infeasible with reason "diverged";
    - per-step ``grad_norm``, ``lr`` and ``clip_fraction`` logged by
      kplaybook's callbacks are stored in the trial's folder (``steps.json``)
      and read back by `Study.steps`;
    - any other exception is a real error: KerasTuner retries and fails the
      trial as usual, and the same error in consecutive trials stops the
      search with the original message.

    Use `PlaybookTuner` or `QuasiRandomSearch` rather than this class
    directly; `study()` returns the `kp.Study` the search wrote.

    Args:
        goal: optional str, the experiment's goal or notes, shown in the
            study's report and spreadsheet row (PLAYBOOK.md 38).
        distribution_strategy: optional `kp.distribute.StrategyWrapper` or
            `tf.distribute.Strategy`. Models are built in its scope and, with
            more than one replica, their batch norm layers are synchronized
            (`StrategyWrapper.prepare`). `self.distribution_strategy` is the
            `tf.distribute.Strategy`, `self.strategy_wrapper` the wrapper.
        *args, **kwargs: as for `keras_tuner.Tuner`.
    """

    def __init__(self, *args, goal=None, distribution_strategy=None, **kwargs):
        if goal is not None and not isinstance(goal, str):
            raise TypeError(f"goal must be a str (the study's goal or notes), got {goal!r}.")
        self.goal = goal
        self._search_arguments = ((), {})
        # KerasTuner reads `.extended` and `.scope()` of a real tf.distribute
        # strategy, and analysis/replicates.py re-uses `distribution_strategy`,
        # so both get the tf strategy; the wrapper is kept for `_try_build`.
        self.strategy_wrapper = None
        if distribution_strategy is not None:
            self.strategy_wrapper = StrategyWrapper(distribution_strategy)
            distribution_strategy = self.strategy_wrapper.strategy
        super().__init__(*args, distribution_strategy=distribution_strategy, **kwargs)

    def _try_build(self, hp):
        """Builds the model as KerasTuner does (in the strategy's scope), then synchronizes its batch norm.

        With several replicas, each replica's batch norm would otherwise keep
        its own statistics (PLAYBOOK.md 39). Used for training and for
        `load_model`/`get_best_models`, so checkpoints load into the same
        converted model.
        """
        model = super()._try_build(hp)
        if self.strategy_wrapper is not None and self.strategy_wrapper.num_replicas > 1:
            model = self.strategy_wrapper.prepare(model)  # converts inside the scope
        return model

    def search(self, *fit_args, **fit_kwargs):
        """Runs the search (as `keras_tuner.Tuner.search`) and remembers its arguments.

        `tuner.study().replicate()` re-trains with the same arguments.
        """
        self._search_arguments = (fit_args, dict(fit_kwargs))
        return super().search(*fit_args, **fit_kwargs)

    def _build_and_fit_model(self, trial, *args, **kwargs):
        log, steps = EpochLog(), StepLog()
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), log, steps]
        self._execution_logs.append(log)
        self._execution_steps.append(steps)
        self._execution_callbacks.extend(kwargs["callbacks"])
        return super()._build_and_fit_model(trial, *args, **kwargs)

    def _run_and_update_trial(self, trial, *fit_args, **fit_kwargs):
        self._execution_logs = []
        self._execution_steps = []
        self._execution_callbacks = []
        objective = self.oracle.objective
        error = None
        try:
            results = self.run_trial(trial, *fit_args, **fit_kwargs)
        except kt.errors.FatalError:
            raise
        except Exception as e:  # noqa: BLE001 - sorted into infeasible / real below
            reason = infeasibility.reason_for_exception(e)
            if reason is None:
                raise
            results, error = None, e
        else:
            reason = None
            if any(log.nonfinite for log in self._execution_logs):
                reason = infeasibility.NAN_LOSS
        if reason in (None, infeasibility.NAN_LOSS) and any(
            isinstance(cb, DivergenceMonitor) and cb.diverged for cb in self._execution_callbacks
        ):
            reason = infeasibility.DIVERGED
        write_steps(
            self.get_trial_dir(trial.trial_id),
            [steps.record for steps in self._execution_steps],
        )

        reports = [(epoch, logs) for log in self._execution_logs for epoch, logs in log.epochs]
        if not reports and results is not None:
            # A HyperModel.fit() that ignores callbacks: one report, as KerasTuner does.
            tuner_utils.validate_trial_results(results, objective, "Tuner.run_trial()")
            metrics = tuner_utils.convert_to_metrics_dict(results, objective)
            reports = [(tuner_utils.get_best_step(results, objective) or 0, metrics)]
        if reason is None and reports:
            logged = {name for _, logs in reports for name in logs}
            if objective.name not in logged:
                raise kt.errors.FatalValueError(
                    f"The objective {objective.name!r} is not among the logged "
                    f"metrics {sorted(logged)}; pass validation_data to search() "
                    "or choose a logged metric as the objective."
                )
            if not any(infeasibility.is_finite(logs.get(objective.name)) for _, logs in reports):
                reason = infeasibility.NAN_LOSS
        if not reports:
            reports = [(0, {})]
        for i, (step, logs) in enumerate(reports):
            metrics = {objective.name: float("nan"), **logs}
            if reason is not None and i == len(reports) - 1:
                metrics[infeasibility.marker(reason)] = 1.0
            self.oracle.update_trial(trial.trial_id, metrics, step=step)
        if reason is not None:
            raise kt.errors.FailedTrialError(f"Infeasible trial: {reason}") from error

    def on_search_begin(self):
        """Saves the tuner first, so a search killed during its first trial resumes."""
        super().on_search_begin()
        self.save()
        if not self._is_worker():
            self._write_notes()

    def _write_notes(self):
        """Records the goal and the command line of this search beside oracle.json."""
        from kplaybook.study import NOTES_FILE

        path = os.path.join(self.project_dir, NOTES_FILE)
        notes = {}
        if os.path.exists(path):
            try:
                with open(path) as f:
                    notes = json.load(f)
            except (OSError, ValueError):
                notes = {}
        argv = list(sys.argv)
        # From a notebook or `python -c` there is no script to re-run.
        scripted = bool(argv and argv[0] and os.path.exists(argv[0]) and "ipykernel" not in argv[0])
        notes.update(
            {
                "goal": self.goal if self.goal is not None else notes.get("goal"),
                "command": _command(argv) if scripted else None,
                "cwd": os.getcwd(),
                "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            }
        )
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(notes, f, indent=1)
        os.replace(tmp, path)

    def study(self):
        """The `kp.Study` this tuner has written so far (read back from its directory).

        Example:

        ```python
        tuner.search(x, y, validation_data=(xv, yv), epochs=5)
        print(tuner.study().best_per_scientific())
        ```
        """
        from kplaybook.study import Study

        if not self._is_worker():
            self.save()
        study = Study.load(self.project_dir)
        study._source_tuner = self  # replicate() reuses the hypermodel and search arguments
        return study


def _command(argv):
    """The command line that re-runs this process: ``python script.py ...`` or ``kplaybook ...``."""
    if argv[0].endswith(".py"):
        return shlex.join(["python", *argv])
    return shlex.join([os.path.basename(argv[0]), *argv[1:]])
