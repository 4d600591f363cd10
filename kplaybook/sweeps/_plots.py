"""Thin matplotlib renderers of the sweeps' plot data (the data is computed and tested elsewhere)."""

import math

from matplotlib.figure import Figure


def _figure(ncols):
    fig = Figure(figsize=(5.5 * ncols, 4.2), layout="constrained")
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _finite(values):
    return [v for v in values if v is not None and math.isfinite(v)]


def _log_if_positive(ax, values):
    finite = _finite(values)
    if finite and min(finite) > 0:
        ax.set_yscale("log")


def _curves(ax, curves, diverged_steps, labels, dashed):
    """Loss curves; a run that diverged gets a red X at its last step, at the top of the axis."""
    everything = [v for curve in curves for v in curve["loss"].tolist()]
    _log_if_positive(ax, everything)
    finite = _finite(everything)
    top = max(finite) if finite else 1.0
    marked = 0
    for curve, step, label, dash in zip(curves, diverged_steps, labels, dashed):
        (line,) = ax.plot(curve.index, curve["loss"], linestyle="--" if dash else "-", label=label)
        if step is not None:
            marked += 1
            ax.scatter([step], [top], marker="x", color="red", s=60, zorder=3)
            ax.annotate(
                f"{label}: diverged at step {step}",
                (step, top),
                textcoords="offset points",
                xytext=(6, -11 * marked),
                fontsize="x-small",
                color=line.get_color(),
            )
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")


def plot_lr_sweep(data):
    """Left: final training loss vs learning rate (unstable runs as red X); right: curves near lr*."""
    fig, (left, right) = _figure(2)
    start = _finite(data["initial_loss"])
    shown = _finite(data["final_loss"]) + start
    _log_if_positive(left, shown)
    top = max(shown) * 1.5 if shown else 1.0
    stable_points = []
    for lr, loss, unstable in zip(data["lrs"], data["final_loss"], data["unstable"]):
        if unstable:
            y = loss if math.isfinite(loss) else top
            left.scatter([lr], [y], marker="x", color="red", s=60, zorder=3)
        else:
            stable_points.append((lr, loss))
    if stable_points:
        left.plot(*zip(*stable_points), "o-", color="tab:blue", zorder=2)
    if start:
        left.axhline(sum(start) / len(start), color="grey", linestyle=":", label="starting loss")
    if data["best_lr"] is not None:
        left.axvline(
            data["best_lr"], color="tab:green", linestyle="--", label=f"lr* = {data['best_lr']:g}"
        )
    if data["unstable_lr"] is not None:
        left.axvline(
            data["unstable_lr"],
            color="red",
            linestyle="--",
            label=f"unstable from {data['unstable_lr']:g}",
        )
    left.set_xscale("log")
    left.set_xlabel("learning rate")
    left.set_ylabel("final training loss (red X: unstable)")
    left.set_title("Learning-rate sweep")
    left.legend(fontsize="small")
    lrs = list(data["curves"])
    _curves(
        right,
        [data["curves"][lr] for lr in lrs],
        [data["diverged_step"].get(lr) for lr in lrs],
        [f"lr={lr:g}" for lr in lrs],
        [data["unstable_lr"] is not None and lr >= data["unstable_lr"] for lr in lrs],
    )
    right.set_title("Around lr*: unstable just above it?")
    right.legend(fontsize="small")
    return fig


def plot_warmup_sweep(data):
    """Training-loss curves at the target rate, one per warmup length; unstable runs dashed."""
    fig, (ax,) = _figure(1)
    warmups = data["warmup_steps"]
    _curves(
        ax,
        [data["curves"][w] for w in warmups],
        data["diverged_step"],
        [f"warmup {w}" + ("" if ok else " (unstable)") for w, ok in zip(warmups, data["stable"])],
        [not ok for ok in data["stable"]],
    )
    shortest = data["shortest_stable_warmup"]
    ax.set_title(f"Warmup sweep at lr={data['base_lr']:g}: shortest stable warmup = {shortest}")
    ax.legend(fontsize="small")
    return fig
