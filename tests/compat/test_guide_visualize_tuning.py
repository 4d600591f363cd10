"""keras.io guide "Visualize the hyperparameter tuning process", ported to kplaybook.

Guide: https://keras.io/guides/keras_tuner/visualize_tuning/
(keras-io, guides/keras_tuner/visualize_tuning.py).

What the port swaps, and nothing else of substance:

- MNIST (60,000 28x28 images) -> 400 digits from `kp.datasets.load("digits")`
  as 8x8x1 images, integer labels, `validation_split=0.2` as in the guide.
- The CNN's `Conv2D` layers get `padding="same"`: with the guide's "valid"
  3x3 convolutions two conv+pool layers already shrink an 8x8 image to
  nothing, where 28x28 images fit three.
- `keras_tuner.RandomSearch(max_trials=10)` -> `kp.PlaybookTuner` with
  `scientific={"model_type": ["mlp", "cnn"]}` and `trials_per_study=2` (4
  trials): the guide's HParams view is there to compare MLPs with CNNs, which
  is what a scientific hyperparameter is; the layer counts, units, filters
  and dropout are its nuisance hyperparameters.
- `/tmp/tb` and `/tmp/tb_logs` -> folders under pytest's `tmp_path`.

The model is otherwise the guide's, quirks included (its MLP loop computes
each `Dense` layer from the flattened input and keeps none of them).

What it asserts: the quick check builds both model types after setting
`hp.values["model_type"]`; the search runs 4 trials with both model types'
conditional hyperparameters, 2 per model type; and the TensorBoard callback passed to
`search(callbacks=[...])` wrote, per trial, under
`tb_logs/<trial_id>/execution0`: the HParams plugin's session start (group
named by the trial id, every hyperparameter value of the trial, e.g.
`model_type`, `mlp_layers`/`cnn_layers`, `dropout`) and a successful session
end, and the epoch loss/accuracy curves in `train/` and `validation/`, whose
last validation accuracy is the trial's recorded `val_accuracy`. The event
files are read back with `tf.compat.v1.train.summary_iterator`.
"""

from pathlib import Path

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from helpers import frozen_gc  # noqa: F401 - a fixture, used by pytestmark
from keras import layers
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

import kplaybook as kp

pytestmark = pytest.mark.usefixtures("frozen_gc")


def build_model(hp):
    inputs = keras.Input(shape=(8, 8, 1))
    # Model type can be MLP or CNN.
    model_type = hp.Choice("model_type", ["mlp", "cnn"])
    x = inputs
    if model_type == "mlp":
        x = layers.Flatten()(x)
        # Number of layers of the MLP is a hyperparameter.
        for i in range(hp.Int("mlp_layers", 1, 3)):
            # Number of units of each layer are
            # different hyperparameters with different names.
            output_node = layers.Dense(  # noqa: F841 - the guide's own line
                units=hp.Int(f"units_{i}", 32, 128, step=32),
                activation="relu",
            )(x)
    else:
        # Number of layers of the CNN is also a hyperparameter.
        for i in range(hp.Int("cnn_layers", 1, 3)):
            x = layers.Conv2D(
                hp.Int(f"filters_{i}", 32, 128, step=32),
                kernel_size=(3, 3),
                activation="relu",
                padding="same",
            )(x)
            x = layers.MaxPooling2D(pool_size=(2, 2))(x)
        x = layers.Flatten()(x)

    # A hyperparamter for whether to use dropout layer.
    if hp.Boolean("dropout"):
        x = layers.Dropout(0.5)(x)

    # The last layer contains 10 units,
    # which is the same as the number of classes.
    outputs = layers.Dense(units=10, activation="softmax")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)

    # Compile the model.
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"], optimizer="adam")
    return model


@pytest.fixture(scope="module")
def digits_images():
    (x, y), _ = kp.datasets.load("digits")
    return x[:400].reshape(-1, 8, 8, 1), y[:400]


def test_quick_check_builds_both_model_types(digits_images):
    x_train, _ = digits_images
    # Initialize the `HyperParameters` and set the values.
    hp = keras_tuner.HyperParameters()
    hp.values["model_type"] = "cnn"
    # Build the model using the `HyperParameters`.
    model = build_model(hp)
    # Test if the model runs with our data.
    assert model(x_train[:100]).shape == (100, 10)
    model.summary()
    assert any(isinstance(layer, layers.Conv2D) for layer in model.layers)

    # Do the same for MLP model.
    hp.values["model_type"] = "mlp"
    model = build_model(hp)
    assert model(x_train[:100]).shape == (100, 10)
    model.summary()
    assert not any(isinstance(layer, layers.Conv2D) for layer in model.layers)


def events(directory):
    """Every summary value in the event files directly in `directory`: (tag, step, value proto)."""
    found = []
    for path in sorted(Path(directory).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found.append((value.tag, event.step, value))
    return found


def hparams_plugin_data(directory):
    """The HParams plugin's records in `directory`, parsed."""
    records = []
    for _, _, value in events(directory):
        if value.metadata.plugin_data.plugin_name == "hparams":
            data = plugin_data_pb2.HParamsPluginData()
            data.ParseFromString(value.metadata.plugin_data.content)
            records.append(data)
    return records


def proto_value(value):
    kind = value.WhichOneof("kind")
    return getattr(value, kind)


def scalar_curve(directory, tag):
    return {
        step: float(tf.make_ndarray(value.tensor))
        for t, step, value in events(directory)
        if t == tag
    }


def test_tensorboard_logs_hold_hparams_and_curves_per_trial(tmp_path, digits_images):
    x_train, y_train = digits_images
    tb_logs = tmp_path / "tb_logs"
    tuner = kp.PlaybookTuner(
        build_model,
        scientific={"model_type": ["mlp", "cnn"]},
        trials_per_study=2,
        # Do not resume the previous search in the same directory.
        overwrite=True,
        objective="val_accuracy",
        # Set a directory to store the intermediate results.
        directory=str(tmp_path / "tb"),
    )
    tuner.search(
        x_train,
        y_train,
        validation_split=0.2,
        epochs=2,
        # Use the TensorBoard callback.
        callbacks=[keras.callbacks.TensorBoard(str(tb_logs))],
        verbose=0,
    )

    trials = [tuner.oracle.trials[t] for t in sorted(tuner.oracle.trials)]
    assert len(trials) == 4 and all(t.status == "COMPLETED" for t in trials)
    model_types = [t.hyperparameters.get("model_type") for t in trials]
    assert sorted(model_types) == ["cnn", "cnn", "mlp", "mlp"]  # 2 trials per scientific value

    # One log folder per trial (and execution), as in the guide's screenshots.
    assert sorted(p.name for p in tb_logs.iterdir()) == [t.trial_id for t in trials]
    for t in trials:
        logdir = tb_logs / t.trial_id / "execution0"
        values = t.hyperparameters.values

        # The HParams tab: a session per trial, with the trial's values.
        records = hparams_plugin_data(logdir)
        starts = [r.session_start_info for r in records if r.HasField("session_start_info")]
        ends = [r.session_end_info for r in records if r.HasField("session_end_info")]
        assert len(starts) == 1 and len(ends) == 1
        assert starts[0].group_name == t.trial_id
        logged = {name: proto_value(v) for name, v in starts[0].hparams.items()}
        layers_name = "mlp_layers" if values["model_type"] == "mlp" else "cnn_layers"
        assert {"model_type", "dropout", layers_name} <= set(logged)
        assert logged == {name: values[name] for name in logged}  # (numbers logged as floats)
        assert ends[0].status == api_pb2.STATUS_SUCCESS

        # The loss and metrics curves.
        for split in ("train", "validation"):
            for tag in ("epoch_loss", "epoch_accuracy"):
                curve = scalar_curve(logdir / split, tag)
                assert sorted(curve) == [0, 1], (split, tag)
                assert all(np.isfinite(v) for v in curve.values())
        validation_accuracy = scalar_curve(logdir / "validation", "epoch_accuracy")
        history = t.metrics.get_history("val_accuracy")
        assert validation_accuracy[1] == pytest.approx(history[-1].value[-1], abs=1e-6)
