"""`kp.compare`: is one study's result better than another's by more than seed noise?

The playbook's "Determining whether to adopt a training pipeline change or
hyperparameter configuration"
(https://github.com/google-research/tuning_playbook#determining-whether-to-adopt-a-training-pipeline-change-or-hyperparameter-configuration)
asks that a gain beat the variance of retraining before it is adopted.
"""

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kplaybook import validation
from kplaybook.analysis._prepared import prepare
from kplaybook.errors import StudyError
from kplaybook.records import StudyReader
from kplaybook.results import Result

#: The playbook asks that a gain beat the retrain noise. A gap counts as
#: beating it when larger than 2 standard errors of the difference of the
#: two means (about 95% for normal noise).
NOISE_SIGMAS = 2.0


class Comparison(Result):
    """The result of `kp.compare(study_a, study_b)`.

    A `kplaybook.results.Result`: `to_dataframe()` (the table), `plot()`,
    `summary()` (the table and a verdict per row; also ``print(comparison)``),
    `save(path)` / `Comparison.load(path)`.

    Attributes:
        table: pandas DataFrame, one row per scientific value the studies
            share (or one row "best" comparing each study's best when they
            share none): ``a_mean, a_std, a_n, a_infeasible, b_mean, b_std,
            b_n, b_infeasible`` (``*_infeasible``: replicate runs that
            diverged or failed, left out of the mean),
            ``difference`` (b - a, in objective units), ``noise`` (the
            standard error of that difference), ``beats_noise`` (True/False;
            None without at least 2 replicates on each side) and ``better``
            ("a", "b" or None).
        objective: the objective's name; direction: "min" or "max".
        names: the two studies' names.
    """

    kind = "comparison"

    def __init__(self, table, objective, direction, names):
        self.table = table
        self.objective = objective
        self.direction = direction
        self.names = tuple(names)

    def to_dataframe(self):
        """One row per compared scientific value (see the class docstring for the columns)."""
        return self.table.copy()

    def to_json(self):
        """The table and what was compared (see `Result.save`)."""
        return {
            "objective": self.objective,
            "direction": self.direction,
            "names": list(self.names),
            "table": self.table.to_dict("records"),
        }

    @classmethod
    def from_json(cls, data):
        """The comparison from `to_json`'s data."""
        table = pd.DataFrame(data["table"])
        for column in ("a_std", "b_std", "noise"):
            if column in table:
                table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
        return cls(table, data["objective"], data["direction"], data["names"])

    def plot(self):
        """Mean ± std of both studies per scientific value, side by side; a matplotlib Figure."""
        table = self.table
        fig = Figure(figsize=(max(4.5, 1.4 * len(table) + 2), 3.8), layout="constrained")
        ax = fig.add_subplot()
        x = np.arange(len(table), dtype=float)
        for offset, side, color in ((-0.15, "a", "#3a76c4"), (0.15, "b", "#e8873a")):
            std = table[f"{side}_std"].to_numpy(dtype=float)
            ax.errorbar(
                x + offset,
                table[f"{side}_mean"].to_numpy(dtype=float),
                yerr=np.where(np.isfinite(std), std, 0.0),
                fmt="o",
                capsize=4,
                color=color,
                label=self.names[0 if side == "a" else 1],
            )
        ax.set_xticks(x, [str(v) for v in table["scientific"]])
        ax.set_ylabel(f"{self.objective} ({self.direction}), mean ± std")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
        return fig

    def verdicts(self):
        """One sentence per row saying which study is better and whether it beats the noise."""
        a, b = self.names
        lines = []
        for _, row in self.table.iterrows():
            label = row["scientific"]
            bad = row["a_infeasible"] + row["b_infeasible"]
            if bad:
                lines.append(
                    f"{label}: {bad} replicate run(s) were infeasible and are left out; "
                    "a setting that diverges under some seeds is itself a finding."
                )
            if row["beats_noise"] is None or pd.isna(row["beats_noise"]):
                lines.append(
                    f"{label}: {b} - {a} = {row['difference']:+.4g}; noise unknown "
                    "(run study.replicate() on both studies to compare against seed noise)."
                )
            elif row["beats_noise"]:
                winner = a if row["better"] == "a" else b
                lines.append(
                    f"{label}: {winner} is better by {abs(row['difference']):.4g} "
                    f"{self.objective}, more than {NOISE_SIGMAS:g}x the noise "
                    f"({row['noise']:.3g})."
                )
            else:
                lines.append(
                    f"{label}: the gap {abs(row['difference']):.4g} is within "
                    f"{NOISE_SIGMAS:g}x the seed noise ({row['noise']:.3g}): no evidence "
                    "either study is better."
                )
        return lines

    def summary(self):
        """The table and one verdict per row, as text."""
        shown = self.table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        return (
            f"{self.objective} ({self.direction}): a = {self.names[0]}, b = {self.names[1]}\n{shown}\n"
            + "\n".join(self.verdicts())
        )

    def __repr__(self):
        return f"<Comparison of {self.names[0]!r} and {self.names[1]!r} on {self.objective}>"


def _samples(study):
    """dict cell label -> (scientific dict, objective samples) of each scientific value's best trial."""
    p = prepare(study)
    replicates = study.replicates()
    samples = {}
    for cell, row in p.best_rows().items():
        trial_id = p.trial_id(row)
        values, infeasible = [], 0
        if len(replicates):
            runs = replicates[(replicates["trial_id"] == str(trial_id))]
            values = [v for v in runs["objective"] if math.isfinite(v)]
            infeasible = int((runs["status"] != "completed").sum())
        if not values:
            values = [float(p.sign * p.loss[row])]
        samples[p.cell_label(cell)] = (np.array(values), p.sign, infeasible)
    return samples


def compare(study_a, study_b):
    """Compare two studies' results per scientific value, against seed noise.

    Each side is the best trial of each scientific value, represented by its
    seed replicates when `study.replicate()` was run (else by its single
    objective, and the noise is unknown). Values the studies share are
    compared one by one; studies with no shared value are compared on each
    one's best.

    Args:
        study_a, study_b: `kp.Study` objects or study directories.

    Returns:
        `Comparison`; ``print(comparison)`` shows the table and verdicts.

    Raises:
        StudyError: a study cannot be loaded, or the objectives differ.
        TypeError: a study is neither a `kp.Study` nor a path.

    Example:

    ```python
    base, new = kp.Study.load("saved_studies/base"), kp.Study.load("saved_studies/new")
    base.replicate(seeds=5, hypermodel=build, x=x, y=y, validation_data=val, epochs=10)
    new.replicate(seeds=5, hypermodel=build_new, x=x, y=y, validation_data=val, epochs=10)
    print(kp.compare(base, new))
    ```
    """
    studies = [
        s
        if isinstance(s, StudyReader)
        else StudyReader.load(
            validation.path(s, name, "a kp.Study or the path of a study directory")
        )
        for name, s in (("study_a", study_a), ("study_b", study_b))
    ]
    a, b = studies
    if (a.objective, a.direction) != (b.objective, b.direction):
        raise StudyError(
            f"The studies optimise different objectives ({a.objective} {a.direction} vs "
            f"{b.objective} {b.direction}); compare studies with the same objective."
        )
    samples_a, samples_b = _samples(a), _samples(b)
    if not samples_a or not samples_b:
        empty = a if not samples_a else b
        raise StudyError(
            f"Study {empty.name!r} has no completed trial; finish it before comparing."
        )
    shared = [label for label in samples_a if label in samples_b]
    if shared:
        pairs = [(label, samples_a[label], samples_b[label]) for label in shared]
    else:
        pairs = [("best", _best(samples_a), _best(samples_b))]
    rows = []
    for label, (va, sign, bad_a), (vb, _, bad_b) in pairs:
        row = {"scientific": label}
        for side, values, bad in (("a", va, bad_a), ("b", vb, bad_b)):
            row[f"{side}_mean"] = float(values.mean())
            row[f"{side}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            row[f"{side}_n"] = len(values)
            row[f"{side}_infeasible"] = bad
        row["difference"] = row["b_mean"] - row["a_mean"]
        if len(va) > 1 and len(vb) > 1:
            noise = math.sqrt(row["a_std"] ** 2 / len(va) + row["b_std"] ** 2 / len(vb))
            beats = abs(row["difference"]) > NOISE_SIGMAS * noise
        else:
            noise, beats = math.nan, None
        row["noise"] = noise
        row["beats_noise"] = beats
        row["better"] = None
        if row["difference"] != 0:
            row["better"] = "b" if sign * row["difference"] < 0 else "a"
        rows.append(row)
    table = pd.DataFrame(rows)
    return Comparison(table, a.objective, a.direction, (a.name, b.name))


def _best(samples):
    return min(samples.values(), key=lambda s: s[1] * s[0].mean())
