"""chainrule.ir: the program as plain data, and print(prog) reading it (the compiler and replay share it)."""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule
from chainrule import Value, losses
from chainrule.compile import plan
from chainrule.data import make_moons
from chainrule.ir import NUMBER, Instruction, Plan, format_plan
from chainrule.nn import MLP

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


