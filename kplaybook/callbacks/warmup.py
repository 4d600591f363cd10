"""`Warmup`: a linear learning-rate ramp for a compiled float learning rate."""

import weakref

from kplaybook.callbacks import _arguments
from kplaybook.callbacks import _instrumentation
from kplaybook.callbacks._hooked import StepHookCallback

# The peak each optimizer was warmed up towards, so that a new Warmup on a
# model whose earlier fit stopped mid-ramp does not take the ramped value as
# its peak.
_PEAKS = weakref.WeakKeyDictionary()


class Warmup(StepHookCallback):
    """Ramps the optimizer's learning rate linearly from 0 to its peak, one step at a time.

    The playbook's first fix for early instability ("How to apply learning
    rate warmup", https://github.com/google-research/tuning_playbook#how-to-apply-learning-rate-warmup):
    ramp the learning rate linearly from 0 to the base value over
    `warmup_steps`, then train at the base value. Use it with a model compiled
    with a float learning rate; for a schedule that includes warmup and decay
    use `kp.schedules.WarmupDecay` instead.

    The update at optimizer step ``k`` (``optimizer.iterations`` before the
    update, starting at 0) uses ``peak_lr * k / warmup_steps`` for
    ``k < warmup_steps``, then ``peak_lr``. Once warmup is over the callback
    no longer touches the learning rate, so schedulers such as
    ``ReduceLROnPlateau`` work afterwards. A second ``fit`` continues from the
    optimizer's step, so warmup is not repeated. The learning rate each step
    used is logged as ``lr``. With ``steps_per_execution=n`` the rate changes
    every n steps.

    Args:
        warmup_steps: number of steps of the ramp (a positive integer).
        peak_lr: the rate reached at the end of warmup (a positive number).
            Defaults to the learning rate the model was compiled with.

    Example:

    ```python
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, callbacks=[kp.callbacks.Warmup(500)])
    ```
    """

    def __init__(self, warmup_steps, peak_lr=None):
        super().__init__()
        self.warmup_steps = _arguments.integer("warmup_steps", warmup_steps)
        self.peak_lr = None if peak_lr is None else _arguments.positive_number("peak_lr", peak_lr)
        self._peak = None
        self._peak_model = None
        self._done = False
        self._lr = None

    def get_config(self):
        """The constructor arguments: ``Warmup(**warmup.get_config())`` is a fresh copy."""
        return {"warmup_steps": self.warmup_steps, "peak_lr": self.peak_lr}

    def _variable(self):
        lr = _instrumentation.float_learning_rate(self.model.optimizer)
        if lr is None:
            raise TypeError(
                "Warmup needs an optimizer compiled with a float learning rate, not a "
                "schedule; use kp.schedules.WarmupDecay as the learning rate instead."
            )
        return lr

    def on_train_begin(self, logs=None):
        variable = self._variable()  # before attaching: a schedule is refused cleanly
        if self._peak_model is None or self._peak_model() is not self.model:
            # Resolved once per model: a second fit that starts mid-warmup
            # must not take the ramped value as its peak.
            self._peak_model = weakref.ref(self.model)
            optimizer = self.model.optimizer
            if self.peak_lr is not None:
                self._peak = self.peak_lr
            else:
                self._peak = _PEAKS.get(optimizer, float(variable.numpy()))
            _PEAKS[optimizer] = self._peak
        super().on_train_begin(logs)
        self._done = self._iteration_of(0) >= self.warmup_steps
        self._lr = variable

    def learning_rate_at(self, step):
        """The learning rate this callback sets for the update at 0-based optimizer step `step`."""
        peak = self._peak if self._peak is not None else self.peak_lr
        if peak is None:
            raise RuntimeError("The peak learning rate is known once training begins.")
        if step < self.warmup_steps:
            return peak * step / self.warmup_steps
        return peak

    def on_train_batch_begin(self, batch, logs=None):
        if self._done:
            return
        step = self._iteration_of(batch)
        self._lr.assign(self.learning_rate_at(step))
        if step >= self.warmup_steps:
            self._done = True
