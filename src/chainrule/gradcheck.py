"""Check gradients against finite differences: the seeds' first-principles derivative, as a tool.

`numerical_grad` is the slope (f(x+h) - f(x)) / h from the seeds; `gradcheck` compares `backward()` with
it for every input of a function; `check_graph` does it for every node of a graph you already built,
and names the op whose derivative rule is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .engine import RULES, Value, no_grad, topological_order
from .numerics import FLOAT_MATH


class GradcheckError(AssertionError):
    """backward()'s gradient and the finite-difference estimate disagree."""


def _close(analytic: float, numeric: float, atol: float, rtol: float) -> bool:
    return abs(analytic - numeric) <= atol + rtol * abs(numeric)


def _call(f: Callable[..., Any], xs: list[float]) -> float:
    """f at plain numbers; a function written for Values gets Values (without recording a graph)."""
    with no_grad():
        try:
            out = f(*xs)
        except (AttributeError, TypeError):  # e.g. x.tanh() on a float: this f wants Values
            out = f(*[Value(x) for x in xs])
    return out.item() if isinstance(out, Value) else float(out)


def numerical_grad(
    f: Callable[..., Any],
    x: float | Value,
    h: float | None = None,
    method: Literal["central", "forward"] = "central",
) -> float:
    """The slope of f at x by finite differences.

    'forward' is the seeds' (f(x+h) - f(x)) / h, with error of order h; 'central' is
    (f(x+h) - f(x-h)) / 2h, with error of order h². Too small an h loses everything to rounding (the
    seeds' h = 1e-20 gives 0): the defaults sit near the best trade-off for float64.
    """
    x0 = x.item() if isinstance(x, Value) else float(x)
    if method == "central":
        h = 1e-6 if h is None else h
        return (_call(f, [x0 + h]) - _call(f, [x0 - h])) / (2 * h)
    if method == "forward":
        h = 1e-8 if h is None else h
        return (_call(f, [x0 + h]) - _call(f, [x0])) / h
    raise ValueError(f"method must be 'central' or 'forward', got {method!r}")


def gradcheck(
    f: Callable[..., Value],
    *xs: float | Value,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Compare backward()'s gradient of f at xs with central differences, input by input.

    Returns True, or raises GradcheckError naming the input, both values and their difference.
    """
    data = [x.item() if isinstance(x, Value) else float(x) for x in xs]
    labels = [x.label if isinstance(x, Value) else "" for x in xs]
    inputs = [Value(d, label) for d, label in zip(data, labels, strict=True)]
    out = f(*inputs)
    if not isinstance(out, Value):
        raise TypeError(f"gradcheck needs f to return a Value, got {type(out).__name__}")
    out.backward()
    for i, v in enumerate(inputs):
        up = [*data[:i], data[i] + eps, *data[i + 1 :]]
        down = [*data[:i], data[i] - eps, *data[i + 1 :]]
        numeric = (_call(f, up) - _call(f, down)) / (2 * eps)
        if not _close(v.grad, numeric, atol, rtol):
            name = f"input {i}" + (f" ({v.label!r})" if v.label else "")
            raise GradcheckError(
                f"gradient mismatch for {name} at {data[i]}: backward gives {v.grad}, "
                f"finite differences give {numeric} (difference {v.grad - numeric:.3g})"
            )
    return True


@dataclass
class GraphReport:
    """What check_graph found. `culprit` is the first node (from the output back) whose op's rule
    disagrees with finite differences, or None when every node checks out. `skipped` counts the nodes
    that could not be nudged by ±eps without leaving an op's domain (the exponent 2 of a negative base
    in (x - y)**2, say: 2 ± eps makes it a fractional power); they are not checked."""

    checked: int
    culprit: Value | None = None
    detail: str = ""
    skipped: int = 0

    @property
    def ok(self) -> bool:
        return self.culprit is None

    def __str__(self) -> str:
        if not self.ok:
            return self.detail
        if not self.skipped:
            return f"all {self.checked} nodes agree"
        return (f"all {self.checked - self.skipped} nodes checked agree; {self.skipped} could not be "
                "nudged by ±eps without leaving an op's domain and were skipped")


def _replay(order: list[Value], start: int, nudged: float) -> float:
    """The root's data if order[start] had data `nudged`, re-running every op downstream."""
    data = {id(order[start]): nudged}
    for node in order[start + 1 :]:
        if any(id(p) in data for p in node.parents):
            xs = [data.get(id(p), p.data) for p in node.parents]
            data[id(node)] = RULES[node.op].forward(FLOAT_MATH, *xs)
    return data.get(id(order[-1]), order[-1].item())


def _edge_error(node: Value, i: int, eps: float) -> tuple[float, float]:
    """node's stored d(node)/d(parent i) and the finite-difference estimate of it from the rule."""
    forward = RULES[node.op].forward
    xs = [p.data for p in node.parents]
    up, down = list(xs), list(xs)
    up[i] += eps
    down[i] -= eps
    numeric = (forward(FLOAT_MATH, *up) - forward(FLOAT_MATH, *down)) / (2 * eps)
    return (node.local_grads[i] if i < len(node.local_grads) else 0.0), numeric  # detach's: none, as 0


def check_graph(root: Value, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3) -> GraphReport:
    """Check every node of an already-built graph: d(root)/d(node) by nudging the node and replaying the
    ops downstream, against the node's grad from backward(). Grads are left as they were.

    Costs one replay per node (quadratic in graph size): meant for graphs a person can read. Works on
    graphs of numbers: build a batched model's graph for one example to check it.
    """
    order = topological_order(root)
    batched = [n for n in order if type(n.data) is not float]
    if batched:
        raise ValueError(f"check_graph checks graphs of numbers, and this one holds batches, e.g. "
                         f"{batched[0]._culprit()}: build it for a single example instead")
    saved = [n.grad for n in order]
    for n in order:
        n.grad = 0.0
    root.backward()
    analytic = [n.grad for n in order]
    for n, g in zip(order, saved, strict=True):
        n.grad = g
    skipped = 0
    # From the output back: the first node whose gradient is wrong has correct gradients on all of its
    # children, so the fault is in a local derivative on an edge into it.
    for k in range(len(order) - 2, -1, -1):
        node = order[k]
        x = node.item()
        try:
            numeric = (_replay(order, k, x + eps) - _replay(order, k, x - eps)) / (2 * eps)
        except (ArithmeticError, ValueError):
            skipped += 1  # x ± eps leaves some op's domain downstream: no finite difference here
            continue
        if _close(analytic[k], numeric, atol, rtol):
            continue
        children = [c for c in order[k + 1 :] if any(p is node for p in c.parents)]
        for child in children:
            for i in (i for i, p in enumerate(child.parents) if p is node):
                try:
                    stored, est = _edge_error(child, i, eps)
                except (ArithmeticError, ValueError):
                    continue
                if not _close(stored, est, atol, rtol):
                    return GraphReport(len(order), child, (
                        f"rule for {child.op!r} disagrees at {child._culprit()} "
                        f"(inputs {', '.join(q._culprit() for q in child.parents)}): "
                        f"∂/∂input {i} is {stored} by the rule, {est} by finite differences"), skipped)
        return GraphReport(len(order), node, (
            f"gradient of {node._culprit()} is {analytic[k]} by backward, {numeric} by finite "
            "differences, but every local rule into it agrees (a kink, or eps too large?)"), skipped)
    return GraphReport(len(order), skipped=skipped)
