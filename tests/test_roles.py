"""Role validation: one-sentence errors and playbook warnings."""

import warnings

import keras
import numpy as np
import pytest

import kplaybook as kp


def build_with(*declare):
    def build(hp):
        for d in declare:
            d(hp)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile("adam", "mse")
        return model

    return build


def layers(hp):
    hp.Int("num_layers", 1, 3)


def lr(hp):
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")


def activation(hp):
    hp.Choice("activation", ["relu", "tanh"])


def tuner(tmp_path, build, **kwargs):
    kwargs.setdefault("trials_per_study", 2)
    kwargs.setdefault("seed", 0)
    return kp.PlaybookTuner(build, directory=str(tmp_path), project_name="roles", **kwargs)


def one_sentence(message):
    text = str(message).strip().strip("'\"")
    return text.endswith(".") and text.count(". ") == 0


def test_a_name_both_scientific_and_fixed_is_an_error(tmp_path):
    with pytest.raises(kp.RoleError, match="both scientific and fixed") as info:
        tuner(
            tmp_path, build_with(layers), scientific={"num_layers": [1, 2]}, fixed={"num_layers": 2}
        )
    assert one_sentence(info.value)


def test_an_empty_value_list_is_an_error(tmp_path):
    with pytest.raises(kp.RoleError, match="empty list") as info:
        tuner(tmp_path, build_with(layers), scientific={"num_layers": []})
    assert one_sentence(info.value)


def test_a_single_value_instead_of_a_list_is_an_error(tmp_path):
    with pytest.raises(kp.RoleError, match="must be a list"):
        tuner(tmp_path, build_with(layers), scientific={"num_layers": 2})


@pytest.mark.parametrize("role", ["scientific", "fixed"])
def test_an_unknown_name_is_an_error_before_any_training(tmp_path, role):
    value = {"scientific": {"num_layerz": [1, 2]}, "fixed": {"num_layerz": 2}}[role]
    # Known only once build(hp) and HyperModel.fit have declared what they
    # declare: the search raises before its first trial.
    t = tuner(tmp_path, build_with(layers, lr), **{role: value})
    x, y = np.zeros((8, 4)), np.zeros((8, 1))
    with pytest.raises(kp.RoleError, match="num_layerz.*does not declare") as info:
        t.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert one_sentence(info.value)
    assert "num_layers" in str(info.value)  # says what is declared
    assert not list((tmp_path / "roles").glob("trial_*"))


def test_batch_size_as_a_nuisance_hyperparameter_is_an_error(tmp_path):
    def batch(hp):
        hp.Choice("batch_size", [32, 64])

    with pytest.raises(kp.RoleError, match="batch size") as info:
        tuner(tmp_path, build_with(layers, batch), scientific={"num_layers": [1, 2]})
    assert one_sentence(info.value)
    # Fixed (or scientific) is fine.
    tuner(
        tmp_path / "ok",
        build_with(layers, batch),
        scientific={"num_layers": [1, 2]},
        fixed={"batch_size": 64},
    )


@pytest.mark.parametrize("role", ["scientific", "fixed"])
def test_optimizer_hyperparameters_made_scientific_or_fixed_warn(tmp_path, role):
    value = {"scientific": {"learning_rate": [1e-3, 1e-2]}, "fixed": {"learning_rate": 1e-3}}[role]
    with pytest.warns(kp.PlaybookWarning, match="Identifying scientific, nuisance, and fixed"):
        tuner(tmp_path, build_with(layers, lr), **{role: value})


def test_nuisance_optimizer_hyperparameters_do_not_warn(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", kp.PlaybookWarning)
        tuner(tmp_path, build_with(layers, lr), scientific={"num_layers": [1, 2]})


def test_a_scientific_value_outside_its_declaration_is_an_error(tmp_path):
    with pytest.raises(kp.RoleError, match="outside its declaration"):
        tuner(tmp_path, build_with(layers), scientific={"num_layers": [1, 5]})
    with pytest.raises(kp.RoleError, match="outside its declaration"):
        tuner(tmp_path, build_with(activation), scientific={"activation": ["relu", "elu"]})


def test_a_scientific_hyperparameter_declared_fixed_is_an_error(tmp_path):
    with pytest.raises(kp.RoleError, match="hp.Fixed"):
        tuner(tmp_path, build_with(lambda hp: hp.Fixed("depth", 2)), scientific={"depth": [1, 2]})


def test_bad_search_and_budget_arguments(tmp_path):
    with pytest.raises(ValueError, match="search must be one of"):
        tuner(tmp_path, build_with(layers), scientific={"num_layers": [1]}, search="grid")
    with pytest.raises(ValueError, match="trials_per_study"):
        tuner(tmp_path, build_with(layers), scientific={"num_layers": [1]}, trials_per_study=0)
    with pytest.raises(ValueError, match="seed"):
        tuner(tmp_path, build_with(layers), scientific={"num_layers": [1]}, seed=-1)
