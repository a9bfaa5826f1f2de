from __future__ import annotations

import pytest
import torch

from parity.demo import scenarios as sc
from parity.target import Pipeline, load_target


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    sc.save_tokenizers(root)
    return root


def test_scenarios_are_labelled_with_expected_verdicts():
    by_name = {s.name: s for s in sc.SCENARIOS}
    assert {n: s.expected for n, s in by_name.items()} == {
        "other-threads": "PASS", "tokenizer-setting": "FAIL", "perturbed-weight": "FAIL", "dropout-left-on": "FAIL"}
    assert all(s.title and s.description for s in sc.SCENARIOS)


def test_reference_pipeline(assets):
    p = sc.build_reference(assets / "tokenizer")
    assert isinstance(p, Pipeline) and list(p.example_inputs) == list(sc.EXAMPLE_INPUTS)
    probs = p.postprocess(p.call_model(p.preprocess(list(sc.EXAMPLE_INPUTS))))
    torch.testing.assert_close(probs.sum(dim=-1), torch.ones(len(sc.EXAMPLE_INPUTS)))


def test_cased_tokenizer_gives_other_ids(assets):
    ref, cased = sc.build_reference(assets / "tokenizer"), sc.build_reference(assets / "tokenizer-cased")
    texts = list(sc.EXAMPLE_INPUTS)
    assert not torch.equal(ref.preprocess(texts)["input_ids"], cased.preprocess(texts)["input_ids"])


def test_perturbed_weight_changes_exactly_one_tensor(assets):
    ref = sc.build_reference(assets / "tokenizer").model.state_dict()
    bad = sc.build_perturbed_weight(assets / "tokenizer").model.state_dict()
    changed = [k for k in ref if not torch.equal(ref[k], bad[k])]
    assert changed == [sc.PERTURBED_PARAM]


def test_dropout_left_on_is_one_training_submodule(assets):
    model = sc.build_dropout_left_on(assets / "tokenizer").model
    assert [n for n, m in model.named_modules() if m.training] == [sc.DROPOUT_MODULE]


def test_other_threads_changes_the_thread_count(assets):
    before = torch.get_num_threads()
    try:
        sc.build_other_threads(assets / "tokenizer")
        assert torch.get_num_threads() == sc.other_thread_count(before) != before
    finally:
        torch.set_num_threads(before)


def test_target_file_is_a_loadable_target(tmp_path):
    sc.save_tokenizers(tmp_path / "assets")
    (tmp_path / "targets").mkdir()
    scenario = sc.SCENARIOS[2]
    path = sc.write_target_file(tmp_path / "targets" / "x.py", scenario.build, scenario.tokenizer, scenario,
                                tmp_path / "reference")
    assert f"parity verify {tmp_path / 'reference'} {path}" in path.read_text()
    loaded = load_target(f"{path}:build")
    assert loaded.pipeline.name == "demo-perturbed-weight"
    assert [str(a) for a in loaded.pipeline.assets] == [str((tmp_path / "assets" / "tokenizer").resolve())]
