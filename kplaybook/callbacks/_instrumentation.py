"""The hooks that let plain Keras callbacks see and change every step's gradient.

A Keras callback never sees gradients. kplaybook's gradient callbacks
therefore attach, for the duration of one `fit`, instance-level hooks to the
model they are given, and remove them in `on_train_end`:

- the optimizer's `apply` (the one method every Keras `train_step` reaches,
  through `apply_gradients` or directly): in the replica context, before
  Keras's own per-replica clipping, the gradients are summed across replicas
  (only when there is more than one), their global L2 norm is computed, and,
  when a `GradientClipping` is present, every replica's gradient is scaled by
  the same factor ``min(1, threshold / norm)`` so the summed update is
  exactly the clipped global gradient;
- the model's `train_step`: the step's learning rate (read before the
  update), the gradient norm and, when clipping, the threshold and the
  epoch's running counts are returned with the step's logs as one float32
  vector;
- the model's train function: that vector is replaced by the ``lr``,
  ``grad_norm``, ``clip_fraction``, ``clip_threshold`` (and ``step_loss``)
  log entries, read from it when Keras converts the logs to floats
  (``pythonify_logs``, before any callback sees them). The values then
  travel with Keras's own logs: to every callback's `on_train_batch_end`,
  to History (epoch logs) and to TensorBoard, at the same steps as the
  loss, and without a host synchronisation of their own.

One vector rather than one output per key: every output of the train
function costs the host work at every step (Keras rebuilds the output
structure and converts each entry); measured on a small MLP on a 2-core
CPU, four outputs cost ~20 us a step more than one vector.

Everything traced here runs at every step, and on CPU each op costs its
dispatch (microseconds) whatever its size: the step computes what the logs
and the clipping need and no more (2N + 21 ops for N weight tensors with all
callbacks, of which 2N + 6 are the norm and the scaling any exact clipping
needs). Fractions and means are divided on the host when they are read,
and the percentile threshold is recomputed on the host between steps.

Only instance attributes shadowing class methods are set on the model and
optimizer: nothing is saved with them, and `model.save()` during training is
unaffected. The train function is rebuilt when the hooks are attached and
again when they are removed, so a later `fit` without these callbacks runs
plain Keras.
"""

import threading
import typing
import weakref

import keras
import numpy as np
import tensorflow as tf

try:
    # TF's marker class of the types `tf.is_tensor` accepts at once. Keras's
    # `pythonify_logs` calls `tf.is_tensor` on every log value, and for any
    # other object that falls through to a `typing.Protocol` check costing
    # ~7 us a value (Python 3.11): more than the output this packing saves.
    from tensorflow.python.types.internal import NativeObject as _TensorLike
except ImportError:  # a TF without it: the values stay correct, only slower
    _TensorLike = object

GRAD_NORM = "grad_norm"
CLIP_FRACTION = "clip_fraction"
CLIP_THRESHOLD = "clip_threshold"
LR = "lr"
STEP_LOSS = "step_loss"

# The train step's private log entry holding the packed per-step values; the
# train function replaces it by the public keys above.
_STEP_VALUES = "_kplaybook_step_values"

# The attributes by which a callback tells the hooks what the step must
# compute (`StepHookCallback` declares them).
_NEEDS_GRADIENT_NORM = "_needs_gradient_norm"
_NEEDS_STEP_LOSS = "_needs_step_loss"
_CLIPS_GRADIENTS = "_clips_gradients"

_ONLY_FIRST = dict(
    trainable=False,
    synchronization=tf.VariableSynchronization.ON_WRITE,
    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
)


def replicated_variable(strategy, initial_value, dtype=tf.float32):
    """A non-trainable variable with one copy per replica, written by the host to all copies.

    The traced step updates each replica's own copy through its ``handle``
    (raw ops, no cross-replica call): every replica computes the same values
    from the all-reduced gradient. The host reads the first replica's copy.
    """
    with strategy.scope():
        return tf.Variable(initial_value, dtype=dtype, **_ONLY_FIRST)


def require_tensorflow_backend(callback):
    """Raises a one-sentence error when Keras does not run on TensorFlow."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"{type(callback).__name__} needs Keras's TensorFlow backend (it hooks "
            f"tf.distribute gradients), but the backend is "
            f"{keras.backend.backend()!r}; set KERAS_BACKEND=tensorflow."
        )


def _scaled(gradient, factor):
    if gradient is None:
        return None
    if isinstance(gradient, tf.IndexedSlices):
        values = gradient.values
        if values.dtype != factor.dtype:
            factor = tf.cast(factor, values.dtype)
        return tf.IndexedSlices(values * factor, gradient.indices, gradient.dense_shape)
    if gradient.dtype != factor.dtype:
        factor = tf.cast(factor, gradient.dtype)
    return gradient * factor


_ZERO = 0.0
_ONE = 1.0


class EpochCounts(typing.NamedTuple):
    """The epoch accumulators: steps, clipped steps, steps with a finite norm, sum and max of those norms."""

    steps: float
    clipped: float
    finite: float
    norm_sum: float
    norm_max: float


# One float32[5] variable in `EpochCounts` order.
_EPOCH_SLOTS = len(EpochCounts._fields)
_STEPS, _CLIPPED, _NORM_MAX = (
    EpochCounts._fields.index(f) for f in ("steps", "clipped", "norm_max")
)


def float_learning_rate(optimizer):
    """The optimizer's learning-rate variable, or None when it has a schedule (or a callable)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    variable = getattr(inner, "_learning_rate", None)
    return variable if isinstance(variable, keras.Variable) else None


def _read(variable):
    """The value of a (Keras or TF) variable at this point of the traced step, as float32.

    Automatic control dependencies order the read before any later write of
    the same variable in the step.
    """
    return tf.cast(tf.convert_to_tensor(variable), tf.float32)


def _row_sums(slices):
    """The values of an IndexedSlices with repeated indices summed: the rows of the dense gradient."""
    unique, position = tf.unique(slices.indices)
    return tf.math.unsorted_segment_sum(slices.values, position, tf.shape(unique)[0])


def global_norm(gradients):
    """The L2 norm of all `gradients` together, in float32 (None entries skipped)."""
    halves = []  # tf.nn.l2_loss(t) = sum(t ** 2) / 2, one fused op per tensor
    for g in gradients:
        if g is None:
            continue
        values = _row_sums(g) if isinstance(g, tf.IndexedSlices) else g
        if values.dtype != tf.float32:
            values = tf.cast(values, tf.float32)
        halves.append(tf.nn.l2_loss(values))
    if not halves:
        return tf.constant(0.0, tf.float32)
    return tf.sqrt(2.0 * tf.add_n(halves))


class _StepValues:
    """One step's packed values, copied to the host once, when the first of its logs is read."""

    __slots__ = ("_tensor", "_array")

    def __init__(self, tensor):
        self._tensor = tensor
        self._array = None

    def array(self):
        # Two threads may both copy: the same values, so no lock is needed.
        if self._array is None:
            self._array = self._tensor.numpy()
        return self._array


class _LoggedValue(_TensorLike):
    """A log entry read from a step's packed values when Keras converts the logs.

    Keras's callback list turns every log value into a float
    (``np.array(value)``, then ``float``) before any callback sees it, in
    the thread that runs the callbacks, so the training loop never waits
    for the values. Nothing else receives the raw logs of a train step.
    """

    __slots__ = ("_values", "_index", "_per")

    def __init__(self, values, index, per=None):
        self._values = values
        self._index = index
        self._per = per  # the index of a denominator: clip_fraction is clipped / steps

    def __float__(self):
        array = self._values.array()
        value = float(array[self._index])
        if self._per is not None:
            value /= float(array[self._per])
        return value

    def __array__(self, dtype=None, copy=None):
        return np.asarray(float(self), dtype=dtype)

    def __repr__(self):
        return repr(float(self))


class Instrumentation:
    """The hooks one model carries during one `fit`, shared by all kplaybook callbacks in it.

    Callbacks call `Instrumentation.attach(model, callback)` in
    `on_train_begin` and `detach` in `on_train_end`; the hooks stay while at
    least one is attached. What the traced step computes is decided by the
    attached callbacks' ``_needs_gradient_norm``, ``_needs_step_loss`` and
    ``_clips_gradients`` when the train function is traced (its first call,
    after every `on_train_begin`).

    A fit that raises never calls `on_train_end`. So the hooks also replace
    `model.make_train_function`, which Keras calls when any later `fit`
    starts (before its callbacks' `on_train_begin`): that call removes the
    stale hooks, and the new fit runs plain Keras unless kplaybook callbacks
    attach again.
    """

    _by_model = weakref.WeakKeyDictionary()

    def __init__(self, model):
        # Weak references only: `_by_model` is keyed weakly by the model, and
        # anything here holding the model would keep it alive forever.
        self._model = weakref.ref(model)
        self.callbacks = weakref.WeakSet()
        self.optimizer = None
        self._local = threading.local()
        self._strategy = None
        self._epoch_vars = None
        self._epoch_begun = None
        self._final_counts = None  # (epoch, EpochCounts) read at its end
        # {log key: (index, denominator index or None)} into the packed step
        # values; set when the train step is traced.
        self._layout = {}

    # ----------------------------------------------------------- life cycle

    @classmethod
    def attach(cls, model, callback):
        """Attaches `callback` to `model`'s hooks for the current fit; returns the instrumentation."""
        require_tensorflow_backend(callback)
        if getattr(model, "optimizer", None) is None:
            raise RuntimeError(
                f"{type(callback).__name__} needs a compiled model; call "
                "model.compile(optimizer=...) before fit()."
            )
        inst = cls._by_model.get(model)
        if inst is None:
            inst = cls._by_model[model] = cls(model)
        inst.callbacks.add(callback)
        if inst.optimizer is None:
            inst._install_hooks()
        return inst

    def detach(self, callback):
        """Detaches `callback`; the last one out removes the hooks and resets the train function."""
        self.callbacks.discard(callback)
        if not len(self.callbacks):
            self._end()

    def _end(self):
        self._remove_hooks()
        self.callbacks = weakref.WeakSet()
        model = self._model()
        if model is not None:
            type(self)._by_model.pop(model, None)

    def _install_hooks(self):
        model = self._model()
        optimizer = model.optimizer
        self.optimizer = optimizer
        self._strategy = model.distribute_strategy
        if (
            isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
            and not optimizer.built
            and model.built
            and model.trainable_variables
        ):
            # Its loss scale is created when it is built, which Keras does on
            # the first apply, after this hook needs it.
            with self._strategy.scope():
                optimizer.build(model.trainable_variables)
        original_apply = optimizer.apply
        original_train_step = model.train_step
        plain_make_train_function = type(model).make_train_function
        loss_tracker = getattr(model, "_loss_tracker", None)
        this = weakref.ref(self)  # the closures live on the model: no strong cycle to self

        def apply(grads, trainable_variables=None):
            inst = this()
            grads = list(grads) if inst is None else inst._process(list(grads))
            return original_apply(grads, trainable_variables)

        def train_step(data):
            inst = this()
            if inst is None:
                return original_train_step(data)
            inst._local.values = {}
            inst._local.counts = None
            lr = _read(optimizer.learning_rate)
            tracked = loss_tracker is not None and inst._wants(_NEEDS_STEP_LOSS)
            if tracked:
                total, count = _read(loss_tracker.total), _read(loss_tracker.count)
            logs = original_train_step(data)
            if not isinstance(logs, dict):
                return logs
            values = {LR: lr, **inst._local.values}
            if tracked:
                # This step's own mean loss: Keras's "loss" is the epoch's running mean.
                values[STEP_LOSS] = (_read(loss_tracker.total) - total) / tf.maximum(
                    _read(loss_tracker.count) - count, 1e-12
                )
            logs = dict(logs)
            logs[_STEP_VALUES] = inst._pack(values, inst._local.counts)
            return logs

        def make_train_function(force=False):
            # Keras calls this when a fit starts, before on_train_begin: hooks
            # still installed then are left over from a fit that raised.
            inst = this()
            if inst is not None and not force:
                inst._end()
            plain_make_train_function(model, force=force)
            if inst is not None and force:
                inst._wrap_train_function(model)
            return model.train_function

        # Instance attributes shadow the class methods; set with object's
        # __setattr__ so Keras's attribute tracking stays out of it.
        object.__setattr__(optimizer, "apply", apply)
        object.__setattr__(model, "train_step", train_step)
        object.__setattr__(model, "make_train_function", make_train_function)
        self._epoch_begun = None
        self._final_counts = None
        self.epoch_variables()  # created eagerly: never inside the traced step
        plain_make_train_function(model, force=True)
        self._wrap_train_function(model)

    def _wrap_train_function(self, model):
        """Makes the train function replace the packed step values by their log entries."""
        packed_function = model.train_function
        this = weakref.ref(self)

        def train_function(iterator):
            logs = packed_function(iterator)
            inst = this()
            if inst is not None and isinstance(logs, dict) and _STEP_VALUES in logs:
                values = _StepValues(logs.pop(_STEP_VALUES))
                for key, (index, per) in inst._layout.items():
                    logs[key] = _LoggedValue(values, index, per)
            return logs

        model.train_function = train_function

    def _remove_hooks(self):
        if self.optimizer is None:
            return
        model = self._model()
        for obj, name in (
            (self.optimizer, "apply"),
            (model, "train_step"),
            (model, "make_train_function"),
        ):
            if obj is not None and name in vars(obj):
                object.__delattr__(obj, name)
        self.optimizer = None
        self._epoch_vars = None
        if model is not None:
            model.train_function = None

    # ------------------------------------------------------------- features

    def _wants(self, need):
        return any(getattr(c, need, False) for c in self.callbacks)

    def _clipping(self):
        found = [c for c in self.callbacks if getattr(c, _CLIPS_GRADIENTS, False)]
        if len(found) > 1:
            raise ValueError("Two GradientClipping callbacks were passed to one fit(); pass one.")
        return found[0] if found else None

    def _pack(self, values, counts):
        """One float32 vector: the step's scalar `values`, then the epoch `counts` when clipping."""
        keys = list(values)
        self._layout = {key: (i, None) for i, key in enumerate(keys)}
        packed = tf.stack([values[key] for key in keys])
        if counts is None:
            return packed
        # Divided on the host, when read.
        self._layout[CLIP_FRACTION] = (len(keys) + _CLIPPED, len(keys) + _STEPS)
        return tf.concat([packed, counts], 0)

    def epoch_variables(self):
        """One float32[5] variable of the epoch: steps, clipped steps, finite steps, sum and max of finite norms."""
        if self._epoch_vars is None:
            self._epoch_vars = replicated_variable(self._strategy, tf.zeros([_EPOCH_SLOTS]))
        return self._epoch_vars

    def begin_epoch(self, epoch):
        """Zeroes the epoch accumulators once per epoch, whichever callback calls first."""
        if self._epoch_begun == epoch:
            return
        self._epoch_begun = epoch
        self.epoch_variables().assign(tf.zeros([_EPOCH_SLOTS]))

    def epoch_counts(self, final=True):
        """The epoch's `EpochCounts` so far (one read of the accumulators).

        With `final`, the read is kept for the rest of the epoch, so every
        callback ending it sees the same counts for one read.
        """
        if final and self._final_counts is not None and self._final_counts[0] == self._epoch_begun:
            return self._final_counts[1]
        counts = EpochCounts(*(float(v) for v in self.epoch_variables().numpy()))
        if final:
            self._final_counts = (self._epoch_begun, counts)
        return counts

    def end_epoch(self, logs):
        """Puts the epoch's mean and max gradient norm (and clip fraction) into the epoch `logs`.

        The norm's mean and max are over the steps whose norm was finite (a
        loss-scaled step that overflowed is skipped by its optimizer).
        """
        if logs is None or not self._wants(_NEEDS_GRADIENT_NORM):
            return
        counts = self.epoch_counts()
        if counts.finite:
            logs[GRAD_NORM] = counts.norm_sum / counts.finite
            logs[GRAD_NORM + "_max"] = counts.norm_max
        if counts.steps and self._clipping() is not None:
            logs[CLIP_FRACTION] = counts.clipped / counts.steps

    def _loss_scale(self):
        optimizer = self.optimizer
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            if not hasattr(optimizer, "dynamic_scale"):
                raise RuntimeError(
                    "The LossScaleOptimizer was not built before training; build the "
                    "model (call it on a batch) before fit() so its loss scale exists."
                )
            return tf.cast(tf.convert_to_tensor(optimizer.dynamic_scale), tf.float32)
        factor = getattr(optimizer, "loss_scale_factor", None)
        return None if factor is None else tf.constant(float(factor), tf.float32)

    def _process(self, grads):
        """Runs in the replica context inside the traced step: norm, clipping, epoch counts."""
        if not self._wants(_NEEDS_GRADIENT_NORM) or not any(g is not None for g in grads):
            return grads
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        present = [i for i, g in enumerate(grads) if g is not None]
        if replicas > 1:
            summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
        else:
            summed = [grads[i] for i in present]
        norm = global_norm(summed)
        scale = self._loss_scale()
        if scale is not None:
            norm = norm / scale

        # Every op here runs at every step, so the count is kept small (each
        # costs dispatch time on CPU, a kernel launch on GPU).
        values = {GRAD_NORM: norm}
        finite = tf.math.is_finite(norm)
        # A non-finite norm (a loss-scaled step that overflowed and that its
        # optimizer skips, or divergence) counts as 0 in the statistics and is
        # never clipped; DivergenceMonitor sees the logged norm.
        safe = tf.where(finite, norm, _ZERO)
        clipping = self._clipping()
        clipped = _ZERO
        if clipping is not None:
            threshold = clipping._threshold_for_step(norm)
            over = safe > threshold
            # Only where ‖g‖ > λ: a zero norm or an inactive (inf) threshold
            # leaves the gradient as it is.
            factor = tf.where(over, threshold / safe, _ONE)
            grads = [_scaled(g, factor) for g in grads]
            clipped = tf.cast(over, tf.float32)
            # The plots draw the threshold the norms were clipped at (inf
            # while a percentile threshold is still collecting norms).
            values[CLIP_THRESHOLD] = threshold
        # Updated in place, through this replica's copy (every replica adds
        # the same values): one add, one max, no read unless clipping.
        stats = self.epoch_variables().handle
        tf.raw_ops.AssignAddVariableOp(
            resource=stats,
            value=tf.stack([_ONE, clipped, tf.cast(finite, tf.float32), safe, _ZERO]),
        )
        tf.raw_ops.ResourceScatterMax(resource=stats, indices=_NORM_MAX, updates=safe)
        if clipping is not None:
            self._local.counts = tf.raw_ops.ReadVariableOp(resource=stats, dtype=tf.float32)
        self._local.values = values
        return grads
