"""Optimizer search spaces sized to the trial budget.

The playbook's "How should Adam's hyperparameters be tuned?"
(https://github.com/google-research/tuning_playbook#how-should-adams-hyperparameters-be-tuned).

Each function registers, on a `keras_tuner.HyperParameters`, the optimizer
hyperparameters the playbook says are worth tuning with a given number of
trials per study, and returns the configured Keras optimizer. Momentum-like
parameters are tuned as ``1 - beta`` on a log scale, where their effect is
roughly uniform.
"""

import math

import keras
import keras_tuner

from kplaybook import validation

# Rule 41 thresholds: < 10 trials: learning rate only; 10-24: + beta_1;
# 25-50: + epsilon; substantially more than 25 (here > 50): + beta_2.
ADAM_BETA1_BUDGET = 10
ADAM_EPSILON_BUDGET = 25
ADAM_BETA2_BUDGET = 51
SGD_MOMENTUM_BUDGET = 10

LEARNING_RATE_RANGE = (1e-5, 1e-1)
ONE_MINUS_BETA_1_RANGE = (1e-2, 0.5)  # beta_1 in [0.5, 0.99]; Keras default 0.9
EPSILON_RANGE = (1e-10, 1e-3)  # Keras default 1e-7
ONE_MINUS_BETA_2_RANGE = (1e-4, 1e-1)  # beta_2 in [0.9, 0.9999]; Keras default 0.999
SGD_LEARNING_RATE_RANGE = (1e-4, 1.0)
ONE_MINUS_MOMENTUM_RANGE = (1e-3, 0.5)  # momentum in [0.5, 0.999]

#: Names these functions register; all of them are nuisance hyperparameters.
OPTIMIZER_HYPERPARAMETERS = (
    "learning_rate",
    "one_minus_beta_1",
    "epsilon",
    "one_minus_beta_2",
    "one_minus_momentum",
)


def _check_arguments(hp, budget, learning_rate_range):
    """The arguments every space takes, checked before any is registered; returns (budget, range)."""
    if not isinstance(hp, keras_tuner.HyperParameters):
        raise TypeError(
            "hp must be the trial's keras_tuner.HyperParameters (the argument of build(hp)), "
            f"got {hp!r}."
        )
    if not validation.is_integer(budget) or budget < 1:
        raise ValueError(
            f"budget must be the number of trials per study (a positive int), got {budget!r}."
        )
    values = validation.sequence(
        learning_rate_range, "learning_rate_range", "a (min, max) pair of positive numbers"
    )
    if (
        len(values) != 2
        or not all(validation.is_number(v) for v in values)
        or not 0 < values[0] < values[1] < math.inf
    ):
        raise ValueError(
            "learning_rate_range must be a (min, max) pair of numbers with 0 < min < max "
            f"(finite), got {learning_rate_range!r}."
        )
    return int(budget), (float(values[0]), float(values[1]))


def _log_float(hp, name, value_range):
    return hp.Float(name, value_range[0], value_range[1], sampling="log")


def adam(hp, budget, learning_rate_range=LEARNING_RATE_RANGE):
    """Register Adam's hyperparameters for a trial budget and return `keras.optimizers.Adam`.

    Budget (trials per study) -> tuned: fewer than 10: `learning_rate`;
    10-24: also `one_minus_beta_1`; 25-50: also `epsilon`; more than 50:
    also `one_minus_beta_2`. Untuned ones keep Keras's defaults.

    Args:
        hp: the trial's `keras_tuner.HyperParameters`.
        budget: positive int, trials per study (e.g. `trials_per_study`).
        learning_rate_range: (min, max) of the log-scaled learning rate,
            0 < min < max.

    Example:

    ```python
    def build(hp):
        model = ...
        model.compile(optimizer=kp.spaces.adam(hp, budget=16), loss="mse")
        return model
    ```
    """
    budget, learning_rate_range = _check_arguments(hp, budget, learning_rate_range)
    kwargs = {"learning_rate": _log_float(hp, "learning_rate", learning_rate_range)}
    if budget >= ADAM_BETA1_BUDGET:
        kwargs["beta_1"] = 1.0 - _log_float(hp, "one_minus_beta_1", ONE_MINUS_BETA_1_RANGE)
    if budget >= ADAM_EPSILON_BUDGET:
        kwargs["epsilon"] = _log_float(hp, "epsilon", EPSILON_RANGE)
    if budget >= ADAM_BETA2_BUDGET:
        kwargs["beta_2"] = 1.0 - _log_float(hp, "one_minus_beta_2", ONE_MINUS_BETA_2_RANGE)
    return keras.optimizers.Adam(**kwargs)


def sgd_momentum(hp, budget, nesterov=True, learning_rate_range=SGD_LEARNING_RATE_RANGE):
    """Register SGD-with-momentum hyperparameters and return `keras.optimizers.SGD`.

    Fewer than 10 trials: `learning_rate` only (momentum 0.9); 10 or more:
    also `one_minus_momentum`, log-scaled.

    Args:
        hp: the trial's `keras_tuner.HyperParameters`.
        budget: positive int, trials per study.
        nesterov: bool, Nesterov momentum (the playbook's suggestion).
        learning_rate_range: (min, max) of the log-scaled learning rate,
            0 < min < max.

    Example:

    ```python
    model.compile(optimizer=kp.spaces.sgd_momentum(hp, budget=20), loss="mse")
    ```
    """
    budget, learning_rate_range = _check_arguments(hp, budget, learning_rate_range)
    learning_rate = _log_float(hp, "learning_rate", learning_rate_range)
    momentum = 0.9
    if budget >= SGD_MOMENTUM_BUDGET:
        momentum = 1.0 - _log_float(hp, "one_minus_momentum", ONE_MINUS_MOMENTUM_RANGE)
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov)
