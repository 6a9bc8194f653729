"""chainrule.viz.steps: backward, one edge at a time."""

from __future__ import annotations

import math
import re

import pytest
from conftest import demo_mlp

from chainrule import Value
from chainrule.engine import topological_order
from chainrule.seeds import FIRST_GRAPH, NEURON
from chainrule.viz import backward_steps
from chainrule.viz.steps import final_grads


@pytest.mark.parametrize("make", ["expression", "neuron", "twice", "mlp"])
def test_steps_end_at_the_engines_grads(make: str) -> None:
    if make == "expression":
        root, _ = FIRST_GRAPH.build()
    elif make == "neuron":
        root, _ = NEURON.build()
    elif make == "twice":
        a = Value(-1.5, "a")
        root = (a + a) * a
    else:
        _, root, _ = demo_mlp()
    before = {id(v): v.grad for v in topological_order(root)}
    steps = list(backward_steps(root))
    assert {id(v): v.grad for v in topological_order(root)} == before  # engine grads untouched
    assert len(steps) == sum(len(v.parents) for v in topological_order(root))
    root.backward()
    grads = final_grads(root)
    for v in topological_order(root):
        assert grads[id(v)] == v.grad, v  # exactly: same order, same arithmetic
    for s in steps:
        assert s.local == s.node.local_grads[s.slot]
        assert s.contribution == s.local * s.upstream
        assert s.after == s.before + s.contribution


def test_steps_show_two_contributions_for_a_plus_a() -> None:
    a = Value(3.0, "a")
    b = a + a
    b.label = "b"
    steps = list(backward_steps(b))
    assert [(s.slot, s.after) for s in steps] == [(0, 1.0), (1, 2.0)]
    assert str(steps[1]) == "  2. b (+) → a: grad(a) += 1.0000 × 1.0000 = 1.0000 → 2.0000"


def test_step_str_is_one_readable_line() -> None:
    o, _ = NEURON.build()
    lines = [str(s) for s in backward_steps(o)]
    assert lines[0] == "  1. o (tanh) → n: grad(n) += 0.5000 × 1.0000 = 0.5000 → 0.5000"
    assert all("\n" not in ln for ln in lines)
    unnamed = Value(2.0) * Value(3.0)
    assert "*:6.0000" in str(next(backward_steps(unnamed.tanh())))


def test_the_stepper_replays_a_batched_mlp_loss_to_the_engines_grads() -> None:
    import numpy as np

    from chainrule import losses
    from chainrule.data import make_moons
    from chainrule.nn import MLP
    from chainrule.viz.steps import replay

    X, y = make_moons(n_samples=20, noise=0.1, random_state=0)
    model = MLP(2, [4, 4, 1])
    scores = model([Value(X[:, 0]), Value(X[:, 1])])
    loss = losses.hinge(scores, 2 * y - 1) + losses.l2(model.parameters(), 1e-4)
    run = replay(loss)
    assert all(p.grad == 0.0 for p in model.parameters())  # the replay leaves the engine's grads alone
    loss.backward()
    assert len(run.steps) == sum(len(v.parents) for v in run.order)
    for v in run.order:
        np.testing.assert_array_equal(run.grads[id(v)], v.grad)  # bit for bit: it is the same loop
    assert all(type(p.grad) is float for p in model.parameters())
    for i, s in enumerate(run.steps):  # arrays and batch sums print as the step they are
        shape = rf" *{i + 1}\. .* \({re.escape(s.node.op)}\) → .*: grad\(.*\) \+= .* × .* = .* → "
        assert re.match(shape, str(s)), str(s)
    assert any("]" in str(s) for s in run.steps)


def test_replay_sorts_once_and_its_order_puts_parents_first() -> None:
    from chainrule.viz.steps import replay

    root, _ = FIRST_GRAPH.build()
    run = replay(root)
    position = {id(v): i for i, v in enumerate(run.order)}
    assert all(position[id(p)] < position[id(v)] for v in run.order for p in v.parents)
    assert run.order[-1] is root and run.grads[id(root)] == 1.0


def test_a_step_shows_factors_whose_product_reads_as_the_sum_shown() -> None:
    # At 4 decimals these would read 2.0000 × 0.4200 = 0.8399: one more decimal makes the line true.
    from chainrule.viz.steps import factors

    x, y, z = Value(1.0, "x"), Value(1.99996, "y"), Value(0.41996, "z")
    L = (x * y) * z
    lines = [str(s) for s in backward_steps(L)]
    to_x = next(line for line in lines if line.split("→")[1].strip().startswith("x:"))
    assert "grad(x) += 1.99996 × 0.41996 = 0.8399 → 0.8399" in to_x
    assert factors(2.0, 0.5, 1.0) == ("2.0000", "0.5000")  # exact already: 4 decimals, as the drawings
    a, b = factors(-1.23456789, 3.3333333, -1.23456789 * 3.3333333)
    assert f"{float(a) * float(b):.4f}" == f"{-1.23456789 * 3.3333333:.4f}"


# ----- forward mode: the tangent of d/d(input), one node at a time --------------------------------------

@pytest.mark.parametrize("make", ["expression", "neuron", "twice", "mlp"])
def test_forward_steps_end_at_backwards_gradient(make: str) -> None:
    from chainrule.forward import tangent_of
    from chainrule.viz import forward_steps

    if make == "expression":
        root, named = FIRST_GRAPH.build()
    elif make == "neuron":
        root, named = NEURON.build()
    elif make == "twice":
        a = Value(-1.5, "a")
        root, named = (a + a) * a, {"a": a}
    else:
        model, root, _ = demo_mlp()
        named = {f"p{i}": p for i, p in enumerate(model.parameters()[:40:7])}
    root.backward()
    before = {id(v): (v.grad, v.parents) for v in topological_order(root)}
    leaves = [v for v in topological_order(root) if not v.parents]
    for v in (v for v in named.values() if not v.parents):
        steps = forward_steps(root, v)
        assert {id(u): (u.grad, u.parents) for u in topological_order(root)} == before  # graph untouched
        assert steps[-1].node is root and steps[-1].tangent == pytest.approx(v.grad, rel=1e-12, abs=1e-15)
        for s in steps:  # each step is tangent_of's sum over the node's inputs, the line jvp runs
            parents = [x for x, _, _ in s.terms]
            assert all(any(x is p for p in s.node.parents) for x in parents)
            assert s.tangent == tangent_of(
                [_tangent_carrier(t) for _, _, t in s.terms], [local for _, local, _ in s.terms])
        # every leaf is an input by default: one step per node with parents (all depend on a leaf)
        assert len(steps) == sum(1 for u in topological_order(root) if u.parents)
        assert len(forward_steps(root, v, leaves)) == len(steps)


def _tangent_carrier(t: float) -> Value:
    from chainrule.forward import Dual

    return Dual(0.0, t)


def test_forward_steps_print_the_sum_of_local_times_tangent() -> None:
    from chainrule.viz import forward_steps

    root, named = NEURON.build()
    inputs = [named[k] for k in ("x1", "x2", "w1", "w2", "b")]
    lines = [str(s) for s in forward_steps(root, named["x1"], inputs)]
    assert lines[0] == ("  1. x1*w1 (*): ṫ = -3.0000 × ṫ(x1) + 2.0000 × ṫ(w1) = -3.0000 × 1.0000 + "
                        "2.0000 × 0.0000 = -3.0000")
    assert lines[-1] == "  5. o (tanh): ṫ = 0.5000 × ṫ(n) = 0.5000 × -3.0000 = -1.5000"
    assert len(lines) == 5  # the neuron's 5 nodes with parents, in topological order


def test_forward_steps_leave_out_what_does_not_depend_on_an_input() -> None:
    from chainrule.viz import forward_steps

    x, c = Value(2.0, "x"), Value(3.0, "c")
    k = c * c  # a constant: no tangent, no step
    k.label = "k"
    root = x * k
    steps = forward_steps(root, x, [x])
    assert [s.node for s in steps] == [root]
    assert str(steps[0]) == "  1. *:18.0000 (*): ṫ = 9.0000 × ṫ(x) = 9.0000 × 1.0000 = 9.0000"
    assert len(forward_steps(root, x)) == 2  # every leaf an input: k depends on c, so it has a step


def test_why_not_finite_names_the_edge_where_inf_or_nan_first_appeared() -> None:
    from chainrule.viz.steps import why_not_finite

    x, y = Value(0.0, "x"), Value(0.0, "y")
    s = x**0.5  # an infinite slope at 0 ...
    s.label = "s"
    r = (s * y).tanh() * 3.0  # ... times grad(s) = y·(...) = 0
    r.backward()
    reasons = why_not_finite(r)
    assert math.isnan(x.grad) and y.grad == 0.0
    assert set(reasons) == {id(x)}  # finite grads (y, s, r...) have no reason
    assert reasons[id(x)] == "nan: 0 × inf in the chain rule (s (**) → x: local inf × upstream 0)"
    q = (s * 2.0).tanh() * 0.0 + x  # nan reaches x through two nodes, then x's own edge adds 1
    assert why_not_finite(q)[id(x)] == reasons[id(x)]

    z = Value(0.0, "z")
    assert why_not_finite(z**0.5) == {id(z): "inf: the local derivative of ** is inf (**:0.0000 → z)"}
    w = Value(0.0, "w")
    assert why_not_finite(w**0.5 - w**0.5) == {id(w): "nan: inf + -inf where two paths meet at w"}
    big = Value(1e-10, "big")
    t = big.log() * 1e300 + big.log() * 1e300
    assert why_not_finite(t)[id(big)].startswith("inf: local × upstream is too large for a float (log:")
    u = Value(1e-10, "u")
    assert why_not_finite(u.log() * 1.5e298 + u.log() * 1.5e298) == {
        id(u): "inf: the sum of the paths into u is too large for a float"}
    assert why_not_finite(Value(2.0) * Value(3.0)) == {}


def test_why_not_finite_leaves_the_grads_alone() -> None:
    from chainrule.viz.steps import why_not_finite

    x = Value(0.0, "x")
    out = x**0.5
    why_not_finite(out)
    assert x.grad == 0.0 and out.grad == 0.0  # the replay restores the engine's grads


def test_why_not_finite_leaves_a_batch_out() -> None:
    import numpy as np

    from chainrule.viz.steps import why_not_finite

    x = Value(np.array([0.0, 1.0]), "x")
    out = (x**0.5).sum()
    out.backward()
    assert np.isinf(x.grad[0])  # type: ignore[index]
    assert why_not_finite(out) == {}  # one reason cannot speak for a batch's elements
