"""The stability callbacks inside PlaybookTuner: per-step records, reload, export, divergence."""

import json
import threading
import warnings

import keras
import numpy as np
import pytest

import kplaybook as kp
from kplaybook.records.steps import StepRecord


def lr_mode_build(hp):
    """A user model that knows nothing of kplaybook; `mode` picks a sane or an absurd LR."""
    mode = hp.Choice("mode", ["ok", "absurd"])
    units = hp.Int("units", 8, 32, sampling="log")
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(units, activation="relu"), keras.layers.Dense(10)]
    )
    lr = 0.05 if mode == "ok" else 1e4
    model.compile(
        keras.optimizers.SGD(lr, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


@pytest.fixture(scope="module")
def stability_study(tmp_path_factory, digits):
    (x, y), (xv, yv) = digits
    directory = tmp_path_factory.mktemp("stability")
    tuner = kp.PlaybookTuner(
        lr_mode_build,
        objective="val_loss",
        scientific={"mode": ["ok", "absurd"]},
        trials_per_study=2,
        seed=0,
        directory=str(directory),
        project_name="stab",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        tuner.search(
            x,
            y,
            validation_data=(xv, yv),
            epochs=3,
            batch_size=40,  # 10 steps per epoch
            verbose=0,
            callbacks=[
                kp.callbacks.Warmup(5),
                kp.callbacks.GradientNormLogger(),
                kp.callbacks.GradientClipping(percentile=90, min_history=4),
                kp.callbacks.DivergenceMonitor(patience=3, factor=5.0),
            ],
        )
    return tuner, directory / "stab"


def test_an_absurd_learning_rate_ends_infeasible_as_diverged_and_the_study_goes_on(stability_study):
    tuner, path = stability_study
    frame = kp.Study.load(path).to_dataframe()
    assert len(frame) == 4
    absurd = frame[frame["mode"] == "absurd"]
    ok = frame[frame["mode"] == "ok"]
    assert (absurd["status"] == "infeasible").all()
    assert (absurd["infeasible_reason"] == "diverged").all()
    assert (ok["status"] == "completed").all()
    assert ok["objective"].notna().all()


def test_per_step_values_are_stored_with_the_trial_and_survive_reload(stability_study):
    _, path = stability_study
    study = kp.Study.load(path)  # a fresh read from disk
    ok = study.to_dataframe().query("mode == 'ok'")
    trial_id = ok["trial_id"].iloc[0]
    steps = study.steps(trial_id)
    assert list(steps.index) == list(range(1, 31))  # 3 epochs x 10 steps, every step
    # step_loss: each step's own loss, logged because a DivergenceMonitor is present.
    assert set(steps.columns) == {"grad_norm", "lr", "clip_fraction", "clip_threshold", "step_loss"}
    assert (steps["grad_norm"] > 0).all()
    # Warmup(5) on the compiled 0.05: update k ran at rate 0.05 * (k - 1) / 5.
    expected_lr = [0.05 * min(k - 1, 5) / 5 for k in steps.index]
    np.testing.assert_allclose(steps["lr"], expected_lr, rtol=1e-6)
    assert ((steps["clip_fraction"] >= 0) & (steps["clip_fraction"] <= 1)).all()
    # Epoch curves carry the epoch means, consistent with the per-step record.
    curves = study.curves(trial_id)
    assert curves["grad_norm"].iloc[0] == pytest.approx(
        steps.loc[1:10, "grad_norm"].mean(), rel=1e-5
    )
    assert curves["clip_fraction"].iloc[-1] == pytest.approx(steps.loc[30, "clip_fraction"])
    # Keras's epoch loss is the mean of the epoch's per-step losses (equal batches).
    for epoch in range(3):
        window = steps.loc[10 * epoch + 1 : 10 * epoch + 10, "step_loss"]
        assert curves["loss"].iloc[epoch] == pytest.approx(window.mean(), rel=1e-5)


def test_a_diverged_trial_keeps_its_steps_up_to_the_stop(stability_study):
    _, path = stability_study
    study = kp.Study.load(path)
    absurd = study.to_dataframe().query("mode == 'absurd'")
    steps = study.steps(absurd["trial_id"].iloc[0])
    assert 1 <= len(steps) < 30


def test_export_includes_the_per_step_record(stability_study):
    _, path = stability_study
    study = kp.Study.load(path)
    study.export()
    summary = json.loads((path / "study.json").read_text())
    ok = [t for t in summary["trials"] if t["mode"] == "ok"][0]
    assert ok["steps"]["step"][:3] == [1, 2, 3]
    assert len(ok["steps"]["grad_norm"]) == 30
    assert "grad_norm" in ok["curves"]


def test_a_study_without_stability_callbacks_has_no_step_record(tmp_path, digits):
    (x, y), (xv, yv) = digits
    tuner = kp.QuasiRandomSearch(
        lr_mode_build,
        objective="val_loss",
        max_trials=1,
        seed=0,
        directory=str(tmp_path),
        project_name="plain",
    )
    tuner.search(x[:80], y[:80], validation_data=(xv, yv), epochs=1, batch_size=40, verbose=0)
    study = tuner.study()
    assert study.steps(study.trial_ids[0]).empty
    assert not list(tmp_path.glob("plain/trial_*/steps.json"))


def test_step_record_thins_evenly_and_keeps_exact_values():
    record = StepRecord(["grad_norm"], cap=100)
    order = np.random.default_rng(0).permutation(np.arange(1, 1001))
    threads = [
        threading.Thread(
            target=lambda part=part: [record.add(int(s), {"grad_norm": s * 0.5}) for s in part]
        )
        for part in np.array_split(order, 4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = record.rows()
    assert record.stride == 16
    assert [s for s, _ in rows] == list(range(16, 1001, 16))
    assert all(v["grad_norm"] == s * 0.5 for s, v in rows)
    assert len(rows) <= 100


def test_divergence_monitor_in_plain_fit_stops_and_says_why(digits):
    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    model = lr_mode_build(_fixed_hp("absurd"))
    monitor = kp.callbacks.DivergenceMonitor(patience=3, factor=5.0)
    with pytest.warns(kp.PlaybookWarning, match="DivergenceMonitor stopped training"):
        history = model.fit(x, y, batch_size=40, epochs=5, verbose=0, callbacks=[monitor])
    assert monitor.diverged
    assert monitor.step is not None and monitor.step < 50
    assert monitor.reason
    assert len(history.history["loss"]) == 1  # stopped in the first epoch


def test_divergence_monitor_leaves_a_healthy_run_alone(digits):
    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    model = lr_mode_build(_fixed_hp("ok"))
    monitor = kp.callbacks.DivergenceMonitor(patience=3, factor=5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", kp.PlaybookWarning)
        history = model.fit(x, y, batch_size=40, epochs=3, verbose=0, callbacks=[monitor])
    assert not monitor.diverged
    assert len(history.history["loss"]) == 3


def _fixed_hp(mode):
    import keras_tuner as kt

    hp = kt.HyperParameters()
    hp.Fixed("mode", mode)
    hp.Fixed("units", 16)
    return hp
