"""study.check(): each finding on a study built to have the problem, and absent on one without it.

The studies are written by `kplaybook.testing` (real KerasTuner
trial files, read back by `kp.Study.load`) so each has exactly the property
a check looks for; the end-to-end tests (test_analysis_report.py) run the
checks on really trained studies.
"""

import math

import keras_tuner as kt
import numpy as np
import pytest

import kplaybook as kp
from kplaybook.analysis import checks
from kplaybook.analysis import plot_data
from kplaybook.testing import SyntheticTrial
from kplaybook.testing import write_study

EPOCHS = 20
LR_GRID = np.geomspace(1e-4, 1e-1, 12)  # 12 trials per scientific value


def space(extra=None):
    hp = kt.HyperParameters()
    hp.Int("depth", 1, 2)
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    for declare in extra or []:
        declare(hp)
    return hp


def decaying(final, epochs=EPOCHS, start=None, tau=None):
    """A healthy validation curve: falls steadily to `final` at 65% of training, then drifts.

    The drift after the best epoch stays under 2% (well inside the
    overfitting margin), as a converged curve's does.
    """
    t = np.arange(epochs)
    best = int(0.65 * epochs)
    return list(final + 0.1 * np.maximum(0, best - t) + 0.0005 * np.maximum(0, t - best))


def curves(val, train=None):
    val = list(val)
    return {"loss": list(train if train is not None else np.array(val) * 0.8), "val_loss": val}


def lr_quality(lr, best_lr, floor=0.1):
    """Objective of a trial: a bowl in log learning rate with its bottom at `best_lr`."""
    return floor + 0.3 * (math.log10(lr) - math.log10(best_lr)) ** 2


def bowl_study(tmp_path, best_lr=3e-3, curve=None, name="study", infeasible=None, **kwargs):
    """12 learning rates x 2 depths; `infeasible(lr, depth)` -> reason or None."""
    trials = []
    for depth in (1, 2):
        for lr in LR_GRID:
            reason = infeasible(lr, depth) if infeasible else None
            values = {"depth": depth, "learning_rate": float(lr)}
            if reason:
                trials.append(SyntheticTrial(values, status="infeasible", reason=reason))
                continue
            final = lr_quality(lr, best_lr) + 0.01 * depth
            trials.append(SyntheticTrial(values, curves((curve or decaying)(final))))
    directory = tmp_path / name
    write_study(directory, space(), trials, scientific={"depth": [1, 2]}, **kwargs)
    return kp.Study.load(directory)


def codes(study):
    return [f.code for f in study.check()]


def only(study, code):
    found = [f for f in study.check() if f.code == code]
    assert len(found) == 1, [f.message for f in found]
    return found[0]


def test_a_healthy_study_has_no_finding(tmp_path):
    study = bowl_study(tmp_path)
    assert study.check() == []


def test_findings_are_dataclasses_with_one_sentence_and_json_evidence(tmp_path):
    study = bowl_study(tmp_path, best_lr=0.1)
    finding = only(study, "boundary")
    assert isinstance(finding, kp.Finding)
    assert finding.severity in checks.SEVERITIES and finding.code in checks.CODES
    assert finding.message.endswith(".") and finding.recommendation.endswith(".")
    import json

    json.dumps(finding.to_dict(), allow_nan=False)


# -- boundary -------------------------------------------------------------------


def test_boundary_best_trials_at_the_top_of_the_learning_rate_range(tmp_path):
    finding = only(bowl_study(tmp_path, best_lr=0.1), "boundary")
    assert finding.evidence["hyperparameter"] == "learning_rate"
    assert finding.evidence["edge"] == "high"
    assert finding.evidence["trials"] and all(
        v == pytest.approx(0.1) for v in finding.evidence["values"]
    )
    assert "above 0.1" in finding.recommendation


def test_boundary_uses_log_coordinates_for_log_dimensions(tmp_path):
    # 2e-4 is 10% of the log range above 1e-4 (log10 2 / 3 = 0.100) but only
    # 0.1% of the linear range: near the edge in the coordinates that matter.
    study = bowl_study(tmp_path, best_lr=LR_GRID[0])
    finding = only(study, "boundary")
    assert finding.evidence["edge"] == "low"
    assert finding.evidence["coordinates"][0] == pytest.approx(0.0)


def test_boundary_extreme_sampled_value_with_improvement_towards_the_edge(tmp_path):
    # Sampled lr only in the middle of the range, [1e-3, 1e-2] (coordinates
    # 0.33-0.67), improving towards the top: the best is the sampled extreme.
    trials = []
    for depth in (1, 2):
        for lr in np.geomspace(1e-3, 1e-2, 8):
            final = 0.5 - 0.1 * math.log10(lr / 1e-3) + 0.01 * depth
            trials.append(
                SyntheticTrial(
                    {"depth": depth, "learning_rate": float(lr)}, curves(decaying(final))
                )
            )
    write_study(tmp_path / "s", space(), trials, scientific={"depth": [1, 2]})
    finding = only(kp.Study.load(tmp_path / "s"), "boundary")
    assert finding.evidence["edge"] == "high"
    assert max(finding.evidence["coordinates"]) < 1 - checks.BOUNDARY_FRACTION


# -- infeasible trials -------------------------------------------------------------


def test_infeasible_above_a_learning_rate_with_the_best_at_that_edge_suggests_instability(
    tmp_path,
):
    study = bowl_study(
        tmp_path, best_lr=0.1, infeasible=lambda lr, depth: "nan_loss" if lr > 0.02 else None
    )
    finding = only(study, "infeasible_fraction")
    assert finding.severity == "warning"
    assert "instability" in finding.message
    edge = next(e for e in finding.evidence["edges"] if e["hyperparameter"] == "learning_rate")
    assert edge["best_at_edge"] and edge["threshold"] == pytest.approx(
        LR_GRID[LR_GRID > 0.02].min()
    )
    assert finding.evidence["reasons"] == {"nan_loss": 2 * int((LR_GRID > 0.02).sum())}
    assert "warmup" in finding.recommendation


def test_many_scattered_infeasible_trials_warn_without_instability(tmp_path):
    bad = set(LR_GRID[[0, 3, 5, 8, 10]])  # 10 of 24 trials, all over the range
    study = bowl_study(tmp_path, infeasible=lambda lr, depth: "oom" if lr in bad else None)
    finding = only(study, "infeasible_fraction")
    assert finding.severity == "warning"
    assert finding.evidence["fraction"] == pytest.approx(10 / 24)
    assert "instability" not in finding.message
    assert "Narrow" in finding.recommendation


def test_a_few_infeasible_trials_are_information(tmp_path):
    study = bowl_study(
        tmp_path, infeasible=lambda lr, depth: "oom" if lr == LR_GRID[4] and depth == 2 else None
    )
    finding = only(study, "infeasible_fraction")
    assert finding.severity == "info"
    assert finding.evidence["infeasible"] == 1


# -- sampling density --------------------------------------------------------------


def test_best_of_k_distribution_equals_a_monte_carlo_bootstrap():
    rng = np.random.default_rng(0)
    losses = rng.gamma(2.0, size=15)
    ks = np.array([1, 3, 7, 15])
    mean, quantiles = checks._best_of_k(losses, ks)
    draws = rng.choice(losses, size=(200_000, 15), replace=True)
    for i, k in enumerate(ks):
        best = draws[:, :k].min(axis=1)
        assert mean[i] == pytest.approx(best.mean(), rel=0.01)
        assert quantiles[i, 2] == pytest.approx(np.quantile(best, 0.5, method="inverted_cdf"))


def test_sampling_density_one_lucky_trial_needs_more_trials(tmp_path):
    trials = []
    for depth in (1, 2):
        for i, lr in enumerate(LR_GRID):
            # All trials poor and spread out; a single one is good.
            final = 0.2 if i == 7 else 1.0 + 0.1 * i
            trials.append(
                SyntheticTrial(
                    {"depth": depth, "learning_rate": float(lr)}, curves(decaying(final))
                )
            )
    write_study(tmp_path / "s", space(), trials, scientific={"depth": [1, 2]})
    finding = only(kp.Study.load(tmp_path / "s"), "sampling_density")
    cells = finding.evidence["cells"]
    assert [c["scientific"] for c in cells] == ["depth=1", "depth=2"]
    assert all(c["late_gain"] > checks.SAMPLING_LATE_GAIN for c in cells)


def test_sampling_density_too_few_trials(tmp_path):
    trials = [
        SyntheticTrial({"depth": d, "learning_rate": float(lr)}, curves(decaying(0.2 + lr)))
        for d in (1, 2)
        for lr in LR_GRID[:4]
    ]
    write_study(tmp_path / "s", space(), trials, scientific={"depth": [1, 2]})
    finding = only(kp.Study.load(tmp_path / "s"), "sampling_density")
    assert finding.evidence["minimum"] == checks.MIN_TRIALS_FOR_SAMPLING
    assert [c["completed"] for c in finding.evidence["cells"]] == [4, 4]


# -- training curves ---------------------------------------------------------------


def overfitting_curve(final):
    t = np.arange(EPOCHS)
    return list(final + 0.5 * np.exp(-t / 2.0) + 0.01 * np.maximum(0, t - 10) ** 1.5)


def test_overfitting_validation_minimum_then_rising(tmp_path):
    finding = only(bowl_study(tmp_path, curve=overfitting_curve), "overfitting")
    assert {t["scientific"] for t in finding.evidence["trials"]} == {"depth=1", "depth=2"}
    for trial in finding.evidence["trials"]:
        assert 8 <= trial["best_epoch"] <= 11
        assert trial["final"] > trial["best"] * (1 + checks.OVERFITTING_MARGIN)


def test_one_noisy_last_epoch_is_not_overfitting(tmp_path):
    def curve(final):
        values = decaying(final)
        values[-1] *= 1.3
        return values

    assert "overfitting" not in codes(bowl_study(tmp_path, curve=curve))


def test_late_variance_noisy_validation_curve_at_the_end(tmp_path):
    def curve(final):
        values = np.array(decaying(final))
        values[-6:] *= 1 + 0.2 * np.array([1, -1, 1, -1, 1, -1])
        return list(values)

    finding = only(bowl_study(tmp_path, curve=curve), "late_variance")
    assert all(t["ratio"] > checks.LATE_VARIANCE_RATIO for t in finding.evidence["trials"])
    assert "use_ema" in finding.recommendation


def test_still_improving_at_the_end(tmp_path):
    def curve(final):
        return list(final + 1.0 - np.arange(EPOCHS) / EPOCHS)  # linear, never flat

    found = codes(bowl_study(tmp_path, curve=curve))
    assert "still_improving" in found and "saturated" not in found


def test_saturated_long_before_the_end(tmp_path):
    def curve(final):
        return [final + 1.0, final + 0.5] + [final] * (EPOCHS - 2)

    found = codes(bowl_study(tmp_path, curve=curve))
    assert "saturated" in found and "still_improving" not in found
    assert only(bowl_study(tmp_path, curve=curve, name="again"), "saturated").severity == "info"


def test_best_step_late_and_early(tmp_path):
    def late(final):
        return list(final + 1.0 - np.arange(EPOCHS) / EPOCHS)

    def early(final):
        return list(final + 0.05 * np.arange(EPOCHS))  # best at epoch 0

    late_finding = only(bowl_study(tmp_path, curve=late, name="late"), "best_step_late")
    assert all(t["best_step"] == EPOCHS - 1 for t in late_finding.evidence["trials"])
    # The message counts epochs from 1, as Keras prints them: the last epoch is "N of N".
    assert f"best epochs {EPOCHS} of {EPOCHS}" in late_finding.message
    early_codes = codes(bowl_study(tmp_path, curve=early, name="early"))
    assert "best_step_early" in early_codes and "best_step_late" not in early_codes
    middle = codes(bowl_study(tmp_path, name="middle"))
    assert "best_step_early" not in middle and "best_step_late" not in middle


# -- clipping and roles -------------------------------------------------------------


@pytest.mark.parametrize("fraction, expected", [(0.8, True), (0.3, False)])
def test_aggressive_clipping_from_the_logged_clip_fraction(tmp_path, fraction, expected):
    trials = []
    for depth in (1, 2):
        for lr in LR_GRID:
            c = curves(decaying(lr_quality(lr, 3e-3)))
            c["clip_fraction"] = [fraction] * EPOCHS
            trials.append(SyntheticTrial({"depth": depth, "learning_rate": float(lr)}, c))
    write_study(tmp_path / "s", space(), trials, scientific={"depth": [1, 2]})
    found = [f for f in kp.Study.load(tmp_path / "s").check() if f.code == "aggressive_clipping"]
    assert bool(found) == expected
    if expected:
        assert len(found[0].evidence["trials"]) == 24
        assert found[0].evidence["trials"][0]["best"]  # the best trials listed first
        assert "lower the learning rate" in found[0].recommendation


def test_fixed_or_scientific_optimizer_hyperparameters(tmp_path):
    def momentum(hp):
        hp.Float("momentum", 0.5, 0.99)

    trials = [
        SyntheticTrial(
            {"depth": d, "learning_rate": float(lr), "momentum": 0.9},
            curves(decaying(lr_quality(lr, 3e-3))),
        )
        for d in (1, 2)
        for lr in LR_GRID
    ]
    with pytest.warns(kp.PlaybookWarning, match="momentum"):  # the tuner warns up front too
        write_study(
            tmp_path / "fixed",
            space([momentum]),
            trials,
            scientific={"depth": [1, 2]},
            fixed={"momentum": 0.9},
        )
    finding = only(kp.Study.load(tmp_path / "fixed"), "fixed_optimizer_hparams")
    assert finding.evidence["hyperparameters"] == {"momentum": {"role": "fixed", "value": 0.9}}

    trials = [
        SyntheticTrial({"learning_rate": float(lr)}, curves(decaying(lr_quality(lr, 3e-3))))
        for lr in (1e-3, 1e-2)
        for _ in range(6)
    ]
    hp = kt.HyperParameters()
    hp.Choice("learning_rate", [1e-3, 1e-2])
    with pytest.warns(kp.PlaybookWarning, match="learning_rate"):
        write_study(tmp_path / "sci", hp, trials, scientific={"learning_rate": [1e-3, 1e-2]})
    finding = only(kp.Study.load(tmp_path / "sci"), "fixed_optimizer_hparams")
    assert finding.evidence["hyperparameters"]["learning_rate"]["role"] == "scientific"
    assert "fixed_optimizer_hparams" not in codes(bowl_study(tmp_path))


def test_maximised_objectives_are_judged_the_right_way_round(tmp_path):
    trials = []
    for depth in (1, 2):
        for lr in LR_GRID:
            acc = 1.0 - lr_quality(lr, 0.1)  # best at the top edge
            values = list(acc - 0.5 * np.exp(-np.arange(EPOCHS) / 4.0))
            trials.append(
                SyntheticTrial(
                    {"depth": depth, "learning_rate": float(lr)},
                    {"loss": decaying(0.1), "val_accuracy": values},
                )
            )
    write_study(
        tmp_path / "s",
        space(),
        trials,
        scientific={"depth": [1, 2]},
        objective="val_accuracy",
        direction="max",
    )
    study = kp.Study.load(tmp_path / "s")
    assert only(study, "boundary").evidence["edge"] == "high"
    assert "overfitting" not in codes(study) and "still_improving" not in codes(study)


# -- edge cases found in review ---------------------------------------------------


def test_infeasible_trials_tied_with_feasible_ones_are_not_an_edge(tmp_path):
    # Two OOM trials at learning rates that other trials (of the other depth)
    # completed: there is no value above which every trial failed.
    study = bowl_study(
        tmp_path,
        infeasible=lambda lr, depth: "nan_loss" if depth == 2 and lr >= LR_GRID[-2] else None,
    )
    finding = only(study, "infeasible_fraction")
    assert finding.evidence["edges"] == [] and finding.severity == "info"


def test_out_of_memory_above_a_batch_size_is_not_instability(tmp_path):
    hp = kt.HyperParameters()
    hp.Int("batch_size_units", 16, 1024, sampling="log")
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    trials = []
    for i, units in enumerate([16, 32, 64, 128, 256, 512, 768, 1024] * 2):
        values = {"batch_size_units": units, "learning_rate": float(LR_GRID[i % 12])}
        if units > 512:
            trials.append(SyntheticTrial(values, status="infeasible", reason="oom"))
        else:
            trials.append(SyntheticTrial(values, curves(decaying(1.0 / units))))
    write_study(tmp_path / "s", hp, trials)
    finding = only(kp.Study.load(tmp_path / "s"), "infeasible_fraction")
    assert finding.evidence["edges"] == [] and "instability" not in finding.message


def test_sampling_ks_always_hold_half_the_budget():
    for n in (7, 50, 51, 100, 1000, 10_000):
        ks = checks.sampling_ks(n)
        assert n // 2 in ks and ks[-1] == n and ks[0] == 1
    rng = np.random.default_rng(1)
    losses = rng.normal(size=100)
    ks = checks.sampling_ks(100)
    mean, _ = checks._best_of_k(losses, ks)
    exact, _ = checks._best_of_k(losses, np.arange(1, 101))
    expected = (exact[49] - exact[99]) / (exact[0] - exact[99])
    assert checks.late_gain(mean, ks) == pytest.approx(expected)


def test_a_loss_objective_with_no_finite_validation_values(tmp_path):
    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    trials = [
        SyntheticTrial(
            {"learning_rate": float(lr)},
            {"loss": [1.0, 0.5, 0.4 + 0.01 * i], "val_loss": [math.nan] * 3},
        )
        for i, lr in enumerate(LR_GRID[:8])
    ]
    write_study(tmp_path / "s", hp, trials, objective="loss")
    study = kp.Study.load(tmp_path / "s")
    assert "overfitting" not in codes(study) and "late_variance" not in codes(study)


def test_overfitting_reports_the_epoch_when_validation_runs_every_other_epoch(tmp_path):
    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    trials = []
    for i, lr in enumerate(LR_GRID[3:9]):
        val = [math.nan] * EPOCHS
        for epoch in range(1, EPOCHS, 2):  # validation_freq=2
            val[epoch] = 0.4 + 0.01 * i + 0.02 * abs(epoch - 9)
        trials.append(
            SyntheticTrial({"learning_rate": float(lr)}, {"loss": decaying(0.3), "val_loss": val})
        )
    write_study(tmp_path / "s", hp, trials)
    finding = only(kp.Study.load(tmp_path / "s"), "overfitting")
    assert finding.evidence["trials"][0]["best_epoch"] == 9
    assert "at epoch 9" in finding.message


def test_ordered_numeric_choice_at_its_last_value_with_improvement_towards_it(tmp_path):
    def units(hp):
        hp.Choice("units", [16, 32, 64, 128])

    trials = []
    for depth in (1, 2):
        for i, lr in enumerate(LR_GRID):
            u = [16, 32, 64, 128][i % 4]
            final = 0.05 * lr_quality(lr, 3e-3) + 3.0 / u  # units matter most
            values = {"depth": depth, "learning_rate": float(lr), "units": u}
            trials.append(SyntheticTrial(values, curves(decaying(final))))
    write_study(tmp_path / "s", space([units]), trials, scientific={"depth": [1, 2]})
    finding = only(kp.Study.load(tmp_path / "s"), "boundary")
    assert finding.evidence["hyperparameter"] == "units" and finding.evidence["edge"] == "high"
    assert "above 128" in finding.recommendation


def test_a_hyperparameter_named_like_a_table_column(tmp_path):
    def epochs(hp):
        hp.Int("epochs", 5, 50)

    trials = [
        SyntheticTrial(
            {"depth": d, "learning_rate": float(lr), "epochs": 5 + 3 * i},
            curves(decaying(lr_quality(lr, 3e-3))),
        )
        for d in (1, 2)
        for i, lr in enumerate(LR_GRID)
    ]
    write_study(tmp_path / "s", space([epochs]), trials, scientific={"depth": [1, 2]})
    study = kp.Study.load(tmp_path / "s")
    frame = study.to_dataframe()
    assert (frame["epochs"] == EPOCHS).all()  # recorded epochs
    assert frame["hp:epochs"].tolist()[:3] == [5, 8, 11]  # the hyperparameter
    assert "hp:epochs" in study.best_per_scientific().columns
    study.check()
    names = [p.hyperparameter for p in plot_data.axis_plot_data(study)]
    assert "epochs" in names
    assert "report.html" in study.export(tmp_path / "out", formats=("html",))
