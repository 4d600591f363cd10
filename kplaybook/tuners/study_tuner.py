"""A KerasTuner `Tuner` that keeps full learning curves and records infeasible trials."""

import datetime
import os
import shlex
import sys
import threading
import time
import warnings

import keras
import keras_tuner as kt
from keras_tuner.src.distribute import utils as dist_utils

from kplaybook import roles
from kplaybook import validation
from kplaybook.distribute.strategy import StrategyWrapper
from kplaybook.errors import PlaybookWarning
from kplaybook.errors import StudyError
from kplaybook.oracles.base import HEARTBEAT_INTERVAL
from kplaybook.oracles.base import PlaybookOracle
from kplaybook.records import files
from kplaybook.records import layout
from kplaybook.records import markers
from kplaybook.records.notes import update_notes
from kplaybook.records.reader import StudyReader
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

    #: Seconds between a running trial's heartbeats in chief/worker mode.
    heartbeat_interval = HEARTBEAT_INTERVAL

    def __init__(self, *args, goal=None, distribution_strategy=None, **kwargs):
        if goal is not None and not isinstance(goal, str):
            raise TypeError(f"goal must be a str (the study's goal or notes), got {goal!r}.")
        if "executions_per_trial" in kwargs:
            kwargs["executions_per_trial"] = validation.positive_int(
                kwargs["executions_per_trial"], "executions_per_trial"
            )
        # Checked before KerasTuner sees them: a truthy "no" would delete the study.
        if "overwrite" in kwargs:
            kwargs["overwrite"] = validation.boolean(kwargs["overwrite"], "overwrite")
        for name in ("directory", "project_name"):
            if kwargs.get(name) is not None:
                kwargs[name] = validation.path(kwargs[name], name)
        self.goal = goal
        self._search_arguments = ((), {})
        self._recordings = None
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
        # KerasTuner has just cleared the session and collected: what
        # survived is frozen during a search (see
        # `runner.collections_of_new_objects_only`).
        runner.freeze_survivors()
        policy = getattr(self, "_dtype_policy", None)
        if policy is not None:
            keras.config.set_dtype_policy(policy)
        return super()._build_hypermodel(hp)

    def search(self, *fit_args, **fit_kwargs):
        """Runs the search (as `keras_tuner.Tuner.search`) and remembers its arguments.

        Before the first trial, the search space is completed as far as
        KerasTuner code allows (see `discover_space`), and `epochs` and the
        validation data are checked, so a mistake is an error before any
        training. `tuner.study().replicate()` re-trains with the same
        arguments.
        """
        for name in ("epochs", "batch_size"):
            if fit_kwargs.get(name) is not None:
                validation.positive_int(fit_kwargs[name], name)
        callbacks = fit_kwargs.get("callbacks")
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(
                f"callbacks must be a list of keras callbacks, got {type(callbacks).__name__}; "
                "pass callbacks=[...]."
            )
        _check_lengths(fit_args, fit_kwargs)
        self._check_validation_data(fit_kwargs)
        self._search_arguments = (fit_args, dict(fit_kwargs))
        if dist_utils.is_chief_oracle() and isinstance(self.oracle, PlaybookOracle):
            _start_reaper(self.oracle, self.heartbeat_interval)
        with runner.collections_of_new_objects_only():
            result = super().search(*fit_args, **fit_kwargs)
        self._refresh_index()
        return result

    def _refresh_index(self):
        """Brings the study's trial index up to date (`kplaybook.records.index`).

        The first `kp.Study.load` after the search then decodes no
        ``trial.json``; only trials that changed are decoded here. A study
        that cannot be read is left for that load to report.
        """
        if dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle():
            return  # a worker: the chief's search keeps the study
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                StudyReader.load(self.project_dir)
            except Exception:  # noqa: BLE001 - only a cache: the user's own load reports it
                pass

    def _check_validation_data(self, fit_kwargs):
        """A validation objective without validation data is an error before any training."""
        objective = self.oracle.objective.name
        if not objective.startswith("val_") or self._custom_training():
            return
        if fit_kwargs.get("validation_data") is None and not fit_kwargs.get("validation_split"):
            raise ValueError(
                f"The objective {objective!r} is measured on validation data, but search() got "
                "none; pass validation_data=(x_val, y_val) or validation_split= to search()."
            )

    def _custom_training(self):
        """True when user code, not `model.fit`, trains (a `run_trial` or `HyperModel.fit` override)."""
        hypermodel_fit = getattr(type(self.hypermodel), "fit", kt.HyperModel.fit)
        return (
            type(self).run_trial is not kt.Tuner.run_trial
            or hypermodel_fit is not kt.HyperModel.fit
        )

    def _populate_initial_space(self):
        """KerasTuner's discovery (every conditional scope), then one build per discrete value.

        The KerasTuner idiom ``for i in range(hp.Int("num_layers", 1, 3)):
        hp.Int(f"units_{i}", ...)`` declares ``units_1`` and ``units_2`` only
        in a build with 2 or 3 layers: building once with each discrete
        value (within `DISCOVERY_BUILDS` builds and `DISCOVERY_SECONDS`)
        finds them before the first trial, so they join the quasi-random
        design from its first point. Names no build reveals still join it
        later, in a spare dimension.
        """
        super()._populate_initial_space()
        if self.hypermodel is None:
            return
        start = time.monotonic()
        builds = 0
        explored = set()
        while builds < DISCOVERY_BUILDS and time.monotonic() - start < DISCOVERY_SECONDS:
            candidates = [
                (hp.name, value)
                for hp in self.oracle.get_space().space
                if not hp.conditions
                for value in _discrete_values(hp)
                if (hp.name, repr(value)) not in explored
            ]
            if not candidates:
                break
            name, value = candidates[0]
            explored.add((name, repr(value)))
            hp = self.oracle.get_space()
            hp.values[name] = value
            try:
                self.hypermodel.build(hp)
            except Exception:  # noqa: BLE001 - an invalid combination: the search meets it too
                continue
            finally:
                builds += 1
            self.oracle.update_space(hp)

    def discover_space(self, *fit_args, **fit_kwargs):
        """Completes the search space with what `HyperModel.fit` declares, before any training.

        `HyperModel.fit` runs once with a freshly built model that stops at
        its first step of work (`fit`, `evaluate`, `predict`, the
        `*_on_batch` methods, or a forward pass in a custom training loop):
        every hyperparameter `fit` declares before training
        (``batch_size``, ``shuffle``, a preprocessing switch) is then known,
        so it can be scientific, fixed or a nuisance dimension of the
        quasi-random design from the first trial, and a role mistake (batch
        size left nuisance, a scientific name no code declares) is an error
        before anything trains. A `run_trial` override is not run (it may
        train): names it declares join the design when they appear.

        Called by `search`; calling it again is harmless.
        """
        if self.hypermodel is None:
            return
        hp = self.oracle.get_space()
        complete = type(self).run_trial is kt.Tuner.run_trial
        if complete:
            model = self._try_build(hp)
            # Whatever trains first stops it: model.fit, or the first forward
            # pass of a custom training loop.
            for name in _TRAINING_ENTRY_POINTS:
                object.__setattr__(model, name, _stop_before_training)
            try:
                self.hypermodel.fit(hp, model, *fit_args, **fit_kwargs)
            except _Discovered:
                pass
            except Exception:  # noqa: BLE001 - fit failed before training: the first trial reports it
                complete = False
            finally:
                del model
                runner.fresh_session()
        self.oracle.update_space(hp)
        missing = roles.undeclared(hp, *self._roles()) if complete else []
        if missing:
            raise roles.undeclared_error(missing, [h.name for h in hp.space])
        if complete and not self._is_worker():
            self.oracle.declarations_checked = True

    def _roles(self):
        """(scientific, fixed) of this study ({} and {} without roles)."""
        oracle = self.oracle
        return getattr(oracle, "scientific", {}), getattr(oracle, "fixed", {})

    def _build_and_fit_model(self, trial, *args, **kwargs):
        recording = runner.Recording()
        kwargs["callbacks"] = recording.callbacks(kwargs.get("callbacks", []))
        if self._recordings is not None:  # None when run_trial is called directly
            self._recordings.append(recording)
        return super()._build_and_fit_model(trial, *args, **kwargs)

    def _run_and_update_trial(self, trial, *fit_args, **fit_kwargs):
        self._recordings = []
        objective = self.oracle.objective
        results = error = None
        try:
            with _Heartbeat(self, trial.trial_id):
                results = self.run_trial(trial, *fit_args, **fit_kwargs)
        except kt.errors.FatalError:
            raise
        except Exception as e:  # noqa: BLE001 - sorted into infeasible / real below
            if runner.reason_for_exception(e) is None:
                raise
            error = e
        finally:
            recordings, self._recordings = self._recordings, None
        if (
            error is None
            and not any(r.epochs for r in recordings)
            and results is None
            and self.oracle.get_trial(trial.trial_id).metrics.exists(objective.name)
        ):
            # KerasTuner's older idiom: run_trial reported through
            # self.oracle.update_trial and returned nothing; scored from that.
            return
        self._recordings = recordings
        write_steps(
            os.path.join(self.get_trial_dir(trial.trial_id), layout.STEPS_FILE),
            [recording.steps for recording in recordings],
        )
        outcome = runner.judge(
            recordings,
            objective.name,
            objective.direction,
            results,
            error,
            source="run_trial()"
            if type(self).run_trial is not kt.Tuner.run_trial
            else "HyperModel.fit()",
        )
        self._recordings = None
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
                # What fit returned is recorded as KerasTuner records it, at
                # the last step, for the metrics the epochs did not log.
                for metric, value in (outcome.returned or {}).items():
                    if metric not in logs:
                        metrics[metric] = float(value)
                if outcome.reason is not None:
                    metrics[markers.marker(outcome.reason)] = 1.0
                else:
                    metrics[markers.SCORE] = outcome.score
                    metrics[markers.BEST_STEP] = float(outcome.best_step)
            self.oracle.update_trial(trial.trial_id, metrics, step=step)

    def on_search_begin(self):
        """Completes the space (`discover_space`), then saves, so a search killed in its first trial resumes."""
        super().on_search_begin()
        fit_args, fit_kwargs = self._search_arguments
        self.discover_space(*fit_args, **fit_kwargs)
        self.save()
        if not self._is_worker():
            self._write_notes()
        else:
            _pause_when_idle(self.oracle, self.heartbeat_interval)

    def save(self):
        """Saves the oracle and this tuner's state, each file atomically."""
        if not self._is_worker():
            self.oracle.save()
        files.write_json(self._get_tuner_fname(), self.get_state())

    def reload(self):
        """Reloads the oracle (reconciling its records) and this tuner's state.

        KerasTuner's tuner state is empty; a damaged ``tuner0.json`` is
        rewritten rather than failing the resume.
        """
        if not self._is_worker():
            self.oracle.reload()
        try:
            self.set_state(files.read_json(self._get_tuner_fname(), "it is rewritten"))
        except StudyError as e:
            warnings.warn(f"{e} It is written again.", PlaybookWarning, stacklevel=2)
            files.write_json(self._get_tuner_fname(), self.get_state())

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


def _check_lengths(fit_args, fit_kwargs):
    """x and y of different lengths are refused before any trial (Keras would fail every one)."""
    x = fit_args[0] if fit_args else fit_kwargs.get("x")
    y = fit_args[1] if len(fit_args) > 1 else fit_kwargs.get("y")
    lengths = []
    for value in (x, y):
        shape = getattr(value, "shape", None)
        lengths.append(shape[0] if shape else None)
    if None not in lengths and lengths[0] != lengths[1]:
        raise ValueError(
            f"x has {lengths[0]} examples but y has {lengths[1]}; pass x and y of equal length."
        )


#: Limits of the extra builds `_populate_initial_space` makes to find names
#: that only some discrete values declare (a build of a small model takes
#: milliseconds; a big one, seconds).
DISCOVERY_BUILDS = 32
DISCOVERY_SECONDS = 10.0


def _discrete_values(hp):
    """The values worth one discovery build each: a Choice's or Boolean's values, an Int's maximum."""
    if isinstance(hp, (kt.engine.hyperparameters.Choice,)):
        return list(hp.values)
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return [False, True]
    if isinstance(hp, kt.engine.hyperparameters.Int):
        return [hp.max_value]
    return []


#: The model methods `discover_space` stops at: anything that would train or evaluate.
_TRAINING_ENTRY_POINTS = (
    "fit",
    "evaluate",
    "predict",
    "train_on_batch",
    "test_on_batch",
    "predict_on_batch",
    "call",
)


class _Discovered(Exception):
    """Raised by the model's `fit` during `discover_space`: declarations are done, nothing trains."""


def _stop_before_training(*args, **kwargs):
    raise _Discovered()


class _Heartbeat:
    """While a trial runs in chief/worker mode, tells the chief every few seconds that the worker lives.

    The chief hands a trial whose worker fell silent to another worker
    (`PlaybookOracle.reap_abandoned_trials`). Outside chief/worker mode it
    does nothing.
    """

    def __init__(self, tuner, trial_id):
        self.tuner = tuner
        self.trial_id = trial_id
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle():
            self._beat()  # at once: the chief learns that this worker sends heartbeats
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _beat(self):
        try:
            self.tuner.oracle.update_trial(self.trial_id, {markers.HEARTBEAT: 1.0}, step=0)
        except Exception:  # noqa: BLE001 - a missed heartbeat is not a trial failure
            pass

    def _run(self):
        while not self._stop.wait(self.tuner.heartbeat_interval):
            self._beat()

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return False


def _pause_when_idle(oracle_client, interval):
    """On a worker: wait a moment after an IDLE answer (KerasTuner asks again at once, a busy loop)."""
    create_trial = oracle_client.create_trial

    def create_trial_or_wait(tuner_id):
        trial = create_trial(tuner_id)
        if trial.status == kt.engine.trial.TrialStatus.IDLE:
            time.sleep(min(1.0, interval))
        return trial

    oracle_client.create_trial = create_trial_or_wait


def _start_reaper(oracle, interval):
    """On the chief: a daemon thread handing abandoned trials back to the retry queue."""

    def reap():
        while True:
            time.sleep(interval)
            oracle.reap_abandoned_trials()

    threading.Thread(target=reap, daemon=True, name="kplaybook-reaper").start()


def _command(argv):
    """The command line that re-runs this process: ``python script.py ...`` or ``kplaybook ...``."""
    if argv[0].endswith(".py"):
        return shlex.join(["python", *argv])
    return shlex.join([os.path.basename(argv[0]), *argv[1:]])
