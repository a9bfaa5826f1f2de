from __future__ import annotations

import pytest

from parity.demo.tokenizer import (
    CLS,
    SEP,
    UNK,
    WordPieceTokenizer,
    default_vocab,
    tokenizer_from_dir,
)
from parity.errors import TargetError


def tok(lowercase: bool = True) -> WordPieceTokenizer:
    return WordPieceTokenizer(tuple(default_vocab()), lowercase=lowercase)


def test_vocab_is_built_in_code_and_stable():
    vocab = default_vocab()
    assert vocab[:4] == ["[PAD]", UNK, CLS, SEP]
    assert len(vocab) == len(set(vocab)) == len(default_vocab())
    assert "movie" in vocab and "##ing" in vocab and "##z" in vocab


def test_wordpiece_splits_unknown_words_into_pieces():
    assert tok().tokenize("Loved the movies!") == ["loved", "the", "movie", "##s", "!"]
    assert tok().tokenize("zzz") == ["z", "##z", "##z"]
    assert tok().tokenize("héllo") == [UNK]  # a character outside the vocab makes the word unknown


def test_lowercase_setting_changes_the_ids():
    text = "The Movie was GREAT"
    assert tok(True).tokenize(text) == ["the", "movie", "was", "great"]
    assert tok(False).tokenize(text) == [UNK, UNK, "was", UNK]
    assert tok(True).encode(text) != tok(False).encode(text)


def test_batch_is_padded_with_a_mask():
    batch = tok()(["good", "a very boring plot"])
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, 6)
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0]
    assert batch["input_ids"][0, 0].item() == default_vocab().index(CLS)


def test_max_length_truncates_keeping_cls_and_sep():
    short = WordPieceTokenizer(tuple(default_vocab()), max_length=4)
    ids = short.encode("good good good good good")
    assert len(ids) == 4 and ids[-1] == default_vocab().index(SEP)


def test_save_and_load_round_trip(tmp_path):
    tok(False).save(tmp_path / "t")
    loaded = tokenizer_from_dir(tmp_path / "t")
    assert loaded == tok(False)


def test_broken_tokenizer_folder_is_a_target_error(tmp_path):
    with pytest.raises(TargetError, match="unreadable"):
        tokenizer_from_dir(tmp_path)
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with pytest.raises(TargetError, match="special tokens"):
        tokenizer_from_dir(tmp_path)
