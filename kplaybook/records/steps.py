"""Per-step values of a training run (gradient norm, learning rate, clipping), kept at a bounded resolution.

`StepRecord` collects them from batch logs during training; `write_steps`
and `read_steps` store a trial's records in its ``steps.json``.
"""

import math
import os
import threading

import pandas as pd

from kplaybook.errors import StudyError
from kplaybook.records import files

DEFAULT_CAP = 2000


class StepRecord:
    """Keeps per-step values of a few log keys: every step up to `cap` points, then thinned.

    Steps count training steps: ``step`` is ``optimizer.iterations`` at the
    start of the fit plus the steps run in it so far, this one included (the
    first step of a fresh model is step 1, as in TensorBoard's batch
    summaries; a loss-scaled step its optimizer skipped still counts). When more than
    `cap` steps are kept, every other kept step is dropped and the stride at
    which new steps are kept doubles, so the record always spans the whole of
    training at an even resolution with exact (not averaged) values.

    Thread-safe: Keras may deliver batch logs from a thread pool, out of order.

    Args:
        keys: log keys to keep; a step is recorded when any of them is present.
        cap: the most steps kept.
        every: keep only steps that are multiples of `every`.
    """

    def __init__(self, keys, cap=DEFAULT_CAP, every=1):
        self.keys = tuple(keys)
        self.cap = int(cap)
        self.stride = int(every)
        self._rows = {}
        self._lock = threading.Lock()
        self._base = 0
        self._epoch_steps = 0

    def begin(self, model):
        """Reads the optimizer's step count once at the start of a fit."""
        self._base = int(model.optimizer.iterations.numpy())
        self._epoch_steps = 0

    def step_of(self, batch):
        """The global step whose update ended batch index `batch` of the current epoch."""
        return self._base + int(batch) + 1

    def add_batch(self, batch, logs):
        """Records the wanted keys of one batch's logs; returns the step."""
        step = self.step_of(batch)
        with self._lock:
            self._epoch_steps = max(self._epoch_steps, int(batch) + 1)
        if logs:
            values = {}
            for key in self.keys:
                if key in logs:
                    try:
                        values[key] = float(logs[key])
                    except (TypeError, ValueError):
                        continue
            if values:
                self.add(step, values)
        return step

    def end_epoch(self):
        """Moves the step base past the epoch just finished.

        Keras flushes asynchronous batch ends before ``on_epoch_end``, so every
        batch of the epoch has been counted.
        """
        with self._lock:
            self._base += self._epoch_steps
            self._epoch_steps = 0

    def add(self, step, values):
        """Records `values` (a dict) at global `step`, when the current stride keeps it."""
        with self._lock:
            if step % self.stride:
                return
            self._rows[step] = values
            while len(self._rows) > self.cap:
                self.stride *= 2
                self._rows = {s: v for s, v in self._rows.items() if s % self.stride == 0}

    def rows(self):
        """[(step, {key: value})] in step order."""
        with self._lock:
            return sorted(self._rows.items())

    def to_json(self):
        """A JSON-ready dict: columns, rows (non-finite values as None) and the stride."""
        columns = ["step", *self.keys]
        rows = []
        for step, values in self.rows():
            row = [step]
            for key in self.keys:
                value = values.get(key)
                row.append(value if value is not None and math.isfinite(value) else None)
            rows.append(row)
        return {"columns": columns, "rows": rows, "stride": self.stride}

    def to_dataframe(self):
        """A pandas DataFrame indexed by ``step`` with one column per key."""
        return steps_frame(self.to_json())


#: The per-step log keys kplaybook's callbacks add and a study stores.
STEP_KEYS = ("grad_norm", "lr", "clip_fraction", "clip_threshold", "step_loss")


def write_steps(path, records):
    """Writes the per-step records of a trial's executions to `path` (its ``steps.json``), atomically.

    Nothing is written when no execution recorded a step; returns the path or None.
    """
    executions = [record.to_json() for record in records]
    if not any(execution["rows"] for execution in executions):
        return None
    return files.write_json(path, {"format": 1, "executions": executions})


def read_steps(path):
    """The executions stored in a ``steps.json``: a list of JSON dicts ([] when the file is absent).

    Raises:
        StudyError: the file is damaged or not a per-step record.
    """
    if not os.path.exists(path):
        return []
    advice = "delete it to drop the trial's per-step values"
    data = files.read_json(path, advice)
    executions = data.get("executions", []) if isinstance(data, dict) else None
    if not isinstance(executions, list) or not all(
        isinstance(e, dict)
        and isinstance(e.get("columns"), list)
        and isinstance(e.get("rows"), list)
        and "step" in e["columns"]
        for e in executions
    ):
        raise StudyError(
            f"{path} cannot be read (it is not a kplaybook per-step record); {advice}."
        )
    return executions


def steps_frame(execution):
    """One execution of `read_steps` as a DataFrame indexed by ``step``."""
    frame = pd.DataFrame(execution["rows"], columns=execution["columns"], dtype=float)
    frame["step"] = frame["step"].astype(int)
    return frame.set_index("step")
