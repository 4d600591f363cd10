"""keras.io guide "Tune hyperparameters in your custom training loop", ported to kplaybook.

Guide: https://keras.io/guides/keras_tuner/custom_tuner/
(keras-io, guides/keras_tuner/custom_tuner.py).

What the port swaps, and nothing else of substance:

- Random 28x28x1 images (1,000 to train, 1,000 to validate) -> digits from
  `kp.datasets.load("digits")` as 8x8x1 images, 400 to train and 200 to
  validate, labels of shape (n, 1) as in the guide.
- `keras_tuner.RandomSearch` -> `kp.QuasiRandomSearch`.
- Keras 3 spellings, as under KerasTuner with Keras 3: `callback.set_model(model)`
  (Keras 3 callbacks' `model` has no setter) and `Metric.reset_state()` (TF2's
  `reset_states()` is gone). `fit` builds its dataset from its `x`/`y`
  arguments (the guide reads the module's `x_train`/`y_train`, the same arrays).

The guide's `MyHyperModel.fit` is a custom training loop: it declares
`batch_size` and `learning_rate`, calls each KerasTuner callback's
`on_epoch_end` with `{"my_metric": epoch_loss}` (so the checkpoint keeps the
best epoch), and returns the best validation loss.

What it asserts: the search runs `max_trials=2` trials with objective
`Objective("my_metric", "min")`; each trial's score is the float its `fit`
returned (also the best `my_metric` the callbacks saw); the hyperparameters
declared inside `fit` are tuned and come back from
`get_best_hyperparameters()`; `get_best_models()[0]` is the best trial's model
restored at its best epoch (its validation loss, computed as the loop
computes it, is the trial's score).
"""

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from helpers import frozen_gc  # noqa: F401 - a fixture, used by pytestmark

import kplaybook as kp

pytestmark = pytest.mark.usefixtures("frozen_gc")


class MyHyperModel(keras_tuner.HyperModel):
    returned = []

    def build(self, hp):
        """Builds a convolutional model."""
        inputs = keras.Input(shape=(8, 8, 1))
        x = keras.layers.Flatten()(inputs)
        x = keras.layers.Dense(units=hp.Choice("units", [32, 64, 128]), activation="relu")(x)
        outputs = keras.layers.Dense(10)(x)
        return keras.Model(inputs=inputs, outputs=outputs)

    def fit(self, hp, model, x, y, validation_data, callbacks=None, **kwargs):
        # Convert the datasets to tf.data.Dataset.
        batch_size = hp.Int("batch_size", 32, 128, step=32, default=64)
        train_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
        validation_data = tf.data.Dataset.from_tensor_slices(validation_data).batch(batch_size)

        # Define the optimizer.
        optimizer = keras.optimizers.Adam(
            hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
        )
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        # The metric to track validation loss.
        epoch_loss_metric = keras.metrics.Mean()

        # Function to run the train step.
        @tf.function
        def run_train_step(images, labels):
            with tf.GradientTape() as tape:
                logits = model(images)
                loss = loss_fn(labels, logits)
                # Add any regularization losses.
                if model.losses:
                    loss += tf.math.add_n(model.losses)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))

        # Function to run the validation step.
        @tf.function
        def run_val_step(images, labels):
            logits = model(images)
            loss = loss_fn(labels, logits)
            # Update the metric.
            epoch_loss_metric.update_state(loss)

        # Assign the model to the callbacks.
        for callback in callbacks:
            callback.set_model(model)

        # Record the best validation loss value
        best_epoch_loss = float("inf")

        # The custom training loop.
        for epoch in range(2):
            # Iterate the training data to run the training step.
            for images, labels in train_ds:
                run_train_step(images, labels)

            # Iterate the validation data to run the validation step.
            for images, labels in validation_data:
                run_val_step(images, labels)

            # Calling the callbacks after epoch.
            epoch_loss = float(epoch_loss_metric.result().numpy())
            for callback in callbacks:
                # The "my_metric" is the objective passed to the tuner.
                callback.on_epoch_end(epoch, logs={"my_metric": epoch_loss})
            epoch_loss_metric.reset_state()

            best_epoch_loss = min(best_epoch_loss, epoch_loss)

        # Return the evaluation metric value.
        type(self).returned.append(best_epoch_loss)
        return best_epoch_loss


def validation_loss(model, x_val, y_val, batch_size):
    """The loop's validation loss: the mean of the per-batch mean losses."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    losses = [
        float(loss_fn(labels, model(images)))
        for images, labels in tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(batch_size)
    ]
    return float(np.mean(losses))


def test_custom_training_loop_in_hypermodel_fit(tmp_path):
    (x, y), (xv, yv) = kp.datasets.load("digits")
    x_train, y_train = x[:400].reshape(-1, 8, 8, 1), y[:400].reshape(-1, 1)
    x_val, y_val = xv[:200].reshape(-1, 8, 8, 1), yv[:200].reshape(-1, 1)

    MyHyperModel.returned = []
    tuner = kp.QuasiRandomSearch(
        objective=keras_tuner.Objective("my_metric", "min"),
        max_trials=2,
        hypermodel=MyHyperModel(),
        directory=str(tmp_path / "results"),
        project_name="custom_training",
        overwrite=True,
    )
    tuner.search(x=x_train, y=y_train, validation_data=(x_val, y_val))

    trials = [tuner.oracle.trials[t] for t in sorted(tuner.oracle.trials)]
    assert len(trials) == 2 and all(t.status == "COMPLETED" for t in trials)
    # fit() returned once per trial. (kplaybook calls fit() once more before
    # the first trial, to learn the names it declares; this one stops at
    # `for callback in callbacks` with callbacks=None, before training.)
    returned = MyHyperModel.returned
    assert len(returned) == 2
    assert [t.score for t in trials] == pytest.approx(returned)
    for t, value in zip(trials, returned):
        assert t.metrics.get_best_value("my_metric") == pytest.approx(value)
        values = t.hyperparameters.values
        assert set(values) == {"units", "batch_size", "learning_rate"}
        assert values["batch_size"] in (32, 64, 96, 128)
        assert 1e-4 <= values["learning_rate"] <= 1e-2
    # Declared in fit(): tuned, not left at their defaults in every trial.
    assert (
        len(
            {
                (t.hyperparameters.get("batch_size"), t.hyperparameters.get("learning_rate"))
                for t in trials
            }
        )
        == 2
    )

    best_hps = tuner.get_best_hyperparameters()[0]
    best_trial = tuner.oracle.get_best_trials(1)[0]
    assert best_trial.score == min(returned)
    assert best_hps.values == best_trial.hyperparameters.values

    best_model = tuner.get_best_models()[0]
    best_model.summary()
    assert best_model.layers[2].units == best_hps.get("units")
    # The callbacks checkpointed the best epoch: the restored model's
    # validation loss is the best trial's score.
    restored = validation_loss(best_model, x_val, y_val, best_hps.get("batch_size"))
    assert restored == pytest.approx(best_trial.score, rel=1e-4)
