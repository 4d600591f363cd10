"""Accuracy and cost of `study.importance()` against analytic Sobol indices.

Synthetic studies (`kplaybook.testing`) whose objective is a known function
of five hyperparameters uniform on [0, 1]:

    f = x1 + 0.3 x2 + 0 x3 + 2 (x4 - 1/2)(x5 - 1/2) + noise (sd 0.01)

Its Sobol indices are known exactly: x1 70.3%, x2 6.3%, x3 0, x4 and x5 0
alone and 23.4% together (a pure interaction). For 100 / 1,000 / 10,000
quasi-random trials the benchmark prints, for the default surrogate (a
Gaussian process) and the alternative (a random forest, `surrogate="forest"`),
the largest error of the first-order shares, the error of the pair's share,
and the wall time of `importance()` + `interactions()` on a freshly loaded
study. When Optuna is installed (it is not a kplaybook dependency:
``pip install optuna``) its fANOVA evaluator, whose importances are
normalised first-order shares, is timed and scored on the same trials as a
baseline.

Usage:
    python benchmarks/importance.py [--sizes 100 1000 10000]
"""

import argparse
import os
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import qmc  # noqa: E402

import kplaybook as kp  # noqa: E402
from kplaybook.testing import SyntheticTrial  # noqa: E402
from kplaybook.testing import write_study  # noqa: E402

VARIANCE = 1 / 12 + 0.09 / 12 + 4 / 144
TRUE_FIRST = np.array([1 / 12, 0.09 / 12, 0, 0, 0]) / VARIANCE
TRUE_PAIR = (4 / 144) / VARIANCE
NAMES = [f"x{k}" for k in range(1, 6)]


def make_study(root, n, seed=0):
    hp = kt.HyperParameters()
    for name in NAMES:
        hp.Float(name, 0.0, 1.0)
    points = qmc.Halton(d=5, scramble=True, seed=seed).random(n)
    noise = np.random.default_rng(seed).normal(0, 0.01, n)
    trials = []
    for u, e in zip(points, noise):
        values = dict(zip(NAMES, map(float, u)))
        y = u[0] + 0.3 * u[1] + 2 * (u[3] - 0.5) * (u[4] - 0.5) + e
        trials.append(SyntheticTrial(values, {"val_loss": [float(y) + 1, float(y)]}))
    return write_study(os.path.join(root, f"s{n}"), hp, trials), points, points[:, 0] * 0


def score(first, pair):
    return float(np.max(np.abs(first - TRUE_FIRST))), float(abs(pair - TRUE_PAIR))


def ours(directory, surrogate):
    study = kp.Study.load(directory)
    start = time.perf_counter()
    imp = study.importance(surrogate=surrogate).set_index("hyperparameter")
    pairs = study.interactions(surrogate=surrogate)
    seconds = time.perf_counter() - start
    match = pairs[pairs.apply(lambda r: {r["hp_a"], r["hp_b"]} == {"x4", "x5"}, axis=1)][
        "importance"
    ]
    pair = float(match.iloc[0]) if len(match) else 0.0
    return score(imp.loc[NAMES, "importance"].to_numpy(), pair) + (seconds,)


def optuna_fanova(directory):
    try:
        import optuna
    except ImportError:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = kp.Study.load(directory)
    frame = study.to_dataframe()
    distributions = {n: optuna.distributions.FloatDistribution(0.0, 1.0) for n in NAMES}
    trials = [
        optuna.trial.create_trial(
            params={n: float(row[n]) for n in NAMES},
            distributions=distributions,
            value=float(row["objective"]),
        )
        for _, row in frame.iterrows()
    ]
    ostudy = optuna.create_study()
    ostudy.add_trials(trials)
    start = time.perf_counter()
    result = optuna.importance.get_param_importances(
        ostudy, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), normalize=False
    )
    seconds = time.perf_counter() - start
    first = np.array([result[n] for n in NAMES])
    return score(first, 0.0)[0], float("nan"), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument(
        "--optuna-max-trials",
        type=int,
        default=1000,
        help="run Optuna's fANOVA only up to this many trials (it took 63 s at 1,000 on 2 cores "
        "and grows faster than linearly)",
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    print(
        "Importance vs analytic Sobol indices (x1 70.3%, x2 6.3%, x3 0, x4 x x5 pair 23.4%)\n"
        f"{'trials':>7} {'method':>16} {'max err (first)':>16} {'err (pair)':>11} {'seconds':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="kp_importance_") as root:
        for n in args.sizes:
            directory, _, _ = make_study(root, n)
            rows = [
                ("kplaybook gp", ours(directory, "gp")),
                ("kplaybook forest", ours(directory, "forest")),
            ]
            baseline = optuna_fanova(directory) if n <= args.optuna_max_trials else None
            if baseline is None and n > args.optuna_max_trials:
                print(f"        (Optuna's fANOVA skipped above {args.optuna_max_trials} trials)")
            if baseline is not None:
                rows.append(("optuna fANOVA", baseline))
            for name, (first_err, pair_err, seconds) in rows:
                print(f"{n:>7} {name:>16} {first_err:>16.3f} {pair_err:>11.3f} {seconds:>8.2f}")
            if baseline is None and n == args.sizes[0]:
                print("        (optuna not installed: pip install optuna to add its fANOVA)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
