"""lr_sweep and warmup_sweep on small real models."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import kplaybook as kp


@pytest.fixture(scope="module")
def digits_train():
    (x, y), _ = kp.datasets.load_digits(seed=0)
    return np.asarray(x[:1024], np.float32), np.asarray(y[:1024])


def small_mlp():
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile(
        keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


@pytest.fixture(scope="module")
def lr_result(digits_train):
    return kp.lr_sweep(small_mlp, digits_train, [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0], steps=100)


def test_lr_sweep_finds_a_finite_best_lr_and_an_unstable_lr_above_it(lr_result):
    frame = lr_result.to_dataframe()
    assert list(frame.index) == [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]
    best, unstable = lr_result.best_lr, lr_result.unstable_lr
    assert best is not None and unstable is not None
    assert best < unstable
    assert math.isfinite(frame.loc[best, "final_loss"])
    assert frame.loc[best, "final_loss"] == frame.loc[frame["stable"], "final_loss"].min()
    assert frame.loc[best, "final_loss"] < frame.loc[best, "initial_loss"] / 2
    # Every rate starts from the same weights and is measured on the same batches.
    assert frame["initial_loss"].nunique() == 1
    # The definition: the smallest rate that diverged or ended above its start.
    bad = frame[frame["diverged"] | frame["ended_above_start"]]
    assert unstable == bad.index.min()
    assert frame.loc[frame.index < unstable, "stable"].all()


def test_lr_sweep_records_curves_and_gradient_norms(lr_result):
    curves = lr_result.curves()
    curve = curves[lr_result.best_lr]
    assert list(curve.index) == list(range(2, 101, 2))  # 50 points of 2 steps
    assert curve["loss"].iloc[-1] < curve["loss"].iloc[0]
    np.testing.assert_allclose(curve["lr"], lr_result.best_lr, rtol=1e-6)
    frame = lr_result.to_dataframe()
    assert (frame.loc[frame["stable"], "grad_norm_median"] > 0).all()
    assert (frame.loc[frame["stable"], "steps_run"] == 100).all()


def test_lr_sweep_plot_data_and_figure(lr_result, tmp_path):
    data = lr_result.plot_data()
    assert data["best_lr"] == lr_result.best_lr
    assert lr_result.best_lr in data["curves"]
    higher = [lr for lr in data["curves"] if lr > lr_result.best_lr]
    assert higher  # the rates just above lr* are shown (PLAYBOOK.md 28)
    fig = lr_result.plot()
    fig.savefig(tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 10_000
    assert len(fig.axes) == 2


def test_lr_sweep_accepts_a_batched_dataset(digits_train):
    x, y = digits_train
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    result = kp.lr_sweep(small_mlp, dataset, [0.1], steps=20)
    assert result.best_lr == 0.1


def test_sweep_inputs_get_clear_errors(digits_train):
    with pytest.raises(ValueError, match="learning_rates is empty"):
        kp.lr_sweep(small_mlp, digits_train, [], steps=10)
    with pytest.raises(ValueError, match="positive and finite"):
        kp.lr_sweep(small_mlp, digits_train, [0.1, -1.0], steps=10)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        kp.lr_sweep(small_mlp, digits_train, [0.1], steps=0)
    with pytest.raises(TypeError, match="train_data must be"):
        kp.lr_sweep(small_mlp, "digits", [0.1], steps=10)

    def scheduled():
        model = small_mlp()
        model.compile(
            keras.optimizers.SGD(kp.schedules.WarmupDecay(0.1, 2, 10)),
            "sparse_categorical_crossentropy",
        )
        return model

    with pytest.raises(TypeError, match="float learning rate"):
        kp.lr_sweep(scheduled, digits_train, [0.1], steps=5)
    with pytest.raises(ValueError, match="exceed 10% of max_train_steps"):
        kp.warmup_sweep(small_mlp, digits_train, 1.0, [10, 500], max_train_steps=1000)
    with pytest.raises(ValueError, match="warmup_steps_list is empty"):
        kp.warmup_sweep(small_mlp, digits_train, 1.0, [], max_train_steps=1000)


def sharp_residual_mlp(depth=8, width=64):
    """Residual ReLU MLP without normalisation, kernels at 4x He variance: a very sharp start.

    Without warmup SGD+momentum diverges from a learning rate of ~1e-3; a
    long enough linear warmup lets it train at 10x that rate.
    """
    init = keras.initializers.VarianceScaling(
        scale=8.0, mode="fan_in", distribution="truncated_normal"
    )
    inputs = keras.Input((64,))
    h = keras.layers.Dense(width, activation="relu", kernel_initializer=init)(inputs)
    for _ in range(depth - 1):
        h = keras.layers.Add()(
            [h, keras.layers.Dense(width, activation="relu", kernel_initializer=init)(h)]
        )
    model = keras.Model(inputs, keras.layers.Dense(10)(h))
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


@pytest.mark.slow
def test_warmup_sweep_finds_the_warmup_that_makes_10x_the_unstable_lr_stable():
    (x, y), _ = kp.datasets.load_digits(seed=0)
    sweep = kp.lr_sweep(sharp_residual_mlp, (x, y), [1e-4, 3e-4, 1e-3, 3e-3], steps=200, seed=1)
    unstable = sweep.unstable_lr
    assert unstable is not None and sweep.best_lr is not None and sweep.best_lr < unstable
    target = 10 * unstable
    result = kp.warmup_sweep(
        sharp_residual_mlp, (x, y), target, [10, 300], max_train_steps=3000, seed=1
    )
    frame = result.to_dataframe()
    assert list(frame.index) == [0, 10, 300]
    assert (frame["steps_run"].loc[[300]] == 900).all()  # 300 warmup + 2 x 300 at the target
    assert (
        frame.loc[0, "diverged"] and frame.loc[10, "diverged"]
    )  # unstable without (enough) warmup
    assert frame.loc[300, "stable"]
    assert frame.loc[300, "final_loss"] < 0.5
    assert result.shortest_stable_warmup == 300
    assert result.stable_warmups == [300]
    assert any("makes learning rate" in note for note in result.notes)
    assert any("training longer" in note for note in result.notes)  # 300 > 5% of 3000
    curves = result.curves()
    np.testing.assert_allclose(curves[300]["lr"].iloc[-1], target, rtol=1e-6)
    assert curves[300]["lr"].iloc[0] < target  # still ramping at the first point


def test_a_loss_that_blows_up_without_nan_counts_as_diverged():
    (x, y), _ = kp.datasets.load_digits(seed=0)

    def tanh_adam():
        model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(10)]
        )
        model.compile(
            keras.optimizers.Adam(1e-3),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    frame = kp.lr_sweep(tanh_adam, (x, y), [3e-2, 1.0], steps=100).to_dataframe()
    assert frame.loc[3e-2, "stable"] and not frame.loc[3e-2, "diverged"]
    assert frame.loc[1.0, "diverged"]
    assert "stayed above 10x its minimum" in frame.loc[1.0, "divergence_reason"]
    assert frame.loc[1.0, "steps_run"] < 100  # stopped early


@pytest.mark.slow
def test_the_stability_example_runs_offline_and_saves_its_plots(tmp_path):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(root, "examples", "stability.py"),
            "--steps",
            "100",
            "--warmups",
            "10,100",
            "--max-train-steps",
            "1000",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "lr* = " in result.stdout
    assert "Warmup sweep at" in result.stdout
    assert (tmp_path / "lr_sweep.png").stat().st_size > 10_000
    assert (tmp_path / "warmup_sweep.png").stat().st_size > 10_000


def test_every_run_of_a_sweep_sees_the_same_batches_and_fresh_callbacks(digits_train):
    clip = kp.callbacks.GradientClipping(percentile=90, min_history=5)
    # Rates too small to move the weights: any difference between the runs'
    # loss curves could only come from a different data order.
    result = kp.lr_sweep(small_mlp, digits_train, [1e-12, 2e-12], steps=30, callbacks=[clip])
    first, second = result.curves()[1e-12], result.curves()[2e-12]
    np.testing.assert_allclose(first["loss"], second["loss"], rtol=1e-6)
    assert first["loss"].nunique() > 1  # the batches do differ along the run
    assert clip.norms_seen == 0  # each run got its own copy


def test_warmup_sweep_runs_hold_the_target_after_the_ramp(digits_train):
    result = kp.warmup_sweep(small_mlp, digits_train, 0.5, [5], max_train_steps=100, steps=30)
    curve = result.curves()[5]
    np.testing.assert_allclose(curve["lr"].iloc[-1], 0.5, rtol=1e-6)
    assert list(result.to_dataframe().index) == [0, 5]


def test_a_fractional_hold_factor_rounds_the_run_length_up(digits_train):
    # 4 warmup steps held 1.5x as long: 4 + 6 steps; 2.2x: 4 + ceil(8.8) = 13.
    for hold_factor, steps in ((1.5, 10), (np.float32(2.2), 13)):
        result = kp.warmup_sweep(
            small_mlp,
            digits_train,
            0.1,
            [4],
            max_train_steps=100,
            hold_factor=hold_factor,
            include_no_warmup=False,
        )
        assert result.steps == steps
