"""The HTML report: content, escaping, no network, decimation (no browser here)."""

from __future__ import annotations

import json
import math
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from verify_samples import HOSTILE, HOSTILE_ATTR, token_rows_result, verify_result

import parity.report.html as html_module
from parity.errors import ParityError
from parity.report.html import MAX_PLOT_POINTS, IndexEntry, render_html, render_index_html

URL_ATTRS = {"src", "href", "srcset", "action", "formaction", "poster", "data", "xlink:href", "background", "manifest", "ping"}


class _Page(HTMLParser):
    """Collects elements, attributes, script bodies and style text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in: tuple[str, dict[str, str | None]] | None = None
        self._buf: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._in, self._buf = (tag, dict(attrs)), []

    def handle_endtag(self, tag):
        if self._in and tag == self._in[0]:
            body = "".join(self._buf)
            (self.scripts.append((self._in[1], body)) if tag == "script" else self.styles.append(body))
            self._in = None

    def handle_data(self, data):
        (self._buf if self._in else self.text).append(data)


def parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    return p


def json_script(page: _Page, element_id: str):
    body = next(b for attrs, b in page.scripts if attrs.get("id") == element_id)
    return json.loads(body)


@pytest.fixture(scope="module")
def hostile_page() -> str:
    return render_html(verify_result(40, hostile=True))


def test_verdict_is_at_the_top_in_plain_words():
    page = render_html(verify_result(40))
    assert page.index("FAIL: the model on B does not behave like the reference on A.") < page.index("id='layer-plot'")
    assert "Layer outputs diverge from the reference." in page
    assert "PASS: the model on B behaves like the reference on A." in render_html(verify_result(10, diverge_at=None))


def test_hostile_names_are_escaped_everywhere(hostile_page):
    page = parse(hostile_page)
    # Exactly our four scripts: result JSON, plot JSON, plotly.js, the plot code.
    assert len(page.scripts) == 4
    assert [a.get("id") for a, _ in page.scripts[:2]] == ["parity-result", "parity-plot-data"]
    assert not any(k.startswith("on") for _, attrs in page.tags for k in attrs)
    text = "".join(page.text)
    # The hostile strings are shown as text (layer key, file, package, message, record path).
    assert text.count(HOSTILE) >= 5
    assert HOSTILE_ATTR in text


def test_hostile_names_survive_the_embedded_json(hostile_page):
    page = parse(hostile_page)
    for _, body in page.scripts[:2]:
        assert "</" not in body and "<!--" not in body
    result = json_script(page, "parity-result")
    assert result["layers"][1]["key"] == f"{HOSTILE}#0/out"
    plot = json_script(page, "parity-plot-data")
    assert any("&lt;script&gt;" in h for h in plot["hover"])  # plotly renders entities as text


def test_plotly_code_cannot_close_its_script_early(hostile_page):
    code = parse(hostile_page).scripts[2][1]
    assert "Plotly" in code and len(code) > 1_000_000
    assert not re.search(r"</script", code, re.IGNORECASE)


def _absolute(url: str) -> bool:
    url = url.strip().lower()
    if url.startswith("//"):
        return True
    scheme = re.match(r"([a-z][a-z0-9+.-]*):", url)
    return bool(scheme) and scheme.group(1) not in ("data", "blob", "about", "javascript")


def _css_urls(css: str) -> list[str]:
    urls = re.findall(r"url\(\s*['\"]?([^'\")]*)", css, flags=re.IGNORECASE)
    return urls + re.findall(r"@import\s+(?:url\()?\s*['\"]?([^'\");]+)", css, flags=re.IGNORECASE)


def _script_url_literals(js: str) -> list[str]:
    """Literal URLs handed to something that fetches at view time (window.open on a
    click is a navigation the user asks for, not a fetch, and is not counted)."""
    calls = r"(?:fetch|importScripts|import|Worker|SharedWorker|EventSource|WebSocket|sendBeacon)\(\s*"
    xhr = r"\.open\(\s*['\"](?:GET|POST|PUT|HEAD)['\"]\s*,\s*"
    return re.findall(f"(?:{calls}|{xhr})" + r"['\"`]([^'\"`]+)", js)


def test_no_url_a_browser_would_fetch(hostile_page):
    page = parse(hostile_page)
    urls = [v for _, attrs in page.tags for k, v in attrs.items() if k in URL_ATTRS and v]
    urls += [u for css in page.styles for u in _css_urls(css)]
    urls += [u for _, attrs in page.tags for u in _css_urls(attrs.get("style") or "")]
    urls += [u for _, js in page.scripts for u in _css_urls(js) + _script_url_literals(js)]
    assert urls, "the URL scan found nothing at all: it is not looking"  # plotly.js has data: URLs
    assert [u for u in urls if _absolute(u)] == []
    assert not any(tag in ("link", "iframe", "img", "object", "embed", "base") for tag, _ in page.tags)


def test_content_security_policy_forbids_fetching(hostile_page):
    meta = [a for t, a in parse(hostile_page).tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert meta and "default-src 'none'" in (meta[0]["content"] or "")
    assert "connect-src 'none'" in (meta[0]["content"] or "")


def test_every_layer_plotted_when_few(hostile_page):
    page = parse(hostile_page)
    plot = json_script(page, "parity-plot-data")
    assert len(plot["x"]) == 40
    div = next(a for t, a in page.tags if a.get("id") == "layer-plot")
    assert div["data-layers-total"] == "40" and div["data-layers-plotted"] == "40"


def test_2000_layers_are_decimated_keeping_the_worst_and_the_marks():
    result = verify_result(2000, diverge_at=1234)
    result["layers"][777]["metrics"]["max_abs"] = 0.5  # a lone spike must not be averaged away
    page = parse(render_html(result))
    plot = json_script(page, "parity-plot-data")
    div = next(a for t, a in page.tags if a.get("id") == "layer-plot")
    assert div["data-layers-total"] == "2000"
    assert int(div["data-layers-plotted"]) == len(plot["x"]) == MAX_PLOT_POINTS
    assert 777 in plot["x"] and max(v for v in plot["max_abs"] if v is not None) == max(
        layer["metrics"]["max_abs"] for layer in result["layers"])
    assert {m["field"]: m["x"] for m in plot["marks"]} == {"first_divergent_layer": 1234, "first_introducing_layer": 1234}
    assert plot["x"] == sorted(plot["x"])


def test_log_axis_values_are_drawable():
    result = verify_result(10)
    result["layers"][3]["metrics"]["max_abs"] = math.nan
    result["layers"][4]["metrics"]["max_abs"] = math.inf
    result["layers"][5]["metrics"] = None
    page = parse(render_html(result))
    plot = json_script(page, "parity-plot-data")  # strict JSON: NaN would not parse in a browser
    assert plot["max_abs"][0] > 0  # exact zero sits on the floor of the log axis
    assert plot["max_abs"][3] == plot["max_abs"][4] == 1e30 and plot["max_abs"][5] is None
    assert json_script(page, "parity-result")["layers"][3]["metrics"]["max_abs"] == "nan"


def test_first_divergent_stage_highlighted_and_token_rows_side_by_side():
    page_text = render_html(token_rows_result())
    assert "<tr class='first' data-stage='preprocess'>" in page_text
    # the differing id (position 1) is highlighted on both sides, the others are not
    assert page_text.count("class='tok diff'") == 2
    assert "<span class='tok diff'>7592</span>" in page_text and "<span class='tok diff'>1</span>" in page_text
    assert "<b>preprocess</b> stage, before the model runs" in page_text


def test_env_diff_ranked_and_findings_shown():
    page = render_html(verify_result(40))
    assert page.index("<code>numpy</code>") < page.index("<code>tokenizers</code>")  # high before medium
    assert "training-mode" in page and "encoder.layer.6.op0.weight" in page
    assert "Predicted classes agree on 75.0% of inputs." in page


def test_performance_rendered_when_present():
    result = verify_result(10)
    assert "No benchmark in this comparison" in render_html(result)
    result["performance"] = {
        "schema": "parity.bench_comparison/1", "verdict": "regression", "reason": "model stage 2.5x slower",
        "regression": True, "max_slowdown": 0.1,
        "stages": [{"stage": "model", "baseline_p50": 0.010, "current_p50": 0.025, "ratio": 2.5, "ci": [2.3, 2.7],
                    "verdict": "slower", "regression": True, "noisy": False}],
        "attribution": [{"name": HOSTILE, "risk": "high", "a": "1", "b": "2", "touches_slower_stage": ["model"]}],
        "baseline": {"env": {"packages": {"secret-huge-snapshot": {}}}}, "current": {}, "warnings": ["few samples"],
    }
    page = render_html(result)
    assert "No benchmark" not in page and "model stage 2.5x slower" in page
    assert "<td>10 ms</td><td>25 ms</td><td>2.50x</td><td>2.30–2.70</td>" in page
    markup = page.split("<script", 1)[0]  # the full result is embedded as JSON below; the page shows less
    assert "Warning: few samples" in markup and "secret-huge-snapshot" not in markup
    assert HOSTILE not in page.split("id='performance'")[1].split("<script")[0]  # escaped there too


def test_no_layers_says_why():
    result = verify_result(10)
    result["layers"] = []
    page = render_html(result)
    assert "data-layers-plotted='0'" in page and "--capture stats or full" in page


def test_report_needs_no_plotly_python_package(monkeypatch):
    # plotly.js ships inside parity (its basic bundle): the report renders without the
    # plotly Python package, and inlines exactly the shipped file.
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.offline", None)
    page = render_html(verify_result(5))
    shipped = (Path(html_module.__file__).parent / html_module.PLOTLY_JS).read_text(encoding="utf-8")
    assert shipped.startswith("/**\n* plotly.js (basic - minified) v")
    assert "plotly.js (basic - minified)" in page
    assert len(shipped) < 1_500_000


def test_not_a_result_is_a_user_error():
    with pytest.raises(ParityError):
        render_html(["not", "a", "dict"])  # type: ignore[arg-type]


def test_index_page_links_reports_and_escapes():
    page = render_index_html("demo", "intro", [IndexEntry(name="x", title=HOSTILE, description="d", verdict="FAIL",
                                                          expected="FAIL", report="reports/x.html", reason=HOSTILE)])
    parsed = parse(page)
    assert parsed.scripts == []
    assert ("a", {"href": "reports/x.html"}) in parsed.tags
    assert "".join(parsed.text).count(HOSTILE) == 2


def test_summary_says_where_the_first_divergent_stage_sits():
    result = verify_result(10, diverge_at=None)
    result.update(verdict="FAIL", first_divergent_stage="postprocess")
    assert "<b>postprocess</b> stage, after the model, in post-processing" in render_html(result)


def _summary(page: str) -> str:
    return page[page.index("<section id='summary'>"):page.index("</section>", page.index("<section id='summary'>"))]


def test_probable_cause_is_the_first_thing_parity_found():
    cause = {"kind": "asset", "summary": f"tokenizer_config.json changed {HOSTILE}", "subject": "m/tokenizer_config.json",
             "confidence": "high", "evidence": ["asset m/tokenizer_config.json changed"], "fix": "use A's file",
             "checked": ["asset files: 7 compared by sha256, 2 differ"]}
    r = verify_result(40)
    r["probable_cause"] = cause
    summary = _summary(render_html(r))
    items = parse(summary)
    first_li = summary.index("<li>")
    assert summary.index("Probable cause") < summary.index("<li>", first_li + 1)
    assert "tokenizer_config.json changed &lt;script&gt;" in summary and HOSTILE not in summary
    assert "(confidence: high)" in summary and "Checked: asset files: 7 compared by sha256, 2 differ" in summary
    assert any(a.get("id") == "probable-cause" and a.get("data-kind") == "asset" for _, a in items.tags)
    assert summary.index("Probable cause") < summary.index("The first difference is at the")
    assert "Probable cause" not in _summary(render_html(verify_result(40)))


def test_containers_of_the_introducing_layer_are_marked_containing():
    r = verify_result(40)
    key = r["first_introducing_layer"]
    r["layers"][26].update(introduced=None, contains=key, module="encoder.layer.6")
    page = render_html(r)
    table = page[page.index("Layers out of tolerance"):]
    row = next(x for x in table.split("<tr") if f"<td>{r['layers'][26]['key']}" in x.replace("<code>", "")
               .replace("</code>", ""))
    assert f"contains <code>{key}</code>" in row and "<td>yes</td>" not in row
    hover = json_script(parse(page), "parity-plot-data")["hover"][26]
    assert "contains" in hover and "which introduces the error" in hover


def test_weights_unknown_is_said_not_same():
    r = verify_result(10, diverge_at=None)
    r["assets"] = {"files": [], "params": [], "weights_compared": False,
                   "note": "weights not compared (record lists none); stages and layers still are"}
    page = render_html(r)
    section = page[page.index("<section id='assets'>"):]
    assert "No asset or weight differences" not in section
    assert "Weights not compared (record lists none); stages and layers still are." in section
