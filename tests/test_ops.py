"""chainrule.ops: your own op, checked when defined, working wherever a built-in op does."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import page_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chainrule
from chainrule import RULES, GradcheckError, Value, check_graph
from chainrule.ops import BUILT_IN, define_op, remove_op
from chainrule.viz import to_html


def softplus_rule() -> dict[str, Any]:
    return {"forward": lambda m, x: m.log(1.0 + m.exp(x)), "local": lambda m, out, x: (m.sigmoid(x),),
            "formula": "∂/∂x = σ(x)"}


@pytest.fixture(autouse=True)
def forget_own_ops() -> Iterator[None]:
    """Every op a test defines is taken out after it, so RULES is the engine's own again."""
    yield
    for name in set(RULES) - BUILT_IN:
        remove_op(name)


@pytest.fixture
def softplus() -> Any:
    return define_op("softplus", **softplus_rule())


def test_softplus_matches_torch_first_and_second_derivatives(softplus: Any, torch: ModuleType) -> None:
    for x0 in (-3.0, -0.7, 0.0, 0.4, 2.5, 12.0):
        x = Value(x0)
        y = x.softplus()  # the Value method, made because the name was free
        y.backward(create_graph=True)
        first = x.grad
        x.grad = 0.0
        first.backward()
        t = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
        ty = torch.nn.functional.softplus(t)
        (tg,) = torch.autograd.grad(ty, t, create_graph=True)
        (tgg,) = torch.autograd.grad(tg, t)
        assert y.data == pytest.approx(ty.item(), rel=1e-12)
        assert first.data == pytest.approx(tg.item(), rel=1e-12)
        assert x.grad == pytest.approx(tgg.item(), rel=1e-10, abs=1e-15)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x0=st.floats(-30.0, 30.0))
def test_softplus_grad_matches_torch_everywhere(softplus: Any, torch: ModuleType, x0: float) -> None:
    x = Value(x0)
    x.softplus().backward()
    t = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.softplus(t, threshold=100.0).backward()  # torch's default is x itself above 20
    assert x.grad == pytest.approx(t.grad.item(), rel=1e-12, abs=1e-300)


def test_the_function_takes_numbers_and_batches_and_compiles(softplus: Any) -> None:
    assert softplus(0.5).data == pytest.approx(math.log1p(math.exp(0.5)))  # a number becomes a leaf
    xs = np.array([-1.0, 0.25, 3.0])
    batch = Value(xs)
    loss = softplus(batch * 2.0).sum()
    loss.backward()
    sig = 1.0 / (1.0 + np.exp(-2.0 * xs))
    np.testing.assert_allclose(batch.grad, 2.0 * sig, rtol=1e-12)
    eager = batch.grad.copy()
    prog = chainrule.compile(loss)
    batch.grad = 0.0
    assert prog() == pytest.approx(loss.data, rel=1e-12)
    np.testing.assert_allclose(batch.grad, eager, rtol=1e-12)
    assert "softplus" in str(prog)


def test_check_graph_and_the_explorer_read_the_new_rule(softplus: Any) -> None:
    a, b = Value(0.3, "a"), Value(-1.2, "b")
    out = (a * b).softplus() + softplus(a)
    report = check_graph(out)
    assert report.ok, str(report)
    out.backward()
    values = page_data(to_html(out))["values"]
    assert isinstance(values, list)
    assert [v["formula"] for v in values if v["op"] == "softplus"] == ["∂/∂x = σ(x)"] * 2


def test_a_wrong_local_is_refused_naming_the_op_and_the_point() -> None:
    rule = softplus_rule() | {"local": lambda m, out, x: (m.exp(x),)}  # exp, not sigmoid
    with pytest.raises(GradcheckError, match=r"op 'softplus', input 0, at -1.35.*by `local`.*finite diff"):
        define_op("softplus", **rule)
    assert "softplus" not in RULES and not hasattr(Value, "softplus")


def test_a_local_on_plain_numbers_is_refused_for_batches_and_for_second_derivatives() -> None:
    rule = softplus_rule() | {"local": lambda m, out, x: (1.0 / (1.0 + math.exp(-x)),)}
    with pytest.raises(TypeError, match=r"does not run on batches.*m\.exp\(x\), not math\.exp\(x\)"):
        define_op("softplus", **rule)
    # m.data(x) runs everywhere and has the right first derivative, but on Values it is a constant:
    # create_graph would give a second derivative of 0.
    rule = softplus_rule() | {"local": lambda m, out, x: (m.sigmoid(m.data(x)),)}
    with pytest.raises(GradcheckError, match="second derivatives would be wrong"):
        define_op("softplus", **rule)


def test_an_op_of_two_inputs_gets_a_method_and_checks_its_arity(torch: ModuleType) -> None:
    hypot = define_op("hypot", lambda m, a, b: m.pow(a * a + b * b, 0.5),
                      lambda m, out, a, b: (a / out, b / out), "∂/∂a = a/r, ∂/∂b = b/r")
    a, b = Value(3.0), Value(-4.0)
    r = a.hypot(b)
    r.backward()
    ta, tb = (torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (3.0, -4.0))
    torch.hypot(ta, tb).backward()
    assert (r.data, a.grad, b.grad) == (5.0, pytest.approx(ta.grad.item()), pytest.approx(tb.grad.item()))
    assert hypot(3.0, b).data == 5.0
    with pytest.raises(TypeError, match="hypot takes 2 inputs, got 1"):
        hypot(a)
    with pytest.raises(TypeError, match="hypot takes Values or real numbers, got str"):
        hypot(a, "4")


def test_a_variadic_op_and_the_callers_random_state() -> None:
    state = random.getstate()
    total = define_op("total", lambda m, *xs: m.linear(0.0, (*[1.0] * len(xs), *xs)),
                      lambda m, out, *xs: (1.0,) * len(xs))
    assert random.getstate() == state  # the points are drawn from a generator of its own
    xs = [Value(float(i)) for i in range(4)]
    out = total(*xs)
    out.backward()
    assert out.data == 6.0 and [x.grad for x in xs] == [1.0] * 4


def test_defining_again_replaces_the_op_and_its_method() -> None:
    define_op("twice", lambda m, x: 2.0 * x, lambda m, out, x: (2.0,))
    assert Value(1.5).twice().data == 3.0
    define_op("twice", lambda m, x: x + x + x, lambda m, out, x: (3.0,))  # the cell edited and run again
    y = Value(1.5).twice()
    assert (y.data, y.local_grads) == (4.5, (3.0,))


def test_a_taken_name_gets_no_method_and_remove_op_undoes_all() -> None:
    mean_sq = define_op("mean", lambda m, x: x * x, lambda m, out, x: (2.0 * x,))
    assert Value.mean is not None and Value(np.array([1.0, 3.0])).mean().data == 2.0  # Value.mean stays
    assert mean_sq(Value(3.0)).data == 9.0
    define_op("cube", lambda m, x: x * x * x, lambda m, out, x: (3.0 * x * x,))
    remove_op("cube")
    assert "cube" not in RULES and not hasattr(Value, "cube")
    with pytest.raises(ValueError, match="'cube' was not made by define_op"):
        remove_op("cube")


def test_a_rule_outside_its_domain_everywhere_needs_points() -> None:
    forward, local = (lambda m, x: m.log(x - 10.0)), (lambda m, out, x: (1.0 / (x - 10.0),))
    with pytest.raises(ValueError, match=r"fails .* at every point .*pass points= inside its domain"):
        define_op("log10off", forward, local)
    define_op("log10off", forward, local, points=[11.5, 20.0])
    assert Value(11.0).log10off().data == 0.0


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), [
    (("soft plus", *softplus_rule().values()), {}, ValueError, "must be an identifier"),
    ((3, *softplus_rule().values()), {}, ValueError, "must be an identifier"),
    (("tanh", *softplus_rule().values()), {}, ValueError, "'tanh' is a built-in op"),
    (("sp", "log", softplus_rule()["local"]), {}, TypeError, "must be functions"),
    (("sp", lambda m: 1.0, lambda m, out: ()), {}, TypeError, r"forward\(m, \*xs\)"),
    (("sp", softplus_rule()["forward"], lambda m, out, x, y: (1.0, 1.0)), {}, TypeError,
     r"local\(m, out, \*xs\): forward takes 1"),
    (("sp", softplus_rule()["forward"], lambda m, out, x: (1.0, 2.0)), {}, TypeError,
     r"one derivative per input \(1\), got 2"),
    (("sp", *softplus_rule().values()), {"points": []}, ValueError, "points is empty"),
    (("sp", *softplus_rule().values()), {"points": [math.inf]}, TypeError, "finite numbers"),
    (("sp", *softplus_rule().values()), {"points": [True]}, TypeError, "finite numbers"),
    (("sp", *softplus_rule().values()), {"points": [(1.0, 2.0)]}, ValueError, "takes 1 input"),
    (("sp", softplus_rule()["forward"], softplus_rule()["local"], 7), {}, TypeError, "formula must be a str"),
])
def test_bad_definitions_are_refused_clearly(args: tuple[Any, ...], kwargs: dict[str, Any],
                                             error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        define_op(*args, **kwargs)
    assert set(RULES) == BUILT_IN


def test_an_op_in_rules_not_made_here_is_not_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(RULES, "mine", RULES["tanh"])
    with pytest.raises(ValueError, match="RULES already has an op 'mine', not made by define_op"):
        define_op("mine", **softplus_rule())
