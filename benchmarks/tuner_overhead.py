"""Per-trial cost of a whole kplaybook search against KerasTuner's RandomSearch.

The same 16 tiny trials (a 64-16-10 MLP on 400 digits, 2 epochs, batch 64)
run under

- ``keras_tuner.RandomSearch`` (the baseline), and
- ``kp.QuasiRandomSearch``: everything kplaybook adds around a trial
  (discovering the space before the first trial, recording every epoch and
  step, the infeasible verdict, KerasTuner's scoring, atomic writes of every
  study file with fsync, the notes),

each in a fresh directory, training included (the models are as small as a
test's, so kplaybook's own cost is as visible as it gets). The machine may
be noisy, so the two are interleaved over ``--repeats`` repeats (order
alternating) and the headline is the median of the per-repeat ratios, with
the range.

Target: ratio <= 1.05 (parity).

Usage:
    python benchmarks/tuner_overhead.py [--repeats 5] [--trials 16]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402

import kplaybook as kp  # noqa: E402

TARGET = 1.05


def build(hp):
    model = keras.Sequential([keras.Input((64,))])
    model.add(keras.layers.Dense(16, activation=hp.Choice("activation", ["relu", "tanh"])))
    model.add(keras.layers.Dense(10, activation="softmax"))
    lr = hp.Float("learning_rate", 1e-3, 1e-1, sampling="log")
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    return model


def run(kind, trials, directory, data):
    (x, y), (xv, yv) = data
    common = dict(objective="val_loss", max_trials=trials, directory=directory, project_name=kind)
    if kind == "keras_tuner":
        tuner = kt.RandomSearch(build, seed=1, **common)
    else:
        tuner = kp.QuasiRandomSearch(build, seed=1, **common)
    start = time.perf_counter()
    tuner.search(x, y, validation_data=(xv, yv), epochs=2, batch_size=64, verbose=0)
    return (time.perf_counter() - start) / trials


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--trials", type=int, default=16)
    args = parser.parse_args(argv)
    (x, y), (xv, yv) = kp.datasets.load("digits")
    data = ((x[:400], y[:400]), (xv[:200], yv[:200]))
    with tempfile.TemporaryDirectory(prefix="kp_tuner_overhead_") as root:
        run("keras_tuner", 2, os.path.join(root, "warmup_kt"), data)  # imports, tracing caches
        run("kplaybook", 2, os.path.join(root, "warmup_kp"), data)
        ratios, times = [], {"keras_tuner": [], "kplaybook": []}
        for r in range(args.repeats):
            order = ("keras_tuner", "kplaybook") if r % 2 == 0 else ("kplaybook", "keras_tuner")
            seconds = {}
            for kind in order:
                seconds[kind] = run(kind, args.trials, os.path.join(root, f"{kind}_{r}"), data)
                times[kind].append(seconds[kind])
            ratios.append(seconds["kplaybook"] / seconds["keras_tuner"])
            print(
                f"  repeat {r}: KerasTuner {1e3 * seconds['keras_tuner']:.0f} ms/trial, "
                f"kplaybook {1e3 * seconds['kplaybook']:.0f} ms/trial, ratio {ratios[-1]:.3f}"
            )
    ratio = statistics.median(ratios)
    print(
        f"\n{args.trials} tiny trials per search, median over {args.repeats} repeats: "
        f"KerasTuner {1e3 * statistics.median(times['keras_tuner']):.0f} ms/trial, "
        f"kplaybook {1e3 * statistics.median(times['kplaybook']):.0f} ms/trial"
    )
    print(
        f"ratio kplaybook / KerasTuner: {ratio:.3f} (range {min(ratios):.3f}-{max(ratios):.3f}); "
        f"target <= {TARGET}: {'PASS' if ratio <= TARGET else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
