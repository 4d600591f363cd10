"""`GradientNormLogger`: the unclipped global gradient norm, every step."""

import keras

from kplaybook.callbacks import _instrumentation
from kplaybook.records.steps import StepRecord


class GradientNormLogger(keras.callbacks.Callback):
    """Logs the L2 norm of the full, unclipped gradient at every training step.

    The playbook (section H, rule 29) asks for the global gradient norm at
    every step, plotted against the step and as a histogram, to see
    instability and to choose a clipping threshold. This callback works with
    any compiled Keras model on the TensorFlow backend, passed only to
    ``fit(callbacks=[...])`` (or ``tuner.search(callbacks=[...])``).

    The norm is that of the gradient the optimizer applies, summed across
    replicas: under a ``tf.distribute.MirroredStrategy`` it is the norm of
    the all-reduced gradient, not of one replica's share. It is taken before
    any clipping (``GradientClipping`` or the optimizer's own) and after
    undoing loss scaling.

    What it adds to the logs:

    - batch logs: ``grad_norm`` (this step's norm) and ``lr`` (the learning
      rate the step used), so other callbacks and TensorBoard (with
      ``update_freq=1`` or ``"batch"``, listed after this callback) see them
      at every step;
    - epoch logs and History: ``grad_norm`` (the epoch's mean), and
      ``grad_norm_max``, and ``lr`` (the last step's).

    `to_dataframe()` returns the recorded per-step values. With
    ``steps_per_execution=n`` Keras hands over logs every n steps, so values
    are logged every n steps (the last step of each execution).

    Args:
        every: keep ``grad_norm`` in the batch logs and the record only at
            steps that are multiples of `every` (the norm is computed at
            every step regardless; clipping needs it). Defaults to 1.
        cap: the most steps kept in the record; beyond it the record keeps
            every 2nd, 4th, ... step. Defaults to 2000.

    Example:

    ```python
    logger = kp.callbacks.GradientNormLogger()
    model.fit(x, y, epochs=3, callbacks=[logger])
    norms = logger.to_dataframe()["grad_norm"]
    print(norms.quantile(0.9))   # a starting clipping threshold
    ```
    """

    # Values arrive in the logs themselves, so Keras may dispatch batch ends
    # asynchronously; the record is thread-safe.
    async_safe = True

    def __init__(self, every=1, cap=2000):
        super().__init__()
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}.")
        self.every = every
        self.record = StepRecord(
            (_instrumentation.GRAD_NORM, _instrumentation.LR), cap=cap, every=every
        )
        self._inst = None

    def on_train_begin(self, logs=None):
        self._inst = _instrumentation.Instrumentation.attach(self.model, self)
        self.record.begin(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._inst.begin_epoch(epoch)

    def on_train_batch_end(self, batch, logs=None):
        step = self.record.add_batch(batch, logs)
        if logs is not None and step % self.every:
            logs.pop(_instrumentation.GRAD_NORM, None)

    def on_epoch_end(self, epoch, logs=None):
        self._inst.end_epoch(logs)
        self.record.end_epoch()

    def on_train_end(self, logs=None):
        self._inst.detach(self)

    def to_dataframe(self):
        """Recorded per-step values: a DataFrame indexed by ``step`` with ``grad_norm`` and ``lr``."""
        return self.record.to_dataframe()

    def __deepcopy__(self, memo):
        # KerasTuner deep-copies callbacks for every execution: start fresh.
        return type(self)(every=self.every, cap=self.record.cap)
