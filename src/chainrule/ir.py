"""The compiled program as plain data: what `chainrule.compile` plans and `chainrule.replay` runs.

Neither of those modules imports the other's code: both read these types. `format_plan` is
`print(prog)`: one instruction a line with shapes, forward then backward, in the spirit of a jaxpr.
"""

from __future__ import annotations

import itertools
import re
from array import array
from collections.abc import Sequence
from typing import NamedTuple

from .engine import RULES, Value

NUMBER = 0  # a node's kind: NUMBER for a plain float, n > 0 for a batch of n examples


class Instruction(NamedTuple):
    """One line of the program: `op` (a key of RULES) over `size` nodes at once, written to slots
    `out`, ..., `out + size - 1` of the buffer of `kind`. Operand i holds one slot per node, in the buffer
    of kind `arg_kinds[i]`. A fused product has `grid` = (rows, cols) and three operands: b (rows slots),
    W (rows × n, row by row) and x (n × cols, row by row); its outputs are stored row by row. `passes` is
    False for an op whose rule gives no local derivative (detach): backward sends its operands nothing."""

    op: str
    kind: int
    out: int
    size: int
    arg_kinds: tuple[int, ...]
    args: tuple[tuple[int, ...], ...]
    grid: tuple[int, int] | None = None
    passes: bool = True


class Plan(NamedTuple):
    """A whole program: the instructions in order, and where everything lives. Buffer `kind` has
    `sizes[kind]` slots, the leaves of that kind first (`leaves[kind]`, read before every run). The
    values are named: instruction j's outputs are the value `%j`, and `writers[kind][slot]` is the j
    whose output that slot holds, or -1 for an input (compile records it as it places each slot)."""

    instructions: list[Instruction]
    leaves: dict[int, list[Value]]
    sizes: dict[int, int]
    root: tuple[int, int]  # (kind, slot)
    labels: dict[tuple[int, int], str]  # labelled nodes, for error messages and print(prog)
    outputs: dict[int, tuple[Value, int, int]]  # id(node) -> (node, kind, slot), for prog.value(node)
    nodes: int
    writers: dict[int, array[int]]
    pads: frozenset[tuple[int, int]] = frozenset()  # (kind, slot) of the leaves compile's pad added


# ----- print(prog): the program as text -------------------------------------------------------------


def format_plan(plan: Plan) -> str:
    """The program, one instruction a line with shapes, forward then backward, in the spirit of a jaxpr."""
    writers = plan.writers
    leaf_names = {(k, s): _leaf_name(leaf) for k, ls in plan.leaves.items() for s, leaf in enumerate(ls)}

    def name(kind: int, slots: Sequence[int], shape: str) -> str:
        sources: list[int | None] = [j if (j := writers[kind][s]) >= 0 else None for s in slots]
        if all(j is None for j in sources):  # leaves
            names = [leaf_names[kind, s] for s in slots]
            if len(names) <= 4:
                text = names[0] if len(names) == 1 else f"({', '.join(names)})"
            else:
                stems = {re.sub(r"\d+$", "", n) for n in names}
                text = stems.pop() if len(stems) == 1 and not _is_number(names[0]) else "inputs"
        elif len(set(sources)) == 1 and sources[0] is not None:
            j = sources[0]
            ins = plan.instructions[j]
            offsets = [s - ins.out for s in slots]
            if offsets == list(range(ins.size)):
                return f"%{j}"  # a whole earlier result: its shape is on its own line
            text = f"%{j}[{offsets[0]}]" if len(offsets) == 1 else f"%{j}[…]"
        else:
            found = sorted({j for j in sources if j is not None})
            text = "{" + ", ".join(f"%{j}" for j in found[:4]) + (", …" if len(found) > 4 else "")
            text += ", inputs}" if None in sources else "}"
        return text + shape

    def shape(dims: Sequence[int], kind: int) -> str:
        full = [d for d in dims if d != 1 or len(dims) > 1] + ([kind] if kind else [])
        return f"[{'×'.join(map(str, full))}]" if full else ""

    lines = []
    counts = {k: len(ls) for k, ls in sorted(plan.leaves.items())}
    described = ", ".join(f"{n} number{'s' * (n != 1)}" if k == 0 else f"{n} batch{'es' * (n != 1)} of {k}"
                          for k, n in counts.items())
    lines.append(f"program: {plan.nodes} node{'s' * (plan.nodes != 1)}, {len(plan.instructions)} "
                 f"instruction{'s' * (len(plan.instructions) != 1)} each way; "
                 f"inputs: {described}")
    forward, backward = [], []
    for j, ins in enumerate(plan.instructions):
        if ins.grid is None:
            dims = [ins.size]
            names = [name(k, a, shape(dims, k)) for k, a in zip(ins.arg_kinds, ins.args, strict=True)]
            # A variadic op's inputs (linear's w's and x's apart from its b) that print alike: once
            half = (len(names) - 1) // 2 if ins.op == "linear" else 0
            if half:
                operands = [*names[:1], *_runs(names[1 : half + 1]), *_runs(names[half + 1 :])]
            else:
                operands = _runs(names) if len(names) > 2 else names  # a * a stays `a, a`
            forward.append(f"%{j} = {ins.op} {', '.join(operands)} -> {shape(dims, ins.kind) or 'number'}")
            grads = ", ".join("∂" + o for o in operands)
            notes = [n for n, hit in (("scatter-add", any(len(set(a)) < len(a) for a in ins.args)),
                                      ("summed over the batch", any(k == 0 for k in ins.arg_kinds)
                                       and ins.kind != 0)) if hit]
            formula = RULES[ins.op].formula
            if not ins.passes:
                backward.append(f"{grads}: nothing from %{j} ({formula})")
                continue
            backward.append(f"{grads} += ∂%{j} · ({formula})" + (f"  [{'; '.join(notes)}]" if notes else ""))
        else:
            rows, cols = ins.grid
            nin = len(ins.args[1]) // rows
            b = name(0, ins.args[0], shape([rows], 0))
            w = name(0, ins.args[1], f"[{rows}×{nin}]")
            kx = ins.arg_kinds[2]
            x = name(kx, ins.args[2], shape([nin, cols] if cols > 1 else [nin], kx))
            out = shape([rows, cols] if cols > 1 else [rows], ins.kind) or "number"
            forward.append(f"%{j} = linear {b}, {w} @ {x} -> {out}")
            backward.append(f"∂{b}, ∂{w}, ∂{x} += Σ ∂%{j}, ∂%{j} @ xᵀ, wᵀ @ ∂%{j}  "
                            f"({RULES['linear'].formula})")
    lines.append("forward")
    lines += ["  " + line for line in forward]
    root = writers[plan.root[0]][plan.root[1]]
    lines.append(f"backward, from ∂{leaf_names[plan.root] if root < 0 else f'%{root}'} = 1")
    lines += ["  " + line for line in reversed(backward)]
    lines.append("then each input's .grad += its ∂")
    return "\n".join(lines)


def _runs(names: list[str]) -> list[str]:
    """Consecutive operands that print alike as one, with their count: `%1[…][11×32] (×16)`."""
    out: list[str] = []
    for text, run in itertools.groupby(names):
        count = sum(1 for _ in run)
        out.append(text if count == 1 else f"{text} (×{count})")
    return out


def _leaf_name(leaf: Value) -> str:
    if leaf.label:
        return leaf.label
    return repr(leaf.data) if isinstance(leaf.data, float) else "input"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
