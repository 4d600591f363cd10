"""`DivergenceMonitor`: stop a run whose loss blows up, and say so."""

import math
import warnings

import keras

from kplaybook.errors import PlaybookWarning


class DivergenceMonitor(keras.callbacks.Callback):
    """Stops training when the loss becomes NaN/Inf or stays far above its running minimum.

    Every workload becomes unstable at a high enough learning rate
    (PLAYBOOK.md 27): a diverged run wastes the rest of its budget and, in a
    study, is an infeasible trial rather than a bad one. The monitor reads
    the batch-level loss after every step and stops training when

    - the loss (or a logged ``grad_norm``) is NaN or infinite, or
    - for `patience` consecutive steps its exponential moving average
      (weight `smoothing` on the past, carried across epochs) exceeds
      `factor` times the lowest average seen so far (for a non-positive
      minimum: the minimum plus ``(factor - 1) * |minimum|``).

    The average keeps single noisy batches (minibatch losses near 0 late in
    training, the first batch of an epoch) from looking like divergence.

    After a stop, `diverged` is True and `reason`, `step` say why and where.
    Used in `PlaybookTuner.search(callbacks=[...])` the trial ends as
    infeasible with reason ``"diverged"`` and the study goes on; in a plain
    ``fit`` training stops and a `PlaybookWarning` is issued.

    Args:
        patience: consecutive steps above the limit before stopping.
        factor: how many times its running minimum the loss may reach (> 1).
        monitor: the log key to watch. Defaults to ``"loss"``.
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
        self._wait = 0
        self._base = 0

    def on_train_begin(self, logs=None):
        self._reset()
        self._base = int(self.model.optimizer.iterations.numpy())

    def _limit(self):
        best = self._best
        if best > 0:
            return best * self.factor
        return best + (self.factor - 1) * abs(best)

    def _check(self, logs, step):
        if self.diverged or not logs or self.monitor not in logs:
            return
        value = float(logs[self.monitor])
        grad_norm = logs.get("grad_norm")
        if not math.isfinite(value):
            self._stop(step, f"{self.monitor} became {value} at step {step}")
            return
        if grad_norm is not None and not math.isfinite(float(grad_norm)):
            self._stop(step, f"the gradient norm became {grad_norm} at step {step}")
            return
        if self._average is None:
            self._average = value
        else:
            self._average = self.smoothing * self._average + (1 - self.smoothing) * value
        average = self._average
        if self._best < math.inf and average > self._limit():
            self._wait += 1
            if self._wait >= self.patience:
                self._stop(
                    step,
                    f"{self.monitor} (moving average {average:.4g}) stayed above "
                    f"{self.factor:g}x its minimum {self._best:.4g} for {self.patience} "
                    f"steps (step {step})",
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
        self._check(logs, self._base + batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        if logs and self.monitor in logs and not math.isfinite(float(logs[self.monitor])):
            self._check(logs, int(self.model.optimizer.iterations.numpy()))
        self._base = int(self.model.optimizer.iterations.numpy())

    def __deepcopy__(self, memo):
        return type(self)(
            patience=self.patience,
            factor=self.factor,
            monitor=self.monitor,
            smoothing=self.smoothing,
        )
