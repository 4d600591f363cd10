"""What every kplaybook oracle shares.

A real seed; infeasible-aware failure counting; the study's settings in
oracle.json; and crash safety: every file written atomically, a study whose
records a kill left inconsistent reconciled on resume, and in chief/worker
mode a trial whose worker went silent handed to another worker.
"""

import json
import os
import random
import shutil
import time
import warnings

import keras_tuner as kt
from keras_tuner.engine import hyperparameters as hp_module
from keras_tuner.engine import trial as trial_module
from keras_tuner.src.engine import objective as obj_module

from kplaybook import validation
from kplaybook.errors import PlaybookWarning
from kplaybook.errors import StudyError
from kplaybook.oracles import bayesian
from kplaybook.records import files
from kplaybook.records import markers
from kplaybook.records.files import plain
from kplaybook.records.layout import STATE_KEY
from kplaybook.records.layout import StudyLayout

#: In chief/worker mode, a worker's trial counts as abandoned (the worker was
#: killed) when the worker sent no sign of life for this many seconds; it is
#: then handed to another worker. kplaybook's tuners send one every
#: `HEARTBEAT_INTERVAL` seconds while a trial runs.
DEFAULT_HEARTBEAT_TIMEOUT = 120.0
HEARTBEAT_INTERVAL = 10.0

_ENDED = (trial_module.TrialStatus.COMPLETED, trial_module.TrialStatus.FAILED)


def resolve_seed(seed):
    """`seed` as an int; None draws one. Unlike KerasTuner's `seed or random`, 0 stays 0."""
    if seed is None:
        return random.randint(1, 2**31 - 1)
    return validation.non_negative_int(seed, "seed")


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

    def __init__(
        self,
        objective=None,
        max_trials=None,
        seed=None,
        heartbeat_timeout=DEFAULT_HEARTBEAT_TIMEOUT,
        **kwargs,
    ):
        self._explicit_seed = seed is not None
        seed = resolve_seed(seed)
        if max_trials is not None:
            max_trials = validation.positive_int(max_trials, "max_trials")
        hyperparameters = kwargs.get("hyperparameters")
        if hyperparameters is not None and not isinstance(hyperparameters, kt.HyperParameters):
            raise TypeError(
                "hyperparameters must be a keras_tuner.HyperParameters (declare the space with "
                f"hp = kt.HyperParameters(); hp.Int(...)), got {type(hyperparameters).__name__}."
            )
        for name, minimum in (("max_retries_per_trial", 0), ("max_consecutive_failed_trials", 1)):
            if name in kwargs:
                kwargs[name] = validation.integer(kwargs[name], name, minimum=minimum)
        for name in ("tune_new_entries", "allow_new_entries"):
            if name in kwargs:
                kwargs[name] = validation.boolean(kwargs[name], name)
        if isinstance(objective, (list, tuple)) and len(objective) > 1:
            raise ValueError(
                f"objective lists {len(objective)} metrics, but a kplaybook study compares "
                "trials on one; pass the one to compare on (e.g. objective='val_loss'): the "
                "others are recorded in every trial's curves anyway."
            )
        if isinstance(objective, (list, tuple)):
            objective = objective[0] if objective else None
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        if isinstance(self.objective, obj_module.MultiObjective):
            raise ValueError(
                "objective is a multi-objective, but a kplaybook study compares trials on one; "
                "pass the one to compare on (e.g. objective='val_loss')."
            )
        self.seed = seed
        self._seed_state = seed
        self.heartbeat_timeout = (
            None
            if heartbeat_timeout is None
            else validation.positive_number(heartbeat_timeout, "heartbeat_timeout")
        )
        # Every trial's values, saved with the oracle: a trial whose own file a
        # kill or a full disk destroyed can be run again under its own id.
        self._trial_values = {}
        self._last_seen = {}  # trial id -> time.monotonic() of its worker's last sign of life
        self._heartbeat_tuners = set()  # tuners that send heartbeats (kplaybook's)

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
            "values": self._trial_values,
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
        self._trial_values = dict(state[STATE_KEY].get("values", {}))

    # -- files ----------------------------------------------------------------

    def save(self):
        """Writes oracle.json atomically (KerasTuner truncates, then writes)."""
        files.write_json(self._get_oracle_fname(), self.get_state(), allow_nan=True)

    def _save_trial(self, trial):
        """Writes the trial's trial.json atomically, in KerasTuner's format."""
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        files.write_json(path, trial.get_state(), allow_nan=True)

    def _record_values(self, trial):
        super()._record_values(trial)
        self._trial_values[trial.trial_id] = {
            name: plain(value) for name, value in trial.hyperparameters.values.items()
        }

    def reload(self):
        """KerasTuner's reload, with the study's records reconciled first.

        A kill, a full disk or a user deleting files can leave the records
        disagreeing; every such case is repaired here, said in a
        `PlaybookWarning` naming the file, and saved:

        - a trial file that is missing, empty or torn, of a trial oracle.json
          knows: its trial is rebuilt from the values oracle.json keeps and
          run again under its own id (the damaged file is kept beside it as
          ``trial.json.damaged``); nothing else is touched;
        - a trial on disk that oracle.json never acknowledged (a kill between
          writing a new trial's file and oracle.json, before any training):
          dropped, so its slot is created again, once;
        - a trial that ended (its own file says so, written first) but is
          still listed as running: not run again;
        - a trial not ended, neither running nor queued (a stale record):
          queued to run again.

        Raises:
            StudyError: oracle.json itself is damaged (the message says what to do).
        """
        layout = StudyLayout(self._project_dir)
        state = files.read_json(
            layout.oracle_file,
            "restore it from a backup, or start the study over with overwrite=True "
            "(its trial folders cannot be resumed without it)",
        )
        self.trials = {}
        damaged = {}
        for trial_id, folder in layout.trial_dirs().items():
            path = os.path.join(folder, "trial.json")
            if not os.path.exists(path):
                damaged[trial_id] = (path, "missing")
                continue
            try:
                trial = trial_module.Trial.from_state(files.read_json(path, "it is rebuilt"))
            except (StudyError, KeyError, TypeError, ValueError, AttributeError):
                damaged[trial_id] = (path, "damaged")
                continue
            self.trials[trial.trial_id] = trial
        acknowledged = list(state.get("start_order", []))
        known = set(acknowledged)
        repairs = []
        for trial_id, trial in list(self.trials.items()):
            if trial_id not in known and trial.status not in _ENDED:
                del self.trials[trial_id]
                shutil.rmtree(layout.trial_dir(trial_id), ignore_errors=True)
                repairs.append(
                    f"trial {trial_id} was created but never acknowledged in oracle.json "
                    "(the search was killed in between): it is created again"
                )
        saved_values = state.get(STATE_KEY, {}).get("values", {})
        rebuilt = []
        for trial_id in acknowledged:
            if trial_id in self.trials:
                continue
            path, why = damaged.get(trial_id, (layout.trial_file(trial_id), "missing"))
            if trial_id not in saved_values:
                raise StudyError(
                    f"{path} is {why} and {layout.oracle_file} does not keep that trial's "
                    "hyperparameters (a study written by kplaybook 0.1); restore the file, "
                    "or start the study over with overwrite=True."
                )
            hyperparameters = hp_module.HyperParameters.from_config(state["hyperparameters"])
            hyperparameters.values = dict(saved_values[trial_id])
            self.trials[trial_id] = trial_module.Trial(
                hyperparameters, trial_id=trial_id, status=trial_module.TrialStatus.RUNNING
            )
            if os.path.exists(path):
                os.replace(path, path + ".damaged")
            rebuilt.append(trial_id)
            repairs.append(f"{path} was {why}: trial {trial_id} runs again under its own id")
        self.set_state(state)
        # KerasTuner: trials that were running when the search stopped run again.
        for trial in self.ongoing_trials.values():
            self._retry_queue.append(trial.trial_id)
        self.ongoing_trials = {}
        for trial_id in rebuilt:
            if trial_id in self.end_order:
                self.end_order.remove(trial_id)
            self._run_times[trial_id] = 0
        queued = set(self._retry_queue)
        for trial_id in acknowledged:
            trial = self.trials[trial_id]
            if trial.status in _ENDED:
                if trial_id not in self.end_order:
                    self.end_order.append(trial_id)
            elif trial_id not in queued:
                self._retry_queue.append(trial_id)
                queued.add(trial_id)
        # A trial whose own file says it ended is not run again.
        self._retry_queue = [t for t in self._retry_queue if self.trials[t].status not in _ENDED]
        for trial_id in rebuilt:
            self._save_trial(self.trials[trial_id])
        for repair in repairs:
            warnings.warn(f"Resuming {self._project_dir}: {repair}.", PlaybookWarning, stacklevel=2)
        if repairs:
            self.save()

    # -- Bayesian search -------------------------------------------------------

    def bayesian_values(self, space, overrides, trial_ids, warm, seed):
        """The next point of the feasibility-aware Bayesian search (`kplaybook.oracles.bayesian`).

        Args:
            space: the `HyperParameters` to search.
            overrides: dict name -> value held at the given value (a scientific value).
            trial_ids: this search's own trials (finished ones are data,
                running ones count as pending).
            warm: `WarmRecord`s of earlier studies (only those matching
                `overrides` are used).
            seed: int, the proposal's seed.

        Returns:
            dict of values.
        """
        coder = bayesian.SpaceCoder(space, overrides)
        observations = bayesian.Observations(coder)
        for record in warm:
            if all(record.values.get(name) == value for name, value in overrides.items()):
                observations.add(record.values, record.status, record.loss)
        s = 1.0 if self.objective.direction == "min" else -1.0
        running = {trial.trial_id for trial in self.ongoing_trials.values()}
        for trial_id in trial_ids:
            trial = self.trials[trial_id]
            values = trial.hyperparameters.values
            if trial_id in running:
                observations.add(values, "running")
            elif trial.status == trial_module.TrialStatus.COMPLETED and trial.score is not None:
                observations.add(values, "completed", s * float(trial.score))
            elif markers.reason_in(trial.metrics.metrics) is not None:
                observations.add(values, "infeasible")
        values, _ = observations.propose(seed)
        return values

    # -- chief/worker: abandoned trials -----------------------------------------

    @kt.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        """KerasTuner's `update_trial`; a heartbeat (`markers.HEARTBEAT`) only records a sign of life."""
        self._last_seen[trial_id] = time.monotonic()
        if markers.HEARTBEAT in metrics:
            for tuner_id, trial in self.ongoing_trials.items():
                if trial.trial_id == trial_id:
                    self._heartbeat_tuners.add(tuner_id)
            return self.trials[trial_id]
        return super().update_trial(trial_id, metrics, step)

    @kt.synchronized
    def create_trial(self, tuner_id):
        """KerasTuner's `create_trial`, after handing abandoned trials to the retry queue.

        When no trial is left but another heartbeat-sending worker is still
        running one, the worker asking waits (IDLE) instead of stopping: if
        that trial is abandoned, it is there to take it over.
        """
        self.reap_abandoned_trials()
        trial = super().create_trial(tuner_id)
        if trial.status == trial_module.TrialStatus.RUNNING:
            self._last_seen[trial.trial_id] = time.monotonic()
        elif trial.status == trial_module.TrialStatus.STOPPED and any(
            other != tuner_id and other in self._heartbeat_tuners for other in self.ongoing_trials
        ):
            self.tuner_ids.add(tuner_id)  # KerasTuner forgot it when it stopped it
            trial = trial_module.Trial(self.get_space(), status=trial_module.TrialStatus.IDLE)
        return trial

    @kt.synchronized
    def reap_abandoned_trials(self):
        """Queues again the trials whose worker sent no heartbeat for `heartbeat_timeout` seconds.

        Only workers that send heartbeats (kplaybook's tuners, in chief/worker
        mode) are judged. The silent worker is also forgotten, so the chief
        can exit once the others are done. Returns the ids queued again.
        """
        if self.heartbeat_timeout is None:
            return []
        now = time.monotonic()
        abandoned = [
            (tuner_id, trial)
            for tuner_id, trial in self.ongoing_trials.items()
            if tuner_id in self._heartbeat_tuners
            and now - self._last_seen.get(trial.trial_id, now) > self.heartbeat_timeout
        ]
        for tuner_id, trial in abandoned:
            del self.ongoing_trials[tuner_id]
            self.tuner_ids.discard(tuner_id)
            self._heartbeat_tuners.discard(tuner_id)
            self._retry_queue.append(trial.trial_id)
            warnings.warn(
                f"Worker {tuner_id} sent no heartbeat for more than "
                f"{self.heartbeat_timeout:g} s; its trial {trial.trial_id} is handed to "
                "another worker.",
                PlaybookWarning,
                stacklevel=2,
            )
        if abandoned:
            self.save()
        return [trial.trial_id for _, trial in abandoned]

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
        # failures nor successes: they are skipped.
        self._stop_on_failure_streak(self.end_order, "")

    def _stop_on_failure_streak(self, trial_ids, where):
        """Ends the search when the last `max_consecutive_failed_trials` of `trial_ids` failed.

        The check runs after every ended trial, so only the streak ending now
        matters: it walks back from the newest trial.
        """
        failures = 0
        newest_failure = None
        for trial_id in reversed(trial_ids):
            trial = self.trials[trial_id]
            if trial.status != trial_module.TrialStatus.FAILED:
                break
            if markers.reason_in(trial.metrics.metrics) is not None:
                continue
            failures += 1
            newest_failure = newest_failure or trial
        if failures >= self.max_consecutive_failed_trials:
            # KerasTuner raises before writing this trial's record; write
            # it, so the study on disk says the trial failed.
            self._save_trial(self.trials[self.end_order[-1]])
            raise RuntimeError(
                "Number of consecutive failures exceeded the limit "
                f"of {self.max_consecutive_failed_trials}{where}.\n"
                + (newest_failure.message or "")
            )


def _normalise(config):
    """JSON round trip, so tuples and lists (and saved and live configs) compare equal."""
    return json.loads(json.dumps(config))
