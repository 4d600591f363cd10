"""`DivergenceMonitor`: stop a run whose loss blows up, and say so."""

import math
import warnings

import keras

from kplaybook.callbacks import _instrumentation
from kplaybook.errors import PlaybookWarning


class DivergenceMonitor(keras.callbacks.Callback):
    """Stops training when the loss becomes NaN/Inf or stays far above its running minimum.

    Every workload becomes unstable at a high enough learning rate
    (PLAYBOOK.md 27): a diverged run wastes the rest of its budget and, in a
    study, is an infeasible trial rather than a bad one. After every step the
    monitor reads that step's own mean loss (``step_loss``, which it asks
    kplaybook's step hooks to log; Keras's batch-level ``loss`` is a running
    mean over the epoch, which dilutes a late blow-up) and stops training when

    - the loss is NaN or infinite, or the logged ``grad_norm`` is (except
      under a ``LossScaleOptimizer``, which skips overflowing steps by
      design), or
    - for `patience` consecutive steps its exponential moving average
      (weight `smoothing` on the past, carried across epochs) exceeds
      `factor` times the lowest average seen so far (for a non-positive
      minimum: the minimum plus ``(factor - 1) * |minimum|``) and is above
      the first average of the fit (the loss it started from).

    The average keeps single noisy batches from looking like divergence, and
    the starting loss keeps a well-trained model whose minibatch losses
    wander near 0 (10x of 0.001 is still tiny) from being stopped.

    After a stop, `diverged` is True and `reason`, `step` say why and where.
    Used in `PlaybookTuner.search(callbacks=[...])` the trial ends as
    infeasible with reason ``"diverged"`` and the study goes on; in a plain
    ``fit`` training stops and a `PlaybookWarning` is issued.

    Args:
        patience: consecutive steps above the limit before stopping.
        factor: how many times its running minimum the loss may reach (> 1).
        monitor: the log key to watch. Defaults to ``"loss"``, read from
            ``step_loss`` when the model's train step tracks its loss the
            Keras way (else the running mean itself).
        smoothing: the moving average's weight on the past, in [0, 1);
            0 compares raw values. Defaults to 0.9 (about 10 steps).

    Example:

    ```python
    monitor = kp.callbacks.DivergenceMonitor(patience=20, factor=5.0)
    model.fit(x, y, epochs=10, callbacks=[monitor])
    if monitor.diverged:
        print(monitor.reason)
    ```
    """

    def __init__(self, patience=10, factor=10.0, monitor="loss", smoothing=0.9):
        super().__init__()
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 1:
            raise ValueError(f"patience must be a positive integer, got {patience!r}.")
        if not float(factor) > 1:
            raise ValueError(f"factor must be greater than 1, got {factor!r}.")
        if not 0 <= float(smoothing) < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}.")
        self.patience = patience
        self.factor = float(factor)
        self.monitor = monitor
        self.smoothing = float(smoothing)
        self._reset()

    def _reset(self):
        self.diverged = False
        self.reason = None
        self.step = None
        self._best = math.inf
        self._average = None
        self._start = -math.inf
        self._wait = 0
        self._inst = None
        self._base = 0

    def on_train_begin(self, logs=None):
        self._reset()
        self._base = int(self.model.optimizer.iterations.numpy())
        self._epoch_steps = 0
        self._scaled = isinstance(self.model.optimizer, keras.optimizers.LossScaleOptimizer)
        if self.monitor == "loss":
            # Ask the step hooks for each step's own loss (``step_loss``).
            self._inst = _instrumentation.Instrumentation.attach(self.model, self)

    def _limit(self):
        best = self._best
        if best > 0:
            limit = best * self.factor
        else:
            limit = best + (self.factor - 1) * abs(best)
        return max(limit, self._start)

    def _check(self, logs, step):
        if self.diverged or not logs:
            return
        key = self.monitor
        if key == "loss" and _instrumentation.STEP_LOSS in logs:
            key = _instrumentation.STEP_LOSS
        if key not in logs:
            return
        value = float(logs[key])
        grad_norm = logs.get("grad_norm")
        if not math.isfinite(value):
            self._stop(step, f"{self.monitor} became {value} at step {step}")
            return
        if grad_norm is not None and not self._scaled and not math.isfinite(float(grad_norm)):
            self._stop(step, f"the gradient norm became {grad_norm} at step {step}")
            return
        if self._average is None:
            self._average = self._start = value
        else:
            self._average = self.smoothing * self._average + (1 - self.smoothing) * value
        average = self._average
        if self._best < math.inf and average > self._limit():
            self._wait += 1
            if self._wait >= self.patience:
                self._stop(
                    step,
                    f"{self.monitor} (moving average {average:.4g}) stayed above "
                    f"{self.factor:g}x its minimum {self._best:.4g} and above its start "
                    f"{self._start:.4g} for {self.patience} steps (step {step})",
                )
            return
        self._wait = 0
        self._best = min(self._best, average)

    def _stop(self, step, reason):
        self.diverged = True
        self.reason = reason
        self.step = step
        self.model.stop_training = True
        warnings.warn(
            f"DivergenceMonitor stopped training: {reason}.", PlaybookWarning, stacklevel=3
        )

    def on_train_batch_end(self, batch, logs=None):
        self._epoch_steps = batch + 1
        self._check(logs, self._base + batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self._base += self._epoch_steps
        self._epoch_steps = 0
        if logs and self.monitor in logs and not math.isfinite(float(logs[self.monitor])):
            self._check({self.monitor: logs[self.monitor]}, self._base)

    def on_train_end(self, logs=None):
        if self._inst is not None:
            self._inst.detach(self)
            self._inst = None

    def __deepcopy__(self, memo):
        return type(self)(
            patience=self.patience,
            factor=self.factor,
            monitor=self.monitor,
            smoothing=self.smoothing,
        )
