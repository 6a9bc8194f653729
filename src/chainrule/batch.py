"""Batched mode: the same scalar code over a NumPy batch.

A `Value` may hold a 1-D array with one number per example. Then `model([Value(X[:, 0]), Value(X[:, 1])])`
runs the per-example model code once for the whole batch: a few hundred nodes instead of tens of
thousands. Parameters stay plain floats; ops broadcast; `.sum()` / `.mean()` reduce a batch to one
number; backward sums a parameter's gradient over the batch (in `Value.backward`).

The op rules are the very ones in `chainrule.engine.RULES`: this module only supplies their math for
arrays, with the engine's error policy — a domain error in any element raises the same clear error as
for a float (Python's float semantics), never a silent NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .engine import FloatMath

if TYPE_CHECKING:
    from .engine import Value

Array = NDArray[np.float64]


def as_batch(x: Any) -> Array:
    """A 1-D array of real numbers as float64 (copied, so later edits to x don't reach the graph)."""
    a = np.asarray(x)
    if a.ndim != 1 or a.dtype.kind not in "biuf":
        raise TypeError(f"a batch must be a 1-D array of real numbers, got shape {a.shape} dtype {a.dtype}")
    if len(a) == 0:
        raise ValueError("a batch needs at least one example, got an empty array")
    return np.array(a, dtype=np.float64)


def check_lengths(op: str, parents: tuple[Value, ...]) -> None:
    """Batches in one op must have the same length: NumPy would broadcast a length-1 batch against a
    length-n one and give that leaf a length-n gradient. Batches are examples; their counts must agree."""
    lengths = sorted({len(p.data) for p in parents if type(p.data) is not float})  # type: ignore[arg-type]
    if len(lengths) > 1:
        counts, culprits = " and ".join(map(str, lengths)), f" {op} ".join(p._culprit() for p in parents)
        raise ValueError(f"{op} of batches of different lengths ({counts}): {culprits}")


def _first_bad(mask: Any, x: Any) -> str:
    """' at element i (value)' for the first True in mask; '' when the culprit is one shared number."""
    if np.ndim(mask) == 0:
        return ""
    i = int(np.flatnonzero(mask)[0])
    return f" at element {i} ({np.ravel(x)[i]})"


class ArrayMath:
    """The math namespace for NumPy arrays (mixed with floats), mirroring FloatMath."""

    @staticmethod
    def linear(b: Any, wx: tuple[Any, ...]) -> Any:
        n = len(wx) // 2
        ws, xs = wx[:n], wx[n:]
        if all(type(w) is float for w in ws) and not any(type(x) is float for x in xs):
            # The usual case (float weights, batched inputs): one matrix product instead of 2n array
            # ops. Its order of additions differs from the float path's by rounding only (batched ==
            # eager is tested to 1e-12).
            return b + np.array(ws) @ np.array(xs)
        return FloatMath.linear(b, wx)  # the same sum, op by op, broadcasting

    @staticmethod
    def exp(x: Any) -> Any:
        with np.errstate(over="ignore"):
            out = np.exp(x)
        overflow = np.isinf(out) & np.isfinite(x)
        if overflow.any():
            raise OverflowError(f"math range error{_first_bad(overflow, x)}")
        return out

    @staticmethod
    def log(x: Any) -> Any:
        bad = np.asarray(x) <= 0
        if bad.any():
            raise ValueError(f"math domain error{_first_bad(bad, x)}")
        return np.log(x)

    @staticmethod
    def div(a: Any, b: Any) -> Any:
        zero = np.asarray(b) == 0
        if zero.any():
            raise ZeroDivisionError(f"float division by zero{_first_bad(zero, b)}")
        with np.errstate(over="ignore"):  # 1e308 / 1e-10 is inf, silently, as for floats
            return np.divide(a, b)

    @staticmethod
    def pow(a: Any, b: Any) -> Any:
        a_, b_ = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
        zero_to_negative = (a_ == 0) & (b_ < 0) & np.isfinite(b_)  # 0 ** -inf is inf, as in Python
        if zero_to_negative.any():
            at = _first_bad(zero_to_negative, a_)
            raise ZeroDivisionError(f"0.0 cannot be raised to a negative power{at}")
        # A negative base to a fractional power has no real value (Python gives a complex number);
        # NaN and infinities propagate as they do for floats.
        complex_ = (a_ < 0) & np.isfinite(a_) & np.isfinite(b_) & (b_ != np.round(b_))
        if complex_.any():
            at = _first_bad(complex_, a_)
            raise ValueError(f"math domain error (negative base, fractional power){at}")
        # Python takes (-inf) ** 0.5 as inf ** 0.5; NumPy gives nan. Follow Python, as the float path does.
        a_ = np.where(np.isneginf(a_) & (b_ != np.round(b_)), np.inf, a_)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out = np.power(a_, b_)
        overflow = np.isinf(out) & np.isfinite(a_) & np.isfinite(b_)
        if overflow.any():
            raise OverflowError(f"math range error{_first_bad(overflow, a_)}")
        return out

    @staticmethod
    def pow_limit(a: Any, c: Any) -> Any:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            return np.power(a, c)  # NumPy already gives FloatMath.pow_limit's limits: inf, ±inf

    @staticmethod
    def zero_safe_mul(a: Any, b: Any) -> Any:
        with np.errstate(invalid="ignore"):
            return np.where(np.asarray(a) == 0.0, 0.0, np.multiply(a, b))  # as FloatMath: 0·inf = 0

    @staticmethod
    def log_or_zero(a: Any) -> Any:
        # As FloatMath.log_or_zero: log(a) where a > 0, else 0 by convention.
        positive = np.asarray(a) > 0
        return np.where(positive, np.log(np.where(positive, a, 1.0)), 0.0)

    tanh = staticmethod(np.tanh)

    @staticmethod
    def sigmoid(x: Any) -> Any:
        z = np.exp(-np.abs(x))  # never overflows; pick the stable form by sign, as FloatMath does
        return np.where(np.asarray(x) >= 0, 1.0 / (1.0 + z), z / (1.0 + z))

    @staticmethod
    def relu(x: Any) -> Any:
        return np.where(np.asarray(x) <= 0.0, 0.0, x)  # NaN propagates, as in FloatMath

    @staticmethod
    def step(x: Any) -> Any:
        return (np.asarray(x) > 0.0).astype(np.float64)  # relu'(0) = 0

    @staticmethod
    def sum(x: Any) -> float:
        return float(np.sum(x))

    @staticmethod
    def ones_like(x: Any) -> Any:
        return np.ones_like(x)


ARRAY_MATH = ArrayMath()
