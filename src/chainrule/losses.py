"""Loss functions, each a composition of Value ops: no derivative is written here.

Every loss takes one prediction per sample and one target per sample and returns a single Value.
`reduction='mean'` (the default, as PyTorch) averages over samples; `reduction='sum'` adds them up
(the seeds' tiny training loop uses a sum of squared errors).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal, TypeAlias

from chainrule.engine import Value

Reduction: TypeAlias = Literal["mean", "sum"]
Number: TypeAlias = Value | float


def _total(terms: Iterable[Value]) -> Value:
    # Left to right, like Python's sum() but without its leading `0 +` node in the graph.
    it = iter(terms)
    try:
        out = next(it)
    except StopIteration:
        raise ValueError("a loss needs at least one sample") from None
    for t in it:
        out = out + t
    return out


def _reduce(terms: Sequence[Value], reduction: Reduction) -> Value:
    if reduction == "sum":
        return _total(terms)
    if reduction == "mean":
        # Multiply by 1/n rather than divide by n: micrograd's demo does, and the demo matches it bit for bit.
        return _total(terms) * (1.0 / len(terms))
    raise ValueError(f"unknown reduction {reduction!r}; choose 'mean' or 'sum'")


def _pairs(preds: Sequence[Number], targets: Sequence[float], name: str) -> list[tuple[Number, float]]:
    if len(preds) != len(targets):
        raise ValueError(f"{name}: {len(preds)} predictions but {len(targets)} targets")
    if not preds:
        raise ValueError(f"{name}: a loss needs at least one sample")
    return list(zip(preds, targets, strict=True))


def _lift(x: Number) -> Value:
    return x if isinstance(x, Value) else Value(float(x))


def mse(preds: Sequence[Number], targets: Sequence[float], reduction: Reduction = "mean") -> Value:
    """Squared error (pred - target)², averaged (or summed). PyTorch: `F.mse_loss`."""
    return _reduce([(_lift(p) - t) ** 2 for p, t in _pairs(preds, targets, "mse")], reduction)


def hinge(scores: Sequence[Number], targets: Sequence[float], reduction: Reduction = "mean") -> Value:
    """Max-margin loss relu(1 - y·s) for labels y = ±1, averaged (or summed): micrograd's demo loss.

    PyTorch has no binary hinge under this name; `2 * F.multi_margin_loss([0, s], y > 0)` equals it.
    """
    terms = []
    for s, y in _pairs(scores, targets, "hinge"):
        if y not in (-1, 1):
            raise ValueError(f"hinge: labels must be -1 or +1, got {y!r}")
        terms.append((1 + -float(y) * _lift(s)).relu())
    return _reduce(terms, reduction)


def _softplus(z: Value) -> Value:
    # log(1 + e^z), written per sign so that exp never overflows: for z > 0 it is z + log(1 + e^-z).
    # Each branch is smooth and exact at z = 0, so the gradient there is the true sigmoid(0) = 0.5.
    if z.data > 0:
        return z + (1 + (-z).exp()).log()
    return (1 + z.exp()).log()


def binary_cross_entropy(
    logits: Sequence[Number], targets: Sequence[float], reduction: Reduction = "mean"
) -> Value:
    """Cross-entropy of sigmoid(logit) against a target in [0, 1], averaged (or summed).

    Computed from the logit as softplus(z) - y·z, stable for any logit (no log(0) at z = ±800).
    PyTorch: `F.binary_cross_entropy_with_logits`.
    """
    terms = []
    for z, y in _pairs(logits, targets, "binary_cross_entropy"):
        if not 0 <= y <= 1:
            raise ValueError(f"binary_cross_entropy: targets must be in [0, 1], got {y!r}")
        zv = _lift(z)
        terms.append(_softplus(zv) - zv * float(y))
    return _reduce(terms, reduction)


def cross_entropy(
    logits: Sequence[Sequence[Number]], targets: Sequence[int], reduction: Reduction = "mean"
) -> Value:
    """Softmax cross-entropy over classes: logsumexp(z) - z[target], averaged (or summed).

    `logits[i]` holds one score per class for sample i; `targets[i]` is the class index.
    The max logit m is subtracted inside the exp (a plain float, so no gradient flows through it:
    logsumexp(z) = m + log Σ exp(z - m) for any m). PyTorch: `F.cross_entropy`.
    """
    if len(logits) != len(targets):
        raise ValueError(f"cross_entropy: {len(logits)} rows of logits but {len(targets)} targets")
    terms = []
    for i, (row, t) in enumerate(zip(logits, targets, strict=True)):
        zs = [_lift(z) for z in row]
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < len(zs):
            raise ValueError(f"cross_entropy: target {t!r} of sample {i} is not a class index "
                             f"in [0, {len(zs)})")
        m = max(float(z.data) for z in zs)
        if not math.isfinite(m):
            raise ValueError(f"cross_entropy: non-finite logit in sample {i}: {row!r}")
        lse = _total((z - m).exp() for z in zs).log() + m
        terms.append(lse - zs[t])
    return _reduce(terms, reduction)


def l2(params: Iterable[Value], alpha: float) -> Value:
    """The L2 penalty alpha·Σ p² (a sum, not a mean), as micrograd's demo adds to its loss."""
    return alpha * _total(p * p for p in params)
