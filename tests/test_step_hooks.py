"""StepHookCallback, the base of the train-step callbacks: fresh copies, global steps, shared hooks."""

import copy
import warnings

import keras
import numpy as np
import pytest

import kplaybook as kp
from kplaybook.callbacks import DivergenceMonitor
from kplaybook.callbacks import GradientClipping
from kplaybook.callbacks import GradientNormLogger
from kplaybook.callbacks import Warmup
from kplaybook.callbacks._hooked import StepHookCallback


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def _model(learning_rate=0.05, steps_per_execution=1):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(
        keras.optimizers.SGD(learning_rate), "mse", steps_per_execution=steps_per_execution
    )
    return model


def _fit(model, callbacks, n=16, **kwargs):
    x, y = _data(n)
    return model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=callbacks, **kwargs)


def test_a_deep_copy_starts_fresh_from_the_constructor_arguments():
    logger = GradientNormLogger(every=2, cap=50)
    clip = GradientClipping(percentile=80, history=6, min_history=2, update_every=1)
    warmup = Warmup(3, peak_lr=0.05)
    monitor = DivergenceMonitor(patience=2, factor=3.0, smoothing=0.5)
    diverging = DivergenceMonitor(patience=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)  # clipping a lot; the divergence
        _fit(_model(), [logger, clip, warmup, monitor], epochs=2)
        _fit(_model(learning_rate=1e6), [diverging], epochs=3)
    # The originals carry their training state...
    assert len(logger.to_dataframe()) == 4  # every 2nd of 8 steps
    assert clip.threshold is not None and clip.norms_seen == 8
    assert warmup._peak == 0.05
    assert diverging.diverged
    # ...their copies only the arguments.
    for original in (logger, clip, warmup, monitor, diverging):
        fresh = copy.deepcopy(original)
        assert type(fresh) is type(original) and fresh is not original
        assert fresh.get_config() == original.get_config()
    assert copy.deepcopy(logger).to_dataframe().empty
    fresh_clip = copy.deepcopy(clip)
    assert fresh_clip.threshold is None and fresh_clip.norms_seen == 0
    assert copy.deepcopy(warmup)._peak is None
    assert not copy.deepcopy(diverging).diverged
    # A copy trains on its own: its record starts at the new model's step 1.
    fresh_logger = copy.deepcopy(logger)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        _fit(_model(), [fresh_logger, copy.deepcopy(clip)])
    assert list(fresh_logger.to_dataframe().index) == [2, 4]
    assert clip.norms_seen == 8  # the original's history was not shared


def test_a_subclass_must_say_how_to_rebuild_itself():
    class Bare(StepHookCallback):
        pass

    with pytest.raises(NotImplementedError, match="Bare must implement get_config"):
        copy.deepcopy(Bare())


def test_steps_continue_across_fits():
    model = _model()
    logger = GradientNormLogger()
    _fit(model, [logger], epochs=2)  # steps 1-8
    _fit(model, [logger])  # steps 9-12
    assert list(logger.to_dataframe().index) == list(range(1, 13))
    assert int(model.optimizer.iterations.numpy()) == 12


def test_steps_count_every_step_of_an_execution():
    model = _model(steps_per_execution=2)
    logger = GradientNormLogger()
    monitor = DivergenceMonitor()  # synchronous batch ends, in the same fit
    _fit(model, [logger, monitor], epochs=2)  # 4 batches an epoch: 2 executions of 2 steps
    _fit(model, [logger])
    # Keras hands over logs once per execution: its last step's.
    assert list(logger.to_dataframe().index) == [2, 4, 6, 8, 10, 12]
    assert int(model.optimizer.iterations.numpy()) == 12


def test_a_monitor_key_that_is_never_logged_is_warned_about_once():
    monitor = DivergenceMonitor(monitor="nonexistent")
    with pytest.warns(kp.PlaybookWarning) as caught:
        _fit(_model(), [monitor], epochs=3)
    messages = [str(w.message) for w in caught if "found no" in str(w.message)]
    assert len(messages) == 1
    assert "'nonexistent'" in messages[0] and "'loss'" in messages[0]
    assert not monitor.diverged


def test_a_validation_key_is_checked_once_validation_has_run():
    x, y = _data()
    monitor = DivergenceMonitor(monitor="val_loss")
    with warnings.catch_warnings():
        warnings.simplefilter("error", kp.PlaybookWarning)
        # Validation only after the second epoch: the first epoch's logs lack it.
        history = _fit(_model(), [monitor], epochs=2, validation_data=(x, y), validation_freq=2)
    assert "val_loss" in history.history
    assert "lr" not in history.history  # a monitor of another key does not hook the step
    with pytest.warns(kp.PlaybookWarning, match="found no 'val_loss'.*pass one of those"):
        _fit(_model(), [DivergenceMonitor(monitor="val_loss")], epochs=2)
    with pytest.warns(kp.PlaybookWarning, match="found no 'val_los'.*'val_loss'"):
        _fit(_model(), [DivergenceMonitor(monitor="val_los")], validation_data=(x, y))


def test_every_callback_sees_the_step_values_as_floats_whatever_its_place():
    seen = []

    class First(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(dict(logs))

    clip = GradientClipping(threshold=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        history = _fit(
            _model(), [First(), GradientNormLogger(), clip, DivergenceMonitor()], epochs=2
        )
    keys = {"loss", "grad_norm", "lr", "clip_fraction", "clip_threshold", "step_loss"}
    assert len(seen) == 8
    assert all(set(logs) == keys for logs in seen)
    assert all(type(v) is float for logs in seen for v in logs.values())
    # clip_fraction: clipped / steps of the epoch so far, as the epoch logs end it.
    assert history.history["clip_fraction"] == [seen[3]["clip_fraction"], seen[7]["clip_fraction"]]
    assert history.history["lr"] == [pytest.approx(0.05)] * 2
