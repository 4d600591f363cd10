"""examples/colab_quickstart.ipynb: committed clean, and executed offline end to end.

The run injects a cell after the parameter cell (as papermill does) that turns the
install off and shrinks the study to digits, 2 trials per depth and 2 epochs, then
executes every cell in a real Jupyter kernel with nbclient.
"""

import html
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import kplaybook as kp

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "colab_quickstart.ipynb"


def read_notebook():
    return nbformat.read(NOTEBOOK, as_version=nbformat.NO_CONVERT)


def cell(notebook, cell_id):
    (found,) = [c for c in notebook.cells if c.get("id") == cell_id]
    return found


def text_of(code_cell):
    """Everything a code cell printed (stdout, stderr and text results)."""
    parts = []
    for output in code_cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "text/plain" in output.get("data", {}):
            parts.append(output.data["text/plain"])
    return "".join(parts)


def test_committed_notebook_is_valid_with_outputs_cleared():
    notebook = read_notebook()
    assert notebook.nbformat == 4
    nbformat.validate(notebook)
    for code_cell in (c for c in notebook.cells if c.cell_type == "code"):
        assert code_cell.outputs == [] and code_cell.execution_count is None, code_cell.id
    parameters = cell(notebook, "parameters")
    assert parameters.metadata.tags == ["parameters"]
    for line in (
        "INSTALL = True",
        'KPLAYBOOK_SOURCE = "git+https://github.com/<owner>/kplaybook"',
        'DATASET = "mnist"',
    ):
        assert line in parameters.source
    # The public playbook, by section title; never this repository's PLAYBOOK.md.
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "https://github.com/google-research/tuning_playbook" in markdown
    assert "PLAYBOOK.md" not in NOTEBOOK.read_text()


@pytest.mark.slow
def test_notebook_runs_offline_on_digits(tmp_path):
    notebook = read_notebook()
    study_dir = tmp_path / "studies"
    overrides = nbformat.v4.new_code_cell(
        "\n".join(
            [
                "INSTALL = False",
                'DATASET = "digits"',
                "TRIALS_PER_STUDY = 2",
                "EPOCHS = 2",
                "BATCH_SIZE = 64",
                f"STUDY_DIR = {str(study_dir)!r}",
            ]
        ),
        id="injected-parameters",
        metadata={"tags": ["injected-parameters"]},
    )
    notebook.cells.insert(notebook.cells.index(cell(notebook, "parameters")) + 1, overrides)
    # Which Python ran the kernel: it must be this environment's (ipykernel's "python3").
    notebook.cells.append(
        nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)", id="kernel-prefix")
    )

    NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()

    for code_cell in (c for c in notebook.cells if c.cell_type == "code"):
        assert all(o.output_type != "error" for o in code_cell.outputs), code_cell.id
    assert text_of(cell(notebook, "kernel-prefix")).strip() == sys.prefix
    assert re.search(r"^(GPU: |No GPU: )", text_of(cell(notebook, "setup")), re.M)
    assert "digits: 1438 training and 359 validation examples, 64 features, 10 classes" in text_of(
        cell(notebook, "data")
    )

    study = kp.Study.load(study_dir / "depth_digits")
    assert study.status_counts()["completed"] == 6
    findings = study.check()
    assert findings  # 2 trials per depth is too few: at least sampling_density
    printed = text_of(cell(notebook, "check"))
    for finding in findings:
        assert f"[{finding.severity}] {finding.code}: {finding.message}" in printed
        assert f"-> {finding.recommendation}" in printed

    figures = [o for o in cell(notebook, "plots").outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 2

    report_path = study_dir / "depth_digits" / "report.html"
    report = report_path.read_text(encoding="utf-8")
    assert f"Report: {report_path}" in text_of(cell(notebook, "report"))
    report_outputs = cell(notebook, "report").outputs
    assert not [o for o in report_outputs if o.get("name") == "stderr"]  # no warning either
    (shown,) = [o for o in report_outputs if "text/html" in o.get("data", {})]
    srcdoc = re.fullmatch(
        r'<div><iframe srcdoc="([^"]*)".*</iframe></div>', shown.data["text/html"], re.S
    )
    inline = html.unescape(srcdoc.group(1))
    assert inline == report
    assert '<table id="findings">' in inline
    for finding in findings:
        assert html.escape(finding.message) in inline
