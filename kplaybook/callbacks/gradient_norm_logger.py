"""`GradientNormLogger`: the unclipped global gradient norm, every step."""

from kplaybook.callbacks import _arguments
from kplaybook.callbacks import _instrumentation
from kplaybook.callbacks._hooked import StepHookCallback
from kplaybook.records.steps import DEFAULT_CAP
from kplaybook.records.steps import StepRecord


class GradientNormLogger(StepHookCallback):
    """Logs the L2 norm of the full, unclipped gradient at every training step.

    The playbook ("Identifying unstable workloads",
    https://github.com/google-research/tuning_playbook#identifying-unstable-workloads) asks for the global gradient norm at
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

    _needs_gradient_norm = True

    def __init__(self, every=1, cap=DEFAULT_CAP):
        super().__init__()
        self.every = _arguments.integer("every", every)
        cap = _arguments.integer("cap", cap)
        self.record = StepRecord(
            (_instrumentation.GRAD_NORM, _instrumentation.LR), cap=cap, every=self.every
        )

    def get_config(self):
        """The constructor arguments: ``GradientNormLogger(**logger.get_config())`` is a fresh copy."""
        return {"every": self.every, "cap": self.record.cap}

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if not logs:
            return
        step = self._step_of(batch)
        values = {}
        for key in self.record.keys:
            if key in logs:
                try:
                    values[key] = float(logs[key])
                except (TypeError, ValueError):
                    continue
        if values:
            self.record.add(step, values)
        if step % self.every:
            logs.pop(_instrumentation.GRAD_NORM, None)

    def to_dataframe(self):
        """Recorded per-step values: a DataFrame indexed by ``step`` with ``grad_norm`` and ``lr``."""
        return self.record.to_dataframe()
