"""Batched mode (chainrule.batch): a Value holding a 1-D NumPy batch runs the scalar code over every example
at once. Checked against the eager float path (models, losses, every op), PyTorch and finite differences;
then domain errors per element, NaN/inf, shapes and dtypes, reductions, repeated backward and memory."""

from __future__ import annotations

import gc
import math
import random
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import live_nodes
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chainrule import RULES, Value, losses, no_grad, topological_order
from chainrule.nn import ACTIVATIONS, MLP

TOL = {"rtol": 1e-12, "atol": 1e-12}


def close(actual: Any, expected: Any, **tol: float) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               **(tol or TOL))


def batch(xs: Any, label: str = "") -> Value:
    return Value(np.array(xs, dtype=np.float64), label)  # type: ignore[arg-type]


def grad_of(v: Value, n: int) -> np.ndarray:
    """A batch leaf's grad as an array (a leaf backward never reached would still hold the float 0.0)."""
    return np.broadcast_to(np.asarray(v.grad, dtype=np.float64), (n,))


# --- a model over a batch gives what a loop over its examples gives ----------------------------------

# (nin, layer sizes): a single neuron, 1-neuron intermediate layers, a wide net and several outputs.
ARCHS = [(1, [1]), (2, [4, 1]), (2, [4, 1, 1]), (1, [1, 4, 1]), (2, [16, 16, 1]), (3, [5, 3])]
LOSSES = ["mean-square", "sum-hinge", "bce"]


def _combine(out: Value | list[Value]) -> Value:
    # Several outputs become one number per example: o0 + 2*o1 + 3*o2 ...
    if isinstance(out, Value):
        return out
    total = out[0]
    for k, o in enumerate(out[1:], start=2):
        total = total + k * o
    return total


def _loss_batched(kind: str, out: Value, y: np.ndarray) -> Value:
    if kind == "mean-square":
        return ((out - Value(y)) ** 2).mean()  # type: ignore[arg-type]
    if kind == "sum-hinge":
        return (1 - Value(y) * out).relu().sum()  # type: ignore[arg-type]
    return losses.binary_cross_entropy(out, (y + 1) / 2)


def _loss_eager(kind: str, outs: list[Value], y: np.ndarray) -> Value:
    if kind == "bce":
        return losses.binary_cross_entropy(outs, (y + 1) / 2)
    terms = [(o - yi) ** 2 if kind == "mean-square" else (1 - yi * o).relu()
             for o, yi in zip(outs, y.tolist(), strict=True)]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total * (1.0 / len(terms)) if kind == "mean-square" else total


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    arch=st.sampled_from(ARCHS),
    activation=st.sampled_from(ACTIVATIONS),
    output_activation=st.sampled_from(ACTIVATIONS),
    n=st.sampled_from([1, 2, 3, 8, 33]),
    loss=st.sampled_from(LOSSES),
)
@example(seed=0, arch=(2, [4, 1, 1]), activation="relu", output_activation="linear", n=1, loss="sum-hinge")
@example(seed=1, arch=(2, [16, 16, 1]), activation="tanh", output_activation="tanh", n=33, loss="mean-square")
@example(seed=2, arch=(3, [5, 3]), activation="sigmoid", output_activation="linear", n=8, loss="bce")
def test_batched_model_equals_a_loop_over_examples(
    seed: int, arch: tuple[int, list[int]], activation: str, output_activation: str, n: int, loss: str
) -> None:
    nin, nouts = arch
    model = MLP(nin, nouts, activation, output_activation, rng=random.Random(seed))  # type: ignore[arg-type]
    data = np.random.default_rng(seed)
    X = data.normal(0.0, 1.5, size=(n, nin))
    y = data.choice([-1.0, 1.0], size=n)

    # Eager: one graph per example, float Values throughout.
    rows = [[Value(float(x)) for x in row] for row in X]
    outs = [_combine(model(row)) for row in rows]
    eager = _loss_eager(loss, outs, y)
    eager.backward()
    eager_grads = [p.grad for p in model.parameters()]
    model.zero_grad()

    # Batched: one graph, one batch Value per input column.
    columns = [batch(X[:, j]) for j in range(nin)]
    out = _combine(model(columns))
    assert isinstance(out.data, np.ndarray) and out.data.shape == (n,)
    batched = _loss_batched(loss, out, y)
    assert type(batched.data) is float
    batched.backward()

    close(out.data, [o.data for o in outs])
    close(batched.data, eager.data)
    for p in model.parameters():
        assert type(p.data) is float and type(p.grad) is float  # parameters stay plain numbers
    close([p.grad for p in model.parameters()], eager_grads)
    for j, col in enumerate(columns):  # an input batch's grad is per example
        close(grad_of(col, n), [row[j].grad for row in rows])


def test_batched_graph_size_does_not_depend_on_the_batch_size() -> None:
    model = MLP(2, [4, 4, 1], rng=random.Random(0))
    sizes = []
    for n in [1, 7, 500]:
        X = np.random.default_rng(n).normal(size=(n, 2))
        loss = (model([batch(X[:, 0]), batch(X[:, 1])]) ** 2).mean()
        nodes = topological_order(loss)
        assert all(node.op == "" or node.op in RULES for node in nodes)  # only the engine's rules
        sizes.append(len(nodes))
    assert sizes[0] == sizes[1] == sizes[2]


# --- every op: batched values and grads equal the per-element float path, PyTorch and finite differences ---

# Each input is an array (one per example), a float Value (shared by the batch) or a plain number.
ARRAY, FLOAT, NUMBER = "array", "float", "number"
A = [0.3, 1.7, 2.5, 0.9, 1.2]  # positive: fine as a base of ** and for log
B = [1.2, -0.4, 0.6, 2.2, -1.3]  # nonzero: fine as a divisor
A0, B0 = 1.3, -0.7
W = [0.5, -1.0, 2.0, 0.25, 1.5]  # upstream gradient, different per example so misplaced grads show

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "truediv": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
}
SIDES = [(ARRAY, ARRAY), (ARRAY, FLOAT), (FLOAT, ARRAY), (ARRAY, NUMBER), (NUMBER, ARRAY)]

# name: (function, sample points, away from kinks and poles)
UNARY: dict[str, tuple[Callable[[Any], Any], list[float]]] = {
    "neg": (lambda a: -a, [-1.5, 0.3, 2.0, -0.1, 4.0]),
    "exp": (lambda a: a.exp(), [-3.0, 0.0, 2.5, 0.7, -0.2]),
    "log": (lambda a: a.log(), [0.1, 1.0, 7.5, 0.5, 2.0]),
    "tanh": (lambda a: a.tanh(), [-2.0, 0.0, 0.88, 3.0, -0.4]),
    "sigmoid": (lambda a: a.sigmoid(), [-4.0, 0.0, 3.0, -40.0, 40.0]),
    "relu": (lambda a: a.relu(), [-2.0, 0.5, 3.0, -0.1, 1e-3]),
    "square": (lambda a: a**2, [-3.0, 0.5, 4.0, -0.2, 1.0]),  # negative bases, integer power
    "sqrt": (lambda a: a**0.5, [0.25, 9.0, 2.0, 0.5, 1.0]),
    "rpow": (lambda a: 2.0**a, [-1.0, 0.0, 3.5, 0.2, 1.0]),
    "rtruediv": (lambda a: 3.0 / a, [-1.0, 2.0, 0.5, -4.0, 1.0]),
}


def _inputs(kinds: tuple[str, ...], arrays: tuple[list[float], ...], scalars: tuple[float, ...]) -> list[Any]:
    return [batch(x) if k == ARRAY else Value(s) if k == FLOAT else s
            for k, x, s in zip(kinds, arrays, scalars, strict=True)]


def _batched(f: Callable[..., Any], kinds: tuple[str, ...], arrays: tuple[list[float], ...],
             scalars: tuple[float, ...]) -> tuple[np.ndarray, list[Any]]:
    xs = _inputs(kinds, arrays, scalars)
    out = f(*xs)
    (out * batch(W)).sum().backward()
    return out.data, [x.grad if isinstance(x, Value) else None for x in xs]


def _per_element(f: Callable[..., Any], kinds: tuple[str, ...], arrays: tuple[list[float], ...],
                 scalars: tuple[float, ...]) -> tuple[list[float], list[Any]]:
    """The float path, one example at a time. A shared float Value accumulates over the examples'
    backward passes, just as batched mode sums its grad over the batch."""
    shared = [Value(s) if k == FLOAT else s for k, s in zip(kinds, scalars, strict=True)]
    per = [[Value(x) for x in xs] if k == ARRAY else None for k, xs in zip(kinds, arrays, strict=True)]
    outs = []
    for i, w in enumerate(W):
        xs = [p[i] if p is not None else s for p, s in zip(per, shared, strict=True)]
        out = f(*xs)
        (out * w).backward()
        outs.append(out.data)
    grads = [[v.grad for v in p] if p is not None else s.grad if isinstance(s, Value) else None
             for p, s in zip(per, shared, strict=True)]
    return outs, grads


def _cases() -> list[tuple[str, Callable[..., Any], tuple[str, ...], tuple[list[float], ...],
                           tuple[float, ...]]]:
    cases = [(f"{name}-{ka}-{kb}", f, (ka, kb), (A, B), (A0, B0))
             for name, f in BINARY.items() for ka, kb in SIDES]
    cases += [(f"{name}-array", f, (ARRAY,), (xs,), (0.0,)) for name, (f, xs) in UNARY.items()]
    return cases


CASES = {name: rest for name, *rest in _cases()}


@pytest.mark.parametrize("name", CASES)
def test_op_matches_the_float_path_element_by_element(name: str) -> None:
    f, kinds, arrays, scalars = CASES[name]
    data, grads = _batched(f, kinds, arrays, scalars)
    ref_data, ref_grads = _per_element(f, kinds, arrays, scalars)
    assert isinstance(data, np.ndarray) and data.dtype == np.float64 and data.shape == (len(W),)
    close(data, ref_data)
    for kind, g, ref in zip(kinds, grads, ref_grads, strict=True):
        if kind == FLOAT:
            assert type(g) is float  # a number shared by the batch: its grad is summed
        if kind != NUMBER:
            close(g, ref)


def test_integer_power_of_a_negative_base_matches_the_float_path() -> None:
    # d(a**b)/db takes log(a) = 0 by convention where a <= 0 (the float path's rule, reused).
    f = BINARY["pow"]
    for kinds in [(ARRAY, FLOAT), (FLOAT, ARRAY), (ARRAY, ARRAY)]:
        arrays = ([-1.5, 2.0, -0.3, 0.5, -2.0], [2.0, 3.0, -1.0, 2.0, 4.0])
        data, grads = _batched(f, kinds, arrays, (-1.5, 3.0))
        ref_data, ref_grads = _per_element(f, kinds, arrays, (-1.5, 3.0))
        close(data, ref_data)
        for g, ref in zip(grads, ref_grads, strict=True):
            close(g, ref)


def _torch_inputs(torch: Any, kinds: tuple[str, ...], arrays: tuple[list[float], ...],
                  scalars: tuple[float, ...]) -> list[Any]:
    return [torch.tensor(x if k == ARRAY else s, dtype=torch.float64, requires_grad=True)
            if k != NUMBER else s for k, x, s in zip(kinds, arrays, scalars, strict=True)]


@pytest.mark.parametrize("name", CASES)
def test_op_matches_torch(name: str, torch: Any) -> None:
    f, kinds, arrays, scalars = CASES[name]
    data, grads = _batched(f, kinds, arrays, scalars)
    ts = _torch_inputs(torch, kinds, arrays, scalars)
    tout = f(*ts)
    (tout * torch.tensor(W, dtype=torch.float64)).sum().backward()
    close(data, tout.detach().numpy())
    for kind, g, t in zip(kinds, grads, ts, strict=True):
        if kind != NUMBER:
            close(g, t.grad.numpy())  # torch, too, sums a broadcast scalar's grad


def _fd_grad(f: Callable[..., Any], kinds: tuple[str, ...], arrays: tuple[list[float], ...],
             scalars: tuple[float, ...], which: int, h: float = 1e-6) -> Any:
    """Central differences of sum(W * f(...)) in input `which` (each element of an array in turn)."""

    def loss(arrs: tuple[list[float], ...], scal: tuple[float, ...]) -> float:
        with no_grad():
            return float(np.dot(W, np.broadcast_to(f(*_inputs(kinds, arrs, scal)).data, (len(W),))))

    def nudged(d: float, i: int | None) -> float:
        arrs = tuple(list(x) for x in arrays)
        scal = list(scalars)
        if i is None:
            scal[which] += d
        else:
            arrs[which][i] += d
        return loss(arrs, tuple(scal))

    if kinds[which] == FLOAT:
        return (nudged(h, None) - nudged(-h, None)) / (2 * h)
    return [(nudged(h, i) - nudged(-h, i)) / (2 * h) for i in range(len(W))]


@pytest.mark.parametrize("name", [n for n in CASES if "number" not in n])
def test_op_grads_against_finite_differences(name: str) -> None:
    f, kinds, arrays, scalars = CASES[name]
    _, grads = _batched(f, kinds, arrays, scalars)
    for which, g in enumerate(grads):
        close(g, _fd_grad(f, kinds, arrays, scalars, which), rtol=1e-6, atol=1e-7)


def test_raw_ndarray_operands_are_not_ops() -> None:
    # Constants that vary per example must be wrapped in a Value; a bare array is a TypeError, never an
    # object array of Values.
    v = batch([1.0, 2.0])
    for op in (lambda: v * np.array([1.0, 2.0]), lambda: np.array([1.0, 2.0]) * v,
               lambda: v + np.array([1.0, 2.0]), lambda: np.array([1.0, 2.0]) - v):
        with pytest.raises(TypeError):
            op()
    assert type((np.float64(2.0) * v).data) is np.ndarray  # a NumPy scalar is just a number


# --- errors: a bad element fails as the float path fails, naming the op; NaN and inf pass through ------

# name: (op, batch with one bad element at index 1, phrase the message must contain)
DOMAIN_ERRORS: dict[str, tuple[Callable[[Any], Any], list[float], str]] = {
    "log-zero": (lambda x: x.log(), [1.0, 0.0, 2.0], "log of non-positive input"),
    "log-negative": (lambda x: x.log(), [1.0, -3.0, 2.0], "log of non-positive input"),
    "divide-by-array": (lambda x: Value(2.0) / x, [1.0, 0.0, 2.0], "division by zero"),
    "array-by-array": (lambda x: batch([4.0, 5.0, 6.0]) / x, [1.0, 0.0, 2.0], "division by zero"),
    "number-by-array": (lambda x: 1.0 / x, [1.0, 0.0, 2.0], "division by zero"),
    "exp-overflow": (lambda x: x.exp(), [1.0, 1000.0, 2.0], "exp overflow"),
    "negative-base-fractional-power": (lambda x: x**0.5, [1.0, -4.0, 2.0], "**"),
    "negative-float-base-fractional-array-power": (lambda x: Value(-8.0) ** x, [2.0, 1 / 3, 1.0], "**"),
    "zero-to-negative-power": (lambda x: x**-1.0, [1.0, 0.0, 2.0], "**"),
    "pow-overflow": (lambda x: x**400.0, [1.0, 10.0, 2.0], "**"),
}


@pytest.mark.parametrize("name", DOMAIN_ERRORS)
def test_a_bad_element_raises_the_float_paths_error_naming_op_and_value(name: str) -> None:
    f, xs, phrase = DOMAIN_ERRORS[name]
    with pytest.raises(Exception) as float_error:  # what the float path raises on the bad element
        f(Value(xs[1]))
    assert isinstance(float_error.value, ArithmeticError | ValueError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy RuntimeWarning (or NaN) on the way to the error
        with pytest.raises(type(float_error.value)) as batch_error:
            f(batch(xs, label="x"))
    message = str(batch_error.value)
    assert phrase in message
    assert "Value(data=" in message and "label='x'" in message


def test_an_error_in_one_element_does_not_depend_on_where_it_is() -> None:
    for i in range(4):
        xs = [1.0, 2.0, 3.0, 4.0]
        xs[i] = -1.0
        with pytest.raises(ValueError, match="log of non-positive input"):
            batch(xs).log()


def test_nan_and_inf_inputs_propagate_like_floats() -> None:
    xs = [math.nan, math.inf, -math.inf, 0.5]
    ops: list[Callable[[Any], Any]] = [
        lambda a: a.exp(), lambda a: a.tanh(), lambda a: a.sigmoid(), lambda a: a.relu(),
        lambda a: a + 1.0, lambda a: a * 2.0, lambda a: a / 2.0, lambda a: 2.0 / a, lambda a: a**2,
        lambda a: 2.0**a, lambda a: -a, lambda a: Value(3.0) - a,
    ]
    for f in ops:
        with np.errstate(invalid="ignore"):  # inf * 0 in a grad: NaN, as the float path gives silently
            v = batch(xs)
            out = f(v)
            out.sum().backward()
        ref = [f(Value(x)) for x in xs]
        np.testing.assert_array_equal(out.data, [r.data for r in ref])
    logs = batch([math.nan, math.inf, 1.0]).log()  # NaN is not "non-positive": it passes through
    np.testing.assert_array_equal(logs.data, [Value(x).log().data for x in [math.nan, math.inf, 1.0]])


def test_pow_of_nan_or_infinite_inputs_propagates_like_floats() -> None:
    # The float path gives (-2) ** nan = nan and (-inf) ** 0.5 = inf: an input already NaN or infinite
    # is not a domain error, so batched mode must not call it "negative base, fractional power".
    for base, exponent in [(-2.0, math.nan), (-math.inf, 0.5), (-math.inf, -1.5)]:
        expected = (Value(base) ** exponent).data
        got = (batch([base, 4.0]) ** exponent).data
        np.testing.assert_array_equal(got, [expected, 4.0**exponent])


# --- shapes and dtypes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lengths", [(3, 2), (2, 3), (3, 1), (1, 3)])
@pytest.mark.parametrize("op", ["+", "*", "/", "**"])
def test_batches_of_different_lengths_fail_clearly(lengths: tuple[int, int], op: str) -> None:
    # A length-1 batch is a batch of one example, not a number to broadcast: mixing it with a batch of 3
    # is a mistake, as mixing 3 with 2 is, and the error should say so in the engine's words.
    a, b = batch(np.arange(1.0, lengths[0] + 1)), batch(np.arange(1.0, lengths[1] + 1))
    f = {"+": BINARY["add"], "*": BINARY["mul"], "/": BINARY["truediv"], "**": BINARY["pow"]}[op]
    with pytest.raises(ValueError) as err:
        f(a, b)
    message = str(err.value)
    assert op in message and re.search(r"batch", message, re.IGNORECASE), message
    assert str(lengths[0]) in message and str(lengths[1]) in message, message


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (np.zeros((2, 2)), "1-D"),
        (np.zeros((3, 1)), "1-D"),
        (np.array(1.5), "1-D"),
        (np.array(["a", "b"]), "real"),
        (np.array([1.0, None], dtype=object), "real"),
        (np.array([1 + 2j, 3.0]), "real"),
    ],
)
def test_a_batch_must_be_a_1d_real_array(bad: np.ndarray, words: str) -> None:
    with pytest.raises(TypeError, match=words):
        Value(bad)  # type: ignore[arg-type]


def test_a_batch_is_copied_as_float64() -> None:
    source = np.array([1, 2, 3], dtype=np.int32)
    v = Value(source)  # type: ignore[arg-type]
    source[0] = 99
    assert v.data.dtype == np.float64 and list(v.data) == [1.0, 2.0, 3.0]
    assert list(Value(np.array([True, False])).data) == [1.0, 0.0]  # type: ignore[arg-type]
    f32 = np.array([0.1], dtype=np.float32)
    assert Value(f32).data[0] == float(f32[0])  # type: ignore[arg-type]


# --- reductions and backward ---------------------------------------------------------------------------


def test_backward_on_a_batch_asks_for_a_reduction() -> None:
    v = batch([1.0, 2.0])
    for root in (v, v * 2.0, (v * 2.0).tanh()):
        with pytest.raises(ValueError, match=r"\.sum\(\).*\.mean\(\)|\.mean\(\).*\.sum\(\)"):
            root.backward()


def test_sum_and_mean_of_a_batch() -> None:
    xs = [1.0, 2.0, 3.0, 6.5]
    v = batch(xs)
    s, m = v.sum(), v.mean()
    assert type(s.data) is float and type(m.data) is float
    assert s.data == sum(xs) and m.data == pytest.approx(sum(xs) / len(xs), rel=1e-15)
    m.backward()
    close(v.grad, [1 / len(xs)] * len(xs))  # mean divides by the batch's length
    s.backward()
    close(v.grad, [1 / len(xs) + 1.0] * len(xs))
    one = batch([7.0])
    assert one.mean().data == 7.0 and one.sum().data == 7.0


def test_sum_and_mean_of_a_float_are_itself() -> None:
    x = Value(2.5)
    s, m = x.sum(), x.mean()
    assert s.data == 2.5 and m.data == 2.5
    m.backward()
    s.backward()
    assert x.grad == 2.0


def test_an_empty_batch_fails_loudly() -> None:
    # Averaging zero examples has no answer; the error should say the batch is empty (at construction or
    # at the reduction), not a bare "float division by zero" naming nothing.
    with pytest.raises((ValueError, ZeroDivisionError), match="empty"):
        batch([]).mean()


def test_repeated_backward_doubles_leaves_and_resets_intermediates() -> None:
    # Each leaf gets one contribution per pass, so "twice" is exactly "doubled" (with two, a + b + a + b
    # may round differently from 2 * (a + b)).
    x, w = batch([0.5, -1.0, 2.0]), Value(0.7)
    h = (w * x).tanh()
    loss = h.mean()
    loss.backward()
    gx, gw, gh = np.array(x.grad), w.grad, np.array(h.grad)
    assert type(gw) is float and gx.shape == (3,)
    loss.backward()
    np.testing.assert_array_equal(x.grad, 2 * gx)  # leaves accumulate
    assert w.grad == 2 * gw
    np.testing.assert_array_equal(h.grad, gh)  # non-leaves describe this pass only


def test_a_batch_used_twice_receives_both_contributions() -> None:
    y = batch([1.0, -2.0, 3.0])
    (y * y + y).sum().backward()
    np.testing.assert_array_equal(y.grad, [3.0, -3.0, 7.0])  # 2y + 1


def test_a_float_parameter_meeting_a_batch_gets_the_batch_sum_of_its_grads() -> None:
    xs = [0.5, -1.0, 2.0, 0.25]
    w = Value(0.3)
    (w * batch(xs) + w).sum().backward()
    assert type(w.grad) is float and w.grad == pytest.approx(sum(xs) + len(xs), rel=1e-15)


def test_a_batched_graph_is_freed_by_refcount_without_the_garbage_collector() -> None:
    model = MLP(2, [8, 1], rng=random.Random(3))
    X = np.random.default_rng(3).normal(size=(50, 2))
    gc.collect()
    gc.disable()
    try:
        xs = [batch(X[:, 0]), batch(X[:, 1])]
        before = live_nodes()
        out = model(xs)
        loss = losses.mse(out, np.zeros(50))
        loss.backward()
        assert live_nodes() > before + 20  # the graph (the collector is off: nothing freed)
        del loss, out
        assert live_nodes() == before  # freed at once: no reference cycles
        assert all(type(p.grad) is float and p.grad != 0.0 for p in model.parameters())
        assert grad_of(xs[0], 50).shape == (50,)
    finally:
        gc.enable()


def test_power_slopes_at_zero_match_the_float_path() -> None:
    xs = [0.0, 1.0, 4.0]
    for b in (0.5, 0.0, 1.0, 2.0):
        a = Value(np.array(xs))
        (a**b).sum().backward()
        expected = []
        for x in xs:
            v = Value(x)
            (v**b).backward()
            expected.append(v.grad)
        assert list(a.grad) == expected  # type: ignore[arg-type]


def test_zero_to_minus_infinity_is_infinity_as_for_floats() -> None:
    assert list((Value(np.array([0.0, 2.0])) ** float("-inf")).data) == [math.inf, 0.0]  # type: ignore[arg-type]
    assert (Value(0.0) ** float("-inf")).data == math.inf


def test_dividing_a_batch_by_one_shared_zero_names_no_element() -> None:
    with pytest.raises(ZeroDivisionError) as err:
        Value(np.array([1.0, 2.0])) / Value(0.0, label="z")
    assert "element" not in str(err.value) and "label='z'" in str(err.value)


def test_a_batch_is_stored_read_only_so_an_edit_after_the_forward_raises() -> None:
    w = Value(2.0)
    x = batch([1.0, 2.0])
    loss = (w * x * x).sum()
    with pytest.raises(ValueError, match="read-only"):
        x.data += 10  # type: ignore[operator]
    with pytest.raises(ValueError, match="read-only"):
        (w * x).data[0] = 5.0  # type: ignore[index]
    loss.backward()
    assert w.grad == 5.0  # 1 + 4: the gradient of the data the forward saw
    source = np.array([1.0, 2.0])
    y = Value(source)  # type: ignore[arg-type]
    source[0] = 99.0  # the caller's own array stays theirs: the batch holds a copy
    assert y.data[0] == 1.0  # type: ignore[index]


def test_a_float_meeting_a_batch_has_a_batch_sum_as_its_local_derivative() -> None:
    from chainrule.batch import Batch, BatchSum

    w, x = Value(3.0), batch([1.0, 2.0, 4.0])
    y = w * x
    assert isinstance(x, Batch) and isinstance(y, Batch) and type(w) is Value
    assert isinstance(y.local_grads[0], BatchSum) and not isinstance(y.local_grads[1], BatchSum)
    y.sum().backward()
    assert type(w.grad) is float and w.grad == 7.0
    np.testing.assert_array_equal(x.grad, [3.0, 3.0, 3.0])
