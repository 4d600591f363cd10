"""Wall-time overhead of kplaybook's stability callbacks on `model.fit`.

Compares, on the same model, data and number of steps,

- plain ``model.fit`` (the baseline), and
- ``model.fit`` with ``GradientNormLogger() + GradientClipping(percentile=90)
  + Warmup(...)`` (per-step global norm, percentile clipping over a 1,000-norm
  history, per-step learning-rate ramp),

for a small MLP and a small CNN on scikit-learn's digits (offline). Each
repeat builds a fresh model from the same seed for each variant and times one
whole ``fit`` of ``--epochs`` epochs of ``--steps-per-epoch`` steps (tracing
included: both variants trace their train function once). The machine may be
noisy, so the variants are interleaved and their order alternates from repeat
to repeat; the ratio pairs each repeat's two times and the headline is the
median over repeats (with the min-max range). The steady-state ratio (median
epoch time, the first epoch excluded) and the extra microseconds per step are
printed beside it.

Target (issue): ratio <= 1.05 (stretch 1.02).

Usage:
    python benchmarks/callback_overhead.py [--repeats 9] [--epochs 8] [--steps-per-epoch 100]
"""

import argparse
import os
import statistics
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kplaybook as kp  # noqa: E402


def mlp():
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    return model, lambda x: x


def cnn():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    return model, lambda x: x.reshape(-1, 8, 8, 1)


def dataset(x, y, batch_size):
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=0)
        .batch(batch_size, drop_remainder=True)
        .repeat()
        .prefetch(2)
    )


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch (no per-batch hooks, so it costs nothing per step)."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def one_fit(factory, x, y, epochs, steps_per_epoch, batch_size, instrumented):
    """(whole fit seconds, median epoch seconds after the first) for one fresh model."""
    keras.utils.set_random_seed(0)
    model, reshape = factory()
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    data = dataset(reshape(x), y, batch_size)
    callbacks = []
    if instrumented:
        callbacks = [
            kp.callbacks.GradientNormLogger(),
            kp.callbacks.GradientClipping(percentile=90),
            kp.callbacks.Warmup(max(1, epochs * steps_per_epoch // 10)),
        ]
    timer = EpochTimer()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        model.fit(
            data,
            steps_per_epoch=steps_per_epoch,
            epochs=epochs,
            callbacks=[*callbacks, timer],
            shuffle=False,
            verbose=0,
        )
    total = time.perf_counter() - start
    steady = statistics.median(timer.times[1:]) if len(timer.times) > 1 else total
    return total, steady


def measure(name, factory, x, y, args):
    for instrumented in (False, True):  # warm the process (imports, thread pools)
        one_fit(factory, x, y, 2, 5, args.batch_size, instrumented)
    runs = {False: [], True: []}
    for r in range(args.repeats):
        for instrumented in (False, True) if r % 2 == 0 else (True, False):
            runs[instrumented].append(
                one_fit(
                    factory, x, y, args.epochs, args.steps_per_epoch, args.batch_size, instrumented
                )
            )
    whole = [b[0] / a[0] for a, b in zip(runs[False], runs[True])]
    steady = [b[1] / a[1] for a, b in zip(runs[False], runs[True])]
    plain_step = statistics.median(a[1] for a in runs[False]) / args.steps_per_epoch
    ours_step = statistics.median(b[1] for b in runs[True]) / args.steps_per_epoch
    steps = args.epochs * args.steps_per_epoch
    print(
        f"{name}: whole fit ({steps} steps) plain {statistics.median(a[0] for a in runs[False]):.3f} s, "
        f"with callbacks {statistics.median(b[0] for b in runs[True]):.3f} s -> ratio "
        f"{statistics.median(whole):.3f}x (range {min(whole):.3f}-{max(whole):.3f}, "
        f"{args.repeats} interleaved repeats)"
    )
    print(
        f"{' ' * len(name)}  steady state: {1e6 * plain_step:.0f} us/step plain, "
        f"{1e6 * ours_step:.0f} us/step with callbacks -> ratio {statistics.median(steady):.3f}x "
        f"({1e6 * (ours_step - plain_step):+.0f} us/step)"
    )
    return statistics.median(whole)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    (x, y), _ = kp.datasets.load_digits(seed=0)
    x = np.asarray(x, np.float32)
    print(
        "Callback overhead: GradientNormLogger + GradientClipping(percentile=90) + Warmup vs plain fit"
    )
    results = {
        "MLP": measure("MLP", mlp, x, y, args),
        "CNN": measure("CNN", cnn, x, y, args),
    }
    worst = max(results.values())
    print(
        f"worst ratio {worst:.3f}x (target <= 1.05, stretch 1.02): {'met' if worst <= 1.05 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
