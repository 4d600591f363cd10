"""What a playbook run records: its goals, its decisions, its result (`playbook.json`)."""

import dataclasses
import math
import os

import pandas as pd
from matplotlib.figure import Figure

from kplaybook import validation
from kplaybook.records import files
from kplaybook.results import Result

#: The actions a `Decision` can take. Each is taken from a finding of the
#: round's study (or the budget) and recorded with its numbers.
ACTIONS = {
    "batch_size": "fix the batch size the probe recommends (it is never tuned)",
    "widen": "widen a hyperparameter's range past the edge its best trials sit at",
    "narrow": "narrow a range: below an instability edge, or around the good region to exploit",
    "more_trials": "run more trials per scientific value: the sampling is too thin",
    "longer_training": "train longer: the best trials were still improving at the end",
    "shorter_training": "train shorter: the best trials stopped improving early",
    "warmup": "add a learning-rate warmup (found with kp.warmup_sweep) to every later trial",
    "clipping": "add gradient clipping at the 90th percentile of norms to every later trial",
    "adopt": "adopt the goal's value: it beats the baseline by more than the seed noise",
    "keep_baseline": "keep the baseline: no value beats it by more than the seed noise",
    "fix_nuisance": "fix a nuisance hyperparameter that barely matters, at its best value",
    "exploit": "run the feasibility-aware Bayesian search on the final configuration",
    "finish": "replicate the final configuration and stop: every stage is done",
    "stop_budget": "stop: the budget cannot pay for the next stage",
}


@dataclasses.dataclass(frozen=True)
class Goal:
    """One experiment of a `kp.Playbook`: which hyperparameters it compares, and its baseline.

    Attributes:
        name: str, unique among the playbook's goals (it names the goal's
            studies).
        scientific: dict name -> list of the values to compare (the goal's
            scientific hyperparameters).
        baseline: the value kept when no value beats it by more than the
            seed noise; a value (one scientific name) or a dict name -> value.
            Defaults to the first listed value(s).
        fixed: optional dict name -> value held for this goal only.

    Example:

    ```python
    kp.Goal("dropout", scientific={"use_dropout": [False, True]}, baseline=False)
    ```
    """

    name: str
    scientific: dict
    baseline: object = None
    fixed: dict | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"A goal's name must be a non-empty str, got {self.name!r}.")
        if not isinstance(self.scientific, dict) or not self.scientific:
            raise ValueError(
                f"Goal {self.name!r}: scientific must be a non-empty dict of name -> list of "
                f"values, got {self.scientific!r}."
            )
        for key, values in self.scientific.items():
            if (
                isinstance(values, (str, bytes))
                or not hasattr(values, "__iter__")
                or len(list(values)) < 2
            ):
                raise ValueError(
                    f"Goal {self.name!r}: scientific[{key!r}] must list at least two values to "
                    f"compare, got {values!r}."
                )
        if self.fixed is not None and not isinstance(self.fixed, dict):
            raise ValueError(f"Goal {self.name!r}: fixed must be a dict, got {self.fixed!r}.")
        baseline = self.baseline_values()
        for key, value in baseline.items():
            if key not in self.scientific or value not in list(self.scientific[key]):
                raise ValueError(
                    f"Goal {self.name!r}: baseline {key}={value!r} is not one of the compared "
                    f"values {list(self.scientific.get(key, []))}."
                )

    def baseline_values(self):
        """The baseline as a dict name -> value (a cell of the goal's study)."""
        names = list(self.scientific)
        if self.baseline is None:
            return {n: list(self.scientific[n])[0] for n in names}
        if isinstance(self.baseline, dict):
            return {n: self.baseline.get(n, list(self.scientific[n])[0]) for n in names}
        if len(names) != 1:
            raise ValueError(
                f"Goal {self.name!r} compares {names}; give its baseline as a dict name -> value."
            )
        return {names[0]: self.baseline}

    def to_json(self):
        return {
            "name": self.name,
            "scientific": {k: list(v) for k, v in self.scientific.items()},
            "baseline": self.baseline_values(),
            "fixed": dict(self.fixed or {}),
        }


@dataclasses.dataclass(frozen=True)
class Decision:
    """One decision of a playbook run, taken from a finding and backed by its numbers.

    Attributes:
        stage: "setup", "goal:<name>", "exploit" or "final".
        action: one of `ACTIONS`.
        reason: one sentence a person can read.
        evidence: dict of the numbers and finding codes it rests on.
        study: the directory of the study it came from, or None.
        key: where in the run it was taken (the run replays to it on resume).
        changes: what it changed in the run's configuration (internal).

    Example:

    ```python
    for d in result.decisions:
        print(f"{d.stage:16} {d.action:16} {d.reason}")
    ```
    """

    stage: str
    action: str
    reason: str
    evidence: dict = dataclasses.field(default_factory=dict)
    study: str | None = None
    key: str = ""
    changes: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        validation.one_of(self.action, "action", tuple(ACTIONS))

    def to_json(self):
        return files.json_safe(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data):
        return cls(**data)

    def line(self):
        """The decision as one printable line."""
        return f"[{self.stage}] {self.action}: {self.reason}"


class PlaybookResult(Result):
    """What a `kp.Playbook` run found: the final configuration, its seed replicates, the decisions.

    A `kplaybook.results.Result`: `to_dataframe()` (one row per decision),
    `plot()` (the objective's best per stage), `summary()`, `save`/`load`.

    Attributes:
        best_hyperparameters: dict name -> value of the final configuration.
        best_value: mean objective of its seed replicates.
        best_std: their standard deviation.
        replicates: list of the replicates' objectives (None for infeasible runs).
        decisions: list of `Decision`.
        trials_used: model trainings spent (study trials, replicate runs,
            sweep runs, probe runs), at most the playbook's `max_trials`.
        objective, direction: what was optimised.
        caveats: list of sentences the final configuration comes with.
        directory: the run's folder.
        settings: how the final configuration trains (epochs, batch_size,
            warmup_steps, clipping).

    Example:

    ```python
    result = playbook.run(x, y, validation_data=(xv, yv), epochs=10)
    print(result.summary())
    print(result.best_hyperparameters, result.best_value, result.best_std)
    ```
    """

    kind = "playbook"

    def __init__(
        self,
        best_hyperparameters,
        best_value,
        best_std,
        replicates,
        decisions,
        trials_used,
        objective,
        direction,
        caveats=(),
        directory=None,
        settings=None,
    ):
        self.best_hyperparameters = dict(best_hyperparameters or {})
        self.best_value = best_value
        self.best_std = best_std
        self.replicates = list(replicates or [])
        self.decisions = list(decisions)
        self.trials_used = int(trials_used)
        self.objective = objective
        self.direction = direction
        self.caveats = list(caveats)
        self.directory = directory
        self.settings = dict(settings or {})

    def to_dataframe(self):
        """One row per decision: stage, action, reason, study."""
        return pd.DataFrame(
            [
                {"stage": d.stage, "action": d.action, "reason": d.reason, "study": d.study}
                for d in self.decisions
            ],
            columns=["stage", "action", "reason", "study"],
        )

    def summary(self):
        """The decisions, one per line, then the final configuration."""
        lines = [d.line() for d in self.decisions]
        if self.best_value is not None and math.isfinite(self.best_value):
            lines.append(
                f"Final {self.objective}: {self.best_value:.4g} ± {self.best_std:.2g} over "
                f"{sum(v is not None for v in self.replicates)} seeds, "
                f"{self.trials_used} trainings"
            )
        lines.append(
            "Final configuration: "
            + ", ".join(f"{k}={_short(v)}" for k, v in self.best_hyperparameters.items())
        )
        lines.extend(f"Caveat: {c}" for c in self.caveats)
        return "\n".join(lines)

    def plot(self):
        """The best objective each study of the run reached, in order; a matplotlib Figure."""
        points, seen = [], set()
        for d in self.decisions:
            value = d.evidence.get("best_objective")
            if d.study is None or value is None or d.stage == "final" or d.study in seen:
                continue
            seen.add(d.study)
            points.append((f"{d.stage}\n{os.path.basename(os.path.normpath(d.study))}", value))
        fig = Figure(figsize=(max(5, 0.9 * len(points) + 2), 3.6), layout="constrained")
        ax = fig.add_subplot()
        if points:
            ax.plot(range(len(points)), [v for _, v in points], "o-")
            ax.set_xticks(range(len(points)), [s for s, _ in points], fontsize=8)
        if self.best_value is not None and math.isfinite(self.best_value):
            ax.axhline(self.best_value, color="C2", ls="--", label="final (replicate mean)")
            ax.legend(fontsize=8)
        ax.set_ylabel(f"best {self.objective}")
        ax.grid(alpha=0.3)
        fig.suptitle("Best trial of each study, and the final configuration's replicate mean")
        return fig

    def to_json(self):
        return {
            "best_hyperparameters": self.best_hyperparameters,
            "best_value": self.best_value,
            "best_std": self.best_std,
            "replicates": self.replicates,
            "decisions": [d.to_json() for d in self.decisions],
            "trials_used": self.trials_used,
            "objective": self.objective,
            "direction": self.direction,
            "caveats": self.caveats,
            "directory": self.directory,
            "settings": self.settings,
        }

    @classmethod
    def from_json(cls, data):
        return cls(
            data["best_hyperparameters"],
            data["best_value"],
            data["best_std"],
            data["replicates"],
            [Decision.from_json(d) for d in data["decisions"]],
            data["trials_used"],
            data["objective"],
            data["direction"],
            data.get("caveats", ()),
            data.get("directory"),
            data.get("settings"),
        )

    def __repr__(self):
        return (
            f"<PlaybookResult: {len(self.decisions)} decisions, {self.trials_used} trainings, "
            f"{self.objective} {self.best_value}>"
        )


def _short(value):
    return (
        f"{value:.4g}"
        if isinstance(value, float)
        else repr(value)
        if isinstance(value, str)
        else str(value)
    )
