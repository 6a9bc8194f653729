"""check_by_hand: the learner's gradients against backward()'s, and the chain-rule sum of each wrong one."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule import Value, check_by_hand, numerical_grad
from chainrule.byhand import Report
from chainrule.engine import topological_order
from chainrule.seeds import FIRST_GRAPH, NEURON, TWICE

# The seeds' by-hand numbers for L = (a*b + c)*f at a=2, b=-3, c=10, f=-2 (e = a*b = -6, d = e + c = 4).
LECTURE = {"L": 1.0, "f": 4.0, "d": -2.0, "c": -2.0, "e": -2.0, "a": 6.0, "b": -4.0}


def test_the_lectures_numbers_are_all_right() -> None:
    L, _ = FIRST_GRAPH.build()
    report = check_by_hand(L, LECTURE)
    assert report.ok and not report.wrong
    assert [c.name for c in report.checks] == ["L", "f", "d", "c", "e", "b", "a"]  # backward's order
    assert str(report).splitlines()[0] == "7 of 7 gradients right:"
    assert repr(report) == "<Report: 7 of 7 gradients right>"


def test_a_wrong_number_gets_the_right_one_and_its_chain_rule_sum() -> None:
    L, v = FIRST_GRAPH.build()
    report = check_by_hand(L, {**LECTURE, "c": 2.0})  # a sign slip: '+' passes d's grad, -2, unchanged
    assert not report.ok
    (wrong,) = report.wrong
    assert wrong.value is v["c"] and wrong.yours == 2.0 and wrong.right == -2.0
    (term,) = wrong.terms
    assert term.user is v["d"] and term.upstream == -2.0 and term.local == 1.0 and term.contribution == -2.0
    text = str(report)
    assert "✗ c: you have 2.0000, backward() gives -2.0000" in text
    assert "grad(c) = grad(d) × ∂d/∂c = -2.0000 × 1.0000 = -2.0000" in text
    assert "d = +(e, c): ∂d/∂e = 1, ∂d/∂c = 1" in text
    assert "✓ f: 4.0000" in text
    assert report["c"] is wrong and report[v["c"]] is wrong


def test_a_mistake_upstream_is_named_in_the_mistakes_it_causes() -> None:
    L, _ = FIRST_GRAPH.build()
    report = check_by_hand(L, {"e": 2.0, "a": 2.0 * -3.0})  # e's sign slipped, and a followed it
    assert [c.name for c in report.wrong] == ["e", "a"]
    assert report["a"].wrong_upstream == ("e",) and report["e"].wrong_upstream == ()
    assert "your grad(e) is wrong too: fix it first" in str(report["a"])
    assert report["a"].right == 6.0


def test_b_equals_a_plus_a_needs_both_contributions() -> None:
    b, _ = TWICE.build()
    report = check_by_hand(b, {"b": 1.0, "a": 1.0})  # the seeds' bug: the second use overwrote the first
    assert [c.name for c in report.wrong] == ["a"]
    check = report["a"]
    assert check.right == 2.0 and [t.slot for t in check.terms] == [0, 1]
    assert "= 1.0000 × 1.0000 + 1.0000 × 1.0000 = 2.0000" in check.why()
    assert "a is used more than once by one op: each use adds its own term" in check.why()


def test_without_grads_it_reads_the_grads_set_by_hand_and_changes_none() -> None:
    # As the second lecture: every .grad typed in by hand, from the output back.
    o, v = NEURON.build()
    hand = {"o": 1.0, "n": 0.5, "b": 0.5, "x1*w1 + x2*w2": 0.5, "x1*w1": 0.5, "x2*w2": 0.5,
            "x1": -1.5, "w1": 1.0, "x2": 0.5, "w2": 0.0}
    for name, g in hand.items():
        v[name].grad = g
    report = check_by_hand(o)
    assert report.ok, str(report)  # 0.5 for 1 - 0.7071² = 0.4999999999999999: right to 4 decimals
    assert {v.label: v.grad for v in topological_order(o)} == hand  # the check changed nothing
    v["w1"].grad = 2.0  # x1 = 2, so 2·0.5 = 1, not 2
    (wrong,) = check_by_hand(o).wrong
    assert wrong.name == "w1" and math.isclose(wrong.right, 1.0)
    assert "x1*w1 = *(x1, w1): ∂(x1*w1)/∂x1 = w1, ∂(x1*w1)/∂w1 = x1" in wrong.why()
    assert "grad(w1) = grad(x1*w1) × ∂(x1*w1)/∂w1 = 0.5000 × 2.0000 = 1.0000" in wrong.why()


def test_the_right_numbers_are_backwards_and_match_finite_differences() -> None:
    L, _ = FIRST_GRAPH.build()
    report = check_by_hand(L, {name: 0.0 for name in "abcf"})
    values = dict(FIRST_GRAPH.inputs)

    def L_of(name: str, t: float) -> float:
        leaves = [Value(t if k == name else x) for k, x in values.items()]
        return FIRST_GRAPH.graph(*leaves).data

    for check in report.checks:
        numeric = numerical_grad(lambda t, n=check.name: L_of(n, t), values[check.name])
        assert math.isclose(check.right, numeric, abs_tol=1e-6), check.name


def test_the_rule_reads_with_the_learners_own_names_in_any_order() -> None:
    a, b = Value(3.0, "a"), Value(4.0, "b")
    c = b / a  # the rule of / calls its inputs a, b: here they are b, a
    c.label = "c"
    check = check_by_hand(c, {a: 0.0})["a"]
    assert "c = /(b, a): ∂c/∂b = 1/a, ∂c/∂a = -b/a²" in check.why()
    assert check.right == pytest.approx(-4.0 / 9.0)


def test_the_figures_shown_multiply_to_the_product_shown() -> None:
    x, y = Value(2.0, "x"), Value(1.99994, "y")
    m = x * y
    m.label = "m"
    o = m * 3.50005
    o.label = "o"
    text = check_by_hand(o, {y: 0.0})["y"].why()
    shown = text.splitlines()[0].split(" = ")[-2]  # "3.50005 × 2.0000" (as many decimals as it takes)
    upstream, local = (float(t) for t in shown.split(" × "))
    assert f"{upstream * local:.4f}" == text.splitlines()[0].split(" = ")[-1]


def test_without_grads_only_the_labelled_values_are_the_learners() -> None:
    a = Value(1.5, "a")
    c = (a * a) * 2  # neither a*a nor the constant 2 has a label: not the learner's to set
    c.label = "c"
    c.grad, a.grad = 1.0, 6.0
    report = check_by_hand(c)
    assert report.ok and [ch.name for ch in report.checks] == ["c", "a"]
    with pytest.raises(ValueError, match="has none: label the values"):
        check_by_hand(Value(1.0) * Value(2.0))


def test_tolerance_and_numbers_of_any_real_kind() -> None:
    L, _ = FIRST_GRAPH.build()
    assert check_by_hand(L, {"a": 6.00004}).ok
    assert not check_by_hand(L, {"a": 6.01}).ok
    assert check_by_hand(L, {"a": 6.01}, tolerance=0.01).ok
    assert check_by_hand(L, {"a": 6, "b": Fraction(-4)}).ok
    assert check_by_hand(L, {}).checks == ()
    assert str(check_by_hand(L, {})) == "0 of 0 gradients right"


def test_the_root_and_an_unused_value() -> None:
    x, y = Value(2.0, "x"), Value(5.0, "y")
    out = x * 3.0
    out.label = "out"
    report = check_by_hand(out, {"out": 2.0})
    assert report["out"].right == 1.0 and "grad(out) = 1: the output" in report["out"].why()
    with pytest.raises(ValueError, match="not a value of this graph"):
        check_by_hand(out, {y: 0.0})


@pytest.mark.parametrize(("grads", "error", "message"), [
    ({"zz": 1.0}, ValueError, "'zz' labels no values of this graph"),
    ({"a": "6"}, TypeError, "the grad given for a must be a number, not str"),
    ({"a": None}, TypeError, "must be a number, not NoneType"),
    ({"a": True}, TypeError, "must be a number, not bool"),
    ({3: 1.0}, TypeError, "keys are Values or labels, not int"),
    ([("a", 6.0)], TypeError, "grads must map Values"),
])
def test_bad_grads_are_refused(grads: object, error: type[Exception], message: str) -> None:
    L, _ = FIRST_GRAPH.build()
    with pytest.raises(error, match=message):
        check_by_hand(L, grads)  # type: ignore[arg-type]


def test_bad_roots_and_tolerances_are_refused() -> None:
    import numpy as np

    with pytest.raises(TypeError, match="needs the output Value, not float"):
        check_by_hand(1.0, {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reduce the batch first"):
        check_by_hand(Value(np.array([1.0, 2.0])), {})
    batch = Value(np.array([1.0, 2.0]), "x")
    with pytest.raises(ValueError, match="holds a batch"):
        check_by_hand((batch * batch).sum(), {})
    L, _ = FIRST_GRAPH.build()
    with pytest.raises(ValueError, match="tolerance must be a number >= 0"):
        check_by_hand(L, {}, tolerance=-1)
    two_a = Value(1.0, "a") + Value(2.0, "a")
    with pytest.raises(ValueError, match="'a' labels 2 values"):
        check_by_hand(two_a, {"a": 1.0})
    v = Value(1.0, "v")
    v.grad = Value(1.0)  # a create_graph gradient is a Value, not the learner's number
    with pytest.raises(TypeError, match="the grad given for v must be a number, not Value"):
        check_by_hand(v * 2.0)


# ----- any graph: backward's own grads are all right, and one changed number is the only one wrong -------

UNARY = ("tanh", "exp", "sigmoid", "relu")


@st.composite
def graphs(draw: st.DrawFn) -> tuple[Value, list[Value]]:
    pool = [Value(draw(st.floats(-2, 2)), f"x{i}") for i in range(draw(st.integers(1, 4)))]
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(("+", "*", "-", *UNARY)))
        a = draw(st.sampled_from(pool))
        if kind in UNARY:
            out = getattr(a.tanh() if kind == "exp" else a, kind)()  # exp of a tanh stays small
        else:
            b = draw(st.sampled_from(pool))
            out = a + b if kind == "+" else a * b if kind == "*" else a - b
        pool.append(out)
    return pool[-1], topological_order(pool[-1])


@settings(max_examples=150, deadline=None)
@given(graphs(), st.data())
def test_any_graph_backwards_grads_pass_and_one_changed_fails(graph: tuple[Value, list[Value]],
                                                              data: st.DataObject) -> None:
    root, order = graph
    root.backward()
    mine: dict[Value | str, float] = {v: float(v.grad) for v in order}
    report = check_by_hand(root, mine)
    assert isinstance(report, Report) and report.ok and len(report.checks) == len(order)
    target = data.draw(st.sampled_from(order))
    mine[target] = target.grad + 0.01 * max(1.0, abs(target.grad))
    (wrong,) = check_by_hand(root, mine).wrong
    assert wrong.value is target and wrong.right == target.grad
    assert math.isclose(sum(t.contribution for t in wrong.terms), wrong.right, rel_tol=1e-12, abs_tol=1e-12) \
        or wrong.is_root
