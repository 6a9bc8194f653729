"""Optimizers: read each parameter's .grad, write its .data. They never build graph nodes.

The update formulas follow `torch.optim` line for line (same order of floating-point operations where
it matters), so a test can run both on the same numbers and compare to 1e-12.
A learning rate is a number or a schedule: any callable taking the step index (0, 1, ...) to a rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from chainrule.engine import Value

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
        self._update(self.current_lr())
        self.steps += 1

    def _update(self, lr: float) -> None:
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
        self.velocity: list[float | None] = [None] * len(self.params)

    def _update(self, lr: float) -> None:
        for i, p in enumerate(self.params):
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                v = self.velocity[i]
                g = g if v is None else self.momentum * v + g
                self.velocity[i] = g
            p.data = p.data - lr * g


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
        self.m = [0.0] * len(self.params)  # running mean of g   (torch: exp_avg)
        self.v = [0.0] * len(self.params)  # running mean of g²  (torch: exp_avg_sq)

    def _update(self, lr: float) -> None:
        b1, b2 = self.betas
        t = self.steps + 1
        step_size = lr / (1 - b1**t)
        bias_correction2_sqrt = (1 - b2**t) ** 0.5
        for i, p in enumerate(self.params):
            g = p.grad
            if self.weight_decay:
                if self.decoupled:
                    p.data = p.data * (1 - lr * self.weight_decay)
                else:
                    g = g + self.weight_decay * p.data
            # NOTE: torch writes the first moment as a lerp, m + (1-b1)(g - m); same value, other rounding.
            self.m[i] = self.m[i] + (1 - b1) * (g - self.m[i])
            self.v[i] = self.v[i] * b2 + (1 - b2) * g * g
            denom = math.sqrt(self.v[i]) / bias_correction2_sqrt + self.eps
            p.data = p.data + -step_size * (self.m[i] / denom)


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
