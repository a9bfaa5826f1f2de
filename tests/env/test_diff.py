"""diff() on small hand-made snapshots: every kind of difference, ordering, requirements."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from parity.env import diff
from parity.errors import ParityError
from parity.report.terminal.diff import declared_note, display_value


def _dist(name: str, version: str, **extra: Any) -> dict[str, Any]:
    local = version.partition("+")[2] or None
    return {"name": name, "version": version, "local": local, "installer": "pip", "requested": True,
            "direct_url": None, "editable": False, "vcs": None, "variant": None, **extra}


def base() -> dict[str, Any]:
    return {
        "schema": "parity.snapshot/1",
        "meta": {"created": "2026-01-01T00:00:00Z", "pid": 1, "collect_seconds": 0.01, "hostname": "research"},
        "python": {"version": "3.11.7", "implementation": "CPython", "executable": "/a/bin/python",
                   "prefix": "/a", "base_prefix": "/usr", "is_venv": True},
        "platform": {"system": "Linux", "release": "6.1", "machine": "x86_64",
                     "distro": {"id": "debian", "version_id": "12", "pretty_name": "Debian 12"}, "glibc": "2.36"},
        "cpu": {"model": "Xeon", "logical_cores": 8, "physical_cores": 4, "flags": ["avx", "avx2", "fma"]},
        "packages": {
            "numpy": _dist("numpy", "1.26.4"),
            "tokenizers": _dist("tokenizers", "0.19.1"),
            "torch": _dist("torch", "2.3.1+cu118"),
            "leftpad": _dist("leftpad", "1.0"),
        },
        "torch": {"version": "2.3.1+cu118", "cuda": "11.8", "git_version": "abc", "variant": "cuda", "location": "/a/torch"},
        "nvidia_wheels": {},
        "gpu": {"status": "absent", "reason": "no driver", "source": "filesystem"},
        "env_vars": {"OMP_NUM_THREADS": "8"},
        "runtime": None,
    }


def test_identical_snapshots_have_no_items():
    result = diff(base(), base())
    assert result.identical
    assert result.to_json()["items"] == []
    assert result.to_json()["identical"] is True


def test_volatile_and_machine_local_facts_never_count():
    b = base()
    b["meta"] = {"created": "2030-01-01T00:00:00Z", "pid": 999, "collect_seconds": 3.0, "hostname": "prod"}
    b["python"].update(executable="/b/bin/python", prefix="/b", base_prefix="/opt/py")
    b["torch"]["location"] = "/b/torch"
    b["packages"]["numpy"]["installer"] = "uv"
    b["packages"]["numpy"]["requested"] = False
    assert diff(base(), b).identical


def test_package_added_removed_changed_and_variant():
    b = base()
    b["packages"]["numpy"]["version"] = "2.0.0"
    del b["packages"]["tokenizers"]
    b["packages"]["pillow"] = _dist("pillow", "10.0.0")
    b["packages"]["torch"]["version"] = "2.3.1+cpu"
    b["torch"].update(version="2.3.1+cpu", cuda=None, variant="cpu")
    items = {(d.category, d.name): d for d in diff(base(), b).items}
    assert items[("package", "numpy")].change == "changed"
    assert (items[("package", "numpy")].a, items[("package", "numpy")].b) == ("1.26.4", "2.0.0")
    assert items[("package", "tokenizers")].change == "removed"
    assert items[("package", "tokenizers")].b is None
    assert items[("package", "pillow")].change == "added"
    torch = items[("package", "torch")]
    assert (torch.change, torch.risk, torch.a, torch.b) == ("variant", "high", "2.3.1+cu118", "2.3.1+cpu")
    assert "+cu118 -> +cpu" in torch.reason
    assert torch.stages == ("model",)
    assert items[("torch", "cuda")].risk == "high"
    assert set(items) == {("package", "numpy"), ("package", "tokenizers"), ("package", "pillow"),
                          ("package", "torch"), ("torch", "cuda")}


def test_variant_of_a_low_risk_package_is_at_least_medium():
    b = base()
    b["packages"]["leftpad"]["version"] = "1.0+special"
    (item,) = diff(base(), b).items
    assert (item.change, item.risk) == ("variant", "medium")


def test_vcs_commit_change_with_same_version_is_a_difference():
    a, b = base(), base()
    a["packages"]["leftpad"]["vcs"] = {"vcs": "git", "commit_id": "1111111111111111"}
    b["packages"]["leftpad"]["vcs"] = {"vcs": "git", "commit_id": "2222222222222222"}
    (item,) = diff(a, b).items
    assert item.a == "1.0 @ git 111111111111" and item.b == "1.0 @ git 222222222222"


def test_items_are_ordered_by_risk_then_category_then_name():
    b = base()
    b["packages"]["leftpad"]["version"] = "2.0"                  # low
    b["env_vars"]["OMP_NUM_THREADS"] = "1"                        # medium
    b["packages"]["tokenizers"]["version"] = "0.20.0"             # high
    b["platform"]["glibc"] = "2.31"                               # medium
    b["cpu"]["flags"] = ["avx", "avx2", "fma", "avx512f"]         # high
    b["packages"]["numpy"]["version"] = "2.0.0"                   # high
    result = diff(base(), b)
    assert [(d.risk, d.category, d.name) for d in result.items] == [
        ("high", "package", "numpy"),
        ("high", "package", "tokenizers"),
        ("high", "cpu", "flag.avx512f"),
        ("medium", "platform", "glibc"),
        ("medium", "env_var", "OMP_NUM_THREADS"),
        ("low", "package", "leftpad"),
    ]
    assert result.counts() == {"high": 3, "medium": 2, "low": 1}


def test_cpu_flags_differ_one_by_one():
    b = base()
    b["cpu"]["flags"] = ["avx", "avx512f", "avx512_vnni"]
    items = {d.name: d for d in diff(base(), b).items}
    assert items["flag.avx2"].change == "removed"
    assert items["flag.fma"].change == "removed"
    assert items["flag.avx512f"].change == "added"
    assert items["flag.avx512_vnni"].risk == "high"


def test_env_vars_added_removed_changed():
    b = base()
    b["env_vars"] = {"OMP_NUM_THREADS": "1", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    a = base()
    a["env_vars"]["TOKENIZERS_PARALLELISM"] = "false"
    items = {d.name: d for d in diff(a, b).items}
    assert items["OMP_NUM_THREADS"].change == "changed"
    assert items["CUBLAS_WORKSPACE_CONFIG"].change == "added"
    assert items["CUBLAS_WORKSPACE_CONFIG"].risk == "high"
    assert items["TOKENIZERS_PARALLELISM"].change == "removed"


def _runtime(blas: dict[str, Any], threads: int = 8) -> dict[str, Any]:
    return {"torch": {"version": "2.3.1", "num_threads": threads, "float32_matmul_precision": "highest",
                      "build": {"blas_info": "mkl"}},
            "numpy": "1.26.4", "threadpool": blas}


OPENBLAS = {"blas:openblas:numpy/libopenblas": {"user_api": "blas", "internal_api": "openblas", "version": "0.3.27",
                                          "num_threads": 8, "threading_layer": "pthreads",
                                          "architecture": "Haswell", "filepath": "/a/libopenblas.so"}}
MKL = {"blas:mkl:env/libmkl_rt": {"user_api": "blas", "internal_api": "mkl", "version": "2024.1", "num_threads": 8,
                              "threading_layer": "intel", "architecture": None, "filepath": "/b/libmkl_rt.so"}}


def test_runtime_blas_family_threads_and_precision():
    a, b = base(), base()
    a["runtime"] = _runtime(OPENBLAS)
    b["runtime"] = _runtime(MKL, threads=4)
    b["runtime"]["torch"]["float32_matmul_precision"] = "high"
    items = {d.name: d for d in diff(a, b).items}
    assert items["threadpool.blas:openblas:numpy/libopenblas"].change == "removed"
    assert items["threadpool.blas:mkl:env/libmkl_rt"].change == "added"
    assert items["threadpool.blas:mkl:env/libmkl_rt"].risk == "high"
    assert "filepath" not in items["threadpool.blas:mkl:env/libmkl_rt"].b
    assert display_value(items["threadpool.blas:mkl:env/libmkl_rt"].b) == "mkl 2024.1 (intel, 8 threads)"
    assert items["torch.num_threads"].risk == "medium"
    assert items["torch.float32_matmul_precision"].risk == "high"
    assert len(items) == 4


def test_blas_path_alone_does_not_count():
    a, b = base(), base()
    a["runtime"] = _runtime(OPENBLAS)
    b["runtime"] = _runtime(copy.deepcopy(OPENBLAS))
    b["runtime"]["threadpool"]["blas:openblas:numpy/libopenblas"]["filepath"] = "/elsewhere/libopenblas.so"
    assert diff(a, b).identical


def test_runtime_on_one_side_only_is_a_note_not_a_difference():
    b = base()
    b["runtime"] = _runtime(OPENBLAS)
    result = diff(base(), b)
    assert result.identical
    assert result.notes and "--runtime" in result.notes[0]


def test_gpu_driver_and_devices():
    a, b = base(), base()
    a["gpu"] = {"status": "present", "driver_version": "535.1", "cuda_driver_version": "12.2", "count": 1,
                "devices": [{"name": "NVIDIA A100", "compute_capability": "8.0"}], "source": "nvml"}
    b["gpu"] = copy.deepcopy(a["gpu"])
    b["gpu"]["driver_version"] = "550.5"
    b["gpu"]["devices"][0]["name"] = "NVIDIA L4"
    items = {d.name: d for d in diff(a, b).items}
    assert set(items) == {"driver_version", "devices.0.name"}
    assert all(d.risk == "high" for d in items.values())


def test_unknown_future_sections_are_compared_too():
    a, b = base(), base()
    a["accelerator"] = {"kind": "tpu"}
    b["accelerator"] = {"kind": "npu"}
    (item,) = diff(a, b).items
    assert (item.category, item.name, item.risk) == ("accelerator", "kind", "low")


def test_to_json_shape_matches_the_contract():
    b = base()
    b["packages"]["numpy"]["version"] = "2.0.0"
    doc = diff(base(), b).to_json()
    assert doc["identical"] is False
    (item,) = doc["items"]
    assert set(item) >= {"category", "name", "a", "b", "change", "risk", "reason", "stages"}
    assert item["stages"] == ["preprocess", "postprocess"]


# --- the third column: requirements -------------------------------------------------------------


def test_requirements_say_what_was_declared_and_whether_it_allowed_the_drift(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("numpy>=1.21\ntorch==2.3.1+cu118\nleftpad==1.0\n")
    b = base()
    b["packages"]["numpy"]["version"] = "2.0.0"              # loose range: allowed
    b["packages"]["torch"]["version"] = "2.3.1+cpu"          # pinned: violated
    b["packages"]["tokenizers"]["version"] = "0.20.0"        # not declared: transitive
    b["packages"]["leftpad"]["version"] = "1.1"              # pinned: violated
    result = diff(base(), b, requirements=req)
    items = {d.name: d for d in result.items if d.category == "package"}
    assert (items["numpy"].declared, items["numpy"].declared_allows) == (">=1.21", True)
    assert (items["torch"].declared, items["torch"].declared_allows) == ("==2.3.1+cu118", False)
    assert (items["tokenizers"].declared, items["tokenizers"].declared_allows) == (None, True)
    assert items["tokenizers"].declared_status == "absent"
    assert items["leftpad"].declared_allows is False
    assert declared_note(items["numpy"].to_json()) == ">=1.21 (allows this drift)"
    assert declared_note(items["tokenizers"].to_json()) == "not declared (unpinned transitive)"
    assert result.to_json()["requirements"] == str(req)
    assert result.to_json()["items"][0]["declared_status"]


def test_requirement_markers_are_judged_for_environment_b(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text('numpy==1.26.4; sys_platform == "win32"\nnumpy>=2; sys_platform == "linux"\n')
    b = base()
    b["packages"]["numpy"]["version"] = "2.0.0"
    (item,) = diff(base(), b, requirements=req).items
    assert item.declared == ">=2"
    assert item.declared_allows is False  # A's 1.26.4 is outside what Linux declares


def test_every_marker_variable_comes_from_environment_b_not_from_this_interpreter(tmp_path):
    """diff, doctor and lock share one marker_environment, which gives every PEP 508
    variable: one left out is filled by packaging from the interpreter running parity."""
    from packaging.markers import default_environment

    from parity.env.requirements import marker_environment

    assert set(marker_environment(base())) == set(default_environment())
    req = tmp_path / "requirements.txt"
    req.write_text('numpy==1.26.4; implementation_version < "3.9"\nnumpy>=2; implementation_version >= "3.9"\n')
    a, b = base(), base()
    for snap in (a, b):
        snap["python"]["version"] = "3.8.10"  # not the interpreter running this test
    b["packages"]["numpy"]["version"] = "2.0.0"
    (item,) = diff(a, b, requirements=req).items
    assert item.declared == "==1.26.4" and item.declared_allows is False


def test_missing_requirements_file_is_a_user_error(tmp_path):
    with pytest.raises(ParityError, match=r"missing\.txt"):
        diff(base(), base(), requirements=tmp_path / "missing.txt")


def test_not_a_snapshot_dict_is_a_user_error():
    with pytest.raises(ParityError, match="not a snapshot"):
        diff({"hello": 1}, base())


def _model_state(device: str, training: list[str]) -> dict[str, Any]:
    params = {f"layer.{i}.weight": {"dtype": "float32", "device": device} for i in range(50)}
    return {"grad_enabled": False, "threads": 8, "training_modules": training, "parameters": params, "buffers": {},
            "model_class": "BertModel", "cudnn": {"benchmark": False}}


def test_model_state_from_records_is_summarised_not_listed_per_parameter():
    a, b = base(), base()
    a["runtime"] = dict(_runtime(OPENBLAS), model=_model_state("cpu", []))
    b["runtime"] = dict(_runtime(OPENBLAS), model=_model_state("cuda:0", ["dropout"]))
    b["runtime"]["model"]["cudnn"]["benchmark"] = True
    items = {d.name: d for d in diff(a, b).items}
    assert set(items) == {"model.parameters", "model.training_modules", "model.cudnn.benchmark"}
    params = items["model.parameters"]
    assert (params.a, params.b, params.risk) == ({"float32 on cpu": 50}, {"float32 on cuda:0": 50}, "high")
    assert items["model.training_modules"].risk == "high"
    assert items["model.cudnn.benchmark"].risk == "medium"


def test_requirement_lines_pip_cannot_read_become_notes(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("numpy>=1.21\nthis is not a requirement ===\n")
    b = base()
    b["packages"]["numpy"]["version"] = "2.0.0"
    result = diff(base(), b, requirements=req)
    assert len(result.items) == 1
    assert any("requirements.txt:2" in note and "parity doctor" in note for note in result.notes)


def test_nvml_bindings_are_not_a_cuda_library():
    b = base()
    b["packages"]["nvidia-ml-py"] = _dist("nvidia-ml-py", "12.535.133")
    b["packages"]["nvidia-cublas-cu12"] = _dist("nvidia-cublas-cu12", "12.1.3.1")
    risks = {d.name: d.risk for d in diff(base(), b).items}
    assert risks == {"nvidia-cublas-cu12": "high", "nvidia-ml-py": "low"}


def test_gpu_on_one_side_only_is_one_item():
    b = base()
    b["gpu"] = {"status": "present", "driver_version": "550.54.15", "cuda_driver_version": "12.4", "count": 1,
                "devices": [{"name": "NVIDIA H100", "compute_capability": "9.0"}], "source": "nvml"}
    (item,) = diff(base(), b).items
    assert (item.category, item.name, item.risk) == ("gpu", "status", "high")
    assert (item.a, item.b) == ("absent", "present: NVIDIA H100 (driver 550.54.15, CUDA 12.4)")


def test_torch_commit_counts_only_when_the_version_is_the_same():
    b = base()
    b["torch"]["git_version"] = "def"
    (item,) = diff(base(), b).items
    assert (item.category, item.name, item.risk) == ("torch", "git_version", "high")  # same version, other build
    b["packages"]["torch"]["version"] = "2.4.0+cu118"
    assert [(d.category, d.name) for d in diff(base(), b).items] == [("package", "torch")]


def test_release_and_variant_change_together_says_both():
    b = base()
    b["packages"]["torch"]["version"] = "2.4.0+cpu"
    item = next(d for d in diff(base(), b).items if d.name == "torch")
    assert item.change == "changed"
    assert "new release and wheel variant (+cu118 -> +cpu)" in item.reason


# --- package sources: where pip/uv fetch packages from ------------------------------------------------------


def _sources(extra: list[tuple[str, str]], index: Any = None) -> dict[str, Any]:
    def tool(entries: list[tuple[str, str]], main: Any) -> dict[str, Any]:
        return {"index_url": main, "extra_index_urls": [{"value": v, "source": s} for v, s in entries],
                "find_links": [], "no_index": None, "trusted_hosts": [], "files": [], "errors": []}
    return {"pip": tool(extra, index), "uv": tool([], None)}


CPU_INDEX = "https://index.example.invalid/whl/cpu"


def test_identical_package_sources_give_nothing_even_from_other_files():
    a, b = base(), base()
    a["package_sources"] = _sources([(CPU_INDEX, "/home/alice/.config/pip/pip.conf [global]")])
    b["package_sources"] = _sources([(CPU_INDEX, "PIP_EXTRA_INDEX_URL")])
    b["package_sources"]["pip"]["files"] = ["/etc/pip.conf"]  # which files exist is machine-local
    assert diff(a, b).identical


def test_changed_index_configuration_is_a_medium_package_source_item():
    a, b = base(), base()
    a["package_sources"] = _sources([(CPU_INDEX, "PIP_EXTRA_INDEX_URL")])
    b["package_sources"] = _sources([], index={"value": "file:///mirror", "source": "/etc/pip.conf [global]"})
    b["packages"]["leftpad"]["version"] = "1.1"  # a low-risk item, to check the ordering
    items = diff(a, b).items
    by_name = {(d.category, d.name): d for d in items}
    extra = by_name[("package_source", "pip.extra_index_urls")]
    assert (extra.a, extra.b, extra.change, extra.risk) == ([CPU_INDEX], [], "removed", "medium")
    assert extra.reason == "where pip/uv fetch packages from changed"
    main = by_name[("package_source", "pip.index_url")]
    assert (main.a, main.b, main.change) == (None, "file:///mirror", "added")
    assert set(by_name) == {("package_source", "pip.extra_index_urls"), ("package_source", "pip.index_url"),
                            ("package", "leftpad")}  # fmt: skip
    assert [d.risk for d in items] == ["medium", "medium", "low"]  # through the risk table, ranked


def test_package_sources_on_one_side_only_is_a_note_not_a_difference():
    b = base()
    b["package_sources"] = _sources([(CPU_INDEX, "PIP_EXTRA_INDEX_URL")])
    result = diff(base(), b)
    assert result.identical
    assert any("package_sources" in n and "for B only" in n for n in result.notes)


@pytest.mark.parametrize("bad", ["oops", {"pip": []}, {"pip": {"extra_index_urls": ["x"]}}])
def test_malformed_package_sources_is_refused(bad):
    b = base()
    b["package_sources"] = bad
    with pytest.raises(ParityError, match="environment B: package_sources"):
        diff(base(), b)


def test_cli_diff_with_malformed_package_sources_exits_2_in_one_line(run_cli, tmp_path):
    import json

    good, bad = base(), base()
    bad["package_sources"] = {"pip": "not an object"}
    (tmp_path / "a.json").write_text(json.dumps(good))
    (tmp_path / "b.json").write_text(json.dumps(bad))
    code, out, err = run_cli("diff", tmp_path / "a.json", tmp_path / "b.json")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "b.json: package_sources" in err and "Traceback" not in err
