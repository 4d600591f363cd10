"""Open an HTML report in a real headless Chromium and inspect it.

Used by tests as ``from browser import open_report`` (pytest's default "prepend"
import mode puts ``tests/`` on ``sys.path`` because it has no ``__init__.py``).

Chromium and its driver are Debian's ``chromium`` and ``chromium-driver``
packages. Selenium is always handed both paths, so Selenium Manager never runs
and never tries to download a browser or a driver.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMEDRIVER_NAMES = ("chromedriver",)
DEBIAN_CHROMIUM = "/usr/bin/chromium"
DEBIAN_CHROMEDRIVER = "/usr/bin/chromedriver"

CHROMIUM_FLAGS = (
    "--headless=new",
    # Required as root (and in most containers): Chromium refuses to start sandboxed as root.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)

# URL schemes a self-contained report may load; anything else is a network request.
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
# Chromium's internal pages, whose requests are not the report's.
BROWSER_SCHEMES = ("chrome:", "chrome-untrusted:", "devtools:")

# Everything measured in the page, in one script, after it finished loading.
_INSPECT_JS = """
const imgs = Array.from(document.images);
const broken = imgs
  .filter((img) => !(img.complete && img.naturalWidth > 0))
  .map((img) => (img.getAttribute("src") || "").slice(0, 64));
const tables = {};
Array.from(document.querySelectorAll("table")).forEach((table, n) => {
  // Data rows: rows with at least one <td> (header rows of only <th> are not counted).
  const rows = Array.from(table.rows).filter((row) => row.querySelector(":scope > td"));
  tables[table.id || `table[${n}]`] = rows.length;
});
return {
  title: document.title,
  url: document.URL,
  images: imgs.length,
  images_loaded: imgs.length - broken.length,
  broken_images: broken,
  tables: tables,
  text: document.body ? document.body.innerText : "",
  resources: performance.getEntriesByType("resource").map((e) => e.name),
};
"""

# True once the document and every image settled (loaded or broken).
_SETTLED_JS = """
return document.readyState === "complete"
  && Array.from(document.images).every((img) => img.complete);
"""

# Lazy images outside the viewport would never load (nor be `complete`): load them all.
_EAGER_JS = """
for (const img of document.images) { if (img.loading === "lazy") img.loading = "eager"; }
"""


def _find(explicit: str, names: tuple[str, ...]) -> str | None:
    """The first executable among an explicit path and the names on PATH, or None."""
    if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
        return explicit
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_path() -> str | None:
    """Path of the Chromium browser (Debian's /usr/bin/chromium first), or None."""
    return _find(DEBIAN_CHROMIUM, CHROMIUM_NAMES)


def chromedriver_path() -> str | None:
    """Path of chromedriver (Debian's /usr/bin/chromedriver first), or None."""
    return _find(DEBIAN_CHROMEDRIVER, CHROMEDRIVER_NAMES)


def chromium_available() -> bool:
    """True when Chromium, chromedriver and Selenium are all installed."""
    return (
        _selenium_importable() and chromium_path() is not None and chromedriver_path() is not None
    )


def in_ci() -> bool:
    """True when the CI environment variable says this is a CI run ("true" or "1")."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def require_chromium() -> None:
    """Skip the calling test when Chromium is missing; fail it instead under CI=true.

    CI must never silently skip the browser test, so there a missing browser,
    driver or Selenium is an error.
    """
    if chromium_available():
        return
    missing = [
        name
        for name, ok in (
            ("chromium", chromium_path()),
            ("chromedriver", chromedriver_path()),
            ("selenium", _selenium_importable()),
        )
        if not ok
    ]
    message = (
        f"headless browser test needs {', '.join(missing) or 'chromium'}: install Debian's chromium "
        "and chromium-driver (apt-get install chromium chromium-driver) and "
        "pip install '.[test]' (selenium)"
    )
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def _selenium_importable() -> bool:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return True


def _kill_group(pgid: int | None) -> None:
    """SIGKILL a process group (chromedriver and the Chromium it started), if it still exists."""
    if pgid is None:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _save_screenshot(driver, screenshot_path: Path, max_height: int) -> None:
    """Save a full-page PNG (capped at max_height CSS pixels), or the window if CDP fails."""
    try:
        metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {
            "x": 0,
            "y": 0,
            "width": max(1, int(size["width"])),
            "height": max(1, min(int(size["height"]), max_height)),
            "scale": 1,
        }
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        screenshot_path.write_bytes(base64.b64decode(shot["data"]))
    except Exception:
        if not driver.save_screenshot(str(screenshot_path)):
            raise


def _drain_performance_log(driver) -> None:
    """Empty Chromium's performance log (reading it clears it)."""
    try:
        driver.get_log("performance")
    except Exception:
        pass


def _network_requests(driver, resources: list[str]) -> list[str]:
    """Every URL the page requested (or tried to) that is not file:/data:/blob:/about:."""
    urls = list(resources)
    try:
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") != "Network.requestWillBeSent":
                continue
            params = message["params"]
            # Chromium's own start page (chrome://new-tab-page...) may still be loading.
            if params.get("documentURL", "").startswith(BROWSER_SCHEMES):
                continue
            urls.append(params["request"]["url"])
    except Exception:
        pass  # the performance log is a bonus; resource timing is still there
    remote = []
    for url in urls:
        if not url.startswith(LOCAL_SCHEMES) and url not in remote:
            remote.append(url)
    return remote


def open_report(
    html_path,
    screenshot_path,
    width: int = 1400,
    height: int = 1000,
    timeout: float = 60.0,
    max_screenshot_height: int = 16000,
) -> dict:
    """Open an HTML file in headless Chromium, screenshot it and describe what loaded.

    The file is opened as a ``file://`` URL; the call waits until
    ``document.readyState == "complete"`` and every ``<img>`` is ``complete``
    (loaded or broken), then writes a full-page PNG to ``screenshot_path``
    (capped at ``max_screenshot_height`` CSS pixels; the window is ``width`` x
    ``height``). ``timeout`` bounds the whole call: past it, chromedriver and
    its Chromium are killed and an exception is raised, so a hung browser
    cannot hang pytest.

    Returns a dict:

    - ``title``: document title; ``url``: the file:// URL opened
    - ``images``: number of ``<img>``; ``images_loaded``: those with
      ``complete && naturalWidth > 0``
    - ``broken_images``: the first 64 characters of each broken image's src
    - ``tables``: ``{table id (or "table[n]"): number of data rows}``, a data
      row being a row with at least one ``<td>`` (header-only rows excluded)
    - ``text``: ``document.body.innerText``
    - ``network_requests``: URLs requested that are not file:/data:/blob:/about:
      (from resource timing and Chromium's network log); empty means the page
      opened offline
    - ``console_errors``: SEVERE browser console messages
    - ``seconds``: wall time of the call, browser start and quit included
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    started = time.monotonic()
    html_path = Path(html_path).resolve()
    screenshot_path = Path(screenshot_path)
    if not html_path.is_file():
        raise FileNotFoundError(html_path)
    browser, driver_exe = chromium_path(), chromedriver_path()
    if browser is None or driver_exe is None:
        raise RuntimeError(
            "Chromium or chromedriver not found: install Debian's chromium and chromium-driver"
        )

    profile = tempfile.mkdtemp(prefix="kp-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})

    # chromedriver in its own process group: the watchdog can kill it with its Chromium.
    service = Service(
        executable_path=driver_exe,
        log_output=subprocess.DEVNULL,
        popen_kw={"start_new_session": True},
    )
    fired = threading.Event()

    def group():
        process = getattr(service, "process", None)
        return process.pid if process is not None else None

    def watchdog():
        fired.set()
        _kill_group(group())

    timer = threading.Timer(timeout, watchdog)
    timer.daemon = True
    driver = None
    pgid = None
    try:
        timer.start()
        driver = webdriver.Chrome(service=service, options=options)
        step = max(1.0, timeout - (time.monotonic() - started))
        driver.set_page_load_timeout(step)
        driver.set_script_timeout(step)
        _drain_performance_log(driver)  # forget the start page's own (chrome://) requests
        driver.get(html_path.as_uri())
        driver.execute_script(_EAGER_JS)
        WebDriverWait(driver, step, poll_frequency=0.05).until(
            lambda d: d.execute_script(_SETTLED_JS)
        )
        result = driver.execute_script(_INSPECT_JS)
        _save_screenshot(driver, screenshot_path, max_screenshot_height)
        result["network_requests"] = _network_requests(driver, result.pop("resources"))
        try:
            result["console_errors"] = [
                entry["message"]
                for entry in driver.get_log("browser")
                if entry["level"] == "SEVERE"
            ]
        except Exception:
            result["console_errors"] = []
    except Exception as error:
        if fired.is_set():
            raise TimeoutError(f"headless Chromium took over {timeout} s on {html_path}") from error
        raise
    finally:
        timer.cancel()
        pgid = group()
        if driver is not None:
            # quit() talks to chromedriver, which may be the thing that hung: bound it too.
            quitter = threading.Thread(target=driver.quit, daemon=True)
            quitter.start()
            quitter.join(10)
        _kill_group(pgid)  # a hung chromedriver, or any Chromium child left behind
        try:
            service.stop()  # closes its pipes; the process is gone by now
        except Exception:
            pass
        shutil.rmtree(profile, ignore_errors=True)
    result["seconds"] = round(time.monotonic() - started, 3)
    return result
