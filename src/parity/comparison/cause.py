"""Probable cause: link the findings of a verify/compare into one explanation.

The report lists what differs (environment, assets, weights, runtime state, stages,
layers); a person wants to know which of those made B diverge. The rules, most specific
first, each needing two pieces of evidence that point at the same thing:

1. a changed asset file and a divergence at preprocess (or the inputs) -> that file;
2. a changed weight and an introducing layer that owns it -> that parameter;
3. submodules in training mode and a first divergent layer that is a dropout (or sits
   inside a module in training mode) -> ``model.eval()``;
4. B's module refusing the arguments A passed it -> that API change;
5. an error-level runtime difference (dtype, autocast) or missing layers -> that;
6. a changed non-tokenizer asset (``config.json``) and a model divergence with equal
   weights -> that file;
7. a changed package whose risk table entry touches the first divergent stage -> that
   package, or, when other changed packages (those the risk table does not know included)
   could do it too, "a package change" with ``parity bisect`` as the way to find which
   (other high-risk environment items after packages);
8. nothing above, but packages the risk table does not know changed -> "a package
   change" among them, with ``parity bisect`` to find which (low confidence);
9. nothing above, but environment variables differ -> the first of them (low
   confidence: the only difference left, not a proven link);
10. otherwise "unexplained", with the first divergent (or introducing) layer.

``confidence`` (high|medium|low) says how many links were checked, and ``checked``
lists what was compared, so "unexplained" also says what was ruled out.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from typing import Any

from parity._text import one_line
from parity.comparison.findings import MODE_SENSITIVE
from parity.comparison.tolerances import strip_wrapper_prefix
from parity.env._collect import canonical_name
from parity.env.risk import RISK_TABLE

#: Asset files that configure or feed preprocessing, most telling first: a setting
#: (lower-casing, special tokens) lives in the config, the vocabulary follows it.
PREPROCESS_FILES = (
    "tokenizer_config.json", "preprocessor_config.json", "processor_config.json", "special_tokens_map.json",
    "added_tokens.json", "tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "spiece.model",
    "sentencepiece.bpe.model", "tokenizer.model",
)
_PREPROCESS_LIKE = re.compile(r"token|vocab|merges|preprocess|processor|spiece|sentencepiece", re.IGNORECASE)
_WEIGHT_FILE = re.compile(r"\.(safetensors|bin|pt|pth|ckpt|onnx|h5|msgpack|gguf|pt2|index\.json)$", re.IGNORECASE)
_EARLY = ("inputs", "preprocess")


def probable_cause(r: Any, compared: Mapping[str, int] | None = None) -> dict[str, Any] | None:
    """The probable cause of what ``r`` (a VerifyResult) found, or None when nothing diverged.

    ``compared`` counts what was compared (``files``, ``weights``), for ``checked``.
    """
    if not _has_finding(r):
        return None
    checked = _checked(r, compared or {})
    for rule in (_asset_preprocess, _weight, _eval_mode, _api_change, _runtime_error, _architecture,
                 _asset_model, _package, _environment, _unrated, _env_var):
        found = rule(r)
        if found is not None:
            return {**found, "checked": checked}
    return {**_unexplained(r), "checked": checked}


def _has_finding(r: Any) -> bool:
    return bool(r.first_divergent_stage or r.first_divergent_layer or r.assets.get("params") or r.only_a
                or r.api_changes or any(f.get("severity") == "error" for f in r.runtime))


def _cause(kind: str, summary: str, subject: str, evidence: list[str], confidence: str, fix: str = "") -> dict[str, Any]:
    return {"kind": kind, "summary": one_line(summary), "subject": one_line(subject),
            "evidence": [one_line(e) for e in evidence], "confidence": confidence, "fix": one_line(fix)}


# ------------------------------------------------------------------------ rules


def _asset_preprocess(r: Any) -> dict[str, Any] | None:
    if r.first_divergent_stage not in _EARLY:
        return None
    ranked = [(rank, i, f) for i, f in enumerate(_changed_files(r)) if (rank := _preprocess_rank(f)) is not None]
    files = [f for _rank, _i, f in sorted(ranked, key=lambda t: (t[0], t[1]))]
    if not files:
        return None
    top, name = files[0], _name(files[0])
    known = name in PREPROCESS_FILES
    evidence = [f"asset {_path(f)} {f.get('change')} (sha256 {_short(f.get('a'))} -> {_short(f.get('b'))})"
                for f in files[:5]]
    evidence.append(_stage_evidence(r))
    if len(files) > 1:
        evidence.append(f"{len(files)} preprocessing files changed; {name} holds the settings, "
                        "the others usually follow it")
    return _cause("asset", f"{name} changed between A and B, and B's {r.first_divergent_stage} diverges from it",
                  _path(top), evidence, "high" if known else "medium",
                  f"use A's {name} (sha256 {_short(top.get('a'))}) in B")


def _weight(r: Any) -> dict[str, Any] | None:
    params = [p for p in r.assets.get("params") or [] if isinstance(p, Mapping)]
    if not params:
        return None
    introducing = [x for x in r.layers if x.get("introduced") is True]
    if introducing:
        for layer in introducing:
            owned = _owned(params, str(layer.get("module") or ""))
            if owned:
                return _weight_cause(r, owned[0], params, layer, "introduces the error when B's module is replayed "
                                     "on A's recorded inputs", "high")
        return None
    first = _first_layer(r)
    if first is None:
        return _weight_cause(r, params[0], params, None, "", "medium")
    owned = _owned(params, str(first.get("module") or ""))
    if owned:
        return _weight_cause(r, owned[0], params, first, "is the first layer out of tolerance (introduced vs "
                             "inherited not checked)", "medium")
    return None


def _weight_cause(r: Any, p: Mapping[str, Any], params: list[Any], layer: Mapping[str, Any] | None, how: str,
                  confidence: str) -> dict[str, Any]:
    name = str(p.get("name"))
    evidence = [f"weight {name} {p.get('change')} (hash {_short(p.get('a_hash'))} -> {_short(p.get('b_hash'))})"]
    if layer is not None:
        evidence.append(f"layer {layer.get('key')}, which owns it, {how}")
        summary = f"weight {name} changed, and its layer {layer.get('key')} " + (
            "introduces the error" if confidence == "high" else "is the first out of tolerance")
    else:
        evidence.append("every layer output is within tolerance: the change is too small to show at this tolerance")
        summary = f"weight {name} changed (layer outputs are still within tolerance)"
    if len(params) > 1:
        evidence.append(f"{len(params)} weight tensors differ in all, e.g. "
                        + ", ".join(str(q.get("name")) for q in params[:3] if q is not p))
    return _cause("weight", summary, name, evidence, confidence, "load the same checkpoint in B as in A")


def _eval_mode(r: Any) -> dict[str, Any] | None:
    finding = next((f for f in r.runtime if f.get("code") == "training_mode"), None)
    first = _first_layer(r)
    if finding is None or first is None:
        return None
    module = strip_wrapper_prefix(str(first.get("module") or ""))
    training = [strip_wrapper_prefix(str(m)) for m in finding.get("modules") or []]
    inside = [m for m in training if m == module or m == "" or module.startswith(m + ".")]
    sensitive = bool(MODE_SENSITIVE.search(str(first.get("type") or "")))
    if not (sensitive or inside):
        return None
    label = f"{module or '<root>'} ({first.get('type')})"
    evidence = [str(finding.get("message")), f"first divergent layer {first.get('key')} is {label}" + (
        ", a module that computes differently in training mode" if sensitive else ", inside a module in training mode")]
    return _cause("eval_mode", f"{label} runs in training mode in B: call model.eval()", module or "<root>", evidence,
                  "high" if sensitive and inside else "medium", "call model.eval() on B's model before serving it")


def _api_change(r: Any) -> dict[str, Any] | None:
    if not r.api_changes:
        return None
    first = r.api_changes[0]
    evidence = [f"replaying B's module {c.get('module') or '<root>'} on A's recorded call ({c.get('key')}): "
                f"its signature refuses A's arguments" for c in r.api_changes[:1]]
    evidence += [str(c.get("message")) for c in r.api_changes[1:5]]
    packages = _packages_touching(r, "model")
    if packages:
        evidence.append("packages that changed and touch the model: " + ", ".join(_item(i) for i in packages[:3]))
    return _cause("api_change", str(first.get("message")), f"{first.get('class')}.{first.get('method')}", evidence,
                  "high", "run B with the library version A used, or update the code that calls this module")


def _runtime_error(r: Any) -> dict[str, Any] | None:
    f = next((f for f in r.runtime if f.get("severity") == "error" and f.get("code") != "training_mode"), None)
    if f is None:
        return None
    evidence = [str(f.get("message"))]
    if r.first_divergent_layer:
        evidence.append(f"first divergent layer: {r.first_divergent_layer}")
    return _cause("runtime", f"runtime state differs: {f.get('message')}", str(f.get("where") or f.get("code")),
                  evidence, "medium", "set B's runtime state as A's (see the runtime section)")


def _architecture(r: Any) -> dict[str, Any] | None:
    if not r.only_a:
        return None
    evidence = [f"{len(r.only_a)} of A's layers do not exist in B, e.g. {', '.join(r.only_a[:3])}"]
    if r.only_b:
        evidence.append(f"B has {len(r.only_b)} layer(s) A did not record, e.g. {r.only_b[0]}")
    return _cause("architecture", f"B's model has another architecture: {r.only_a[0]} is missing", r.only_a[0],
                  evidence, "medium", "load the same model class and configuration in B as in A")


def _asset_model(r: Any) -> dict[str, Any] | None:
    if r.first_divergent_stage in _EARLY or not (r.first_divergent_layer or r.first_divergent_stage):
        return None
    files = [f for f in _changed_files(r) if _preprocess_rank(f) is None and not _WEIGHT_FILE.search(_name(f))]
    if not files:
        return None
    name = _name(files[0])
    evidence = [f"asset {_path(f)} {f.get('change')} (sha256 {_short(f.get('a'))} -> {_short(f.get('b'))})"
                for f in files[:5]]
    evidence.append("the preprocess stage matches; the model diverges"
                    + (f", first at {r.first_divergent_layer}" if r.first_divergent_layer else ""))
    return _cause("asset", f"{name} changed between A and B, and B's model diverges", _path(files[0]), evidence,
                  "medium", f"use A's {name} in B")


def _package(r: Any) -> dict[str, Any] | None:
    stage = _stage(r)
    items = _packages_touching(r, stage)
    if not items:
        return None
    top = items[0]
    unrated = [i for i in _unrated_packages(r) if i not in items]
    evidence = [f"package {_item(top)} ({top.get('risk')} risk: {top.get('reason')}); its risk table entry "
                f"touches the {stage} stage", _stage_evidence(r)]
    if len(items) > 1:
        evidence.append(f"{len(items) - 1} other package(s) touch it too: "
                        + ", ".join(_item(i) for i in items[1:4]))
    if unrated:
        evidence.append("also changed, not in the risk table: " + ", ".join(_item(i) for i in unrated[:5])
                        + (f" and {len(unrated) - 5} more" if len(unrated) > 5 else ""))
    others = len(items) - 1 + len(unrated)
    if not others:
        return _cause("package", f"package {_item(top)}: it touches the {stage} stage, where B first diverges",
                      str(top.get("name")), evidence, "medium",
                      f"install {top.get('name')}=={top.get('a')} in B (or test the new version)" if top.get("a")
                      else f"check the package {top.get('name')}")
    # Chosen by the risk table only, among other changes that could do it too: say so,
    # and point at the tool that tells them apart.
    return _cause("package", f"a package change: {top.get('name')} ({top.get('risk')}-risk, touches the {stage} "
                  f"stage) or {others} other changed package(s)", str(top.get("name")), evidence, "low",
                  f"run `parity bisect --good {_side(r.a, 'A')} --bad {_side(r.b, 'B')}` to find which one"
                  + ("" if r.b.get("record") else " (B: a snapshot of B, `parity snapshot -o B.json` in B)"))


def _unrated_packages(r: Any) -> list[Mapping[str, Any]]:
    """Changed packages the risk table does not know (its catch-all row rates them): the
    table cannot rule them out, e.g. a small package the target's own code imports."""
    return [i for i in r.env_diff.get("items") or [] if i.get("category") == "package"
            and _first_row(f"package:{canonical_name(str(i.get('name')))}") == "package:*"]


def _first_row(key: str) -> str:
    return next((row[0] for row in RISK_TABLE if fnmatch.fnmatchcase(key, row[0])), "*")


def _side(info: Mapping[str, Any], default: str) -> str:
    record = info.get("record")
    return str(record).rstrip("/\\") if record else default


def _environment(r: Any) -> dict[str, Any] | None:
    stage = _stage(r)
    items = [i for i in r.env_diff.get("items") or [] if i.get("category") not in ("package", "package_source")
             and i.get("risk") == "high" and stage in (i.get("stages") or [])]
    if not items:
        return None
    top = items[0]
    evidence = [f"{top.get('category')} {_item(top)} (high risk: {top.get('reason')})", _stage_evidence(r)]
    return _cause("environment", f"{top.get('category')} {_item(top)}: it touches the {stage} stage, where B first "
                  "diverges", str(top.get("name")), evidence, "low", "make B's environment match A's for this item")


def _unrated(r: Any) -> dict[str, Any] | None:
    items = _unrated_packages(r)
    if not items:
        return None
    names = ", ".join(_item(i) for i in items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
    return _cause("package", f"a package change the risk table does not know: {names}", str(items[0].get("name")),
                  [f"changed, not in the risk table: {names}", _stage_evidence(r),
                   "no changed asset, weight, training mode, API, runtime setting or known package links to it"],
                  "low", f"run `parity bisect --good {_side(r.a, 'A')} --bad {_side(r.b, 'B')}` to find which one")


def _env_var(r: Any) -> dict[str, Any] | None:
    items = [i for i in r.env_diff.get("items") or [] if i.get("category") == "env_var"]
    if not items:
        return None
    top = items[0]
    names = ", ".join(str(i.get("name")) for i in items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
    return _cause("environment", f"environment variable {_item(top)}: the only kind of difference left",
                  str(top.get("name")),
                  [f"environment variables that differ: {names}", _stage_evidence(r),
                   "no changed asset, weight, training mode, API, runtime setting or package links to it"],
                  "low", f"set {top.get('name')} in B as in A and verify again")


def _unexplained(r: Any) -> dict[str, Any]:
    subject = r.first_introducing_layer or r.first_divergent_layer or r.first_divergent_stage or ""
    where = (f"first introducing layer {r.first_introducing_layer}" if r.first_introducing_layer else
             f"first divergent layer {r.first_divergent_layer}" if r.first_divergent_layer else
             f"first divergent stage {r.first_divergent_stage}")
    evidence = [where, "no changed asset, weight, training mode, API, runtime setting or package links to it"]
    return _cause("unexplained", f"unexplained: {where}", str(subject), evidence, "low",
                  "compare the code that builds B's model with A's")


# ---------------------------------------------------------------------- helpers


def _checked(r: Any, compared: Mapping[str, int]) -> list[str]:
    """What was compared, so a reader knows what the cause was chosen among."""
    files = len(r.assets.get("files") or [])
    out = [f"asset files: {compared.get('files', '?')} compared by sha256, {files} differ"]
    if r.assets.get("weights_compared") is False:
        out.append(str(r.assets.get("note") or "weights not compared").split(";")[0])
    else:
        out.append(f"weights: {compared.get('weights', '?')} tensors compared by hash, "
                   f"{len(r.assets.get('params') or [])} differ")
    out.append(f"stages: first divergent {r.first_divergent_stage}" if r.first_divergent_stage else "stages: all match")
    replayed = [x for x in r.layers if x.get("introduced") is not None or x.get("contains")]
    out.append(f"introduced vs inherited: {len(replayed)} divergent layer(s) replayed on A's inputs" if replayed
               else "introduced vs inherited: not checked (needs --capture full and a live model)")
    out.append("runtime state: training mode, parameter dtypes and devices, autocast, default dtype, threads")
    items = r.env_diff.get("items") or []
    out.append(f"environment: {len(items)} difference(s)" + (
        f", {len(_packages_touching(r, _stage(r)))} package(s) touching the {_stage(r)} stage" if items else ""))
    return [one_line(c) for c in out]


def _changed_files(r: Any) -> list[Mapping[str, Any]]:
    return [f for f in r.assets.get("files") or [] if isinstance(f, Mapping)]


def _preprocess_rank(f: Mapping[str, Any]) -> int | None:
    name = _name(f)
    if name in PREPROCESS_FILES:
        return PREPROCESS_FILES.index(name)
    if _PREPROCESS_LIKE.search(name) and not _WEIGHT_FILE.search(name):
        return len(PREPROCESS_FILES)
    return None


def _name(f: Mapping[str, Any]) -> str:
    return _path(f).replace("\\", "/").rsplit("/", 1)[-1]


def _path(f: Mapping[str, Any]) -> str:
    return str(f.get("relpath") or f.get("path") or "")


def _owned(params: Sequence[Mapping[str, Any]], module: str) -> list[Mapping[str, Any]]:
    """Changed parameters that belong to ``module`` or to a module inside it."""
    module = strip_wrapper_prefix(module)
    out = []
    for p in params:
        owner = str(p.get("name")).rpartition(".")[0]
        if owner == module or module == "" or owner.startswith(module + "."):
            out.append(p)
    return out


def _first_layer(r: Any) -> Mapping[str, Any] | None:
    return next((x for x in r.layers if x.get("key") == r.first_divergent_layer), None)


def _stage(r: Any) -> str:
    return str(r.first_divergent_stage or "model")


def _packages_touching(r: Any, stage: str) -> list[Mapping[str, Any]]:
    return [i for i in r.env_diff.get("items") or []
            if i.get("category") == "package" and stage in (i.get("stages") or [])]


def _stage_evidence(r: Any) -> str:
    stage = next((s for s in r.stages if s.get("stage") == r.first_divergent_stage), None)
    if stage is None:
        return f"layer outputs diverge, first at {r.first_divergent_layer}" if r.first_divergent_layer else \
            "no stage diverges"
    rows = stage.get("rows") or []
    names = sorted({str(x.get("name")) for x in rows if isinstance(x, Mapping)})
    detail = f": {', '.join(names[:3])} differ in {len(rows)} row(s)" if rows else ""
    return f"the {stage.get('stage')} stage diverges{detail}"


def _item(i: Mapping[str, Any]) -> str:
    return f"{i.get('name')} {i.get('a')} -> {i.get('b')}"


def _short(h: Any) -> str:
    return str(h)[:12] if h else "-"
