"""The expression language of `chainrule graph`: parsed by hand, never eval'd, errors on one line."""

from __future__ import annotations

import builtins
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule import Value, expr, topological_order
from chainrule.expr import (
    BinOp,
    Call,
    EvalError,
    ExprError,
    Name,
    Neg,
    Node,
    Num,
    build,
    gradients,
    names,
    parse,
    parse_assignments,
)


@contextmanager
def no_code_execution() -> Iterator[None]:
    """Within this block, Python's code-running builtins explode if anything calls them."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"code execution attempted: {args!r}")

    saved = {name: getattr(builtins, name) for name in ("eval", "exec", "compile")}
    for name in saved:
        setattr(builtins, name, forbidden)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(builtins, name, fn)


def parse_and_build(text: str) -> Value:
    with no_code_execution():
        tree = parse(text)
        root, _ = build(tree, {n: 0.7 for n in names(tree)})
    return root


def test_the_module_has_no_way_to_run_code() -> None:
    source = Path(expr.__file__).read_text(encoding="utf-8")
    for word in ("eval(", "exec(", "import ast", "__import__", "getattr(", "importlib"):
        assert word not in source
    assert len(re.findall(r"\bcompile\(", source)) == len(re.findall(r"\bre\.compile\(", source))


def evaluate(text: str, **env: float) -> Value:
    root, _ = build(parse(text), env)
    return root


# ----- what it accepts -----------------------------------------------------------------------------

def test_the_seeds_neuron() -> None:
    root, leaves = build(parse("tanh(x1*w1 + x2*w2 + b)"),
                         {"x1": 2, "x2": 0, "w1": -3, "w2": 1, "b": 6.8813735870195432})
    root.backward()
    assert root.data == pytest.approx(math.sqrt(0.5))
    assert leaves["x1"].grad == pytest.approx(-1.5)
    assert leaves["w1"].grad == pytest.approx(1.0)
    assert leaves["b"].label == "b"
    assert root.label == "tanh(x1*w1 + x2*w2 + b)"


@pytest.mark.parametrize(("text", "expected"), [
    ("1 + 2 * 3", 7.0),
    ("(1 + 2) * 3", 9.0),
    ("-2**2", -4.0),  # as in Python: ** binds tighter than unary minus
    ("2**-1", 0.5),
    ("2**3**2", 512.0),  # right-associative
    ("8 / 4 / 2", 1.0),  # left-associative
    ("7 - 2 - 1", 4.0),
    ("--3", 3.0),
    ("1.5e1 + .5", 15.5),
    ("relu(-3) + relu(2)", 2.0),
    ("exp(log(5))", 5.0),
    ("sigmoid(0)", 0.5),
])
def test_arithmetic_matches_python(text: str, expected: float) -> None:
    assert evaluate(text).data == pytest.approx(expected)


def test_a_name_used_twice_is_one_leaf() -> None:
    root, leaves = build(parse("a*a + a"), {"a": 3.0})
    root.backward()
    assert list(leaves) == ["a"]
    assert leaves["a"].grad == pytest.approx(7.0)


def test_an_infinite_slope_is_kept_only_the_value_must_be_finite() -> None:
    root, leaves = build(parse("x**0.5"), {"x": 0.0})
    root.backward()
    assert root.data == 0.0 and leaves["x"].grad == math.inf


@pytest.mark.parametrize(("text", "labels"), [
    ("tanh(x1*w1 + x2*w2 + b)", ["x1*w1", "x2*w2", "x1*w1 + x2*w2", "x1*w1 + x2*w2 + b",
                                 "tanh(x1*w1 + x2*w2 + b)"]),
    ("(a+b) * -(c)", ["a+b", "-(c)", "(a+b) * -(c)"]),  # as typed: spaces kept, no parentheses added
    ("((a))**2", ["((a))**2"]),
    ("2*x", ["2*x"]),
])
def test_values_are_labelled_with_their_source_text(text: str, labels: list[str]) -> None:
    root, _ = build(parse(text), {n: 1.5 for n in names(parse(text))})
    assert sorted(v.label for v in topological_order(root) if v.parents) == sorted(labels)


def test_a_long_subexpression_stays_unlabelled() -> None:
    text = " + ".join(f"x{i}" for i in range(20))
    root, _ = build(parse(text), {f"x{i}": 1.0 for i in range(20)})
    assert root.label == ""
    assert root.parents[0].parents[0].parents[0].label == ""


def test_gradients_builds_at_the_assignments_and_backpropagates() -> None:
    root, leaves = gradients("tanh(x1*w1 + x2*w2 + b)", "x1=2, x2=0, w1=-3, w2=1, b=6.8813735870195432")
    assert root.data == pytest.approx(math.sqrt(0.5))
    assert list(leaves) == ["x1", "w1", "x2", "w2", "b"]  # in order of appearance, as the CLI prints them
    assert [leaves[n].grad for n in leaves] == pytest.approx([-1.5, 1.0, 0.5, 0.0, 0.5])


def test_gradients_of_an_expression_without_names_needs_no_assignments() -> None:
    root, leaves = gradients("2*3 - 1", "  ")
    assert root.data == 5.0 and leaves == {}


@pytest.mark.parametrize(("text", "at", "words"), [
    ("x*y", "x=1", "expression error at column 3: no value for y"),
    ("x", "x=one", "--at error at column 3: value of x is not a number"),
    ("x", "", "no value for x"),
    ("log(x)", "x=-1", "expression error at column 1: log of non-positive input: Value(data=-1.0"),
    ("x +", "x=1", "expression error at column 4"),
])
def test_gradients_refuses_bad_input_with_one_line_naming_the_column(text: str, at: str, words: str) -> None:
    with pytest.raises(ExprError, match=re.escape(words)) as caught:
        gradients(text, at)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("text", "at", "column", "engine"), [
    ("1/x", "x=0", 2, lambda: Value(1.0, "1") / Value(0.0, "x")),
    ("exp(x)", "x=1000", 1, lambda: Value(1000.0, "x").exp()),
    ("log(x)*0", "x=0", 1, lambda: Value(0.0, "x").log()),
    ("x**y", "x=10,y=400", 2, lambda: Value(10.0, "x") ** Value(400.0, "y")),
    ("(0-8)**(1/3)", "", 6, lambda: Value(-8.0, "0-8") ** Value(1 / 3, "1/3")),
])
def test_arithmetic_the_engine_refuses_keeps_the_engines_words(text: str, at: str, column: int,
                                                                engine: Callable[[], Value]) -> None:
    with pytest.raises((ArithmeticError, ValueError)) as theirs:
        engine()
    with pytest.raises(EvalError) as ours:
        gradients(text, at)
    assert str(ours.value) == f"expression error at column {column}: {theirs.value}"
    assert ours.value.column == column and "\n" not in str(ours.value)


def test_a_value_too_large_for_a_float_names_the_op_and_its_operands() -> None:
    # The engine computes 1e200 * 1e200 = inf without complaint; the expression refuses an infinite value.
    with pytest.raises(EvalError) as caught:
        gradients("x*y", "x=1e200,y=1e200")
    assert str(caught.value) == ("expression error at column 2: * overflow (the result is inf): "
                                 "Value(data=1e+200, label='x') * Value(data=1e+200, label='y')")


def test_syntax_errors_are_not_evaluation_errors() -> None:
    for text, at in (("x +", "x=1"), ("x*y", "x=1"), ("x", "x=one")):
        with pytest.raises(ExprError) as caught:
            gradients(text, at)
        assert not isinstance(caught.value, EvalError), text


def test_names_in_order_of_appearance() -> None:
    assert names(parse("b + a*b + c")) == ["b", "a", "c"]


def test_assignments() -> None:
    assert parse_assignments("x1=2, w1 = -3.5,b=6.8813735870195432") == {
        "x1": 2.0, "w1": -3.5, "b": 6.8813735870195432}


# ----- what it rejects, and how --------------------------------------------------------------------

@pytest.mark.parametrize(("text", "column", "words"), [
    ("x.real", 2, "attribute"),
    ("x[0]", 2, "subscript"),
    ("lambda: 1", 7, "lambda"),
    ("__import__('os')", 12, "string"),
    ("foo(x)", 1, "unknown function 'foo'"),
    ("tanh", 1, "is a function"),
    ("tanh(x, y)", 7, "one argument"),
    ("x y", 3, "unexpected 'y'"),
    ("2x", 1, "malformed number"),
    ("(x + 1", 7, "expected ')'"),
    ("x +", 4, "end of input"),
    ("", 1, "end of input"),
    ("x ^ 2", 3, "use **"),
    ("x = 1", 3, "assignment"),
    ("1e999", 1, "too large"),
    ("x\n+ 1", 2, "unexpected"),
    ("10**400", 3, "** failed (result too large)"),
    ("exp(1000)", 1, "exp overflow"),
    ("1/0", 2, "division by zero"),
    ("log(0 - 1)", 1, "log of non-positive"),
    ("(0-8)**(1/3)", 6, "** failed (math domain error)"),
    ("(" * 150 + "1" + ")" * 150, 101, "nested deeper"),
])
def test_rejections_are_one_line_with_a_column(text: str, column: int, words: str) -> None:
    with pytest.raises(ExprError) as caught:
        tree = parse(text)
        build(tree, {n: 1.0 for n in names(tree)})
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.column == column, message
    assert f"column {column}" in message
    assert words in message


@pytest.mark.parametrize(("text", "at", "words"), [
    ("a * b", {"a": 1.0}, "no value for b"),
    ("a", {"a": 1.0, "z": 2.0}, "z not used"),
])
def test_missing_and_extra_names(text: str, at: dict[str, float], words: str) -> None:
    with pytest.raises(ExprError, match=words):
        build(parse(text), at)


@pytest.mark.parametrize(("text", "column", "words"), [
    ("x=1,y", 5, "expected name=value"),
    ("x=abc", 3, "not a number"),
    ("x=nan", 3, "not a number"),
    ("x=inf", 3, "not a number"),
    ("x=1e999", 3, "too large"),
    ("x=1,x=2", 5, "given twice"),
    ("1x=3", 1, "not a valid name"),
    ("x=__import__('os')", 3, "not a number"),
])
def test_assignment_errors(text: str, column: int, words: str) -> None:
    with pytest.raises(ExprError) as caught:
        parse_assignments(text)
    assert caught.value.column == column
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("--at error")


def test_long_chains_do_not_recurse() -> None:
    root = evaluate("+".join(["1"] * 3000))
    assert root.data == 3000.0
    with pytest.raises(ExprError, match="longer than"):
        parse("1+" * 6000 + "1")


# ----- fuzzing -----------------------------------------------------------------------------------

ALPHABET = "0123456789.eE+-*/()_ ,xyzabtanhexplogrelusigmoid[]'\"=:^!@#$%&{};<>?\\`~\t\n"
SPICY = st.sampled_from([
    "__import__", "os", "system", "lambda", "getattr", "().__class__", "x.y", "[0]", "**", "1e",
    "tanh(", "exp(", ")", "(", "9**9**9", "1/0", "log(", "--", "\x00", "é", "٣", "𝟙",
])
FUZZ_TEXT = st.one_of(
    st.text(alphabet=ALPHABET, max_size=40),
    st.text(max_size=30),
    st.lists(st.one_of(SPICY, st.text(alphabet=ALPHABET, max_size=4)), max_size=12).map("".join),
)


def check_no_escape(text: str) -> None:
    try:
        root = parse_and_build(text)
    except ExprError as err:
        assert "\n" not in str(err)
        assert 1 <= err.column <= max(len(text), expr.MAX_LENGTH) + 1
        return
    assert math.isfinite(root.data)


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FUZZ_TEXT)
def test_fuzz_random_strings_never_escape(text: str) -> None:
    check_no_escape(text)


@settings(max_examples=2_000, deadline=None)
@given(st.text(alphabet="x+-*/()2.", max_size=60))
def test_fuzz_arithmetic_soup(text: str) -> None:
    check_no_escape(text)


FUNCS = sorted(expr.FUNCTIONS)


def trees(max_leaves: int = 12) -> st.SearchStrategy[Node]:
    leaf = st.one_of(
        st.sampled_from(["x", "y", "w1", "b"]).map(lambda n: Name(n, 0)),
        st.sampled_from(["0", "1", "2", "0.5", "3.25", "1e-3", "10"]).map(
            lambda t: Num(float(t), t, 0)),
    )

    def extend(inner: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
        return st.one_of(
            st.builds(lambda a, op, b: BinOp(op, a, b, 0), inner,
                      st.sampled_from(["+", "-", "*", "/", "**"]), inner),
            st.builds(lambda a: Neg(a, 0), inner),
            st.builds(lambda f, a: Call(f, a, 0), st.sampled_from(FUNCS), inner),
        )

    return st.recursive(leaf, extend, max_leaves=max_leaves)


def same_shape(a: Node, b: Node) -> bool:
    """Trees equal up to source positions."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Num):
        return a.value == b.value  # type: ignore[union-attr]
    if isinstance(a, Name):
        return a.name == b.name  # type: ignore[union-attr]
    if isinstance(a, Neg):
        return same_shape(a.operand, b.operand)  # type: ignore[union-attr]
    if isinstance(a, Call):
        return a.func == b.func and same_shape(a.arg, b.arg)  # type: ignore[union-attr]
    assert isinstance(a, BinOp) and isinstance(b, BinOp)
    return a.op == b.op and same_shape(a.left, b.left) and same_shape(a.right, b.right)


REFERENCE: dict[str, Callable[[float], float]] = {
    "tanh": math.tanh, "exp": math.exp, "log": math.log,
    "relu": lambda v: max(v, 0.0), "sigmoid": lambda v: 1 / (1 + math.exp(-v)),
}


def reference(tree: Node, env: dict[str, float]) -> float:
    """A plain-float evaluator written independently of the engine (recursion is fine: small trees)."""
    if isinstance(tree, Num):
        return tree.value
    if isinstance(tree, Name):
        return env[tree.name]
    if isinstance(tree, Neg):
        return -reference(tree.operand, env)
    if isinstance(tree, Call):
        return REFERENCE[tree.func](reference(tree.arg, env))
    a, b = reference(tree.left, env), reference(tree.right, env)
    result: float = {"+": a + b, "-": a - b, "*": a * b}.get(tree.op) if tree.op in "+-*" else (
        a / b if tree.op == "/" else a**b)  # type: ignore[assignment]
    return result


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "**": 4}


def _prec(tree: Node) -> int:
    return _PRECEDENCE[tree.op] if isinstance(tree, BinOp) else 3 if isinstance(tree, Neg) else 5


def unparse(tree: Node) -> str:
    """Text for a generated tree, with only the parentheses it needs (small trees: recursion is fine)."""
    if isinstance(tree, Num):
        return tree.text
    if isinstance(tree, Name):
        return tree.name
    if isinstance(tree, Call):
        return f"{tree.func}({unparse(tree.arg)})"
    if isinstance(tree, Neg):
        inner = unparse(tree.operand)
        return f"-{inner}" if _prec(tree.operand) >= 3 else f"-({inner})"
    me, left, right = _PRECEDENCE[tree.op], unparse(tree.left), unparse(tree.right)
    # ** is right-associative, the others left-associative: parenthesise the other side on ties.
    if _prec(tree.left) < me or (tree.op == "**" and _prec(tree.left) == me):
        left = f"({left})"
    if _prec(tree.right) < me or (tree.op != "**" and _prec(tree.right) == me):
        right = f"({right})"
    return f"{left} {tree.op} {right}" if tree.op in "+-" else f"{left}{tree.op}{right}"


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees())
def test_fuzz_random_trees_round_trip_and_evaluate(tree: Node) -> None:
    text = unparse(tree)
    parsed = parse(text)  # every printed tree parses back ...
    assert same_shape(parsed, tree), text  # ... to the same tree
    env = {n: 0.7 for n in names(tree)}
    try:
        root = parse_and_build(text)
    except ExprError as err:
        assert "\n" not in str(err)
        return
    try:
        want = reference(tree, env)
    except (ArithmeticError, ValueError):
        return  # the engine computed something Python's floats refuse (e.g. its own exp overflow rules)
    if isinstance(want, complex) or not math.isfinite(want):
        return
    assert root.data == pytest.approx(want, rel=1e-9, abs=1e-12), text
