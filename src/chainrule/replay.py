"""Run a compiled program (chainrule.compile) on NumPy arrays: forward, then backward, no node built.

Every value lives in a buffer of its kind: one float64 vector for the numbers, one matrix per batch length
(a row per node). Each instruction is one step: it gathers its operands from the buffers, runs its op's
rule from `RULES` on them, and writes its outputs as one block. A single number (a level of a chain) is
the size-1 case of the same step, its rule run on Python floats as the engine runs it. Backward walks the
steps in reverse: it asks the same rule for the local derivatives, multiplies them by the outputs'
gradient (the chain rule, in `_Stacked.backward`), and scatter-adds each product into the parents'
gradients (a sorted `np.add.reduceat` where a parent appears twice), or writes it where it is the only
gradient those slots get. Backward skips what no gradient from the root reaches (behind a detach) or what
leads to no input with gradients (`Program._mark`). A fused product is `linear`'s rule on matrices: its
local derivatives are x and W, and the sums over the shared index are matrix products. `linear` nodes whose
weights are batches (an attention's) are the same rule on stacks of matrices where their nodes form blocks
(`_Blocks`), or on gathered rows where they do not (`_Sums`).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .batch import ARRAY_MATH, BatchSum
from .engine import RULES, Value, _data
from .ir import NUMBER, Instruction, Plan, format_plan
from .numerics import FLOAT_MATH
from .ops import linear

Array = NDArray[np.float64]


def _namespace(**overrides: Any) -> Any:
    """ARRAY_MATH with a few functions replaced (a plain object: lookups as fast as ARRAY_MATH's)."""
    math = type("Math", (), {})()
    for name in dir(ARRAY_MATH):
        if not name.startswith("_"):
            setattr(math, name, getattr(ARRAY_MATH, name))
    for name, f in overrides.items():
        setattr(math, name, f)
    return math


# Stacked operands hold one row per node (numbers: a vector, batches: a matrix), so a batch's sum is
# along its rows. A fused product's operands are matrices b (a column), W and x: linear is b + W @ x.
_STACKED = _namespace(sum=lambda x: x.sum(axis=1) if np.ndim(x) == 2 else x)
_MATRIX = _namespace(linear=lambda b, wx: b + wx[0] @ wx[1])


class _Factor:
    """A factor of a matrix product W @ X (or of stacks of them, in the last two axes) handed to linear's
    rule as an input, so that it comes back as a local derivative: d(W @ X)/dW is X and d(W @ X)/dX is W
    (the rule's "∂/∂wᵢ = xᵢ, ∂/∂xᵢ = wᵢ"). Its product with the output's gradient G is then the chain rule
    summed over the index the factors share: G @ Xᵀ for W, Wᵀ @ G for X (torch.matmul's backward). This
    is the one place that sum is written, as BatchSum is broadcasting's: the fused products' backward is
    the line `local * grad` of every other step."""

    __slots__ = ("array", "right")

    def __init__(self, array: Array, right: bool) -> None:
        self.array, self.right = array, right  # right: X, on the right of the product

    def __mul__(self, grad: Array) -> Array:
        turned = self.array.swapaxes(-1, -2)
        return grad @ turned if self.right else turned @ grad


# Stacked `linear` nodes whose weights are batches (attention: q·k, the weights times v): all their w's as
# one array W and all their x's as X, inputs along the first axis, so linear is b + Σ W·X over that axis.
_SUMMED = _namespace(linear=lambda b, wx: b + (wx[0] * wx[1]).sum(axis=0))


class Program:
    """A compiled graph (see `chainrule.compile`). Call it for the value and the gradients.

    A program reuses its buffers from run to run: don't run one program from two threads at once.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.inputs = [leaf for kind in sorted(plan.leaves) for leaf in plan.leaves[kind]]
        self._values = {k: np.zeros((n,) if k == NUMBER else (n, k)) for k, n in plan.sizes.items()}
        self._grads = {k: np.zeros_like(v) for k, v in self._values.items()}
        self._steps = _steps(plan.instructions, plan.pads)
        self._held: set[int] = set()  # ids of the number inputs the caller keeps in `numbers` (hold)
        self._held_batches: set[int] = set()  # ids of the batch inputs the caller writes (hold_batches)
        self._frozen: set[int] = set()  # ids of the inputs whose data was read once (freeze)
        self._gradless: set[int] = set()  # ids of the inputs that get no gradients: frozen or no_grads
        self._no_grads: set[int] = set()  # ... of those named by no_grads
        self.holder: object = None  # who holds the held inputs (chainrule.trainstep.ArrayStep)
        self._numbers: list[Value] = []  # the number inputs read from their Values at each run ...
        self._read: slice | NDArray[np.intp] = slice(0)  # ... and their slots
        self._batches: list[tuple[int, list[tuple[int, Value]]]] = []  # by kind: (slot, leaf) read each run
        self._graded: list[Value] = []  # the number inputs whose .grad a run adds into ...
        self._write: slice | NDArray[np.intp] = slice(0)  # ... and their slots
        self._graded_batches: list[tuple[int, list[tuple[int, Value]]]] = []  # by kind, as _batches
        # compile's pads (neutral inputs lining up nodes of different arity) never get a gradient
        self._pads = {id(plan.leaves[kind][slot]) for kind, slot in plan.pads}
        self._backward: list[Step] = []  # the steps backward runs, in forward order (_mark) ...
        self._zeros: list[tuple[Array, slice | NDArray[np.intp]]] = []  # ... and the rows zeroed first
        self._mark()

    def __len__(self) -> int:
        """The number of forward instructions (backward has as many)."""
        return len(self.plan.instructions)

    def __str__(self) -> str:
        return format_plan(self.plan)

    def __repr__(self) -> str:
        return f"<chainrule.compile program: {self.plan.nodes} nodes, {len(self)} instructions>"

    def forward(self) -> float:
        """The root's value from the leaves' current data (no gradients)."""
        self._read_inputs()
        values = self._values
        step = None
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is silent, as for floats
                for step in self._steps:
                    step.forward(values)
        except (ArithmeticError, ValueError) as err:
            assert step is not None
            self._explain(step.ins, err)
        kind, slot = self.plan.root
        return float(values[kind][slot])

    def __call__(self) -> float:
        """The root's value, and d(root)/d(leaf) added into every leaf's `.grad` (as `root.backward()`)."""
        out = self.forward()
        values, grads = self._values, self._grads
        for g, rows in self._zeros:
            g[rows] = 0.0
        kind, slot = self.plan.root
        grads[kind][slot] = 1.0
        with np.errstate(over="ignore", invalid="ignore"):
            for step in reversed(self._backward):
                step.backward(values, grads)
        self._write_grads()
        return out

    def value(self, node: Value) -> Any:
        """The value of `node` (one of `compile`'s `outputs`) in the last run: a float, or an array."""
        known, kind, slot = self.plan.outputs.get(id(node), (None, 0, 0))
        if known is not node:
            raise ValueError(f"not an output of this program (pass it in compile(root, outputs=[...])): "
                             f"{node!r}")
        return float(self._values[kind][slot]) if kind == NUMBER else self._values[kind][slot].copy()

    # ----- inputs and outputs -----

    def hold(self, leaves: list[Value], holder: object = None) -> NDArray[np.intp]:
        """Hold these number inputs in the program's own buffer from now on: a run neither reads their
        `.data` nor adds into their `.grad`; the caller writes `numbers[slots]` before a run and reads
        `number_grads[slots]` after it (chainrule.trainstep does). Returns the slots, in `leaves`' order;
        `hold([])` gives every input back to its Value; each call replaces the last, and `holder` (who
        holds them now) says whose they are. Raises ValueError for a Value that is not a number input of
        this program."""
        inputs = self.plan.leaves.get(NUMBER, [])
        where = {id(leaf): slot for slot, leaf in enumerate(inputs)}
        missing = next((leaf for leaf in leaves if id(leaf) not in where), None)
        if missing is not None:
            raise ValueError(f"not a number input of this program: {missing!r}")
        self._held = {id(leaf) for leaf in leaves}
        self.holder = holder if leaves else None
        self._refresh()
        return np.array([where[id(leaf)] for leaf in leaves], dtype=np.intp)

    def hold_batches(self, leaves: list[Value]) -> tuple[int, NDArray[np.intp]]:
        """Hold these batch inputs (all batches of one size) in the program's own buffer from now on: a
        run no longer reads their `.data`, which then stays as it was; the caller writes their rows,
        `batches(kind)[slots] = rows`, before each run (chainrule.makemore writes a batch's one-hot tokens
        so, in one NumPy assignment). Their gradients are added into `.grad` as before, unless `no_grads`
        names them. Returns (kind, slots), the slots in `leaves`' order; `hold_batches([])` reads every
        batch input from its Value again; each call replaces the last. Raises ValueError for a Value that
        is not a batch input of this program, or for batches of two sizes."""
        where = {id(leaf): (kind, slot) for kind, ls in self.plan.leaves.items() if kind != NUMBER
                 for slot, leaf in enumerate(ls)}
        missing = next((leaf for leaf in leaves if id(leaf) not in where), None)
        if missing is not None:
            raise ValueError(f"not a batch input of this program: {missing!r}")
        kinds = sorted({where[id(leaf)][0] for leaf in leaves})
        if len(kinds) > 1:
            raise ValueError(f"hold_batches holds batches of one size, not of sizes {kinds}")
        self._held_batches = {id(leaf) for leaf in leaves}
        self._refresh()
        slots = np.array([where[id(leaf)][1] for leaf in leaves], dtype=np.intp)
        return (kinds[0] if kinds else NUMBER), slots

    def batches(self, kind: int) -> Array:
        """The buffer of every batch of `kind` examples the program computes, a row each, its inputs first
        (by slot): the live array, which a run reads its held batches from (hold_batches)."""
        if kind == NUMBER or kind not in self._values:
            raise ValueError(f"this program has no batches of {kind}: its sizes are "
                             f"{sorted(k for k in self._values if k != NUMBER)}")
        return self._values[kind]

    def freeze(self, leaves: list[Value]) -> None:
        """Read these inputs' data now, once: later runs neither read them again nor compute their
        gradients (as `no_grads`, which names others): data a training loop never changes, as a full
        batch's columns. `freeze([])` reads every input at each run again; each call replaces the last.
        Raises ValueError for a Value that is not an input of this program, or whose data changed kind or
        length since compile (the earlier freeze then stands)."""
        self._check_inputs(leaves)
        before = self._frozen
        self._frozen = set()
        self._refresh()
        try:
            self._read_inputs()  # every input as it is now, the frozen ones included
        except ValueError:
            self._frozen = before
            self._refresh()
            raise
        self._frozen = {id(leaf) for leaf in leaves}
        self._mark()

    def no_grads(self, leaves: list[Value]) -> None:
        """These inputs get no gradients from now on (as tensors with `requires_grad=False`): a run
        leaves their `.grad` alone, and backward skips every gradient that only they would receive (a
        first layer's points, a batch's one-hot tokens). Their data is still read at each run.
        `no_grads([])` gives every input that is not frozen its gradient again; each call replaces the
        last."""
        self._check_inputs(leaves)
        self._no_grads = {id(leaf) for leaf in leaves}
        self._mark()

    def _mark(self) -> None:
        """Which gradients backward computes: a slot's only if it leads to an input that gets gradients
        (`useful`) and a gradient from the root can reach it (`reached`), through ops that pass one: a
        detach passes none, so the max a softmax subtracts (read by a detach only) gets no backward."""
        self._gradless = self._frozen | self._no_grads | self._pads  # a frozen input gets none either
        self._refresh()
        plan = self.plan
        useful = {k: np.zeros(n, dtype=bool) for k, n in plan.sizes.items()}
        for kind, ls in plan.leaves.items():  # the inputs hold a kind's first slots
            useful[kind][: len(ls)] = [id(leaf) not in self._gradless for leaf in ls]
        for ins in plan.instructions:
            if ins.passes and any(_any(useful[k], _at(a)) for k, a in zip(ins.arg_kinds, ins.args)):  # noqa: B905
                useful[ins.kind][ins.out : ins.out + ins.size] = True
        reached = {k: np.zeros(n, dtype=bool) for k, n in plan.sizes.items()}
        reached[plan.root[0]][plan.root[1]] = True
        live: set[int] = set()  # ids of the instructions whose backward runs
        for ins in reversed(plan.instructions):
            outs = ins.out if ins.size == 1 else slice(ins.out, ins.out + ins.size)
            if ins.passes and _any(reached[ins.kind], outs) and _any(useful[ins.kind], outs):
                live.add(id(ins))
                for k, a in zip(ins.arg_kinds, ins.args):  # noqa: B905
                    reached[k][_at(a)] = True
        unwanted = {k: set(np.flatnonzero(~(useful[k] & reached[k])).tolist()) for k in plan.sizes}
        self._backward = []
        # How many times backward writes each slot: an operand that is the only writer of all its slots
        # assigns its gradients (no add, and the slots need no zeroing); the others add into slots zeroed
        # before each run (`_zeros`). A slot never written stays 0 from the fill below.
        writes = {k: np.zeros(n, dtype=np.intp) for k, n in plan.sizes.items()}
        for step in self._steps:
            operands = _operands(step)
            for operand in operands:
                operand.mark(unwanted)
                operand.needed &= id(step.ins) in live
                if operand.needed and len(operand.slots) == 1:
                    writes[operand.kind][operand.slots[0]] += 1
                elif operand.needed:
                    np.add.at(writes[operand.kind], list(operand.slots), 1)
            if any(operand.needed for operand in operands):
                self._backward.append(step)
        several = {k: writes[k] > 1 for k in plan.sizes}
        added = {k: v.copy() for k, v in several.items()}  # the slots some step adds into: zeroed first
        for step in self._backward:
            for operand in _operands(step):
                operand.assign = (operand.needed and not operand.repeated
                                  and not _any(several[operand.kind], _at(operand.slots)))
                if operand.needed and not operand.assign:
                    added[operand.kind][_at(operand.slots)] = True
        self._zeros = []
        for kind, g in self._grads.items():
            g.fill(0.0)
            rows = np.flatnonzero(added[kind])
            if len(rows):
                self._zeros.append((g, slice(None) if 2 * len(rows) > len(g) else rows))

    def _check_inputs(self, leaves: list[Value]) -> None:
        inputs = {id(leaf) for ls in self.plan.leaves.values() for leaf in ls}
        missing = next((leaf for leaf in leaves if id(leaf) not in inputs), None)
        if missing is not None:
            raise ValueError(f"not an input of this program: {missing!r}")

    def _refresh(self) -> None:
        inputs = self.plan.leaves.get(NUMBER, [])

        def slots(skip: set[int]) -> tuple[list[Value], slice | NDArray[np.intp]]:
            free = [slot for slot, leaf in enumerate(inputs) if id(leaf) not in skip]
            return ([inputs[slot] for slot in free],
                    slice(0, len(inputs)) if len(free) == len(inputs) else np.array(free, dtype=np.intp))

        def batches(skip: set[int]) -> list[tuple[int, list[tuple[int, Value]]]]:
            return [(k, [(j, leaf) for j, leaf in enumerate(ls) if id(leaf) not in skip])
                    for k, ls in self.plan.leaves.items() if k != NUMBER]

        self._numbers, self._read = slots(self._held | self._frozen)
        self._graded, self._write = slots(self._held | self._gradless)
        self._batches = batches(self._frozen | self._held_batches)
        self._graded_batches = batches(self._gradless)

    @property
    def numbers(self) -> Array:
        """The buffer of every number the program computes, its number inputs first (by slot): the live
        array, which a run reads its held inputs from."""
        return self._values.setdefault(NUMBER, np.zeros(0))

    @property
    def number_grads(self) -> Array:
        """d(root)/d(number) for each slot of `numbers`, after a run (the live array)."""
        return self._grads.setdefault(NUMBER, np.zeros(0))

    def _read_inputs(self) -> None:
        leaves = self._numbers
        try:
            self._values[NUMBER][self._read] = np.fromiter(map(_data, leaves), np.float64, len(leaves))
        except (TypeError, ValueError):  # fromiter takes numbers only: a batch of any length is refused
            for leaf in leaves:
                if getattr(leaf.data, "ndim", 0) != 0:
                    raise self._changed(leaf, NUMBER) from None
            raise
        for kind, pairs in self._batches:
            rows = self._values[kind]
            for j, leaf in pairs:
                x = leaf.data
                if not isinstance(x, np.ndarray) or x.shape != (kind,):
                    raise self._changed(leaf, kind)
                rows[j] = x

    def _changed(self, leaf: Value, kind: int) -> ValueError:
        was = "a number" if kind == NUMBER else f"a batch of {kind}"
        x: Any = leaf.data
        now = f"a batch of {len(x)}" if getattr(x, "ndim", 0) == 1 else f"{type(x).__name__} {x!r}"
        label = f" {leaf.label!r}" if leaf.label else ""
        return ValueError(f"compiled program: input{label} held {was} when compiled and now holds {now}; "
                          f"a program's structure is fixed, so compile the graph again (chainrule.compile)")

    def _write_grads(self) -> None:
        grads = self._grads
        numbers = self._graded
        for leaf, g in zip(numbers, grads[NUMBER][self._write].tolist(), strict=True):
            leaf.grad += g
        for kind, pairs in self._graded_batches:
            rows = grads[kind]
            for j, leaf in pairs:
                leaf.grad = leaf.grad + rows[j]  # a new array: never a view of this program's buffers

    def _explain(self, ins: Instruction, err: Exception) -> None:
        """Raise the engine's own error for the first node that fails (its message names the op and the
        Values): the failed step's op runs again, node by node, through Value on the current numbers."""
        labels = self.plan.labels

        def leaf(kind: int, slot: int) -> Value:
            row = self._values[kind][slot]
            return Value(float(row) if kind == NUMBER else row.copy(), labels.get((kind, slot), ""))

        for parents in _node_operands(ins):
            _eager(ins.op, [leaf(k, s) for k, s in parents])  # raises the engine's error, naming the op
        raise type(err)(f"{ins.op} failed ({err})") from None


def _at(slots: tuple[int, ...]) -> int | list[int]:
    """The index of these slots in a NumPy array: a single slot's is an int (~10x cheaper for one)."""
    return slots[0] if len(slots) == 1 else list(slots)


def _any(mask: NDArray[np.bool_], at: int | slice | list[int]) -> bool:
    """Whether the mask holds True anywhere at `at` (a single slot read as one element)."""
    return bool(mask[at] if type(at) is int else mask[at].any())


def _operands(step: Step) -> list[_Operand]:
    """The operands a step adds gradients into (a fused product's b, w, x; the others' list)."""
    return getattr(step, "operands", None) or [step.b, step.w, step.x]


def _node_operands(ins: Instruction) -> list[list[tuple[int, int]]]:
    """Each node's parents as (kind, slot), in the op's order."""
    if ins.grid is None:
        return [[(k, a[i]) for k, a in zip(ins.arg_kinds, ins.args, strict=True)] for i in range(ins.size)]
    rows, cols = ins.grid
    b, w, x = ins.args
    n, kx = len(w) // rows, ins.arg_kinds[2]
    return [[(0, b[r]), *((0, w[r * n + j]) for j in range(n)), *((kx, x[j * cols + c]) for j in range(n))]
            for r in range(rows) for c in range(cols)]


_BINARY = {"+": operator.add, "*": operator.mul, "/": operator.truediv, "**": operator.pow}


def _eager(op: str, parents: list[Value]) -> Value:
    if op == "linear":
        n = (len(parents) - 1) // 2
        return linear(parents[1 : n + 1], parents[n + 1 :], parents[0])
    if op in _BINARY:
        return _BINARY[op](*parents)  # type: ignore[no-any-return]
    return getattr(parents[0], op)()  # type: ignore[no-any-return]  # exp, log, tanh, ..., sum


# ----- the kinds of instruction --------------------------------------------------------------------------


Step = Any  # _Stacked, _Rows, _Sums, _Blocks, _Product: forward(values), backward(values, grads)


def _steps(instructions: list[Instruction], pads: frozenset[tuple[int, int]]) -> list[Step]:
    """Each instruction's step: how its operands are laid out for its rule (one node or many alike)."""
    steps: list[Step] = []
    for ins in instructions:
        if ins.grid is not None:
            steps.append(_Product(ins))
        elif _Stacked.one_number(ins):  # the size-1 case: on floats, whatever the op
            steps.append(_Stacked(ins))
        elif ins.op == "linear" and ins.size > 1 and _Sums.fits(ins):
            blocks = _blocks(ins, pads)
            steps.append(_Sums(ins) if blocks is None else _Blocks(ins, blocks))
        elif _Rows.fits(ins):
            steps.append(_Rows(ins))
        else:
            steps.append(_Stacked(ins))
    return steps


class _Operand:
    """Where an instruction's operand comes from: its slots, as a slice when they are contiguous (a view,
    no copy), an int for a single number's one slot, and how to add gradients back into them (summed per
    slot when a slot repeats)."""

    __slots__ = ("assign", "column", "index", "kind", "needed", "order", "repeated", "repeats", "slots",
                 "starts", "unique")

    def __init__(self, kind: int, slots: tuple[int, ...], column: bool, number: bool = False) -> None:
        # column: one slot meets a whole row (a number a batch, a product's bias its columns): gathered
        # as a column, broadcast over the row, and its gradient the sum over it (BatchSum)
        self.kind, self.column = kind, column
        self.slots = slots
        self.needed = True  # False when no slot wants a gradient (Program._mark)
        self.assign = False  # True when no other operand writes these slots' gradients (Program._mark)
        first = slots[0]
        if number:  # a single float's slot (_Stacked's size-1 case): add() writes one element
            self.index: int | slice | NDArray[np.intp] = first
        elif slots == tuple(range(first, first + len(slots))):
            self.index = slice(first, first + len(slots))
        else:
            self.index = np.array(slots, dtype=np.intp)
        self.repeats = self.repeated = len(set(slots)) < len(slots)
        if self.repeats:
            # A slot read by several nodes (an embedding row, a weight shared by every position) gets the
            # sum of their gradients: sort the rows by slot once, then each step adds each run of equal
            # slots with one reduceat, ~10x faster than np.add.at's element-by-element scatter.
            index = np.array(slots, dtype=np.intp)
            self.order = np.argsort(index, kind="stable")
            ordered = index[self.order]
            self.starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
            self.unique = ordered[self.starts]

    def mark(self, gradless: dict[int, set[int]]) -> None:
        skip = gradless.get(self.kind, set())
        self.needed = not skip or not set(self.slots) <= skip
        if self.repeated:  # repeats among slots nobody reads the gradient of need no sum (a pad's)
            wanted = [s for s in self.slots if s not in skip]
            self.repeats = len(set(wanted)) < len(wanted)

    def gather(self, values: dict[int, Array]) -> Array:
        index = self.index  # np.take: ~3x faster than indexing with an array of rows
        x = values[self.kind][index] if type(index) is slice else np.take(values[self.kind], index, axis=0)
        return x[:, None] if self.column else x

    def add(self, grads: dict[int, Array], g: Array) -> None:
        if self.assign:  # the only gradient these slots get: written, not added to zeros
            grads[self.kind][self.index] = g
        elif self.repeats:  # then index is an array (a slice never repeats)
            grads[self.kind][self.unique] += np.add.reduceat(g[self.order], self.starts, axis=0)
        else:
            grads[self.kind][self.index] += g


class _Stacked:
    """One op over many nodes: operands gathered into arrays, one row per node. A single number (one node
    whose operands are numbers: a level of a chain, of a running sum) is the size-1 case, on plain floats:
    the same rule read by the floats' math, FLOAT_MATH, as the engine reads it, so a float op costs what
    the engine's does (NumPy's call on one element is ~1 µs) and its errors are Python's (1.0 / 0.0
    raises)."""

    __slots__ = ("ins", "math", "number", "operands", "out", "rule", "saved", "slots", "to_column")

    @staticmethod
    def one_number(ins: Instruction) -> bool:
        return ins.size == 1 and ins.kind == NUMBER and not any(ins.arg_kinds)

    def __init__(self, ins: Instruction) -> None:
        self.ins, self.rule = ins, RULES[ins.op]
        self.number = self.one_number(ins)
        self.math = FLOAT_MATH if self.number else _STACKED
        self.out: int | slice = ins.out if self.number else slice(ins.out, ins.out + ins.size)
        self.operands = [_Operand(k, a, k == NUMBER and ins.kind != NUMBER, self.number)
                         for k, a in zip(ins.arg_kinds, ins.args, strict=True)]
        self.slots = tuple(a[0] for a in ins.args) if self.number else ()  # read in one map
        # A batch reduced to a number (sum): the output's gradient meets the batch as a column.
        self.to_column = ins.kind == NUMBER and any(ins.arg_kinds)
        self.saved: tuple[Any, list[Any]] = (None, [])

    def forward(self, values: dict[int, Array]) -> None:
        xs: list[Any]
        if self.number:
            xs = list(map(values[NUMBER].item, self.slots))  # Python floats
        else:
            xs = [o.gather(values) for o in self.operands]
        out = self.rule.forward(self.math, *xs)
        values[self.ins.kind][self.out] = out
        self.saved = (out, xs)

    def backward(self, values: dict[int, Array], grads: dict[int, Array]) -> None:
        out, xs = self.saved
        grad: Any = grads[NUMBER].item(self.ins.out) if self.number else grads[self.ins.kind][self.out]
        if self.to_column:
            grad = grad[:, None]
        for operand, local in zip(self.operands, self.rule.local(self.math, out, *xs)):  # noqa: B905
            # the chain rule: local derivative times the output's grad; a number shared by a batch gets
            # the sum over the batch, as in the engine (batch.BatchSum)
            if operand.needed:
                operand.add(grads, (BatchSum(local) if operand.column else local) * grad)


class _Rows:
    """A variadic op (a softmax's max) over many nodes whose inputs are all of the output's kind: every
    input of every node gathered at once (one gather, not one per input), the rule run on the rows of that
    array, and the gradients added back at once."""

    __slots__ = ("ins", "operands", "out", "rule", "saved", "shape")

    @staticmethod
    def fits(ins: Instruction) -> bool:
        return len(ins.args) > 2 and set(ins.arg_kinds) == {ins.kind}

    def __init__(self, ins: Instruction) -> None:
        self.ins, self.rule = ins, RULES[ins.op]
        self.out = slice(ins.out, ins.out + ins.size)
        self.operands = [_Operand(ins.kind, tuple(s for a in ins.args for s in a), False)]  # input 0's, ...
        self.shape = (len(ins.args), ins.size) + (() if ins.kind == NUMBER else (ins.kind,))
        self.saved: tuple[Any, tuple[Array, ...]] = (None, ())

    def forward(self, values: dict[int, Array]) -> None:
        xs = tuple(self.operands[0].gather(values).reshape(self.shape))  # input i: a view, row i
        out = self.rule.forward(_STACKED, *xs)
        values[self.ins.kind][self.out] = out
        self.saved = (out, xs)

    def backward(self, values: dict[int, Array], grads: dict[int, Array]) -> None:
        (operand,) = self.operands
        if not operand.needed:
            return
        out, xs = self.saved
        grad = grads[self.ins.kind][self.out]
        products = np.empty(self.shape)
        for i, local in enumerate(self.rule.local(_STACKED, out, *xs)):
            np.multiply(local, grad, out=products[i])  # the chain rule, input by input, as in _Stacked
        operand.add(grads, products.reshape(-1, *self.shape[2:]))


class _Sums:
    """`linear` nodes over many rows whose inputs are not one shared matrix (weights that are batches, as
    an attention's): linear's rule read on W and X, every w and every x of the rows gathered at once, the
    inputs along a first axis. Its local derivatives are then X and W, one array each."""

    __slots__ = ("b", "ins", "n", "out", "rule", "saved", "w", "x")

    @staticmethod
    def fits(ins: Instruction) -> bool:
        """The w's all of one kind, and the x's all of one kind (so each gathers as one array)."""
        n = (len(ins.arg_kinds) - 1) // 2
        return n > 1 and len(set(ins.arg_kinds[1 : n + 1])) == 1 and len(set(ins.arg_kinds[n + 1 :])) == 1

    def __init__(self, ins: Instruction) -> None:
        self.ins, self.rule = ins, RULES["linear"]
        self.n = n = (len(ins.args) - 1) // 2
        self.out = slice(ins.out, ins.out + ins.size)
        kinds = ins.arg_kinds

        def operand(kind: int, slots: tuple[int, ...]) -> _Operand:
            return _Operand(kind, slots, kind == NUMBER and ins.kind != NUMBER)

        self.b = operand(kinds[0], ins.args[0])
        self.w = operand(kinds[1], tuple(s for a in ins.args[1 : n + 1] for s in a))  # w_0's rows, w_1's, ...
        self.x = operand(kinds[n + 1], tuple(s for a in ins.args[n + 1 :] for s in a))
        self.saved: tuple[Any, ...] = ()

    def forward(self, values: dict[int, Array]) -> None:
        shape = (self.n, self.ins.size, -1)
        b = self.b.gather(values)
        w, x = self.w.gather(values).reshape(shape), self.x.gather(values).reshape(shape)
        if self.ins.kind == NUMBER:
            w, x = w[..., 0], x[..., 0]
        out = self.rule.forward(_SUMMED, b, w, x)
        values[self.ins.kind][self.out] = out
        self.saved = (out, b, w, x)

    def backward(self, values: dict[int, Array], grads: dict[int, Array]) -> None:
        out, b, w, x = self.saved
        grad = grads[self.ins.kind][self.out]
        for operand, local, flat in zip((self.b, self.w, self.x), self.rule.local(_SUMMED, out, b, w, x),
                                        (False, True, True), strict=True):  # linear's rule: 1, then X, W
            if operand.needed:
                g = (BatchSum(local) if operand.column else local) * grad  # the chain rule, as in _Stacked
                operand.add(grads, g.reshape(-1, *g.shape[2:]) if flat else g)


_Grids = tuple[tuple[int, ...], tuple[int, ...], list[int], tuple[int, int, int, int]]  # see _blocks


class _Blocks:
    """`linear` nodes whose w's and x's are batches and form blocks of matrix products: the weights times
    v of an attention (node (t, h, d) sums att[t, h, s]·v[s, h, d] over s), and q·k (node (t, h, s) sums
    q[t, h, i]·k[s, h, i] over i). `_blocks` finds G groups (the heads) of R rows (each node's w's) and C
    columns (its x's): the nodes are cells of G grids of R × C, each grid a product of W (R × n) and
    X (n × C) per example. Linear's rule is then read on those matrices (b + W @ X, locals 1, X, W), and the
    gathers shrink from 2·n per node to G·(R + C)·n in all.

    A causal triangle computes its whole grid and keeps its cells (at most twice the work, or `_blocks`
    declines), and a padded term's x (0·x in compile's padding) is read from the column's real x at
    that term, so the products only equal the nodes' sums when everything read is finite. A run whose
    outputs are not all finite is redone by the gathering `_Sums`, the node-by-node sums, backward too."""

    __slots__ = ("b", "cells", "exact", "ins", "operands", "out", "rule", "saved", "shape",
                 "used")

    def __init__(self, ins: Instruction, blocks: _Grids) -> None:
        self.ins, self.rule = ins, RULES["linear"]
        self.out = slice(ins.out, ins.out + ins.size)
        w_slots, x_slots, cells, self.shape = blocks  # shape: (G, R, n, C)
        n = (len(ins.args) - 1) // 2
        self.b = _Operand(ins.arg_kinds[0], ins.args[0], ins.arg_kinds[0] == NUMBER)
        w = _Operand(ins.arg_kinds[1], w_slots, False)
        x = _Operand(ins.arg_kinds[n + 1], x_slots, False)
        self.cells = np.array(cells, dtype=np.intp)  # node i's cell of the G·R·C grid
        self.exact = _Sums(ins)
        self.operands = [self.b, w, x, self.exact.b, self.exact.w, self.exact.x]
        self.saved: tuple[Any, ...] = ()
        self.used: Any = self  # the step whose saved state backward reads: self, or exact when redone

    def forward(self, values: dict[int, Array]) -> None:
        g, r, n, c = self.shape
        kind = self.ins.kind
        b_op, w_op, x_op = self.operands[:3]
        # gathered slot-major, a row of examples per slot; the products want the examples as a stack axis
        w = w_op.gather(values).reshape(g, r, n, kind).transpose(0, 3, 1, 2)
        x = x_op.gather(values).reshape(g, n, c, kind).transpose(0, 3, 1, 2)
        biases = np.zeros((g * r * c, kind))
        biases[self.cells] = b_op.gather(values)  # each node's bias in its cell; the other cells are dropped
        b = biases.reshape(g, r, c, kind).transpose(0, 3, 1, 2)
        full = self.rule.forward(_MATRIX, b, w, x)  # (G, examples, R, C)
        out = full.transpose(0, 2, 3, 1).reshape(-1, kind)[self.cells]
        if not np.isfinite(out).all():
            self.exact.forward(values)  # see the class docstring: the sums node by node
            self.used = self.exact
            return
        values[kind][self.out] = out
        self.saved, self.used = (full, b, w, x), self

    def backward(self, values: dict[int, Array], grads: dict[int, Array]) -> None:
        if self.used is not self:
            self.exact.backward(values, grads)
            return
        g, r, _, c = self.shape
        kind = self.ins.kind
        full, b, w, x = self.saved
        grad = np.zeros((g * r * c, kind))
        grad[self.cells] = grads[kind][self.out]
        grad = grad.reshape(g, r, c, kind).transpose(0, 3, 1, 2)
        # linear's rule: 1, then X, then W (as _Factors: their products with grad are matrix products)
        db, dw, dx = self.rule.local(_MATRIX, full, b, _Factor(w, False), _Factor(x, True))
        b_op, w_op, x_op = self.operands[:3]
        # The chain rule for every cell at once, as in _Product. A bias sits in its node's cell: its grad
        # is the node's, not the grid's.
        if b_op.needed:
            b_op.add(grads, (BatchSum(db) if b_op.column else db) * grads[kind][self.out])
        for operand, local in ((w_op, dw), (x_op, dx)):
            if operand.needed:
                operand.add(grads, (local * grad).transpose(0, 2, 3, 1).reshape(-1, kind))


def _blocks(ins: Instruction, pads: frozenset[tuple[int, int]]) -> _Grids | None:
    """The blocks of `_Blocks` for a `linear` instruction over batches: (W's slots as G × R × n, X's as
    G × n × C, each node's cell, (G, R, n, C)), or None when its nodes do not form such blocks, or the
    blocks would not save work (each cell a node at least half the time, and the gathers shrunk at least
    threefold)."""
    n = (len(ins.args) - 1) // 2
    size, kinds = ins.size, ins.arg_kinds
    if ins.kind == NUMBER or n < 2 or set(kinds[1:]) != {ins.kind}:
        return None
    ws, xs = ins.args[1 : n + 1], ins.args[n + 1 :]
    kind = ins.kind
    real = [[(kind, ws[j][i]) not in pads or (kind, xs[j][i]) not in pads for j in range(n)]
            for i in range(size)]  # term j of node i is not one of compile's pads (0·0)
    row_ids: dict[tuple[int, ...], int] = {}
    row_of = [row_ids.setdefault(tuple(w[i] for w in ws), len(row_ids)) for i in range(size)]
    # columns: nodes that read the same x at the same term share their column
    col_root = list(range(size))

    def root(parents: list[int], i: int) -> int:
        while parents[i] != i:
            parents[i] = parents[parents[i]]
            i = parents[i]
        return i

    first: dict[tuple[int, int], int] = {}
    for i in range(size):
        for j in range(n):
            if real[i][j]:
                k = first.setdefault((j, xs[j][i]), i)
                col_root[root(col_root, i)] = root(col_root, k)
    col_ids: dict[int, int] = {}
    col_of = [col_ids.setdefault(root(col_root, i), len(col_ids)) for i in range(size)]
    read: list[list[int | None]] = [[None] * n for _ in col_ids]
    for i in range(size):
        column = read[col_of[i]]
        for j in range(n):
            if real[i][j]:
                if column[j] is None:
                    column[j] = xs[j][i]
                elif column[j] != xs[j][i]:
                    return None  # two nodes of one column read different x's
    # a term no node of the column reads for real (all pads there): the pad of its first node
    firsts = {col: i for i, col in reversed(list(enumerate(col_of)))}
    columns = [[xs[j][firsts[col]] if x is None else x for j, x in enumerate(column)]
               for col, column in enumerate(read)]
    # groups: rows and columns joined through their nodes
    rows = len(row_ids)
    group_root = list(range(rows + len(col_ids)))
    for i in range(size):
        group_root[root(group_root, rows + col_of[i])] = root(group_root, row_of[i])
    group_ids: dict[int, int] = {}
    members: list[tuple[list[int], list[int]]] = []
    for item in range(len(group_root)):
        gid = group_ids.setdefault(root(group_root, item), len(group_ids))
        if gid == len(members):
            members.append(([], []))
        members[gid][item >= rows].append(item if item < rows else item - rows)
    g, r, c = len(members), len(members[0][0]), len(members[0][1])
    if any((len(rs), len(cs)) != (r, c) for rs, cs in members):
        return None
    if 2 * size < g * r * c or 3 * g * (r + c) * n > 2 * size * n:
        return None
    place: dict[tuple[str, int], int] = {}
    for gid, (rs, cs) in enumerate(members):
        place.update({("r", row): gid * r + k for k, row in enumerate(rs)})
        place.update({("c", col): k for k, col in enumerate(cs)})
    cells = [place["r", row_of[i]] * c + place["c", col_of[i]] for i in range(size)]
    if len(set(cells)) < size:
        return None  # two nodes with the same w's and x's: not a grid
    row_keys = list(row_ids)
    w_slots = tuple(s for rs, _ in members for row in rs for s in row_keys[row])
    x_slots = tuple(columns[col][j] for _, cs in members for j in range(n) for col in cs)
    return w_slots, x_slots, cells, (g, r, n, c)


class _Product:
    """A layer of `linear` nodes as b + W @ x (W: rows × n weights, x: n inputs × columns or × batch)."""

    __slots__ = ("b", "grad_rows", "ins", "out", "rows", "rule", "saved", "shape", "w",
                 "wshape", "x", "xshape")

    def __init__(self, ins: Instruction) -> None:
        self.ins, self.rule = ins, RULES["linear"]
        rows, cols = ins.grid or (0, 0)
        n = len(ins.args[1]) // rows
        self.out = slice(ins.out, ins.out + ins.size)
        # Columns of batches (every position of a sequence) lie side by side: x is n × (columns·batch),
        # in the order the slots hold them (input j's columns, each a batch row), as the outputs are.
        self.shape = (rows, cols) if ins.kind == NUMBER else (rows, cols * ins.kind)
        # b is a column: each bias meets every column (gathered as one, its gradient the sum over them)
        self.b, self.w, self.x = (_Operand(k, a, column) for k, a, column in zip(
            ins.arg_kinds, ins.args, (True, False, False), strict=True))
        self.saved: tuple[Any, ...] = ()
        self.wshape = (rows, n)
        self.xshape = (n, cols) if ins.arg_kinds[2] == NUMBER else (n, cols * ins.arg_kinds[2])
        self.rows = (-1,) if ins.kind == NUMBER else (-1, ins.kind)  # the outputs' block, a row per node
        # the slot-major shapes of the gradients of b, W and x, as the operands hold them
        self.grad_rows = ((-1,), (-1,), (-1,) if ins.arg_kinds[2] == NUMBER else (-1, ins.arg_kinds[2]))

    def forward(self, values: dict[int, Array]) -> None:
        b = self.b.gather(values)
        w = self.w.gather(values).reshape(self.wshape)
        x = self.x.gather(values).reshape(self.xshape)
        out = self.rule.forward(_MATRIX, b, w, x)
        values[self.ins.kind][self.out] = out.reshape(self.rows)
        self.saved = (out, b, w, x)

    def backward(self, values: dict[int, Array], grads: dict[int, Array]) -> None:
        out, b, w, x = self.saved
        grad = grads[self.ins.kind][self.out].reshape(self.shape)
        # linear's rule: 1, then x, then W (as _Factors: their products with grad are matrix products)
        locals_ = self.rule.local(_MATRIX, out, b, _Factor(w, False), _Factor(x, True))
        # The chain rule for every node at once, the line of _Stacked: a first layer's frozen inputs are
        # not needed, and the largest product is skipped.
        for operand, local, rows in zip((self.b, self.w, self.x), locals_, self.grad_rows, strict=True):
            if operand.needed:
                operand.add(grads, ((BatchSum(local) if operand.column else local) * grad).reshape(rows))
