"""Study.load on missing, foreign and corrupt directories: one-sentence errors, nothing changed."""

import json
import os

import pytest
from conftest import run_oracle

import kplaybook as kp


def test_missing_directory(tmp_path):
    with pytest.raises(kp.StudyError, match="does not exist"):
        kp.Study.load(tmp_path / "nope")


def test_directory_without_a_study(tmp_path):
    with pytest.raises(kp.StudyError, match="has no oracle.json"):
        kp.Study.load(tmp_path)


def test_corrupt_oracle_json_is_reported_and_left_as_it_was(tmp_path):
    (tmp_path / "oracle.json").write_text("{not json")
    with pytest.raises(kp.StudyError, match="cannot be read"):
        kp.Study.load(tmp_path)
    assert (tmp_path / "oracle.json").read_text() == "{not json"


def test_a_plain_keras_tuner_project_is_not_a_kplaybook_study(tmp_path):
    import keras_tuner as kt

    run_oracle(kt.oracles.RandomSearchOracle("val_loss", max_trials=2, seed=1), tmp_path, 2)
    with pytest.raises(kp.StudyError, match="not written by a kplaybook tuner"):
        kp.Study.load(tmp_path / "p")


def test_corrupt_trial_json(tmp_path):
    run_oracle(kp.oracles.QuasiRandomSearchOracle("val_loss", max_trials=2, seed=1), tmp_path, 2)
    trial_file = tmp_path / "p" / "trial_0" / "trial.json"
    trial_file.write_text('{"trial_id": "0"}')
    with pytest.raises(kp.StudyError, match="trial_0"):
        kp.Study.load(tmp_path / "p")


def test_oracle_only_study_loads_and_exports(tmp_path):
    run_oracle(
        kp.oracles.NestedStudyOracle(
            "val_loss", scientific={"activation": ["relu", "tanh"]}, trials_per_study=2, seed=1
        ),
        tmp_path,
        4,
        score=lambda v: v["learning_rate"],
    )
    study = kp.Study.load(tmp_path / "p")
    assert study.status_counts()["completed"] == 4
    assert "Study 'p'" in repr(study)
    paths = study.export()
    assert all(os.path.exists(p) for p in paths.values())
    with open(paths["study.json"]) as f:
        assert len(json.load(f)["best_per_scientific"]) == 2
    with pytest.raises(KeyError, match="No trial '99'"):
        study.curves("99")
