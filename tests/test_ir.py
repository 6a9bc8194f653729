"""chainrule.ir: the program as plain data, and print(prog) reading it (the compiler and replay share it)."""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule
from chainrule import Value, linear, losses
from chainrule.compile import plan
from chainrule.data import make_moons
from chainrule.ir import NUMBER, Instruction, Plan, format_plan
from chainrule.nn import MLP
from chainrule.ops import apply_op

SRC = Path(chainrule.__file__).parent


def _imports(module: str) -> set[str]:
    tree = ast.parse((SRC / f"{module}.py").read_text(encoding="utf-8"))
    return {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


def test_the_compiler_and_replay_share_the_ir_not_each_other() -> None:
    assert "compile" not in _imports("replay") and "ir" in _imports("replay")
    assert "ir" in _imports("compile")
    assert "compile" not in _imports("ir") and "replay" not in _imports("ir")


def test_a_plan_is_plain_data_and_prints_as_its_program() -> None:
    a, b = Value(2.0, "a"), Value(-3.0, "b")
    root = (a * b + a).tanh()
    p = plan(root)
    assert isinstance(p, Plan) and all(isinstance(ins, Instruction) for ins in p.instructions)
    assert p.leaves[NUMBER] == [a, b] and p.nodes == 5
    assert [ins.op for ins in p.instructions] == ["*", "+", "tanh"]
    assert format_plan(p) == str(chainrule.compile(root))
    assert format_plan(p).splitlines()[0] == "program: 5 nodes, 3 instructions each way; inputs: 2 numbers"


def test_every_slot_names_the_value_it_holds() -> None:
    """writers[kind][slot] is the instruction whose output the slot holds, -1 for an input: the names the
    printer shows, recorded by compile as it places each slot (numbers, a batch, a fused layer)."""
    X, y = make_moons(n_samples=20, noise=0.1, random_state=0)
    model = MLP(2, [4, 1], rng=random.Random(0))
    scores = model([Value(X[:, 0]), Value(X[:, 1])])
    extra = Value(0.5, "r").exp() + Value(1.5) * Value(2.0)  # numbers beside the batches
    p = plan(losses.mse(scores, y) + extra)
    assert set(p.writers) == set(p.sizes) == {NUMBER, 20}
    for kind, column in p.writers.items():
        assert len(column) == p.sizes[kind]
        assert list(column[: len(p.leaves[kind])]) == [-1] * len(p.leaves[kind])  # the inputs come first
    expected = {kind: [-1] * len(p.leaves[kind]) for kind in p.sizes}
    for j, ins in enumerate(p.instructions):
        assert len(expected[ins.kind]) == ins.out  # outputs side by side, in instruction order
        expected[ins.kind] += [j] * ins.size
    assert {kind: list(column) for kind, column in p.writers.items()} == expected
    assert any(ins.grid for ins in p.instructions) and any(ins.kind == 20 for ins in p.instructions)
    root = p.writers[p.root[0]][p.root[1]]
    assert f"backward, from ∂%{root} = 1" in format_plan(p)


def test_the_printer_reads_the_names_not_the_slots() -> None:
    """Rename a value in the data and the printout follows: the printer derives nothing from slots."""
    a, b = Value(2.0, "a"), Value(-3.0, "b")
    p = plan((a * b + a).tanh())
    writers = {kind: column[:] for kind, column in p.writers.items()}
    tanh = p.instructions[2]
    writers[tanh.kind][tanh.out] = 7  # as if instruction 7 had written tanh's output
    text = format_plan(p._replace(writers=writers))
    assert "backward, from ∂%7 = 1" in text and "backward, from ∂%2 = 1" in format_plan(p)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5))
def test_every_instruction_prints_once_each_way(width: int, depth: int) -> None:
    xs = [Value(float(i + 1), f"x{i}") for i in range(width)]
    out = xs
    for _ in range(depth):
        out = [(x * y).tanh() for x, y in zip(out, xs, strict=True)]
    root = sum(out[1:], out[0])
    p = plan(root)
    text = format_plan(p)
    forward = [line for line in text.splitlines() if re.match(r"  %\d+ = ", line)]
    backward = [line for line in text.splitlines() if " += ∂%" in line]
    assert len(forward) == len(backward) == len(p.instructions)


def test_print_shows_fused_layers_with_shapes() -> None:
    X, y = make_moons(n_samples=100, noise=0.1, random_state=0)
    model = MLP(2, [16, 16, 1], activation="relu", output_activation="linear", bias_init="zero",
                rng=random.Random(0))
    scores = model([Value(X[:, 0]), Value(X[:, 1])])
    loss = losses.hinge(scores, 2 * y - 1) + losses.l2(model.parameters(), 1e-4)
    text = str(chainrule.compile(loss))
    # Each layer is one product; a relu reads the whole earlier result, in the order it was written.
    layer1 = re.search(r"(%\d+) = linear b\[16\], w\[16×2\] @ \(input, input\)\[2×100\] -> \[16×100\]", text)
    assert layer1, text
    relu1 = re.search(rf"(%\d+) = relu {layer1[1]} -> \[16×100\]", text)
    assert relu1, text
    assert re.search(rf"%\d+ = linear b\[16\], w\[16×16\] @ {relu1[1]} -> \[16×100\]", text), text
    assert re.search(r"%\d+ = linear 0.0, inputs\[1×337\] @ inputs\[337\] -> number", text)  # l2: Σ p·p



def test_operands_that_print_alike_print_once_with_their_count() -> None:
    """A max over three rows of one earlier result prints that operand once, ×3, each way; a linear's b,
    w's and x's are counted apart, so the bias never joins a run of weights."""
    xs = [Value(np.array([0.1 * i, -0.2 * i]), f"x{i}") for i in range(3)]
    t = [x.tanh() for x in xs]  # one instruction, three rows
    root = (apply_op("max", *t) + apply_op("max", *reversed(t))).sum()
    text = format_plan(plan(root))
    assert re.search(r"%\d+ = max %(\d+)\[…\]\[2×2\] \(×3\) -> \[2×2\]", text), text
    assert re.search(r"\n  ∂%\d+\[…\]\[2×2\] \(×3\) \+= ∂%\d+ ·", text), text
    w, e = [x.tanh() for x in xs], [x.exp() for x in xs]
    rows = [linear(w, e, w[0]), linear(w[::-1], e[::-1], w[2])]  # b read from w's instruction too
    text = format_plan(plan((rows[0] * rows[1]).sum()))
    row = r"(%\d+)\[…\]\[2×2\]"
    found = re.search(rf"= linear {row}, {row} \(×3\), {row} \(×3\) -> ", text)
    assert found and found[1] == found[2] != found[3], text
    a = Value(3.0, "a")
    assert "= * a, a -> number" in format_plan(plan(a * a))  # two operands: no count
