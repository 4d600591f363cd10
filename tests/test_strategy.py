"""StrategyWrapper, sync_batch_norm and the tuner's strategy, on a real 2-replica MirroredStrategy.

conftest.py splits the CPU into two logical devices; `mirrored` is the one
MirroredStrategy of the session over them.
"""

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

import kplaybook as kp
from kplaybook.distribute.batch_norm import SyncBatchNormError
from kplaybook.distribute.batch_norm import sync_batch_norm
from kplaybook.distribute.strategy import StrategyWrapper

MOMENTUM = 0.5
FEATURES = 3
HALF = 8  # examples per replica per step; the global batch is 2 * HALF


def replica_values(strategy, variable):
    """The per-replica values of a Keras variable (one per replica, mirrored or not)."""
    return [v.numpy() for v in strategy.experimental_local_results(variable.value)]


def split_means_data(steps=2, seed=0):
    """Global batches whose first half (replica 0) has mean ~0 and second half (replica 1) ~10."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(steps):
        low = rng.normal(0.0, 1.0, (HALF, FEATURES))
        high = rng.normal(10.0, 2.0, (HALF, FEATURES))
        batches.append(np.concatenate([low, high]).astype("float32"))
    return batches


def bn_model(synchronized=False):
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.BatchNormalization(momentum=MOMENTUM, synchronized=synchronized),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(0.01), "mse")
    return model


def expected_moving(batches, part):
    """NumPy moving mean and variance after `batches`, from the rows `part` of each batch."""
    mean, var = np.zeros(FEATURES), np.ones(FEATURES)
    for batch in batches:
        rows = batch[part].astype(np.float64)
        mean = MOMENTUM * mean + (1 - MOMENTUM) * rows.mean(0)
        var = MOMENTUM * var + (1 - MOMENTUM) * rows.var(0)  # biased, as Keras
    return mean, var


def train_split(model, batches):
    x = np.concatenate(batches)
    y = np.zeros((len(x), 1), "float32")
    model.fit(x, y, batch_size=2 * HALF, epochs=1, shuffle=False, verbose=0)


# --- StrategyWrapper -------------------------------------------------------------------


def test_default_wrapper_is_the_single_replica_default_strategy():
    wrapper = StrategyWrapper()
    assert wrapper.strategy is tf.distribute.get_strategy()
    assert wrapper.num_replicas == 1
    assert wrapper.global_batch_size(32) == 32
    assert wrapper.per_replica_batch_size(32) == 32
    model = bn_model()
    assert wrapper.prepare(model) is model
    assert "num_replicas=1" in repr(wrapper)


def test_wrapper_over_mirrored(mirrored):
    wrapper = StrategyWrapper(mirrored)
    assert wrapper.strategy is mirrored
    assert wrapper.num_replicas == 2
    assert wrapper.global_batch_size(32) == 64
    assert wrapper.global_batch_size(np.int64(3)) == 6
    assert wrapper.per_replica_batch_size(64) == 32
    assert StrategyWrapper(wrapper).strategy is mirrored
    assert repr(wrapper) == "StrategyWrapper(MirroredStrategy, num_replicas=2)"
    with wrapper.scope():
        assert tf.distribute.get_strategy() is mirrored
    with pytest.raises(ValueError, match="not divisible by the 2 replicas"):
        wrapper.per_replica_batch_size(63)


@pytest.mark.parametrize("bad", [0, -4, 2.5, True, "32", None])
def test_bad_batch_sizes(mirrored, bad):
    wrapper = StrategyWrapper(mirrored)
    with pytest.raises(ValueError, match="must be a positive int"):
        wrapper.global_batch_size(bad)
    with pytest.raises(ValueError, match="must be a positive int"):
        wrapper.per_replica_batch_size(bad)


@pytest.mark.parametrize("bad", ["mirrored", 2, object()])
def test_bad_strategy(bad):
    with pytest.raises(TypeError, match=r"must be a tf\.distribute\.Strategy, a StrategyWrapper"):
        StrategyWrapper(bad)


def test_auto_uses_mirrored_over_all_gpus_when_several(monkeypatch):
    # No GPUs here: fake two, and record the MirroredStrategy the wrapper would create.
    gpus = [tf.config.LogicalDevice(f"/device:GPU:{i}", "GPU") for i in range(2)]
    created = []
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: gpus)
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda devices: created.append(devices))
    StrategyWrapper()
    assert created == [["/device:GPU:0", "/device:GPU:1"]]


# --- batch norm statistics across replicas (the key test) ----------------------------


def test_plain_batch_norm_keeps_different_statistics_per_replica(mirrored):
    batches = split_means_data()
    with mirrored.scope():
        model = bn_model()
    train_split(model, batches)
    bn = model.layers[0]
    means = replica_values(mirrored, bn.moving_mean)
    variances = replica_values(mirrored, bn.moving_variance)
    assert len(means) == 2
    # Each replica saw only its half of every global batch.
    for replica, part in enumerate([slice(0, HALF), slice(HALF, None)]):
        mean, var = expected_moving(batches, part)
        np.testing.assert_allclose(means[replica], mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(variances[replica], var, rtol=1e-5, atol=1e-5)
    assert np.all(np.abs(means[1] - means[0]) > 3.0)


@pytest.mark.parametrize("convert", ["sync_batch_norm", "prepare"])
def test_converted_batch_norm_has_global_statistics_on_every_replica(mirrored, convert):
    batches = split_means_data()
    with mirrored.scope():
        model = bn_model()
        if convert == "sync_batch_norm":
            model = sync_batch_norm(model)
    if convert == "prepare":
        model = StrategyWrapper(mirrored).prepare(model)
    bn = model.layers[0]
    assert bn.synchronized is True
    train_split(model, batches)
    mean, var = expected_moving(batches, slice(None))
    means = replica_values(mirrored, bn.moving_mean)
    variances = replica_values(mirrored, bn.moving_variance)
    assert len(means) == 2
    np.testing.assert_array_equal(means[0], means[1])
    np.testing.assert_array_equal(variances[0], variances[1])
    np.testing.assert_allclose(means[0], mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(variances[0], var, rtol=1e-4, atol=1e-4)


# --- sync_batch_norm keeps the model ----------------------------------------------------


def unregistered_loss(y_true, y_pred):
    """A custom loss that Keras's serialization cannot find by name."""
    return keras.ops.mean(keras.ops.square(y_true - y_pred))


class UnregisteredMetric(keras.metrics.MeanAbsoluteError):
    pass


def nested_model():
    """Functional: Dense -> BN -> nested Sequential(Dense, BN, Dropout) -> Dense."""
    inputs = keras.Input((FEATURES,))
    x = keras.layers.Dense(6, name="first")(inputs)
    x = keras.layers.BatchNormalization(name="outer_bn")(x)
    block = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5),
            keras.layers.BatchNormalization(name="inner_bn"),
            keras.layers.Dropout(0.2),
        ],
        name="block",
    )
    outputs = keras.layers.Dense(1, name="head")(block(x))
    model = keras.Model(inputs, outputs, name="nested")
    model.compile(
        keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)),
        unregistered_loss,
        metrics=[UnregisteredMetric(name="mae"), "mse"],
    )
    return model


def test_sync_batch_norm_keeps_weights_nesting_and_compilation(mirrored):
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, (64, FEATURES)).astype("float32")
    y = rng.normal(0.0, 1.0, (64, 1)).astype("float32")
    original = nested_model()
    original.fit(x, y, epochs=2, batch_size=16, verbose=0)  # moving statistics away from 0/1
    before = original.predict(x, verbose=0)

    with mirrored.scope():
        converted = sync_batch_norm(original)

    assert converted is not original
    assert type(converted) is type(original) and converted.name == "nested"
    bns = [
        layer
        for layer in converted._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert sorted(bn.name for bn in bns) == ["inner_bn", "outer_bn"]
    assert all(bn.synchronized for bn in bns)
    block = converted.get_layer("block")
    assert isinstance(block, keras.Sequential)
    assert (
        block.get_layer("inner_bn").momentum
        == original.get_layer("block").get_layer("inner_bn").momentum
    )
    # The input model is untouched.
    assert original.get_layer("outer_bn").synchronized is False
    assert original.compiled
    # Same weights: same inference outputs, and every variable mirrored.
    np.testing.assert_allclose(converted.predict(x, verbose=0), before, rtol=1e-5, atol=1e-5)
    for original_var, var in zip(original.weights, converted.weights, strict=True):
        assert var.path == original_var.path
        assert len(replica_values(mirrored, var)) == 2
        np.testing.assert_array_equal(var.numpy(), original_var.numpy())
    # Compiled with the same arguments and a fresh optimizer: fit runs at once.
    assert converted.compiled
    assert converted.loss is unregistered_loss
    assert converted.optimizer is not original.optimizer
    assert converted.optimizer.get_config() == original.optimizer.get_config()
    assert int(original.optimizer.iterations.numpy()) == 8
    assert int(converted.optimizer.iterations.numpy()) == 0
    history = converted.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert {"loss", "mae", "mse"} <= set(history.history)
    assert np.isfinite(history.history["loss"][0])


def test_model_without_plain_batch_norm_is_returned_as_is():
    plain = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(2)])
    assert sync_batch_norm(plain) is plain
    synced = bn_model(synchronized=True)
    assert sync_batch_norm(synced) is synced


def test_uncompiled_sequential_without_input_built_by_a_call():
    model = keras.Sequential([keras.layers.Dense(4), keras.layers.BatchNormalization()])
    x = np.random.default_rng(2).normal(size=(8, FEATURES)).astype("float32")
    before = model(x, training=False).numpy()
    converted = sync_batch_norm(model)
    assert not converted.compiled
    assert converted.layers[1].synchronized
    np.testing.assert_allclose(converted(x, training=False).numpy(), before, rtol=1e-6)


# --- models that cannot be converted ----------------------------------------------------


class SubclassedWithBN(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(4)
        self.bn = keras.layers.BatchNormalization()

    def call(self, x, training=False):
        return self.bn(self.dense(x), training=training)


class BlockWithBN(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bn = keras.layers.BatchNormalization()

    def call(self, x, training=False):
        return self.bn(x, training=training)


def test_subclassed_model_is_a_clear_error():
    model = SubclassedWithBN()
    model(np.zeros((2, FEATURES), "float32"))
    with pytest.raises(
        SyncBatchNormError, match=r"SubclassedWithBN, a subclassed keras\.Model"
    ) as e:
        sync_batch_norm(model)
    assert isinstance(e.value, ValueError)
    assert "BatchNormalization(synchronized=True) in the model itself" in str(e.value)


def test_batch_norm_inside_a_custom_layer_is_a_clear_error():
    inputs = keras.Input((FEATURES,))
    model = keras.Model(inputs, BlockWithBN()(keras.layers.Dense(4)(inputs)))
    with pytest.raises(SyncBatchNormError, match="inside a subclassed model or custom layer"):
        sync_batch_norm(model)


# --- the tuner ----------------------------------------------------------------------------


class RecordModels(keras.callbacks.Callback):
    """Records, at the start of each fit, what the tuner is training (a class list survives deepcopy)."""

    seen = []

    def on_train_begin(self, logs=None):
        bns = [
            layer
            for layer in self.model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        RecordModels.seen.append(
            {
                "synchronized": [bn.synchronized for bn in bns],
                "replicas": [
                    len(replica_values(self.model.distribute_strategy, v))
                    for v in self.model.weights
                ],
                "strategy": self.model.distribute_strategy,
            }
        )


def bn_build(hp):
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(hp.Choice("units", [8, 16])),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(
        keras.optimizers.Adam(hp.Float("learning_rate", 1e-3, 1e-1, sampling="log")), "mse"
    )
    return model


def test_playbook_tuner_trains_with_synchronized_batch_norm(mirrored, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, FEATURES)).astype("float32")
    y = x.sum(1, keepdims=True)
    RecordModels.seen = []
    tuner = kp.PlaybookTuner(
        bn_build,
        objective="val_loss",
        scientific={"units": [8, 16]},
        trials_per_study=1,
        seed=0,
        directory=str(tmp_path),
        project_name="sync",
        distribution_strategy=StrategyWrapper(mirrored),
    )
    # KerasTuner (and replicates.py) get the tf strategy; the wrapper is kept beside it.
    assert tuner.distribution_strategy is mirrored
    assert isinstance(tuner.strategy_wrapper, StrategyWrapper)
    tuner.search(
        x,
        y,
        validation_data=(x[:16], y[:16]),
        epochs=1,
        batch_size=16,
        callbacks=[RecordModels()],
        verbose=0,
    )
    trials = tuner.oracle.trials.values()
    assert len(trials) == 2
    assert all(t.status == kt.engine.trial.TrialStatus.COMPLETED for t in trials)
    assert len(RecordModels.seen) == 2
    for record in RecordModels.seen:
        assert record["synchronized"] == [True]
        assert record["strategy"] is mirrored
        assert set(record["replicas"]) == {2}
    # get_best_models rebuilds through the same path, so the checkpoint loads into a synchronized model.
    best = tuner.get_best_models(1)[0]
    assert [
        layer.synchronized
        for layer in best.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ] == [True]
    # Seed replicates train the same converted model as the search.
    RecordModels.seen = []
    runs = tuner.study().replicate(seeds=1)
    assert len(runs) == 2 and (runs["status"] == "completed").all()
    assert [r["synchronized"] for r in RecordModels.seen] == [[True], [True]]
    assert all(set(r["replicas"]) == {2} for r in RecordModels.seen)


def test_tuner_accepts_a_plain_tf_strategy_and_keeps_single_replica_models(tmp_path):
    default = tf.distribute.get_strategy()
    RecordModels.seen = []
    tuner = kp.QuasiRandomSearch(
        bn_build,
        objective="val_loss",
        max_trials=1,
        seed=0,
        directory=str(tmp_path),
        project_name="single",
        distribution_strategy=default,
    )
    assert tuner.distribution_strategy is default
    assert tuner.strategy_wrapper.num_replicas == 1
    x = np.ones((16, FEATURES), "float32")
    tuner.search(
        x, x[:, :1], validation_data=(x, x[:, :1]), epochs=1, callbacks=[RecordModels()], verbose=0
    )
    # One replica: nothing to synchronize, the built model is trained as it is.
    assert [r["synchronized"] for r in RecordModels.seen] == [[False]]


def test_tuner_with_an_unconvertible_model_stops_at_once(mirrored, tmp_path):
    def subclassed_build(hp):
        hp.Choice("units", [8, 16])
        model = SubclassedWithBN()
        model.compile("adam", "mse")
        return model

    tuner = kp.PlaybookTuner(
        subclassed_build,
        scientific={"units": [8, 16]},
        trials_per_study=2,
        seed=0,
        directory=str(tmp_path),
        project_name="subclassed",
        distribution_strategy=mirrored,
    )
    x = np.ones((16, FEATURES), "float32")
    # A fatal error: every trial would fail the same way, so the search stops
    # before the first (the space's discovery builds the model once).
    with pytest.raises(SyncBatchNormError, match="SubclassedWithBN"):
        tuner.search(x, x[:, :4], validation_data=(x, x[:, :4]), epochs=1, verbose=0)
    assert len(tuner.oracle.trials) == 0
