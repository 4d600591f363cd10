"""The playbook's questions about a finished round of experiments, asked of a study.

The thresholds below cite the public playbook's sections by title (their
addresses are in `kplaybook.citations`); each finding carries its section's
address as `Finding.reference`.

`run_checks(study)` (also `study.check()`) returns a list of `Finding`s: one
per problem found, each with a code, a severity, a one-sentence message, what
to do about it and the numbers behind it. A study without a problem gives no
finding with that problem's code. Every threshold is a named constant below
with where it comes from; where the playbook gives no number, the comment
says what the number means instead.
"""

import math

import numpy as np
import pandas as pd

from kplaybook import roles
from kplaybook.analysis import importance
from kplaybook.analysis._prepared import prepare
from kplaybook.callbacks.gradient_clipping import AGGRESSIVE_CLIP_FRACTION
from kplaybook.citations import mention
from kplaybook.citations import url
from kplaybook.errors import TooFewTrials
from kplaybook.findings import Finding
from kplaybook.records import markers

# -- thresholds ----------------------------------------------------------------

#: "Identifying bad search space boundaries" ("best trials near a boundary"); "near" is
#: the outer 10% of a dimension, in the coordinates the search samples in.
BOUNDARY_FRACTION = 0.10
#: For "the best trial is the sampled extreme and the objective improves
#: towards that edge": the trials compared with the rest are this share of a
#: cell's completed trials nearest the edge (at least 2).
EDGE_NEIGHBOURS_FRACTION = 1 / 3
#: "Extracting insight from experimental results" gives no number for "a large infeasible fraction": above a
#: quarter of the trials, the budget lost to infeasible points is a warning.
INFEASIBLE_WARNING_FRACTION = 0.25
#: "Identifying bad search space boundaries": "all trials above some LR are infeasible": at least this
#: many trials in a row at the top of a dimension, and none feasible above.
INFEASIBLE_EDGE_MIN_TRIALS = 2
#: have_we_sampled_enough.png starts at 6 trials: fewer cannot be judged.
MIN_TRIALS_FOR_SAMPLING = 6
#: "Not sampling enough points in the search space" gives no formula. The expected best-of-k flattens once
#: enough trials land in the good region; if the second half of the budget
#: (k = n/2 to n) still brought more than this share of the expected gain
#: from k = 1 to k = n, the curve has not flattened: more trials needed.
#: For objective values spread evenly the second half brings about 2/n of
#: the gain, so 0.15 asks for about 14 trials: where the boxes of
#: have_we_sampled_enough.png stop shrinking. Fewer trials pass when many
#: land near the best, more are needed when the best is a lone outlier.
SAMPLING_LATE_GAIN = 0.15
#: "Examining the training curves", "worsens by a meaningful margin": the final validation
#: value is worse than its minimum by more than 5% of that minimum.
OVERFITTING_MARGIN = 0.05
#: Epochs after the validation minimum needed to call a rise "worsening".
OVERFITTING_EPOCHS_AFTER = 2
#: "Examining the training curves", "late in training": the last quarter of the epochs.
LATE_FRACTION = 0.25
#: "Examining the training curves" gives no number for "high variance": epoch-to-epoch noise
#: of the validation objective above 5% of its value in the last quarter.
LATE_VARIANCE_RATIO = 0.05
#: "Examining the training curves": "still improving over the last 10% of training".
STILL_IMPROVING_FRACTION = 0.10
#: A gain counts as improvement when above 1% of the curve's total gain
#: (first epoch to best); smaller gains are within noise of a flat curve.
IMPROVEMENT_TOLERANCE = 0.01
#: "Examining the training curves", "saturated long before the end": no improvement over the
#: whole second half of training.
SATURATED_FRACTION = 0.5
#: "Deciding how long to train when training is not compute-bound": best step
#: always in the first 10% -> far too many steps.
BEST_STEP_EARLY_FRACTION = 0.10
#: the same section: best step consistently in the last 25% -> train longer.
BEST_STEP_LATE_FRACTION = 0.25
#: "Consistently": at least three quarters of the best trials.
BEST_STEP_CONSISTENT_SHARE = 0.75
#: The trials whose best step is judged: each scientific value's best trial
#: and the study's top 3 (the top 3 of the playbook's axis plots).
TOP_TRIALS = 3

#: "Exploration vs exploitation": a nuisance hyperparameter whose share of the
#: objective's variance, interactions included, stays below this (the upper
#: end of its 90% interval) for every scientific value barely matters: it can
#: be fixed to simplify later rounds.
INSENSITIVE_SHARE = 0.03
#: A pair of hyperparameters that explains at least this share together,
#: beyond each one's own (and at least half of it at the low end of the
#: interval), interacts: tune both, never fix one of them.
INTERACTION_SHARE = 0.10

SEVERITIES = ("warning", "info")

CODES = (
    "boundary",
    "infeasible_fraction",
    "sampling_density",
    "overfitting",
    "late_variance",
    "still_improving",
    "saturated",
    "best_step_early",
    "best_step_late",
    "aggressive_clipping",
    "fixed_optimizer_hparams",
    "failed_trials",
    "insensitive",
    "interaction",
    "joint_design",
)


def run_checks(study):
    """All of the playbook's checks on `study`; warnings first. See `Study.check`."""
    p = prepare(study)
    if p.findings is not None:
        return list(p.findings)
    findings = []
    for check in (
        _boundary,
        _infeasible_fraction,
        _sampling_density,
        _overfitting,
        _late_variance,
        _improving_or_saturated,
        _best_step,
        _aggressive_clipping,
        _fixed_optimizer_hparams,
        _failed_trials,
        _sensitivity,
        _joint_design,
    ):
        findings.extend(check(p))
    p.findings = sorted(findings, key=lambda f: SEVERITIES.index(f.severity))
    return list(p.findings)


# -- search space ----------------------------------------------------------------


def _numeric_coordinates(p, dim):
    """(active mask, [0, 1] coordinates, raw float values) of a numeric dimension.

    An ordered numeric Choice has its values' positions in the list as coordinates.
    """
    raw = p.values(dim.name)
    active = np.array([_is_value(v) for v in raw], dtype=bool)
    x = np.full(len(raw), np.nan)
    x[active] = raw[active].astype(float)
    u = np.full(len(raw), np.nan)
    if dim.numeric:
        u[active] = dim.coordinate(x[active])
    else:
        ordered = sorted(float(v) for v in dim.values)
        position = {v: i / (len(ordered) - 1) for i, v in enumerate(ordered)}
        u[active] = [position.get(float(v), np.nan) for v in x[active]]
    return active, u, x


def _is_value(v):
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _improves_towards(p, rows, u, edge):
    """Whether the completed trials nearest `edge` of a dimension beat the others (median)."""
    rows = rows[np.isfinite(p.loss[rows])]
    if len(rows) < 3:
        return False
    order = rows[np.argsort(u[rows] if edge == "low" else -u[rows], kind="stable")]
    near = max(2, int(math.ceil(EDGE_NEIGHBOURS_FRACTION * len(order))))
    near = min(near, len(order) - 1)
    return float(np.median(p.loss[order[:near]])) < float(np.median(p.loss[order[near:]]))


def _boundary(p):
    findings = []
    best = p.best_rows()
    for dim in p.dimensions:
        if not (dim.numeric or dim.ordered_numeric) or dim.role != "nuisance":
            continue
        active, u, x = _numeric_coordinates(p, dim)
        hits = {"low": [], "high": []}
        for cell, row in best.items():
            if not active[row] or np.isnan(u[row]):
                continue
            in_cell = (p.cell_index == cell) & active
            sampled = np.flatnonzero(in_cell & (p.completed | p.infeasible))
            completed = np.flatnonzero(in_cell & p.completed)
            if dim.numeric:
                low_outer = u[row] <= BOUNDARY_FRACTION
                high_outer = u[row] >= 1 - BOUNDARY_FRACTION
                low_extreme = u[row] <= np.nanmin(u[sampled])
                high_extreme = u[row] >= np.nanmax(u[sampled])
            else:
                # A list of a few values: every end value is "outer"; flag
                # it only when the objective also improves towards it.
                low_outer = high_outer = False
                low_extreme, high_extreme = u[row] == 0.0, u[row] == 1.0
            for edge, outer, extreme in (
                ("low", low_outer, low_extreme),
                ("high", high_outer, high_extreme),
            ):
                if outer or (extreme and _improves_towards(p, completed, u, edge)):
                    hits[edge].append((cell, row))
        for edge, cells in hits.items():
            if not cells:
                continue
            bound = dim.low if edge == "low" else dim.high
            where = "below" if edge == "low" else "above"
            values = [float(x[row]) for _, row in cells]
            labels = [p.cell_label(cell) for cell, _ in cells]
            findings.append(
                Finding(
                    "boundary",
                    "warning",
                    f"The best trial of {_count(len(cells), 'scientific value')} "
                    f"({'; '.join(labels)}) has {dim.name} at "
                    f"{', '.join(_fmt(v) for v in values)}, at the {edge} edge of its "
                    f"range [{_fmt(dim.low)}, {_fmt(dim.high)}]: the search space may "
                    "be too small.",
                    f"Expand {dim.name}'s range {where} {_fmt(bound)} and re-run "
                    f"before concluding {mention('search_space_boundaries')}.",
                    {
                        "hyperparameter": dim.name,
                        "edge": edge,
                        "range": [dim.low, dim.high],
                        "log_scale": dim.log,
                        "trials": [p.trial_id(row) for _, row in cells],
                        "values": values,
                        "coordinates": [float(u[row]) for _, row in cells],
                        "scientific": labels,
                    },
                    url("search_space_boundaries"),
                )
            )
    return findings


def _infeasible_fraction(p):
    infeasible = int(p.infeasible.sum())
    if not infeasible:
        return []
    judged = infeasible + int(p.completed.sum())
    share = infeasible / judged
    reasons = p.frame.loc[p.infeasible, "infeasible_reason"].value_counts().to_dict()
    edges = _infeasible_edges(p)
    evidence = {
        "infeasible": infeasible,
        "completed": int(p.completed.sum()),
        "fraction": share,
        "reasons": {str(k): int(v) for k, v in reasons.items()},
        "edges": edges,
    }
    message = (
        f"{infeasible} of {judged} trials ({share:.0%}) were infeasible "
        f"({', '.join(f'{k}: {v}' for k, v in evidence['reasons'].items())})."
    )
    unstable = [e for e in edges if e["best_at_edge"]]
    if unstable:
        edge = unstable[0]
        message = message[:-1] + (
            f"; every trial with {edge['hyperparameter']} ≥ {_fmt(edge['threshold'])} "
            f"({edge['trials']} trials) was infeasible and the best trials sit just "
            "below that edge: training instability is suspected."
        )
        recommendation = (
            f"Make higher {edge['hyperparameter']} values stable (learning-rate warmup, "
            "gradient clipping: kp.warmup_sweep, kp.callbacks.GradientClipping) rather "
            f"than narrowing the range {mention('instability_fixes')}."
        )
        reference = url("instability_fixes")
        severity = "warning"
    elif share > INFEASIBLE_WARNING_FRACTION:
        recommendation = (
            "Narrow or re-parameterise the search space, or look for a bug behind the "
            f"reasons above {mention('extracting_insight')}."
        )
        reference = url("extracting_insight")
        severity = "warning"
    else:
        recommendation = (
            "Nothing to do: a few infeasible trials are a normal part of a search "
            f"{mention('extracting_insight')}."
        )
        reference = url("extracting_insight")
        severity = "info"
    return [Finding("infeasible_fraction", severity, message, recommendation, evidence, reference)]


#: Reasons that mean training was unstable (an out-of-memory trial is not).
INSTABILITY_REASONS = markers.INSTABILITY_REASONS


def _infeasible_edges(p):
    """Optimizer hyperparameters above some value of which every trial diverged.

    The playbook's "Identifying bad search space boundaries": all trials
    above some learning rate infeasible, with the best trials at that edge,
    suggest instability.
    """
    edges = []
    best_rows = list(p.best_rows().values())
    unstable = p.infeasible & p.frame["infeasible_reason"].isin(INSTABILITY_REASONS).to_numpy()
    for dim in p.dimensions:
        if not dim.numeric or dim.role != "nuisance":
            continue
        if not roles.is_optimizer_hyperparameter(dim.name):
            continue
        active, u, x = _numeric_coordinates(p, dim)
        rows = np.flatnonzero(active & (p.completed | p.infeasible))
        if not len(rows):
            continue
        rows = rows[np.argsort(-x[rows], kind="stable")]
        run = 0
        while run < len(rows) and unstable[rows[run]]:
            run += 1
        # Every trial at or above the threshold must be unstable: a run that
        # stops inside a group of equal values does not count that value.
        while 0 < run < len(rows) and x[rows[run]] == x[rows[run - 1]]:
            run -= 1
            while run > 0 and x[rows[run - 1]] == x[rows[run]]:
                run -= 1
        if run < INFEASIBLE_EDGE_MIN_TRIALS or run == len(rows):
            continue
        threshold = float(x[rows[run - 1]])
        top_feasible = float(u[rows[run]])
        edge_u = float(u[rows[run - 1]])
        # At the edge: within the outer 10% below the first infeasible value,
        # or the highest feasible trial sampled.
        near = min(top_feasible, edge_u - BOUNDARY_FRACTION)
        best_at_edge = any(active[row] and u[row] >= near for row in best_rows)
        edges.append(
            {
                "hyperparameter": dim.name,
                "threshold": threshold,
                "trials": run,
                "best_at_edge": bool(best_at_edge),
            }
        )
    return edges


def _best_of_k(losses, ks):
    """Exact distribution of the best of k draws (with replacement) from `losses`.

    The bootstrap of the playbook's "Not sampling enough points in the
    search space" in closed form: with the n values sorted,
    P(best of k is at rank >= i) = ((n - i) / n) ** k. Returns (mean, the 5,
    25, 50, 75, 95% quantiles) per k, with no sampling noise.
    """
    y = np.sort(np.asarray(losses, dtype=float))
    n = len(y)
    survival = ((n - np.arange(n + 1)) / n)[None, :] ** np.asarray(ks, dtype=float)[:, None]
    prob = survival[:, :-1] - survival[:, 1:]
    mean = prob @ y
    cdf = np.cumsum(prob, axis=1)
    levels = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    quantiles = np.empty((len(ks), len(levels)))
    for j, level in enumerate(levels):
        index = np.argmax(cdf >= level - 1e-12, axis=1)
        quantiles[:, j] = y[index]
    return mean, quantiles


def sampling_ks(n):
    """The budgets k at which best-of-k is evaluated: every k up to 50, then ~40 log-spaced.

    k = n // 2 and k = n are always included (`late_gain` compares them).
    """
    if n <= 50:
        return np.arange(1, n + 1)
    ks = np.round(np.geomspace(1, n, 40)).astype(int)
    return np.unique(np.concatenate([ks, [max(1, n // 2), n]]))


def late_gain(mean, ks):
    """Share of the expected gain (k = 1 to n) that the second half of the budget brought."""
    n = ks[-1]
    index = int(np.searchsorted(ks, max(1, n // 2)))
    if ks[index] != max(1, n // 2):
        raise ValueError("ks must include n // 2; build them with sampling_ks(n).")
    half = mean[index]
    total = mean[0] - mean[-1]
    return 0.0 if total <= 0 else float((half - mean[-1]) / total)


def _sampling_density(p):
    few, sparse = [], []
    for cell in range(len(p.cells)):
        rows = np.flatnonzero((p.cell_index == cell) & p.completed & np.isfinite(p.loss))
        if len(rows) < MIN_TRIALS_FOR_SAMPLING:
            few.append((p.cell_label(cell), len(rows)))
            continue
        ks = sampling_ks(len(rows))
        mean, _ = _best_of_k(p.loss[rows], ks)
        gain = late_gain(mean, ks)
        if gain > SAMPLING_LATE_GAIN:
            sparse.append((p.cell_label(cell), len(rows), gain))
    findings = []
    if sparse:
        findings.append(
            Finding(
                "sampling_density",
                "warning",
                f"For {_count(len(sparse), 'scientific value')} the expected best of k "
                "trials was still improving at the full budget: "
                + "; ".join(
                    f"{label}: the last half of {n} trials brought {gain:.0%} of the gain"
                    for label, n, gain in sparse
                )
                + ".",
                "Run more trials per scientific value before comparing them (see the "
                f"sampling plot) {mention('sampling_enough')}.",
                {
                    "cells": [
                        {"scientific": label, "completed": n, "late_gain": gain}
                        for label, n, gain in sparse
                    ],
                    "threshold": SAMPLING_LATE_GAIN,
                },
                url("sampling_enough"),
            )
        )
    if few:
        findings.append(
            Finding(
                "sampling_density",
                "warning",
                f"{_count(len(few), 'scientific value')} had fewer than "
                f"{MIN_TRIALS_FOR_SAMPLING} completed trials ("
                + "; ".join(f"{label}: {n}" for label, n in few)
                + "), too few to tell whether the search space was sampled densely enough.",
                f"Run more trials per scientific value {mention('sampling_enough')}.",
                {
                    "cells": [{"scientific": label, "completed": n} for label, n in few],
                    "minimum": MIN_TRIALS_FOR_SAMPLING,
                },
                url("sampling_enough"),
            )
        )
    return findings


# -- training curves -------------------------------------------------------------


def _validation_curve(p, row):
    """(metric, sign, epochs, values) of the validation curve judged for overfitting and noise.

    metric is None when the trial logged no finite validation value.
    """
    if p.objective.startswith("val_"):
        metric, sign = p.objective, p.sign
    elif "val_loss" in p.metrics(row):
        metric, sign = "val_loss", 1.0
    else:
        return None, 1.0, np.zeros(0, dtype=int), np.zeros(0)
    epochs, values = p.curve(row, metric)
    if not len(values):
        return None, 1.0, epochs, values
    return metric, sign, epochs, values


def _overfits(loss):
    """(rise, minimum index) when `loss` worsens after its minimum by the margin, else None.

    "Then worsens" must last: at least `OVERFITTING_EPOCHS_AFTER` epochs
    follow the minimum and their median is worse than it by the margin, so
    one noisy last epoch is not overfitting.
    """
    low = int(np.argmin(loss))
    after = loss[low + 1 :]
    if len(after) < OVERFITTING_EPOCHS_AFTER:
        return None
    rise = float(np.median(after) - loss[low])
    scale = abs(float(loss[low])) or float(loss[0] - loss[low])
    if scale > 0 and rise > OVERFITTING_MARGIN * scale:
        return rise, low
    return None


def _overfitting(p):
    hits = []
    for cell, row in p.best_rows().items():
        metric, sign, epochs, values = _validation_curve(p, row)
        result = _overfits(sign * values) if metric else None
        if result is None:
            continue
        rise, low = result
        hits.append(
            {
                "scientific": p.cell_label(cell),
                "trial": p.trial_id(row),
                "metric": metric,
                "best_epoch": int(epochs[low]),
                "best": float(values[low]),
                "final": float(values[-1]),
                "rise": rise,
            }
        )
    if not hits:
        return []
    return [
        Finding(
            "overfitting",
            "warning",
            f"The best trial of {_count(len(hits), 'scientific value')} overfits: "
            + "; ".join(
                f"{h['scientific']} (trial {h['trial']}): {h['metric']} "
                f"{_fmt(h['best'])} at epoch {h['best_epoch']}, {_fmt(h['final'])} at the end"
                for h in hits
            )
            + ".",
            "Add or better tune regularisation (as nuisance hyperparameters) before "
            f"comparing scientific values {mention('training_curves')}.",
            {"trials": hits, "margin": OVERFITTING_MARGIN},
            url("training_curves"),
        )
    ]


def _late_variance(p):
    hits = []
    for cell, row in p.best_rows().items():
        metric, _, _, values = _validation_curve(p, row)
        if metric is None:
            continue
        tail_len = max(4, int(math.ceil(LATE_FRACTION * len(values))))
        if len(values) < 2 * tail_len:
            continue
        tail = values[-tail_len:]
        # Differences remove a steady trend; /sqrt(2) turns the spread of a
        # difference back into the spread of one value.
        noise = float(np.std(np.diff(tail)) / math.sqrt(2))
        level = abs(float(np.median(tail)))
        if level > 0 and noise > LATE_VARIANCE_RATIO * level:
            hits.append(
                {
                    "scientific": p.cell_label(cell),
                    "trial": p.trial_id(row),
                    "metric": metric,
                    "noise": noise,
                    "level": level,
                    "ratio": noise / level,
                }
            )
    if not hits:
        return []
    return [
        Finding(
            "late_variance",
            "warning",
            f"The validation curve of {_count(len(hits), 'best trial')} is noisy late in "
            "training: "
            + "; ".join(
                f"{h['scientific']} (trial {h['trial']}): {h['metric']} varies by "
                f"{h['ratio']:.0%} epoch to epoch"
                for h in hits
            )
            + ", so comparisons between trials are noisy.",
            "Use a bigger batch, more validation data, learning-rate decay or Polyak "
            f"averaging (Keras optimizers' use_ema=True) {mention('training_curves')}.",
            {"trials": hits, "ratio": LATE_VARIANCE_RATIO, "late_fraction": LATE_FRACTION},
            url("training_curves"),
        )
    ]


def _improving_or_saturated(p):
    improving, saturated = [], []
    for cell, row in p.best_rows().items():
        epochs, values = p.curve(row)
        loss = p.sign * values
        n = len(loss)
        if n < 4:
            continue
        total = float(loss[0] - loss.min())
        if total <= 0:
            continue
        window = max(1, int(math.ceil(STILL_IMPROVING_FRACTION * n)))
        tail_gain = float(loss[:-window].min() - loss[-window:].min())
        entry = {"scientific": p.cell_label(cell), "trial": p.trial_id(row), "epochs": n}
        if tail_gain > IMPROVEMENT_TOLERANCE * total:
            improving.append({**entry, "gain": tail_gain / total})
            continue
        half = int(round(SATURATED_FRACTION * n))
        late_gain_ = float(loss[:half].min() - loss[half:].min())
        if late_gain_ <= IMPROVEMENT_TOLERANCE * total and _overfits(loss) is None:
            saturated.append({**entry, "epoch_reached": int(epochs[np.argmin(loss)])})
    findings = []
    if improving:
        findings.append(
            Finding(
                "still_improving",
                "warning",
                f"The objective of {_count(len(improving), 'best trial')} was still "
                f"improving over the last {STILL_IMPROVING_FRACTION:.0%} of training ("
                + "; ".join(
                    f"{h['scientific']}: {h['gain']:.0%} of its total gain" for h in improving
                )
                + "): training is compute-bound.",
                "Train longer (or change the schedule) for every trial before concluding "
                f"{mention('training_curves')}.",
                {"trials": improving, "window": STILL_IMPROVING_FRACTION},
                url("training_curves"),
            )
        )
    if saturated:
        findings.append(
            Finding(
                "saturated",
                "info",
                f"The objective of {_count(len(saturated), 'best trial')} stopped improving "
                f"in the first {SATURATED_FRACTION:.0%} of training ("
                + "; ".join(
                    f"{h['scientific']}: best at epoch {h['epoch_reached']} of {h['epochs']}"
                    for h in saturated
                )
                + ").",
                f"Fewer training steps would give the same result faster {mention('training_curves')}.",
                {"trials": saturated, "fraction": SATURATED_FRACTION},
                url("training_curves"),
            )
        )
    return findings


def _best_step(p):
    rows = sorted(set(p.best_rows().values()) | {int(r) for r in p.top_rows(TOP_TRIALS)})
    judged = []
    for row in rows:
        epochs = p.frame["epochs"].iat[row]
        step = p.frame["best_step"].iat[row]
        if pd.isna(epochs) or pd.isna(step) or int(epochs) < 2:
            continue
        judged.append(
            {
                "trial": p.trial_id(row),
                "best_step": int(step),
                "epochs": int(epochs),
                "fraction": (int(step) + 1) / int(epochs),
            }
        )
    if not judged:
        return []
    fractions = np.array([j["fraction"] for j in judged])
    steps = ", ".join(
        f"{j['best_step'] + 1} of {j['epochs']}" for j in judged
    )  # 1-based, as Keras prints epochs
    if np.all(fractions <= BEST_STEP_EARLY_FRACTION):
        return [
            Finding(
                "best_step_early",
                "warning",
                f"The best trials all reach their best {p.objective} in the first "
                f"{BEST_STEP_EARLY_FRACTION:.0%} of training (best epochs {steps}).",
                "Train for far fewer steps: the rest of training is wasted "
                f"{mention('how_long_to_train')}.",
                {"trials": judged, "fraction": BEST_STEP_EARLY_FRACTION},
                url("how_long_to_train"),
            )
        ]
    late = fractions > 1 - BEST_STEP_LATE_FRACTION
    if late.mean() >= BEST_STEP_CONSISTENT_SHARE:
        return [
            Finding(
                "best_step_late",
                "warning",
                f"{int(late.sum())} of the {len(judged)} best trials reach their best "
                f"{p.objective} in the last {BEST_STEP_LATE_FRACTION:.0%} of training "
                f"(best epochs {steps}).",
                "Train longer and re-tune the learning-rate decay schedule "
                f"{mention('how_long_to_train')}.",
                {"trials": judged, "fraction": BEST_STEP_LATE_FRACTION},
                url("how_long_to_train"),
            )
        ]
    return []


def clip_fraction(p, row):
    """The share of the trial's updates that were clipped (None when clipping was not logged)."""
    _, values = p.curve(row, "clip_fraction")
    return float(np.mean(values)) if len(values) else None


def _aggressive_clipping(p):
    best = set(p.best_rows().values()) | {int(r) for r in p.top_rows(TOP_TRIALS)}
    hits = []
    for row in np.flatnonzero(p.completed | p.infeasible):
        if "clip_fraction" not in p.metrics(row):
            continue
        share = clip_fraction(p, row)
        if share is not None and share > AGGRESSIVE_CLIP_FRACTION:
            hits.append({"trial": p.trial_id(row), "clip_fraction": share, "best": row in best})
    if not hits:
        return []
    hits.sort(key=lambda h: (not h["best"], -h["clip_fraction"]))
    among_best = sum(h["best"] for h in hits)
    return [
        Finding(
            "aggressive_clipping",
            "warning",
            f"{_count(len(hits), 'trial')} clipped more than "
            f"{AGGRESSIVE_CLIP_FRACTION:.0%} of their updates ({among_best} of them among "
            "the best trials; e.g. "
            + ", ".join(f"trial {h['trial']}: {h['clip_fraction']:.0%}" for h in hits[:3])
            + ").",
            "Clipping that often just lowers the learning rate: lower the learning rate "
            f"instead, or raise the clipping threshold {mention('gradient_clipping')}.",
            {"trials": hits, "threshold": AGGRESSIVE_CLIP_FRACTION},
            url("gradient_clipping"),
        )
    ]


# -- roles -----------------------------------------------------------------------


def _fixed_optimizer_hparams(p):
    study = p.study
    named = {}
    for name, value in study.fixed.items():
        if roles.is_optimizer_hyperparameter(name):
            named[name] = ("fixed", value)
    for hp in study.hyperparameters:
        if not hp.tunable and hp.name not in named and roles.is_optimizer_hyperparameter(hp.name):
            named[hp.name] = ("fixed", hp.value)
    for name, values in study.scientific.items():
        if roles.is_optimizer_hyperparameter(name):
            named[name] = ("scientific", values)
    if not named:
        return []
    parts = [
        f"{name} is {role}" + (f" at {_fmt(value)}" if role == "fixed" else "")
        for name, (role, value) in named.items()
    ]
    return [
        Finding(
            "fixed_optimizer_hparams",
            "warning",
            f"Optimizer hyperparameters are not nuisance: {'; '.join(parts)}, so the "
            "comparison holds only for these settings.",
            "Make optimizer hyperparameters nuisance (tuned for every scientific value), "
            f"e.g. with kp.spaces.adam(hp, budget) {mention('scientific_nuisance_fixed')}.",
            {
                "hyperparameters": {
                    name: {"role": role, "value": value} for name, (role, value) in named.items()
                }
            },
            url("scientific_nuisance_fixed"),
        )
    ]


# -- which hyperparameters matter ---------------------------------------------------


def _sensitivity(p):
    """`insensitive` nuisance hyperparameters and `interaction` pairs, from `importance_data`."""
    try:
        results = importance.importance_data(p.study, by_scientific=bool(p.scientific))
    except TooFewTrials:
        return []  # sampling_density already asks for more trials
    findings = []
    nuisance = [d.name for d in p.dimensions if d.role == "nuisance"]
    insensitive = []
    for name in nuisance:
        shares = [
            (r.label, float(r.total[r.names.index(name)]), float(r.high[r.names.index(name)]))
            for r in results
            if name in r.names
        ]
        if shares and all(high < INSENSITIVE_SHARE for _, _, high in shares):
            insensitive.append((name, shares))
    if insensitive:
        findings.append(
            Finding(
                "insensitive",
                "info",
                f"{_count(len(insensitive), 'nuisance hyperparameter')} barely matter: "
                + "; ".join(
                    f"{name} explains at most {max(h for _, _, h in shares):.1%} of the "
                    "objective's variance"
                    for name, shares in insensitive
                )
                + f" (under {INSENSITIVE_SHARE:.0%}, interactions included).",
                "Fix them at a good value to simplify later rounds and spend the trials on "
                f"the rest {mention('exploration_vs_exploitation')}.",
                {
                    "hyperparameters": {
                        name: [
                            {"scientific": label, "total": t, "high": h} for label, t, h in shares
                        ]
                        for name, shares in insensitive
                    },
                    "threshold": INSENSITIVE_SHARE,
                },
                url("exploration_vs_exploitation"),
            )
        )
    pairs = []
    for r in results:
        for (i, j), (share, low, high) in r.pairs.items():
            if share >= INTERACTION_SHARE and low >= INTERACTION_SHARE / 2:
                pairs.append((r.label, r.names[i], r.names[j], share, low, high))
    if pairs:
        pairs.sort(key=lambda item: -item[3])
        findings.append(
            Finding(
                "interaction",
                "warning",
                f"{_count(len(pairs), 'pair')} of hyperparameters interact: "
                + "; ".join(
                    f"{a} and {b} explain {share:.0%} together beyond their own shares"
                    + (f" ({label})" if label != "all trials" else "")
                    for label, a, b, share, _, _ in pairs
                )
                + ".",
                "Keep both of each pair nuisance and tune them together: fixing one fixes the "
                "other's best value too (see study.plot_contour) "
                f"{mention('exploration_vs_exploitation')}.",
                {
                    "pairs": [
                        {
                            "scientific": label,
                            "hp_a": a,
                            "hp_b": b,
                            "importance": share,
                            "low": low,
                            "high": high,
                        }
                        for label, a, b, share, low, high in pairs
                    ],
                    "threshold": INTERACTION_SHARE,
                },
                url("exploration_vs_exploitation"),
            )
        )
    return findings


# -- joint design --------------------------------------------------------------------


def _joint_design(p):
    """In a joint study each scientific value's best comes from a share of one budget."""
    if p.study.config.get("design") != "joint" or len(p.cells) < 2:
        return []
    counts = [int(((p.cell_index == i) & p.completed).sum()) for i in range(len(p.cells))]
    return [
        Finding(
            "joint_design",
            "info",
            f"In this joint study the {len(p.cells)} scientific values (or bins) shared one "
            f"budget of {int((p.completed).sum())} completed trials: each value's best comes "
            f"from {min(counts)} to {max(counts)} trials, fewer than a nested study would give "
            "each its own search.",
            "Read each value's best as less tuned than in a nested study; confirm a winner "
            "with a nested study of the few best values, or with study.replicate() "
            f"{mention('creating_studies')}.",
            {
                "completed_per_cell": dict(
                    zip((p.cell_label(i) for i in range(len(p.cells))), counts)
                )
            },
            url("creating_studies"),
        )
    ]


# -- real errors -------------------------------------------------------------------


def _last_line(message):
    lines = [line.strip() for line in (message or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message recorded"


def _failed_trials(p):
    """Trials that failed with a real error (not an infeasibility): a bug, never a result."""
    failed = np.flatnonzero(p.frame["status"].to_numpy() == "failed")
    if not len(failed):
        return []
    by_cell = {}
    for row in failed:
        by_cell.setdefault(int(p.cell_index[row]), []).append(row)
    parts, cells = [], []
    for cell, rows in by_cell.items():
        label = p.cell_label(cell) if cell >= 0 else "no scientific value"
        total = int((p.cell_index == cell).sum())
        newest = p.trial_id(rows[-1])
        error = _last_line(p.study.trial(newest).message)
        parts.append(f"{label}: {len(rows)} of {total} trials ({error})")
        cells.append(
            {
                "scientific": label,
                "failed": len(rows),
                "trials": total,
                "trial_ids": [p.trial_id(r) for r in rows],
                "error": error,
            }
        )
    return [
        Finding(
            "failed_trials",
            "warning",
            f"{_count(len(failed), 'trial')} failed with a real error, not an infeasibility: "
            + "; ".join(parts)
            + ".",
            "Fix the error (each trial's trial.json holds its traceback as 'message'), then run "
            "the study again under another project_name or with overwrite=True: failed trials "
            "are not run again on resume, and until then the compared values are not on equal "
            f"footing {mention('extracting_insight')}.",
            {"cells": cells},
            url("extracting_insight"),
        )
    ]


# -- formatting ------------------------------------------------------------------


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _count(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")
