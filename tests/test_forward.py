"""chainrule.forward: jvp (forward mode, the rules read with tangents) and hvp (forward-over-reverse), checked
against torch.func.jvp in float64, finite differences and reverse mode; the operation counts of both modes."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import batched_tanh, demo_mlp
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule
from chainrule import RULES, Value, grad, hessian, linear, no_grad, numerical_grad
from chainrule.engine import topological_order
from chainrule.forward import Dual, forward_pass, hvp, jvp, op_counts, tangent_of
from chainrule.ops import apply_op
from chainrule.seeds import NEURON

Fn = Callable[..., Any]


def torch_jvp(torch: ModuleType, f: Fn, primals: tuple[float, ...], tangents: tuple[float, ...]
              ) -> tuple[float, float]:
    """torch.func.jvp on float64 scalars, as floats."""
    as_t = lambda xs: tuple(torch.tensor(x, dtype=torch.float64) for x in xs)
    out, t = torch.func.jvp(f, as_t(primals), as_t(tangents))
    return out.item(), t.item()


def same(ours: float, theirs: float, rel: float = 1e-12) -> bool:
    """Equal to `rel`, where inf equals inf (of the same sign) and nan equals nan."""
    if math.isnan(theirs) or math.isinf(theirs):
        return (math.isnan(ours) and math.isnan(theirs)) or ours == theirs
    return ours == pytest.approx(theirs, rel=rel, abs=rel)


# --- every op of RULES: (our f, torch's f or None for the same code, points, with awkward ones) ----------
# The same lambda runs on Values and on tensors where their methods agree (tanh, exp, relu, abs, ...).
def _torch_linear(b: Any, w0: Any, w1: Any, x0: Any, x1: Any) -> Any:
    return b + w0 * x0 + w1 * x1


def _torch_max(*xs: Any) -> Any:
    import torch

    return torch.amax(torch.stack(xs), dim=0)


def _torch_lookup(*xs: Any) -> Any:
    import torch

    return torch.index_select(torch.stack(xs), 0, torch.tensor([1]))[0]


OPS: dict[str, tuple[Fn, Fn | None, list[tuple[float, ...]]]] = {
    "+": (lambda a, b: a + b, None, [(0.3, -1.2), (2.0, 2.0)]),
    "*": (lambda a, b: a * b, None, [(0.3, -1.2), (0.0, 5.0)]),
    "/": (lambda a, b: a / b, None, [(0.3, -1.2), (-2.0, 0.25)]),
    "**": (lambda a, b: a**b, None, [(0.7, 1.3), (2.0, -0.5), (0.0, 2.0), (1.0, 0.0)]),
    "exp": (lambda x: x.exp(), None, [(-1.5,), (0.0,), (3.0,)]),
    "log": (lambda x: x.log(), None, [(0.2,), (1.0,), (7.5,)]),
    "tanh": (lambda x: x.tanh(), None, [(-0.8,), (0.0,), (2.5,)]),
    "sigmoid": (lambda x: x.sigmoid(), None, [(-40.0,), (0.0,), (1.7,)]),
    "relu": (lambda x: x.relu(), None, [(-0.5,), (0.0,), (0.9,)]),  # relu'(0) = 0, as torch
    "abs": (lambda x: abs(x), None, [(-0.5,), (0.0,), (0.9,)]),  # abs'(0) = 0, as torch
    "linear": (lambda b, w0, w1, x0, x1: linear([w0, w1], [x0, x1], b), _torch_linear,
               [(0.1, -0.7, 1.3, 2.0, -0.4), (0.0, 0.0, 0.0, 0.0, 0.0)]),
    "max": (lambda a, b, c: apply_op("max", a, b, c), _torch_max, [(0.3, -1.2, 2.0), (2.0, 2.0, -1.0)]),
    "detach": (lambda x: x.detach() * x, None, [(0.7,), (-2.0,)]),  # only the second factor's tangent
    "lookup": (lambda x0, x1, x2: apply_op("lookup", Value(1.0), x0, x1, x2), _torch_lookup,
               [(0.3, -1.2, 2.0)]),
    "- and reflected": (lambda a, b: 2.0 - a * b / 3.0 + 1.0 / b - a**2.0 + 2.0**a, None, [(0.4, -1.1)]),
    # awkward points of **: an infinite slope (sqrt at 0), a flat x**0 at 0, a negative base to a constant
    # power, a base of 0 to a varying power
    "x**0.5 at 0": (lambda x: x**0.5, None, [(0.0,)]),
    "x**0 at 0": (lambda x: x**0.0, None, [(0.0,)]),
    "x**2 at -3": (lambda x: x**2.0, None, [(-3.0,)]),
    "0**y": (lambda y: 0.0**y, lambda y: 0.0**y, [(2.0,), (0.5,)]),
}


def test_every_op_of_the_rules_is_covered() -> None:
    assert set(RULES) - set(OPS) == {"sum"}  # sum reduces a batch: forward mode refuses batches (below)


@pytest.mark.parametrize("name", OPS)
def test_every_op_matches_torch_func_jvp(name: str, torch: ModuleType) -> None:
    ours, theirs, points = OPS[name]
    rng = random.Random(name)
    for point in points:
        for tangent in ([1.0] * len(point), [rng.uniform(-2, 2) for _ in point]):
            value, t = jvp(ours, point, tangent)
            expected_value, expected_t = torch_jvp(torch, theirs or ours, point, tuple(tangent))
            assert same(value, expected_value) and same(t, expected_t), (point, tangent, t, expected_t)


def test_a_negative_base_to_a_varying_power_takes_the_rules_convention(torch: ModuleType) -> None:
    # d(a**b)/db = a**b·log(a) has no real value at a = -3: the rule takes 0 (numerics.log_or_zero) where
    # torch takes nan, so b's term adds nothing (torch: nan, even with b's tangent 0) and a's is torch's
    # own for a constant exponent.
    assert jvp(lambda a, b: a**b, (-3.0, 2.0), (0.0, 1.0)) == (9.0, 0.0)
    assert math.isnan(torch_jvp(torch, lambda a, b: a**b, (-3.0, 2.0), (1.0, 0.0))[1])
    constant_power = torch_jvp(torch, lambda a: a**2.0, (-3.0,), (1.0,))
    assert jvp(lambda a, b: a**b, (-3.0, 2.0), (1.0, 0.0)) == constant_power


def test_a_constant_has_no_tangent_so_an_infinite_slope_towards_it_adds_nothing() -> None:
    # 0 ** y: d/d(base) is y·0^(y-1) = inf for y < 1, but the base is a constant: no term, no 0·inf = nan.
    assert jvp(lambda y: Value(0.0) ** y, 0.5, 1.0) == (0.0, 0.0)
    # A Dual's zero tangent is multiplied as any other, as torch.func.jvp and backward do: 0·inf = nan.
    assert math.isnan(jvp(lambda x: x**0.5, 0.0, 0.0)[1])


# --- random compositions (hypothesis) against torch, finite differences and reverse mode -----------------
SAFE_UNARY: dict[str, Fn] = {
    "tanh": lambda x: x.tanh(), "sigmoid": lambda x: x.sigmoid(), "exp": lambda x: (x * 0.3).exp(),
    "log": lambda x: (x * x + 1.0).log(), "relu": lambda x: x.relu(), "abs": lambda x: abs(x),
    "neg": lambda x: -x,
}
SAFE_BINARY: dict[str, Fn] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / (b * b + 1.0), "**": lambda a, b: (a * a + 0.5) ** (b * 0.5),
    "linear": lambda a, b: linear([a, b], [b, 0.5], a * 0.1),
}
def _linear_torch(a: Any, b: Any) -> Any:
    return a * 0.1 + a * b + b * 0.5


def build(program: list[tuple[str, int, int]], n: int, for_torch: bool) -> Fn:
    """A function of n inputs: each instruction applies an op to earlier values; the last is the output."""

    def f(*xs: Any) -> Any:
        vals = list(xs)
        for op, i, j in program:
            a, b = vals[i % len(vals)], vals[j % len(vals)]
            if op in SAFE_UNARY:
                vals.append(SAFE_UNARY[op](a))
            else:
                vals.append(_linear_torch(a, b) if for_torch and op == "linear" else SAFE_BINARY[op](a, b))
        return vals[-1] + vals[0] * 0.25  # every input is used at least once, besides the last value

    return f


PROGRAMS = st.lists(st.tuples(st.sampled_from(sorted({**SAFE_UNARY, **SAFE_BINARY})),
                              st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=12)
NUMBERS = st.floats(-2.0, 2.0).filter(lambda x: abs(x) > 1e-3)  # off the kinks of relu and abs at 0


@settings(max_examples=60, deadline=None)
@given(program=PROGRAMS, xs=st.lists(NUMBERS, min_size=1, max_size=4), data=st.data())
def test_random_compositions_match_torch_and_reverse_mode(
        torch: ModuleType, program: list[tuple[str, int, int]], xs: list[float], data: st.DataObject) -> None:
    n = len(xs)
    vs = data.draw(st.lists(st.floats(-2.0, 2.0), min_size=n, max_size=n))
    ours, theirs = build(program, n, for_torch=False), build(program, n, for_torch=True)
    value, t = jvp(ours, xs, vs)
    expected_value, expected_t = torch_jvp(torch, theirs, tuple(xs), tuple(vs))
    assert value == pytest.approx(expected_value, rel=1e-12, abs=1e-12)
    assert t == pytest.approx(expected_t, rel=1e-10, abs=1e-10)
    g = grad(ours)(*xs)
    reverse = sum(gi * vi for gi, vi in zip(g if n > 1 else (g,), vs, strict=True))  # ∇f·v by backward
    assert t == pytest.approx(reverse, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_jvp_matches_finite_differences_along_the_direction(seed: int) -> None:
    rng = random.Random(seed)
    program = [(rng.choice(sorted({**SAFE_UNARY, **SAFE_BINARY})), rng.randrange(9), rng.randrange(9))
               for _ in range(8)]
    xs = [rng.uniform(0.2, 1.5) for _ in range(3)]
    v = [rng.uniform(-1, 1) for _ in range(3)]
    f = build(program, 3, for_torch=False)
    along = lambda h: float(f(*[Value(x + h * vi) for x, vi in zip(xs, v, strict=True)]).data)
    assert jvp(f, xs, v)[1] == pytest.approx(numerical_grad(along, 0.0), rel=1e-6, abs=1e-8)


def test_jvp_of_the_seeds_neuron_is_backward_dotted_with_the_direction() -> None:
    root, named = NEURON.build()
    root.backward()
    leaves = [named[k] for k in NEURON.inputs]
    v = [0.5, -1.0, 2.0, 0.25, 1.0]
    value, t = jvp(NEURON.graph, [x.data for x in leaves], v)
    assert value == root.data
    assert t == pytest.approx(sum(x.grad * vi for x, vi in zip(leaves, v, strict=True)), rel=1e-14)


# --- the API: shapes, no graph, errors ------------------------------------------------------------------

def test_one_number_in_one_number_out_and_tuples_for_tuples() -> None:
    value, t = jvp(lambda x: x * x * x, 2.0, 1.0)
    assert (value, t) == (8.0, 12.0) and type(value) is float and type(t) is float
    assert jvp(lambda x, y: (x * y, x + y, Value(7.0)), (2, 3), [1, 0]) == ((6.0, 5.0, 7.0), (3.0, 1.0, 0.0))
    assert jvp(lambda x: Value(3.0), 1.0, 1.0) == (3.0, 0.0)  # a Value that ignores x: tangent 0


def test_no_graph_is_kept() -> None:
    seen: list[Value] = []

    def f(x: Value, y: Value) -> Value:
        h = (x * y).tanh()
        seen.append(h)
        return h * x + y.exp()

    jvp(f, (0.5, -0.3), (1.0, 1.0))
    assert isinstance(seen[0], Dual) and seen[0].parents == () and seen[0].op == ""
    x = Value(0.5)  # and recording is on again afterwards
    assert (x * x).parents == (x, x)


def test_jvp_runs_the_same_inside_no_grad() -> None:
    f = lambda x, y: (x * y).sigmoid() / y
    with no_grad():
        inside = jvp(f, (0.7, 1.3), (1.0, -2.0))
    assert inside == jvp(f, (0.7, 1.3), (1.0, -2.0))


@pytest.mark.parametrize(("call", "error", "words"), [
    (lambda: jvp(lambda x, y: x * y, (1.0, 2.0), (1.0,)), ValueError,
     "jvp needs one tangent per primal, got 2 primals and 1 tangents"),
    (lambda: jvp(lambda x: x, 1.0, (1.0, 0.0)), ValueError, "got 1 primals and 2 tangents"),
    (lambda: jvp(lambda: Value(1.0), (), ()), ValueError, "at least one primal"),
    (lambda: jvp(lambda x, y: x, (1.0, "2"), (1.0, 0.0)), TypeError, "primals[1] is str: '2'"),
    (lambda: jvp(lambda x: x, None, 1.0), TypeError, "primals is NoneType: None"),
    (lambda: jvp(lambda x: x, 1.0, "1"), TypeError, "tangents is str: '1'"),
    (lambda: jvp(lambda x: x, 1 + 2j, 1.0), TypeError, "primals is complex"),
    (lambda: jvp(lambda x: x, [Value(1.0)], [1.0]), TypeError, "primals[0] is Value: Value(data=1.0, "
                                                               "grad=0.0) (pass its .data)"),
    (lambda: jvp("x*x", 1.0, 1.0), TypeError, "jvp needs a function to differentiate, got str"),
    (lambda: jvp(lambda x: math.tanh(x.data), 0.5, 1.0), TypeError,
     "<lambda> must return a Value built from its arguments with Value ops, got float: 0.46211715726000974"),
    (lambda: jvp(lambda x: None, 0.5, 1.0), TypeError, "got NoneType: None"),
    (lambda: jvp(lambda x: (x, 2.0), 0.5, 1.0), TypeError, "got float: 2.0"),
    (lambda: jvp(lambda x: x.log(), -1.0, 1.0), ValueError, "log of non-positive input: Value(data=-1.0)"),
    (lambda: jvp(lambda x: x / (x - 1.0), 1.0, 1.0), ZeroDivisionError, "division by zero"),
    (lambda: jvp(lambda x: x * Value(np.array([1.0, 2.0])), 1.0, 1.0), TypeError,
     "forward mode works on numbers, not on batches: * of Value(data=1.0), Value(data=[1. 2.])"),
    (lambda: Dual(1.0, "fast"), TypeError, "a tangent must be a real number, got str: 'fast'"),
    (lambda: Dual(np.array([1.0, 2.0]), 1.0), TypeError, "a Dual holds a real number (forward mode works on "
                                                         "numbers, not batches), got ndarray"),
])
def test_bad_input_is_rejected_with_a_clear_message(call: Callable[[], Any], error: type[Exception],
                                                    words: str) -> None:
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


def test_a_dual_pickles_and_copies_as_a_leaf_with_its_tangent() -> None:
    import copy
    import pickle

    d = Dual(0.5, -2.0, "x") * Dual(3.0, 1.0)
    d.label = "y"
    for twin in (pickle.loads(pickle.dumps(d)), copy.deepcopy(d)):
        assert type(twin) is Dual and (twin.data, twin.tangent, twin.label) == (1.5, -5.5, "y")


def test_tangent_of_is_the_sum_over_inputs_that_carry_a_tangent() -> None:
    a, b, c = Dual(1.0, 2.0), Dual(5.0, -1.0), Value(3.0)
    assert tangent_of((a, b, c), (10.0, 3.0, math.inf)) == 10.0 * 2.0 + 3.0 * -1.0  # c: no term, no inf
    assert tangent_of((c,), (1.0,)) == 0.0


def test_the_public_names() -> None:
    assert chainrule.jvp is jvp and chainrule.hvp is hvp and chainrule.Dual is Dual


# --- hvp: forward-over-reverse ------------------------------------------------------------------------
HVP_FUNCTIONS: dict[str, Fn] = {
    "product-and-tanh": lambda x, y, z: x * y * z + (x * y).tanh() + z**3,
    "exp-log-sigmoid": lambda x, y, z: (x * z).exp() + (y * y + 1.0).log() * x + (x - y).sigmoid(),
    "neuron": lambda x, y, z: (x * 0.5 + y * -1.5 + z).tanh() ** 2 + x / (1.0 + z * z),
    "powers": lambda x, y, z: x**y + 2.0**z + (x * x + y * y + z * z) ** 0.5,
    "linear": lambda x, y, z: linear([x, y], [y, z], x * z).sigmoid(),
}
HVP_POINTS = [(0.3, 0.8, -0.5), (1.2, -0.7, 0.4), (0.9, 1.1, 1.3)]


def _torch_for(name: str) -> Fn:
    if name == "linear":
        return lambda x, y, z: (x * z + x * y + y * z).sigmoid()
    return HVP_FUNCTIONS[name]


@pytest.mark.parametrize("name", HVP_FUNCTIONS)
def test_hvp_matches_the_hessian_times_v_and_torch_forward_over_reverse(name: str, torch: ModuleType) -> None:
    f, rng = HVP_FUNCTIONS[name], random.Random(name)
    for point in HVP_POINTS:
        if name == "powers" and point[0] <= 0:
            continue
        v = [rng.uniform(-1, 1) for _ in point]
        ours = hvp(f, point, v)
        H = hessian(f)(*point)
        assert ours == pytest.approx([sum(h * vj for h, vj in zip(row, v, strict=True)) for row in H],
                                     rel=1e-12, abs=1e-12)
        g = torch.func.grad(lambda p: _torch_for(name)(*p))
        p = torch.tensor(point, dtype=torch.float64)
        _, theirs = torch.func.jvp(g, (p,), (torch.tensor(v, dtype=torch.float64),))
        assert ours == pytest.approx(theirs.tolist(), rel=1e-11, abs=1e-12)


def test_hvp_in_one_variable_and_with_an_unused_input() -> None:
    assert hvp(lambda x: x**3, 2.0, 1.0) == 12.0  # f'' = 6x
    t = math.tanh(0.5)
    assert hvp(lambda x: x.tanh(), 0.5, 2.0) == pytest.approx(2 * -2 * t * (1 - t * t), rel=1e-14)
    assert hvp(lambda x, y: x * x, (1.5, 2.0), (1.0, 1.0)) == [2.0, 0.0]  # y unused: its row is 0
    assert hvp(lambda x, y: x + y, (1.5, 2.0), (1.0, 1.0)) == [0.0, 0.0]  # linear: H = 0


def test_hvp_rejects_bad_input_as_jvp_does() -> None:
    with pytest.raises(ValueError, match="one tangent per primal, got 2 primals and 3 tangents"):
        hvp(lambda x, y: x * y, (1.0, 2.0), (1.0, 0.0, 0.0))


# --- forward mode on a recorded graph, and what each mode costs ------------------------------------------

def test_forward_pass_replays_the_graph_and_leaves_it_alone() -> None:
    root, named = NEURON.build()
    root.backward()
    order = topological_order(root)
    before = [(v.data, v.grad, v.parents) for v in order]
    leaves = [named[k] for k in NEURON.inputs]
    for i, leaf in enumerate(leaves):  # the whole gradient by forward mode: one pass per input
        twins = forward_pass(root, {x: float(x is leaf) for x in leaves})
        assert [t.data for t in twins] == [v.data for v in order]  # the same numbers, recomputed
        assert isinstance(twins[-1], Dual) and twins[-1].tangent == pytest.approx(leaf.grad, rel=1e-14), i
    assert [(v.data, v.grad, v.parents) for v in order] == before


def test_forward_pass_seeds_only_leaves_of_the_graph() -> None:
    root, named = NEURON.build()
    with pytest.raises(ValueError, match=r"at leaves of the graph; Value\(data=0.8813.*'n'\) is an interior"):
        forward_pass(root, {named["n"]: 1.0})
    with pytest.raises(ValueError, match=r"Value\(data=1.0, label='stray'\) is not in the graph"):
        op_counts(root, [Value(1.0, "stray")])


def test_forward_pass_refuses_a_batched_graph() -> None:
    y, x, w = batched_tanh()
    with pytest.raises(TypeError, match="forward mode works on numbers, not on batches: \\* of"):
        forward_pass(y, {w: 1.0})
    with pytest.raises(TypeError, match="a Dual holds a real number"):
        forward_pass(y, {x: 1.0})


def test_op_counts_of_the_seeds_neuron() -> None:
    root, named = NEURON.build()
    counts = op_counts(root, [named[k] for k in NEURON.inputs])
    # 9 edges: x1*w1 and x2*w2 (2 each), their sum (2), n (2), tanh (1); every one carries a tangent
    assert counts == (5, 9, 45, 9)
    assert counts.reverse == sum(len(v.parents) for v in topological_order(root))


def test_op_counts_of_the_demo_mlp_one_loss_and_337_parameters() -> None:
    model, loss, _ = demo_mlp()
    params = model.parameters()
    counts = op_counts(loss, params)
    nodes = topological_order(loss)
    edges = sum(len(v.parents) for v in nodes)
    depends = {id(p) for p in params}
    for v in nodes:  # the nodes that depend on a parameter: their edges from such nodes carry tangents
        if v.parents and any(id(p) in depends for p in v.parents):
            depends.add(id(v))
    tangent_edges = sum(id(p) in depends for v in nodes for p in v.parents)
    assert counts == (337, tangent_edges, 337 * tangent_edges, edges)
    assert counts.forward > 300 * counts.reverse  # why reverse mode trains networks


def test_a_batch_meeting_a_dual_is_refused_instead_of_dropping_the_tangent() -> None:
    batch, dual = Value(np.array([1.0, 2.0])), Dual(0.5, 1.0)
    makes = (lambda: batch * dual, lambda: dual * batch, lambda: batch + dual,
             lambda: linear([dual], [batch], 0.0))
    for make in makes:
        with pytest.raises(TypeError, match="forward mode works on numbers, not on batches"):
            make()
