"""A small `kp.Playbook` run, as a real process, for the resume tests.

Usage::

    python playbook_run.py DIRECTORY LOG [--max-trials N] [--kill-after N] [--kill-in-write N]

It tunes a tiny MLP on scikit-learn's digits: goals "tag" (a hyperparameter
that does not touch the model) and "width" (hidden units 1 vs 32), Adam's
learning rate declared two decades too low ([1e-5, 1e-3]), seed 0, ``overwrite=False`` (so
running it again resumes the run). Every training appends one line to LOG
when it starts ("begin <pid>") and one when it ends ("end <pid>"); the last
line printed is the result's summary as JSON.

- ``--kill-after N``: SIGKILL this process when its N-th training (counted in
  this process) has run one epoch: a kill in the middle of a training.
- ``--kill-in-write N``: SIGKILL it in the middle of its N-th write of
  ``playbook.json`` (after the temporary file is complete, before it replaces
  the old one).
"""

import argparse
import json
import os
import signal
import sys

import keras

import kplaybook as kp
from kplaybook import datasets
from kplaybook.records import files


class Log(keras.callbacks.Callback):
    """Appends "begin"/"end" lines to the log; kills the process when told to."""

    path = None
    kill_after = None
    started = 0

    def on_train_begin(self, logs=None):
        Log.started += 1
        with open(Log.path, "a") as f:
            f.write(f"begin {os.getpid()}\n")

    def on_epoch_end(self, epoch, logs=None):
        if Log.kill_after is not None and Log.started >= Log.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_end(self, logs=None):
        with open(Log.path, "a") as f:
            f.write(f"end {os.getpid()}\n")


def build(hp):
    """Digits MLP; "tag" is declared and never used; the learning rate starts two decades low.

    Adam's usual range for this model is [1e-3, 1e-1] (a dense sweep finds
    about 3e-2 best in 3 epochs); it is declared two decades lower.
    """
    hp.Choice("tag", [0, 1])
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(hp.Choice("units", [1, 32]), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    lr = hp.Float("learning_rate", 1e-5, 1e-3, sampling="log")
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    return model


def playbook(directory, max_trials, **kwargs):
    return kp.Playbook(
        build,
        objective="val_loss",
        goals=[kp.Goal("tag", {"tag": [0, 1]}), kp.Goal("width", {"units": [1, 32]})],
        max_trials=max_trials,
        trials_per_study=4,
        seed=0,
        directory=directory,
        project_name="run",
        replicate_seeds=3,
        final_seeds=3,
        **kwargs,
    )


def _kill_in_write(n):
    """SIGKILL in the middle of the n-th write of playbook.json."""
    original = files.os.replace
    count = {"n": 0}

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(dst) == "playbook.json":
            count["n"] += 1
            if count["n"] == n:
                os.kill(os.getpid(), signal.SIGKILL)
        return original(src, dst, *args, **kwargs)

    files.os.replace = replace


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("log")
    parser.add_argument("--max-trials", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--kill-after", type=int)
    parser.add_argument("--kill-in-write", type=int)
    args = parser.parse_args()
    Log.path, Log.kill_after = args.log, args.kill_after
    if args.kill_in_write:
        _kill_in_write(args.kill_in_write)
    (x, y), (xv, yv) = datasets.load("digits")
    result = playbook(args.directory, args.max_trials).run(
        x,
        y,
        validation_data=(xv, yv),
        epochs=args.epochs,
        max_epochs=args.epochs,
        batch_size=64,
        callbacks=[Log()],
        verbose=True,
    )
    print(
        json.dumps(
            {
                "trials_used": result.trials_used,
                "best": result.best_hyperparameters,
                "value": result.best_value,
                "decisions": len(result.decisions),
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
