"""kp.Playbook's decisions as functions of studies: exact and fast, on synthetic studies (no training)."""

import math

import keras_tuner as kt
import numpy as np
import pytest

import kplaybook as kp
from kplaybook.playbook import autopilot
from kplaybook.playbook import decide
from kplaybook.testing import SyntheticTrial
from kplaybook.testing import write_study


def space():
    hp = kt.HyperParameters()
    hp.Choice("layers", [1, 2])
    hp.Float("learning_rate", 1e-5, 1e-4, sampling="log")
    hp.Float("dropout", 0.0, 0.5)
    hp.Float("one_minus_beta_1", 0.1, 0.9)
    hp.Int("units", 1, 9)
    return hp


def lr_study(tmp_path, name="s", n=16, diverge_above=None, curve=None, objective=None):
    """Layers 1 vs 2; the objective falls with the learning rate (the best sit at its top edge)."""
    rng = np.random.default_rng(0)
    trials = []
    for i in range(n):
        # Stratified over the range, as the quasi-random search samples it.
        lr = float(10 ** (-5 + ((i // 2 + rng.uniform(0.3, 0.7)) / (n // 2))))
        # The other ranges are sampled well inside: only the learning rate's edge matters.
        values = {
            "layers": 1 + i % 2,
            "learning_rate": lr,
            "dropout": float(rng.uniform(0.15, 0.35)),
            "one_minus_beta_1": float(rng.uniform(0.3, 0.7)),
            "units": int(rng.integers(4, 7)),
        }
        if diverge_above is not None and lr >= diverge_above:
            trials.append(SyntheticTrial(values, status="infeasible", reason="nan_loss"))
            continue
        y = objective(values) if objective else 1.0 - 0.2 * (math.log10(lr) + 5)
        curves = curve(y) if curve else [y + 0.5, y + 0.2, y + 0.1, y + 0.05, y + 0.02, y]
        trials.append(SyntheticTrial(values, {"loss": curves, "val_loss": curves}))
    path = write_study(
        tmp_path / name, space(), trials, scientific={"layers": [1, 2]}, trials_per_study=n // 2
    )
    return kp.Study.load(path)


def hp_named(study, name):
    return next(h for h in study.hyperparameters if h.name == name)


def test_a_range_is_widened_past_its_edge_within_its_domain(tmp_path):
    study = lr_study(tmp_path)
    lr, dropout, beta, units = (
        hp_named(study, n) for n in ("learning_rate", "dropout", "one_minus_beta_1", "units")
    )
    assert decide.widened(lr, "high") == pytest.approx([1e-5, 1e-3])
    assert decide.widened(lr, "low") == pytest.approx([1e-6, 1e-4])
    # Linear: half the width, clamped to [0, 1] for a range declared within it.
    assert decide.widened(dropout, "high") == pytest.approx([0.0, 0.75])
    assert decide.widened(dropout, "low") is None  # already at 0: nothing to widen
    assert decide.widened(beta, "high") == pytest.approx([0.1, 1.0])
    assert decide.widened(beta, "low") == pytest.approx([0.0, 0.9])
    # An integer range declared from 1 stays >= 1.
    assert decide.widened(units, "low") is None
    assert decide.widened(units, "high") == [1, 13]


def test_the_boundary_finding_becomes_a_widening_of_that_range(tmp_path):
    study = lr_study(tmp_path)
    edges = decide.boundary_edges(study.check(), study.hyperparameters)
    assert [(hp.name, edge) for hp, edge, _ in edges] == [("learning_rate", "high")]


def test_an_instability_edge_is_found_and_capped_below_it(tmp_path):
    study = lr_study(tmp_path, n=24, diverge_above=5e-5)
    name, threshold, evidence = decide.instability_edge(study.check())
    assert name == "learning_rate" and 5e-5 <= threshold < 6.5e-5
    assert evidence["infeasible"] > 2
    low, high = decide.capped(hp_named(study, "learning_rate"), threshold)
    assert low == pytest.approx(1e-5) and high == pytest.approx(0.9 * threshold)


def test_the_training_length_follows_the_best_step(tmp_path):
    improving = lr_study(tmp_path, "improving")
    assert decide.training_length(improving.check()) == "longer"

    def early(y):
        return [
            y,
            y + 0.01,
            y + 0.02,
            y + 0.03,
            y + 0.04,
            y + 0.05,
            y + 0.06,
            y + 0.07,
            y + 0.08,
            y + 0.09,
            y + 0.1,
            y + 0.11,
        ]

    stopped = lr_study(tmp_path, "early", curve=early)
    assert decide.training_length(stopped.check()) == "shorter"


def test_a_value_is_adopted_only_when_it_beats_the_seed_noise():
    cells = [{"u": 1}, {"u": 32}, {"u": 64}]
    # Lower is better: 32 is clearly better, 64 is within the noise of the baseline.
    replicates = {0: [0.50, 0.52, 0.48], 1: [0.20, 0.21, 0.19], 2: [0.49, 0.47, 0.51]}
    chosen, evidence = decide.adoption(cells, replicates, {"u": 1}, "min")
    assert chosen == 1
    assert evidence["gaps"]["1"]["beats_noise"] and not evidence["gaps"]["2"]["beats_noise"]
    within = {0: [0.50, 0.52, 0.48], 1: [0.49, 0.53, 0.47]}
    assert decide.adoption(cells[:2], within, {"u": 1}, "min")[0] == 0
    # A value whose replicates mostly diverge is never adopted, however good the rest.
    diverging = {0: [0.50, 0.52, 0.48], 1: [0.1, None, None]}
    assert decide.adoption(cells[:2], diverging, {"u": 1}, "min")[0] == 0
    # Maximised objectives: higher is better.
    acc = {0: [0.80, 0.81, 0.79], 1: [0.95, 0.96, 0.94]}
    assert decide.adoption(cells[:2], acc, {"u": 1}, "max")[0] == 1
    # Without two feasible baseline replicates the noise is unknown: keep the baseline.
    chosen, evidence = decide.adoption(cells[:2], {0: [0.5], 1: [0.1, 0.1]}, {"u": 1}, "min")
    assert chosen == 0 and "fewer than 2" in evidence["why"]


def test_exploitation_fixes_what_does_not_matter_and_narrows_the_rest(tmp_path):
    def objective(v):
        return (math.log10(v["learning_rate"]) + 4.5) ** 2 + 5 * (v["one_minus_beta_1"] - 0.5) ** 2

    study = lr_study(tmp_path, n=80, objective=objective)
    results = [
        r
        for r in kp.analysis.importance.importance_data(study, by_scientific=True)
        if r.label == "layers=1"
    ]
    fixed, ranges, evidence = decide.exploit_plan(study, 0, results, study.hyperparameters)
    # dropout and units do not touch the objective: fixed at the best trial's values.
    best = study.trial(study.ranked(0)[0]).values
    assert fixed == {"dropout": best["dropout"], "units": best["units"]}
    low, high = ranges["learning_rate"]
    assert 1e-5 < low < 10**-4.5 < high < 1e-4
    # An edge the best trials reach keeps the current (widened) end.
    _, wide, _ = decide.exploit_plan(
        study, 0, results, study.hyperparameters, {"one_minus_beta_1": [0.0, 1.0]}
    )
    assert "learning_rate" in wide
    assert evidence["best_trial"] == study.ranked(0)[0]


def test_the_same_study_gives_the_same_decisions(tmp_path):
    """The plan is deterministic: two playbooks acting on the same round decide the same."""
    study = lr_study(tmp_path, n=24)

    def build(hp):  # never called: only the decisions are computed
        raise AssertionError

    lists = []
    for k in range(2):
        playbook = kp.Playbook(
            build,
            goals=[kp.Goal("layers", {"layers": [1, 2]})],
            max_trials=100,
            trials_per_study=8,
            directory=tmp_path,
            project_name=f"p{k}",
        )
        playbook._open(playbook._config({}))
        playbook._declared = {h.name: h for h in space().space}
        run = autopilot._RunState(epochs=6, max_epochs=24, batch_size=32)
        decisions = playbook._round_actions(
            "goal:layers", "goal:layers/round:0", study, study.check(), run, {}, playbook.goals[0]
        )
        lists.append([(d.action, d.reason, d.changes) for d in decisions])
    assert lists[0] == lists[1]
    actions = [a for a, _, _ in lists[0]]
    assert actions == ["widen", "longer_training"]
    assert lists[0][0][2] == {"ranges": {"learning_rate": pytest.approx([1e-5, 1e-3])}}
    assert lists[0][1][2] == {"epochs": 12}


def test_the_budget_is_shared_between_goals_and_exploitation():
    goals = [kp.Goal("a", {"a": [1, 2, 3]}), kp.Goal("b", {"b": [0, 1]})]
    # One smallest round (4 trials per value) and 3 replicates per value, per goal, and 5 final runs.
    assert autopilot.minimum_budget(goals, 3, 5) == 3 * 7 + 2 * 7 + 5
    with pytest.raises(ValueError, match=r"max_trials=30 cannot pay .* pass max_trials >= 40"):
        kp.Playbook(lambda hp: None, goals=goals, max_trials=30, directory="/tmp/unused-pb")
