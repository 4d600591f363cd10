"""End to end on really trained studies: replicate, compare, export, the HTML report in Chromium, the CLI."""

import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest
from browser import open_report
from browser import require_chromium
from helpers import kplaybook_cli

import kplaybook as kp
from kplaybook.analysis import plot_data
from kplaybook.cli import main

EPOCHS = 4


def build(hp):
    model = keras.Sequential([keras.Input((64,))])
    for _ in range(hp.Int("depth", 1, 2)):
        model.add(keras.layers.Dense(16, activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    lr = hp.Float("learning_rate", 1e-3, 1e-1, sampling="log")
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    return model


def run_study(directory, name, trials_per_study, seed):
    (x, y), (xv, yv) = kp.datasets.load("digits")
    tuner = kp.PlaybookTuner(
        build,
        objective="val_loss",
        scientific={"depth": [1, 2]},
        trials_per_study=trials_per_study,
        seed=seed,
        directory=str(directory),
        project_name=name,
        goal=f"Does depth help? ({name})",
    )
    tuner.search(
        x,
        y,
        validation_data=(xv, yv),
        epochs=EPOCHS,
        batch_size=128,
        verbose=0,
        callbacks=[
            kp.callbacks.GradientNormLogger(),
            kp.callbacks.GradientClipping(percentile=90, min_history=5),
        ],
    )
    return tuner


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Two real studies (6 and 2 trials per depth), each with 2 seed replicates of its best trials."""
    directory = tmp_path_factory.mktemp("studies")
    # The search records the command that re-runs it, from sys.argv; a known
    # script path makes it deterministic (a pytest-xdist worker's own argv is
    # "-c", which has no script to re-run, so no command is recorded).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [__file__, "--studies"])
        tuner_a = run_study(directory, "a", trials_per_study=6, seed=0)
    study_a = tuner_a.study()
    replicates_a = study_a.replicate(top_k=1, seeds=2)  # reuses the search's arguments
    tuner_b = run_study(directory, "b", trials_per_study=2, seed=1)
    tuner_b.study().replicate(top_k=1, seeds=2)
    return directory, replicates_a


@pytest.mark.slow
def test_replicate_retrains_the_best_trial_of_each_value_with_each_seed(studies):
    directory, replicates = studies
    study = kp.Study.load(directory / "a")
    best = study.best_per_scientific()
    assert len(replicates) == 4
    assert sorted(zip(replicates["depth"], replicates["seed"])) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert set(replicates["trial_id"]) == set(best["trial_id"])
    assert (replicates["status"] == "completed").all()
    assert np.isfinite(replicates["objective"]).all()
    # Each run's objective is its own best epoch, and seeds give different runs.
    for _, run in replicates.iterrows():
        curves = study.replicate_curves(run["trial_id"], run["seed"])
        assert len(curves) == EPOCHS
        assert run["objective"] == pytest.approx(curves["val_loss"].min())
    for depth in (1, 2):
        runs = replicates[replicates["depth"] == depth]["objective"]
        assert runs.iloc[0] != runs.iloc[1]
    # The isolation plot shows their mean and std.
    data = plot_data.isolation_plot_data(study)
    for i, depth in enumerate((1, 2)):
        runs = replicates[replicates["depth"] == depth]["objective"]
        assert data.replicates[i] == 2
        assert data.mean[i] == pytest.approx(runs.mean())
        assert data.std[i] == pytest.approx(runs.std(ddof=1))


@pytest.mark.slow
def test_replicate_resumes_and_needs_model_code_when_loaded(studies):
    directory, _ = studies
    study = kp.Study.load(directory / "a")
    with pytest.raises(ValueError, match="without its model code; pass hypermodel="):
        study.replicate(seeds=2)
    (x, y), (xv, yv) = kp.datasets.load("digits")
    before = study.replicates()
    fit = dict(x=x, y=y, validation_data=(xv, yv), epochs=EPOCHS, batch_size=128, verbose=0)
    # Other training arguments would measure something else: refused, nothing lost.
    with pytest.raises(kp.StudyError, match="pass the same fit arguments"):
        study.replicate(seeds=[1, 2, 3], hypermodel=build, **{**fit, "epochs": 2})
    pd.testing.assert_frame_equal(study.replicates(), before)
    # Seeds 1 and 2 are recorded: only seed 3 runs, for the best trial of each depth.
    after = study.replicate(seeds=[1, 2, 3], hypermodel=build, **fit)
    assert len(after) == len(before) + 2
    assert sorted(after[after["seed"] == 3]["depth"]) == [1, 2]
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)
    with pytest.raises(ValueError, match="seeds must be"):
        study.replicate(seeds=0, hypermodel=build, x=x, y=y)


@pytest.mark.slow
def test_compare_two_studies_against_seed_noise(studies):
    directory, _ = studies
    a, b = kp.Study.load(directory / "a"), kp.Study.load(directory / "b")
    comparison = kp.compare(a, b)
    table = comparison.table
    assert list(table["scientific"]) == ["depth=1", "depth=2"]
    for _, row in table.iterrows():
        depth = int(row["scientific"].split("=")[1])
        # Every recorded replicate of the best trial (the resume test may have added seed 3).
        runs_a = a.replicates().query(f"depth == {depth}")["objective"]
        runs_b = b.replicates().query(f"depth == {depth}")["objective"]
        assert (row["a_n"], row["b_n"]) == (len(runs_a), len(runs_b))
        assert row["a_mean"] == pytest.approx(runs_a.mean())
        assert row["b_mean"] == pytest.approx(runs_b.mean())
        noise = np.sqrt(row["a_std"] ** 2 / row["a_n"] + row["b_std"] ** 2 / row["b_n"])
        assert row["noise"] == pytest.approx(noise)
        assert row["beats_noise"] == (abs(row["difference"]) > 2 * noise)
        assert row["better"] == ("b" if row["difference"] < 0 else "a")
    text = str(comparison)
    assert "depth=1:" in text and "depth=2:" in text


@pytest.mark.slow
def test_export_writes_every_file_and_the_report_opens_in_chromium(studies, tmp_path):
    require_chromium()
    directory, _ = studies
    study = kp.Study.load(directory / "a")
    paths = study.export(tmp_path / "out")
    out = tmp_path / "out"
    for name in (
        "report.html",
        "summary.md",
        "trials.csv",
        "best_per_scientific.csv",
        "spreadsheet_row.csv",
        "replicates.csv",
        "findings.json",
        "study.json",
    ):
        assert (out / name).exists(), name
        assert Path(paths[name]) == out / name
    findings = study.check()
    assert json.loads((out / "findings.json").read_text()) == json.loads(
        json.dumps([f.to_dict() for f in findings])
    )
    assert len(pd.read_csv(out / "trials.csv")) == 12
    assert len(pd.read_csv(out / "best_per_scientific.csv")) == 2
    row = pd.read_csv(out / "spreadsheet_row.csv").iloc[0]
    assert row["study"] == "a" and row["goal"] == "Does depth help? (a)"
    assert row["trials"] == 12
    assert row["command"] == shlex.join(["python", __file__, "--studies"])
    assert row["best"] == pytest.approx(study.best_per_scientific()["objective"].min())
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert {"axis.png", "isolation.png", "curves.png", "sampling.png"} <= set(pngs)
    assert any(name.startswith("grad_norms_") for name in pngs)  # the search logged norms
    summary = (out / "summary.md").read_text()
    for name in pngs:
        assert f"(plots/{name})" in summary
    for finding in findings:
        assert finding.code in summary

    # Self-contained: the report alone, moved away from plots/, still shows every plot.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(out / "report.html", alone / "report.html")
    page = open_report(alone / "report.html", tmp_path / "report.png")
    assert page["images"] == len(pngs)
    assert page["images_loaded"] == page["images"] and page["broken_images"] == []
    assert page["tables"]["findings"] == max(1, len(findings))
    assert page["tables"]["best"] == 2 and page["tables"]["trials"] == 12
    assert page["network_requests"] == []  # opens offline
    assert page["title"] == "kplaybook report: a"
    assert "Does depth help? (a)" in page["text"]
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_export_formats_subset_and_bad_format(studies, tmp_path):
    directory, _ = studies
    study = kp.Study.load(directory / "b")
    written = study.export(tmp_path / "csv", formats=("csv",))
    assert sorted(written) == sorted(
        ["trials.csv", "best_per_scientific.csv", "spreadsheet_row.csv", "replicates.csv"]
    )
    assert sorted(os.listdir(tmp_path / "csv")) == sorted(written)
    with pytest.raises(ValueError, match="Unknown export format"):
        study.export(tmp_path / "bad", formats=("html", "pdf"))
    assert not (tmp_path / "bad").exists()


cli = kplaybook_cli


@pytest.mark.slow
def test_cli_report_and_compare(studies, tmp_path):
    directory, _ = studies
    result = cli("report", directory / "b", "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Report: {tmp_path / 'r' / 'report.html'}" in result.stdout
    assert (tmp_path / "r" / "report.html").exists()
    result = cli("compare", directory / "a", directory / "b")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "depth=1:" in result.stdout and "a_mean" in result.stdout


@pytest.mark.slow
def test_cli_errors_are_one_sentence_without_traceback(studies, tmp_path, capsys):
    directory, _ = studies
    broken = tmp_path / "broken"
    shutil.copytree(directory / "b", broken)
    (broken / "oracle.json").write_text("{not json")
    bad_trial = tmp_path / "bad_trial"
    shutil.copytree(directory / "b", bad_trial)
    next(bad_trial.glob("trial_*/trial.json")).write_text("[]")
    bad_replicates = tmp_path / "bad_replicates"
    shutil.copytree(directory / "b", bad_replicates)
    (bad_replicates / "replicates.json").write_text('{"runs": [{"trial_id": "0"}]}')
    bad_steps = tmp_path / "bad_steps"
    shutil.copytree(directory / "b", bad_steps)
    for steps in bad_steps.glob("trial_*/steps.json"):
        steps.write_text("[]")
    cases = [
        (("report", tmp_path / "missing"), "does not exist"),
        (("report", bad_replicates), "replicates.json cannot be read"),
        (("report", bad_steps), "steps.json cannot be read"),
        (("report", broken), "cannot be read"),
        (("report", bad_trial), "cannot be read"),
        (("compare", directory / "a", tmp_path), "is not a study"),
    ]
    # One case as a real subprocess (what a user sees), the rest through the same main().
    result = cli(*cases[0][0])
    assert result.returncode == 2
    # Exactly one line: TensorFlow's native log lines are filtered too.
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kplaybook:") and cases[0][1] in lines[0], lines
    for args, expected in cases[1:]:
        assert main([str(a) for a in args]) == 2, args
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kplaybook: ") and expected in lines[0], err
    # Nothing recorded was touched.
    assert (broken / "oracle.json").read_text() == "{not json"


class OwnLoop(kt.HyperModel):
    """A HyperModel whose fit() ignores the callbacks and returns its own result."""

    def build(self, hp):
        return build(hp)

    def fit(self, hp, model, x, y, validation_data, callbacks=None, **kwargs):
        model.fit(x, y, epochs=1, batch_size=256, verbose=0)
        return {"val_loss": float(model.evaluate(*validation_data, verbose=0))}


@pytest.mark.slow
def test_replicate_a_hypermodel_whose_fit_returns_its_result(tmp_path):
    (x, y), (xv, yv) = kp.datasets.load("digits")
    tuner = kp.QuasiRandomSearch(
        OwnLoop(), "val_loss", max_trials=2, seed=0, directory=str(tmp_path), project_name="own"
    )
    tuner.search(x, y, validation_data=(xv, yv))
    runs = tuner.study().replicate(seeds=2)
    assert len(runs) == 2 and (runs["status"] == "completed").all()
    assert np.isfinite(runs["objective"]).all() and runs["objective"].nunique() == 2
