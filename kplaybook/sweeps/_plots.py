"""Thin matplotlib renderers of the sweeps' plot data (the data is computed and tested elsewhere)."""

import math


def _figure(ncols):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * ncols, 4.2), layout="constrained")
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def plot_lr_sweep(data):
    """Left: final training loss vs learning rate (unstable runs as red X); right: curves near lr*."""
    fig, (left, right) = _figure(2)
    start = [x for x in data["initial_loss"] if math.isfinite(x)]
    finite = [x for x in data["final_loss"] if math.isfinite(x)] + start
    top = max(finite) * 1.1 if finite else 1.0
    for lr, loss, unstable in zip(data["lrs"], data["final_loss"], data["unstable"]):
        if unstable:
            y = loss if math.isfinite(loss) else top
            left.scatter([lr], [y], marker="x", color="red", s=60, zorder=3)
        else:
            left.scatter([lr], [loss], color="tab:blue", s=30, zorder=3)
    stable_points = [
        (lr, loss)
        for lr, loss, u in zip(data["lrs"], data["final_loss"], data["unstable"])
        if not u
    ]
    if stable_points:
        left.plot(*zip(*stable_points), color="tab:blue", alpha=0.5)
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
    left.set_ylabel("final training loss")
    left.set_title("Learning-rate sweep")
    left.legend(fontsize="small")
    for lr, curve in data["curves"].items():
        right.plot(curve.index, curve["loss"], label=f"lr={lr:g}")
    right.set_xlabel("step")
    right.set_ylabel("training loss")
    right.set_yscale("log")
    right.set_title("Around lr* (PLAYBOOK.md 28)")
    right.legend(fontsize="small")
    return fig


def plot_warmup_sweep(data):
    """Training-loss curves at the target rate, one per warmup length; unstable runs dashed."""
    fig, (ax,) = _figure(1)
    for (w, curve), stable in zip(data["curves"].items(), data["stable"]):
        ax.plot(
            curve.index,
            curve["loss"],
            linestyle="-" if stable else "--",
            label=f"warmup {w}" + ("" if stable else " (unstable)"),
        )
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    shortest = data["shortest_stable_warmup"]
    ax.set_title(f"Warmup sweep at lr={data['base_lr']:g}: shortest stable warmup = {shortest}")
    ax.legend(fontsize="small")
    return fig
