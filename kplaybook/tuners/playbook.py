"""`PlaybookTuner`: a nested study per scientific value, run by KerasTuner."""

from kplaybook.oracles.base import DEFAULT_HEARTBEAT_TIMEOUT
from kplaybook.oracles.nested import NestedStudyOracle
from kplaybook.oracles.sampling import DEFAULT_SKIP
from kplaybook.tuners.study_tuner import StudyTuner


class PlaybookTuner(StudyTuner):
    """Tunes a Keras model the way the Deep Learning Tuning Playbook says.

    For one experimental goal, name the *scientific* hyperparameters (whose
    effect you measure) and the *fixed* ones; every other hyperparameter your
    `build(hp)` declares is a *nuisance* hyperparameter. Each scientific value
    (each combination, for several names) gets its own nuisance search of
    `trials_per_study` trials, quasi-random by default, scheduled round-robin
    so that an interrupted study stays balanced. Every epoch of every trial is
    recorded; infeasible trials (NaN loss, out of memory, `kp.InfeasibleTrial`)
    are recorded and the study goes on. Re-running the same script resumes
    the study.

    Args:
        hypermodel: a `keras_tuner.HyperModel` or a `build(hp)` callable.
        objective: str or `keras_tuner.Objective`, e.g. "val_loss".
        scientific: dict name -> list of values to compare.
        fixed: dict name -> value, registered as `hp.Fixed`.
        trials_per_study: int, nuisance trials per scientific value.
        search: "quasi_random", "random" or "bayesian".
        seed: int or None (drawn and saved); 0 is a seed.
        directory: str, where studies are written.
        project_name: str, the study's name and folder.
        overwrite: bool, start over instead of resuming.
        paired: bool, whether every scientific value sees the same nuisance
            points (default True).
        num_initial_points: for `search="bayesian"`, quasi-random trials per
            scientific value before the Gaussian process.
        goal: optional str, the experiment's goal or notes (shown in the
            report and the spreadsheet row of `study.export()`).
        hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: as for
            KerasTuner's tuners. `hyperparameters` may leave out scientific
            and fixed names: they are registered with their roles' values.
            Real errors confined to one scientific value also stop the search
            after `max_consecutive_failed_trials` of its trials in a row.
        heartbeat_timeout: seconds without a heartbeat after which the chief
            hands a worker's trial to another worker (chief/worker mode);
            None never does.
        **kwargs: passed to `keras_tuner.Tuner` (`distribution_strategy`,
            `executions_per_trial`, `directory`, ...).

    Example:

    ```python
    import keras
    import kplaybook as kp

    def build(hp):
        model = keras.Sequential([keras.Input((64,))])
        for _ in range(hp.Int("num_layers", 1, 3)):
            model.add(keras.layers.Dense(64, activation=hp.Choice("activation", ["relu", "gelu"])))
        model.add(keras.layers.Dense(10, activation="softmax"))
        model.compile(kp.spaces.adam(hp, budget=12), "sparse_categorical_crossentropy")
        return model

    tuner = kp.PlaybookTuner(build, objective="val_loss",
                             scientific={"num_layers": [1, 2, 3]},
                             fixed={"activation": "relu"}, trials_per_study=12,
                             seed=0, directory="saved_studies", project_name="depth")
    tuner.search(x, y, validation_data=(xv, yv), epochs=5)
    print(tuner.study().best_per_scientific())
    ```
    """

    def __init__(
        self,
        hypermodel=None,
        objective="val_loss",
        scientific=None,
        fixed=None,
        trials_per_study=16,
        search="quasi_random",
        seed=None,
        directory="saved_studies",
        project_name="study",
        overwrite=False,
        paired=True,
        num_initial_points=None,
        hyperparameters=None,
        tune_new_entries=True,
        allow_new_entries=True,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=3,
        skip=DEFAULT_SKIP,
        heartbeat_timeout=DEFAULT_HEARTBEAT_TIMEOUT,
        **kwargs,
    ):
        oracle = NestedStudyOracle(
            objective=objective,
            scientific=scientific,
            fixed=fixed,
            trials_per_study=trials_per_study,
            search=search,
            seed=seed,
            paired=paired,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            num_initial_points=num_initial_points,
            skip=skip,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            heartbeat_timeout=heartbeat_timeout,
        )
        super().__init__(
            oracle=oracle,
            hypermodel=hypermodel,
            directory=directory,
            project_name=project_name,
            overwrite=overwrite,
            **kwargs,
        )
