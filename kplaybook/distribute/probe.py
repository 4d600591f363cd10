"""Batch size and throughput probing: double until out of memory, measure examples/s.

The playbook's "Determining the feasible batch sizes and estimating training
throughput" and "Choosing the batch size to minimize training time"
(https://github.com/google-research/tuning_playbook#choosing-the-batch-size).

`probe_batch_sizes` trains a fresh model for a few steps at each batch size
(powers of two by default), catches real out-of-memory errors, discards the
warm-up steps (tracing, compilation) and reports the median step time. The
pure function `recommend` turns a throughput table into the playbook's
answer: the largest batch size that still speeds training up, and whether
throughput scaled as it should before the accelerator saturated.
"""

import gc
import hashlib
import json
import math
import multiprocessing
import os
import pickle
import time
import warnings

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from matplotlib.figure import Figure

from kplaybook import validation
from kplaybook.citations import mention
from kplaybook.citations import url
from kplaybook.distribute.strategy import StrategyWrapper
from kplaybook.errors import PlaybookWarning
from kplaybook.errors import StudyError
from kplaybook.findings import Finding
from kplaybook.records import files
from kplaybook.results import Result
from kplaybook.training import runner

#: "Choosing the batch size to minimize training time": the largest batch that still increases throughput;
#: doubling the batch must raise examples/s by at least 10%, else the extra
#: size only adds training time (a gain below this is within timing noise).
MEANINGFUL_GAIN = 1.10
#: "Determining the feasible batch sizes...": until the accelerator saturates, doubling the batch
#: should nearly double throughput; below 1.5x while a later doubling still
#: pays off means something else (input pipeline, synchronisation) limits it.
BOTTLENECK_GAIN = 1.5
#: Default sizes: powers of two from this one.
DEFAULT_MIN_BATCH_SIZE = 8
#: Default cap on the doubling (the probe stops earlier at the first OOM).
DEFAULT_MAX_BATCH_SIZE = 2**16

_COLUMNS = [
    "batch_size",
    "feasible",
    "oom_message",
    "step_time_s",
    "step_time_iqr_s",
    "examples_per_s",
    "scaling_efficiency",
]


def recommend_batch_size(table):
    """The playbook's batch size from a throughput table, and any bottleneck (a pure function).

    Args:
        table: DataFrame with ``batch_size``, ``feasible`` and
            ``examples_per_s`` (as `ProbeResult.to_dataframe()`).

    Returns:
        (recommended batch size or None, bottleneck `kp.Finding` or None).
        `recommended` is the largest feasible size whose throughput is at
        least `MEANINGFUL_GAIN` times that of every smaller size (the
        smallest feasible size when no doubling pays off). `bottleneck` is
        reported when a doubling gave less than `BOTTLENECK_GAIN` although a
        later doubling still gave at least that: the accelerator was not
        saturated, yet doubling the batch did not nearly double throughput.

    Example:

    ```python
    table = pd.DataFrame({"batch_size": [8, 16, 32], "feasible": [True] * 3,
                          "examples_per_s": [100.0, 195.0, 200.0]})
    recommend_batch_size(table)   # (16, None)
    ```
    """
    done = table[table["feasible"].astype(bool)].sort_values("batch_size")
    sizes = done["batch_size"].astype(int).tolist()
    speeds = done["examples_per_s"].astype(float).tolist()
    if not sizes:
        return None, None
    gains = [None] + [b / a if a > 0 else math.inf for a, b in zip(speeds, speeds[1:])]
    recommended = sizes[0]
    for i, (size, gain) in enumerate(zip(sizes, gains)):
        # Against the best of all smaller sizes, not only half this size: after a
        # dip, a rebound that stays below an earlier peak is no gain.
        if gain is not None and speeds[i] >= MEANINGFUL_GAIN * max(speeds[:i]):
            recommended = size
    # Poor before saturation: a later doubling still scaled well, so the
    # accelerator had room; the taper just before saturation is not poor.
    poor = [
        (prev, size, gain)
        for i, (prev, size, gain) in enumerate(zip([None] + sizes, sizes, gains))
        if gain is not None
        and gain < BOTTLENECK_GAIN
        and any(later >= BOTTLENECK_GAIN for later in gains[i + 1 :] if later is not None)
    ]
    if not poor:
        return recommended, None
    prev, size, gain = poor[0]
    finding = Finding(
        "throughput_bottleneck",
        "warning",
        f"Doubling the batch from {prev} to {size} raised throughput only {gain:.2f}x "
        "although a later doubling still scaled well: something other than the "
        "accelerator limits training at small batches.",
        "Fix the bottleneck first (input pipeline: cache/prefetch/parallel map; host "
        "transfers; cross-replica synchronisation) before choosing the batch size "
        f"{mention('feasible_batch_sizes')}.",
        {
            "from": int(prev),
            "to": int(size),
            "gain": float(gain),
            "threshold": BOTTLENECK_GAIN,
            "poor_doublings": [[int(a), int(b), float(g)] for a, b, g in poor],
        },
        url("feasible_batch_sizes"),
    )
    return recommended, finding


#: kplaybook 0.1's name of `recommend_batch_size`, kept for old code.
recommend = recommend_batch_size


class ProbeResult(Result):
    """What `probe_batch_sizes` measured: one row per batch size, and the pick.

    A `kplaybook.results.Result`: `to_dataframe()`, `plot()`, `summary()`,
    `save(path)` / `ProbeResult.load(path)`.

    Attributes:
        rows: list of dicts (the `to_dataframe()` rows).
        max_feasible: int or None, the largest size that ran.
        recommended: int or None, the largest size that still paid off in
            throughput (see `recommend_batch_size`).
        bottleneck: a `kp.Finding` ("throughput_bottleneck") or None.
        config: dict, what was probed (model, optimizer, strategy, steps...).
        from_cache: bool, whether this result was read from the cache.
    """

    def __init__(self, rows, config, from_cache=False):
        self.rows = [dict(r) for r in rows]
        self.config = dict(config)
        self.from_cache = from_cache
        table = self.to_dataframe()
        feasible = table[table["feasible"]]
        self.max_feasible = int(feasible["batch_size"].max()) if len(feasible) else None
        self.recommended, self.bottleneck = recommend_batch_size(table)

    def to_dataframe(self):
        """One row per batch size: batch_size, feasible, oom_message, step_time_s
        (median), step_time_iqr_s, examples_per_s, scaling_efficiency (throughput
        ratio to the size below, divided by the size ratio: 1.0 = perfect)."""
        frame = pd.DataFrame(self.rows, columns=_COLUMNS)
        frame["batch_size"] = frame["batch_size"].astype(int)
        frame["feasible"] = frame["feasible"].astype(bool)
        return frame

    def __repr__(self):
        return (
            f"<ProbeResult: {len(self.rows)} sizes, max feasible {self.max_feasible}, "
            f"recommended {self.recommended}>"
        )

    def summary(self):
        """The table and the recommendation as text (what `kplaybook probe` prints)."""
        table = self.to_dataframe()
        lines = [table.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
        lines.append(f"max feasible batch size: {self.max_feasible}")
        lines.append(f"recommended batch size: {self.recommended}")
        if len(table) and table["feasible"].all() and self.recommended == self.max_feasible:
            lines.append(
                "  (no size ran out of memory and throughput still grew at the largest: "
                "probe larger sizes, e.g. a higher max_batch_size)"
            )
        if self.bottleneck is not None:
            lines.append(f"bottleneck: {self.bottleneck.message}")
            lines.append(f"  -> {self.bottleneck.recommendation}")
        if self.from_cache:
            lines.append("(read from the probe cache)")
        return "\n".join(lines)

    kind = "batch_size_probe"

    def to_json(self):
        """The measured rows and what was probed (see `Result.save`)."""
        return {"config": self.config, "rows": self.rows}

    @classmethod
    def from_json(cls, data, from_cache=False):
        """The result from `to_json`'s data (NaN stored as null)."""
        rows = [
            {k: (math.nan if v is None and k != "oom_message" else v) for k, v in r.items()}
            for r in data["rows"]
        ]
        return cls(rows, data["config"], from_cache=from_cache)

    @classmethod
    def load(cls, path, from_cache=False):
        """Read a result written by `save` (kplaybook 0.1's files too)."""
        data = files.read_json(
            os.fspath(path), "probe again or pass a file ProbeResult.save() wrote"
        )
        if isinstance(data, dict) and "kind" not in data and {"rows", "config"} <= set(data):
            return cls.from_json(data, from_cache=from_cache)  # written by kplaybook 0.1
        result = super().load(path)
        result.from_cache = from_cache
        return result

    def plot(self):
        """Throughput and step time against batch size; a matplotlib Figure."""
        table = self.to_dataframe()
        fig = Figure(figsize=(10, 3.8), layout="constrained")
        left, right = fig.subplots(1, 2)
        ok = table[table["feasible"]]
        bad = table[~table["feasible"]]
        left.plot(ok["batch_size"], ok["examples_per_s"], "o-", label="feasible")
        right.plot(ok["batch_size"], ok["step_time_s"], "o-")
        if len(ok) and len(bad):
            top = ok["examples_per_s"].max()
            left.scatter(
                bad["batch_size"], [top] * len(bad), marker="X", s=70, color="#e8544e", label="OOM"
            )
        if self.recommended is not None:
            for ax in (left, right):
                ax.axvline(self.recommended, color="#1fa774", ls="--", label="recommended")
        for ax, label in ((left, "examples / s"), (right, "median step time (s)")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("global batch size")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        left.legend(fontsize=8)
        fig.suptitle("Batch size probe")
        return fig


# -- data ------------------------------------------------------------------------


def _as_dataset(dataset):
    """A tf.data.Dataset of single (x, y) examples from a Dataset, (x, y) arrays or a callable."""
    if callable(dataset) and not isinstance(dataset, tf.data.Dataset):
        dataset = dataset()
    if isinstance(dataset, tf.data.Dataset):
        return dataset
    if isinstance(dataset, tuple) and len(dataset) == 2:
        # Every array (x may be a dict or list of inputs) slices into examples along axis 0.
        lengths = sorted({int(np.shape(a)[0]) for a in tf.nest.flatten(dataset) if np.ndim(a)})
        if len(lengths) > 1:
            raise ValueError(
                f"The arrays of dataset have different lengths {lengths}; pass x and y with "
                "one row per example."
            )
        return tf.data.Dataset.from_tensor_slices(dataset)
    raise TypeError(
        f"dataset must be a tf.data.Dataset of single examples, an (x, y) tuple of arrays "
        f"or a function returning one, got {type(dataset).__name__}."
    )


def _batches(examples, batch_size, steps):
    return (
        examples.repeat()
        .batch(batch_size, drop_remainder=True)
        .take(steps)
        .prefetch(tf.data.AUTOTUNE)
    )


# -- one probe -------------------------------------------------------------------


class _StepTimer(keras.callbacks.Callback):
    """Wall time per training step, from the time of each execution of the train function.

    With `steps_per_execution=k` Keras calls the batch hooks once per k
    steps (`batch` is the last step's index): each execution's time is
    divided by the steps it ran.
    """

    def __init__(self):
        super().__init__()
        self.executions = []  # (first step, last step, seconds)
        self._start = None
        self._first = None

    def on_train_batch_begin(self, batch, logs=None):
        self._first = int(batch)
        if self._start is None:
            self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # Reading a value waits for the step to finish on the device.
        float((logs or {}).get("loss", 0.0))
        now = time.perf_counter()
        self.executions.append((self._first, int(batch), now - self._start))
        self._start = now

    def step_times(self, warmup_steps):
        """Seconds per step of the executions that ran no warm-up step."""
        return np.array(
            [
                seconds / (last - first + 1)
                for first, last, seconds in self.executions
                if first >= warmup_steps
            ]
        )


def _probe_one(build_model, examples, wrapper, batch_size, steps, warmup_steps):
    """One batch size: a row of the table (OOM caught)."""
    row = dict.fromkeys(_COLUMNS)
    row.update(batch_size=int(batch_size), feasible=False, scaling_efficiency=math.nan)
    model = None
    try:
        with wrapper.scope():
            model = build_model()
            model = wrapper.prepare(model)
        _check_model(model)
        timer = _StepTimer()
        model.fit(
            _batches(examples, batch_size, warmup_steps + steps),
            epochs=1,
            steps_per_epoch=warmup_steps + steps,
            shuffle=False,
            verbose=0,
            callbacks=[timer],
        )
        measured = timer.step_times(warmup_steps)
        if not len(measured):
            raise RuntimeError(
                f"No execution of the train function ran only measured steps "
                f"(steps_per_execution={getattr(model, 'steps_per_execution', 1)}, "
                f"warmup_steps={warmup_steps}, steps={steps}); pass more steps."
            )
        median = float(np.median(measured))
        q75, q25 = np.percentile(measured, [75, 25])
        row.update(
            feasible=True,
            step_time_s=median,
            step_time_iqr_s=float(q75 - q25),
            examples_per_s=batch_size / median,
        )
    except Exception as e:  # noqa: BLE001 - OOM is data; anything else is re-raised
        if not runner.is_oom_error(e):
            raise
        message = str(e).strip()
        oom_line = next(
            (
                line.strip()
                for line in message.splitlines()
                if "oom" in line.lower() or "out of memory" in line.lower()
            ),
            message.splitlines()[0] if message else type(e).__name__,
        )
        row.update(oom_message=oom_line[:300], step_time_s=math.nan, examples_per_s=math.nan)
        row["step_time_iqr_s"] = math.nan
    finally:
        del model
        runner.fresh_session()
        gc.collect()
    return row


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"build_model must return a compiled keras.Model, got {type(model).__name__}."
        )
    if not model.compiled:
        raise ValueError("build_model must return a compiled model: call model.compile(...) in it.")
    steps = getattr(model.optimizer, "gradient_accumulation_steps", None)
    if steps and steps > 1:
        warnings.warn(
            f"The optimizer accumulates gradients over {steps} steps: that brings no "
            f"throughput {mention('feasible_batch_sizes')}; probe and train with the real batch size instead.",
            PlaybookWarning,
            stacklevel=4,
        )


# -- isolation (one subprocess per size) -------------------------------------------


def _child(connection, build_model, dataset, batch_size, steps, warmup_steps):
    try:
        row = _probe_one(
            build_model, _as_dataset(dataset), StrategyWrapper(), batch_size, steps, warmup_steps
        )
        connection.send(("ok", row))
    except BaseException as e:  # noqa: BLE001 - reported to the parent as text
        connection.send(("error", f"{type(e).__name__}: {str(e)[:2000]}"))
    finally:
        connection.close()


def _probe_isolated(build_model, dataset, batch_size, steps, warmup_steps):
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_child, args=(send, build_model, dataset, batch_size, steps, warmup_steps)
    )
    try:
        process.start()
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        raise ValueError(
            f"isolate=True sends build_model and dataset to a subprocess, which failed ({e}); "
            "define build_model at module level in an importable file (not a lambda or a "
            "notebook cell), or pass isolate=False."
        ) from None
    send.close()
    message = None
    try:
        message = receive.recv()  # before join(): a large message would block the child
    except EOFError:
        pass
    process.join()
    if message is not None:
        status, payload = message
        if status == "ok":
            return payload
        raise RuntimeError(f"The probe at batch size {batch_size} failed: {payload}")
    if process.exitcode is not None and process.exitcode < 0:
        # Killed by a signal (SIGKILL from the kernel's OOM killer): out of host memory.
        row = dict.fromkeys(_COLUMNS)
        row.update(
            batch_size=int(batch_size),
            feasible=False,
            oom_message=(
                f"the probe process was killed by signal {-process.exitcode}: out of host "
                "memory (the kernel's OOM killer)"
            ),
            step_time_s=math.nan,
            step_time_iqr_s=math.nan,
            examples_per_s=math.nan,
            scaling_efficiency=math.nan,
        )
        return row
    raise RuntimeError(
        f"The probe subprocess at batch size {batch_size} exited with code {process.exitcode} "
        "without a result (see its output above); functions defined in a notebook cannot be "
        "imported by a subprocess: pass isolate=False or define build_model in a module."
    )


# -- cache -------------------------------------------------------------------------


def probe_key(model, wrapper, examples, steps, warmup_steps, sizes):
    """A hash of what the probe measures: model and optimizer config, devices, data, settings."""
    spec = {
        # The model's JSON holds its compile config (loss, metrics) too; no repr
        # with memory addresses, which would differ from run to run.
        "model": model.to_json() if hasattr(model, "to_json") else type(model).__name__,
        "optimizer": keras.optimizers.serialize(model.optimizer),
        "strategy": type(wrapper.strategy).__name__,
        "replicas": wrapper.num_replicas,
        "devices": _device_names(),
        "element_spec": str(examples.element_spec),
        "steps": steps,
        "warmup_steps": warmup_steps,
        "sizes": sizes,
        "tensorflow": tf.__version__,
    }
    text = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16], spec


def _device_names():
    """Device types and, for GPUs, their model names: an A100's result is not a T4's."""
    names = []
    for device in tf.config.list_physical_devices():
        detail = ""
        if device.device_type == "GPU":
            try:
                detail = tf.config.experimental.get_device_details(device).get("device_name", "")
            except (ValueError, RuntimeError):
                detail = ""
        names.append(f"{device.device_type}:{detail}")
    return sorted(names)


def _is_default(strategy):
    inner = strategy.strategy if isinstance(strategy, StrategyWrapper) else strategy
    return inner is tf.distribute.get_strategy() and not tf.distribute.has_strategy()


def _check_examples(examples):
    """A clear error for a dataset that is already batched (the probe batches it)."""
    spec = examples.element_spec
    first = spec[0] if isinstance(spec, tuple) else spec
    shape = getattr(first, "shape", None)
    if shape is not None and shape.rank and shape[0] is None:
        raise ValueError(
            "The dataset looks batched (its elements have a None leading dimension); pass "
            "single examples (dataset.unbatch()), the probe batches them at each size."
        )


# -- the probe ----------------------------------------------------------------------


def probe_batch_sizes(
    build_model,
    dataset,
    strategy=None,
    batch_sizes=None,
    steps=20,
    warmup_steps=3,
    isolate=None,
    max_batch_size=DEFAULT_MAX_BATCH_SIZE,
    cache_dir=None,
):
    """Find the feasible batch sizes and their throughput; recommend one.

    The playbook's "Choosing the batch size"
    (https://github.com/google-research/tuning_playbook#choosing-the-batch-size).

    For each global batch size (powers of two from 8, doubling until the
    first out-of-memory error or `max_batch_size`), a fresh model from
    `build_model()` is built under the strategy's scope (batch norm
    synchronised when there are several replicas) and trained for
    `warmup_steps + steps` steps on batches of `dataset`. The warm-up steps
    (tracing, compilation, caches) are discarded and the median of the
    other step times is reported. A real out-of-memory error
    (`ResourceExhaustedError`, or the known OOM messages, XLA's included)
    makes that size infeasible and ends the doubling.

    Args:
        build_model: function `() -> compiled keras.Model`, a new model on
            each call.
        dataset: a `tf.data.Dataset` of single (x, y) examples, an (x, y)
            tuple of arrays, or a function returning either.
        strategy: `kp.distribute.StrategyWrapper`, a `tf.distribute.Strategy`
            or None (auto: all GPUs when there are several). Batch sizes
            are global (summed over replicas).
        batch_sizes: explicit sizes to probe, distinct positive ints (all
            are tried); default powers of two from 8 up to the first OOM.
        steps: measured steps per size, a positive int.
        warmup_steps: steps discarded first, a non-negative int.
        isolate: bool, run each size in a fresh subprocess (default: when a GPU
            is present, so a failed allocation cannot fragment or leak device
            memory into the next probe). Needs picklable `build_model` and
            `dataset` (module-level functions or arrays) and the default strategy.
        max_batch_size: cap on the doubling, an int of at least 8.
        cache_dir: a folder for cached results (created if missing):
            re-probing the same model, optimizer, devices, data and settings
            reads the saved result instead of training (the playbook
            re-probes whenever the model or optimizer changes).

    Returns:
        `ProbeResult`: `.to_dataframe()`, `.max_feasible`, `.recommended`,
        `.bottleneck`, `.plot()`, `.save(path)`.

    Example:

    ```python
    def build():
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(10)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    result = kp.distribute.probe_batch_sizes(build, (x, y))
    print(result.to_dataframe())
    print(result.recommended, result.bottleneck)
    ```
    """
    validation.function(
        build_model,
        "build_model",
        "a function returning a new compiled keras.Model on each call",
        refuse=keras.Model,
    )
    for name, value, low in (("steps", steps, 1), ("warmup_steps", warmup_steps, 0)):
        if not validation.is_integer(value) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
    steps, warmup_steps = int(steps), int(warmup_steps)
    if batch_sizes is not None:
        sizes = validation.sequence(batch_sizes, "batch_sizes", "distinct positive ints")
        if (
            not sizes
            or not all(validation.is_integer(b) for b in sizes)
            or any(b < 1 for b in sizes)
            or len(set(sizes)) != len(sizes)
        ):
            raise ValueError(f"batch_sizes must be distinct positive ints, got {batch_sizes!r}.")
        sizes = [int(b) for b in sizes]
        sizes = sorted(sizes)
        stop_at_oom = False
    else:
        if not validation.is_integer(max_batch_size) or max_batch_size < DEFAULT_MIN_BATCH_SIZE:
            raise ValueError(
                f"max_batch_size must be at least {DEFAULT_MIN_BATCH_SIZE} (the first size "
                f"probed), got {max_batch_size!r}; pass an int or pass batch_sizes."
            )
        sizes = []
        size = DEFAULT_MIN_BATCH_SIZE
        while size <= max_batch_size:
            sizes.append(size)
            size *= 2
        stop_at_oom = True
    if isolate is not None:
        isolate = validation.boolean(isolate, "isolate")
    else:
        # Physical devices only: listing logical ones would start TensorFlow's GPU
        # context here and reserve the memory the subprocesses need.
        isolate = bool(tf.config.list_physical_devices("GPU"))
    if isolate and strategy is not None and not _is_default(strategy):
        raise ValueError(
            "isolate=True builds the default strategy (StrategyWrapper()) in each subprocess; "
            "pass strategy=None or a default StrategyWrapper(), or isolate=False."
        )
    if isolate and isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            "isolate=True needs a dataset that can be sent to a subprocess: pass (x, y) "
            "arrays or a module-level function returning the dataset."
        )
    wrapper = StrategyWrapper(strategy) if not isolate else None
    examples = _as_dataset(dataset) if not isolate else None
    if examples is not None:
        _check_examples(examples)
    replicas = wrapper.num_replicas if wrapper is not None else 1
    for size in sizes:
        if size % replicas:
            raise ValueError(
                f"Batch size {size} does not split evenly over {replicas} "
                "replicas; pass sizes that are multiples of the replica count."
            )

    cache_path = key = None
    if cache_dir is not None and isolate:
        raise ValueError(
            "cache_dir with isolate=True would build the model in this process (taking "
            "the GPU from the subprocesses); pass one or the other."
        )
    if cache_dir is not None:
        cache_dir = validation.writable_directory(
            cache_dir, "cache_dir", "a directory for the cache"
        )
        runner.fresh_session()  # layer names restart at dense, dense_1, ...: a stable key
        with wrapper.scope():
            model = build_model()
        _check_model(model)
        key, _ = probe_key(
            model, wrapper, examples or _as_dataset(dataset), steps, warmup_steps, sizes
        )
        del model
        runner.fresh_session()
        cache_path = os.path.join(cache_dir, f"probe-{key}.json")
        if os.path.exists(cache_path):
            try:
                return ProbeResult.load(cache_path, from_cache=True)
            except StudyError:
                pass  # a damaged cache entry: probe again and overwrite it

    rows = []
    for size in sizes:
        if isolate:
            row = _probe_isolated(build_model, dataset, size, steps, warmup_steps)
        else:
            row = _probe_one(build_model, examples, wrapper, size, steps, warmup_steps)
        rows.append(row)
        if not row["feasible"] and stop_at_oom:
            break
    previous = None
    for row in rows:
        if row["feasible"] and previous is not None:
            ratio = row["examples_per_s"] / previous["examples_per_s"]
            row["scaling_efficiency"] = ratio / (row["batch_size"] / previous["batch_size"])
        if row["feasible"]:
            previous = row
    config = {
        "key": key,
        "strategy": type(wrapper.strategy).__name__ if wrapper else "default (per subprocess)",
        "replicas": replicas,
        "steps": steps,
        "warmup_steps": warmup_steps,
        "isolate": bool(isolate),
        "probed": sizes if not stop_at_oom else [r["batch_size"] for r in rows],
    }
    result = ProbeResult(rows, config)
    if cache_path is not None:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        result.save(cache_path)
    return result
