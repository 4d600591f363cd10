"""`StepHookCallback`: what kplaybook's train-step callbacks share."""

import threading

import keras

from kplaybook.callbacks import _instrumentation


class StepHookCallback(keras.callbacks.Callback):
    """Base of the callbacks that hook the train step: shared hooks, a global step count, fresh copies.

    A subclass declares what the traced step must compute for it (the class
    attributes below, read by `Instrumentation` when the train function is
    traced), returns its constructor arguments from `get_config`, and
    overrides the Keras hooks it needs, calling ``super()`` first. The base:

    - attaches the model's shared `Instrumentation` in `on_train_begin`
      (when `_uses_step_hooks()`), zeroes and summarises its epoch
      accumulators at each epoch's begin and end, and detaches in
      `on_train_end`;
    - counts global steps: ``optimizer.iterations`` when the fit starts plus
      the steps run in it so far, from Keras's batch indices (which count
      steps, also with ``steps_per_execution``), so a second fit continues
      where the first stopped;
    - makes `copy.deepcopy` return a fresh callback built from `get_config()`:
      KerasTuner deep-copies the callbacks for every execution, and a copy
      must start from the constructor arguments, not from the original's
      training state (a clipping history, a record, a stop).

    Batch ends may be dispatched from Keras's thread pool (``async_safe``):
    the step count is kept under a lock, and the values subclasses read are
    in the logs themselves.
    """

    async_safe = True
    # What the traced step computes for this callback.
    _needs_gradient_norm = False
    _needs_step_loss = False
    _clips_gradients = False

    def __init__(self):
        super().__init__()
        self._inst = None
        self._lock = threading.Lock()
        self._epoch_start = 0  # optimizer steps done before the current epoch
        self._epoch_steps = 0  # steps of the current epoch seen so far

    def get_config(self):
        """The constructor arguments: ``type(self)(**self.get_config())`` is a fresh copy."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement get_config() returning its constructor "
            "arguments, so that KerasTuner's copies of it start fresh."
        )

    def __deepcopy__(self, memo):
        return type(self)(**self.get_config())

    def _uses_step_hooks(self):
        """Whether this fit needs the train-step hooks (a subclass may decide per fit)."""
        return True

    # ------------------------------------------------------------ steps

    def _step_of(self, batch):
        """The global step (from 1) whose update ended batch index `batch` of the current epoch."""
        return self._epoch_start + int(batch) + 1

    def _iteration_of(self, batch):
        """``optimizer.iterations`` before the update of batch index `batch` (from 0)."""
        return self._epoch_start + int(batch)

    @property
    def _steps_done(self):
        """The global step of the last update counted so far."""
        with self._lock:
            return self._epoch_start + self._epoch_steps

    # ------------------------------------------------------------ Keras hooks

    def on_train_begin(self, logs=None):
        self._inst = None
        if self._uses_step_hooks():
            self._inst = _instrumentation.Instrumentation.attach(self.model, self)
        with self._lock:
            self._epoch_start = int(self.model.optimizer.iterations.numpy())
            self._epoch_steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        if self._inst is not None:
            self._inst.begin_epoch(epoch)

    def on_train_batch_end(self, batch, logs=None):
        with self._lock:
            self._epoch_steps = max(self._epoch_steps, int(batch) + 1)

    def on_epoch_end(self, epoch, logs=None):
        if self._inst is not None:
            self._inst.end_epoch(logs)
        # Keras flushes asynchronous batch ends before on_epoch_end, so every
        # batch of the epoch has been counted.
        with self._lock:
            self._epoch_start += self._epoch_steps
            self._epoch_steps = 0

    def on_train_end(self, logs=None):
        if self._inst is not None:
            self._inst.detach(self)
            self._inst = None
