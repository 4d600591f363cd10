"""Nested studies: equal budgets, round-robin, paired points, Bayesian within each value."""

import itertools
import math

import keras_tuner as kt
import numpy as np
import pytest
from conftest import four_dim_space
from conftest import run_oracle

import kplaybook as kp
from kplaybook.oracles.sampling import DEFAULT_SKIP
from kplaybook.oracles.sampling import QuasiRandomSampler

Nested = kp.oracles.NestedStudyOracle
ACTIVATIONS = ["relu", "tanh", "gelu"]
NUISANCE = ["learning_rate", "dropout", "units"]


def nuisance(values):
    return tuple(values[name] for name in NUISANCE)


def test_exactly_trials_per_study_per_value_round_robin(tmp_path):
    oracle = Nested("val_loss", scientific={"activation": ACTIVATIONS}, trials_per_study=4, seed=1)
    got = run_oracle(oracle, tmp_path, 20)  # asks for more than the 12 planned
    assert len(got) == 12
    assert [v["activation"] for v in got] == ACTIVATIONS * 4
    assert oracle.create_trial("tuner0").status == "STOPPED"


def test_a_study_stopped_early_is_balanced(tmp_path):
    got = run_oracle(
        Nested("val_loss", scientific={"activation": ACTIVATIONS}, trials_per_study=5, seed=1),
        tmp_path,
        7,
    )
    counts = [sum(v["activation"] == a for v in got) for a in ACTIVATIONS]
    assert max(counts) - min(counts) <= 1


def test_paired_values_share_nuisance_points_from_one_halton_sequence(tmp_path):
    got = run_oracle(
        Nested("val_loss", scientific={"activation": ACTIVATIONS}, trials_per_study=3, seed=4),
        tmp_path,
        9,
    )
    space = four_dim_space()
    sampler = QuasiRandomSampler(4, DEFAULT_SKIP)
    for point in range(3):
        block = got[3 * point : 3 * point + 3]
        assert len({nuisance(v) for v in block}) == 1
        expected = sampler.values(space, point, {"activation": "relu"})
        assert block[0]["learning_rate"] == pytest.approx(expected["learning_rate"])
    assert len({nuisance(v) for v in got}) == 3


def test_unpaired_values_get_their_own_points(tmp_path):
    got = run_oracle(
        Nested(
            "val_loss",
            scientific={"activation": ACTIVATIONS},
            trials_per_study=3,
            seed=4,
            paired=False,
        ),
        tmp_path,
        9,
    )
    assert len({nuisance(v) for v in got}) == 9


def test_several_scientific_names_form_the_cartesian_product(tmp_path):
    space = four_dim_space()
    space.Int("layers", 1, 4)
    oracle = Nested(
        "val_loss",
        scientific={"layers": [1, 2], "activation": ["relu", "gelu"]},
        trials_per_study=2,
        seed=0,
    )
    got = run_oracle(oracle, tmp_path, 10, space=space)
    combos = [(v["layers"], v["activation"]) for v in got]
    assert len(got) == 8
    assert sorted(set(combos)) == sorted(itertools.product([1, 2], ["relu", "gelu"]))
    assert all(combos.count(c) == 2 for c in set(combos))


def test_fixed_values_are_registered_as_hp_fixed(tmp_path):
    oracle = Nested(
        "val_loss",
        scientific={"activation": ["relu", "tanh"]},
        fixed={"dropout": 0.25},
        trials_per_study=2,
        seed=0,
    )
    got = run_oracle(oracle, tmp_path, 4)
    fixed = [hp for hp in oracle.hyperparameters.space if hp.name == "dropout"]
    assert isinstance(fixed[0], kt.engine.hyperparameters.Fixed)
    assert all(v["dropout"] == 0.25 for v in got)
    assert oracle.nuisance_names() == ["learning_rate", "units"]


def bowl(values):
    # Best learning rate 1e-3; units and dropout matter a little.
    return (math.log10(values["learning_rate"]) + 3.0) ** 2 + 0.1 * values["dropout"]


def per_value_bowl(values):
    # Each scientific value has its own best learning rate: 1e-4 (relu), 1e-2 (tanh).
    best = {"relu": -4.0, "tanh": -2.0}[values["activation"]]
    return (math.log10(values["learning_rate"]) - best) ** 2


@pytest.mark.slow
def test_bayesian_searches_nuisance_dims_within_each_scientific_value(tmp_path):
    oracle = Nested(
        "val_loss",
        scientific={"activation": ["relu", "tanh"]},
        trials_per_study=7,
        search="bayesian",
        num_initial_points=4,
        seed=3,
    )
    got = run_oracle(oracle, tmp_path, 14, score=per_value_bowl)
    assert [v["activation"] for v in got] == ["relu", "tanh"] * 7
    initial, proposed = got[:8], got[8:]
    # The first points per value are the paired quasi-random ones...
    quasi = QuasiRandomSampler(3, DEFAULT_SKIP)
    space = four_dim_space()
    for point in range(4):
        expected = quasi.values(space, point, {"activation": "relu"})
        assert nuisance(initial[2 * point]) == nuisance(initial[2 * point + 1])
        assert initial[2 * point]["learning_rate"] == pytest.approx(expected["learning_rate"])
    # ...then a Gaussian process fitted to each value's own trials proposes
    # its nuisance values: relu's proposals head for 1e-4, tanh's for 1e-2.
    relu = [math.log10(v["learning_rate"]) for v in proposed if v["activation"] == "relu"]
    tanh = [math.log10(v["learning_rate"]) for v in proposed if v["activation"] == "tanh"]
    assert np.mean(relu) < np.mean(tanh)
    assert all(nuisance(a) != nuisance(b) for a, b in zip(proposed[::2], proposed[1::2]))


def test_bayesian_ignores_infeasible_trials_instead_of_inventing_a_loss(tmp_path):
    from kplaybook.records import markers

    oracle = Nested(
        "val_loss",
        scientific={"activation": ["relu"]},
        trials_per_study=6,
        search="bayesian",
        num_initial_points=3,
        seed=3,
    )
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.verbose = 0
    oracle.update_space(four_dim_space())
    for i in range(6):
        trial = oracle.create_trial("tuner0")
        if i == 1:
            oracle.update_trial(
                trial.trial_id, {"val_loss": float("nan"), markers.marker("oom"): 1.0}
            )
            trial.status = "FAILED"
        else:
            oracle.update_trial(trial.trial_id, {"val_loss": bowl(trial.hyperparameters.values)})
            trial.status = "COMPLETED"
        oracle.end_trial(trial)
        oracle.save()
    assert len(oracle.trials) == 6
    assert markers.reason_in(oracle.trials["1"].metrics.metrics) == "oom"
    # The Gaussian process saw only the feasible trials: the data KerasTuner's
    # GP oracle is fitted to excludes the infeasible one (no invented loss).
    from keras_tuner.oracles import BayesianOptimizationOracle

    gp = BayesianOptimizationOracle(
        "val_loss", num_initial_points=3, seed=1, hyperparameters=oracle.hyperparameters
    )
    gp.trials = dict(oracle.trials)
    x, y = gp._vectorize_trials()
    assert len(y) == 5 and np.all(np.isfinite(y))
    study = kp.Study.load(tmp_path / "p")
    assert study.status_counts() == {"completed": 5, "infeasible": 1, "failed": 0, "running": 0}


def test_resume_must_use_the_same_roles_but_may_add_trials(tmp_path):
    run_oracle(
        Nested("val_loss", scientific={"activation": ["relu", "tanh"]}, trials_per_study=2, seed=1),
        tmp_path,
        4,
    )
    other = Nested("val_loss", scientific={"activation": ["relu"]}, trials_per_study=2, seed=1)
    other._set_project_dir(str(tmp_path), "p")
    with pytest.raises(kp.StudyError, match="scientific"):
        other.reload()
    more = Nested(
        "val_loss", scientific={"activation": ["relu", "tanh"]}, trials_per_study=3, seed=1
    )
    more._set_project_dir(str(tmp_path), "p")
    more.reload()
    more.verbose = 0
    extra = [more.create_trial(f"tuner{i}") for i in range(3)]
    assert [t.hyperparameters.values["activation"] for t in extra[:2]] == ["relu", "tanh"]
    assert extra[2].status == "STOPPED"
