"""A decoder-only transformer (Llama architecture from a transformers config, random
seeded weights, nothing downloaded) running a generation-style workload: one prefill,
then greedy decode steps that feed the KV cache back in. The causal LM is called once
per step, so every module runs many times per batch and the cache tensors are part of
each call's output (``lm#0/out/past_key_values/layers/0/keys``...).

TARGETs (``parity record benchmarks/llm_target.py:build_tiny --inputs prompts.txt``):

- ``build_tiny``: 4 layers, hidden 128, vocab 1024 (about 1M parameters, 4 MB), for tests;
- ``build_tiny_planted``: the same with one element of ``layers.1.self_attn.q_proj.weight``
  changed (B in a test that must FAIL);
- ``build_small`` / ``build_small_planted``: 6 layers, hidden 512, vocab 8192 (25 M
  parameters, 100 MB), for a slow test;
- ``build_1b``: TinyLlama-1.1B's shape (22 layers, hidden 2048, GQA 32/4 heads, vocab
  32000; 1.1 B parameters, 4.4 GB in float32), for benchmarks/llm_record.py.

Raw inputs are prompts (text); preprocess turns each into ``PROMPT_TOKENS`` byte-level
token ids (repeated or cut to length, so a batch needs no padding).
"""

from __future__ import annotations

from typing import Any

PROMPT_TOKENS = 32
NEW_TOKENS = 4
EXAMPLES = ["The quick brown fox jumps over the lazy dog.", "parity proves the model is the same model."]

TINY = {"vocab_size": 1024, "hidden_size": 128, "intermediate_size": 352, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256}
SMALL = {"vocab_size": 8192, "hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 6,
         "num_attention_heads": 8, "num_key_value_heads": 2, "max_position_embeddings": 512}
ONE_B = {"vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
         "num_attention_heads": 32, "num_key_value_heads": 4, "max_position_embeddings": 2048}


def _generator(new_tokens: int) -> Any:
    import torch

    class Generate(torch.nn.Module):
        """Prefill + greedy decode with a KV cache: ``lm`` runs ``new_tokens`` times."""

        def __init__(self, lm: Any) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids: Any, attention_mask: Any) -> dict[str, Any]:
            out = self.lm(input_ids=input_ids, attention_mask=attention_mask, use_cache=True)
            tokens = [out.logits[:, -1].argmax(-1)]
            for _ in range(new_tokens - 1):
                attention_mask = torch.cat([attention_mask, attention_mask[:, -1:]], dim=1)
                out = self.lm(input_ids=tokens[-1][:, None], attention_mask=attention_mask,
                              past_key_values=out.past_key_values, use_cache=True)
                tokens.append(out.logits[:, -1].argmax(-1))
            return {"tokens": torch.stack(tokens, 1), "logits": out.logits[:, -1]}

    return Generate


def build_model(shape: dict[str, int], seed: int = 0, new_tokens: int = NEW_TOKENS) -> Any:
    """The generation module around a Llama causal LM of ``shape`` with weights from ``seed``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(**shape, tie_word_embeddings=False)
    config._attn_implementation = "sdpa"
    lm = LlamaForCausalLM(config).eval()
    return _generator(new_tokens)(lm).eval()


def tokenize(texts: list[Any], vocab: int, length: int = PROMPT_TOKENS) -> dict[str, Any]:
    """Byte-level ids (+3, modulo ``vocab``), each prompt repeated or cut to ``length``."""
    import torch

    rows = []
    for text in texts:
        ids = [3 + b for b in str(text).encode("utf-8")] or [3]
        ids = (ids * (length // len(ids) + 1))[:length]
        rows.append([i % vocab for i in ids])
    ids_t = torch.tensor(rows, dtype=torch.long)
    return {"input_ids": ids_t, "attention_mask": torch.ones_like(ids_t)}


def _pipeline(shape: dict[str, int], model: Any, batch_size: int) -> Any:
    from parity.target import Pipeline

    vocab = shape["vocab_size"]
    return Pipeline(model=model, preprocess=lambda texts: tokenize(texts, vocab), example_inputs=EXAMPLES,
                    batch_size=batch_size, name="llama-generate")


def build_tiny() -> Any:
    return _pipeline(TINY, build_model(TINY), batch_size=2)


def _planted(shape: dict[str, int]) -> Any:
    """The model of ``shape`` with one weight element changed by 0.05 (weights are N(0, 0.02))."""
    import torch

    model = build_model(shape)
    with torch.no_grad():
        model.lm.model.layers[1].self_attn.q_proj.weight[5, 7] += 0.05
    return _pipeline(shape, model, batch_size=2)


def build_tiny_planted() -> Any:
    return _planted(TINY)


def build_small() -> Any:
    return _pipeline(SMALL, build_model(SMALL), batch_size=2)


def build_small_planted() -> Any:
    return _planted(SMALL)


def build_1b() -> Any:
    return _pipeline(ONE_B, build_model(ONE_B), batch_size=1)
