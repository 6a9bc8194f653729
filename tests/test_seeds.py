"""chainrule.seeds: the lectures' graphs give their numbers and agree with finite differences and PyTorch."""

from __future__ import annotations

import math
from typing import Any

import pytest

from chainrule import Value, gradcheck
from chainrule.seeds import (
    EXAMPLES,
    FIRST_GRAPH,
    NEURON,
    REUSED,
    TINY_XS,
    TINY_YS,
    TWICE,
    Example,
    neuron,
    neuron_by_exp,
)


def _grads(example: Example) -> dict[str, float]:
    out, values = example.build()
    out.backward()
    return {name: values[name].grad for name in example.inputs}


def test_the_first_graph_is_the_lectures() -> None:
    L, v = FIRST_GRAPH.build()
    assert sorted(v) == sorted(["a", "b", "c", "f", "e", "d", "L"])
    assert (v["e"].data, v["d"].data, L.data) == (-6.0, 4.0, -8.0)
    L.backward()
    assert {k: n.grad for k, n in v.items()} == {"a": 6.0, "b": -4.0, "c": -2.0, "f": 4.0, "e": -2.0,
                                                 "d": -2.0, "L": 1.0}


def test_the_neuron_is_the_lectures() -> None:
    o, v = NEURON.build()
    assert o.label == "o" and v["n"].data == pytest.approx(0.8813735870195432)
    assert o.data == pytest.approx(1 / math.sqrt(2), abs=1e-12)
    assert _grads(NEURON) == pytest.approx({"x1": -1.5, "x2": 0.5, "w1": 1.0, "w2": 0.0, "b": 0.5}, abs=1e-12)


def test_tanh_written_through_exp_gives_the_same_value_and_gradients() -> None:
    a, b = NEURON.leaves(), NEURON.leaves()
    o1, o2 = neuron(*a), neuron_by_exp(*b)
    o1.backward()
    o2.backward()
    assert o2.data == pytest.approx(o1.data, abs=1e-12)
    assert [v.grad for v in b] == pytest.approx([v.grad for v in a], abs=1e-12)
    assert o2.op == "/"  # a different graph, not tanh in disguise


def test_a_value_used_twice_accumulates() -> None:
    assert _grads(TWICE) == {"a": 2.0}


def test_two_paths_add_up() -> None:
    # f = ab(a + b): df/da = b(a + b) + ab = 3 - 6, df/db = a(a + b) + ab = -2 - 6
    assert _grads(REUSED) == {"a": -3.0, "b": -8.0}


def test_each_build_has_fresh_leaves() -> None:
    first, second = FIRST_GRAPH.build(), FIRST_GRAPH.build()
    first[0].backward()
    assert second[1]["a"].grad == 0.0 and second[1]["a"] is not first[1]["a"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.graph.__name__)
def test_gradients_agree_with_finite_differences(example: Example) -> None:
    assert gradcheck(example.graph, *example.inputs.values())


@pytest.mark.parametrize("example", [*EXAMPLES, Example("", "", NEURON.inputs, neuron_by_exp)],
                         ids=lambda e: e.graph.__name__)
def test_gradients_agree_with_pytorch(example: Example, torch: Any) -> None:
    # The same function runs on float64 tensors: Values and tensors share + - * / ** tanh exp.
    leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in example.inputs.values()]
    out = example.graph(*leaves)
    out.backward()
    ours, values = example.build()
    ours.backward()
    assert ours.data == pytest.approx(out.item(), rel=1e-12, abs=1e-12)
    assert [values[n].grad for n in example.inputs] == pytest.approx([t.grad.item() for t in leaves],
                                                                     rel=1e-12, abs=1e-12)


def test_the_tiny_training_set() -> None:
    assert len(TINY_XS) == len(TINY_YS) == 4
    assert all(len(x) == 3 for x in TINY_XS) and set(TINY_YS) == {-1.0, 1.0}


def test_examples_name_their_leaves_in_argument_order() -> None:
    for example in EXAMPLES:
        leaves = example.leaves()
        assert [v.label for v in leaves] == list(example.inputs)
        assert all(isinstance(v, Value) and v.data == example.inputs[v.label] for v in leaves)


def test_check_puts_backward_beside_finite_differences() -> None:
    check = FIRST_GRAPH.check()
    assert check.ok and check.gradcheck_failure == "" and check.graph.ok
    assert [r.label for r in check.rows] == ["a", "b", "c", "f", "e", "d", "L"]
    leaves = {r.label: r for r in check.rows if r.finite_difference is not None}
    assert list(leaves) == ["a", "b", "c", "f"]
    assert all(r.finite_difference == pytest.approx(r.grad, abs=1e-6) for r in leaves.values())


def test_check_catches_a_wrong_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    from chainrule import RULES, Rule

    right = RULES["*"]
    wrong = Rule(right.forward, lambda m, out, a, b: (b, 2 * a), right.formula, right.fails_on)
    monkeypatch.setitem(RULES, "*", wrong)
    check = REUSED.check()
    assert not check.ok
    assert check.gradcheck_failure and not check.graph.ok
