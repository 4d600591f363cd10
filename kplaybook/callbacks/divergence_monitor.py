"""`DivergenceMonitor`: stop a run whose loss blows up, and say so."""

import math
import warnings

import keras

from kplaybook.callbacks import _arguments
from kplaybook.callbacks import _instrumentation
from kplaybook.callbacks._hooked import StepHookCallback
from kplaybook.errors import PlaybookWarning


class DivergenceMonitor(StepHookCallback):
    """Stops training when the loss becomes NaN/Inf or stays far above its running minimum.

    Every workload becomes unstable at a high enough learning rate
    (playbook: "Identifying unstable workloads",
    https://github.com/google-research/tuning_playbook#identifying-unstable-workloads): a diverged run wastes the rest of its budget and, in a
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

    A `monitor` that is in no log of the first epoch (for a ``val_`` key: of
    the first epoch that ran validation, or of the whole fit if none did) can
    never stop anything: a `PlaybookWarning` then names the keys that were
    logged. A warning, not an error, as Keras's ``EarlyStopping`` does for a
    missing key: the training run itself is sound and may be hours in, and
    in a search an exception would fail the trial (and, repeated, the whole
    search) over a monitoring typo.

    Args:
        patience: consecutive steps above the limit before stopping.
        factor: how many times its running minimum the loss may reach (> 1).
        monitor: the log key to watch. Defaults to ``"loss"``, read from
            ``step_loss`` when the model's train step tracks its loss the
            Keras way (else the running mean itself). Any other key is read
            from the batch logs when they have it and from the epoch logs
            (NaN/Inf only) otherwise.
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

    # Stops must take effect at the step that triggers them, and the moving
    # average needs the steps in order: batch ends run synchronously.
    async_safe = False
    _needs_step_loss = True

    def __init__(self, patience=10, factor=10.0, monitor="loss", smoothing=0.9):
        super().__init__()
        self.patience = _arguments.integer("patience", patience)
        if not (_arguments.is_number(factor) and factor > 1):
            raise ValueError(f"factor must be greater than 1, got {factor!r}.")
        if not (_arguments.is_number(smoothing) and 0 <= smoothing < 1):
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}.")
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be the name of a logged value, got {monitor!r}.")
        self.factor = float(factor)
        self.monitor = monitor
        self.smoothing = float(smoothing)
        self._reset()

    def get_config(self):
        """The constructor arguments: ``DivergenceMonitor(**monitor.get_config())`` is a fresh copy."""
        return {
            "patience": self.patience,
            "factor": self.factor,
            "monitor": self.monitor,
            "smoothing": self.smoothing,
        }

    def _uses_step_hooks(self):
        # Only "loss" is read from the hooks (``step_loss``).
        return self.monitor == "loss"

    def _reset(self):
        self.diverged = False
        self.reason = None
        self.step = None
        self._best = math.inf
        self._average = None
        self._start = -math.inf
        self._wait = 0
        self._found = False  # the monitored key was in some log of this fit
        self._key_checked = False

    def on_train_begin(self, logs=None):
        self._reset()
        super().on_train_begin(logs)
        self._scaled = isinstance(self.model.optimizer, keras.optimizers.LossScaleOptimizer)

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
        self._found = True
        value = float(logs[key])
        grad_norm = logs.get(_instrumentation.GRAD_NORM)
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
        super().on_train_batch_end(batch, logs)
        self._check(logs, self._step_of(batch))

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if logs and self.monitor in logs:
            self._found = True
            if not math.isfinite(float(logs[self.monitor])):
                self._check({self.monitor: logs[self.monitor]}, self._steps_done)
        self._check_key(logs or {}, final=False)

    def on_train_end(self, logs=None):
        self._check_key(logs or {}, final=True)
        super().on_train_end(logs)

    def _check_key(self, logs, final):
        """Warns once when the monitored key is not among the logged values.

        Checked at the end of the first epoch; a ``val_`` key is checked at
        the first epoch that ran validation (``validation_freq`` may skip
        the first) or, when none did, at the end of training.
        """
        if self._key_checked or self._found or self.diverged:
            return
        ran_validation = any(k.startswith("val_") for k in logs)
        if self.monitor.startswith("val_") and not ran_validation and not final:
            return
        self._key_checked = True
        logged = sorted(k for k in logs if not k.startswith("_"))
        warnings.warn(
            f"DivergenceMonitor(monitor={self.monitor!r}) found no {self.monitor!r} in the "
            f"logs, which have {logged}; pass one of those as monitor, or it will never "
            "stop training.",
            PlaybookWarning,
            stacklevel=2,
        )
