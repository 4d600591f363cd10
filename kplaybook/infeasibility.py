"""How an infeasible trial is recognised, recorded and read back.

KerasTuner has no "infeasible" status, and in distributed mode only a trial's
status, hyperparameters and metrics reach the chief (not its message). An
infeasible trial therefore ends as KerasTuner's ``FAILED`` and carries its
reason in the name of one marker metric, ``kplaybook.infeasible:<reason>``,
which travels through ``Oracle.update_trial`` like any other metric.
"""

import math

import tensorflow as tf

from kplaybook.errors import InfeasibleTrial

MARKER_PREFIX = "kplaybook.infeasible:"

NAN_LOSS = "nan_loss"
OOM = "oom"
DIVERGED = "diverged"

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
    """The infeasibility reason for an exception raised by a trial, or None for a real error."""
    if isinstance(error, InfeasibleTrial):
        return str(error) or "infeasible"
    if is_oom_error(error):
        return OOM
    return None


def is_finite(value):
    """True for a real, finite number."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def marker(reason):
    """The metric name that records `reason` on a trial."""
    return MARKER_PREFIX + reason


def reason_of(trial):
    """The infeasibility reason recorded on a KerasTuner `Trial`, or None."""
    for name in trial.metrics.metrics:
        if name.startswith(MARKER_PREFIX):
            return name[len(MARKER_PREFIX):]
    return None
