"""Bad input to the public API: what each entry point does with it, as tests.

The project's standard: bad input gets a clear error -- one sentence saying
what was wrong and what to do, naming the argument -- raised where the
argument enters (before any training), and nothing already recorded is
lost. Numpy scalars (``np.int64(3)``, ``np.float32(0.1)``) are numbers and
are accepted wherever a number is; bools are not numbers.

Every case here is a test of that standard. A case that does not meet it
today is marked ``xfail(strict=True)`` with what happens today as its
reason, so this file is also the list of gaps: when a gap is fixed its test
passes, strict xfail turns that into a failure, and the mark is removed.

Conventions:

- A bad argument raises ``TypeError`` or ``ValueError`` (kplaybook's own
  errors, ``kp.RoleError`` and ``kp.StudyError``, are ValueErrors); an
  unknown trial id or hyperparameter name raises ``KeyError``.
- ``match`` is the argument's name. Where the message names the looked-up
  value instead ("No trial '99' in study ...; its trials are [...]"), that
  is accepted as naming it, and ``match`` is the noun.
- Nothing here trains more than 100 digits for one epoch; a case whose
  error should come before training but today comes after (or never) is
  checked without letting it run long (constructors are called, not
  searched; ``max_trials=1``).

`kp.callbacks` is left out on purpose (it is being changed elsewhere).
"""

import math
import os
import re

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

import kplaybook as kp
from kplaybook.cli import main
from kplaybook.distribute.probe import _check_model
from kplaybook.testing import SyntheticTrial
from kplaybook.testing import write_study

BAD = (TypeError, ValueError)
PROBE_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe_models.py")


def gap(reason):
    """A case that does not meet the standard today; `reason` is what happens instead."""
    return pytest.mark.xfail(strict=True, reason=reason)


def case(id, *values, reason=None):
    return pytest.param(*values, id=id, marks=gap(reason) if reason else ())


# -- shared tiny objects ------------------------------------------------------------


def build(hp):
    """A one-layer MLP on 64 features declaring units, act and learning_rate."""
    hp.Int("units", 8, 32)
    hp.Choice("act", ["relu", "tanh"])
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    learning_rate = hp.Float("learning_rate", 1e-3, 1e-1, sampling="log")
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    return model


def build_for_study(hp):
    """Builds the configurations of the synthetic study below."""
    model = keras.Sequential([keras.Input((64,))])
    for _ in range(hp.Int("num_layers", 1, 2)):
        model.add(keras.layers.Dense(8, activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy")
    return model


def build_model():
    """For the sweeps and the probe: `() -> compiled keras.Model`."""
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    return model


@pytest.fixture(scope="module")
def data():
    """100 training and 100 validation digits."""
    (x, y), (xv, yv) = kp.datasets.load("digits")
    return x[:100], y[:100], xv[:100], yv[:100]


@pytest.fixture
def study(tmp_path):
    """A synthetic study (no training): 8 completed trials, 2 scientific values.

    Trials 0 and 1 logged per-step gradient norms; the others did not.
    """
    space = kt.HyperParameters()
    space.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    space.Int("num_layers", 1, 2)
    trials = []
    for i, lr in enumerate([1e-4, 1e-3, 1e-2, 3e-2]):
        for layers in (1, 2):
            trials.append(
                SyntheticTrial(
                    {"learning_rate": lr, "num_layers": layers},
                    {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7 + lr + layers / 10, 0.65 + lr]},
                    steps={"grad_norm": [1.0, 2.0, 3.0]} if i == 0 else None,
                )
            )
    path = write_study(tmp_path / "study", space, trials, scientific={"num_layers": [1, 2]})
    return kp.Study.load(path)


def snapshot(directory):
    """{relative path: (size, mtime)} of every file under `directory`."""
    result = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            stat = os.stat(path)
            result[os.path.relpath(path, directory)] = (stat.st_size, stat.st_mtime_ns)
    return result


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("x")
    return path


# -- kp.QuasiRandomSearch(...) -------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        # The reports users sent.
        case("max_trials=0", {"max_trials": 0}, "max_trials"),
        case("max_trials=-1", {"max_trials": -1}, "max_trials"),
        case(
            "max_consecutive_failed_trials=0",
            {"max_consecutive_failed_trials": 0},
            "max_consecutive_failed_trials",
        ),
        case("skip=-1", {"skip": -1}, "skip"),
        # max_trials
        case("max_trials=None", {"max_trials": None}, "max_trials"),
        case("max_trials=nan", {"max_trials": math.nan}, "max_trials"),
        case("max_trials=inf", {"max_trials": math.inf}, "max_trials"),
        case("max_trials='3'", {"max_trials": "3"}, "max_trials"),
        case("max_trials=2.5", {"max_trials": 2.5}, "max_trials"),
        case("max_trials=True", {"max_trials": True}, "max_trials"),
        # seed
        case("seed=-1", {"seed": -1}, "seed"),
        case("seed='0'", {"seed": "0"}, "seed"),
        case("seed=1.5", {"seed": 1.5}, "seed"),
        case("seed=True", {"seed": True}, "seed"),
        # skip
        case("skip='2'", {"skip": "2"}, "skip"),
        case("skip=1.5", {"skip": 1.5}, "skip"),
        case("skip=True", {"skip": True}, "skip"),
        case("skip=None", {"skip": None}, "skip"),
        # failures and retries
        case(
            "max_consecutive_failed_trials=-1",
            {"max_consecutive_failed_trials": -1},
            "max_consecutive_failed_trials",
        ),
        case(
            "max_consecutive_failed_trials=True",
            {"max_consecutive_failed_trials": True},
            "max_consecutive_failed_trials",
        ),
        case("max_retries_per_trial=-1", {"max_retries_per_trial": -1}, "max_retries_per_trial"),
        case("executions_per_trial=0", {"executions_per_trial": 0}, "executions_per_trial"),
        # objective
        case("objective=3", {"objective": 3}, "objective"),
        case("objective=''", {"objective": ""}, "objective"),
        case("objective=[two]", {"objective": ["val_loss", "loss"]}, "objective"),
        # KerasTuner's own arguments, passed through
        case("hyperparameters=dict", {"hyperparameters": {"units": 8}}, "hyperparameters"),
        case("tune_new_entries='no'", {"tune_new_entries": "no"}, "tune_new_entries"),
        case("project_name=3", {"project_name": 3}, "project_name"),
        case("directory=3", {"directory": 3}, "directory"),
        case("goal=3", {"goal": 3}, "goal"),
        case("distribution_strategy='mirrored'", {"distribution_strategy": "mirrored"}, "strategy"),
        case("unknown keyword", {"max_trail": 3}, "max_trail"),
    ],
)
def test_quasi_random_search_rejects(tmp_path, monkeypatch, kwargs, match):
    monkeypatch.chdir(tmp_path)  # directory=3 must not litter the repository
    kwargs = {"max_trials": 2, "seed": 0, "directory": str(tmp_path), "project_name": "s", **kwargs}
    with pytest.raises(BAD, match=match):
        kp.QuasiRandomSearch(build, **kwargs)
    assert not (tmp_path / "s" / "oracle.json").exists()


def test_quasi_random_search_rejects_a_bad_hypermodel(tmp_path):
    with pytest.raises(BAD, match="hypermodel"):
        kp.QuasiRandomSearch(3, directory=str(tmp_path), project_name="s")


@pytest.mark.parametrize(
    "overwrite",
    [
        case("overwrite='no'", "no"),
        case("overwrite='False'", "False"),
    ],
)
def test_a_non_bool_overwrite_is_refused_and_the_study_is_kept(tmp_path, overwrite):
    space = kt.HyperParameters()
    space.Int("units", 8, 32)
    write_study(tmp_path / "s", space, [SyntheticTrial({"units": 8}, {"val_loss": [1.0]})])
    before = snapshot(tmp_path / "s")
    try:
        with pytest.raises(BAD, match="overwrite"):
            kp.QuasiRandomSearch(
                build,
                max_trials=2,
                seed=0,
                directory=str(tmp_path),
                project_name="s",
                overwrite=overwrite,
            )
    finally:
        assert snapshot(tmp_path / "s") == before


# -- kp.PlaybookTuner(...) -----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        # scientific / fixed
        case("scientific=list", {"scientific": [8, 16]}, "scientific"),
        case("scientific value not a list", {"scientific": {"units": 8}}, "scientific"),
        case("scientific empty list", {"scientific": {"units": []}}, "scientific"),
        case("scientific str", {"scientific": {"units": "816"}}, "scientific"),
        case("scientific duplicate", {"scientific": {"units": [8, 8]}}, "scientific"),
        case("scientific None value", {"scientific": {"units": [8, None]}}, "scientific"),
        case(
            "scientific outside declaration",
            {"scientific": {"units": [8, 1000]}},
            "(?i)scientific value",
        ),
        case("fixed=list", {"fixed": ["act"]}, "fixed"),
        case("scientific and fixed", {"fixed": {"units": 8}}, "scientific and fixed"),
        # trials_per_study
        case("trials_per_study=0", {"trials_per_study": 0}, "trials_per_study"),
        case("trials_per_study=-1", {"trials_per_study": -1}, "trials_per_study"),
        case("trials_per_study='3'", {"trials_per_study": "3"}, "trials_per_study"),
        case("trials_per_study=2.5", {"trials_per_study": 2.5}, "trials_per_study"),
        case("trials_per_study=True", {"trials_per_study": True}, "trials_per_study"),
        case("trials_per_study=None", {"trials_per_study": None}, "trials_per_study"),
        # search, seed
        case("search='grid'", {"search": "grid"}, "search"),
        case("search='Quasi_Random'", {"search": "Quasi_Random"}, "search"),
        case("seed=-1", {"seed": -1}, "seed"),
        case("seed=True", {"seed": True}, "seed"),
        # skip, paired, num_initial_points
        case("skip=-1", {"skip": -1}, "skip"),
        case("skip='2'", {"skip": "2"}, "skip"),
        case("paired=None", {"paired": None}, "paired"),
        case("paired='no'", {"paired": "no"}, "paired"),
        case(
            "num_initial_points=-1",
            {"search": "bayesian", "num_initial_points": -1},
            "num_initial_points",
        ),
        case(
            "num_initial_points='3'",
            {"search": "bayesian", "num_initial_points": "3"},
            "num_initial_points",
        ),
        case(
            "num_initial_points with quasi_random", {"num_initial_points": 5}, "num_initial_points"
        ),
        # failures
        case(
            "max_consecutive_failed_trials=0",
            {"max_consecutive_failed_trials": 0},
            "max_consecutive_failed_trials",
        ),
        case("max_retries_per_trial=-1", {"max_retries_per_trial": -1}, "max_retries_per_trial"),
        case("objective=[two]", {"objective": ["val_loss", "loss"]}, "objective"),
        case("goal=3", {"goal": 3}, "goal"),
        case("unknown keyword", {"trial_per_study": 3}, "trial_per_study"),
    ],
)
def test_playbook_tuner_rejects(tmp_path, kwargs, match):
    kwargs = {"scientific": {"units": [8, 16]}, "trials_per_study": 2, "seed": 0, **kwargs}
    with pytest.raises(BAD, match=match):
        kp.PlaybookTuner(build, directory=str(tmp_path), project_name="s", **kwargs)
    assert not (tmp_path / "s" / "oracle.json").exists()


# -- kp.oracles ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        case(
            "QuasiRandomSearchOracle max_trials=0",
            lambda: kp.oracles.QuasiRandomSearchOracle("val_loss", max_trials=0),
            "max_trials",
        ),
        case(
            "QuasiRandomSearchOracle skip=-1",
            lambda: kp.oracles.QuasiRandomSearchOracle("val_loss", skip=-1),
            "skip",
        ),
        case(
            "QuasiRandomSearchOracle seed=-1",
            lambda: kp.oracles.QuasiRandomSearchOracle("val_loss", seed=-1),
            "seed",
        ),
        case(
            "NestedStudyOracle trials_per_study=0",
            lambda: kp.oracles.NestedStudyOracle(
                "val_loss", scientific={"a": [1]}, trials_per_study=0
            ),
            "trials_per_study",
        ),
        case(
            "NestedStudyOracle search='grid'",
            lambda: kp.oracles.NestedStudyOracle("val_loss", search="grid"),
            "search",
        ),
        case(
            "NestedStudyOracle skip=-1",
            lambda: kp.oracles.NestedStudyOracle("val_loss", skip=-1),
            "skip",
        ),
        case(
            "NestedStudyOracle skip='3'",
            lambda: kp.oracles.NestedStudyOracle("val_loss", skip="3"),
            "skip",
        ),
        case(
            "NestedStudyOracle paired=None",
            lambda: kp.oracles.NestedStudyOracle("val_loss", paired=None),
            "paired",
        ),
    ],
)
def test_oracles_reject(make, match):
    with pytest.raises(BAD, match=match):
        make()


# -- tuner.search(...) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fit, match",
    [
        case("epochs=0", {"epochs": 0}, "epochs"),
        case("epochs=-1", {"epochs": -1}, "epochs"),
        case("epochs='1'", {"epochs": "1"}, "epochs"),
        case("epochs=1.5", {"epochs": 1.5}, "epochs"),
        case("batch_size=0", {"batch_size": 0}, "batch_size"),
        case("validation_data missing", {"validation_data": None}, "validation_data"),
        case("x and y of different lengths", {"y_length": 50}, r"\bx\b|\by\b"),
        case("callbacks not a list", {"callbacks": keras.callbacks.EarlyStopping()}, "callbacks"),
    ],
)
def test_search_rejects_before_training(tmp_path, data, fit, match):
    x, y, xv, yv = data
    fit = dict(fit)
    y = y[: fit.pop("y_length", len(y))]
    kwargs = {"validation_data": (xv, yv), "epochs": 1, "batch_size": 32, "verbose": 0, **fit}
    tuner = kp.QuasiRandomSearch(
        build, max_trials=1, seed=0, directory=str(tmp_path), project_name="s"
    )
    with pytest.raises(BAD, match=match):
        tuner.search(x, y, **kwargs)
    assert not list((tmp_path / "s").glob("trial_*")), "a trial was recorded"


@pytest.mark.parametrize(
    "roles, match",
    [
        case(
            "scientific undeclared name",
            {"scientific": {"nope": [1, 2]}},
            "scientific names 'nope'",
        ),
        case("fixed undeclared name", {"fixed": {"nope": 1}}, "fixed names 'nope'"),
    ],
)
def test_playbook_search_rejects_undeclared_role_names_before_training(
    tmp_path, data, roles, match
):
    # Known only once build(hp) and HyperModel.fit declared theirs: search() raises.
    x, y, xv, yv = data
    tuner = kp.PlaybookTuner(
        build, trials_per_study=1, seed=0, directory=str(tmp_path), project_name="s", **roles
    )
    with pytest.raises(kp.RoleError, match=match):
        tuner.search(x, y, validation_data=(xv, yv), epochs=1, verbose=0)
    assert not list((tmp_path / "s").glob("trial_*")), "a trial was recorded"


# -- kp.Study.load and the study's methods ---------------------------------------------


@pytest.mark.parametrize(
    "directory, error, match",
    [
        case("a file", "FILE", kp.StudyError, "directory"),
        case("missing", "MISSING", kp.StudyError, "does not exist"),
        case("no oracle.json", "EMPTY", kp.StudyError, "oracle.json"),
        case("None", None, BAD, "directory"),
        case("an int", 3, BAD, "directory"),
    ],
)
def test_study_load_rejects(tmp_path, a_file, directory, error, match):
    if isinstance(directory, str):
        directory = {"FILE": a_file, "MISSING": tmp_path / "missing", "EMPTY": tmp_path}[directory]
    with pytest.raises(error, match=match):
        kp.Study.load(directory)


@pytest.mark.parametrize(
    "hp_name",
    [
        case("unknown name", "nope"),
        case("empty name", ""),
        case("an int", 3),
    ],
)
def test_plot_axis_rejects(study, hp_name):
    with pytest.raises(KeyError, match="varied hyperparameter"):
        study.plot_axis(hp_name)


@pytest.mark.parametrize(
    "which, error, match",
    [
        case("'Best'", "Best", BAD, "which"),
        case("unknown word", "nope", BAD, "which"),
        case("unknown trial id", ["99"], KeyError, "trial"),
        case("an int", 3, BAD, "which"),
        case("None", None, BAD, "which"),
        case("empty list", [], BAD, "which"),
    ],
)
def test_plot_curves_rejects(study, which, error, match):
    with pytest.raises(error, match=match):
        study.plot_curves(which)


@pytest.mark.parametrize(
    "trial_id, error, match",
    [
        case("unknown trial", "99", KeyError, "trial"),
        case("a trial without norms", "2", ValueError, "gradient norms"),
        case("negative id", -1, KeyError, "trial"),
    ],
)
def test_plot_grad_norms_rejects(study, trial_id, error, match):
    with pytest.raises(error, match=match):
        study.plot_grad_norms(trial_id)


@pytest.mark.parametrize(
    "trial_id, execution, error, match",
    [
        case("unknown trial", "99", 0, KeyError, "trial"),
        case("execution out of range", "0", 1, IndexError, "execution"),
        case("execution=-1", "0", -1, IndexError, "execution"),
        case("execution='0'", "0", "0", BAD, "execution"),
        case("execution=None", "0", None, BAD, "execution"),
        case("execution=True", "0", True, BAD, "execution"),
    ],
)
def test_steps_rejects(study, trial_id, execution, error, match):
    with pytest.raises(error, match=match):
        study.steps(trial_id, execution)


@pytest.mark.parametrize("trial_id", ["99", 99, "abc", ""])
def test_curves_rejects(study, trial_id):
    with pytest.raises(KeyError, match="trial"):
        study.curves(trial_id)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        case("top_k=0", {"top_k": 0}, "top_k"),
        case("top_k='1'", {"top_k": "1"}, "top_k"),
        case("top_k=True", {"top_k": True}, "top_k"),
        case("seeds=0", {"seeds": 0}, "seeds"),
        case("seeds='3'", {"seeds": "3"}, "seeds"),
        case("seeds=True", {"seeds": True}, "seeds"),
        case("seeds repeat", {"seeds": [1, 1]}, "seeds"),
        case("seeds=[1.5]", {"seeds": [1.5]}, "seeds"),
        case("no hypermodel on a loaded study", {"hypermodel": None}, "hypermodel="),
        case("hypermodel=3", {"hypermodel": 3}, "hypermodel"),
        case("seeds=None", {"seeds": None}, "seeds"),
        case("seeds=2.5", {"seeds": 2.5}, "seeds"),
        case("seeds=[-1]", {"seeds": [-1]}, "seeds"),
        case("no fit data", {"no_fit": True}, "x="),
        case("epochs=0", {"epochs": 0}, "epochs"),
    ],
)
def test_replicate_rejects(study, data, kwargs, match):
    x, y, xv, yv = data
    kwargs = dict(kwargs)
    fit = {"x": x, "y": y, "validation_data": (xv, yv), "epochs": 1, "verbose": 0}
    if kwargs.pop("no_fit", False):
        fit = {}
    kwargs = {"seeds": [1], "hypermodel": build_for_study, **fit, **kwargs}
    before = snapshot(study.directory)
    with pytest.raises(BAD, match=match):
        study.replicate(**kwargs)
    assert snapshot(study.directory) == before


# "directory" alone would match OSError's own "No such file or directory" and the
# test's temporary path: the message must name it and say what to pass.
DIRECTORY_ADVICE = r"directory.*; pass|pass .*directory"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        case("formats='pdf'", {"formats": "pdf"}, "format"),
        case("formats=[]", {"formats": []}, "format"),
        case("formats with a typo", {"formats": ["html", "HTML"]}, "format"),
        case("formats=None", {"formats": None}, "formats"),
        case("formats=3", {"formats": 3}, "formats"),
        case("directory is a file", {"directory": "FILE"}, DIRECTORY_ADVICE),
        case("directory unwritable", {"directory": "/proc/no_such_dir"}, DIRECTORY_ADVICE),
        case("directory=3", {"directory": 3}, DIRECTORY_ADVICE),
    ],
)
def test_export_rejects(study, a_file, kwargs, match):
    if kwargs.get("directory") == "FILE":
        kwargs = {**kwargs, "directory": a_file}
    before = snapshot(study.directory)
    with pytest.raises((TypeError, ValueError, OSError), match=match):
        study.export(**kwargs)
    assert snapshot(study.directory) == before
    if kwargs.get("directory") == a_file:
        assert a_file.read_text() == "x"


# -- kp.compare ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "other, match",
    [
        case("a file", "FILE", "directory"),
        case("missing", "MISSING", "does not exist"),
        case("None", None, "study_b"),
        case("an int", 3, "study_b"),
    ],
)
def test_compare_rejects(study, tmp_path, a_file, other, match):
    other = (
        {"FILE": a_file, "MISSING": tmp_path / "missing"}.get(other, other)
        if isinstance(other, str)
        else other
    )
    with pytest.raises(BAD, match=match):
        kp.compare(study, other)


# -- kp.spaces -----------------------------------------------------------------------


@pytest.mark.parametrize("space", [kp.spaces.adam, kp.spaces.sgd_momentum])
@pytest.mark.parametrize(
    "kwargs, match",
    [
        case("budget=0", {"budget": 0}, "budget"),
        case("budget='16'", {"budget": "16"}, "budget"),
        case("budget=16.0", {"budget": 16.0}, "budget"),
        case("budget=True", {"budget": True}, "budget"),
        case("budget=nan", {"budget": math.nan}, "budget"),
        case("range reversed", {"learning_rate_range": (1e-1, 1e-5)}, "learning_rate_range"),
        case("range from 0", {"learning_rate_range": (0, 1e-1)}, "learning_rate_range"),
        case("range of one value", {"learning_rate_range": (1e-5,)}, "learning_rate_range"),
        case("range=None", {"learning_rate_range": None}, "learning_rate_range"),
        case("range with nan", {"learning_rate_range": (math.nan, 1e-1)}, "learning_rate_range"),
        case("range to inf", {"learning_rate_range": (1e-5, math.inf)}, "learning_rate_range"),
        case("hp=None", {"hp": None}, "hp"),
        case("hp=dict", {"hp": {}}, "hp"),
    ],
)
def test_spaces_reject(space, kwargs, match):
    kwargs = {"hp": kt.HyperParameters(), "budget": 16, **kwargs}
    with pytest.raises(BAD, match=match):
        space(**kwargs)


# -- kp.datasets.load ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        case("unknown name", ("no_such_name",), {}, "digits"),
        case("'Digits'", ("Digits",), {}, "'digits'"),
        case("name=None", (None,), {}, "name"),
        case(
            "validation_fraction=1.5",
            ("digits",),
            {"validation_fraction": 1.5},
            "validation_fraction",
        ),
        case(
            "validation_fraction=1.0",
            ("digits",),
            {"validation_fraction": 1.0},
            "validation_fraction",
        ),
        case(
            "validation_fraction=-0.1",
            ("digits",),
            {"validation_fraction": -0.1},
            "validation_fraction",
        ),
        case(
            "validation_fraction='0.2'",
            ("digits",),
            {"validation_fraction": "0.2"},
            "validation_fraction",
        ),
        case("seed=-1", ("digits",), {"seed": -1}, "seed"),
        case("unknown keyword", ("digits",), {"max_example": 10}, "max_example"),
    ],
)
def test_datasets_load_rejects(args, kwargs, match):
    with pytest.raises(BAD, match=match) as info:
        kp.datasets.load(*args, **kwargs)
    assert len(str(info.value).strip().splitlines()) == 1


# -- kp.lr_sweep / kp.warmup_sweep -------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        case("learning_rates=[]", {"learning_rates": []}, "learning_rates"),
        case("learning_rates=0.1", {"learning_rates": 0.1}, "learning_rates"),
        case("learning_rates=[0]", {"learning_rates": [0]}, "learning.rates"),
        case("learning_rates=[nan]", {"learning_rates": [math.nan]}, "learning.rates"),
        case("learning_rates=None", {"learning_rates": None}, "learning_rates"),
        case("learning_rates duplicate", {"learning_rates": [0.1, 0.1]}, "learning_rates"),
        case("steps=0", {"steps": 0}, "steps"),
        case("steps=True", {"steps": True}, "steps"),
        case("batch_size larger than the data", {"batch_size": 1000}, "batch_size"),
        case("eval_batches=0", {"eval_batches": 0}, "eval_batches"),
        case("patience=0", {"patience": 0}, "patience"),
        case("factor=nan", {"factor": math.nan}, "factor"),
        case("train_data=x", {"train_data": "X"}, "train_data"),
        case("train_data lengths differ", {"train_data": "XY50"}, "train_data"),
        case("build_model=None", {"build_model": None}, "build_model"),
        case("seed=-1", {"seed": -1}, "(?i)seed"),
        case("learning_rates=['0.1']", {"learning_rates": ["0.1"]}, "learning_rates"),
        case("learning_rates=[True]", {"learning_rates": [True]}, "learning_rates"),
        case("batch_size=0", {"batch_size": 0}, "batch_size"),
        case("batch_size=-1", {"batch_size": -1}, "batch_size"),
        case("batch_size='8'", {"batch_size": "8"}, "batch_size"),
        case("batch_size=8.5", {"batch_size": 8.5}, "batch_size"),
        case("batch_size=True", {"batch_size": True}, "batch_size"),
        case("eval_batches=True", {"eval_batches": True}, "eval_batches"),
        case("seed='0'", {"seed": "0"}, "seed"),
        case("callbacks not a list", {"callbacks": keras.callbacks.EarlyStopping()}, "callbacks"),
        case("build_model=a model", {"build_model": "MODEL"}, "build_model"),
    ],
)
def test_lr_sweep_rejects(data, kwargs, match):
    x, y, _, _ = data
    special = {"X": x, "XY50": (x, y[:50]), "MODEL": build_model()}
    kwargs = {
        k: special[v] if k in ("train_data", "build_model") and isinstance(v, str) else v
        for k, v in kwargs.items()
    }
    kwargs = {
        "build_model": build_model,
        "train_data": (x, y),
        "learning_rates": [1e-2],
        "steps": 2,
        "batch_size": 16,
        "eval_batches": 1,
        **kwargs,
    }
    with pytest.raises(BAD, match=match):
        kp.lr_sweep(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        case("base_lr=0", {"base_lr": 0}, "base_lr"),
        case("base_lr=nan", {"base_lr": math.nan}, "base_lr"),
        case("warmup_steps_list=[]", {"warmup_steps_list": []}, "warmup_steps_list"),
        case("warmup_steps_list=[0]", {"warmup_steps_list": [0]}, "warmup length"),
        case("warmup_steps_list=[1.5]", {"warmup_steps_list": [1.5]}, "warmup length"),
        case("warmup_steps_list duplicate", {"warmup_steps_list": [2, 2]}, "warmup_steps_list"),
        case("max_train_steps=0", {"max_train_steps": 0}, "max_train_steps"),
        case(
            "warmup longer than 10% of max_train_steps", {"max_train_steps": 10}, "max_train_steps"
        ),
        case("steps shorter than the warmup", {"steps": 2}, "steps"),
        case("base_lr=inf", {"base_lr": math.inf}, "base_lr"),
        case("base_lr='0.1'", {"base_lr": "0.1"}, "base_lr"),
        case("base_lr=True", {"base_lr": True}, "base_lr"),
        case("base_lr=None", {"base_lr": None}, "base_lr"),
        case("warmup_steps_list=2", {"warmup_steps_list": 2}, "warmup_steps_list"),
        case("warmup_steps_list=None", {"warmup_steps_list": None}, "warmup_steps_list"),
        case("hold_factor=-1", {"steps": None, "hold_factor": -1}, "hold_factor"),
        case("hold_factor=nan", {"steps": None, "hold_factor": math.nan}, "hold_factor"),
        case("hold_factor='2'", {"steps": None, "hold_factor": "2"}, "hold_factor"),
        case("include_no_warmup='no'", {"include_no_warmup": "no"}, "include_no_warmup"),
    ],
)
def test_warmup_sweep_rejects(data, kwargs, match):
    x, y, _, _ = data
    kwargs = {
        "base_lr": 0.1,
        "warmup_steps_list": [2],
        "max_train_steps": 100,
        "steps": 4,
        "batch_size": 16,
        "eval_batches": 1,
        "include_no_warmup": False,
        **kwargs,
    }
    with pytest.raises(BAD, match=match):
        kp.warmup_sweep(build_model, (x, y), **kwargs)


# -- kp.distribute ---------------------------------------------------------------------


class ProbeRan(Exception):
    """Raised instead of measuring a batch size: the error should have come before."""


def _no_probe(build_model, examples, wrapper, *args, **kwargs):
    """Builds and checks the model as the probe does, then stops before training it."""
    with wrapper.scope():
        model = build_model()
    _check_model(model)
    raise ProbeRan("the probe started training before the bad argument was refused")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        case("steps=0", {"steps": 0}, "steps"),
        case("steps=True", {"steps": True}, "steps"),
        case("warmup_steps=-1", {"warmup_steps": -1}, "warmup_steps"),
        case("batch_sizes=[]", {"batch_sizes": []}, "batch_sizes"),
        case("batch_sizes=[0]", {"batch_sizes": [0]}, "batch_sizes"),
        case("batch_sizes=[8.0]", {"batch_sizes": [8.0]}, "batch_sizes"),
        case("batch_sizes=[True]", {"batch_sizes": [True]}, "batch_sizes"),
        case("batch_sizes duplicate", {"batch_sizes": [8, 8]}, "batch_sizes"),
        case("max_batch_size=4", {"batch_sizes": None, "max_batch_size": 4}, "max_batch_size"),
        case("strategy='mirrored'", {"strategy": "mirrored"}, "strategy"),
        case("dataset=x", {"dataset": "X"}, "dataset"),
        case("dataset already batched", {"dataset": "BATCHED"}, "batched"),
        case("uncompiled model", {"build_model": "UNCOMPILED"}, "compile"),
        case("batch_sizes=8", {"batch_sizes": 8}, "batch_sizes"),
        case(
            "max_batch_size='16'", {"batch_sizes": None, "max_batch_size": "16"}, "max_batch_size"
        ),
        case(
            "max_batch_size=None", {"batch_sizes": None, "max_batch_size": None}, "max_batch_size"
        ),
        case(
            "max_batch_size=nan",
            {"batch_sizes": None, "max_batch_size": math.nan},
            "max_batch_size",
        ),
        case("isolate='no'", {"isolate": "no", "dataset": "DATASET"}, "isolate.*'no'"),
        case("cache_dir is a file", {"cache_dir": "FILE"}, "cache_dir"),
        case("cache_dir=3", {"cache_dir": 3}, "cache_dir"),
        case("dataset x and y of different lengths", {"dataset": "XY10"}, "dataset"),
        case("build_model=a model", {"build_model": "MODEL"}, "build_model"),
        case("build_model=None", {"build_model": None}, "build_model"),
    ],
)
def test_probe_batch_sizes_rejects(data, a_file, monkeypatch, kwargs, match):
    x, y, _, _ = data
    monkeypatch.setattr("kplaybook.distribute.probe._probe_one", _no_probe)
    special = {
        "X": x,
        "XY10": (x, y[:10]),
        "BATCHED": tf.data.Dataset.from_tensor_slices((x, y)).batch(8),
        "DATASET": tf.data.Dataset.from_tensor_slices((x, y)),
        "FILE": a_file,
        "MODEL": build_model(),
        "UNCOMPILED": lambda: keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)]),
    }
    kwargs = {k: special.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
    kwargs = {
        "build_model": build_model,
        "dataset": (x, y),
        "batch_sizes": [8],
        "steps": 1,
        "warmup_steps": 0,
        "isolate": False,
        **kwargs,
    }
    with pytest.raises((TypeError, ValueError, OSError), match=match):
        kp.distribute.probe_batch_sizes(**kwargs)


@pytest.mark.parametrize(
    "call, match",
    [
        case(
            "StrategyWrapper('mirrored')",
            lambda: kp.distribute.StrategyWrapper("mirrored"),
            "strategy",
        ),
        case(
            "global_batch_size(0)",
            lambda: kp.distribute.StrategyWrapper().global_batch_size(0),
            "per_replica",
        ),
        case(
            "global_batch_size('32')",
            lambda: kp.distribute.StrategyWrapper().global_batch_size("32"),
            "per_replica",
        ),
        case(
            "global_batch_size(True)",
            lambda: kp.distribute.StrategyWrapper().global_batch_size(True),
            "per_replica",
        ),
        case(
            "per_replica_batch_size(-1)",
            lambda: kp.distribute.StrategyWrapper().per_replica_batch_size(-1),
            "global_batch",
        ),
        case("prepare(None)", lambda: kp.distribute.StrategyWrapper().prepare(None), "model"),
        case("prepare('model')", lambda: kp.distribute.StrategyWrapper().prepare("model"), "model"),
        case("sync_batch_norm(None)", lambda: kp.distribute.sync_batch_norm(None), "keras.Model"),
        case(
            "sync_batch_norm(a function)",
            lambda: kp.distribute.sync_batch_norm(build_model),
            "keras.Model",
        ),
    ],
)
def test_strategy_wrapper_and_sync_batch_norm_reject(call, match):
    with pytest.raises(BAD, match=match):
        call()


# -- kp.layers.GhostBatchNormalization / kp.schedules.WarmupDecay ---------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        case("virtual_batch_size=0", {"virtual_batch_size": 0}, "virtual_batch_size"),
        case("virtual_batch_size='64'", {"virtual_batch_size": "64"}, "virtual_batch_size"),
        case("virtual_batch_size=64.0", {"virtual_batch_size": 64.0}, "virtual_batch_size"),
        case("virtual_batch_size=True", {"virtual_batch_size": True}, "virtual_batch_size"),
        case("virtual_batch_size=None", {"virtual_batch_size": None}, "virtual_batch_size"),
        case("axis=1.0", {"axis": 1.0}, "axis"),
        case("axis=[1, 2]", {"axis": [1, 2]}, "axis"),
        case("momentum=1.5", {"momentum": 1.5}, "momentum"),
        case("momentum=-0.1", {"momentum": -0.1}, "momentum"),
        case("momentum=nan", {"momentum": math.nan}, "momentum"),
        case("momentum='0.9'", {"momentum": "0.9"}, "momentum"),
        case("momentum=True", {"momentum": True}, "momentum"),
        case("epsilon=-1", {"epsilon": -1}, "epsilon"),
        case("epsilon=nan", {"epsilon": math.nan}, "epsilon"),
        case("center='no'", {"center": "no"}, "center"),
    ],
)
def test_ghost_batch_normalization_rejects(kwargs, match):
    with pytest.raises(BAD, match=match):
        kp.layers.GhostBatchNormalization(**kwargs)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        case("peak_lr=0", (0, 10, 100), {}, "peak_lr"),
        case("peak_lr=nan", (math.nan, 10, 100), {}, "peak_lr"),
        case("peak_lr=inf", (math.inf, 10, 100), {}, "peak_lr"),
        case("peak_lr='1e-3'", ("1e-3", 10, 100), {}, "peak_lr"),
        case("warmup_steps=-1", (1e-3, -1, 100), {}, "warmup_steps"),
        case("warmup_steps=10.0", (1e-3, 10.0, 100), {}, "warmup_steps"),
        case("warmup_steps=True", (1e-3, True, 100), {}, "warmup_steps"),
        case("total_steps=warmup_steps", (1e-3, 10, 10), {}, "total_steps"),
        case("total_steps=100.0", (1e-3, 10, 100.0), {}, "total_steps"),
        case("decay='Cosine'", (1e-3, 10, 100), {"decay": "Cosine"}, "decay"),
        case("end_lr=-1", (1e-3, 10, 100), {"end_lr": -1}, "end_lr"),
        case("end_lr above peak_lr", (1e-3, 10, 100), {"end_lr": 1.0}, "end_lr"),
        case("end_lr=nan", (1e-3, 10, 100), {"end_lr": math.nan}, "end_lr"),
        case("end_lr=True", (1e-3, 10, 100), {"end_lr": True}, "end_lr"),
        case(
            "peak_lr=True",
            (True, 10, 100),
            {},
            "peak_lr",
        ),
    ],
)
def test_warmup_decay_rejects(args, kwargs, match):
    with pytest.raises(BAD, match=match):
        kp.schedules.WarmupDecay(*args, **kwargs)


# -- numpy scalars are numbers -------------------------------------------------------------


def _replicate_numpy(ctx, **kwargs):
    x, y, xv, yv = ctx.data
    return ctx.study.replicate(
        hypermodel=build_for_study,
        x=x,
        y=y,
        validation_data=(xv, yv),
        epochs=1,
        verbose=0,
        **kwargs,
    )


class Context:
    def __init__(self, tmp_path, data, study):
        self.tmp_path, self.data, self.study = tmp_path, data, study

    def qr(self, **kwargs):
        kwargs = {"max_trials": 2, "seed": 0, **kwargs}
        return kp.QuasiRandomSearch(build, directory=str(self.tmp_path), project_name="q", **kwargs)

    def pt(self, **kwargs):
        kwargs = {"scientific": {"units": [8, 16]}, "trials_per_study": 2, "seed": 0, **kwargs}
        return kp.PlaybookTuner(build, directory=str(self.tmp_path), project_name="p", **kwargs)


@pytest.mark.parametrize(
    "call",
    [
        case("QuasiRandomSearch max_trials", lambda c: c.qr(max_trials=np.int64(2))),
        case("QuasiRandomSearch skip", lambda c: c.qr(skip=np.int64(3))),
        case(
            "QuasiRandomSearch max_consecutive_failed_trials",
            lambda c: c.qr(max_consecutive_failed_trials=np.int64(2)),
        ),
        case(
            "QuasiRandomSearch executions_per_trial",
            lambda c: c.qr(executions_per_trial=np.int64(1)),
        ),
        case("QuasiRandomSearch seed", lambda c: c.qr(seed=np.int64(3))),
        case("PlaybookTuner seed", lambda c: c.pt(seed=np.int64(3))),
        case("PlaybookTuner trials_per_study", lambda c: c.pt(trials_per_study=np.int64(3))),
        case(
            "PlaybookTuner scientific int64 values",
            lambda c: c.pt(scientific={"units": [np.int64(8), np.int64(16)]}),
        ),
        case(
            "PlaybookTuner scientific np.array",
            lambda c: c.pt(scientific={"units": np.array([8, 16])}),
        ),
        case(
            "PlaybookTuner scientific float64 values",
            lambda c: c.pt(scientific={"learning_rate": list(np.array([1e-3, 1e-2]))}),
        ),
        case(
            "PlaybookTuner fixed int64",
            lambda c: c.pt(fixed={"units": np.int64(8)}, scientific={"act": ["relu", "tanh"]}),
        ),
        case(
            "PlaybookTuner fixed float32", lambda c: c.pt(fixed={"learning_rate": np.float32(0.01)})
        ),
        case(
            "PlaybookTuner num_initial_points (searched)",
            lambda c: c.pt(
                search="bayesian",
                num_initial_points=np.int64(1),
                trials_per_study=1,
                scientific={"units": [8]},
            ).search(*c.data[:2], validation_data=c.data[2:], epochs=1, verbose=0),
        ),
        case(
            "QuasiRandomSearchOracle max_trials",
            lambda c: kp.oracles.QuasiRandomSearchOracle("val_loss", max_trials=np.int64(3)),
        ),
        case(
            "NestedStudyOracle trials_per_study",
            lambda c: kp.oracles.NestedStudyOracle("val_loss", trials_per_study=np.int64(3)),
        ),
        case("Study.curves trial id", lambda c: c.study.curves(np.int64(3))),
        case("Study.steps execution", lambda c: c.study.steps("0", np.int64(0))),
        case("Study.plot_grad_norms trial id", lambda c: c.study.plot_grad_norms(np.int64(0))),
        case("Study.replicate top_k", lambda c: _replicate_numpy(c, top_k=np.int64(1), seeds=[1])),
        case("Study.replicate seeds=np.int64", lambda c: _replicate_numpy(c, seeds=np.int64(1))),
        case(
            "Study.replicate seeds=[np.int64]", lambda c: _replicate_numpy(c, seeds=[np.int64(1)])
        ),
        case("spaces.adam budget", lambda c: kp.spaces.adam(kt.HyperParameters(), np.int64(16))),
        case(
            "spaces.sgd_momentum budget",
            lambda c: kp.spaces.sgd_momentum(kt.HyperParameters(), np.int64(16)),
        ),
        case(
            "spaces.adam learning_rate_range",
            lambda c: kp.spaces.adam(
                kt.HyperParameters(), 16, learning_rate_range=(np.float32(1e-5), np.float32(1e-1))
            ),
        ),
        case(
            "WarmupDecay peak_lr float64",
            lambda c: kp.schedules.WarmupDecay(np.float64(1e-3), 10, 100),
        ),
        case(
            "WarmupDecay peak_lr float32",
            lambda c: kp.schedules.WarmupDecay(np.float32(1e-3), 10, 100),
        ),
        case(
            "WarmupDecay steps int64",
            lambda c: kp.schedules.WarmupDecay(1e-3, np.int64(10), np.int64(100)),
        ),
        case(
            "WarmupDecay end_lr float32",
            lambda c: kp.schedules.WarmupDecay(1e-3, 10, 100, end_lr=np.float32(0.0)),
        ),
        case(
            "GhostBatchNormalization",
            lambda c: kp.layers.GhostBatchNormalization(
                virtual_batch_size=np.int64(64),
                axis=np.int64(-1),
                momentum=np.float32(0.9),
                epsilon=np.float32(1e-3),
            ),
        ),
        case(
            "datasets.load",
            lambda c: kp.datasets.load(
                "digits", validation_fraction=np.float32(0.2), seed=np.int64(1)
            ),
        ),
        case(
            "StrategyWrapper batch sizes",
            lambda c: (
                kp.distribute.StrategyWrapper().global_batch_size(np.int64(32)),
                kp.distribute.StrategyWrapper().per_replica_batch_size(np.int64(32)),
            ),
        ),
        case(
            "lr_sweep rates, steps, batch_size",
            lambda c: kp.lr_sweep(
                build_model,
                c.data[:2],
                [np.float32(1e-2), np.float64(1e-3)],
                np.int64(2),
                batch_size=np.int64(16),
                eval_batches=1,
            ),
        ),
        case(
            "lr_sweep eval_batches",
            lambda c: kp.lr_sweep(
                build_model, c.data[:2], [1e-2], 2, batch_size=16, eval_batches=np.int64(1)
            ),
        ),
        case(
            "lr_sweep seed",
            lambda c: kp.lr_sweep(
                build_model, c.data[:2], [1e-2], 2, batch_size=16, eval_batches=1, seed=np.int64(0)
            ),
        ),
        case(
            "warmup_sweep",
            lambda c: kp.warmup_sweep(
                build_model,
                c.data[:2],
                np.float32(0.1),
                np.array([2]),
                np.int64(100),
                steps=np.int64(4),
                batch_size=16,
                eval_batches=1,
                include_no_warmup=False,
            ),
        ),
        case(
            "probe_batch_sizes batch sizes",
            lambda c: kp.distribute.probe_batch_sizes(
                build_model,
                c.data[:2],
                batch_sizes=np.array([8]),
                steps=1,
                warmup_steps=0,
                isolate=False,
            ),
        ),
        case(
            "probe_batch_sizes steps",
            lambda c: kp.distribute.probe_batch_sizes(
                build_model,
                c.data[:2],
                batch_sizes=[8],
                steps=np.int64(1),
                warmup_steps=0,
                isolate=False,
            ),
        ),
        case(
            "probe_batch_sizes warmup_steps",
            lambda c: kp.distribute.probe_batch_sizes(
                build_model,
                c.data[:2],
                batch_sizes=[8],
                steps=1,
                warmup_steps=np.int64(0),
                isolate=False,
            ),
        ),
    ],
)
def test_numpy_scalars_are_accepted(tmp_path, data, study, call):
    call(Context(tmp_path, data, study))


def test_a_search_runs_with_numpy_scalar_arguments(tmp_path, data):
    x, y, xv, yv = data
    tuner = kp.QuasiRandomSearch(
        build,
        max_trials=np.int64(1),
        skip=np.int64(3),
        directory=str(tmp_path),
        project_name="s",
        seed=0,
    )
    tuner.search(
        x, y, validation_data=(xv, yv), epochs=np.int64(1), batch_size=np.int64(32), verbose=0
    )
    assert tuner.study().status_counts()["completed"] == 1


# -- the kplaybook command -----------------------------------------------------------------


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


PROBE = [
    "probe",
    f"{PROBE_MODELS}:build_digits",
    "--max-batch-size",
    "8",
    "--steps",
    "1",
    "--warmup-steps",
    "0",
]


@pytest.mark.parametrize(
    "argv, match",
    [
        case("demo --directory <a file>", ["demo", "--directory", "FILE"], "--directory"),
        case("report <missing>", ["report", "MISSING"], "does not exist"),
        case("report <a file>", ["report", "FILE"], "is a file"),
        case("compare <missing> <missing>", ["compare", "MISSING", "MISSING"], "does not exist"),
        case("probe without ':'", ["probe", "probe_models"], "MODULE:BUILD_FN"),
        case("probe missing file", ["probe", "MISSING.py:build"], "does not exist"),
        case("probe unknown function", ["probe", f"{PROBE_MODELS}:nope"], "nope"),
        case("probe --warmup-steps -1", [*PROBE, "--warmup-steps", "-1"], "warmup.steps"),
        case("probe --max-batch-size 4", [*PROBE, "--max-batch-size", "4"], "max.batch.size"),
        case("probe --dataset no_such_name", [*PROBE, "--dataset", "no_such_name"], "--dataset"),
        case("probe --dataset Digits", [*PROBE, "--dataset", "Digits"], "--dataset"),
        case(
            "demo --directory <unwritable>",
            [
                "demo",
                "--directory",
                "/proc/no_such_dir",
                "--trials-per-study",
                "1",
                "--epochs",
                "1",
            ],
            "--directory|writable",
        ),
        case("probe --save <a directory>", [*PROBE, "--save", "DIR"], "--save"),
        case("probe --plot <unwritable>", [*PROBE, "--plot", "/proc/no_such_dir/p.png"], "--plot"),
        case("probe --cache-dir <a file>", [*PROBE, "--cache-dir", "FILE"], "--cache-dir"),
        case("probe --max-examples with digits", [*PROBE, "--max-examples", "5"], "--max-examples"),
    ],
)
def test_the_command_line_rejects(capsys, monkeypatch, tmp_path, a_file, argv, match):
    monkeypatch.setattr("kplaybook.distribute.probe._probe_one", _no_probe)
    argv = [
        {"FILE": a_file, "MISSING": tmp_path / "missing", "DIR": tmp_path}.get(a, a) for a in argv
    ]
    argv = [str(tmp_path / "missing.py") + ":build" if a == "MISSING.py:build" else a for a in argv]
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("kplaybook: ") and re.search(match, err[0]), err
    assert a_file.read_text() == "x"


@pytest.mark.parametrize(
    "argv, option",
    [
        (["demo", "--trials-per-study", "0"], "--trials-per-study"),
        (["demo", "--epochs", "-1"], "--epochs"),
        (["probe", "x:y", "--steps", "0"], "--steps"),
        (["probe", "x:y", "--max-examples", "abc"], "--max-examples"),
    ],
)
def test_the_command_line_parser_names_the_option(capsys, argv, option):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert option in last and "Traceback" not in last
