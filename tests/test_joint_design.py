"""design="joint": scientific hyperparameters as dimensions of one search, binned for the analysis."""

import collections

import keras
import keras_tuner as kt
import numpy as np
import pytest
from conftest import run_oracle

import kplaybook as kp
from kplaybook.analysis import plot_data

WIDTHS = [16, 32, 64, 128, 256, 512]


def space():
    hp = kt.HyperParameters()
    hp.Choice("width", WIDTHS)
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    hp.Float("dropout", 0.0, 0.5)
    return hp


def test_the_scientific_dimension_is_covered_as_evenly_as_the_nuisance_ones(tmp_path):
    oracle = kp.oracles.JointStudyOracle(
        "val_loss", scientific={"width": WIDTHS}, max_trials=60, seed=0
    )
    values = run_oracle(oracle, tmp_path, 60, space=space())
    assert len(values) == 60
    counts = collections.Counter(v["width"] for v in values)
    # 60 trials over 6 values: 10 each, within 1 (a Halton dimension's equal bins).
    assert set(counts) == set(WIDTHS) and max(abs(n - 10) for n in counts.values()) <= 1, counts
    dropout = np.histogram([v["dropout"] for v in values], bins=6, range=(0, 0.5))[0]
    assert max(abs(n - 10) for n in dropout) <= 1, dropout
    cells = oracle.get_state()["kplaybook"]["cells"]
    assert cells == [{"width": w} for w in WIDTHS]


def test_a_scientific_range_is_searched_on_its_scale_and_binned(tmp_path):
    hp = kt.HyperParameters()
    hp.Float("weight_decay", 1e-6, 1e-1, sampling="log")
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    oracle = kp.oracles.JointStudyOracle(
        "val_loss", scientific={"weight_decay": (1e-5, 1e-2)}, max_trials=40, seed=1
    )
    values = run_oracle(oracle, tmp_path, 40, space=hp)
    decay = np.array([v["weight_decay"] for v in values])
    assert decay.min() >= 1e-5 and decay.max() <= 1e-2
    # Log-uniform: a quarter of the trials per decade-and-a-quarter bin.
    cells = oracle.get_state()["kplaybook"]["cells"]
    assert len(cells) == 4
    for cell in cells:
        low, high = cell["weight_decay"]
        assert high / low == pytest.approx(10**0.75, rel=1e-6)
        assert abs(np.sum((decay >= low) & (decay <= high)) - 10) <= 1


def test_a_range_outside_the_declaration_is_refused(tmp_path):
    hp = kt.HyperParameters()
    hp.Float("weight_decay", 1e-6, 1e-3, sampling="log")
    oracle = kp.oracles.JointStudyOracle(
        "val_loss", scientific={"weight_decay": (1e-5, 1e-2)}, max_trials=4, seed=1
    )
    with pytest.raises(kp.RoleError, match=r"range \(1e-05, 0.01\) is outside its declaration"):
        run_oracle(oracle, tmp_path, 1, space=hp)


def test_the_joint_budget_is_max_trials_and_nested_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="design='joint' takes its whole budget from max_trials"):
        kp.PlaybookTuner(
            lambda hp: None, scientific={"width": WIDTHS}, design="joint", directory=str(tmp_path)
        )
    with pytest.raises(ValueError, match="max_trials is a joint study's budget"):
        kp.PlaybookTuner(
            lambda hp: None, scientific={"width": WIDTHS}, max_trials=10, directory=str(tmp_path)
        )


def build(hp):
    decay = hp.Float("weight_decay", 1e-6, 1e-1, sampling="log")
    model = keras.Sequential([keras.Input((64,))])
    model.add(
        keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(decay))
    )
    model.add(keras.layers.Dense(10, activation="softmax"))
    lr = hp.Float("learning_rate", 1e-3, 3e-2, sampling="log")
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    return model


def test_a_joint_study_trains_resumes_and_its_analysis_is_binned(tmp_path, digits):
    (x, y), (xv, yv) = digits

    def tuner(max_trials):
        return kp.PlaybookTuner(
            build,
            scientific={"weight_decay": (1e-5, 1e-2)},
            design="joint",
            max_trials=max_trials,
            seed=0,
            directory=str(tmp_path),
            project_name="joint",
        )

    tuner(4).search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    first = [r.values for r in kp.Study.load(tmp_path / "joint").trials()]
    tuner(8).search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)  # resumes, adds 4
    study = kp.Study.load(tmp_path / "joint")
    assert len(study.trial_ids) == 8 and [r.values for r in study.trials()][:4] == first
    # The same 8 points as an uninterrupted study of 8 (nothing trains: the oracle alone).
    oracle = kp.oracles.JointStudyOracle(
        "val_loss", scientific={"weight_decay": (1e-5, 1e-2)}, max_trials=8, seed=0
    )
    hp = kt.HyperParameters()
    build(hp)
    planned = run_oracle(oracle, tmp_path / "plan", 8, space=hp)
    for got, want in zip((r.values for r in study.trials()), planned):
        assert got == pytest.approx(want, rel=1e-12)
    best = study.best_per_scientific()
    assert len(best) == 4 and best["weight_decay"].str.startswith("[").all()
    assert best["trials"].sum() == 8
    data = plot_data.isolation_plot_data(study)
    assert data.numeric  # the bins at their centres on a numeric axis
    assert np.all(np.diff(data.x) > 0) and data.x[0] > 1e-5 and data.x[-1] < 1e-2
    codes = {f.code for f in study.check()}
    assert "joint_design" in codes
