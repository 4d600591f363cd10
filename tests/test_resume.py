"""Resuming a study after the search process is SIGKILLed in the middle of a trial.

Issue requirement: killing the search process (SIGKILL) in the middle of a
trial and running the same script again finishes the planned number of
trials per scientific value, with no completed trial lost or repeated.

`tests/scripts/playbook_search.py` runs a `kp.PlaybookTuner` study
(scientific num_layers in [1, 2], 3 trials per study, seed 0,
overwrite=False). Run 1 stalls at the end of the first epoch of trial 2 (the
third trial) and is SIGKILLed there; run 2 is the same command, without the
kill.
"""

import os
import signal
import subprocess
from collections import Counter

import helpers
import pytest

import kplaybook as kp

TRIALS_PER_STUDY = 3
NUM_TRIALS = 2 * TRIALS_PER_STUDY
KILLED_TRIAL = 2  # the third trial: slot 2, num_layers=1, second nuisance point
EPOCHS = 3
MARKER_TIMEOUT = 240
RUN_TIMEOUT = 300


@pytest.mark.slow
def test_sigkill_mid_trial_then_rerun_finishes_study(tmp_path):
    directory = tmp_path / "studies"
    study_dir = directory / "resume"
    log_dir = tmp_path / "log"
    marker = tmp_path / "stalled"
    args = helpers.script_args(directory, "resume", log_dir, TRIALS_PER_STUDY, EPOCHS)

    # -- run 1: SIGKILLed while the third trial is training ------------------
    out1 = tmp_path / "run1.out"
    proc = None
    try:
        proc = helpers.start(
            args, helpers.child_env(KILL_AT_TRIAL=KILLED_TRIAL, KILL_MARKER=marker), out1
        )
        helpers.wait_until(
            marker.exists, MARKER_TIMEOUT, f"trial {KILLED_TRIAL} to stall", [(proc, out1)]
        )
        pid, stalled_trial = marker.read_text().split()
        assert (int(pid), int(stalled_trial)) == (proc.pid, KILLED_TRIAL)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        helpers.stop(proc)
    assert proc.returncode == -signal.SIGKILL

    before = kp.Study.load(study_dir).to_dataframe().set_index("trial_id")
    killed_id = next(t for t in before.index if int(t) == KILLED_TRIAL)
    # The kill really hit mid-trial: trials 0 and 1 done, trial 2 RUNNING.
    assert sorted(int(t) for t in before.index) == [0, 1, 2]
    assert before["status"].to_dict() == {
        t: ("running" if t == killed_id else "completed") for t in before.index
    }
    completed_before = before[before["status"] == "completed"]
    assert completed_before["objective"].notna().all()
    killed_values_before = helpers.hp_values(before.loc[killed_id])

    # -- run 2: the same command, no kill: resumes and finishes ---------------
    out2 = tmp_path / "run2.out"
    try:
        with open(out2, "w") as out:
            run2 = subprocess.run(
                args,
                env=helpers.child_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT,
            )
    except subprocess.TimeoutExpired:
        pytest.fail("run 2 did not finish in time:\n" + helpers.tail(out2))
    assert run2.returncode == 0, helpers.tail(out2)
    assert "Reloading Tuner" in out2.read_text()  # resumed, not started over

    study = kp.Study.load(study_dir)
    after = study.to_dataframe()

    # The planned number of trials per scientific value, all completed.
    assert len(after) == NUM_TRIALS
    assert after["trial_id"].is_unique
    assert sorted(int(t) for t in after["trial_id"]) == list(range(NUM_TRIALS))
    assert (after["status"] == "completed").all(), after[["trial_id", "status"]]
    assert after["objective"].notna().all()
    assert after.groupby("num_layers").size().to_dict() == {
        1: TRIALS_PER_STUDY,
        2: TRIALS_PER_STUDY,
    }
    best = study.best_per_scientific()
    assert best["num_layers"].tolist() == [1, 2]
    assert best["trials"].tolist() == [TRIALS_PER_STUDY, TRIALS_PER_STUDY]
    assert best["completed"].tolist() == [TRIALS_PER_STUDY, TRIALS_PER_STUDY]

    # Trials completed before the kill are kept as they were (not re-run):
    # same hyperparameters, same objective value, same best epoch.
    after = after.set_index("trial_id")
    for trial_id, row in completed_before.iterrows():
        assert helpers.hp_values(after.loc[trial_id]) == helpers.hp_values(row)
        assert after.loc[trial_id, "objective"] == row["objective"]
        assert after.loc[trial_id, "best_step"] == row["best_step"]

    # The interrupted trial was retried under its own id, with its own values.
    assert helpers.hp_values(after.loc[killed_id]) == killed_values_before

    # Every slot holds the values an uninterrupted study gives it: no slot
    # lost, repeated or shifted by the resume. The plan is paired: both
    # scientific values see the same nuisance points.
    planned = helpers.planned_values(tmp_path / "reference", TRIALS_PER_STUDY)
    for trial_id, row in after.iterrows():
        assert helpers.hp_values(row) == pytest.approx(planned[int(trial_id)], rel=1e-12), trial_id
    for k in range(0, NUM_TRIALS, 2):
        assert (planned[k]["num_layers"], planned[k + 1]["num_layers"]) == (1, 2)
        for name in ("units", "learning_rate"):
            assert planned[k][name] == planned[k + 1][name]
    assert len({planned[k]["learning_rate"] for k in range(0, NUM_TRIALS, 2)}) == TRIALS_PER_STUDY

    # What ran, per the processes' own logs: run 1 began trials 0, 1, 2 and
    # ended 0 and 1; run 2 began the interrupted trial 2 first, then 3, 4, 5.
    # Every trial ended exactly once, COMPLETED.
    records = helpers.read_log(log_dir)
    pids = {r["pid"] for r in records}
    assert len(pids) == 2 and proc.pid in pids
    run1 = [(r["event"], int(r["trial_id"])) for r in records if r["pid"] == proc.pid]
    run2_log = [(r["event"], int(r["trial_id"])) for r in records if r["pid"] != proc.pid]
    assert run1 == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1), ("begin", 2)]
    assert [t for e, t in run2_log if e == "begin"] == [2, 3, 4, 5]
    ends = Counter(int(r["trial_id"]) for r in records if r["event"] == "end")
    assert ends == Counter(range(NUM_TRIALS))
    assert {r["status"] for r in records if r["event"] == "end"} == {"COMPLETED"}
