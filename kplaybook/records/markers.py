"""The marker metrics kplaybook records on a trial: its infeasibility reason and its score.

KerasTuner has no "infeasible" status, and in chief/worker mode only a
trial's status, hyperparameters and metrics reach the chief (not its
message). An infeasible trial therefore ends as KerasTuner's ``FAILED`` and
carries its reason in the name of one marker metric,
``kplaybook.infeasible:<reason>``, which travels through
``Oracle.update_trial`` like any other metric.
"""

#: Every marker metric's name starts with this; markers are not curves.
PREFIX = "kplaybook."
MARKER_PREFIX = PREFIX + "infeasible:"
#: The trial's score as KerasTuner scores it (a returned value, or each
#: execution's best averaged) and the step KerasTuner reports with it, both
#: reported with the trial's last epoch. The oracle scores the trial from
#: them, so the score also reaches the chief in chief/worker mode.
SCORE = PREFIX + "score"
BEST_STEP = PREFIX + "best_step"
#: A worker's sign of life while its trial runs (chief/worker mode); never recorded.
HEARTBEAT = PREFIX + "heartbeat"

#: The loss (or the objective at every epoch) was NaN or infinite.
NAN_LOSS = "nan_loss"
#: The trial ran out of accelerator (or host) memory.
OOM = "oom"
#: `kp.callbacks.DivergenceMonitor` stopped training.
DIVERGED = "diverged"
#: Reasons that mean training was unstable (an out-of-memory trial is not).
INSTABILITY_REASONS = (NAN_LOSS, DIVERGED)


def marker(reason):
    """The metric name that records `reason` on a trial."""
    return MARKER_PREFIX + reason


def is_marker(metric_name):
    """True for a marker metric (infeasibility or score), which is not a curve."""
    return metric_name.startswith(PREFIX)


def reason_in(metric_names):
    """The infeasibility reason among a trial's metric names, or None."""
    for name in metric_names:
        if name.startswith(MARKER_PREFIX):
            return name[len(MARKER_PREFIX) :]
    return None
