"""ArrayStep: a compiled step with the parameters, grads and optimizer state in arrays, against the same
training on Values (optimizer.step() after backward), and the moments the Values and the arrays agree."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pytest

from chainrule import Value, compile
from chainrule.data import make_moons
from chainrule.losses import cross_entropy
from chainrule.nn import MLP
from chainrule.optim import SGD, Adam, AdamW, Optimizer
from chainrule.trainstep import ArrayStep

X, Y = make_moons(40, noise=0.1, random_state=3)
OPTIMIZERS: dict[str, Callable[[list[Value]], Optimizer]] = {
    "sgd": lambda ps: SGD(ps, lr=0.3),
    "momentum": lambda ps: SGD(ps, lr=0.1, momentum=0.9),  # its first velocity is the step's grad itself
    "momentum+decay": lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3),
    "adam": lambda ps: Adam(ps, lr=0.02, betas=(0.85, 0.99)),
    "adamw": lambda ps: AdamW(ps, lr=lambda k: 0.02 * (1 - k / 20)),
}


def model_and_loss() -> tuple[MLP, Value]:
    model = MLP(2, [8, 8, 2], "tanh", rng=random.Random(7))
    outputs = model([Value(X[:, 0].copy()), Value(X[:, 1].copy())])
    return model, cross_entropy(outputs, Y)


def eager_run(name: str, steps: int) -> tuple[list[float], list[float], list[float]]:
    model = MLP(2, [8, 8, 2], "tanh", rng=random.Random(7))
    opt = OPTIMIZERS[name](model.parameters())
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = cross_entropy(model([Value(X[:, 0].copy()), Value(X[:, 1].copy())]), Y)
        loss.backward()
        opt.step()
        losses.append(float(loss.data))
    return losses, [p.data for p in model.parameters()], [p.grad for p in model.parameters()]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_twenty_steps_on_arrays_leave_the_model_as_training_on_values(name: str) -> None:
    model, loss = model_and_loss()
    step, program = ArrayStep(OPTIMIZERS[name](model.parameters())), compile(loss)
    losses = [step(program) for _ in range(20)]
    step.sync()
    want_losses, want_data, want_grads = eager_run(name, 20)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose([p.data for p in model.parameters()], want_data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose([p.grad for p in model.parameters()], want_grads, rtol=1e-12, atol=1e-12)
    assert losses[-1] < losses[0]


def test_the_values_change_only_when_synced_and_reload_reads_them() -> None:
    model, loss = model_and_loss()
    params = model.parameters()
    before = [p.data for p in params]
    step, program = ArrayStep(SGD(params, lr=0.5)), compile(loss)
    np.testing.assert_array_equal(step.data, before)  # made: the arrays read the Values
    step(program)
    assert [p.data for p in params] == before and all(p.grad == 0.0 for p in params)
    assert not np.array_equal(step.data, before)
    step.sync()
    assert [p.data for p in params] == step.data.tolist() and [p.grad for p in params] == step.grad.tolist()
    params[0].data = 5.0  # code that changes a Value, then reload: the next step starts from it
    step.reload()
    assert step.data[0] == 5.0
    grad0 = step.grad[0]
    step(program)
    assert step.data[0] == pytest.approx(5.0 - 0.5 * step.grad[0]) and step.grad[0] != grad0


def test_release_gives_the_parameters_back_to_the_program_reading_values() -> None:
    model, loss = model_and_loss()
    params = model.parameters()
    program = compile(loss)
    step = ArrayStep(SGD(params, lr=0.5))
    step(program)
    step.release()
    for p in params:
        p.grad = 0.0
    value = program()  # reads the Values again and adds into their .grad
    assert value == pytest.approx(program())
    assert any(p.grad != 0.0 for p in params)


def test_a_parameter_the_loss_does_not_reach_gets_grad_zero() -> None:
    model, loss = model_and_loss()
    stray = Value(2.0, "stray")
    step = ArrayStep(SGD([*model.parameters(), stray], lr=0.1, weight_decay=0.5))
    step(compile(loss))
    assert step.grad[-1] == 0.0 and step.data[-1] == pytest.approx(2.0 - 0.1 * 0.5 * 2.0)
    step.sync()
    assert stray.data == pytest.approx(1.9) and stray.grad == 0.0


def test_one_step_object_serves_two_programs_over_the_same_parameters() -> None:
    # makemore's way: a program per batch shape, the parameters and Adam's moments shared.
    model = MLP(2, [4, 2], "tanh", rng=random.Random(1))
    twin = MLP(2, [4, 2], "tanh", rng=random.Random(1))
    halves = [(X[:20], Y[:20]), (X[20:32], Y[20:32])]  # two batch lengths: two programs
    programs = [compile(cross_entropy(model([Value(x[:, 0].copy()), Value(x[:, 1].copy())]), y))
                for x, y in halves]
    step, opt = ArrayStep(Adam(model.parameters(), lr=0.05)), Adam(twin.parameters(), lr=0.05)
    for k in range(6):
        x, y = halves[k % 2]
        got = step(programs[k % 2])
        opt.zero_grad()
        loss = cross_entropy(twin([Value(x[:, 0].copy()), Value(x[:, 1].copy())]), y)
        loss.backward()
        opt.step()
        assert got == pytest.approx(float(loss.data), rel=1e-12)
    step.sync()
    np.testing.assert_allclose([p.data for p in model.parameters()], [p.data for p in twin.parameters()],
                               rtol=1e-12, atol=1e-12)


def test_two_steps_may_run_one_program_in_turn() -> None:
    a, b = Value(0.3, "a"), Value(-0.7, "b")
    program = compile((a * b).tanh() + a * a)
    s1, s2 = ArrayStep(SGD([a], lr=0.1)), ArrayStep(SGD([b], lr=0.1))
    s1(program), s2(program), s1(program)  # s2 holds b, then s1 holds a again (and b is read from b)

    def grads(x: float, y: float) -> tuple[float, float]:  # d/da and d/db of tanh(a·b) + a²
        t = np.tanh(x * y)
        return (1 - t * t) * y + 2 * x, (1 - t * t) * x

    # by hand: each step moves its own parameter by -0.1 · d/dp, the other read as its Value holds it
    x, y = 0.3, -0.7
    x -= 0.1 * grads(x, y)[0]           # s1: a moves
    y_s2 = y - 0.1 * grads(0.3, y)[1]   # s2: b moves, reading a from its Value (still 0.3: s1 never synced)
    x -= 0.1 * grads(x, -0.7)[0]        # s1 again: b read from its Value (still -0.7: s2 never synced)
    assert s1.data[0] == pytest.approx(x, rel=1e-14) and s2.data[0] == pytest.approx(y_s2, rel=1e-14)
    s2.release()  # s1 holds the program now: releasing s2 leaves s1's hold alone
    assert program.holder is s1


def test_bad_arguments_are_refused() -> None:
    model, loss = model_and_loss()
    program = compile(loss)
    with pytest.raises(TypeError, match="runs a compiled program"):
        ArrayStep(SGD(model.parameters(), lr=0.1))(loss)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"needs a chainrule\.optim optimizer"):
        ArrayStep(object())  # type: ignore[arg-type]
    p = model.parameters()[0]
    with pytest.raises(ValueError, match="holds a parameter twice"):
        ArrayStep(SGD([p, p], lr=0.1))
    with pytest.raises(ValueError, match="not a number input of this program"):
        program.hold([Value(1.0, "elsewhere")])
    batch = Value(np.array([1.0, 2.0]), "batch")
    with pytest.raises(TypeError, match="every parameter must hold a float"):
        ArrayStep(SGD([*model.parameters(), batch], lr=0.1))
