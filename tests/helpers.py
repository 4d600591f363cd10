"""Helpers shared by several test files: running kplaybook and scripts as real processes.

pytest puts `tests/` on sys.path (it has no __init__.py), so test files
import this module by name: ``import helpers``.
"""

import gc
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kplaybook as kp

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
SCRIPT = SCRIPTS / "playbook_search.py"
HP_NAMES = ("num_layers", "units", "learning_rate")
# Variables the script reacts to; a child only sees the ones a test sets.
_SCRIPT_VARIABLES = ("KILL_AT_TRIAL", "KILL_MARKER", "BARRIER_TUNERS", "BARRIER_DIR")


def load_module(path, name=None):
    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or f"_kp_tests_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child_env(**extra):
    """The environment of a child process: quiet TensorFlow, no inherited KerasTuner mode."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KERASTUNER_") and k not in _SCRIPT_VARIABLES
    }
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_python(*args, timeout=300, **env):
    """`python *args` from the repository root, quiet TensorFlow; a CompletedProcess with text output."""
    return subprocess.run(
        [sys.executable, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(**env),
        cwd=ROOT,
    )


def kplaybook_cli(*args, timeout=300, **env):
    """`python -m kplaybook *args`, as a user runs the command."""
    return run_python("-m", "kplaybook", *args, timeout=timeout, **env)


def script_args(directory, project, log_dir, trials_per_study, epochs):
    return [
        sys.executable,
        str(SCRIPT),
        str(directory),
        project,
        str(log_dir),
        "--trials-per-study",
        str(trials_per_study),
        "--epochs",
        str(epochs),
    ]


def start(args, env, output_path):
    """Popen with stdout and stderr in a file (a pipe could fill up and block the child)."""
    with open(output_path, "w") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc):
    """Kill `proc` if it is still running (used in `finally`)."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def wait_until(condition, timeout, what, watched=()):
    """Poll `condition()` until true; fail early if a watched `(proc, output_path)` exits."""
    deadline = time.monotonic() + timeout
    while not condition():
        for proc, output in watched:
            if proc.poll() is not None:
                raise AssertionError(
                    f"a child process exited ({proc.returncode}) while waiting for "
                    f"{what}:\n{tail(output)}"
                )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def tail(path, n=4000):
    try:
        return Path(path).read_text()[-n:]
    except OSError:
        return ""


def read_log(log_dir):
    """All records the script's processes logged, each file in order."""
    records = []
    for path in sorted(Path(log_dir).glob("*.jsonl")):
        with open(path) as f:
            records.extend(json.loads(line) for line in f if line.strip())
    return records


def hp_values(row):
    return {name: row[name] for name in HP_NAMES}


def planned_values(directory, trials_per_study):
    """Values of slots 0..n-1 of an uninterrupted, sequential study (nothing is trained)."""
    script = load_module(SCRIPT)
    tuner = script.make_tuner(
        str(directory), "reference", trials_per_study, tuner_class=kp.PlaybookTuner
    )
    tuner.oracle.verbose = 0
    n = len(script.SCIENTIFIC["num_layers"]) * trials_per_study
    # A distinct tuner id per request: each call creates the next slot.
    return [tuner.oracle.create_trial(f"ref{k}").hyperparameters.values for k in range(n)]


@pytest.fixture(scope="module")
def frozen_gc():
    """Keeps the objects alive when a test module starts out of the garbage collector's passes.

    KerasTuner's `Tuner._try_build` runs `gc.collect()` at every build (each
    trial, each `get_best_models`), and in a pytest process holding
    TensorFlow each pass walks every object of the session (about 0.6 s).
    Objects created by the module's own tests are collected as usual; the
    freeze is undone when the module ends. Use it with
    ``pytestmark = pytest.mark.usefixtures("frozen_gc")`` after
    ``from helpers import frozen_gc``.
    """
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
