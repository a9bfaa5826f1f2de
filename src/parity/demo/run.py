"""``run_demo``: record the embedded model, verify it under each drift, write the reports.

The output folder is laid out so the user can repeat every step by hand::

    DIR/index.html                  one line per scenario, links to the reports
    DIR/reference/                  the record of the reference (machine A)
    DIR/assets/tokenizer*/          tokenizer files (the drifted one has lowercase=false)
    DIR/targets/<scenario>.py       TARGET files: parity verify DIR/reference DIR/targets/x.py
    DIR/reports/<scenario>.html     the HTML report (and .json, the verify result)
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity._io import atomic_write_json, atomic_write_text
from parity._version import __version__
from parity.demo.scenarios import (
    SCENARIOS,
    Scenario,
    build_reference,
    save_tokenizers,
    write_target_file,
)
from parity.errors import ParityError

MARKER = ".parity-demo"
DEFAULT_DIR = "parity-demo"
#: The reference keeps every tensor so the reports can name the layer that introduces an error.
CAPTURE = "full"
#: The demo's tensors are tiny: one thread is fastest, and on a busy machine several
#: threads spin against each other (10x slower); the thread scenario then uses two.
DEMO_THREADS = 1

Progress = Callable[[str], None]


@dataclass
class ScenarioResult:
    """The verdict one drift got, next to the verdict the demo expects of it."""

    name: str
    title: str
    description: str
    expected: str
    verdict: str
    reason: str
    report: Path
    result_json: Path
    first_divergent_stage: str | None
    first_introducing_layer: str | None
    runtime_codes: list[str]
    probable_cause: str | None = None  # verify's probable_cause summary, when it names one

    @property
    def as_expected(self) -> bool:
        return self.verdict == self.expected

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "description": self.description,
            "expected": self.expected, "verdict": self.verdict, "as_expected": self.as_expected,
            "reason": self.reason, "report": str(self.report), "result": str(self.result_json),
            "first_divergent_stage": self.first_divergent_stage,
            "first_introducing_layer": self.first_introducing_layer, "runtime_codes": list(self.runtime_codes),
            "probable_cause": self.probable_cause,
        }


@dataclass
class DemoResult:
    """What ``parity demo`` did. ``ok`` is true when every scenario got its expected verdict."""

    out_dir: Path
    reference: Path
    index: Path
    scenarios: list[ScenarioResult]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(s.as_expected for s in self.scenarios)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "parity.demo/1", "ok": self.ok, "out_dir": str(self.out_dir),
            "reference": str(self.reference), "index": str(self.index), "seconds": self.seconds,
            "scenarios": [s.to_json() for s in self.scenarios],
        }


def run_demo(out_dir: str | Path = DEFAULT_DIR, progress: Progress | None = None) -> DemoResult:
    """Run the whole demo into ``out_dir`` (replacing an earlier demo there).

    Refuses a non-empty folder that is not an earlier demo. If anything fails, the
    folder is removed, so there is never a half-finished demo. ``progress`` receives
    one short line per step (the CLI prints them on stderr).
    """
    out = Path(out_dir)
    say = progress or (lambda _line: None)
    start = time.perf_counter()
    _prepare(out)
    try:
        with _torch_threads(DEMO_THREADS):
            reference = _record_reference(out, say)
            results = [_run_scenario(out, reference, s, say) for s in SCENARIOS]
        index = _write_index(out, results)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return DemoResult(out_dir=out, reference=reference, index=index, scenarios=results,
                      seconds=time.perf_counter() - start)


def _prepare(out: Path) -> None:
    """Make ``out`` an empty folder owned by the demo (an earlier demo there is replaced)."""
    if out.exists() and not out.is_dir():
        raise ParityError(f"{out}: exists and is not a folder", fix="choose another -o DIR")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise ParityError(f"{out}: folder exists and was not written by `parity demo`",
                              fix="choose another -o DIR, or remove that folder first")
        shutil.rmtree(out)
    if not out.parent.is_dir():
        raise ParityError(f"{out.parent}: output folder does not exist", fix="create it or choose another -o DIR")
    out.mkdir(exist_ok=True)
    atomic_write_json(out / MARKER, {"parity_demo": __version__})


def _record_reference(out: Path, say: Progress) -> Path:
    from parity.records import record

    save_tokenizers(out / "assets")
    (out / "targets").mkdir()
    reference = out / "reference"
    target = write_target_file(out / "targets" / "reference.py", build_reference, "tokenizer", None, reference)
    say(f"recording the reference model into {reference} (capture={CAPTURE})")
    record(f"{target}:build", out=reference, capture=CAPTURE, calibrate=True)
    return reference


def _run_scenario(out: Path, reference: Path, scenario: Scenario, say: Progress) -> ScenarioResult:
    from parity.comparison import verify
    from parity.report.html import render_html

    target = write_target_file(out / "targets" / f"{scenario.name}.py", scenario.build, scenario.tokenizer,
                               scenario, reference)
    say(f"verifying: {scenario.title}")
    with _torch_threads(None):
        result = verify(reference, f"{target}:build").to_json()
    result["demo_scenario"] = {"name": scenario.name, "title": scenario.title, "description": scenario.description,
                               "expected": scenario.expected}
    reports = out / "reports"
    reports.mkdir(exist_ok=True)
    result_json = atomic_write_json(reports / f"{scenario.name}.json", result)
    report = atomic_write_text(reports / f"{scenario.name}.html", render_html(result))
    return _scenario_result(scenario, result, report, result_json)


def _cause_summary(result: dict[str, Any]) -> str | None:
    cause = result.get("probable_cause")
    if isinstance(cause, dict) and cause.get("summary") and cause.get("kind") != "unexplained":
        return str(cause["summary"])
    return None


def _scenario_result(scenario: Scenario, result: dict[str, Any], report: Path, result_json: Path) -> ScenarioResult:
    return ScenarioResult(
        name=scenario.name, title=scenario.title, description=scenario.description,
        expected=scenario.expected, verdict=str(result.get("verdict")), reason=str(result.get("reason") or ""),
        report=report, result_json=result_json,
        first_divergent_stage=result.get("first_divergent_stage"),
        first_introducing_layer=result.get("first_introducing_layer"),
        runtime_codes=[str(f.get("code")) for f in result.get("runtime") or []],
        probable_cause=_cause_summary(result),
    )


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads (None: leave as is) and restore the count
    after: a scenario may change it (that is its drift), and so does the demo."""
    import torch

    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        yield
    finally:
        torch.set_num_threads(before)


def _write_index(out: Path, results: list[ScenarioResult]) -> Path:
    from parity.report.html import IndexEntry, render_index_html

    entries = [
        IndexEntry(name=r.name, title=r.title, description=r.description, verdict=r.verdict,
                   expected=r.expected, report=r.report.relative_to(out).as_posix(), reason=r.reason)
        for r in results
    ]
    intro = (f"A small text classifier and its tokenizer, built and seeded in code, were recorded into "
             f"{out / 'reference'} and re-run under each labelled drift below. Open a report to see where "
             f"the difference starts. Verdicts that differ from the expected one mean this machine "
             f"behaves unusually. Re-run one yourself: parity verify {out / 'reference'} "
             f"{out / 'targets' / '<scenario>.py'} --html report.html")
    return atomic_write_text(out / "index.html", render_index_html("parity demo", intro, entries))

