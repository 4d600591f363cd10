"""`PlaybookTuner`: a nested study per scientific value, run by KerasTuner."""

from kplaybook import validation
from kplaybook.oracles.base import DEFAULT_HEARTBEAT_TIMEOUT
from kplaybook.oracles.joint import JointStudyOracle
from kplaybook.oracles.nested import NestedStudyOracle
from kplaybook.oracles.sampling import DEFAULT_SKIP
from kplaybook.tuners.study_tuner import StudyTuner

#: How the scientific values share the budget (see the class docstring).
DESIGNS = ("nested", "joint")


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
        search: "quasi_random" (exploration), "random", "bayesian" (the
            feasibility-aware Bayesian search of `kplaybook.oracles.bayesian`:
            expected improvement times the probability of not diverging,
            after `num_initial_points` quasi-random trials) or "bayesian_kt"
            (KerasTuner's Gaussian process, the baseline).
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
        design: "nested" (the default: one nuisance study of
            `trials_per_study` trials per scientific value) or "joint": the
            scientific hyperparameters join the search as dimensions, for
            when there are too many values for a study each; `max_trials` is
            then the whole budget, and a scientific hyperparameter may be a
            numeric range, ``(low, high)`` or None for the range `build(hp)`
            declares (the analysis bins it).
        max_trials: int, the budget of a joint study.
        warm_start: for `search="bayesian"`, earlier studies (`kp.Study` or
            directories) whose trials the Bayesian search starts from; their
            fixed values must equal `fixed` (else a one-sentence error).
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
        design="nested",
        max_trials=None,
        warm_start=None,
        **kwargs,
    ):
        validation.one_of(design, "design", DESIGNS)
        common = dict(
            objective=objective,
            fixed=fixed,
            search=search,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            num_initial_points=num_initial_points,
            skip=skip,
            warm_start=warm_start,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            heartbeat_timeout=heartbeat_timeout,
        )
        if design == "joint":
            if max_trials is None:
                raise ValueError(
                    "design='joint' takes its whole budget from max_trials; pass max_trials= "
                    "(trials_per_study is the nested design's)."
                )
            if paired is not True:
                raise ValueError("paired applies to design='nested' only; drop it.")
            oracle = JointStudyOracle(scientific=scientific, max_trials=max_trials, **common)
        else:
            if max_trials is not None:
                raise ValueError(
                    "max_trials is a joint study's budget; a nested study gets trials_per_study "
                    "trials per scientific value (or pass design='joint')."
                )
            oracle = NestedStudyOracle(
                scientific=scientific, trials_per_study=trials_per_study, paired=paired, **common
            )
        super().__init__(
            oracle=oracle,
            hypermodel=hypermodel,
            directory=directory,
            project_name=project_name,
            overwrite=overwrite,
            **kwargs,
        )
