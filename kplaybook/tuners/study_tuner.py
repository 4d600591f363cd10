"""A KerasTuner `Tuner` that keeps full learning curves and records infeasible trials."""

import datetime
import os
import shlex
import sys

import keras
import keras_tuner as kt

from kplaybook.distribute.strategy import StrategyWrapper
from kplaybook.records import layout
from kplaybook.records import markers
from kplaybook.records.notes import update_notes
from kplaybook.records.steps import write_steps
from kplaybook.study import Study
from kplaybook.training import runner


class StudyTuner(kt.Tuner):
    """Base tuner of kplaybook: every epoch recorded, infeasible trials recorded, not fatal.

    Compared with `keras_tuner.Tuner`:

    - every epoch's metrics (train and validation) of every execution are
      reported to the oracle at `step=epoch`, so the trial keeps its whole
      learning curve (each execution's values too); it is scored as
      KerasTuner scores it (what `HyperModel.fit` returned, or each
      execution's best epoch averaged over executions);
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
            study's report and spreadsheet row (the playbook's "Setting up
            experiment tracking").
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
        # strategy, and the seed replicates re-use `distribution_strategy`,
        # so both get the tf strategy; the wrapper is kept for `_try_build`.
        self.strategy_wrapper = None
        if distribution_strategy is not None:
            self.strategy_wrapper = StrategyWrapper(distribution_strategy)
            distribution_strategy = self.strategy_wrapper.strategy
        super().__init__(*args, distribution_strategy=distribution_strategy, **kwargs)

    def _try_build(self, hp):
        """Builds the model as KerasTuner does (in the strategy's scope), then synchronizes its batch norm.

        With several replicas, each replica's batch norm would otherwise keep
        its own statistics (see "Batch normalization implementation details",
        https://github.com/google-research/tuning_playbook#batch-normalization-implementation-details).
        Used for training and for `load_model`/`get_best_models`, so
        checkpoints load into the same converted model.
        """
        # KerasTuner clears the session first, which resets the dtype policy
        # to float32; `_build_hypermodel` puts the user's back before building.
        self._dtype_policy = keras.config.dtype_policy()
        model = super()._try_build(hp)
        if self.strategy_wrapper is not None and self.strategy_wrapper.num_replicas > 1:
            model = self.strategy_wrapper.prepare(model)  # converts inside the scope
        return model

    def _build_hypermodel(self, hp):
        policy = getattr(self, "_dtype_policy", None)
        if policy is not None:
            keras.config.set_dtype_policy(policy)
        return super()._build_hypermodel(hp)

    def search(self, *fit_args, **fit_kwargs):
        """Runs the search (as `keras_tuner.Tuner.search`) and remembers its arguments.

        `tuner.study().replicate()` re-trains with the same arguments.
        """
        self._search_arguments = (fit_args, dict(fit_kwargs))
        return super().search(*fit_args, **fit_kwargs)

    def _build_and_fit_model(self, trial, *args, **kwargs):
        recording = runner.Recording()
        kwargs["callbacks"] = recording.callbacks(kwargs.get("callbacks", []))
        self._recordings.append(recording)
        return super()._build_and_fit_model(trial, *args, **kwargs)

    def _run_and_update_trial(self, trial, *fit_args, **fit_kwargs):
        self._recordings = []
        objective = self.oracle.objective
        results = error = None
        try:
            results = self.run_trial(trial, *fit_args, **fit_kwargs)
        except kt.errors.FatalError:
            raise
        except Exception as e:  # noqa: BLE001 - sorted into infeasible / real below
            if runner.reason_for_exception(e) is None:
                raise
            error = e
        write_steps(
            os.path.join(self.get_trial_dir(trial.trial_id), layout.STEPS_FILE),
            [recording.steps for recording in self._recordings],
        )
        outcome = runner.judge(
            self._recordings,
            objective.name,
            objective.direction,
            results,
            error,
            source="HyperModel.fit()",
        )
        self._report(trial, outcome)
        if outcome.reason is not None:
            raise kt.errors.FailedTrialError(f"Infeasible trial: {outcome.reason}") from error

    def _report(self, trial, outcome):
        """Sends the outcome to the oracle: every epoch; with the last, the infeasibility or the score."""
        name = self.oracle.objective.name
        # A training that logged no epoch reports what it returned, once, as
        # KerasTuner does.
        reports = outcome.reports or [(outcome.best_step or 0, dict(outcome.returned or {}))]
        for i, (step, logs) in enumerate(reports):
            # The objective first (NaN where an epoch did not log it): every
            # report must hold it (KerasTuner's Oracle.update_trial checks).
            metrics = {name: float("nan"), **logs}
            if i == len(reports) - 1:
                if outcome.reason is not None:
                    metrics[markers.marker(outcome.reason)] = 1.0
                else:
                    metrics[markers.SCORE] = outcome.score
                    metrics[markers.BEST_STEP] = float(outcome.best_step)
            self.oracle.update_trial(trial.trial_id, metrics, step=step)

    def on_search_begin(self):
        """Saves the tuner first, so a search killed during its first trial resumes."""
        super().on_search_begin()
        self.save()
        if not self._is_worker():
            self._write_notes()

    def _write_notes(self):
        """Records the goal and the command line of this search beside oracle.json."""
        path = os.path.join(self.project_dir, layout.NOTES_FILE)
        argv = list(sys.argv)
        # From a notebook or `python -c` there is no script to re-run.
        scripted = bool(argv and argv[0] and os.path.exists(argv[0]) and "ipykernel" not in argv[0])
        values = {
            "command": _command(argv) if scripted else None,
            "cwd": os.getcwd(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        if self.goal is not None:
            values["goal"] = self.goal
        update_notes(path, **values)

    def study(self):
        """The `kp.Study` this tuner has written so far (read back from its directory).

        `replicate()` on it reuses this tuner's hypermodel, distribution
        strategy and search arguments.

        Example:

        ```python
        tuner.search(x, y, validation_data=(xv, yv), epochs=5)
        print(tuner.study().best_per_scientific())
        ```
        """
        if not self._is_worker():
            self.save()
        study = Study.load(self.project_dir)
        fit_args, fit_kwargs = self._search_arguments
        study.use_training(
            self.hypermodel, fit_args, fit_kwargs, distribution_strategy=self.distribution_strategy
        )
        return study


def _command(argv):
    """The command line that re-runs this process: ``python script.py ...`` or ``kplaybook ...``."""
    if argv[0].endswith(".py"):
        return shlex.join(["python", *argv])
    return shlex.join([os.path.basename(argv[0]), *argv[1:]])
