"""The autograd engine: a `Value` remembers how it was made, and `backward()` runs the chain rule.

Read top to bottom: the op rules (each op's forward and local derivatives, side by side), the `Value`
class that applies them, then `backward`, the one loop where the chain rule happens.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

# The op rules. `forward(m, *xs)` computes the output from the inputs' data; `local(m, out, *xs)` returns
# d(out)/d(x_i) for every input. `m` is the math namespace for the data at hand (plain floats here; other
# execution paths pass their own), so each rule is written exactly once and reused everywhere.


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
    out: float = a**b
    if type(out) is complex:  # Python returns a complex number for (-8) ** (1/3); we stay real
        raise ValueError("math domain error")
    return out


def _log_or_zero(a: float) -> float:
    # d(a**b)/db = a**b * log(a) only exists for a > 0. Elsewhere (x**2 at x = -3, say, where b is a
    # constant) we take 0 by convention; PyTorch gives nan there.
    return math.log(a) if a > 0 else 0.0


class FloatMath:
    """The math namespace for plain Python floats."""

    exp = staticmethod(math.exp)
    log = staticmethod(math.log)
    tanh = staticmethod(math.tanh)  # math.tanh is stable: tanh(1000) == 1.0, no overflow
    sigmoid = staticmethod(_sigmoid)
    pow = staticmethod(_pow)
    log_or_zero = staticmethod(_log_or_zero)

    @staticmethod
    def relu(x: float) -> float:
        return 0.0 if x <= 0.0 else x  # written so that NaN propagates, as in PyTorch

    @staticmethod
    def step(x: float) -> float:
        return 1.0 if x > 0.0 else 0.0  # relu'(0) = 0, PyTorch's convention


FLOAT_MATH = FloatMath()

RULES: dict[str, Rule] = {
    "+": Rule(lambda m, a, b: a + b, lambda m, out, a, b: (1.0, 1.0), "∂/∂a = 1, ∂/∂b = 1"),
    "*": Rule(lambda m, a, b: a * b, lambda m, out, a, b: (b, a), "∂/∂a = b, ∂/∂b = a"),
    "/": Rule(lambda m, a, b: a / b, lambda m, out, a, b: (1.0 / b, -out / b),
              "∂/∂a = 1/b, ∂/∂b = -a/b²", "division by zero"),
    "**": Rule(lambda m, a, b: m.pow(a, b),
               lambda m, out, a, b: (b * m.pow(a, b - 1.0), out * m.log_or_zero(a)),
               "∂/∂a = b·a^(b-1), ∂/∂b = a^b·log(a)"),
    "exp": Rule(lambda m, x: m.exp(x), lambda m, out, x: (out,), "∂/∂x = exp(x)", "exp overflow"),
    "log": Rule(lambda m, x: m.log(x), lambda m, out, x: (1.0 / x,), "∂/∂x = 1/x",
                "log of non-positive input"),
    "tanh": Rule(lambda m, x: m.tanh(x), lambda m, out, x: (1.0 - out * out,), "∂/∂x = 1 - tanh²(x)"),
    "sigmoid": Rule(lambda m, x: m.sigmoid(x), lambda m, out, x: (out * (1.0 - out),),
                    "∂/∂x = σ(x)·(1 - σ(x))"),
    "relu": Rule(lambda m, x: m.relu(x), lambda m, out, x: (m.step(x),), "∂/∂x = 1 if x > 0 else 0"),
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


def _as_data(x: object) -> float:
    if type(x) is float:
        return x
    # numbers.Real covers int, bool, Fraction and NumPy's real scalars; complex is deliberately not Real.
    if isinstance(x, numbers.Real):
        return float(x)  # a NumPy scalar left inside would make every op ~10x slower
    raise TypeError(f"Value data must be a real number, got {type(x).__name__}: {x!r}")


def _apply(op: str, *parents: Value) -> Value:
    """Run op `op` on `parents`: the forward value and its local derivatives, computed together."""
    rule = RULES[op]
    xs = [p.data for p in parents]
    try:
        out = rule.forward(FLOAT_MATH, *xs)
        local = rule.local(FLOAT_MATH, out, *xs) if _recording else ()
    except (ArithmeticError, ValueError) as err:
        # Python's own messages ("math domain error") don't say which op or which Value: we do.
        what = rule.fails_on or f"{op} failed ({err})"
        raise type(err)(f"{what}: {f' {op} '.join(p._culprit() for p in parents)}") from None
    return Value._node(out, op, parents, local) if _recording else Value(out)


class Value:
    """A number that remembers where it came from: its `parents`, the `op` that made it, and the local
    derivatives of that op, so that `backward()` can send gradients back along the way it came."""

    # __slots__: no per-instance dict, so nodes are small and fast to make. No closures are stored
    # on a node either (micrograd's `_backward` closure is a reference cycle per node, which leaves
    # every graph to Python's slow cyclic garbage collector); a graph here is freed by refcount.
    __slots__ = ("__weakref__", "data", "grad", "label", "local_grads", "op", "parents")

    data: float
    grad: float
    label: str
    op: str
    parents: tuple[Value, ...]
    local_grads: tuple[float, ...]

    def __init__(self, data: float, label: str = "") -> None:
        self.data = _as_data(data)
        self.grad = 0.0
        self.label = label
        self.op = ""
        self.parents = ()
        self.local_grads = ()

    @classmethod
    def _node(cls, data: float, op: str, parents: tuple[Value, ...], local: tuple[Any, ...]) -> Value:
        out = cls.__new__(cls)  # skips __init__'s type check: `data` came out of a rule
        out.data, out.grad, out.label = data, 0.0, ""
        out.op, out.parents, out.local_grads = op, parents, local
        return out

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

    def _culprit(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data}{label})"

    # --- the ops: each is one rule from RULES (or a one-line composition of them) ---

    def _binary(self, op: str, other: object, reflected: bool = False) -> Value:
        if not isinstance(other, Value):
            if not isinstance(other, numbers.Real):
                return NotImplemented  # type: ignore[no-any-return]  # Python then raises its TypeError
            other = Value(float(other))  # a plain number becomes a leaf, as in the seeds: it shows in graphs
        return _apply(op, other, self) if reflected else _apply(op, self, other)

    def __add__(self, other: Value | float) -> Value:
        return self._binary("+", other)

    def __mul__(self, other: Value | float) -> Value:
        return self._binary("*", other)

    def __truediv__(self, other: Value | float) -> Value:
        return self._binary("/", other)

    def __pow__(self, other: Value | float) -> Value:
        return self._binary("**", other)

    def __radd__(self, other: float) -> Value:
        return self._binary("+", other, reflected=True)

    def __rmul__(self, other: float) -> Value:
        return self._binary("*", other, reflected=True)

    def __rtruediv__(self, other: float) -> Value:
        return self._binary("/", other, reflected=True)

    def __rpow__(self, other: float) -> Value:
        return self._binary("**", other, reflected=True)

    # Derived ops are compositions, as in micrograd: a - b is a + (-b), and -a is a * -1.
    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other) if isinstance(other, Value | numbers.Real) else NotImplemented

    def __rsub__(self, other: float) -> Value:
        return (-self)._binary("+", other, reflected=True)

    def exp(self) -> Value:
        return _apply("exp", self)

    def log(self) -> Value:
        return _apply("log", self)

    def tanh(self) -> Value:
        return _apply("tanh", self)

    def sigmoid(self) -> Value:
        return _apply("sigmoid", self)

    def relu(self) -> Value:
        return _apply("relu", self)

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
        order = topological_order(self)
        for node in order:
            if node.parents:
                node.grad = 0.0
        self.grad += 1.0
        # The chain rule, in one place: walk from the output back to the leaves; each node passes its
        # grad to every parent, scaled by the local derivative, and *adds* it there (a parent used
        # twice, as in a + a, receives two contributions).
        for node in reversed(order):
            for parent, local in zip(node.parents, node.local_grads, strict=True):
                parent.grad += local * node.grad


def topological_order(root: Value) -> list[Value]:
    """Every node of root's graph, each after all of its parents (deterministic).

    Kahn's algorithm, run from the output: first count how many children use each node; then a node
    is emitted once all of its children have been. No recursion, so depth is limited by memory, not
    by Python's recursion limit. Bookkeeping is by id(): the graph keeps every node alive meanwhile.
    """
    children: dict[int, int] = {id(root): 0}
    stack = [root]
    while stack:
        for parent in stack.pop().parents:
            if id(parent) in children:
                children[id(parent)] += 1
            else:
                children[id(parent)] = 1
                stack.append(parent)
    order, stack = [], [root]
    while stack:
        node = stack.pop()
        order.append(node)
        for parent in node.parents:
            children[id(parent)] -= 1
            if children[id(parent)] == 0:
                stack.append(parent)
    order.reverse()
    return order
