"""GhostBatchNormalization against a NumPy reference, in fit, saved and reloaded."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kplaybook.layers import GhostBatchNormalization

EPSILON = 1e-3
MOMENTUM = 0.9
SHAPES = [(256, 6), (200, 6), (256, 4, 4, 3), (200, 4, 4, 3)]


def ghost_reference(x, virtual_batch_size, gamma, beta, epsilon=EPSILON):
    """NumPy ghost batch norm: (outputs, averaged mean, averaged variance).

    The averages weight each virtual batch by its number of examples.
    """
    x = x.astype(np.float64)
    outputs = np.empty_like(x)
    means, variances, sizes = [], [], []
    for start in range(0, len(x), virtual_batch_size):
        chunk = x[start : start + virtual_batch_size]
        axes = tuple(range(chunk.ndim - 1))
        mean, variance = chunk.mean(axes), chunk.var(axes)
        outputs[start : start + virtual_batch_size] = (
            gamma * (chunk - mean) / np.sqrt(variance + epsilon) + beta
        )
        means.append(mean)
        variances.append(variance)
        sizes.append(len(chunk))
    return (
        outputs,
        np.average(means, axis=0, weights=sizes),
        np.average(variances, axis=0, weights=sizes),
    )


def make_layer(shape, rng, virtual_batch_size=64, **kwargs):
    """A built layer with non-trivial gamma and beta."""
    layer = GhostBatchNormalization(virtual_batch_size, momentum=MOMENTUM, **kwargs)
    layer.build(shape)
    channels = shape[-1]
    layer.gamma.assign(rng.uniform(0.5, 2.0, channels))
    layer.beta.assign(rng.normal(size=channels))
    return layer


def make_inputs(shape, rng):
    # A per-channel offset and scale so that wrong axes or wrong statistics show.
    channels = shape[-1]
    offset = rng.normal(size=channels) * 5
    spread = rng.uniform(0.5, 3.0, channels)
    return (rng.normal(size=shape) * spread + offset).astype("float32")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_training_output_and_moving_statistics_match_numpy(shape):
    rng = np.random.default_rng(0)
    x = make_inputs(shape, rng)
    layer = make_layer(shape, rng)
    gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
    expected, mean, variance = ghost_reference(x, 64, gamma, beta)

    outputs = layer(x, training=True)

    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean, (1 - MOMENTUM) * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        layer.moving_variance, MOMENTUM * 1.0 + (1 - MOMENTUM) * variance, rtol=1e-5
    )
    # The averaged means are the full-batch mean, even with a smaller last virtual batch.
    axes = tuple(range(x.ndim - 1))
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axes), rtol=1e-9, atol=1e-9)

    # Plain batch norm over the whole batch gives clearly different outputs.
    batch_norm = keras.layers.BatchNormalization(epsilon=EPSILON)
    batch_norm.build(shape)
    batch_norm.gamma.assign(gamma)
    batch_norm.beta.assign(beta)
    full_batch = keras.ops.convert_to_numpy(batch_norm(x, training=True))
    assert np.abs(full_batch - expected).max() > 0.05


@pytest.mark.parametrize("shape", [(200, 6), (200, None, None, 3)], ids=["rank2", "rank4"])
def test_dynamic_batch_in_tf_function(shape):
    rng = np.random.default_rng(1)
    concrete = (200, 6) if len(shape) == 2 else (200, 4, 5, 3)
    x = make_inputs(concrete, rng)
    layer = make_layer(concrete, rng)
    expected, _, _ = ghost_reference(x, 64, layer.gamma.numpy(), layer.beta.numpy())

    step = tf.function(
        lambda inputs: layer(inputs, training=True),
        input_signature=[tf.TensorSpec((None,) + shape[1:], "float32")],
    )

    np.testing.assert_allclose(step(x), expected, rtol=1e-5, atol=1e-5)
    # The same trace serves another batch size, with a different remainder.
    expected_small, _, _ = ghost_reference(x[:70], 64, layer.gamma.numpy(), layer.beta.numpy())
    np.testing.assert_allclose(step(x[:70]), expected_small, rtol=1e-5, atol=1e-5)


def test_batch_no_larger_than_virtual_batch_is_plain_batch_norm():
    rng = np.random.default_rng(2)
    x = make_inputs((48, 4, 4, 3), rng)
    layer = make_layer(x.shape, rng)
    batch_norm = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
    batch_norm.build(x.shape)
    batch_norm.set_weights(layer.get_weights())

    np.testing.assert_allclose(
        layer(x, training=True), batch_norm(x, training=True), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(layer.moving_mean, batch_norm.moving_mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(layer.moving_variance, batch_norm.moving_variance, rtol=1e-5)


def test_gradients_flow_through_each_virtual_batch_statistics():
    rng = np.random.default_rng(3)
    # float64, so that rounding in the 2-example last virtual batch does not hide errors.
    x = tf.constant(make_inputs((10, 3), rng), "float64")
    layer = make_layer((10, 3), rng, virtual_batch_size=4, dtype="float64")
    upstream = tf.constant(rng.normal(size=(10, 3)), "float64")

    def reference(inputs):
        chunks = []
        for start in range(0, 10, 4):
            chunk = inputs[start : start + 4]
            mean, variance = tf.nn.moments(chunk, axes=[0])
            chunks.append(
                tf.nn.batch_normalization(chunk, mean, variance, layer.beta, layer.gamma, EPSILON)
            )
        return tf.concat(chunks, axis=0)

    grads = []
    for fn in (lambda inputs: layer(inputs, training=True), reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(fn(x) * upstream)
        grads.append(tape.gradient(loss, [x, layer.gamma.value, layer.beta.value]))

    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("shape", [(200, 6), (200, 4, 4, 3)], ids=["rank2", "rank4"])
def test_inference_uses_moving_statistics(shape):
    rng = np.random.default_rng(4)
    x = make_inputs(shape, rng)
    layer = make_layer(shape, rng)
    channels = shape[-1]
    moving_mean = rng.normal(size=channels)
    moving_variance = rng.uniform(0.5, 4.0, channels)
    layer.moving_mean.assign(moving_mean)
    layer.moving_variance.assign(moving_variance)
    gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
    expected = gamma * (x - moving_mean) / np.sqrt(moving_variance + EPSILON) + beta

    np.testing.assert_allclose(layer(x, training=False), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)
    # A frozen layer runs in inference mode and leaves its statistics alone, like BN.
    layer.trainable = False
    np.testing.assert_allclose(layer(x, training=True), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean, moving_mean, rtol=1e-6)


def test_mixed_float16_computes_statistics_in_float32():
    rng = np.random.default_rng(5)
    # Sums of squares of values near 1000 overflow float16 (max 65504).
    x = (rng.normal(size=(200, 8)) * 20 + 1000).astype("float16")
    layer = GhostBatchNormalization(64, momentum=MOMENTUM, dtype="mixed_float16")

    outputs = layer(x, training=True)

    assert keras.backend.standardize_dtype(outputs.dtype) == "float16"
    assert layer.moving_mean.dtype == "float32"
    expected, mean, variance = ghost_reference(x, 64, 1.0, 0.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs), expected, atol=1e-2)
    np.testing.assert_allclose(layer.moving_mean, (1 - MOMENTUM) * mean, rtol=1e-5)
    np.testing.assert_allclose(
        layer.moving_variance, MOMENTUM + (1 - MOMENTUM) * variance, rtol=1e-4
    )


def conv_model(virtual_batch_size):
    return keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.Conv2D(8, 3, padding="same", use_bias=False),
            GhostBatchNormalization(virtual_batch_size, name="ghost_conv"),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(8, use_bias=False),
            GhostBatchNormalization(virtual_batch_size, name="ghost_dense"),
            keras.layers.Dense(3),
        ]
    )


def test_fit_with_dynamic_batch_and_partial_last_batch():
    rng = np.random.default_rng(6)
    # 300 = 2 * 128 + 44: the last step's batch is smaller than one virtual batch.
    x = rng.normal(size=(300, 6, 6, 3)).astype("float32")
    y = rng.integers(0, 3, 300)
    model = conv_model(virtual_batch_size=64)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    history = model.fit(x, y, batch_size=128, epochs=2, verbose=0)

    assert np.all(np.isfinite(history.history["loss"]))
    for name in ("ghost_conv", "ghost_dense"):
        layer = model.get_layer(name)
        assert np.all(np.isfinite(layer.moving_mean)) and np.any(layer.moving_mean != 0)
        assert np.all(np.isfinite(layer.moving_variance))
    assert np.all(np.isfinite(model.predict(x[:10], verbose=0)))


def test_keras_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(4),
            GhostBatchNormalization(
                virtual_batch_size=16,
                momentum=0.8,
                epsilon=1e-4,
                center=False,
                gamma_initializer="random_uniform",
                gamma_regularizer=keras.regularizers.L2(1e-3),
                gamma_constraint=keras.constraints.NonNeg(),
                name="ghost",
            ),
        ]
    )
    x = rng.normal(size=(50, 5)).astype("float32")
    model(x, training=True)  # moves the moving statistics off their initial values
    path = tmp_path / "ghost.keras"

    model.save(path)
    loaded = keras.saving.load_model(path)

    layer, loaded_layer = model.get_layer("ghost"), loaded.get_layer("ghost")
    assert isinstance(loaded_layer, GhostBatchNormalization)
    assert loaded_layer.get_config() == layer.get_config()
    assert layer.get_config()["virtual_batch_size"] == 16
    for ours, theirs in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))

    rebuilt = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(rebuilt, GhostBatchNormalization)
    assert rebuilt.get_config() == layer.get_config()


@pytest.mark.parametrize("bad", [0, -1, 2.5, "64", True, None])
def test_bad_virtual_batch_size_is_rejected(bad):
    with pytest.raises(ValueError, match=r"virtual_batch_size must be a positive integer.*64"):
        GhostBatchNormalization(virtual_batch_size=bad)


def test_numpy_integer_virtual_batch_size_is_accepted():
    layer = GhostBatchNormalization(virtual_batch_size=np.int64(32))
    assert layer.get_config()["virtual_batch_size"] == 32
    assert type(layer.get_config()["virtual_batch_size"]) is int


def test_channels_first_axis_is_rejected_with_advice():
    layer = GhostBatchNormalization(axis=1)
    with pytest.raises(ValueError, match="axis=-1"):
        layer(np.zeros((4, 3, 5, 5), "float32"), training=True)


def test_replicas_keep_the_same_moving_statistics_under_mirrored_strategy(mirrored):
    # Replica 0 sees rows with mean ~0, replica 1 rows with mean ~10: with
    # momentum 0 both must end with the average of the two halves' statistics.
    rng = np.random.default_rng(0)
    low = rng.normal(0.0, 1.0, (8, 3)).astype("float32")
    high = rng.normal(10.0, 2.0, (8, 3)).astype("float32")
    x = np.concatenate([low, high])
    with mirrored.scope():
        model = keras.Sequential(
            [
                keras.Input((3,)),
                GhostBatchNormalization(virtual_batch_size=4, momentum=0.0),
                keras.layers.Dense(1),
            ]
        )
        model.compile(keras.optimizers.SGD(0.0), "mse")
    model.fit(x, np.zeros((16, 1), "float32"), batch_size=16, shuffle=False, verbose=0)
    layer = model.layers[0]
    means = [v.numpy() for v in mirrored.experimental_local_results(layer.moving_mean.value)]
    np.testing.assert_allclose(means[0], means[1], rtol=1e-6)
    np.testing.assert_allclose(means[0], x.mean(0), rtol=1e-5)  # equal-size virtual batches
