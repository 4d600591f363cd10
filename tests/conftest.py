"""Shared fixtures: tiny real data and small real Keras models."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so tests can run a real 2-replica MirroredStrategy.
# This must happen before TensorFlow initialises its devices (KERAS_FACTS.md),
# which is why it is done here, at conftest import, before any test runs.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
LOGICAL_CPUS = ["/cpu:0", "/cpu:1"]

import gc  # noqa: E402

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import pytest  # noqa: E402

from kplaybook import datasets  # noqa: E402


@pytest.fixture(autouse=True)
def _freeze_what_earlier_tests_left():
    """Moves what survives each test out of the garbage collector's sight (`gc.freeze`).

    TensorFlow keeps every traced function graph of a process alive (tens of
    thousands of objects per trial), and Keras's `clear_session` (which
    KerasTuner and kplaybook call before every trial) runs a full
    `gc.collect()` over all of them: in one pytest process of hundreds of
    training tests, that made each later trial ~3x slower than the same test
    alone. Frozen objects are never scanned again, so each test's collections
    cost what that test allocates, as in a user's own process.
    """
    yield
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def mirrored():
    """A real 2-replica MirroredStrategy over the two logical CPU devices.

    One per session: separate MirroredStrategy objects in one process restart
    their collective-op instance keys and can collide in TF's runtime.
    """
    return tf.distribute.MirroredStrategy(LOGICAL_CPUS)


@pytest.fixture(scope="session")
def digits():
    """A small real split of scikit-learn's digits: 400 train, 200 validation examples."""
    (x, y), (xv, yv) = datasets.load_digits(seed=0)
    return (x[:400], y[:400]), (xv[:200], yv[:200])


def mlp_build(hp):
    """A tiny MLP declaring num_layers (1-3), units (log), activation and Adam's learning rate."""
    model = keras.Sequential([keras.Input((64,))])
    units = hp.Int("units", 8, 32, sampling="log")
    activation = hp.Choice("activation", ["relu", "tanh"])
    for _ in range(hp.Int("num_layers", 1, 3)):
        model.add(keras.layers.Dense(units, activation=activation))
    model.add(keras.layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("learning_rate", 1e-3, 3e-2, sampling="log")
    model.compile(
        keras.optimizers.Adam(learning_rate),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def four_dim_space():
    """A 4-dimensional KerasTuner space: log float, linear float, log int, choice."""
    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-5, 1e-1, sampling="log")
    hp.Float("dropout", 0.0, 0.5)
    hp.Int("units", 16, 256, sampling="log")
    hp.Choice("activation", ["relu", "tanh", "gelu"])
    return hp


def run_oracle(oracle, directory, n_trials, space=None, score=None, project="p"):
    """Drive an oracle as a Tuner would, without training: returns the trials' values.

    `score(values)` gives each trial's val_loss (default 1.0).
    """
    oracle._set_project_dir(str(directory), project)
    oracle.verbose = 0
    oracle.update_space(space if space is not None else four_dim_space())
    values = []
    for _ in range(n_trials):
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        values.append(dict(trial.hyperparameters.values))
        loss = score(trial.hyperparameters.values) if score else 1.0
        oracle.update_trial(trial.trial_id, {"val_loss": loss}, step=0)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return values
