"""Every result kplaybook hands back has one shape: to_dataframe, plot, summary, save/load."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import kplaybook as kp
from kplaybook.analysis.compare import Comparison
from kplaybook.distribute import ProbeResult
from kplaybook.results import Result


def sweep_run(lr, final, diverged=False, warmup=0):
    curve = pd.DataFrame(
        {"loss": [2.0, final], "grad_norm": [1.0, math.nan], "lr": [lr, lr]},
        index=pd.Index([10, 20], name="step"),
    )
    return {
        "learning_rate": lr,
        "warmup_steps": warmup,
        "initial_loss": 2.0,
        "final_loss": math.nan if diverged else final,
        "diverged": diverged,
        "diverged_step": 15 if diverged else None,
        "divergence_reason": "loss became nan" if diverged else None,
        "ended_above_start": False,
        "stable": not diverged,
        "steps_run": 20,
        "grad_norm_median": 1.0,
        "grad_norm_p90": 1.5,
        "grad_norm_max": 2.0,
        "seconds": 0.5,
        "curve": curve,
    }


def lr_result():
    runs = [sweep_run(1e-3, 0.9), sweep_run(1e-2, 0.4), sweep_run(1e-1, 0, diverged=True)]
    return kp.LRSweepResult(runs, steps=20)


def warmup_result():
    runs = [sweep_run(1.0, 0, True, 0), sweep_run(1.0, 0.5, False, 10)]
    return kp.WarmupSweepResult(runs, base_lr=1.0, max_train_steps=1000, steps=30)


def probe_result():
    rows = [
        {
            "batch_size": b,
            "feasible": True,
            "oom_message": None,
            "step_time_s": t,
            "step_time_iqr_s": 0.0,
            "examples_per_s": b / t,
            "scaling_efficiency": math.nan,
        }
        for b, t in ((8, 0.01), (16, 0.011), (32, 0.02))
    ] + [
        {
            "batch_size": 64,
            "feasible": False,
            "oom_message": "OOM when allocating",
            "step_time_s": math.nan,
            "step_time_iqr_s": math.nan,
            "examples_per_s": math.nan,
            "scaling_efficiency": math.nan,
        }
    ]
    return ProbeResult(rows, {"model": "m"})


def comparison():
    table = pd.DataFrame(
        [
            {
                "scientific": "depth=1",
                "a_mean": 0.5,
                "a_std": 0.01,
                "a_n": 3,
                "a_infeasible": 0,
                "b_mean": 0.4,
                "b_std": math.nan,
                "b_n": 1,
                "b_infeasible": 0,
                "difference": -0.1,
                "noise": math.nan,
                "beats_noise": None,
                "better": "b",
            }
        ]
    )
    return Comparison(table, "val_loss", "min", ("a", "b"))


@pytest.mark.parametrize("make", [lr_result, warmup_result, probe_result, comparison])
def test_one_shape_and_a_lossless_round_trip(tmp_path, make):
    result = make()
    assert isinstance(result, Result)
    frame = result.to_dataframe()
    assert isinstance(frame, pd.DataFrame) and len(frame)
    assert isinstance(result.plot(), Figure)
    assert isinstance(result.summary(), str) and str(result) == result.summary()
    path = result.save(tmp_path / "result.json")
    again = type(result).load(path)
    pd.testing.assert_frame_equal(again.to_dataframe(), frame)
    assert again.summary() == result.summary()


def test_the_sweep_keeps_its_curves_through_save(tmp_path):
    result = lr_result()
    again = kp.LRSweepResult.load(result.save(tmp_path / "lr.json"))
    assert again.best_lr == 1e-2 and again.unstable_lr == 1e-1
    for lr, curve in result.curves().items():
        pd.testing.assert_frame_equal(again.curves()[lr], curve)


def test_loading_another_kind_of_result_says_so(tmp_path):
    path = lr_result().save(tmp_path / "lr.json")
    with pytest.raises(kp.StudyError, match="holds a 'lr_sweep' result, not a 'comparison' one"):
        Comparison.load(path)
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(kp.StudyError, match="empty.json cannot be read"):
        ProbeResult.load(tmp_path / "empty.json")


def test_a_probe_file_from_kplaybook_0_1_still_loads(tmp_path):
    result = probe_result()
    legacy = {"config": result.config, "rows": result.to_json()["rows"]}
    from kplaybook.records import files

    files.write_json(tmp_path / "old.json", files.json_safe(legacy))
    again = ProbeResult.load(tmp_path / "old.json")
    assert again.recommended == result.recommended and again.max_feasible == 32
    assert np.isnan(again.to_dataframe()["step_time_s"].iloc[-1])
