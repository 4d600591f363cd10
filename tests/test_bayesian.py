"""search='bayesian': a model of the objective and of feasibility, warm starts, pending trials."""

import math
import time

import keras
import keras_tuner as kt
import numpy as np
import pytest

import kplaybook as kp
from kplaybook.records import markers
from kplaybook.testing import SyntheticTrial
from kplaybook.testing import write_study


def space():
    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    hp.Float("y", 0.0, 1.0)
    return hp


def bowl(v):
    """Lower is better; the optimum (0.55, 0.6) lies next to the infeasible region x + y > 1.2."""
    return (v["x"] - 0.55) ** 2 + (v["y"] - 0.6) ** 2


def feasible(v):
    return v["x"] + v["y"] < 1.2


def drive(oracle, directory, n, objective=bowl, ok=feasible):
    """Runs `n` trials of `oracle` as a tuner would, the objective computed, nothing trained."""
    oracle._set_project_dir(str(directory), "p")
    oracle.verbose = 0
    oracle.update_space(space())
    results = []
    for _ in range(n):
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        values = dict(trial.hyperparameters.values)
        if ok(values):
            oracle.update_trial(trial.trial_id, {"val_loss": objective(values)})
            trial.status = "COMPLETED"
        else:
            oracle.update_trial(
                trial.trial_id, {"val_loss": math.nan, markers.marker("nan_loss"): 1.0}
            )
            trial.status = "FAILED"
        oracle.end_trial(trial)
        results.append((values, ok(values), objective(values) if ok(values) else math.nan))
    return results


def nested(search, seed, **kwargs):
    return kp.oracles.NestedStudyOracle(
        "val_loss",
        scientific={},
        trials_per_study=22,
        search=search,
        seed=seed,
        num_initial_points=6 if search.startswith("bayesian") else None,
        **kwargs,
    )


@pytest.mark.slow
def test_lower_regret_and_fewer_infeasible_proposals_than_quasi_random_and_keras_tuners_gp(
    tmp_path,
):
    regret = {"bayesian": [], "bayesian_kt": [], "quasi_random": []}
    infeasible = {"bayesian": [], "quasi_random": []}
    for seed in (1, 2, 3):
        for search in regret:
            results = drive(nested(search, seed), tmp_path / f"{search}{seed}", 22)
            regret[search].append(min(v for _, ok, v in results if ok))
            if search in infeasible:
                infeasible[search].append(np.mean([not ok for _, ok, _ in results[6:]]))
    mean = {k: float(np.mean(v)) for k, v in regret.items()}
    assert mean["bayesian"] < mean["bayesian_kt"] and mean["bayesian"] < mean["quasi_random"], mean
    # Quasi-random spends about a third of its points on the infeasible corner.
    assert np.mean(infeasible["bayesian"]) < 0.6 * np.mean(infeasible["quasi_random"]), infeasible


def test_running_trials_are_not_proposed_again(tmp_path):
    oracle = nested("bayesian", 0)
    drive(oracle, tmp_path, 8)
    first = oracle.create_trial("worker_a")  # still running
    second = oracle.create_trial("worker_b")
    a = np.array([first.hyperparameters.values[k] for k in "xy"])
    b = np.array([second.hyperparameters.values[k] for k in "xy"])
    assert np.linalg.norm(a - b) > 0.02  # the constant liar moved the second proposal


def exploration(tmp_path, fixed_activation="relu", name="explore"):
    hp = space()
    hp.Choice("activation", ["relu", "tanh"])
    rng = np.random.default_rng(0)
    trials = []
    for _ in range(30):
        v = {"x": float(rng.random()), "y": float(rng.random()), "activation": fixed_activation}
        if feasible(v):
            trials.append(SyntheticTrial(v, {"val_loss": [1.0, bowl(v)]}))
        else:
            trials.append(SyntheticTrial(v, status="infeasible", reason="nan_loss"))
    return kp.Study.load(
        write_study(tmp_path / name, hp, trials, fixed={"activation": fixed_activation})
    )


def test_a_warm_started_search_proposes_near_the_exploration_best_from_its_first_trial(tmp_path):
    study = exploration(tmp_path)
    best = study.trial(study.best_trial_id()).values
    oracle = nested("bayesian", 0, fixed={"activation": "relu"}, warm_start=[study])
    oracle._set_project_dir(str(tmp_path), "exploit")
    oracle.update_space(space())
    first = oracle.create_trial("tuner0").hyperparameters.values
    distance = math.dist((first["x"], first["y"]), (best["x"], best["y"]))
    assert distance < 0.15, (first, best)
    assert bowl(first) < 0.02
    # Without a warm start the first point is the quasi-random sequence's.
    cold = nested("bayesian", 0, fixed={"activation": "relu"})
    cold._set_project_dir(str(tmp_path), "cold")
    cold.update_space(space())
    assert bowl(cold.create_trial("tuner0").hyperparameters.values) > bowl(first)


def test_a_study_with_other_fixed_values_is_refused_as_a_warm_start(tmp_path):
    study = exploration(tmp_path, fixed_activation="tanh")
    with pytest.raises(kp.StudyError, match=r"fixed activation='tanh', not 'relu' as here"):
        nested("bayesian", 0, fixed={"activation": "relu"}, warm_start=[study])
    with pytest.raises(ValueError, match="warm_start seeds a Bayesian search"):
        nested("quasi_random", 0, warm_start=[study])


def test_a_proposal_at_100_trials_is_fast(tmp_path):
    oracle = nested("bayesian", 0)
    oracle.trials_per_study = 101
    oracle.max_trials = 101
    drive(oracle, tmp_path, 100)
    start = time.perf_counter()
    oracle.create_trial("tuner1")
    assert time.perf_counter() - start < 3.0  # KerasTuner's GP takes about 7 s here


def diverging_build(hp):
    """Plain-SGD regression of the digit's label: it trains at small learning rates, diverges above ~0.5."""
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu")])
    model.add(keras.layers.Dense(1))
    lr = hp.Float("learning_rate", 1e-3, 100.0, sampling="log")
    momentum = hp.Float("momentum", 0.0, 0.5)
    model.compile(keras.optimizers.SGD(lr, momentum=momentum), "mse")
    return model


@pytest.mark.slow
def test_on_a_real_model_that_diverges_the_search_learns_to_avoid_the_diverging_region(
    tmp_path, digits
):
    (x, y), (xv, yv) = digits
    share = {}
    for search in ("bayesian", "quasi_random"):
        tuner = kp.PlaybookTuner(
            diverging_build,
            scientific={},
            trials_per_study=16,
            search=search,
            seed=3,
            num_initial_points=5 if search == "bayesian" else None,
            directory=str(tmp_path),
            project_name=search,
        )
        tuner.search(
            x,
            y.astype("float32"),
            validation_data=(xv, yv.astype("float32")),
            epochs=1,
            batch_size=32,
            verbose=0,
            callbacks=[kp.callbacks.DivergenceMonitor()],
        )
        statuses = [r.status for r in tuner.study().trials()]
        share[search] = np.mean([s == "infeasible" for s in statuses[5:]])
    assert share["quasi_random"] >= 0.3, share  # the diverging region is a large part of the space
    assert share["bayesian"] < 0.5 * share["quasi_random"], share
