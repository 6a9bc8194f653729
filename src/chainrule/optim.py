"""Optimizers: read each parameter's .grad, write its .data. They never build graph nodes.

Each optimizer's update is written once, on arrays: `update(p, g, lr)` takes every parameter's data and
grad as one float64 vector each and returns the new data, keeping its state (momentum, Adam's moments)
as vectors too. `step()` gathers the Values' data and grads into vectors, calls it and writes the data
back; a compiled training step (chainrule.trainstep) calls the same `update` on vectors it owns, with no
per-parameter Python work. The formulas follow `torch.optim` line for line (same order of floating-point
operations), so a test can run both on the same numbers and compare to 1e-12.
A learning rate is a number or a schedule: any callable taking the step index (0, 1, ...) to a rate.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable

import numpy as np
from numpy.typing import NDArray

from chainrule.engine import Value

Array = NDArray[np.float64]


def gather(params: list[Value], field: str) -> Array:
    """Every parameter's `field` ("data" or "grad") as one float64 vector, in order: what `update` takes
    (optimizer.step, chainrule.trainstep and train's divergence check read the Values this way). A grad
    that is a Value (backward(create_graph=True)) counts as its number."""
    try:
        return np.fromiter(map(operator.attrgetter(field), params), np.float64, len(params))
    except (TypeError, ValueError):
        raise TypeError(f"an optimizer updates numbers: every parameter must hold a float .data and .grad, "
                        f"not a batch (a .{field} is not a number)") from None

Schedule = Callable[[int], float]


def linear_decay(start: float = 1.0, end: float = 0.1, steps: int = 100) -> Schedule:
    """lr(k) = start - (start - end)·k/steps: micrograd's demo uses 1.0 - 0.9·k/100."""
    if steps < 1:
        raise ValueError(f"linear_decay needs steps >= 1, got {steps}")
    drop = start - end
    return lambda k: start - drop * k / steps


class Optimizer:
    """Holds the parameters, counts steps, and resolves the learning rate for the current step."""

    def __init__(self, params: Iterable[Value], lr: float | Schedule) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not callable(lr) and not (isinstance(lr, int | float) and math.isfinite(lr) and lr >= 0):
            raise ValueError(f"learning rate must be a finite number >= 0 or a schedule, got {lr!r}")
        self.lr = lr
        self.steps = 0  # how many updates have been applied

    def current_lr(self) -> float:
        return float(self.lr(self.steps)) if callable(self.lr) else float(self.lr)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = 0.0

    def step(self) -> None:
        """One update of every parameter's data from its grad."""
        params = self.params
        for p, x in zip(params, self.update(gather(params, "data"), gather(params, "grad")).tolist(),
                        strict=True):
            p.data = x

    def update(self, data: Array, grads: Array) -> Array:
        """The new data of every parameter from its data and grad (vectors, in `params` order), at this
        step's rate; counts the step. The one place each optimizer's formula is written."""
        out = self._update(data, grads, self.current_lr())
        self.steps += 1
        return out

    def _update(self, p: Array, g: Array, lr: float) -> Array:
        raise NotImplementedError


class SGD(Optimizer):
    """p ← p - lr·v, with v = g (+ weight_decay·p) or, with momentum, v ← momentum·v + g.

    Same as `torch.optim.SGD` (dampening 0, no Nesterov): the first momentum step takes v = g.
    """

    def __init__(
        self, params: Iterable[Value], lr: float | Schedule, momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"momentum and weight_decay must be >= 0, got {momentum}, {weight_decay}")
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.velocity: Array | None = None  # None until the first momentum step, which takes v = g

    def _update(self, p: Array, g: Array, lr: float) -> Array:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            # np.array(g): a copy, never the caller's own array (ArrayStep refills its grad in place)
            g = np.array(g) if self.velocity is None else self.momentum * self.velocity + g
            self.velocity = g
        return p - lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, as `torch.optim.Adam`; weight_decay adds wd·p to g (L2)."""

    decoupled = False  # AdamW flips this: decay the weights directly instead of through the gradient

    def __init__(
        self, params: Iterable[Value], lr: float | Schedule = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1) or eps < 0 or weight_decay < 0:
            raise ValueError(f"bad Adam settings: betas={betas}, eps={eps}, weight_decay={weight_decay}")
        self.betas = (b1, b2)
        self.eps = eps
        self.weight_decay = weight_decay
        self.m = np.zeros(len(self.params))  # running mean of g   (torch: exp_avg)
        self.v = np.zeros(len(self.params))  # running mean of g²  (torch: exp_avg_sq)

    def _update(self, p: Array, g: Array, lr: float) -> Array:
        b1, b2 = self.betas
        t = self.steps + 1
        step_size = lr / (1 - b1**t)
        bias_correction2_sqrt = (1 - b2**t) ** 0.5
        if self.weight_decay:
            if self.decoupled:
                p = p * (1 - lr * self.weight_decay)
            else:
                g = g + self.weight_decay * p
        # NOTE: torch writes the first moment as a lerp, m + (1-b1)(g - m); same value, other rounding.
        self.m = self.m + (1 - b1) * (g - self.m)
        self.v = self.v * b2 + (1 - b2) * g * g
        denom = np.sqrt(self.v) / bias_correction2_sqrt + self.eps
        out: Array = p + -step_size * (self.m / denom)
        return out


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p ← p·(1 - lr·wd) before the Adam step.

    Default weight_decay 1e-2, as `torch.optim.AdamW`.
    """

    decoupled = True

    def __init__(
        self, params: Iterable[Value], lr: float | Schedule = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
