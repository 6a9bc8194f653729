"""chainrule.compile: the plan (capture, vectorize, fuse) and the program it replays, against backward()."""

from __future__ import annotations

import itertools
import math
import operator
import random
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule
from chainrule import RULES, Value, linear, losses
from chainrule.compile import Product, capture, fuse, plan, vectorize
from chainrule.data import make_moons
from chainrule.nn import MLP
from chainrule.ops import apply_op
from chainrule.seeds import NEURON

# ----- random graphs: every op in RULES, numbers and batches, shared subexpressions -------------------

BINARY: dict[str, Callable[[Any, Any], Any]] = {"+": operator.add, "*": operator.mul, "/": operator.truediv,
                                                "**": operator.pow}


def _smallest(x: Value) -> float:
    return float(np.min(np.abs(x.data)))


def _tame(out: Value) -> bool:
    """No overflow and no huge numbers: the comparison is about the program, not about inf - inf."""
    data = np.asarray(out.data)
    return bool(np.all(np.isfinite(data)) and np.max(np.abs(data)) <= 1e4)


def _node(rng: random.Random, op: str, pool: list[Value]) -> Value | None:
    """A node for `op` on operands from the pool (None where the op would sit on a kink or has no use);
    raises where the op is outside its domain."""
    a, b = rng.choice(pool), rng.choice(pool)
    if op == "**":  # either side a Value: Value ** Value (positive base), Value ** number, number ** Value
        side = rng.random()
        if side < 0.4:
            return (a * a + 0.5) ** b
        return a ** rng.choice([2.0, 3.0, -1.0, 0.5]) if side < 0.7 else rng.uniform(0.5, 2.0) ** b
    if op in BINARY:
        side, c = rng.random(), rng.uniform(-2.0, 2.0)
        if side < 0.15:  # a plain number on either side
            return BINARY[op](c, b) if side < 0.07 else BINARY[op](a, c)
        return BINARY[op](a, b)
    if op == "linear":
        n = rng.randint(1, 4)
        return linear([rng.choice(pool) for _ in range(n)], [rng.choice(pool) for _ in range(n)],
                      rng.choice(pool))
    if op in ("relu", "abs") and _smallest(a) <= 1e-6:
        return None  # off the kink: the two ways of adding may put a value on either side of it
    if op == "sum":
        return a.sum() if type(a.data) is not float else None
    if op == "max":
        xs = [rng.choice(pool) for _ in range(rng.randint(1, 3))]
        top2 = np.sort(np.broadcast_arrays(*[np.asarray(x.data, dtype=float) for x in xs]), axis=0)[-2:]
        if len(xs) > 1 and np.min(np.abs(top2[-1] - top2[0])) <= 1e-6:
            return None  # off the kink (a tie): rounding may put either input on top
        return apply_op("max", *xs)
    if op == "lookup":  # an index leaf (a number, or a batch of indices) into entries of the pool
        entries = [rng.choice(pool) for _ in range(rng.randint(1, 4))]
        n = next((len(np.atleast_1d(x.data)) for x in pool if type(x.data) is not float), 0)
        ids = [float(rng.randrange(len(entries))) for _ in range(n or 1)]
        return apply_op("lookup", Value(np.array(ids)) if n else Value(ids[0]), *entries)
    return getattr(a, op)()  # type: ignore[no-any-return]


def random_graph(rng: random.Random, batch: int) -> tuple[Value, list[Value], set[str]]:
    """A random graph over a few leaves (numbers, and batches of `batch` if batch > 0). Operands are
    drawn from every node made so far, so subexpressions are shared. Returns (root, leaves, ops used)."""
    leaves = [Value(rng.uniform(0.3, 2.0) * rng.choice([-1, 1]), label=f"p{i}")
              for i in range(rng.randint(2, 5))]
    if batch:
        leaves += [Value(np.array([rng.uniform(0.3, 2.0) * rng.choice([-1, 1]) for _ in range(batch)]))
                   for _ in range(rng.randint(1, 3))]
    pool = list(leaves)
    used: set[str] = set()
    ops = [op for op in RULES if op != "sum" or batch]
    for _ in range(rng.randint(4, 25)):
        op = rng.choice(ops)
        try:
            node = _node(rng, op, pool)
        except (ArithmeticError, ValueError):
            continue  # outside the op's domain
        if node is not None and _tame(node):
            pool.append(node)
            used.add(op)
    # The root: a number, from a few of the nodes (batches summed), so most of the graph is reached.
    picks = rng.sample(pool[len(leaves):] or pool, min(3, len(pool) - len(leaves)) or 1)
    root = Value(0.0, "zero")
    for node in picks:
        root = root + (node.sum() if type(node.data) is not float else node)
    return root, leaves, used


def _close(a: Any, b: Any, rel: float = 1e-12, scale: float = 0.0) -> bool:
    """Equal to `rel`, relative to each entry, or to `scale` (the graph's largest gradient) for entries that
    are sums cancelling to ~0, where the order of additions alone moves the last bits."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(invalid="ignore"):  # inf - inf: those entries are compared by == and isnan
        near = np.abs(a - b) <= rel * np.maximum(np.maximum(np.abs(a), np.abs(b)), scale)
    # NaN where eager has NaN (0·∞ behind a relu, as the README says), the same infinity: equal too
    return bool(np.all(near | (a == b) | (np.isnan(a) & np.isnan(b))))


def _grads(leaves: list[Value]) -> list[Any]:
    return [np.copy(leaf.grad) for leaf in leaves]


def _check_against_backward(root: Value, leaves: list[Value]) -> None:
    for leaf in leaves:
        leaf.grad = 0.0
    root.backward()
    expected = _grads(leaves)
    prog = chainrule.compile(root)
    for leaf in leaves:
        leaf.grad = 0.0
    value = prog()
    assert _close(value, root.data), (value, root.data, str(prog))
    scale = max(1.0, *(float(np.max(np.abs(g))) for g in expected))
    for leaf, want in zip(leaves, expected, strict=True):
        assert _close(leaf.grad, want, scale=scale), (leaf, want, str(prog))
    assert _close(prog.forward(), root.data)


@pytest.mark.parametrize("batch", [0, 1, 3])
def test_random_graphs_equal_backward(batch: int) -> None:
    rng = random.Random(1000 + batch)
    used: set[str] = set()
    for _ in range(400):
        root, leaves, ops = random_graph(rng, batch)
        used |= ops
        _check_against_backward(root, leaves)
    # 1,200 graphs over the three settings; every op in RULES was drawn in each setting
    assert used == set(RULES) - ({"sum"} if batch == 0 else set())


def _rebuild(root: Value) -> tuple[Value, dict[int, Value]]:
    """root's graph built again eagerly, op by op through Value, from fresh leaves holding the current data
    of root's leaves (returned by id of the old leaf)."""
    new: dict[int, Value] = {}
    fresh: dict[int, Value] = {}
    for node in chainrule.topological_order(root):
        if not node.parents:
            new[id(node)] = fresh[id(node)] = Value(np.copy(node.data) if type(node.data) is not float
                                                    else node.data)
            continue
        ps = [new[id(p)] for p in node.parents]
        if node.op == "linear":
            n = (len(ps) - 1) // 2
            new[id(node)] = linear(ps[1 : n + 1], ps[n + 1 :], ps[0])
        else:
            new[id(node)] = BINARY[node.op](*ps) if node.op in BINARY else apply_op(node.op, *ps)
    return new[id(root)], fresh


def test_random_graphs_accumulate_and_read_new_data() -> None:
    """Leaves' grads accumulate over calls, as with backward(); new data in the leaves is read at every
    call: the value and grads then equal those of the graph built again from that data."""
    rng = random.Random(7)
    checked = 0
    for _ in range(100):
        root, leaves, _ = random_graph(rng, 2)
        prog = chainrule.compile(root)
        for leaf in leaves:
            leaf.grad = 0.0
        prog()
        once = _grads(leaves)
        prog()
        assert all(_close(leaf.grad, 2 * g) for leaf, g in zip(leaves, once, strict=True))
        for leaf in leaves:  # new numbers, same kinds and lengths
            leaf.data = leaf.data * 1.01 if type(leaf.data) is float else np.asarray(leaf.data) * 1.01
            leaf.grad = 0.0
        try:
            again, fresh = _rebuild(root)
        except (ArithmeticError, ValueError):
            continue  # the nudge left some op's domain: the error is tested separately
        again.backward()
        assert _close(prog(), again.data)
        scale = max(1.0, *(float(np.max(np.abs(f.grad))) for f in fresh.values()))
        for leaf in leaves:  # a leaf the root does not reach gets nothing, as from backward()
            want = fresh[id(leaf)].grad if id(leaf) in fresh else 0.0
            assert _close(leaf.grad, want, scale=scale)
        checked += 1
    assert checked > 50


# ----- the seeds' neuron, and print(prog) -----------------------------------------------------------


def _seeds_neuron() -> tuple[Value, list[Value]]:
    o, v = NEURON.build()
    return o, [v[name] for name in ("x1", "x2", "w1", "w2", "b")]


def test_seeds_neuron_program_and_gradients() -> None:
    o, leaves = _seeds_neuron()
    prog = chainrule.compile(o)
    assert prog() == pytest.approx(0.7071067811865476, rel=1e-15)
    assert [leaf.grad for leaf in leaves] == pytest.approx([-1.5, 0.5, 1.0, 0.0, 0.5], rel=1e-12)
    text = str(prog)
    # the two products at depth 1 are one instruction (its nodes in the order of their parents' slots)
    assert re.search(r"%0 = \* \((x1, x2|x2, x1)\)\[2\], \((w1, w2|w2, w1)\)\[2\] -> \[2\]", text), text
    assert "%3 = tanh %2 -> number" in text
    assert "∂%2 += ∂%3 · (∂/∂x = 1 - tanh²(x))" in text  # the rule's own formula, from RULES
    assert text.index("forward") < text.index("backward")
    assert len(prog) == 4


# ----- linear nodes whose weights are batches (an attention's q·k and its weighted sum of v) ---------


@pytest.mark.parametrize("w_kind", ["number", "batch"])
@pytest.mark.parametrize("x_kind", ["number", "batch"])
def test_rows_of_linear_nodes_over_batches_sum_as_one_step(w_kind: str, x_kind: str) -> None:
    from chainrule.replay import _Sums

    rng = np.random.default_rng(3)

    def leaf(kind: str, label: str) -> Value:
        return Value(rng.normal(size=5) if kind == "batch" else float(rng.normal()), label)

    n, rows = 4, 6
    w = [[leaf(w_kind, f"w{r}{j}") for j in range(n)] for r in range(rows)]
    x = [leaf(x_kind, f"x{j}") for j in range(n)]
    b = leaf("number", "b")
    # rows of linear nodes at one depth: each row its own weights, x shared (repeated slots: summed)
    outs = [linear(w[r], x, b).tanh() for r in range(rows)]
    root = outs[0]
    for o in outs[1:]:
        root = root + o * o
    if type(root.data) is not float:
        root = root.sum()
    leaves = [b, *x, *(v for row in w for v in row)]
    _check_against_backward(root, leaves)
    steps = chainrule.compile(root)._steps
    # weights that are numbers make one matrix, fused into a product; weights that are batches, a _Sums
    assert any(isinstance(s, _Sums) for s in steps) == (w_kind == "batch")


def test_a_layer_over_positions_of_batches_is_one_product() -> None:
    """A sequence model's layer: the same weights (and one shared b) at every position, each position's
    inputs batches. The grid is rows × positions, each cell a batch: one product b + W @ X, X holding the
    positions' batches side by side."""
    from chainrule.replay import _Product, _Sums

    rng = np.random.default_rng(5)
    n, rows, positions, batch = 3, 4, 5, 6
    w = [[Value(float(rng.normal()), f"w{r}{j}") for j in range(n)] for r in range(rows)]
    b = Value(0.25, "b")
    xs = [[Value(rng.normal(size=batch), f"x{t}{j}") for j in range(n)] for t in range(positions)]
    outs = [[linear(w[r], x, b).tanh() for r in range(rows)] for x in xs]
    terms = [(o * o * (t + 1.0) + o).sum() for t, row in enumerate(outs) for o in row]
    root = terms[0]
    for term in terms[1:]:
        root = root + term
    _check_against_backward(root, [b, *(v for row in w for v in row), *(v for x in xs for v in x)])
    g = capture(root)
    products = [s for s in fuse(g, vectorize(g)) if isinstance(s, Product)]
    assert [(len(p.grid), len(p.grid[0])) for p in products] == [(rows, positions)]
    steps = chainrule.compile(root)._steps
    assert sum(isinstance(s, _Product) for s in steps) == 1 and not any(isinstance(s, _Sums) for s in steps)


Attention = tuple[Value, list[Value], list[Value], list[list[Value]]]  # root, leaves, outputs, v


def _attention(batch: int, positions: int = 6, heads: int = 2, dim: int = 3, seed: int = 11,
               last_v: float | None = None) -> Attention:
    """Causal attention over q, k, v leaves (batches of `batch`): at position t, for each head, the
    softmax of q_t·k_s over s ≤ t, then the weights times v. The root sums every output through tanh.
    `last_v` goes into the first and last examples of the last position's first v."""
    from chainrule.lm import softmax

    rng = np.random.default_rng(seed)
    width = heads * dim

    def leaves(name: str) -> list[list[Value]]:
        return [[Value(rng.normal(size=batch), f"{name}{t}_{i}") for i in range(width)]
                for t in range(positions)]

    q, k, v = leaves("q"), leaves("k"), leaves("v")
    if last_v is not None:
        data = np.copy(v[-1][0].data)
        data[[0, -1]] = last_v
        v[-1][0].data = data
    outs: list[Value] = []
    for t in range(positions):
        for h in range(heads):
            s = slice(h * dim, (h + 1) * dim)
            logits = [linear(q[t][s], k[u][s], 0.0) * 0.5 for u in range(t + 1)]
            weights = softmax(logits)
            outs += [linear(weights, [v[u][s][j] for u in range(t + 1)], 0.0) for j in range(dim)]
    root = outs[0].tanh()
    for i, o in enumerate(outs[1:]):
        root = root + o.tanh() * (1.0 + 0.1 * i)
    return root.sum(), [leaf for xs in (q, k, v) for row in xs for leaf in row], outs, v


def _rerun_equals_eager(prog: Any, leaves: list[Value], outs: list[Value],
                        fresh: Attention) -> None:
    """The program, run on the data of `fresh` (the same graph built again, on other data), against
    backward on that graph: the value, every output and every gradient."""
    root, fresh_leaves, fresh_outs, _ = fresh
    for leaf, new in zip(leaves, fresh_leaves, strict=True):
        leaf.data, leaf.grad, new.grad = np.copy(new.data), 0.0, 0.0
    with np.errstate(all="ignore"):
        root.backward()
        value = prog()
    assert _close(value, root.data)
    for out, want in zip(outs, fresh_outs, strict=True):
        assert _close(prog.value(out), want.data)
    scale = max(1.0, *(float(np.nanmax(np.abs(leaf.grad))) for leaf in fresh_leaves))
    for leaf, want in zip(leaves, fresh_leaves, strict=True):
        assert _close(leaf.grad, want.grad, scale=scale), (leaf, leaf.grad, want.grad)


@pytest.mark.parametrize("batch", [1, 5])
def test_causal_attention_runs_as_blocks_of_matrix_products(batch: int) -> None:
    """q·k over the causal triangle and the weights times v (padded to the longest position) are each one
    instruction, run as a stack of matrix products per head and example (replay's _Blocks), with
    backward's gradients; new data in the leaves reruns them."""
    from chainrule.replay import _Blocks, _Sums

    root, leaves, outs, _ = _attention(batch)
    _check_against_backward(root, leaves)
    prog = chainrule.compile(root, outputs=outs)
    blocks = [s for s in prog._steps if isinstance(s, _Blocks)]
    assert [s.shape for s in blocks] == [(2, 6, 3, 6), (2, 6, 6, 3)]  # (heads, rows, n, columns)
    # what gathers still: the softmax's totals (their weights are the number 1, not batches)
    assert [s.ins.arg_kinds[1] for s in prog._steps if isinstance(s, _Sums)] == [0]
    _rerun_equals_eager(prog, leaves, outs, _attention(batch, seed=12))


def test_blocks_redo_a_run_with_an_infinity_node_by_node() -> None:
    """A padded term is 0·x, and x is read from the column's real input at that term: fine while x is
    finite. With an infinite v at the last position only that position's outputs are infinite in eager;
    the program gives the same (not 0·inf = nan at the earlier ones), and blocks again once finite."""
    from chainrule.replay import _Blocks

    root, leaves, outs, _ = _attention(3, seed=2)
    prog = chainrule.compile(root, outputs=outs)
    (_, by_blocks) = [s for s in prog._steps if isinstance(s, _Blocks)]
    for value in (np.inf, 1.5, -np.inf):
        with np.errstate(all="ignore"):
            fresh = _attention(3, seed=2, last_v=value)
        _rerun_equals_eager(prog, leaves, outs, fresh)
        assert (by_blocks.used is by_blocks) == np.isfinite(value)
    assert not np.isfinite(prog.value(outs[-6])).all()  # the last position's head 0, its v's first


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(2, 4), st.integers(1, 4),
       st.randoms(use_true_random=False))
def test_blocks_equal_the_node_by_node_sums(groups: int, rows: int, cols: int, n: int, batch: int,
                                            rng: random.Random) -> None:
    """Random grids of linear nodes over batches: node (g, r, c) sums W[g][r][j]·X[g][j][c] over j, its terms
    from some j on a row's padding (0·0, as compile pads a causal attention), some cells left out, the nodes
    shuffled. Where _blocks finds the blocks, the products give the node-by-node sums' values and grads."""
    from chainrule.ir import Instruction
    from chainrule.replay import _Blocks, _blocks, _Sums

    slots = itertools.count(2)  # slot 0: the bias, slot 1: the pad (0 in every example)
    w = [[[next(slots) for _ in range(n)] for _ in range(rows)] for _ in range(groups)]
    x = [[[next(slots) for _ in range(cols)] for _ in range(n)] for _ in range(groups)]
    lengths = [[rng.randint(1, n) for _ in range(rows)] for _ in range(groups)]
    cells = [(g, r, c) for g in range(groups) for r in range(rows) for c in range(cols)
             if r == 0 or c == 0 or rng.random() < 0.8]  # row 0 and column 0 whole: one group per g
    rng.shuffle(cells)

    def term(g: int, r: int, c: int, j: int) -> tuple[int, int]:
        return (w[g][r][j], x[g][j][c]) if j < lengths[g][r] else (1, 1)

    terms = [[term(g, r, c, j) for j in range(n)] for g, r, c in cells]
    size, start = len(cells), next(slots)
    args = ((0,) * size, *(tuple(t[j][0] for t in terms) for j in range(n)),
            *(tuple(t[j][1] for t in terms) for j in range(n)))
    ins = Instruction("linear", batch, start, size, (0,) + (batch,) * 2 * n, args)
    pads = frozenset({(batch, 1)})
    found = _blocks(ins, pads)
    if 2 * size >= groups * rows * cols and 3 * groups * (rows + cols) <= 2 * size and rows > 1 < cols:
        assert found is not None and found[3] == (groups, rows, n, cols)
    if found is None:
        return
    data = np.random.default_rng(rng.randrange(2**32))
    values = {0: data.normal(size=1), batch: data.normal(size=(start + size, batch))}
    values[batch][1] = 0.0
    results = []
    for step in (_Blocks(ins, found), _Sums(ins)):
        vals = {k: np.copy(v) for k, v in values.items()}
        grads = {k: np.zeros_like(v) for k, v in values.items()}
        grads[batch][start:] = data.normal(size=(size, batch)) if not results else results[0][2]
        seed = np.copy(grads[batch][start:])
        step.forward(vals)
        step.backward(vals, grads)
        results.append((vals[batch][start:], grads, seed))
    (out, grads, _), (want, want_grads, _) = results
    # Relative to the largest entry too: a product and a node's own sum add in other orders, so an entry
    # that cancels to ~0 differs in its last bits (1e-16 absolute)
    assert _close(out, want, scale=float(np.max(np.abs(want))))
    grads[batch][1] = want_grads[batch][1] = 0.0  # the pad's: nobody reads it
    scale = max(float(np.max(np.abs(g))) for g in want_grads.values())
    assert _close(grads[batch], want_grads[batch], scale=scale)
    assert _close(grads[0], want_grads[0], scale=scale)


def test_blocks_are_found_only_where_nodes_form_grids() -> None:
    from chainrule.ir import Instruction
    from chainrule.replay import _blocks

    # two nodes, each w_i·x_i + w_j·x_j: node 0 reads (x0, x1), node 1 (x0, x2) at the same terms, so
    # one column would read two x's at term 1
    ins = Instruction("linear", 4, 100, 2, (0, 4, 4, 4, 4), ((0, 0), (1, 1), (2, 2), (3, 3), (4, 5)))
    assert _blocks(ins, frozenset()) is None
    # numbers, not batches: no stack of examples to multiply
    assert _blocks(ins._replace(kind=0, arg_kinds=(0,) * 5), frozenset()) is None
    # a 4 × 4 grid of rows w_r and columns x_c, one group: found, each node its own cell
    rows, cols = 4, 4
    w = [(10 + r, 20 + r) for r in range(rows)]
    x = [(30 + c, 40 + c) for c in range(cols)]
    nodes = [(r, c) for r in range(rows) for c in range(cols)]
    grid = Instruction("linear", 4, 100, len(nodes), (0, 4, 4, 4, 4),
                       ((0,) * len(nodes), *(tuple(w[r][j] for r, c in nodes) for j in range(2)),
                        *(tuple(x[c][j] for r, c in nodes) for j in range(2))))
    found = _blocks(grid, frozenset())
    assert found is not None
    w_slots, x_slots, cells, shape = found
    assert shape == (1, 4, 2, 4) and sorted(cells) == list(range(16))
    assert w_slots == (10, 20, 11, 21, 12, 22, 13, 23) and x_slots == (30, 31, 32, 33, 40, 41, 42, 43)
    # a quarter of that grid: the whole grid's products would be 4x the work
    sparse = grid._replace(size=4, args=tuple(a[:: 5] for a in grid.args))
    assert _blocks(sparse, frozenset()) is None


@pytest.mark.parametrize("batch", [0, 4])
def test_ragged_variadic_nodes_are_padded_into_one_instruction(batch: int) -> None:
    """Causal attention's shape: at position p a softmax over p + 1 logits. The max and the total of every
    position pad to the longest with their rule's neutral input (-inf, 0·0) and run as one instruction
    each, with backward's gradients. A softmax's max feeds a detach only, so a max of the same logits is
    added to the loss too: its gradients then run through the padded instruction, and ties in it keep
    sharing its slope."""
    from chainrule.lm import softmax
    from chainrule.replay import _Rows

    rng = np.random.default_rng(7)

    def leaf(label: str) -> Value:
        return Value(rng.normal(size=batch) if batch else float(rng.normal()), label)

    leaves = [leaf(f"z{t}") for t in range(6)]
    leaves[3].data = leaves[1].data + 0.0  # z3 ties with z1 (a copy, at every later position)
    logits = leaves
    terms = [p * float(q + 1) for q in range(6) for p in softmax(logits[: q + 1])]
    terms += [apply_op("max", *logits[: q + 1]) * 0.5 for q in range(6)]  # at the softmax's max's depth
    root = terms[0]
    for term in terms[1:]:
        root = root + term.tanh()
    if batch:
        root = root.sum()
    _check_against_backward(root, leaves)
    prog = chainrule.compile(root)
    ops = [ins.op for ins in prog.plan.instructions]
    assert ops.count("max") == 1 and ops.count("linear") == 1, str(prog)
    # the max's inputs are gathered as one array: its rows are the inputs (replay's _Rows)
    assert [s.ins.op for s in prog._steps if isinstance(s, _Rows)] == ["max"]
    assert any(isinstance(s, _Rows) for s in prog._backward)  # the added maxes' gradients run through it
    # -inf for the max, 0 for the sums' weights (numbers) and their terms (batches in a batch)
    assert len(prog.plan.pads) == (3 if batch else 2)
    assert prog.plan.nodes == len(capture(root).nodes)  # the pads are not counted as the graph's nodes
    assert all(leaf.label != "pad" or leaf.grad == 0.0 for leaf in prog.inputs)  # pads get no gradient


def test_backward_skips_what_no_gradient_reaches() -> None:
    """A softmax's max is read by a detach only, and a detach passes no gradient: backward runs no step for
    either, and the program's gradients are still backward's. A NaN behind a detach stays behind it."""
    from chainrule.lm import softmax

    rng = np.random.default_rng(3)
    z = [Value(rng.normal(size=5), f"z{i}") for i in range(4)]
    root = (softmax(z)[0] * 2.0 + softmax(z[1:])[1]).sum()
    _check_against_backward(root, z)
    prog = chainrule.compile(root)
    forward_ops = {step.ins.op for step in prog._steps}
    backward_ops = {step.ins.op for step in prog._backward}
    assert {"max", "detach"} <= forward_ops and not {"max", "detach"} & backward_ops, str(prog)
    assert re.search(r"∂%\d+: nothing from %\d+ \(∂/∂x: none", str(prog)), str(prog)  # print(prog) says so

    x = Value(2.0, "x")
    y = x * 3.0
    nan_behind = y.detach() * math.inf * 0.0 + y  # ∂root/∂detach is inf·0 = NaN: it stops there
    _check_against_backward(nan_behind, [x])
    assert x.grad == 3.0
    for data in (0.0, np.array([0.0, 1.0])):  # an infinite slope behind a detach (sqrt's at 0): not met
        z = Value(data, "z")
        root = (z**0.5).detach() + z
        _check_against_backward(root if type(data) is float else root.sum(), [z])
        assert np.all(z.grad == 1.0)


def test_a_gradient_with_one_writer_is_written_and_one_with_several_is_added_to_zeros() -> None:
    """Backward assigns where one operand is the only writer of its slots and adds where several write
    (zeroed before each run): two runs add twice the gradients into the leaves, as two backward() do."""
    from chainrule.replay import _operands

    rng = np.random.default_rng(5)
    x = [Value(rng.normal(size=4), f"x{i}") for i in range(3)]
    shared = x[0] * x[1]  # read by two ops: its gradient is a sum
    root = ((shared.tanh() + shared * x[2]).exp() * x[2]).sum()
    _check_against_backward(root, x)
    once = _grads(x)
    prog = chainrule.compile(root)
    operands = [o for s in prog._backward for o in _operands(s) if o.needed]
    assert any(o.assign for o in operands) and not all(o.assign for o in operands)
    for leaf in x:
        leaf.grad = 0.0
    prog()
    prog()
    assert all(_close(leaf.grad, 2 * g) for leaf, g in zip(x, once, strict=True))
    prog.no_grads([x[2]])  # marks again: slots written before and no longer are zeroed once
    for leaf in x:
        leaf.grad = 0.0
    prog()
    assert _close(x[0].grad, once[0]) and _close(x[1].grad, once[1]) and x[2].grad == 0.0


def test_a_single_numbers_gradient_is_written_where_it_is_its_only_one() -> None:
    """Steps on single numbers assign a gradient that only they write and add where several do (h * h
    reads h twice, and h is read by three ops): two runs give twice backward's gradients, and after
    no_grads marks the program again, the gradients it leaves out stay out."""
    from chainrule.replay import _operands

    x, y = Value(0.5, "x"), Value(-1.5, "y")
    h = (x * y).tanh()
    root = (h * h + h.exp()) * x
    _check_against_backward(root, [x, y])
    once = _grads([x, y])
    prog = chainrule.compile(root)
    assert all(getattr(step, "number", False) for step in prog._steps)  # every step on floats
    operands = [o for step in prog._backward for o in _operands(step) if o.needed]
    assert any(o.assign for o in operands) and not all(o.assign for o in operands)
    x.grad = y.grad = 0.0
    prog()
    prog()
    assert [x.grad, y.grad] == pytest.approx([2 * g for g in once], rel=1e-15)
    prog.no_grads([y])
    x.grad = y.grad = 0.0
    prog()
    assert x.grad == pytest.approx(once[0], rel=1e-15) and y.grad == 0.0


def test_padding_never_joins_arities_far_apart() -> None:
    # a 40-term sum beside 2-term ones at the same depth: padding would cost 20x, so they stay apart
    xs = [Value(float(i)) for i in range(40)]
    small = [linear(xs[i : i + 2], xs[i + 1 : i + 3], 0.0) for i in range(8)]
    big = linear(xs, xs, 0.0)
    root = big
    for s_ in small:
        root = root + s_
    prog = chainrule.compile(root)
    assert not prog.plan.pads
    _check_against_backward(root, xs)


# ----- the passes, separately ------------------------------------------------------------------------


def _demo_graph(batched: bool) -> tuple[Value, MLP]:
    np.random.seed(1337)
    random.seed(1337)
    X, y = make_moons(n_samples=100, noise=0.1)
    model = MLP(2, [16, 16, 1], "relu", "linear", bias_init="zero")
    if batched:
        scores: Any = model([Value(X[:, 0]), Value(X[:, 1])])
    else:
        scores = [model([Value(a), Value(b)]) for a, b in X]
    return losses.hinge(scores, 2 * y - 1) + losses.l2(model.parameters(), 1e-4), model


def test_capture_numbers_nodes_parents_first_with_depths() -> None:
    o, _ = _seeds_neuron()
    g = capture(o)
    assert len(g.nodes) == 10 and g.nodes[-1] is o
    for i, ps in enumerate(g.parents):
        assert all(p < i for p in ps)
        assert g.depths[i] == (1 + max(g.depths[p] for p in ps) if ps else 0)
    assert {g.nodes[i].label for i, ps in enumerate(g.parents) if not ps} == {"x1", "x2", "w1", "w2", "b"}


def test_vectorize_groups_same_op_same_depth() -> None:
    loss, _ = _demo_graph(batched=False)
    g = capture(loss)
    groups = list(vectorize(g))
    assert len(g.nodes) > 7000  # the per-example graph: 100 examples × 33 neurons, and the loss
    assert len(groups) == 111  # 3 layers, 2 relus, the hinge's 3 ops, 99 + 1 for the mean, l2 and 2 more
    sizes = sorted((len(gr.nodes) for gr in groups), reverse=True)
    assert sizes[:2] == [1600, 1600]  # a layer of 16 neurons on 100 examples, and its relus
    for gr in groups:  # one op and one depth per group; depths never decrease
        assert len({g.ops[i] for i in gr.nodes}) == 1 and len({g.depths[i] for i in gr.nodes}) == 1
    depths = [g.depths[gr.nodes[0]] for gr in groups]
    assert depths == sorted(depths)
    # the running sum of the 100 hinge terms: one node per level, 99 single-node groups of +
    assert sum(1 for gr in groups if gr.op == "+" and len(gr.nodes) == 1) >= 99


def test_fuse_makes_each_layer_one_product() -> None:
    for batched, shapes in ((True, [(16, 1), (16, 1), (1, 1), (1, 1)]),
                            (False, [(16, 100), (16, 100), (1, 100), (1, 1)])):
        loss, _ = _demo_graph(batched)
        g = capture(loss)
        steps = list(fuse(g, vectorize(g)))
        products = [s for s in steps if isinstance(s, Product)]
        got = sorted(((len(p.grid), len(p.grid[0])) for p in products), reverse=True)
        assert got == sorted(shapes, reverse=True)  # three layers and the l2 sum of squares
        assert not any(getattr(s, "op", "") == "linear" for s in steps)  # every linear group fused
        for p in products:  # node (r, c) really is b[r] + w[r]·x[:, c]
            for r, row in enumerate(p.grid):
                for c, i in enumerate(row):
                    n = len(p.w[r])
                    assert g.parents[i] == (p.b[r], *p.w[r], *(p.x[j][c] for j in range(n)))


def test_fuse_leaves_a_partial_grid_alone() -> None:
    w = [Value(1.0), Value(2.0)]
    xs = [[Value(3.0), Value(4.0)], [Value(5.0), Value(6.0)]]
    b = Value(0.5)
    n1, n2, n3 = linear(w, xs[0], b), linear(w, xs[1], b), linear([Value(7.0), w[1]], xs[0], b)
    root = n1 + n2 + n3  # rows {w, w'} × cols {xs0, xs1} would need 4 nodes; there are 3
    g = capture(root)
    steps = list(fuse(g, vectorize(g)))
    assert not any(isinstance(s, Product) for s in steps)
    _check_against_backward(root, [*w, *xs[0], *xs[1], b])


def test_demo_instruction_counts() -> None:
    eager, _ = _demo_graph(batched=False)
    batched, _ = _demo_graph(batched=True)
    assert len(plan(eager).instructions) == 111
    assert len(plan(batched).instructions) == 14


# ----- the demo trained through compile --------------------------------------------------------------


def _train(mode: str, steps: int) -> list[float]:
    np.random.seed(1337)
    random.seed(1337)
    X, y = make_moons(n_samples=100, noise=0.1)
    model = MLP(2, [16, 16, 1], "relu", "linear", bias_init="zero")
    params = model.parameters()

    def build() -> Value:
        scores = model([Value(X[:, 0]), Value(X[:, 1])])
        return losses.hinge(scores, 2 * y - 1) + losses.l2(params, 1e-4)

    prog = chainrule.compile(build()) if mode == "compiled" else None
    history = []
    for k in range(steps):
        model.zero_grad()
        if prog is None:
            loss = build()
            loss.backward()
            history.append(loss.data)
        else:
            history.append(prog())
        lr = 1.0 - 0.9 * k / 100
        for p in params:
            p.data -= lr * p.grad
    return history + [p.data for p in params]


def test_demo_trained_through_compile_matches_batched() -> None:
    compiled, batched = _train("compiled", 100), _train("batched", 100)
    assert np.allclose(compiled, batched, rtol=1e-9, atol=1e-12)
    assert compiled[99] < 0.05  # and it learned (micrograd's demo ends near 0.01)


# ----- structure fixed at capture, and errors ------------------------------------------------------------


def test_new_batch_of_same_length_is_seen() -> None:
    w, x = Value(2.0, "w"), Value(np.array([1.0, 2.0, 3.0]), "x")
    loss = (w * x).sum()
    prog = chainrule.compile(loss)
    assert prog() == 12.0 and w.grad == 6.0
    x.data = np.array([0.0, 0.0, 1.0])
    w.grad, x.grad = 0.0, 0.0
    assert prog() == 2.0 and w.grad == 1.0
    assert list(x.grad) == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("new", [np.array([1.0, 2.0]), np.array([1.0]), 3.0])
def test_leaf_changing_kind_or_length_asks_to_compile_again(new: Any) -> None:
    w, x = Value(2.0, "w"), Value(np.array([1.0, 2.0, 3.0]), "x")
    prog = chainrule.compile((w * x).sum())
    x.data = new
    with pytest.raises(ValueError, match=r"input 'x' held a batch of 3 .* compile the graph again"):
        prog()


@pytest.mark.parametrize("new", [np.array([1.0, 2.0]), np.array([1.0])])
def test_number_becoming_a_batch_asks_to_compile_again(new: Any) -> None:
    w, x = Value(2.0, "w"), Value(np.array([1.0, 2.0, 3.0]), "x")
    prog = chainrule.compile((w * x).sum())
    w.data = new
    with pytest.raises(ValueError, match=r"input 'w' held a number .* compile the graph again"):
        prog.forward()


def test_one_interpreter_a_single_number_is_the_size_one_case_on_floats() -> None:
    """Each instruction is one step, run by the same code whatever its size: over many nodes its rule
    gets arrays, over one number it gets Python floats (as in the engine), and both give backward's
    gradients."""
    from chainrule.ops import define_op, remove_op

    seen: list[tuple[str, type]] = []
    probe = define_op("probe_sizes", lambda m, x: seen.append(("forward", type(x))) or m.tanh(x),
                      lambda m, out, x: seen.append(("local", type(x))) or (1.0 - out * out,))
    try:
        a, b = Value(0.3, "a"), Value(-0.7, "b")
        root = probe(probe(a) * 2.0 + probe(b))  # two probes at one depth (an array), one at the root
        root.backward()
        want = [a.grad, b.grad]
        prog = chainrule.compile(root)
        assert len(prog._steps) == len(prog)  # one step per instruction: no separate loop for numbers
        seen.clear()
        a.grad = b.grad = 0.0
        assert prog() == pytest.approx(root.data, rel=1e-15)
        assert [a.grad, b.grad] == pytest.approx(want, rel=1e-15)
        assert sorted(set(seen), key=str) == [("forward", float), ("forward", np.ndarray),
                                               ("local", float), ("local", np.ndarray)]
        assert seen[:2] == [("forward", np.ndarray), ("forward", float)]  # the pair, then the root
    finally:
        remove_op("probe_sizes")


def test_domain_errors_name_the_op_like_the_engine() -> None:
    x = Value(2.0, "x")
    prog = chainrule.compile(x.log() + x)
    x.data = -1.0
    with pytest.raises(ValueError, match=r"log of non-positive input.*label='x'"):
        prog()
    y = Value(1.0, "y")
    z = Value(np.array([1.0, 2.0]), "z")
    prog = chainrule.compile((z / y).sum())
    y.data = 0.0
    with pytest.raises(ZeroDivisionError, match=r"division by zero.*label='y'"):
        prog.forward()
    # the same error in a vectorized instruction names the failing node, not the whole group
    a, b = Value(1.0, "a"), Value(2.0, "b")
    prog = chainrule.compile(a.log() + b.log())
    b.data = 0.0
    with pytest.raises(ValueError, match=r"log of non-positive input.*label='b'"):
        prog()


def test_bad_roots_and_outputs_are_refused() -> None:
    with pytest.raises(TypeError, match="compile needs a Value"):
        chainrule.compile(3.0)  # type: ignore[arg-type]
    x = Value(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"number at the root .*\.sum\(\)"):
        chainrule.compile(x * 2.0)
    a = Value(1.0)
    with pytest.raises(ValueError, match="not a node of the root's graph"):
        chainrule.compile(a * 2.0, outputs=[Value(5.0)])
    prog = chainrule.compile(a * 2.0)
    with pytest.raises(ValueError, match="not an output of this program"):
        prog.value(a)


def test_nodes_compile_cannot_run_are_refused() -> None:
    a = Value(2.0, "a")
    odd = a * 3.0
    odd.op = "bogus"  # a node made outside the engine's ops
    with pytest.raises(ValueError, match="no rule for op 'bogus'"):
        chainrule.compile(odd + 1.0)
    b = Value(1.0, "b")
    root = b * 2.0
    b.data = np.zeros((2, 2))  # type: ignore[assignment]
    with pytest.raises(TypeError, match="a float or a 1-D array"):
        chainrule.compile(root)


def test_forward_leaves_the_grads_alone() -> None:
    a = Value(2.0, "a")
    prog = chainrule.compile(a * a)
    assert prog.forward() == 4.0 and a.grad == 0.0
    assert prog() == 4.0 and a.grad == 4.0


def test_value_reads_outputs_of_the_last_run() -> None:
    w, x = Value(2.0, "w"), Value(np.array([1.0, -2.0]), "x")
    s = w * x
    prog = chainrule.compile(s.relu().sum(), outputs=[s])
    prog()
    assert list(prog.value(s)) == [2.0, -4.0]
    w.data = -1.0
    prog.forward()
    assert list(prog.value(s)) == [-1.0, 2.0]


def test_a_leaf_as_root() -> None:
    a = Value(3.0)
    prog = chainrule.compile(a)
    assert prog() == 3.0 and a.grad == 1.0
    assert len(prog) == 0


def test_deep_chain_compiles_and_runs_without_recursion() -> None:
    """10⁶ links of y = y*1.0001 + 0.0001 (4×10⁶ nodes) at Python's default recursion limit."""
    x = Value(1.0, "x")
    y = x
    for _ in range(10**6):
        y = y * 1.0001 + 0.0001
    prog = chainrule.compile(y)
    assert len(prog) == 2 * 10**6
    value = prog()
    assert value == pytest.approx(y.data, rel=1e-12)
    assert x.grad == pytest.approx(1.0001**10**6, rel=1e-9)


def test_import_chainrule_does_not_import_numpy() -> None:
    import subprocess
    import sys

    code = "import sys, chainrule; chainrule.compile; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_frozen_inputs_are_read_once_and_get_no_grads() -> None:
    x, w = Value(np.array([1.0, 2.0, 3.0]), "x"), Value(0.5, "w")
    prog = chainrule.compile((x * w).tanh().sum())
    want = float(np.tanh(np.array([1.0, 2.0, 3.0]) * 0.5).sum())
    prog.freeze([x])
    x.data = np.array([9.0, 9.0, 9.0])  # ignored: x was read when frozen
    assert prog() == pytest.approx(want, rel=1e-15)
    assert type(x.grad) is float and x.grad == 0.0 and w.grad != 0.0  # no grad kept for x
    prog.freeze([])  # read at every run again
    assert prog() == pytest.approx(float(np.tanh(np.full(3, 4.5)).sum()), rel=1e-15)
    assert x.grad.shape == (3,)
    with pytest.raises(ValueError, match="not an input of this program"):
        prog.freeze([Value(1.0)])
    x.data = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="compile the graph again"):
        prog.freeze([x])


def test_a_layer_over_frozen_inputs_skips_their_gradients_and_keeps_the_weights() -> None:
    X, y = make_moons(n_samples=30, noise=0.1, random_state=1)
    model = MLP(2, [8, 1], "tanh", "linear", rng=random.Random(2))
    xs = [Value(X[:, 0].copy(), "x0"), Value(X[:, 1].copy(), "x1")]
    loss = losses.hinge(model(xs), 2 * y - 1)
    loss.backward()
    want = [p.grad for p in model.parameters()]
    model.zero_grad()
    for x in xs:
        x.grad = 0.0
    prog = chainrule.compile(loss)
    prog.freeze(xs)
    assert prog() == pytest.approx(loss.data, rel=1e-14)
    assert [p.grad for p in model.parameters()] == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert [type(x.grad) for x in xs] == [float, float]  # frozen: no gradient computed for them
    (layer, *_) = [s for s in prog._steps if hasattr(s, "x")]  # the first layer's product reads xs
    assert not layer.x.needed and layer.w.needed


def test_inputs_without_grads_are_still_read_at_every_run() -> None:
    x, w = Value(np.array([1.0, 2.0]), "x"), Value(0.5, "w")
    prog = chainrule.compile((x * w).tanh().sum())
    prog.no_grads([x])
    x.data = np.array([3.0, -1.0])  # read: no_grads does not freeze the data
    assert prog() == pytest.approx(float(np.tanh(np.array([1.5, -0.5])).sum()), rel=1e-15)
    assert type(x.grad) is float and x.grad == 0.0
    assert w.grad == pytest.approx(float((1 - np.tanh(np.array([1.5, -0.5])) ** 2) @ np.array([3.0, -1.0])))
    prog.no_grads([])
    prog()
    assert x.grad.shape == (2,)
    with pytest.raises(ValueError, match="not an input of this program"):
        prog.no_grads([Value(2.0)])


def test_freeze_and_no_grads_name_different_inputs_and_both_hold() -> None:
    x, c, w = Value(np.array([1.0, 2.0]), "x"), Value(np.array([0.5, 0.5]), "c"), Value(2.0, "w")
    root = (x * w * c).sum()
    for order in ("freeze first", "no_grads first"):
        prog = chainrule.compile(root)
        for leaf in (x, c, w):
            leaf.grad = 0.0
        if order == "freeze first":
            prog.freeze([c])
            prog.no_grads([x])
        else:
            prog.no_grads([x])
            prog.freeze([c])
        prog()
        assert type(x.grad) is float and type(c.grad) is float, order  # neither gets a gradient
        assert w.grad == pytest.approx(1.5), order


def test_held_batches_are_read_from_the_buffer_the_caller_writes() -> None:
    x, y, w = Value(np.array([1.0, 2.0]), "x"), Value(np.array([3.0, -1.0]), "y"), Value(2.0, "w")
    root = (x * w + y * y).sum()
    prog = chainrule.compile(root)
    kind, slots = prog.hold_batches([y, x])
    assert kind == 2 and len(slots) == 2
    prog.batches(kind)[slots] = [[1.0, 1.0], [0.5, -0.5]]  # y, then x: the caller's rows, not .data
    for leaf in (x, y, w):
        leaf.grad = 0.0
    assert prog() == pytest.approx(2.0)  # (0.5·2 + 1) + (-0.5·2 + 1)
    assert w.grad == pytest.approx(0.0) and list(x.grad) == [2.0, 2.0] and list(y.grad) == [2.0, 2.0]
    assert list(x.data) == [1.0, 2.0]  # a held batch's Value is left as it was
    prog.hold_batches([])  # read from the Values again
    assert prog() == pytest.approx(root.data)


def test_hold_batches_and_batches_reject_what_they_cannot_hold() -> None:
    x, z, w = Value(np.array([1.0, 2.0]), "x"), Value(np.array([1.0, 2.0, 3.0]), "z"), Value(2.0, "w")
    root = (x * w).sum() + z.sum()
    prog = chainrule.compile(root)
    with pytest.raises(ValueError, match=r"not a batch input of this program: Value.*'w'"):
        prog.hold_batches([w])
    with pytest.raises(ValueError, match="not a batch input of this program"):
        prog.hold_batches([Value(np.ones(2), "elsewhere")])
    with pytest.raises(ValueError, match=r"one size, not of sizes \[2, 3\]"):
        prog.hold_batches([x, z])
    with pytest.raises(ValueError, match=r"no batches of 4: its sizes are \[2, 3\]"):
        prog.batches(4)
    with pytest.raises(ValueError, match="no batches of 0"):
        prog.batches(0)
    assert prog() == pytest.approx(root.data)  # nothing was held by the refused calls


def test_a_product_factor_times_a_gradient_is_the_chain_rule_summed_over_the_shared_index() -> None:
    """replay._Factor: linear's rule hands back X as d(W @ X)/dW and W as d(W @ X)/dX; times the output's
    gradient G they are Σ_c G[r, c]·X[n, c] and Σ_r W[r, n]·G[r, c], for matrices and for stacks."""
    import inspect

    from chainrule import replay

    rng = np.random.default_rng(5)
    for stack in ((), (3,), (2, 4)):
        W, X = rng.normal(size=(*stack, 5, 7)), rng.normal(size=(*stack, 7, 6))
        G = rng.normal(size=(*stack, 5, 6))
        b = np.zeros((*stack, 5, 6))
        out = RULES["linear"].forward(replay._MATRIX, b, W, X)
        np.testing.assert_allclose(out, np.einsum("...rn,...nc->...rc", W, X), rtol=1e-12, atol=1e-12)
        db, dw, dx = RULES["linear"].local(replay._MATRIX, out, b, replay._Factor(W, False),
                                           replay._Factor(X, True))
        assert db == 1.0
        np.testing.assert_allclose(dw * G, np.einsum("...rc,...nc->...rn", G, X), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx * G, np.einsum("...rn,...rc->...nc", W, G), rtol=1e-12, atol=1e-12)
    # the fused steps' backward is the chain rule's one line: no matrix product written beside the rule
    for step in (replay._Product, replay._Blocks):
        assert " @ " not in inspect.getsource(step.backward)
