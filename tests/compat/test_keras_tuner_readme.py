"""The KerasTuner README's "Quick introduction", ported to kplaybook.

Source: https://github.com/keras-team/keras-tuner (README.md, "Quick introduction").

What the port swaps, and nothing else of substance:

- `x_train, y_train, x_val, y_val` (the README leaves them to the reader) ->
  generated regression arrays: 10 features, a non-negative target (the
  README's last layer is a ReLU), 200 to train and 50 to validate.
- `keras_tuner.RandomSearch` -> `kp.QuasiRandomSearch`.
- The README passes no `directory`: the test runs in a temporary working
  directory, so the tuner writes where the README's would, under
  `./untitled_project`.

What it asserts: `max_trials=5` on a space of 3 values (`units` in 8, 16, 32)
runs 3 trials, each value once, as KerasTuner's RandomSearch ends an exhausted
space; every trial trains the README's 5 epochs and is scored on `val_loss`
(the best epoch); `get_best_models()[0]` is the best trial's model; the
project lands in `./untitled_project`; and running the README again in the
same directory reloads the finished search (KerasTuner's default
`overwrite=False`) without training anything again.
"""

import keras
import numpy as np
import pytest
from helpers import frozen_gc  # noqa: F401 - a fixture, used by pytestmark

import kplaybook as kp

pytestmark = pytest.mark.usefixtures("frozen_gc")


def build_model(hp):
    model = keras.Sequential()
    model.add(keras.layers.Dense(hp.Choice("units", [8, 16, 32]), activation="relu"))
    model.add(keras.layers.Dense(1, activation="relu"))
    model.compile(loss="mse")
    return model


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.random((250, 10)).astype("float32")
    y = (x @ rng.random((10, 1))).astype("float32")
    return x[:200], y[:200], x[200:], y[200:]


def readme_tuner():
    return kp.QuasiRandomSearch(build_model, objective="val_loss", max_trials=5)


def test_readme_quick_introduction(tmp_path, monkeypatch, data):
    x_train, y_train, x_val, y_val = data
    monkeypatch.chdir(tmp_path)

    tuner = readme_tuner()
    tuner.search(x_train, y_train, epochs=5, validation_data=(x_val, y_val), verbose=0)
    best_model = tuner.get_best_models()[0]

    assert (tmp_path / "untitled_project" / "oracle.json").exists()
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3  # the space is exhausted before max_trials=5
    assert sorted(t.hyperparameters.get("units") for t in trials) == [8, 16, 32]
    for t in trials:
        assert t.status == "COMPLETED"
        history = [o.value[-1] for o in t.metrics.get_history("val_loss")]
        assert len(history) == 5
        assert t.score == pytest.approx(min(history))
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.score == min(t.score for t in trials)
    assert best_model.layers[0].units == best.hyperparameters.get("units")
    # The model returned is the best trial's, at its best epoch.
    assert best_model.evaluate(x_val, y_val, verbose=0) == pytest.approx(best.score, rel=1e-4)

    # Running the README again reloads the finished search: nothing trains.
    before = {t.trial_id: (t.score, t.hyperparameters.values) for t in trials}
    again = readme_tuner()
    again.search(x_train, y_train, epochs=5, validation_data=(x_val, y_val), verbose=0)
    assert {
        t.trial_id: (t.score, t.hyperparameters.values) for t in again.oracle.trials.values()
    } == before
    assert again.get_best_models()[0].layers[0].units == best.hyperparameters.get("units")
