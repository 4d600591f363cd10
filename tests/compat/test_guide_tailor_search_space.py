"""keras.io guide "Tailor the search space", ported to kplaybook.

Guide: https://keras.io/guides/keras_tuner/tailor_the_search_space/
(keras-io, guides/keras_tuner/tailor_the_search_space.py).

What the port swaps, and nothing else of substance:

- Random 28x28x1 images -> random 8x8x1 images (seeded), 100 to train and 20
  to validate, labels in 0..9, as in the guide.
- `keras_tuner.RandomSearch` -> `kp.QuasiRandomSearch`.
- `HyperXception(input_shape=(28, 28, 1))` -> `input_shape=(8, 8, 1)`.

The guide's model-building function is kept as it is, including its quirks:
the `Dense(units)` layer is the output (the guide's `model.add` line adds
nothing), so the loss is large, which is all the guide needs.

What it asserts:

- Search a few, fix the rest: with `hyperparameters=` holding a Float
  `learning_rate` (replacing the function's Choice) and
  `tune_new_entries=False`, `search_space_summary()` shows one
  hyperparameter, every trial gets its own learning rate in the new range and
  the others keep their defaults (`units` 64, `dropout` False).
- Fix a few, tune the rest: `hp.Fixed("learning_rate", 1e-4)` with
  `tune_new_entries=True`: every trial runs with 1e-4, the summary lists
  `learning_rate` as Fixed, and `units`/`dropout` are tuned.
- Overriding compilation arguments: `optimizer=`, `loss="mse"` and `metrics=`
  passed to the tuner are what every trial's model is compiled with
  (`get_best_models()[0].loss == "mse"`, the extra metric logged).
- Tailoring a pre-made HyperModel: `HyperXception` with only its
  `learning_rate` tuned (values of the overriding Choice, every other
  hyperparameter at its default) and its loss overridden (slow: tracing
  Xception takes several seconds per trial).
"""

import keras
import keras_tuner
import numpy as np
import pytest
from helpers import frozen_gc  # noqa: F401 - a fixture, used by pytestmark
from keras import layers

import kplaybook as kp

pytestmark = pytest.mark.usefixtures("frozen_gc")


def build_model(hp):
    model = keras.Sequential()
    model.add(layers.Flatten())
    model.add(layers.Dense(units=hp.Int("units", min_value=32, max_value=128, step=32, default=64)))
    if hp.Boolean("dropout"):
        model.add(layers.Dropout(rate=0.25))
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=hp.Choice("learning_rate", values=[1e-2, 1e-3, 1e-4])
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


@pytest.fixture(scope="module")
def data():
    """Generate random data (the guide's shapes, as 8x8 images)."""
    rng = np.random.default_rng(0)
    x_train = rng.random((100, 8, 8, 1))
    y_train = rng.integers(0, 10, (100, 1))
    x_val = rng.random((20, 8, 8, 1))
    y_val = rng.integers(0, 10, (20, 1))
    return x_train, y_train, x_val, y_val


def summary_of(tuner, capsys):
    capsys.readouterr()
    tuner.search_space_summary()
    return capsys.readouterr().out


def test_the_default_value_of_a_hyperparameter():
    hp = keras_tuner.HyperParameters()
    build_model(hp)
    assert hp.values == {"units": 64, "dropout": False, "learning_rate": 1e-2}


def test_search_a_few_and_fix_the_rest(tmp_path, data, capsys):
    x_train, y_train, x_val, y_val = data
    hp = keras_tuner.HyperParameters()
    # This will override the `learning_rate` parameter with your
    # own selection of choices
    hp.Float("learning_rate", min_value=1e-4, max_value=1e-2, sampling="log")

    tuner = kp.QuasiRandomSearch(
        hypermodel=build_model,
        hyperparameters=hp,
        # Prevents unlisted parameters from being tuned
        tune_new_entries=False,
        objective="val_accuracy",
        max_trials=3,
        overwrite=True,
        directory=str(tmp_path / "my_dir"),
        project_name="search_a_few",
    )
    tuner.search(x_train, y_train, epochs=1, validation_data=(x_val, y_val), verbose=0)

    # "If you summarize the search space, you will see only one hyperparameter."
    summary = summary_of(tuner, capsys)
    assert "Default search space size: 1" in summary
    assert "learning_rate (Float)" in summary
    assert "units" not in summary and "dropout" not in summary

    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    rates = [t.hyperparameters.get("learning_rate") for t in trials]
    assert len(set(rates)) == 3
    assert all(1e-4 <= r <= 1e-2 for r in rates)
    assert not set(rates) <= {1e-2, 1e-3, 1e-4}  # the Float, not the function's Choice
    for t in trials:
        # The rest take their default values.
        assert t.hyperparameters.values.get("units", 64) == 64
        assert t.hyperparameters.values.get("dropout", False) is False
    best_model = tuner.get_best_models()[0]
    assert best_model.layers[-1].units == 64
    best = tuner.get_best_hyperparameters()[0]
    assert float(keras.ops.convert_to_numpy(best_model.optimizer.learning_rate)) == pytest.approx(
        best.get("learning_rate")
    )


def test_fix_a_few_and_tune_the_rest(tmp_path, data, capsys):
    x_train, y_train, x_val, y_val = data
    hp = keras_tuner.HyperParameters()
    hp.Fixed("learning_rate", value=1e-4)

    tuner = kp.QuasiRandomSearch(
        build_model,
        hyperparameters=hp,
        tune_new_entries=True,
        objective="val_accuracy",
        max_trials=3,
        overwrite=True,
        directory=str(tmp_path / "my_dir"),
        project_name="fix_a_few",
    )
    tuner.search(x_train, y_train, epochs=1, validation_data=(x_val, y_val), verbose=0)

    # "you will see the learning_rate is marked as fixed, and the rest of the
    # hyperparameters are being tuned."
    summary = summary_of(tuner, capsys)
    assert "learning_rate (Fixed)" in summary
    assert "units (Int)" in summary and "dropout (Boolean)" in summary

    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    assert all(t.hyperparameters.get("learning_rate") == 1e-4 for t in trials)
    tuned = {(t.hyperparameters.get("units"), t.hyperparameters.get("dropout")) for t in trials}
    assert len(tuned) == 3  # three different points of the tuned rest
    assert all(units in (32, 64, 96, 128) for units, _ in tuned)


def test_overriding_compilation_arguments(tmp_path, data):
    x_train, y_train, x_val, y_val = data
    tuner = kp.QuasiRandomSearch(
        build_model,
        optimizer=keras.optimizers.Adam(1e-3),
        loss="mse",
        metrics=["sparse_categorical_crossentropy"],
        objective="val_loss",
        max_trials=3,
        overwrite=True,
        directory=str(tmp_path / "my_dir"),
        project_name="override_compile",
    )
    tuner.search(x_train, y_train, epochs=1, validation_data=(x_val, y_val), verbose=0)

    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    for t in trials:
        # The overriding metric replaces the function's "accuracy".
        assert t.metrics.exists("val_sparse_categorical_crossentropy")
        assert not t.metrics.exists("val_accuracy")
    # "If you get the best model, you can see the loss function has changed to MSE."
    best_model = tuner.get_best_models()[0]
    assert best_model.loss == "mse"
    assert float(keras.ops.convert_to_numpy(best_model.optimizer.learning_rate)) == pytest.approx(
        1e-3
    )
    # The val_loss each trial was scored on is the MSE of its checkpoint.
    best = tuner.oracle.get_best_trials(1)[0]
    results = best_model.evaluate(x_val, y_val, verbose=0, return_dict=True)
    assert results["loss"] == pytest.approx(best.score, rel=1e-4)


@pytest.mark.slow
def test_tailor_a_pre_made_hypermodel(tmp_path, data, capsys):
    x_train, y_train, x_val, y_val = data
    hypermodel = keras_tuner.applications.HyperXception(input_shape=(8, 8, 1), classes=10)

    hp = keras_tuner.HyperParameters()
    # This will override the `learning_rate` parameter with your
    # own selection of choices
    hp.Choice("learning_rate", values=[1e-2, 1e-3, 1e-4])

    tuner = kp.QuasiRandomSearch(
        hypermodel,
        hyperparameters=hp,
        # Prevents unlisted parameters from being tuned
        tune_new_entries=False,
        # Override the loss.
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        objective="val_accuracy",
        max_trials=3,
        overwrite=True,
        directory=str(tmp_path / "my_dir"),
        project_name="helloworld",
    )
    # Run the search
    tuner.search(x_train, y_train, epochs=1, validation_data=(x_val, y_val), verbose=0)
    summary = summary_of(tuner, capsys)
    assert "Default search space size: 1" in summary
    assert "learning_rate (Choice)" in summary

    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    # Values of the overriding Choice; the rest of HyperXception at its
    # defaults. (A value may come twice: as in KerasTuner, a trial's values are
    # recorded with the untuned defaults its build added, so a new point
    # {"learning_rate": 0.01} does not match them as a duplicate.)
    assert {t.hyperparameters.get("learning_rate") for t in trials} <= {1e-2, 1e-3, 1e-4}
    defaults = keras_tuner.HyperParameters()
    keras_tuner.applications.HyperXception(input_shape=(8, 8, 1), classes=10).build(defaults)
    for t in trials:
        for name, value in t.hyperparameters.values.items():
            if name != "learning_rate":
                assert value == defaults.get(name), name
    # The overriding loss, not HyperXception's categorical_crossentropy.
    assert tuner.get_best_models()[0].loss == "sparse_categorical_crossentropy"
