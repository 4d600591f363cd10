"""Synthetic study directories: read back by Study.load exactly like the files a real search writes."""

import json
import math
import os
import time

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest
from conftest import mlp_build

import kplaybook as kp
from kplaybook.testing import SyntheticTrial
from kplaybook.testing import write_study


def space():
    """The space `mlp_build` declares, in its order."""
    hp = kt.HyperParameters()
    hp.Int("units", 8, 32, sampling="log")
    hp.Choice("activation", ["relu", "tanh"])
    hp.Int("num_layers", 1, 3)
    hp.Float("learning_rate", 1e-3, 3e-2, sampling="log")
    return hp


def values(num_layers, learning_rate, units=16):
    return {"units": units, "num_layers": num_layers, "learning_rate": learning_rate}


NAN = float("nan")

TRIALS = [
    # Listed round-robin over num_layers, as PlaybookTuner creates them.
    SyntheticTrial(
        values(1, 1e-3),
        {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.9]},
        steps={"grad_norm": [3.0, 2.5, 2.0, 1.5], "lr": [1e-3] * 4, "clip_fraction": [0, 0, 1, 0]},
    ),
    SyntheticTrial(values(2, 1e-3), {"loss": [1.0, 0.5, 0.3], "val_loss": [1.0, 0.7, 0.75]}),
    SyntheticTrial(
        values(1, 3e-2), {"loss": [1.0, NAN], "val_loss": [1.2, NAN]}, "infeasible", "nan_loss"
    ),
    SyntheticTrial(values(2, 3e-2, units=32), None, "infeasible", "oom"),
    SyntheticTrial(values(1, 1e-2), None, "failed", "CUDA driver crashed"),
    # The objective missing at epoch 0 (logged only from epoch 1) and NaN at 2.
    SyntheticTrial(values(2, 1e-2), {"loss": [0.9, 0.5, 0.2], "val_loss": [None, 0.6, NAN]}),
]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    directory = tmp_path_factory.mktemp("synthetic") / "depth"
    written = write_study(
        directory,
        space(),
        TRIALS,
        scientific={"num_layers": [1, 2]},
        fixed={"activation": "relu"},
        trials_per_study=3,
    )
    assert written == str(directory)
    return kp.Study.load(directory)


def test_table_statuses_reasons_objectives_and_values(synthetic):
    frame = synthetic.to_dataframe()
    assert frame["trial_id"].tolist() == ["0", "1", "2", "3", "4", "5"]
    assert frame["status"].tolist() == [
        "completed",
        "completed",
        "infeasible",
        "infeasible",
        "failed",
        "completed",
    ]
    reasons = [r if isinstance(r, str) else None for r in frame["infeasible_reason"]]
    assert reasons == [None, None, "nan_loss", "oom", None, None]
    assert frame["objective"].iloc[[0, 1, 5]].tolist() == [0.8, 0.7, 0.6]
    assert frame["objective"].iloc[[2, 3, 4]].isna().all()
    assert frame["best_step"].iloc[[0, 1, 5]].tolist() == [1, 1, 1]
    assert frame["epochs"].tolist() == [3, 3, 2, 1, 0, 3]
    for row, trial in zip(frame.to_dict("records"), TRIALS):
        for name, value in trial.values.items():
            assert row[name] == value
        assert row["activation"] == "relu"
    assert synthetic.scientific == {"num_layers": [1, 2]}
    assert synthetic.fixed == {"activation": "relu"}
    assert synthetic.nuisance == ["units", "learning_rate"]
    assert synthetic.config["kind"] == "nested"
    assert synthetic.config["trials_per_study"] == 3


def test_curves_and_steps_are_the_given_ones(synthetic):
    for trial_id, trial in zip(synthetic.trial_ids, TRIALS):
        curves = synthetic.curves(trial_id)
        for name, curve in (trial.curves or {}).items():
            expected = [NAN if v is None else v for v in curve]
            np.testing.assert_array_equal(curves[name].to_numpy(), expected)
    # What the real tuner adds: the objective as NaN where it was not logged.
    assert synthetic.curves("3")["val_loss"].isna().all()
    assert synthetic.curves("4").empty
    steps = synthetic.steps("0")
    assert steps.index.tolist() == [1, 2, 3, 4]
    for name, column in TRIALS[0].steps.items():
        assert steps[name].tolist() == column
    assert steps["step_loss"].isna().all()
    assert synthetic.steps("1").empty


def test_best_per_scientific_and_the_oracle_bookkeeping(synthetic):
    best = synthetic.best_per_scientific()
    assert best["num_layers"].tolist() == [1, 2]
    assert best["trial_id"].tolist() == ["0", "5"]
    assert best["objective"].tolist() == [0.8, 0.6]
    assert best[["completed", "infeasible", "failed"]].to_numpy().tolist() == [[1, 1, 1], [2, 1, 0]]
    # A real oracle reloads the directory: same settings, each trial in its cell.
    oracle = kp.oracles.NestedStudyOracle(
        "val_loss",
        scientific={"num_layers": [1, 2]},
        fixed={"activation": "relu"},
        trials_per_study=3,
        seed=0,
    )
    oracle._set_project_dir(os.path.dirname(synthetic.directory), synthetic.name)
    oracle.reload()
    assert sorted(oracle.trials) == synthetic.trial_ids
    assert oracle.end_order == synthetic.trial_ids
    assert not oracle.ongoing_trials and not oracle._retry_queue
    for trial_id, trial in zip(synthetic.trial_ids, TRIALS):
        assert oracle.cells[oracle.cell_of(trial_id)] == {"num_layers": trial.values["num_layers"]}


def test_trial_files_survive_a_keras_tuner_round_trip(synthetic, tmp_path):
    # Trial.load then Trial.save gives the same bytes: the files are exactly
    # what KerasTuner's own writer makes of them.
    for trial_id in synthetic.trial_ids:
        path = os.path.join(synthetic.directory, f"trial_{trial_id}", "trial.json")
        kt.engine.trial.Trial.load(path).save(str(tmp_path / "copy.json"))
        with open(path) as a, open(tmp_path / "copy.json") as b:
            assert a.read() == b.read()


def test_quasi_random_study_maximising(tmp_path):
    trials = [
        SyntheticTrial(values(n % 3 + 1, 1e-3 * (n + 1)), {"val_accuracy": [0.1 * n, 0.05 * n]})
        for n in range(11)
    ]
    write_study(
        tmp_path / "qr",
        space(),
        trials,
        fixed={"activation": "tanh"},
        objective="val_accuracy",
        direction="max",
    )
    study = kp.Study.load(tmp_path / "qr")
    assert study.config["kind"] == "quasi_random"
    assert study.direction == "max"
    assert study.trial_ids[:2] == ["00", "01"] and study.trial_ids[-1] == "10"
    assert study.nuisance == ["units", "num_layers", "learning_rate"]
    frame = study.to_dataframe()
    assert (frame["activation"] == "tanh").all()
    assert frame["best_step"].tolist() == [0] * 11
    best = study.best_per_scientific()
    assert len(best) == 1 and best["trial_id"][0] == "10"
    assert best["objective"][0] == pytest.approx(1.0)
    with open(tmp_path / "qr" / "oracle.json") as f:
        state = json.load(f)
    assert state["kplaybook"]["next_point"] == 11


def test_ids_are_padded_to_the_width_of_max_trials(tmp_path):
    trials = [SyntheticTrial(values(1 + n % 2, 1e-3), {"val_loss": [1.0]}) for n in range(4)]
    write_study(
        tmp_path / "a",
        space(),
        trials,
        scientific={"num_layers": [1, 2]},
        fixed={"activation": "relu"},
        trials_per_study=8,
    )
    assert kp.Study.load(tmp_path / "a").trial_ids == ["00", "01", "02", "03"]


@pytest.mark.parametrize(
    "trial, message",
    [
        (SyntheticTrial({**values(1, 1e-3), "depth": 2}, {"val_loss": [1.0]}), "does not declare"),
        (SyntheticTrial(values(1, 0.5), {"val_loss": [1.0]}), "outside its declaration"),
        (
            SyntheticTrial({"num_layers": 1, "units": 8}, {"val_loss": [1.0]}),
            "no value for 'learning_rate'",
        ),
        (SyntheticTrial(values(3, 1e-3), {"val_loss": [1.0]}), "not among"),
        (SyntheticTrial(values(1, 1e-3), {"val_loss": [NAN]}), "no finite 'val_loss'"),
        (SyntheticTrial(values(1, 1e-3), {"loss": [1.0]}, "infeasible"), "without a reason"),
        (SyntheticTrial(values(1, 1e-3), {"val_loss": [1.0]}, "done"), "has status"),
        (SyntheticTrial(values(1, 1e-3), {"val_loss": [1.0]}, reason="oom"), "but is completed"),
        (SyntheticTrial(values(1, 1e-3), {"val_loss": [1.0]}, steps={"norm": [1.0]}), "keeps only"),
    ],
)
def test_trials_a_real_study_cannot_hold_are_refused(tmp_path, trial, message):
    good = SyntheticTrial(values(1, 1e-3), {"val_loss": [1.0]})
    with pytest.raises(ValueError, match=message):
        write_study(
            tmp_path / "s",
            space(),
            [good, trial],
            scientific={"num_layers": [1, 2]},
            fixed={"activation": "relu"},
        )
    # Checked before anything is written: no half-written study.
    assert not (tmp_path / "s").exists()


def test_an_existing_study_is_not_overwritten(tmp_path):
    trials = [SyntheticTrial(values(1, 1e-3), {"val_loss": [1.0]})]
    write_study(tmp_path / "s", space(), trials, fixed={"activation": "relu"})
    with pytest.raises(FileExistsError, match="already holds a study"):
        write_study(tmp_path / "s", space(), trials, fixed={"activation": "relu"})


# -- against a real search -----------------------------------------------------

_STARTED = []


class _InfeasibleThirdTrial(keras.callbacks.Callback):
    """Ends the third trial as infeasible after its first epoch (callbacks are copied per trial)."""

    def on_train_begin(self, logs=None):
        _STARTED.append(1)

    def on_epoch_end(self, epoch, logs=None):
        if len(_STARTED) == 3 and epoch == 1:
            raise kp.InfeasibleTrial("too_slow")


@pytest.fixture(scope="module")
def real_and_synthetic(tmp_path_factory):
    _STARTED.clear()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 64)).astype("float32")
    y = rng.integers(0, 10, size=64)
    directory = tmp_path_factory.mktemp("real")
    tuner = kp.PlaybookTuner(
        mlp_build,
        objective="val_loss",
        scientific={"num_layers": [1, 2]},
        fixed={"activation": "relu"},
        trials_per_study=2,
        seed=0,
        directory=str(directory),
        project_name="real",
    )
    tuner.search(
        x,
        y,
        validation_data=(x, y),
        epochs=2,
        batch_size=16,
        verbose=0,
        callbacks=[kp.callbacks.GradientNormLogger(), _InfeasibleThirdTrial()],
    )
    real = tuner.study()
    trials = []
    for row in real.to_dataframe().to_dict("records"):
        trial_id = row["trial_id"]
        steps = real.steps(trial_id)
        trials.append(
            SyntheticTrial(
                {name: row[name] for name in ["units", "num_layers", "learning_rate"]},
                {name: column.tolist() for name, column in real.curves(trial_id).items()},
                row["status"],
                row["infeasible_reason"] if row["status"] == "infeasible" else None,
                {name: column.tolist() for name, column in steps.items()},
            )
        )
    synthetic_dir = write_study(
        directory / "synthetic",
        space(),
        trials,
        scientific={"num_layers": [1, 2]},
        fixed={"activation": "relu"},
        trials_per_study=2,
        seed=0,
    )
    return real.directory, synthetic_dir


def _read(directory, *path):
    with open(os.path.join(directory, *path)) as f:
        return f.read()


def _structure(value):
    """The shape of a JSON value: dict keys, list element shapes, leaf types."""
    if isinstance(value, dict):
        return {key: _structure(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_structure(item) for item in value[:1]]
    return (
        "number"
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else type(value).__name__
    )


def test_the_real_study_covers_completed_and_infeasible_trials(real_and_synthetic):
    real, _ = real_and_synthetic
    frame = kp.Study.load(real).to_dataframe()
    assert frame["status"].tolist() == ["completed", "completed", "infeasible", "completed"]
    assert frame["infeasible_reason"][2] == "too_slow"


def test_oracle_json_matches_a_real_search(real_and_synthetic):
    real, synthetic = real_and_synthetic
    real_state = json.loads(_read(real, "oracle.json"))
    synthetic_state = json.loads(_read(synthetic, "oracle.json"))
    assert _structure(synthetic_state["kplaybook"]) == _structure(real_state["kplaybook"])
    assert _structure(synthetic_state) == _structure(real_state)
    # Equal outright, but for the order KerasTuner lists a set in.
    assert sorted(synthetic_state.pop("tried_so_far")) == sorted(real_state.pop("tried_so_far"))
    assert synthetic_state == real_state


def test_trial_and_steps_files_match_a_real_search(real_and_synthetic):
    real, synthetic = real_and_synthetic
    for trial_id in ["0", "1", "2", "3"]:
        real_text = _read(real, f"trial_{trial_id}", "trial.json")
        synthetic_text = _read(synthetic, f"trial_{trial_id}", "trial.json")
        real_trial, synthetic_trial = json.loads(real_text), json.loads(synthetic_text)
        assert _structure(synthetic_trial) == _structure(real_trial)
        if real_trial["status"] == "COMPLETED":
            assert synthetic_text == real_text
        else:
            # A real traceback cannot be synthesised; its last line is kept.
            last_line = real_trial.pop("message").splitlines()[-1]
            assert synthetic_trial.pop("message").splitlines()[-1] == last_line
            assert synthetic_trial == real_trial
        assert _read(synthetic, f"trial_{trial_id}", "steps.json") == _read(
            real, f"trial_{trial_id}", "steps.json"
        )


def test_thousands_of_trials_are_written_quickly(tmp_path):
    rng = np.random.default_rng(0)
    epochs = np.arange(20)
    trials = []
    for n in range(2000):
        lr = float(10 ** rng.uniform(-3, math.log10(3e-2)))
        loss = np.exp(-epochs * lr * 10) + rng.uniform(0, 0.1, 20)
        trials.append(
            SyntheticTrial(
                values(1 + n % 3, lr, units=int(rng.integers(8, 33))),
                {"loss": loss.tolist(), "val_loss": (loss + 0.1 + 0.01 * epochs).tolist()},
            )
        )
    start = time.perf_counter()
    write_study(
        tmp_path / "big",
        space(),
        trials,
        scientific={"num_layers": [1, 2, 3]},
        fixed={"activation": "relu"},
    )
    seconds = time.perf_counter() - start
    print(f"wrote 2,000 trials x 20 epochs in {seconds:.2f} s")
    assert seconds < 15
    study = kp.Study.load(tmp_path / "big")
    assert len(study.trial_ids) == 2000 and study.trial_ids[0] == "0000"
    assert isinstance(study.best_per_scientific(), pd.DataFrame)
