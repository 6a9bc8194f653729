"""The engine: every op against PyTorch (float64) and finite differences, the seeds' worked examples,
micrograd's own tests, random expression graphs, depth, repeated backward, memory and bad input."""

from __future__ import annotations

import gc
import math
import random
import sys
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np
import pytest
from conftest import live_nodes
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule
from chainrule import Value, gradcheck, inline, no_grad, numerical_grad, topological_order
from chainrule.numerics import FLOAT_MATH
from chainrule.ops import apply_op, define_op, remove_op
from chainrule.seeds import FIRST_GRAPH, NEURON, REUSED, TWICE, first_graph


@pytest.fixture(scope="session")
def tt(torch: Any) -> Callable[[float], Any]:
    """A float64 leaf tensor of PyTorch (conftest's `torch`: skips locally without it, fails in CI)."""
    return lambda x: torch.tensor(x, dtype=torch.float64, requires_grad=True)


# --- every op: (chainrule function, torch function, sample points away from kinks and poles) -------

UNARY: dict[str, tuple[Callable[..., object], Callable[..., object], list[float]]] = {
    "neg": (lambda a: -a, lambda a: -a, [-1.5, 0.3, 2.0]),
    "exp": (lambda a: a.exp(), lambda a: a.exp(), [-3.0, 0.0, 2.5]),
    "log": (lambda a: a.log(), lambda a: a.log(), [0.1, 1.0, 7.5]),
    "tanh": (lambda a: a.tanh(), lambda a: a.tanh(), [-2.0, 0.0, 0.8813735870195432]),
    "sigmoid": (lambda a: a.sigmoid(), lambda a: a.sigmoid(), [-4.0, 0.0, 3.0]),
    "relu": (lambda a: a.relu(), lambda a: a.relu(), [-2.0, 0.5, 3.0]),
    "abs": (lambda a: abs(a), lambda a: abs(a), [-2.0, 0.5, 3.0]),
    "pow2": (lambda a: a**2, lambda a: a**2, [-3.0, 0.5, 4.0]),
    "pow-1.5": (lambda a: a**-1.5, lambda a: a**-1.5, [0.5, 2.0]),
    "pow0.5": (lambda a: a**0.5, lambda a: a**0.5, [0.25, 9.0]),
    "rpow": (lambda a: 2.0**a, lambda a: 2.0**a, [-1.0, 0.0, 3.5]),
    "radd": (lambda a: 3.0 + a, lambda a: 3.0 + a, [-1.0, 2.0]),
    "rsub": (lambda a: 3.0 - a, lambda a: 3.0 - a, [-1.0, 2.0]),
    "rmul": (lambda a: 3.0 * a, lambda a: 3.0 * a, [-1.0, 2.0]),
    "rtruediv": (lambda a: 3.0 / a, lambda a: 3.0 / a, [-1.0, 2.0]),
    "add-const": (lambda a: a + 3, lambda a: a + 3, [-1.0, 2.0]),
    "sub-const": (lambda a: a - 3, lambda a: a - 3, [-1.0, 2.0]),
    "mul-const": (lambda a: a * 3, lambda a: a * 3, [-1.0, 2.0]),
    "div-const": (lambda a: a / 3, lambda a: a / 3, [-1.0, 2.0]),
}
BINARY: dict[str, tuple[Callable[..., object], Callable[..., object], list[tuple[float, float]]]] = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, [(1.0, 2.0), (-3.5, 0.25)]),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, [(1.0, 2.0), (-3.5, 0.25)]),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, [(1.5, -2.0), (0.0, 3.0)]),
    "truediv": (lambda a, b: a / b, lambda a, b: a / b, [(1.0, 4.0), (-3.0, -0.5)]),
    "pow": (lambda a, b: a**b, lambda a, b: a**b, [(2.0, 3.0), (0.5, -1.5), (3.0, 0.5)]),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary_ops_against_finite_differences(name: str) -> None:
    f, _, points = UNARY[name]
    for x in points:
        v = Value(x)
        out = f(v)
        assert isinstance(out, Value)
        out.backward()
        assert v.grad == pytest.approx(numerical_grad(f, x), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("name", BINARY)
def test_binary_ops_against_finite_differences(name: str) -> None:
    f, _, points = BINARY[name]
    for x, y in points:
        a, b = Value(x), Value(y)
        out = f(a, b)
        assert isinstance(out, Value)
        out.backward()
        da = numerical_grad(lambda t, y=y: f(t, y), x)
        db = numerical_grad(lambda t, x=x: f(x, t), y)
        assert a.grad == pytest.approx(da, rel=1e-6, abs=1e-8)
        assert b.grad == pytest.approx(db, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("name", UNARY)
def test_unary_ops_against_torch(name: str, tt: Callable[[float], Any]) -> None:
    f, tf, points = UNARY[name]
    for x in points:
        v, t = Value(x), tt(x)
        out, tout = f(v), tf(t)
        assert isinstance(out, Value)
        out.backward()
        tout.backward()  # type: ignore[union-attr]
        assert out.data == pytest.approx(tout.item(), abs=1e-12, rel=1e-12)  # type: ignore[union-attr]
        assert v.grad == pytest.approx(t.grad.item(), abs=1e-10, rel=1e-10)


@pytest.mark.parametrize("name", BINARY)
def test_binary_ops_against_torch(name: str, tt: Callable[[float], Any]) -> None:
    f, tf, points = BINARY[name]
    for x, y in points:
        a, b, ta, tb = Value(x), Value(y), tt(x), tt(y)
        out, tout = f(a, b), tf(ta, tb)
        assert isinstance(out, Value)
        out.backward()
        tout.backward()  # type: ignore[union-attr]
        assert out.data == pytest.approx(tout.item(), abs=1e-12, rel=1e-12)  # type: ignore[union-attr]
        assert a.grad == pytest.approx(ta.grad.item(), abs=1e-10, rel=1e-10)
        assert b.grad == pytest.approx(tb.grad.item(), abs=1e-10, rel=1e-10)


def test_op_names_and_parents_in_order() -> None:
    a, b = Value(2.0, "a"), Value(3.0, "b")
    for out, op in [(a + b, "+"), (a * b, "*"), (a / b, "/"), (a**b, "**")]:
        assert out.op == op and out.parents == (a, b) and out._op == op and out._prev == (a, b)
    for out, op in [(a.tanh(), "tanh"), (a.exp(), "exp"), (a.log(), "log"), (a.relu(), "relu"),
                    (a.sigmoid(), "sigmoid")]:
        assert out.op == op and out.parents == (a,)
    assert a.op == "" and a.parents == () and a.local_grads == ()
    c = a + a
    assert c.parents == (a, a)  # two edges to the same node
    r = 2 * a
    assert r.parents[1] is a and r.parents[0].data == 2.0  # order kept for r-ops: 2 * a


def test_every_rule_has_a_formula_and_is_exercised() -> None:
    ops = {"+", "*", "/", "**", "exp", "log", "tanh", "sigmoid", "relu", "abs", "linear", "sum", "max",
           "detach", "lookup"}
    assert set(chainrule.RULES) == ops
    assert all(rule.formula.startswith("∂/∂") for rule in chainrule.RULES.values())


def test_a_rule_set_in_RULES_reaches_the_methods_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The methods hold their rule's functions (no lookup per op), so a change to the table remakes them.
    a, b = Value(0.5), Value(2.0)
    right_tanh, right_add = chainrule.RULES["tanh"], chainrule.RULES["+"]
    wrong_tanh = chainrule.Rule(right_tanh.forward, lambda m, out, x: (7.0,), "")
    monkeypatch.setitem(chainrule.RULES, "tanh", wrong_tanh)
    assert a.tanh().local_grads == (7.0,) and a.tanh().data == math.tanh(0.5)
    monkeypatch.setitem(chainrule.RULES, "+", chainrule.Rule(lambda m, x, y: x - y, right_add.local, ""))
    assert (a + b).data == -1.5 and (b + a).data == 1.5 and (1.0 + a).data == 0.5  # __add__ and __radd__
    monkeypatch.undo()
    assert a.tanh().local_grads == (1.0 - math.tanh(0.5) ** 2,) and (a + b).data == 2.5
    right_sum = chainrule.RULES["sum"]  # the last rule: taken out and put back, the table keeps its order
    del chainrule.RULES["sum"]
    try:
        with pytest.raises(KeyError, match="sum"):
            a.sum()
    finally:
        chainrule.RULES["sum"] = right_sum
    assert a.sum().data == 0.5 and list(chainrule.RULES)[-1] == "sum"


# --- the seeds' worked examples --------------------------------------------------------------------


def test_seed_expression_graph_L_equals_d_times_f() -> None:
    L, v = FIRST_GRAPH.build()
    a, b, c, f, e, d = (v[k] for k in "abcfed")
    L.backward()
    assert L.data == -8.0
    assert (a.grad, b.grad, c.grad, f.grad, d.grad, e.grad, L.grad) == (6.0, -4.0, -2.0, 4.0, -2.0, -2.0, 1.0)


def test_seed_second_example_grads() -> None:
    a, b, c, f = Value(1.0), Value(2.0), Value(3.0), Value(4.0)
    L = first_graph(a, b, c, f)  # the first graph at other values
    d = L.parents[0]
    e = d.parents[0]
    L.backward()
    assert [n.grad for n in (a, b, c, d, e, f, L)] == [8.0, 4.0, 4.0, 4.0, 4.0, 5.0, 1.0]


def test_seed_tanh_neuron() -> None:
    o, v = NEURON.build()
    x1, x2, w1, w2, b, n = (v[k] for k in ("x1", "x2", "w1", "w2", "b", "n"))
    o.backward()
    assert o.data == pytest.approx(math.sqrt(0.5), abs=1e-12)
    assert n.grad == pytest.approx(0.5, abs=1e-12)
    grads = (x1.grad, w1.grad, x2.grad, w2.grad, b.grad)
    assert grads == pytest.approx((-1.5, 1.0, 0.5, 0.0, 0.5), abs=1e-12)


def test_seed_tanh_neuron_matches_torch(torch: Any, tt: Callable[[float], Any]) -> None:
    vals = NEURON.inputs
    o, v = NEURON.build()
    t = {k: tt(x) for k, x in vals.items()}
    to = torch.tanh(t["x1"] * t["w1"] + t["x2"] * t["w2"] + t["b"])
    o.backward()
    to.backward()
    assert o.data == pytest.approx(to.item(), abs=1e-12)
    for k in vals:
        assert v[k].grad == pytest.approx(t[k].grad.item(), abs=1e-10)


def test_value_used_twice_accumulates() -> None:
    b, v = TWICE.build()
    a = v["a"]
    b.backward()
    assert a.grad == 2.0
    f, v = REUSED.build()  # the seeds' second accumulation bug example: (a*b)*(a + b) at -2, 3
    a2, b2 = v["a"], v["b"]
    f.backward()
    assert a2.grad == (b2.data * (a2.data + b2.data) + a2.data * b2.data)
    assert b2.grad == (a2.data * (a2.data + b2.data) + a2.data * b2.data)


# --- micrograd's own two tests, unchanged in spirit ------------------------------------------------


def test_sanity_check(torch: Any) -> None:
    x = Value(-4.0)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    xmg, ymg = x, y

    xt = torch.Tensor([-4.0]).double()
    xt.requires_grad = True
    z = 2 * xt + 2 + xt
    q = z.relu() + z * xt
    h = (z * z).relu()
    y = h + q + q * xt
    y.backward()
    assert ymg.data == y.data.item()
    assert xmg.grad == xt.grad.item()


def test_more_ops(torch: Any) -> None:
    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    amg, bmg, gmg = a, b, g

    a = torch.Tensor([-4.0]).double()
    b = torch.Tensor([2.0]).double()
    a.requires_grad = True
    b.requires_grad = True
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + (b + a).relu()
    d = d + 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    tol = 1e-6
    assert abs(gmg.data - g.data.item()) < tol
    assert abs(amg.grad - a.grad.item()) < tol
    assert abs(bmg.grad - b.grad.item()) < tol


# --- random expression graphs against PyTorch ------------------------------------------------------

# Each step: (op, index of first operand, index of second operand). Operands are drawn from everything
# built so far, so subexpressions are shared. Ops are guarded to stay in their domain, off kinks.
OPS = ["+", "-", "*", "/", "**", "exp", "log", "tanh", "sigmoid", "relu", "rsub", "rdiv", "rpow", "linear"]


def _build(lib: str, leaves: list[object], steps: list[tuple[str, int, int]]) -> list[object]:
    nodes = list(leaves)
    for op, i, j in steps:
        a, b = nodes[i % len(nodes)], nodes[j % len(nodes)]
        squash = lambda x: x.tanh()  # keeps magnitudes tame (a Value and a tensor alike)
        if op == "+":
            out = a + b
        elif op == "-":
            out = a - b
        elif op == "*":
            out = squash(a * b)
        elif op == "/":
            out = a / (b * b + 1.0)  # denominator >= 1
        elif op == "**":
            out = (a * a + 0.5) ** squash(b)  # positive base, exponent in (-1, 1)
        elif op == "exp":
            out = squash(a).exp()
        elif op == "log":
            out = (a * a + 0.1).log()
        elif op == "tanh":
            out = a.tanh()
        elif op == "sigmoid":
            out = a.sigmoid()
        elif op == "relu":
            out = (a + 0.37).relu()  # shift away from the kink at 0 for the sampled leaves
        elif op == "rsub":
            out = 1.5 - a
        elif op == "rdiv":
            out = 2.0 / (a * a + 1.0)
        elif op == "linear":  # a + a*b + b*1.5 as one node; torch spells it out
            out = squash(chainrule.linear([a, b], [b, 1.5], a) if lib == "cr" else a + a * b + b * 1.5)
        else:
            out = 1.7 ** squash(a)
        nodes.append(out)
    return nodes


@settings(max_examples=60, deadline=None)
@given(
    leaves=st.lists(st.floats(-2, 2, allow_nan=False).filter(lambda x: abs(x + 0.37) > 1e-3),
                    min_size=2, max_size=5),
    steps=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50), st.integers(0, 50)),
                   min_size=10, max_size=30),
)
def test_random_graphs_match_torch(leaves: list[float], steps: list[tuple[str, int, int]],
                                   tt: Callable[[float], Any]) -> None:
    steps = steps + [(op, i, i + 1) for i, op in enumerate(OPS)]  # every op appears at least once
    cr_leaves = [Value(x) for x in leaves]
    t_leaves = [tt(x) for x in leaves]
    cr_nodes = _build("cr", cr_leaves, steps)
    t_nodes = _build("torch", t_leaves, steps)
    # The output uses every node, so every node gets a gradient through several paths.
    cr_out = sum(cr_nodes[len(leaves):], Value(0.0))
    t_out = sum(t_nodes[len(leaves):], tt(0.0))
    assert isinstance(cr_out, Value)
    cr_out.backward()
    t_out.backward()
    assert cr_out.data == pytest.approx(t_out.item(), rel=1e-12, abs=1e-12)
    for v, t in zip(cr_leaves, t_leaves, strict=True):
        assert v.grad == pytest.approx(t.grad.item(), rel=1e-10, abs=1e-10)


# --- backward: depth, order, repeated calls, memory ------------------------------------------------


def test_million_node_chain_at_default_recursion_limit() -> None:
    assert sys.getrecursionlimit() <= 10_000  # we never raise it
    x, c = Value(0.5, "x"), Value(1e-6, "c")
    y = x
    for _ in range(1_000_000):
        y = y + c
    y.backward()
    assert x.grad == 1.0
    assert c.grad == 1_000_000.0
    assert y.data == pytest.approx(1.5)


def test_topological_order_puts_parents_first_and_is_deterministic() -> None:
    a, b = Value(1.0, "a"), Value(2.0, "b")
    c = a * b
    d = c + a
    e = d * c
    order = topological_order(e)
    assert len(order) == 5 and order[-1] is e
    position = {id(n): i for i, n in enumerate(order)}
    for n in order:
        assert all(position[id(p)] < position[id(n)] for p in n.parents)
    assert [n.label for n in topological_order(e)] == [n.label for n in order]


def test_repeated_backward_doubles_leaves_and_resets_intermediates() -> None:
    a, b = Value(2.0), Value(-3.0)
    e = a * b
    d = e + a
    d.backward()
    first = (a.grad, b.grad, e.grad, d.grad)
    d.backward()
    assert (a.grad, b.grad) == (2 * first[0], 2 * first[1])
    assert (e.grad, d.grad) == (first[2], first[3])  # non-leaves describe this pass only


def test_backward_on_a_leaf_accumulates() -> None:
    a = Value(5.0)
    a.backward()
    a.backward()
    assert a.grad == 2.0


def test_graph_is_freed_by_refcount_without_the_garbage_collector() -> None:
    gc.collect()
    gc.disable()
    try:
        x = Value(1.0)
        before = live_nodes()
        y = (x * 2.0 + 1.0).tanh() * x
        y.backward()
        assert live_nodes() == before + 6  # 2.0, *, 1.0, +, tanh, * (the collector is off: nothing freed)
        del y
        assert live_nodes() == before  # freed at once, constants too: no reference cycles
        assert x.grad != 0.0  # the leaf we still hold keeps its grad
    finally:
        gc.enable()


# --- the public surface ----------------------------------------------------------------------------


def test_data_is_stored_as_python_float() -> None:
    for x in [3, 2.5, True, np.float32(1.5), np.int64(7), np.float64(-2.0), Fraction(1, 4)]:
        v = Value(x)
        assert type(v.data) is float and v.data == float(x)
    assert type((Value(np.float64(2.0)) * np.float64(3.0)).data) is float


@pytest.mark.parametrize("bad", ["1.0", None, 1 + 2j, [1.0], (1.0,), {"a": 1}, np.array([[1.0, 2.0]])])
def test_non_real_data_is_rejected_naming_the_type(bad: object) -> None:
    with pytest.raises(TypeError, match=type(bad).__name__):
        Value(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["x", None, [1.0], 1j])
def test_unsupported_operands_raise_pythons_type_error(bad: object) -> None:
    v = Value(1.0)
    ops = (lambda: v + bad, lambda: v * bad, lambda: v - bad, lambda: v / bad, lambda: v**bad,
           lambda: bad + v, lambda: bad - v, lambda: bad * v, lambda: bad / v, lambda: bad**v)
    for op in ops:
        with pytest.raises(TypeError):  # Python's own message (we return NotImplemented)
            op()
    with pytest.raises(TypeError, match=r"unsupported operand type.*'Value' and 'NoneType'"):
        v + None  # type: ignore[operator]


def test_nan_and_inf_inputs_propagate() -> None:
    assert math.isnan((Value(float("nan")) * 2.0).data)
    assert math.isnan(Value(float("nan")).relu().data)
    assert (Value(float("inf")) + 1.0).data == math.inf
    assert Value(float("inf")).tanh().data == 1.0


def test_tanh_and_sigmoid_are_stable_at_extremes() -> None:
    for x, t, s in [(1000.0, 1.0, 1.0), (-1000.0, -1.0, 0.0), (710.0, 1.0, 1.0), (-745.0, -1.0, 0.0)]:
        v, w = Value(x), Value(x)
        vt, ws = v.tanh(), w.sigmoid()
        vt.backward()
        ws.backward()
        assert vt.data == t and v.grad == 0.0
        assert ws.data == pytest.approx(s, abs=1e-300) and w.grad == pytest.approx(0.0, abs=1e-300)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Value(-1.0, label="x").log(), ValueError,
         r"log of non-positive input: Value\(data=-1.0, label='x'\)"),
        (lambda: Value(0.0, label="z").log(), ValueError,
         r"log of non-positive input: Value\(data=0.0, label='z'\)"),
        (lambda: Value(1.0, label="n") / Value(0.0, label="d"), ZeroDivisionError,
         "division by zero: .*label='d'"),
        (lambda: 1.0 / Value(0.0, label="d"), ZeroDivisionError, "division by zero: .*label='d'"),
        (lambda: Value(1000.0, label="big").exp(), OverflowError,
         r"exp overflow: Value\(data=1000.0, label='big'\)"),
        (lambda: Value(0.0, label="z") ** -1, ZeroDivisionError, r"\*\* failed .*label='z'"),
        (lambda: Value(-8.0, label="neg") ** (1 / 3), ValueError, r"\*\* failed .*label='neg'"),
        (lambda: Value(10.0, label="b") ** 400, OverflowError, r"\*\* failed .*label='b'"),
    ],
)
def test_domain_errors_name_the_op_and_the_value(
    make: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make()


def test_relu_kink_convention_matches_torch() -> None:
    v = Value(0.0)
    v.relu().backward()
    assert v.grad == 0.0  # relu'(0) = 0, as PyTorch


def test_pow_with_constant_exponent_at_negative_base_gives_zero_exponent_grad() -> None:
    x = Value(-3.0)
    y = x**2
    y.backward()
    assert x.grad == -6.0 and y.parents[1].grad == 0.0  # documented convention (PyTorch: nan)


def test_repr_label_and_attributes() -> None:
    assert repr(Value(6.0)) == "Value(data=6.0, grad=0.0)"
    v = Value(2.0, label="x")
    assert repr(v) == "Value(data=2.0, grad=0.0, label='x')"
    v.label = "y"
    assert v.label == "y" and v.grad == 0.0
    with pytest.raises(AttributeError):
        v._prev = ()
    with pytest.raises(AttributeError):
        v.anything_else = 1  # type: ignore[attr-defined]  # __slots__


def test_identity_hashing_and_comparisons_on_data() -> None:
    a, b = Value(1.0), Value(1.0)
    assert a != b and a == a and len({a, b}) == 2  # identity, never value equality
    assert Value(1.0) < Value(2.0) and Value(2.0) >= 2.0 and Value(3.0) > 2 and Value(1.0) <= 1.0
    assert max([Value(1.0), Value(3.0), Value(2.0)]).data == 3.0


def test_no_grad_records_nothing_and_detach_passes_no_gradient() -> None:
    a = Value(2.0, "a")
    with no_grad():
        b = (a * 3.0).tanh()
    assert b.parents == () and b.op == "" and b.local_grads == ()
    c = a * 3.0  # recording is back on after the block
    assert c.parents[0] is a
    d = c.detach()  # a node of the graph (compile recomputes it), with no local derivative: no edge back
    assert d.data == c.data and d.op == "detach" and d.parents == (c,) and d.local_grads == ()
    (d * a).backward()
    assert c.grad == 0.0 and a.grad == d.data
    # Not even a NaN passes (a slope of 0 would pass 0·NaN): as torch's detach
    x = Value(2.0)
    y = x * 1.0
    (y.detach() * math.inf * 0.0 + y).backward()  # d(root)/d(detach) is inf·0 = NaN
    assert x.grad == 1.0
    z = Value(0.0)
    ((z**0.5).detach() + z).backward()  # behind the detach, sqrt's slope at 0 is inf: never met
    assert z.grad == 1.0
    with no_grad():
        assert c.detach().parents == ()


def test_no_grad_restores_recording_after_an_error() -> None:
    with pytest.raises(ZeroDivisionError), no_grad():
        Value(1.0) / 0.0
    assert (Value(1.0) * 2.0).parents != ()


# --- linear: a neuron's b + w·x as one node ---------------------------------------------------------


def _chain(w: list[Value], x: list[Value], b: Value) -> Value:
    out = b
    for wi, xi in zip(w, x, strict=True):
        out = out + wi * xi
    return out


@given(st.lists(st.tuples(st.floats(-5, 5), st.floats(-5, 5)), min_size=1, max_size=20), st.floats(-5, 5))
@settings(max_examples=60, deadline=None)
def test_linear_is_the_chain_of_plus_and_times_exactly(pairs: list[tuple[float, ...]], b0: float) -> None:
    grads = []
    for build in (lambda w, x, b: chainrule.linear(w, x, b), _chain):
        w = [Value(p[0]) for p in pairs]
        x = [Value(p[1]) for p in pairs]
        b = Value(b0)
        out = build(w, x, b).tanh()
        out.backward()
        grads.append((out.data, b.grad, [v.grad for v in w], [v.grad for v in x]))
    assert grads[0] == grads[1]  # same floats, same order of additions: identical, not just close


def test_linear_is_one_node_with_parents_b_then_weights_then_inputs() -> None:
    w, x, b = [Value(2.0), Value(-3.0)], [Value(0.5), Value(4.0)], Value(1.0)
    out = chainrule.linear(w, x, b)
    assert out.op == "linear" and out.data == 1.0 + 2.0 * 0.5 + -3.0 * 4.0
    assert out.parents == (b, *w, *x)
    assert out.local_grads == (1.0, 0.5, 4.0, 2.0, -3.0)


def test_linear_matches_torch(torch: Any) -> None:
    rng = random.Random(7)
    ws, xs, b0 = [rng.uniform(-2, 2) for _ in range(6)], [rng.uniform(-2, 2) for _ in range(6)], 0.3
    w, x, b = [Value(v) for v in ws], [Value(v) for v in xs], Value(b0)
    out = chainrule.linear(w, x, b).sigmoid()
    out.backward()
    tw = torch.tensor(ws, dtype=torch.float64, requires_grad=True)
    tx = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    tout = torch.sigmoid(tb + tw @ tx)
    tout.backward()
    assert out.data == pytest.approx(tout.item(), abs=1e-12)
    assert [v.grad for v in w] == pytest.approx(tw.grad.tolist(), abs=1e-10)
    assert [v.grad for v in x] == pytest.approx(tx.grad.tolist(), abs=1e-10)
    assert b.grad == pytest.approx(tb.grad.item(), abs=1e-10)


def test_linear_against_finite_differences_with_a_value_used_as_weight_and_input() -> None:
    # Σ p·p over the same Values (the L2 penalty): each p is a parent twice and gets 2p.
    def f(p: Value, q: Value) -> Value:
        return chainrule.linear([p, q, p], [p, q, 3.0], 0.5)

    assert gradcheck(f, 1.5, -0.7)
    p, q = Value(1.5), Value(-0.7)
    f(p, q).backward()
    assert (p.grad, q.grad) == (2 * 1.5 + 3.0, 2 * -0.7)


def test_linear_rejects_mismatched_lengths_and_non_numbers() -> None:
    with pytest.raises(ValueError, match="as many weights as inputs, got 2 and 1"):
        chainrule.linear([Value(1.0), Value(2.0)], [Value(1.0)], Value(0.0))
    with pytest.raises(TypeError, match="linear takes Values or real numbers, got str"):
        chainrule.linear([Value(1.0)], ["x"], Value(0.0))  # type: ignore[list-item]


def test_linear_records_nothing_under_no_grad() -> None:
    with chainrule.no_grad():
        out = chainrule.linear([Value(1.0)], [Value(2.0)], Value(3.0))
    assert out.data == 5.0 and out.parents == () and out.op == ""


def test_sum_and_mean_of_a_number_are_the_number() -> None:
    a = Value(3.0)
    s, m = a.sum(), a.mean()
    assert (s.data, s.op, m.data) == (3.0, "sum", 3.0)
    m.backward()
    assert a.grad == 1.0


# --- ** where b·a^(b-1) has no float value: its limits, as PyTorch ---------------------------------


@pytest.mark.parametrize(("a", "b"), [(0.0, 0.5), (0.0, 0.0), (0.0, 1.0), (0.0, 2.0), (0.0, 3.5),
                                      (1e-300, -1.01), (-1e-154, -2.0), (-1e-154, -1.0)])
def test_power_slope_at_zero_and_past_overflow_matches_torch(a: float, b: float,
                                                             tt: Callable[[float], Any]) -> None:
    # sqrt at 0 has an infinite slope (not an error: the forward value is fine); a**0 is flat; a slope
    # too steep for a float is ±inf, signed as b·a^(b-1) would be.
    x = Value(a)
    out = x**b
    out.backward()
    t = tt(a)
    tout = t**b
    tout.backward()
    assert t.grad is not None
    assert (out.data, x.grad) == (tout.item(), t.grad.item())


def test_a_zero_base_with_a_variable_exponent() -> None:
    e = Value(0.5)
    out = 0.0**e
    out.backward()
    assert (out.data, e.grad) == (0.0, 0.0)  # d(0^b)/db = 0^b·log(0): 0 by convention where a <= 0


# --- higher-order gradients: the rules read with Values (backward(create_graph=True)) ---------------


def _second(f: Callable[..., object], *xs: float) -> tuple[list[float], list[list[float]]]:
    """First and second derivatives of f at xs, by backward(create_graph=True) then backward again."""
    vs = [Value(x) for x in xs]
    out = f(*vs)
    assert isinstance(out, Value)
    out.backward(create_graph=True)
    first = [v.grad for v in vs]
    rows = []
    for g in first:
        for v in vs:
            v.grad = 0.0
        if isinstance(g, Value):
            g.backward()
        rows.append([float(v.grad) for v in vs])
    return [float(g) for g in first], rows


def _torch_second(torch: Any, f: Callable[..., object], *xs: float) -> tuple[list[float], list[list[float]]]:
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    first = torch.autograd.grad(f(*ts), ts, create_graph=True, allow_unused=True)
    rows = []
    for g in first:
        if g is None or not g.requires_grad:
            rows.append([0.0] * len(ts))
            continue
        second = torch.autograd.grad(g, ts, allow_unused=True, retain_graph=True)
        rows.append([0.0 if s is None else s.item() for s in second])
    return [0.0 if g is None else g.item() for g in first], rows


def _linear3(w0: object, w1: object, x0: object, x1: object, b: object) -> object:
    if isinstance(w0, Value):
        return chainrule.linear([w0, w1], [x0, x1], b)  # type: ignore[list-item]
    return b + w0 * x0 + w1 * x1  # type: ignore[operator]


@pytest.mark.parametrize("name", [*UNARY, *BINARY, "linear", "pow-value-exponent", "rpow-value"])
def test_second_derivatives_of_every_op_match_torch(name: str, torch: Any) -> None:
    rng = random.Random(name)
    if name in UNARY:
        f, tf, points = UNARY[name]
        cases = [(f, tf, (x + rng.uniform(-0.05, 0.05),)) for x in points]
    elif name in BINARY:
        f, tf, pairs = BINARY[name]
        cases = [(f, tf, (x + rng.uniform(-0.05, 0.05), y + rng.uniform(-0.05, 0.05))) for x, y in pairs]
    elif name == "linear":
        cases = [(_linear3, _linear3, tuple(rng.uniform(-2, 2) for _ in range(5))) for _ in range(3)]
    elif name == "pow-value-exponent":  # both sides Values, the exponent inside a graph too
        g = lambda a, b: (a * 1.5) ** b.tanh()
        cases = [(g, g, (rng.uniform(0.3, 2.0), rng.uniform(-1.5, 1.5))) for _ in range(3)]
    else:
        g = lambda a: 3.0 ** (a * a)
        cases = [(g, g, (rng.uniform(-1.0, 1.0),)) for _ in range(3)]
    for f, tf, xs in cases:
        first, second = _second(f, *xs)
        tfirst, tsecond = _torch_second(torch, tf, *xs)
        assert first == pytest.approx(tfirst, rel=1e-10, abs=1e-12)
        for row, trow in zip(second, tsecond, strict=True):
            assert row == pytest.approx(trow, rel=1e-9, abs=1e-11), (name, xs)


def _nth(f: Callable[[Value], Value], x0: float, n: int) -> float:
    x = Value(x0)
    y: object = f(x)
    for k in range(n):
        x.grad = 0.0
        if not isinstance(y, Value):
            return 0.0
        y.backward(create_graph=k < n - 1)
        y = x.grad
    return float(x.grad)


@pytest.mark.parametrize("op", ["tanh", "sigmoid"])
def test_third_derivative_of_tanh_and_sigmoid_matches_torch(op: str, torch: Any,
                                                            tt: Callable[[float], Any]) -> None:
    for x0 in (-1.7, -0.2, 0.4, 2.3):
        t = tt(x0)
        y = getattr(t, op)()
        for _ in range(3):
            (y,) = torch.autograd.grad(y, t, create_graph=True)
        assert _nth(lambda v: getattr(v, op)(), x0, 3) == pytest.approx(y.item(), rel=1e-10, abs=1e-12)


def test_second_derivative_against_finite_differences_of_the_first() -> None:
    f = lambda v: (v * v).sigmoid() * v.exp() / (1.0 + v**2)
    for x0 in (-0.8, 0.1, 1.4):
        first = lambda t: chainrule.grad(f)(t)
        assert _nth(f, x0, 2) == pytest.approx(numerical_grad(first, x0), rel=1e-6)


def test_create_graph_grads_are_values_built_from_the_rules() -> None:
    x = Value(0.5, "x")
    o = x.tanh()
    o.label = "o"
    o.backward(create_graph=True)
    g = x.grad
    assert isinstance(g, Value) and g.data == pytest.approx(1 - math.tanh(0.5) ** 2)
    nodes = topological_order(g)
    assert o in nodes and x in nodes  # d/dx tanh is built from out = tanh(x): 1 - out*out
    assert [n.op for n in nodes if n.parents].count("*") >= 1
    assert not any(n.op == "+" and any(p.data == 0.0 and not p.parents for p in n.parents) for n in nodes)


def test_create_graph_leaves_unreached_leaves_at_zero_and_accumulates_like_backward() -> None:
    x, unused = Value(2.0), Value(5.0)
    y = x * x + unused * 0.0
    y.backward(create_graph=True)
    assert float(x.grad) == 4.0
    assert isinstance(unused.grad, Value) and unused.grad.data == 0.0  # reached, through * 0.0
    z = Value(1.0)
    beside = x * z  # z shares x but is not behind the output below: backward never reaches it
    (x * 3.0).backward(create_graph=True)  # accumulates onto x's Value grad, as backward does
    assert float(x.grad) == 7.0
    assert type(z.grad) is float and z.grad == 0.0 and type(beside.grad) is float and beside.grad == 0.0


def test_create_graph_on_a_batch_is_refused_clearly() -> None:
    x = Value(np.array([1.0, 2.0]))
    loss = (x * x).sum()
    with pytest.raises(ValueError, match=r"create_graph=True.*not on batches"):
        loss.backward(create_graph=True)


def test_plain_backward_grads_stay_floats() -> None:
    x = Value(0.3)
    (x.tanh() * x).backward()
    assert type(x.grad) is float


# --- item, float, abs ---------------------------------------------------------------------------------


def test_item_and_float_give_the_number_and_refuse_a_batch() -> None:
    v = Value(2.5)
    assert v.item() == 2.5 and float(v) == 2.5 and type(v.item()) is float
    b = Value(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="batch"):
        b.item()
    with pytest.raises(TypeError, match="batch"):
        float(b)


def test_abs_is_an_op_with_slope_zero_at_zero_as_torch() -> None:
    for x0 in (-2.0, 0.0, 3.0):
        x = Value(x0)
        y = abs(x)
        assert y.op == "abs" and y.data == abs(x0) and x.abs().data == abs(x0)
        y.backward()
        expected = {-2.0: -1.0, 0.0: 0.0, 3.0: 1.0}[x0]
        assert x.grad == expected


def test_abs_slope_matches_torch(tt: Callable[[float], Any]) -> None:
    for x0 in (-2.0, 0.0, 3.0):
        x = Value(x0)
        abs(x).backward()
        t = tt(x0)
        t.abs().backward()
        assert x.grad == t.grad.item()


# --- threads, in-place edits, pickling --------------------------------------------------------------


def test_no_grad_is_per_thread() -> None:
    import threading

    inside, release, errors = threading.Event(), threading.Event(), []

    def hold_no_grad() -> None:
        with no_grad():
            inside.set()
            release.wait(5)

    holder = threading.Thread(target=hold_no_grad)
    holder.start()
    inside.wait(5)
    try:
        x = Value(3.0)
        (x * x).backward()  # another thread is inside no_grad: this one still records
        if x.grad != 6.0:
            errors.append(x.grad)
    finally:
        release.set()
        holder.join()
    assert errors == []


def test_overlapping_no_grad_blocks_in_many_threads_never_leak() -> None:
    import threading

    wrong = []
    barrier = threading.Barrier(4)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        for _ in range(2000):
            if rng.random() < 0.5:
                with no_grad():
                    v = Value(1.0) * 2.0
                    if v.parents:
                        wrong.append("recorded inside no_grad")
            else:
                x = Value(3.0)
                (x * x).backward()
                if x.grad != 6.0:
                    wrong.append(x.grad)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    x = Value(2.0)
    assert (x * x).parents  # recording is on again in the main thread


def test_enable_grad_records_inside_no_grad() -> None:
    with no_grad():
        with chainrule.enable_grad():
            assert (Value(1.0) * 2.0).parents
        assert not (Value(1.0) * 2.0).parents


def test_pickle_and_deepcopy_never_recurse_through_the_graph() -> None:
    import copy
    import pickle

    x = Value(1.0, "x")
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.label = "y"
    y.backward()
    for clone in (pickle.loads(pickle.dumps(y)), copy.deepcopy(y), copy.copy(y)):
        assert clone is not y and clone.data == y.data and clone.grad == y.grad and clone.label == "y"
        assert clone.parents == () and clone.op == ""  # a non-leaf comes back as a leaf
    leaf = pickle.loads(pickle.dumps(x))
    assert (leaf.data, leaf.grad, leaf.label) == (x.data, x.grad, "x")


def test_models_pickle_and_deepcopy_as_before() -> None:
    import copy
    import pickle

    from chainrule.nn import MLP

    model = MLP(2, [3, 1])
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert [p.data for p in clone.parameters()] == [p.data for p in model.parameters()]
        assert all(a is not b for a, b in zip(clone.parameters(), model.parameters(), strict=True))
        out = clone([0.5, -1.0])
        assert isinstance(out, Value) and out.data == model([0.5, -1.0]).data  # type: ignore[union-attr]


def test_the_float_path_imports_neither_numpy_nor_the_batch_module() -> None:
    import subprocess

    code = ("import sys, chainrule; from chainrule import Value\n"
            "x = Value(0.5); y = (x.tanh() * x + x ** 2).relu(); y.backward()\n"
            "print('numpy' in sys.modules, 'chainrule.batch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- the seeds' by-hand backward: node._backward(), one node at a time ------------------------------------


def test_the_seeds_first_by_hand_step() -> None:
    # 000, In [5]-[6]: c = a + b, then c's own step by hand.
    a, b = Value(2.0), Value(4.0)
    c = a + b
    assert (a.grad, b.grad, c.grad) == (0.0, 0.0, 0.0)
    c.grad = 1  # initialize dc/dc = 1, as the cell does (an int)
    c._backward()
    assert (a.grad, b.grad, c.grad) == (1.0, 1.0, 1)


def test_the_seeds_a_plus_a_lesson_accumulates() -> None:
    # 000, In [7] shows the bug (a.grad 1.0); In [9], after the fix, 2.0: b = a + a = 2a.
    a = Value(3.0, label="a")
    b = a + a
    b.label, b.grad = "b", 1
    b._backward()
    assert (a.grad, b.grad) == (2.0, 1)


def test_the_seeds_neuron_by_hand_in_order_matches_backward() -> None:
    # 002, In [35]-[37]: every node's _backward() from o back to the leaves (a leaf's does nothing).
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.881373, label="b")
    x1w1 = x1 * w1
    x2w2 = x2 * w2
    x1w1x2w2 = x1w1 + x2w2
    n = x1w1x2w2 + b
    o = n.tanh()
    o.grad = 1.0
    for node in (o, n, b, x1w1x2w2, x2w2, x1w1, w2, w1, x2, x1):
        node._backward()
    by_hand = [v.grad for v in (x1, x2, w1, w2, b, n)]
    assert by_hand == pytest.approx([-1.5, 0.5, 1.0, 0.0, 0.5, 0.5], abs=1e-5)  # b is 6.881373, rounded
    for v in (x1, x2, w1, w2, b):
        v.grad = 0.0
    o.backward()  # the automatic pass gives the very same floats: it runs the same step per node
    assert [v.grad for v in (x1, x2, w1, w2, b, n)] == by_hand


def test_backward_by_hand_on_a_leaf_does_nothing() -> None:
    x = Value(1.5)
    x.grad = 2.0
    x._backward()
    assert (x.data, x.grad) == (1.5, 2.0)


# --- max and detach: the ops a softmax's shift is made of ---------------------------------------------


MAX_POINTS = [(1.0, 3.0, 2.0), (2.0, 2.0, -1.0), (5.0, 5.0, 5.0), (-0.5, -2.0, -0.25)]


@pytest.mark.parametrize("xs", MAX_POINTS)
def test_max_matches_torch_amax_with_ties_first_and_second_derivatives(xs: tuple[float, ...],
                                                                       torch: Any) -> None:
    vs = [Value(x) for x in xs]
    # squares first, so that the second derivative is not 0: d²/dx² max(x², ...) is 2 at the arg-max
    out = apply_op("max", *[v * v for v in vs]) * Value(1.5)
    out.backward(create_graph=True)
    firsts = [v.grad for v in vs]
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    tout = torch.amax(torch.stack([t * t for t in ts]), dim=0) * 1.5
    tfirsts = torch.autograd.grad(tout, ts, create_graph=True)
    assert out.data == tout.item()
    for g, tg in zip(firsts, tfirsts, strict=True):
        assert g.data == pytest.approx(tg.item(), rel=1e-12, abs=1e-15)
    for k, g in enumerate(firsts):  # each row of the Hessian
        for v in vs:
            v.grad = 0.0
        if g.parents:
            g.backward()
        trow = torch.autograd.grad(tfirsts[k], ts, retain_graph=True, allow_unused=True)
        assert [v.grad for v in vs] == pytest.approx([0.0 if t is None else t.item() for t in trow])


def test_max_on_batches_compiles_and_recomputes_from_new_data(torch: Any) -> None:
    a, b = Value(np.array([1.0, 4.0, -2.0, 3.0])), Value(np.array([2.0, 4.0, -3.0, -1.0]))
    c = 0.5
    out = (apply_op("max", a, b * 2.0, c) * a).sum()
    out.backward()
    ta, tb = (torch.tensor(x.data, requires_grad=True) for x in (a, b))
    half = torch.full((4,), 0.5, dtype=torch.float64)
    tout = (torch.amax(torch.stack([ta, tb * 2.0, half]), dim=0) * ta).sum()
    tout.backward()
    assert out.data == pytest.approx(tout.item(), rel=1e-12)
    np.testing.assert_allclose(a.grad, ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=1e-12)
    prog = chainrule.compile(out)
    a.data, b.data = np.array([-5.0, 0.0, 7.0, 1.0]), np.array([1.0, 1.0, 1.0, 1.0])
    a.grad = b.grad = 0.0
    want = (np.maximum.reduce([a.data, 2.0 * b.data, np.full(4, 0.5)]) * a.data).sum()
    assert prog() == pytest.approx(want, rel=1e-12)  # the max is recomputed, not frozen at capture


def test_max_of_a_nan_is_nan_and_the_nan_input_takes_the_slope() -> None:
    a, b = Value(1.0), Value(math.nan)
    out = apply_op("max", a, b)
    assert math.isnan(out.data) and out.local_grads == (0.0, 1.0)
    batch = apply_op("max", Value(np.array([1.0, math.nan])), 0.5)
    assert batch.data[0] == 1.0 and math.isnan(batch.data[1])


def test_a_detached_shift_is_recomputed_by_compile() -> None:
    x = [Value(v) for v in (1.0, 3.0, 2.0)]
    shift = apply_op("max", *x).detach()
    loss = sum(((v - shift).exp() for v in x), Value(0.0)).log() + shift  # logsumexp
    loss.backward()
    eager = [v.grad for v in x]
    softmax = np.exp([1.0, 3.0, 2.0]) / np.exp([1.0, 3.0, 2.0]).sum()
    assert eager == pytest.approx(softmax.tolist(), rel=1e-12)  # the gradient of logsumexp
    prog = chainrule.compile(loss)
    for v, new in zip(x, (1000.0, 1002.0, 999.0), strict=True):
        v.data, v.grad = new, 0.0
    value = prog()  # exp(1002) would overflow: the shift follows the new logits
    assert value == pytest.approx(1002.0 + math.log(math.exp(-2.0) + 1.0 + math.exp(-3.0)), rel=1e-12)


# --- lookup: an index that is data -------------------------------------------------------------------


def test_lookup_reads_the_entry_and_sends_its_gradient_there(torch: Any) -> None:
    table = [Value(x) for x in (0.5, -1.25, 2.0, 0.75)]
    i = Value(2.0)
    out = apply_op("lookup", i, *table)
    assert out.data == 2.0 and out.op == "lookup" and out.local_grads == (0.0, 0.0, 0.0, 1.0, 0.0)
    loss = out * out * 3.0 + apply_op("lookup", Value(0.0), *table)
    loss.backward(create_graph=True)
    firsts = [t.grad for t in table]
    tw = torch.tensor([t.data for t in table], dtype=torch.float64, requires_grad=True)
    tloss = (torch.index_select(tw, 0, torch.tensor([2])) ** 2 * 3.0).sum() + tw[0]
    (tg,) = torch.autograd.grad(tloss, tw, create_graph=True)
    assert [float(g.data if isinstance(g, Value) else g) for g in firsts] == pytest.approx(tg.tolist())
    assert i.grad.data == 0.0  # an index is data: its slope is 0
    for t in table:
        t.grad = 0.0
    firsts[2].backward()  # d/dw₂ of 6·w₂: the second derivative, from the constants the rule gives
    (th,) = torch.autograd.grad(tg[2], tw)
    assert [t.grad for t in table] == pytest.approx(th.tolist())


def test_lookup_of_a_batch_of_indices_scatters_its_gradient_as_torch_embedding(torch: Any) -> None:
    rows = [[Value((3 * r + c) / 7.0) for c in range(3)] for r in range(5)]
    ids = np.array([4, 1, 1, 0, 4, 4])
    index = Value(ids.astype(float))
    cols = [apply_op("lookup", index, *[row[c] for row in rows]) for c in range(3)]
    loss = (cols[0] * cols[1] + cols[2].tanh()).sum()
    loss.backward()
    tw = torch.tensor([[3 * r + c for c in range(3)] for r in range(5)], dtype=torch.float64) / 7.0
    tw.requires_grad_()
    e = torch.nn.functional.embedding(torch.tensor(ids), tw)
    tloss = (e[:, 0] * e[:, 1] + e[:, 2].tanh()).sum()
    tloss.backward()
    assert loss.data == pytest.approx(tloss.item(), rel=1e-12)
    got = [[v.grad for v in row] for row in rows]  # row 4 read three times, row 1 twice, 2 and 3 never
    np.testing.assert_allclose(got, tw.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_one_compiled_program_serves_every_batch_of_tokens() -> None:
    table = [[Value(0.1 * (r - c)) for c in range(2)] for r in range(4)]
    index = Value(np.array([0.0, 3.0, 2.0]))
    loss = sum((apply_op("lookup", index, *[row[c] for row in table]).exp() for c in range(2)),
               Value(0.0)).sum()
    prog = chainrule.compile(loss)
    for new in ([1.0, 1.0, 0.0], [3.0, 2.0, 1.0]):
        index.data = np.array(new)
        want = sum(math.exp(table[int(t)][c].data) for t in new for c in range(2))
        for row in table:
            for v in row:
                v.grad = 0.0
        assert prog() == pytest.approx(want, rel=1e-12)
        counts = [new.count(float(r)) for r in range(4)]
        assert [table[r][0].grad for r in range(4)] == pytest.approx(
            [counts[r] * math.exp(table[r][0].data) for r in range(4)])


@pytest.mark.parametrize("bad", [2.5, -1.0, 4.0, math.nan])
def test_a_lookup_index_outside_the_table_is_refused(bad: float) -> None:
    table = [Value(1.0), Value(2.0), Value(3.0), Value(4.0)]
    with pytest.raises(ValueError, match=r"lookup failed \(index .* not an integer in \[0, 4\)\)"):
        apply_op("lookup", Value(bad), *table)
    with pytest.raises(ValueError, match=r"index not an integer in \[0, 4\) at element 1"):
        apply_op("lookup", Value(np.array([1.0, bad])), *table)


# --- the float fast path made from the rules (chainrule.inline) against the calls it replaces ---------

FAST_UNARY = ("exp", "log", "tanh", "sigmoid", "relu", "abs", "sum", "detach")
FAST_BINARY = ("+", "*", "/", "**")
ANY_FLOAT = st.one_of(st.floats(allow_nan=False), st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, -2.0, 1e308,
                                                                  -1e308, 710.0, -745.5, 5e-324]))


def _same_float(a: Any, b: Any) -> bool:
    return (a != a and b != b) or (a == b and math.copysign(1.0, a) == math.copysign(1.0, b))


def _outcome(run: Callable[[], Value]) -> tuple[Any, ...]:
    """What an op gave: its node's data, local derivatives, op and parents' data, or its error and message."""
    try:
        node = run()
    except Exception as err:  # the very error is the result compared
        return type(err), str(err)
    return node.data, node.local_grads, node.op, tuple(p.data for p in node.parents)


def _same(got: tuple[Any, ...], want: tuple[Any, ...]) -> bool:
    if isinstance(want[0], type):
        return got == want
    return (len(got) == len(want) and _same_float(got[0], want[0]) and got[2:] == want[2:]
            and len(got[1]) == len(want[1]) and all(map(_same_float, got[1], want[1])))


def _called(op: str, reflected: bool = False) -> Callable[..., Value]:
    """The method for op with the calls of forward and local kept: `_method` with the inliner turned off."""
    from chainrule import engine

    real, engine.inlined = engine.inlined, lambda *_: None  # type: ignore[assignment]
    try:
        return engine._method(op, reflected)
    finally:
        engine.inlined = real


def test_the_built_in_ops_run_the_inlined_fast_path() -> None:
    # Fails if the inliner silently gave up: the methods would still work, through the calls.
    methods = [Value.__add__, Value.__radd__, Value.__mul__, Value.__rmul__, Value.__truediv__,
               Value.__rtruediv__, Value.__pow__, Value.__rpow__, *(getattr(Value, op) for op in FAST_UNARY)]
    for method in methods:
        inner = method if inline.source(method) is not None else method.__closure__[0].cell_contents
        assert inline.source(inner) is not None, method
        assert not {"forward", "local"} & set(inner.__code__.co_freevars), method
        assert "_node" not in inner.__code__.co_names, method  # the node builder's lines, not a call
    exp, mul = str(inline.source(Value.exp)), str(inline.source(Value.__mul__))
    assert "out = FLOAT_MATH_exp(x)" in exp and "_node_node.local_grads = (out,)" in exp
    assert "out = x * y" in mul and "_node_node.local_grads = (y, x)" in mul and "return _node_node" in mul
    assert "_node_local_grads = (FLOAT_MATH_zero_safe_mul(" in str(inline.source(Value.__pow__))  # first
    for made in (Value._apply.func, chainrule.engine._lift):  # apply and _lift make their nodes so too
        assert "_node" not in made.__code__.co_names and inline.source(made) is not None
    assert inline.source(_called("*")) is None


@settings(max_examples=300, deadline=None)
@given(x=ANY_FLOAT)
def test_the_inlined_unary_ops_give_the_calls_floats_bit_for_bit(x: float) -> None:
    for op in FAST_UNARY:
        a = Value(x, label="a")
        assert _same(_outcome(lambda: getattr(Value, op)(a)), _outcome(lambda: _called(op)(a))), (op, x)  # noqa: B023


@settings(max_examples=300, deadline=None)
@given(x=ANY_FLOAT, y=ANY_FLOAT)
def test_the_inlined_binary_ops_give_the_calls_floats_bit_for_bit(x: float, y: float) -> None:
    names = {"+": "add", "*": "mul", "/": "truediv", "**": "pow"}
    for op, name in names.items():
        a, b = Value(x, label="a"), Value(y, label="b")
        fast, called = getattr(Value, f"__{name}__"), _called(op)
        fast_r, called_r = getattr(Value, f"__r{name}__"), _called(op, reflected=True)
        for args in ((a, b), (a, y), (a, int(y) if abs(y) < 1e6 else y)):
            assert _same(_outcome(lambda: fast(*args)), _outcome(lambda: called(*args))), (op, args)  # noqa: B023
        assert _same(_outcome(lambda: fast_r(b, x)), _outcome(lambda: called_r(b, x))), (op, x, y)  # noqa: B023


@pytest.mark.parametrize(("op", "xs", "error", "message"), [
    ("/", (1.0, 0.0), ZeroDivisionError, r"division by zero: Value\(data=1.0, label='a'\) / "),
    ("log", (0.0,), ValueError, r"log of non-positive input: Value\(data=0.0, label='a'\)"),
    ("exp", (1000.0,), OverflowError, r"exp overflow: Value\(data=1000.0, label='a'\)"),
    ("**", (0.0, -1.0), ZeroDivisionError, r"\*\* failed .*label='a'"),
])
def test_the_inlined_fast_path_names_the_op_and_values_as_the_calls_do(
        op: str, xs: tuple[float, ...], error: type[Exception], message: str) -> None:
    values = [Value(x, label="ab"[i]) for i, x in enumerate(xs)]
    method = {"/": Value.__truediv__, "**": Value.__pow__}.get(op) or getattr(Value, op)
    for run in (method, _called(op)):
        with pytest.raises(error, match=message):
            run(*values)
    assert _outcome(lambda: method(*values)) == _outcome(lambda: _called(op)(*values))


def test_the_inlined_fast_path_keeps_no_grad_batches_and_foreign_types() -> None:
    a = Value(2.0)
    with no_grad():
        assert a.exp().parents == () and (a * a).parents == () and (3 + a).op == ""
    assert (a * a).op == "*" and (3 + a).parents[0].data == 3.0  # `3 + a` shows the 3 as a leaf
    assert Value.__mul__(a, "x") is NotImplemented and Value.__rmul__(a, "x") is NotImplemented
    batch = Value(np.array([1.0, 2.0])) * a
    assert type(batch).__name__ == "Batch" and list(batch.data) == [2.0, 4.0]


def test_a_rule_that_cannot_be_inlined_runs_through_its_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    right = chainrule.RULES["tanh"]
    scale = 2.0

    def forward(m: Any, x: Any) -> Any:  # a def'd function
        return m.tanh(x)

    cases = [chainrule.Rule(lambda m, x: scale * m.tanh(x), lambda m, out, x: (scale,), ""),  # a closure
             chainrule.Rule(forward, right.local, ""),
             chainrule.Rule(right.forward, partial(right.local), "")]  # a C callable: no source to read
    for rule, want in zip(cases, (2 * math.tanh(0.5), math.tanh(0.5), math.tanh(0.5)), strict=True):
        monkeypatch.setitem(chainrule.RULES, "tanh", rule)
        assert inline.source(Value.tanh) is None
        y = Value(0.5).tanh()
        assert y.data == want and y.local_grads == rule.local(FLOAT_MATH, y.data, 0.5)
    monkeypatch.undo()
    assert inline.source(Value.tanh) is not None


def test_a_define_op_rule_is_inlined_and_gives_the_calls_floats() -> None:
    op = define_op("softplus_inlined", forward=lambda m, x: m.log(1.0 + m.exp(x)),
                   local=lambda m, out, x: (m.sigmoid(x),), formula="∂/∂x = σ(x)")
    try:
        method = Value.softplus_inlined  # type: ignore[attr-defined]
        assert "FLOAT_MATH_log(1.0 + FLOAT_MATH_exp(x))" in str(inline.source(method))
        called = _called("softplus_inlined")
        for x in (-800.0, -3.0, -0.0, 0.0, 0.4, 30.0, 709.0, 710.0, 1e308):
            a = Value(x, label="a")
            assert _same(_outcome(lambda: method(a)), _outcome(lambda: called(a))), x  # noqa: B023
            assert _same(_outcome(lambda: op(a)), _outcome(lambda: called(a))), x  # noqa: B023
        with pytest.raises(OverflowError, match="softplus_inlined failed"):
            method(Value(710.0))
    finally:
        remove_op("softplus_inlined")


def test_a_new_rule_in_RULES_is_inlined_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(chainrule.RULES, "*", chainrule.Rule(lambda m, a, b: a * b + 1.0,
                                                             lambda m, out, a, b: (b, a + 0.0), ""))
    made = str(inline.source(Value.__mul__))
    assert "out = x * y + 1.0" in made and "(y, x + 0.0)" in made
    node = Value(2.0) * Value(3.0)
    assert node.data == 7.0 and node.local_grads == (3.0, 2.0) and (2.0 * Value(3.0)).data == 7.0
    monkeypatch.undo()
    assert (Value(2.0) * Value(3.0)).data == 6.0
    right = chainrule.RULES["exp"]
    del chainrule.RULES["exp"]
    try:
        assert inline.source(Value.exp) is None  # a deleted rule: the calls, which raise
        with pytest.raises(KeyError, match="exp"):
            Value(1.0).exp()
    finally:
        chainrule.RULES["exp"] = right
    assert inline.source(Value.exp) is not None and Value(0.0).exp().data == 1.0
