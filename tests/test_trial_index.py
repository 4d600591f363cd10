"""The trial index (kplaybook_index.npz): a cache of every trial.json that never says what they do not."""

import json
import os
import shutil
import warnings

import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest

import kplaybook as kp
from kplaybook.records import files
from kplaybook.records import index
from kplaybook.records.layout import StudyLayout
from kplaybook.testing import SyntheticTrial
from kplaybook.testing import write_study


def _space():
    hp = kt.HyperParameters()
    hp.Int("num_layers", 1, 2)
    hp.Float("learning_rate", 1e-3, 1e-1, sampling="log")
    return hp


@pytest.fixture
def study_dir(tmp_path):
    trials = []
    for i, lr in enumerate([1e-3, 3e-3, 1e-2, 3e-2, 1e-1]):
        for layers in (1, 2):
            val = [1.0, 0.7 - 0.02 * i, 0.6 - 0.03 * i + 0.01 * layers]
            trials.append(
                SyntheticTrial(
                    {"num_layers": layers, "learning_rate": lr},
                    {"loss": [1.0, 0.8, 0.6], "val_loss": val, "lr": [lr, None, lr]},
                )
            )
    trials.append(
        SyntheticTrial({"num_layers": 1, "learning_rate": 0.1}, None, "infeasible", "oom")
    )
    trials.append(
        SyntheticTrial(
            {"num_layers": 2, "learning_rate": 0.1},
            {"loss": [2.0, float("nan")], "val_loss": [2.0, float("nan")]},
            "infeasible",
            "nan_loss",
        )
    )
    trials.append(SyntheticTrial({"num_layers": 2, "learning_rate": 0.05}, None, "failed", "boom"))
    return write_study(tmp_path / "s", _space(), trials, scientific={"num_layers": [1, 2]})


def assert_same_study(a, b):
    """Two loads of one study say the same thing about every trial."""
    assert a.trial_ids == b.trial_ids
    pd.testing.assert_frame_equal(a.to_dataframe(), b.to_dataframe())
    for x, y in zip(a.trials(), b.trials()):
        for field in ("trial_id", "status", "kt_status", "values", "score", "best_step"):
            assert getattr(x, field) == getattr(y, field), field
        assert (x.infeasible_reason, x.message) == (y.infeasible_reason, y.message)
        assert x.metric_names == y.metric_names
        (ex, cx), (ey, cy) = x.curve_arrays(), y.curve_arrays()
        np.testing.assert_array_equal(ex, ey)
        assert list(cx) == list(cy)
        for name in cx:
            np.testing.assert_array_equal(cx[name], cy[name])
        assert x.execution_scores(a.objective, a.direction) == y.execution_scores(
            b.objective, b.direction
        )


def test_the_first_load_writes_the_index_and_the_next_reads_it_to_the_same_study(study_dir):
    layout = StudyLayout(study_dir)
    assert not os.path.exists(layout.index_file)
    first = kp.Study.load(study_dir)
    assert os.path.exists(layout.index_file)
    entries = index.read_index(layout)
    assert sorted(entries) == sorted(first.trial_ids)
    stamp = os.stat(layout.index_file).st_mtime_ns
    second = kp.Study.load(study_dir)
    assert os.stat(layout.index_file).st_mtime_ns == stamp  # nothing changed: not rewritten
    # Built from the index: the raw KerasTuner metrics were not decoded.
    assert all(record._metrics is None for record in second.trials())
    assert_same_study(first, second)
    assert second.check() == first.check()


def test_a_trial_json_changed_after_indexing_is_read_from_the_file(study_dir):
    kp.Study.load(study_dir)
    path = os.path.join(study_dir, "trial_03", "trial.json")
    data = json.loads(open(path).read())
    data["score"] = 0.01234
    history = data["metrics"]["metrics"]["val_loss"]["observations"]
    history[-1]["value"] = [0.01234]
    files.write_json(path, data, allow_nan=True)
    study = kp.Study.load(study_dir)
    assert study.trial("03").score == 0.01234
    assert study.curves("03")["val_loss"].iloc[-1] == 0.01234
    assert study.best_trial_id() == "03"
    # The index now holds the new bytes, and a third load agrees.
    entry = index.read_index(StudyLayout(study_dir))["03"]
    assert entry.digest == index.digest(open(path, "rb").read())
    assert_same_study(study, kp.Study.load(study_dir))


def test_trials_added_or_removed_after_indexing_are_seen(study_dir):
    kp.Study.load(study_dir)
    shutil.copytree(os.path.join(study_dir, "trial_00"), os.path.join(study_dir, "trial_99"))
    path = os.path.join(study_dir, "trial_99", "trial.json")
    data = json.loads(open(path).read())
    data["trial_id"] = "99"
    files.write_json(path, data, allow_nan=True)
    shutil.rmtree(os.path.join(study_dir, "trial_04"))
    study = kp.Study.load(study_dir)
    assert "99" in study.trial_ids and "04" not in study.trial_ids
    assert sorted(index.read_index(StudyLayout(study_dir))) == sorted(study.trial_ids)


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"not a zip file",
        "truncated",
        "other format",
    ],
)
def test_a_damaged_or_foreign_index_is_rebuilt(study_dir, damage):
    reference = kp.Study.load(study_dir)
    layout = StudyLayout(study_dir)
    if damage == "truncated":
        content = open(layout.index_file, "rb").read()
        damage = content[: len(content) // 2]
    elif damage == "other format":
        entries = index.read_index(layout)
        index.write_index(layout, entries.values())
        with np.load(layout.index_file) as arrays:
            columns = dict(arrays)
        meta = json.loads(columns["meta"].tobytes())
        meta["format"] = index.FORMAT + 1
        columns["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        with open(layout.index_file, "wb") as f:
            np.savez(f, **columns)
        damage = None
    if damage is not None:
        with open(layout.index_file, "wb") as f:
            f.write(damage)
    study = kp.Study.load(study_dir)
    assert_same_study(reference, study)
    assert len(index.read_index(layout)) == len(study.trial_ids)


def test_an_index_whose_arrays_disagree_with_its_summaries_is_not_used(study_dir):
    reference = kp.Study.load(study_dir)
    layout = StudyLayout(study_dir)
    with np.load(layout.index_file) as arrays:
        columns = dict(arrays)
    columns["metric_0"] = columns["metric_0"][:-1]  # one value short
    with open(layout.index_file, "wb") as f:
        np.savez(f, **columns)
    assert index.read_index(layout) == {}
    assert_same_study(reference, kp.Study.load(study_dir))


def test_a_study_whose_index_cannot_be_written_still_loads(study_dir):
    reference = kp.Study.load(study_dir)
    layout = StudyLayout(study_dir)
    os.remove(layout.index_file)
    os.mkdir(layout.index_file)  # in the way: neither readable as a file nor replaceable
    study = kp.Study.load(study_dir)
    assert_same_study(reference, study)
    assert os.path.isdir(layout.index_file)
    assert not [n for n in os.listdir(study_dir) if n.endswith(".tmp")]


def _edit(path, change):
    data = json.loads(open(path).read())
    change(data)
    files.write_json(path, data, allow_nan=True)


def test_a_folder_named_unlike_its_trial_id_is_still_read_from_the_index(study_dir):
    _edit(os.path.join(study_dir, "trial_00", "trial.json"), lambda d: d.update(trial_id="0"))
    first = kp.Study.load(study_dir)
    stamp = os.stat(StudyLayout(study_dir).index_file).st_mtime_ns
    second = kp.Study.load(study_dir)
    assert os.stat(StudyLayout(study_dir).index_file).st_mtime_ns == stamp
    assert all(record._metrics is None for record in second.trials())
    assert_same_study(first, second)


def _two_executions(data):
    for history in data["metrics"]["metrics"].values():
        for obs in history["observations"]:
            obs["value"] = obs["value"] + [obs["value"][0] + 0.5]


def test_a_trial_with_two_executions_keeps_both_in_memory_after_an_indexed_load(study_dir):
    path = os.path.join(study_dir, "trial_02", "trial.json")
    _edit(path, _two_executions)
    first = kp.Study.load(study_dir)
    stamp = os.stat(StudyLayout(study_dir).index_file).st_mtime_ns
    second = kp.Study.load(study_dir)
    assert os.stat(StudyLayout(study_dir).index_file).st_mtime_ns == stamp
    record = second.trial("02")
    assert record._metrics is not None and record.execution_count == 2
    os.remove(path)  # nothing is read from the file after the load
    scores = record.execution_scores("val_loss", "min")
    assert len(scores) == 2 and scores[1] == pytest.approx(scores[0] + 0.5)
    assert second.to_dataframe().set_index("trial_id").loc["02", "executions"] == 2
    assert_same_study(first, second)


def test_per_execution_values_are_read_only_from_the_file_the_study_was_loaded_from(
    study_dir, monkeypatch
):
    kp.Study.load(study_dir)
    monkeypatch.chdir(os.path.dirname(study_dir))
    study = kp.Study.load(os.path.basename(study_dir))  # a relative path
    monkeypatch.chdir("/")
    assert study.trial("01").executions("loss") == {0: [1.0], 1: [0.8], 2: [0.6]}
    stale = kp.Study.load(study_dir).trial("03")
    _edit(os.path.join(study_dir, "trial_03", "trial.json"), lambda d: d.update(score=0.5))
    with pytest.raises(
        kp.StudyError, match=r"trial_03/trial\.json changed since the study was loaded"
    ):
        stale.executions("loss")


def test_an_index_with_an_incomplete_entry_is_rebuilt(study_dir):
    reference = kp.Study.load(study_dir)
    layout = StudyLayout(study_dir)
    with np.load(layout.index_file) as arrays:
        columns = dict(arrays)
    meta = json.loads(columns["meta"].tobytes())
    del meta["summaries"][0]["executions"]
    columns["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(layout.index_file, "wb") as f:
        np.savez(f, **columns)
    assert_same_study(reference, kp.Study.load(study_dir))
    assert "executions" in index.read_index(layout)["00"].summary


def test_a_step_too_large_for_an_int_is_a_one_sentence_error(study_dir):
    def huge(data):
        data["metrics"]["metrics"]["loss"]["observations"][0]["step"] = float("inf")

    _edit(os.path.join(study_dir, "trial_01", "trial.json"), huge)
    with pytest.raises(kp.StudyError, match=r"trial_01/trial\.json cannot be read"):
        kp.Study.load(study_dir)


def test_an_unknown_status_is_warned_about_once_per_load(study_dir):
    _edit(os.path.join(study_dir, "trial_00", "trial.json"), lambda d: d.update(status="EXPLODED"))
    for _ in range(2):  # decoded, then from the index
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            study = kp.Study.load(study_dir)
        said = [w for w in caught if "unknown status 'EXPLODED'" in str(w.message)]
        assert len(said) == 1 and study.status("00") == "failed"
