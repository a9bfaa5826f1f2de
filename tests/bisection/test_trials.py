"""Trial environments: overlay planning, caching, release listing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tinywheels import build_wheel

from parity.bisection.trials import (
    IndexOptions,
    Installer,
    InstallError,
    TrialBuilder,
    TrialEnv,
    find_installer,
    releases_between,
    releases_in_folders,
)
from parity.errors import BisectError


class FailingInstaller(Installer):
    """Writes a file, then fails: the half-built trial must not stay in the cache."""

    name = "failing"

    def install_target(self, python, target, reqs, index) -> None:
        (target / "half.txt").write_text("half")
        raise InstallError("no such version")


def _builder(tmp_path: Path, base: dict, installer: Installer | None = None) -> TrialBuilder:
    return TrialBuilder(Path(sys.executable), base, IndexOptions(), tmp_path / "cache",
                        installer or FailingInstaller(), lambda wanted: [])


def test_overlay_holds_only_what_the_base_lacks(tmp_path: Path) -> None:
    builder = _builder(tmp_path, {"torch": "2.13.0+cpu", "tok": "1.0", "new": None})
    wanted = {"torch": "2.13.0+cpu", "tok": "2.0", "new": "0.1"}
    assert builder.overlay_requirements(wanted) == ["new==0.1", "tok==2.0"]
    assert builder.needs_venv(wanted) is None


def test_absent_package_needs_a_venv(tmp_path: Path) -> None:
    builder = _builder(tmp_path, {"gone": "1.0", "never": None})
    assert "gone" in (builder.needs_venv({"gone": None, "never": None}) or "")
    assert builder.needs_venv({"never": None}) is None


def test_nothing_to_install_is_the_base_itself(tmp_path: Path) -> None:
    env = _builder(tmp_path, {"tok": "1.0"}).build({"tok": "1.0"})
    assert env.mode == "base" and env.path is None


def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    builder = _builder(tmp_path, {"tok": "1.0"})
    with pytest.raises(InstallError):
        builder.build({"tok": "9.9"})
    assert list((tmp_path / "cache").iterdir()) == []


def test_overlay_env_puts_the_trial_first_on_the_import_path(tmp_path: Path) -> None:
    env = TrialEnv("overlay", Path("/py/bin/python"), tmp_path / "ov")
    environ = env.environ({"PATH": "/usr/bin", "PYTHONPATH": "/mine"})
    assert environ["PYTHONPATH"].split(":") == [str(tmp_path / "ov"), "/mine"]
    assert environ["PATH"].startswith("/py/bin:")


def test_index_options_are_passed_verbatim() -> None:
    index = IndexOptions(("/w",), "https://idx.invalid/simple", ("https://extra.invalid/simple",), True)
    assert index.args() == ["--find-links", "/w", "--index-url", "https://idx.invalid/simple",
                            "--extra-index-url", "https://extra.invalid/simple", "--no-index"]
    assert IndexOptions().args() == []


def test_missing_find_links_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BisectError, match="--find-links"):
        IndexOptions((str(tmp_path / "nope"),)).check()


def test_releases_in_find_links_folder(tmp_path: Path) -> None:
    for v in ("1.0", "1.1", "1.2rc1"):
        build_wheel(tmp_path, "my-tok", v)
    build_wheel(tmp_path, "other", "5.0")
    (tmp_path / "my_tok-1.3.tar.gz").write_bytes(b"")
    assert releases_in_folders("My.Tok", [str(tmp_path)]) == {"1.0", "1.1", "1.2rc1", "1.3"}


def test_releases_between_leaves_out_prereleases_and_orders_from_the_good_side() -> None:
    found = {"1.0", "1.1", "1.2rc1", "1.2", "1.3.dev0", "1.4", "2.0", "junk"}
    assert releases_between(found, "1.0", "1.4") == ["1.1", "1.2"]
    assert releases_between(found, "2.0", "1.0") == ["1.4", "1.2", "1.1"]


def test_pip_installer_is_used_when_asked(tmp_path: Path) -> None:
    installer = find_installer(Path(sys.executable), prefer="pip")
    assert installer.name == "pip"
