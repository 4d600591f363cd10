"""Which hyperparameters the objective is sensitive to, and which pairs interact.

The playbook's exploration goal ("Exploration vs exploitation",
https://github.com/google-research/tuning_playbook#exploration-vs-exploitation):
learn which hyperparameters the validation error is most sensitive to, which
interact most, and which are insensitive, to fix them and simplify later
rounds. Axis plots stop answering that past three or four hyperparameters;
a variance decomposition does not.

Method (a functional ANOVA on a surrogate, as fANOVA does):

1. Each trial is a point in the coordinates the search samples in (log
   space for log dimensions, a code per categorical value, -1 where a
   conditional hyperparameter is inactive). Completed trials give their
   objective (sign-normalised: lower is better); infeasible trials are kept
   as the worst completed value (a diverged configuration is a bad one, not
   a missing one); failed and running trials are left out.
2. A Gaussian process (scikit-learn; Matern 5/2 kernel with one length
   scale per hyperparameter, plus noise) learns the objective from the
   points, from at most `GP_MAX_TRIALS` of them (a random subset above;
   the GP is O(n^3), and 500 trials pin smooth objectives down).
   `benchmarks/importance.py` measures why: against analytic Sobol indices
   a GP recovers a pure interaction (x4 - 1/2)(x5 - 1/2) from 50 trials,
   while random forests (``surrogate="forest"``) split greedily and miss it
   even at 1,000 trials, overstating the main effects.
3. Sobol indices of the forest over the product of the dimensions' observed
   marginals are estimated with scrambled Sobol points (Saltelli's
   estimator for first-order shares, Jansen's for total shares, and closed
   second-order indices for pairs): `importance` is the share of the
   objective's variance one hyperparameter explains alone, `total` with its
   interactions, and a pair's `importance` what the two explain together
   beyond their own shares.
4. `low`/`high` are the 5% and 95% quantiles over surrogates refitted on
   bootstrap resamples of the trials (with the kernel found on all of
   them): with few trials they are wide.

With fewer than `MIN_TRIALS_PER_DIMENSION` completed trials per tuned
hyperparameter (and at least `MIN_TRIALS`) it says it cannot tell.
"""

import math
import typing
import warnings
import weakref

import numpy as np
import pandas as pd
from scipy.stats import qmc
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel
from sklearn.gaussian_process.kernels import Matern
from sklearn.gaussian_process.kernels import WhiteKernel
from threadpoolctl import threadpool_limits

from kplaybook import validation
from kplaybook.analysis._prepared import prepare
from kplaybook.errors import TooFewTrials

#: Completed trials needed per tuned hyperparameter, and in all, before the
#: decomposition is attempted: below that a forest fits noise.
MIN_TRIALS_PER_DIMENSION = 2
MIN_TRIALS = 8
#: Scrambled Sobol base points of the Monte Carlo estimators (a power of 2).
SAMPLES = 1024
#: The Gaussian process is fitted to at most this many trials (O(n^3)).
GP_MAX_TRIALS = 500
#: Surrogates refitted on bootstrap resamples for the uncertainty interval.
BOOTSTRAP = 8
#: A pair's interaction is estimated only when both hyperparameters have
#: this much variance share in interactions (total - first order): the
#: others' pairs are 0 up to estimation noise, and skipping them keeps the
#: cost linear in the number of hyperparameters.
PAIR_SCREEN = 0.01
#: The interval's quantiles.
INTERVAL = (0.05, 0.95)
SURROGATES = ("gp", "forest")


class ImportanceData(typing.NamedTuple):
    """The decomposition of one set of trials (all of a study's, or one scientific value's).

    `first`, `total`, `low`, `high` are per hyperparameter in `names`;
    `pairs` maps (i, j) index pairs to (importance, low, high).
    """

    label: str
    names: list
    first: np.ndarray
    total: np.ndarray
    low: np.ndarray
    high: np.ndarray
    pairs: dict
    trials: int
    imputed: int


def categories(p, dim):
    """A categorical dimension's values in code order: declared ones, then any other seen."""
    values = list(dim.values or [])
    seen = {repr(v) for v in values}
    for v in p.values(dim.name):
        if v is not None and not (isinstance(v, float) and math.isnan(v)) and repr(v) not in seen:
            seen.add(repr(v))
            values.append(v)
    return values


def encode(p, dims, rows):
    """The trials in `rows` as points: one column per dimension (see the module docstring)."""
    columns = []
    for dim in dims:
        raw = p.values(dim.name)[rows]
        column = np.full(len(rows), -1.0)
        active = np.array(
            [v is not None and not (isinstance(v, float) and math.isnan(v)) for v in raw],
            dtype=bool,
        )
        if dim.numeric:
            column[active] = dim.coordinate(raw[active].astype(float))
        else:
            # Categorical values as evenly spaced codes in [0, 1], like the
            # quasi-random search's equal mass per value.
            values = categories(p, dim)
            codes = {repr(v): i for i, v in enumerate(values)}
            scale = max(len(values) - 1, 1)
            for k in np.flatnonzero(active):
                column[k] = codes[repr(raw[k])] / scale
        columns.append(column)
    return np.column_stack(columns) if columns else np.zeros((len(rows), 0))


def fit_curve(x, y, seed=0):
    """A Gaussian process fitted to (`x`, `y`); returns its prediction function."""
    scale = float(np.std(y)) or 1.0
    mean = float(np.mean(y))
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = _surrogate("gp", seed, x.shape[1]).fit(x, (y - mean) / scale)

    def predict(points):
        with threadpool_limits(limits=1, user_api="blas"):
            return mean + scale * model.predict(points)

    return predict


def _surrogate(kind, seed, d, kernel=None):
    """A scikit-learn regressor; `kernel` (a fitted GP's) skips the kernel's optimisation."""
    if kind == "gp":
        if kernel is not None:
            return GaussianProcessRegressor(kernel, normalize_y=True, optimizer=None)
        kernel = ConstantKernel(1.0) * Matern(
            length_scale=np.full(d, 0.5), length_scale_bounds=(1e-2, 1e2), nu=2.5
        ) + WhiteKernel(1e-2, noise_level_bounds=(1e-8, 1.0))
        return GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed)
    return RandomForestRegressor(n_estimators=100, max_features=0.5, random_state=seed, n_jobs=1)


def _marginal_sampler(x):
    """Maps [0, 1) coordinates to each dimension's observed values (inverse empirical CDF)."""
    ordered = np.sort(x, axis=0)
    n = len(ordered)

    def sample(u):
        index = np.minimum((u * n).astype(int), n - 1)
        return np.take_along_axis(ordered, index, axis=0)

    return sample


def _sobol(model, sample, d, seed, samples, pairs_wanted=True):
    """(first, total, {(i, j): closed-pair share}) of `model` over the sampled marginals."""
    m = int(math.log2(samples))
    points = qmc.Sobol(d=2 * d, scramble=True, seed=seed).random_base2(m)
    a, b = sample(points[:, :d]), sample(points[:, d:])
    blocks = [a, b]
    for i in range(d):
        ab = a.copy()
        ab[:, i] = b[:, i]
        blocks.append(ab)
    predictions = model.predict(np.vstack(blocks)).reshape(len(blocks), -1)
    f_a, f_b, f_ab = predictions[0], predictions[1], predictions[2:]
    variance = float(np.var(np.concatenate([f_a, f_b])))
    if variance <= 0:
        return np.zeros(d), np.zeros(d), {}
    first = np.array([np.mean(f_b * (f_ab[i] - f_a)) for i in range(d)]) / variance
    total = np.array([0.5 * np.mean((f_a - f_ab[i]) ** 2) for i in range(d)]) / variance
    first, total = np.clip(first, 0, 1), np.clip(total, 0, 1)
    pairs = {}
    if pairs_wanted:
        interacting = [i for i in range(d) if total[i] - first[i] > PAIR_SCREEN]
        wanted = [(i, j) for k, i in enumerate(interacting) for j in interacting[k + 1 :]]
        if wanted:
            pair_blocks = []
            for i, j in wanted:
                ab = a.copy()
                ab[:, [i, j]] = b[:, [i, j]]
                pair_blocks.append(ab)
            f_pairs = model.predict(np.vstack(pair_blocks)).reshape(len(wanted), -1)
            for (i, j), f in zip(wanted, f_pairs):
                closed = float(np.mean(f_b * (f - f_a))) / variance
                pairs[(i, j)] = float(np.clip(closed - first[i] - first[j], 0, 1))
    return first, total, pairs


def decompose(
    x,
    y,
    names,
    label="all trials",
    surrogate="gp",
    seed=0,
    bootstrap=BOOTSTRAP,
    samples=SAMPLES,
    imputed=0,
):
    """The `ImportanceData` of points `x` (n, d) with objective `y` (lower is better).

    Raises:
        TooFewTrials: fewer trials than `MIN_TRIALS_PER_DIMENSION` per dimension or `MIN_TRIALS`.
    """
    # The GP's matrices are small (<= 1000 square): one BLAS thread is 20x
    # faster than several contending with training on a shared machine.
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        # A length scale at its bound is the answer for an irrelevant
        # hyperparameter, not a failure: scikit-learn's warnings would alarm.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _decompose(x, y, names, label, surrogate, seed, bootstrap, samples, imputed)


def _decompose(x, y, names, label, surrogate, seed, bootstrap, samples, imputed):
    n, d = x.shape
    needed = max(MIN_TRIALS, MIN_TRIALS_PER_DIMENSION * d)
    if n < needed:
        raise TooFewTrials(
            f"{label} has {n} usable trials for {d} tuned hyperparameters: too few to tell which "
            f"matter (at least {needed} are needed); run more trials before asking."
        )
    sample = _marginal_sampler(x)
    rng = np.random.default_rng(seed)
    fit_rows = np.arange(n)
    if surrogate == "gp" and n > GP_MAX_TRIALS:
        fit_rows = rng.choice(n, GP_MAX_TRIALS, replace=False)
    # Standardised, so the GP's noise and amplitude bounds suit any objective scale.
    scale = float(np.std(y)) or 1.0
    y = (y - float(np.mean(y))) / scale
    model = _surrogate(surrogate, seed, d).fit(x[fit_rows], y[fit_rows])
    kernel = getattr(model, "kernel_", None)
    first, total, pairs = _sobol(model, sample, d, seed, samples)
    firsts, totals, pair_draws = [], [], {key: [] for key in pairs}
    for r in range(bootstrap):
        rows = fit_rows[rng.integers(0, len(fit_rows), len(fit_rows))]
        if len(np.unique(rows)) < 2:
            continue
        refit = _surrogate(surrogate, seed + r + 1, d, kernel).fit(x[rows], y[rows])
        f, t, p = _sobol(refit, sample, d, seed + r + 1, samples // 2, pairs_wanted=False)
        firsts.append(f)
        totals.append(t)
        for i, j in pairs:
            m = int(math.log2(samples // 2))
            pair_draws[(i, j)].append(_pair(refit, sample, d, i, j, f, seed + r + 1, m))
    if firsts:
        low = np.quantile(np.array(firsts), INTERVAL[0], axis=0)
        high = np.quantile(np.array(totals), INTERVAL[1], axis=0)
    else:
        low, high = first.copy(), total.copy()
    pair_out = {}
    for key, share in pairs.items():
        draws = pair_draws[key] or [share]
        pair_out[key] = (
            share,
            float(np.quantile(draws, INTERVAL[0])),
            float(np.quantile(draws, INTERVAL[1])),
        )
    # The interval spans the estimates themselves: alone (low end) to with interactions.
    low = np.minimum(low, np.minimum(first, total))
    high = np.maximum(high, np.maximum(first, total))
    return ImportanceData(label, list(names), first, total, low, high, pair_out, n, imputed)


def _pair(model, sample, d, i, j, first, seed, m):
    points = qmc.Sobol(d=2 * d, scramble=True, seed=seed).random_base2(m)
    a, b = sample(points[:, :d]), sample(points[:, d:])
    ab = a.copy()
    ab[:, [i, j]] = b[:, [i, j]]
    f_a, f_b, f = (model.predict(z) for z in (a, b, ab))
    variance = float(np.var(np.concatenate([f_a, f_b])))
    if variance <= 0:
        return 0.0
    closed = float(np.mean(f_b * (f - f_a))) / variance
    return float(np.clip(closed - first[i] - first[j], 0, 1))


_CACHE = weakref.WeakKeyDictionary()


def importance_data(study, by_scientific=False, infeasible="worst", surrogate="gp", seed=0):
    """The `ImportanceData` of the study: one (pooled) or one per scientific value.

    Args:
        study: a `kplaybook.records.StudyReader` (a `kp.Study`).
        by_scientific: one decomposition per scientific value (of its
            nuisance hyperparameters), or one of all trials (the scientific
            hyperparameters are then dimensions too).
        infeasible: "worst" (kept as the worst completed value) or "drop".
        surrogate: "gp" (default, a Gaussian process) or "forest" (a random forest).
        seed: the random seed of the forests and of the Sobol points.

    Returns:
        A list of `ImportanceData` (one per scientific value with enough trials
        when `by_scientific`; values with too few are left out).

    Raises:
        TooFewTrials: not one decomposition had enough trials.
    """
    validation.one_of(infeasible, "infeasible", ("worst", "drop"))
    validation.one_of(surrogate, "surrogate", SURROGATES)
    seed = validation.non_negative_int(seed, "seed")
    p = prepare(study)
    key = (bool(by_scientific), infeasible, surrogate, seed)
    cached = _CACHE.setdefault(p, {})
    if key in cached:
        return cached[key]
    groups = (
        [(p.cell_label(i), p.cell_index == i) for i in range(len(p.cells))]
        if by_scientific and p.scientific
        else [("all trials", np.ones(len(p.frame), dtype=bool))]
    )
    results, errors = [], []
    for label, mask in groups:
        dims = [
            dim
            for dim in p.dimensions
            if not (by_scientific and dim.role == "scientific")
            and len({repr(v) for v in p.values(dim.name)[mask & (p.completed | p.infeasible)]}) > 1
        ]
        completed = np.flatnonzero(mask & p.completed & np.isfinite(p.loss))
        bad = np.flatnonzero(mask & p.infeasible) if infeasible == "worst" else np.zeros(0, int)
        rows = np.concatenate([completed, bad])
        y = np.concatenate(
            [
                p.loss[completed],
                np.full(len(bad), p.loss[completed].max() if len(completed) else 0.0),
            ]
        )
        try:
            if not dims:
                raise TooFewTrials(f"{label} varied no hyperparameter; nothing to decompose.")
            if not len(completed):
                raise TooFewTrials(f"{label} has no completed trial; nothing to decompose.")
            results.append(
                decompose(
                    encode(p, dims, rows),
                    y,
                    [d.name for d in dims],
                    label,
                    surrogate,
                    seed,
                    imputed=len(bad),
                )
            )
        except TooFewTrials as e:
            errors.append(str(e))
    if not results:
        raise TooFewTrials(errors[0])
    cached[key] = results
    return results


def importance_frame(results):
    """One row per hyperparameter (per scientific value when there are several results)."""
    rows = []
    for r in results:
        for k, name in enumerate(r.names):
            rows.append(
                {
                    "scientific": r.label,
                    "hyperparameter": name,
                    "importance": float(r.first[k]),
                    "total": float(r.total[k]),
                    "low": float(r.low[k]),
                    "high": float(r.high[k]),
                    "trials": r.trials,
                }
            )
    frame = pd.DataFrame(
        rows,
        columns=["scientific", "hyperparameter", "importance", "total", "low", "high", "trials"],
    )
    frame = frame.sort_values(["scientific", "total"], ascending=[True, False], kind="stable")
    if len(results) == 1:
        frame = frame.drop(columns="scientific")
    return frame.reset_index(drop=True)


def interactions_frame(results):
    """One row per pair of hyperparameters whose interaction was estimated, largest first."""
    rows = []
    for r in results:
        for (i, j), (share, low, high) in r.pairs.items():
            rows.append(
                {
                    "scientific": r.label,
                    "hp_a": r.names[i],
                    "hp_b": r.names[j],
                    "importance": share,
                    "low": low,
                    "high": high,
                }
            )
    frame = pd.DataFrame(rows, columns=["scientific", "hp_a", "hp_b", "importance", "low", "high"])
    frame = frame.sort_values("importance", ascending=False, kind="stable")
    if len(results) == 1:
        frame = frame.drop(columns="scientific")
    return frame.reset_index(drop=True)
