"""Thin matplotlib renderers of `plot_data`'s NamedTuples.

They draw what the data functions computed and nothing else, on a
`matplotlib.figure.Figure` built without pyplot (no global state, safe in
scripts, notebooks and threads). Styles follow ../shared/reference_figures:
infeasible trials as red X along the top, the top 3 as green stars.
"""

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

_INFEASIBLE = "#e8544e"
_TOP = "#1fa774"


def _colour(i):
    return f"C{i % 10}"


def _grid(n, width=4.6, height=3.6, ncols=3):
    cols = min(n, ncols)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def render_axis(panels, title=None):
    """The basic hyperparameter axis plots: one panel per `AxisPanel`."""
    fig, axes = _grid(max(1, len(panels)))
    for ax, panel in zip(axes, panels):
        cells = np.unique(panel.cell) if len(panel.cell) else []
        for cell in cells:
            mask = (panel.cell == cell) & ~panel.clipped
            label = panel.cell_labels[cell] if len(panel.cell_labels) > 1 else "feasible trials"
            ax.scatter(
                panel.x[mask],
                panel.y[mask],
                s=28,
                facecolor="none" if len(panel.cell_labels) == 1 else _colour(cell),
                edgecolor=_colour(cell),
                alpha=0.85,
                label=label,
            )
        if panel.clipped.any():
            ax.scatter(
                panel.x[panel.clipped],
                panel.y[panel.clipped],
                marker="^" if panel.y_limit >= np.nanmin(panel.y) else "v",
                s=30,
                color="0.55",
                label=f"{int(panel.clipped.sum())} worse than the axis shows",
            )
        if len(panel.infeasible_x):
            ax.scatter(
                panel.infeasible_x,
                np.full(len(panel.infeasible_x), panel.infeasible_y),
                marker="X",
                s=60,
                color=_INFEASIBLE,
                edgecolor="#a02020",
                label="infeasible trials",
            )
        if len(panel.top):
            ax.scatter(
                panel.x[panel.top],
                panel.y[panel.top],
                marker="*",
                s=190,
                color=_TOP,
                edgecolor="#0b6b45",
                zorder=3,
                label="top 3 trials",
            )
        if panel.bounds is not None:
            for bound in panel.bounds:
                ax.axvline(bound, color="0.6", lw=0.8, ls="--")
        if panel.log_scale:
            ax.set_xscale("log")
        if panel.categories is not None:
            ax.set_xticks(range(len(panel.categories)), [str(c) for c in panel.categories])
        elif panel.integer and not panel.log_scale:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"{panel.hyperparameter} ({panel.role})")
        ax.set_ylabel(panel.objective)
        ax.grid(alpha=0.3)
    if panels:
        axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(title or "Basic hyperparameter axis plots")
    return fig


def render_isolation(data, title=None):
    """The isolation plot: best objective per scientific value, mean ± std of replicates."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.scatter(data.x, data.best, s=70, color="C0", zorder=3, label="best trial of the study")
    has = data.replicates > 0
    if has.any():
        ax.errorbar(
            data.x[has],
            data.mean[has],
            yerr=data.std[has],
            fmt="o",
            color="C1",
            capsize=5,
            label="seed replicates (mean ± std)",
        )
        ax.legend(fontsize=8)
    if data.log_scale:
        ax.set_xscale("log")
    if data.numeric:
        if not data.log_scale and len(data.x) <= 12:
            ax.set_xticks(data.x, [f"{v:g}" for v in data.x])
        ax.set_xlabel(data.scientific[0])
    else:
        ax.set_xticks(data.x, data.labels, rotation=20 if len(data.labels) > 4 else 0)
        ax.set_xlabel(", ".join(data.scientific) or "study")
    ax.set_ylabel(f"best {data.objective}")
    ax.grid(alpha=0.3)
    ax.set_title(title or "Isolation plot: best trial per scientific value")
    return fig


def render_curves(data, title=None):
    """Training and validation curves: best trial per scientific value bold, others faint."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, attr, metric in (
        (axes[0], "train", data.train_metric),
        (axes[1], "validation", data.validation_metric),
    ):
        faint = {}
        for series in data.series:
            values = getattr(series, attr)
            if series.bold:
                ax.plot(
                    series.epochs,
                    values,
                    color=_colour(series.cell),
                    lw=2.2,
                    label=f"{data.cell_labels[series.cell]} (trial {series.trial_id})",
                )
            else:
                faint.setdefault(series.cell, []).append(np.column_stack([series.epochs, values]))
        for cell, segments in faint.items():
            # One collection per colour: thousands of faint curves draw in one call.
            ax.add_collection(
                LineCollection(segments, colors=_colour(cell), linewidths=0.8, alpha=0.25)
            )
        ax.autoscale_view()
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title or "Training curves (best trial per scientific value in bold)")
    return fig


def render_grad_norms(data, title=None):
    """Gradient norm against step, and its histogram, with the clip thresholds."""
    fig = Figure(figsize=(11, 4.0), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[2, 1])
    left.plot(data.steps, data.grad_norm, lw=0.9, color="C0", label="gradient L2 norm")
    if np.isfinite(data.clip_threshold).any():
        left.plot(
            data.steps, data.clip_threshold, color=_INFEASIBLE, lw=1.2, label="clip threshold"
        )
    if np.isfinite(data.percentile_90):
        for ax in (left, right):
            line = ax.axhline if ax is left else ax.axvline
            line(
                data.percentile_90,
                color=_TOP,
                ls="--",
                lw=1.2,
                label="90th percentile (suggested threshold)",
            )
    if data.log_scale:
        left.set_yscale("log")
        right.set_xscale("log")
    left.set_xlabel("step")
    left.set_ylabel("gradient norm")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.stairs(data.histogram, data.bin_edges, fill=True, color="C0", alpha=0.6)
    right.set_xlabel("gradient norm")
    right.set_ylabel("steps")
    clipped = "" if data.clip_fraction is None else f", {data.clip_fraction:.0%} of steps clipped"
    fig.suptitle(title or f"Gradient norms of trial {data.trial_id}{clipped}")
    return fig


def render_sampling(panels, title=None):
    """Best-of-k against k per scientific value, as box plots (have_we_sampled_enough.png)."""
    fig, axes = _grid(max(1, len(panels)))
    for ax, panel in zip(axes, panels):
        stats = [
            {
                "whislo": q[0],
                "q1": q[1],
                "med": q[2],
                "q3": q[3],
                "whishi": q[4],
                "label": str(k),
            }
            for k, q in zip(panel.ks, panel.quantiles)
        ]
        positions = np.arange(len(stats))
        ax.bxp(stats, positions=positions, showfliers=False, widths=0.6)
        ax.plot(positions, panel.mean, color="C1", lw=1, label="expected best")
        step = max(1, len(stats) // 12)
        ax.set_xticks(positions[::step], [str(k) for k in panel.ks[::step]])
        ax.set_xlabel("number of trials k")
        ax.set_ylabel(f"best {panel.objective} of k")
        ax.set_title(f"{panel.label} ({panel.completed} completed)", fontsize=10)
        ax.grid(alpha=0.3)
    if panels:
        axes[0].legend(fontsize=8)
    fig.suptitle(title or "Have we sampled enough? Best of k trials (bootstrap)")
    return fig


def render_importance(panels, title=None):
    """Importance bars (alone and with interactions, intervals as error bars), pairs as a heat map."""
    fig = Figure(
        figsize=(
            10.5,
            3.2
            + 0.9 * len(panels)
            + 0.25 * max((len(p.names) for p in panels), default=1) * len(panels),
        ),
        layout="constrained",
    )
    axes = fig.subplots(len(panels), 2, squeeze=False, width_ratios=[3, 2])
    for (bars, heat), panel in zip(axes, panels):
        y = np.arange(len(panel.names))[::-1]
        bars.barh(y + 0.18, panel.first, height=0.36, color="C0", label="alone")
        bars.barh(
            y - 0.18, panel.total, height=0.36, color="C1", alpha=0.7, label="with interactions"
        )
        bars.errorbar(
            panel.total,
            y - 0.18,
            xerr=[
                np.clip(panel.total - panel.low, 0, None),
                np.clip(panel.high - panel.total, 0, None),
            ],
            fmt="none",
            ecolor="0.3",
            capsize=3,
            lw=1,
        )
        bars.set_yticks(y, panel.names)
        bars.set_xlim(0, max(1e-3, float(np.nanmax(panel.high)) * 1.1) if len(panel.high) else 1)
        bars.set_xlabel("share of the objective's variance")
        bars.set_title(f"{panel.label} ({panel.trials} trials)", fontsize=10)
        bars.grid(alpha=0.3, axis="x")
        bars.legend(fontsize=8, loc="lower right")
        shown = np.where(np.isfinite(panel.pairs), panel.pairs, 0.0)
        image = heat.imshow(shown, cmap="Oranges", vmin=0, vmax=max(0.05, float(shown.max())))
        heat.set_xticks(range(len(panel.names)), panel.names, rotation=45, ha="right", fontsize=8)
        heat.set_yticks(range(len(panel.names)), panel.names, fontsize=8)
        heat.set_title("interactions (pair shares)", fontsize=10)
        fig.colorbar(image, ax=heat, shrink=0.8)
    fig.suptitle(title or "Which hyperparameters matter")
    return fig


def render_contour(data, title=None):
    """The objective over two hyperparameters: filled contours, completed trials, infeasible as X."""
    fig = Figure(figsize=(6.4, 5.0), layout="constrained")
    ax = fig.add_subplot()
    filled = ax.contourf(data.grid_x, data.grid_y, data.z, levels=14, cmap="viridis_r", alpha=0.85)
    fig.colorbar(filled, ax=ax, label=data.objective)
    ax.scatter(data.x, data.y, c="white", edgecolor="black", s=24, label="completed trials")
    if len(data.infeasible_x):
        ax.scatter(
            data.infeasible_x,
            data.infeasible_y,
            marker="X",
            s=60,
            color=_INFEASIBLE,
            edgecolor="#a02020",
            label="infeasible trials",
        )
    for axis, log, categories, grid, setter in (
        (ax.xaxis, data.log_x, data.categories_x, data.grid_x, ax.set_xscale),
        (ax.yaxis, data.log_y, data.categories_y, data.grid_y, ax.set_yscale),
    ):
        if categories is not None:
            axis.set_ticks(grid, [str(c) for c in categories])
        elif log:
            setter("log")
    ax.set_xlabel(data.hp_x)
    ax.set_ylabel(data.hp_y)
    ax.legend(fontsize=8, loc="best")
    fig.suptitle(title or f"{data.objective} over {data.hp_x} and {data.hp_y}")
    return fig
