"""Warmup callback and WarmupDecay schedule: exact learning rates step by step."""

import json
import math

import keras
import numpy as np
import pytest

import kplaybook as kp
from kplaybook.schedules import WarmupDecay


def _model(learning_rate=0.2):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(learning_rate), "mse")
    return model


def _data(n=48):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 3)).astype("float32")


class LRProbe(keras.callbacks.Callback):
    """Reads the optimizer's learning rate just before each update, as the step will use it."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        # Runs after Warmup.on_train_batch_begin (listed after it).
        self.rates.append(float(self.model.optimizer.learning_rate.numpy()))


def test_warmup_ramps_linearly_then_holds_the_compiled_rate():
    x, y = _data(48)
    model = _model(0.2)
    probe = LRProbe()
    history = model.fit(
        x, y, batch_size=4, epochs=2, verbose=0, callbacks=[kp.callbacks.Warmup(10), probe]
    )
    peak = float(np.float32(0.2))  # the compiled rate, as the float32 variable holds it
    expected = [np.float32(peak * k / 10) if k < 10 else np.float32(peak) for k in range(24)]
    assert probe.rates == [float(e) for e in expected]
    assert history.history["lr"][-1] == pytest.approx(0.2)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.2)


def test_warmup_logs_the_rate_each_step_used():
    x, y = _data(24)
    model = _model(0.3)
    seen = []

    class Logs(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs["lr"])

    model.fit(
        x, y, batch_size=4, verbose=0, callbacks=[kp.callbacks.Warmup(4, peak_lr=0.1), Logs()]
    )
    assert seen == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1, 0.1])


def test_warmup_continues_across_fit_calls_and_then_leaves_the_rate_alone():
    x, y = _data(12)
    model = _model(0.2)
    warmup = kp.callbacks.Warmup(5)
    probe = LRProbe()
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[warmup, probe])  # steps 0-2
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[warmup, probe])  # steps 3-5
    assert probe.rates == pytest.approx([0.0, 0.04, 0.08, 0.12, 0.16, 0.2])
    # After warmup another scheduler owns the rate: the callback does not reset it.
    model.optimizer.learning_rate.assign(0.05)
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[warmup, probe])
    assert probe.rates[-3:] == pytest.approx([0.05] * 3)


def test_warmup_refuses_a_schedule_with_a_clear_error():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(WarmupDecay(0.1, 2, 10)), "mse")
    x, y = _data(8)
    with pytest.raises(TypeError, match="float learning rate.*WarmupDecay"):
        model.fit(x, y, verbose=0, callbacks=[kp.callbacks.Warmup(3)])
    with pytest.raises(ValueError, match="warmup_steps must be a positive integer"):
        kp.callbacks.Warmup(0)


@pytest.mark.parametrize("decay", ["cosine", "linear", "constant"])
def test_warmup_decay_matches_the_formulas(decay):
    peak, end, warm, total = 0.4, 0.01, 10, 110
    schedule = WarmupDecay(peak, warm, total, decay=decay, end_lr=end)

    def expected(t):
        if t < warm:
            return peak * t / warm
        if decay == "constant":
            return peak
        p = min(1.0, (t - warm) / (total - warm))
        if decay == "linear":
            return peak + (end - peak) * p
        return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * p))

    for t in [0, 1, 5, 9, 10, 11, 35, 60, 85, 109, 110, 500]:
        assert float(schedule(t)) == pytest.approx(expected(t), rel=1e-6, abs=1e-7), t
    if decay != "constant":
        assert float(schedule(total)) == pytest.approx(end)
        assert float(schedule(60)) == pytest.approx(
            (peak + end) / 2 if decay == "cosine" else peak + (end - peak) * 0.5
        )


def test_warmup_decay_drives_an_optimizer_and_survives_keras_save(tmp_path):
    schedule = WarmupDecay(0.1, warmup_steps=4, total_steps=20, decay="linear")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(schedule), "mse")
    x, y = _data(24)
    model.fit(x, y, batch_size=4, verbose=0)  # 6 steps
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1 - 0.1 * 2 / 16)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=True)
    restored = loaded.optimizer._learning_rate
    assert isinstance(restored, WarmupDecay)
    assert restored.get_config() == schedule.get_config()
    assert (
        keras.optimizers.schedules.deserialize(
            keras.optimizers.schedules.serialize(schedule)
        ).get_config()
        == schedule.get_config()
    )


def test_warmup_decay_bad_arguments():
    with pytest.raises(ValueError, match="total_steps .* must be greater than warmup_steps"):
        WarmupDecay(0.1, 10, 10)
    with pytest.raises(ValueError, match="decay must be one of"):
        WarmupDecay(0.1, 1, 10, decay="exponential")
    with pytest.raises(ValueError, match="peak_lr must be a positive number"):
        WarmupDecay(0.0, 1, 10)
    with pytest.raises(ValueError, match="end_lr must be between"):
        WarmupDecay(0.1, 1, 10, end_lr=0.5)
    assert float(WarmupDecay(0.1, 0, 10, decay="constant")(0)) == pytest.approx(0.1)


def test_a_new_warmup_after_an_interrupted_one_keeps_the_original_peak():
    x, y = _data(12)
    model = _model(0.2)
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[kp.callbacks.Warmup(10)])  # steps 0-2
    probe = LRProbe()
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[kp.callbacks.Warmup(10), probe])
    peak = float(np.float32(0.2))
    assert probe.rates == pytest.approx([peak * k / 10 for k in (3, 4, 5)], rel=1e-6)


def test_numpy_numbers_are_numbers_and_bools_are_not():
    warmup = kp.callbacks.Warmup(np.int64(500), peak_lr=np.float32(3e-3))
    assert type(warmup.warmup_steps) is int and warmup.warmup_steps == 500
    assert type(warmup.peak_lr) is float and warmup.peak_lr == pytest.approx(3e-3)
    schedule = WarmupDecay(np.float32(1e-3), np.int64(10), np.int32(100), end_lr=np.float64(0))
    # The config is saved as JSON with the model: Python numbers only.
    assert json.loads(json.dumps(schedule.get_config())) == schedule.get_config()
    with pytest.raises(ValueError, match="warmup_steps must be a positive integer, got True"):
        kp.callbacks.Warmup(True)
    with pytest.raises(ValueError, match="peak_lr must be a positive number, got True"):
        kp.callbacks.Warmup(5, peak_lr=True)
    with pytest.raises(ValueError, match="peak_lr must be a positive number"):
        kp.callbacks.Warmup(5, peak_lr="0.1")
    with pytest.raises(ValueError, match="warmup_steps must be a positive integer, got 2.0"):
        kp.callbacks.Warmup(2.0)
    with pytest.raises(ValueError, match="peak_lr must be a positive number, got True"):
        WarmupDecay(True, 1, 10)
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 0, got False"):
        WarmupDecay(0.1, False, 10)
    with pytest.raises(ValueError, match="total_steps must be an integer, got True"):
        WarmupDecay(0.1, 0, True)
    with pytest.raises(ValueError, match="end_lr must be between 0 and peak_lr"):
        WarmupDecay(0.1, 1, 10, end_lr=False)


def test_warmup_with_steps_per_execution_sets_each_execution_s_first_step():
    x, y = _data(48)  # 12 batches of 4: 6 executions of 2 steps
    model = _model(0.2)
    model.compile(keras.optimizers.SGD(0.2), "mse", steps_per_execution=2)
    probe = LRProbe()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[kp.callbacks.Warmup(10), probe])
    peak = float(np.float32(0.2))
    # One batch-begin per execution, at optimizer steps 0, 2, 4, ... across both epochs.
    assert probe.rates == pytest.approx([peak * min(k, 10) / 10 for k in range(0, 24, 2)])
