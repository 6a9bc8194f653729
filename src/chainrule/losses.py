"""Loss functions, each a composition of Value ops: no derivative is written here.

Predictions come either as a list with one Value per sample (eager mode, as micrograd), or as one Value
holding a NumPy batch (batched mode, see chainrule.batch); targets are numbers, one per sample.
`reduction='mean'` (the default, as PyTorch) averages over samples; `reduction='sum'` adds them up
(the seeds' tiny training loop uses a sum of squared errors). Each returns a single-number Value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Sized
from typing import Any, Literal, TypeAlias, cast

import numpy as np

from chainrule.engine import Value
from chainrule.ops import apply_op, linear

Reduction: TypeAlias = Literal["mean", "sum"]
Number: TypeAlias = Value | float
Predictions: TypeAlias = Sequence[Number] | Value  # one per sample, or one batched Value
Targets: TypeAlias = Sequence[float] | Any  # a list or a 1-D NumPy array


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


def _is_batch(v: object) -> bool:
    return isinstance(v, Value) and type(v.data) is not float


def _batch(a: Any) -> Value:
    """A constant leaf holding a NumPy array (chainrule.batch; Value's annotation only says float)."""
    return Value(cast(float, a))


def _batch_len(v: Value) -> int:
    return len(cast(Sized, v.data))


def _apply(name: str, preds: Predictions, targets: Targets, reduction: Reduction,
           term: Callable[[Value, Any], Value], check: Callable[[Any], bool], expected: str) -> Value:
    """Build term(prediction, target) for every sample, then reduce.

    Eager: one term per sample, target a float. Batched: one term for the whole batch, target a
    Value holding the targets' array (a constant leaf: Value * ndarray is not an op).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"unknown reduction {reduction!r}; choose 'mean' or 'sum'")
    t = np.asarray(targets, dtype=np.float64)
    if isinstance(preds, Value) and not _is_batch(preds):
        preds = [preds]  # a single prediction: one sample
    n = _batch_len(preds) if isinstance(preds, Value) else len(preds)
    if t.shape != (n,):
        raise ValueError(f"{name}: {n} predictions but targets of shape {t.shape}")
    if n == 0:
        raise ValueError(f"{name}: a loss needs at least one sample")
    if not all(check(y) for y in t.tolist()):
        bad = next(y for y in t.tolist() if not check(y))
        raise ValueError(f"{name}: targets must be {expected}, got {bad!r}")
    if isinstance(preds, Value):
        total = term(preds, _batch(t)).sum()
    else:
        total = _total(term(_lift(p), y) for p, y in zip(preds, t.tolist(), strict=True))
    # Multiply by 1/n rather than divide by n: micrograd's demo does, and the demo matches it bit for bit.
    return total * (1.0 / n) if reduction == "mean" else total


def _lift(x: Number) -> Value:
    return x if isinstance(x, Value) else Value(float(x))


def _softplus(z: Value) -> Value:
    """log(1 + e^z) = logsumexp(0, z), stable for any z: with m = max(0, z), it is m + log(e^-m + e^(z-m)),
    where neither exp can overflow. m is a detached `max` node, so a compiled loss recomputes it from new
    logits, and no gradient flows through it: the gradient is exactly sigmoid(z) (no kink at 0)."""
    m = apply_op("max", z, 0.0).detach()
    return ((-m).exp() + (z - m).exp()).log() + m


def mse(preds: Predictions, targets: Targets, reduction: Reduction = "mean") -> Value:
    """Squared error (pred - target)², averaged (or summed). PyTorch: `F.mse_loss`."""
    return _apply("mse", preds, targets, reduction, lambda p, y: (p - y) ** 2,
                  lambda y: True, "numbers")


def hinge(scores: Predictions, targets: Targets, reduction: Reduction = "mean") -> Value:
    """Max-margin loss relu(1 - y·s) for labels y = ±1, averaged (or summed): micrograd's demo loss.

    PyTorch has no binary hinge under this name; `2 * F.multi_margin_loss([0, s], y > 0)` equals it.
    """
    return _apply("hinge", scores, targets, reduction, lambda s, y: (1 + -y * s).relu(),
                  lambda y: y in (-1.0, 1.0), "-1 or +1")


def binary_cross_entropy(logits: Predictions, targets: Targets, reduction: Reduction = "mean") -> Value:
    """Cross-entropy of sigmoid(logit) against a target in [0, 1], averaged (or summed).

    Computed from the logit as softplus(z) - y·z, stable for any logit (no log(0) at z = ±800).
    PyTorch: `F.binary_cross_entropy_with_logits`.
    """
    return _apply("binary_cross_entropy", logits, targets, reduction,
                  lambda z, y: _softplus(z) - z * y, lambda y: 0.0 <= y <= 1.0, "in [0, 1]")


def cross_entropy(logits: Sequence[Sequence[Number]] | Sequence[Value], targets: Sequence[int] | Any,
                  reduction: Reduction = "mean") -> Value:
    """Softmax cross-entropy over classes: logsumexp(z) - z[target], averaged (or summed).

    Eager: `logits[i]` holds one score per class for sample i. Batched: `logits[k]` is one Value
    holding class k's scores for the whole batch (what an MLP with k outputs returns on a batch).
    `targets[i]` is sample i's class index. The max logit m is subtracted inside the exp (a detached `max`
    node: recomputed by a compiled loss, and no gradient flows through it, as logsumexp(z) = m + log Σ
    exp(z - m) for any m).
    PyTorch: `F.cross_entropy`.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"unknown reduction {reduction!r}; choose 'mean' or 'sum'")
    t = np.asarray(targets)
    batch = [z for z in logits if _is_batch(z)]
    rows = [] if batch else [[_lift(z) for z in row] for row in cast(Sequence[Sequence[Number]], logits)]
    n_classes = len(batch) if batch else (len(rows[0]) if rows else 0)
    n = _batch_len(cast(Value, batch[0])) if batch else len(rows)
    if t.shape != (n,) or n == 0:
        raise ValueError(f"cross_entropy: {n} rows of logits but targets of shape {t.shape}")
    for i, c in enumerate(t.tolist()):
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < n_classes:
            raise ValueError(f"cross_entropy: target {c!r} of sample {i} is not a class index "
                             f"in [0, {n_classes})")
    if batch:
        zs = cast(list[Value], batch)
        m = apply_op("max", *zs).detach()
        lse = _total((z - m).exp() for z in zs).log() + m
        picked = _total(z * _batch((t == k).astype(np.float64)) for k, z in enumerate(zs))
        total = (lse - picked).sum()
    else:
        terms = []
        for row, c in zip(rows, t.tolist(), strict=True):
            if len(row) != n_classes:
                raise ValueError(f"cross_entropy: rows of logits differ in length ({len(row)}, {n_classes})")
            m = apply_op("max", *row).detach()
            terms.append(_total((z - m).exp() for z in row).log() + m - row[c])
        total = _total(terms)
    return total * (1.0 / n) if reduction == "mean" else total


def l2(params: Iterable[Value], alpha: float) -> Value:
    """The L2 penalty alpha·Σ p² (a sum, not a mean), as micrograd's demo adds to its loss.

    Σ p² is one `linear` node (p·p + ..., each p as weight and as input): the same floats as
    micrograd's `sum(p*p for p in params)`, with one node instead of 2 per parameter."""
    ps = list(params)
    if not ps:
        raise ValueError("l2 needs at least one parameter")
    return alpha * linear(ps, ps, Value(0.0))  # a Value bias: no plain number to lift among 2n+1
