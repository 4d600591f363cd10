"""Kills at the study's write points, torn and missing files, a full disk: nothing recorded is lost.

Each test damages a real study the way a kill, a full disk or a user does,
resumes it, and checks that every slot of the plan ran exactly once and that
the trials completed before were not touched.
"""

import json
import os
import signal
import subprocess
import warnings
from collections import Counter

import helpers
import keras
import pytest

import kplaybook as kp

TRIALS_PER_STUDY = 3
NUM_TRIALS = 2 * TRIALS_PER_STUDY
EPOCHS = 2
RUN_TIMEOUT = 300


# -- in-process: a small study, damaged between two runs ------------------------------


def build(hp):
    model = keras.Sequential([keras.Input((64,))])
    model.add(keras.layers.Dense(hp.Int("units", 4, 16, step=4), activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    lr = hp.Float("learning_rate", 1e-3, 1e-2, sampling="log")
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    return model


def search(directory, digits, max_trials=4, **kwargs):
    (x, y), (xv, yv) = digits
    tuner = kp.QuasiRandomSearch(
        build, max_trials=max_trials, seed=0, directory=str(directory), project_name="s", **kwargs
    )
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    return tuner


def trial_files(study_dir):
    return {p.parent.name: p.read_bytes() for p in sorted(study_dir.glob("trial_*/trial.json"))}


def planned(tmp_path, digits):
    """The values of an undamaged run of the same search."""
    tuner = search(tmp_path / "reference", digits)
    return {r.trial_id: r.values for r in tuner.study().trials()}


@pytest.mark.parametrize("damage", ["empty", "torn", "deleted_folder"])
def test_a_damaged_or_deleted_trial_runs_again_under_its_own_id_and_nothing_else_moves(
    tmp_path, digits, damage
):
    study_dir = tmp_path / "s"
    search(tmp_path, digits)
    before = trial_files(study_dir)
    victim = study_dir / "trial_1" / "trial.json"
    if damage == "empty":
        victim.write_bytes(b"")
    elif damage == "torn":
        victim.write_bytes(before["trial_1"][: len(before["trial_1"]) // 2])
    else:
        import shutil

        shutil.rmtree(victim.parent)
    with pytest.warns(kp.PlaybookWarning, match=r"trial_1/trial\.json was (damaged|missing)"):
        tuner = search(tmp_path, digits)
    study = tuner.study()
    assert study.status_counts() == {"completed": 4, "infeasible": 0, "failed": 0, "running": 0}
    after = trial_files(study_dir)
    for name in ("trial_0", "trial_2", "trial_3"):
        assert after[name] == before[name]  # untouched, byte for byte
    # Trial 1 ran again with its own values (the plan's), once.
    assert study.trial("1").values == planned(tmp_path, digits)["1"]
    assert len(study.trial_ids) == 4
    if damage != "deleted_folder":
        assert (victim.parent / "trial.json.damaged").exists()  # the evidence is kept
    # A third run changes nothing: the study is complete.
    search(tmp_path, digits)
    assert trial_files(study_dir) == after


def test_a_damaged_oracle_json_is_one_sentence_whose_advice_works(tmp_path, digits):
    search(tmp_path, digits)
    (tmp_path / "s" / "oracle.json").write_text("")
    with pytest.raises(
        kp.StudyError, match=r"oracle\.json cannot be read \(it is empty\).*overwrite=True"
    ):
        search(tmp_path, digits)
    tuner = search(tmp_path, digits, overwrite=True)  # the advice
    assert tuner.study().status_counts()["completed"] == 4


def test_a_damaged_tuner_file_is_rewritten(tmp_path, digits):
    search(tmp_path, digits, max_trials=2)
    (tmp_path / "s" / "tuner0.json").write_text('{"half')
    with pytest.warns(kp.PlaybookWarning, match=r"tuner0\.json cannot be read.*written again"):
        tuner = search(tmp_path, digits, max_trials=3)
    assert tuner.study().status_counts()["completed"] == 3
    assert json.loads((tmp_path / "s" / "tuner0.json").read_text()) == {}


def test_a_full_disk_stops_the_search_and_loses_nothing(tmp_path, digits):
    mount = tmp_path / "small_disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)]).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected-failure test covers it")
    try:
        search(mount, digits, max_trials=2)
        study_dir = mount / "s"
        before = trial_files(study_dir)
        oracle_before = (study_dir / "oracle.json").read_bytes()
        # Fill the disk, leaving a few hundred bytes: the next write fails.
        ballast = mount / "ballast"
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        with pytest.raises(OSError, match="No space left on device while writing"):
            search(mount, digits, max_trials=4)
        # Everything recorded before is whole and unchanged.
        assert trial_files(study_dir) == before
        assert (
            json.loads((study_dir / "oracle.json").read_bytes())["start_order"]
            == json.loads(oracle_before)["start_order"]
        )
        assert not list(study_dir.rglob("*.tmp"))
        ballast.unlink()
        tuner = search(mount, digits, max_trials=4)  # free space, run again: it resumes
        assert tuner.study().status_counts()["completed"] == 4
        assert {k: v for k, v in trial_files(study_dir).items() if k in before} == before
    finally:
        subprocess.run(["umount", str(mount)])


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    from kplaybook.records import files

    path = tmp_path / "oracle.json"
    files.write_json(path, {"trials": 3})

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # the write itself fails, as on a full disk
    with pytest.raises(OSError, match="No space left on device while writing .*oracle.json"):
        files.write_json(path, {"trials": 4})
    assert json.loads(path.read_text()) == {"trials": 3}
    assert os.listdir(tmp_path) == ["oracle.json"]


# -- real processes, SIGKILLed at the exact write points --------------------------------


def run_script(tmp_path, tag, **env):
    directory = tmp_path / "studies"
    args = helpers.script_args(directory, "crash", tmp_path / "log", TRIALS_PER_STUDY, EPOCHS)
    out = tmp_path / f"{tag}.out"
    with open(out, "w") as f:
        result = subprocess.run(
            args,
            env=helpers.child_env(**env),
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT,
        )
    return result, out


KILL_POINTS = [
    # A new trial's file is written, oracle.json not yet: the trial was never handed out.
    ("KILL_AFTER_WRITE", "trial_2/trial.json:1"),
    # Mid-write of oracle.json when trial 3 ends (its own file already says COMPLETED).
    ("KILL_IN_WRITE", "oracle.json:8"),
    # Mid-write of a trial's report: its old file must stay whole.
    ("KILL_IN_WRITE", "trial_4/trial.json:2"),
]


@pytest.mark.slow
@pytest.mark.parametrize("variable, point", KILL_POINTS)
def test_a_sigkill_at_a_write_point_then_a_rerun_runs_every_slot_once(tmp_path, variable, point):
    first, out1 = run_script(tmp_path, "run1", **{variable: point})
    assert first.returncode == -signal.SIGKILL, helpers.tail(out1)
    study_dir = tmp_path / "studies" / "crash"
    for path in study_dir.rglob("*.json"):
        json.loads(path.read_text())  # every file whole: atomic writes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = kp.Study.load(study_dir).to_dataframe().set_index("trial_id")
    done_before = before[before["status"] == "completed"]

    second, out2 = run_script(tmp_path, "run2")
    assert second.returncode == 0, helpers.tail(out2)
    study = kp.Study.load(study_dir)
    after = study.to_dataframe().set_index("trial_id")
    assert sorted(int(t) for t in after.index) == list(range(NUM_TRIALS))
    assert (after["status"] == "completed").all(), after["status"]
    assert after.groupby("num_layers").size().to_dict() == {1: 3, 2: 3}  # balanced
    # Trials completed before the kill are not run again and keep their results.
    for trial_id, row in done_before.iterrows():
        assert after.loc[trial_id, "objective"] == row["objective"]
    # Every slot holds its planned values: none lost, repeated or shifted.
    plan = helpers.planned_values(tmp_path / "reference", TRIALS_PER_STUDY)
    for trial_id, row in after.iterrows():
        assert helpers.hp_values(row) == pytest.approx(plan[int(trial_id)], rel=1e-12)
    # Each trial ended exactly once across both runs.
    ends = Counter(
        int(r["trial_id"]) for r in helpers.read_log(tmp_path / "log") if r["event"] == "end"
    )
    assert ends == Counter(range(NUM_TRIALS))
