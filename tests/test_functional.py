"""chainrule.functional: grad and value_and_grad as functions, nested for higher derivatives, and hessian;
checked against closed forms, finite differences and torch.autograd.functional.hessian (float64)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest

import chainrule.functional
from chainrule import Value, grad, hessian, numerical_grad, value_and_grad


def test_grad_and_value_and_grad() -> None:
    f = lambda x, y: x * y + y.tanh()
    dx, dy = grad(f)(2.0, 0.5)
    assert dx == 0.5 and dy == pytest.approx(2.0 + 1 - math.tanh(0.5) ** 2)
    value, grads = value_and_grad(f)(2.0, 0.5)
    assert value == pytest.approx(1.0 + math.tanh(0.5)) and grads == (dx, dy)
    assert grad(lambda x: 3 * x**2 - 4 * x + 5)(3.0) == pytest.approx(14.0)
    assert grad(lambda x: 7.0)(1.0) == 0.0  # a constant function


def test_grad_of_grad_of_the_seeds_quadratic() -> None:
    f = lambda x: 3 * x**2 - 4 * x + 5  # the seeds' first function: f' = 6x - 4, f'' = 6, f''' = 0
    for x in (-2.0, 0.0, 2 / 3, 3.0):
        assert grad(f)(x) == pytest.approx(6 * x - 4)
        assert grad(grad(f))(x) == pytest.approx(6.0)
        assert grad(grad(grad(f)))(x) == 0.0


def test_grad_of_grad_matches_closed_forms_and_finite_differences() -> None:
    d2_tanh = lambda x: -2 * math.tanh(x) * (1 - math.tanh(x) ** 2)
    for x in (-1.3, 0.2, 0.9):
        assert grad(grad(lambda t: t.tanh()))(x) == pytest.approx(d2_tanh(x), rel=1e-12)
        assert grad(grad(lambda t: t.exp() * t))(x) == pytest.approx(math.exp(x) * (x + 2), rel=1e-12)
        fd = numerical_grad(lambda t: grad(lambda u: u.sigmoid() * u**3)(t), x)
        assert grad(grad(lambda u: u.sigmoid() * u**3))(x) == pytest.approx(fd, rel=1e-6)


def test_grad_with_values_returns_values_and_leaves_their_grads_alone() -> None:
    x = Value(1.5, "x")
    x.grad = 42.0
    g = grad(lambda t: t**3)(x)
    assert isinstance(g, Value) and g.data == pytest.approx(3 * 1.5**2)
    assert x.grad == 42.0  # the inner pass did not leak into the caller's grads
    g.backward()
    assert x.grad == pytest.approx(42.0 + 6 * 1.5)


def test_grad_of_grad_in_two_variables_gives_mixed_partials() -> None:
    f = lambda x, y: x**2 * y + (x * y).tanh()
    # d/dy of df/dx, by nesting: a mixed partial
    dxdy = grad(lambda x, y: grad(f)(x, y)[0])(0.7, -0.4)[1]
    t = math.tanh(0.7 * -0.4)
    expected = 2 * 0.7 + (1 - t * t) + 0.7 * -0.4 * (-2 * t * (1 - t * t))
    assert dxdy == pytest.approx(expected, rel=1e-12)


HESSIAN_FUNCTIONS: dict[str, Callable[..., object]] = {
    "product-and-tanh": lambda x, y, z: x * y * z + (x * y).tanh() + z**3,
    "exp-log-sigmoid": lambda x, y, z: (x * z).exp() + (y * y + 1.0).log() * x + (x - y).sigmoid(),
    "neuron": lambda x, y, z: (x * 0.5 + y * -1.5 + z).tanh() ** 2 + x / (1.0 + z * z),
    "powers": lambda x, y, z: x**y + 2.0**z + (x * x + y * y + z * z) ** 0.5,
}
POINTS = [(0.3, 0.8, -0.5), (1.2, -0.7, 0.4), (0.9, 1.1, 1.3)]


@pytest.mark.parametrize("name", HESSIAN_FUNCTIONS)
def test_hessian_matches_torch(name: str, torch: Any) -> None:
    f = HESSIAN_FUNCTIONS[name]
    for point in POINTS:
        if name == "powers" and point[0] <= 0:
            continue
        ours = hessian(f)(*point)
        inputs = tuple(torch.tensor(p, dtype=torch.float64) for p in point)
        theirs = torch.autograd.functional.hessian(f, inputs)
        for i in range(3):
            for j in range(3):
                assert ours[i][j] == pytest.approx(theirs[i][j].item(), rel=1e-10, abs=1e-12), (i, j)


@pytest.mark.parametrize("name", HESSIAN_FUNCTIONS)
def test_hessian_is_symmetric_and_matches_finite_differences_of_the_gradient(name: str) -> None:
    f = HESSIAN_FUNCTIONS[name]
    rng = random.Random(7)
    point = [rng.uniform(0.3, 1.2) for _ in range(3)]
    h = hessian(f)(*point)
    for i in range(3):
        for j in range(3):
            assert h[i][j] == pytest.approx(h[j][i], rel=1e-12, abs=1e-12)  # mixed partials agree

            def dfi(t: float, i: int = i, j: int = j) -> float:
                p = list(point)
                p[j] = t
                return float(grad(f)(*p)[i])

            assert h[i][j] == pytest.approx(numerical_grad(dfi, point[j]), rel=1e-5, abs=1e-7)


def test_hessian_of_one_variable_and_of_a_constant() -> None:
    assert hessian(lambda x: 3 * x**2 - 4 * x + 5)(2.0) == [[6.0]]
    assert hessian(lambda x, y: 7.0)(1.0, 2.0) == [[0.0, 0.0], [0.0, 0.0]]
    assert hessian(lambda x, y: x + y)(1.0, 2.0) == [[0.0, 0.0], [0.0, 0.0]]


def test_hessian_is_exported() -> None:
    assert "hessian" in chainrule.__all__ and chainrule.hessian is chainrule.functional.hessian
