"""Optimizer spaces sized by trial budget (PLAYBOOK.md rule 41)."""

import keras
import keras_tuner as kt
import pytest

import kplaybook as kp


def registered(fn, budget, **kwargs):
    hp = kt.HyperParameters()
    optimizer = fn(hp, budget, **kwargs)
    return hp, optimizer


@pytest.mark.parametrize(
    "budget, names",
    [
        (1, ["learning_rate"]),
        (9, ["learning_rate"]),
        (10, ["learning_rate", "one_minus_beta_1"]),
        (24, ["learning_rate", "one_minus_beta_1"]),
        (25, ["learning_rate", "one_minus_beta_1", "epsilon"]),
        (50, ["learning_rate", "one_minus_beta_1", "epsilon"]),
        (51, ["learning_rate", "one_minus_beta_1", "epsilon", "one_minus_beta_2"]),
    ],
)
def test_adam_tunes_what_the_budget_allows(budget, names):
    hp, optimizer = registered(kp.spaces.adam, budget)
    assert [p.name for p in hp.space] == names
    assert all(p.sampling == "log" for p in hp.space)
    assert isinstance(optimizer, keras.optimizers.Adam)


def test_adam_uses_the_trial_values_and_one_minus_beta():
    hp = kt.HyperParameters()
    hp.values = {
        "learning_rate": 0.003,
        "one_minus_beta_1": 0.05,
        "epsilon": 1e-6,
        "one_minus_beta_2": 0.002,
    }
    optimizer = kp.spaces.adam(hp, 60)
    config = optimizer.get_config()
    assert config["learning_rate"] == pytest.approx(0.003)
    assert config["beta_1"] == pytest.approx(0.95)
    assert config["beta_2"] == pytest.approx(0.998)
    assert config["epsilon"] == pytest.approx(1e-6)


def test_adam_defaults_for_untuned_parameters_are_keras_defaults():
    config = registered(kp.spaces.adam, 5)[1].get_config()
    default = keras.optimizers.Adam().get_config()
    for key in ("beta_1", "beta_2", "epsilon"):
        assert config[key] == default[key]


def test_sgd_momentum():
    hp, optimizer = registered(kp.spaces.sgd_momentum, 5)
    assert [p.name for p in hp.space] == ["learning_rate"]
    assert optimizer.get_config()["momentum"] == pytest.approx(0.9)
    assert optimizer.get_config()["nesterov"] is True
    hp, optimizer = registered(kp.spaces.sgd_momentum, 10, nesterov=False)
    assert [p.name for p in hp.space] == ["learning_rate", "one_minus_momentum"]
    assert optimizer.get_config()["nesterov"] is False


@pytest.mark.parametrize("budget", [0, -3, 2.5, "12", True])
def test_bad_budget_is_a_clear_error(budget):
    with pytest.raises(ValueError, match="budget must be the number of trials per study"):
        kp.spaces.adam(kt.HyperParameters(), budget)
