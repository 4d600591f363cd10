"""Wall-time overhead of kplaybook's stability callbacks on `model.fit`.

Compares, on the same model, data and number of steps,

- plain ``model.fit`` (the baseline), and
- ``model.fit`` with ``GradientNormLogger() + GradientClipping(percentile=90)
  + Warmup(...)`` (per-step global norm, percentile clipping over a 1,000-norm
  history, per-step learning-rate ramp),

for a small MLP and a small CNN on scikit-learn's digits (offline). Each
repeat builds a fresh model from the same seed for each variant and times one
whole ``fit`` (tracing included: both variants trace their train function
once). The machine may be noisy, so the variants are interleaved and their
order alternates from repeat to repeat; the ratio pairs each repeat's two
times and the headline is the median over repeats (with the min-max range).

Target (issue): ratio <= 1.05 (stretch 1.02).

Usage:
    python benchmarks/callback_overhead.py [--repeats 9] [--steps 400]
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


def one_fit(factory, x, y, steps, batch_size, instrumented):
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
            kp.callbacks.Warmup(steps // 10),
        ]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        model.fit(
            data, steps_per_epoch=steps // 4, epochs=4, callbacks=callbacks, shuffle=False, verbose=0
        )
    return time.perf_counter() - start


def measure(name, factory, x, y, steps, batch_size, repeats):
    one_fit(factory, x, y, 20, batch_size, False)  # warm the process (imports, thread pools)
    one_fit(factory, x, y, 20, batch_size, True)
    plain, ours, ratios = [], [], []
    for r in range(repeats):
        order = (False, True) if r % 2 == 0 else (True, False)
        times = {}
        for instrumented in order:
            times[instrumented] = one_fit(factory, x, y, steps, batch_size, instrumented)
        plain.append(times[False])
        ours.append(times[True])
        ratios.append(times[True] / times[False])
    ratio = statistics.median(ratios)
    print(
        f"{name:4s}  plain fit {statistics.median(plain):6.3f} s   with callbacks "
        f"{statistics.median(ours):6.3f} s   ratio {ratio:.3f}x "
        f"(range {min(ratios):.3f}-{max(ratios):.3f}, {repeats} interleaved repeats, "
        f"{steps} steps, {1e3 * statistics.median(plain) / steps:.2f} ms/step plain)"
    )
    return ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    (x, y), _ = kp.datasets.load_digits(seed=0)
    x = np.asarray(x, np.float32)
    print("Callback overhead: GradientNormLogger + GradientClipping(percentile=90) + Warmup vs plain fit")
    results = {
        "MLP": measure("MLP", mlp, x, y, args.steps, args.batch_size, args.repeats),
        "CNN": measure("CNN", cnn, x, y, args.steps, args.batch_size, args.repeats),
    }
    worst = max(results.values())
    print(f"worst ratio {worst:.3f}x (target <= 1.05, stretch 1.02): {'met' if worst <= 1.05 else 'NOT met'}")


if __name__ == "__main__":
    main()
