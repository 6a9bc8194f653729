"""chainrule.numerics: the math namespaces rules are read with offer the same functions and numbers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from chainrule import Value
from chainrule.batch import ARRAY_MATH, ArrayMath
from chainrule.numerics import FloatMath, Math, ValueMath


def public(namespace: Any) -> set[str]:
    return {name for name in dir(namespace) if not name.startswith("_")}


def test_every_namespace_offers_every_function_a_rule_may_use() -> None:
    names = public(FloatMath)
    assert {"exp", "log", "tanh", "sigmoid", "relu", "step", "sign", "fabs", "pow", "div", "where"} <= names
    assert public(ValueMath) == names
    assert public(ArrayMath) == names
    # ... and that is the Math protocol, which mypy checks the namespaces against: nothing more or less.
    protocol = {name for name in vars(Math) if not name.startswith("_")}
    assert len(protocol) > 20 and protocol == names
    assert all(callable(getattr(m, name)) for m in (FloatMath, ValueMath, ARRAY_MATH) for name in protocol)


# (function, arguments): each is called on floats, on Values and on 1-element arrays.
CALLS: list[tuple[str, tuple[float, ...]]] = [
    ("exp", (0.7,)), ("log", (2.5,)), ("tanh", (-0.4,)), ("sigmoid", (-1.3,)), ("fabs", (-2.0,)),
    ("relu", (-0.5,)), ("relu", (0.5,)), ("step", (0.5,)), ("sign", (-3.0,)), ("pow", (2.0, 0.5)),
    ("div", (3.0, 4.0)), ("mul", (3.0, -2.0)), ("maximum", (1.0, 2.0)), ("power", (0.0, -0.5)),
    ("log_or_zero", (-3.0,)), ("zero_safe_mul", (0.0, math.inf)), ("sum", (1.5,)), ("ones_like", (1.5,)),
]


@pytest.mark.parametrize(("name", "args"), CALLS)
def test_the_three_namespaces_give_the_same_numbers(name: str, args: tuple[float, ...]) -> None:
    want = getattr(FloatMath, name)(*args)
    on_values = getattr(ValueMath, name)(*[Value(a) for a in args])
    got = on_values.data if isinstance(on_values, Value) else on_values
    assert got == pytest.approx(want, rel=1e-15)
    if name in ("sum", "ones_like"):
        return  # on an array these reduce or fill: the batch tests check them
    on_arrays = getattr(ARRAY_MATH, name)(*[np.array([a]) for a in args])
    assert float(np.asarray(on_arrays).reshape(-1)[0]) == pytest.approx(want, rel=1e-15)


def test_value_functions_are_nodes_of_the_graph() -> None:
    # So a rule's local derivative read with ValueMath can itself be differentiated (create_graph).
    x = Value(0.3)
    for name in ("exp", "log", "tanh", "sigmoid", "fabs"):
        out = getattr(ValueMath, name)(x)
        assert isinstance(out, Value) and out.parents == (x,), name
    assert ValueMath.exp(2.0) == math.exp(2.0)  # a constant stays a number (where() passes 1.0)
    assert ValueMath.linear(Value(1.0), (Value(2.0), Value(3.0))).data == 7.0
    assert math.isnan(ValueMath.maximum(Value(math.nan), 0.0).data)  # NaN propagates, as max(x, 0) on floats
