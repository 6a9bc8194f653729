"""The autograd engine: a `Value` remembers how it was made, and `backward()` runs the chain rule.

Read top to bottom: the op rules (forward and local derivatives side by side), the `Value` class that
applies them, then `backward_pass`, the one loop where the chain rule happens."""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from .inline import inlined
from .numerics import FLOAT_MATH, Math, ValueMath

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

# The op rules. `forward(m, *xs)` computes the output from the inputs' data; `local(m, out, *xs)` returns
# d(out)/d(x_i) for every input. `m` is a math namespace: floats (chainrule.numerics), NumPy batches
# (chainrule.batch) or Values (numerics.ValueMath, for gradients of gradients). Each rule is written once.


class Rule(NamedTuple):
    forward: Callable[..., Any]
    local: Callable[..., tuple[Any, ...]]
    formula: str  # the local derivatives written out, for people (the explorer shows it)
    fails_on: str = ""  # what a domain error means for this op, for the error message
    # A variadic op's (inputs before the variadic ones, how many lists of them, a neutral value): one more
    # input of that value at the end of each list changes neither the output nor the others' derivatives
    # (max's -inf: unless every input is -inf), so compile may line up nodes of different arity (a
    # softmax at every position of a sequence).
    pad: tuple[int, int, float] | None = None


class Rules(dict[str, Rule]):
    """The table of rules. Each Value method holds its rule's two functions (looking the rule up on every op
    would cost ~25 ns of a ~300 ns op), so `RULES[op] = rule` and `del RULES[op]` remake the methods that
    run `op` at once (after `del`, they raise KeyError). Change it item by item (`update()` bypasses it)."""

    def __setitem__(self, op: str, rule: Rule) -> None:
        super().__setitem__(op, rule)
        _rebind(op)

    def __delitem__(self, op: str) -> None:
        super().__delitem__(op)
        _rebind(op)


RULES = Rules({
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
    "abs": Rule(lambda m, x: m.fabs(x), lambda m, out, x: (m.sign(x),), "∂/∂x = sign(x), 0 at x = 0"),
    # A neuron's b + Σ w_i·x_i as one node (PyTorch's F.linear for one output): the same floats as the
    # chain of + and * it replaces, with one node instead of 2n. Inputs are b, w0, w1, ..., x0, x1, ...
    "linear": Rule(lambda m, b, *wx: m.linear(b, wx),
                   lambda m, out, b, *wx: (1.0, *wx[len(wx) // 2 :], *wx[: len(wx) // 2]),  # x's, then w's
                   "∂/∂b = 1, ∂/∂wᵢ = xᵢ, ∂/∂xᵢ = wᵢ", pad=(1, 2, 0.0)),  # + 0·0 changes nothing
    "sum": Rule(lambda m, x: m.sum(x), lambda m, out, x: (m.ones_like(x),), "∂/∂xᵢ = 1"),  # over a batch
    # The largest input (a softmax's shift); inputs that tie for it share its slope, as in torch.amax.
    "max": Rule(lambda m, *xs: m.maxof(xs), lambda m, out, *xs: m.ties(out, xs),
                "∂/∂xᵢ = 1/k for the k inputs equal to the max, else 0", pad=(0, 1, float("-inf"))),
    # The identity with no local derivative at all: what it reads is recomputed by every interpretation
    # (compile too), and backward has no edge to follow, so no gradient passes, not even a NaN (a slope of
    # 0 would pass 0·NaN = NaN): torch's detach, JAX's stop_gradient.
    "detach": Rule(lambda m, x: x, lambda m, out, x: (), "∂/∂x: none, no gradient passes (as if it were 0)"),
    # table[i] with the index as data: inputs are the index (a number holding an integer, or a batch of
    # them), then the entries to pick from. The graph is the same whichever entry is read, so one compiled
    # program serves every token; backward adds into the entry read (torch's Embedding, index_select).
    "lookup": Rule(lambda m, i, *xs: m.pick(i, xs), lambda m, out, i, *xs: (0.0, *m.one_hot(i, len(xs))),
                   "∂/∂xⱼ = 1 for the entry read (j = index), else 0; ∂/∂index = 0"),
})


# False inside `no_grad()`: ops make leaves, no graph is built. A context variable is one flag per thread
# (and per asyncio task); every op reads it, and `_recording()` takes ~15 ns to a `threading.local`'s ~55.
_RECORDING = ContextVar("chainrule_recording", default=True)
_recording = _RECORDING.get


@contextmanager
def no_grad(recording: bool = False) -> Iterator[None]:
    """Within this block, ops compute values only and record no graph (like `torch.no_grad`), in this
    thread. `enable_grad()` (torch's name) is `no_grad(recording=True)`: record again, inside no_grad."""
    token = _RECORDING.set(recording)
    try:
        yield
    finally:
        _RECORDING.reset(token)


enable_grad = partial(no_grad, recording=True)


_new = object.__new__


def _node(kind: type[Value], data: Any, op: str, parents: tuple[Value, ...], local_grads: tuple[Any, ...]
          ) -> Value:
    """The one place a node is made: a `kind` node holding `data`, made by `op` from `parents` with these
    local derivatives (a leaf: op "", no parents). `_new` skips __new__'s and __init__'s checks (the data
    came out of a rule, or `_lift` made it a float). One store per statement: a 6-tuple unpack would
    build the tuple first. The callers below have these lines put in place of the call (chainrule.inline):
    making nodes is most of an eager step, and the call would cost ~10–30 ns of a ~300 ns op."""
    node = _new(kind)
    node.data = data
    node.grad = 0.0
    node.label = ""
    node.op = op
    node.parents = parents
    node.local_grads = local_grads
    return node


def _method(op: str, reflected: bool = False) -> Callable[..., Value]:
    """The Value method running RULES[op] (`a op b`, reflected, or `op(a)`). Two floats take a fast path, the
    same rule with fewer checks; a batch, no_grad or an error to name go through `apply`. `unary` and
    `binary` below are that fast path as written; what runs is the same function with the two calls of
    the rule inlined (the rule's own expressions in their place), made from it by `chainrule.inline`."""
    forward, local = RULES[op][:2] if op in RULES else (_gone, _gone)

    def unary(a: Value) -> Value:
        if type(a) is Value and _recording():  # the fast path, as binary's below
            x = a.data
            try:
                out = forward(FLOAT_MATH, x)
                return _node(Value, out, op, (a,), local(FLOAT_MATH, out, x))
            except (ArithmeticError, ValueError):
                pass  # the general path raises it again, naming the op and the Value
        return a._apply(op, (a,), (a.data,))

    def binary(a: Value, b: Any) -> Value:
        if type(b) is not Value and (b := _lift(b)) is None:
            return NotImplemented  # type: ignore[no-any-return]  # Python then raises its TypeError
        if type(a) is Value is type(b) and _recording():
            x, y = a.data, b.data
            try:
                out = forward(FLOAT_MATH, x, y)
                return _node(Value, out, op, (a, b), local(FLOAT_MATH, out, x, y))
            except (ArithmeticError, ValueError):
                pass  # the general path raises it again, naming the op and the Values
        return (b if type(a) is Value else a)._apply(op, (a, b), (a.data, b.data))  # a batch's kind wins

    def reflected_binary(self: Value, other: Any) -> Value:  # `other op self`: other is not a Value
        return NotImplemented if (lifted := _lift(other)) is None else binary(lifted, self)

    # What runs is the function above made again with the calls of forward and local replaced by the
    # rule's own expressions and _node's by its lines (`chainrule.inline.source(Value.exp)` shows it):
    # ~60 ns less of a ~300 ns op (measured: a*b 277 vs 335 ns, exp 257 vs 321). A rule that cannot be
    # read so (a closure, a def, a builtin) keeps the calls.
    unary = inlined(unary, ("forward", "local", "_node"), ("FLOAT_MATH",)) or unary
    binary = inlined(binary, ("forward", "local", "_node"), ("FLOAT_MATH",)) or binary  # reflected's too
    method = (reflected_binary if reflected else binary) if op in ("+", "*", "/", "**") else unary
    method.__name__ = method.__qualname__ = op
    method.rule = op, reflected  # type: ignore[union-attr]  # what _rebind looks for
    return method


def _rebind(op: str) -> None:
    """RULES[op] changed: the Value methods running it are made again."""
    for name, method in list(vars(Value).items()):
        if getattr(method, "rule", (None,))[0] == op:
            setattr(Value, name, _method(op, method.rule[1]))


def _gone(*_: Any) -> Any:  # a deleted rule's methods: the general path raises RULES' KeyError, naming it
    raise ValueError


def _compare(compare: Callable[[Any, Any], Any]) -> Callable[[Value, Value | float], Any]:
    return lambda self, other: compare(self.data, other.data if isinstance(other, Value) else other)


class Value:
    """A number that remembers where it came from: its `parents`, the `op` that made it and that op's local
    derivatives (`local_grads`, one per parent), so `backward()` can send gradients back the way it came.
    A 1-D NumPy array makes a batch (`chainrule.batch.Batch`). Pickling or copying a Value never copies
    its graph: a non-leaf comes back as a leaf with the same data, grad and label."""

    # __slots__: no per-instance dict, so nodes are small and quick to make. No closure is stored on a
    # node either (micrograd's `_backward` closure is a reference cycle per node, which leaves every
    # graph to Python's slow cyclic garbage collector): a graph here is freed by refcount. No __weakref__
    # slot: a node is then 80 bytes, not 96 (pymalloc rounds up to 16), and the collector's full passes
    # over a graph being built (it still walks every node) take ~13% less (microgpt's step on Value:
    # 55 vs 63 ms of full passes a step).
    __slots__ = ("data", "grad", "label", "local_grads", "op", "parents")
    __array_ufunc__ = None  # `numpy_number * value` then defers to Value.__rmul__, as a float does

    data: float | NDArray[np.float64]  # an array only in a batch (chainrule.batch.Batch)
    grad: Any  # d(root)/d(self) after backward: a float, an array in a batch, a Value with create_graph
    label: str
    op: str
    parents: tuple[Value, ...]
    local_grads: tuple[Any, ...]

    def __new__(cls, data: float | NDArray[np.float64] = 0.0, label: str = "") -> Value:
        if cls is Value and type(data) is not float and getattr(data, "ndim", None) not in (None, 0):
            from .batch import Batch  # imported (with NumPy) by the first batch: floats never need it

            cls = Batch  # it checks the shape
        return object.__new__(cls)

    def __init__(self, data: float | NDArray[np.float64], label: str = "") -> None:
        if not isinstance(data, numbers.Real):  # int, bool, Fraction, NumPy's real scalars; not complex
            raise TypeError(f"Value data must be a real number or a 1-D array, got {type(data).__name__}: "
                            f"{data!r}")
        # float(): a NumPy scalar left inside would make every op ~10x slower
        self.data, self.grad, self.label = float(data), 0.0, label
        self.op, self.parents, self.local_grads = "", (), ()

    def __reduce__(self) -> tuple[Any, ...]:  # a leaf with the same data, label and grad
        return type(self), (self.data, self.label), (None, {"grad": self.grad})

    # The seeds' and micrograd's drawing code reads these names.
    _prev = property(lambda self: self.parents)
    _op = property(lambda self: self.op)

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad}{f', label={self.label!r}' if self.label else ''})"

    def _culprit(self) -> str:  # for error messages: what the data was, and which Value
        return f"Value(data={self.data}{f', label={self.label!r}' if self.label else ''})"

    def item(self) -> float:
        """The number inside (PyTorch's `.item()`); a batch has no single number."""
        if type(self.data) is not float:
            raise TypeError(f"item() needs a number, this Value holds a batch (reduce it first): {self}")
        return self.data

    __float__ = item

    # The ops: each runs one rule from RULES (`_method` above), or is a one-line composition of them.
    __add__, __mul__, __truediv__, __pow__ = _method("+"), _method("*"), _method("/"), _method("**")
    __radd__, __rmul__ = _method("+", reflected=True), _method("*", reflected=True)
    __rtruediv__, __rpow__ = _method("/", reflected=True), _method("**", reflected=True)
    exp, log, tanh = _method("exp"), _method("log"), _method("tanh")
    sigmoid, relu = _method("sigmoid"), _method("relu")
    __abs__ = abs = _method("abs")
    sum = _method("sum")  # the sum over a batch (see chainrule.batch); a plain number is its own sum

    # As in micrograd: -a is a * -1, and a - b is a + (-b).
    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other)

    def __rsub__(self, other: float) -> Value:
        return other + (-self)

    def mean(self) -> Value:
        """The mean over a batch; a plain number is its own mean."""
        return self.sum() * (1.0 / getattr(self.data, "size", 1))

    # Comparisons look at .data (handy for `max`, sorting, accuracy). There is deliberately no __eq__:
    # graph bookkeeping needs identity, and `a == b` building a bool from data would hide bugs.
    __lt__, __le__ = _compare(operator.lt), _compare(operator.le)
    __gt__, __ge__ = _compare(operator.gt), _compare(operator.ge)

    detach = _method("detach")  # the same data, and gradients stop here (a node: replay recomputes it)

    def _backward(self) -> None:
        """This node's own step of backward, as in micrograd and the seeds: add `local · self.grad` to each
        parent's grad (set `self.grad` first; call it node by node, from the output back)."""
        chain_rule([self])

    def backward(self, create_graph: bool = False) -> None:
        """Fill `.grad` of every node of this graph with d(self)/d(node). The grads of non-leaf nodes are
        reset first; leaves *accumulate* (as in PyTorch): zero them between steps (`model.zero_grad()`).
        What only a `detach` reads is not part of backward: no gradient goes there, and its grads stay.
        `create_graph=True` (PyTorch's name) makes every `.grad` a Value whose own graph computes that
        derivative from this graph's Values: `x.grad.backward()` then gives second derivatives."""
        backward_pass(self, create_graph)

    _apply: Callable[[str, tuple[Value, ...], tuple[Any, ...]], Value]  # apply() for this kind of number


_data = operator.attrgetter("data")  # map(_data, parents) is [p.data for p in parents] at C speed


def apply(m: Math, kind: type[Value], op: str, parents: tuple[Value, ...], xs: tuple[Any, ...]) -> Value:
    """Run `op` on the parents' data `xs` with the math `m`: a `kind` node, output and local derivatives."""
    rule = RULES[op]
    try:
        out = rule.forward(m, *xs)
        if _recording():
            return _node(kind, out, op, parents, rule.local(m, out, *xs))
        return _node(kind, out, "", (), ())  # no_grad: a leaf
    except (ArithmeticError, ValueError) as err:
        # Python's own messages ("math domain error") don't say which op or which Value: ours do.
        # With the cause where the op's own words don't say it all (in a batch: which element).
        said = rule.fails_on or f"{op} failed"
        what = said if rule.fails_on and m is FLOAT_MATH else f"{said} ({err})"
        raise type(err)(f"{what}: {f' {op} '.join(map(Value._culprit, parents))}") from None


apply = inlined(apply, ("_node",)) or apply  # _node's lines in place of its calls, as in the fast paths
Value._apply = partial(apply, FLOAT_MATH, Value)  # a partial is a C call: no extra frame per op


def _lift(x: object) -> Value | None:
    """x as a Value: a plain number becomes a leaf (as in the seeds: `a + 1` shows the 1), else None."""
    if type(x) is not float and type(x) is not int and not isinstance(x, numbers.Real):
        return x if isinstance(x, Value) else None
    return _node(Value, x if type(x) is float else float(x), "", (), ())  # a leaf: no op, no parents


_lift = inlined(_lift, ("_node",)) or _lift


class _Zero:
    """Where a grad starts when backward builds a graph: `0 + g` is g itself, so no `0 +` node is drawn."""

    def __add__(self, g: Any) -> Any:
        return g

    __radd__ = __add__


def _interior(root: Value, zero: Any) -> list[Value]:
    """root's nodes with parents, each before those it depends on, their grads reset to `zero`. Depth first
    without recursion; a node's grad holds `seen` meanwhile (cheaper than a set), `done` ends its parents."""
    order: list[Value] = []
    stack: list[Any] = [root] if root.parents else []
    seen, done = object(), object()
    push, pop = stack.append, stack.pop
    while stack:
        node = pop()
        if node is done:
            order.append(pop())  # all its parents are in: now it is
        elif node.grad is not seen:
            node.grad = seen
            push(node)
            push(done)
            # reversed: the first parent finishes first. Past an op with no local derivative (detach) no
            # gradient goes: what only it reads is not part of backward (its grads are left as they are).
            for parent in reversed(node.parents) if node.local_grads else ():
                # Leaves have no place in the order (backward only adds to them); a parent already seen
                # (shared, as an embedding row or a layer's input) is not pushed again.
                if parent.parents and parent.grad is not seen:
                    push(parent)
    for node in order:
        node.grad = zero
    order.reverse()
    return order


def backward_pass(root: Value, create_graph: bool = False, trace: list[Any] | None = None) -> list[Value]:
    """`root.backward()`: the one loop. With `trace`, each edge's (node, parent, local, upstream, parent's
    grad after) is appended to it, in order: the stepper and the explorer replay this very loop."""
    if type(root.data) is not float:
        raise ValueError(f"backward() needs a number; reduce the batch first (.sum(), .mean()): {root}")
    order = _interior(root, zero := _Zero() if create_graph else 0.0)
    for leaf in {p for node in order for p in node.parents if not p.parents} if create_graph else ():
        if type(leaf.data) is not float:
            raise ValueError("backward(create_graph=True) works on graphs of numbers, not on batches")
        if type(leaf.grad) is float and leaf.grad == 0.0:
            leaf.grad = zero  # so its gradient is the gradient's graph itself, not `0 + ...`
    root.grad += Value(1.0) if create_graph else 1.0
    return chain_rule(order, create_graph, trace)


def chain_rule(order: list[Value], create_graph: bool = False, trace: list[Any] | None = None) -> list[Value]:
    """Each node of `order` in turn sends its grad to its parents. backward() runs it on the whole graph,
    `node._backward()` on one node (the seeds' by-hand steps)."""
    for node in order:
        grad = node.grad
        locals_ = RULES[node.op].local(ValueMath, node, *node.parents) if create_graph else node.local_grads
        for parent, local in zip(node.parents, locals_):  # noqa: B905 (zip(strict) is slower)
            # The chain rule, in one place: the node's grad, scaled by the local derivative, is *added*
            # to the parent's (a parent used twice, as in a + a, receives two contributions).
            parent.grad += local * grad
            if trace is not None:
                trace.append((node, parent, local, grad, parent.grad))
    return order


def topological_order(root: Value) -> list[Value]:
    """Every node of root's graph, each after all of its parents (deterministic: depth first, in parent
    order), without recursion. Bookkeeping by identity: a set hashes Values by id (no __eq__)."""
    order: list[Value] = []
    stack: list[Any] = [root]
    seen: set[Value] = set()
    done = object()  # on the stack: the node below it is finished
    while stack:
        node = stack.pop()
        if node is done:
            order.append(stack.pop())
        elif node not in seen:
            seen.add(node)
            stack += (node, done, *reversed(node.parents))
    return order
