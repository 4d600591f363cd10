"""Pure functions that turn a study into the data of the playbook's plots.

Each returns small NamedTuples of numpy arrays and labels; `plots.py` draws
them. Tests check these, so what a plot shows is tested without pixels.
"""

import math
import typing

import numpy as np

from kplaybook import validation
from kplaybook.analysis import checks
from kplaybook.analysis import importance
from kplaybook.analysis._prepared import prepare
from kplaybook.records.reader import is_interval


class AxisPanel(typing.NamedTuple):
    """One basic hyperparameter axis plot: objective vs one hyperparameter ("Identifying bad search space boundaries").

    `x` holds numeric values, or category positions when `categories` is set;
    `cell` indexes `cell_labels` (the scientific value of each point).
    Infeasible trials are at `infeasible_y`, above every shown value (the
    top of the plot, whichever the objective's direction).
    `top` indexes the top 3 trials of the study among the points.

    The objective axis is zoomed onto the useful range: when some trials are
    far worse than most (`ZOOM_QUANTILE`, `ZOOM_MARGIN`), `y_limit` is the
    worst value shown; `clipped` marks the points whose value lay beyond it,
    drawn at `y_limit` (their true values stay in `y_true`). `y_limit` is
    None when nothing was clipped.
    """

    hyperparameter: str
    role: str
    log_scale: bool
    integer: bool
    categories: list | None
    bounds: tuple | None
    x: np.ndarray
    y: np.ndarray
    trial_ids: list
    cell: np.ndarray
    cell_labels: list
    infeasible_x: np.ndarray
    infeasible_y: float
    infeasible_trial_ids: list
    top: np.ndarray
    objective: str
    y_true: np.ndarray
    clipped: np.ndarray
    y_limit: float | None


class IsolationData(typing.NamedTuple):
    """The isolation plot: best objective per scientific value ("Detecting whether a change is useful with isolation plots").

    `mean`, `std` and `replicates` come from `study.replicate()` (NaN and 0
    when no replicate was run). `x` is numeric when the single scientific
    hyperparameter is numeric, else positions of `labels`.
    """

    scientific: list
    labels: list
    x: np.ndarray
    numeric: bool
    log_scale: bool
    best: np.ndarray
    trial_ids: list
    mean: np.ndarray
    std: np.ndarray
    replicates: np.ndarray
    objective: str


class CurveSeries(typing.NamedTuple):
    """One trial's curves: training `loss` and the validation objective (when logged)."""

    trial_id: str
    cell: int
    bold: bool
    epochs: np.ndarray
    train: np.ndarray
    validation: np.ndarray


class CurvesData(typing.NamedTuple):
    """Training curves: the best trial per scientific value bold, others faint."""

    series: list
    cell_labels: list
    train_metric: str
    validation_metric: str


class GradNormData(typing.NamedTuple):
    """Per-step gradient norms of one trial, their histogram and clip thresholds ("Gradient clipping").

    `clip_threshold` is the logged threshold per step (NaN when clipping was
    off or still collecting norms); `percentile_90` is the playbook's
    suggested starting threshold.
    """

    trial_id: str
    steps: np.ndarray
    grad_norm: np.ndarray
    clip_threshold: np.ndarray
    percentile_90: float
    clip_fraction: float | None
    histogram: np.ndarray
    bin_edges: np.ndarray
    log_scale: bool


class SamplingPanel(typing.NamedTuple):
    """Best-of-k against k for one scientific value ("Not sampling enough points in the search space").

    `quantiles[:, j]` are the 5, 25, 50, 75 and 95% quantiles of the best of
    k trials drawn with replacement, `mean` its expectation, in objective
    units; `late_gain` is what `check()` judges.
    """

    label: str
    completed: int
    ks: np.ndarray
    mean: np.ndarray
    quantiles: np.ndarray
    late_gain: float
    objective: str


class ImportancePanel(typing.NamedTuple):
    """The importance plot of one decomposition: shares with intervals, and pairs as a matrix.

    `first` and `total` per hyperparameter in `names` (largest total first),
    `low`/`high` the interval; `pairs[i, j]` the pair's interaction share
    (NaN where it was not estimated).
    """

    label: str
    names: list
    first: np.ndarray
    total: np.ndarray
    low: np.ndarray
    high: np.ndarray
    pairs: np.ndarray
    trials: int


class ContourData(typing.NamedTuple):
    """The objective over two hyperparameters (a smooth fit of the trials), trials on top.

    `grid_x`/`grid_y` are values along each axis, `z[j, i]` the fitted
    objective at (`grid_x[i]`, `grid_y[j]`); `x`, `y`, `value` the completed
    trials, `infeasible_x`/`_y` the infeasible ones; `categories_*` are set
    for categorical axes (the grids are then positions).
    """

    hp_x: str
    hp_y: str
    log_x: bool
    log_y: bool
    categories_x: list | None
    categories_y: list | None
    grid_x: np.ndarray
    grid_y: np.ndarray
    z: np.ndarray
    x: np.ndarray
    y: np.ndarray
    value: np.ndarray
    infeasible_x: np.ndarray
    infeasible_y: np.ndarray
    objective: str


#: Faint context curves drawn per scientific value with `which="best"`.
CONTEXT_CURVES = 10
#: The axis plots show the completed trials up to this quantile of their
#: objective, plus `ZOOM_MARGIN` of the span from the best to it: the good
#: region stays readable when a few trials are orders of magnitude worse
#: (the playbook's axis plots show the good region, not the outliers).
ZOOM_QUANTILE = 0.8
ZOOM_MARGIN = 0.25


def varied_hyperparameters(study):
    """Names of the hyperparameters that took more than one value in the study."""
    p = prepare(study)
    names = []
    for dim in p.dimensions:
        values = {v for v in p.values(dim.name) if checks._is_value(v)}
        if len(values) > 1:
            names.append(dim.name)
    return names


def axis_plot_data(study, hp_name=None):
    """One `AxisPanel` per varied hyperparameter (or only `hp_name`).

    Raises:
        KeyError: `hp_name` is not a varied hyperparameter of the study.
    """
    p = prepare(study)
    names = varied_hyperparameters(study)
    if hp_name is not None:
        if hp_name not in names:
            raise KeyError(
                f"{hp_name!r} is not a varied hyperparameter of study {study.name!r}; "
                f"pass one of {names}."
            )
        names = [hp_name]
    by_name = {dim.name: dim for dim in p.dimensions}
    top_rows = set(int(r) for r in p.top_rows(3))
    feasible = np.flatnonzero(p.completed & np.isfinite(p.loss))
    objective = p.sign * p.loss
    shown_loss = p.loss.copy()
    clipped_all = np.zeros(len(p.loss), dtype=bool)
    y_limit = None
    if len(feasible):
        losses = p.loss[feasible]
        best, quantile = float(losses.min()), float(np.quantile(losses, ZOOM_QUANTILE))
        limit = quantile + ZOOM_MARGIN * (quantile - best)
        if losses.max() > limit > best:
            clipped_all[feasible] = p.loss[feasible] > limit
            shown_loss = np.where(clipped_all, limit, p.loss)
            y_limit = float(p.sign * limit)
        shown = p.sign * shown_loss[feasible]
        # At the top, as in the playbook's figures, for either direction.
        top, bottom = shown.max(), shown.min()
        infeasible_y = float(top + 0.08 * ((top - bottom) or abs(top) or 1.0))
    else:
        infeasible_y = 1.0
    panels = []
    for name in names:
        dim = by_name[name]
        raw = p.values(name)
        active = np.array([checks._is_value(v) for v in raw], dtype=bool)
        categories = None
        if dim.numeric:
            x_all = np.full(len(raw), np.nan)
            x_all[active] = raw[active].astype(float)
        else:
            present = set(raw[active].tolist())
            categories = [v for v in (dim.values or []) if v in present]
            extra = sorted(present - set(categories), key=str)
            categories += extra
            position = {v: i for i, v in enumerate(categories)}
            x_all = np.array([position[v] if ok else np.nan for v, ok in zip(raw, active)])
        rows = feasible[active[feasible]]
        bad = np.flatnonzero(p.infeasible & active)
        panels.append(
            AxisPanel(
                hyperparameter=name,
                role=dim.role,
                log_scale=bool(dim.log),
                integer=dim.integer,
                categories=categories,
                bounds=(dim.low, dim.high) if dim.numeric else None,
                x=x_all[rows],
                y=p.sign * shown_loss[rows],
                trial_ids=p.trial_ids[rows].tolist(),
                cell=p.cell_index[rows],
                cell_labels=[p.cell_label(i) for i in range(len(p.cells))],
                infeasible_x=x_all[bad],
                infeasible_y=infeasible_y,
                infeasible_trial_ids=p.trial_ids[bad].tolist(),
                top=np.array([i for i, r in enumerate(rows) if int(r) in top_rows], dtype=int),
                objective=p.objective,
                y_true=objective[rows],
                clipped=clipped_all[rows],
                y_limit=y_limit,
            )
        )
    return panels


def isolation_plot_data(study):
    """The `IsolationData` of `study` (replicates included when `study.replicate()` ran)."""
    p = prepare(study)
    best = p.best_rows()
    labels = [p.cell_label(i) for i in range(len(p.cells))]
    names = list(p.scientific)
    values = [cell.get(names[0]) if len(names) == 1 else None for cell in p.cells]
    if values and all(is_interval(v) for v in values):
        # A joint study's binned range: each bin at its centre, on the search's scale.
        log = any(d.name == names[0] and d.log for d in p.dimensions)
        values = [math.sqrt(a * b) if log and a > 0 else (a + b) / 2 for a, b in values]
    numeric = len(names) == 1 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    )
    x = np.array(values, dtype=float) if numeric else np.arange(len(p.cells), dtype=float)
    log_scale = bool(numeric and np.all(x > 0) and x.max() / x.min() >= 100)
    best_values = np.array(
        [p.sign * p.loss[best[i]] if i in best else np.nan for i in range(len(p.cells))]
    )
    replicates = study.replicates()
    mean = np.full(len(p.cells), np.nan)
    std = np.zeros(len(p.cells))
    count = np.zeros(len(p.cells), dtype=int)
    if len(replicates):
        for i in range(len(p.cells)):
            done = replicates[(replicates["cell"] == i) & np.isfinite(replicates["objective"])]
            if i in best:
                done = done[done["trial_id"] == p.trial_id(best[i])]
            if len(done):
                mean[i] = done["objective"].mean()
                std[i] = done["objective"].std(ddof=1) if len(done) > 1 else 0.0
                count[i] = len(done)
    return IsolationData(
        scientific=names,
        labels=labels,
        x=x,
        numeric=numeric,
        log_scale=log_scale,
        best=best_values,
        trial_ids=[p.trial_id(best[i]) if i in best else None for i in range(len(p.cells))],
        mean=mean,
        std=std,
        replicates=count,
        objective=p.objective,
    )


def curves_plot_data(study, which="best"):
    """`CurvesData` of `study`.

    Args:
        which: "best" (each scientific value's best trial bold, its next
            `CONTEXT_CURVES` best faint), "all" (every completed trial faint,
            the best bold), or a list of trial ids (all drawn bold).
    """
    p = prepare(study)
    best = p.best_rows()
    best_set = set(best.values())
    if isinstance(which, str):
        if which not in ("best", "all"):
            raise ValueError(f'which must be "best", "all" or a list of trial ids, got {which!r}.')
        rows = []
        for i in range(len(p.cells)):
            cell_rows = np.flatnonzero((p.cell_index == i) & p.completed & np.isfinite(p.loss))
            cell_rows = cell_rows[np.argsort(p.loss[cell_rows], kind="stable")]
            if which == "best":
                cell_rows = cell_rows[: CONTEXT_CURVES + 1]
            rows.extend(int(r) for r in cell_rows)
        bold = best_set
    else:
        which = validation.sequence(which, "which", '"best", "all" or a list of trial ids')
        if not which:
            raise ValueError(
                'which is an empty list; pass "best", "all" or the ids of the trials to draw.'
            )
        index = {tid: i for i, tid in enumerate(p.frame["trial_id"])}
        rows = [index[study.trial(trial_id).trial_id] for trial_id in which]
        bold = set(rows)
    validation_metric = p.objective if p.objective != "loss" else "val_loss"
    series = []
    for row in sorted(rows, key=lambda r: r in bold):  # bold drawn last, on top
        epochs, columns = study.curve_arrays(p.trial_id(row))
        nan = np.full(len(epochs), np.nan)
        series.append(
            CurveSeries(
                trial_id=p.trial_id(row),
                cell=int(p.cell_index[row]),
                bold=row in bold,
                epochs=epochs,
                train=columns.get("loss", nan),
                validation=columns.get(validation_metric, nan),
            )
        )
    return CurvesData(
        series=series,
        cell_labels=[p.cell_label(i) for i in range(len(p.cells))],
        train_metric="loss",
        validation_metric=validation_metric,
    )


def grad_norm_plot_data(study, trial_id, bins=40):
    """`GradNormData` of one trial.

    Raises:
        ValueError: the trial has no per-step gradient norms.
    """
    steps = study.steps(trial_id)
    if "grad_norm" not in steps or not steps["grad_norm"].notna().any():
        raise ValueError(
            f"Trial {trial_id!r} has no per-step gradient norms; run the search with "
            "kp.callbacks.GradientNormLogger() (or GradientClipping) among the callbacks."
        )
    norms = steps["grad_norm"].to_numpy(dtype=float)
    finite = norms[np.isfinite(norms)]
    threshold = (
        steps["clip_threshold"].to_numpy(dtype=float)
        if "clip_threshold" in steps
        else np.full(len(steps), np.nan)
    )
    threshold = np.where(np.isfinite(threshold), threshold, np.nan)
    positive = finite[finite > 0]
    log_scale = bool(len(positive) and positive.max() / positive.min() > 100)
    if log_scale:
        edges = np.geomspace(positive.min(), positive.max(), bins + 1)
        histogram, edges = np.histogram(positive, bins=edges)
    else:
        histogram, edges = np.histogram(finite, bins=bins)
    fractions = study.curves(trial_id).get("clip_fraction")
    return GradNormData(
        trial_id=str(trial_id),
        steps=steps.index.to_numpy(),
        grad_norm=norms,
        clip_threshold=threshold,
        percentile_90=float(np.percentile(finite, 90)) if len(finite) else math.nan,
        clip_fraction=None if fractions is None else float(fractions.mean()),
        histogram=histogram,
        bin_edges=edges,
        log_scale=log_scale,
    )


def best_trial_with_grad_norms(study):
    """The id of the best completed trial that logged per-step gradient norms.

    Raises:
        ValueError: no trial logged them (the message says how to log them).
    """
    for trial_id in study.ranked():
        if study.has_steps(trial_id) and "grad_norm" in study.steps(trial_id):
            return trial_id
    raise ValueError(
        f"No trial of study {study.name!r} logged per-step gradient norms; run the "
        "search with kp.callbacks.GradientNormLogger() among the callbacks."
    )


def sampling_plot_data(study):
    """One `SamplingPanel` per scientific value with at least 2 completed trials."""
    p = prepare(study)
    panels = []
    for i in range(len(p.cells)):
        rows = np.flatnonzero((p.cell_index == i) & p.completed & np.isfinite(p.loss))
        if len(rows) < 2:
            continue
        ks = checks.sampling_ks(len(rows))
        mean, quantiles = checks._best_of_k(p.loss[rows], ks)
        panels.append(
            SamplingPanel(
                label=p.cell_label(i),
                completed=len(rows),
                ks=ks,
                mean=p.sign * mean,
                quantiles=p.sign * quantiles,
                late_gain=checks.late_gain(mean, ks),
                objective=p.objective,
            )
        )
    return panels


def importance_plot_data(study, by_scientific=False, **kwargs):
    """One `ImportancePanel` per decomposition of `study.importance` (see `importance_data`)."""
    panels = []
    for r in importance.importance_data(study, by_scientific=by_scientific, **kwargs):
        order = np.argsort(-r.total, kind="stable")
        names = [r.names[i] for i in order]
        position = {old: new for new, old in enumerate(order)}
        pairs = np.full((len(names), len(names)), np.nan)
        for (i, j), (share, _, _) in r.pairs.items():
            a, b = position[i], position[j]
            pairs[a, b] = pairs[b, a] = share
        panels.append(
            ImportancePanel(
                r.label,
                names,
                r.first[order],
                r.total[order],
                r.low[order],
                r.high[order],
                pairs,
                r.trials,
            )
        )
    return panels


#: Points per axis of the contour plot's grid.
CONTOUR_GRID = 40


def contour_plot_data(study, hp_x, hp_y):
    """`ContourData` of two varied hyperparameters of `study`.

    The surface is a Gaussian process fitted to the completed trials'
    objective in the two hyperparameters' sampled coordinates: what the
    objective does along them, the other hyperparameters averaged out.

    Raises:
        KeyError: a name that is not a varied hyperparameter of the study.
        ValueError: the same name twice, or fewer than 3 completed trials.
    """
    p = prepare(study)
    names = varied_hyperparameters(study)
    for name in (hp_x, hp_y):
        if name not in names:
            raise KeyError(
                f"{name!r} is not a varied hyperparameter of study {study.name!r}; pass two of {names}."
            )
    if hp_x == hp_y:
        raise ValueError(f"plot_contour needs two different hyperparameters, got {hp_x!r} twice.")
    by_name = {dim.name: dim for dim in p.dimensions}
    dims = [by_name[hp_x], by_name[hp_y]]
    done = np.flatnonzero(p.completed & np.isfinite(p.loss))
    done = done[
        [all(checks._is_value(v) for v in (p.values(hp_x)[r], p.values(hp_y)[r])) for r in done]
    ]
    if len(done) < 3:
        raise ValueError(
            f"Study {study.name!r} has {len(done)} completed trials with both {hp_x} and {hp_y}; "
            "a contour needs at least 3."
        )
    points = importance.encode(p, dims, done)
    surface = importance.fit_curve(points, p.loss[done])
    axes = []
    for k, dim in enumerate(dims):
        if dim.numeric:
            u = np.linspace(0.0, 1.0, CONTOUR_GRID)
            axes.append((u, dim.value_at(u), None))
        else:
            codes = np.unique(points[:, k])
            categories = importance.categories(p, dim)
            axes.append(
                (
                    codes,
                    np.arange(len(codes), dtype=float),
                    [categories[int(round(c * max(len(categories) - 1, 1)))] for c in codes],
                )
            )
    (ux, gx, cx), (uy, gy, cy) = axes
    mesh = np.array([[a, b] for b in uy for a in ux])
    z = p.sign * surface(mesh).reshape(len(uy), len(ux))

    def shown(dim, k, rows, categories_axis, codes):
        if dim.numeric:
            return p.values(dim.name)[rows].astype(float)
        encoded = importance.encode(p, [dim], rows)[:, 0]
        return np.array([float(np.argmin(np.abs(codes - c))) for c in encoded])

    bad = np.flatnonzero(p.infeasible)
    bad = bad[
        [all(checks._is_value(v) for v in (p.values(hp_x)[r], p.values(hp_y)[r])) for r in bad]
    ]
    return ContourData(
        hp_x=hp_x,
        hp_y=hp_y,
        log_x=bool(dims[0].log),
        log_y=bool(dims[1].log),
        categories_x=cx,
        categories_y=cy,
        grid_x=gx,
        grid_y=gy,
        z=z,
        x=shown(dims[0], 0, done, cx, ux),
        y=shown(dims[1], 1, done, cy, uy),
        value=p.sign * p.loss[done],
        infeasible_x=shown(dims[0], 0, bad, cx, ux),
        infeasible_y=shown(dims[1], 1, bad, cy, uy),
        objective=p.objective,
    )
