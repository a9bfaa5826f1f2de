"""The stdlib-only collectors, on small fixed inputs."""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

import pytest

from parity.env import _collect, runtime

TORCH_VERSION_PY = """\
from typing import Optional

__all__ = ['__version__', 'debug', 'cuda', 'git_version', 'hip', 'rocm', 'xpu']
__version__ = '2.5.1+cu121'
debug = False
cuda: Optional[str] = '12.1'
git_version = 'a8d6afb511a69687bbb2b7e88a3cf67917e1697e'
hip: Optional[str] = None
"""

CPUINFO_X86 = """\
processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_bf16 amx_tile amx_bf16 ht

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_bf16 amx_tile amx_bf16 ht
"""

CPUINFO_ARM = """\
processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes sha2 crc32 atomics fphp asimdhp asimddp sve sve2 i8mm bf16
CPU implementer\t: 0x41
"""


@pytest.mark.parametrize("module", [_collect, runtime])
def test_collectors_import_only_the_standard_library(module):
    # They run inside a foreign interpreter that has no parity and maybe nothing else.
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    top_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_level |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            top_level.add((node.module or "").split(".")[0])
    assert top_level <= set(sys.stdlib_module_names) | {"__future__"}, top_level


def test_torch_facts_are_read_from_version_py(tmp_path):
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "version.py").write_text(TORCH_VERSION_PY)
    facts = _collect.collect_torch([str(tmp_path)], {})
    assert facts["version"] == "2.5.1+cu121"
    assert facts["cuda"] == "12.1"
    assert facts["hip"] is None
    assert facts["debug"] is False
    assert facts["git_version"].startswith("a8d6afb")
    assert facts["variant"] == "cuda"


def test_no_torch_gives_none(tmp_path):
    assert _collect.collect_torch([str(tmp_path)], {}) is None


@pytest.mark.parametrize(
    ("local", "kind", "detail"),
    [("cpu", "cpu", None), ("cu121", "cuda", "12.1"), ("cu118", "cuda", "11.8"), ("rocm6.2", "rocm", "6.2"), ("xyz", "other", None)],
)
def test_variant_from_local_label(local, kind, detail):
    variant = _collect.variant_of(local)
    assert (variant["label"], variant["kind"], variant["detail"]) == (local, kind, detail)
    assert "non-default index" in variant["likely_source"]


def test_cpuinfo_x86_keeps_isa_flags_and_counts_cores():
    info = _collect._parse_cpuinfo(CPUINFO_X86)
    assert info["model"].startswith("Intel(R) Xeon")
    assert info["flags"] == sorted(["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"])
    assert info["physical_cores"] == 1  # two hyperthreads of one core


def test_cpuinfo_arm_features():
    info = _collect._parse_cpuinfo(CPUINFO_ARM)
    assert {"asimd", "sve", "sve2", "i8mm", "bf16", "asimddp"} <= set(info["flags"])
    assert "aes" not in info["flags"]


def test_env_vars_keep_numerics_settings_and_drop_secrets():
    environ = {
        "OMP_NUM_THREADS": "4",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "HF_HUB_OFFLINE": "1",
        "HF_TOKEN": "hf_secret",
        "HUGGING_FACE_HUB_TOKEN": "hf_secret",
        "HF_API_KEY": "secret",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
        "TORCH_PASSWORD": "secret",
        "HF_ENDPOINT": "https://user:pw@mirror.example/hf",
        "ORT_MODEL_URL": "https://models.example/m.onnx?sig=abc&v=2&api_key=zzz",
        "HF_HOME": "/home/me/.cache/huggingface",
        "TORCHINDUCTOR_CACHE_DIR": "/tmp/inductor",
        "HOME": "/root",
        "PATH": "/usr/bin",
    }
    out = _collect.collect_env_vars(environ)
    assert out == {
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "HF_ENDPOINT": "https://***@mirror.example/hf",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "4",
        "ORT_MODEL_URL": "https://models.example/m.onnx?sig=***&v=2&api_key=***",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    }
    assert "secret" not in json.dumps(out)


def _dist_info(site: Path, name: str, version: str, **files: str) -> Path:
    folder = site / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nlong description\n")
    for fname, text in files.items():
        (folder / fname).write_text(text)
    return folder


def test_packages_keep_local_label_installer_requested_and_pep610(tmp_path):
    site = tmp_path / "site"
    _dist_info(site, "torch", "2.13.0+cpu", INSTALLER="pip\n", REQUESTED="")
    _dist_info(site, "My_Pkg", "1.0", INSTALLER="uv\n", direct_url_json="")
    (site / "My_Pkg-1.0.dist-info" / "direct_url_json").rename(site / "My_Pkg-1.0.dist-info" / "direct_url.json")
    (site / "My_Pkg-1.0.dist-info" / "direct_url.json").write_text(json.dumps(
        {"url": "https://user:pw@git.example/x.git", "vcs_info": {"vcs": "git", "commit_id": "abc123", "requested_revision": "main"}}
    ))
    _dist_info(site, "editable-thing", "0.1")
    (site / "editable_thing-0.1.dist-info" / "direct_url.json").write_text(
        json.dumps({"url": "file:///src/thing", "dir_info": {"editable": True}})
    )
    (site / "legacy.egg-info").mkdir()
    (site / "legacy.egg-info" / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: legacy\nVersion: 0.9\n")
    pkgs = _collect.collect_packages([str(site)])

    assert list(pkgs) == ["editable-thing", "legacy", "my-pkg", "torch"]
    torch = pkgs["torch"]
    assert (torch["version"], torch["public_version"], torch["local"]) == ("2.13.0+cpu", "2.13.0", "cpu")
    assert (torch["installer"], torch["requested"], torch["direct_url"]) == ("pip", True, None)
    assert torch["variant"]["kind"] == "cpu"
    mine = pkgs["my-pkg"]
    assert mine["name"] == "My_Pkg" and mine["requested"] is False and mine["installer"] == "uv"
    assert mine["vcs"] == {"vcs": "git", "commit_id": "abc123", "requested_revision": "main"}
    assert mine["direct_url"]["url"] == "https://***@git.example/x.git"
    assert pkgs["editable-thing"]["editable"] is True
    assert pkgs["editable-thing"]["editable_location"] == "file:///src/thing"
    assert pkgs["legacy"]["metadata"] == "egg-info"


def test_first_directory_on_the_path_wins(tmp_path):
    _dist_info(tmp_path / "first", "numpy", "2.0.0")
    _dist_info(tmp_path / "second", "numpy", "1.26.4")
    pkgs = _collect.collect_packages([str(tmp_path / "first"), str(tmp_path / "second")])
    assert pkgs["numpy"]["version"] == "2.0.0"


def test_metadata_without_version_falls_back_to_folder_name(tmp_path):
    folder = tmp_path / "odd-1.2.dist-info"
    folder.mkdir()
    (folder / "METADATA").write_text("Metadata-Version: 2.1\n")
    assert _collect.collect_packages([str(tmp_path)])["odd"]["version"] == "1.2"


def test_gpu_absent_is_stated_not_an_error():
    gpu = _collect.collect_gpu()
    assert gpu["status"] in ("present", "absent", "unknown")
    if not Path("/proc/driver/nvidia/version").exists() and not Path("/dev/nvidiactl").exists():
        assert gpu["status"] == "absent"
        assert "no NVIDIA driver" in gpu["reason"]


def test_driver_version_from_proc_text():
    text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
    assert _collect._driver_from_proc(text) == "550.54.15"


def test_volatile_facts_live_under_meta():
    snap = _collect.collect()
    assert set(snap["meta"]) >= {"created", "collect_seconds", "pid", "hostname"}
    text = json.dumps({k: v for k, v in snap.items() if k != "meta"})
    assert snap["meta"]["created"] not in text


class _FakeNvml:
    """Stands in for the ``pynvml`` module (nvidia-ml-py) on a machine with one GPU."""

    class _Memory:
        total = 80 * 1024**3

    def __init__(self) -> None:
        self.shutdown = False

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None:
        self.shutdown = True
    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"550.54.15"
    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040
    def nvmlDeviceGetCount(self) -> int:
        return 1
    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i
    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> tuple[int, int]:
        return 9, 0
    def nvmlDeviceGetName(self, handle: int) -> str:
        return "NVIDIA H100 80GB HBM3"
    def nvmlDeviceGetMemoryInfo(self, handle: int) -> _Memory:
        return self._Memory()


def test_gpu_facts_from_nvml(monkeypatch):
    fake = _FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpu = _collect._gpu_from_nvml()
    assert gpu == {
        "status": "present", "reason": None, "driver_version": "550.54.15", "cuda_driver_version": "12.4",
        "count": 1, "source": "nvml",
        "devices": [{"name": "NVIDIA H100 80GB HBM3", "memory_total_bytes": 80 * 1024**3, "compute_capability": "9.0"}],
    }
    assert fake.shutdown


def test_gpu_without_nvidia_ml_py_still_reads_the_driver(monkeypatch):
    proc_text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 2024\n"
    real_read = _collect._read_text
    monkeypatch.setattr(_collect, "_read_text", lambda p: proc_text if p == "/proc/driver/nvidia/version" else real_read(p))
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    gpu = _collect.collect_gpu()
    assert gpu["status"] == "present"
    assert gpu["driver_version"] == "550.54.15"
    assert "nvidia-ml-py is not installed" in gpu["reason"]


def test_headers_cut_by_the_first_read_are_read_whole(tmp_path):
    # Name/Version placed so that the 1 KiB fast path cuts the Version line in two.
    path = tmp_path / "METADATA"
    filler = "".join(f"Classifier: {'x' * 60}\n" for _ in range(14))
    head = f"Metadata-Version: 2.1\nName: pkg\n{filler}"
    path.write_text(head + "Version: " + "1" * (1030 - len(head) - 9) + ".2.3\n\nbody\n")
    version = _collect._read_headers(str(path), ("Name", "Version"))["Version"]
    assert version.endswith(".2.3")


def test_nvidia_wheels_are_the_cuda_libraries_only():
    packages = {name: {"version": "1"} for name in ("nvidia-cublas-cu12", "nvidia-cudnn-cu12", "nvidia-ml-py", "numpy")}
    assert _collect.nvidia_wheels(packages) == {"nvidia-cublas-cu12": "1", "nvidia-cudnn-cu12": "1"}


SYSCTL_APPLE_M2 = """\
machdep.cpu.brand_string: Apple M2 Pro
hw.physicalcpu: 12
hw.optional.arm.FEAT_BF16: 1
hw.optional.arm.FEAT_I8MM: 1
hw.optional.arm.FEAT_DotProd: 1
hw.optional.arm.FEAT_SME: 0
hw.optional.neon: 1
hw.optional.AdvSIMD: 1
hw.optional.floatingpoint: 1
"""

SYSCTL_INTEL_MAC = """\
machdep.cpu.brand_string: Intel(R) Core(TM) i9-9980HK CPU @ 2.40GHz
machdep.cpu.features: FPU VME SSE3 SSSE3 FMA SSE4.1 SSE4.2 AVX1.0 F16C
machdep.cpu.leaf7_features: SMEP BMI1 AVX2 BMI2
hw.physicalcpu: 8
"""


def test_macos_sysctl_gives_linux_spelled_flags():
    arm = _collect._parse_sysctl(SYSCTL_APPLE_M2)
    assert arm == {"model": "Apple M2 Pro", "physical_cores": 12,
                   "flags": ["asimd", "asimddp", "bf16", "i8mm", "neon"]}
    intel = _collect._parse_sysctl(SYSCTL_INTEL_MAC)
    assert intel["flags"] == ["avx", "avx2", "bmi2", "f16c", "fma", "sse4_1", "sse4_2", "ssse3"]
    assert intel["physical_cores"] == 8


def test_smep_is_a_security_feature_not_an_isa_extension():
    info = _collect._parse_cpuinfo("flags\t: avx2 smep smap sme sme2\n")
    assert info["flags"] == ["avx2", "sme", "sme2"]


def test_variable_threadpoolctl_sets_on_import_is_not_the_users():
    # threadpoolctl does os.environ.setdefault("KMP_DUPLICATE_LIB_OK", "True") on import,
    # and child processes inherit it: snapshots before and after that import, in this
    # process or a child, must not differ.
    from parity.env._collect import collect_env_vars

    assert "KMP_DUPLICATE_LIB_OK" not in collect_env_vars({"KMP_DUPLICATE_LIB_OK": "True"})
    assert collect_env_vars({"KMP_DUPLICATE_LIB_OK": "FALSE"}) == {"KMP_DUPLICATE_LIB_OK": "FALSE"}


# --- package sources: pip's and uv's index configuration -----------------------------------------------

INDEX = "https://index.example.invalid/simple"
EXTRA = "https://extra.example.invalid/whl/cpu"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _pip(tmp_path: Path, environ: dict) -> dict:
    return _collect.collect_pip_sources(environ, str(tmp_path / "home"), str(tmp_path / "prefix"), str(tmp_path / "etc"))


def _uv(tmp_path: Path, environ: dict) -> dict:
    return _collect.collect_uv_sources(environ, str(tmp_path / "home"), str(tmp_path / "etc"))


def _values(entries) -> list:
    return [(e["value"], e["source"]) for e in entries]


def test_pip_files_are_read_in_pips_precedence_order_and_each_value_names_its_file(tmp_path):
    etc = _write(tmp_path / "etc" / "pip.conf", "[global]\nindex-url = file:///etc-index\nfind-links = /etc/wheels\n")
    user = _write(tmp_path / "home" / ".config" / "pip" / "pip.conf", f"[global]\nindex-url = {INDEX}\n")
    site = _write(tmp_path / "prefix" / "pip.conf", f"[global]\nextra-index-url =\n  {EXTRA}\n  file:///srv/more\n")
    got = _pip(tmp_path, {})
    assert got["files"] == [str(etc), str(user), str(site)]
    assert got["index_url"] == {"value": INDEX, "source": f"{user} [global]"}  # user beats global
    assert _values(got["extra_index_urls"]) == [(EXTRA, f"{site} [global]"), ("file:///srv/more", f"{site} [global]")]
    assert _values(got["find_links"]) == [("/etc/wheels", f"{etc} [global]")]
    assert got["no_index"] is None and got["trusted_hosts"] == [] and got["errors"] == []


def test_pip_install_section_beats_global_and_variables_beat_files(tmp_path):
    # pip's rule: a command's own section wins over [global] whatever file holds it
    etc = _write(tmp_path / "etc" / "pip.conf", "[install]\nindex_url = file:///from-install\ntrusted-host = a.example.invalid\n")
    _write(tmp_path / "home" / ".pip" / "pip.conf", f"[global]\nindex-url = {INDEX}\nno-index = yes\n[freeze]\nfind-links = /ignored\n")
    got = _pip(tmp_path, {"PIP_EXTRA_INDEX_URL": f"{EXTRA} file:///x", "PIP_NO_INDEX": "0"})
    assert got["index_url"] == {"value": "file:///from-install", "source": f"{etc} [install]"}
    assert _values(got["extra_index_urls"]) == [(EXTRA, "PIP_EXTRA_INDEX_URL"), ("file:///x", "PIP_EXTRA_INDEX_URL")]
    assert got["no_index"] == {"value": False, "source": "PIP_NO_INDEX"}
    assert _values(got["trusted_hosts"]) == [("a.example.invalid", f"{etc} [install]")]
    assert got["find_links"] == []  # [freeze] is not read for pip install


def test_pip_config_file_variable_replaces_user_files_and_devnull_turns_all_files_off(tmp_path):
    _write(tmp_path / "home" / ".config" / "pip" / "pip.conf", f"[global]\nindex-url = {INDEX}\n")
    site = _write(tmp_path / "prefix" / "pip.conf", "[global]\nfind-links = /site\n")
    mine = _write(tmp_path / "mine.conf", "[global]\nfind-links = /mine\n")
    got = _pip(tmp_path, {"PIP_CONFIG_FILE": str(mine)})
    assert got["files"] == [str(site), str(mine)] and got["index_url"] is None
    assert _values(got["find_links"]) == [("/mine", f"{mine} [global]")]  # PIP_CONFIG_FILE beats site
    off = _pip(tmp_path, {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "/a /b"})
    assert off["files"] == [] and _values(off["find_links"]) == [("/a", "PIP_FIND_LINKS"), ("/b", "PIP_FIND_LINKS")]


def test_credentials_in_index_urls_are_masked(tmp_path):
    _write(tmp_path / "prefix" / "pip.conf", "[global]\nindex-url = https://alice:s3cret@index.example.invalid/simple\n")
    got = _pip(tmp_path, {"PIP_EXTRA_INDEX_URL": "https://index.example.invalid/simple?token=abc"})
    text = json.dumps(got)
    assert "s3cret" not in text and "abc" not in text and "alice" not in text
    assert got["index_url"]["value"] == "https://***@index.example.invalid/simple"
    uv = _uv(tmp_path, {"UV_INDEX": "corp=https://bob:pw@uv.example.invalid/simple"})
    assert uv["extra_index_urls"] == [{"value": "https://***@uv.example.invalid/simple", "source": "UV_INDEX", "name": "corp"}]


def test_a_broken_pip_conf_is_recorded_not_raised(tmp_path):
    bad = _write(tmp_path / "prefix" / "pip.conf", "index-url = no section header\n")
    _write(tmp_path / "etc" / "pip.conf", "[global]\nno-index = maybe\n")
    got = _pip(tmp_path, {})
    assert any(e.startswith(f"{bad}: not a valid pip configuration file") for e in got["errors"])
    assert any("no-index='maybe' is not a boolean" in e for e in got["errors"])
    assert got["no_index"] is None and got["index_url"] is None


def test_uv_variables_beat_user_file_which_beats_system_file_and_lists_concatenate(tmp_path):
    system = _write(tmp_path / "etc" / "uv" / "uv.toml", 'index-url = "file:///system"\nfind-links = ["/system/wheels"]\n')
    user = _write(tmp_path / "home" / ".config" / "uv" / "uv.toml",
                  f'extra-index-url = ["{EXTRA}"]\n[pip]\nindex-url = "{INDEX}"\n'
                  '[[index]]\nname = "cpu"\nurl = "file:///cpu"\n')  # fmt: skip
    got = _uv(tmp_path, {"UV_FIND_LINKS": "/a,/b", "UV_INDEX": "file:///env", "UV_NO_INDEX": "1"})
    assert got["files"] == [str(user), str(system)]
    assert got["index_url"] == {"value": INDEX, "source": f"{user} [pip]"}  # [pip] beats the system's top level
    assert _values(got["extra_index_urls"]) == [("file:///env", "UV_INDEX"), ("file:///cpu", f"{user} [[index]]"),
                                               (EXTRA, str(user))]  # fmt: skip
    assert got["extra_index_urls"][1]["name"] == "cpu"
    assert _values(got["find_links"]) == [("/a", "UV_FIND_LINKS"), ("/b", "UV_FIND_LINKS"), ("/system/wheels", str(system))]
    assert got["no_index"] == {"value": True, "source": "UV_NO_INDEX"}
    assert _uv(tmp_path, {"UV_DEFAULT_INDEX": "file:///default"})["index_url"] == {"value": "file:///default", "source": "UV_DEFAULT_INDEX"}


def test_uv_default_index_table_and_config_file_variables(tmp_path):
    mine = _write(tmp_path / "mine.toml", '[[index]]\nurl = "file:///mine"\ndefault = true\n')
    _write(tmp_path / "home" / ".config" / "uv" / "uv.toml", f'index-url = "{INDEX}"\n')
    got = _uv(tmp_path, {"UV_CONFIG_FILE": str(mine)})
    assert got["files"] == [str(mine)]  # UV_CONFIG_FILE alone: no discovery
    assert got["index_url"] == {"value": "file:///mine", "source": f"{mine} [[index]]"}
    assert _uv(tmp_path, {"UV_NO_CONFIG": "1"})["files"] == []


def test_uv_toml_that_is_not_toml_or_cannot_be_parsed_is_an_error_entry(tmp_path, monkeypatch):
    bad = _write(tmp_path / "home" / ".config" / "uv" / "uv.toml", "index-url = [unclosed\n")
    got = _uv(tmp_path, {})
    assert got["index_url"] is None and got["errors"][0].startswith(f"{bad}: not valid TOML")
    _write(bad, f'index-url = "{INDEX}"\n')
    # an interpreter older than 3.11 without tomli: recorded, not raised
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    got = _uv(tmp_path, {})
    assert got["index_url"] is None and "no TOML parser" in got["errors"][0]


def test_collect_records_package_sources_and_stays_python_37_syntax():
    snap = _collect.collect()
    assert set(snap["package_sources"]) == {"pip", "uv"}
    source = Path(_collect.__file__).read_text(encoding="utf-8")
    ast.parse(source, feature_version=(3, 7))  # the foreign interpreter may be old


@pytest.mark.slow
def test_foreign_venvs_own_pip_conf_is_seen_through_snapshot_python(run_cli, tmp_path, monkeypatch):
    import subprocess

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    _write(venv / "pip.conf", f"[install]\nextra-index-url = {EXTRA}\nfind-links = file:///srv/wheelhouse\n")
    for name in [n for n in os.environ if n.startswith(("PIP_", "UV_"))]:
        monkeypatch.delenv(name)
    code, _, err = run_cli("snapshot", "--python", venv / "bin" / "python", "-o", tmp_path / "s.json")
    assert code == 0, err
    pip = json.loads((tmp_path / "s.json").read_text())["package_sources"]["pip"]
    assert str(venv / "pip.conf") in pip["files"]
    assert _values(pip["extra_index_urls"]) == [(EXTRA, f"{venv / 'pip.conf'} [install]")]
    assert _values(pip["find_links"]) == [("file:///srv/wheelhouse", f"{venv / 'pip.conf'} [install]")]


def test_snapshot_cli_with_a_binary_pip_config_file_still_works_and_names_it(run_cli, tmp_path, monkeypatch):
    # a broken configuration is a fact about the machine, not a reason to fail the snapshot
    bad = tmp_path / "pip.conf"
    bad.write_bytes(b"\x00\xff\xfe binary \x00")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(bad))
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///srv/extra")
    code, _, err = run_cli("snapshot", "-o", tmp_path / "s.json")
    assert code == 0, err
    pip = json.loads((tmp_path / "s.json").read_text())["package_sources"]["pip"]
    assert any(e.startswith(f"{bad}: not a valid pip configuration file") for e in pip["errors"])
    assert pip["extra_index_urls"] == [{"value": "file:///srv/extra", "source": "PIP_EXTRA_INDEX_URL"}]


def test_schema_accepts_package_sources_and_snapshots_without_them():
    import jsonschema

    from parity.env.snapshots import load_schema, snapshot

    snap = snapshot()
    jsonschema.validate(snap, load_schema())
    del snap["package_sources"]  # a snapshot written before the section existed
    jsonschema.validate(snap, load_schema())
    snap["package_sources"] = {"pip": {"index_url": "not an entry"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(snap, load_schema())


def test_pip_download_section_is_recorded_apart_from_what_pip_install_uses(tmp_path):
    conf = _write(tmp_path / "prefix" / "pip.conf", f"[global]\nindex-url = {INDEX}\n[download]\nindex-url = file:///dl\n")
    got = _pip(tmp_path, {})
    assert got["index_url"] == {"value": INDEX, "source": f"{conf} [global]"}  # pip install ignores [download]
    assert got["for_download"] == {"index_url": {"value": "file:///dl", "source": f"{conf} [download]"}}
    assert _pip(tmp_path, {"PIP_INDEX_URL": "file:///env"})["for_download"] == {}  # the variable wins for both
