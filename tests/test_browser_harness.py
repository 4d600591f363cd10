"""The headless-Chromium harness (tests/browser.py) can both pass and fail a report."""

import base64
import io

import browser
import matplotlib.image
import pytest
from browser import open_report
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def chromium():
    """Skip without Chromium and chromedriver, fail instead when CI=true."""
    browser.require_chromium()


def real_png() -> bytes:
    """A real matplotlib (Agg) line plot as PNG bytes."""
    figure = Figure(figsize=(4, 3), dpi=72)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot([0, 1, 2, 3], [3, 1, 2, 0], marker="o")
    axes.set_title("val_loss")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_page(path, body, title="report"):
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body>{body}</body></html>",
        encoding="utf-8",
    )
    return path


def test_good_report_loads_every_image_and_the_findings_table(chromium, tmp_path):
    png = real_png()
    assert png.startswith(PNG_SIGNATURE)
    image = base64.b64encode(png).decode("ascii")
    page = write_page(
        tmp_path / "good.html",
        f"<h1>Findings</h1><img alt='plot' src='data:image/png;base64,{image}'>"
        "<table id='findings'><thead><tr><th>hyperparameter</th><th>verdict</th></tr></thead>"
        "<tbody><tr><td>learning_rate</td><td>edge of range</td></tr>"
        "<tr><td>units</td><td>fine</td></tr></tbody></table>",
        title="good report",
    )
    shot = tmp_path / "good.png"

    result = open_report(page, shot)

    assert result["title"] == "good report"
    assert result["images"] == 1
    assert result["images_loaded"] == 1
    assert result["broken_images"] == []
    assert result["tables"] == {"findings": 2}
    assert "learning_rate" in result["text"]
    assert result["network_requests"] == []
    assert result["seconds"] < 60

    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    pixels = matplotlib.image.imread(shot)
    height, width = pixels.shape[:2]
    assert 600 <= width <= 1400
    assert 200 <= height <= 16000
    # Not a blank page: the screenshot has more than one colour.
    assert pixels.reshape(-1, pixels.shape[-1]).std(axis=0).max() > 0.01


def test_broken_image_and_missing_table_are_reported(chromium, tmp_path):
    page = write_page(
        tmp_path / "broken.html",
        "<h1>No findings</h1><img alt='broken' src='data:image/png;base64,AAAA'>",
        title="broken report",
    )
    shot = tmp_path / "broken.png"

    result = open_report(page, shot)

    assert result["images"] == 1
    assert result["images_loaded"] == 0
    assert result["broken_images"] == ["data:image/png;base64,AAAA"]
    assert "findings" not in result["tables"]
    assert result["network_requests"] == []
    assert shot.read_bytes().startswith(PNG_SIGNATURE)


def test_missing_chromium_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.setattr(browser, "chromium_available", lambda: False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium-driver"):
        browser.require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="chromium-driver"):
        browser.require_chromium()
