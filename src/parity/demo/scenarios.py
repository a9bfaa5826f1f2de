"""The demo's reference pipeline and its labelled drifts.

Each scenario is what really happens when a model moves between machines, done on
purpose and said plainly: a tokenizer setting changed in its config file, one weight
tensor changed, a dropout layer left in training mode, another thread count. Every
builder takes the folder holding the tokenizer assets and returns a
:class:`parity.Pipeline`; ``write_target_file`` turns one into a ``file.py:build``
TARGET the user can re-run with ``parity verify``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity._io import atomic_write_text
from parity.demo.model import build_model
from parity.demo.tokenizer import WordPieceTokenizer, default_vocab, tokenizer_from_dir

#: Raw inputs of the demo: mixed case on purpose, so lower-casing matters.
EXAMPLE_INPUTS = (
    "The Movie was GREAT, I loved the ending!",
    "Terrible acting and a boring plot.",
    "Battery life is fine but the screen is dull",
    "Would not recommend: the service was slow and the food cold",
    "An amazing book, I read it again and again",
    "Worst phone ever. Broken after a day",
    "Nice place, friendly staff, good price",
    "It was OK. Not great, not bad",
)
#: The weight the "perturbed weight" scenario changes: one element, shifted by PERTURBATION.
#: (A whole row shifted by a constant would be invisible: it multiplies a LayerNorm
#: output, whose elements sum to zero.)
PERTURBED_PARAM, PERTURBED_ELEMENT, PERTURBATION = "blocks.1.mlp.0.weight", (3, 5), 0.1
#: The dropout layer the "dropout left on" scenario forgets in training mode.
DROPOUT_MODULE = "blocks.0.dropout"


@dataclass(frozen=True)
class Scenario:
    """One run of the demo: what was changed (said plainly) and the verdict to expect."""

    name: str  # file-safe identifier
    title: str
    description: str
    expected: str  # PASS | FAIL | PASS-with-warnings
    tokenizer: str  # which tokenizer asset folder it reads
    build: Callable[[Path], Any]


def save_tokenizers(assets_root: Path) -> None:
    """Write the reference tokenizer and the drifted one (lower-casing off) as asset folders."""
    vocab = tuple(default_vocab())
    WordPieceTokenizer(vocab, lowercase=True).save(assets_root / "tokenizer")
    WordPieceTokenizer(vocab, lowercase=False).save(assets_root / "tokenizer-cased")


def _pipeline(tokenizer_dir: Path, model: Any, name: str) -> Any:
    from parity.target import Pipeline

    tokenizer = tokenizer_from_dir(tokenizer_dir)
    return Pipeline(
        model=model,
        preprocess=tokenizer,
        postprocess=lambda logits: logits.softmax(dim=-1),
        assets=[tokenizer_dir],
        example_inputs=list(EXAMPLE_INPUTS),
        batch_size=4,
        name=name,
    )


def _model() -> Any:
    return build_model(len(default_vocab()))


def build_reference(tokenizer_dir: Path) -> Any:
    """The model as benchmarked on the research box."""
    return _pipeline(tokenizer_dir, _model(), "demo-reference")


def build_perturbed_weight(tokenizer_dir: Path) -> Any:
    """One element of one weight tensor shifted, as a bad checkpoint copy or conversion would."""
    import torch

    model = _model()
    with torch.no_grad():
        model.get_parameter(PERTURBED_PARAM)[PERTURBED_ELEMENT] += PERTURBATION
    return _pipeline(tokenizer_dir, model, "demo-perturbed-weight")


def build_dropout_left_on(tokenizer_dir: Path) -> Any:
    """One dropout layer left in training mode (a forgotten ``.eval()`` on a submodule)."""
    model = _model()
    model.get_submodule(DROPOUT_MODULE).train()
    return _pipeline(tokenizer_dir, model, "demo-dropout-left-on")


def build_other_threads(tokenizer_dir: Path) -> Any:
    """The same model on another intra-op thread count (a smaller production box)."""
    import torch

    torch.set_num_threads(other_thread_count(torch.get_num_threads()))
    return _pipeline(tokenizer_dir, _model(), "demo-other-threads")


def other_thread_count(current: int) -> int:
    return 1 if current > 1 else 2


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("other-threads", "Another thread count",
             "Same model and assets, run with a different torch.set_num_threads(). "
             "Harmless: the outputs must agree within tolerance.", "PASS", "tokenizer", build_other_threads),
    Scenario("tokenizer-setting", "Tokenizer setting changed",
             "tokenizer_config.json has lowercase=false on B: cased words become [UNK], "
             "so the model is fed different token ids.", "FAIL", "tokenizer-cased", build_reference),
    Scenario("perturbed-weight", "One weight tensor changed",
             f"Element {list(PERTURBED_ELEMENT)} of {PERTURBED_PARAM} shifted by {PERTURBATION} on B, as a bad checkpoint "
             "copy would; parity should name the layer that introduces the error.", "FAIL", "tokenizer",
             build_perturbed_weight),
    Scenario("dropout-left-on", "Dropout left on",
             f"{DROPOUT_MODULE} left in training mode on B (a forgotten .eval()): outputs become "
             "random; parity should report it as a runtime finding.", "FAIL", "tokenizer", build_dropout_left_on),
)

_TARGET_FILE = '''"""parity demo scenario "{name}": {title}.

{description}

Re-run it:  parity verify {record} {self_path}
"""

from pathlib import Path

from parity.demo.scenarios import {builder}


def build():
    return {builder}(Path(__file__).resolve().parent.parent / "assets" / "{tokenizer}")
'''


def write_target_file(path: Path, builder: Callable[[Path], Any], tokenizer: str, scenario: Scenario | None,
                      record: Path) -> Path:
    """Write ``path`` as a TARGET file whose ``build()`` calls ``builder`` on the demo's assets."""
    text = _TARGET_FILE.format(
        name=scenario.name if scenario else "reference",
        title=scenario.title if scenario else "the reference model",
        description=scenario.description if scenario else "The model recorded as the reference (machine A).",
        record=record,
        self_path=path,
        builder=builder.__name__,
        tokenizer=tokenizer,
    )
    return atomic_write_text(path, text)
