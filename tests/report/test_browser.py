"""The HTML report in a real headless Chromium: it renders, plots, says its verdict,
fetches nothing and logs no error. Skipped (with the reason) where Debian's chromium
is not installed; CI installs it (.ci/run)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from chromium_cdp import CHROMIUM, FLAGS, Browser, chromium_available
from verify_samples import HOSTILE, token_rows_result, verify_result

from parity.report.html import MAX_PLOT_POINTS, render_html

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not chromium_available(), reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); CI does"),
]

PLOT_READY = "document.body.getAttribute('data-plot-ready')"
RENDERED = "document.getElementById('layer-plot').getAttribute('data-rendered-points')"
SVG_POINTS = "document.querySelectorAll('#layer-plot .scatterlayer .trace')[0].querySelectorAll('.points path').length"
VERDICT = "document.getElementById('verdict-text').textContent"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    with Browser(tmp_path_factory.mktemp("chromium")) as b:
        yield b


def open_report(browser: Browser, path: Path, result: dict) -> None:
    path.write_text(render_html(result), encoding="utf-8")
    browser.open(path.as_uri())
    browser.wait_for(PLOT_READY)


def assert_clean(browser: Browser, path: Path) -> None:
    """No console error, no dialog (an injected alert() would open one), nothing fetched."""
    assert browser.console_errors() == []
    assert not [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]
    assert set(browser.requested_urls()) <= {path.as_uri()}


def test_large_hostile_report_renders_in_chromium(browser, tmp_path):
    path = tmp_path / "report.html"
    open_report(browser, path, verify_result(2000, diverge_at=1500, hostile=True))
    assert browser.evaluate(VERDICT) == "FAIL: the model on B does not behave like the reference on A."
    assert browser.evaluate(RENDERED) == str(MAX_PLOT_POINTS)
    assert browser.evaluate(SVG_POINTS) == MAX_PLOT_POINTS
    assert browser.evaluate("document.getElementById('layer-plot').dataset.layersTotal") == "2000"
    # Hostile names are on the page as text, not as elements.
    assert HOSTILE in browser.evaluate("document.body.innerText")
    assert browser.evaluate("document.scripts.length") == 4
    assert_clean(browser, path)
    shot = browser.screenshot(tmp_path / "report.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_hover_shows_key_type_shape_and_metrics(browser, tmp_path):
    path = tmp_path / "hover.html"
    open_report(browser, path, verify_result(40, diverge_at=25))
    browser.evaluate("Plotly.Fx.hover(document.getElementById('layer-plot'), [{curveNumber: 0, pointNumber: 25}])")
    text = browser.wait_for("(document.querySelector('#layer-plot .hovertext') || {}).textContent")
    for part in ("encoder.layer.6.op1#0/out", "GELU", "2×16×64", "max_abs", "rel_l2", "introduces the error"):
        assert part in text
    assert_clean(browser, path)


def test_pass_report_and_token_rows_in_chromium(browser, tmp_path):
    path = tmp_path / "pass.html"
    open_report(browser, path, verify_result(12, diverge_at=None))
    assert browser.evaluate(VERDICT) == "PASS: the model on B behaves like the reference on A."
    assert browser.evaluate(RENDERED) == "12"
    assert_clean(browser, path)
    path = tmp_path / "tokens.html"
    open_report(browser, path, token_rows_result())
    assert browser.evaluate("document.querySelector('tr.first').dataset.stage") == "preprocess"
    assert browser.evaluate("document.querySelectorAll('.tok.diff').length") == 2
    assert_clean(browser, path)


def test_demo_reports_in_chromium(browser, tmp_path):
    """The reports `parity demo` writes from real verify results, and their index page."""
    import json

    from parity.demo import run_demo

    demo = run_demo(tmp_path / "demo")
    for scenario in demo.scenarios:
        result = json.loads(scenario.result_json.read_text())
        browser.open(scenario.report.as_uri())
        browser.wait_for(PLOT_READY)
        assert browser.evaluate("document.getElementById('verdict').dataset.verdict") == scenario.expected
        assert browser.evaluate(RENDERED) == str(len(result["layers"])) != "0"
        assert browser.evaluate(SVG_POINTS) == len(result["layers"])
        assert_clean(browser, scenario.report)
        browser.screenshot(tmp_path / f"{scenario.name}.png")
    browser.open(demo.index.as_uri())
    links = browser.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.href)")
    assert sorted(links) == sorted(s.report.as_uri() for s in demo.scenarios)
    assert_clean(browser, demo.index)


def screenshot_run(page: Path, tmp_path: Path, name: str) -> tuple[Path, list[str]]:
    """Chromium's own --screenshot mode, console captured with --enable-logging=stderr."""
    shot = tmp_path / f"{name}.png"
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / ('profile-' + name)}", "--enable-logging=stderr", "--v=0",
         "--window-size=1280,1800", "--virtual-time-budget=20000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return shot, re.findall(r":CONSOLE[^\]]*\] (.*)", proc.stderr)


def test_screenshot_mode_logs_nothing_on_the_console(tmp_path):
    control = tmp_path / "control.html"
    control.write_text("<html><body><script>console.error('control-error')</script></body></html>")
    _, lines = screenshot_run(control, tmp_path, "control")
    assert any("control-error" in line for line in lines)  # the console capture works
    page = tmp_path / "report.html"
    page.write_text(render_html(verify_result(300, diverge_at=120, hostile=True)), encoding="utf-8")
    shot, lines = screenshot_run(page, tmp_path, "report")
    assert lines == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
