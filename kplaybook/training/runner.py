"""One place that runs a training the way kplaybook records it.

The tuner's trials, the seed replicates and the batch-size probe all train
models and must agree on three things, so they share this module:

- a fresh Keras session per model, keeping the user's dtype policy
  (`keras.backend.clear_session()` resets it to float32, which would silently
  turn a mixed-precision study into a float32 one);
- what is recorded: every epoch's logs (`EpochLog`) and kplaybook's per-step
  values (`StepLog`);
- the verdict: a training that ran out of memory, raised
  `kp.InfeasibleTrial`, reached a NaN/Inf loss or was stopped by
  `kp.callbacks.DivergenceMonitor` is *infeasible* (a result, not a crash);
  any other exception is a real error. Scores follow KerasTuner's rules
  exactly: a returned float or dict is the result; otherwise each
  execution's best epoch, averaged over executions.
"""

import contextlib
import gc
import math
import statistics
import typing

import keras
import numpy as np
import tensorflow as tf

from kplaybook.callbacks import DivergenceMonitor
from kplaybook.errors import InfeasibleTrial
from kplaybook.fatal_errors import fatal
from kplaybook.records import markers
from kplaybook.records.steps import STEP_KEYS
from kplaybook.records.steps import StepRecord

# Messages of out-of-memory errors that do not always arrive as
# ResourceExhaustedError: TF's allocator, XLA, and CUDA/cuDNN.
_OOM_MESSAGES = (
    "oom when allocating",
    "resource exhausted",
    "out of memory",
    "resource_exhausted",
    "cuda_error_out_of_memory",
    "cudnn_status_alloc_failed",
    "cublas_status_alloc_failed",
    # TF's GPU allocator failing a host-to-device copy, and XLA/PJRT's allocator.
    "dst tensor is not initialized",
    "failed to allocate request for",
)


# How many `collections_of_new_objects_only` scopes are open (the outermost one
# owns the freeze), or None while the garbage collector was already frozen by
# someone else when the outermost scope opened.
_frozen_scopes = 0


@contextlib.contextmanager
def collections_of_new_objects_only():
    """Within it, Python's garbage collector scans only what the trainings create.

    Keras's `clear_session()` (run before every model, by KerasTuner and by
    kplaybook) ends with a full `gc.collect()`, and a process that imported
    TensorFlow holds ~500,000 objects, plus the function graphs TensorFlow
    keeps from every earlier trace: each collection scanned them all, close to
    a second per trial on 2 CPU cores. Inside this scope, what is alive when
    it opens and what survives each fresh session is frozen (`gc.freeze()`,
    never scanned again) and unfrozen when the outermost scope closes, so
    nothing stays uncollectable after the search. It does nothing when the
    collector is disabled or something else froze objects first.

    Example:
        >>> with collections_of_new_objects_only():
        ...     tuner.search(x, y, validation_data=(xv, yv), epochs=5)
    """
    global _frozen_scopes
    if _frozen_scopes == 0 and (not gc.isenabled() or gc.get_freeze_count()):
        yield
        return
    outermost = _frozen_scopes == 0
    _frozen_scopes += 1
    try:
        if outermost:
            gc.collect()
            gc.freeze()
        yield
    finally:
        _frozen_scopes -= 1
        if outermost:
            gc.unfreeze()


def freeze_survivors():
    """Inside `collections_of_new_objects_only`, freeze what survived the last collection."""
    if _frozen_scopes:
        gc.freeze()


def fresh_session():
    """`keras.backend.clear_session()` that keeps the user's dtype policy (it resets it to float32).

    Inside `collections_of_new_objects_only`, what survives it is frozen.
    """
    policy = keras.config.dtype_policy()
    keras.backend.clear_session()
    keras.config.set_dtype_policy(policy)
    freeze_survivors()


def is_oom_error(error):
    """True when `error` (or an exception it was raised from) is an out-of-memory error."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, tf.errors.ResourceExhaustedError):
            return True
        text = str(error).lower()
        if any(message in text for message in _OOM_MESSAGES):
            return True
        error = error.__cause__ or error.__context__
    return False


def reason_for_exception(error):
    """The infeasibility reason for an exception a training raised, or None for a real error."""
    if isinstance(error, InfeasibleTrial):
        return str(error) or "infeasible"
    if is_oom_error(error):
        return markers.OOM
    return None


def is_finite(value):
    """True for a real, finite number."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


class EpochLog(keras.callbacks.Callback):
    """Records every epoch's logs, and stops training when the loss is NaN or infinite.

    kplaybook adds one to every training it runs; it does nothing per batch.
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
    """Records the per-step ``grad_norm``, ``lr``, ``clip_fraction``... that kplaybook's callbacks log.

    Records nothing when no such key is logged. Every step is kept up to
    2,000 steps, then the record is thinned evenly (see `StepRecord`).
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


class Recording:
    """What kplaybook records of one training (one execution of a trial).

    `callbacks(user_callbacks)` returns the list to pass to `fit`: the
    user's callbacks, then an `EpochLog` and a `StepLog`.
    """

    def __init__(self):
        self.epoch_log = EpochLog()
        self.step_log = StepLog()
        self.user_callbacks = []

    def callbacks(self, user_callbacks=()):
        """The callbacks for `fit`: `user_callbacks` followed by the recorders."""
        self.user_callbacks = list(user_callbacks)
        return [*self.user_callbacks, self.epoch_log, self.step_log]

    @property
    def epochs(self):
        """[(epoch, {metric: value})] of this training."""
        return self.epoch_log.epochs

    @property
    def steps(self):
        """The `StepRecord` of this training."""
        return self.step_log.record


class Outcome(typing.NamedTuple):
    """The verdict on a training (all executions of a trial).

    Attributes:
        reason: the infeasibility reason, or None when the training counts.
        reports: [(step, {metric: value})], every epoch of every execution,
            in order: the learning curves.
        score: the objective as KerasTuner scores it (None when infeasible).
        best_step: the step KerasTuner reports with it.
        execution_scores: each execution's own score (its best epoch, or
            what it returned).
        returned: the metrics the training returned (averaged over
            executions, as KerasTuner does), or None when it returned none.
    """

    reason: str | None
    reports: list
    score: float | None
    best_step: int | None
    execution_scores: list
    returned: dict | None = None


def _returned_metrics(results, objective):
    """KerasTuner's metrics dict of a returned float or dict (None for a History or nothing)."""
    if isinstance(results, (int, float, np.floating)) and not isinstance(results, bool):
        return {objective: float(results)}
    if isinstance(results, dict):
        return dict(results)
    return None


def _history_epochs(results):
    """Per-execution [(epoch, logs)] of the `keras.callbacks.History` objects in `results`."""
    histories = results if isinstance(results, list) else [results]
    executions = []
    for history in histories:
        if isinstance(history, keras.callbacks.History):
            logs = history.history
            count = max((len(v) for v in logs.values()), default=0)
            executions.append(
                [
                    (epoch, {k: float(v[epoch]) for k, v in logs.items() if epoch < len(v)})
                    for epoch in range(count)
                ]
            )
    return executions


def judge(recordings, objective, direction, results=None, error=None, source="HyperModel.fit()"):
    """The `Outcome` of a training from what it recorded, returned or raised.

    Args:
        recordings: the `Recording` of each execution.
        objective: the objective's name; direction: "min" or "max".
        results: what the training returned (`HyperModel.fit` or
            `run_trial`): a float or dict is scored as KerasTuner scores it
            (a list of them is averaged); Histories, or nothing when the
            epochs were recorded, are scored from the epochs.
        error: the exception the training raised, if it was an infeasibility
            (`reason_for_exception` is not None).
        source: the function that returned `results`, named in errors.

    Raises:
        ValueError or TypeError (KerasTuner fatal errors): the objective was
            never logged nor returned.
    """
    reason = reason_for_exception(error) if error is not None else None
    if error is None and any(r.epoch_log.nonfinite for r in recordings):
        reason = markers.NAN_LOSS
    if reason in (None, markers.NAN_LOSS) and any(
        isinstance(cb, DivergenceMonitor) and cb.diverged
        for r in recordings
        for cb in r.user_callbacks
    ):
        reason = markers.DIVERGED
    executions = [r.epochs for r in recordings if r.epochs]
    if not executions and error is None:
        # A fit that did not pass kplaybook's callbacks on: its Histories.
        executions = _history_epochs(results)
    reports = [report for epochs in executions for report in epochs]
    if reason is not None:
        return Outcome(reason, reports, None, None, [])

    returned = results if isinstance(results, list) else [results]
    returned = [_returned_metrics(r, objective) for r in returned if r is not None]
    if returned and all(m is not None for m in returned):
        # KerasTuner: what HyperModel.fit / run_trial returned is the result.
        for metrics in returned:
            if objective not in metrics:
                raise fatal(
                    ValueError,
                    f"The dict returned by {source} has no {objective!r} (keys: "
                    f"{sorted(metrics)}); return the objective's value under that name.",
                )
        values = [float(m[objective]) for m in returned]
        averaged = {
            name: statistics.fmean(float(m[name]) for m in returned if name in m)
            for name in {name for m in returned for name in m}
        }
        if not all(math.isfinite(v) for v in values):
            return Outcome(markers.NAN_LOSS, reports, None, None, values, averaged)
        last_epoch = max((epoch for epoch, _ in reports), default=0)
        return Outcome(None, reports, statistics.fmean(values), int(last_epoch), values, averaged)
    if not reports:
        raise fatal(
            TypeError,
            f"{source} returned {results!r} and no epoch was logged; did you forget to "
            f"return the metrics? Return the History of model.fit, a dict with "
            f"{objective!r}, or its value.",
        )

    logged = {name for _, logs in reports for name in logs}
    if objective not in logged:
        raise fatal(
            ValueError,
            f"The objective {objective!r} is not among the logged metrics "
            f"{sorted(logged)}; pass validation_data to search() or choose a logged "
            "metric as the objective.",
        )
    keyed = 1.0 if direction == "min" else -1.0
    scores, steps = [], []
    for epochs in executions:
        finite = [
            (keyed * logs[objective], epoch, logs[objective])
            for epoch, logs in epochs
            if is_finite(logs.get(objective))
        ]
        if finite:
            _, epoch, value = min(finite, key=lambda item: item[0])
            scores.append(value)
            steps.append(epoch)
    if not scores:
        return Outcome(markers.NAN_LOSS, reports, None, None, [])
    # KerasTuner averages each execution's best value and best epoch.
    return Outcome(None, reports, statistics.fmean(scores), int(statistics.mean(steps)), scores)
