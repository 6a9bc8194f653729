"""Gradients as functions, JAX-style: `grad(f)(x, y)` gives df/dx and df/dy at those numbers.

They nest: `grad(grad(f))(x)` is the second derivative. Called with plain numbers, `grad(f)` returns
floats; called with Values (which is what an outer `grad` passes in while it traces), it differentiates
with `backward(create_graph=True)` and returns Values whose graphs the outer `grad` differentiates again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .engine import Value, enable_grad, topological_order


def value_and_grad(f: Callable[..., Any]) -> Callable[..., tuple[Any, Any]]:
    """`value_and_grad(f)(*xs)` returns `(f(*xs), grads)`: floats in, floats out (Values in, Values out).

    `grads` is one gradient when f takes one argument, else a tuple with one per argument. Each call
    builds a fresh graph, so nothing accumulates between calls, and the `.grad` of Values passed in is
    left as it was.
    """

    def run(*xs: Any) -> tuple[Any, Any]:
        tracing = any(isinstance(x, Value) for x in xs)
        inputs = [x if isinstance(x, Value) else Value(x) for x in xs]
        with enable_grad():  # asked for a gradient: record a graph even inside no_grad()
            out = f(*inputs)
        if not isinstance(out, Value):  # f ignores its inputs (a constant): every gradient is 0
            out = Value(out)
        # The inputs may belong to a bigger graph (an outer grad's): keep every grad in it as it was.
        nodes = topological_order(out)
        saved = [v.grad for v in (*nodes, *inputs)]
        for v in (*nodes, *inputs):
            v.grad = 0.0
        with enable_grad():
            out.backward(create_graph=tracing)
        grads = tuple(v.grad for v in inputs)
        for v, g in zip((*nodes, *inputs), saved, strict=True):
            v.grad = g
        value = out if tracing else out.data
        return value, grads[0] if len(grads) == 1 else grads

    return run


def grad(f: Callable[..., Any]) -> Callable[..., Any]:
    """`grad(f)(*xs)`: the gradient of f at xs (one value for one argument, else a tuple, one each)."""
    value_and_grad_f = value_and_grad(f)
    return lambda *xs: value_and_grad_f(*xs)[1]


def hessian(f: Callable[..., Any]) -> Callable[..., list[list[float]]]:
    """`hessian(f)(*xs)`: the matrix of second derivatives, `H[i][j] = ∂²f/∂xᵢ∂xⱼ`, as lists of floats.

    Row i is the gradient of ∂f/∂xᵢ, itself a function built by `grad` (gradients of gradients): no second
    derivative is written anywhere, they all come from the op rules read with Values.
    """
    df = grad(f)

    def run(*xs: float) -> list[list[float]]:
        def partial(i: int) -> Callable[..., Any]:
            return lambda *v: df(*v) if len(xs) == 1 else df(*v)[i]

        rows = [grad(partial(i))(*xs) for i in range(len(xs))]
        return [[float(h) for h in (row if len(xs) > 1 else (row,))] for row in rows]

    return run
