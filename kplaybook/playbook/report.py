"""``playbook.html``: a playbook run on one self-contained page.

A timeline of the stages, each decision with its reason, its evidence and a
link to the round's own study report (written beside it by `Study.export`);
the final configuration with mean ± std over its seed replicates; the
caveats. The page embeds its one plot, so it opens offline; the study
reports it links to sit in the run's folder.
"""

import base64
import datetime
import html
import json
import math
import os

import pandas as pd

from kplaybook.analysis import report as study_report
from kplaybook.citations import url
from kplaybook.playbook.records import ACTIONS
from kplaybook.playbook.records import PlaybookResult
from kplaybook.records import files
from kplaybook.records import layout
from kplaybook.study import Study

REPORT_FILE = "playbook.html"

_CSS = (
    study_report.CSS
    + """
ol.timeline { list-style: none; padding-left: 0; }
ol.timeline > li { border-left: 4px solid #c8d3e6; margin: 0 0 .9rem .4rem; padding: .2rem .9rem; }
ol.timeline > li.adopt, ol.timeline > li.finish { border-color: #2e7d32; }
ol.timeline > li.keep_baseline { border-color: #8a8a8a; }
ol.timeline > li.stop_budget { border-color: #b3261e; }
ol.timeline > li.warmup, ol.timeline > li.clipping { border-color: #e08a00; }
.stage { font-weight: 600; } .action { font-family: monospace; background: #eef2f8;
  padding: 0 .3rem; border-radius: 3px; }
details pre { background: #f7f7f9; padding: .5rem; overflow-x: auto; font-size: .8rem; }
.final { font-size: 1.15rem; }
"""
)


def write_report(playbook):
    """Writes ``playbook.html`` for `playbook` (a `kp.Playbook`, run or loaded); returns its path."""
    directory = playbook.directory
    decisions = playbook.decisions
    links = {}
    for name in _studies(directory, playbook.run_settings()):
        links[name] = _study_report(os.path.join(directory, name))
    result = playbook.result
    page = _html(playbook, decisions, result, links)
    path = os.path.join(directory, REPORT_FILE)
    files.write_text(path, page)
    return path


def _studies(directory, settings):
    """The run's study folders, in the order they were started."""
    return [
        name for name in settings if os.path.exists(os.path.join(directory, name, "oracle.json"))
    ]


def _study_report(study_dir):
    """The study's ``report.html`` (exported when missing or older than the study's records)."""
    report = os.path.join(study_dir, "report.html")
    records = [
        os.path.join(study_dir, "oracle.json"),
        os.path.join(study_dir, layout.REPLICATES_FILE),
    ]
    newest = max((os.path.getmtime(p) for p in records if os.path.exists(p)), default=0)
    if not os.path.exists(report) or os.path.getmtime(report) < newest:
        Study.load(study_dir).export(formats=("html",))
    return report


def _html(playbook, decisions, result, links):
    e = html.escape
    directory = playbook.directory
    name = os.path.basename(os.path.normpath(directory))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>kplaybook playbook: {e(name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Playbook {e(name)}</h1>",
        f'<p class="muted">Objective {e(playbook.objective)} ({e(playbook.direction)}); '
        f"{playbook.trials_used()} of {playbook.max_trials} trainings used; "
        f"{len(playbook.goals)} goals: "
        + e("; ".join(f"{g.name} ({', '.join(g.scientific)})" for g in playbook.goals))
        + ". The loop is the playbook's "
        f'<a href="{e(url("incremental_tuning"))}">scientific approach to improving model '
        "performance</a>.</p>",
        "<h2>Final configuration</h2>",
    ]
    parts.extend(_final(result, playbook))
    parts.append("<h2>Caveats</h2>")
    caveats = result.caveats if result is not None else []
    if caveats:
        parts.append('<ul id="caveats">' + "".join(f"<li>{e(c)}</li>" for c in caveats) + "</ul>")
    else:
        parts.append('<ul id="caveats"><li>None recorded.</li></ul>')
    parts.append(f"<h2>Timeline ({len(decisions)} decisions)</h2>")
    parts.append('<ol class="timeline" id="timeline">')
    for index, d in enumerate(decisions):
        study_name = os.path.basename(os.path.normpath(d.study)) if d.study else None
        link = ""
        if study_name in links:
            rel = os.path.relpath(links[study_name], directory)
            link = f' <a class="study" href="{e(rel)}">study {e(study_name)}</a>'
        reference = d.evidence.get("reference")
        ref = f' <a class="ref" href="{e(reference)}">playbook</a>' if reference else ""
        evidence = {k: v for k, v in d.evidence.items() if k not in ("reference", "table")}
        parts.append(
            f'<li class="{e(d.action)}" id="decision-{index}">'
            f'<span class="stage">{e(d.stage)}</span> '
            f'<span class="action" title="{e(ACTIONS.get(d.action, ""))}">{e(d.action)}</span>'
            f'<p class="reason">{e(d.reason)}{link}{ref}</p>'
            f"<details><summary>evidence</summary><pre>{e(_pretty(evidence))}</pre></details></li>"
        )
    parts.append("</ol>")
    if result is not None:
        figure = result.plot()
        data = base64.b64encode(study_report.png_bytes(figure)).decode("ascii")
        parts.append(
            '<h2>Stages</h2><figure id="plot-stages"><img alt="best objective per stage" '
            f'src="data:image/png;base64,{data}"><figcaption>The best {e(playbook.objective)} '
            "each stage's study reached (one trial each: the maximum of noisy runs), and the final "
            "replicate mean.</figcaption></figure>"
        )
    if links:
        parts.append('<h2>Studies</h2><ul id="studies">')
        for study_name, path in links.items():
            rel = os.path.relpath(path, directory)
            settings = playbook.run_settings().get(study_name, {})
            parts.append(
                f'<li><a href="{e(rel)}">{e(study_name)}</a> '
                f'<span class="muted">{e(_settings(settings))}</span></li>'
            )
        parts.append("</ul>")
    parts += [
        f'<p class="muted">Written by kplaybook on '
        f"{e(datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'))}; the run's "
        f"record is {e(os.path.basename(playbook.path))}.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _final(result, playbook):
    e = html.escape
    if not isinstance(result, PlaybookResult):
        return [
            '<p id="final" class="final">The run has not finished: the timeline shows the '
            "decisions taken so far; run the same script again to resume it.</p>"
        ]
    if result.best_value is not None and math.isfinite(result.best_value):
        headline = (
            f"{e(playbook.objective)} = {result.best_value:.4g} ± {result.best_std:.2g} "
            f"(mean ± std over {sum(v is not None and math.isfinite(v) for v in result.replicates)} "
            "seeds)"
        )
    else:
        headline = "every final replicate diverged"
    frame = pd.DataFrame(
        [{"hyperparameter": k, "value": v} for k, v in result.best_hyperparameters.items()]
    )
    return [
        f'<p id="final" class="final">{headline}</p>',
        f'<p class="muted">Trains with {e(_settings(result.settings))}.</p>',
        study_report.frame_html(frame, "final-configuration"),
    ]


def _settings(settings):
    if not settings:
        return ""
    parts = [f"{settings.get('epochs')} epochs", f"batch size {settings.get('batch_size')}"]
    if settings.get("warmup_steps"):
        parts.append(f"warmup {settings['warmup_steps']} steps")
    if settings.get("clipping"):
        parts.append("gradient clipping at the 90th percentile")
    return ", ".join(parts)


def _pretty(evidence):
    return json.dumps(files.json_safe(evidence), indent=1, default=str)[:6000]
