"""`lr_sweep`: short runs over a grid of learning rates to find lr* and where training breaks."""

import math

from kplaybook import validation
from kplaybook.results import Result
from kplaybook.sweeps import _runner
from kplaybook.sweeps._plots import plot_lr_sweep


class LRSweepResult(Result):
    """What `kp.lr_sweep` measured: one short run per learning rate.

    A `kplaybook.results.Result`: `to_dataframe()`, `plot()`, `summary()`,
    `save(path)` / `LRSweepResult.load(path)`.

    Attributes:
        runs: one dict per learning rate (see `to_dataframe` for the keys),
            each with its ``curve`` (a DataFrame indexed by step: mean training
            loss over the stretch ending at that step, the mean gradient norm
            and the learning rate).
        best_lr: lr*, the learning rate with the lowest final training loss
            among the stable runs (None if none was stable).
        unstable_lr: the smallest learning rate whose run diverged or ended
            above its starting loss (None if none did).

    Example:

    ```python
    result = kp.lr_sweep(build_model, (x, y), [1e-4, 1e-3, 1e-2, 1e-1, 1], steps=300)
    print(result.to_dataframe()[["final_loss", "stable"]])
    print(result.best_lr, result.unstable_lr)
    result.plot().savefig("lr_sweep.png")
    ```
    """

    kind = "lr_sweep"

    def __init__(self, runs, steps):
        self.runs = sorted(runs, key=lambda run: run["learning_rate"])
        self.steps = steps

    def summary(self):
        """The table, lr* and the unstable rate as text."""
        table = self.to_dataframe()[["initial_loss", "final_loss", "diverged", "stable"]]
        lines = [table.to_string(float_format=lambda v: f"{v:.4g}")]
        lines.append(f"lr* = {self.best_lr}, unstable from {self.unstable_lr}")
        return "\n".join(lines)

    def to_json(self):
        """The runs, their curves as columns (see `Result.save`)."""
        return {"steps": self.steps, "runs": _runner.runs_to_json(self.runs)}

    @classmethod
    def from_json(cls, data):
        """The result from `to_json`'s data."""
        return cls(_runner.runs_from_json(data["runs"]), data["steps"])

    @property
    def best_lr(self):
        """lr*: the stable learning rate with the lowest final training loss, or None."""
        stable = [r for r in self.runs if r["stable"]]
        if not stable:
            return None
        return min(stable, key=lambda r: r["final_loss"])["learning_rate"]

    @property
    def unstable_lr(self):
        """The smallest learning rate that diverged or ended above its starting loss, or None."""
        for run in self.runs:
            if not run["stable"]:
                return run["learning_rate"]
        return None

    def to_dataframe(self):
        """One row per learning rate (index ``learning_rate``).

        Columns: ``initial_loss`` and ``final_loss`` (training loss on the
        same fixed batches before and after the run), ``diverged``,
        ``diverged_step``, ``divergence_reason``, ``ended_above_start``,
        ``stable``, ``steps_run``, ``grad_norm_median``/``_p90``/``_max``,
        ``seconds``.
        """
        return _runner.summary_frame(self.runs, "learning_rate").drop(columns="warmup_steps")

    def curves(self):
        """{learning_rate: curve DataFrame} for every run."""
        return {run["learning_rate"]: run["curve"] for run in self.runs}

    def plot_data(self):
        """The data `plot` draws: final losses, the learning rates near lr*, and their curves.

        Returns a dict with ``lrs``, ``final_loss`` (NaN where diverged),
        ``initial_loss``, ``unstable`` (booleans), ``best_lr``,
        ``unstable_lr`` and ``curves`` (lr* and the next two larger rates:
        the playbook's "Identifying unstable workloads" looks at the rates just above lr*).
        """
        lrs = [r["learning_rate"] for r in self.runs]
        best = self.best_lr
        if best is None:
            shown = lrs[:3]
        else:
            i = lrs.index(best)
            shown = lrs[max(0, i - 1) : i + 3]
        return {
            "lrs": lrs,
            "final_loss": [r["final_loss"] for r in self.runs],
            "initial_loss": [r["initial_loss"] for r in self.runs],
            "unstable": [not r["stable"] for r in self.runs],
            "diverged_step": {r["learning_rate"]: r["diverged_step"] for r in self.runs},
            "best_lr": best,
            "unstable_lr": self.unstable_lr,
            "curves": {
                r["learning_rate"]: r["curve"] for r in self.runs if r["learning_rate"] in shown
            },
        }

    def plot(self):
        """Final loss vs learning rate (log x) and the loss curves of the rates around lr*.

        Returns a matplotlib Figure.
        """
        return plot_lr_sweep(self.plot_data())

    def __repr__(self):
        return (
            f"LRSweepResult({len(self.runs)} learning rates, best_lr={self.best_lr}, "
            f"unstable_lr={self.unstable_lr})"
        )


def _validate_rates(learning_rates):
    rates = validation.sequence(learning_rates, "learning_rates", "a list of positive numbers")
    if not rates:
        raise ValueError("learning_rates is empty; pass at least one learning rate.")
    wrong_type = [lr for lr in rates if not validation.is_number(lr)]
    if wrong_type:
        raise TypeError(
            f"learning_rates must be a list of positive numbers, got {wrong_type[0]!r} in it."
        )
    rates = [float(lr) for lr in rates]
    bad = [lr for lr in rates if not (math.isfinite(lr) and lr > 0)]
    if bad:
        raise ValueError(f"learning rates must be positive and finite, got {bad}.")
    if len(set(rates)) != len(rates):
        raise ValueError(f"learning_rates has duplicates: {sorted(rates)}; pass each once.")
    return sorted(rates)


def _validate_steps(steps, name="steps"):
    if not validation.is_integer(steps) or steps < 1:
        raise ValueError(f"{name} must be a positive integer, got {steps!r}.")
    return int(steps)


def lr_sweep(
    build_model,
    train_data,
    learning_rates,
    steps,
    *,
    batch_size=None,
    eval_batches=8,
    seed=0,
    patience=10,
    factor=10.0,
    callbacks=(),
):
    """Trains a fresh model for `steps` steps at each learning rate and compares the outcomes.

    The playbook's learning-rate sweep ("Identifying unstable workloads",
    https://github.com/google-research/tuning_playbook#identifying-unstable-workloads): it finds lr* (the
    rate with the best final training loss) and the smallest unstable rate
    (one whose loss diverged or ended above where it started). A rate far
    above lr* that is stable means the search space can go higher; an
    unstable rate close above lr* says fixing instability (warmup, clipping;
    see `warmup_sweep`) could unlock better results.

    Every run starts from the same initial weights and sees the same batches
    (`keras.utils.set_random_seed(seed)` before `build_model()`), and the
    training loss before and after is measured on the same fixed batches of
    `train_data` in inference mode. A `DivergenceMonitor(patience, factor)`
    stops runs that blow up, and a `GradientNormLogger` records their
    gradient norms.

    Args:
        build_model: a function ``() -> keras.Model`` returning a fresh model
            compiled with a float learning rate (the sweep overwrites it).
        train_data: a batched ``tf.data.Dataset`` of ``(x, y)``, or ``(x, y)``
            arrays (then batched with `batch_size`, default 32).
        learning_rates: the rates to try, a list of distinct positive
            numbers (sorted for you).
        steps: training steps per rate, a positive int.
        batch_size: the batch size for arrays, a positive int (default 32).
        eval_batches: batches of `train_data` the loss is measured on, a
            positive int.
        seed: the seed of the initial weights and the data order, a
            non-negative int below 2**32.
        patience, factor: the `DivergenceMonitor` settings.
        callbacks: a list of extra Keras callbacks for every run.

    Returns:
        `LRSweepResult`.

    Example:

    ```python
    def build_model():
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        return model

    result = kp.lr_sweep(build_model, (x, y), [1e-3, 1e-2, 1e-1, 1.0], steps=200)
    print(result.best_lr, result.unstable_lr)
    ```
    """
    rates = _validate_rates(learning_rates)
    steps = _validate_steps(steps)
    build_model, seed, callbacks = _runner.check_run_arguments(build_model, seed, callbacks)
    data = _runner.SweepData(
        train_data, batch_size=batch_size, eval_batches=eval_batches, seed=seed
    )
    runs = [
        _runner.train_run(
            build_model,
            data,
            lr,
            steps,
            seed=seed,
            patience=patience,
            factor=factor,
            callbacks=callbacks,
        )
        for lr in rates
    ]
    return LRSweepResult(runs, steps)
