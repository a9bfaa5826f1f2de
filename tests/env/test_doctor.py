"""parity doctor: every finding on a corpus, with exact codes and lines; index checks; CLI."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from parity.env.doctor import (
    CODES,
    IndexProbe,
    PipIndexProbe,
    ProbeResult,
    doctor,
    index_options,
    interpret_pip_output,
)
from parity.env.requirements import parse_requirements

sys.path.insert(0, str(Path(__file__).parent))
from wheelhouse import make_simple_index, make_wheel

DATA = Path(__file__).parent / "data" / "requirements"
FINDINGS = DATA / "findings"
SNAPSHOT = DATA / "snapshot_research.json"


def _lines(report, *, skip: Sequence[str] = ("PD012",)) -> list[tuple[str, str, int | None]]:
    """(code, file name, line) of every finding, in report order."""
    return [
        (f.code, Path(f.location.file).name, f.location.line)
        for f in report.findings
        if f.code not in skip
    ]


# --- the corpus: one family of findings per file, exact codes and lines ---------------------------------

WITHOUT_SNAPSHOT = {
    "pd001_unparsable.txt": [
        ("PD001", "pd001_unparsable.txt", 2),
        ("PD001", "pd001_unparsable.txt", 3),
        ("PD001", "pd001_unparsable.txt", 4),
        ("PD001", "pd001_unparsable.txt", 5),
        ("PD001", "pd001_unparsable.txt", 6),
        ("PD001", "pd001_unparsable.txt", 7),
    ],
    "pd002_remote_include.txt": [("PD002", "pd002_remote_include.txt", 1)],
    "pd010_unpinned.txt": [
        ("PD010", "pd010_unpinned.txt", 1),
        ("PD011", "pd010_unpinned.txt", 2),
        ("PD011", "pd010_unpinned.txt", 3),
        ("PD011", "pd010_unpinned.txt", 4),
        ("PD011", "pd010_unpinned.txt", 5),  # "==2.*" is a range, not a pin
    ],
    "pd020_local_label.txt": [
        ("PD020", "pd020_local_label.txt", 1),
        ("PD020", "pd020_local_label.txt", 2),
    ],
    "pd020_served.txt": [],
    "pd030_nightly.txt": [
        ("PD030", "pd030_nightly.txt", 1),
        ("PD031", "pd030_nightly.txt", 2),
        ("PD032", "pd030_nightly.txt", 3),
        ("PD010", "pd030_nightly.txt", 3),
        ("PD030", "pd030_nightly.txt", 4),
        ("PD032", "pd030_nightly.txt", 4),
        ("PD011", "pd030_nightly.txt", 5),
        ("PD031", "pd030_nightly.txt", 5),
        ("PD033", "pd030_nightly.txt", 6),
    ],
    "pd040_sources.txt": [
        ("PD040", "pd040_sources.txt", 1),
        ("PD040", "pd040_sources.txt", 2),
        ("PD040", "pd040_sources.txt", 3),
        ("PD041", "pd040_sources.txt", 5),
        ("PD042", "pd040_sources.txt", 7),
        ("PD043", "pd040_sources.txt", 8),
    ],
    "pd044_hash_mode.txt": [
        ("PD044", "pd044_hash_mode.txt", 3),
        ("PD044", "pd044_hash_mode.txt", 4),
        ("PD011", "pd044_hash_mode.txt", 4),
        ("PD044", "pd044_hash_mode.txt", 5),
        ("PD043", "pd044_hash_mode.txt", 5),
    ],
    "pd060_base.txt": [
        ("PD011", "pd060_base.txt", 2),
        ("PD060", "pd060_extra.txt", 1),
        ("PD011", "pd060_extra.txt", 2),
        ("PD061", "pd060_extra.txt", 2),
        # scipy<1.11 (line 4) is no PD011: the constraints file pins scipy, in conflict
        ("PD060", "pd060_constraints.txt", 1),
    ],
}


@pytest.mark.parametrize("name", sorted(WITHOUT_SNAPSHOT))
def test_corpus_findings_have_exact_codes_and_lines(name):
    report = doctor(FINDINGS / name)
    assert _lines(report) == WITHOUT_SNAPSHOT[name]
    errors = any(code for code, _, _ in WITHOUT_SNAPSHOT[name] if CODES[code][0] == "error")
    assert report.ok is not errors


def test_snapshot_findings_have_exact_codes_and_lines():
    report = doctor(FINDINGS / "pd050_snapshot.txt", snapshot=SNAPSHOT)
    assert _lines(report) == [
        ("PD050", "pd050_snapshot.txt", 2),  # numpy==1.24.0, snapshot 1.26.4
        ("PD051", "pd050_snapshot.txt", 3),  # torch==2.1.0, snapshot 2.1.0+cu118
        ("PD050", "pd050_snapshot.txt", 4),  # tokenizers<0.14, snapshot 0.15.0
        ("PD011", "pd050_snapshot.txt", 4),
        ("PD011", "pd050_snapshot.txt", 5),
        (
            "PD052",
            "pd050_snapshot.txt",
            6,
        ),  # pandas: not installed; pywin32 (win32 only) is skipped
        ("PD050", "pd050_constraints.txt", 1),  # a constraint disagrees too
    ]
    assert not report.ok


def test_every_code_in_the_table_is_exercised_by_the_corpus():
    seen = {code for lines in WITHOUT_SNAPSHOT.values() for code, _, _ in lines}
    seen |= {"PD012", "PD050", "PD051", "PD052", "PD070", "PD071", "PD072"}  # tested below
    assert seen == set(CODES)


def test_fix_gives_the_exact_pin_from_the_snapshot():
    report = doctor(FINDINGS / "pd010_unpinned.txt", snapshot=SNAPSHOT)
    fixes = {f.package: f.fix for f in report.findings if f.code in ("PD010", "PD011")}
    assert "numpy==1.26.4" in fixes["numpy"]
    assert "torch==2.1.0+cu118" in fixes["torch"]
    assert "serves +cu118 builds" in fixes["torch"]  # the file names no index for the variant
    assert "the snapshot has no scipy" in fixes["scipy"]


def test_unmentioned_packages_are_ranked_by_the_risk_table():
    report = doctor(FINDINGS / "pd010_unpinned.txt", snapshot=SNAPSHOT)
    unmentioned = [(f.package, f.severity) for f in report.findings if f.code == "PD012"]
    # high risk first (warning), then medium (info), then the low-risk rest in one line;
    # pip (installer tooling) and our-app (editable: the project itself) are left out
    assert unmentioned == [
        ("nvidia-cublas-cu11", "warning"),
        ("tokenizers", "warning"),
        ("transformers", "warning"),
        ("regex", "info"),
        (None, "info"),
    ]
    rest = [f for f in report.findings if f.code == "PD012"][-1]
    assert (
        "filelock==3.13.1, huggingface-hub==0.19.4, tqdm==4.66.1, vcs-lib==1.0.0, wheel-file==2.0"
        in rest.message
    )
    assert all(f.location.line is None for f in report.findings if f.code == "PD012")


def test_constraint_pin_satisfies_an_unversioned_requirement(tmp_path):
    (tmp_path / "constraints.txt").write_text("numpy==1.26.4\n")
    (tmp_path / "requirements.txt").write_text("numpy\n-c constraints.txt\n")
    assert doctor(tmp_path / "requirements.txt").findings == []


def test_vcs_commit_disagreeing_with_the_snapshot(tmp_path):
    other = "f" * 40
    (tmp_path / "requirements.txt").write_text(
        f"vcs-lib @ git+https://git.example.invalid/org/vcs-lib.git@{other}\n"
    )
    report = doctor(tmp_path / "requirements.txt", snapshot=SNAPSHOT)
    assert [(f.code, f.location.line) for f in report.findings if f.code != "PD012"] == [
        ("PD050", 1)
    ]
    assert "0123456789abcdef0123456789abcdef01234567" in report.findings[0].fix


# --- files shaped like real projects -------------------------------------------------------------------


def _vision_snapshot() -> dict:
    snap = copy.deepcopy(json.loads(SNAPSHOT.read_text()))
    base = {
        "local": None,
        "installer": "pip",
        "requested": True,
        "direct_url": None,
        "editable": False,
        "vcs": None,
        "variant": None,
    }
    versions = {
        "torch": "2.1.0+cpu", "torchvision": "0.16.0+cpu", "opencv-python-headless": "4.8.1.78", "numpy": "1.26.4",
        "pillow": "10.1.0", "albumentations": "1.3.1", "timm": "0.9.12", "pyyaml": "6.0.1", "scipy": "1.11.4",
        "scikit-image": "0.22.0", "qudida": "0.0.4", "pip": "23.3.1",
    }  # fmt: skip
    snap["packages"] = {name: {**base, "name": name, "version": v} for name, v in versions.items()}
    return snap


def test_vision_repo_with_opencv_and_torchvision_ranges():
    report = doctor(DATA / "vision" / "requirements.txt", snapshot=_vision_snapshot())
    assert _lines(report) == [
        ("PD011", "requirements.txt", 2),
        ("PD011", "requirements.txt", 3),
        ("PD011", "requirements.txt", 4),
        ("PD011", "requirements.txt", 5),
        ("PD010", "requirements.txt", 9),
    ]
    fixes = {f.package: f.fix for f in report.findings}
    assert "torchvision==0.16.0+cpu" in fixes["torchvision"]
    assert "opencv-python-headless==4.8.1.78" in fixes["opencv-python-headless"]
    assert [(f.package, f.severity) for f in report.findings if f.code == "PD012"] == [
        ("scikit-image", "info"),
        ("scipy", "info"),
        (None, "info"),  # qudida: low risk
    ]
    assert report.ok  # ranges are warnings: the file installs, just not reproducibly


def test_transformers_service_with_includes_and_an_extra_index():
    report = doctor(DATA / "transformers_service" / "requirements.txt", snapshot=SNAPSHOT)
    assert _lines(report, skip=("PD012", "PD052")) == [
        ("PD011", "requirements.txt", 6),
        ("PD011", "base.txt", 4),
        ("PD050", "constraints.txt", 1),  # numpy==1.26.2 constrained, 1.26.4 ran
    ]
    # torch==2.1.0+cu118 is served by the file's --extra-index-url: no PD020; numpy is
    # unversioned in base.txt but pinned by the -c constraints file: no PD010
    assert [p.name for p in report.files] == ["requirements.txt", "base.txt", "constraints.txt"]
    assert [f.package for f in report.findings if f.code == "PD012"] == [
        "nvidia-cublas-cu11",
        "tokenizers",
        "regex",
        None,
    ]


# --- against the index: a fake probe (fast) and real pip (slow) --------------------------------------------


class FakeProbe(IndexProbe):
    """Answers from a table; records what it was asked."""

    def __init__(self, answers: dict[str, ProbeResult]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def probe(self, requirement: str, options: Sequence[str]) -> ProbeResult:
        self.asked.append((requirement, tuple(options)))
        return self.answers.get(requirement, ProbeResult("served"))


def _index_file(tmp_path: Path) -> Path:
    (tmp_path / "wheels").mkdir()
    path = tmp_path / "requirements.txt"
    path.write_text(
        "--find-links wheels\n--extra-index-url https://extra.example.invalid/simple\n"
        'ok==1.0\ngone==2.0\nyanked==3.0\nrange>=1\nwin==1.0 ; sys_platform == "nonexistent"\n'
    )
    return path


def test_check_index_reports_missing_and_yanked_pins(tmp_path):
    probe = FakeProbe(
        {
            "gone==2.0": ProbeResult("missing", "available: 1.0"),
            "yanked==3.0": ProbeResult("yanked", "broken"),
        }
    )
    report = doctor(_index_file(tmp_path), check_index=True, index_probe=probe)
    assert [(c, n) for c, _, n in _lines(report, skip=("PD011",))] == [("PD070", 4), ("PD071", 5)]
    assert sorted(r for r, _ in probe.asked) == [
        "gone==2.0",
        "ok==1.0",
        "yanked==3.0",
    ]  # ranges and other platforms are not asked
    options = probe.asked[0][1]
    assert options == (
        "--find-links",
        str(tmp_path / "wheels"),
        "--extra-index-url",
        "https://extra.example.invalid/simple",
    )


def test_unreachable_index_gives_one_could_not_check_finding(tmp_path):
    probe = FakeProbe({"ok==1.0": ProbeResult("unknown", "Failed to establish a new connection")})
    report = doctor(_index_file(tmp_path), check_index=True, index_probe=probe)
    pd072 = [f for f in report.findings if f.code == "PD072"]
    assert len(pd072) == 1 and pd072[0].severity == "warning"
    assert "could not check 3 pin(s)" in pd072[0].message
    assert len(probe.asked) == 1
    assert report.ok


def test_index_options_resolve_find_links_and_env_vars_like_pip(tmp_path, monkeypatch):
    path = _index_file(tmp_path)
    assert index_options(parse_requirements(path))[:2] == ["--find-links", str(tmp_path / "wheels")]
    monkeypatch.setenv("PARITY_TEST_TOKEN", "s3cret")
    path.write_text(
        "--extra-index-url https://${PARITY_TEST_TOKEN}@i.example.invalid/simple\n--index-url ${UNSET_PARITY_VAR}\n"
    )
    reqs = parse_requirements(path)
    assert index_options(reqs) == [
        "--extra-index-url",
        "https://s3cret@i.example.invalid/simple",
        "--index-url",
        "${UNSET_PARITY_VAR}",
    ]
    assert "s3cret" not in json.dumps(doctor(path).to_json())  # reports keep the line as written


@pytest.mark.parametrize(
    ("rc", "output", "expected"),
    [
        (0, "Would install ok-1.0\n", ProbeResult("served")),
        (0, "WARNING: The candidate selected for download or install is a yanked version: 'x' candidate (version 1.0 at f)\nReason for being yanked: broken wheel\nWould install x-1.0", ProbeResult("yanked", "broken wheel")),
        (1, "ERROR: Could not find a version that satisfies the requirement x==3.0 (from versions: 1.0, 2.0)\nERROR: No matching distribution found for x==3.0", ProbeResult("missing", "available: 1.0, 2.0")),
        (1, "WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError('<c>: Failed to establish a new connection: [Errno 111] Connection refused')': /simple/x/\nERROR: No matching distribution found for x==1.0", ProbeResult("unknown", "Failed to establish a new connection: [Errno 111] Connection refused")),
        (1, "/usr/bin/python: No module named pip", ProbeResult("unknown", "pip is not installed in this interpreter")),
    ],
)  # fmt: skip
def test_interpret_pip_output(rc, output, expected):
    assert interpret_pip_output(rc, output) == expected


@pytest.mark.slow
def test_real_pip_against_a_local_index_with_a_yanked_release(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # only the file's own index counts here
    wheels = [make_wheel(tmp_path / "files", "tinyidx", v) for v in ("1.0", "2.0")]
    url = make_simple_index(
        tmp_path / "index", wheels, {"tinyidx-1.0-py3-none-any.whl": "broken build"}
    )
    path = tmp_path / "requirements.txt"
    path.write_text(
        f"--index-url {url}\ntinyidx==1.0\ntinyidx==2.0 ; python_version > '3'\ntinyidx==9.0 ; python_version > '2'\n"
    )
    report = doctor(path, check_index=True)
    got = [(f.code, f.location.line) for f in report.findings if f.code.startswith("PD07")]
    assert got == [("PD071", 2), ("PD070", 4)]
    assert (
        "broken build" in report.findings[[f.code for f in report.findings].index("PD071")].message
    )


@pytest.mark.slow
def test_real_pip_with_an_unreachable_index_cannot_check(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    path = tmp_path / "requirements.txt"
    # a closed local port: connection refused at once, no outside network involved
    path.write_text("--index-url http://127.0.0.1:9/simple/\ntinyidx==1.0\n")
    report = doctor(path, check_index=True, index_probe=PipIndexProbe(timeout=120))
    assert [(f.code, f.severity) for f in report.findings] == [("PD072", "warning")]


# --- the command ---------------------------------------------------------------------------------------------


def test_cli_exit_1_on_error_findings_and_text_output(run_cli):
    code, out, err = run_cli("doctor", FINDINGS / "pd020_local_label.txt")
    assert code == 1
    assert "pd020_local_label.txt:1: error PD020 torch==2.1.0+cu118" in out
    assert "fix: add the --extra-index-url" in out
    assert err == ""


def test_cli_exit_0_on_warnings_only(run_cli):
    code, out, _ = run_cli("doctor", FINDINGS / "pd010_unpinned.txt")
    assert code == 0
    assert "0 error(s), 5 warning(s)" in out


def test_cli_json_is_one_document(run_cli):
    code, out, _ = run_cli(
        "doctor", FINDINGS / "pd050_snapshot.txt", "--snapshot", SNAPSHOT, "--json"
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["schema"] == "parity.doctor/1"
    assert doc["ok"] is False and doc["snapshot_used"] is True
    first = doc["findings"][0]
    assert {k: first[k] for k in ("code", "severity", "line", "package")} == {
        "code": "PD050",
        "severity": "error",
        "line": 2,
        "package": "numpy",
    }
    assert first["fix"].startswith("numpy==1.26.4")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("binary.txt", "binary.txt:3: binary file"),
        ("latin1.txt", "latin1.txt:2: not valid utf-8"),
        ("missing_include.txt", "missing_include.txt:3: "),
        ("cycle_a.txt", "cycle_b.txt:3: include cycle"),
    ],
)
def test_cli_unreadable_file_exits_2_naming_file_and_line(run_cli, name, expected):
    code, out, err = run_cli("doctor", DATA / "bad" / name)
    assert code == 2
    assert out == ""
    assert expected in err
    assert "fix:" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_missing_file_and_bad_snapshot_exit_2(run_cli, tmp_path):
    code, _, err = run_cli("doctor", tmp_path / "nope.txt")
    assert (code, "nope.txt: no such file" in err) == (2, True)
    bad = tmp_path / "snap.json"
    bad.write_text("{not json")
    code, _, err = run_cli("doctor", FINDINGS / "pd010_unpinned.txt", "--snapshot", bad)
    assert code == 2
    assert "snap.json" in err and "Traceback" not in err


def test_variant_pin_served_by_the_users_pip_configuration_is_a_warning():
    report = doctor(FINDINGS / "pd020_local_label.txt", check_index=True, index_probe=FakeProbe({}))
    assert [(f.code, f.severity, f.location.line) for f in report.findings] == [
        ("PD020", "warning", 1),
        ("PD020", "warning", 2),
    ]
    assert "your pip configuration serves it" in report.findings[0].message
    assert report.ok


@pytest.mark.slow
def test_real_pip_checks_many_pins_in_one_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    wheels = [
        make_wheel(tmp_path / "files", name, "1.0")
        for name in ("tiny-one", "tiny-two", "tiny-three", "tiny-four")
    ]
    url = make_simple_index(
        tmp_path / "index", wheels, {"tiny_three-1.0-py3-none-any.whl": "bad metadata"}
    )
    pins = ["tiny-one==1.0", "tiny-two==5.0", "tiny-three==1.0", "tiny-four==7.0"]
    answers = PipIndexProbe().probe_many(pins, ["--index-url", url])
    assert {p: r.status for p, r in answers.items()} == {
        "tiny-one==1.0": "served",
        "tiny-two==5.0": "missing",
        "tiny-three==1.0": "yanked",
        "tiny-four==7.0": "missing",
    }
    assert answers["tiny-two==5.0"].detail == "available: 1.0"
    assert answers["tiny-three==1.0"].detail == "bad metadata"


# --- the README section ---------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def _readme_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## Requirements doctor and lock\n")
    end = text.find("\n## ", start + 10)
    return text[start : end if end != -1 else None]


def test_readme_table_lists_every_code_with_its_severity():
    rows = [
        line.split("|")[1:4] for line in _readme_section().splitlines() if line.startswith("| PD")
    ]
    table = {code.strip(): severity.strip() for code, severity, _ in rows}
    assert set(table) == set(CODES)
    for code, (severity, _) in CODES.items():
        assert table[code].startswith(severity), code


def test_readme_commands_run_as_written(tmp_path):
    (tmp_path / "tests").symlink_to(REPO / "tests", target_is_directory=True)
    block = _readme_section().split("```bash\n", 1)[1].split("```", 1)[0]
    codes = []
    for command in [line for line in block.splitlines() if line.strip()]:
        assert command.startswith("parity ")
        args = command.split()[1:]
        proc = subprocess.run(
            [sys.executable, "-m", "parity", *args], cwd=tmp_path, capture_output=True, text=True
        )
        assert "Traceback" not in proc.stderr
        codes.append(proc.returncode)
    assert codes == [1, 0]  # the doctor finds PD050, as the README says
    assert "numpy==1.26.4" in (tmp_path / "research.lock").read_text().splitlines()


def test_wheel_url_version_disagreeing_with_the_snapshot(tmp_path):
    url = "https://files.example.invalid/pkgs/wheel_file-1.0-py3-none-any.whl#sha256=" + "6" * 64
    (tmp_path / "requirements.txt").write_text(f"wheel-file @ {url}\n")
    report = doctor(tmp_path / "requirements.txt", snapshot=SNAPSHOT)
    assert [(f.code, f.location.line) for f in report.findings if f.code != "PD012"] == [
        ("PD050", 1)
    ]


# --- PD020's fix from the snapshot's recorded package sources ------------------------------------------------

CPU_INDEX = "https://index.example.invalid/whl/cu118"


def _snapshot_with_sources(pip: dict) -> dict:
    snap = json.loads(SNAPSHOT.read_text())
    empty: dict[str, Any] = {"index_url": None, "extra_index_urls": [], "find_links": [], "no_index": None,
             "trusted_hosts": [], "files": [], "errors": []}  # fmt: skip
    snap["package_sources"] = {"pip": {**empty, **pip}, "uv": dict(empty)}
    return snap


def _pd020_fixes(snap) -> list[str]:
    report = doctor(FINDINGS / "pd020_local_label.txt", snapshot=snap)
    return [f.fix for f in report.findings if f.code == "PD020"]


def test_pd020_fix_is_the_exact_option_lines_the_snapshot_recorded():
    snap = _snapshot_with_sources({
        "extra_index_urls": [{"value": CPU_INDEX, "source": "PIP_EXTRA_INDEX_URL"}],
        "find_links": [{"value": "file:///srv/wheels", "source": "/etc/pip.conf [install]"}],
        "index_url": {"value": "file:///mirror", "source": "PIP_INDEX_URL"},  # a main index serves no +label
    })
    fixes = _pd020_fixes(snap)
    assert len(fixes) == 2
    for fix in fixes:
        assert f"--extra-index-url {CPU_INDEX} (from PIP_EXTRA_INDEX_URL)" in fix
        assert "--find-links file:///srv/wheels (from /etc/pip.conf [install])" in fix
        assert "--index-url" not in fix


def test_pd020_fix_with_masked_credentials_says_to_supply_them_outside_the_file():
    masked = "https://***@index.example.invalid/whl/cu118"
    (fix, _) = _pd020_fixes(_snapshot_with_sources({"extra_index_urls": [{"value": masked, "source": "/root/.pip/pip.conf [global]"}]}))
    assert masked in fix and "PIP_EXTRA_INDEX_URL" in fix and "masked" in fix


def test_pd020_fix_without_a_serving_source_says_parity_does_not_guess():
    (fix, _) = _pd020_fixes(_snapshot_with_sources({"index_url": {"value": "file:///mirror", "source": "PIP_INDEX_URL"}}))
    assert "names none either" in fix and "does not guess hosts" in fix and "file:///mirror" not in fix
    (old, _) = _pd020_fixes(json.loads(SNAPSHOT.read_text()))  # a snapshot from before package_sources
    assert "does not guess hosts" in old and "names none" not in old
