"""How the time of ``Study.check()`` + ``Study.export()`` grows with the number of trials.

For each size (default 100, 1,000 and 10,000 trials) a synthetic study is
written once with `kplaybook.testing.write_study`, shaped like a
real `kp.PlaybookTuner` study:

- a nested study: scientific ``num_layers`` in [1, 2, 3] (trials round-robin
  over the values), nuisance ``learning_rate`` (log-scaled Float),
  ``dropout`` (linear Float) and ``activation`` (Choice), drawn uniformly in
  the search's coordinates;
- ``--epochs`` (20) epochs of ``loss``, ``val_loss``, ``accuracy`` and
  ``val_accuracy`` per trial, with noise, a learning-rate optimum, some
  overfitting at low dropout and curves still improving at low learning rate;
- ~5% infeasible trials: ``nan_loss`` (at high learning rates; curves end in
  NaN) and ``oom`` (no curves);
- per-step records (grad_norm, lr, clip_fraction, clip_threshold, step_loss;
  ``--steps`` steps) for ``--step-share`` (1%, at least one) of the
  completed trials, as when a few trials are run with
  `kp.callbacks.Warmup` + `GradientNormLogger` + `GradientClipping(percentile=90)`;
  those trials also get the epoch logs the callbacks add (grad_norm,
  grad_norm_max, lr, clip_fraction, clip_threshold).

Then, per repeat, the study's trial index (``kplaybook_index.npz``) is
removed and the study loaded once without it (the "first load": every
``trial.json`` decoded, the index written, as after a search killed before
it refreshed the index), then loaded afresh three times with it (``kp.Study.load``;
the study caches its prepared data, so a reused one would time only the
cached path) and three phases are timed: ``Study.load`` (the best of the
three indexed loads), ``study.check()`` and ``study.export(out)`` with all formats
(report.html with embedded plots, summary.md, CSVs, study.json,
findings.json, plots/*.png) into a fresh directory. The headline is
check + export. Repeats of the sizes are interleaved in rounds (machines are
noisy), after one unmeasured warm-up export of the smallest study (imports,
font cache); each column is the minimum over repeats, and "check+export" is
the minimum over repeats of their sum. Growth factors are ratios of those
minima between consecutive sizes, scaled to a 10x step when the sizes are
not 10x apart (f ** (1 / log10(n2 / n1))).

Targets: close to linear, <= 12x per 10x trials, and 10,000 trials in
under 60 s (check + export, 2-core machine); ``Study.load`` of 10,000
trials in under 1 s, printed as a ratio against reading the same trials with
KerasTuner's ``Trial.load`` in the same run.

Usage:
    python benchmarks/report_scaling.py [--sizes 100 1000 10000] [--epochs 20]
        [--repeats 3] [--large-repeats 1] [--profile]
"""

import argparse
import cProfile
import glob
import json
import math
import os
import pstats
import shutil
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402
from keras_tuner.engine import trial as trial_module  # noqa: E402

import kplaybook as kp  # noqa: E402
from kplaybook.records.layout import StudyLayout  # noqa: E402
from kplaybook.testing import SyntheticTrial  # noqa: E402
from kplaybook.testing import write_study  # noqa: E402

GROWTH_TARGET = 12.0  # per 10x trials
LARGE_TRIALS = 10_000
LARGE_TARGET_S = 60.0
LARGE_SIZE = 10_000  # sizes >= this get --large-repeats repeats
LOAD_TRIALS = 10_000
LOAD_TARGET_S = 1.0
LOAD_REPEATS = 3  # indexed loads per run (each ~0.5 s at 10,000 trials); the best counts

NUM_LAYERS = [1, 2, 3]
ACTIVATIONS = ["relu", "gelu", "tanh"]
LR_RANGE = (1e-4, 1e-1)
DROPOUT_RANGE = (0.0, 0.5)
CLIP_MIN_HISTORY = 50  # GradientClipping's default min_history


def search_space():
    hp = kt.HyperParameters()
    hp.Int("num_layers", 1, 3)
    hp.Float("learning_rate", *LR_RANGE, sampling="log")
    hp.Float("dropout", *DROPOUT_RANGE)
    hp.Choice("activation", ACTIVATIONS)
    return hp


def _curves(rng, layers, u_lr, dropout, activation, epochs):
    """Per-epoch loss/val_loss/accuracy/val_accuracy of one plausible training run."""
    e = np.arange(epochs, dtype=float)
    # Final loss: best near lr = 3e-3 (u ~ 0.5), deeper nets a little better.
    floor = (
        0.25
        + 0.6 * (u_lr - 0.5) ** 2
        - 0.03 * layers
        + {"relu": 0.0, "gelu": -0.01}.get(activation, 0.02)
    )
    # Convergence speed grows with the learning rate (slow runs still improve at the end).
    rate = 0.05 + 0.6 * u_lr
    loss = floor + (2.3 - floor) * np.exp(-rate * e)
    loss *= np.exp(rng.normal(0.0, 0.02, epochs))
    # Generalisation gap growing late in training: overfitting (val_loss turning up)
    # at low dropout, more for deeper nets and faster learning rates.
    late = (e / max(epochs - 1, 1)) ** 2
    gap = 0.05 + 0.4 * layers * (0.5 - dropout) * u_lr * late
    val_loss = loss + gap + rng.normal(0.0, 0.015, epochs)
    val_loss = np.maximum(val_loss, 0.05)
    accuracy = np.clip(1.0 - 0.38 * loss + rng.normal(0.0, 0.005, epochs), 0.0, 1.0)
    val_accuracy = np.clip(1.0 - 0.40 * val_loss + rng.normal(0.0, 0.01, epochs), 0.0, 1.0)
    return {
        "loss": loss.tolist(),
        "val_loss": val_loss.tolist(),
        "accuracy": accuracy.tolist(),
        "val_accuracy": val_accuracy.tolist(),
    }


def _steps(rng, lr, n_steps, epochs):
    """Per-step records and per-epoch summaries of one trial run with
    ``Warmup + GradientNormLogger + GradientClipping(percentile=90)``.

    Returns (steps, epoch curves): the per-step lists `write_study` takes, and
    the epoch logs those callbacks add (grad_norm, grad_norm_max, lr,
    clip_fraction, clip_threshold once clipping is active).
    """
    s = np.arange(1, n_steps + 1, dtype=float)
    warmup = max(1, n_steps // 10)
    lrs = lr * np.minimum(1.0, s / warmup)
    norms = (0.5 + 4.0 * np.exp(-s / (n_steps / 4))) * np.exp(rng.normal(0.0, 0.35, n_steps))
    # The 90th percentile of the last 1,000 norms, from the 50th step on (min_history).
    threshold = np.full(n_steps, np.nan)
    for i in range(CLIP_MIN_HISTORY - 1, n_steps):
        threshold[i] = np.percentile(norms[max(0, i - 999) : i + 1], 90)
    clipped = np.nan_to_num(norms > threshold).astype(float)
    step_loss = (0.3 + 2.0 * np.exp(-s / (n_steps / 5))) * np.exp(rng.normal(0.0, 0.08, n_steps))
    # Batch logs carry the share of the epoch's steps clipped so far.
    per_epoch = max(1, n_steps // epochs)
    clip_fraction = np.empty(n_steps)
    epoch_curves = {k: [] for k in ("grad_norm", "grad_norm_max", "lr", "clip_fraction")}
    epoch_curves["clip_threshold"] = []
    for start in range(0, n_steps, per_epoch):
        part = slice(start, min(start + per_epoch, n_steps))
        seen = np.arange(1, part.stop - part.start + 1)
        clip_fraction[part] = np.cumsum(clipped[part]) / seen
        epoch_curves["grad_norm"].append(float(norms[part].mean()))
        epoch_curves["grad_norm_max"].append(float(norms[part].max()))
        epoch_curves["lr"].append(float(lrs[part][-1]))
        epoch_curves["clip_fraction"].append(float(clipped[part].mean()))
        last = threshold[part][-1]
        epoch_curves["clip_threshold"].append(None if np.isnan(last) else float(last))
    epoch_curves = {k: v[:epochs] for k, v in epoch_curves.items()}
    steps = {
        "grad_norm": norms.tolist(),
        "lr": lrs.tolist(),
        "clip_fraction": clip_fraction.tolist(),
        "clip_threshold": [None if np.isnan(t) else float(t) for t in threshold],
        "step_loss": step_loss.tolist(),
    }
    return steps, epoch_curves


def synthetic_trials(n, epochs, n_steps, step_share, seed):
    """`n` SyntheticTrials round-robin over the scientific values; (trials, counts)."""
    rng = np.random.default_rng(seed)
    lo, hi = math.log(LR_RANGE[0]), math.log(LR_RANGE[1])
    rows = []
    for i in range(n):
        layers = NUM_LAYERS[i % len(NUM_LAYERS)]
        u_lr = float(rng.random())
        lr = float(min(max(math.exp(lo + u_lr * (hi - lo)), LR_RANGE[0]), LR_RANGE[1]))
        dropout = float(rng.uniform(*DROPOUT_RANGE))
        activation = ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))]
        values = {
            "num_layers": layers,
            "learning_rate": lr,
            "dropout": dropout,
            "activation": activation,
        }
        # ~4% nan_loss, all in the top quarter of the (log) learning-rate range,
        # plus ~1% oom: ~5% infeasible.
        draw = float(rng.random())
        if u_lr > 0.75 and draw < 0.16:
            curves = _curves(rng, layers, u_lr, dropout, activation, epochs)
            stop = int(rng.integers(1, epochs))
            curves = {k: v[:stop] + [math.nan] for k, v in curves.items()}
            rows.append(SyntheticTrial(values, curves, "infeasible", "nan_loss"))
        elif draw > 0.99:
            rows.append(SyntheticTrial(values, None, "infeasible", "oom"))
        else:
            curves = _curves(rng, layers, u_lr, dropout, activation, epochs)
            rows.append(SyntheticTrial(values, curves))
    completed = [i for i, t in enumerate(rows) if t.status == "completed"]
    n_with_steps = min(len(completed), max(1, round(step_share * n)))
    for i in rng.choice(completed, size=n_with_steps, replace=False):
        trial = rows[int(i)]
        trial.steps, epoch_logs = _steps(rng, trial.values["learning_rate"], n_steps, epochs)
        trial.curves.update(epoch_logs)
    counts = {
        "infeasible": sum(t.status == "infeasible" for t in rows),
        "with_steps": n_with_steps,
    }
    return rows, counts


def build_study(root, n, args):
    """Write an n-trial study under `root`; (directory, counts, seconds)."""
    start = time.perf_counter()
    trials, counts = synthetic_trials(n, args.epochs, args.steps, args.step_share, args.seed)
    directory = write_study(
        os.path.join(root, f"study_{n}"),
        search_space(),
        trials,
        scientific={"num_layers": NUM_LAYERS},
        seed=args.seed,
        trials_per_study=-(-n // len(NUM_LAYERS)),
    )
    return directory, counts, time.perf_counter() - start


def keras_tuner_load(directory):
    """Seconds to read every trial the way KerasTuner does (`Trial.load` per trial.json).

    The baseline of `Study.load`: kplaybook 0.1 read studies this way.
    """
    t0 = time.perf_counter()
    with open(os.path.join(directory, "oracle.json")) as f:
        json.load(f)
    for path in glob.glob(os.path.join(directory, "trial_*", "trial.json")):
        trial_module.Trial.load(path)
    return time.perf_counter() - t0


def one_run(directory, out_root, tag):
    """(load s, check s, export s, KerasTuner load s, first load s) on a freshly loaded study.

    "first load" is a `Study.load` with no trial index (every trial.json
    decoded, the index written), as after a search killed before it could
    refresh the index; "load" is the best of `LOAD_REPEATS` loads that read it.
    """
    out = tempfile.mkdtemp(dir=out_root, prefix=f"export_{tag}_")
    try:
        baseline = keras_tuner_load(directory)
        index_file = StudyLayout(directory).index_file
        if os.path.exists(index_file):
            os.remove(index_file)
        t0 = time.perf_counter()
        kp.Study.load(directory)
        first = time.perf_counter() - t0
        loads = []
        for _ in range(LOAD_REPEATS):
            t0 = time.perf_counter()
            study = kp.Study.load(directory)
            loads.append(time.perf_counter() - t0)
        t1 = time.perf_counter()
        study.check()
        t2 = time.perf_counter()
        study.export(out, formats=("html", "md", "csv", "json"))
        t3 = time.perf_counter()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return min(loads), t2 - t1, t3 - t2, baseline, first


def profile_run(directory, out_root, top):
    """cProfile of check() + export() on a freshly loaded study; prints the top `top` entries."""
    study = kp.Study.load(directory)
    out = tempfile.mkdtemp(dir=out_root, prefix="export_profile_")
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        study.check()
        study.export(out)
        profiler.disable()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    for order in ("cumulative", "tottime"):
        print(f"\ncProfile of check() + export(), top {top} by {order}:")
        pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats(order).print_stats(top)


def _scaled_growth(t1, t2, n1, n2):
    """Growth factor t2/t1 expressed per 10x trials."""
    return (t2 / t1) ** (1.0 / math.log10(n2 / n1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial (default 20)")
    parser.add_argument(
        "--steps", type=int, default=400, help="per-step records per trial that has them"
    )
    parser.add_argument(
        "--step-share",
        type=float,
        default=0.01,
        help="share of trials with per-step records (default 0.01, at least one)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help=f"repeats of sizes < {LARGE_SIZE} (default 3)"
    )
    parser.add_argument(
        "--large-repeats",
        type=int,
        default=1,
        help=f"repeats of sizes >= {LARGE_SIZE} (default 1)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after timing, cProfile check()+export() of the largest size once",
    )
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument(
        "--dir", default=None, help="where the studies go (default: a fresh temp dir)"
    )
    args = parser.parse_args(argv)
    sizes = sorted(set(args.sizes))
    if sizes[0] < 1 or args.epochs < 2 or min(args.repeats, args.large_repeats) < 1:
        parser.error("need sizes >= 1, --epochs >= 2 and repeats >= 1")

    warnings.simplefilter("ignore", kp.PlaybookWarning)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="kp_report_scaling_") as root:
        print(
            f"Report scaling: Study.load, check(), export(all formats) on nested synthetic "
            f"studies ({args.epochs} epochs, 4 metrics, ~5% infeasible, {args.steps} steps "
            f"for {args.step_share:.0%} of trials)\n"
        )
        built = {}
        for n in sizes:
            directory, counts, seconds = build_study(root, n, args)
            built[n] = (directory, counts)
            print(
                f"  wrote {n:>6} trials ({counts['infeasible']} infeasible, "
                f"{counts['with_steps']} with steps) in {seconds:.1f} s"
            )

        # Unmeasured warm-up: imports (matplotlib, pandas I/O), font cache, first draws.
        one_run(built[sizes[0]][0], root, "warmup")

        repeats = {n: args.large_repeats if n >= LARGE_SIZE else args.repeats for n in sizes}
        runs = {n: [] for n in sizes}
        for r in range(max(repeats.values())):
            # Interleave sizes, alternating the order from round to round.
            order = sizes if r % 2 == 0 else sizes[::-1]
            for n in order:
                if len(runs[n]) < repeats[n]:
                    runs[n].append(one_run(built[n][0], root, f"{n}_{r}"))

        print()
        header = (
            f"{'trials':>7} {'repeats':>7} {'load s':>8} {'check s':>8} {'export s':>9} "
            f"{'check+export s':>14} {'per trial ms':>12}"
        )
        print(header)
        print("-" * len(header))
        total = {}
        for n in sizes:
            load = min(x[0] for x in runs[n])
            check = min(x[1] for x in runs[n])
            export = min(x[2] for x in runs[n])
            total[n] = min(x[1] + x[2] for x in runs[n])
            print(
                f"{n:>7} {len(runs[n]):>7} {load:>8.2f} {check:>8.2f} {export:>9.2f} "
                f"{total[n]:>14.2f} {1e3 * total[n] / n:>12.2f}"
            )
        print("\n(min over repeats per column; check+export = min over repeats of the sum)")
        print(
            "\nStudy.load against KerasTuner's Trial.load of every trial (same run; "
            f"target: {LOAD_TRIALS} trials in under {LOAD_TARGET_S:g} s):"
        )
        verdicts = []
        for n in sizes:
            load = min(x[0] for x in runs[n])
            baseline = min(x[3] for x in runs[n])
            first = min(x[4] for x in runs[n])
            line = (
                f"  {n:>6} trials: Study.load {load:.2f} s, Trial.load {baseline:.2f} s, "
                f"ratio {load / baseline:.2f}; without the index (decodes every trial.json, "
                f"writes it) {first:.2f} s, ratio {first / baseline:.2f}"
            )
            if n == LOAD_TRIALS:
                ok = load < LOAD_TARGET_S
                verdicts.append(ok)
                line += f"  {'PASS' if ok else 'FAIL'}"
            print(line)

        if len(sizes) > 1:
            print(f"\nGrowth of check+export per 10x trials (target <= {GROWTH_TARGET:g}x):")
            for n1, n2 in zip(sizes, sizes[1:]):
                raw = total[n2] / total[n1]
                per10 = _scaled_growth(total[n1], total[n2], n1, n2)
                ok = per10 <= GROWTH_TARGET
                verdicts.append(ok)
                scaled = "" if n2 == 10 * n1 else f" (raw {raw:.2f}x over {n2 / n1:g}x trials)"
                # The fixed cost (drawing the plots) flattens the ratio at small sizes;
                # the marginal cost per added trial shows the slope itself.
                marginal = 1e3 * (total[n2] - total[n1]) / (n2 - n1)
                print(
                    f"  {n2:>6} / {n1:<6} {per10:6.2f}x{scaled}  {'PASS' if ok else 'FAIL'}"
                    f"   (marginal {marginal:.2f} ms per added trial)"
                )
        if LARGE_TRIALS in total:
            ok = total[LARGE_TRIALS] < LARGE_TARGET_S
            verdicts.append(ok)
            print(
                f"\n{LARGE_TRIALS} trials check+export {total[LARGE_TRIALS]:.1f} s "
                f"(target < {LARGE_TARGET_S:g} s): {'PASS' if ok else 'FAIL'}"
            )
        else:
            print(f"\n(no {LARGE_TRIALS}-trial size: the absolute target is not checked)")
        print(f"\nOVERALL: {'PASS' if all(verdicts) else 'FAIL'}")

        if args.profile:
            profile_run(built[sizes[-1]][0], root, args.profile_top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
