"""Backward, one edge at a time: the records the text stepper prints and the explorer replays.

`backward_steps` runs the same loop as `Value.backward` (reverse topological order, and for each
node `grad(parent) += local × upstream` for every parent, in order) but on its own table of
grads, so the engine's `.grad` fields are left alone. The local derivatives are the ones the
engine stored at forward time (`Value.local_grads`, computed by `RULES[op].local`): nothing here
knows any calculus.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from chainrule.engine import Value, topological_order


def fmt(x: float) -> str:
    """Numbers as the drawings show them (4 decimals, as the seeds' draw_dot)."""
    return f"{x:.4f}"


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
    upstream: float  # dL/d(node), final by the time node is processed
    local: float  # d(node)/d(parent), node.local_grads[slot]
    contribution: float  # local × upstream
    before: float  # parent's grad before this step
    after: float  # parent's grad after this step

    def __str__(self) -> str:
        p, n = name_of(self.parent), name_of(self.node)
        return (
            f"{self.index + 1:>3}. {n} ({self.node.op}) → {p}: grad({p}) += "
            f"{fmt(self.local)} × {fmt(self.upstream)} = {fmt(self.contribution)} → {fmt(self.after)}"
        )


def backward_steps(root: Value) -> Iterator[Step]:
    """Yield one `Step` per edge, in the order `root.backward()` processes them.

    Starts from every grad 0 and grad(root) = 1. After the last step each value's `after` equals
    what `root.backward()` leaves in its `.grad` (for leaves, as long as they held 0 before).
    """
    order = topological_order(root)
    grads: dict[int, float] = {id(v): 0.0 for v in order}  # keyed by identity, never by value
    grads[id(root)] = 1.0
    index = 0
    for node in reversed(order):
        upstream = grads[id(node)]
        for slot, (parent, local) in enumerate(zip(node.parents, node.local_grads, strict=True)):
            before = grads[id(parent)]
            contribution = local * upstream
            grads[id(parent)] = before + contribution
            yield Step(index, node, parent, slot, upstream, local, contribution, before,
                       grads[id(parent)])
            index += 1


def final_grads(root: Value) -> dict[int, float]:
    """Grads after all steps, keyed by `id(value)` (root → 1.0, values without steps → 0.0)."""
    grads = {id(v): 0.0 for v in topological_order(root)}
    grads[id(root)] = 1.0
    for step in backward_steps(root):
        grads[id(step.parent)] = step.after
    return grads
