"""A small `kp.PlaybookTuner` search, run as a real process by the slow tests.

Usage::

    python playbook_search.py DIRECTORY PROJECT LOG_DIR [--trials-per-study N] [--epochs N]

It tunes a tiny MLP on scikit-learn's digits with scientific
``{"num_layers": [1, 2]}`` and two nuisance hyperparameters (``units`` and
Adam's ``learning_rate``), seed 0, ``overwrite=False`` (so running it again
resumes the study). Each process appends JSON lines to
``LOG_DIR/<tuner id>-<pid>.jsonl``: one ``begin`` line when a trial starts and
one ``end`` line (with the trial's status) when it ends.

Environment variables (all optional):

- ``KILL_AT_TRIAL`` and ``KILL_MARKER``: when the trial with that id finishes
  its first epoch, write the marker file and sleep, so that the parent test
  can SIGKILL the process while the trial is RUNNING.
- ``STALL_TUNER`` and ``KILL_MARKER``: the tuner with that id stalls the same
  way at the end of its first trial's first epoch (the parent kills it: a
  worker dying mid-trial).
- ``BARRIER_TUNERS`` (comma-separated tuner ids) and ``BARRIER_DIR``: the
  first trial of each tuner waits (up to 120 s) until every listed tuner has
  begun a trial, so that all workers of a distributed search take part.
- ``KILL_AFTER_WRITE=<path>[:<n>]``: SIGKILL this process right after the
  n-th (default first) atomic write of ``<path>`` (relative to the study
  directory, e.g. ``trial_2/trial.json``) is complete, before anything else
  is written: a kill at an exact write point of the study.
- ``KILL_IN_WRITE=<path>[:<n>]``: SIGKILL it in the middle of that write,
  after the new content is in the temporary file and before it replaces the
  old one.
- ``HEARTBEAT_TIMEOUT`` / ``HEARTBEAT_INTERVAL`` (seconds): the chief's
  timeout for a silent worker and the workers' heartbeat interval.
- ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``, ``KERASTUNER_TUNER_ID``:
  KerasTuner's chief/worker mode, unchanged.
"""

import argparse
import json
import os
import signal
import time

import keras

import kplaybook as kp
from kplaybook import datasets
from kplaybook.records import files

SCIENTIFIC = {"num_layers": [1, 2]}
SEED = 0
TRAIN_EXAMPLES = 600
VAL_EXAMPLES = 200
BARRIER_TIMEOUT = 120.0

# Set by `ProbedTuner.on_trial_begin`; read by `Probe` (same process).
_current = {"trial_id": None, "barrier_done": False}


def tuner_id():
    return os.environ.get("KERASTUNER_TUNER_ID", "tuner0")


def make_build(trials_per_study):
    def build(hp):
        model = keras.Sequential([keras.Input((64,))])
        units = hp.Int("units", 8, 32, step=8)
        for _ in range(hp.Int("num_layers", 1, 2)):
            model.add(keras.layers.Dense(units, activation="relu"))
        model.add(keras.layers.Dense(10, activation="softmax"))
        model.compile(
            optimizer=kp.spaces.adam(hp, budget=trials_per_study),
            loss="sparse_categorical_crossentropy",
        )
        return model

    return build


class ProbedTuner(kp.PlaybookTuner):
    """`kp.PlaybookTuner` that only logs trial starts and ends (behaviour unchanged)."""

    log_dir = None

    def _log(self, event, trial, **extra):
        if self.log_dir is None:
            return
        record = {
            "event": event,
            "tuner_id": tuner_id(),
            "pid": os.getpid(),
            "time": time.time(),
            "trial_id": trial.trial_id,
            "values": trial.hyperparameters.values,
            **extra,
        }
        path = os.path.join(self.log_dir, f"{tuner_id()}-{os.getpid()}.jsonl")
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        _current["trial_id"] = trial.trial_id
        self._log("begin", trial)

    def on_trial_end(self, trial):
        self._log("end", trial, status=trial.status)
        super().on_trial_end(trial)


class Probe(keras.callbacks.Callback):
    """Passed to `search(callbacks=...)`: the barrier and the mid-trial stall."""

    def on_train_begin(self, logs=None):
        names = [n for n in os.environ.get("BARRIER_TUNERS", "").split(",") if n]
        if not names or _current["barrier_done"]:
            return
        _current["barrier_done"] = True
        barrier_dir = os.environ["BARRIER_DIR"]
        os.makedirs(barrier_dir, exist_ok=True)
        open(os.path.join(barrier_dir, tuner_id()), "w").close()
        deadline = time.monotonic() + BARRIER_TIMEOUT
        while time.monotonic() < deadline:
            if all(os.path.exists(os.path.join(barrier_dir, n)) for n in names):
                return
            time.sleep(0.2)

    def on_epoch_end(self, epoch, logs=None):
        kill_at = os.environ.get("KILL_AT_TRIAL")
        stall = os.environ.get("STALL_TUNER") == tuner_id()
        if (kill_at is None and not stall) or epoch != 0 or _current["trial_id"] is None:
            return
        if not stall and int(_current["trial_id"]) != int(kill_at):
            return
        marker = os.environ["KILL_MARKER"]
        with open(marker + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {_current['trial_id']}\n")
        os.replace(marker + ".tmp", marker)  # the parent sees it whole
        time.sleep(3600)  # the parent kills us here, mid-trial


def install_kill_points(study_dir):
    """Fault injection at the study's write points (``KILL_AFTER_WRITE``, ``KILL_IN_WRITE``)."""
    points = {}
    for variable in ("KILL_AFTER_WRITE", "KILL_IN_WRITE"):
        if os.environ.get(variable):
            path, _, count = os.environ[variable].partition(":")
            points[variable] = (os.path.join(study_dir, path), int(count or 1))
    if not points:
        return
    written = {}
    original_replace = os.replace
    original_write = files.write_text

    def replace(src, dst, *args, **kwargs):
        target = points.get("KILL_IN_WRITE")
        if target and os.path.abspath(dst) == os.path.abspath(target[0]):
            written[dst] = written.get(dst, 0) + 1
            if written[dst] == target[1]:
                os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is written, not renamed
        return original_replace(src, dst, *args, **kwargs)

    def write_text(path, text):
        result = original_write(path, text)
        target = points.get("KILL_AFTER_WRITE")
        if target and os.path.abspath(path) == os.path.abspath(target[0]):
            key = ("after", path)
            written[key] = written.get(key, 0) + 1
            if written[key] == target[1]:
                os.kill(os.getpid(), signal.SIGKILL)
        return result

    os.replace = replace
    files.write_text = write_text


def make_tuner(directory, project_name, trials_per_study, tuner_class=ProbedTuner):
    kwargs = {}
    if os.environ.get("HEARTBEAT_TIMEOUT"):
        kwargs["heartbeat_timeout"] = float(os.environ["HEARTBEAT_TIMEOUT"])
    if os.environ.get("HEARTBEAT_INTERVAL"):
        tuner_class.heartbeat_interval = float(os.environ["HEARTBEAT_INTERVAL"])
    return tuner_class(
        make_build(trials_per_study),
        objective="val_loss",
        scientific=SCIENTIFIC,
        trials_per_study=trials_per_study,
        seed=SEED,
        directory=directory,
        project_name=project_name,
        overwrite=False,
        **kwargs,
    )


def load_data():
    (x, y), (x_val, y_val) = datasets.load_digits()
    return (x[:TRAIN_EXAMPLES], y[:TRAIN_EXAMPLES]), (x_val[:VAL_EXAMPLES], y_val[:VAL_EXAMPLES])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("project_name")
    parser.add_argument("log_dir")
    parser.add_argument("--trials-per-study", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    os.makedirs(args.log_dir, exist_ok=True)
    ProbedTuner.log_dir = args.log_dir
    install_kill_points(os.path.join(args.directory, args.project_name))
    (x, y), (x_val, y_val) = load_data()
    tuner = make_tuner(args.directory, args.project_name, args.trials_per_study)
    tuner.search(
        x,
        y,
        validation_data=(x_val, y_val),
        epochs=args.epochs,
        batch_size=64,
        verbose=0,
        callbacks=[Probe()],
    )
    print(f"search finished: {tuner_id()}", flush=True)


if __name__ == "__main__":
    main()
