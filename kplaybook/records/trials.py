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
from kplaybook.errors import StudyError
from kplaybook.records import files
from kplaybook.records import markers
from kplaybook.records.index import digest as index_digest

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
        "_executions",
        "_source",
        "_digest",
        "_raw_score",
        "_raw_best_step",
    )

    def __init__(self, data, retrying=False, source=None):
        metrics = data.get("metrics") or {}
        self._metrics = metrics.get("metrics") or {}
        self._curves = None
        self._executions = None
        self._source = source
        self._digest = None
        self._settle(
            str(data["trial_id"]),
            dict(data["hyperparameters"]["values"]),
            data.get("status"),
            data.get("message"),
            markers.reason_in(self._metrics),
            data.get("score"),
            data.get("best_step"),
            retrying,
        )

    @classmethod
    def from_entry(cls, entry, retrying=False, source=None):
        """The record of a trial as the study's index holds it (see `kplaybook.records.index`).

        Everything but the per-execution values comes from the entry; those
        (`executions`, and `execution_scores` with ``executions_per_trial > 1``)
        are read from `source`, the trial's ``trial.json``, when asked for,
        and only while it still holds the bytes the entry was decoded from.
        """
        summary = entry.summary
        record = cls.__new__(cls)
        record._metrics = None
        record._curves = entry.curves
        record._executions = int(summary["executions"])
        record._source = source
        record._digest = entry.digest
        record._settle(
            str(summary["trial_id"]),
            dict(summary["values"]),
            summary["kt_status"],
            summary["message"],
            summary["reason"],
            summary["score"],
            summary["best_step"],
            retrying,
        )
        return record

    def entry_summary(self):
        """What the study's index keeps of this trial besides its curves (JSON-safe dict)."""
        return {
            "trial_id": self.trial_id,
            "kt_status": self.kt_status,
            "message": self.message,
            "values": self.values,
            "score": self._raw_score,
            "best_step": self._raw_best_step,
            "reason": self.infeasible_reason,
            "executions": self.execution_count,
        }

    def _settle(self, trial_id, values, kt_status, message, reason, score, best_step, retrying):
        self.trial_id = trial_id
        self.values = values
        self.kt_status = kt_status
        self.message = message
        self.infeasible_reason = reason
        completed = kt_status == _KT_COMPLETED
        if completed:
            status = "completed"
        elif reason is not None:
            status = "infeasible"
        elif kt_status in _KT_WAITING or retrying:
            status = "running"
        else:
            if kt_status not in _KT_KNOWN:
                warnings.warn(
                    f"Trial {trial_id} has the unknown status {kt_status!r}"
                    + (f" in {self._source}" if self._source else "")
                    + "; it is counted as failed.",
                    PlaybookWarning,
                    stacklevel=4,
                )
            status = "failed"
        self.status = status
        # As recorded (the index keeps them so); `score` and `best_step` as read.
        self._raw_score = score
        self._raw_best_step = best_step
        self.score = float(score) if completed and score is not None else None
        self.best_step = best_step if completed else None

    @property
    def objective(self):
        """The best objective value as a float (NaN unless completed)."""
        return math.nan if self.score is None else self.score

    @property
    def metric_names(self):
        """Names of the metrics this trial logged (the infeasibility marker left out)."""
        if self._metrics is None:  # from the index: its curves name every metric
            return list(self._curves[1])
        return [name for name in self._metrics if not markers.is_marker(name)]

    @property
    def execution_count(self):
        """How many executions recorded a value for one step (the most of any step and metric).

        1 for a plain trial, ``executions_per_trial`` when it is above 1, 0
        when the trial recorded no curve.
        """
        if self._executions is None:
            self.curve_arrays()
        return self._executions

    def _raw_metrics(self):
        """KerasTuner's metrics of the trial, read from its ``trial.json`` if the index gave the rest."""
        if self._metrics is None:
            advice = "load the study again"
            try:
                with open(self._source, "rb") as f:
                    content = f.read()
            except OSError as e:
                raise StudyError(
                    f"{self._source} cannot be read ({e.strerror or e}) to give trial "
                    f"{self.trial_id}'s per-execution values; {advice}."
                ) from None
            if index_digest(content) != self._digest:
                raise StudyError(
                    f"{self._source} changed since the study was loaded, so trial "
                    f"{self.trial_id}'s per-execution values cannot be read from it; {advice}."
                )
            data = files.parse_json(content, self._source, advice)
            self._metrics = (data.get("metrics") or {}).get("metrics") or {}
        return self._metrics

    def curve_arrays(self):
        """(epochs, {metric: float array}), NaN where a metric has no value at an epoch.

        With several executions per step (``executions_per_trial > 1``) the
        value is their mean. Built on first use, then kept.
        """
        if self._curves is None:
            epochs, columns, executions = _curves(self._raw_metrics())
            self._curves = (epochs, columns)
            self._executions = executions
        return self._curves

    @property
    def epochs(self):
        """How many epochs (distinct steps) were recorded."""
        return len(self.curve_arrays()[0])

    def executions(self, metric):
        """dict step -> list of the per-execution values of `metric` (as recorded)."""
        history = self._raw_metrics().get(metric) or {}
        return {
            int(obs["step"]): [float(v) for v in obs["value"]]
            for obs in history.get("observations", [])
        }

    def execution_scores(self, metric, direction):
        """Each execution's own best value of `metric` over its epochs (one per execution).

        With ``executions_per_trial > 1`` KerasTuner keeps only their mean
        (the trial's score); the study keeps each.
        """
        if self.execution_count <= 1:
            # One value per step: the curve holds it (no need for the raw metrics).
            values = self.curve_arrays()[1].get(metric)
            if values is None or not np.isfinite(values).any():
                return []
            finite = values[np.isfinite(values)]
            return [float(finite.min() if direction == "min" else finite.max())]
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
    """(epochs, {metric: float array}, executions) of KerasTuner's metrics of a trial.

    `executions` is the largest number of values recorded for one step. A
    step recorded twice keeps its last non-empty value (KerasTuner records
    each step once).
    """
    histories = {}
    epochs = set()
    for name, history in metrics.items():
        if markers.is_marker(name):
            continue
        observations = history.get("observations", []) if isinstance(history, dict) else []
        recorded = {}
        for obs in observations:
            step, value = int(obs["step"]), obs["value"]
            epochs.add(step)
            if value:
                recorded[step] = value
        histories[name] = recorded
    epochs = np.array(sorted(epochs), dtype=np.int64)
    executions = 0
    columns = {}
    for name, recorded in histories.items():
        values = np.full(len(epochs), np.nan)
        if recorded:
            executions = max(executions, max(map(len, recorded.values())))
            means = [v[0] if len(v) == 1 else sum(v) / len(v) for v in recorded.values()]
            # None (a value not recorded) becomes NaN.
            values[np.searchsorted(epochs, list(recorded))] = np.array(means, dtype=float)
        columns[name] = values
    return epochs, columns, executions
