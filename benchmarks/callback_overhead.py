"""Wall-time overhead of kplaybook's stability callbacks on `model.fit`, and where its floor is.

Compares, on the same model, data and number of steps,

- plain ``model.fit`` (the baseline),
- ``model.fit`` with ``GradientNormLogger() + GradientClipping(percentile=90)
  + Warmup(...)`` (per-step global norm, percentile clipping over a 1,000-step
  history, per-step learning-rate ramp over the first 10% of the steps), and
- Keras's own exact global-norm clipping, ``Adam(global_clipnorm=1.0)``,
  with none of the logging: what clipping the whole gradient costs in Keras
  itself (on one device it is exact; under ``MirroredStrategy`` it clips
  each replica's share, which is why kplaybook does not use it),

for a small MLP and a small CNN on scikit-learn's digits (offline). Each
repeat builds a fresh model from the same seed for each variant and times one
whole ``fit`` of ``--epochs`` epochs of ``--steps-per-epoch`` steps (tracing
included: every variant traces its train function once), up to the end of
its callbacks' ``on_train_end``. The machine may be noisy, so the variants
are interleaved and their order alternates from repeat to repeat; the ratio
pairs each repeat's two times and the headline is the median over repeats
(with the min-max range). Beside it: the same ratio of the fits' CPU time
(which other processes on the machine do not inflate), the steady-state
ratio (median epoch time, the first epoch excluded) and the extra
microseconds per step.

Where the floor is. On CPU every op of the traced step costs its dispatch
whatever its size, and inside a busy step (the convolutions hold both
cores) a scalar op's wall time is 2-30 us, not the ~1.5 us it takes in a
tight loop. Since times are noisy, the benchmark also counts, with
TensorFlow's profiler, the kernels each variant's step runs: a number that
does not move with the machine's load (on CPU, without XLA). With N weight
tensors (measured at N = 6 and 8), Keras's ``global_clipnorm`` adds 3N + 7 kernels (a square and a sum per tensor, the
norm, the factor, a multiply per tensor); the callbacks add 2N + 21: the
norm and its scaling (2N + 6: one ``l2_loss`` and one multiply per tensor),
the finite check (2), recording the norm for the percentile and reading the
threshold (4), the epoch counts (5), the learning rate (1) and packing the
step's values into one log output (3). So for models with more than 14
weight tensors the callbacks dispatch fewer kernels than Keras's clipping
alone; for these two tiny models they dispatch 6 (CNN) and 8 (MLP) more.
This implementation of the exact clipping needs 2N + 5 kernels, and the
update has to wait for the norm of every gradient. The benchmark also times exactly that
minimum, on tensors shaped like the model's weights, in a tight loop against
a function returning the same tensors unscaled. The host then unpacks the
one log output into ``grad_norm``, ``lr``, ``clip_fraction`` and
``clip_threshold`` when Keras converts the logs (~15 us a step; one output
rather than four saved ~20 us). The percentile itself is recomputed on the
host every 50 steps, outside the traced step.

Once per fit, tracing: the hooks add their ops to the traced step, ~0.1 s
more tracing per fit here (MLP: first batch 1.14 s against 1.03 s plain, and
each op costs ~0.3 ms to add to a graph whichever TensorFlow API creates it).
In the 800-step benchmark fit that alone is ~4% of the MLP's ratio and ~1.5%
of the CNN's; a longer fit dilutes it.

Tried and dropped: keeping the epoch counts and the clipping history on the
host, from each step's logged values (9 fewer ops in the traced step), was
no faster in a same-process A/B on the MLP (10th-percentile step 1,662 us
against 1,629 us with the ops): the Python bookkeeping per step costs what
the ops did.

How far noise alone moves the ratio: each repeat also runs a second plain
fit, and the plain-against-plain ratio (A/A control) is printed beside the
headline. On the 2-core machines here it has ranged over +-20% per repeat,
and two identical variants in one process differ by 50-70 us a step: a
change smaller than that cannot be shown here.

Target: ratio <= 1.10 on the MLP and <= 1.03 on the CNN.

Usage:
    python benchmarks/callback_overhead.py [--repeats 9] [--epochs 8] [--steps-per-epoch 100]
"""

import argparse
import glob
import os
import statistics
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kplaybook as kp  # noqa: E402

TARGETS = {"MLP": 1.10, "CNN": 1.03}
# The floor's tight loop: calls per timed burst, and bursts per function.
FLOOR_CALLS = 200
FLOOR_BURSTS = 21


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


class FitTimer(keras.callbacks.Callback):
    """Wall time of each epoch, and wall and CPU time at the end of training (no per-batch hooks).

    Listed last, its `on_train_end` runs after every other callback's: the
    fit is timed up to there. What Keras does after it (dropping the
    tf.data iterator, whose prefetch threads can take up to seconds of idle
    wall time to stop on a loaded machine, the same for both variants) is
    not the callbacks' cost.
    """

    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)

    def on_train_end(self, logs=None):
        self.end = (time.perf_counter(), time.process_time())


VARIANTS = ("plain", "keras_clip", "ours")


def build(factory, x, y, epochs, steps_per_epoch, batch_size, variant):
    """(model, dataset, callbacks) of one variant, from the same seed.

    ``keras_clip`` is Keras's own exact global-norm clipping
    (``Adam(global_clipnorm=1.0)``; on one device it clips the whole
    gradient): what any exact global-norm clipping costs in Keras itself,
    with none of the logging. ``ours`` is the three callbacks on a plain Adam.
    """
    keras.utils.set_random_seed(0)
    model, reshape = factory()
    clip = {"global_clipnorm": 1.0} if variant == "keras_clip" else {}
    model.compile(
        keras.optimizers.Adam(1e-3, **clip),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    callbacks = []
    if variant == "ours":
        callbacks = [
            kp.callbacks.GradientNormLogger(),
            kp.callbacks.GradientClipping(percentile=90),
            kp.callbacks.Warmup(max(1, epochs * steps_per_epoch // 10)),
        ]
    return model, dataset(reshape(x), y, batch_size), callbacks


def one_fit(factory, x, y, epochs, steps_per_epoch, batch_size, variant):
    """(whole fit wall s, its CPU s, median epoch wall s after the first) for one fresh model."""
    model, data, callbacks = build(factory, x, y, epochs, steps_per_epoch, batch_size, variant)
    timer = FitTimer()
    start = (time.perf_counter(), time.process_time())
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
    wall, cpu = (end - begin for end, begin in zip(timer.end, start))
    steady = statistics.median(timer.times[1:]) if len(timer.times) > 1 else wall
    return wall, cpu, steady


def kernels_per_step(factory, x, y, batch_size, variant, steps=20):
    """How many kernels one train step runs, counted by TensorFlow's profiler; None if unreadable.

    Unlike a time, this count does not move with the machine's load: it is
    the number of ops the step's executor dispatches (the traced function's
    kernels, named ``StatefulPartitionedCall/...`` in the trace), after
    TensorFlow's graph optimisations.
    """
    try:
        return _count_kernels(factory, x, y, batch_size, variant, steps)
    except Exception:  # noqa: BLE001 - a profiler this script cannot read: no count, the times stand
        return None


def _count_kernels(factory, x, y, batch_size, variant, steps):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    model, data, callbacks = build(factory, x, y, 1, steps, batch_size, variant)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        model.fit(data, steps_per_epoch=2, epochs=1, shuffle=False, verbose=0)  # the plain step
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            try:
                # The variant's callbacks retrace the step before its first call.
                model.fit(
                    data,
                    steps_per_epoch=steps,
                    epochs=1,
                    callbacks=callbacks,
                    shuffle=False,
                    verbose=0,
                )
            finally:
                tf.profiler.experimental.stop()
            paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
            if not paths:
                return None
            space = xplane_pb2.XSpace()
            with open(paths[0], "rb") as f:
                space.ParseFromString(f.read())
    count = 0
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            count += sum(
                names[event.metadata_id].name.startswith("StatefulPartitionedCall/")
                for event in line.events
            )
    return count / steps if count else None


def floor_cost(factory):
    """(us per call of the minimal norm + scaling, its op count) on tensors shaped like the weights.

    Both functions take and return the same tensors, so the difference is
    the ops alone. The bursts of the two are interleaved and each keeps its
    fastest: other processes only ever add time.
    """
    model, _ = factory()
    tensors = [tf.random.normal(w.shape) for w in model.trainable_weights]

    @tf.function
    def unscaled(*gradients):
        return [tf.identity(g) for g in gradients]

    @tf.function
    def scaled(*gradients):
        norm = tf.sqrt(2.0 * tf.add_n([tf.nn.l2_loss(g) for g in gradients]))
        factor = 1.0 / tf.maximum(norm, 1.0)
        return [g * factor for g in gradients]

    times = {unscaled: [], scaled: []}
    for function in times:
        function(*tensors)  # trace
    for burst in range(FLOOR_BURSTS):
        for function in (unscaled, scaled) if burst % 2 == 0 else (scaled, unscaled):
            start = time.perf_counter()
            for _ in range(FLOOR_CALLS):
                function(*tensors)
            times[function].append((time.perf_counter() - start) / FLOOR_CALLS)
    extra = min(times[scaled]) - min(times[unscaled])
    # l2_loss and multiply per tensor; add_n, 2 *, sqrt; the factor's max and divide.
    return 1e6 * extra, 2 * len(tensors) + 5


def measure(name, factory, x, y, args):
    for variant in VARIANTS:  # warm the process (imports, thread pools)
        one_fit(factory, x, y, 2, 5, args.batch_size, variant)
    # "control" is a second plain fit in each repeat: plain against plain (an
    # A/A comparison) shows how far the machine's noise alone moves a ratio.
    runs = {variant: [] for variant in (*VARIANTS, "control")}
    for r in range(args.repeats):
        # The A/A pair is the farthest apart in every order, so the noise it
        # shows bounds what drift within a repeat does to the other ratios.
        order = ["plain", "ours", "keras_clip", "control"]
        for variant in order if r % 2 == 0 else order[::-1]:
            runs[variant].append(
                one_fit(
                    factory,
                    x,
                    y,
                    args.epochs,
                    args.steps_per_epoch,
                    args.batch_size,
                    "plain" if variant == "control" else variant,
                )
            )

    def ratios(variant, column=0):
        return [b[column] / a[column] for a, b in zip(runs["plain"], runs[variant])]

    def summary(values):
        return f"{statistics.median(values):.3f}x (range {min(values):.3f}-{max(values):.3f})"

    def step_us(variant):
        return 1e6 * statistics.median(r[2] for r in runs[variant]) / args.steps_per_epoch

    whole = ratios("ours")
    steps = args.epochs * args.steps_per_epoch
    floor, floor_ops = floor_cost(factory)
    tensors = len(factory()[0].trainable_weights)
    kernels = {v: kernels_per_step(factory, x, y, args.batch_size, v) for v in VARIANTS}
    indent = " " * len(name)
    print(
        f"{name}: whole fit ({steps} steps) plain "
        f"{statistics.median(a[0] for a in runs['plain']):.3f} s, with callbacks "
        f"{statistics.median(b[0] for b in runs['ours']):.3f} s -> ratio {summary(whole)}, "
        f"{args.repeats} interleaved repeats"
    )
    print(
        f"{indent}  Keras's own exact clipping (Adam(global_clipnorm=1.0), no logging) in the "
        f"same repeats: ratio {summary(ratios('keras_clip'))}; ours against it: "
        f"{summary([o / k for o, k in zip(whole, ratios('keras_clip'))])}"
    )
    print(
        f"{indent}  A/A control, plain against plain in the same repeats: ratio "
        f"{summary(ratios('control'))}: a difference of that size is noise"
    )
    print(
        f"{indent}  its CPU time (ignores time other processes hold the cores): ratio "
        f"{summary(ratios('ours', 1))}"
    )
    print(
        f"{indent}  steady state: {step_us('plain'):.0f} us/step plain, "
        f"{step_us('keras_clip'):.0f} with Keras's clipping, {step_us('ours'):.0f} with "
        f"callbacks -> ratio {statistics.median(ratios('ours', 2)):.3f}x "
        f"({step_us('ours') - step_us('plain'):+.0f} us/step)"
    )
    if all(kernels.values()):
        print(
            f"{indent}  kernels per step (TensorFlow's profiler; does not move with load): "
            f"plain {kernels['plain']:.0f}, Keras's clipping "
            f"{kernels['keras_clip'] - kernels['plain']:+.0f}, callbacks "
            f"{kernels['ours'] - kernels['plain']:+.0f}"
        )
    else:
        print(f"{indent}  kernels per step: this TensorFlow's profiler trace could not be read")
    print(
        f"{indent}  floor: the global norm and scaling of its {tensors} weight tensors "
        f"alone ({floor_ops} ops) cost {floor:.0f} us/step in a tight loop "
        f"(~{floor / floor_ops:.1f} us/op)"
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
    verdicts = [
        f"{name} {ratio:.3f}x (target <= {TARGETS[name]:.2f}: "
        f"{'met' if ratio <= TARGETS[name] else 'NOT met'})"
        for name, ratio in results.items()
    ]
    print("whole-fit ratios: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
