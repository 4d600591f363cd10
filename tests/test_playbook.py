"""kp.Playbook end to end: real tiny Keras models on CPU, known answers, the budget, resume, bad input."""

import json
import math
import os
import re
import shutil

import helpers
import keras
import keras_tuner as kt
import numpy as np
import pytest
from browser import open_report
from browser import require_chromium

import kplaybook as kp
from kplaybook import datasets
from kplaybook.playbook import autopilot
from kplaybook.testing import SyntheticTrial
from kplaybook.testing import write_study

RUN = helpers.load_module(helpers.SCRIPTS / "playbook_run.py", "_kp_tests_playbook_run")
MAX_TRIALS = 80
EPOCHS = 3


class Count(keras.callbacks.Callback):
    """Counts every model training (KerasTuner deep-copies callbacks: the count is the class's)."""

    trainings = 0

    def on_train_begin(self, logs=None):
        Count.trainings += 1


def dense_sweep_best(x, y, xv, yv):
    """The learning rate a dense sweep finds best for the width-32 model (2 seeds per rate)."""
    rates = np.geomspace(3e-3, 3e-1, 9)
    means = []
    for lr in rates:
        values = []
        for seed in range(2):
            keras.utils.set_random_seed(seed)
            hp = kt.HyperParameters()
            hp.values = {"tag": 0, "units": 32, "learning_rate": float(lr)}
            model = RUN.build(hp)
            model.optimizer.learning_rate.assign(float(lr))
            history = model.fit(
                x, y, validation_data=(xv, yv), epochs=EPOCHS, batch_size=64, verbose=0
            )
            values.append(min(history.history["val_loss"]))
        means.append(np.mean(values))
    return float(rates[int(np.argmin(means))])


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One playbook run: a learning rate declared two decades low, an irrelevant goal, a width goal."""
    directory = tmp_path_factory.mktemp("playbook")
    (x, y), (xv, yv) = datasets.load("digits")
    Count.trainings = 0
    playbook = RUN.playbook(directory, MAX_TRIALS)
    result = playbook.run(
        x,
        y,
        validation_data=(xv, yv),
        epochs=EPOCHS,
        max_epochs=EPOCHS,
        batch_size=64,
        callbacks=[Count()],
        verbose=False,
    )
    trainings = Count.trainings
    return playbook, result, trainings, (x, y, xv, yv)


def decisions(result, stage=None, action=None):
    return [
        d
        for d in result.decisions
        if (stage is None or d.stage == stage) and (action is None or d.action == action)
    ]


@pytest.mark.slow
def test_a_range_declared_too_low_is_widened_to_the_rate_a_dense_sweep_finds(digits_run):
    playbook, result, _, data = digits_run
    widened = [
        d
        for d in decisions(result, action="widen")
        if d.evidence["hyperparameter"] == "learning_rate"
    ]
    assert len(widened) >= 2
    assert widened[0].evidence["new_range"] == pytest.approx([1e-5, 1e-2])
    assert all(d.evidence["edge"] == "high" and d.study for d in widened)
    assert "widen it to" in widened[0].reason
    best = dense_sweep_best(*data)
    final = result.best_hyperparameters["learning_rate"]
    assert best / 5 <= final <= best * 5, (final, best)


@pytest.mark.slow
def test_an_irrelevant_value_is_kept_and_a_helpful_one_adopted(digits_run):
    _, result, _, _ = digits_run
    (tag,) = decisions(result, "goal:tag", "keep_baseline") or decisions(result, "goal:tag")[-1:]
    assert tag.action == "keep_baseline", tag.reason
    (width,) = decisions(result, "goal:width", "adopt")
    assert width.changes == {"adopted": {"units": 32}}
    gap = width.evidence["gaps"]["1"]
    assert gap["beats_noise"] and gap["gain"] > 3 * gap["noise"]
    assert "beat the baseline units=1" in width.reason
    assert result.best_hyperparameters["units"] == 32 and result.best_hyperparameters["tag"] == 0
    assert math.isfinite(result.best_value) and result.best_std >= 0
    assert len(result.replicates) == 3


@pytest.mark.slow
def test_the_budget_holds_and_the_last_decision_says_why_it_stopped(digits_run):
    playbook, result, trainings, _ = digits_run
    assert trainings == result.trials_used <= MAX_TRIALS
    last = result.decisions[-1]
    assert last.stage == "final" and last.action in ("finish", "stop_budget")
    assert f"of {MAX_TRIALS} trainings" in last.reason
    assert {d.action for d in result.decisions} <= set(kp.playbook.ACTIONS)
    keys = [d.key for d in result.decisions]
    assert len(keys) == len(set(keys))
    assert all(d.reason.endswith(".") and d.evidence for d in result.decisions)


@pytest.mark.slow
def test_a_finished_run_is_read_back_and_run_again_trains_nothing(digits_run):
    playbook, result, _, (x, y, xv, yv) = digits_run
    loaded = kp.Playbook.load(playbook.directory)
    assert loaded.result.best_hyperparameters == result.best_hyperparameters
    assert [d.to_json() for d in loaded.decisions] == [d.to_json() for d in result.decisions]
    assert loaded.trials_used() == result.trials_used
    with pytest.raises(ValueError, match="without its model"):
        loaded.run(x, y)
    Count.trainings = 0
    again = RUN.playbook(os.path.dirname(playbook.directory), MAX_TRIALS).run(
        x,
        y,
        validation_data=(xv, yv),
        epochs=EPOCHS,
        max_epochs=EPOCHS,
        batch_size=64,
        callbacks=[Count()],
        verbose=False,
    )
    assert Count.trainings == 0
    assert again.to_json() == result.to_json()


@pytest.mark.slow
def test_the_report_is_one_page_with_a_timeline_linking_each_round(digits_run, tmp_path):
    require_chromium()
    playbook, result, _, _ = digits_run
    path = playbook.report()
    text = open(path).read()
    links = re.findall(r'<a class="study" href="([^"]+)"', text)
    assert links and all(os.path.isfile(os.path.join(playbook.directory, link)) for link in links)
    page = open_report(path, tmp_path / "playbook.png")
    assert page["network_requests"] == [] and page["broken_images"] == []
    assert page["images"] == page["images_loaded"] == 1
    assert page["tables"]["final-configuration"] == len(result.best_hyperparameters)
    assert f"Timeline ({len(result.decisions)} decisions)" in page["text"]
    assert "±" in page["text"] and "learning_rate" in page["text"]
    for d in result.decisions:
        assert d.reason in page["text"]


def diverging_build(hp):
    """Regression with plain SGD: every learning rate above about 0.35 diverges to NaN."""
    hp.Choice("variant", ["a", "b"])
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(keras.optimizers.SGD(hp.Float("learning_rate", 1e-2, 3.0, sampling="log")), "mse")
    return model


def regression_data(seed, n):
    x = np.random.default_rng(seed).normal(size=(n, 8)).astype("float32")
    return x, (np.sin(2 * x[:, 0]) * x[:, 1] + x[:, 2] ** 2).astype("float32")[:, None]


@pytest.mark.slow
def test_a_diverging_model_gets_a_remedy_and_short_training_gets_longer(tmp_path):
    x, y = regression_data(0, 1024)
    xv, yv = regression_data(1, 256)
    playbook = kp.Playbook(
        diverging_build,
        goals=[kp.Goal("variant", {"variant": ["a", "b"]})],
        max_trials=40,
        trials_per_study=6,
        directory=tmp_path,
        project_name="diverge",
        replicate_seeds=2,
        final_seeds=2,
    )
    result = playbook.run(
        x, y, validation_data=(xv, yv), epochs=2, max_epochs=8, batch_size=32, verbose=False
    )
    actions = [d.action for d in result.decisions]
    remedies = [d for d in result.decisions if d.action in ("warmup", "clipping", "narrow")]
    assert remedies, actions
    first = remedies[0]
    assert first.evidence["finding"] == "infeasible_fraction"
    assert first.evidence["hyperparameter"] == "learning_rate"
    assert 0.2 < first.evidence["threshold"] < 1.0
    assert "longer_training" in actions
    # The studies after the first remedy are mostly feasible.
    settings = playbook.run_settings()
    before = kp.Study.load(first.study)
    after = [
        kp.Study.load(os.path.join(playbook.directory, name))
        for name in settings
        if name > before.name
    ]
    assert after

    def infeasible_share(study):
        counts = study.status_counts()
        return counts.get("infeasible", 0) / max(1, sum(counts.values()))

    assert infeasible_share(before) >= 0.25
    assert all(infeasible_share(s) < 0.5 for s in after)
    assert result.trials_used <= 40


@pytest.mark.slow
def test_killed_at_several_moments_it_resumes_and_loses_nothing(tmp_path):
    log = tmp_path / "trainings.log"
    script = helpers.SCRIPTS / "playbook_run.py"
    kills = (
        ["--kill-after", "5"],
        ["--kill-after", "14"],
        ["--kill-in-write", "4"],
    )
    for args in kills:
        done = helpers.run_python(script, tmp_path, log, "--max-trials", 32, *args, timeout=600)
        assert done.returncode == -9, done.stderr[-2000:]
    finished = helpers.run_python(script, tmp_path, log, "--max-trials", 32, timeout=900)
    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    state = json.loads((tmp_path / "run" / "playbook.json").read_text())
    keys = [d["key"] for d in state["decisions"]]
    assert len(keys) == len(set(keys))
    assert summary["trials_used"] <= 32 and summary["decisions"] == len(keys)
    # Every training that was not killed ended; each kill interrupted at most one.
    lines = log.read_text().split()
    begins, ends = lines[0::2].count("begin"), lines[0::2].count("end")
    assert begins - ends <= len(kills)
    # Nothing recorded twice: every study's trials are distinct and finished.
    for name in state["settings"]:
        study = kp.Study.load(tmp_path / "run" / name)
        counts = study.status_counts()
        assert counts["running"] == counts["failed"] == 0, (name, counts)
        ids = [study.trial(t).trial_id for t in study.trial_ids]
        assert len(ids) == len(set(ids))
    assert ends == summary["trials_used"]
    # A finished run started again trains nothing and decides nothing new.
    before = (tmp_path / "run" / "playbook.json").read_text()
    again = helpers.run_python(script, tmp_path, log, "--max-trials", 32, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert log.read_text().split()[0::2].count("begin") == begins
    assert json.loads((tmp_path / "run" / "playbook.json").read_text()) == json.loads(before)


# -- bad input: one sentence, nothing on disk lost ----------------------------------------------


def test_goals_are_checked_when_the_playbook_is_made(tmp_path):
    goal = kp.Goal("width", {"units": [1, 32]})
    cases = [
        (dict(goals=[]), ValueError, "goals is empty"),
        (dict(goals=goal), TypeError, "goals must be a list of kp.Goal"),
        (dict(goals=["width"]), TypeError, "goals must be kp.Goal objects"),
        (
            dict(goals=[goal, kp.Goal("width", {"tag": [0, 1]})]),
            ValueError,
            "Two goals are named 'width'",
        ),
        (dict(goals=[goal], max_trials=10), ValueError, r"max_trials=10 cannot pay .* >= 19"),
        (dict(goals=[goal], trials_per_study=2), ValueError, "trials_per_study"),
        (dict(goals=[goal], replicate_seeds=1), ValueError, "replicate_seeds"),
        (dict(goals=[goal], objective=["val_loss", "loss"]), ValueError, "one metric name"),
        (dict(goals=[goal], learning_rate=3), TypeError, "learning_rate must be"),
    ]
    for kwargs, error, message in cases:
        kwargs = {"max_trials": 100, "directory": tmp_path, **kwargs}
        with pytest.raises(error, match=message):
            kp.Playbook(RUN.build, **kwargs)
    for args, message in [
        (("", {"a": [1, 2]}), "non-empty str"),
        (("g", {}), "non-empty dict"),
        (("g", {"a": [1]}), "at least two values"),
        (("g", {"a": [1, 2]}, 3), r"baseline a=3 is not one of the compared values \[1, 2\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            kp.Goal(*args)
    assert not os.listdir(tmp_path)


def test_an_undeclared_name_is_refused_before_any_training(tmp_path):
    (x, y), (xv, yv) = datasets.load("digits")
    Count.trainings = 0
    playbook = kp.Playbook(
        RUN.build,
        goals=[kp.Goal("depth", {"num_layers": [1, 2]})],
        max_trials=100,
        directory=tmp_path,
        project_name="p",
    )
    with pytest.raises(ValueError, match=r"Goal 'depth' names 'num_layers', which build\(hp\)"):
        playbook.run(
            x[:100],
            y[:100],
            validation_data=(xv[:50], yv[:50]),
            epochs=1,
            batch_size=32,
            callbacks=[Count()],
        )
    assert Count.trainings == 0 and not (tmp_path / "p" / "playbook.json").exists()
    with pytest.raises(ValueError, match="batch_size=None asks the probe"):
        playbook.run(None, None, epochs=1)


def test_a_changed_configuration_is_refused_on_resume_and_nothing_is_lost(tmp_path):
    (x, y), (xv, yv) = datasets.load("digits")
    first = RUN.playbook(tmp_path, 60)
    first._check_goals = lambda: {}  # write the run's record as run() does, without training
    first._fit = {}
    first._open(first._config({"epochs": 1, "batch_size": 32, "max_epochs": 4}))
    first._state["decisions"].append(
        kp.Decision("setup", "batch_size", "Recorded.", {"n": 1}, None, "k").to_json()
    )
    first._save()
    before = (tmp_path / "run" / "playbook.json").read_bytes()
    for playbook, kwargs, differing in [
        (RUN.playbook(tmp_path, 80), dict(epochs=1, batch_size=32), "max_trials"),
        (RUN.playbook(tmp_path, 60), dict(epochs=2, batch_size=32), "fit"),
    ]:
        with pytest.raises(kp.StudyError, match=rf"was run with other settings \({differing}\)"):
            playbook.run(
                x[:100], y[:100], validation_data=(xv[:50], yv[:50]), max_epochs=4, **kwargs
            )
    assert (tmp_path / "run" / "playbook.json").read_bytes() == before
    with pytest.raises(kp.StudyError, match="holds no playbook run"):
        kp.Playbook.load(tmp_path)


def test_a_remedy_that_needs_the_learning_rate_says_how_to_name_it(tmp_path):
    """Trials diverge above some momentum and no hyperparameter is named like a learning rate."""
    hp = kt.HyperParameters()
    hp.Choice("variant", ["a", "b"])
    hp.Float("momentum", 0.0, 0.99)
    hp.Float("step", 1e-3, 1.0, sampling="log")
    trials = []
    for i in range(16):
        momentum = 0.99 * (i // 2 + 0.5) / 8
        values = {"variant": "ab"[i % 2], "momentum": momentum, "step": 0.01}
        if momentum > 0.7:
            trials.append(SyntheticTrial(values, status="infeasible", reason="nan_loss"))
        else:
            y = 1.0 - momentum
            trials.append(SyntheticTrial(values, {"val_loss": [y + 0.2, y]}))
    study = kp.Study.load(
        write_study(tmp_path / "s", hp, trials, scientific={"variant": ["a", "b"]})
    )
    playbook = kp.Playbook(
        lambda hp: None,
        goals=[kp.Goal("variant", {"variant": ["a", "b"]})],
        max_trials=100,
        directory=tmp_path,
        project_name="p",
    )
    playbook._open(playbook._config({}))
    playbook._declared = {h.name: h for h in hp.space}
    before = (tmp_path / "p" / "playbook.json").read_bytes()
    run = autopilot._RunState(epochs=2, max_epochs=8, batch_size=32)
    with pytest.raises(ValueError, match=r"above momentum=0\.80.*learning_rate='<its name>'"):
        playbook._round_actions(
            "goal:variant", "goal:variant/round:0", study, study.check(), run, {}, playbook.goals[0]
        )
    assert (tmp_path / "p" / "playbook.json").read_bytes() == before
    shutil.rmtree(tmp_path / "s")
