"""Quasi-random search: scrambled Halton from scipy, seeded, mapped by prob_to_value, resumable."""

import math
import warnings

import keras_tuner as kt
import numpy as np
import pytest
from conftest import four_dim_space
from conftest import run_oracle
from scipy.stats import qmc

import kplaybook as kp
from kplaybook.oracles.sampling import DEFAULT_SKIP
from kplaybook.oracles.sampling import SPARE_DIMENSIONS

Oracle = kp.oracles.QuasiRandomSearchOracle


def expected_halton_values(space, seed, n, skip=DEFAULT_SKIP):
    engine = qmc.Halton(d=len(space.space), scramble=True, seed=seed)
    engine.fast_forward(skip)
    points = engine.random(n)
    return [{hp.name: hp.prob_to_value(u) for hp, u in zip(space.space, point)} for point in points]


def test_values_are_scipy_scrambled_halton_after_skip_mapped_by_prob_to_value(tmp_path):
    got = run_oracle(Oracle("val_loss", max_trials=12, seed=7), tmp_path, 12)
    expected = expected_halton_values(four_dim_space(), seed=7, n=12)
    assert len(got) == 12
    for g, e in zip(got, expected):
        assert g.keys() == e.keys()
        for name in g:
            if isinstance(e[name], float):
                assert g[name] == pytest.approx(e[name], rel=1e-12)
            else:
                assert g[name] == e[name]
    # The skipped points are really skipped: without skip the values differ.
    unskipped = expected_halton_values(four_dim_space(), seed=7, n=1, skip=0)[0]
    assert got[0]["learning_rate"] != pytest.approx(unskipped["learning_rate"])


def test_log_dimension_is_uniform_in_log_space_and_choices_get_equal_mass(tmp_path):
    hp = kt.HyperParameters()
    hp.Float("lr", 1e-4, 1.0, sampling="log")
    hp.Choice("c", ["a", "b", "c", "d"])
    got = run_oracle(Oracle("val_loss", max_trials=256, seed=1), tmp_path, 256, space=hp)
    log_lr = np.log10([v["lr"] for v in got])
    assert log_lr.min() >= -4 and log_lr.max() <= 0
    # Each decade gets a quarter of the points: uniform in log space.
    counts, _ = np.histogram(log_lr, bins=[-4, -3, -2, -1, 0])
    assert np.all(np.abs(counts - 64) <= 3), counts
    choice_counts = {c: sum(v["c"] == c for v in got) for c in "abcd"}
    assert all(abs(n - 64) <= 3 for n in choice_counts.values()), choice_counts


def test_same_seed_same_trials_different_seed_different_trials(tmp_path):
    a = run_oracle(Oracle("val_loss", max_trials=6, seed=3), tmp_path / "a", 6)
    b = run_oracle(Oracle("val_loss", max_trials=6, seed=3), tmp_path / "b", 6)
    c = run_oracle(Oracle("val_loss", max_trials=6, seed=4), tmp_path / "c", 6)
    assert a == b
    assert all(x["learning_rate"] != y["learning_rate"] for x, y in zip(a, c))


def test_seed_zero_is_a_seed(tmp_path):
    oracle = Oracle("val_loss", max_trials=4, seed=0)
    assert oracle.seed == 0  # KerasTuner's `seed or random` would replace it
    a = run_oracle(oracle, tmp_path / "a", 4)
    b = run_oracle(Oracle("val_loss", max_trials=4, seed=0), tmp_path / "b", 4)
    assert a == b
    expected = expected_halton_values(four_dim_space(), seed=0, n=4)
    assert [v["learning_rate"] for v in a] == pytest.approx([e["learning_rate"] for e in expected])
    assert oracle.get_state()["kplaybook"]["config"]["seed"] == 0


def test_reload_continues_the_sequence(tmp_path):
    uninterrupted = run_oracle(Oracle("val_loss", max_trials=10, seed=5), tmp_path / "full", 10)
    first = Oracle("val_loss", max_trials=10, seed=5)
    head = run_oracle(first, tmp_path / "split", 4)
    resumed = Oracle("val_loss", max_trials=10, seed=5)
    resumed._set_project_dir(str(tmp_path / "split"), "p")
    resumed.reload()
    resumed.verbose = 0
    assert resumed.get_state()["kplaybook"]["next_point"] == 4
    tail = []
    for _ in range(6):
        trial = resumed.create_trial("tuner0")
        tail.append(dict(trial.hyperparameters.values))
        resumed.update_trial(trial.trial_id, {"val_loss": 1.0})
        trial.status = "COMPLETED"
        resumed.end_trial(trial)
    assert head + tail == uninterrupted


def test_reload_with_another_seed_is_refused(tmp_path):
    run_oracle(Oracle("val_loss", max_trials=4, seed=5), tmp_path, 2)
    other = Oracle("val_loss", max_trials=4, seed=6)
    other._set_project_dir(str(tmp_path), "p")
    with pytest.raises(kp.StudyError, match="different settings"):
        other.reload()


def test_a_late_hyperparameter_joins_the_sequence_in_a_spare_dimension(tmp_path):
    oracle = Oracle("val_loss", max_trials=8, seed=2)
    early = run_oracle(oracle, tmp_path, 3)
    sampler = oracle.get_state()["kplaybook"]["sampler"]
    assert len(sampler["dimensions"]) == 4 and sampler["total"] == 4 + SPARE_DIMENSIONS
    late_space = four_dim_space()
    late_space.Float("weight_decay", 1e-6, 1e-2, sampling="log")
    oracle.update_space(late_space)
    with warnings.catch_warnings():
        warnings.simplefilter("error", kp.PlaybookWarning)  # quasi-random, not a fallback
        trial = oracle.create_trial("tuner0")
    later = trial.hyperparameters.values
    # The 5th dimension of the same scrambled sequence, at the 4th point; the
    # first four dimensions continue as if nothing had changed.
    engine = qmc.Halton(d=4 + SPARE_DIMENSIONS, scramble=True, seed=2)
    engine.fast_forward(DEFAULT_SKIP + 3)
    point = engine.random(1)[0]
    expected = expected_halton_values(four_dim_space(), seed=2, n=4)[3]
    assert later["learning_rate"] == pytest.approx(expected["learning_rate"])
    wd = late_space.get_config()["space"][-1]
    assert later["weight_decay"] == pytest.approx(
        kt.HyperParameters.from_config({"space": [wd], "values": {}})
        .space[0]
        .prob_to_value(point[4])
    )
    assert oracle.get_state()["kplaybook"]["sampler"]["dimensions"][-1] == "weight_decay"
    assert len(early) == 3


def test_a_late_dimension_covers_its_range_as_evenly_as_the_first_ones(tmp_path):
    """Centered L2 discrepancy of each dimension's values over the trials after the name appeared."""
    oracle = Oracle("val_loss", max_trials=72, seed=4)
    space = kt.HyperParameters()
    for name in ("x0", "x1", "x2"):
        space.Float(name, 0.0, 1.0)
    run_oracle(oracle, tmp_path, 8, space=space)  # 8 trials before "late" exists
    late = space.copy()
    late.Float("late", 0.0, 1.0)
    oracle.update_space(late)
    values = []
    for _ in range(64):
        trial = oracle.create_trial("tuner0")
        values.append(trial.hyperparameters.values)
        oracle.update_trial(trial.trial_id, {"val_loss": 1.0})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)

    def cd(name):
        return qmc.discrepancy(np.array([[v[name]] for v in values]), method="CD")

    rng = np.random.default_rng(0)
    random_cd = np.mean([qmc.discrepancy(rng.random((64, 1)), method="CD") for _ in range(50)])
    early = max(cd(name) for name in ("x0", "x1", "x2"))
    assert cd("late") <= 2 * early  # as even as the dimensions declared from the start
    assert cd("late") < random_cd / 5  # and far more even than pseudo-random values


def test_conditional_hyperparameters_get_their_own_dimension(tmp_path):
    # Documented behaviour: every conditional hyperparameter owns a Halton
    # dimension; when its condition is inactive the coordinate is unused and
    # the value is absent, so activity never shifts another dimension.
    hp = kt.HyperParameters()
    hp.Choice("optimizer", ["adam", "sgd"])
    with hp.conditional_scope("optimizer", ["adam"]):
        hp.Float("adam_lr", 1e-5, 1e-2, sampling="log")
    with hp.conditional_scope("optimizer", ["sgd"]):
        hp.Float("sgd_lr", 1e-3, 1.0, sampling="log")
    oracle = Oracle("val_loss", max_trials=16, seed=9)
    got = run_oracle(oracle, tmp_path, 16, space=hp)
    assert len(oracle.get_state()["kplaybook"]["sampler"]["dimensions"]) == 3
    engine = qmc.Halton(d=3, scramble=True, seed=9)
    engine.fast_forward(DEFAULT_SKIP)
    points = engine.random(16)
    adam_lr = hp._hps["adam_lr"][0]
    sgd_lr = hp._hps["sgd_lr"][0]
    for values, point in zip(got, points):
        if values["optimizer"] == "adam":
            assert "sgd_lr" not in values
            assert values["adam_lr"] == pytest.approx(adam_lr.prob_to_value(point[1]))
        else:
            assert "adam_lr" not in values
            assert values["sgd_lr"] == pytest.approx(sgd_lr.prob_to_value(point[2]))
    assert {v["optimizer"] for v in got} == {"adam", "sgd"}


def test_quasi_random_covers_better_than_random_search(tmp_path):
    hp = kt.HyperParameters()
    for i in range(4):
        hp.Float(f"x{i}", 0.0, 1.0)
    ours, theirs = [], []
    for seed in range(1, 6):
        q = run_oracle(
            Oracle("val_loss", max_trials=32, seed=seed), tmp_path / f"q{seed}", 32, space=hp
        )
        r = run_oracle(
            kt.oracles.RandomSearchOracle("val_loss", max_trials=32, seed=seed),
            tmp_path / f"r{seed}",
            32,
            space=hp,
        )
        ours.append(qmc.discrepancy(np.array([[v[f"x{i}"] for i in range(4)] for v in q])))
        theirs.append(qmc.discrepancy(np.array([[v[f"x{i}"] for i in range(4)] for v in r])))
    assert np.mean(ours) < 0.6 * np.mean(theirs)


def test_quasi_random_search_tuner_runs_like_random_search(tmp_path, digits):
    (x, y), (xv, yv) = digits
    from conftest import mlp_build

    with warnings.catch_warnings():
        warnings.simplefilter("error", kp.PlaybookWarning)
        tuner = kp.QuasiRandomSearch(
            mlp_build,
            objective="val_loss",
            max_trials=3,
            seed=0,
            directory=str(tmp_path),
            project_name="qr",
        )
    tuner.search(x, y, validation_data=(xv, yv), epochs=2, verbose=0)
    frame = tuner.study().to_dataframe()
    assert list(frame["status"]) == ["completed"] * 3
    best = tuner.get_best_hyperparameters()[0].values
    assert best["learning_rate"] == frame.loc[frame["objective"].idxmin(), "learning_rate"]
    assert all(math.isfinite(v) for v in frame["objective"])
