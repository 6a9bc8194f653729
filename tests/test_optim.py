"""chainrule.optim against torch.optim on the same parameters and gradients, to 1e-12 in float64."""

from __future__ import annotations

import inspect
import math
from types import ModuleType

import pytest

from chainrule import engine, optim
from chainrule.engine import Value

START = [0.5, -1.25, 2.0, 0.0, -0.03]
STEPS = 25


def _grad(x: float, t: int, i: int) -> float:
    # A gradient that changes sign and size over steps, different for every parameter.
    return math.sin(3.0 * x + 0.7 * t + i) + 0.1 * x


def _run_both(torch, ours_cls, theirs_cls, **kwargs):
    params = [Value(x) for x in START]
    ours = ours_cls(params, **kwargs)
    tparams = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in START]
    theirs = theirs_cls(tparams, **kwargs)
    for t in range(STEPS):
        ours.zero_grad()
        theirs.zero_grad()
        for i, (p, q) in enumerate(zip(params, tparams, strict=True)):
            p.grad = _grad(p.data, t, i)
            q.grad = torch.tensor(_grad(q.item(), t, i), dtype=torch.float64)
        ours.step()
        theirs.step()
        assert [p.data for p in params] == pytest.approx([q.item() for q in tparams], abs=1e-12, rel=0)
    return params


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.1},
        {"lr": 0.1, "momentum": 0.9},
        {"lr": 0.05, "weight_decay": 0.01},
        {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1},
    ],
)
def test_sgd_matches_torch(torch: ModuleType, kwargs):
    _run_both(torch, optim.SGD, torch.optim.SGD, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.01},
        {"lr": 0.1, "betas": (0.8, 0.99), "eps": 1e-6},
        {"lr": 0.01, "weight_decay": 0.1},
    ],
)
def test_adam_matches_torch(torch: ModuleType, kwargs):
    _run_both(torch, optim.Adam, torch.optim.Adam, **kwargs)


@pytest.mark.parametrize("kwargs", [{"lr": 0.01}, {"lr": 0.05, "weight_decay": 0.3}])
def test_adamw_matches_torch(torch: ModuleType, kwargs):
    _run_both(torch, optim.AdamW, torch.optim.AdamW, **kwargs)


def test_linear_decay_is_micrograds_schedule():
    lr = optim.linear_decay(1.0, 0.1, 100)
    assert [lr(k) for k in range(100)] == [1.0 - 0.9 * k / 100 for k in range(100)]


def test_a_schedule_is_called_with_the_step_index():
    seen: list[int] = []

    def schedule(k: int) -> float:
        seen.append(k)
        return 0.5

    p = Value(1.0)
    opt = optim.SGD([p], lr=schedule)
    for _ in range(3):
        p.grad = 1.0
        opt.step()
    assert seen == [0, 1, 2] and p.data == pytest.approx(-0.5)


def test_sgd_is_micrograds_update():
    p = Value(0.3)
    p.grad = 0.7
    optim.SGD([p], lr=0.9).step()
    expected = 0.3
    expected -= 0.9 * 0.7  # micrograd: p.data -= learning_rate * p.grad
    assert p.data == expected


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, 0.1, momentum=0.9, weight_decay=0.1),
                                  lambda ps: optim.Adam(ps, weight_decay=0.1),
                                  lambda ps: optim.AdamW(ps)])
def test_step_changes_data_only_and_builds_no_graph(make, monkeypatch):
    params = [Value(x, label=f"p{i}") for i, x in enumerate(START)]
    opt = make(params)
    for p in params:
        p.grad = 0.5

    def no_graph(*args, **kwargs):
        raise AssertionError("an optimizer step built a graph node")

    # Every function Value defines (the constructor, every op, backward), read off the class so an op
    # added later is covered too: a step reads .grad and writes .data, and calls none of them.
    for name, attr in vars(engine.Value).items():
        if inspect.isfunction(attr) and name != "__repr__":
            monkeypatch.setattr(engine.Value, name, no_graph)
    opt.step()
    assert all(p.op == "" and p.parents == () and type(p.data) is float for p in params)
    assert [p.data for p in params] != START
    assert all(p.grad == 0.5 for p in params)  # step reads grads, never clears them
    opt.zero_grad()
    assert all(p.grad == 0.0 for p in params)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: optim.SGD([], lr=0.1), "empty parameter list"),
        (lambda: optim.SGD([Value(1.0)], lr=-1.0), "learning rate"),
        (lambda: optim.SGD([Value(1.0)], lr=float("nan")), "learning rate"),
        (lambda: optim.SGD([Value(1.0)], lr=0.1, momentum=-0.5), "momentum"),
        (lambda: optim.Adam([Value(1.0)], betas=(1.0, 0.999)), "betas"),
        (lambda: optim.linear_decay(steps=0), "steps"),
    ],
)
def test_bad_settings_fail_loudly(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_step_on_a_batch_grad_is_refused_and_changes_nothing():
    import numpy as np

    x = Value(2.0, "x")
    x.grad = np.array([1.0, 2.0])  # a batch's gradient left on a parameter
    with pytest.raises(TypeError, match=r"every parameter must hold a float \.data and \.grad, not a batch"):
        optim.SGD([x], lr=0.1).step()
    assert x.data == 2.0
    x.grad = 0.0
    (x * x).backward(create_graph=True)  # x.grad is a Value, the graph of 2x: the step takes its number, 4
    optim.SGD([x], lr=0.1).step()
    assert x.data == pytest.approx(2.0 - 0.1 * 4.0) and type(x.data) is float
