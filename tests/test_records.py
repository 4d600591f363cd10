"""The study-records layer: atomic writes, one-sentence errors, reading trials without KerasTuner."""

import json
import os
import subprocess
import sys

import keras_tuner as kt
import numpy as np
import pytest
from keras_tuner.engine import trial as trial_module

import kplaybook as kp
from kplaybook.analysis import report
from kplaybook.records import StudyReader
from kplaybook.records import best_position
from kplaybook.records import files
from kplaybook.testing import SyntheticTrial
from kplaybook.testing import write_study


def test_the_records_layer_imports_neither_tensorflow_nor_keras():
    code = (
        "import sys, kplaybook.records, kplaybook.records.reader, kplaybook.records.steps;"
        "heavy = [m for m in ('tensorflow', 'keras', 'keras_tuner') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_write_json_replaces_atomically_and_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "state.json"
    files.write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(ValueError):  # NaN is refused before anything is written
        files.write_json(path, {"a": float("nan")})
    with pytest.raises(TypeError):  # not serialisable: fails inside the write
        files.write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(os.listdir(tmp_path)) == ["state.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "it is empty"), (b'{"runs": [1, 2', "not valid JSON"), (b"\x00\x00", "not valid JSON")],
)
def test_read_json_names_the_file_and_what_to_do(tmp_path, content, reason):
    path = tmp_path / "torn.json"
    path.write_bytes(content)
    with pytest.raises(
        kp.StudyError, match=rf"torn\.json cannot be read \({reason}.*; restore it\.$"
    ):
        files.read_json(path, "restore it")


def test_best_position_is_the_first_best_finite_value():
    assert best_position([0.3, np.nan, 0.1, 0.1], "min") == 2
    assert best_position([0.3, np.nan, 0.1, 0.5], "max") == 3
    assert best_position([np.nan, np.nan], "min") is None
    assert best_position([], "min") is None


def _space():
    hp = kt.HyperParameters()
    hp.Int("epochs", 1, 3)  # a scientific hyperparameter named like a table column
    hp.Float("learning_rate", 1e-3, 1e-1, sampling="log")
    return hp


@pytest.fixture
def epochs_study(tmp_path):
    trials = []
    for i, lr in enumerate([1e-3, 1e-2, 1e-1]):
        for epochs in (1, 3):
            val = 1.0 - 0.1 * epochs - 0.01 * i
            trials.append(
                SyntheticTrial(
                    {"epochs": epochs, "learning_rate": lr},
                    {"loss": [1.0, 0.8, 0.6, 0.5], "val_loss": [1.0, val + 0.05, val, val + 0.02]},
                )
            )
    return write_study(tmp_path / "s", _space(), trials, scientific={"epochs": [1, 3]})


def test_a_hyperparameter_named_epochs_stays_apart_from_the_epoch_count(epochs_study):
    study = kp.Study.load(epochs_study)
    frame = study.to_dataframe()
    assert set(frame["epochs"]) == {4}  # the recorded epochs
    assert sorted(set(frame["hp:epochs"])) == [1, 3]  # the hyperparameter
    row = report.spreadsheet_row(study)
    # The best trial has epochs=3 (and 4 recorded epochs): the row names the hyperparameter.
    assert row["best_scientific"] == "epochs=3"
    assert row["best_trial"] == study.best_trial_id() == study.ranked()[0]
    best = study.best_per_scientific()
    assert best["hp:epochs"].tolist() == [1, 3]
    assert best["trial_id"].tolist() == [study.ranked(0)[0], study.ranked(1)[0]]


def test_reader_agrees_with_keras_tuner_on_every_trial(epochs_study):
    reader = StudyReader.load(epochs_study)
    for trial_id in reader.trial_ids:
        kt_trial = trial_module.Trial.load(reader.layout.trial_file(trial_id))
        record = reader.trial(trial_id)
        assert record.values == kt_trial.hyperparameters.values
        assert record.score == kt_trial.score and record.best_step == kt_trial.best_step
        epochs, columns = record.curve_arrays()
        history = kt_trial.metrics.get_history("val_loss")
        assert epochs.tolist() == [obs.step for obs in history]
        np.testing.assert_allclose(columns["val_loss"], [obs.mean() for obs in history])
        assert not any(name.startswith("kplaybook.") for name in columns)


def test_a_trial_folder_without_its_trial_json_is_reported(epochs_study):
    folder = os.path.join(epochs_study, "trial_2")
    os.remove(os.path.join(folder, "trial.json"))
    study = kp.Study.load(epochs_study)
    assert "2" not in study.trial_ids and len(study.trial_ids) == 5
    assert len(study.problems) == 1 and "trial_2 has no trial.json" in study.problems[0]
    summary = json.loads(open(study.export(formats=("json",))["study.json"]).read())
    assert summary["problems"] == study.problems


def test_a_torn_trial_json_is_a_one_sentence_error_naming_it(epochs_study):
    path = os.path.join(epochs_study, "trial_1", "trial.json")
    with open(path, "r+") as f:
        f.truncate(100)
    with pytest.raises(kp.StudyError, match=r"trial_1/trial\.json cannot be read \(not valid JSON"):
        kp.Study.load(epochs_study)


def test_an_unknown_trial_status_is_said(epochs_study):
    path = os.path.join(epochs_study, "trial_0", "trial.json")
    data = json.loads(open(path).read())
    data["status"] = "EXPLODED"
    files.write_json(path, data, allow_nan=True)
    with pytest.warns(kp.PlaybookWarning, match="unknown status 'EXPLODED'.*counted as failed"):
        study = kp.Study.load(epochs_study)
    assert study.status("0") == "failed"
