"""One trial as recorded in its ``trial.json``, read without KerasTuner.

KerasTuner's `Trial.load` rebuilds a `HyperParameters` object and a metrics
tracker per trial (about 0.6 ms each: 6 s for 10,000 trials). A study reader
needs the values, the status, the score and the curves, so `TrialRecord`
takes them straight from the parsed JSON and builds the curves only when
they are asked for.
"""

import math
import warnings

import numpy as np

from kplaybook.errors import PlaybookWarning
from kplaybook.records import markers

#: What `kp.Study` calls a trial's state.
STATUSES = ("completed", "infeasible", "failed", "running")

# KerasTuner's TrialStatus values (keras_tuner/src/engine/trial.py).
_KT_COMPLETED = "COMPLETED"
_KT_FAILED = "FAILED"
_KT_WAITING = ("RUNNING", "IDLE", "INVALID")  # INVALID: waiting for KerasTuner's retry
_KT_STOPPED = "STOPPED"
_KT_KNOWN = (_KT_COMPLETED, _KT_FAILED, _KT_STOPPED, *_KT_WAITING)


def sign(direction):
    """+1 for "min", -1 for "max": ``sign * objective`` is lower when better."""
    if direction not in ("min", "max"):
        raise ValueError(f'direction must be "min" or "max", got {direction!r}.')
    return 1.0 if direction == "min" else -1.0


def best_position(values, direction):
    """The position of the best finite value in `values` (first on ties), or None when there is none.

    The one definition of "best" every table, check and plot uses.

    Example:
        >>> best_position([0.3, float("nan"), 0.1, 0.1], "min")
        2
    """
    keyed = sign(direction) * np.asarray(values, dtype=float)
    finite = np.isfinite(keyed)
    if not finite.any():
        return None
    keyed = np.where(finite, keyed, np.inf)
    return int(np.argmin(keyed))


class TrialRecord:
    """One trial of a study: its values, status, score, best step and curves.

    Attributes:
        trial_id: str.
        status: one of `STATUSES`: "completed", "infeasible" (ended with an
            infeasibility reason), "failed" (a real error; `message` holds
            it when KerasTuner recorded one) or "running" (running, or
            waiting for a retry).
        values: dict name -> value of the active hyperparameters.
        score: the trial's best objective (None unless completed).
        best_step: the epoch of that value (None unless completed).
        infeasible_reason: str or None.
        message: KerasTuner's message (the traceback of a failed trial), or None.
        kt_status: KerasTuner's own status string.
    """

    __slots__ = (
        "trial_id",
        "status",
        "kt_status",
        "values",
        "score",
        "best_step",
        "infeasible_reason",
        "message",
        "_metrics",
        "_curves",
    )

    def __init__(self, data, retrying=False, source=None):
        self.trial_id = str(data["trial_id"])
        self.values = dict(data["hyperparameters"]["values"])
        metrics = data.get("metrics") or {}
        self._metrics = metrics.get("metrics") or {}
        self.kt_status = data.get("status")
        self.message = data.get("message")
        self.infeasible_reason = markers.reason_in(self._metrics)
        self._curves = None
        completed = self.kt_status == _KT_COMPLETED
        if completed:
            status = "completed"
        elif self.infeasible_reason is not None:
            status = "infeasible"
        elif self.kt_status in _KT_WAITING or retrying:
            status = "running"
        else:
            if self.kt_status not in _KT_KNOWN:
                warnings.warn(
                    f"Trial {self.trial_id} has the unknown status {self.kt_status!r}"
                    + (f" in {source}" if source else "")
                    + "; it is counted as failed.",
                    PlaybookWarning,
                    stacklevel=3,
                )
            status = "failed"
        self.status = status
        score = data.get("score")
        self.score = float(score) if completed and score is not None else None
        self.best_step = data.get("best_step") if completed else None

    @property
    def objective(self):
        """The best objective value as a float (NaN unless completed)."""
        return math.nan if self.score is None else self.score

    @property
    def metric_names(self):
        """Names of the metrics this trial logged (the infeasibility marker left out)."""
        return [name for name in self._metrics if not markers.is_marker(name)]

    def curve_arrays(self):
        """(epochs, {metric: float array}), NaN where a metric has no value at an epoch.

        With several executions per step (``executions_per_trial > 1``) the
        value is their mean. Built on first use, then kept.
        """
        if self._curves is None:
            self._curves = _curves(self._metrics)
        return self._curves

    @property
    def epochs(self):
        """How many epochs (distinct steps) were recorded."""
        return len(self.curve_arrays()[0])

    def executions(self, metric):
        """dict step -> list of the per-execution values of `metric` (as recorded)."""
        history = self._metrics.get(metric) or {}
        return {
            int(obs["step"]): [float(v) for v in obs["value"]]
            for obs in history.get("observations", [])
        }

    def execution_scores(self, metric, direction):
        """Each execution's own best value of `metric` over its epochs (one per execution).

        With ``executions_per_trial > 1`` KerasTuner keeps only their mean
        (the trial's score); the study keeps each.
        """
        per_step = self.executions(metric)
        count = max((len(v) for v in per_step.values()), default=0)
        scores = []
        for k in range(count):
            values = [v[k] for v in per_step.values() if len(v) > k and math.isfinite(v[k])]
            if values:
                scores.append(min(values) if direction == "min" else max(values))
        return scores

    def __repr__(self):
        return f"<TrialRecord {self.trial_id}: {self.status}, score {self.score}>"


def _curves(metrics):
    histories = {}
    steps = set()
    for name, history in metrics.items():
        if markers.is_marker(name):
            continue
        observations = history.get("observations", []) if isinstance(history, dict) else []
        histories[name] = observations
        steps.update(obs["step"] for obs in observations)
    epochs = np.array(sorted(steps), dtype=np.int64)
    position = {int(step): i for i, step in enumerate(epochs)}
    columns = {}
    for name, observations in histories.items():
        values = np.full(len(epochs), np.nan)
        for obs in observations:
            v = obs["value"]
            if not v:
                continue
            mean = v[0] if len(v) == 1 else sum(v) / len(v)
            values[position[int(obs["step"])]] = np.nan if mean is None else mean
        columns[name] = values
    return epochs, columns
