"""Seed replicates: re-train a study's best trials with new seeds.

A study's best trial is the maximum of many noisy trials, so its objective is
optimistic; the playbook asks to re-run the best trials with several seeds
before adopting a change ("Determining whether to adopt a training pipeline
change or hyperparameter configuration",
https://github.com/google-research/tuning_playbook#determining-whether-to-adopt-a-training-pipeline-change-or-hyperparameter-configuration).
`run_replicates` does that and records each run in ``replicates.json`` as
soon as it finishes, so an interrupted call resumes where it stopped.
"""

import copy

import keras
from keras_tuner.engine import hyperparameters as hp_module
from keras_tuner.src.engine import hypermodel as hm_module

from kplaybook.distribute.strategy import StrategyWrapper
from kplaybook.errors import StudyError
from kplaybook.records import replicates as replicates_file
from kplaybook.records.files import finite_list
from kplaybook.training import runner

#: The fit arguments that change what a replicate measures; runs with others are not pooled.
_SIGNATURE_KEYS = ("epochs", "batch_size", "steps_per_epoch", "initial_epoch")


def seed_list(seeds):
    """`seeds` as a list: an int n means seeds 1..n (0 stays free for the user); a list is kept."""
    if isinstance(seeds, bool):
        raise ValueError(f"seeds must be a positive int or a list of ints, got {seeds!r}.")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be a positive int or a list of ints, got {seeds!r}.")
        return list(range(1, seeds + 1))
    values = list(seeds)
    if not values or not all(isinstance(s, int) and not isinstance(s, bool) for s in values):
        raise ValueError(f"seeds must be a positive int or a list of ints, got {seeds!r}.")
    if len(set(values)) != len(values):
        raise ValueError(f"seeds must not repeat, got {seeds!r}.")
    return values


def fit_signature(fit_kwargs):
    """The fit arguments that must match for replicates to be pooled (a JSON-safe dict)."""
    return {k: fit_kwargs[k] for k in _SIGNATURE_KEYS if fit_kwargs.get(k) is not None}


@runner.collections_of_new_objects_only()
def run_replicates(
    study,
    top_k=1,
    seeds=5,
    hypermodel=None,
    fit_args=(),
    fit_kwargs=None,
    distribution_strategy=None,
):
    """Re-train the `top_k` best trials of each scientific value with each seed; see `Study.replicate`.

    Args:
        study: a `StudyReader` (a `kp.Study`).
        top_k, seeds, hypermodel, fit_args, fit_kwargs, distribution_strategy:
            as for `kp.Study.replicate`.

    Returns:
        The number of runs trained by this call.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}.")
    seeds = seed_list(seeds)
    if hypermodel is None:
        raise ValueError(
            f"Study {study.name!r} was loaded from disk without its model code; pass "
            "hypermodel= and the fit arguments (x=..., validation_data=..., epochs=...), "
            "or call replicate() on tuner.study() after tuner.search()."
        )
    hypermodel = hm_module.get_hypermodel(hypermodel)
    fit_kwargs = dict(fit_kwargs or {})
    user_callbacks = fit_kwargs.pop("callbacks", None) or []
    path = study.layout.replicates_file
    runs = study.replicate_runs()
    signature = fit_signature(fit_kwargs)
    for run in runs:
        if run.get("fit", signature) != signature:
            raise StudyError(
                f"{path} holds replicates trained with {run['fit']}, not {signature}; "
                "pass the same fit arguments to add seeds, or delete the file to start over."
            )
    done = {(str(r["trial_id"]), r["seed"]) for r in runs}
    trained = 0
    for cell in range(len(study.cells)):
        for trial_id in study.ranked(cell)[:top_k]:
            for seed in seeds:
                if (trial_id, seed) in done:
                    continue
                record = train_replicate(
                    study,
                    trial_id,
                    seed,
                    hypermodel,
                    fit_args,
                    fit_kwargs,
                    user_callbacks,
                    distribution_strategy,
                )
                record.update(cell=cell, scientific=dict(study.cells[cell]), fit=signature)
                runs.append(record)
                replicates_file.write_runs(path, runs)  # after every run: a kill keeps the rest
                trained += 1
    return trained


def train_replicate(
    study,
    trial_id,
    seed,
    hypermodel,
    fit_args=(),
    fit_kwargs=None,
    user_callbacks=(),
    strategy=None,
):
    """Trains trial `trial_id`'s configuration once with `seed`; returns the run's record (a dict)."""
    fit_kwargs = dict(fit_kwargs or {})
    hp = hp_module.HyperParameters.from_config(study.space_config)
    hp.values = dict(study.trial(trial_id).values)
    runner.fresh_session()
    keras.utils.set_random_seed(seed)
    recording = runner.Recording()
    callbacks = recording.callbacks(copy.deepcopy(list(user_callbacks)))
    results = error = None
    try:
        if strategy is not None:
            wrapper = StrategyWrapper(strategy)
            with wrapper.scope():
                model = hypermodel.build(hp)
            # As in the search: batch norm synchronised across replicas.
            model = wrapper.prepare(model)
        else:
            model = hypermodel.build(hp)
        results = hypermodel.fit(hp, model, *fit_args, callbacks=callbacks, **fit_kwargs)
    except Exception as e:  # noqa: BLE001 - sorted into infeasible / real below
        if runner.reason_for_exception(e) is None:
            raise
        error = e
    try:
        outcome = runner.judge(
            [recording],
            study.objective,
            study.direction,
            results,
            error,
            source="HyperModel.fit()",
        )
    except ValueError as e:
        raise ValueError(
            f"Replicating trial {trial_id!r}: {e} Pass the same validation data as the search."
        ) from None
    curves = {"epoch": [epoch for epoch, _ in outcome.reports]}
    for _, logs in outcome.reports:
        for name in logs:
            curves.setdefault(name, None)
    for name in list(curves)[1:]:
        curves[name] = finite_list([logs.get(name, float("nan")) for _, logs in outcome.reports])
    return {
        "trial_id": str(study.trial(trial_id).trial_id),
        "seed": seed,
        "status": "completed" if outcome.reason is None else "infeasible",
        "infeasible_reason": outcome.reason,
        "objective": outcome.score,
        "best_step": outcome.best_step,
        "curves": curves,
    }
