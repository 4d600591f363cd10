"""`warmup_sweep`: which warmup lengths make a too-high learning rate stable."""

import math

from kplaybook import validation
from kplaybook.results import Result
from kplaybook.sweeps import _runner
from kplaybook.sweeps._plots import plot_warmup_sweep
from kplaybook.sweeps.lr_sweep import _validate_steps

# "How to apply learning rate warmup": the largest warmup tried is at most 10% of
# max_train_steps, and a warmup longer than 5% of it suggests training longer.
MAX_WARMUP_FRACTION = 0.10
LONG_WARMUP_FRACTION = 0.05
# A stable run whose final loss is this many times the sweep's best gets a
# note: stability alone does not say the rate trains well (kplaybook's choice).
FAR_WORSE = 2.0


class WarmupSweepResult(Result):
    """What `kp.warmup_sweep` measured: one run at the target learning rate per warmup length.

    A `kplaybook.results.Result`: `to_dataframe()`, `plot()`, `summary()`,
    `save(path)` / `WarmupSweepResult.load(path)`.

    Attributes:
        runs: one dict per warmup length (see `to_dataframe`), each with its
            loss ``curve``.
        base_lr: the target learning rate.
        max_train_steps: the training length the warmup is judged against.
        shortest_stable_warmup: the shortest warmup whose run was stable (0
            when the rate is stable without warmup), or None if none was.
        notes: the playbook's advice on the outcome, as sentences.

    Example:

    ```python
    result = kp.warmup_sweep(build_model, (x, y), base_lr=1.0,
                             warmup_steps_list=[10, 100, 1000], max_train_steps=10_000)
    print(result.to_dataframe()[["final_loss", "stable"]])
    print(result.shortest_stable_warmup, result.notes)
    ```
    """

    kind = "warmup_sweep"

    def __init__(self, runs, base_lr, max_train_steps, steps):
        self.runs = sorted(runs, key=lambda run: run["warmup_steps"])
        self.base_lr = base_lr
        self.max_train_steps = max_train_steps
        self.steps = steps

    def summary(self):
        """The table, the shortest stable warmup and the playbook's notes as text."""
        table = self.to_dataframe()[["initial_loss", "final_loss", "diverged", "stable"]]
        lines = [table.to_string(float_format=lambda v: f"{v:.4g}")]
        lines.append(f"shortest stable warmup: {self.shortest_stable_warmup}")
        lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines)

    def to_json(self):
        """The runs, their curves as columns (see `Result.save`)."""
        return {
            "base_lr": self.base_lr,
            "max_train_steps": self.max_train_steps,
            "steps": self.steps,
            "runs": _runner.runs_to_json(self.runs),
        }

    @classmethod
    def from_json(cls, data):
        """The result from `to_json`'s data."""
        return cls(
            _runner.runs_from_json(data["runs"]),
            data["base_lr"],
            data["max_train_steps"],
            data["steps"],
        )

    @property
    def shortest_stable_warmup(self):
        """The shortest warmup (in steps) that made `base_lr` stable; 0 if no warmup was needed; None if none did."""
        for run in self.runs:
            if run["stable"]:
                return run["warmup_steps"]
        return None

    @property
    def stable_warmups(self):
        """Every warmup length whose run was stable, shortest first."""
        return [run["warmup_steps"] for run in self.runs if run["stable"]]

    @property
    def notes(self):
        """The playbook's reading of the outcome ("How to apply learning rate warmup"), as a list of sentences."""
        shortest = self.shortest_stable_warmup
        if shortest is None:
            return [
                f"No warmup length made learning rate {self.base_lr:g} stable; try "
                "gradient clipping (kp.callbacks.GradientClipping), another optimizer, "
                "or normalisation and residual connections before lowering it."
            ]
        if shortest == 0:
            return [
                f"Learning rate {self.base_lr:g} is stable without warmup; the playbook "
                "targets at least 10x the unstable rate, so try a higher base_lr."
            ]
        notes = [f"A warmup of {shortest} steps makes learning rate {self.base_lr:g} stable."]
        stable = [r for r in self.runs if r["stable"]]
        best = min(stable, key=lambda r: r["final_loss"])
        first = stable[0]
        if first is not best and first["final_loss"] > FAR_WORSE * best["final_loss"]:
            notes.append(
                f"But it ends at training loss {first['final_loss']:.4g}, more than "
                f"{FAR_WORSE:g}x the {best['final_loss']:.4g} after a {best['warmup_steps']}-step "
                "warmup: check its curve (a network stuck at chance level is not diverged "
                "but has not trained either)."
            )
        if shortest > LONG_WARMUP_FRACTION * self.max_train_steps:
            notes.append(
                f"That is more than {LONG_WARMUP_FRACTION:.0%} of max_train_steps "
                f"({self.max_train_steps}): consider training longer."
            )
        return notes

    def to_dataframe(self):
        """One row per warmup length (index ``warmup_steps``); same columns as `LRSweepResult`."""
        return _runner.summary_frame(self.runs, "warmup_steps").drop(columns="learning_rate")

    def curves(self):
        """{warmup_steps: curve DataFrame} for every run."""
        return {run["warmup_steps"]: run["curve"] for run in self.runs}

    def plot_data(self):
        """The data `plot` draws: the warmup lengths, their stability and loss curves."""
        return {
            "warmup_steps": [r["warmup_steps"] for r in self.runs],
            "stable": [r["stable"] for r in self.runs],
            "final_loss": [r["final_loss"] for r in self.runs],
            "diverged_step": [r["diverged_step"] for r in self.runs],
            "base_lr": self.base_lr,
            "shortest_stable_warmup": self.shortest_stable_warmup,
            "curves": self.curves(),
        }

    def plot(self):
        """Training-loss curves, one per warmup length, unstable ones dashed. A matplotlib Figure."""
        return plot_warmup_sweep(self.plot_data())

    def __repr__(self):
        return (
            f"WarmupSweepResult(base_lr={self.base_lr:g}, warmups={[r['warmup_steps'] for r in self.runs]}, "
            f"shortest_stable_warmup={self.shortest_stable_warmup})"
        )


def warmup_sweep(
    build_model,
    train_data,
    base_lr,
    warmup_steps_list,
    max_train_steps,
    *,
    hold_factor=2,
    steps=None,
    include_no_warmup=True,
    batch_size=None,
    eval_batches=8,
    seed=0,
    patience=10,
    factor=10.0,
    callbacks=(),
):
    """Runs `base_lr` with each warmup length and reports which made it stable.

    The playbook's warmup procedure ("How to apply learning rate warmup",
    https://github.com/google-research/tuning_playbook#how-to-apply-learning-rate-warmup): find the unstable base
    learning rate (`lr_sweep`'s ``unstable_lr``), target a base rate at least
    10x it, ramp linearly from 0 to it over ``warmup_steps`` and hold it
    afterwards; sweep ``warmup_steps`` over orders of magnitude, the largest
    at most 10% of ``max_train_steps``; pick the shortest warmup that makes
    the rate stable.

    Every run trains for the same number of steps, by default
    ``(1 + hold_factor) * max(warmup_steps_list)``, rounded up (each warmup
    followed by at least ``hold_factor`` times its length at `base_lr`), from the same
    initial weights on the same batches, with a `Warmup` callback. A run is
    stable when it did not diverge (`DivergenceMonitor`) and its final
    training loss is at or below its starting loss. A run with no warmup is
    included unless ``include_no_warmup=False``.

    Args:
        build_model: ``() -> keras.Model`` compiled with a float learning rate.
        train_data: a batched ``tf.data.Dataset`` or ``(x, y)`` arrays.
        base_lr: the target learning rate, a positive number.
        warmup_steps_list: warmup lengths to try, a list of distinct
            positive integers.
        max_train_steps: the length of the real training runs, a positive
            int; a warmup longer than 10% of it is refused.
        hold_factor: steps at `base_lr` after the longest warmup, in units of
            its length, a positive number. Defaults to 2.
        steps: training steps per run, a positive int longer than the
            longest warmup, overriding the default above.
        include_no_warmup: bool, also run without warmup. Defaults to True.
        batch_size, eval_batches, seed, patience, factor, callbacks: as in
            `lr_sweep`.

    Returns:
        `WarmupSweepResult`.
    """
    build_model, seed, callbacks = _runner.check_run_arguments(build_model, seed, callbacks)
    base_lr = validation.positive_number(base_lr, "base_lr")
    max_train_steps = _validate_steps(max_train_steps, "max_train_steps")
    hold_factor = validation.positive_number(hold_factor, "hold_factor")
    include_no_warmup = validation.boolean(include_no_warmup, "include_no_warmup")
    warmups = validation.sequence(
        warmup_steps_list, "warmup_steps_list", "a list of positive integers such as [10, 100]"
    )
    warmups = [_validate_steps(w, "each warmup length") for w in warmups]
    if not warmups:
        raise ValueError("warmup_steps_list is empty; pass warmup lengths such as [10, 100, 1000].")
    if len(set(warmups)) != len(warmups):
        raise ValueError(f"warmup_steps_list has duplicates: {sorted(warmups)}; pass each once.")
    too_long = [w for w in warmups if w > MAX_WARMUP_FRACTION * max_train_steps]
    if too_long:
        raise ValueError(
            f"Warmup lengths {too_long} exceed {MAX_WARMUP_FRACTION:.0%} of "
            f'max_train_steps={max_train_steps} (playbook: "How to apply learning rate warmup"); drop them or raise '
            "max_train_steps."
        )
    if steps is None:
        steps = max(warmups) + math.ceil(hold_factor * max(warmups))
    steps = _validate_steps(steps)
    if steps <= max(warmups):
        raise ValueError(
            f"steps={steps} ends before the longest warmup ({max(warmups)}) is over; "
            "raise steps so every run trains at base_lr after its warmup."
        )
    data = _runner.SweepData(
        train_data, batch_size=batch_size, eval_batches=eval_batches, seed=seed
    )
    lengths = sorted(set(warmups) | ({0} if include_no_warmup else set()))
    runs = [
        _runner.train_run(
            build_model,
            data,
            base_lr,
            steps,
            warmup_steps=w,
            seed=seed,
            patience=patience,
            factor=factor,
            callbacks=callbacks,
        )
        for w in lengths
    ]
    return WarmupSweepResult(runs, base_lr, max_train_steps, steps)
