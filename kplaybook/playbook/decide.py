"""The playbook's decisions as pure functions of studies (no training): tested on synthetic studies.

Each function reads a study (a `kplaybook.records.StudyReader`), its
findings and the run's configuration, and returns what to do with the
numbers it rests on. `kplaybook.playbook.autopilot` executes them.
"""

import math

import numpy as np

from kplaybook.analysis.checks import EDGE_NEIGHBOURS_FRACTION
from kplaybook.analysis.checks import INSENSITIVE_SHARE
from kplaybook.analysis.compare import NOISE_SIGMAS
from kplaybook.records import sign

#: How far a range is widened past its edge: a decade for log-scaled
#: dimensions, half the range's width for linear ones (the playbook gives no
#: number; one step of this size moves the edge well clear of the best trials).
WIDEN_FACTOR = 10.0
WIDEN_FRACTION = 0.5
#: Exploitation narrows each remaining nuisance range to the span of the best
#: `EXPLOIT_TOP_FRACTION` of the trials (at least 3), plus `EXPLOIT_MARGIN` of
#: the range on each side, in the coordinates the search samples in.
EXPLOIT_TOP_FRACTION = 0.25
EXPLOIT_MARGIN = 0.1


def _coordinate(hp, value):
    low, high = float(hp.min_value), float(hp.max_value)
    if high == low:
        return 0.0
    if hp.sampling == "log":
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


def _value(hp, u, low=None, high=None):
    low = float(hp.min_value if low is None else low)
    high = float(hp.max_value if high is None else high)
    if hp.sampling == "log":
        v = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    else:
        v = low + u * (high - low)
    return int(round(v)) if hp.kind == "Int" else v


def widened(hp, edge):
    """(low, high) of `hp`'s range widened past `edge` ("low"/"high"), or None when it cannot be.

    Never outside the hyperparameter's valid domain: a log range stays
    positive, a range declared within [0, 1] (a probability, a dropout rate,
    1 - beta) stays within it, an integer range declared from 1 stays >= 1.
    """
    if not hp.numeric:
        return None
    low, high = float(hp.min_value), float(hp.max_value)
    if hp.sampling == "log":
        new_low, new_high = (
            (low / WIDEN_FACTOR, high) if edge == "low" else (low, high * WIDEN_FACTOR)
        )
    else:
        step = WIDEN_FRACTION * (high - low)
        new_low, new_high = (low - step, high) if edge == "low" else (low, high + step)
    if low >= 0:
        new_low = max(new_low, 0.0 if hp.sampling != "log" else new_low)
    if 0 <= low and high <= 1:
        new_high = min(new_high, 1.0)
    if hp.kind == "Int":
        new_low = max(int(math.floor(new_low)), 1 if low >= 1 else int(math.floor(new_low)))
        new_high = int(math.ceil(new_high))
    if (new_low, new_high) == (low, high):
        return None
    return [new_low, new_high]


def capped(hp, threshold):
    """(low, high) with the upper end just below `threshold` (the instability edge), or None."""
    if not hp.numeric or threshold <= float(hp.min_value):
        return None
    high = (
        threshold * 0.9
        if hp.sampling == "log"
        else threshold - 0.05 * (threshold - float(hp.min_value))
    )
    if hp.kind == "Int":
        high = int(math.floor(high))
    if high <= float(hp.min_value):
        return None
    return [hp.min_value, high]


def instability_edge(findings):
    """(hyperparameter, threshold, evidence) of an instability the findings suspect, or None."""
    for finding in findings:
        if finding.code != "infeasible_fraction":
            continue
        for edge in finding.evidence.get("edges", []):
            if edge.get("best_at_edge"):
                return edge["hyperparameter"], float(edge["threshold"]), finding.evidence
    return None


def boundary_edges(findings, hyperparameters, best_trial=None):
    """[(hp, edge, evidence)] of the numeric ranges whose best trials sit at a declared edge.

    The ``boundary`` finding also fires when a best trial is the most extreme
    value sampled with the objective improving towards it, which in a small
    round can be well inside the declared range; widening the declared range
    cannot help there (the sampling is too thin, which ``sampling_density``
    acts on), so only a best trial in the outer `EDGE_NEIGHBOURS_FRACTION`
    (a third) of the range, on the edge's side, counts. With `best_trial`
    (the study's best trial id), only an edge that trial sits at counts:
    where a poor scientific value's best lands says little. A hyperparameter
    the ``insensitive`` finding names is never widened: where its best trial
    lands is noise.
    """
    by_name = {hp.name: hp for hp in hyperparameters}
    insensitive = set()
    for finding in findings:
        if finding.code == "insensitive":
            insensitive.update(finding.evidence.get("hyperparameters", []))
    edges = []
    for finding in findings:
        if finding.code != "boundary":
            continue
        hp = by_name.get(finding.evidence["hyperparameter"])
        edge = finding.evidence["edge"]
        coordinates = finding.evidence.get("coordinates", [])
        at_edge = any(
            (u <= EDGE_NEIGHBOURS_FRACTION)
            if edge == "low"
            else (u >= 1 - EDGE_NEIGHBOURS_FRACTION)
            for u in coordinates
        )
        if best_trial is not None and best_trial not in finding.evidence.get("trials", []):
            continue
        if hp is not None and hp.numeric and at_edge and hp.name not in insensitive:
            edges.append((hp, edge, finding.evidence))
    return edges


#: The findings that ask for longer or shorter training.
LENGTH_CODES = {
    "longer": ("best_step_late", "still_improving"),
    "shorter": ("best_step_early", "saturated"),
}


def training_length(findings):
    """ "longer", "shorter" or None, from the best-step and curve findings (longer wins a tie)."""
    codes = {f.code for f in findings}
    for length in ("longer", "shorter"):
        if codes & set(LENGTH_CODES[length]):
            return length
    return None


#: Findings recorded as caveats on a goal's decision (the playbook's remedy is
#: a change the user makes to the model: regularisation, a bigger batch, ...).
CAVEAT_CODES = (
    "overfitting",
    "late_variance",
    "aggressive_clipping",
    "failed_trials",
    "fixed_optimizer_hparams",
    "interaction",
)


def caveats(findings, all_codes=False):
    """The messages of the findings a goal's decision carries as caveats.

    Args:
        findings: the round's `kp.Finding`s.
        all_codes: every warning, not only `CAVEAT_CODES` (for a round whose
            findings no action is left to act on).
    """
    return [
        f"{f.code}: {f.message}"
        for f in findings
        if f.code in CAVEAT_CODES or (all_codes and f.severity != "info")
    ]


#: The paired comparison needs at least this many nuisance points run with both values.
MIN_PAIRS = 3


def paired_objectives(study, base, index):
    """[(baseline objective, value objective)] of the nuisance points run with both values.

    A paired nested study (`kp.PlaybookTuner`'s default) gives every
    scientific value the same nuisance points; two trials are a pair when
    all their nuisance values agree. Infeasible trials and trials without a
    finite objective are left out.
    """
    nuisance = study.nuisance

    def by_point(cell):
        points = {}
        for trial_id in study.trial_ids:
            record = study.trial(trial_id)
            if study.cell_of(trial_id) != cell or record.status != "completed":
                continue
            if not math.isfinite(record.objective):
                continue
            key = repr(sorted((n, record.values.get(n)) for n in nuisance))
            points.setdefault(key, record.objective)
        return points

    a, b = by_point(base), by_point(index)
    return [(a[k], b[k]) for k in sorted(a) if k in b]


def adoption(cells, replicates, baseline, direction, pairs=None):
    """Which value to keep: the best that beats the baseline by more than the noise.

    The seed noise is what the replicates of each value's best trial
    measure (the rule of `kp.compare`). A best trial is also the luckiest
    of its value's nuisance points, which the replicates do not measure:
    a value that changes nothing can still have the better best trial. So
    when the study paired its values' nuisance points (`pairs`), the value
    must also improve on the baseline across those pairs by more than
    `NOISE_SIGMAS` standard errors of the paired differences.

    Args:
        cells: the study's cells (list of dicts).
        replicates: {cell index: [objective or None per seed]}.
        baseline: the baseline cell (dict).
        direction: "min" or "max".
        pairs: optional {cell index: [(baseline objective, its objective)]},
            from `paired_objectives`; a value with fewer than `MIN_PAIRS`
            pairs is judged on its replicates alone.

    Returns:
        (cell index to keep, evidence dict). The baseline's index when no
        value beats it by more than the noise, or when the baseline itself
        has fewer than 2 feasible replicates (its noise is unknown).
    """
    s = sign(direction)
    stats = {}
    for index, values in replicates.items():
        finite = np.array([s * v for v in values if v is not None and math.isfinite(v)])
        stats[index] = {
            "mean": float(s * finite.mean()) if len(finite) else None,
            "std": float(finite.std(ddof=1)) if len(finite) > 1 else None,
            "n": int(len(finite)),
            "infeasible": int(len(values) - len(finite)),
        }
    base = next(i for i, cell in enumerate(cells) if cell == baseline)
    b = stats.get(base)
    evidence = {
        "replicates": {str(i): stats[i] for i in stats},
        "baseline": base,
        "noise_sigmas": NOISE_SIGMAS,
    }
    if not b or b["n"] < 2:
        evidence["why"] = "the baseline has fewer than 2 feasible replicates"
        return base, evidence
    best, best_gain = base, 0.0
    gaps = {}
    for index, st in stats.items():
        if index == base or st["n"] < 2 or st["infeasible"] * 2 >= st["n"] + st["infeasible"]:
            continue
        gain = s * (b["mean"] - st["mean"])  # positive: better than the baseline
        noise = math.sqrt(b["std"] ** 2 / b["n"] + st["std"] ** 2 / st["n"])
        gap = {"gain": gain, "noise": noise, "beats_noise": gain > NOISE_SIGMAS * noise}
        paired = (pairs or {}).get(index, [])
        if len(paired) >= MIN_PAIRS:
            d = np.array([s * (x - y) for x, y in paired])  # positive: the value did better
            se = float(d.std(ddof=1) / math.sqrt(len(d)))
            gap["paired"] = {
                "pairs": len(d),
                "mean_gain": float(d.mean()),
                "se": se,
                "beats_noise": bool(d.mean() > NOISE_SIGMAS * se),
            }
            gap["beats_noise"] = gap["beats_noise"] and gap["paired"]["beats_noise"]
        gaps[str(index)] = gap
        if gap["beats_noise"] and gain > best_gain:
            best, best_gain = index, gain
    evidence["gaps"] = gaps
    return best, evidence


def exploit_plan(study, cell, results, hyperparameters, current=None):
    """What exploitation fixes and narrows, from the final configuration's trials.

    Args:
        study: the `StudyReader` of the last round.
        cell: the index of the final configuration's cell in it.
        results: its importance decomposition (`ImportanceData` list), or None.
        hyperparameters: the search space (`Hyperparameter` list).
        current: dict name -> [low, high] of ranges the run has changed
            since the study (a widening not yet tried): a side the best
            trials reach keeps the current end instead of being narrowed.

    Returns:
        (fixed, ranges, evidence): dict name -> value to fix (nuisance whose
        importance is negligible, at the best trial's value), dict name ->
        [low, high] (the others, around the good region), and the numbers.
    """
    ranked = study.ranked(cell)
    if not ranked:
        return {}, {}, {"why": "no completed trial in the final configuration"}
    best = study.trial(ranked[0]).values
    nuisance = [hp for hp in hyperparameters if hp.name in study.nuisance]
    fixed, shares = {}, {}
    if results:
        r = results[0]
        for k, name in enumerate(r.names):
            shares[name] = float(r.high[k])
            if name in study.nuisance and r.high[k] < INSENSITIVE_SHARE and name in best:
                fixed[name] = best[name]
    top = ranked[: max(3, int(math.ceil(EXPLOIT_TOP_FRACTION * len(ranked))))]
    ranges = {}
    for hp in nuisance:
        if hp.name in fixed or not hp.numeric:
            continue
        coords = [
            _coordinate(hp, study.trial(t).values[hp.name])
            for t in top
            if hp.name in study.trial(t).values
        ]
        if not coords:
            continue
        low_u, high_u = min(coords) - EXPLOIT_MARGIN, max(coords) + EXPLOIT_MARGIN
        wide = (current or {}).get(hp.name, [hp.min_value, hp.max_value])
        # The best trials at an edge: the good region may go on past it, keep that side open.
        low = wide[0] if low_u <= 0 else _value(hp, low_u)
        high = wide[1] if high_u >= 1 else _value(hp, high_u)
        if [low, high] != [hp.min_value, hp.max_value]:
            ranges[hp.name] = [low, high]
    evidence = {
        "importance_high": shares,
        "threshold": INSENSITIVE_SHARE,
        "top_trials": list(top),
        "best_trial": ranked[0],
    }
    return fixed, ranges, evidence
