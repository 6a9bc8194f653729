"""Gradients as functions, JAX-style: `grad(f)(x, y)` gives df/dx and df/dy at those numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .engine import Value


def value_and_grad(f: Callable[..., Any]) -> Callable[..., tuple[float, Any]]:
    """`value_and_grad(f)(*xs)` returns `(f(*xs), grads)`: floats in, floats out.

    `grads` is a float when f takes one argument, else a tuple with one float per argument. Each call
    builds a fresh graph, so nothing accumulates between calls.
    """

    def run(*xs: float) -> tuple[float, Any]:
        inputs = [Value(x) for x in xs]
        out = f(*inputs)
        if not isinstance(out, Value):  # f ignores its inputs (a constant): every gradient is 0
            out = Value(out)
        out.backward()
        grads = tuple(v.grad for v in inputs)
        return out.data, grads[0] if len(grads) == 1 else grads

    return run


def grad(f: Callable[..., Any]) -> Callable[..., Any]:
    """`grad(f)(*xs)`: the gradient of f at xs (a float for one argument, else a tuple of floats)."""
    value_and_grad_f = value_and_grad(f)
    return lambda *xs: value_and_grad_f(*xs)[1]
