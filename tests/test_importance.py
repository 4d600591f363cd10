"""study.importance() and interactions() against analytic Sobol indices, and their findings and plots.

The studies are synthetic (`kplaybook.testing`): their objective is a known
function of the hyperparameters, so the true variance shares are known.
With x1..x5 uniform on [0, 1] and

    f = x1 + 0.3 x2 + 0 x3 + 2 (x4 - 1/2)(x5 - 1/2),

Var f = 1/12 + 0.09/12 + 4/144, so x1 explains 70.3%, x2 6.3%, x3 nothing,
and x4 and x5 nothing alone but 23.4% together (a pure interaction).
"""

import keras_tuner as kt
import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.stats import qmc

import kplaybook as kp
from kplaybook.testing import SyntheticTrial
from kplaybook.testing import write_study

VARIANCE = 1 / 12 + 0.09 / 12 + 4 / 144
TRUE_FIRST = {
    "x1": (1 / 12) / VARIANCE,
    "x2": (0.09 / 12) / VARIANCE,
    "x3": 0.0,
    "x4": 0.0,
    "x5": 0.0,
}
TRUE_PAIR = (4 / 144) / VARIANCE


def objective(v):
    return v["x1"] + 0.3 * v["x2"] + 2 * (v["x4"] - 0.5) * (v["x5"] - 0.5)


def known_study(tmp_path, n=120, scientific=False, infeasible=None, name="s"):
    hp = kt.HyperParameters()
    for k in range(1, 6):
        hp.Float(f"x{k}", 0.0, 1.0)
    if scientific:
        hp.Choice("arm", ["a", "b"])
    # As the nested design does: every scientific value sees the same points.
    points = qmc.Halton(d=5, scramble=True, seed=3).random(n // 2 if scientific else n)
    if scientific:
        points = np.repeat(points, 2, axis=0)
    trials = []
    for i, u in enumerate(points):
        values = {f"x{k + 1}": float(u[k]) for k in range(5)}
        if scientific:
            values["arm"] = "ab"[i % 2]
        y = objective(values) + (1.0 if scientific and values["arm"] == "b" else 0.0)
        if infeasible and infeasible(values):
            trials.append(SyntheticTrial(values, status="infeasible", reason="nan_loss"))
        else:
            trials.append(SyntheticTrial(values, {"val_loss": [y + 1.0, y]}))
    path = write_study(
        tmp_path / name, hp, trials, scientific={"arm": ["a", "b"]} if scientific else None
    )
    return kp.Study.load(path)


def test_the_shares_are_close_to_the_analytic_sobol_indices(tmp_path):
    study = known_study(tmp_path)
    imp = study.importance().set_index("hyperparameter")
    assert list(imp.columns[:4]) == ["importance", "total", "low", "high"]
    # The ranking by total share: x1, then the interacting pair, then x2, then x3.
    assert imp.index[0] == "x1" and set(imp.index[1:3]) == {"x4", "x5"} and imp.index[-1] == "x3"
    for name, truth in TRUE_FIRST.items():
        assert imp.loc[name, "importance"] == pytest.approx(truth, abs=0.03), name
        assert imp.loc[name, "low"] <= imp.loc[name, "importance"] <= imp.loc[name, "high"]
    for name in ("x4", "x5"):
        assert imp.loc[name, "total"] == pytest.approx(TRUE_PAIR, abs=0.04)
    assert imp["importance"].sum() <= 1.0
    pairs = study.interactions()
    top = pairs.iloc[0]
    assert {top["hp_a"], top["hp_b"]} == {"x4", "x5"}
    assert top["importance"] == pytest.approx(TRUE_PAIR, abs=0.04)
    assert (pairs["importance"].iloc[1:] < 0.02).all()


def test_the_irrelevant_hyperparameter_is_insensitive_and_the_pair_interacts(tmp_path):
    findings = {f.code: f for f in known_study(tmp_path).check()}
    assert list(findings["insensitive"].evidence["hyperparameters"]) == ["x3"]
    (pair,) = findings["interaction"].evidence["pairs"]
    assert {pair["hp_a"], pair["hp_b"]} == {"x4", "x5"}
    assert findings["interaction"].reference.endswith("#exploration-vs-exploitation")


def test_with_fewer_trials_than_it_needs_it_says_it_cannot_tell(tmp_path):
    study = known_study(tmp_path, n=6)
    with pytest.raises(
        kp.errors.TooFewTrials, match="6 usable trials for 5 tuned.*too few to tell"
    ):
        study.importance()
    assert not {"insensitive", "interaction"} & {f.code for f in study.check()}


def test_per_scientific_value_decompositions(tmp_path):
    study = known_study(tmp_path, n=160, scientific=True)
    imp = study.importance(by_scientific=True)
    assert set(imp["scientific"]) == {"arm=a", "arm=b"}
    assert "arm" not in set(imp["hyperparameter"])
    for _, rows in imp.groupby("scientific"):
        x1 = rows.set_index("hyperparameter").loc["x1", "importance"]
        assert x1 == pytest.approx(TRUE_FIRST["x1"], abs=0.06)
    pooled = study.importance().set_index("hyperparameter")
    # Pooled, the scientific value is a dimension: the +1 of arm=b dominates.
    assert pooled.index[0] == "arm" and pooled.loc["arm", "importance"] > 0.5


def test_infeasible_trials_count_as_the_worst_value_or_are_dropped(tmp_path):
    study = known_study(tmp_path, infeasible=lambda v: v["x3"] > 0.8)
    worst = study.importance().set_index("hyperparameter")
    dropped = study.importance(infeasible="drop").set_index("hyperparameter")
    bad = study.status_counts()["infeasible"]
    assert bad > 10
    assert worst["trials"].iloc[0] == 120 and dropped["trials"].iloc[0] == 120 - bad
    # Kept as the worst value, the diverging region makes x3 matter; dropped, it does not.
    assert worst.loc["x3", "total"] > 0.1 > dropped.loc["x3", "total"]


def test_the_importance_and_contour_plots(tmp_path):
    study = known_study(tmp_path)
    assert isinstance(study.plot_importance(), Figure)
    data = kp.analysis.plot_data.contour_plot_data(study, "x4", "x5")
    assert data.z.shape == (len(data.grid_y), len(data.grid_x))
    # The saddle: corners where x4 and x5 agree are worse (higher) than where they differ.
    z = data.z
    assert z[-1, -1] > z[0, -1] and z[0, 0] > z[-1, 0]
    assert isinstance(study.plot_contour("x4", "x5"), Figure)
    with pytest.raises(KeyError, match="not a varied hyperparameter"):
        study.plot_contour("x4", "nope")
    with pytest.raises(ValueError, match="two different hyperparameters"):
        study.plot_contour("x4", "x4")
