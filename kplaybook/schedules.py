"""Learning-rate schedules that follow the playbook's defaults for learning-rate decay."""

import math

import keras
from keras import ops

from kplaybook.callbacks import _arguments

_DECAYS = ("cosine", "linear", "constant")


@keras.saving.register_keras_serializable(package="kplaybook")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak_lr`, then cosine, linear or no decay to `end_lr`.

    The playbook starts with a constant learning rate and uses linear or
    cosine decay by default (playbook: "Which learning rate decay should I use
    as a default?",
    https://github.com/google-research/tuning_playbook#which-learning-rate-decay-should-i-use-as-a-default),
    each preceded by a linear warmup when early instability calls for it
    ("How to apply learning rate warmup",
    https://github.com/google-research/tuning_playbook#how-to-apply-learning-rate-warmup). With ``t`` the
    step (``optimizer.iterations``, from 0), ``W = warmup_steps`` and
    ``T = total_steps``:

    - ``t < W``: ``peak_lr * t / W``;
    - ``decay="constant"``: ``peak_lr`` afterwards (``total_steps`` only
      checked, not used);
    - ``decay="linear"``: ``peak_lr + (end_lr - peak_lr) * p`` with
      ``p = min(1, (t - W) / (T - W))``;
    - ``decay="cosine"``: ``end_lr + (peak_lr - end_lr) * (1 + cos(pi p)) / 2``.

    From step ``T`` on the rate stays at ``end_lr`` (``peak_lr`` for
    ``"constant"``). Serialisable: a model compiled with it saves and loads
    in ``.keras`` format.

    Numbers may be Python or numpy numbers (``np.float32(1e-3)``,
    ``np.int64(500)``); bools are refused.

    Args:
        peak_lr: the rate at the end of warmup (> 0).
        warmup_steps: steps of the linear ramp (>= 0; 0 means no warmup).
        total_steps: the step at which the decay reaches `end_lr`
            (> `warmup_steps`).
        decay: ``"cosine"`` (default), ``"linear"`` or ``"constant"``.
        end_lr: the final rate (>= 0, <= `peak_lr`). Defaults to 0.

    Example:

    ```python
    schedule = kp.schedules.WarmupDecay(1e-3, warmup_steps=500, total_steps=10_000)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy")
    ```
    """

    def __init__(self, peak_lr, warmup_steps, total_steps, decay="cosine", end_lr=0.0):
        super().__init__()
        # Stored as Python numbers: the config is saved as JSON with the model.
        peak_lr = _arguments.positive_number("peak_lr", peak_lr)
        warmup_steps = _arguments.integer("warmup_steps", warmup_steps, minimum=0)
        if not _arguments.is_integer(total_steps):
            raise ValueError(f"total_steps must be an integer, got {total_steps!r}.")
        if total_steps <= warmup_steps:
            raise ValueError(
                f"total_steps ({total_steps}) must be greater than warmup_steps "
                f"({warmup_steps}); the decay needs steps after the warmup."
            )
        if decay not in _DECAYS:
            raise ValueError(f"decay must be one of {_DECAYS}, got {decay!r}.")
        if not (_arguments.is_number(end_lr) and 0 <= end_lr <= peak_lr):
            raise ValueError(f"end_lr must be between 0 and peak_lr ({peak_lr}), got {end_lr!r}.")
        self.peak_lr = peak_lr
        self.warmup_steps = warmup_steps
        self.total_steps = int(total_steps)
        self.decay = decay
        self.end_lr = float(end_lr)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = ops.cast(self.peak_lr, "float32")
        end = ops.cast(self.end_lr, "float32")
        warmup = float(self.warmup_steps)
        if self.warmup_steps > 0:
            warm = peak * step / warmup
        else:
            warm = peak
        if self.decay == "constant":
            after = peak
        else:
            progress = ops.clip(
                (step - warmup) / float(self.total_steps - self.warmup_steps), 0.0, 1.0
            )
            if self.decay == "linear":
                after = peak + (end - peak) * progress
            else:
                after = end + (peak - end) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < warmup, warm, after)

    def get_config(self):
        return {
            "peak_lr": self.peak_lr,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay": self.decay,
            "end_lr": self.end_lr,
        }
