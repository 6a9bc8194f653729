"""Finite differences, gradcheck on users' functions, and check_graph naming a wrong rule."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule
from chainrule import RULES, GradcheckError, Rule, Value, check_graph, gradcheck, numerical_grad


def f(x: float) -> float:
    return 3 * x**2 - 4 * x + 5  # the seeds' example: f'(x) = 6x - 4


@pytest.mark.parametrize("x", [3.0, 2.0, 0.0, -1.0, 2 / 3])
def test_seeds_first_principles_slope(x: float) -> None:
    assert numerical_grad(f, x, h=1e-8, method="forward") == pytest.approx(6 * x - 4, abs=1e-5)
    assert numerical_grad(f, x) == pytest.approx(6 * x - 4, abs=1e-8)  # central is more accurate


def test_h_too_small_loses_everything_to_rounding() -> None:
    # The seeds' h = 1e-20: x + h == x in float64, so the slope comes out 0 instead of 14.
    assert numerical_grad(f, 3.0, h=1e-20, method="forward") == 0.0
    assert numerical_grad(f, 3.0, h=1e-6, method="forward") == pytest.approx(14.0, abs=1e-4)


def test_numerical_grad_takes_functions_of_values_too() -> None:
    assert numerical_grad(lambda v: v.tanh(), 0.5) == pytest.approx(1 - math.tanh(0.5) ** 2, rel=1e-8)
    assert numerical_grad(lambda v: v.exp(), Value(1.0)) == pytest.approx(math.e, rel=1e-8)


def test_numerical_grad_rejects_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="method must be 'central' or 'forward', got 'backward'"):
        numerical_grad(f, 1.0, method="backward")  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(x=st.floats(-3, 3), y=st.floats(0.2, 3))
def test_gradcheck_passes_on_correct_functions(x: float, y: float) -> None:
    assert gradcheck(lambda a, b: (a * b + a.tanh()) / b + b.log() * a.sigmoid() + (a * a).exp(), x, y)


def test_gradcheck_keeps_labels_and_accepts_values() -> None:
    assert gradcheck(lambda a, b: a * b, Value(2.0, "a"), 3.0)


def test_gradcheck_names_the_input_when_backward_is_wrong() -> None:
    def leaky(a: Value, b: Value) -> Value:
        return a * b.detach()  # b's influence is hidden from backward: its gradient reads 0

    message = r"input 1 \('b'\) at 2.0: backward gives 0.0, finite differences give 2.99999"
    with pytest.raises(GradcheckError, match=message):
        gradcheck(leaky, Value(3.0, "a"), Value(2.0, "b"))


def test_gradcheck_rejects_a_function_that_returns_no_value() -> None:
    with pytest.raises(TypeError, match="needs f to return a Value, got float"):
        gradcheck(lambda a: 1.0, 2.0)


def neuron() -> Value:
    x1, x2 = Value(2.0, "x1"), Value(0.0, "x2")
    w1, w2, b = Value(-3.0, "w1"), Value(1.0, "w2"), Value(6.8813735870195432, "b")
    n = x1 * w1 + x2 * w2 + b
    n.label = "n"
    o = (n.tanh() * 2.0 + n.sigmoid() * n.exp()).log() + (x1 / w2) ** 2.0
    o.label = "o"
    return o


def test_check_graph_passes_on_the_real_rules_and_leaves_grads_alone() -> None:
    o = neuron()
    report = check_graph(o)
    assert report.ok and report.checked > 15 and str(report) == f"all {report.checked} nodes agree"
    assert all(v.grad == 0.0 for v in o.parents)  # grads untouched: we never ran backward ourselves


def test_check_graph_names_a_deliberately_wrong_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    right = RULES["tanh"]
    # A classic learner's slip: forgetting to square tanh in its derivative.
    monkeypatch.setitem(RULES, "tanh", Rule(right.forward, lambda m, out, x: (1.0 - out,), right.formula))
    o = neuron()
    report = check_graph(o)
    assert not report.ok
    assert report.culprit is not None and report.culprit.op == "tanh"
    assert "rule for 'tanh' disagrees" in str(report) and "label='n'" in str(report)


def test_check_graph_names_a_wrong_rule_for_one_input_only(monkeypatch: pytest.MonkeyPatch) -> None:
    right = RULES["/"]
    wrong = Rule(right.forward, lambda m, out, a, b: (1.0 / b, out / b), right.formula)  # sign of ∂/∂b lost
    monkeypatch.setitem(RULES, "/", wrong)
    report = check_graph(neuron())
    assert report.culprit is not None and report.culprit.op == "/"
    assert "∂/∂input 1" in str(report)


def test_check_graph_skips_nodes_it_cannot_nudge_and_checks_the_rest() -> None:
    # (p - y)**2 with p < y: nudging the constant exponent 2 makes a fractional power of a negative
    # number, which has no real value. That one node is skipped, every other one is checked.
    p, y = Value(0.25, "p"), Value(1.0, "y")
    loss = ((p - y) ** 2.0).tanh()
    report = check_graph(loss)
    assert report.ok and report.skipped == 1
    assert str(report) == (f"all {report.checked - 1} nodes checked agree; 1 could not be nudged by ±eps "
                           "without leaving an op's domain and were skipped")


def test_check_graph_on_a_model_with_linear_nodes() -> None:
    import random

    from chainrule import losses
    from chainrule.nn import MLP

    model = MLP(2, [3, 1], rng=random.Random(0))
    xs = [(0.1, 0.2), (0.5, -0.3), (1.0, 0.7)]
    loss = losses.mse([model([Value(a), Value(b)]) for a, b in xs], [1.0, -1.0, 0.5])
    assert check_graph(loss).ok


def test_check_graph_names_a_wrong_linear_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    right = RULES["linear"]
    # Forgot to swap: says d/dw_i = w_i instead of x_i.
    wrong = Rule(right.forward, lambda m, out, b, *wx: (1.0, *wx), right.formula)
    monkeypatch.setitem(RULES, "linear", wrong)
    w, x = [Value(0.5, "w0"), Value(-1.5, "w1")], [Value(2.0, "x0"), Value(3.0, "x1")]
    out = chainrule.linear(w, x, Value(0.1, "b")).tanh()
    report = check_graph(out)
    assert report.culprit is not None and report.culprit.op == "linear"


def test_check_graph_refuses_a_batched_graph_clearly() -> None:
    import numpy as np

    out = (Value(np.array([1.0, 2.0]), "x") * Value(3.0, "w")).sum()
    with pytest.raises(ValueError, match=r"checks graphs of numbers.*label='x'.*single example"):
        check_graph(out)
