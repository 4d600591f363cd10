"""The study data every check and plot reads, prepared once per study.

Following Optuna's split, the checks (`checks.py`) and the plot data
(`plot_data.py`) are pure functions of a `Prepared` study, and the renderers
(`plots.py`) only draw what those return. A `Prepared` is built from a
`kplaybook.records.StudyReader`'s public methods, once per reader (a reader
is a snapshot of its directory).
"""

import math
import weakref

import numpy as np

from kplaybook.records import best_position
from kplaybook.records import hp_column
from kplaybook.records import sign
from kplaybook.records.reader import format_cell_value
from kplaybook.records.reader import in_cell
from kplaybook.records.reader import is_interval

_PREPARED = weakref.WeakKeyDictionary()


class Dimension:
    """One varied hyperparameter of the search space, with its coordinates.

    `coordinate(values)` maps values to [0, 1] the way the quasi-random
    search samples them (log space for log dimensions), so
    "the outer 10% of a dimension" means the same thing as in the sampling.
    """

    def __init__(self, hp, role):
        self.name = hp.name
        self.role = role
        self.hp = hp
        self.numeric = hp.numeric
        self.integer = hp.kind == "Int"
        self.log = self.numeric and hp.sampling in ("log", "reverse_log")
        self.reverse = self.numeric and hp.sampling == "reverse_log"
        self.ordered_numeric = False
        self.values = None
        if self.numeric:
            self.low, self.high = float(hp.min_value), float(hp.max_value)
        elif hp.kind == "Choice":
            self.values = list(hp.values)
            self.ordered_numeric = (
                bool(hp.ordered)
                and len(self.values) >= 3
                and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values
                )
            )
            if self.ordered_numeric:
                self.low, self.high = float(min(self.values)), float(max(self.values))
        elif hp.kind == "Boolean":
            self.values = [False, True]

    def coordinate(self, values):
        """Values as [0, 1] coordinates of the range (numeric dimensions only)."""
        x = np.asarray(values, dtype=float)
        low, high = self.low, self.high
        if high == low:
            return np.zeros_like(x)
        if self.reverse:
            # Dense near the top: log of the distance to the top, mirrored.
            x = high + low - x
        if self.log:
            u = (np.log(x) - math.log(low)) / (math.log(high) - math.log(low))
        else:
            u = (x - low) / (high - low)
        return 1.0 - u if self.reverse else u

    def value_at(self, u):
        """The values at [0, 1] coordinates `u` (the inverse of `coordinate`; numeric dimensions)."""
        u = np.asarray(u, dtype=float)
        low, high = self.low, self.high
        if self.reverse:
            u = 1.0 - u
        if self.log:
            x = np.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        else:
            x = low + u * (high - low)
        return high + low - x if self.reverse else x


class Prepared:
    """A study's table, roles, scientific cells and curves, in the form the analysis needs.

    Args:
        study: a `kplaybook.records.StudyReader` (a `kp.Study`).
    """

    def __init__(self, study):
        self.study = study
        self.objective = study.objective
        self.direction = study.direction
        # Every comparison is made on `sign * objective`: lower is better.
        self.sign = sign(self.direction)
        self.frame = study.to_dataframe()
        self.trial_ids = self.frame["trial_id"].to_numpy(dtype=object)
        self.scientific = study.scientific
        self.cells = study.cells
        self.cell_index = self._cell_index()
        self.completed = self.frame["status"].to_numpy() == "completed"
        self.infeasible = self.frame["status"].to_numpy() == "infeasible"
        self.loss = self.sign * self.frame["objective"].to_numpy(dtype=float)
        self.dimensions = self._dimensions()
        self._best = None
        self.findings = None  # run_checks caches its result: a study is a snapshot

    # -- scientific cells ----------------------------------------------------

    def _cell_index(self):
        """For each trial (row), the index of its scientific cell, -1 when none matches."""
        index = np.full(len(self.frame), -1, dtype=np.int64)
        if not self.scientific:
            index[:] = 0
            return index
        for i, cell in reversed(list(enumerate(self.cells))):  # the first matching cell wins
            mask = np.ones(len(self.frame), dtype=bool)
            for name, value in cell.items():
                column = self.frame[hp_column(name)].to_numpy(dtype=object)
                mask &= np.array([in_cell(v, value) for v in column], dtype=bool)
            index[mask] = i
        return index

    def cell_label(self, i):
        """A readable label of scientific cell `i`, e.g. "num_layers=2" ("all trials" without one)."""
        cell = self.cells[i]
        if not cell:
            return "all trials"
        return ", ".join(
            f"{name} in {format_cell_value(value)}" if is_interval(value) else f"{name}={value}"
            for name, value in cell.items()
        )

    def best_rows(self):
        """dict cell index -> row index of the cell's best completed trial (cells without one left out)."""
        if self._best is None:
            self._best = {}
            for i in range(len(self.cells)):
                rows = np.flatnonzero((self.cell_index == i) & self.completed)
                position = best_position(self.sign * self.loss[rows], self.direction)
                if position is not None:
                    self._best[i] = int(rows[position])
        return self._best

    def top_rows(self, k):
        """Row indices of the `k` best completed trials of the whole study, best first."""
        rows = np.flatnonzero(self.completed & np.isfinite(self.loss))
        return rows[np.argsort(self.loss[rows], kind="stable")][:k]

    # -- search space --------------------------------------------------------

    def _dimensions(self):
        dimensions = []
        for hp in self.study.hyperparameters:
            if not hp.tunable or hp.name in self.study.fixed:
                continue
            if hp.name in self.scientific:
                role = "scientific"
            else:
                role = "nuisance"
            dimensions.append(Dimension(hp, role))
        return dimensions

    def values(self, name):
        """The column of hyperparameter `name` as an object array (None where inactive)."""
        return self.frame[hp_column(name)].to_numpy(dtype=object)

    # -- curves --------------------------------------------------------------

    def trial_id(self, row):
        """The trial id of table row `row`."""
        return self.trial_ids[row]

    def curve(self, row, metric=None):
        """(epochs, values) of `metric` (the objective by default) for the trial in `row`.

        Epochs without a value are dropped.
        """
        epochs, columns = self.study.curve_arrays(self.trial_id(row))
        values = columns.get(metric or self.objective)
        if values is None:
            return epochs[:0], np.zeros(0)
        keep = ~np.isnan(values)
        return epochs[keep], values[keep]

    def metrics(self, row):
        """Names of the metrics the trial in `row` logged."""
        return list(self.study.curve_arrays(self.trial_id(row))[1])


def prepare(study):
    """The `Prepared` data of `study` (a `StudyReader`), built on first use and kept for it."""
    prepared = _PREPARED.get(study)
    if prepared is None:
        prepared = _PREPARED[study] = Prepared(study)
    return prepared
