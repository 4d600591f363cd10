"""Feasibility-aware Bayesian optimisation: expected improvement times the probability of feasibility.

After exploration the playbook recommends Bayesian optimisation, with a
method that handles trials that diverge ("After exploration concludes",
https://github.com/google-research/tuning_playbook#after-exploration-concludes,
citing Gelbart, Snoek & Adams, "Bayesian Optimization with Unknown
Constraints", UAI 2014, arXiv:1403.5607). KerasTuner's Gaussian-process
search drops infeasible trials, so it keeps proposing the region where
training diverges. Here two models share the search space's unit cube (the
coordinates of `HyperParameter.value_to_prob`, as the quasi-random search
uses):

- the objective: a Gaussian process (Matern 5/2, one length scale per
  dimension, plus noise) fitted to the feasible trials;
- feasibility: the probability of feasibility (PoF), the kernel-weighted
  share of feasible trials near a point (see `_feasibility`).

The next point maximises expected improvement over the best feasible value
times PoF (Gelbart et al.'s constrained EI), among the candidates feasible
with probability at least `MIN_FEASIBILITY` when there are any (their
probabilistic constraint), over scrambled Sobol candidates plus
perturbations of the best points; with no feasible trial yet, the likeliest
feasible point away from those tried. Trials still running count as observed at the feasible trials' mean
(the "constant liar" of Ginsbourger, Le Riche & Carraro 2010), so parallel
workers are not sent to the same point.
"""

import math
import warnings

import numpy as np
from keras_tuner.engine import hyperparameters as hp_module
from scipy.stats import norm
from scipy.stats import qmc
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel
from sklearn.gaussian_process.kernels import Matern
from sklearn.gaussian_process.kernels import WhiteKernel
from threadpoolctl import threadpool_limits

from kplaybook.records.files import plain

#: Random candidates scored by the acquisition per proposal (scrambled Sobol).
CANDIDATES = 2048
#: Candidates drawn around each of the best points (Gaussian, sd `LOCAL_SD`).
LOCAL_CANDIDATES = 128
LOCAL_SD = 0.05
LOCAL_CENTERS = 4
#: Candidates less likely than this to be feasible are proposed only when no
#: candidate is more likely (Gelbart et al.'s constraint Pr(feasible) >= 1 - delta).
MIN_FEASIBILITY = 0.8
#: The feasibility estimate's kernel width (in the unit cube) and the weight
#: of its prior of 1/2 (in trials).
FEASIBILITY_BANDWIDTH = 0.1
FEASIBILITY_PRIOR = 0.5
#: The models are fitted to at most this many observations (the newest and
#: the best are kept): both are O(n^3).
MAX_OBSERVATIONS = 200


class SpaceCoder:
    """A search space's tunable hyperparameters as coordinates of the unit cube, and back.

    `encode` uses each hyperparameter's `value_to_prob` (its default when
    inactive, as KerasTuner's Bayesian search does); `decode` walks the space
    in declaration order with `prob_to_value`, so conditional hyperparameters
    get values only when active, exactly as the quasi-random sampler maps
    its points.

    Args:
        space: a `keras_tuner.HyperParameters`.
        overrides: dict name -> value set as given (a scientific value); those
            hyperparameters take no coordinate.
    """

    def __init__(self, space, overrides=None):
        self.space = space
        self.overrides = dict(overrides or {})
        self.hps = [
            hp
            for hp in space.space
            if not isinstance(hp, hp_module.Fixed) and hp.name not in self.overrides
        ]

    @property
    def dimensions(self):
        """How many coordinates a point has."""
        return len(self.hps)

    def encode(self, values):
        """A trial's values (dict) as a point (None when a value lies outside the space)."""
        point = []
        for hp in self.hps:
            value = values.get(hp.name, hp.default)
            if value is None:
                value = hp.default
            try:
                u = float(hp.value_to_prob(value))
            except (ValueError, TypeError, IndexError):
                return None
            if not 0.0 <= u <= 1.0:
                return None
            point.append(u)
        return np.array(point)

    def decode(self, point):
        """The values (dict of plain Python types) of a point."""
        coordinates = {hp.name: float(u) for hp, u in zip(self.hps, point)}
        hps = hp_module.HyperParameters()
        for hp in self.space.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            if hp.name in self.overrides:
                value = self.overrides[hp.name]
            elif isinstance(hp, hp_module.Fixed):
                value = hp.value
            else:
                value = hp.prob_to_value(min(max(coordinates[hp.name], 0.0), 1.0 - 1e-12))
            hps.values[hp.name] = plain(value)
        return hps.values


def _kernel(d, max_noise=1.0):
    return ConstantKernel(1.0) * Matern(
        length_scale=np.full(d, 0.5), length_scale_bounds=(1e-2, 1e2), nu=2.5
    ) + WhiteKernel(1e-2, noise_level_bounds=(1e-6, max_noise))


def _keep_rows(y, limit):
    """The rows of at most `limit` observations: the best half and the newest half."""
    best = np.argsort(y, kind="stable")[: limit // 2]
    newest = np.arange(len(y) - (limit - len(best)), len(y))
    return np.unique(np.concatenate([best, newest]))


def propose(feasible, losses, infeasible, pending, dimensions, rng, seed):
    """The next point: argmax of EI x PoF over candidates (see the module docstring).

    Args:
        feasible: (n, d) points of completed trials; losses: their objective
            (lower is better).
        infeasible: (m, d) points of infeasible trials.
        pending: (k, d) points of running trials.
        dimensions: d.
        rng: a `numpy.random.Generator` (for the candidates).
        seed: int, for the scrambled Sobol candidates.

    Returns:
        (point, info): the point (d,) and a dict with the acquisition's
        `expected_improvement`, `feasibility` and `feasible_best`.
    """
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _propose(feasible, losses, infeasible, pending, dimensions, rng, seed)


def _propose(feasible, losses, infeasible, pending, d, rng, seed):
    candidates = qmc.Sobol(d=d, scramble=True, seed=seed).random(CANDIDATES)
    centers = feasible[np.argsort(losses, kind="stable")[:LOCAL_CENTERS]] if len(feasible) else []
    local = [
        np.clip(c + rng.normal(0.0, LOCAL_SD, (LOCAL_CANDIDATES, d)), 0.0, 1.0 - 1e-9)
        for c in centers
    ]
    candidates = np.vstack([candidates, *local]) if local else candidates

    feasibility = np.ones(len(candidates))
    if len(infeasible):
        feasibility = _feasibility(feasible, infeasible, candidates, d, rng, seed)

    if len(feasible) < 2:
        # Nothing to model the objective on: the most likely feasible point,
        # away from the points already tried.
        tried = (
            np.vstack([p for p in (feasible, infeasible, pending) if len(p)])
            if (len(feasible) + len(infeasible) + len(pending))
            else np.zeros((0, d))
        )
        spread = _distance_to(candidates, tried)
        score = feasibility * (1e-6 + spread)
        best = int(np.argmax(score))
        return candidates[best], {
            "expected_improvement": math.nan,
            "feasibility": float(feasibility[best]),
            "feasible_best": math.nan,
        }

    y = np.asarray(losses, dtype=float)
    mean, scale = float(np.mean(y)), float(np.std(y)) or 1.0
    z = (y - mean) / scale
    x = feasible
    if len(pending):
        # Constant liar: running trials as if they returned the mean.
        x = np.vstack([x, pending])
        z = np.concatenate([z, np.zeros(len(pending))])
    if len(x) > MAX_OBSERVATIONS:
        keep = _keep_rows(z, MAX_OBSERVATIONS)
        x, z = x[keep], z[keep]
    model = GaussianProcessRegressor(_kernel(d), normalize_y=False, random_state=seed).fit(x, z)
    mu, sigma = model.predict(candidates, return_std=True)
    best_z = float(np.min((y - mean) / scale))
    sigma = np.maximum(sigma, 1e-9)
    gamma = (best_z - mu) / sigma
    improvement = sigma * (gamma * norm.cdf(gamma) + norm.pdf(gamma))
    score = improvement * feasibility
    # Gelbart et al.'s probabilistic constraint: only points feasible with
    # probability at least MIN_FEASIBILITY compete, when there are any.
    confident = feasibility >= MIN_FEASIBILITY
    if confident.any():
        score = np.where(confident, score, 0.0)
    best = int(np.argmax(score))
    return candidates[best], {
        "expected_improvement": float(improvement[best] * scale),
        "feasibility": float(feasibility[best]),
        "feasible_best": float(np.min(y)),
    }


def _feasibility(feasible, infeasible, candidates, d, rng, seed):
    """P(feasible) at the candidates: the labels of nearby trials, kernel-weighted.

    A Nadaraya-Watson estimate: each finished trial votes with weight
    ``exp(-distance^2 / (2 h^2))`` (h = `FEASIBILITY_BANDWIDTH` of the unit
    cube), and a prior of 1/2 with weight `FEASIBILITY_PRIOR` keeps regions
    with no trial undecided. Unlike a Gaussian-process classifier, whose
    mean reverts to its prior a length scale away from the data, it keeps
    saying "infeasible" past the infeasible trials nearest to a region, which
    is where training diverges further still (a higher learning rate).
    """
    x = np.vstack([feasible, infeasible]) if len(feasible) else infeasible
    labels = np.concatenate([np.ones(len(feasible)), np.zeros(len(infeasible))])
    squared = ((candidates[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    weights = np.exp(-squared / (2 * FEASIBILITY_BANDWIDTH**2))
    return (weights @ labels + 0.5 * FEASIBILITY_PRIOR) / (weights.sum(1) + FEASIBILITY_PRIOR)


def _distance_to(candidates, points):
    if not len(points):
        return np.ones(len(candidates))
    diff = candidates[:, None, :] - points[None, :, :]
    return np.sqrt((diff**2).sum(-1)).min(axis=1)


class Observations:
    """What a Bayesian proposal learns from: points of finished, infeasible and running trials.

    Built by the oracles from their trials (and warm-start records); `add`
    takes one trial at a time.
    """

    def __init__(self, coder):
        self.coder = coder
        self.feasible, self.losses, self.infeasible, self.pending = [], [], [], []

    def add(self, values, status, loss=None):
        """Adds a trial: status "completed" (with `loss`, lower is better), "infeasible" or "running"."""
        point = self.coder.encode(values)
        if point is None:
            return False
        if status == "completed" and loss is not None and math.isfinite(loss):
            self.feasible.append(point)
            self.losses.append(float(loss))
        elif status == "infeasible":
            self.infeasible.append(point)
        elif status == "running":
            self.pending.append(point)
        else:
            return False
        return True

    def arrays(self):
        d = self.coder.dimensions

        def stack(points):
            return np.array(points) if points else np.zeros((0, d))

        return (
            stack(self.feasible),
            np.array(self.losses),
            stack(self.infeasible),
            stack(self.pending),
        )

    @property
    def finished(self):
        """How many finished trials (feasible or not) were added."""
        return len(self.feasible) + len(self.infeasible)

    def propose(self, seed):
        """The values of the next point (see `propose`)."""
        feasible, losses, infeasible, pending = self.arrays()
        rng = np.random.default_rng(seed)
        point, info = propose(
            feasible, losses, infeasible, pending, self.coder.dimensions, rng, seed
        )
        return self.coder.decode(point), info
