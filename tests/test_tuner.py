"""PlaybookTuner with real training: curves, best_step, export, infeasible trials, real errors."""

import json
import math

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import mlp_build

import kplaybook as kp
from kplaybook.records import index
from kplaybook.records.layout import StudyLayout

REQUIRED_COLUMNS = ["trial_id", "status", "infeasible_reason", "objective", "best_step"]


@pytest.fixture(scope="module")
def depth_study(tmp_path_factory, digits):
    (x, y), (xv, yv) = digits
    directory = tmp_path_factory.mktemp("studies")
    tuner = kp.PlaybookTuner(
        mlp_build,
        objective="val_loss",
        scientific={"num_layers": [1, 2]},
        fixed={"activation": "relu"},
        trials_per_study=2,
        seed=0,
        directory=str(directory),
        project_name="depth",
    )
    tuner.search(x, y, validation_data=(xv, yv), epochs=4, batch_size=32, verbose=0)
    return tuner, directory / "depth"


def test_the_search_leaves_the_index_that_the_first_load_reads(depth_study):
    # First in this file: no load of the study has happened yet.
    _, directory = depth_study
    entries = index.read_index(StudyLayout(directory))
    study = kp.Study.load(directory)
    assert sorted(entries) == sorted(study.trial_ids) and len(entries) == 4
    assert all(record._metrics is None for record in study.trials())  # none decoded


def test_every_epoch_of_every_trial_is_stored(depth_study):
    tuner, _ = depth_study
    study = tuner.study()
    frame = study.to_dataframe()
    assert len(frame) == 4
    for trial_id in frame["trial_id"]:
        curves = study.curves(trial_id)
        assert list(curves.index) == [0, 1, 2, 3]
        assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(curves.columns)
        assert curves.notna().all().all()
        # Training loss really decreases over the recorded epochs.
        assert curves["loss"].iloc[-1] < curves["loss"].iloc[0]


def test_objective_and_best_step_come_from_the_curve(depth_study):
    tuner, _ = depth_study
    study = tuner.study()
    for row in study.to_dataframe().itertuples():
        curve = study.curves(row.trial_id)["val_loss"]
        assert row.objective == pytest.approx(curve.min())
        assert row.best_step == int(curve.idxmin())


def test_dataframe_columns_and_roles(depth_study):
    tuner, _ = depth_study
    frame = tuner.study().to_dataframe()
    assert frame.columns[:5].tolist() == REQUIRED_COLUMNS
    for name in ["units", "activation", "num_layers", "learning_rate"]:
        assert name in frame.columns
    assert (frame["status"] == "completed").all()
    assert frame["infeasible_reason"].isna().all()
    assert sorted(frame["num_layers"].tolist()) == [1, 1, 2, 2]
    assert (frame["activation"] == "relu").all()
    study = tuner.study()
    assert study.scientific == {"num_layers": [1, 2]}
    assert study.fixed == {"activation": "relu"}
    assert study.nuisance == ["units", "learning_rate"]


def test_best_per_scientific_picks_each_values_best_trial(depth_study):
    tuner, _ = depth_study
    study = tuner.study()
    frame = study.to_dataframe()
    best = study.best_per_scientific()
    assert best["num_layers"].tolist() == [1, 2]
    for row in best.itertuples():
        group = frame[frame["num_layers"] == row.num_layers]
        assert row.objective == pytest.approx(group["objective"].min())
        assert row.trial_id == group.loc[group["objective"].idxmin(), "trial_id"]
        assert row.trials == 2 and row.completed == 2


def test_load_export_and_reread(depth_study):
    tuner, path = depth_study
    study = kp.Study.load(path)
    pd.testing.assert_frame_equal(study.to_dataframe(), tuner.study().to_dataframe())
    paths = study.export()
    csv = pd.read_csv(paths["trials.csv"])
    assert len(csv) == 4 and list(csv.columns[:5]) == REQUIRED_COLUMNS
    with open(paths["study.json"]) as f:
        summary = json.load(f)
    assert summary["scientific"] == {"num_layers": [1, 2]}
    assert summary["status_counts"]["completed"] == 4
    first = summary["trials"][0]
    assert first["curves"]["epoch"] == [0, 1, 2, 3]
    assert first["curves"]["val_loss"] == pytest.approx(
        study.curves(first["trial_id"])["val_loss"].tolist()
    )


def test_rerunning_a_finished_study_trains_nothing_more(depth_study, digits):
    tuner, path = depth_study
    (x, y), (xv, yv) = digits
    again = kp.PlaybookTuner(
        mlp_build,
        objective="val_loss",
        scientific={"num_layers": [1, 2]},
        fixed={"activation": "relu"},
        trials_per_study=2,
        seed=0,
        directory=str(path.parent),
        project_name="depth",
    )
    again.search(x, y, validation_data=(xv, yv), epochs=4, verbose=0)
    assert len(again.study().to_dataframe()) == 4


class Tile(keras.layers.Layer):
    """Tiles each example to 2^27 floats: a real allocation no 24 GB machine can make."""

    def call(self, x):
        return tf.tile(x[:, None, :], [1, 2**21, 1])


def troubled_build(hp):
    mode = hp.Choice("mode", ["nan", "oom", "user", "ok"])
    hp.Float("learning_rate", 1e-3, 1e-2, sampling="log")
    if mode == "user":
        raise kp.InfeasibleTrial("too many parameters for the budget")
    inputs = keras.Input((64,))
    hidden = inputs
    if mode == "oom":
        hidden = keras.layers.GlobalAveragePooling1D()(Tile()(hidden))
    if mode == "nan":
        hidden = keras.layers.Lambda(lambda t: t * float("nan"))(hidden)
    outputs = keras.layers.Dense(10, activation="softmax")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


@pytest.mark.slow
def test_nan_oom_and_user_infeasible_trials_are_recorded_and_the_study_goes_on(tmp_path, digits):
    (x, y), (xv, yv) = digits
    tuner = kp.PlaybookTuner(
        troubled_build,
        objective="val_loss",
        # Round-robin puts nan, oom, user first: three in a row, which would
        # end a KerasTuner search (max_consecutive_failed_trials=3).
        scientific={"mode": ["nan", "oom", "user", "ok"]},
        trials_per_study=1,
        seed=0,
        directory=str(tmp_path),
        project_name="troubled",
    )
    tuner.search(x, y, validation_data=(xv, yv), epochs=3, batch_size=256, verbose=0)
    frame = tuner.study().to_dataframe().set_index("mode")
    assert frame.loc["nan", "status"] == "infeasible"
    assert frame.loc["nan", "infeasible_reason"] == "nan_loss"
    assert frame.loc["oom", "status"] == "infeasible"
    assert frame.loc["oom", "infeasible_reason"] == "oom"
    assert frame.loc["user", "status"] == "infeasible"
    assert frame.loc["user", "infeasible_reason"] == "too many parameters for the budget"
    assert frame.loc["ok", "status"] == "completed"
    assert math.isfinite(frame.loc["ok", "objective"])
    assert frame.loc[["nan", "oom", "user"], "objective"].isna().all()
    # The NaN trial stopped after its first epoch and kept that partial curve.
    assert len(tuner.study().curves(frame.loc["nan", "trial_id"])) == 1
    best = tuner.study().best_per_scientific().set_index("mode")
    assert best.loc["oom", "infeasible"] == 1 and pd.isna(best.loc["oom", "trial_id"])
    assert best.loc["ok", "completed"] == 1


def test_the_same_real_error_in_every_trial_stops_the_study_with_its_message(tmp_path, digits):
    (x, y), (xv, yv) = digits

    class Broken(keras.layers.Layer):
        def call(self, x, training=None):
            if training:
                raise ValueError("shape mismatch in my_layer")
            return x

    def broken_build(hp):
        hp.Int("num_layers", 1, 3)
        learning_rate = hp.Float("learning_rate", 1e-3, 1e-2, sampling="log")
        model = keras.Sequential([keras.Input((64,)), Broken(), keras.layers.Dense(10)])
        model.compile(keras.optimizers.Adam(learning_rate), "mse")
        return model

    tuner = kp.PlaybookTuner(
        broken_build,
        scientific={"num_layers": [1, 2]},
        trials_per_study=3,
        seed=0,
        directory=str(tmp_path),
        project_name="broken",
    )
    with pytest.raises(RuntimeError, match="shape mismatch in my_layer"):
        tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    frame = kp.Study.load(tmp_path / "broken").to_dataframe()
    assert (frame["status"] == "failed").sum() == 3


def test_a_real_error_confined_to_one_scientific_value_stops_the_study_and_is_a_finding(
    tmp_path, digits
):
    (x, y), (xv, yv) = digits

    def build(hp):
        layers = hp.Int("num_layers", 1, 3)
        if layers == 3:
            raise ValueError("a bug only three layers hit")
        return mlp_build(hp)

    tuner = kp.PlaybookTuner(
        build,
        scientific={"num_layers": [1, 2, 3]},
        fixed={"activation": "relu"},
        trials_per_study=4,
        seed=0,
        directory=str(tmp_path),
        project_name="one_bug",
    )
    # Round-robin never fails three trials in a row across values, but three of
    # num_layers=3 in a row stop the study, with the original message.
    with pytest.raises(
        RuntimeError, match=r"(?s)limit of 3 for num_layers=3.*a bug only three layers hit"
    ):
        tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    study = kp.Study.load(tmp_path / "one_bug")
    assert study.best_per_scientific()["failed"].tolist() == [0, 0, 3]
    (finding,) = [f for f in study.check() if f.code == "failed_trials"]
    assert (
        "num_layers=3: 3 of 3 trials (ValueError: a bug only three layers hit)" in finding.message
    )
    assert finding.evidence["cells"][0]["failed"] == 3


def test_a_missing_objective_metric_is_a_clear_error(tmp_path, digits):
    (x, y), _ = digits
    tuner = kp.PlaybookTuner(
        mlp_build,
        scientific={"num_layers": [1]},
        trials_per_study=1,
        seed=0,
        directory=str(tmp_path),
        project_name="noval",
    )
    # No validation data: said before any training.
    with pytest.raises(ValueError, match="'val_loss' is measured on validation data, but search"):
        tuner.search(x, y, epochs=1, verbose=0)
    assert tuner.study().trial_ids == []
    # A metric the model does not log: said after the first trial.
    tuner = kp.PlaybookTuner(
        mlp_build,
        objective="val_auc",
        scientific={"num_layers": [1]},
        trials_per_study=1,
        seed=0,
        directory=str(tmp_path),
        project_name="noauc",
    )
    with pytest.raises(ValueError, match="'val_auc' is not among the logged metrics"):
        tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)


def test_executions_per_trial_average_the_curves(tmp_path, digits):
    (x, y), (xv, yv) = digits
    keras.utils.set_random_seed(1)
    tuner = kp.PlaybookTuner(
        mlp_build,
        scientific={"num_layers": [1]},
        trials_per_study=1,
        seed=0,
        directory=str(tmp_path),
        project_name="twice",
        executions_per_trial=2,
    )
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, logs["val_loss"]))

    tuner.search(x, y, validation_data=(xv, yv), epochs=2, verbose=0, callbacks=[Record()])
    curves = tuner.study().curves(tuner.study().trial_ids[0])
    for epoch in (0, 1):
        values = [v for e, v in seen if e == epoch]
        assert len(values) == 2
        assert curves.loc[epoch, "val_loss"] == pytest.approx(np.mean(values), rel=1e-6)
