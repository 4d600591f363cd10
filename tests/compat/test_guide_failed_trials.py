"""keras.io guide "Handling failed trials in KerasTuner", ported to kplaybook.

Guide: https://keras.io/guides/keras_tuner/failed_trials/
(keras-io, guides/keras_tuner/failed_trials.py).

What the port swaps, and nothing else of substance:

- `keras_tuner.GridSearch` (all 12 combinations of `units_1` x `units_2`) ->
  `kp.QuasiRandomSearch` with `max_trials=4`, `seed=0`: 4 of the 12
  combinations, the 2nd and 4th of them too large (the guide's model raises
  for more than 1,200 parameters: 5 of the 12 combinations).
- `epochs=10` -> `epochs=2`; the data stay random arrays (seeded).

What it asserts:

- Tolerate failed trials: with `max_retries_per_trial=3` a trial whose build
  raises `ValueError` is built 4 times (1 run + 3 retries), then ends FAILED
  with the error in its message; the search goes on (the failures are not 8
  in a row) and the other trials complete; `results_summary()` runs.
- Mark a trial as failed: raising `keras_tuner.errors.FailedTrialError` skips
  the retries (each too-large combination is built once).
- Terminate the search: raising `keras_tuner.errors.FatalError` ends the
  search at the first too-large trial, whatever `max_consecutive_failed_trials`.
- `max_consecutive_failed_trials` (the guide's prose: 3 failures in a row end
  the search): a model whose `HyperModel.fit` always raises (a bug in every
  trial) ends the search after 3 failed trials with KerasTuner's "Number of
  consecutive failures exceeded the limit of 3" and the trials' error. (A
  `build` that always raises would already fail the tuner's constructor,
  which builds once, under KerasTuner too.)
"""

import collections

import keras
import keras_tuner
import numpy as np
import pytest
from helpers import frozen_gc  # noqa: F401 - a fixture, used by pytestmark
from keras import layers

import kplaybook as kp

pytestmark = pytest.mark.usefixtures("frozen_gc")

MAX_PARAMS = 1200
# Which combinations the guide's model refuses (its parameter count, computed).
TOO_LARGE = {
    (u1, u2)
    for u1 in (10, 20, 30, 40)
    for u2 in (10, 20, 30)
    if 21 * u1 + (u1 + 1) * u2 + (u2 + 1) > MAX_PARAMS
}


class Builder:
    """The guide's build_model, raising `error` for a too-large model, counting its builds."""

    def __init__(self, error):
        self.error = error
        self.builds = collections.Counter()

    def __call__(self, hp):
        # Define the 2 hyperparameters for the units in dense layers
        units_1 = hp.Int("units_1", 10, 40, step=10)
        units_2 = hp.Int("units_2", 10, 30, step=10)
        self.builds[(units_1, units_2)] += 1

        # Define the model
        model = keras.Sequential(
            [
                keras.Input((20,)),
                layers.Dense(units=units_1),
                layers.Dense(units=units_2),
                layers.Dense(units=1),
            ]
        )
        model.compile(loss="mse")

        # Raise an error when the model is too large
        n_params = model.count_params()
        if n_params > MAX_PARAMS:
            raise self.error(f"Model too large! It contains {n_params} params.")
        return model


def make_tuner(tmp_path, build_model, name):
    return kp.QuasiRandomSearch(
        hypermodel=build_model,
        objective="val_loss",
        max_trials=4,
        seed=0,
        overwrite=True,
        max_retries_per_trial=3,
        max_consecutive_failed_trials=8,
        directory=str(tmp_path),
        project_name=name,
    )


def search(tuner):
    # Use random data to train the model.
    rng = np.random.default_rng(0)
    tuner.search(
        x=rng.random((100, 20)),
        y=rng.random((100, 1)),
        validation_data=(rng.random((100, 20)), rng.random((100, 1))),
        epochs=2,
        verbose=0,
    )


def trials_by_combination(tuner):
    return {
        (t.hyperparameters.get("units_1"), t.hyperparameters.get("units_2")): t
        for t in tuner.oracle.trials.values()
    }


def test_the_guide_model_is_too_large_for_5_of_12_combinations():
    assert TOO_LARGE == {(30, 20), (30, 30), (40, 10), (40, 20), (40, 30)}
    build = Builder(ValueError)
    hp = keras_tuner.HyperParameters()
    hp.values.update(units_1=40, units_2=10)
    with pytest.raises(ValueError, match="Model too large! It contains 1261 params."):
        build(hp)
    assert isinstance(build(keras_tuner.HyperParameters()), keras.Model)  # defaults: 10, 10


def test_tolerate_failed_trials_with_retries(tmp_path, capsys):
    build = Builder(ValueError)
    tuner = make_tuner(tmp_path, build, "retries")
    build.builds.clear()  # count the search's builds only
    search(tuner)
    tuner.results_summary()
    assert "Results summary" in capsys.readouterr().out

    trials = trials_by_combination(tuner)
    assert len(trials) == 4
    failed = {c for c, t in trials.items() if t.status == "FAILED"}
    completed = {c for c, t in trials.items() if t.status == "COMPLETED"}
    assert failed == set(trials) & TOO_LARGE and len(failed) == 2
    assert completed == set(trials) - TOO_LARGE
    for combination in failed:
        # 1 failed run + 3 failed retries.
        assert build.builds[combination] == 4
        message = trials[combination].message
        assert "ValueError: Model too large! It contains" in message
    for combination in completed:
        assert len(trials[combination].metrics.get_history("val_loss")) == 2
    # The completed trials rank first; KerasTuner pads the list with the failed ones.
    best = tuner.oracle.get_best_trials(4)
    assert {t.trial_id for t in best[: len(completed)]} == {trials[c].trial_id for c in completed}
    assert all(t.status == "FAILED" for t in best[len(completed) :])
    assert len(tuner.get_best_hyperparameters(4)) == 4


def test_failed_trial_error_skips_the_retries(tmp_path):
    build = Builder(keras_tuner.errors.FailedTrialError)
    tuner = make_tuner(tmp_path, build, "failed_trial_error")
    build.builds.clear()
    search(tuner)

    trials = trials_by_combination(tuner)
    assert len(trials) == 4
    failed = {c for c, t in trials.items() if t.status == "FAILED"}
    assert failed == set(trials) & TOO_LARGE and len(failed) == 2
    for combination in failed:
        assert build.builds[combination] == 1  # no retry
        assert "FailedTrialError: Model too large!" in trials[combination].message
    assert all(t.status == "COMPLETED" for c, t in trials.items() if c not in failed)


def test_fatal_error_terminates_the_search(tmp_path):
    build = Builder(keras_tuner.errors.FatalError)
    tuner = make_tuner(tmp_path, build, "fatal_error")
    build.builds.clear()
    with pytest.raises(keras_tuner.errors.FatalError, match="Model too large!"):
        search(tuner)
    # "The search is terminated." at the first too-large trial, not retried.
    started = [tuner.oracle.trials[t] for t in tuner.oracle.start_order]
    combinations = [
        (t.hyperparameters.get("units_1"), t.hyperparameters.get("units_2")) for t in started
    ]
    assert combinations[-1] in TOO_LARGE
    assert not set(combinations[:-1]) & TOO_LARGE
    assert build.builds[combinations[-1]] == 1
    assert len(started) < 4


class NeverTrains(keras_tuner.HyperModel):
    """A model that builds, but whose training always raises (a bug in every trial)."""

    def build(self, hp):
        units = hp.Int("units", 1, 4)
        model = keras.Sequential([keras.Input((20,)), layers.Dense(units), layers.Dense(1)])
        model.compile(loss="mse")
        return model

    def fit(self, hp, model, *args, **kwargs):
        raise ValueError("this model never trains")


def test_max_consecutive_failed_trials_ends_the_search(tmp_path):
    tuner = kp.QuasiRandomSearch(
        hypermodel=NeverTrains(),
        objective="val_loss",
        max_trials=6,
        max_consecutive_failed_trials=3,
        overwrite=True,
        directory=str(tmp_path),
        project_name="consecutive",
    )
    with pytest.raises(
        RuntimeError, match="Number of consecutive failures exceeded the limit of 3"
    ) as raised:
        search(tuner)
    assert "this model never trains" in str(raised.value)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3
    assert all(t.status == "FAILED" for t in trials)
