"""chainrule.losses against PyTorch's equivalents: values and gradients, including extreme logits."""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np
import pytest

import chainrule
from chainrule import losses
from chainrule.engine import RULES, Value, topological_order

PREDS = [0.3, -1.2, 2.5, 0.05, -0.7]
SIGNS = [1.0, -1.0, 1.0, -1.0, -1.0]


def _values(xs):
    return [Value(x) for x in xs]


def _leaf(torch, xs):
    return torch.tensor(xs, dtype=torch.float64, requires_grad=True)


def _check(ours_loss, ours_inputs, theirs_loss, theirs_input, tol=1e-12):
    ours_loss.backward()
    theirs_loss.backward()
    assert ours_loss.data == pytest.approx(theirs_loss.item(), abs=tol, rel=tol)
    assert [v.grad for v in ours_inputs] == pytest.approx(theirs_input.grad.tolist(), abs=tol, rel=tol)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse(torch: ModuleType, reduction):
    targets = [0.5, -1.0, 2.0, 0.0, 1.0]
    vs, t = _values(PREDS), _leaf(torch, PREDS)
    theirs = torch.nn.functional.mse_loss(t, torch.tensor(targets, dtype=torch.float64), reduction=reduction)
    _check(losses.mse(vs, targets, reduction), vs, theirs, t)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_hinge_is_twice_multi_margin_on_zero_and_score(torch: ModuleType, reduction):
    # relu(1 - y·s) = 2·multi_margin([0, s], class y > 0): the other "class" has score 0.
    vs, t = _values(PREDS), _leaf(torch, PREDS)
    two_class = torch.stack([torch.zeros_like(t), t], dim=1)
    target = torch.tensor([int(y > 0) for y in SIGNS])
    theirs = 2 * torch.nn.functional.multi_margin_loss(two_class, target, reduction=reduction)
    _check(losses.hinge(vs, SIGNS, reduction), vs, theirs, t)


def test_hinge_matches_micrograd_demo_formula():
    vs = _values(PREDS)
    expected = sum(max(0.0, 1 - y * s) for s, y in zip(PREDS, SIGNS, strict=True)) * (1.0 / 5)
    assert losses.hinge(vs, SIGNS).data == expected


LOGITS = [0.0, 1.5, -2.25, 30.0, -30.0, 800.0, -800.0, 1e-9]
PROBS = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.25]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_binary_cross_entropy_with_logits_is_stable_everywhere(torch: ModuleType, reduction):
    vs, t = _values(LOGITS), _leaf(torch, LOGITS)
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(t, torch.tensor(PROBS, dtype=torch.float64),
                                                reduction=reduction)
    _check(losses.binary_cross_entropy(vs, PROBS, reduction), vs, theirs, t)


ROWS = [[1.0, 2.0, 0.5], [-3.0, 0.0, 3.0], [1000.0, -1000.0, 999.0], [0.0, 0.0, 0.0]]
CLASSES = [1, 0, 2, 2]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_is_stable_for_huge_logits(torch: ModuleType, reduction):
    vs = [_values(r) for r in ROWS]
    t = _leaf(torch, ROWS)
    theirs = torch.nn.functional.cross_entropy(t, torch.tensor(CLASSES), reduction=reduction)
    ours = losses.cross_entropy(vs, CLASSES, reduction)
    ours.backward()
    theirs.backward()
    assert ours.data == pytest.approx(theirs.item(), abs=1e-12, rel=1e-12)
    for row, grads in zip(vs, t.grad.tolist(), strict=True):
        assert [v.grad for v in row] == pytest.approx(grads, abs=1e-12)


def test_l2_penalty(torch: ModuleType):
    vs, t = _values(PREDS), _leaf(torch, PREDS)
    _check(losses.l2(vs, 1e-4), vs, 1e-4 * (t**2).sum(), t)


def test_losses_use_only_engine_rules():
    vs = _values(LOGITS)
    rows = [_values(r) for r in ROWS]
    for loss in [losses.mse(vs, PROBS), losses.hinge(vs, [1.0] * len(vs)),
                 losses.binary_cross_entropy(vs, PROBS), losses.cross_entropy(rows, CLASSES),
                 losses.l2(vs, 0.5)]:
        assert {n.op for n in topological_order(loss)} <= {"", *RULES}


def test_accepts_plain_numbers_as_predictions():
    assert losses.mse([1.0, 2.0], [0.0, 0.0], "sum").data == 5.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: losses.mse(_values([1.0]), [1.0, 2.0]), "1 predictions but targets of shape \\(2,\\)"),
        (lambda: losses.mse([], []), "at least one sample"),
        (lambda: losses.hinge(_values([1.0]), [0.0]), "targets must be -1 or \\+1"),
        (lambda: losses.binary_cross_entropy(_values([1.0]), [2.0]), "targets must be in"),
        (lambda: losses.cross_entropy([_values([1.0, 2.0])], [2]), "not a class index"),
        (lambda: losses.mse(_values([1.0]), [1.0], "max"), "unknown reduction 'max'"),  # type: ignore[arg-type]
    ],
)
def test_bad_inputs_fail_loudly(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- batched mode: one Value holding a NumPy batch gives the same loss and gradients as a list ---


def _batched_vs_eager(loss_fn, preds, targets):
    eager = _values(preds)
    batch = Value(np.array(preds))
    a, b = loss_fn(eager, targets), loss_fn(batch, np.array(targets))
    a.backward()
    b.backward()
    assert b.data == pytest.approx(a.data, abs=1e-12, rel=1e-12)
    assert list(batch.grad) == pytest.approx([v.grad for v in eager], abs=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_batched_mse_hinge_bce(reduction):
    _batched_vs_eager(lambda p, t: losses.mse(p, t, reduction), PREDS, [0.5, -1.0, 2.0, 0.0, 1.0])
    _batched_vs_eager(lambda p, t: losses.hinge(p, t, reduction), PREDS, SIGNS)
    _batched_vs_eager(lambda p, t: losses.binary_cross_entropy(p, t, reduction), LOGITS, PROBS)


def test_batched_cross_entropy():
    eager = [_values(r) for r in ROWS]
    columns = [Value(np.array(col)) for col in zip(*ROWS, strict=True)]  # one batch Value per class
    a = losses.cross_entropy(eager, CLASSES)
    b = losses.cross_entropy(columns, np.array(CLASSES))
    a.backward()
    b.backward()
    assert b.data == pytest.approx(a.data, abs=1e-12)
    for k, col in enumerate(columns):
        assert list(col.grad) == pytest.approx([row[k].grad for row in eager], abs=1e-12)


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy"])
def test_compiled_stable_losses_recompute_their_shift_when_logits_grow_by_1000(loss: str) -> None:
    # The max that keeps exp from overflowing is a detached `max` node: replay recomputes it.
    x = Value(np.array([0.5, -1.0, 2.0]))
    w = [Value(0.3), Value(-0.7), Value(1.1)]
    b = [Value(0.0), Value(0.2), Value(-0.1)]

    def build() -> Value:
        if loss == "cross_entropy":
            return losses.cross_entropy([wi * x + bi for wi, bi in zip(w, b, strict=True)], [0, 2, 1])
        return losses.binary_cross_entropy(w[0] * x + b[0], [1.0, 0.0, 1.0])

    prog = chainrule.compile(build())
    for bi, shift in zip(b, (1000.0, 1001.0, 998.0), strict=True):
        bi.data += shift
    value = prog()
    with chainrule.no_grad():
        eager = build().data  # built again from the new numbers
    assert math.isfinite(value) and value == pytest.approx(eager, rel=1e-12)
