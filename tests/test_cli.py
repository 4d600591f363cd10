"""The `kplaybook` command and the example script, run as a user would."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import kplaybook as kp

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run(*args, timeout=300):
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT
    )


@pytest.mark.slow
def test_demo_runs_offline_and_prints_the_best_trial_per_depth(tmp_path):
    result = run("-m", "kplaybook", "demo", "--trials-per-study", "2", "--epochs", "2",
                 "--directory", str(tmp_path))
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


def test_bad_demo_arguments_are_one_line_errors(tmp_path):
    result = run("-m", "kplaybook", "demo", "--epochs", "0")
    assert result.returncode == 2
    assert "expected a positive integer, got '0'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_example_depth_study_runs_offline_on_digits(tmp_path):
    result = run("examples/depth_study.py", "--trials-per-study", "1", "--epochs", "1",
                 "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    study = kp.Study.load(tmp_path / "depth_digits")
    assert study.status_counts()["completed"] == 3
    assert "Study written to" in result.stdout
