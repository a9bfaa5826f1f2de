"""A small WordPiece tokenizer built in code, with the settings real ones have.

Its vocabulary and settings are written to, and read from, two asset files
(``vocab.txt``, one token per line, and ``tokenizer_config.json``) so that a changed
setting shows up in a record the way it does in real life: as a changed asset file
*and* as different token ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from parity._io import atomic_write_json, atomic_write_text
from parity.errors import TargetError

PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
SPECIALS = (PAD, UNK, CLS, SEP)
VOCAB_FILE, CONFIG_FILE = "vocab.txt", "tokenizer_config.json"

# Whole words of the demo's domain (short product and film reviews), all lower case:
# a cased input only finds them when the tokenizer lower-cases first.
_WORD_TEXT = """
the a an and or but not no very really quite so too this that it is was were be
i you we they he she my our your their of to in on for with at by from as
movie film story plot acting actor actors music ending scene scenes book phone
battery screen price service food staff place time day night
good great excellent wonderful amazing fine nice love loved like liked enjoy
bad terrible awful boring poor hate hated dull slow broken late cold
again never ever more most less best worst all some much many
recommend would will buy watch read return
"""
_WORDS = tuple(_WORD_TEXT.split())
_SUFFIXES = ("s", "ed", "ing", "ly", "er", "est", "y", "ful", "less", "ness")
_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"


def default_vocab() -> list[str]:
    """The demo vocabulary: specials, whole words, ##suffixes, then single characters
    (word starts and ##continuations) so any lower-case ASCII word can be spelled."""
    vocab = list(SPECIALS)
    vocab += sorted(set(_WORDS))
    vocab += [f"##{s}" for s in _SUFFIXES]
    vocab += list(_CHARS) + [f"##{c}" for c in _CHARS]
    return list(dict.fromkeys(vocab))


@dataclass(frozen=True)
class WordPieceTokenizer:
    """Greedy longest-match-first WordPiece over whitespace/punctuation words.

    ``lowercase`` folds the text before splitting (the setting the demo flips);
    ``max_length`` counts [CLS] and [SEP].
    """

    vocab: tuple[str, ...]
    lowercase: bool = True
    max_length: int = 32

    @cached_property
    def ids(self) -> dict[str, int]:
        return {tok: i for i, tok in enumerate(self.vocab)}

    def tokenize(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        pieces: list[str] = []
        for word in re.findall(r"\w+|[^\w\s]", text):
            pieces.extend(self._word_pieces(word))
        return pieces

    def _word_pieces(self, word: str) -> list[str]:
        ids, pieces, start = self.ids, [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else f"##{word[start:end]}"
                if piece in ids:
                    pieces.append(piece)
                    start = end
                    break
            else:  # no piece matches: the whole word is unknown, as in BERT
                return [UNK]
        return pieces

    def encode(self, text: str) -> list[int]:
        ids = self.ids
        tokens = [CLS, *self.tokenize(text)[: self.max_length - 2], SEP]
        return [ids.get(t, ids[UNK]) for t in tokens]

    def __call__(self, texts: Sequence[str]) -> dict[str, Any]:
        """A padded batch: ``{"input_ids", "attention_mask"}`` as int64 tensors."""
        import torch

        encoded = [self.encode(str(t)) for t in texts]
        width = max((len(e) for e in encoded), default=2)
        input_ids = torch.zeros((len(encoded), width), dtype=torch.int64)
        mask = torch.zeros((len(encoded), width), dtype=torch.int64)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
            mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def save(self, directory: Path) -> list[Path]:
        """Write vocab.txt and tokenizer_config.json into ``directory`` (created)."""
        directory.mkdir(parents=True, exist_ok=True)
        config = {"lowercase": self.lowercase, "max_length": self.max_length, "tokenizer": "wordpiece"}
        return [
            atomic_write_text(directory / VOCAB_FILE, "\n".join(self.vocab) + "\n"),
            atomic_write_json(directory / CONFIG_FILE, config),
        ]


def tokenizer_from_dir(directory: Path) -> WordPieceTokenizer:
    """Load a tokenizer saved by :meth:`WordPieceTokenizer.save`."""
    try:
        vocab = tuple((directory / VOCAB_FILE).read_text("utf-8").splitlines())
        config = json.loads((directory / CONFIG_FILE).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TargetError(f"{directory}: demo tokenizer files unreadable ({exc})", fix="run `parity demo` again") from None
    if not set(SPECIALS) <= set(vocab):
        raise TargetError(f"{directory / VOCAB_FILE}: special tokens missing", fix="run `parity demo` again")
    return WordPieceTokenizer(vocab=vocab, lowercase=bool(config.get("lowercase", True)),
                              max_length=int(config.get("max_length", 32)))
