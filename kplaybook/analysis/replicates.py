"""Seed replicates: re-train a study's best trials with new seeds (PLAYBOOK.md 36).

A study's best trial is the maximum of many noisy trials, so its objective is
optimistic; the playbook asks to re-run the best trials with several seeds
before adopting a change. `run_replicates` does that and appends each run to
``replicates.json`` in the study directory, so the isolation plot, the
report and `kp.compare` can show mean ± std, and an interrupted call resumes
where it stopped.
"""

import copy
import json
import math
import os

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
from keras_tuner.src.engine import hypermodel as hm_module
from keras_tuner.src.engine import tuner_utils

from kplaybook import infeasibility
from kplaybook.analysis._prepared import prepare
from kplaybook.errors import StudyError

REPLICATES_FILE = "replicates.json"

_COLUMNS = ["cell", "trial_id", "seed", "status", "infeasible_reason", "objective", "best_step"]


def read_replicates(study):
    """The replicate runs recorded for `study`: one row per run.

    Columns: `cell` (index of the scientific value in the study's cells),
    the scientific hyperparameters, `trial_id` (the replicated trial),
    `seed`, `status` ("completed" or "infeasible"), `infeasible_reason`,
    `objective` (the run's best objective over its epochs) and `best_step`.
    An empty frame when no replicate was run.
    """
    path = os.path.join(study.directory, REPLICATES_FILE)
    runs = _load(path)
    names = list(study.scientific)
    frame = pd.DataFrame(
        [{**{n: r["scientific"].get(n) for n in names}, **r} for r in runs],
        columns=names + _COLUMNS,
    )
    frame["objective"] = pd.to_numeric(frame["objective"], errors="coerce").astype(float)
    return frame


def replicate_curves(study, trial_id, seed):
    """Per-epoch metrics of one replicate run (index `epoch`), like `Study.curves`."""
    for run in _load(os.path.join(study.directory, REPLICATES_FILE)):
        if str(run["trial_id"]) == str(trial_id) and run["seed"] == seed:
            curves = dict(run["curves"])
            epochs = curves.pop("epoch")
            return pd.DataFrame(curves, index=pd.Index(epochs, name="epoch"), dtype=float)
    raise KeyError(f"No replicate of trial {trial_id!r} with seed {seed!r} was recorded.")


_RUN_KEYS = {
    "trial_id": str,
    "seed": int,
    "status": str,
    "cell": int,
    "scientific": dict,
    "curves": dict,
}


def _load(path):
    if not os.path.exists(path):
        return []
    try:
        with open(path) as f:
            data = json.load(f)
        runs = data["runs"]
        if not isinstance(runs, list):
            raise TypeError("'runs' is not a list")
        for run in runs:
            if not isinstance(run, dict):
                raise TypeError(f"a run is {type(run).__name__}, not an object")
            for key, kind in _RUN_KEYS.items():
                if not isinstance(run.get(key), kind):
                    raise TypeError(f"a run's {key!r} is missing or not {kind.__name__}")
            if not isinstance(run.get("objective"), (int, float, type(None))):
                raise TypeError("a run's 'objective' is not a number")
        return runs
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StudyError(
            f"{path} cannot be read ({e}); delete it to drop the recorded replicates."
        ) from None


def _save(path, runs):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"runs": runs}, f, indent=1)
    os.replace(tmp, path)


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


#: The fit arguments that change what a replicate measures; runs with others are not pooled.
_SIGNATURE_KEYS = ("epochs", "batch_size", "steps_per_epoch", "initial_epoch")


def fit_signature(fit_kwargs):
    """The fit arguments that must match for replicates to be pooled (a JSON-safe dict)."""
    return {k: fit_kwargs[k] for k in _SIGNATURE_KEYS if fit_kwargs.get(k) is not None}


def run_replicates(
    study,
    top_k=1,
    seeds=5,
    hypermodel=None,
    fit_args=(),
    fit_kwargs=None,
    distribution_strategy=None,
):
    """Re-train the `top_k` best trials of each scientific value with each seed; see `Study.replicate`."""
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
    p = prepare(study)
    objective, sign = p.objective, p.sign
    path = os.path.join(study.directory, REPLICATES_FILE)
    runs = _load(path)
    signature = fit_signature(fit_kwargs)
    for run in runs:
        if run.get("fit", signature) != signature:
            raise StudyError(
                f"{path} holds replicates trained with {run['fit']}, not {signature}; "
                "pass the same fit arguments to add seeds, or delete the file to start over."
            )
    done = {(str(r["trial_id"]), r["seed"]) for r in runs}
    for cell in range(len(p.cells)):
        rows = np.flatnonzero((p.cell_index == cell) & p.completed & np.isfinite(p.loss))
        rows = rows[np.argsort(p.loss[rows], kind="stable")][:top_k]
        for row in rows:
            trial_id = p.trial_id(row)
            for seed in seeds:
                if (str(trial_id), seed) in done:
                    continue
                record = _train_once(
                    study,
                    trial_id,
                    seed,
                    hypermodel,
                    fit_args,
                    fit_kwargs,
                    user_callbacks,
                    distribution_strategy,
                    objective,
                    sign,
                )
                record.update(cell=cell, scientific=dict(p.cells[cell]), fit=signature)
                runs.append(record)
                _save(path, runs)  # after every run: an interrupted call keeps its work
    return read_replicates(study)


def _train_once(
    study,
    trial_id,
    seed,
    hypermodel,
    fit_args,
    fit_kwargs,
    user_callbacks,
    strategy,
    objective,
    sign,
):
    from kplaybook.callbacks import DivergenceMonitor
    from kplaybook.tuners.study_tuner import EpochLog

    hp = study._trial(trial_id).hyperparameters.copy()
    policy = keras.config.dtype_policy()  # clear_session() resets it to float32
    keras.backend.clear_session()
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(seed)
    log = EpochLog()
    callbacks = [*copy.deepcopy(user_callbacks), log]
    reason = None
    try:
        if strategy is not None:
            from kplaybook.distribute.strategy import StrategyWrapper

            wrapper = StrategyWrapper(strategy)
            with wrapper.scope():
                model = hypermodel.build(hp)
            # As in the search: batch norm synchronised across replicas.
            model = wrapper.prepare(model)
        else:
            model = hypermodel.build(hp)
        results = hypermodel.fit(hp, model, *fit_args, callbacks=callbacks, **fit_kwargs)
    except Exception as e:  # noqa: BLE001 - sorted into infeasible / real below
        reason = infeasibility.reason_for_exception(e)
        if reason is None:
            raise
        results = None
    if not log.epochs and results is not None:
        # A HyperModel.fit() that does not call callbacks: one report, as the tuner does.
        kt_objective = kt.Objective(objective, "min" if sign > 0 else "max")
        metrics = tuner_utils.convert_to_metrics_dict(results, kt_objective)
        log.epochs.append((tuner_utils.get_best_step(results, kt_objective) or 0, metrics))
    values = [float(logs.get(objective, math.nan)) for _, logs in log.epochs]
    if reason is None and log.nonfinite:
        reason = infeasibility.NAN_LOSS
    # As in the search: a DivergenceMonitor's stop is "diverged", even with a NaN loss.
    if reason in (None, infeasibility.NAN_LOSS) and any(
        isinstance(cb, DivergenceMonitor) and cb.diverged for cb in callbacks
    ):
        reason = infeasibility.DIVERGED
    finite = [i for i, v in enumerate(values) if math.isfinite(v)]
    if reason is None and not finite:
        if not log.epochs or objective not in log.epochs[0][1]:
            raise ValueError(
                f"The objective {objective!r} was not logged while replicating trial "
                f"{trial_id!r}; pass the same validation data as the search."
            )
        reason = infeasibility.NAN_LOSS
    best = min(finite, key=lambda i: sign * values[i]) if finite and reason is None else None
    curves = {"epoch": [epoch for epoch, _ in log.epochs]}
    for _, logs in log.epochs:
        for name in logs:
            curves.setdefault(name, [])
    for name in list(curves)[1:]:
        curves[name] = [_finite_or_none(logs.get(name)) for _, logs in log.epochs]
    return {
        "trial_id": str(trial_id),
        "seed": seed,
        "status": "completed" if reason is None else "infeasible",
        "infeasible_reason": reason,
        "objective": values[best] if best is not None else None,
        "best_step": log.epochs[best][0] if best is not None else None,
        "curves": curves,
    }


def _finite_or_none(value):
    return value if value is not None and math.isfinite(value) else None
