"""Batched mode: the same scalar code over a NumPy batch.

A `Batch` is a `Value` holding a 1-D array, one number per example (`Value(X[:, 0])` makes one). Then
`model([Value(X[:, 0]), Value(X[:, 1])])` runs the per-example model code once for the whole batch: a few
hundred nodes instead of tens of thousands. Parameters stay plain floats; ops broadcast; `.sum()` /
`.mean()` reduce a batch to one number.

The op rules are the very ones in `chainrule.engine.RULES`, and the chain rule is the engine's one line
`parent.grad += local * grad`: this module only supplies the rules' math for arrays (`ArrayMath`), with the
engine's error policy (a domain error in any element raises the same clear error as for a float, never a
silent NaN), and one thing floats never need: where one number meets a batch (a parameter used by every
example), its local derivative is a `BatchSum`, whose product with the batch's gradient is the sum over
the examples (as tinygrad's EXPAND, whose backward is a sum). So a parameter's grad stays one number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .engine import Value, apply
from .numerics import Conventions, FloatMath, Math, with_conventions

Array = NDArray[np.float64]


def as_batch(x: Any) -> Array:
    """A 1-D array of real numbers as read-only float64 (copied, so later edits to x don't reach the graph,
    and read-only, so an edit to `.data` after the forward can't silently change the gradients)."""
    a = np.asarray(x)
    if a.ndim != 1 or a.dtype.kind not in "biuf":
        raise TypeError(f"a batch must be a 1-D array of real numbers, got {type(x).__name__} of shape "
                        f"{a.shape} dtype {a.dtype}")
    if len(a) == 0:
        raise ValueError("a batch needs at least one example, got an empty array")
    out = np.array(a, dtype=np.float64)
    out.flags.writeable = False
    return out


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


@with_conventions
class ArrayMath(Conventions):
    """The math namespace for NumPy arrays (mixed with floats), mirroring FloatMath. The conventions at
    kinks are numerics', read with NumPy's where (`with_conventions`): written once for every number."""

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
        if np.isfinite(out).all():  # the usual case: no overflow to look for
            return out
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
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out = np.power(a, b)
        # Every case below that raises or differs from NumPy (0 to a negative power, a negative base to a
        # fractional one, (-inf) ** 0.5, an overflow) has an infinite or NaN output: all finite, all done.
        if np.isfinite(out).all():
            return out
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
    def power(a: Any, c: Any) -> Any:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            return np.power(a, c)  # IEEE's limits where a float power raises: inf, ±inf, nan

    @staticmethod
    def where(c: Any, a: Any, b: Any) -> Any:
        return np.where(c, a, b) if np.ndim(c) else (a if c else b)

    @staticmethod
    def mul(a: Any, b: Any) -> Any:
        with np.errstate(invalid="ignore"):  # 0·inf, where a zero factor is about to win anyway
            return np.multiply(a, b)

    data, maximum = staticmethod(np.asarray), staticmethod(np.maximum)
    maxof = staticmethod(lambda xs: np.maximum.reduce(np.broadcast_arrays(*map(np.asarray, xs))))  # NaN wins

    @staticmethod
    def pick(i: Any, xs: tuple[Any, ...]) -> Any:
        """xs[i] element by element: each position of the index reads the entry it names at that position
        (a batch of tokens reading number entries; compile's stacked rows, one per node)."""
        index = np.asarray(i)
        bad = (index != np.round(index)) | (index < 0) | (index >= len(xs)) | np.isnan(index)
        if bad.any():
            raise ValueError(f"index not an integer in [0, {len(xs)}){_first_bad(bad, index)}")
        if all(type(x) is float for x in xs):  # the usual case: a table of numbers, a batch of tokens
            return np.asarray(xs)[index.astype(np.intp)]
        index, *entries = np.broadcast_arrays(index, *map(np.asarray, xs))
        return np.take_along_axis(np.stack(entries), index.astype(np.intp)[None], axis=0)[0]
    as_float = staticmethod(lambda c: np.asarray(c, dtype=np.float64))
    tanh, fabs = staticmethod(np.tanh), staticmethod(np.abs)

    @staticmethod
    def sigmoid(x: Any) -> Any:
        z = np.exp(-np.abs(x))  # never overflows; pick the stable form by sign, as FloatMath does
        return np.where(np.asarray(x) >= 0, 1.0 / (1.0 + z), z / (1.0 + z))

    @staticmethod
    def sum(x: Any) -> float:
        return float(np.sum(x))

    @staticmethod
    def ones_like(x: Any) -> Any:
        return np.ones_like(x)


ARRAY_MATH: Math = ArrayMath()


class BatchSum:
    """The local derivative of a batched op with respect to one number shared by every example (a
    parameter, a constant): the column of d(out_i)/d(parent). Its product with the batch's gradient is
    their dot product, Σ_i local_i·grad_i: the parameter's gradient, summed over the batch. This is the
    one place broadcasting's backward (a sum) is written: the engine's batches and the compiled replay
    (chainrule.replay, where a row of numbers meets rows of batches, and a layer's biases meet its
    columns) both multiply by a BatchSum."""

    __slots__ = ("local",)

    def __init__(self, local: Any) -> None:
        self.local = local

    def __mul__(self, grad: Any) -> Any:
        # grad is the batch's: an array (every batch node's grad is one by the time it is passed on), with
        # the examples along its last axis; stacked in a replay, one row per number.
        local = self.local
        if type(local) is float:
            total = local * grad.sum(axis=-1)
        elif local.ndim == 1 == grad.ndim:
            return float(local.dot(grad))
        else:
            total = (local * grad).sum(axis=-1)
        return float(total) if total.ndim == 0 else total

    def __repr__(self) -> str:
        return f"BatchSum({self.local!r})"


class Batch(Value):
    """A Value holding a 1-D NumPy array, one number per example. `Value(array)` makes one."""

    __slots__ = ()

    def __init__(self, data: Any, label: str = "") -> None:
        super().__init__(0.0, label)
        self.data = as_batch(data)

    @staticmethod
    def _apply(op: str, parents: tuple[Value, ...], xs: tuple[Any, ...]) -> Value:
        other = next((p for p in parents if type(p) is not Value and type(p) is not Batch), None)
        if other is not None:  # another kind of number (forward mode's Dual) would lose what it carries
            raise TypeError(f"{op}: a batch cannot meet a {type(other).__name__} ({other!r}); forward mode "
                            "works on numbers, not on batches")
        check_lengths(op, parents)
        node = apply(ARRAY_MATH, Value if op == "sum" else Batch, op, parents, xs)  # a sum is one number
        if type(node.data) is not float:
            node.data.flags.writeable = False  # type: ignore[union-attr]
        if node.parents:  # recorded (not under no_grad): wrap the locals of the numbers shared by all
            node.local_grads = tuple([BatchSum(local) if type(p.data) is float else local
                                      for p, local in zip(parents, node.local_grads)])  # noqa: B905
        return node
