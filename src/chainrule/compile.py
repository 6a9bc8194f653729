"""Compile a built graph into a short array program: capture it once, replay it fast.

`prog = chainrule.compile(loss)` reads the graph behind `loss` once and plans a program, plain data that
`print(prog)` shows; `prog()` replays its forward and backward on NumPy arrays (chainrule.replay) without
building a single node. The plan is made in four small steps, each a function here:

    capture    the graph as numbered nodes (topological order): op, parents, kind, depth
    pad        nodes of a variadic op at one depth that differ only in arity get neutral inputs (Rule.pad)
    vectorize  nodes with the same op at the same depth become one instruction over all of them
    fuse       a layer's `linear` nodes that share their inputs become one matrix product

A node's depth is 1 + its deepest parent's (leaves are 0), so every node of one depth can run at once.
The per-example graph of micrograd's demo (7,643 nodes) becomes 111 instructions: a handful over arrays
(each layer one matrix product, its relu, the hinge's ops) and about a hundred additions of the loss's
running sum, one level each: a level with a single node stays a single instruction, on plain floats (a
chain has one node per level).
No derivative is written here: replay runs `RULES[op]` on the gathered arrays.

This module imports no NumPy (`import chainrule` stays light); chainrule.replay does, on the first compile.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from .engine import RULES, Value, topological_order
from .ir import NUMBER, Instruction, Plan

if TYPE_CHECKING:
    from .replay import Program

class Graph(NamedTuple):
    """A captured graph: node i has op `ops[i]` ("" for a leaf), parents `parents[i]` (node numbers, in
    the op's order), kind `kinds[i]` and depth `depths[i]`. Parents come before their children, and the
    root is the last node captured; leaves added by `pad` come after it."""

    nodes: list[Value]
    ops: list[str]
    parents: list[tuple[int, ...]]
    kinds: list[int]
    depths: list[int]
    pads: dict[tuple[int, float], int]  # (kind, value) -> the leaf `pad` added for it (see pad)


class Group(NamedTuple):
    """Nodes with one op, at one depth, whose parents have the same kinds: one instruction."""

    op: str
    nodes: list[int]


class Product(NamedTuple):
    """`linear` nodes forming a grid: node (r, c) is b[r] + W[r]·x[:, c], so all of them are b + W @ x.
    `grid` is rows × cols node numbers; `b` has a node per row, `w` one per row and input, `x` one per
    input and column. With batches for x there is one column, and the batch is x's second axis."""

    grid: list[list[int]]
    b: list[int]
    w: list[list[int]]
    x: list[list[int]]


def compile(root: Value, outputs: Iterable[Value] = ()) -> Program:  # the builtin's name, as torch.compile
    """Capture the graph behind `root` as a program: `prog()` recomputes `root` from its leaves' current
    `.data`, returns it as a float, and adds d(root)/d(leaf) into every leaf's `.grad`, as
    `root.backward()` would; `prog.forward()` computes the value only; `print(prog)` shows the program.

    The leaves are the program's inputs (parameters, data and constants alike): assign new numbers to
    their `.data` between runs. The structure is fixed: a leaf whose data changes kind (number or batch)
    or batch length is an error, and the cure is to compile again. `outputs` are other nodes of the graph
    whose values `prog.value(node)` reads after a run (a model's scores, say).
    """
    from .replay import Program  # NumPy is imported here, on first use

    return Program(plan(root, outputs))


def plan(root: Value, outputs: Iterable[Value] = ()) -> Plan:
    """capture → pad → vectorize → fuse → slots: the program behind `compile(root)`, as plain data."""
    graph = pad(capture(root))
    wanted = list(outputs)
    steps = fuse(graph, vectorize(graph))
    return _allocate(graph, steps, wanted)


def capture(root: Value) -> Graph:
    """Number the nodes of root's graph in topological order (no recursion: any depth works)."""
    if not isinstance(root, Value):
        raise TypeError(f"compile needs a Value, got {type(root).__name__}: {root!r}")
    if not isinstance(root.data, float):
        raise ValueError(f"compile needs a number at the root (backward does); reduce the batch first "
                         f"(.sum(), .mean()): {root!r}")
    nodes = topological_order(root)
    number = {node: i for i, node in enumerate(nodes)}  # keyed by identity: Value defines no __eq__
    parents = [tuple(map(number.__getitem__, node.parents)) for node in nodes]
    del number
    ops = [node.op if node.parents else "" for node in nodes]
    for node, op in zip(nodes, ops, strict=True):
        if op and op not in RULES:
            raise ValueError(f"compile: no rule for op {op!r} in chainrule.RULES: {node!r}")
    kinds = [NUMBER if type(node.data) is float else _kind(node) for node in nodes]
    depths: list[int] = []
    for ps in parents:
        depths.append(1 + max(map(depths.__getitem__, ps)) if ps else 0)
    return Graph(nodes, ops, parents, kinds, depths, {})


def _kind(node: Value) -> int:
    data: Any = node.data
    if isinstance(data, float):
        return NUMBER
    if getattr(data, "ndim", None) == 1 and len(data) > 0:
        return len(data)
    raise TypeError(f"compile: a node's data must be a float or a 1-D array, got {type(data).__name__}: "
                    f"{node!r}")


def pad(graph: Graph) -> Graph:
    """Nodes of a variadic op (a rule with `pad`) at one depth that differ only in their arity get inputs
    of the rule's neutral value at the end of each list, up to the longest: they then vectorize into one
    instruction. The softmaxes of a sequence's positions sum p + 1 terms at position p; padded, they are
    one instruction instead of one per position. A pad is a leaf per (kind, value), added to the graph
    after the root; replay gives it no gradient."""
    ops, parents, kinds, depths = graph.ops, graph.parents, graph.kinds, graph.depths
    ragged: dict[tuple[Any, ...], list[int]] = {}
    for i, ps in enumerate(parents):
        rule = RULES[ops[i]] if ps else None
        if rule is None or rule.pad is None or (len(ps) - rule.pad[0]) % rule.pad[1]:
            continue
        head, lists, _ = rule.pad
        n = (len(ps) - head) // lists
        if n == 0:
            continue
        parts = [ps[head + k * n : head + (k + 1) * n] for k in range(lists)]
        part_kinds = [{kinds[p] for p in part} for part in parts]
        if any(len(ks) != 1 for ks in part_kinds):
            continue  # a list mixing numbers and batches: no single pad fits it
        key = (depths[i], ops[i], kinds[i], tuple(kinds[p] for p in ps[:head]),
               tuple(ks.pop() for ks in part_kinds))
        ragged.setdefault(key, []).append(i)
    for (_, op, _, _, part_kinds), members in ragged.items():
        head, lists, value = RULES[op].pad or (0, 1, 0.0)
        by_arity: dict[int, list[int]] = {}
        for i in members:
            by_arity.setdefault((len(parents[i]) - head) // lists, []).append(i)
        # From the longest down, whole arities join while the padded work stays within twice the real:
        # a sequence's 1..16 terms pad (1.9x), a layer of 2-input neurons never meets a 300-term sum.
        arities = sorted(by_arity, reverse=True)
        longest, count, work = arities[0], len(by_arity[arities[0]]), arities[0] * len(by_arity[arities[0]])
        joined = [arities[0]]
        for n in arities[1:]:
            more = len(by_arity[n])
            if longest * (count + more) > 2 * (work + n * more):
                break
            joined.append(n)
            count, work = count + more, work + n * more
        for n in joined[1:]:
            for i in by_arity[n]:
                ps = parents[i]
                fill = [(_pad_leaf(graph, kind, value),) * (longest - n) for kind in part_kinds]
                parents[i] = ps[:head] + tuple(p for k in range(lists)
                                               for p in ps[head + k * n : head + (k + 1) * n] + fill[k])
    return graph


def _pad_leaf(graph: Graph, kind: int, value: float) -> int:
    if (kind, value) not in graph.pads:
        import numpy as np  # a batch's pad (its graph holds batches: NumPy is imported already)

        graph.pads[kind, value] = len(graph.nodes)
        graph.nodes.append(Value(value if kind == NUMBER else np.full(kind, value), label="pad"))
        graph.ops.append("")
        graph.parents.append(())
        graph.kinds.append(kind)
        graph.depths.append(0)
    return graph.pads[kind, value]


def vectorize(graph: Graph) -> Iterator[Group]:
    """Nodes with the same op and depth, whose parents have the same kinds, become one Group; groups come
    depth by depth (every parent is computed at a smaller depth), in order of first appearance. A generator:
    a 10⁶-node chain's million groups are used one by one and freed, never all alive at once."""
    ops, parents, kinds, depths = graph.ops, graph.parents, graph.kinds, graph.depths
    inner = [i for i, ps in enumerate(parents) if ps]
    inner.sort(key=depths.__getitem__)  # stable: in topological order within a depth
    for _, level in itertools.groupby(inner, key=depths.__getitem__):
        nodes = list(level)
        if len(nodes) == 1:  # a chain's every level: no grouping to do
            yield Group(ops[nodes[0]], nodes)
            continue
        alike: dict[tuple[str, int, tuple[int, ...]], list[int]] = {}
        for i in nodes:
            alike.setdefault((ops[i], kinds[i], tuple(map(kinds.__getitem__, parents[i]))), []).append(i)
        yield from (Group(key[0], members) for key, members in alike.items())


def fuse(graph: Graph, groups: Iterable[Group]) -> Iterator[Group | Product]:
    """A group of `linear` nodes that form a grid (every row's b and weights meet every column's inputs,
    each pair once) becomes one Product: a layer of neurons on a batch, on every example at once, or on
    every position of a sequence (columns of batches). Weights and biases must be numbers; the inputs
    all numbers or all batches of one length."""
    return (_product(graph, g) or g if g.op == "linear" else g for g in groups)


def _product(graph: Graph, group: Group) -> Product | None:
    ps = [graph.parents[i] for i in group.nodes]
    n = (len(ps[0]) - 1) // 2
    kinds = [graph.kinds[p] for p in ps[0]]
    if any(kinds[: n + 1]) or len(set(kinds[n + 1 :])) != 1:
        return None  # a weight or bias is a batch, or the inputs mix numbers and batches
    rows: dict[tuple[int, ...], int] = {}
    cols: dict[tuple[int, ...], int] = {}
    where = {(rows.setdefault(p[: n + 1], len(rows)), cols.setdefault(p[n + 1 :], len(cols))): i
             for i, p in zip(group.nodes, ps, strict=True)}
    if len(where) != len(group.nodes) or len(rows) * len(cols) != len(where):
        return None  # not a full grid: some neuron misses some example (or a node repeats)
    grid = [[where[r, c] for c in range(len(cols))] for r in range(len(rows))]
    row_keys, col_keys = list(rows), list(cols)
    return Product(grid, [k[0] for k in row_keys], [list(k[1:]) for k in row_keys],
                   [[k[j] for k in col_keys] for j in range(n)])


def _allocate(graph: Graph, steps: Iterable[Group | Product], outputs: list[Value]) -> Plan:
    """Give every node a slot in the buffer of its kind: leaves first, then each instruction's outputs
    side by side (so an instruction writes one contiguous block), each slot recorded with the value it
    holds (`Plan.writers`); then write operands as slots."""
    kinds, parents = graph.kinds, graph.parents
    # kind -> for each slot of its buffer, the instruction whose output it holds (-1: an input). A slot
    # is the next one of its buffer when placed, so this is also how many slots each buffer has so far.
    writers = {k: array("i") for k in set(kinds)}
    slot: list[int] = [0] * len(graph.nodes)

    def place(nodes: Iterable[int], writer: int) -> int:
        first = -1
        for i in nodes:
            slot[i] = len(column := writers[kinds[i]])
            column.append(writer)
            first = slot[i] if first < 0 else first
        return first

    leaves: dict[int, list[Value]] = {}
    for i, ps in enumerate(parents):
        if not ps:
            slot[i] = len(column := writers[kinds[i]])
            column.append(-1)
            leaves.setdefault(kinds[i], []).append(graph.nodes[i])
    instructions: list[Instruction] = []
    shared: dict[tuple[int, ...], tuple[int, ...]] = {}  # one tuple of operand kinds for many instructions
    for step in steps:
        if isinstance(step, Product):
            flat = [i for row in step.grid for i in row]
            out = place(flat, len(instructions))
            b, w = tuple(slot[i] for i in step.b), tuple(slot[i] for row in step.w for i in row)
            x = tuple(slot[i] for row in step.x for i in row)
            instructions.append(Instruction("linear", kinds[flat[0]], out, len(flat),
                                            (NUMBER, NUMBER, kinds[step.x[0][0]]), (b, w, x),
                                            (len(step.grid), len(step.grid[0]))))
            continue
        nodes = step.nodes
        first = parents[nodes[0]]
        passes = bool(graph.nodes[nodes[0]].local_grads)  # False: the rule gives none (detach)
        arg_kinds = tuple(map(kinds.__getitem__, first))
        arg_kinds = shared.setdefault(arg_kinds, arg_kinds)
        if len(nodes) == 1:  # most instructions of a deep chain: the short way
            i = nodes[0]
            k = kinds[i]
            slot[i] = len(column := writers[k])
            column.append(len(instructions))
            one_each = tuple(zip(map(slot.__getitem__, first)))  # ((slot of parent 0,), (slot of 1,), ...)
            instructions.append(Instruction(step.op, k, slot[i], 1, arg_kinds, one_each, None, passes))
            continue
        # in the order of their parents' slots: gathers then are often plain slices
        nodes = sorted(nodes, key=lambda i: [slot[p] for p in parents[i]])
        out = place(nodes, len(instructions))
        args = tuple(tuple(slot[parents[i][j]] for i in nodes) for j in range(len(first)))
        instructions.append(Instruction(step.op, kinds[nodes[0]], out, len(nodes), arg_kinds, args, None,
                                        passes))
    labels = {(kinds[i], slot[i]): node.label for i, node in enumerate(graph.nodes) if node.label}
    found: dict[int, tuple[Value, int, int]] = {}  # the node itself too: its id stays its own
    if outputs:
        number = {id(node): i for i, node in enumerate(graph.nodes)}
        for node in outputs:
            if id(node) not in number:
                raise ValueError(f"compile: an output is not a node of the root's graph: {node!r}")
            found[id(node)] = (node, kinds[number[id(node)]], slot[number[id(node)]])
    root = len(graph.nodes) - 1 - len(graph.pads)
    pads = frozenset((kinds[i], slot[i]) for i in graph.pads.values())
    sizes = {k: len(column) for k, column in writers.items()}
    return Plan(instructions, leaves, sizes, (kinds[root], slot[root]), labels, found, root + 1, writers,
                pads)
