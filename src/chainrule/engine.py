"""The autograd engine: a `Value` remembers how it was made, and `backward()` runs the chain rule.

Read top to bottom: the op rules (each op's forward and local derivatives, side by side), the `Value`
class that applies them, then `backward`, the one loop where the chain rule happens.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

# The op rules. `forward(m, *xs)` computes the output from the inputs' data; `local(m, out, *xs)` returns
# d(out)/d(x_i) for every input. `m` is the math namespace for the data at hand: plain floats here, NumPy
# arrays in batched mode (chainrule.batch). So each rule is written once and every path reuses it.


class Rule(NamedTuple):
    forward: Callable[..., Any]
    local: Callable[..., tuple[Any, ...]]
    formula: str  # the local derivatives written out, for people (the explorer shows it)
    fails_on: str = ""  # what a domain error means for this op, for the error message


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


def _pow_limit(a: float, c: float) -> float:
    # a**c, or its limit where Python refuses: 0 ** -0.5 is inf (from the right) and an overflow is ±inf.
    # Only the slope of ** uses it (sqrt at 0 has an infinite slope, as in PyTorch); the forward raises.
    if a == 0.0 and c < 0.0:
        return math.inf
    try:
        return _pow(a, c)
    except OverflowError:
        return -math.inf if a < 0 and c % 2 == 1 else math.inf


class FloatMath:
    """The math for plain Python floats (chainrule.batch.ArrayMath mirrors it for NumPy arrays). Used as
    a namespace, never instantiated: `FloatMath.relu(x)` calls the plain function."""

    exp, log, sigmoid, pow, pow_limit, div = math.exp, math.log, _sigmoid, _pow, _pow_limit, operator.truediv
    tanh = math.tanh  # math.tanh is stable: tanh(1000) == 1.0, no overflow
    relu = lambda x: 0.0 if x <= 0.0 else x  # written so that NaN propagates, as in PyTorch
    step = lambda x: 1.0 if x > 0.0 else 0.0  # relu'(0) = 0, PyTorch's convention
    # d(a**b)/db = a**b·log(a) exists only for a > 0. Elsewhere (x**2 at x = -3, where b is a constant)
    # we take 0 by convention; PyTorch gives nan there.
    log_or_zero = lambda a: math.log(a) if a > 0 else 0.0
    zero_safe_mul = lambda a, b: 0.0 if a == 0.0 else a * b  # 0·inf = 0: a zero factor wins
    sum = lambda x: x  # a plain number is its own sum over the batch
    ones_like = lambda x: 1.0

    @staticmethod
    def linear(b: float, wx: tuple[float, ...]) -> float:
        n = len(wx) // 2
        out = b  # b + w0*x0 + w1*x1 + ..., micrograd's order of additions: its floats, bit for bit
        for w, x in zip(wx[:n], wx[n:], strict=True):
            out = out + w * x  # never `+=`: on a batch (ArrayMath falls back here) it would write into b
        return out


FLOAT_MATH = FloatMath


RULES: dict[str, Rule] = {
    "+": Rule(lambda m, a, b: a + b, lambda m, out, a, b: (1.0, 1.0), "∂/∂a = 1, ∂/∂b = 1"),
    "*": Rule(lambda m, a, b: a * b, lambda m, out, a, b: (b, a), "∂/∂a = b, ∂/∂b = a"),
    "/": Rule(lambda m, a, b: m.div(a, b), lambda m, out, a, b: (1.0 / b, -out / b),
              "∂/∂a = 1/b, ∂/∂b = -a/b²", "division by zero"),
    "**": Rule(lambda m, a, b: m.pow(a, b),
               # b·a^(b-1) at a = 0 is its limit (inf for 0 < b < 1), and 0 for b = 0 (a^0 is flat).
               lambda m, out, a, b: (m.zero_safe_mul(b, m.pow_limit(a, b - 1.0)), out * m.log_or_zero(a)),
               "∂/∂a = b·a^(b-1), ∂/∂b = a^b·log(a)"),
    "exp": Rule(lambda m, x: m.exp(x), lambda m, out, x: (out,), "∂/∂x = exp(x)", "exp overflow"),
    "log": Rule(lambda m, x: m.log(x), lambda m, out, x: (1.0 / x,), "∂/∂x = 1/x",
                "log of non-positive input"),
    "tanh": Rule(lambda m, x: m.tanh(x), lambda m, out, x: (1.0 - out * out,), "∂/∂x = 1 - tanh²(x)"),
    "sigmoid": Rule(lambda m, x: m.sigmoid(x), lambda m, out, x: (out * (1.0 - out),),
                    "∂/∂x = σ(x)·(1 - σ(x))"),
    "relu": Rule(lambda m, x: m.relu(x), lambda m, out, x: (m.step(x),), "∂/∂x = 1 if x > 0 else 0"),
    # A neuron's b + Σ w_i·x_i as one node (PyTorch's F.linear for one output): the same floats as the
    # chain of + and * it replaces, with one node instead of 2n. Inputs are b, w0, w1, ..., x0, x1, ...
    "linear": Rule(lambda m, b, *wx: m.linear(b, wx),
                   lambda m, out, b, *wx: (1.0, *wx[len(wx) // 2 :], *wx[: len(wx) // 2]),  # x's, then w's
                   "∂/∂b = 1, ∂/∂wᵢ = xᵢ, ∂/∂xᵢ = wᵢ"),
    "sum": Rule(lambda m, x: m.sum(x), lambda m, out, x: (m.ones_like(x),), "∂/∂xᵢ = 1"),  # over a batch
}


# While false (inside `no_grad()`), ops make leaves: no parents are recorded, no graph is built.
_recording = True


@contextmanager
def no_grad() -> Iterator[None]:
    """Within this block, ops compute values only and record no graph (like `torch.no_grad`)."""
    global _recording
    before, _recording = _recording, False
    try:
        yield
    finally:
        _recording = before


class Value:
    """A number that remembers where it came from: its `parents`, the `op` that made it, and the local
    derivatives of that op (`local_grads`, one per parent), so that `backward()` can send gradients back
    along the way it came."""

    # __slots__: no per-instance dict, so nodes are small and quick to make. No closure is stored on a
    # node either (micrograd's `_backward` closure is a reference cycle per node, which leaves every
    # graph to Python's slow cyclic garbage collector): a graph here is freed by refcount.
    __slots__ = ("__weakref__", "data", "grad", "label", "local_grads", "op", "parents")
    __array_ufunc__ = None  # `numpy_number * value` then defers to Value.__rmul__, as a float does

    data: float  # or a 1-D NumPy array in batched mode (chainrule.batch)
    grad: float
    label: str
    op: str
    parents: tuple[Value, ...]
    local_grads: tuple[float, ...]

    def __init__(self, data: float, label: str = "") -> None:
        self.data = data if type(data) is float else _as_data(data)
        self.grad = 0.0
        self.label = label
        self.op = ""
        self.parents = ()
        self.local_grads = ()

    # The seeds' and micrograd's drawing code reads these names.
    @property
    def _prev(self) -> tuple[Value, ...]:
        return self.parents

    @property
    def _op(self) -> str:
        return self.op

    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data}, grad={self.grad}{label})"

    def _culprit(self) -> str:  # for error messages: what the data was, and which Value
        label = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data}{label})"

    # The ops: each runs one rule from RULES, or is a one-line composition of them. A plain number on
    # either side becomes a leaf Value, as in the seeds (it shows in graphs); for any other type we return
    # NotImplemented, and Python raises its usual TypeError.
    def __add__(self, other: Value | float) -> Value:
        return _binary("+", self, other)

    def __mul__(self, other: Value | float) -> Value:
        return _binary("*", self, other)

    def __truediv__(self, other: Value | float) -> Value:
        return _binary("/", self, other)

    def __pow__(self, other: Value | float) -> Value:
        return _binary("**", self, other)

    def __radd__(self, other: float) -> Value:
        return _binary("+", other, self)

    def __rmul__(self, other: float) -> Value:
        return _binary("*", other, self)

    def __rtruediv__(self, other: float) -> Value:
        return _binary("/", other, self)

    def __rpow__(self, other: float) -> Value:
        return _binary("**", other, self)

    # As in micrograd: -a is a * -1, and a - b is a + (-b).
    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Value | float) -> Value:
        b = _lift(other)
        return NotImplemented if b is None else self + (-b)

    def __rsub__(self, other: float) -> Value:
        a = _lift(other)
        return NotImplemented if a is None else a + (-self)

    def exp(self) -> Value:
        return _apply("exp", (self,), (self.data,))

    def log(self) -> Value:
        return _apply("log", (self,), (self.data,))

    def tanh(self) -> Value:
        return _apply("tanh", (self,), (self.data,))

    def sigmoid(self) -> Value:
        return _apply("sigmoid", (self,), (self.data,))

    def relu(self) -> Value:
        return _apply("relu", (self,), (self.data,))

    def sum(self) -> Value:
        """The sum over a batch (see chainrule.batch); a plain number is its own sum."""
        return _apply("sum", (self,), (self.data,))

    def mean(self) -> Value:
        """The mean over a batch; a plain number is its own mean."""
        n = 1 if type(self.data) is float else len(self.data)  # type: ignore[arg-type]
        return self.sum() * (1.0 / n)

    # Comparisons look at .data (handy for `max`, sorting, accuracy). There is deliberately no __eq__:
    # graph bookkeeping needs identity, and `a == b` building a bool from data would hide bugs.
    def __lt__(self, other: Value | float) -> bool:
        return self.data < (other.data if isinstance(other, Value) else other)

    def __le__(self, other: Value | float) -> bool:
        return self.data <= (other.data if isinstance(other, Value) else other)

    def __gt__(self, other: Value | float) -> bool:
        return self.data > (other.data if isinstance(other, Value) else other)

    def __ge__(self, other: Value | float) -> bool:
        return self.data >= (other.data if isinstance(other, Value) else other)

    def detach(self) -> Value:
        """A new leaf with the same data (and label): gradients stop here."""
        return Value(self.data, self.label)

    def backward(self) -> None:
        """Fill `.grad` of every node of this graph with d(self)/d(node).

        Repeated calls: the grads of non-leaf nodes are reset first, so they always describe this pass;
        leaves *accumulate* (as in PyTorch), so zeroing them between steps is the caller's job
        (`model.zero_grad()`). Calling it twice therefore doubles the leaves' grads exactly.
        """
        if type(self.data) is not float:
            raise ValueError(f"backward() needs a number; reduce the batch first (.sum(), .mean()): {self}")
        order = topological_order(self)
        for node in order:
            if node.parents:
                node.grad = 0.0
        self.grad += 1.0
        # The chain rule, in one place: walk from the output back to the leaves; each node passes its
        # grad to every parent, scaled by the local derivative, and *adds* it there (a parent used
        # twice, as in a + a, receives two contributions).
        for node in reversed(order):
            if not node.parents:
                continue  # a leaf: nothing further back
            grad = node.grad
            for parent, local in zip(node.parents, node.local_grads):  # noqa: B905 (zip(strict) is slower)
                if type(grad) is float or type(parent.data) is not float:
                    parent.grad += local * grad
                else:  # a batch meets one number shared by all its examples: that number gets the sum
                    parent.grad += _batch_sum(local, grad)


def _batch_sum(local: Any, grad: Any) -> float:
    """Σ_i local_i·grad_i over a batch (chainrule.batch), for a parent that is one number."""
    return float(grad.dot(local)) if type(local) is not float else local * float(grad.sum())


def linear(w: Sequence[Value | float], x: Sequence[Value | float], b: Value | float) -> Value:
    """b + w·x as one node (a neuron before its activation): `b + w[0]*x[0] + w[1]*x[1] + ...`."""
    if len(w) != len(x):
        raise ValueError(f"linear needs as many weights as inputs, got {len(w)} and {len(x)}")
    parents = (b, *w, *x)
    if set(map(type, parents)) != {Value}:  # a plain number among them becomes a leaf, as in a + 1
        lifted = [p if type(p) is Value else _lift(p) for p in parents]
        if None in lifted:
            bad = parents[lifted.index(None)]
            raise TypeError(f"linear takes Values or real numbers, got {type(bad).__name__}: {bad!r}")
        parents = tuple(lifted)  # type: ignore[arg-type]
    return _apply("linear", parents, tuple(map(_data, parents)))  # type: ignore[arg-type]


_data = operator.attrgetter("data")  # map(_data, parents) is [p.data for p in parents] at C speed


def _apply(op: str, parents: tuple[Value, ...], xs: tuple[Any, ...]) -> Value:
    """Run `op` on the parents' data `xs`: the output and its local derivatives, computed together."""
    m: Any = FLOAT_MATH
    for x in xs:
        if type(x) is not float:
            m = _array_math(op, parents)  # a batch among the inputs (chainrule.batch)
            break
    rule = RULES[op]
    try:
        out = rule.forward(m, *xs)
        if not _recording:
            return Value(out)
        node = _new(Value)  # skips __init__'s checks: `out` came out of a rule
        node.data, node.grad, node.label, node.op = out, 0.0, "", op
        node.parents, node.local_grads = parents, rule.local(m, out, *xs)
        return node
    except (ArithmeticError, ValueError) as err:
        # Python's own messages ("math domain error") don't say which op or which Value: ours do.
        what = rule.fails_on or f"{op} failed"
        if not rule.fails_on or m is not FLOAT_MATH:
            what += f" ({err})"  # the cause, and in a batch which element
        raise type(err)(f"{what}: {f' {op} '.join(p._culprit() for p in parents)}") from None


def _binary(op: str, a: object, b: object) -> Value:
    if type(a) is not Value:
        a = _lift(a)
    if type(b) is not Value:
        b = _lift(b)
    if a is None or b is None:
        return NotImplemented  # type: ignore[no-any-return]  # Python then raises its TypeError
    return _apply(op, (a, b), (a.data, b.data))


def _lift(x: object) -> Value | None:
    if isinstance(x, Value):
        return x
    if type(x) is float or isinstance(x, numbers.Real):  # the ABC check is slow: floats skip it
        return Value(x)  # type: ignore[arg-type]
    return None


def _as_data(x: object) -> Any:
    # numbers.Real covers int, bool, Fraction and NumPy's real scalars; complex is deliberately not Real.
    if isinstance(x, numbers.Real):
        return float(x)  # a NumPy scalar left inside would make every op ~10x slower
    if getattr(x, "ndim", None) == 1:  # a 1-D NumPy array: a batch, one number per example
        from .batch import as_batch

        return as_batch(x)
    raise TypeError(f"Value data must be a real number or a 1-D array, got {type(x).__name__}: {x!r}")


def _array_math(op: str, parents: tuple[Value, ...]) -> Any:
    from . import batch  # imported on first use: the float path never needs NumPy

    batch.check_lengths(op, parents)
    return batch.ARRAY_MATH


_new = object.__new__


def topological_order(root: Value) -> list[Value]:
    """Every node of root's graph, each after all of its parents (deterministic: depth first, in
    parent order). No recursion, so depth is limited by memory, not by Python's recursion limit.
    Bookkeeping is by identity: a set of Values hashes them by id, as Value defines no __eq__."""
    order: list[Value] = []
    visited = {root}
    stack = [(root, iter(root.parents))]  # each node with an iterator over the parents not yet looked at
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            if parent not in visited:
                visited.add(parent)
                if parent.parents:
                    stack.append((parent, iter(parent.parents)))
                    break  # finish that parent first; this loop resumes where it stopped
                order.append(parent)  # a leaf is done at once
        else:  # every parent is done
            stack.pop()
            order.append(node)
    return order
