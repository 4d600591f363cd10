"""Short training runs at one learning rate: the shared engine of the LR and warmup sweeps."""

import copy
import math
import time
import warnings

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from kplaybook import validation
from kplaybook.callbacks import DivergenceMonitor
from kplaybook.callbacks import GradientNormLogger
from kplaybook.callbacks import Warmup
from kplaybook.callbacks import _instrumentation
from kplaybook.errors import PlaybookWarning
from kplaybook.records.files import finite_list
from kplaybook.records.files import json_safe

# How many points each run's loss curve has (at most): one Keras "epoch" of
# steps // CURVE_POINTS steps per point, so each point is the mean training
# loss over that stretch.
CURVE_POINTS = 50


def check_run_arguments(build_model, seed, callbacks):
    """The arguments both sweeps pass to every run, checked before any run: (build_model, seed, callbacks)."""
    validation.function(
        build_model,
        "build_model",
        "a function returning a new compiled keras.Model on each call",
        refuse=keras.Model,
    )
    seed = validation.seed(seed)
    callbacks = validation.sequence(callbacks, "callbacks", "a list of keras.callbacks.Callback")
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise TypeError(
                "callbacks must be a list of keras.callbacks.Callback, got "
                f"{type(callback).__name__} {callback!r} in it."
            )
    return build_model, seed, callbacks


class SweepData:
    """Training batches (a fresh, repeated dataset per run) and a fixed set of evaluation batches.

    Args:
        train_data: a batched ``tf.data.Dataset`` of ``(x, y)`` (or
            ``(x, y, sample_weight)``), or a tuple ``(x, y)`` of arrays.
        batch_size: the batch size for arrays, a positive int (default 32;
            None for a dataset).
        eval_batches: how many batches of `train_data` the training loss is
            measured on before and after each run (the same batches every
            run), a positive int.
        seed: the shuffling seed for arrays, a non-negative int.
    """

    def __init__(self, train_data, batch_size=None, eval_batches=8, seed=0):
        eval_batches = validation.positive_int(eval_batches, "eval_batches")
        if isinstance(train_data, tf.data.Dataset):
            if batch_size is not None:
                raise ValueError(
                    "batch_size applies to arrays only; batch the tf.data.Dataset "
                    "yourself and leave batch_size=None."
                )
            dataset = train_data
        elif isinstance(train_data, (tuple, list)) and len(train_data) in (2, 3):
            arrays = tuple(np.asarray(a) for a in train_data)
            n = len(arrays[0])
            if any(len(a) != n for a in arrays):
                raise ValueError(
                    "The arrays in train_data have different lengths; pass (x, y) of equal length."
                )
            batch_size = (
                32 if batch_size is None else validation.positive_int(batch_size, "batch_size")
            )
            if n < batch_size:
                raise ValueError(
                    f"train_data has {n} examples, fewer than one batch of {batch_size}; "
                    "lower batch_size."
                )

            def dataset_factory():
                # A new dataset object per run, made after the run's
                # set_random_seed: every run sees the same batches in the
                # same order (one shared object would reshuffle per iterator).
                return (
                    tf.data.Dataset.from_tensor_slices(arrays)
                    .shuffle(n, seed=seed, reshuffle_each_iteration=True)
                    .batch(batch_size, drop_remainder=True)
                )

            dataset = dataset_factory()
        else:
            raise TypeError(
                "train_data must be a batched tf.data.Dataset or a tuple (x, y) of "
                f"arrays, got {type(train_data).__name__}."
            )
        self._factory = dataset_factory if not isinstance(train_data, tf.data.Dataset) else None
        self._dataset = dataset
        self.eval = dataset.take(eval_batches).cache()
        seen = sum(1 for _ in self.eval)  # fills the cache: the same batches every time
        if seen == 0:
            raise ValueError("train_data yielded no batches; pass a non-empty dataset.")

    def train(self):
        """The training batches for one run, repeated forever (call after seeding the run)."""
        dataset = self._factory() if self._factory is not None else self._dataset
        return dataset.repeat()


def _chunks(steps):
    """(points, steps per point): the smallest number of points >= CURVE_POINTS dividing `steps`."""
    if steps <= CURVE_POINTS:
        return steps, 1
    for points in range(CURVE_POINTS, steps + 1):
        if steps % points == 0:
            return points, steps // points
    return steps, 1


def _first_loss(result):
    if isinstance(result, (list, tuple)):
        result = result[0]
    if isinstance(result, dict):
        result = result.get("loss", next(iter(result.values())))
    return float(result)


def _float_lr_variable(model):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(
            "build_model() returned an uncompiled model; compile it with an optimizer "
            "and a float learning rate."
        )
    variable = _instrumentation.float_learning_rate(optimizer)
    if variable is None:
        raise TypeError(
            "The sweep sets the learning rate itself, so build_model() must compile "
            "with a float learning rate, not a schedule."
        )
    return variable


def train_run(
    build_model,
    data,
    learning_rate,
    steps,
    warmup_steps=0,
    seed=0,
    patience=10,
    factor=10.0,
    callbacks=(),
):
    """Trains a fresh model for `steps` steps at `learning_rate` (after an optional warmup).

    Returns a dict of the run's summary and its per-point curve (a DataFrame
    indexed by step with ``loss``, ``grad_norm`` and ``lr``).
    """
    keras.utils.set_random_seed(seed)
    model = build_model()
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"build_model() must return a compiled keras.Model, got {type(model).__name__}."
        )
    _float_lr_variable(model).assign(float(learning_rate))
    initial = _first_loss(model.evaluate(data.eval, verbose=0))
    points, per_point = _chunks(steps)
    monitor = DivergenceMonitor(patience=patience, factor=factor)
    logger = GradientNormLogger()
    run_callbacks = [monitor, logger]
    if warmup_steps:
        run_callbacks.insert(0, Warmup(int(warmup_steps), peak_lr=float(learning_rate)))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PlaybookWarning)  # divergence is a result here
        history = model.fit(
            data.train(),
            steps_per_epoch=per_point,
            epochs=points,
            # Fresh copies per run, as KerasTuner does per trial: a callback's
            # state (a clipping history, a record) must not leak across runs.
            callbacks=[*run_callbacks, *copy.deepcopy(list(callbacks))],
            shuffle=False,
            verbose=0,
        )
    seconds = time.perf_counter() - start
    h = history.history
    done = len(h.get("loss", []))
    curve = pd.DataFrame(
        {
            "loss": h.get("loss", [])[:done],
            "grad_norm": h.get("grad_norm", [math.nan] * done)[:done],
            "lr": h.get("lr", [math.nan] * done)[:done],
        },
        index=pd.Index([(i + 1) * per_point for i in range(done)], name="step"),
    )
    if monitor.diverged:
        final = math.nan
    else:
        final = _first_loss(model.evaluate(data.eval, verbose=0))
    norms = logger.to_dataframe()["grad_norm"].to_numpy(dtype=float)
    norms = norms[np.isfinite(norms)]
    diverged = monitor.diverged or not math.isfinite(final)
    return {
        "learning_rate": float(learning_rate),
        "warmup_steps": int(warmup_steps),
        "initial_loss": initial,
        "final_loss": final,
        "diverged": bool(diverged),
        "diverged_step": monitor.step,
        "divergence_reason": monitor.reason,
        "ended_above_start": bool(not diverged and final > initial),
        "stable": bool(not diverged and final <= initial),
        "steps_run": int(model.optimizer.iterations.numpy()),
        "grad_norm_median": float(np.median(norms)) if norms.size else math.nan,
        "grad_norm_p90": float(np.percentile(norms, 90)) if norms.size else math.nan,
        "grad_norm_max": float(norms.max()) if norms.size else math.nan,
        "seconds": seconds,
        "curve": curve,
    }


def summary_frame(runs, index):
    """The runs as a DataFrame (curves dropped), indexed by `index`."""
    rows = [{k: v for k, v in run.items() if k != "curve"} for run in runs]
    return pd.DataFrame(rows).set_index(index)


def runs_to_json(runs):
    """Sweep runs as JSON-safe data: each run's curve as columns (NaN as None)."""
    out = []
    for run in runs:
        record = {k: v for k, v in run.items() if k != "curve"}
        curve = run["curve"]
        record["curve"] = {
            "step": [int(s) for s in curve.index],
            **{name: finite_list(curve[name].to_numpy()) for name in curve.columns},
        }
        out.append(json_safe(record))
    return out


def runs_from_json(runs):
    """The runs `runs_to_json` wrote, with their curves as DataFrames again (None as NaN)."""
    out = []
    for run in runs:
        record = {k: (math.nan if v is None and k in _FLOAT_KEYS else v) for k, v in run.items()}
        curve = dict(run["curve"])
        steps = curve.pop("step")
        record["curve"] = pd.DataFrame(curve, index=pd.Index(steps, name="step"), dtype=float)
        out.append(record)
    return out


#: Run values that are floats (NaN when a run diverged), restored from JSON nulls.
_FLOAT_KEYS = (
    "initial_loss",
    "final_loss",
    "grad_norm_median",
    "grad_norm_p90",
    "grad_norm_max",
    "seconds",
)
