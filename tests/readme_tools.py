"""Reading the README's sections and running their commands (shared by the README tests)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The README text from heading ``title`` to the next ``## `` heading."""
    start = README.index(title + "\n")
    nxt = README.find("\n## ", start + len(title))
    return README[start: nxt if nxt != -1 else None]


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.DOTALL)


def parity_env(folder: Path) -> dict[str, str]:
    """An environment whose ``parity`` on PATH is this interpreter's parity.

    KMP_DUPLICATE_LIB_OK is what a parent that imported threadpoolctl hands its
    children; set here so README tests see it whether they run alone or in the suite.
    """
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "parity"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m parity "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", HF_HUB_OFFLINE="1",
                KMP_DUPLICATE_LIB_OK="True")


def serving_folder(folder: Path, minilm_dir: Path) -> None:
    """The walkthrough's serving.py, with the real MiniLM as assets/model."""
    (serving,) = code_blocks(section("## Your own model"), "python")
    (folder / "serving.py").write_text(serving)
    (folder / "assets").mkdir()
    (folder / "assets" / "model").symlink_to(minilm_dir, target_is_directory=True)


def run(command: str, cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def headings() -> list[str]:
    """The README's section titles (the text after ``## ``)."""
    return re.findall(r"^## (.+)$", README, flags=re.MULTILINE)


def lock_pins(name: str) -> dict[str, str]:
    """``canonical name -> version`` of requirements/<name>'s ``==`` lines, ``-r`` followed."""
    pins: dict[str, str] = {}
    for raw in (REPO / "requirements" / name).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            pins.update(lock_pins(line[3:].strip()))
        elif "==" in line:
            pkg, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", pkg).lower()] = version.strip()
    return pins
