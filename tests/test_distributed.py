"""The nested oracle in KerasTuner's chief/worker mode, with real processes.

Issue requirement: the nested oracle works unchanged in KerasTuner's
chief/worker mode: a test starts a chief and two workers as real processes on
127.0.0.1 and checks the per-scientific-value counts.

All three processes run `tests/scripts/playbook_search.py` with the same
arguments (same directory, same `kp.PlaybookTuner` settings, overwrite=False);
only `KERASTUNER_TUNER_ID` differs. The chief serves the oracle over gRPC and
runs no trial; the workers run the trials. The first trial of each worker
waits until the other worker has begun one, so both take part and two trials
are in flight at once.
"""

import shutil
import socket
import time
from collections import Counter

import helpers
import pytest

import kplaybook as kp

TRIALS_PER_STUDY = 3
NUM_TRIALS = 2 * TRIALS_PER_STUDY
EPOCHS = 2
WORKERS = ("tuner0", "tuner1")
CHIEF_START_TIMEOUT = 120
WORKERS_TIMEOUT = 240
# The chief polls every 20 s for the last workers to finish once it has
# stopped the search (keras_tuner/src/distribute/oracle_chief.py).
CHIEF_EXIT_TIMEOUT = 90


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts_connections(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Runs the chief and two workers to the end; returns the study and log directories."""
    root = tmp_path_factory.mktemp("distributed")
    directory = root / "studies"
    log_dir = root / "log"
    args = helpers.script_args(directory, "distributed", log_dir, TRIALS_PER_STUDY, EPOCHS)
    port = free_port()

    def env(tuner_id):
        return helpers.child_env(
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=port,
            KERASTUNER_TUNER_ID=tuner_id,
            BARRIER_TUNERS=",".join(WORKERS),
            BARRIER_DIR=root / "barrier",
        )

    outputs = {name: root / f"{name}.out" for name in ("chief", *WORKERS)}
    procs = {}
    try:
        procs["chief"] = helpers.start(args, env("chief"), outputs["chief"])
        helpers.wait_until(
            lambda: accepts_connections(port),
            CHIEF_START_TIMEOUT,
            f"the chief to listen on 127.0.0.1:{port}",
            [(procs["chief"], outputs["chief"])],
        )
        for name in WORKERS:
            procs[name] = helpers.start(args, env(name), outputs[name])
        deadline = time.monotonic() + WORKERS_TIMEOUT
        for name in WORKERS:
            procs[name].wait(timeout=max(1.0, deadline - time.monotonic()))
        procs["chief"].wait(timeout=CHIEF_EXIT_TIMEOUT)
    finally:
        for proc in procs.values():
            helpers.stop(proc)
    for name, proc in procs.items():
        assert proc.returncode == 0, (
            f"{name} exited {proc.returncode}:\n{helpers.tail(outputs[name])}"
        )
        assert f"search finished: {name}" in outputs[name].read_text()
    return {"root": root, "study_dir": directory / "distributed", "log_dir": log_dir}


@pytest.mark.slow
def test_chief_and_two_workers_run_nested_study(cluster):
    study_dir, log_dir = cluster["study_dir"], cluster["log_dir"]

    # The chief's study: exactly trials_per_study trials per scientific value,
    # all completed, ids 0..n-1 each once.
    study = kp.Study.load(study_dir)
    frame = study.to_dataframe()
    assert len(frame) == NUM_TRIALS
    assert frame["trial_id"].is_unique
    assert sorted(int(t) for t in frame["trial_id"]) == list(range(NUM_TRIALS))
    assert (frame["status"] == "completed").all(), frame[["trial_id", "status"]]
    assert frame["objective"].notna().all()
    assert (frame["epochs"] == EPOCHS).all()
    assert frame.groupby("num_layers").size().to_dict() == {
        1: TRIALS_PER_STUDY,
        2: TRIALS_PER_STUDY,
    }
    best = study.best_per_scientific()
    assert best["num_layers"].tolist() == [1, 2]
    assert best["trials"].tolist() == [TRIALS_PER_STUDY, TRIALS_PER_STUDY]
    assert best["completed"].tolist() == [TRIALS_PER_STUDY, TRIALS_PER_STUDY]

    # Round-robin, paired schedule, as in a sequential study: trial k holds
    # slot k's values, and the two scientific values share nuisance points.
    planned = helpers.planned_values(cluster["root"] / "reference", TRIALS_PER_STUDY)
    by_id = frame.set_index("trial_id")
    for trial_id, row in by_id.iterrows():
        assert helpers.hp_values(row) == pytest.approx(planned[int(trial_id)], rel=1e-12), trial_id
    for k in range(0, NUM_TRIALS, 2):
        one, two = planned[k], planned[k + 1]
        assert (one["num_layers"], two["num_layers"]) == (1, 2)
        assert (one["units"], one["learning_rate"]) == (two["units"], two["learning_rate"])
    assert len({planned[k]["learning_rate"] for k in range(0, NUM_TRIALS, 2)}) == TRIALS_PER_STUDY

    # Who ran what, per the processes' own logs: only the workers ran trials,
    # both of them, each trial once; what a worker trained is what the chief
    # recorded; and the two workers' first trials overlapped in time.
    records = helpers.read_log(log_dir)
    assert {r["tuner_id"] for r in records} == set(WORKERS)
    begins = [r for r in records if r["event"] == "begin"]
    ends = [r for r in records if r["event"] == "end"]
    assert Counter(int(r["trial_id"]) for r in begins) == Counter(range(NUM_TRIALS))
    assert Counter(int(r["trial_id"]) for r in ends) == Counter(range(NUM_TRIALS))
    assert {r["status"] for r in ends} == {"COMPLETED"}
    for r in begins:
        assert helpers.hp_values(r["values"]) == pytest.approx(
            helpers.hp_values(by_id.loc[r["trial_id"]]), rel=1e-12
        )
    ran = Counter(r["tuner_id"] for r in ends)
    assert set(ran) == set(WORKERS) and sum(ran.values()) == NUM_TRIALS, ran
    first_begin = {w: min(r["time"] for r in begins if r["tuner_id"] == w) for w in WORKERS}
    first_end = {w: min(r["time"] for r in ends if r["tuner_id"] == w) for w in WORKERS}
    assert max(first_begin.values()) < min(first_end.values())


@pytest.mark.slow
def test_rerun_after_distributed_search_runs_no_trial_again(cluster, tmp_path):
    """Running the script again (here without the cluster) finds the study finished.

    The chief's last oracle.json still lists the last trial as ongoing
    (KerasTuner's `end_trial` saves before it pops the trial and, in
    chief/worker mode, nothing saves after that); reloading must not send
    that completed trial for a retry.
    """
    study_dir = tmp_path / "distributed"
    shutil.copytree(cluster["study_dir"], study_dir)
    before = kp.Study.load(study_dir).to_dataframe()
    assert (before["status"] == "completed").all()

    script = helpers.load_module(helpers.SCRIPT)
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    script.ProbedTuner.log_dir = str(log_dir)
    tuner = script.make_tuner(str(tmp_path), "distributed", TRIALS_PER_STUDY)
    (x, y), (x_val, y_val) = script.load_data()
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=EPOCHS, verbose=0)

    assert helpers.read_log(log_dir) == []  # no trial began
    after = kp.Study.load(study_dir).to_dataframe()
    assert after["trial_id"].tolist() == before["trial_id"].tolist()
    assert (after["status"] == "completed").all()
    assert after["objective"].tolist() == before["objective"].tolist()


@pytest.mark.slow
def test_a_worker_killed_mid_trial_hands_its_trial_to_the_other_and_the_chief_exits(tmp_path):
    directory = tmp_path / "studies"
    log_dir = tmp_path / "log"
    marker = tmp_path / "stalled"
    args = helpers.script_args(directory, "killed", log_dir, TRIALS_PER_STUDY, EPOCHS)
    port = free_port()

    def env(tuner_id):
        return helpers.child_env(
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=port,
            KERASTUNER_TUNER_ID=tuner_id,
            STALL_TUNER="tuner1",
            KILL_MARKER=marker,
            HEARTBEAT_TIMEOUT=6,
            HEARTBEAT_INTERVAL=1,
        )

    outputs = {name: tmp_path / f"{name}.out" for name in ("chief", *WORKERS)}
    procs = {}
    try:
        procs["chief"] = helpers.start(args, env("chief"), outputs["chief"])
        helpers.wait_until(
            lambda: accepts_connections(port),
            CHIEF_START_TIMEOUT,
            "the chief to listen",
            [(procs["chief"], outputs["chief"])],
        )
        for name in WORKERS:
            procs[name] = helpers.start(args, env(name), outputs[name])
        helpers.wait_until(
            marker.exists,
            WORKERS_TIMEOUT,
            "tuner1 to stall mid-trial",
            [(procs["tuner1"], outputs["tuner1"])],
        )
        pid, abandoned = marker.read_text().split()
        assert int(pid) == procs["tuner1"].pid
        procs["tuner1"].kill()  # SIGKILL: no goodbye to the chief
        procs["tuner1"].wait(timeout=30)
        procs["tuner0"].wait(timeout=WORKERS_TIMEOUT)
        procs["chief"].wait(timeout=CHIEF_EXIT_TIMEOUT)  # it exits: the dead worker is forgotten
    finally:
        for proc in procs.values():
            helpers.stop(proc)
    assert procs["tuner0"].returncode == 0, helpers.tail(outputs["tuner0"])
    assert procs["chief"].returncode == 0, helpers.tail(outputs["chief"])
    assert "no heartbeat for more than 6 s" in outputs["chief"].read_text()

    frame = kp.Study.load(directory / "killed").to_dataframe()
    assert sorted(int(t) for t in frame["trial_id"]) == list(range(NUM_TRIALS))
    assert (frame["status"] == "completed").all(), frame[["trial_id", "status"]]
    assert frame.groupby("num_layers").size().to_dict() == {
        1: TRIALS_PER_STUDY,
        2: TRIALS_PER_STUDY,
    }
    records = helpers.read_log(log_dir)
    began = [(r["tuner_id"], r["trial_id"]) for r in records if r["event"] == "begin"]
    assert ("tuner1", abandoned) in began and ("tuner0", abandoned) in began  # taken over
    ends = Counter(int(r["trial_id"]) for r in records if r["event"] == "end")
    assert ends == Counter(range(NUM_TRIALS))  # every trial ended once, by the live worker
