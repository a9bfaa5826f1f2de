"""The environment count agrees between the verify headline, the terminal table and the
HTML report, when the differences have mixed risks (issue 13: "counts that agree between
headline, table and 'and N more'")."""

from __future__ import annotations

import io
import re
from typing import Any

from rich.console import Console

from parity.comparison.result import WARN, VerifyResult, decide_verdict
from parity.report.html import render_html
from parity.report.terminal import verify_report


def _item(risk: str, category: str, name: str, a: str, b: str) -> dict[str, Any]:
    return {"risk": risk, "category": category, "name": name, "a": a, "b": b, "reason": "r", "stages": []}


#: 3 high-risk packages, a package the risk table does not know, a low-risk env var, a
#: high-risk runtime item (judged as a runtime finding): 6 differences, 3 that warn.
ITEMS = [_item("high", "package", "numpy", "2.4.6", "2.3.5"),
         _item("high", "package", "transformers", "5.23.0", "5.22.2"),
         _item("high", "package", "tokenizers", "0.23.3", "0.23.2"),
         _item("high", "runtime", "torch.num_threads", "16", "8"),
         _item("low", "package", "textprep", "1.0", "1.1"),
         _item("low", "env_var", "LANG", "C", "C.UTF-8")]


def _result(items: list[dict[str, Any]]) -> dict[str, Any]:
    r = VerifyResult(a={"record": "golden"}, b={"record": None, "target": "serving.py:build"}, capture="stats",
                     env_diff={"identical": False, "items": items})
    decide_verdict(r)
    return r.to_json()


def _terminal(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(verify_report(doc))
    return " ".join(buf.getvalue().split())


def test_headline_counts_every_difference_the_table_lists_and_says_how_many_warn() -> None:
    doc = _result(ITEMS)
    assert doc["verdict"] == WARN
    said = re.findall(r"differs in (\d+) place", doc["reason"] + " ".join(doc["warnings"]))
    assert said and set(said) == {"6"}, doc["reason"]
    assert "3 of them high-risk (runtime state and package sources aside)" in doc["reason"]
    text = _terminal(doc)
    head = text[: text.find("Environment:")]
    assert set(re.findall(r"differs in (\d+) place", head)) == {"6"}, head
    assert "Environment: 6 difference(s)" in text
    page = render_html(doc)
    assert set(re.findall(r"differs in (\d+) place", page)) == {"6"}
    assert "Environment (ranked, 6 differences)" in page and "6 environment difference(s), 4 high-risk" in page


def test_mixed_high_and_medium_are_named_and_equal_counts_need_no_split() -> None:
    medium = _item("medium", "package", "scipy", "1.15", "1.16")
    doc = _result([ITEMS[0], medium, ITEMS[5]])
    assert "differs in 3 place(s), 2 of them high-risk or medium-risk, e.g. numpy" in doc["reason"]
    assert "aside" not in doc["reason"]
    doc = _result([ITEMS[0], medium])
    assert "differs in 2 place(s), e.g. numpy 2.4.6 -> 2.3.5." in doc["reason"]


def test_and_n_more_adds_up_to_the_headline_count() -> None:
    items = [_item("high", "package", f"pkg{i}", "1", "2") for i in range(14)]
    text = _terminal(_result(items))
    assert "differs in 14 place(s), e.g. pkg0" in text and "Environment: 14 difference(s)" in text
    more = re.search(r"and (\d+) more", text)
    assert more and 10 + int(more.group(1)) == 14, text
