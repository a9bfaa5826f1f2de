"""Building the C++ runner: what it links, how it is cached, and a clear exit 2 without a compiler.
None of these tests compiles anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from runner_testing import TINY

from parity.runner import RunnerError, build, runner_format


def test_missing_compiler_named_by_cxx_exits_2_before_exporting(run_cli, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("PARITY_CACHE_DIR", str(tmp_path / "cache"))  # nothing built yet
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    out = tmp_path / "tiny.pt"
    code, stdout, err = run_cli("export", TINY, "--format", "torchscript", "-o", out, "--check-cpp")
    assert code == 2 and stdout == ""
    assert "the C++ runner needs a C++ compiler" in err and "no-such-g++" in err and "is not a program" in err
    assert "fix: set CXX" in err
    assert not out.exists()  # refused before the export spent its time


def test_no_compiler_on_path_says_what_to_install(run_cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PARITY_CACHE_DIR", str(tmp_path / "cache"))  # nothing built yet
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no g++, c++ or clang++
    with pytest.raises(RunnerError) as caught:
        build.executable()
    assert "needs a C++ compiler and none was found" in str(caught.value)
    assert "install g++" in (caught.value.fix or "")
    artifact = tmp_path / "model.pt"
    artifact.write_bytes(b"the compiler is looked for before the artifact is read")
    code, stdout, err = run_cli("bench", artifact, "--runner", "cpp")
    assert code == 2 and stdout == "" and "none was found" in err
    code, stdout, err = run_cli("bench", TINY, "--runner", "cpp")
    assert code == 2 and "not an exported artifact" in err and "parity export" in err


def test_links_libtorch_without_libtorch_python_and_with_the_wheels_abi(tmp_path: Path) -> None:
    import torch

    lib = build.libtorch()
    argv = build.command(["g++"], lib, tmp_path / "runner")
    assert {"-ltorch", "-ltorch_cpu", "-lc10"} <= set(argv)
    assert not any("python" in a for a in argv if a.startswith("-l"))
    assert f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}" in argv
    assert f"-Wl,-rpath,{lib.lib_dir}" in argv and str(build.SOURCE) in argv
    assert (lib.include_dirs[0] / "torch" / "script.h").is_file()
    assert (lib.include_dirs[0] / "torch" / "csrc" / "inductor" / "aoti_package" / "model_package_loader.h").is_file()


def test_cache_key_follows_torch_version_abi_and_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lib = build.libtorch()
    key = build.build_key(lib)
    assert key == build.build_key(lib)
    other_torch = build.Libtorch(lib.root, lib.version + ".other", lib.cxx11_abi)
    other_abi = build.Libtorch(lib.root, lib.version, not lib.cxx11_abi)
    edited = tmp_path / "runner.cpp"
    edited.write_bytes(build.SOURCE.read_bytes() + b"\n// edited\n")
    keys = {key, build.build_key(other_torch), build.build_key(other_abi)}
    monkeypatch.setattr(build, "SOURCE", edited)
    keys.add(build.build_key(lib))
    assert len(keys) == 4


def test_a_cached_runner_needs_no_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PARITY_CACHE_DIR", str(tmp_path))
    cached = build.cache_dir() / f"parity-runner-{build.build_key(build.libtorch())}"
    cached.parent.mkdir(parents=True)
    cached.write_text("#!/bin/sh\n")
    cached.chmod(0o755)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    assert build.executable() == cached


def test_cache_honours_parity_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PARITY_CACHE_DIR", str(tmp_path))
    assert build.cache_dir() == tmp_path / "runner"


def test_runner_refuses_formats_it_does_not_load(tmp_path: Path, run_cli) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not really onnx")
    with pytest.raises(RunnerError, match="loads TorchScript and AOTInductor artifacts, not ONNX"):
        runner_format(onnx)
    with pytest.raises(RunnerError, match="no such file"):
        runner_format(tmp_path / "missing.pt")
    code, _, err = run_cli("export", TINY, "--format", "onnx", "-o", tmp_path / "t.onnx", "--check-cpp")
    assert code == 2 and "--check-cpp: the C++ runner loads torchscript and aoti artifacts, not onnx" in err
    assert not (tmp_path / "t.onnx").exists()


def test_the_source_ships_with_the_package() -> None:
    assert build.SOURCE.is_file() and build.SOURCE.suffix == ".cpp"
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert '"**/*.cpp"' in pyproject.read_text()
    assert os.access(build.SOURCE, os.R_OK)


_FAKE_CXX = r"""#!/bin/sh
# a stand-in compiler: counts its runs, takes its time, writes the -o file
echo run >> "$COUNT"
sleep 1
while [ "$#" -gt 0 ]; do
  if [ "$1" = "-o" ]; then printf '#!/bin/sh\n' > "$2"; fi
  shift
done
"""

_FIRST_USE = """
from parity.runner.build import executable
print(executable())
"""


@pytest.mark.slow  # three fresh interpreters import torch
def test_concurrent_first_uses_build_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import subprocess
    import sys

    fake = tmp_path / "fake-g++"
    fake.write_text(_FAKE_CXX)
    fake.chmod(0o755)
    env = {**os.environ, "CXX": str(fake), "COUNT": str(tmp_path / "count"),
           "PARITY_CACHE_DIR": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", _FIRST_USE], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    paths = {out.strip() for out, _ in outs}
    assert len(paths) == 1 and Path(paths.pop()).is_file()
    assert (tmp_path / "count").read_text().count("run") == 1  # one compile, the others waited for it
    leftovers = [p.name for p in (tmp_path / "cache" / "runner").iterdir() if p.name.startswith(".parity-runner-")]
    assert leftovers == []


def test_a_failed_compile_exits_2_with_the_compilers_error(run_cli, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    fake = tmp_path / "broken-g++"
    fake.write_text("#!/bin/sh\necho 'runner.cpp:1:1: error: this compiler is too old' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    monkeypatch.setenv("PARITY_CACHE_DIR", str(tmp_path / "cache"))
    code, stdout, err = run_cli("export", TINY, "--format", "torchscript", "-o", tmp_path / "t.pt", "--check-cpp")
    assert code == 2 and stdout == ""
    assert "could not build parity's runner" in err and "this compiler is too old" in err
    built = [p.name for p in (tmp_path / "cache" / "runner").iterdir() if p.suffix != ".lock"]
    assert built == []  # neither a runner nor a temporary file is left
