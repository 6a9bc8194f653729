"""Forward mode: the op rules read once more, pushing tangents forward instead of gradients back.

A `Dual` is a Value that carries, next to its number, a tangent ṫ: how fast it moves when the inputs move
along a chosen direction. Every op on a Dual runs its row of `chainrule.engine.RULES`, `forward` for the
number and `local` for the local derivatives, and then the chain rule read forward, in `tangent_of`:

    ṫ(out) = Σ local_i · ṫ(x_i)

No derivative is written here. `jvp(f, primals, tangents)` runs f once on Duals under `no_grad`, so no
graph is kept: each Dual is a leaf holding its number and its tangent, and it is gone once its consumers
have read it. One pass gives one directional derivative (a Jacobian-vector product); the full gradient of
a loss over n parameters takes n passes, where reverse mode (`backward`) takes one (`op_counts`).

`hvp` is forward-over-reverse: `jvp` of `grad(f)`. Inside `grad`, ops record a graph (of Duals) and
`backward(create_graph=True)` reads the rules with Duals, so every gradient carries a tangent: H·v.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from .engine import RULES, Value, apply, backward_pass, enable_grad, no_grad, topological_order
from .functional import grad
from .numerics import FLOAT_MATH


def tangent_of(parents: Sequence[Value], locals_: Sequence[Any]) -> Any:
    """ṫ(out) = Σ local_i · ṫ(x_i): the chain rule, forward, in one line. A parent that is not a Dual (a
    constant, or a Value computed from constants only) has no tangent and no term: so an infinite local
    derivative towards a constant (0 ** y's towards its base 0, for y < 1) never meets a zero. A Dual's
    zero tangent is multiplied like any other (0 · inf is nan, as in torch.func.jvp and as `backward`
    multiplies)."""
    return sum([local * p.tangent for p, local in zip(parents, locals_) if isinstance(p, Dual)], 0.0)  # noqa: B905


class Dual(Value):
    """A number with a tangent (`Dual(x, tangent)`), for forward mode. Value's ops run on it unchanged
    (`x * y + x.tanh()`, `chainrule.linear(...)`), each through `_apply` below. Under `no_grad` (as
    `jvp` runs f) a Dual is a leaf; when recording, it records its graph too (what `hvp` needs)."""

    __slots__ = ("tangent",)
    tangent: float  # d(self)/dt as the inputs move along the direction the tangents chose

    def __new__(cls, data: float = 0.0, tangent: float = 0.0, label: str = "") -> Dual:
        return object.__new__(cls)  # never a batch: Value.__new__ would read a tangent as a label

    def __init__(self, data: float, tangent: float = 0.0, label: str = "") -> None:
        if not isinstance(data, numbers.Real):
            raise TypeError(f"a Dual holds a real number (forward mode works on numbers, not batches), got "
                            f"{type(data).__name__}: {data!r}")
        super().__init__(data, label)
        if not isinstance(tangent, numbers.Real):
            raise TypeError(f"a tangent must be a real number, got {type(tangent).__name__}: {tangent!r}")
        self.tangent = float(tangent)

    def __reduce__(self) -> tuple[Any, ...]:  # as Value's: a leaf, with its tangent
        return Dual, (self.data, self.tangent, self.label), (None, {"grad": self.grad})

    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        return f"Dual(data={self.data}, tangent={self.tangent}{label})"

    @staticmethod
    def _apply(op: str, parents: tuple[Value, ...], xs: tuple[Any, ...]) -> Value:
        if any(type(x) is not float for x in xs):
            raise TypeError(f"forward mode works on numbers, not on batches: {op} of "
                            f"{', '.join(p._culprit() for p in parents)}")
        # apply(): the rule's forward, with the engine's checks and error messages; it records the graph
        # only when recording is on (never in jvp, which runs f under no_grad).
        node = apply(FLOAT_MATH, Dual, op, parents, xs)
        locals_ = node.local_grads if node.parents else RULES[op].local(FLOAT_MATH, node.data, *xs)
        node.tangent = tangent_of(parents, locals_)  # type: ignore[attr-defined]
        return node


Primals = float | Sequence[float]


def _numbers(what: str, xs: Primals) -> list[float]:
    """xs (a real number or a sequence of them) as a list of floats, or a TypeError naming the culprit."""
    many = isinstance(xs, Sequence) and not isinstance(xs, str)
    items: list[Any] = list(xs) if many else [xs]  # type: ignore[arg-type]
    for i, x in enumerate(items):
        if isinstance(x, Value) or not isinstance(x, numbers.Real):
            at = f"{what}[{i}]" if many else what
            raise TypeError(f"jvp takes real numbers as {what}, {at} is {type(x).__name__}: {x!r}"
                            + (" (pass its .data)" if isinstance(x, Value) else ""))
    return [float(x) for x in items]


def _read(out: Any, what: str, constants_ok: bool = False) -> tuple[float, float]:
    """The number and tangent of what f returned: a Dual's own; a Value made from constants has tangent 0."""
    if isinstance(out, Dual):
        return out.item(), out.tangent
    if isinstance(out, Value) and type(out.data) is float:
        return out.item(), 0.0
    if constants_ok and isinstance(out, numbers.Real):  # grad's 0.0 for an input f does not use
        return float(out), 0.0
    raise TypeError(f"{what} must return a Value built from its arguments with Value ops, got "
                    f"{type(out).__name__}: {out!r} (math.* on .data, or float(), loses the derivative)")


def _jvp(f: Callable[..., Any], primals: Primals, tangents: Primals, constants_ok: bool) -> tuple[Any, Any]:
    if not callable(f):
        raise TypeError(f"jvp needs a function to differentiate, got {type(f).__name__}: {f!r}")
    xs, ts = _numbers("primals", primals), _numbers("tangents", tangents)
    if len(xs) != len(ts):
        raise ValueError(f"jvp needs one tangent per primal, got {len(xs)} primals and {len(ts)} tangents")
    if not xs:
        raise ValueError("jvp needs at least one primal (f's arguments), got none")
    with no_grad():  # no graph: every op's output is a leaf Dual
        out = f(*[Dual(x, t) for x, t in zip(xs, ts, strict=True)])
    name = getattr(f, "__name__", "f")
    if isinstance(out, tuple | list):
        pairs = [_read(o, name, constants_ok) for o in out]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    return _read(out, name, constants_ok)


def jvp(f: Callable[..., Any], primals: Primals, tangents: Primals) -> tuple[Any, Any]:
    """`(f(*primals), directional derivative of f at primals along tangents)`, in one forward pass.

    f takes Values and returns one Value (or a tuple of them: then both results are tuples). `primals`
    and `tangents` are real numbers, one each per argument of f, or single numbers for a function of one
    argument: `jvp(lambda x, y: x * y, (2.0, 3.0), (1.0, 0.0))` is `(6.0, 3.0)`, ∂(xy)/∂x at (2, 3).
    As `torch.func.jvp`, with the rules' conventions at kinks (relu'(0) = 0, abs'(0) = 0).
    """
    return _jvp(f, primals, tangents, constants_ok=False)


def hvp(f: Callable[..., Any], primals: Primals, v: Primals) -> Any:
    """The Hessian of f at primals times the vector v, `H·v`, without building H: forward-over-reverse,
    `jvp` of `grad(f)` (one reverse pass whose numbers carry tangents). A list with one entry per
    argument of f (a float for a function of one argument), as `hessian(f)(*primals) @ v`."""
    _, hv = _jvp(grad(f), primals, v, constants_ok=True)
    return list(hv) if isinstance(hv, tuple) else hv


# ----- forward mode on a recorded graph: the text stepper's replay and the operation counts -----------

def forward_pass(root: Value, tangents: Mapping[Value, float]) -> list[Value]:
    """Replay root's recorded graph in forward mode: each leaf in `tangents` becomes a Dual carrying its
    tangent, and every node is recomputed by its op on its parents' replayed twins (through `Dual`, the
    same line as `jvp`). Returns the twins in topological order (root's last): a Dual for each node that
    depends on a seeded leaf, with `.parents` and `.local_grads` recorded so the steps can be read; the
    node itself for the others (a constant, whose tangent is 0). root's graph is left as it was."""
    order = topological_order(root)
    leaves = {id(v) for v in order if not v.parents}
    for v in tangents:
        if id(v) not in leaves:
            where = "an interior node" if v.parents else "not in the graph"
            raise ValueError(f"forward mode seeds tangents at leaves of the graph; {v._culprit()} is {where}")
    twin: dict[int, Value] = {}
    with enable_grad():  # record the replay's graph: its locals are what the stepper shows
        for v in order:
            if not v.parents:
                twin[id(v)] = Dual(v.data, tangents[v], v.label) if v in tangents else v  # type: ignore[arg-type]
                continue
            parents = tuple(twin[id(p)] for p in v.parents)
            if any(isinstance(p, Dual) for p in parents):
                node = Dual._apply(v.op, parents, tuple(p.data for p in parents))
                node.label = v.label
                twin[id(v)] = node
            else:
                twin[id(v)] = v
    return [twin[id(v)] for v in order]


class OpCounts(NamedTuple):
    """The multiply-adds `local × tangent` or `local × grad` each mode needs for the whole gradient."""

    inputs: int  # n: how many inputs the gradient is taken with respect to
    per_pass: int  # one forward pass: one term per edge from a node that carries a tangent
    forward: int  # n forward passes, one per input (tangent 1 on it, 0 on the others)
    reverse: int  # one backward pass: one term per edge (backward visits every edge once)


def op_counts(root: Value, inputs: Sequence[Value]) -> OpCounts:
    """Count the terms of the chain rule each mode computes for the gradient of root with respect to
    `inputs` (leaves of its graph): forward mode replays the graph once per input, each pass the same
    work whatever the seed (only the numbers differ); reverse mode runs backward once. Both are counted
    from the passes themselves: the replay's recorded edges and backward's trace."""
    seeds = dict.fromkeys(inputs, 0.0)  # an input listed twice is one input
    twins = forward_pass(root, seeds)
    per_pass = sum(isinstance(p, Dual) for t in twins if isinstance(t, Dual) for p in t.parents)
    trace: list[Any] = []
    saved = [v.grad for v in topological_order(root)]
    try:
        backward_pass(root, trace=trace)
    finally:
        for v, g in zip(topological_order(root), saved, strict=True):
            v.grad = g
    return OpCounts(len(seeds), per_pass, len(seeds) * per_pass, len(trace))
