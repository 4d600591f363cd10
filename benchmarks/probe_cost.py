"""Cost and stability of ``kp.distribute.probe_batch_sizes`` vs a Lightning-style doubling loop.

Both methods look for the largest batch size that fits in memory on the same
model and data, doubling the batch from 8 until the first real
out-of-memory error:

- kplaybook: ``probe_batch_sizes(build, (x, y), steps=20, warmup_steps=3)``
  (defaults; in-process on CPU): per size, a fresh model trained for 3
  warm-up steps (discarded: tracing, caches) + 20 measured steps; the
  throughput estimate is batch / median step time.
- baseline: a small re-implementation of PyTorch Lightning's batch-size
  finder default (``BatchSizeFinder`` / ``Tuner.scale_batch_size``,
  ``mode="power"``, ``steps_per_trial=3``, ``max_trials=25``): per size, a
  fresh model trained with ``model.fit(..., steps_per_epoch=3)``, all 3
  steps timed, none discarded; throughput = batch * 3 / (sum of the 3 step
  times). Lightning itself starts at ``init_val=2`` and reports no
  throughput; here both methods start at 8 so that they cover the same
  range (8, 16, 32, 64), and the 3-step throughput is what such a loop could
  report from the steps it already runs. Both stop at the first OOM
  (recognised with ``kplaybook.training.runner.is_oom_error``) and clear the Keras
  session after each size. (Lightning keeps one PyTorch model across
  sizes; a fresh Keras model per size means the baseline's first step
  includes tracing, as kplaybook's first warm-up step does.)

The model: inputs of dim 64 -> ``MemoryHog`` -> ``--depth`` x
Dense(``--width``, relu) -> Dense(10), softmax cross-entropy, SGD. The hog
allocates batch^3 * 2^15 uninitialised floats per step (4 GB at 32
examples, 32 GB at 64), so on a 24 GB machine 8, 16 and 32 fit and 64 raises
a real ``ResourceExhaustedError``, for both methods alike. Uninitialised
memory is never touched, so feasible steps stay cheap; the Dense layers give
the throughput something to measure.

Measured, per repeat (``--repeats``, default 5; the two methods interleaved
in each repeat, their order alternating from repeat to repeat, after one
unmeasured warm-up fit): training steps run (completed steps, from the
optimizers' ``iterations`` of the models of the sizes that ran,
cross-checked with a step callback for the baseline, plus one failed step
per OOM attempt; checked against the configuration), total wall time, the
time of the OOM attempt (from building the model at the failing size to the
end of its clean-up: TensorFlow's CPU allocator retries for ~10 s before
giving up, paid once by each method) and the wall time without it, the
largest feasible size and the recommended size. Then, per feasible batch
size, the coefficient of variation (sample std / mean) of each method's
examples/s over the repeats, and the median CV over sizes. Ratios
kplaybook / baseline: steps, wall time (median of the per-repeat ratios,
with and without the OOM attempt) and median CV. A low CV alone is not
accuracy (3 steps that include tracing are steadily wrong), so each repeat
also measures, outside the timed searches, a steady-state reference per
feasible size (fresh model, 10 steps discarded, median of the next
``--reference-steps``), and the table shows each method's mean estimate
over the reference (1.00 = unbiased) beside the reference's own CV (the
machine's noise).

Target (issue): none numeric; the benchmark shows what kplaybook's extra
steps cost (steps, seconds) and what they buy (how close to the steady state
and how steady each throughput estimate is, and whether the picks agree).

Usage:
    python benchmarks/probe_cost.py [--repeats 5] [--steps 20] [--warmup-steps 3]
        [--reference-steps 100] [--width 512] [--depth 3]
"""

import argparse
import gc
import math
import os
import statistics
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

import kplaybook as kp  # noqa: E402
from kplaybook.training import runner  # noqa: E402

INPUT_DIM = 64
CLASSES = 10
EXAMPLES = 1024
#: Floats allocated per (batch)^3: 4 GB at 32 examples, 32 GB at 64.
HOG_UNIT = 2**15
#: Both methods start the doubling here (Lightning's own init_val is 2).
START = 8
#: Lightning's BatchSizeFinder defaults.
LIGHTNING_STEPS_PER_TRIAL = 3
LIGHTNING_MAX_TRIALS = 25
#: Steps discarded by the steady-state reference measurement.
REFERENCE_WARMUP = 10


class MemoryHog(keras.layers.Layer):
    """Allocates batch^3 * HOG_UNIT uninitialised floats per step (8x per doubling)."""

    def call(self, x):
        b = tf.shape(x)[0]
        big = tf.raw_ops.Empty(shape=tf.stack([b * b * b, HOG_UNIT]), dtype=tf.float32, init=False)
        # Read one element so the allocation cannot be pruned from the graph.
        return x + tf.stop_gradient(tf.reduce_sum(big[:1, :1]) * 0.0)


class Builder:
    """`build_model` for both methods; remembers each model and when it was built."""

    def __init__(self, width, depth):
        self.width = width
        self.depth = depth
        self.models = []
        self.started = []

    def __call__(self):
        self.started.append(time.perf_counter())
        layers = [keras.Input((INPUT_DIM,)), MemoryHog()]
        layers += [keras.layers.Dense(self.width, activation="relu") for _ in range(self.depth)]
        model = keras.Sequential([*layers, keras.layers.Dense(CLASSES)])
        model.compile(
            keras.optimizers.SGD(0.01),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        self.models.append(model)
        return model

    def completed_steps(self, rows):
        """Training steps of the sizes that ran (optimizer iterations of their models)."""
        return sum(
            int(keras.ops.convert_to_numpy(model.optimizer.iterations))
            for model, row in zip(self.models, rows)
            if row["feasible"]
        )


class StepTimer(keras.callbacks.Callback):
    """Wall time of each step (reading the loss waits for the step), as kplaybook times them."""

    def __init__(self):
        super().__init__()
        self.times = []
        self._start = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._start is None:
            self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float((logs or {}).get("loss", 0.0))
        now = time.perf_counter()
        self.times.append(now - self._start)
        self._start = now


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(EXAMPLES, INPUT_DIM)).astype("float32")
    y = rng.integers(0, CLASSES, size=EXAMPLES).astype("int32")
    return x, y


def batches(x, y, batch_size, steps):
    """The same pipeline as the probe's: repeat, batch (drop remainder), take, prefetch."""
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .take(steps)
        .prefetch(tf.data.AUTOTUNE)
    )


def lightning_power(build_model, x, y, init_val=START, steps_per_trial=LIGHTNING_STEPS_PER_TRIAL):
    """Lightning's ``mode="power"`` finder: double until OOM, ``steps_per_trial`` steps per size.

    Returns (rows, completed steps): one row per size tried, with
    ``feasible`` and ``examples_per_s`` (batch * steps / sum of all the
    step times, no warm-up discarded).
    """
    rows = []
    completed = 0
    size = init_val
    for _ in range(LIGHTNING_MAX_TRIALS):
        model = None
        timer = StepTimer()
        row = {"batch_size": size, "feasible": False, "examples_per_s": math.nan}
        try:
            model = build_model()
            model.fit(
                batches(x, y, size, steps_per_trial),
                epochs=1,
                steps_per_epoch=steps_per_trial,
                shuffle=False,
                verbose=0,
                callbacks=[timer],
            )
            row.update(feasible=True, examples_per_s=size * len(timer.times) / sum(timer.times))
        except Exception as e:  # noqa: BLE001 - OOM ends the search; anything else is a bug
            if not runner.is_oom_error(e):
                raise
        finally:
            completed += len(timer.times)
            del model
            keras.backend.clear_session()
            gc.collect()
        rows.append(row)
        if not row["feasible"]:
            break
        size *= 2
    return rows, completed


def summarise(rows, builder, start, end):
    """The per-repeat record both methods share.

    Steps: the optimizer iterations of the models of the sizes that ran, plus
    one failed step per OOM attempt (its weight update may or may not have
    run before the error surfaced; it counts as one step either way).
    """
    feasible = [r for r in rows if r["feasible"]]
    completed = builder.completed_steps(rows)
    failed = len(rows) - len(feasible)
    # The OOM attempt: from building the model at the failing size to the end of its clean-up.
    oom_s = end - builder.started[len(feasible)] if failed else 0.0
    return {
        "sizes": [int(r["batch_size"]) for r in rows],
        "completed": completed,
        "failed": failed,
        "steps": completed + failed,
        "wall": end - start,
        "oom": oom_s,
        "max_feasible": max((int(r["batch_size"]) for r in feasible), default=None),
        "speeds": {int(r["batch_size"]): float(r["examples_per_s"]) for r in feasible},
    }


def run_kplaybook(x, y, args):
    builder = Builder(args.width, args.depth)
    start = time.perf_counter()
    result = kp.distribute.probe_batch_sizes(
        builder, (x, y), steps=args.steps, warmup_steps=args.warmup_steps, isolate=False
    )
    end = time.perf_counter()
    rows = result.to_dataframe().to_dict("records")
    if len(builder.models) != len(rows):
        raise RuntimeError(f"{len(builder.models)} models built for {len(rows)} sizes")
    record = summarise(rows, builder, start, end)
    record["recommended"] = result.recommended
    record["expected_steps"] = (args.warmup_steps + args.steps) * len(record["speeds"]) + record[
        "failed"
    ]
    return record


def reference(x, y, sizes, args):
    """Steady-state examples/s per size: a fresh model, 10 steps discarded, median of the next
    ``--reference-steps`` (neither method's estimate; the yardstick for their bias)."""
    speeds = {}
    for size in sizes:
        model = Builder(args.width, args.depth)()
        timer = StepTimer()
        model.fit(
            batches(x, y, size, REFERENCE_WARMUP + args.reference_steps),
            epochs=1,
            steps_per_epoch=REFERENCE_WARMUP + args.reference_steps,
            shuffle=False,
            verbose=0,
            callbacks=[timer],
        )
        speeds[size] = size / statistics.median(timer.times[REFERENCE_WARMUP:])
        del model
        keras.backend.clear_session()
        gc.collect()
    return speeds


def run_lightning(x, y, args):
    builder = Builder(args.width, args.depth)
    start = time.perf_counter()
    rows, counted = lightning_power(builder, x, y)
    end = time.perf_counter()
    record = summarise(rows, builder, start, end)
    if counted != record["completed"]:
        raise RuntimeError(f"callback counted {counted} steps, optimizers {record['completed']}")
    # Lightning picks the largest size that fit; recommend() on its 3-step estimates is shown
    # beside it to compare the decision kplaybook would draw from them.
    record["recommended"] = record["max_feasible"]
    table = {
        "batch_size": [r["batch_size"] for r in rows],
        "feasible": [r["feasible"] for r in rows],
        "examples_per_s": [r["examples_per_s"] for r in rows],
    }
    record["recommend_on_3_steps"] = kp.distribute.recommend(pd.DataFrame(table))[0]
    record["expected_steps"] = LIGHTNING_STEPS_PER_TRIAL * len(record["speeds"]) + record["failed"]
    return record


def cv(values):
    if len(values) < 2:
        return math.nan
    return statistics.stdev(values) / statistics.mean(values)


def agreement(values):
    return "all agree" if len(set(values)) == 1 else f"DISAGREE ({len(set(values))} values)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="kplaybook measured steps per size")
    parser.add_argument("--warmup-steps", type=int, default=3, help="kplaybook warm-up steps")
    parser.add_argument(
        "--reference-steps",
        type=int,
        default=100,
        help="measured steps of the steady-state reference per size and repeat",
    )
    parser.add_argument("--width", type=int, default=512, help="units of each Dense layer")
    parser.add_argument("--depth", type=int, default=3, help="Dense layers after the hog")
    args = parser.parse_args(argv)
    if args.repeats < 2 or args.steps < 1 or args.warmup_steps < 0:
        parser.error("need --repeats >= 2, --steps >= 1 and --warmup-steps >= 0")
    warnings.simplefilter("ignore", kp.PlaybookWarning)
    tf.get_logger().setLevel("ERROR")  # retracing warnings: every size builds a fresh model
    x, y = data()

    print(
        f"Probe cost: kplaybook probe_batch_sizes ({args.warmup_steps} warm-up + {args.steps} "
        f"measured steps per size, median) vs Lightning-style power doubling "
        f"({LIGHTNING_STEPS_PER_TRIAL} steps per size, none discarded)"
    )
    print(
        f"model: {INPUT_DIM} -> MemoryHog (batch^3 * 2^15 floats) -> {args.depth} x "
        f"Dense({args.width}, relu) -> Dense({CLASSES}); both start at {START} and stop at the "
        f"first OOM; {args.repeats} interleaved repeats\n"
    )

    # Unmeasured warm-up of the process (imports, thread pools, tf.data).
    warm = Builder(args.width, args.depth)()
    warm.fit(batches(x, y, START, 3), epochs=1, steps_per_epoch=3, shuffle=False, verbose=0)
    del warm
    keras.backend.clear_session()
    gc.collect()

    methods = {"kplaybook": run_kplaybook, "lightning": run_lightning}
    runs = {name: [] for name in methods}
    references = []
    header = (
        f"{'rep':>3} {'method':<10} {'sizes tried':<16} {'max':>4} {'rec':>4} {'steps':>6} "
        f"{'wall s':>7} {'OOM s':>6} {'w/o OOM s':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in range(args.repeats):
        order = list(methods) if r % 2 == 0 else list(methods)[::-1]
        for name in order:
            record = methods[name](x, y, args)
            runs[name].append(record)
            if record["steps"] != record["expected_steps"]:
                print(
                    f"    note: {name} ran {record['steps']} steps, configuration says "
                    f"{record['expected_steps']}"
                )
            print(
                f"{r + 1:>3} {name:<10} {','.join(map(str, record['sizes'])):<16} "
                f"{record['max_feasible']!s:>4} {record['recommended']!s:>4} "
                f"{record['steps']:>6} {record['wall']:>7.2f} {record['oom']:>6.2f} "
                f"{record['wall'] - record['oom']:>9.2f}"
            )
        # The steady-state yardstick, at the sizes both found feasible, outside the timed searches.
        references.append(reference(x, y, sorted(record["speeds"]), args))

    kp_runs, l_runs = runs["kplaybook"], runs["lightning"]
    print("\nCost per search (median over repeats):")
    print(f"{'':<14} {'steps':>6} {'wall s':>8} {'OOM s':>7} {'w/o OOM s':>10}")
    for name, rs in runs.items():
        print(
            f"{name:<14} {statistics.median(rec['steps'] for rec in rs):>6g} "
            f"{statistics.median(rec['wall'] for rec in rs):>8.2f} "
            f"{statistics.median(rec['oom'] for rec in rs):>7.2f} "
            f"{statistics.median(rec['wall'] - rec['oom'] for rec in rs):>10.2f}"
        )
    step_ratio = [a["steps"] / b["steps"] for a, b in zip(kp_runs, l_runs)]
    wall_ratio = [a["wall"] / b["wall"] for a, b in zip(kp_runs, l_runs)]
    bare_ratio = [(a["wall"] - a["oom"]) / (b["wall"] - b["oom"]) for a, b in zip(kp_runs, l_runs)]
    for label, ratios in (
        ("steps", step_ratio),
        ("wall time", wall_ratio),
        ("wall time without the OOM attempt", bare_ratio),
    ):
        print(
            f"  ratio kplaybook / lightning, {label}: {statistics.median(ratios):.2f}x "
            f"(range {min(ratios):.2f}-{max(ratios):.2f})"
        )

    print(
        f"\nThroughput estimate, examples/s over {args.repeats} repeats "
        "(CV = sample std / mean across repeats):"
    )
    sizes = sorted(set().union(*(rec["speeds"] for rs in runs.values() for rec in rs)))
    head = (
        f"{'batch':>6} {'kp mean':>9} {'kp CV':>7} {'L mean':>9} {'L CV':>7} {'kp/L CV':>8} "
        f"{'ref':>9} {'ref CV':>7} {'kp/ref':>7} {'L/ref':>7}"
    )
    print(head)
    print("-" * len(head))
    cvs = {"kplaybook": [], "lightning": []}
    for size in sizes:
        kp_speeds = [rec["speeds"][size] for rec in kp_runs if size in rec["speeds"]]
        l_speeds = [rec["speeds"][size] for rec in l_runs if size in rec["speeds"]]
        ref_speeds = [ref[size] for ref in references if size in ref]
        kp_cv, l_cv = cv(kp_speeds), cv(l_speeds)
        cvs["kplaybook"].append(kp_cv)
        cvs["lightning"].append(l_cv)
        kp_mean, l_mean, ref = (
            statistics.mean(v) if v else math.nan for v in (kp_speeds, l_speeds, ref_speeds)
        )
        print(
            f"{size:>6} {kp_mean:>9.0f} {kp_cv:>7.3f} {l_mean:>9.0f} {l_cv:>7.3f} "
            f"{kp_cv / l_cv:>8.2f} {ref:>9.0f} {cv(ref_speeds):>7.3f} {kp_mean / ref:>7.2f} "
            f"{l_mean / ref:>7.2f}"
        )
    print(
        f"(ref: steady state, median of {args.reference_steps} steps after {REFERENCE_WARMUP} "
        "discarded, once per size and repeat, outside the timed searches; X/ref = mean "
        "estimate / mean reference: 1.00 = unbiased)"
    )
    median_cv = {
        name: statistics.median(v for v in values if not math.isnan(v))
        for name, values in cvs.items()
    }
    print(
        f"median CV over sizes: kplaybook {median_cv['kplaybook']:.3f}, lightning "
        f"{median_cv['lightning']:.3f} -> ratio kplaybook / lightning "
        f"{median_cv['kplaybook'] / median_cv['lightning']:.2f}x"
    )

    print("\nDecisions across repeats:")
    for label, values in (
        ("kplaybook max feasible", [rec["max_feasible"] for rec in kp_runs]),
        ("kplaybook recommended", [rec["recommended"] for rec in kp_runs]),
        ("lightning max feasible (its pick)", [rec["max_feasible"] for rec in l_runs]),
        (
            "recommend() on lightning's 3-step estimates",
            [rec["recommend_on_3_steps"] for rec in l_runs],
        ),
    ):
        print(f"  {label:<44} {values}  {agreement(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
