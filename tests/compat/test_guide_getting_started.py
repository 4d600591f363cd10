"""keras.io guide "Getting started with KerasTuner", ported to kplaybook.

Guide: https://keras.io/guides/keras_tuner/getting_started/
(keras-io, guides/keras_tuner/getting_started.py).

What the port swaps, and nothing else of substance:

- MNIST (28x28) -> scikit-learn's digits from `kp.datasets.load("digits")`,
  reshaped to 8x8x1 images (400 to train, 100 to validate); the guide's
  `image_size` range 10..28 becomes 4..8 to fit the smaller images; random
  regression arrays stay random arrays (seeded).
- `keras_tuner.RandomSearch` -> `kp.QuasiRandomSearch` (and the guide's
  `MyTuner(keras_tuner.RandomSearch)` subclasses -> `MyTuner(kp.QuasiRandomSearch)`).
- Budgets cut for a test: the "tune anything" search runs 6 trials (guide: 20),
  searches train 1-2 epochs.
- Left out: the last section, the pre-made `HyperResNet`. It runs under
  kplaybook (`input_shape=(8, 8, 1)`: the guide's 2 trials completed), but a
  23M-parameter ResNet takes ~30 s per trial to trace and fit on 2 CPU cores,
  90 s for the section, more than this folder's budget allows.

What it asserts, section by section: the model-building functions build with
default hyperparameters; `search_space_summary()` lists the space; the search
runs `max_trials` trials, each trained `executions_per_trial` times, with the
direction of `val_accuracy` inferred; `get_best_models(2)` returns the two best
trials' models, the best one restored at its best epoch; `results_summary()`
lists trials best first; `get_best_hyperparameters(5)` rebuilds the model for
retraining; `HyperModel.fit` overrides declare `shuffle`/`normalize` and share
`image_size` with `build` through `hp.get`; built-in and custom metrics as
objectives; a `HyperModel.fit` returning a float (no objective given: minimised)
or a dict (one key as objective, the other tracked); `run_trial` overrides that
tune any function or call separate Keras code.

A `HyperModel.fit` that runs `model.fit` and returns a float or a dict is
scored by it, and the returned values are recorded as the trial's metrics, as
KerasTuner records them.
"""

import os

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from helpers import frozen_gc  # noqa: F401 - a fixture, used by pytestmark
from keras import layers

import kplaybook as kp

pytestmark = pytest.mark.usefixtures("frozen_gc")

NUM_CLASSES = 10


@pytest.fixture(scope="module")
def mnist_like():
    """The guide's MNIST preparation, on digits: 8x8x1 float images, one-hot labels."""
    (x, y), (x_val, y_val) = kp.datasets.load("digits")
    x_train = x[:400].reshape(-1, 8, 8, 1)
    x_val = x_val[:100].reshape(-1, 8, 8, 1)
    y_train = keras.utils.to_categorical(y[:400], NUM_CLASSES)
    y_val = keras.utils.to_categorical(y_val[:100], NUM_CLASSES)
    return x_train, y_train, x_val, y_val


def regression_data(seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        x=rng.random((100, 10)),
        y=rng.random((100, 1)),
        validation_data=(rng.random((20, 10)), rng.random((20, 1))),
    )


# -- Tune the model architecture ------------------------------------------------


def build_model_units(hp):
    model = keras.Sequential()
    model.add(layers.Flatten())
    model.add(
        layers.Dense(
            # Define the hyperparameter.
            units=hp.Int("units", min_value=32, max_value=512, step=32),
            activation="relu",
        )
    )
    model.add(layers.Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def call_existing_code(units, activation, dropout, lr):
    model = keras.Sequential()
    model.add(layers.Flatten())
    model.add(layers.Dense(units=units, activation=activation))
    if dropout:
        model.add(layers.Dropout(rate=0.25))
    model.add(layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def build_model_existing_code(hp):
    units = hp.Int("units", min_value=32, max_value=512, step=32)
    activation = hp.Choice("activation", ["relu", "tanh"])
    dropout = hp.Boolean("dropout")
    lr = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    # call existing model-building code with the hyperparameter values.
    return call_existing_code(units=units, activation=activation, dropout=dropout, lr=lr)


def build_model(hp):
    """The guide's final model-building function: conditional `units_{i}` per layer."""
    model = keras.Sequential()
    model.add(layers.Flatten())
    # Tune the number of layers.
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(
            layers.Dense(
                # Tune number of units separately.
                units=hp.Int(f"units_{i}", min_value=32, max_value=512, step=32),
                activation=hp.Choice("activation", ["relu", "tanh"]),
            )
        )
    if hp.Boolean("dropout"):
        model.add(layers.Dropout(rate=0.25))
    model.add(layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def test_model_building_functions_build_with_default_hyperparameters():
    # "You can quickly test if the model builds successfully."
    for build in (build_model_units, build_model_existing_code, build_model):
        assert isinstance(build(keras_tuner.HyperParameters()), keras.Model)
    # "hp.Int() returns an int value": the default, min_value.
    hp = keras_tuner.HyperParameters()
    assert hp.Int("units", min_value=32, max_value=512, step=32) == 32
    # The last function declares only what its default run reaches: one layer.
    hp = keras_tuner.HyperParameters()
    build_model(hp)
    assert set(hp.values) == {"num_layers", "units_0", "activation", "dropout", "lr"}


def test_search_query_and_retrain(tmp_path, mnist_like, capsys):
    x_train, y_train, x_val, y_val = mnist_like
    tuner = kp.QuasiRandomSearch(
        hypermodel=build_model,
        objective="val_accuracy",
        max_trials=3,
        executions_per_trial=2,
        overwrite=True,
        directory=str(tmp_path / "my_dir"),
        project_name="helloworld",
    )
    # Built-in metric: the direction is inferred.
    assert tuner.oracle.objective.name == "val_accuracy"
    assert tuner.oracle.objective.direction == "max"

    capsys.readouterr()
    tuner.search_space_summary()
    summary = capsys.readouterr().out
    assert "Search space summary" in summary
    for name in ("num_layers", "units_0", "activation", "dropout", "lr"):
        assert f"{name} (" in summary
    assert "'min_value': 32, 'max_value': 512, 'step': 32" in summary
    assert "'sampling': 'log'" in summary

    tuner.search(x_train, y_train, epochs=2, validation_data=(x_val, y_val), verbose=0)

    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3
    assert all(t.status == "COMPLETED" for t in trials)
    for t in trials:
        values = t.hyperparameters.values
        assert values["num_layers"] in (1, 2, 3)
        for i in range(values["num_layers"]):
            assert values[f"units_{i}"] in range(32, 513, 32)
        assert 1e-4 <= values["lr"] <= 1e-2
        assert values["activation"] in ("relu", "tanh")
    # executions_per_trial=2: each trial trained twice, scored on the mean of each best.
    study = tuner.study()
    assert (study.to_dataframe()["executions"] == 2).all()
    for t in trials:
        bests = study.trial(t.trial_id).execution_scores("val_accuracy", "max")
        assert len(bests) == 2
        assert t.score == pytest.approx(np.mean(bests))

    # Query the results: the top 2 models.
    best_trials = tuner.oracle.get_best_trials(2)
    assert best_trials[0].score >= best_trials[1].score
    models = tuner.get_best_models(num_models=2)
    assert len(models) == 2
    best_model = models[0]
    # Needed for `Sequential` without specified `input_shape` (the guide's words).
    best_model.build(input_shape=(None, 8, 8, 1))
    best_model.summary()
    # "The model is saved at its best performing epoch evaluated on the
    # validation_data" (KerasTuner keeps one checkpoint per trial, the best
    # epoch across its executions): it scores that epoch's val_accuracy.
    best_epoch = max(study.trial(best_trials[0].trial_id).execution_scores("val_accuracy", "max"))
    _, accuracy = best_model.evaluate(x_val, y_val, verbose=0)
    assert accuracy == pytest.approx(best_epoch, abs=1e-6)
    for model, trial in zip(models, best_trials):  # each model is its trial's
        values = trial.hyperparameters.values
        dense = [layer.units for layer in model.layers if isinstance(layer, layers.Dense)]
        assert dense == [values[f"units_{i}"] for i in range(values["num_layers"])] + [10]

    capsys.readouterr()
    tuner.results_summary()
    results = capsys.readouterr().out
    assert "Results summary" in results
    assert f"Results in {tmp_path / 'my_dir' / 'helloworld'}" in results
    assert 'Objective(name="val_accuracy", direction="max")' in results
    shown = [
        line.split()[1]
        for line in results.splitlines()
        if line.startswith("Trial ") and "summary" in line
    ]
    assert shown == [t.trial_id for t in tuner.oracle.get_best_trials(3)]  # best first

    # Retrain the model: "Get the top 2 hyperparameters" with 5 asked, 3 exist.
    best_hps = tuner.get_best_hyperparameters(5)
    assert len(best_hps) == 3
    assert best_hps[0].values == best_trials[0].hyperparameters.values
    model = build_model(best_hps[0])
    x_all = np.concatenate((x_train, x_val))
    y_all = np.concatenate((y_train, y_val))
    history = model.fit(x=x_all, y=y_all, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# -- Tune model training and data preprocessing ---------------------------------


class ShuffleHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        return build_model_units(hp)

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(
            *args,
            # Tune whether to shuffle the data in each epoch.
            shuffle=hp.Boolean("shuffle"),
            **kwargs,
        )


class NormalizeHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        return build_model_units(hp)

    def fit(self, hp, model, x, y, **kwargs):
        if hp.Boolean("normalize"):
            x = layers.Normalization()(x)
        return model.fit(
            x,
            y,
            # Tune whether to shuffle the data in each epoch.
            shuffle=hp.Boolean("shuffle"),
            **kwargs,
        )


@pytest.mark.parametrize("hypermodel_class", [ShuffleHyperModel, NormalizeHyperModel])
def test_hypermodel_fit_quick_check(hypermodel_class):
    # "Again, we can do a quick check to see if the code works correctly."
    hp = keras_tuner.HyperParameters()
    hypermodel = hypermodel_class()
    model = hypermodel.build(hp)
    history = hypermodel.fit(
        hp, model, np.random.rand(100, 8, 8), np.random.rand(100, 10), verbose=0
    )
    assert isinstance(history, keras.callbacks.History)
    assert hp.values["shuffle"] is False  # a Boolean's default
    if hypermodel_class is NormalizeHyperModel:
        assert hp.values["normalize"] is False


class ImageSizeHyperModel(keras_tuner.HyperModel):
    """A hyperparameter used in both build() and fit(): image_size, fetched with hp.get."""

    def build(self, hp):
        image_size = hp.Int("image_size", 4, 8)
        inputs = keras.Input(shape=(image_size, image_size))
        outputs = layers.Flatten()(inputs)
        outputs = layers.Dense(
            units=hp.Int("units", min_value=32, max_value=512, step=32),
            activation="relu",
        )(outputs)
        outputs = layers.Dense(10, activation="softmax")(outputs)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, x, y, validation_data=None, **kwargs):
        if hp.Boolean("normalize"):
            x = layers.Normalization()(x)
        image_size = hp.get("image_size")
        cropped_x = x[:, :image_size, :image_size, :]
        if validation_data:
            x_val, y_val = validation_data
            cropped_x_val = x_val[:, :image_size, :image_size, :]
            validation_data = (cropped_x_val, y_val)
        return model.fit(
            cropped_x,
            y,
            # Tune whether to shuffle the data in each epoch.
            shuffle=hp.Boolean("shuffle"),
            validation_data=validation_data,
            **kwargs,
        )


def test_hyperparameter_shared_by_build_and_fit(tmp_path, mnist_like):
    x_train, y_train, x_val, y_val = mnist_like
    tuner = kp.QuasiRandomSearch(
        ImageSizeHyperModel(),
        objective="val_accuracy",
        max_trials=3,
        overwrite=True,
        directory=str(tmp_path / "my_dir"),
        project_name="tune_hypermodel",
    )
    tuner.search(x_train, y_train, epochs=2, validation_data=(x_val, y_val), verbose=0)

    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    for t in trials:
        values = t.hyperparameters.values
        assert set(values) == {"image_size", "units", "normalize", "shuffle"}
        assert 4 <= values["image_size"] <= 8
        # Each trial trained on images cropped to its own size.
        assert len(t.metrics.get_history("val_accuracy")) == 2
    names = {hp.name for hp in tuner.oracle.get_space().space}
    assert {"normalize", "shuffle"} <= names  # declared in fit(), tuned

    best_hp = tuner.get_best_hyperparameters()[0]
    best_model = tuner.get_best_models()[0]
    size = best_hp.get("image_size")
    assert tuple(best_model.inputs[0].shape) == (None, size, size)

    # Retrain the model with the HyperModel, on all the data.
    hypermodel = ImageSizeHyperModel()
    model = hypermodel.build(best_hp)
    x_all = np.concatenate((x_train, x_val))
    y_all = np.concatenate((y_train, y_val))
    history = hypermodel.fit(best_hp, model, x_all, y_all, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# -- Specify the tuning objective -----------------------------------------------


def build_regressor(hp):
    model = keras.Sequential(
        [
            layers.Dense(units=hp.Int("units", 32, 128, 32), activation="relu"),
            layers.Dense(units=1),
        ]
    )
    model.compile(
        optimizer="adam",
        loss="mean_squared_error",
        # Objective is one of the metrics.
        metrics=[keras.metrics.MeanAbsoluteError()],
    )
    return model


def test_built_in_metric_as_objective(tmp_path, capsys):
    tuner = kp.QuasiRandomSearch(
        hypermodel=build_regressor,
        # The objective name and direction.
        objective=keras_tuner.Objective("val_mean_absolute_error", direction="min"),
        max_trials=3,
        overwrite=True,
        directory=str(tmp_path / "my_dir"),
        project_name="built_in_metrics",
    )
    tuner.search(**regression_data(), verbose=0)
    capsys.readouterr()
    tuner.results_summary()
    assert 'Objective(name="val_mean_absolute_error", direction="min")' in capsys.readouterr().out

    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3  # 4 unit values: not exhausted
    for t in trials:
        # One epoch (search's default): the score is that epoch's metric.
        assert t.score == pytest.approx(t.metrics.get_last_value("val_mean_absolute_error"))
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.score == min(t.score for t in trials)


class CustomMetric(keras.metrics.Metric):
    def __init__(self, **kwargs):
        # Specify the name of the metric as "custom_metric".
        super().__init__(name="custom_metric", **kwargs)
        self.sum = self.add_weight(name="sum", initializer="zeros")
        self.count = self.add_weight(name="count", dtype=tf.int32, initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = tf.math.squared_difference(y_pred, y_true)
        count = tf.shape(y_true)[0]
        if sample_weight is not None:
            sample_weight = tf.cast(sample_weight, self.dtype)
            values *= sample_weight
            count *= sample_weight
        self.sum.assign_add(tf.reduce_sum(values))
        self.count.assign_add(count)

    def result(self):
        return self.sum / tf.cast(self.count, tf.float32)

    def reset_states(self):
        self.sum.assign(0)
        self.count.assign(0)


def build_regressor_custom_metric(hp):
    model = keras.Sequential(
        [
            layers.Dense(units=hp.Int("units", 32, 128, 32), activation="relu"),
            layers.Dense(units=1),
        ]
    )
    model.compile(
        optimizer="adam",
        loss="mean_squared_error",
        # Put custom metric into the metrics.
        metrics=[CustomMetric()],
    )
    return model


def test_custom_metric_as_objective(tmp_path):
    tuner = kp.QuasiRandomSearch(
        hypermodel=build_regressor_custom_metric,
        # Specify the name and direction of the objective.
        objective=keras_tuner.Objective("val_custom_metric", direction="min"),
        max_trials=3,
        overwrite=True,
        directory=str(tmp_path / "my_dir"),
        project_name="custom_metrics",
    )
    tuner.search(**regression_data(), verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    for t in trials:
        custom = t.metrics.get_last_value("val_custom_metric")
        assert t.score == pytest.approx(custom)
        # The custom metric is a mean squared error, as the loss is.
        assert custom == pytest.approx(t.metrics.get_last_value("val_loss"), rel=1e-4)


class HyperRegressor(keras_tuner.HyperModel):
    returned = []

    def build(self, hp):
        model = keras.Sequential(
            [
                layers.Dense(units=hp.Int("units", 32, 128, 32), activation="relu"),
                layers.Dense(units=1),
            ]
        )
        model.compile(optimizer="adam", loss="mean_squared_error")
        return model

    def fit(self, hp, model, x, y, validation_data, **kwargs):
        model.fit(x, y, **kwargs)
        x_val, y_val = validation_data
        y_pred = model.predict(x_val, verbose=0)
        # Return a single float to minimize.
        value = np.mean(np.abs(y_pred - y_val))
        type(self).returned.append((hp.get("units"), float(value)))
        return value


@pytest.fixture(scope="module")
def float_search(tmp_path_factory):
    HyperRegressor.returned = []
    tuner = kp.QuasiRandomSearch(
        hypermodel=HyperRegressor(),
        # No objective to specify.
        # Objective is the return value of `HyperModel.fit()`.
        max_trials=3,
        overwrite=True,
        directory=str(tmp_path_factory.mktemp("my_dir")),
        project_name="custom_eval",
    )
    tuner.search(**regression_data(), verbose=0)
    trials = [tuner.oracle.trials[i] for i in sorted(tuner.oracle.trials)]
    return tuner, trials, list(HyperRegressor.returned)


def test_fit_returning_a_float_is_minimised_without_an_objective(float_search):
    tuner, trials, returned = float_search
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    # Each trial's score is what fit() returned, in order.
    assert [t.score for t in trials] == pytest.approx([v for _, v in returned])
    assert [t.hyperparameters.get("units") for t in trials] == [u for u, _ in returned]
    assert tuner.oracle.objective.direction == "min"
    assert tuner.oracle.get_best_trials(1)[0].score == min(v for _, v in returned)


def test_fit_returning_a_float_is_tracked_in_the_tuner_logs(float_search):
    # "the metric value will not be tracked in the Keras logs by only KerasTuner logs"
    tuner, trials, returned = float_search
    name = tuner.oracle.objective.name
    for t, (_, value) in zip(trials, returned):
        assert t.metrics.get_last_value(name) == pytest.approx(value)


class HyperRegressorDict(HyperRegressor):
    def fit(self, hp, model, x, y, validation_data, **kwargs):
        model.fit(x, y, **kwargs)
        x_val, y_val = validation_data
        y_pred = model.predict(x_val, verbose=0)
        # Return a dictionary of metrics for KerasTuner to track.
        return {
            "metric_a": -np.mean(np.abs(y_pred - y_val)),
            "metric_b": np.mean(np.square(y_pred - y_val)),
        }


class HyperRegressorDictRecorded(HyperRegressorDict):
    returned = []

    def fit(self, hp, model, *args, **kwargs):
        metrics = super().fit(hp, model, *args, **kwargs)
        type(self).returned.append({k: float(v) for k, v in metrics.items()})
        return metrics


@pytest.fixture(scope="module")
def dict_search(tmp_path_factory):
    """The guide's dict-returning search, run once for the two tests below."""
    HyperRegressorDictRecorded.returned = []
    tuner = kp.QuasiRandomSearch(
        hypermodel=HyperRegressorDictRecorded(),
        # Objective is one of the keys.
        # Maximize the negative MAE, equivalent to minimize MAE.
        objective=keras_tuner.Objective("metric_a", "max"),
        max_trials=3,
        overwrite=True,
        directory=str(tmp_path_factory.mktemp("my_dir")),
        project_name="custom_eval_dict",
    )
    tuner.search(**regression_data(), verbose=0)
    trials = [tuner.oracle.trials[i] for i in sorted(tuner.oracle.trials)]
    return tuner, trials, list(HyperRegressorDictRecorded.returned)


def test_fit_returning_a_dict_is_scored_by_the_objective_key(dict_search):
    tuner, trials, returned = dict_search
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    assert [t.score for t in trials] == pytest.approx([m["metric_a"] for m in returned])
    assert all(t.score < 0 for t in trials)
    assert tuner.oracle.get_best_trials(1)[0].score == max(t.score for t in trials)


def test_fit_returning_a_dict_tracks_every_key_as_a_trial_metric(dict_search):
    # "If you have multiple metrics to track in KerasTuner, but only use one of
    # them as the objective, you can return a dictionary".
    _, trials, returned = dict_search
    for t, metrics in zip(trials, returned):
        assert t.metrics.get_last_value("metric_a") == pytest.approx(metrics["metric_a"])
        assert t.metrics.get_last_value("metric_b") == pytest.approx(metrics["metric_b"])


# -- Tune end-to-end workflows --------------------------------------------------


class TuneAnything(kp.QuasiRandomSearch):
    def run_trial(self, trial, *args, **kwargs):
        # Get the hp from trial.
        hp = trial.hyperparameters
        # Define "x" as a hyperparameter.
        x = hp.Float("x", min_value=-1.0, max_value=1.0)
        # Return the objective value to minimize.
        return x * x + 1


def test_run_trial_tunes_any_function(tmp_path):
    tuner = TuneAnything(
        # No hypermodel or objective specified.
        max_trials=6,
        overwrite=True,
        directory=str(tmp_path / "my_dir"),
        project_name="tune_anything",
    )
    # No need to pass anything to search() unless you use them in run_trial().
    tuner.search()
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 6 and all(t.status == "COMPLETED" for t in trials)
    xs = [t.hyperparameters.get("x") for t in trials]
    assert all(-1.0 <= x <= 1.0 for x in xs)
    assert len(set(xs)) == 6
    for t in trials:
        assert t.score == pytest.approx(t.hyperparameters.get("x") ** 2 + 1)
    best_x = tuner.get_best_hyperparameters()[0].get("x")
    assert abs(best_x) == min(abs(x) for x in xs)


def keras_code(units, optimizer, saving_path):
    # Build model
    model = keras.Sequential([layers.Dense(units=units, activation="relu"), layers.Dense(units=1)])
    model.compile(optimizer=optimizer, loss="mean_squared_error")

    # Prepare data
    x_train = np.random.rand(100, 10)
    y_train = np.random.rand(100, 1)
    x_val = np.random.rand(20, 10)
    y_val = np.random.rand(20, 1)

    # Train & eval model
    model.fit(x_train, y_train, verbose=0)

    # Save model
    model.save(saving_path)

    # Return a single float as the objective value.
    y_pred = model.predict(x_val, verbose=0)
    return np.mean(np.abs(y_pred - y_val))


class KeepCodeSeparate(kp.QuasiRandomSearch):
    saving_dir = None

    def run_trial(self, trial, **kwargs):
        hp = trial.hyperparameters
        return keras_code(
            units=hp.Int("units", 32, 128, 32),
            optimizer=hp.Choice("optimizer", ["adam", "adadelta"]),
            saving_path=os.path.join(self.saving_dir, f"{trial.trial_id}.keras"),
        )


def test_run_trial_keeps_keras_code_separate(tmp_path):
    KeepCodeSeparate.saving_dir = str(tmp_path)
    tuner = KeepCodeSeparate(
        max_trials=3,
        overwrite=True,
        directory=str(tmp_path / "my_dir"),
        project_name="keep_code_separate",
    )
    tuner.search()
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    for t in trials:
        saved = keras.models.load_model(tmp_path / f"{t.trial_id}.keras")
        assert saved.layers[0].units == t.hyperparameters.get("units")
        assert np.isfinite(t.score)
    # Retraining the model: the best values are exactly keras_code's arguments.
    best_hp = tuner.get_best_hyperparameters()[0]
    assert set(best_hp.values) == {"units", "optimizer"}
    value = keras_code(**best_hp.values, saving_path=str(tmp_path / "best_model.keras"))
    assert np.isfinite(value) and (tmp_path / "best_model.keras").exists()
