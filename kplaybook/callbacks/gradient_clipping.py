"""`GradientClipping`: exact global-norm clipping after cross-replica aggregation."""

import warnings

import numpy as np
import tensorflow as tf

from kplaybook import citations
from kplaybook.callbacks import _arguments
from kplaybook.callbacks import _instrumentation
from kplaybook.callbacks._hooked import StepHookCallback
from kplaybook.errors import PlaybookWarning

# The playbook's "Gradient clipping" section: clipping more than half of the updates is extremely
# aggressive; lower the learning rate instead.
AGGRESSIVE_CLIP_FRACTION = 0.5
# The playbook's starting threshold: the 90th percentile of the observed norms.
DEFAULT_PERCENTILE = 90.0

_INF = float("inf")
_NAN = float("nan")


class GradientClipping(StepHookCallback):
    """Clips the gradient by its global norm, exactly, after summing across replicas.

    The playbook's second fix for instability ("Gradient clipping",
    https://github.com/google-research/tuning_playbook#gradient-clipping): if the
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
    - ``threshold=None`` (default): ``λ`` is the `percentile` (numpy's linear
      interpolation) of the finite norms of the last `history` optimizer
      steps, recomputed before every `update_every`-th step and fixed in
      between. The first ``λ`` is computed once `min_history` finite norms
      have been recorded; no step is clipped before. The recorded norms carry
      over to a second ``fit`` with the same callback.

    The playbook only asks to start ``λ`` at the 90th percentile of the
    observed norms; recomputing it every step is not needed, and would cost
    a sort of the history at every step. Recomputing it on the host between
    steps keeps the traced step down to recording the norm (3 ops) and
    reading ``λ`` (1 op). ``update_every=1`` gives a threshold that follows
    every step, at the cost of one host round trip per step. With
    ``steps_per_execution=n`` the host only sees the start of each execution:
    ``λ`` is recomputed at the first one on or after each update.

    What it adds to the logs: batch logs ``clip_fraction`` (the fraction of
    this epoch's steps clipped so far), ``clip_threshold`` (the ``λ`` the
    step used, inf while it is not yet known) and ``grad_norm`` and ``lr``
    (see `GradientNormLogger`); epoch logs ``clip_fraction`` and, once
    clipping is active, ``clip_threshold``.

    Args:
        threshold: a fixed clipping norm (a positive number), or None for a
            percentile of the observed norms. Pass either `threshold` or
            `percentile`, not both.
        percentile: the percentile of observed norms used as the threshold,
            in (0, 100]. Defaults to 90 when no `threshold` is given.
        history: how many recent steps' norms the percentile is taken over.
            Defaults to 1000.
        min_history: finite norms to record before clipping starts.
            Defaults to 50.
        update_every: recompute the percentile every this many steps.
            Defaults to 50.

    Example:

    ```python
    clip = kp.callbacks.GradientClipping(percentile=90)
    history = model.fit(x, y, epochs=5, callbacks=[clip])
    print(history.history["clip_fraction"], clip.threshold)
    ```
    """

    _needs_gradient_norm = True
    _clips_gradients = True

    def __init__(
        self, threshold=None, percentile=None, history=1000, min_history=50, update_every=50
    ):
        super().__init__()
        if threshold is not None:
            threshold = _arguments.positive_number("threshold", threshold)
            if percentile is not None:
                raise ValueError(
                    f"GradientClipping got both threshold={threshold!r} and "
                    f"percentile={percentile!r}; pass threshold for a fixed clipping "
                    "norm or percentile for one taken from the observed norms, not both."
                )
        elif percentile is None:
            percentile = DEFAULT_PERCENTILE
        if percentile is not None and not (
            _arguments.is_number(percentile) and 0 < percentile <= 100
        ):
            raise ValueError(f"percentile must be in (0, 100], got {percentile!r}.")
        history = _arguments.integer("history", history)
        min_history = _arguments.integer("min_history", min_history, minimum=0)
        update_every = _arguments.integer("update_every", update_every)
        if threshold is None and min_history > history:
            raise ValueError(
                f"min_history ({min_history}) cannot exceed history ({history}); "
                "raise history or lower min_history."
            )
        self.fixed_threshold = threshold
        self.percentile = None if percentile is None else float(percentile)
        self.history = history
        self.min_history = min_history
        self.update_every = update_every
        self._strategy = None
        self._state = None  # (recorded norms, threshold) variables, per strategy
        self._threshold = None  # the percentile threshold in force, once active
        self._recorded = 0  # steps recorded in the norms before this fit
        self._next_update = max(min_history, 1)  # in recorded steps
        self._norms_seen = 0  # finite norms of the epochs counted so far
        self._epoch_counted = True
        self._warned = False

    def get_config(self):
        """The constructor arguments: ``GradientClipping(**clip.get_config())`` is a fresh copy."""
        return {
            "threshold": self.fixed_threshold,
            "percentile": None if self.fixed_threshold is not None else self.percentile,
            "history": self.history,
            "min_history": self.min_history,
            "update_every": self.update_every,
        }

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
        if self.fixed_threshold is None and (self._state is None or self._strategy is not strategy):
            # NaN marks a slot no step has written yet.
            self._strategy = strategy
            self._state = (
                _instrumentation.replicated_variable(strategy, tf.fill([self.history], _NAN)),
                _instrumentation.replicated_variable(strategy, _INF),
            )
            self._threshold = None
            self._recorded = 0
            self._next_update = max(self.min_history, 1)
        self._warned = False
        super().on_train_begin(logs)
        self._fit_start = self._iteration_of(0)

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._epoch_counted = False

    def on_train_batch_begin(self, batch, logs=None):
        if self.fixed_threshold is None:
            recorded = self._recorded + self._iteration_of(batch) - self._fit_start
            if recorded >= self._next_update:
                # Host-side, before the step: the traced step only records
                # its norm and reads the threshold in force.
                active = self._update_threshold()
                self._next_update = recorded + (self.update_every if active else 1)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self._norms_seen += int(self._inst.epoch_counts().finite)
        self._epoch_counted = True
        threshold = self.threshold
        if logs is not None and threshold is not None:
            logs[_instrumentation.CLIP_THRESHOLD] = threshold
        fraction = (logs or {}).get(_instrumentation.CLIP_FRACTION)
        if fraction is not None and fraction > AGGRESSIVE_CLIP_FRACTION and not self._warned:
            self._warned = True
            warnings.warn(
                f"GradientClipping clipped {fraction:.0%} of epoch {epoch}'s updates, more "
                f"than {AGGRESSIVE_CLIP_FRACTION:.0%}: that is extremely aggressive "
                f"{citations.see('gradient_clipping')}; lower the learning rate instead.",
                PlaybookWarning,
                stacklevel=2,
            )

    def on_train_end(self, logs=None):
        self._recorded += self._steps_done - self._fit_start
        super().on_train_end(logs)

    # ----------------------------------------------------------- state

    @property
    def threshold(self):
        """The threshold the last step used, or None while clipping is not yet active."""
        if self.fixed_threshold is not None:
            return self.fixed_threshold
        return self._threshold

    @property
    def norms_seen(self):
        """How many finite gradient norms this callback has observed."""
        seen = self._norms_seen
        if self._inst is not None and not self._epoch_counted:
            seen += int(self._inst.epoch_counts(final=False).finite)
        return seen

    def _threshold_for_step(self, norm):
        """In the traced step: records `norm` and returns this step's threshold (inf when not clipping)."""
        if self.fixed_threshold is not None:
            return tf.constant(self.fixed_threshold, tf.float32)
        norms, threshold = self._state
        # The slot of this optimizer step (read before its update): 3 ops, and
        # a skipped (loss-scaled, overflowed) step's slot is overwritten by
        # the next. Written through this replica's own copy: every replica
        # records the same all-reduced norm, with no cross-replica call.
        slot = tf.math.floormod(self.model.optimizer.iterations, self.history)
        tf.raw_ops.ResourceScatterUpdate(resource=norms.handle, indices=slot, updates=norm)
        return threshold.read_value()

    def _update_threshold(self):
        """Before a step: the percentile of the finite recorded norms, once there are `min_history`."""
        norms = self._state[0].numpy()
        norms = norms[np.isfinite(norms)]
        if len(norms) < max(self.min_history, 1):
            return False
        # As the step will see it: the variable is float32.
        self._threshold = float(np.float32(np.percentile(norms, self.percentile)))
        self._state[1].assign(self._threshold)
        return True
