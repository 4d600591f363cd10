"""The `kplaybook` command and the example script, run as a user would."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import kplaybook_cli
from helpers import run_python as run

import kplaybook as kp
from kplaybook.cli import PROBE_MAX_BATCH_SIZE
from kplaybook.cli import main
from kplaybook.native_logs import NativeLogFilter


@pytest.mark.slow
def test_demo_runs_a_playbook_offline_and_prints_each_decision(tmp_path):
    result = run(
        "-m",
        "kplaybook",
        "demo",
        "--max-trials",
        "45",
        "--epochs",
        "1",
        "--directory",
        str(tmp_path),
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout.splitlines()
    playbook = kp.Playbook.load(tmp_path / "demo_playbook")
    decisions = playbook.decisions
    # One line per decision, as it is taken, then the final configuration.
    lines = [line for line in out if line.startswith("[")]
    assert lines == [d.line() for d in decisions]
    assert decisions[-1].stage == "final"
    assert {d.stage for d in decisions} >= {"goal:depth", "goal:dropout", "final"}
    final = next(line for line in out if line.startswith("Final configuration: "))
    assert "num_hidden_layers=" in final and "use_dropout=" in final and "learning_rate=" in final
    assert any(line.startswith("Final val_loss: ") and "±" in line for line in out)
    assert f"{playbook.result.trials_used} trainings in " in result.stdout
    assert playbook.result.trials_used <= 45
    report = next(line for line in out if line.startswith("Report: ")).split(": ", 1)[1]
    assert Path(report) == tmp_path / "demo_playbook" / "playbook.html" and Path(report).exists()
    assert result.stderr == "", result.stderr


def test_the_playbook_demo_refuses_rounds_too_small(tmp_path):
    result = run("-m", "kplaybook", "demo", "--trials-per-study", "2", "--directory", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().endswith("is too few for a playbook round; pass 4 or more.")
    result = run("-m", "kplaybook", "demo", "--max-trials", "20", "--directory", str(tmp_path))
    assert result.returncode == 2 and "max_trials=20 cannot pay" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_demo_study_runs_offline_and_prints_the_best_trial_per_depth(tmp_path):
    result = run(
        "-m",
        "kplaybook",
        "demo",
        "--study",
        "--trials-per-study",
        "2",
        "--epochs",
        "2",
        "--directory",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "6 trials (6 completed, 0 infeasible, 0 failed)" in out
    table = out.split("Best trial per scientific value:")[1].splitlines()
    assert table[1].split()[0] == "num_hidden_layers"
    assert [line.split()[0] for line in table[2:5]] == ["1", "2", "3"]
    study = kp.Study.load(tmp_path / "demo")
    assert study.best_per_scientific()["completed"].tolist() == [2, 2, 2]
    assert study.nuisance == ["learning_rate"]  # budget 2 < 10: learning rate only
    assert (tmp_path / "demo" / "trials.csv").exists()
    assert (tmp_path / "demo" / "study.json").exists()
    # The demo writes the report and prints where it is.
    report = out.split("Report: ")[1].splitlines()[0]
    assert Path(report) == tmp_path / "demo" / "report.html" and Path(report).exists()
    assert "Does depth help" in (tmp_path / "demo" / "summary.md").read_text()
    # The findings follow the table: the table alone invites a conclusion they may warn against.
    findings = out.split("What the playbook's checks say before concluding anything:")[1]
    codes = {f.code for f in study.check()}
    assert codes and all(f"] {code}:" in findings for code in codes)
    # Nothing but kplaybook's own lines on stderr (TensorFlow's native log is filtered).
    assert result.stderr == "", result.stderr


def test_bad_demo_arguments_are_one_line_errors(tmp_path):
    result = run("-m", "kplaybook", "demo", "--epochs", "0")
    assert result.returncode == 2
    assert "expected a positive integer, got '0'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_example_depth_study_runs_offline_on_digits(tmp_path):
    result = run(
        "examples/depth_study.py",
        "--trials-per-study",
        "1",
        "--epochs",
        "1",
        "--directory",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    study = kp.Study.load(tmp_path / "depth_digits")
    assert study.status_counts()["completed"] == 3
    assert "Study written to" in result.stdout


def test_an_error_is_one_line_on_stderr_with_exit_code_2(tmp_path):
    result = kplaybook_cli("report", tmp_path / "missing")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"kplaybook: No study at {tmp_path / 'missing'}: the directory does not exist; pass "
        "the study's folder (directory/project_name)."
    ]
    assert result.stdout == ""


def test_verbose_keeps_the_traceback(tmp_path):
    result = kplaybook_cli("report", tmp_path / "missing", "--verbose")
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "StudyError: No study at" in result.stderr


def test_demo_into_a_file_is_a_one_line_error(tmp_path, capsys):
    a_file = tmp_path / "not_a_directory"
    a_file.write_text("x")
    assert main(["demo", "--directory", str(a_file)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"kplaybook: --directory {a_file} is a file; pass a directory to write the study into."
    ]
    assert a_file.read_text() == "x"


def test_the_probe_command_caps_the_batch_size_where_the_api_does():
    from kplaybook.distribute.probe import DEFAULT_MAX_BATCH_SIZE

    assert PROBE_MAX_BATCH_SIZE == DEFAULT_MAX_BATCH_SIZE
    help_text = subprocess.run(
        [sys.executable, "-m", "kplaybook", "probe", "--help"], capture_output=True, text=True
    ).stdout
    assert f"default {DEFAULT_MAX_BATCH_SIZE}" in help_text


NATIVE_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796054420.039913    3200 port.cc:153] oneDNN custom operations are on.",
    "E0000 00:00:1796054420.040937    3200 cuda_executor.cc:1228] failed call to cuInit: UNKNOWN",
    "2024-03-01 12:00:00.123456: W tensorflow/core/framework/op_kernel.cc:1839] OP_REQUIRES failed",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.",
]


def test_the_filter_drops_tensorflow_native_lines_and_keeps_everything_else():
    # In a child process, so that the test's own file descriptor 2 is not touched.
    code = (
        "import os, sys\n"
        "from kplaybook.native_logs import NativeLogFilter\n"
        f"lines = {NATIVE_LINES!r}\n"
        "with NativeLogFilter():\n"
        "    for line in lines[:3]:\n"
        "        os.write(2, (line + '\\n').encode())\n"
        "    print('a python warning, kept', file=sys.stderr)\n"
        "    for line in lines[3:]:\n"
        "        os.write(2, (line + '\\n').encode())\n"
        "    os.write(2, b'E0000 is not enough to look like a log line\\n')\n"
        "print('after the filter', file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1]
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "a python warning, kept",
        "E0000 is not enough to look like a log line",
        "after the filter",
    ]


def test_the_filter_restores_the_descriptor(tmp_path):
    before = os.fstat(2)
    with NativeLogFilter():
        assert os.fstat(2).st_ino != before.st_ino  # a pipe now
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
