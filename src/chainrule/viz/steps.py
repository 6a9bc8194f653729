"""Backward, one edge at a time: the records the text stepper prints and the explorer replays; and forward
mode, one node at a time (`forward_steps`).

There is no second backward loop here: `replay` runs the engine's own (`chainrule.engine.backward_pass`,
the loop behind `Value.backward`) with a trace, and turns each traced edge into a `Step`. So the steps'
order, local derivatives and sums are the engine's by construction, batches included. The engine's
`.grad` fields are restored afterwards: drawing a graph never changes its gradients.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from chainrule.engine import Value, backward_pass, topological_order
from chainrule.forward import Dual, forward_pass


def fmt(x: Any) -> str:
    """Numbers as the drawings show them: 4 decimals (as the seeds' draw_dot); a batch as its size and
    first numbers; a gradient that is a Value (backward(create_graph=True)) as its number."""
    if isinstance(x, float | int):
        return f"{x:.4f}"
    if isinstance(x, Value):
        return fmt(x.data)
    if hasattr(x, "local"):  # a batch's sum over its examples (chainrule.batch.BatchSum)
        return f"Σ{fmt(x.local)}"
    if getattr(x, "ndim", 0) == 1:
        head = ", ".join(f"{v:.4f}" for v in x[:3])
        return f"[{head}{', …' if len(x) > 3 else ''}]({len(x)})"
    return str(x)


def name_of(v: Value) -> str:
    """A value's label, or for an unlabelled one its op and data, e.g. `tanh:0.7071`."""
    return v.label or f"{v.op or 'const'}:{fmt(v.data)}"


@dataclass(frozen=True)
class Step:
    """One edge of the backward pass: `node` sends gradient to its `slot`-th parent."""

    index: int  # 0-based position in the backward order
    node: Value  # the value being processed ("out")
    parent: Value  # node.parents[slot]
    slot: int  # which input of node; `b = a + a` gives slots 0 and 1, both pointing at a
    upstream: Any  # dL/d(node), final by the time node is processed (an array in a batch)
    local: Any  # d(node)/d(parent), node.local_grads[slot]
    contribution: Any  # local × upstream
    before: Any  # parent's grad before this step
    after: Any  # parent's grad after this step

    def __str__(self) -> str:
        p, n = name_of(self.parent), name_of(self.node)
        local, upstream = factors(self.local, self.upstream, self.contribution)
        return (
            f"{self.index + 1:>3}. {n} ({self.node.op}) → {p}: grad({p}) += "
            f"{local} × {upstream} = {fmt(self.contribution)} → {fmt(self.after)}"
        )


def factors(local: Any, upstream: Any, product: Any) -> tuple[str, str]:
    """The two factors as text, with as many decimals (4 at least) as it takes for the product of the numbers
    shown to round to the product shown: `1.99975 × 0.42000 = 0.8399`, never `2.0000 × 0.4200 = 0.8399`."""
    numbers = [_number(x) for x in (local, upstream, product)]
    if None in numbers:  # a batch: shown as fmt shows it
        return fmt(local), fmt(upstream)
    a, b, c = numbers
    for digits in range(4, 18):
        shown_a, shown_b = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if fmt(float(shown_a) * float(shown_b)) == fmt(c):
            break
    return shown_a, shown_b


def _number(x: Any) -> float | None:
    x = x.data if isinstance(x, Value) else x
    return float(x) if isinstance(x, float | int) else None


class Replay(NamedTuple):
    """A graph sorted once and its backward pass replayed once: what a page of the explorer needs."""

    order: list[Value]  # every node, each after its parents
    steps: list[Step]  # every edge, in the order backward processes them
    grads: dict[int, Any]  # each node's grad after the last step, by id (root 1.0, unreached 0.0)


def replay(root: Value) -> Replay:
    """Sort root's graph, run backward with a trace from every grad 0 (grad(root) = 1), and restore the
    engine's grads. Each step's `after` is what `root.backward()` leaves in that parent's `.grad` (for
    leaves, as long as they held 0 before)."""
    order = topological_order(root)
    saved = [v.grad for v in order]
    trace: list[tuple[Value, Value, Any, Any, Any]] = []
    try:
        for v in order:
            v.grad = 0.0
        backward_pass(root, trace=trace)
        grads = {id(v): v.grad for v in order}
    finally:
        for v, g in zip(order, saved, strict=True):
            v.grad = g
    steps: list[Step] = []
    latest: dict[int, Any] = {}  # each parent's grad after its last step so far
    slot = 0
    for index, (node, parent, local, upstream, after) in enumerate(trace):
        slot = slot + 1 if index and trace[index - 1][0] is node else 0  # a node's edges come in parent order
        before = latest.get(id(parent), 0.0)
        latest[id(parent)] = after
        steps.append(Step(index, node, parent, slot, upstream, local, local * upstream, before, after))
    return Replay(order, steps, grads)


def backward_steps(root: Value) -> Iterator[Step]:
    """Yield one `Step` per edge, in the order `root.backward()` processes them (see `replay`)."""
    return iter(replay(root).steps)


def final_grads(root: Value) -> dict[int, Any]:
    """Grads after all steps, keyed by `id(value)` (root → 1.0, values without steps → 0.0)."""
    return replay(root).grads


def why_not_finite(root: Value) -> dict[int, str]:
    """By `id(value)`, why backward leaves that value's grad inf or nan, read off the replay's steps, e.g.
    `nan: 0 × inf in the chain rule (s (**) → x: local inf × upstream 0)`. Values whose grad is finite
    (or a batch) are left out. Each reason names the edge where the non-finite number first appeared: a local
    derivative that is infinite (x**0.5 at 0) or nan, 0 × inf, a product or a sum too large for a float, or
    inf + -inf where two paths meet; a grad that only inherits one from further down names that edge too."""
    run = replay(root)
    into: dict[int, list[Step]] = {}
    for step in run.steps:
        into.setdefault(id(step.parent), []).append(step)
    reasons: dict[int, str] = {}
    for v in reversed(run.order):  # a value's grad is final once every node it feeds is done: root first
        g = _number(run.grads[id(v)])
        if g is None or math.isfinite(g):
            continue
        wanted = math.isnan if math.isnan(g) else (lambda x: not math.isfinite(x))
        found = [t for t in into.get(id(v), []) if wanted(_number(t.after) or 0.0)]
        if not found:  # not turned inf or nan by backward's sums (a grad that was so before)
            continue
        s = found[0]  # where the sum first turned inf (or nan)
        c, u, local = (_number(x) for x in (s.contribution, s.upstream, s.local))
        if c is None or u is None or local is None:
            continue  # a batch's number: not a float to explain
        edge = f"{name_of(s.node)}{f' ({s.node.op})' if s.node.label else ''} → {name_of(v)}"
        factors = f"{edge}: local {local:.5g} × upstream {u:.5g}"
        if math.isnan(g) and not math.isnan(c):
            reasons[id(v)] = f"nan: inf + -inf where two paths meet at {name_of(v)}"
        elif math.isfinite(c):
            reasons[id(v)] = f"inf: the sum of the paths into {name_of(v)} is too large for a float"
        elif not math.isfinite(u) and not (local == 0 and math.isinf(u)):
            reasons[id(v)] = reasons.get(id(s.node), f"{c:g}: from {name_of(s.node)}'s grad, {u:g}")
        elif (local == 0 and math.isinf(u)) or (u == 0 and math.isinf(local)):
            reasons[id(v)] = f"nan: 0 × inf in the chain rule ({factors})"
        elif math.isnan(local):
            reasons[id(v)] = f"nan: the local derivative of {s.node.op} is nan ({edge})"
        elif math.isinf(local):
            reasons[id(v)] = f"{c:g}: the local derivative of {s.node.op} is {local:g} ({edge})"
        else:
            reasons[id(v)] = f"{c:g}: local × upstream is too large for a float ({factors})"
    return reasons


# ----- forward mode: the tangent of d/d(input), pushed from the inputs to the output --------------------

@dataclass(frozen=True)
class TangentStep:
    """One node of a forward-mode pass: its tangent from its inputs', ṫ(node) = Σ local × ṫ(input)."""

    index: int  # 0-based position in the forward (topological) order
    node: Value  # the node of the graph whose tangent this step computes
    terms: tuple[tuple[Value, Any, Any], ...]  # (input, local, ṫ(input)) for each input carrying a tangent
    tangent: Any  # ṫ(node): the sum of the terms' products, as chainrule.forward.tangent_of computed it

    def __str__(self) -> str:
        names = " + ".join(f"{fmt(local)} × ṫ({name_of(x)})" for x, local, _ in self.terms)
        numbers = " + ".join(f"{fmt(local)} × {fmt(t)}" for _, local, t in self.terms)
        return (f"{self.index + 1:>3}. {name_of(self.node)} ({self.node.op}): ṫ = {names} = {numbers} = "
                f"{fmt(self.tangent)}")


def forward_steps(root: Value, wrt: Value, inputs: list[Value] | None = None) -> list[TangentStep]:
    """Forward mode on root's graph for d(root)/d(wrt): ṫ(wrt) = 1 and 0 on the other `inputs` (by default
    every leaf; leaves left out are constants, with no tangent), then one step per node that depends on
    an input, in topological order. The numbers are `chainrule.forward.forward_pass`'s (the replay through
    `Dual`, the same line as `jvp`); the last step's tangent is d(root)/d(wrt). root's graph is untouched."""
    order = topological_order(root)
    inputs = [v for v in order if not v.parents] if inputs is None else inputs
    twins = forward_pass(root, {**dict.fromkeys(inputs, 0.0), wrt: 1.0})
    steps: list[TangentStep] = []
    for node, twin in zip(order, twins, strict=True):
        if isinstance(twin, Dual) and twin.parents:
            # zip stops at the last local derivative: an op whose rule has none (detach) has no term
            terms = tuple((x, local, t.tangent) for x, t, local in zip(
                node.parents, twin.parents, twin.local_grads, strict=False) if isinstance(t, Dual))
            steps.append(TangentStep(len(steps), node, terms, twin.tangent))
    return steps
