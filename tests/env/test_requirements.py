"""The requirements-file parser: pip's syntax, line numbers, includes, unreadable files."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from parity.env.doctor import doctor
from parity.env.requirements import (
    Location,
    RequirementsFile,
    logical_lines,
    parse_requirements,
)
from parity.errors import RequirementsError

DATA = Path(__file__).parent / "data" / "requirements"


def _by_name(reqs: RequirementsFile) -> dict[str, object]:
    return {r.name: r for r in reqs.requirements if r.name}


# --- the whole syntax -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def everything() -> RequirementsFile:
    return parse_requirements(DATA / "syntax" / "everything.txt")


def test_every_valid_construct_parses_without_problems(everything):
    assert everything.problems == []
    assert [p.name for p in everything.files] == [
        "everything.txt",
        "included.txt",
        "constraints.txt",
    ]


def test_global_options_are_kept_with_their_lines(everything):
    got = [(o.option, o.value, o.location.line) for o in everything.options]
    assert got == [
        ("--index-url", "https://pypi.example.invalid/simple", 2),
        ("--extra-index-url", "https://extra.example.invalid/simple", 3),
        ("--index-url", "https://mirror.example.invalid/simple", 4),
        ("--find-links", "./wheels", 5),
        ("--find-links", "file:///opt/wheels", 6),
        ("--no-index", None, 7),
        ("--trusted-host", "extra.example.invalid", 8),
        ("--pre", None, 9),
        ("--prefer-binary", None, 10),
        ("--only-binary", ":all:", 11),
        ("--no-binary", "somepkg", 12),
    ]


def test_requirement_kinds_names_and_lines(everything):
    got = [(r.name, r.kind, r.location.line, r.editable) for r in everything.requirements]
    assert got == [
        ("numpy", "index", 14, False),
        ("requests", "index", 15, False),
        ("pywin32", "index", 16, False),
        ("torch", "index", 17, False),
        ("django", "index", 20, False),
        ("editable-pkg", "vcs", 21, True),
        (None, "path", 22, True),
        ("repo", "vcs", 23, False),
        ("proj", "vcs", 24, False),
        ("archive-pkg", "url", 25, False),
        ("pkg", "path", 26, False),
        ("tokenizers", "index", 1, False),
    ]
    assert everything.requirements[-1].location.file.endswith("included.txt")


def test_continuation_lines_keep_the_first_line_number_and_every_hash(everything):
    torch = _by_name(everything)["torch"]
    assert torch.location.line == 17
    assert torch.pin == "2.1.0+cu118"
    assert torch.hashes == ("sha256:" + "1" * 64, "sha256:" + "2" * 64)


def test_markers_extras_and_specifiers_come_from_packaging(everything):
    reqs = _by_name(everything)
    assert str(reqs["requests"].specifier) == "<3,>=2.31"
    assert reqs["requests"].extras == ("security", "socks")
    assert str(reqs["requests"].marker) == 'python_version >= "3.8"'
    assert reqs["pywin32"].applies_to({"sys_platform": "linux"}) is False
    assert reqs["pywin32"].applies_to({"sys_platform": "win32"}) is True
    assert reqs["django"].pin == "4.2.7"  # "===" arbitrary equality is an exact pin too


def test_vcs_refs_and_url_hashes(everything):
    reqs = _by_name(everything)
    assert reqs["repo"].vcs_ref == "0123456789abcdef0123456789abcdef01234567"
    assert reqs["repo"].is_immutable
    assert reqs["proj"].vcs_ref == "tip"
    assert not reqs["proj"].is_immutable
    assert reqs["editable-pkg"].vcs_ref == "v1.0"
    assert reqs["archive-pkg"].url_hash == "sha256:" + "3" * 64
    assert reqs["archive-pkg"].pin == "2.0"  # the version a wheel's file name carries
    assert reqs["archive-pkg"].is_immutable


def test_includes_and_constraints(everything):
    assert [
        (i.target.endswith(n), i.constraint)
        for i, n in zip(everything.includes, ["included.txt", "constraints.txt"])
    ] == [
        (True, False),
        (True, True),
    ]
    assert [(c.name, str(c.specifier)) for c in everything.constraints] == [("numpy", "<2")]


# --- declared(name): the question parity diff --requirements asks ------------------------------


def _write(tmp_path: Path, text: str, name: str = "requirements.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_declared_says_exact_range_any_url_or_absent(tmp_path):
    path = _write(
        tmp_path,
        "Torch==2.1.0+cpu\nnumpy>=1.21,<2\nrequests\nrepo @ git+https://git.example.invalid/r.git@main\n",
    )
    reqs = parse_requirements(path)
    torch = reqs.declared("torch")
    assert (torch.status, torch.pin, torch.specifier) == ("exact", "2.1.0+cpu", "==2.1.0+cpu")
    assert torch.allows("2.1.0+cpu") is True
    assert torch.allows("2.1.0+cu121") is False
    numpy = reqs.declared("NumPy")
    assert (numpy.status, numpy.pin) == ("range", None)
    assert numpy.allows("1.26.4") is True
    assert numpy.allows("2.0.0") is False
    assert reqs.declared("requests").status == "any"
    assert reqs.declared("requests").allows("0.1") is True
    assert reqs.declared("repo").status == "url"
    assert reqs.declared("repo").allows("1.0") is None
    absent = reqs.declared("tokenizers")
    assert (absent.status, absent.allows("0.15.0"), absent.locations) == ("absent", None, ())
    assert torch.locations == (Location(str(path), 1),)


def test_declared_combines_constraints_and_honours_markers(tmp_path):
    _write(tmp_path, "numpy==1.26.4\n", "constraints.txt")
    path = _write(
        tmp_path,
        'numpy\n-c constraints.txt\ntorch==2.1.0 ; sys_platform == "linux"\ntorch==2.0.0 ; sys_platform == "darwin"\n',
    )
    reqs = parse_requirements(path)
    assert reqs.declared("numpy").status == "exact"
    assert reqs.declared("numpy").pin == "1.26.4"
    assert reqs.declared("torch", {"sys_platform": "linux"}).pin == "2.1.0"
    assert reqs.declared("torch", {"sys_platform": "darwin"}).pin == "2.0.0"
    assert reqs.declared("torch", {"sys_platform": "win32"}).status == "absent"


# --- pip's line rules ------------------------------------------------------------------------------


def test_logical_lines_follow_pips_continuation_and_comment_rules():
    text = "a \\\n  b\n# comment \\\nc\nd \\\n# a comment line ends the continuation\ne # trailing\n\nf#egg=x\n  \t\ng \\"
    assert list(logical_lines(text)) == [
        (1, "a   b"),
        (4, "c"),
        (5, "d"),
        (7, "e"),
        (9, "f#egg=x"),
        (11, "g"),
    ]


def test_unparsable_lines_become_problems_with_their_line(tmp_path):
    path = _write(
        tmp_path,
        "numpy==1.26.4\nnot a requirement\n--frobnicate\n--index-url\nx==1 --hash=md5:ab\n'unclosed\nok==1 --index-url https://i.example.invalid\n",
    )
    reqs = parse_requirements(path)
    assert [p.location.line for p in reqs.problems] == [2, 3, 4, 5, 6, 7]
    assert "must be on a line of its own" in reqs.problems[-1].message
    assert [r.name for r in reqs.requirements] == ["numpy"]


def test_diamond_include_is_read_once(tmp_path):
    _write(tmp_path, "numpy==1.26.4\n", "common.txt")
    _write(tmp_path, "-r common.txt\n", "a.txt")
    _write(tmp_path, "-r common.txt\n", "b.txt")
    reqs = parse_requirements(_write(tmp_path, "-r a.txt\n-r b.txt\n"))
    assert [r.name for r in reqs.requirements] == ["numpy"]


def test_includes_are_relative_to_the_including_file(tmp_path):
    (tmp_path / "deep" / "er").mkdir(parents=True)
    _write(tmp_path / "deep" / "er", "tokenizers==0.15.0\n", "leaf.txt")
    _write(tmp_path / "deep", "-r er/leaf.txt\n", "mid.txt")
    reqs = parse_requirements(
        _write(
            tmp_path, f"-r deep/mid.txt\n-c {(tmp_path / 'deep' / 'er' / 'leaf.txt').as_uri()}\n"
        )
    )
    assert [(r.name, r.constraint) for r in reqs.requirements + reqs.constraints] == [
        ("tokenizers", False),
        ("tokenizers", True),
    ]


def test_utf16_with_bom_is_read(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "numpy==1.26.4\n".encode("utf-16-le"))
    assert [r.name for r in parse_requirements(path).requirements] == ["numpy"]


# --- unreadable files: RequirementsError naming file and line --------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("binary.txt", "binary.txt:3: binary file"),  # the first NUL follows two newlines
        ("latin1.txt", "latin1.txt:2: not valid utf-8"),
        ("missing_include.txt", "missing_include.txt:3: "),
        ("cycle_a.txt", "cycle_b.txt:3: include cycle"),
    ],
)
def test_unreadable_files_name_the_file_and_line(name, expected):
    with pytest.raises(RequirementsError) as info:
        parse_requirements(DATA / "bad" / name)
    assert expected in str(info.value)
    assert info.value.fix


def test_missing_include_names_the_missing_file():
    with pytest.raises(RequirementsError, match=r"does_not_exist\.txt: no such file"):
        parse_requirements(DATA / "bad" / "missing_include.txt")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(RequirementsError, match=r"nope\.txt: no such file"):
        parse_requirements(tmp_path / "nope.txt")
    with pytest.raises(RequirementsError, match="is a directory"):
        parse_requirements(tmp_path)


# --- property: generated and mutated lines never crash the parser ------------------------------------

SEEDS = [
    "numpy==1.26.4",
    "torch>=1.0,<3 ; python_version >= '3.8'",
    "requests[socks]~=2.31",
    "git+https://git.example.invalid/o/r.git@main#egg=r",
    "pkg @ https://files.example.invalid/pkg-1.0.tar.gz",
    "--index-url https://i.example.invalid/simple",
    "--hash=sha256:" + "a" * 64,
    "-e ./src/pkg",
    "--pre",
    "numpy==1.26.4 --hash=sha256:" + "b" * 64,
    "Django===4.2",
]
# Characters str.splitlines() treats as line breaks would shift line numbers; NUL makes
# the file binary. Both are covered by dedicated tests above.
_BREAKS = {c for c in map(chr, range(0x3000)) if len(f"a{c}a".splitlines()) > 1} | {"\x00"}
_CHARS = st.characters(
    blacklist_characters="".join(sorted(_BREAKS)) + "\\", blacklist_categories=("Cs",)
)


@st.composite
def mutated_lines(draw) -> str:
    line = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(line)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(_CHARS)
        if action == "insert":
            line = line[:pos] + char + line[pos:]
        elif action == "delete":
            line = line[:pos] + line[pos + 1 :]
        else:
            line = line[:pos] + char + line[pos + 1 :]
    return line


_LINES = st.one_of(mutated_lines(), st.text(_CHARS, max_size=40)).filter(
    # includes would read other files; those paths have their own tests
    lambda s: not s.lstrip().startswith(("-r", "-c", "--r", "--c"))
)


def _oracle_requirement(line: str):
    """packaging's own verdict on a plain requirement line, or None when the line is
    something else (option, comment, URL, path) that this oracle does not judge."""
    text = line.strip()
    if (
        not text
        or "#" in line
        or text.startswith("-")
        or " -" in text
        or "/" in text
        or "\\" in text
    ):
        return None
    if text.startswith((".", "~")) or ":" in text.split(";")[0]:
        return None
    if text.lower().endswith(
        (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar")
    ):
        return None
    try:
        return Requirement(text)
    except InvalidRequirement:
        return False


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(lines=st.lists(_LINES, min_size=1, max_size=8))
def test_generated_and_mutated_lines_never_crash(tmp_path, lines):
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reqs = parse_requirements(path)  # must not raise: nothing here makes the file unreadable
    report = doctor(path)  # nor may the doctor; every problem is an error finding on its line
    assert sorted(f.location.line for f in report.findings if f.code == "PD001") == sorted(
        p.location.line for p in reqs.problems
    )
    assert all(f.severity == "error" for f in report.findings if f.code == "PD001")
    reported = [r.location.line for r in reqs.requirements + reqs.constraints]
    reported += [o.location.line for o in reqs.options] + [p.location.line for p in reqs.problems]
    assert len(reported) == len(set(reported)), "one result per logical line"
    assert all(1 <= n <= len(lines) for n in reported)
    problems = {p.location.line for p in reqs.problems}
    parsed = {r.location.line: r for r in reqs.requirements}
    for number, line in enumerate(lines, 1):
        verdict = _oracle_requirement(line)
        if verdict is False:
            assert number in problems, (
                f"line {number} {line!r} is not a requirement but was not reported"
            )
        elif verdict is not None:
            assert number in parsed, f"line {number} {line!r} is a requirement but was not parsed"
            assert parsed[number].name == canonicalize_name(verdict.name)
