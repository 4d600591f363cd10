"""`GradientClipping`: exact global-norm clipping after cross-replica aggregation."""

import math
import warnings

import keras
import numpy as np
import tensorflow as tf

from kplaybook.callbacks import _instrumentation
from kplaybook.errors import PlaybookWarning

# PLAYBOOK.md rule 32: clipping more than half of the updates is extremely
# aggressive; lower the learning rate instead.
AGGRESSIVE_CLIP_FRACTION = 0.5

_INF = float("inf")


class GradientClipping(keras.callbacks.Callback):
    """Clips the gradient by its global norm, exactly, after summing across replicas.

    The playbook's second fix for instability (section H, rule 32): if the
    global gradient norm ``‖g‖`` exceeds ``λ``, use ``λ g / ‖g‖``; start ``λ``
    at the 90th percentile of observed gradient norms; clipping more than 50%
    of the updates is extremely aggressive, so lower the learning rate
    instead (a `PlaybookWarning` is issued at the end of such an epoch).

    Keras's own ``global_clipnorm`` is wrong under ``MirroredStrategy``: it
    clips each replica's share of the gradient before the shares are summed.
    This callback computes the norm of the summed gradient in the replica
    context and scales every replica's share by the same factor, so the
    applied update is exactly the clipped global gradient. Pass it only to
    ``fit(callbacks=[...])`` or ``tuner.search(callbacks=[...])``; the model
    needs no changes.

    Two modes:

    - ``threshold=λ``: a fixed threshold;
    - ``threshold=None`` (default): ``λ`` is the `percentile` of the last
      `history` finite norms observed (the current step's included, numpy's
      linear interpolation). No step is clipped until `min_history` norms
      have been seen. The history carries over to a second ``fit`` with the
      same callback.

    What it adds to the logs: batch logs ``clip_fraction`` (the fraction of
    this epoch's steps clipped so far) and ``grad_norm`` and ``lr`` (see
    `GradientNormLogger`); epoch logs ``clip_fraction`` and, once clipping is
    active, ``clip_threshold``.

    Args:
        threshold: a fixed clipping norm, or None for the running percentile.
        percentile: the percentile of observed norms used as the threshold,
            in (0, 100]. Defaults to 90.
        history: how many recent norms the percentile is taken over.
        min_history: norms to observe before clipping starts.

    Example:

    ```python
    clip = kp.callbacks.GradientClipping(percentile=90)
    history = model.fit(x, y, epochs=5, callbacks=[clip])
    print(history.history["clip_fraction"], clip.threshold)
    ```
    """

    async_safe = True

    def __init__(self, threshold=None, percentile=90.0, history=1000, min_history=50):
        super().__init__()
        if threshold is not None and not (
            isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0
        ):
            raise ValueError(f"threshold must be a positive number or None, got {threshold!r}.")
        if not 0 < float(percentile) <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile!r}.")
        if not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be a positive integer, got {history!r}.")
        if not isinstance(min_history, int) or min_history < 0:
            raise ValueError(f"min_history must be a non-negative integer, got {min_history!r}.")
        if threshold is None and min_history > history:
            raise ValueError(
                f"min_history ({min_history}) cannot exceed history ({history}); "
                "raise history or lower min_history."
            )
        self.fixed_threshold = None if threshold is None else float(threshold)
        self.percentile = float(percentile)
        self.history = history
        self.min_history = min_history
        # The order statistics needed for any count n <= history lie among the
        # largest ceil((1 - p/100) * (history - 1)) + 2 values.
        self._top_k = min(history, math.ceil((1 - self.percentile / 100.0) * (history - 1)) + 2)
        self._inst = None
        self._state = None  # (norms buffer, norms seen, last threshold), per strategy
        self._strategy = None
        self._warned = False

    # ----------------------------------------------------------- callbacks

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        if getattr(inner, "gradient_accumulation_steps", None):
            raise ValueError(
                "GradientClipping cannot clip accumulated gradients exactly; remove "
                "gradient_accumulation_steps from the optimizer or this callback."
            )
        if getattr(inner, "global_clipnorm", None) or getattr(inner, "clipnorm", None):
            warnings.warn(
                "The optimizer also clips (clipnorm/global_clipnorm), per replica and "
                "after this callback; remove it so only the exact clipping applies.",
                PlaybookWarning,
                stacklevel=2,
            )
        strategy = self.model.distribute_strategy
        if self._state is None or self._strategy is not strategy:
            self._strategy = strategy
            self._state = (
                _instrumentation.replicated_variable(
                    strategy, tf.fill([self.history], float("-inf"))
                ),
                _instrumentation.replicated_variable(strategy, 0, dtype=tf.int32),
                _instrumentation.replicated_variable(strategy, float("inf")),
            )
        if self.fixed_threshold is None:
            self._build_tables()
        self._warned = False
        self._inst = _instrumentation.Instrumentation.attach(self.model, self)

    def on_epoch_begin(self, epoch, logs=None):
        self._inst.begin_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._inst.end_epoch(logs)
        threshold = self.threshold
        if logs is not None and threshold is not None:
            logs["clip_threshold"] = threshold
        fraction = (logs or {}).get(_instrumentation.CLIP_FRACTION)
        if fraction is not None and fraction > AGGRESSIVE_CLIP_FRACTION and not self._warned:
            self._warned = True
            warnings.warn(
                f"GradientClipping clipped {fraction:.0%} of epoch {epoch}'s updates, more "
                f"than {AGGRESSIVE_CLIP_FRACTION:.0%}: that is extremely aggressive "
                "(PLAYBOOK.md 32); lower the learning rate instead.",
                PlaybookWarning,
                stacklevel=2,
            )

    def on_train_end(self, logs=None):
        self._inst.detach(self)

    # ----------------------------------------------------------- state

    @property
    def threshold(self):
        """The threshold the last step used, or None while clipping is not yet active."""
        if self.fixed_threshold is not None or self._state is None:
            return self.fixed_threshold
        value = float(self._state[2].numpy())
        return value if math.isfinite(value) else None

    @property
    def norms_seen(self):
        """How many finite gradient norms this callback has observed."""
        return 0 if self._state is None else int(self._state[1].numpy())

    def _threshold_for_step(self, norm):
        """In the traced step: this step's threshold (inf when not clipping); updates the history."""
        if self.fixed_threshold is not None:
            return tf.constant(self.fixed_threshold, tf.float32)
        buffer, seen, last = self._state
        size = self.history
        finite = tf.math.is_finite(norm)
        old = buffer.read_value()
        seen_before = seen.read_value()
        index = seen_before % size
        # A non-finite norm is not recorded: its slot keeps the old value.
        stored = tf.where(finite, norm, tf.gather(old, index))
        current = tf.tensor_scatter_nd_update(
            old, tf.reshape(index, [1, 1]), tf.reshape(stored, [1])
        )
        seen_now = seen_before + tf.cast(finite, tf.int32)
        buffer.assign(current)
        seen.assign(seen_now)
        # numpy's "linear" percentile of the n valid norms s[0] <= ... <= s[n-1]
        # is s[lo] + frac * (s[lo + 1] - s[lo]) with lo + frac = p/100 * (n - 1).
        # Only the largest (1 - p/100) share is needed: a partial top-k (unfilled
        # slots hold -inf and come last) and per-n index tables built once.
        largest, _ = tf.math.top_k(current, k=self._top_k)
        count = tf.minimum(seen_now, size)
        low = tf.gather(largest, tf.gather(self._low_index, count))
        high = tf.gather(largest, tf.gather(self._high_index, count))
        value = low + tf.gather(self._fraction, count) * (high - low)
        threshold = tf.where(seen_before >= self.min_history, value, _INF)
        last.assign(threshold)
        return threshold

    def _build_tables(self):
        """Index tables for every count n of valid norms (0..history), in top-k order."""
        low_index, high_index, fraction = [], [], []
        for count in range(self.history + 1):
            n = max(count, 1)
            position = self.percentile / 100.0 * (n - 1)
            lo = math.floor(position)
            low_index.append(n - 1 - lo)
            high_index.append(max(n - 2 - lo, 0))
            # Exactly 0 at lo == n - 1 (p = 100), so an unfilled -inf never mixes in.
            fraction.append(position - lo)
        # numpy, not eager tensors: in the traced step they become graph
        # constants rather than captured inputs fed at every call.
        self._low_index = np.array(low_index, np.int32)
        self._high_index = np.array(high_index, np.int32)
        self._fraction = np.array(fraction, np.float32)

    def __deepcopy__(self, memo):
        # KerasTuner deep-copies callbacks for every execution: start fresh.
        return type(self)(
            threshold=self.fixed_threshold,
            percentile=self.percentile,
            history=self.history,
            min_history=self.min_history,
        )
