"""Tests for chainrule.lm: softmax, rmsnorm, nll, Embedding, Linear, attention, GPT, Bigram, CharMLP.

Oracles: finite differences on every node (check_graph), PyTorch float64 written independently from the
same maths, and the identity one-hot lookup == list indexing (batched == eager to 1e-12)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import torch_gpt
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule import Value, check_graph, load, save
from chainrule.lm import (
    GPT,
    Bigram,
    CausalSelfAttention,
    CharMLP,
    Embedding,
    Linear,
    build,
    nll,
    one_hot,
    parameter_count,
    rmsnorm,
    softmax,
)
from chainrule.nn import build as nn_build
from chainrule.serialize import ModelFileError


def small_gpt(seed: int = 0) -> GPT:
    return GPT(7, n_layer=2, n_embd=8, n_head=2, block_size=5, std=0.5, rng=random.Random(seed))


@given(st.lists(st.floats(-50, 50), min_size=1, max_size=10))
def test_softmax_is_a_distribution(zs: list[float]) -> None:
    p = [v.data for v in softmax([Value(z) for z in zs])]
    assert math.isclose(sum(p), 1.0, rel_tol=1e-12) and all(0 <= x <= 1 for x in p)
    ref = [math.exp(z - max(zs)) for z in zs]
    assert p == pytest.approx([r / sum(ref) for r in ref], rel=1e-12)


def test_softmax_and_nll_are_stable_at_large_logits() -> None:
    zs = [Value(1000.0), Value(999.0), Value(-1000.0)]
    assert softmax(zs)[0].data == pytest.approx(1 / (1 + math.exp(-1)))
    loss = nll(zs, 2)  # p underflows to 0 in float64, -log p is still the finite 2000 + log(1 + e^-1)
    assert loss.data == pytest.approx(2000 + math.log1p(math.exp(-1)))
    loss.backward()
    assert zs[2].grad == pytest.approx(-1.0) and zs[0].grad == pytest.approx(1 / (1 + math.exp(-1)))


@settings(max_examples=40)
@given(st.lists(st.floats(-3, 3), min_size=2, max_size=6), st.data())
def test_nll_gradient_is_softmax_minus_onehot(zs: list[float], data: Any) -> None:
    target = data.draw(st.integers(0, len(zs) - 1))
    vs = [Value(z) for z in zs]
    nll(vs, target).backward()
    p = [v.data for v in softmax([Value(z) for z in zs])]
    assert [v.grad for v in vs] == pytest.approx([pi - (i == target) for i, pi in enumerate(p)], abs=1e-12)


def test_rmsnorm_matches_its_formula_and_finite_differences() -> None:
    xs = [Value(x) for x in (0.3, -1.2, 2.0, 0.5)]
    out = rmsnorm(xs)
    scale = (sum(x.data**2 for x in xs) / 4 + 1e-5) ** -0.5
    assert [o.data for o in out] == pytest.approx([x.data * scale for x in xs], rel=1e-14)
    loss = out[0] * 2.0 + out[3] * out[1]
    loss.backward()
    assert check_graph(loss).ok


def test_every_node_of_a_gpt_step_checks_against_finite_differences() -> None:
    model = small_gpt()
    logits = model([6, 2, 3])
    loss = nll(logits[2], 4) + nll(logits[0], 1)
    loss.backward()
    report = check_graph(loss)
    assert report.ok, report.detail
    assert report.checked > 300


def test_gpt_matches_pytorch(torch: ModuleType) -> None:
    model = small_gpt(3)
    tokens, targets = [6, 0, 4, 2, 5], [0, 4, 2, 5, 6]
    logits = model(tokens)
    losses = [nll(z, t) for z, t in zip(logits, targets, strict=True)]
    loss = losses[0]
    for t in losses[1:]:
        loss = loss + t
    loss = loss * (1 / len(losses))
    loss.backward()
    ref, P = torch_gpt(torch, model, tokens, targets)
    ref.backward()
    assert loss.data == pytest.approx(ref.item(), rel=1e-12)
    for name, p in model.named_parameters():
        assert p.grad == pytest.approx(P[name].grad.item(), rel=1e-9, abs=1e-12), name


def test_attention_is_causal() -> None:
    attn = CausalSelfAttention(4, 2, std=0.5, rng=random.Random(1))
    cache: tuple[list[list[Value]], list[list[Value]]] = ([], [])
    first = attn([Value(x) for x in (0.1, 0.2, -0.3, 0.4)], cache)
    attn([Value(x) for x in (1.0, -2.0, 0.5, 0.0)], cache)  # a later position cannot change the first
    fresh = CausalSelfAttention(4, 2, std=0.5, rng=random.Random(1))
    again = fresh([Value(x) for x in (0.1, 0.2, -0.3, 0.4)], ([], []))
    assert [v.data for v in first] == [v.data for v in again]
    assert [len(w) for w in attn.last_weights] == [2, 2]  # two heads, each over two positions
    assert all(math.isclose(sum(x.data for x in w), 1.0) for w in attn.last_weights)


@pytest.mark.parametrize("make", [lambda r: Bigram(7, rng=r),
                                  lambda r: CharMLP(7, block_size=3, n_embd=4, hidden=9, rng=r)])
def test_batched_context_model_equals_eager(make: Any) -> None:
    model = make(random.Random(5))
    contexts = [[6] * model.block_size, [1] * model.block_size, [6] + [3] * (model.block_size - 1)]
    targets = [2, 0, 6]
    cols = [one_hot([c[p] for c in contexts], 7) for p in range(model.block_size)]
    batch_loss = nll(model(cols), one_hot(targets, 7)).sum()
    batch_loss.backward()
    batch_grads = [p.grad for p in model.parameters()]
    model.zero_grad()
    eager = nll(model(contexts[0]), targets[0]) + nll(model(contexts[1]), targets[1]) + \
        nll(model(contexts[2]), targets[2])
    eager.backward()
    assert batch_loss.data == pytest.approx(eager.data, rel=1e-12)
    assert batch_grads == pytest.approx([p.grad for p in model.parameters()], rel=1e-10, abs=1e-14)


def test_batched_gpt_equals_eager() -> None:
    model = small_gpt(2)
    rows = [[6, 1, 2, 6], [6, 3, 3, 6]]
    cols = [one_hot([r[i] for r in rows], 7) for i in range(4)]
    loss = sum((nll(z, cols[i + 1]).sum() for i, z in enumerate(model(cols[:3]))), Value(0.0))
    loss.backward()
    batch_grads = [p.grad for p in model.parameters()]
    model.zero_grad()
    eager = sum((nll(z, r[i + 1]) for r in rows for i, z in enumerate(model(r[:3]))), Value(0.0))
    eager.backward()
    assert loss.data == pytest.approx(eager.data, rel=1e-12)
    assert batch_grads == pytest.approx([p.grad for p in model.parameters()], rel=1e-9, abs=1e-13)


def test_embedding_reads_its_row_and_gradients_reach_only_it() -> None:
    emb = Embedding(5, 3, rng=random.Random(0))
    row = emb(2)
    assert row is emb.weight[2]
    (row[0] * 3.0 + row[2]).backward()
    grads = [[p.grad for p in r] for r in emb.weight]
    assert grads[2] == [3.0, 0.0, 1.0] and all(g == [0.0] * 3 for i, g in enumerate(grads) if i != 2)


def test_one_hot_rows() -> None:
    cols = one_hot([0, 2, 2], 3)
    assert [list(c.data) for c in cols] == [[1, 0, 0], [0, 0, 0], [0, 1, 1]]
    with pytest.raises(ValueError, match=r"token ids in \[0, 3\)"):
        one_hot([3], 3)


def test_microgpt_sizes_are_the_defaults() -> None:
    model = GPT()
    sizes = (model.vocab_size, model.n_layer, model.n_embd, model.n_head, model.block_size)
    assert sizes == (27, 1, 16, 4, 16)
    assert model.num_parameters() == 4192  # microgpt prints "num params: 4192"
    assert CharMLP().num_parameters() == 27 * 10 + 30 * 200 + 200 + 200 * 27 + 27
    assert Bigram().num_parameters() == 27 * 27
    names = [n for n, _ in model.named_parameters()]
    assert names[0] == "wte.weight.0.0" and names[-1] == "layer0.mlp_fc2.weight.15.63"
    assert "layer0.attn.wq.weight.0.0" in names


def test_gpt_draws_its_weights_in_microgpts_order() -> None:
    rng = random.Random(7)
    expected = [rng.gauss(0, 0.08) for _ in range(4192)]
    model = GPT(rng=random.Random(7))
    # microgpt's order: wte, wpe, lm_head, then attn_wq, wk, wv, wo, mlp_fc1, mlp_fc2; rows out × in
    assert [p.data for p in model.parameters()] == expected


@pytest.mark.parametrize("model", [small_gpt(), Bigram(5), CharMLP(5, block_size=2, n_embd=3, hidden=4)],
                         ids=["gpt", "bigram", "mlp"])
def test_save_and_load_round_trip(model: Any, tmp_path: Path) -> None:
    assert parameter_count(model.config()) == model.num_parameters()
    path = save(model, tmp_path / "model.json")
    twin = load(path)
    assert type(twin) is type(model) and twin.config() == model.config()
    assert twin.state_dict() == model.state_dict()
    assert nn_build(model.config()).config() == model.config()


@pytest.mark.parametrize(("config", "message"), [
    ({"type": "GPT", "vocab_size": 27}, "GPT architecture: missing"),
    ({"type": "Bigram", "vocab_size": 0}, "vocab_size must be a positive integer"),
    ({"type": "Bigram", "vocab_size": True}, "vocab_size must be a positive integer"),
    ({"type": "Trigram"}, "unknown architecture type 'Trigram'"),
])
def test_build_rejects_bad_configs(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(config)


def test_a_model_file_asking_for_too_many_parameters_is_refused_before_building(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    path.write_text('{"format": "chainrule-model", "version": 1, "architecture": {"type": "Bigram", '
                    '"vocab_size": 100000}, "parameter_count": 10000000000, "parameters": {}}')
    with pytest.raises(ModelFileError, match="more than"):
        load(path)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: GPT(n_embd=10, n_head=4), r"n_embd \(10\) must be a multiple of n_head \(4\)"),
    (lambda: GPT(block_size=0), "block_size must be a positive integer, got 0"),
    (lambda: GPT(std=-1.0), "std must be a positive number"),
    (lambda: small_gpt()([6] * 5 + [1]) and small_gpt().step(1, 5, small_gpt().new_caches()),
     "position 5 is past the block size 5"),
    (lambda: Embedding(3, 2)(3), r"token 3 is not in \[0, 3\)"),
    (lambda: Bigram(5)([1, 2]), "a bigram reads 1 token of context, got 2"),
    (lambda: CharMLP(5)([1]), "reads 3 tokens of context, got 1"),
    (lambda: Linear(3, 2)([Value(1.0)]), "got 1 inputs"),
])
def test_bad_input_is_rejected_with_a_clear_message(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_models_leave_the_global_random_alone() -> None:
    state = random.getstate()
    GPT(rng=random.Random(0))
    CharMLP(rng=random.Random(0))
    assert random.getstate() == state
    assert np.isfinite(GPT(rng=random.Random(0))([26])[0][0].data)


@pytest.mark.parametrize("module", [
    Embedding(5, 3), Linear(3, 2), Linear(3, 2, bias=True), CausalSelfAttention(8, 2),
    GPT(vocab_size=7, n_embd=8, n_head=2, n_layer=2), Bigram(6), CharMLP(6, hidden=8)], ids=repr)
def test_parameters_are_the_named_parameters_without_names(module: Any) -> None:
    # parameters() and zero_grad() build no names; named_parameters() names the same Values, in order.
    values = [p for _, p in module.named_parameters()]
    assert len(module.parameters()) == len(values) > 0
    if hasattr(module, "vocab_size"):  # a whole model: its size follows from its config alone
        assert parameter_count(module.config()) == len(values)
    assert all(a is b for a, b in zip(module.parameters(), values, strict=True))
    assert len({id(p) for p in values}) == len(values)  # each once
    for p in values:
        p.grad = 2.0
    module.zero_grad()
    assert all(p.grad == 0.0 for p in values)


def test_an_embedding_read_through_an_index_value_is_one_graph_for_every_token() -> None:
    emb = Embedding(5, 3, rng=random.Random(0))
    token = Value(3.0)
    row = emb(token)  # lookup nodes: the graph does not depend on which token is read
    assert [v.data for v in row] == [v.data for v in emb.weight[3]] and {v.op for v in row} == {"lookup"}
    batch = emb(Value(np.array([0.0, 4.0, 4.0])))
    np.testing.assert_array_equal(batch[1].data, [emb.weight[0][1].data, emb.weight[4][1].data,
                                                  emb.weight[4][1].data])
    loss = sum((v.sum() for v in batch), Value(0.0))
    loss.backward()
    assert [emb.weight[r][0].grad for r in range(5)] == [1.0, 0.0, 0.0, 0.0, 2.0]  # row 4 read twice
    with pytest.raises(ValueError, match=r"lookup failed \(index 5.0 is not an integer in \[0, 5\)\)"):
        emb(Value(5.0))
