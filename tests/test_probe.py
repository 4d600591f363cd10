"""probe_batch_sizes: real out-of-memory errors, warm-up discarded, global sizes under 2 replicas, the pick."""

import math
import time

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import kplaybook_cli
from matplotlib.figure import Figure
from probe_models import build_hog
from probe_models import build_small
from probe_models import data

import kplaybook as kp
from kplaybook.distribute import probe as probe_module
from kplaybook.distribute import recommend_batch_size as recommend


def table(speeds, infeasible=()):
    sizes = [8 * 2**i for i in range(len(speeds))]
    return pd.DataFrame(
        {
            "batch_size": sizes + list(infeasible),
            "feasible": [True] * len(sizes) + [False] * len(infeasible),
            "examples_per_s": list(speeds) + [math.nan] * len(infeasible),
        }
    )


# -- the pick (pure function) ---------------------------------------------------------


def test_recommend_takes_the_largest_size_that_still_pays_off():
    # Near-linear scaling up to 64, then saturation.
    recommended, bottleneck = recommend(table([100, 198, 390, 700, 760, 770], infeasible=[512]))
    assert recommended == 64 and bottleneck is None


def test_recommend_uses_the_named_threshold():
    just_enough = 100 * probe_module.MEANINGFUL_GAIN * 1.001
    just_short = 100 * probe_module.MEANINGFUL_GAIN * 0.999
    assert recommend(table([50, 100, just_enough]))[0] == 32
    assert recommend(table([50, 100, just_short]))[0] == 16


def test_a_poor_doubling_before_saturation_is_a_bottleneck():
    recommended, bottleneck = recommend(table([100, 120, 240, 480, 500]))
    assert recommended == 64
    assert isinstance(bottleneck, kp.Finding) and bottleneck.code == "throughput_bottleneck"
    assert (bottleneck.evidence["from"], bottleneck.evidence["to"]) == (8, 16)
    assert bottleneck.evidence["gain"] == pytest.approx(1.2)
    assert "input pipeline" in bottleneck.recommendation


def test_saturation_is_not_a_bottleneck_and_edge_cases():
    assert recommend(table([100, 180, 185]))[1] is None  # 1.8x then saturated
    # Scaling that tapers off towards saturation (1.8, 1.5, 1.17) is not a bottleneck.
    assert recommend(table([100, 180, 270, 316])) == (64, None)
    assert recommend(table([100])) == (8, None)
    # A rebound after a dip that stays below the earlier peak is no gain.
    assert recommend(table([100, 190, 150, 170]))[0] == 16
    assert recommend(table([], infeasible=[8])) == (None, None)


# -- real probes ------------------------------------------------------------------------


def test_real_out_of_memory_ends_the_doubling(tmp_path):
    result = kp.distribute.probe_batch_sizes(build_hog, data(), steps=3, warmup_steps=1)
    frame = result.to_dataframe()
    assert frame["batch_size"].tolist() == [8, 16, 32, 64]  # stops at the first OOM
    assert frame["feasible"].tolist() == [True, True, True, False]
    assert (
        "OOM" in frame["oom_message"].iloc[-1]
        or "out of memory" in frame["oom_message"].iloc[-1].lower()
    )
    assert frame["oom_message"].iloc[:3].isna().all()
    assert (frame["examples_per_s"].iloc[:3] > 0).all() and math.isnan(
        frame["examples_per_s"].iloc[3]
    )
    assert result.max_feasible == 32
    assert result.recommended in (8, 16, 32)
    # The process is still usable after a real ResourceExhaustedError.
    model = build_small()
    x, y = data(64)
    assert np.isfinite(model.fit(x, y, verbose=0).history["loss"][0])


def test_the_out_of_memory_is_a_real_resource_exhausted_error():
    model = build_hog()
    x, y = data(64)
    with pytest.raises(tf.errors.ResourceExhaustedError):
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)


class SlowFirstSteps(keras.layers.Layer):
    """Sleeps 0.4 s in each of the first `slow` steps (as tracing or compilation would)."""

    def __init__(self, slow=3, **kwargs):
        super().__init__(**kwargs)
        self.slow = slow
        self.calls = 0

    def call(self, x):
        def tick(x):
            self.calls += 1
            if self.calls <= self.slow:
                time.sleep(0.4)
            return x

        out = tf.py_function(tick, [x], x.dtype)
        out.set_shape(x.shape)
        return out

    def compute_output_shape(self, input_shape):
        return input_shape


def build_slow_start():
    model = keras.Sequential([keras.Input((8,)), SlowFirstSteps(), keras.layers.Dense(1)])
    model.compile("sgd", "mse", run_eagerly=False)
    return model


def test_warm_up_steps_are_discarded_and_the_median_reported():
    x, y = data()
    kept = kp.distribute.probe_batch_sizes(
        build_slow_start, (x, y), batch_sizes=[8], steps=5, warmup_steps=3
    )
    assert kept.to_dataframe()["step_time_s"].iloc[0] < 0.2
    # Without discarding, 3 of the 6 steps are slow: the median is slow too.
    naive = kp.distribute.probe_batch_sizes(
        build_slow_start, (x, y), batch_sizes=[8], steps=5, warmup_steps=0
    )
    assert naive.to_dataframe()["step_time_s"].iloc[0] > 0.2


def test_batch_sizes_are_global_under_two_replicas(mirrored):
    # Each replica gets half of the global batch: the 32 GB allocation comes
    # at a per-replica batch of 64, so at a global batch of 128.
    wrapper = kp.distribute.StrategyWrapper(mirrored)
    result = kp.distribute.probe_batch_sizes(
        build_hog, data(), strategy=wrapper, steps=2, warmup_steps=1, max_batch_size=128
    )
    frame = result.to_dataframe()
    assert frame["batch_size"].tolist() == [8, 16, 32, 64, 128]
    assert frame["feasible"].tolist() == [True, True, True, True, False]
    assert result.config["replicas"] == 2
    with pytest.raises(ValueError, match="does not split evenly over 2 replicas"):
        kp.distribute.probe_batch_sizes(build_small, data(), strategy=wrapper, batch_sizes=[9])


def test_results_save_reload_and_the_cache_skips_training(tmp_path):
    x, y = data()
    first = kp.distribute.probe_batch_sizes(
        build_small, (x, y), batch_sizes=[8, 16], steps=2, warmup_steps=1, cache_dir=tmp_path
    )
    assert not first.from_cache and len(list(tmp_path.glob("probe-*.json"))) == 1
    again = kp.distribute.probe_batch_sizes(
        build_small, (x, y), batch_sizes=[8, 16], steps=2, warmup_steps=1, cache_dir=tmp_path
    )
    assert again.from_cache
    pd.testing.assert_frame_equal(again.to_dataframe(), first.to_dataframe())
    # Another optimizer configuration is another probe (PLAYBOOK.md A.5).
    other = kp.distribute.probe_batch_sizes(
        lambda: build_small(0.1),
        (x, y),
        batch_sizes=[8, 16],
        steps=2,
        warmup_steps=1,
        cache_dir=tmp_path,
    )
    assert not other.from_cache and len(list(tmp_path.glob("probe-*.json"))) == 2
    path = first.save(tmp_path / "probe.json")
    loaded = kp.distribute.ProbeResult.load(path)
    pd.testing.assert_frame_equal(loaded.to_dataframe(), first.to_dataframe())
    assert (loaded.recommended, loaded.max_feasible) == (first.recommended, first.max_feasible)
    assert isinstance(first.plot(), Figure)
    assert "recommended batch size" in first.summary()


def test_clear_errors_for_bad_arguments():
    x, y = data()
    probe = kp.distribute.probe_batch_sizes
    with pytest.raises(ValueError, match="steps must be an int"):
        probe(build_small, (x, y), steps=0)
    with pytest.raises(ValueError, match="batch_sizes must be distinct positive ints"):
        probe(build_small, (x, y), batch_sizes=[8, 8])
    with pytest.raises(TypeError, match="dataset must be"):
        probe(build_small, [x, y], batch_sizes=[8])
    with pytest.raises(ValueError, match="isolate=True needs a dataset"):
        probe(build_small, tf.data.Dataset.from_tensor_slices((x, y)), isolate=True)

    def uncompiled():
        return keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])

    with pytest.raises(ValueError, match="compiled model"):
        probe(uncompiled, (x, y), batch_sizes=[8])


@pytest.mark.slow
def test_isolated_probes_run_in_subprocesses_and_report_oom():
    result = kp.distribute.probe_batch_sizes(
        build_hog, data(), batch_sizes=[8, 64], steps=2, warmup_steps=1, isolate=True
    )
    frame = result.to_dataframe()
    assert frame["feasible"].tolist() == [True, False]
    assert result.config["isolate"] is True


@pytest.mark.slow
def test_cli_probe_prints_the_table_and_the_recommendation(tmp_path):
    def cli(*args):
        return kplaybook_cli("probe", *args)

    out = tmp_path / "probe.json"
    result = cli(
        "tests/probe_models.py:build_digits",
        "--max-batch-size",
        "32",
        "--steps",
        "3",
        "--warmup-steps",
        "1",
        "--save",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "recommended batch size:" in result.stdout
    loaded = kp.distribute.ProbeResult.load(out)
    assert loaded.to_dataframe()["batch_size"].tolist() == [8, 16, 32]
    bad = cli("tests/probe_models.py:no_such_function")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "kplaybook: tests/probe_models.py has no function 'no_such_function'."
    ]


@pytest.mark.slow
def test_example_script_prints_the_table_and_saves_the_plot(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "batch_size_probe.py"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--max-batch-size",
            "32",
            "--steps",
            "3",
            "--warmup-steps",
            "1",
            "--plot",
            "p.png",
            "--save",
            "p.json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "recommended batch size:" in result.stdout and "probe larger sizes" in result.stdout
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = kp.distribute.ProbeResult.load(tmp_path / "p.json")
    assert loaded.to_dataframe()["batch_size"].tolist() == [8, 16, 32]


@pytest.mark.parametrize(
    "message",
    [
        "OOM when allocating tensor with shape[64,1024]",
        "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 2.00GiB",
        "Dst tensor is not initialized.",
        "CUDNN_STATUS_ALLOC_FAILED",
        "CUBLAS_STATUS_ALLOC_FAILED",
        "Failed to allocate request for 2.00GiB (2147483648B) on device ordinal 0",
    ],
)
def test_known_out_of_memory_messages_are_recognised(message):
    from kplaybook.training import runner

    assert runner.is_oom_error(RuntimeError(message))
    assert not runner.is_oom_error(RuntimeError("shapes (3,) and (4,) are incompatible"))


def test_the_users_mixed_precision_policy_is_kept():
    seen = []

    def build():
        seen.append(keras.config.dtype_policy().name)
        return build_small()

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        kp.distribute.probe_batch_sizes(build, data(), batch_sizes=[8, 16], steps=2, warmup_steps=1)
        assert seen == ["mixed_bfloat16", "mixed_bfloat16"]
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    finally:
        keras.config.set_dtype_policy("float32")


def test_steps_per_execution_is_timed_per_step():
    def build(k):
        def make():
            model = build_slow_start()
            model.compile("sgd", "mse", steps_per_execution=k)
            return model

        return make

    x, y = data()
    # 4 steps per execution: the 3 warm-up steps share the first execution
    # with a measured one, so it is discarded; 8 measured steps remain.
    result = kp.distribute.probe_batch_sizes(
        build(4), (x, y), batch_sizes=[8], steps=9, warmup_steps=3
    )
    assert result.to_dataframe()["step_time_s"].iloc[0] < 0.1


def test_the_cache_key_is_stable_across_builds_in_one_process(tmp_path):
    build_small()  # an earlier model shifts the automatic layer names
    x, y = data()
    args = dict(batch_sizes=[8], steps=2, warmup_steps=1, cache_dir=tmp_path)
    first = kp.distribute.probe_batch_sizes(build_small, (x, y), **args)
    build_small()
    again = kp.distribute.probe_batch_sizes(build_small, (x, y), **args)
    assert not first.from_cache and again.from_cache


def test_more_bad_arguments():
    x, y = data()
    probe = kp.distribute.probe_batch_sizes
    with pytest.raises(ValueError, match="looks batched"):
        probe(build_small, tf.data.Dataset.from_tensor_slices((x, y)).batch(4), batch_sizes=[8])
    with pytest.raises(ValueError, match="max_batch_size must be at least 8"):
        probe(build_small, (x, y), max_batch_size=4)
    with pytest.raises(ValueError, match="batch_sizes must be distinct positive ints"):
        probe(build_small, (x, y), batch_sizes=[8.7])
    with pytest.raises(ValueError, match="define build_model at module level"):
        probe(lambda: build_small(), (x, y), batch_sizes=[8], isolate=True)


def test_cli_probe_errors_are_one_line(capsys):
    from kplaybook.cli import main

    assert main(["probe", "tests/probe_models.py:build_broken", "--max-batch-size", "8"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "kplaybook: probe failed (RuntimeError: broken on purpose); "
        "run it again with --verbose for the full traceback."
    ]
    assert main(["probe", "no_such_module:build"]) == 2
    assert "cannot import 'no_such_module'" in capsys.readouterr().err


def test_a_dict_of_inputs_is_sliced_and_mismatched_lengths_are_refused():
    x, y = np.zeros((10, 3), "float32"), np.zeros(10, "int32")
    inputs = {"a": x, "b": np.zeros((10, 2), "float32")}
    assert probe_module._as_dataset((inputs, y)).cardinality() == 10
    with pytest.raises(ValueError, match=r"dataset have different lengths \[9, 10\]"):
        probe_module._as_dataset(({**inputs, "b": np.zeros((9, 2))}, y))
