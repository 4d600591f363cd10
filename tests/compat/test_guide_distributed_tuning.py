"""keras.io guide "Distributed hyperparameter tuning", ported to kplaybook.

Guide: https://keras.io/guides/keras_tuner/distributed_tuning/
(keras-io, guides/keras_tuner/distributed_tuning.py).

What the port swaps, and nothing else of substance:

- MNIST (1,000 images to train, 100 to validate) -> digits from
  `kp.datasets.load("digits")` as 8x8x1 images (400 and 100); the guide's
  three conv+pool layers fit 8x8 images as they are ("same" convolutions,
  8 -> 4 -> 2 -> 1). `steps_per_epoch=600` / `validation_steps=100` (more
  steps than the guide's 1,000 examples hold) -> 12 / 3, what 400 / 100
  examples hold at Keras's default batch of 32.
- `keras_tuner.Hyperband(max_epochs=2, factor=3, hyperband_iterations=1)` ->
  `kp.QuasiRandomSearch(max_trials=2)` with `epochs=2` (then 3 on resuming).
- Keras 3 spelling: `AveragePooling2D(pool_size=2)` (Keras 3 has no default
  `pool_size` there; the guide's `AveragePooling2D()` fails in every trial
  that draws "avg", under KerasTuner too).
- `tf.distribute.MirroredStrategy()` -> the test session's 2-replica
  `MirroredStrategy` over two logical CPUs (the `mirrored` fixture of
  tests/conftest.py: a second MirroredStrategy in one process can collide with
  it), so each trial really trains data-parallel on 2 replicas.

Chief/worker mode is not run here: three processes (each importing
TensorFlow) plus KerasTuner's chief, which polls every 20 s for the workers
to finish, cost more than this folder's budget. The guide's code runs
unchanged in that mode; tests/test_distributed.py runs a real chief and two
workers on 127.0.0.1 (KERASTUNER_TUNER_ID / KERASTUNER_ORACLE_IP /
KERASTUNER_ORACLE_PORT) and checks every trial. Here, in one process, the
test asserts what the guide's code does without a chief:

- the search (data parallelism within each trial) runs `max_trials` trials
  on the 2-replica strategy, the `EarlyStopping` callback passed to
  `search()` is honoured, and the best model is retrievable;
- fault tolerance, the reason the guide says to keep `overwrite=False`: the
  same script run again reloads the tuner with every trial, runs nothing
  finished again, and with a larger budget continues with new trials only.
"""

import numpy as np
import pytest
import tensorflow as tf
from helpers import frozen_gc  # noqa: F401 - a fixture, used by pytestmark

import kplaybook as kp

pytestmark = pytest.mark.usefixtures("frozen_gc")


def build_model(hp):
    """Builds a convolutional model."""
    inputs = tf.keras.Input(shape=(8, 8, 1))
    x = inputs
    for i in range(hp.Int("conv_layers", 1, 3, default=3)):
        x = tf.keras.layers.Conv2D(
            filters=hp.Int("filters_" + str(i), 4, 32, step=4, default=8),
            kernel_size=hp.Int("kernel_size_" + str(i), 3, 5),
            activation="relu",
            padding="same",
        )(x)

        if hp.Choice("pooling" + str(i), ["max", "avg"]) == "max":
            x = tf.keras.layers.MaxPooling2D()(x)
        else:
            x = tf.keras.layers.AveragePooling2D(pool_size=2)(x)

        x = tf.keras.layers.BatchNormalization()(x)
        x = tf.keras.layers.ReLU()(x)

    if hp.Choice("global_pooling", ["max", "avg"]) == "max":
        x = tf.keras.layers.GlobalMaxPooling2D()(x)
    else:
        x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(10, activation="softmax")(x)

    model = tf.keras.Model(inputs, outputs)

    optimizer = hp.Choice("optimizer", ["adam", "sgd"])
    model.compile(optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def make_tuner(directory, strategy, max_trials, overwrite=True):
    return kp.QuasiRandomSearch(
        hypermodel=build_model,
        objective="val_accuracy",
        max_trials=max_trials,
        distribution_strategy=strategy,
        directory=str(directory),
        project_name="mnist",
        overwrite=overwrite,
    )


def search(tuner, data):
    x_train, y_train, x_test, y_test = data
    tuner.search(
        x_train,
        y_train,
        epochs=2,
        steps_per_epoch=12,
        validation_data=(x_test, y_test),
        validation_steps=3,
        callbacks=[tf.keras.callbacks.EarlyStopping("val_accuracy")],
        verbose=0,
    )


@pytest.fixture(scope="module")
def data():
    (x, y), (xv, yv) = kp.datasets.load("digits")
    # Reshape the images to have the channel dimension.
    x_train = x[:400].reshape(-1, 8, 8, 1)
    y_train = y[:400].astype(np.int64)
    x_test = xv[:100].reshape(-1, 8, 8, 1)
    y_test = yv[:100].astype(np.int64)
    return x_train, y_train, x_test, y_test


def snapshot(tuner):
    return {
        t.trial_id: (t.status, t.score, t.hyperparameters.values)
        for t in tuner.oracle.trials.values()
    }


@pytest.mark.slow
def test_data_parallel_search_and_resume(tmp_path, mirrored, data):
    x_train, y_train, x_test, y_test = data
    tuner = make_tuner(tmp_path / "results_dir", mirrored, max_trials=2)
    assert tuner.distribution_strategy.num_replicas_in_sync == 2
    search(tuner, data)

    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 2 and all(t.status == "COMPLETED" for t in trials)
    for t in trials:
        assert 1 <= len(t.metrics.get_history("val_accuracy")) <= 2  # EarlyStopping may stop at 1
        assert t.hyperparameters.get("optimizer") in ("adam", "sgd")
        assert 0.0 <= t.score <= 1.0

    best_hp = tuner.get_best_hyperparameters()[0]
    best_model = tuner.get_best_models()[0]
    assert best_model.layers[-1].units == 10
    convs = [layer for layer in best_model.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    assert len(convs) == best_hp.get("conv_layers")
    assert [c.filters for c in convs] == [best_hp.get(f"filters_{i}") for i in range(len(convs))]
    _, accuracy = best_model.evaluate(x_test, y_test, verbose=0)
    assert accuracy == pytest.approx(tuner.oracle.get_best_trials(1)[0].score, abs=1e-6)

    # Fault tolerance (overwrite=False): the same script, run again, resumes.
    before = snapshot(tuner)
    again = make_tuner(tmp_path / "results_dir", mirrored, max_trials=2, overwrite=False)
    assert snapshot(again) == before
    search(again, data)
    assert snapshot(again) == before  # nothing run twice
    # A larger budget continues the search with new trials only.
    more = make_tuner(tmp_path / "results_dir", mirrored, max_trials=3, overwrite=False)
    search(more, data)
    after = snapshot(more)
    assert len(after) == 3
    assert {k: after[k] for k in before} == before
    (new_id,) = set(after) - set(before)
    assert after[new_id][0] == "COMPLETED"
    assert after[new_id][2] not in [values for _, _, values in before.values()]
