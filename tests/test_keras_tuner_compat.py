"""KerasTuner code people already have, run by kplaybook: each KerasTuner behaviour it relies on.

The tiny MLP trains on 400 digits for 1-2 epochs; what matters is which
values trials get and how they are scored.
"""

import math
import warnings

import keras
import keras_tuner as kt
import numpy as np
import pytest

import kplaybook as kp
from kplaybook.oracles.sampling import SPARE_DIMENSIONS


def mlp(hp, units=8):
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(units, activation="relu")])
    model.add(keras.layers.Dense(10, activation="softmax"))
    lr = hp.Float("learning_rate", 1e-3, 1e-2, sampling="log")
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    return model


def playbook(tmp_path, hypermodel, name, **kwargs):
    kwargs.setdefault("trials_per_study", 2)
    kwargs.setdefault("seed", 0)
    return kp.PlaybookTuner(hypermodel, directory=str(tmp_path), project_name=name, **kwargs)


class ReturnsFloat(kt.HyperModel):
    """KerasTuner guide idiom: fit() trains with model.fit, then returns its own score."""

    def build(self, hp):
        return mlp(hp)

    def fit(self, hp, model, x, y, validation_data, **kwargs):
        model.fit(x, y, **kwargs)
        xv, yv = validation_data
        return float(model.evaluate(xv, yv, verbose=0)) + 100.0  # unmistakably its own value


class ReturnsDict(ReturnsFloat):
    def fit(self, hp, model, x, y, validation_data, **kwargs):
        model.fit(x, y, validation_data=validation_data, **kwargs)
        return {"val_loss": 7.5 + hp.get("learning_rate"), "extra": 1.0}


@pytest.mark.parametrize("hypermodel, offset", [(ReturnsFloat(), 100.0), (ReturnsDict(), 7.5)])
def test_what_fit_returns_is_the_score_even_after_model_fit(tmp_path, digits, hypermodel, offset):
    (x, y), (xv, yv) = digits
    tuner = playbook(tmp_path, hypermodel, "ret", scientific={})
    tuner.search(x, y, validation_data=(xv, yv), epochs=2, verbose=0)
    study = tuner.study()
    assert study.status_counts()["completed"] == 2
    for record in study.trials():
        assert offset <= record.score < offset + 10  # the returned value, not a logged val_loss
        assert record.epochs == 2  # the curves of the model.fit inside are kept
    best = tuner.get_best_hyperparameters()[0]  # KerasTuner's own ranking agrees
    assert best.values == study.trial(study.best_trial_id()).values


class FitDeclares(kt.HyperModel):
    """Hyperparameters declared in fit(): batch size and shuffling, as the KerasTuner guide does."""

    seen = []

    def build(self, hp):
        return mlp(hp, units=hp.Int("units", 4, 16, step=4))

    def fit(self, hp, model, *args, **kwargs):
        batch_size = hp.Choice("batch_size", [16, 32, 64])
        shuffle = hp.Boolean("shuffle")
        type(self).seen.append((batch_size, shuffle))
        return model.fit(*args, batch_size=batch_size, shuffle=shuffle, **kwargs)


def test_batch_size_declared_in_fit_can_be_fixed(tmp_path, digits):
    (x, y), (xv, yv) = digits
    FitDeclares.seen = []
    tuner = playbook(tmp_path, FitDeclares(), "fixed_bs", fixed={"batch_size": 64})
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    assert [b for b, _ in FitDeclares.seen[-2:]] == [64, 64]  # fit really trained with it
    assert all(r.values["batch_size"] == 64 for r in tuner.study().trials())


def test_batch_size_left_nuisance_in_fit_is_an_error_before_training_with_a_fix_that_works(
    tmp_path, digits
):
    (x, y), (xv, yv) = digits
    FitDeclares.seen = []
    tuner = playbook(tmp_path, FitDeclares(), "nuisance_bs")
    with pytest.raises(
        kp.RoleError, match=r"'batch_size' is a nuisance.*fixed=\{'batch_size': 64\}"
    ):
        tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    assert tuner.study().trial_ids == []  # nothing trained
    # The fix the message gives, on the same project: it resumes and runs.
    fixed = playbook(tmp_path, FitDeclares(), "nuisance_bs2", fixed={"batch_size": 64})
    fixed.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    assert fixed.study().status_counts()["completed"] == 2


def test_a_scientific_value_declared_in_fit_is_what_each_trial_runs_with(tmp_path, digits):
    (x, y), (xv, yv) = digits
    FitDeclares.seen = []
    tuner = playbook(
        tmp_path, FitDeclares(), "sci_bs", scientific={"batch_size": [16, 32]}, trials_per_study=2
    )
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    study = tuner.study()
    ran = [b for b, _ in FitDeclares.seen[-4:]]
    recorded = [study.trial(t).values["batch_size"] for t in study.trial_ids]
    assert ran == recorded == [16, 32, 16, 32]  # round-robin from the very first trial
    # shuffle, declared only in fit, was a nuisance dimension from the first trial on.
    assert "shuffle" in study.nuisance
    assert all("shuffle" in study.trial(t).values for t in study.trial_ids)


def loop_build(hp):
    model = keras.Sequential([keras.Input((64,))])
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(keras.layers.Dense(hp.Int(f"units_{i}", 4, 16, step=4), activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_names_declared_in_a_loop_join_the_design_before_the_first_trial(tmp_path):
    tuner = kp.QuasiRandomSearch(
        loop_build, max_trials=3, seed=0, directory=str(tmp_path), project_name="loop"
    )
    # Discovered when the tuner is made: one build per discrete value.
    names = [hp.name for hp in tuner.oracle.get_space().space]
    assert names[:2] == ["num_layers", "units_0"] and {"units_1", "units_2"} <= set(names)
    trial = tuner.oracle.create_trial("tuner0")
    dimensions = tuner.oracle.get_state()["kplaybook"]["sampler"]["dimensions"]
    assert dimensions == ["num_layers", "units_0", "units_1", "units_2"]  # no spare taken
    assert tuner.oracle.get_state()["kplaybook"]["sampler"]["total"] == 4 + SPARE_DIMENSIONS
    assert trial.hyperparameters.values["num_layers"] in (1, 2, 3)


def three_units(hp):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(hp.Choice("units", [8, 16, 32]))]
    )
    model.add(keras.layers.Dense(1))
    model.compile("adam", "mse")
    return model


def test_the_keras_tuner_readme_example_runs_three_trials_not_five(tmp_path):
    x = np.random.default_rng(0).random((64, 4))
    y = x.sum(axis=1, keepdims=True)
    tuner = kp.QuasiRandomSearch(
        three_units,
        objective="val_loss",
        max_trials=5,
        seed=0,
        directory=str(tmp_path),
        project_name="readme",
    )
    tuner.search(x, y, epochs=1, validation_data=(x, y), verbose=0)
    units = sorted(r.values["units"] for r in tuner.study().trials())
    assert units == [8, 16, 32]  # the space is exhausted: no value twice


def test_an_exhausted_nuisance_space_ends_every_scientific_value_together(tmp_path):
    def build(hp):
        model = three_units(hp)
        hp.Choice("depth", [1, 2])
        return model

    x = np.random.default_rng(0).random((64, 4))
    y = x.sum(axis=1, keepdims=True)
    tuner = playbook(tmp_path, build, "exhaust", scientific={"depth": [1, 2]}, trials_per_study=5)
    tuner.search(x, y, epochs=1, validation_data=(x, y), verbose=0)
    study = tuner.study()
    per_depth = study.best_per_scientific()["trials"].tolist()
    assert per_depth == [3, 3]  # 3 unit values each, balanced, none repeated
    pairs = {(r.values["depth"], r.values["units"]) for r in study.trials()}
    assert len(pairs) == 6


def test_executions_per_trial_score_as_keras_tuner_and_keep_each_execution(tmp_path, digits):
    (x, y), (xv, yv) = digits
    tuner = playbook(
        tmp_path, mlp, "twice", scientific={}, trials_per_study=1, executions_per_trial=2
    )
    tuner.search(x, y, validation_data=(xv, yv), epochs=3, verbose=0)
    study = tuner.study()
    record = study.trials()[0]
    per_step = record.executions("val_loss")
    assert all(len(v) == 2 for v in per_step.values())
    bests = [min(v[k] for v in per_step.values()) for k in (0, 1)]
    assert record.score == pytest.approx(np.mean(bests))  # KerasTuner: mean of each best
    assert record.execution_scores("val_loss", "min") == pytest.approx(bests)
    row = study.to_dataframe().iloc[0]
    assert row["executions"] == 2
    assert row["objective_std"] == pytest.approx(np.std(bests, ddof=1))
    # Loaded again (from the study's index), each execution is still there.
    again = kp.Study.load(study.directory).trials()[0]
    assert again.executions("val_loss") == per_step
    assert again.execution_scores("val_loss", "min") == pytest.approx(bests)


def test_pre_registered_hyperparameters_without_the_scientific_name(tmp_path, digits):
    (x, y), (xv, yv) = digits
    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-3, 1e-2, sampling="log")

    def build(hp):
        return mlp(hp, units=hp.Choice("units", [4, 8]))

    tuner = playbook(
        tmp_path,
        build,
        "prereg",
        hyperparameters=hp,
        tune_new_entries=False,
        scientific={"units": [4, 8]},
        trials_per_study=1,
    )
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    assert sorted(r.values["units"] for r in tuner.study().trials()) == [4, 8]


def test_a_list_of_objectives_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(ValueError, match=r"objective lists 2 metrics.*pass the one to compare on"):
        playbook(tmp_path, mlp, "multi", objective=["val_loss", "val_accuracy"])


class NoReturn(kp.PlaybookTuner):
    def run_trial(self, trial, *args, **kwargs):
        model = self.hypermodel.build(trial.hyperparameters)
        model.fit(*args, **kwargs)  # forgets to return


def test_a_run_trial_returning_none_is_a_clear_error(tmp_path, digits):
    (x, y), (xv, yv) = digits
    tuner = NoReturn(mlp, scientific={}, trials_per_study=1, seed=0, directory=str(tmp_path))
    with pytest.raises(
        TypeError, match=r"run_trial\(\) returned None.*forget to return the metrics"
    ):
        tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)


def test_run_trial_can_be_called_directly(tmp_path, digits):
    (x, y), (xv, yv) = digits
    tuner = playbook(tmp_path, mlp, "direct", scientific={})
    trial = tuner.oracle.create_trial("tuner0")
    histories = tuner.run_trial(trial, x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    assert len(histories) == 1 and "val_loss" in histories[0].history


class ReportsThroughTheOracle(kp.PlaybookTuner):
    """KerasTuner's custom-tuner guide, older idiom: run_trial reports and returns nothing."""

    def run_trial(self, trial, x, y, validation_data, **kwargs):
        model = self.hypermodel.build(trial.hyperparameters)
        model.fit(x, y, **kwargs)
        xv, yv = validation_data
        loss = float(model.evaluate(xv, yv, verbose=0))
        self.oracle.update_trial(trial.trial_id, {"val_loss": loss + 50.0})


def test_a_run_trial_reporting_through_the_oracle_is_scored_from_its_report(tmp_path, digits):
    (x, y), (xv, yv) = digits
    tuner = ReportsThroughTheOracle(
        mlp, scientific={}, trials_per_study=2, seed=0, directory=str(tmp_path)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    scores = [r.score for r in tuner.study().trials()]
    assert len(scores) == 2 and all(50 < s < 60 for s in scores)
    assert not any(math.isnan(s) for s in scores)
