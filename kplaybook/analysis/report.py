"""A study's summary as files to read and share: HTML, Markdown, CSV and JSON (`Study.export`).

`report.html` is one self-contained file (CSS inline, plots embedded as PNG
data URIs) that opens offline; `summary.md` is the same summary for a
repository or a notebook, linking `plots/*.png`.
"""

import base64
import datetime
import html
import io
import os

import pandas as pd

from kplaybook.analysis import plot_data
from kplaybook.analysis import plots
from kplaybook.analysis._prepared import prepare
from kplaybook.errors import TooFewTrials
from kplaybook.records import files

FORMATS = ("html", "md", "csv", "json")

#: The HTML report lists the best trials; trials.csv holds all of them.
HTML_TRIAL_ROWS = 200
#: Gradient-norm plots: for the best trials (of each scientific value) that logged norms.
MAX_GRAD_NORM_PLOTS = 4

_DPI = 100


def check_formats(formats):
    """`formats` as a tuple, or a one-sentence ValueError naming the accepted ones."""
    if isinstance(formats, str):
        formats = (formats,)
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(
            f"Unknown export format(s) {unknown or formats!r}; pass some of {FORMATS}."
        )
    return formats


def spreadsheet_row(study):
    """The study as one tracking-spreadsheet row: dict column -> value.

    The playbook's "Setting up experiment tracking"
    (https://github.com/google-research/tuning_playbook#setting-up-experiment-tracking)
    keeps one spreadsheet row per study.

    Columns: study, goal, trials, completed, infeasible, failed, objective,
    best (the best value), best_trial, best_scientific, command (how to
    reproduce; None when the search ran from an interactive session),
    directory.
    """
    counts = study.status_counts()
    best_value = best_trial = best_scientific = None
    best_id = study.best_trial_id()
    if best_id is not None:
        best = study.trial(best_id)
        best_value, best_trial = best.score, best.trial_id
        best_scientific = ", ".join(f"{n}={best.values.get(n)}" for n in study.scientific) or None
    notes = study.notes
    return {
        "study": study.name,
        "goal": notes.get("goal"),
        "trials": len(study.trial_ids),
        "completed": counts["completed"],
        "infeasible": counts["infeasible"],
        "failed": counts["failed"],
        "objective": f"{study.objective} ({study.direction})",
        "best": best_value,
        "best_trial": best_trial,
        "best_scientific": best_scientific,
        "command": notes.get("command"),
        "directory": os.path.abspath(study.directory),
    }


def _figures(study):
    """dict plot name -> (title, matplotlib Figure) of the report's plots."""
    figures = {}
    axis = plot_data.axis_plot_data(study)
    if axis:
        figures["axis"] = ("Basic hyperparameter axis plots", plots.render_axis(axis))
    if study.scientific:
        figures["isolation"] = (
            "Isolation plot",
            plots.render_isolation(plot_data.isolation_plot_data(study)),
        )
    curves = plot_data.curves_plot_data(study, "best")
    if curves.series:
        figures["curves"] = ("Training curves", plots.render_curves(curves))
    sampling = plot_data.sampling_plot_data(study)
    if sampling:
        figures["sampling"] = ("Have we sampled enough?", plots.render_sampling(sampling))
    try:
        panels = plot_data.importance_plot_data(study, by_scientific=bool(study.scientific))
    except TooFewTrials:
        panels = None  # the findings say the sampling is too thin
    if panels:
        figures["importance"] = ("Which hyperparameters matter", plots.render_importance(panels))
    best = study.best_per_scientific()
    for trial_id in [t for t in best["trial_id"] if pd.notna(t)][:MAX_GRAD_NORM_PLOTS]:
        try:
            data = plot_data.grad_norm_plot_data(study, trial_id)
        except ValueError:
            continue  # no per-step norms logged for this trial
        figures[f"grad_norms_{trial_id}"] = (
            f"Gradient norms of trial {trial_id}",
            plots.render_grad_norms(data),
        )
    return figures


def png_bytes(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def write(study, directory, formats=FORMATS):
    """Write the summary files of `study` (a `StudyReader`) into `directory`; returns dict name -> path."""
    formats = check_formats(formats)
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    paths = {}
    frame = study.to_dataframe()
    best = study.best_per_scientific()
    findings = study.check()
    row = spreadsheet_row(study)
    replicates = study.replicates()

    def target(name):
        paths[name] = os.path.join(directory, name)
        return paths[name]

    if "csv" in formats:
        files.write_text(target("trials.csv"), frame.to_csv(index=False))
        files.write_text(target("best_per_scientific.csv"), best.to_csv(index=False))
        files.write_text(target("spreadsheet_row.csv"), pd.DataFrame([row]).to_csv(index=False))
        if len(replicates):
            files.write_text(target("replicates.csv"), replicates.to_csv(index=False))
    if "json" in formats:
        files.write_json(
            target("findings.json"), files.json_safe([x.to_dict() for x in findings]), indent=1
        )
        _write_study_json(
            study,
            target("study.json"),
            frame,
            extra={
                "findings": [x.to_dict() for x in findings],
                "spreadsheet_row": row,
            },
        )
    images = {}
    if "html" in formats or "md" in formats:
        os.makedirs(os.path.join(directory, "plots"), exist_ok=True)
        for name, (title, figure) in _figures(study).items():
            png = png_bytes(figure)
            files.write_text(target(f"plots/{name}.png"), png)
            images[name] = (title, png)
    if "md" in formats:
        files.write_text(
            target("summary.md"), _markdown(study, row, findings, best, replicates, images)
        )
    if "html" in formats:
        files.write_text(
            target("report.html"), _html(study, row, findings, best, replicates, frame, images)
        )
    return paths


def _write_study_json(study, path, frame, extra=None):
    """`study.json`: the whole study in one self-contained file (curves and per-step values included)."""
    trials = []
    curves = []
    for record in frame.to_dict("records"):
        trial_id = record["trial_id"]
        epochs, columns = study.curve_arrays(trial_id)
        curve = {
            "epoch": epochs.tolist(),
            **{name: files.finite_list(values) for name, values in columns.items()},
        }
        steps = None
        if study.has_steps(trial_id):
            frame_steps = study.steps(trial_id)
            if len(frame_steps):
                steps = {
                    "step": [int(s) for s in frame_steps.index],
                    **{
                        name: files.finite_list(frame_steps[name].to_numpy())
                        for name in frame_steps.columns
                    },
                }
        trials.append(record)
        curves.append((curve, steps))
    summary = files.json_safe(
        {
            "name": study.name,
            "directory": os.path.abspath(study.directory),
            "objective": {"name": study.objective, "direction": study.direction},
            "config": study.config,
            "notes": study.notes,
            "scientific": study.scientific,
            "fixed": study.fixed,
            "nuisance": study.nuisance,
            "status_counts": study.status_counts(),
            "best_per_scientific": study.best_per_scientific().to_dict("records"),
            "problems": study.problems,
            **(extra or {}),
            "trials": trials,
        }
    )
    for record, (curve, steps) in zip(summary["trials"], curves):
        # Already JSON-safe (NaN -> None): kept out of the recursive walk.
        record["curves"] = curve
        if steps is not None:
            record["steps"] = steps
    files.write_json(path, summary)


# -- Markdown --------------------------------------------------------------------


def _md_table(frame):
    frame = frame.astype(object).where(frame.notna(), "")
    header = "| " + " | ".join(_md_cell(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = [
        "| " + " | ".join(_md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body])


def _md_cell(value):
    """A table cell: no raw HTML, no line break or pipe that would end the row."""
    text = html.escape(_cell(value), quote=False)
    return " ".join(text.split()).replace("|", "\\|")


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _markdown(study, row, findings, best, replicates, images):
    lines = [f"# Study {study.name}", ""]
    if row["goal"]:
        lines += [f"**Goal:** {html.escape(str(row['goal']), quote=False)}", ""]
    lines += [
        _md_table(pd.DataFrame([row])),
        "",
        f"Scientific: {_roles(study.scientific)}. Fixed: {_roles(study.fixed)}. "
        f"Nuisance: {', '.join(study.nuisance) or 'none'}.",
        "",
        "## Findings",
        "",
    ]
    if findings:
        lines.append(
            _md_table(
                pd.DataFrame(
                    [
                        {
                            "severity": x.severity,
                            "code": x.code,
                            "finding": x.message,
                            "what to do": x.recommendation,
                        }
                        for x in findings
                    ]
                )
            )
        )
    else:
        lines.append("No problem found by the playbook's checks.")
    lines += ["", "## Best trial per scientific value", "", _md_table(best), ""]
    if len(replicates):
        lines += ["## Seed replicates", "", _md_table(_replicate_summary(replicates)), ""]
    lines += ["## Plots", ""]
    for name, (title, _) in images.items():
        lines += [f"![{title}](plots/{name}.png)", ""]
    lines.append(f"_Written by kplaybook on {_now()}._")
    return "\n".join(lines) + "\n"


def _replicate_summary(replicates):
    group = replicates.groupby(["cell", "trial_id"], sort=True)["objective"]
    summary = group.agg(["mean", "std", "count"]).reset_index()
    return summary.rename(columns={"count": "seeds"})


def _roles(values):
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "none"


def _now():
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


# -- HTML ------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #1d1d1f; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .3rem .55rem; text-align: left; vertical-align: top; }
th { background: #f4f4f6; }
tr.warning td.severity { color: #b3261e; font-weight: 600; }
tr.info td.severity { color: #2e5fa8; font-weight: 600; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
.muted { color: #666; font-size: .9rem; }
.table-scroll { overflow-x: auto; max-width: 100%; }
a.ref { font-size: .8rem; }
code { background: #f4f4f6; padding: 0 .2rem; }
"""


def frame_html(frame, table_id=None):
    shown = frame.astype(object).where(frame.notna(), "")
    shown = shown.map(_cell) if hasattr(shown, "map") else shown.applymap(_cell)
    # Wide tables (many hyperparameters) scroll inside the page instead of overflowing it.
    table = shown.to_html(index=False, escape=True, table_id=table_id, border=0)
    return f'<div class="table-scroll">{table}</div>'


def reference_link(reference):
    if not reference:
        return ""
    return f' <a class="ref" href="{html.escape(reference)}">playbook</a>'


def _html(study, row, findings, best, replicates, frame, images):
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>kplaybook report: {e(study.name)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Study {e(study.name)}</h1>",
    ]
    if row["goal"]:
        parts.append(f"<p><strong>Goal:</strong> {e(str(row['goal']))}</p>")
    parts += [
        f'<p class="muted">Objective {e(study.objective)} ({e(study.direction)}). '
        f"Scientific: {e(_roles(study.scientific))}. Fixed: {e(_roles(study.fixed))}. "
        f"Nuisance: {e(', '.join(study.nuisance) or 'none')}.</p>",
        "<h2>Spreadsheet row</h2>",
        frame_html(pd.DataFrame([row]), "spreadsheet-row"),
        "<h2>Findings</h2>",
    ]
    if findings:
        parts.append(
            '<table id="findings"><thead><tr><th>severity</th><th>code</th>'
            "<th>finding</th><th>what to do</th></tr></thead><tbody>"
        )
        for x in findings:
            parts.append(
                f'<tr class="{e(x.severity)}"><td class="severity">{e(x.severity)}</td>'
                f"<td><code>{e(x.code)}</code></td><td>{e(x.message)}</td>"
                f"<td>{e(x.recommendation)}{reference_link(x.reference)}</td></tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append(
            '<table id="findings"><tbody><tr><td>No problem found by the playbook\'s '
            "checks.</td></tr></tbody></table>"
        )
    parts += ["<h2>Best trial per scientific value</h2>", frame_html(best, "best")]
    if len(replicates):
        parts += [
            "<h2>Seed replicates</h2>",
            frame_html(_replicate_summary(replicates), "replicates"),
        ]
    parts.append("<h2>Plots</h2>")
    for name, (title, png) in images.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure id="plot-{e(name)}"><img alt="{e(title)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{e(title)}</figcaption></figure>'
        )
    ordered = frame.assign(_key=prepare(study).sign * frame["objective"]).sort_values(
        "_key", na_position="last", kind="stable"
    )
    shown = ordered.drop(columns="_key").head(HTML_TRIAL_ROWS)
    parts += [
        f"<h2>Trials ({len(frame)})</h2>",
        f'<p class="muted">Best first; {len(shown)} of {len(frame)} shown (all in trials.csv).</p>',
        frame_html(shown, "trials"),
        f'<p class="muted">Written by kplaybook on {e(_now())}.</p>',
        "</body></html>",
    ]
    return "\n".join(parts)
