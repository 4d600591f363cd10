"""The plots' data (pure functions, checked value by value) and their thin renderers."""

import keras_tuner as kt
import numpy as np
import pytest
from matplotlib.figure import Figure

import kplaybook as kp
from kplaybook.analysis import plot_data
from kplaybook.analysis import plots
from kplaybook.testing import SyntheticTrial
from kplaybook.testing import write_study

LRS = np.geomspace(1e-4, 1e-1, 8)


@pytest.fixture
def study(tmp_path):
    """2 depths x 8 learning rates x optimizer choice; lr > 0.05 infeasible; per-step norms on one trial."""
    hp = kt.HyperParameters()
    hp.Int("depth", 1, 2)
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    hp.Choice("activation", ["relu", "gelu"])
    trials = []
    for depth in (1, 2):
        for i, lr in enumerate(LRS):
            values = {
                "depth": depth,
                "learning_rate": float(lr),
                "activation": ["relu", "gelu"][i % 2],
            }
            if lr > 0.05:
                trials.append(SyntheticTrial(values, status="infeasible", reason="nan_loss"))
                continue
            final = 0.1 + 0.2 * (np.log10(lr) + 2.5) ** 2 + 0.05 * depth
            val = list(final + np.exp(-np.arange(6)))
            steps = None
            if depth == 1 and i == 4:
                norms = [10.0, 8.0] + [1.0 + 0.1 * k for k in range(8)]
                steps = {
                    "grad_norm": norms,
                    "clip_threshold": [float("inf")] * 4 + [1.5] * 6,
                    "clip_fraction": [0.0] * 4 + [0.2] * 6,
                }
            trials.append(SyntheticTrial(values, {"loss": val, "val_loss": val}, steps=steps))
    write_study(tmp_path / "s", hp, trials, scientific={"depth": [1, 2]})
    return kp.Study.load(tmp_path / "s")


def test_axis_plot_data(study):
    frame = study.to_dataframe()
    panels = {p.hyperparameter: p for p in plot_data.axis_plot_data(study)}
    assert set(panels) == {"depth", "learning_rate", "activation"}
    lr = panels["learning_rate"]
    assert lr.log_scale and lr.role == "nuisance" and lr.bounds == (1e-4, 1e-1)
    done = frame[frame["status"] == "completed"]
    np.testing.assert_allclose(sorted(lr.x), sorted(done["learning_rate"]))
    # Infeasible trials: all of them, drawn above the worst feasible value.
    assert sorted(lr.infeasible_trial_ids) == sorted(
        frame.query("status == 'infeasible'")["trial_id"]
    )
    assert lr.infeasible_y > lr.y.max()
    # The top 3 are the 3 best objectives of the study.
    assert sorted(lr.y[lr.top]) == sorted(done["objective"].nsmallest(3))
    # Scientific value per point.
    assert set(np.array(lr.cell_labels)[lr.cell]) == {"depth=1", "depth=2"}
    act = panels["activation"]
    assert act.categories == ["relu", "gelu"] and set(act.x) == {0.0, 1.0}
    assert panels["depth"].integer
    with pytest.raises(KeyError, match="not a varied hyperparameter"):
        plot_data.axis_plot_data(study, "units")


def test_isolation_plot_data_is_the_best_trial_per_scientific_value(study):
    data = plot_data.isolation_plot_data(study)
    best = study.best_per_scientific()
    assert data.labels == ["depth=1", "depth=2"] and data.numeric
    np.testing.assert_allclose(data.x, [1, 2])
    np.testing.assert_allclose(data.best, best["objective"])
    assert data.trial_ids == list(best["trial_id"])
    assert (data.replicates == 0).all()  # no replicate run yet


def test_curves_plot_data_best_bold_others_faint(study):
    data = plot_data.curves_plot_data(study, "best")
    bold = [s.trial_id for s in data.series if s.bold]
    assert sorted(bold) == sorted(study.best_per_scientific()["trial_id"])
    assert len(data.series) == 14  # every completed trial (fewer than 11 per value)
    assert data.series[-1].bold  # bold drawn last
    chosen = plot_data.curves_plot_data(study, [data.series[0].trial_id])
    assert len(chosen.series) == 1 and chosen.series[0].bold
    np.testing.assert_allclose(
        chosen.series[0].validation, study.curves(chosen.series[0].trial_id)["val_loss"]
    )
    with pytest.raises(ValueError, match="which must be"):
        plot_data.curves_plot_data(study, "worst")


def test_grad_norm_plot_data(study):
    trial_id = next(t for t in study.trial_ids if len(study.steps(t)))
    data = plot_data.grad_norm_plot_data(study, trial_id)
    norms = [10.0, 8.0] + [1.0 + 0.1 * k for k in range(8)]
    np.testing.assert_allclose(data.grad_norm, norms)
    assert data.percentile_90 == pytest.approx(np.percentile(norms, 90))
    assert np.isnan(data.clip_threshold[:4]).all()  # still collecting norms: no threshold
    np.testing.assert_allclose(data.clip_threshold[4:], 1.5)
    assert data.histogram.sum() == len(norms)
    other = next(t for t in study.trial_ids if not len(study.steps(t)))
    with pytest.raises(ValueError, match="GradientNormLogger"):
        plot_data.grad_norm_plot_data(study, other)


def test_sampling_plot_data_matches_best_of_k_by_hand(study):
    panels = plot_data.sampling_plot_data(study)
    assert [p.label for p in panels] == ["depth=1", "depth=2"]
    frame = study.to_dataframe()
    y = np.sort(frame.query("status == 'completed' and depth == 1")["objective"].to_numpy())
    panel = panels[0]
    assert panel.completed == len(y) and list(panel.ks) == list(range(1, len(y) + 1))
    assert panel.mean[0] == pytest.approx(y.mean())  # best of 1 = one random trial
    n = len(y)
    k = n
    expected = sum(y[i] * (((n - i) / n) ** k - ((n - i - 1) / n) ** k) for i in range(n))
    assert panel.mean[-1] == pytest.approx(expected)
    assert (np.diff(panel.mean) <= 1e-12).all()  # more trials never hurt the expected best


def test_renderers_return_figures_that_save(study, tmp_path):
    trial_id = next(t for t in study.trial_ids if len(study.steps(t)))
    figures = [
        study.plot_axis(),
        study.plot_axis("learning_rate"),
        study.plot_isolation(),
        study.plot_curves(),
        study.plot_curves("all"),
        study.plot_grad_norms(trial_id),
        study.plot_grad_norms(),  # the best trial with logged norms
        study.plot_sampling(),
    ]
    for i, figure in enumerate(figures):
        assert isinstance(figure, Figure)
        path = tmp_path / f"{i}.png"
        figure.savefig(path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axis = figures[1].axes[0]
    assert axis.get_xscale() == "log" and axis.get_xlabel() == "learning_rate (nuisance)"


def test_infeasible_trials_are_drawn_at_the_top_for_a_maximised_objective(tmp_path):
    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    trials = [
        SyntheticTrial({"learning_rate": float(lr)}, {"val_accuracy": [0.5, 0.6 + 0.3 * i / 8]})
        for i, lr in enumerate(LRS[:6])
    ] + [SyntheticTrial({"learning_rate": float(LRS[7])}, status="infeasible", reason="nan_loss")]
    write_study(tmp_path / "s", hp, trials, objective="val_accuracy", direction="max")
    (panel,) = plot_data.axis_plot_data(kp.Study.load(tmp_path / "s"))
    assert panel.infeasible_y > panel.y.max()
    assert sorted(panel.y[panel.top]) == sorted(panel.y)[-3:]  # top 3 = the 3 highest


def test_markdown_summary_keeps_user_text_inside_its_table_cell(study, tmp_path):
    notes = tmp_path / "s" / "kplaybook_notes.json"
    notes.write_text('{"goal": "line one\\nline two | <script>x</script>", "command": null}')
    fresh = kp.Study.load(tmp_path / "s")
    fresh.export(tmp_path / "out", formats=("md",))
    text = (tmp_path / "out" / "summary.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| s |"))
    assert "line one line two \\| &lt;script&gt;" in row
    assert "<script>" not in text


def test_the_axis_plot_zooms_onto_the_useful_range_and_marks_what_it_clipped(tmp_path):
    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    lrs = np.geomspace(1e-4, 1e-1, 12)
    finals = np.linspace(0.10, 0.20, 12)
    finals[[0, 11]] = [40.0, 90.0]  # two trials orders of magnitude worse
    trials = [
        SyntheticTrial({"learning_rate": float(lr)}, {"val_loss": [100.0, float(f)]})
        for lr, f in zip(lrs, finals)
    ]
    write_study(tmp_path / "s", hp, trials)
    (panel,) = plot_data.axis_plot_data(kp.Study.load(tmp_path / "s"))
    assert panel.clipped.sum() == 2
    np.testing.assert_allclose(sorted(panel.y_true[panel.clipped]), [40.0, 90.0])
    # Clipped points sit at the limit, just past the good region, which keeps its scale.
    assert np.all(panel.y[panel.clipped] == panel.y_limit)
    assert 0.2 < panel.y_limit < 0.25 and panel.y[~panel.clipped].max() <= panel.y_limit
    np.testing.assert_allclose(panel.y[~panel.clipped], panel.y_true[~panel.clipped])
    figure = plots.render_axis([panel])
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert "2 worse than the axis shows" in labels


def test_an_even_spread_is_not_zoomed(tmp_path):
    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    trials = [
        SyntheticTrial({"learning_rate": float(lr)}, {"val_loss": [1.0, 0.1 + 0.01 * i]})
        for i, lr in enumerate(np.geomspace(1e-4, 1e-1, 10))
    ]
    write_study(tmp_path / "s", hp, trials)
    (panel,) = plot_data.axis_plot_data(kp.Study.load(tmp_path / "s"))
    assert panel.y_limit is None and not panel.clipped.any()
