"""`QuasiRandomSearch`: KerasTuner's RandomSearch, with a scrambled Halton sequence."""

from kplaybook.oracles.base import DEFAULT_HEARTBEAT_TIMEOUT
from kplaybook.oracles.quasi_random import QuasiRandomSearchOracle
from kplaybook.oracles.sampling import DEFAULT_SKIP
from kplaybook.tuners.study_tuner import StudyTuner


class QuasiRandomSearch(StudyTuner):
    """Quasi-random search tuner, usable like `keras_tuner.RandomSearch`.

    Samples with `kp.oracles.QuasiRandomSearchOracle` (scrambled Halton,
    seeded, reproducible) and, like every kplaybook tuner, records every
    epoch of every trial and records infeasible trials instead of failing.
    For studies with scientific hyperparameters use `kp.PlaybookTuner`.

    Args:
        hypermodel: a `keras_tuner.HyperModel` or a `build(hp)` callable.
        objective: str or `keras_tuner.Objective` (default "val_loss", as
            `kp.PlaybookTuner`; a `run_trial` or `HyperModel.fit` that returns a
            float is scored by that float whatever the name).
        max_trials: int, number of trials.
        seed: int or None; 0 is a seed.
        hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: as for
            `keras_tuner.RandomSearch`.
        skip: int, initial Halton points skipped.
        heartbeat_timeout: as for `kp.PlaybookTuner`.
        **kwargs: passed to `keras_tuner.Tuner` (`directory`,
            `project_name`, `overwrite`, `executions_per_trial`, ...).

    Example:

    ```python
    tuner = kp.QuasiRandomSearch(build, objective="val_loss", max_trials=20,
                                 seed=0, directory="runs", project_name="qr")
    tuner.search(x, y, validation_data=(xv, yv), epochs=5)
    ```
    """

    def __init__(
        self,
        hypermodel=None,
        objective="val_loss",
        max_trials=10,
        seed=None,
        hyperparameters=None,
        tune_new_entries=True,
        allow_new_entries=True,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=3,
        skip=DEFAULT_SKIP,
        heartbeat_timeout=DEFAULT_HEARTBEAT_TIMEOUT,
        **kwargs,
    ):
        oracle = QuasiRandomSearchOracle(
            objective=objective,
            max_trials=max_trials,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            skip=skip,
            heartbeat_timeout=heartbeat_timeout,
        )
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
