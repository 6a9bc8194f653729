"""The math the op rules run on, and the conventions at kinks and limits, chosen once.

Each rule in `chainrule.engine.RULES` is written against a math namespace `m` (`m.exp(x)`, `m.step(x)`, ...).
This module has the namespaces for plain Python floats (`FloatMath`) and for Values (`ValueMath`: the rules
read with Values give the graphs of their derivatives); `chainrule.batch.ArrayMath` is the one for NumPy
arrays. What a namespace supplies itself is only what its numbers need: `where(c, a, b)`, `maximum`,
`as_float` (a truth value as 1.0 or 0.0), `data(x)` (what `==` compares) and a power that returns IEEE
limits instead of raising. The choices at kinks are the functions below, written once against those
primitives, and every namespace reads them (`with_conventions`): no convention is restated per kind of
number.

This file must not import NumPy: the float path runs without it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, Protocol


class Math(Protocol):
    """What every math namespace offers a rule (`FloatMath`, `ValueMath`, `chainrule.batch.ArrayMath`):
    the functions RULES' rows call, the conventions below, and the primitives they are written with. A
    rule of your own (`chainrule.define_op`) may use any of these, on any kind of number."""

    def exp(self, x: Any, /) -> Any: ...
    def log(self, x: Any, /) -> Any: ...
    def tanh(self, x: Any, /) -> Any: ...
    def sigmoid(self, x: Any, /) -> Any: ...
    def pow(self, a: Any, b: Any, /) -> Any: ...
    def power(self, a: Any, c: Any, /) -> Any: ...
    def div(self, a: Any, b: Any, /) -> Any: ...
    def mul(self, a: Any, b: Any, /) -> Any: ...
    def fabs(self, x: Any, /) -> Any: ...
    def where(self, c: Any, a: Any, b: Any, /) -> Any: ...
    def data(self, x: Any, /) -> Any: ...
    def maximum(self, a: Any, b: Any, /) -> Any: ...
    def as_float(self, x: Any, /) -> Any: ...
    def linear(self, b: Any, wx: tuple[Any, ...], /) -> Any: ...
    def sum(self, x: Any, /) -> Any: ...
    def ones_like(self, x: Any, /) -> Any: ...
    def maxof(self, xs: tuple[Any, ...], /) -> Any: ...
    def pick(self, i: Any, xs: tuple[Any, ...], /) -> Any: ...
    # the conventions (with_conventions binds them to each namespace)
    def relu(self, x: Any, /) -> Any: ...
    def step(self, x: Any, /) -> Any: ...
    def sign(self, x: Any, /) -> Any: ...
    def log_or_zero(self, a: Any, /) -> Any: ...
    def zero_safe_mul(self, a: Any, b: Any, /) -> Any: ...
    def pow_limit(self, a: Any, c: Any, /) -> Any: ...
    def ties(self, out: Any, xs: tuple[Any, ...], /) -> tuple[Any, ...]: ...
    def one_hot(self, i: Any, n: int, /) -> tuple[Any, ...]: ...


class Conventions:
    """The conventions as attributes every namespace gets from `with_conventions` (declared for mypy)."""

    relu: ClassVar[Callable[..., Any]]
    step: ClassVar[Callable[..., Any]]
    sign: ClassVar[Callable[..., Any]]
    log_or_zero: ClassVar[Callable[..., Any]]
    zero_safe_mul: ClassVar[Callable[..., Any]]
    pow_limit: ClassVar[Callable[..., Any]]
    ties: ClassVar[Callable[..., tuple[Any, ...]]]
    one_hot: ClassVar[Callable[..., tuple[Any, ...]]]

# --- the conventions, each chosen once (PyTorch's, unless a comment says otherwise) -------------------


def relu(m: Any, x: Any) -> Any:
    # max(x, 0) keeps x when 0 is not greater: NaN propagates through relu, as in PyTorch.
    return m.maximum(x, 0.0)


def step(m: Any, x: Any) -> Any:
    """relu's slope: 1 where x > 0, else 0 (relu'(0) = 0, PyTorch's convention; NaN > 0 is false)."""
    return m.as_float(x > 0.0)


def sign(m: Any, x: Any) -> Any:
    """abs's slope: -1, 0 or 1 (abs'(0) = 0, as PyTorch's sign)."""
    return m.as_float(x > 0.0) - m.as_float(x < 0.0)


def log_or_zero(m: Any, a: Any) -> Any:
    # d(a**b)/db = a**b·log(a) exists only for a > 0. Elsewhere (x**2 at x = -3, where b is a constant)
    # we take 0 by convention (log(1) = 0); PyTorch gives nan there.
    return m.log(m.where(a > 0.0, a, 1.0))


def zero_safe_mul(m: Any, a: Any, b: Any) -> Any:
    """a·b where a zero factor wins: 0·inf = 0 (so d(x**0)/dx is 0 at x = 0, not nan). `m.data`: a Value
    has no `==` (identity is what graphs need), so equality is asked of its data."""
    return m.where(m.data(a) == 0.0, 0.0, m.mul(a, b))


def ties(m: Any, out: Any, xs: tuple[Any, ...]) -> tuple[Any, ...]:
    """max's slopes: 1/k to each of the k inputs equal to the max, 0 to the others (torch.amax's choice;
    torch.max with indices gives it all to one). A NaN max: the NaN inputs share it."""
    top = m.data(out)
    hits = [m.as_float((m.data(x) == top) | (m.data(x) != m.data(x))) for x in xs]  # x != x: x is NaN
    k = hits[0]
    for h in hits[1:]:
        k = k + h
    return tuple(h / k for h in hits)  # k ≥ 1: the max is one of the inputs


def one_hot(m: Any, i: Any, n: int) -> tuple[Any, ...]:
    """lookup's slopes: 1 for the entry the index reads, 0 for the others (an index is data, not a
    variable: its own slope is 0)."""
    k = m.data(i)
    return tuple(m.as_float(k == float(j)) for j in range(n))


def pow_limit(m: Any, a: Any, c: Any) -> Any:
    """a**c, or its limit where the plain power has none: 0 ** -0.5 is inf (from the right), an overflow
    is ±inf. Only the slope of ** uses it (sqrt at 0 has an infinite slope, as in PyTorch)."""
    return m.power(a, c)


# --- floats -------------------------------------------------------------------------------------------


def _sigmoid(x: float) -> float:
    # Two forms so exp never overflows: for x << 0, exp(-x) would overflow in 1 / (1 + exp(-x)).
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _pow(a: float, b: float) -> float:
    try:
        out: float = a**b
    except OverflowError:  # Python's message is "(34, 'Numerical result out of range')"
        raise OverflowError("result too large") from None
    if type(out) is complex:  # Python returns a complex number for (-8) ** (1/3); we stay real
        raise ValueError("math domain error")
    return out


def _power(a: float, c: float) -> float:
    # IEEE's answers where Python raises (NumPy's np.power gives the same): 0 ** negative is inf, an
    # overflow is ±inf, a negative base to a fractional power is nan.
    try:
        out = a**c
    except ZeroDivisionError:
        return math.inf
    except OverflowError:
        return -math.inf if a < 0 and c % 2 == 1 else math.inf
    return math.nan if type(out) is complex else out


def _linear(b: float, wx: tuple[float, ...]) -> float:
    n = len(wx) // 2
    out = b  # b + w0*x0 + w1*x1 + ..., micrograd's order of additions: its floats, bit for bit
    for w, x in zip(wx[:n], wx[n:], strict=True):
        out = out + w * x  # never `+=`: on a batch (ArrayMath falls back here) it would write into b
    return out


def _maxof(xs: tuple[float, ...]) -> float:
    out = max(xs)  # max() alone would let a NaN through or not depending on where it stands
    return math.nan if out != out or any(x != x for x in xs) else out


def _pick(i: Any, xs: tuple[Any, ...]) -> Any:
    if not (float(i).is_integer() and 0 <= i < len(xs)):
        raise ValueError(f"index {i} is not an integer in [0, {len(xs)})")
    return xs[int(i)]


def with_conventions(m: type) -> type:
    """Give the math namespace `m` the conventions above, read with its own primitives: `m.step(x)` is
    `step(m, x)`. Bound with `partial`, a C call rather than a Python frame (`**` makes three per op)."""
    for convention in (relu, step, sign, log_or_zero, zero_safe_mul, pow_limit, ties, one_hot):
        setattr(m, convention.__name__, partial(convention, m))
    return m


@with_conventions
class FloatMath(Conventions):
    """The math for plain Python floats. A namespace, never instantiated: `FloatMath.exp(x)` is math.exp."""

    exp, log, tanh, sigmoid = math.exp, math.log, math.tanh, _sigmoid  # math.tanh never overflows
    pow, power, div, mul, fabs = _pow, _power, operator.truediv, operator.mul, math.fabs
    where = staticmethod(lambda c, a, b: a if c else b)
    data = operator.pos  # a float is its own data (pos is the identity on floats, at C speed)
    maximum, as_float = max, float
    linear, sum, ones_like = staticmethod(_linear), staticmethod(lambda x: x), staticmethod(lambda x: 1.0)
    maxof, pick = staticmethod(_maxof), staticmethod(_pick)


def _on_values(method: str, on_numbers: Any) -> Any:
    """`m.exp(x)` on Values: the Value's own op (a node of the graph), or the float function on a number
    (a rule may pass constants, as `where(c, a, 1.0)` does)."""
    return staticmethod(lambda x: getattr(x, method)() if hasattr(x, method) else on_numbers(x))


def _pow_values(a: Any, b: Any) -> Any:
    return _pow(a, b) if isinstance(a, int | float) and isinstance(b, int | float) else a**b


@with_conventions
class ValueMath(Conventions):
    """The math on Values, for gradients of gradients: the local derivatives computed with it are Values
    with graphs of their own (`backward(create_graph=True)`). It offers every function FloatMath does, so a
    rule written for floats (`chainrule.define_op` included) runs here too. The conventions are the same
    functions, deciding on the data: a chosen constant (a step, a sign, a limit) is a number, whose own
    slope is 0."""

    where, mul, as_float, div, fabs = FloatMath.where, operator.mul, float, operator.truediv, abs
    data = staticmethod(lambda x: getattr(x, "data", x))
    exp, log, tanh = _on_values("exp", math.exp), _on_values("log", math.log), _on_values("tanh", math.tanh)
    sigmoid, sum = _on_values("sigmoid", _sigmoid), _on_values("sum", lambda x: x)
    pow, linear = staticmethod(_pow_values), staticmethod(_linear)
    # max(a, b) keeps a unless b > a (a comparison of data): relu's NaN propagates, as with floats.
    maximum = max
    maxof = staticmethod(lambda xs: max(xs))  # the largest input itself (its slope goes to that one)
    pick = staticmethod(lambda i, xs: _pick(getattr(i, "data", i), xs))  # the entry itself
    ones_like = staticmethod(lambda x: 1.0)

    @staticmethod
    def power(a: Any, c: Any) -> Any:
        limit = _power(a.data, getattr(c, "data", c))
        return a**c if math.isfinite(limit) else limit  # past a limit (0 ** -0.5 = inf): a constant


FLOAT_MATH: Math = FloatMath  # a class as a namespace: its functions are static
