"""GradientNormLogger and GradientClipping: exact norms and clipping, on 1 and 2 real replicas."""

import copy
import math
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import kplaybook as kp
from kplaybook.callbacks import GradientClipping
from kplaybook.callbacks import GradientNormLogger


def _linear_data(n=8, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = rng.normal(size=(n, 1)).astype("float32")
    w = np.array([[0.5], [-1.0], [2.0]], np.float32)[:d]
    b = np.array([0.3], np.float32)
    return x, y, w, b


def _hand_gradient_norm(x, y, w, b):
    """The gradient of the mean squared error of x @ w + b, by hand."""
    residual = x @ w + b - y
    grad_w = 2 * x.T @ residual / len(x)
    grad_b = 2 * residual.sum(axis=0) / len(x)
    return float(np.sqrt((grad_w**2).sum() + (grad_b**2).sum()))


def _linear_model(strategy, w, b, **optimizer_kwargs):
    with strategy.scope():
        model = keras.Sequential([keras.Input((w.shape[0],)), keras.layers.Dense(1)])
        model.set_weights([w, b])
        model.compile(keras.optimizers.SGD(0.1, **optimizer_kwargs), "mse")
    return model


@pytest.mark.parametrize("replicas", [1, 2])
def test_grad_norm_is_the_hand_computed_global_norm(replicas, mirrored):
    strategy = mirrored if replicas == 2 else tf.distribute.get_strategy()
    x, y, w, b = _linear_data()
    model = _linear_model(strategy, w, b)
    assert model.distribute_strategy.num_replicas_in_sync == replicas
    logger = GradientNormLogger()
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[logger])
    expected = _hand_gradient_norm(x, y, w, b)
    # Under 2 replicas each replica's gradient is half the batch's; the logged
    # norm is that of their sum, the full-batch gradient (not 1/2 of it).
    assert history.history["grad_norm"][0] == pytest.approx(expected, rel=1e-5)
    assert logger.to_dataframe().loc[1, "grad_norm"] == pytest.approx(expected, rel=1e-5)
    assert history.history["lr"][0] == pytest.approx(0.1)


def test_grad_norm_every_step_matches_hand_computation_along_the_trajectory():
    x, y, w, b = _linear_data(n=32)
    model = _linear_model(tf.distribute.get_strategy(), w, b)
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            kernel, bias = model.get_weights()
            lo = batch * 8
            seen.append(_hand_gradient_norm(x[lo : lo + 8], y[lo : lo + 8], kernel, bias))

    logger = GradientNormLogger()
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[Probe(), logger])
    logged = logger.to_dataframe()["grad_norm"]
    assert list(logged.index) == [1, 2, 3, 4]
    np.testing.assert_allclose(logged.to_numpy(), seen, rtol=1e-5)


def _constant_gradient_model(strategy, **optimizer_kwargs):
    """w starts at 0; loss -mean(w * y) has gradient -y on every replica's share."""
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
        )
        model.compile(
            keras.optimizers.SGD(1.0, **optimizer_kwargs),
            loss=lambda y_true, y_pred: -tf.reduce_mean(y_pred * y_true),
        )
    return model


def test_clipping_is_exact_after_cross_replica_aggregation(mirrored):
    x = np.ones((4, 1), np.float32)
    y = np.full((4, 1), 10.0, np.float32)  # each replica's gradient: -10

    plain = _constant_gradient_model(mirrored)
    plain.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert plain.get_weights()[0].item() == pytest.approx(20.0)  # the sum of the two -10s

    clipped = _constant_gradient_model(mirrored)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)  # 100% clipped: warned, expected
        history = clipped.fit(
            x, y, batch_size=4, epochs=1, verbose=0, callbacks=[GradientClipping(threshold=1.0)]
        )
    assert clipped.get_weights()[0].item() == pytest.approx(1.0, abs=1e-6)
    assert history.history["grad_norm"][0] == pytest.approx(20.0)
    assert history.history["clip_fraction"][0] == 1.0

    keras_clip = _constant_gradient_model(mirrored, global_clipnorm=1.0)
    keras_clip.fit(x, y, batch_size=4, epochs=1, verbose=0)
    # Keras clips each replica's share before the sum: the weight moves by 2.
    assert keras_clip.get_weights()[0].item() == pytest.approx(2.0, abs=1e-6)


def test_clipping_on_one_replica_matches_keras_global_clipnorm():
    x = np.ones((4, 1), np.float32)
    y = np.full((4, 1), 10.0, np.float32)
    ours = _constant_gradient_model(tf.distribute.get_strategy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        ours.fit(x, y, batch_size=4, verbose=0, callbacks=[GradientClipping(threshold=3.0)])
    theirs = _constant_gradient_model(tf.distribute.get_strategy(), global_clipnorm=3.0)
    theirs.fit(x, y, batch_size=4, verbose=0)
    assert ours.get_weights()[0].item() == pytest.approx(3.0)
    assert theirs.get_weights()[0].item() == pytest.approx(3.0)


@pytest.mark.parametrize("percentile", [80.0, 50.0, 100.0])
def test_percentile_threshold_follows_the_observed_norms_exactly(percentile):
    rng = np.random.default_rng(1)
    n, batch = 30 * 4, 4
    x = rng.normal(size=(n, 5)).astype("float32") * rng.uniform(0.2, 3.0, size=(n, 1)).astype(
        "float32"
    )
    y = rng.normal(size=(n, 1)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    lr = 0.01
    model.compile(keras.optimizers.SGD(lr), "mse")
    clip = GradientClipping(percentile=percentile, history=8, min_history=5, update_every=1)
    rows = []
    logged = []  # the per-step clip_threshold log (inf while collecting norms)

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.before = [w.copy() for w in model.get_weights()]

        def on_train_batch_end(self, batch, logs=None):
            after = model.get_weights()
            moved = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(after, self.before)))
            rows.append((logs["grad_norm"], clip.threshold, moved, logs["clip_fraction"]))
            logged.append(float(logs["clip_threshold"]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        history = model.fit(
            x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[clip, Probe()]
        )
    norms = [r[0] for r in rows]
    clipped = []
    for k, (norm, threshold, moved, fraction) in enumerate(rows):
        if k < 5:
            assert threshold is None  # fewer than min_history norms seen: no clipping
            assert logged[k] == math.inf
            assert moved == pytest.approx(lr * norm, rel=1e-4)
            clipped.append(False)
        else:
            window = norms[max(0, k - 8) : k]  # the norms of the `history` steps before this one
            expected = float(np.percentile(window, percentile))
            assert threshold == pytest.approx(expected, rel=1e-5)
            assert logged[k] == pytest.approx(expected, rel=1e-5)
            assert moved == pytest.approx(lr * min(norm, expected), rel=1e-4)
            clipped.append(norm > expected)
        assert fraction == pytest.approx(sum(clipped) / len(clipped))
    if percentile < 100:
        assert 0 < sum(clipped) < len(clipped)
    assert history.history["clip_fraction"][0] == pytest.approx(sum(clipped) / len(clipped))
    assert history.history["clip_threshold"][0] == pytest.approx(rows[-1][1])
    assert clip.norms_seen == len(rows)


def test_clipping_more_than_half_the_updates_warns():
    x, y, w, b = _linear_data(n=16)
    model = _linear_model(tf.distribute.get_strategy(), w, b)
    with pytest.warns(kp.PlaybookWarning, match="lower the learning rate"):
        model.fit(x, y, batch_size=4, verbose=0, callbacks=[GradientClipping(threshold=1e-6)])


def test_no_warning_when_few_updates_are_clipped():
    x, y, w, b = _linear_data(n=16)
    model = _linear_model(tf.distribute.get_strategy(), w, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error", kp.PlaybookWarning)
        history = model.fit(
            x, y, batch_size=4, verbose=0, callbacks=[GradientClipping(threshold=1e6)]
        )
    assert history.history["clip_fraction"] == [0.0]


def test_callbacks_work_on_a_second_fit_and_leave_later_fits_plain():
    x = np.ones((4, 1), np.float32)
    y = np.full((4, 1), 10.0, np.float32)
    model = _constant_gradient_model(tf.distribute.get_strategy())
    clip = GradientClipping(threshold=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        model.fit(x, y, batch_size=4, verbose=0, callbacks=[clip])
        second = model.fit(x, y, batch_size=4, verbose=0, callbacks=[clip, GradientNormLogger()])
    assert model.get_weights()[0].item() == pytest.approx(2.0)
    assert second.history["grad_norm"] == [pytest.approx(10.0)]
    third = model.fit(x, y, batch_size=4, verbose=0)
    assert "grad_norm" not in third.history
    assert model.get_weights()[0].item() == pytest.approx(12.0)  # unclipped again


def test_a_subclassed_model_with_its_own_train_step_is_instrumented():
    class Custom(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(self(x) * y)
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply(grads, self.trainable_variables)
            return {"loss": loss}

    model = Custom()
    model.compile(keras.optimizers.SGD(1.0))
    x = np.ones((4, 1), np.float32)
    y = np.full((4, 1), 10.0, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        history = model.fit(
            x, y, batch_size=4, verbose=0, callbacks=[GradientClipping(threshold=2.0)]
        )
    assert model.get_weights()[0].item() == pytest.approx(2.0)
    assert history.history["grad_norm"] == [pytest.approx(10.0)]


def test_tensorboard_receives_the_values_at_their_steps(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    x, y, w, b = _linear_data(n=40)
    model = _linear_model(tf.distribute.get_strategy(), w, b)
    logger = GradientNormLogger()
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[
            logger,
            kp.callbacks.Warmup(4),
            keras.callbacks.TensorBoard(str(tmp_path), update_freq=1),
        ],
    )
    events = event_accumulator.EventAccumulator(
        str(tmp_path / "train"), size_guidance={"tensors": 0}
    )
    events.Reload()

    def series(tag):
        return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)}

    record = logger.to_dataframe()
    assert list(record.index) == list(range(1, 11))
    norms = series("batch_grad_norm")
    assert sorted(norms) == list(range(1, 11))
    for step, value in norms.items():
        assert value == pytest.approx(record.loc[step, "grad_norm"], rel=1e-6)
    lrs = series("batch_lr")
    # Update k (1-based) ran at optimizer step k - 1: lr = 0.1 * (k - 1) / 4 during warmup.
    for step in range(1, 11):
        assert lrs[step] == pytest.approx(0.1 * min(step - 1, 4) / 4, rel=1e-6)
    epoch_norms = series("epoch_grad_norm")
    assert epoch_norms[0] == pytest.approx(record.loc[1:5, "grad_norm"].mean(), rel=1e-5)
    assert epoch_norms[1] == pytest.approx(record.loc[6:10, "grad_norm"].mean(), rel=1e-5)


def test_bad_arguments_get_one_sentence_errors():
    with pytest.raises(ValueError, match="every must be a positive integer"):
        GradientNormLogger(every=0)
    with pytest.raises(ValueError, match="threshold must be a positive number"):
        GradientClipping(threshold=-1.0)
    with pytest.raises(ValueError, match="percentile must be in"):
        GradientClipping(percentile=150)
    with pytest.raises(ValueError, match="min_history"):
        GradientClipping(history=10, min_history=20)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1, gradient_accumulation_steps=2), "mse")
    with pytest.raises(ValueError, match="accumulated gradients"):
        model.fit(np.ones((4, 1)), np.ones((4, 1)), verbose=0, callbacks=[GradientClipping()])


def test_loss_scaling_is_undone_before_the_norm_and_the_clip():
    # A LossScaleOptimizer (what mixed precision uses) hands apply() gradients
    # multiplied by its dynamic scale (2**15 to start).
    with tf.distribute.get_strategy().scope():
        model = keras.Sequential(
            [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
        )
        model.compile(
            keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(1.0)),
            loss=lambda y_true, y_pred: -tf.reduce_mean(y_pred * y_true),
        )
    x = np.ones((4, 1), np.float32)
    y = np.full((4, 1), 10.0, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        history = model.fit(
            x,
            y,
            batch_size=4,
            verbose=0,
            callbacks=[GradientClipping(threshold=4.0), GradientNormLogger()],
        )
    assert history.history["grad_norm"] == [pytest.approx(10.0)]
    assert model.get_weights()[0].item() == pytest.approx(4.0)


def test_zero_norm_steps_under_percentile_clipping_keep_the_weights_finite():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = rng.normal(size=(40, 1)).astype("float32")
    weights = np.ones(40, np.float32)
    weights[:12] = 0.0  # three batches with zero sample weight: zero gradients
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    clip = GradientClipping(percentile=90, history=10, min_history=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        history = model.fit(
            x, y, sample_weight=weights, batch_size=4, shuffle=False, verbose=0, callbacks=[clip]
        )
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert history.history["grad_norm"][0] > 0


def test_a_fit_that_raises_leaves_no_hooks_behind():
    import gc
    import weakref

    x = np.ones((8, 1), np.float32)
    y = np.full((8, 1), 10.0, np.float32)
    model = _constant_gradient_model(tf.distribute.get_strategy())

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"), warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        model.fit(
            x, y, batch_size=4, verbose=0, callbacks=[GradientClipping(threshold=1e-3), Boom()]
        )
    before = model.get_weights()[0].item()
    plain = model.fit(x, y, batch_size=4, verbose=0)  # no kplaybook callbacks: plain Keras
    assert set(plain.history) == {"loss"}
    assert model.get_weights()[0].item() == pytest.approx(before + 20.0)  # 2 unclipped steps
    alive = weakref.ref(model)
    del model, plain
    gc.collect()
    assert alive() is None  # the instrumentation does not keep the model alive


@pytest.mark.parametrize("replicas", [1, 2])
def test_embedding_gradients_with_repeated_rows_have_their_true_norm(replicas, mirrored):
    strategy = mirrored if replicas == 2 else tf.distribute.get_strategy()
    tokens = np.array([[1, 1, 2, 1], [2, 2, 3, 1]], np.int32)
    target = np.ones((2, 1), np.float32)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((4,), dtype="int32"),
                keras.layers.Embedding(5, 3),
                keras.layers.GlobalAveragePooling1D(),
                keras.layers.Dense(1),
            ]
        )
        model.compile(keras.optimizers.SGD(0.1), "mse")
    weights = model.get_weights()
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(target, model(tokens))
    dense = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
    expected = float(np.sqrt(sum(float(tf.reduce_sum(g**2)) for g in dense)))
    model.set_weights(weights)
    history = model.fit(
        tokens, target, batch_size=2, shuffle=False, verbose=0, callbacks=[GradientNormLogger()]
    )
    assert history.history["grad_norm"][0] == pytest.approx(expected, rel=1e-5)


def test_mixed_precision_overflow_steps_are_not_divergence():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(1, dtype="float32"),
            ]
        )
        model.compile(keras.optimizers.Adam(1e-3), "mse")  # Keras wraps it in a LossScaleOptimizer
        rng = np.random.default_rng(0)
        x = rng.normal(size=(160, 8)).astype("float32")
        # Large targets: gradients times the initial loss scale (2**15)
        # overflow float16, so the first steps are skipped by design.
        y = 100 * rng.normal(size=(160, 1)).astype("float32")
        monitor = kp.callbacks.DivergenceMonitor()
        logger = GradientNormLogger()
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[monitor, logger])
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    norms = logger.to_dataframe()["grad_norm"]
    assert list(norms.index) == list(range(1, 41))  # skipped steps still numbered in order
    assert not norms.notna().all()  # the first steps overflowed (recorded as missing)...
    assert not monitor.diverged  # ...and that is not divergence
    assert all(np.isfinite(history.history["grad_norm"]))


def test_percentile_threshold_is_recomputed_every_update_every_steps():
    rng = np.random.default_rng(2)
    n, batch = 24 * 4, 4
    x = rng.normal(size=(n, 5)).astype("float32") * rng.uniform(0.2, 3.0, size=(n, 1)).astype(
        "float32"
    )
    y = rng.normal(size=(n, 1)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    clip = GradientClipping(percentile=50, history=8, min_history=4, update_every=3)
    rows = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            rows.append((logs["grad_norm"], logs["clip_threshold"]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        model.fit(x, y, batch_size=batch, shuffle=False, verbose=0, callbacks=[clip, Probe()])
    norms = [norm for norm, _ in rows]
    for k, (_, threshold) in enumerate(rows):
        if k < 4:
            assert threshold == math.inf
            continue
        # Recomputed before steps 4, 7, 10, ... from the 8 steps before, then held.
        update = 4 + 3 * ((k - 4) // 3)
        expected = float(np.percentile(norms[max(0, update - 8) : update], 50))
        assert threshold == pytest.approx(expected, rel=1e-5), k
    assert len({t for _, t in rows[4:7]}) == 1


def test_threshold_and_percentile_together_are_an_error():
    with pytest.raises(ValueError, match=r"both threshold=1.0 and percentile=90.*not both"):
        GradientClipping(threshold=1.0, percentile=90)
    assert GradientClipping().percentile == 90.0  # the documented default
    fixed = GradientClipping(threshold=2.0)
    assert fixed.percentile is None and fixed.threshold == 2.0
    assert copy.deepcopy(fixed).threshold == 2.0  # a copy does not pass both


def test_numpy_numbers_are_numbers_and_bools_are_not():
    clip = GradientClipping(
        percentile=np.float64(80),
        history=np.int64(100),
        min_history=np.int32(10),
        update_every=np.int64(5),
    )
    assert (clip.percentile, clip.history, clip.min_history, clip.update_every) == (80, 100, 10, 5)
    assert all(type(v) is int for v in (clip.history, clip.min_history, clip.update_every))
    assert GradientClipping(threshold=np.float32(1.5)).threshold == 1.5
    logger = GradientNormLogger(every=np.int64(2), cap=np.int32(100))
    assert (logger.every, logger.record.cap) == (2, 100)
    monitor = kp.callbacks.DivergenceMonitor(
        patience=np.int64(3), factor=np.float32(5), smoothing=np.float64(0.5)
    )
    assert (monitor.patience, monitor.factor, monitor.smoothing) == (3, 5.0, 0.5)
    refused = [
        (lambda: GradientNormLogger(every=True), "every must be a positive integer, got True"),
        (lambda: GradientNormLogger(cap=0), "cap must be a positive integer, got 0"),
        (lambda: GradientClipping(threshold=True), "threshold must be a positive number, got True"),
        (lambda: GradientClipping(threshold=math.inf), "threshold must be a positive number"),
        (lambda: GradientClipping(percentile=True), r"percentile must be in \(0, 100\]"),
        (lambda: GradientClipping(history=True), "history must be a positive integer"),
        (lambda: GradientClipping(min_history=-1), "min_history must be an integer >= 0"),
        (lambda: GradientClipping(update_every=0), "update_every must be a positive integer"),
        (lambda: kp.callbacks.DivergenceMonitor(patience=True), "patience must be a positive"),
        (lambda: kp.callbacks.DivergenceMonitor(factor=True), "factor must be greater than 1"),
        (lambda: kp.callbacks.DivergenceMonitor(smoothing=False), r"smoothing must be in \[0, 1\)"),
        (lambda: kp.callbacks.DivergenceMonitor(monitor=""), "monitor must be the name"),
    ]
    for make, match in refused:
        with pytest.raises(ValueError, match=match):
            make()


def test_percentile_threshold_under_two_replicas_comes_from_the_global_norms(mirrored):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(48, 3)).astype("float32") * rng.uniform(0.2, 3.0, (48, 1)).astype(
        "float32"
    )
    y = rng.normal(size=(48, 1)).astype("float32")
    with mirrored.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.01), "mse")
    clip = GradientClipping(percentile=50, history=6, min_history=3, update_every=1)
    rows = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            rows.append((logs["grad_norm"], logs["clip_threshold"]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kp.PlaybookWarning)
        for _ in range(2):  # the recorded norms carry over to the second fit
            model.fit(x, y, batch_size=8, shuffle=False, verbose=0, callbacks=[clip, Probe()])
    norms = [norm for norm, _ in rows]
    assert [t for _, t in rows[:3]] == [math.inf] * 3
    for k in range(3, len(rows)):
        expected = float(np.percentile(norms[max(0, k - 6) : k], 50))
        assert rows[k][1] == pytest.approx(expected, rel=1e-5), k
    assert clip.norms_seen == len(rows) == 12
    assert type(clip.norms_seen) is int


def test_the_step_hooks_compile_under_xla_and_agree_with_the_plain_graph():
    x, y, _, _ = _linear_data(n=32)
    results = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.05), "mse", jit_compile=jit_compile)
        clip = GradientClipping(percentile=50, history=8, min_history=3, update_every=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", kp.PlaybookWarning)
            history = model.fit(
                x,
                y,
                batch_size=4,
                epochs=2,
                shuffle=False,
                verbose=0,
                callbacks=[clip, GradientNormLogger(), kp.callbacks.DivergenceMonitor()],
            )
        results.append((history.history, model.get_weights()[0]))
    (plain, plain_weights), (xla, xla_weights) = results
    assert set(xla) == set(plain) >= {"grad_norm", "clip_fraction", "clip_threshold", "lr"}
    for key in plain:
        np.testing.assert_allclose(xla[key], plain[key], rtol=1e-5)
    np.testing.assert_allclose(xla_weights, plain_weights, rtol=1e-5)
