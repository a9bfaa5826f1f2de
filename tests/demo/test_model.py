from __future__ import annotations

import torch

from parity.demo.model import build_model
from parity.demo.tokenizer import WordPieceTokenizer, default_vocab


def _batch():
    return WordPieceTokenizer(tuple(default_vocab()))(["The movie was great", "a boring plot"])


def test_weights_are_seeded_and_independent_of_the_global_rng():
    torch.manual_seed(1)
    a = build_model(200)
    torch.manual_seed(2)
    b = build_model(200)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(build_model(200, seed=1).head.weight, a.head.weight)


def test_model_is_in_eval_mode_and_classifies():
    model = build_model(len(default_vocab()))
    assert not any(m.training for m in model.modules())
    logits = model(**_batch())
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    assert torch.equal(logits, model(**_batch()))  # eval mode: dropout is off, runs repeat


def test_padding_does_not_change_a_row():
    model = build_model(len(default_vocab()))
    tok = WordPieceTokenizer(tuple(default_vocab()))
    alone = model(**tok(["The movie was great"]))
    padded = model(**tok(["The movie was great", "a much longer review with many more words in it"]))[:1]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)
