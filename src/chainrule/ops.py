"""Ops as functions: `apply_op` (any row of RULES over Values or numbers), `linear`, and your own op,
a rule written like a row of `RULES` and checked against finite differences when you define it.

    softplus = define_op("softplus",
                         forward=lambda m, x: m.log(1.0 + m.exp(x)),
                         local=lambda m, out, x: (m.sigmoid(x),),
                         formula="∂/∂x = σ(x)")
    y = Value(0.5).softplus()        # or softplus(Value(0.5)); a batch, create_graph and compile work too

`forward(m, *xs)` computes the output from the inputs' data and `local(m, out, *xs)` returns d(out)/d(x_i)
for every input, both against the math namespace `m` (`m.exp`, `m.log`, `m.tanh`, `m.sigmoid`, `m.where`,
...; the same names for floats, NumPy batches and Values). Written against `m`, one rule serves every
interpretation: eager floats, batches, `backward(create_graph=True)`, `chainrule.compile`, `check_graph`
and the explorer (which shows `formula`). The op joins `RULES` like a built-in one.

At definition the rule is tried at a few points of its domain (points where `forward` raises, or is not
finite, are outside it): its local derivatives against central differences of its forward; the batch
math and the Value math against the floats; and the Values' own derivatives (the second derivatives
`create_graph` gives) against central differences of `local`. A disagreement raises `GradcheckError`
naming the op, the input and the point; a rule that does not run on some kind of number (a `math.exp` in
place of `m.exp`) raises TypeError saying which.
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from .engine import RULES, Rule, Value, _data, _lift, _method
from .gradcheck import GradcheckError
from .numerics import FLOAT_MATH, Math, ValueMath

BUILT_IN = frozenset(RULES)  # the engine's own ops: never replaced from here
_DEFINED: set[str] = set()  # ops made by define_op (a notebook cell run again redefines its op)
_METHODS: set[str] = set()  # the Value methods define_op added
EPS, ATOL, RTOL = 1e-6, 1e-5, 1e-3  # gradcheck's defaults
# Where a rule is tried for one input: away from 0 and the integers (kinks, poles), both signs.
UNARY_POINTS = (-1.35, -0.45, 0.35, 1.2, 2.15)


def define_op(name: str, forward: Callable[..., Any], local: Callable[..., tuple[Any, ...]],
              formula: str = "", *, points: Sequence[Sequence[float] | float] | None = None
              ) -> Callable[..., Value]:
    """Add the op `name` to RULES, after checking its rule (see the module's docstring), and return it as a
    function of Values or numbers. It also becomes a Value method (`x.name()`, or `x.name(y, ...)`) when
    Value has no attribute of that name. `points` (one float per input, or a tuple for several inputs)
    replaces the points it is checked at. Defining the same name again (a notebook cell run twice)
    replaces the op; a built-in op's name is refused."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"define_op: an op's name must be an identifier, like 'softplus', got {name!r}")
    if name in BUILT_IN:
        raise ValueError(f"define_op: {name!r} is a built-in op; choose another name")
    if name in RULES and name not in _DEFINED:
        raise ValueError(f"define_op: RULES already has an op {name!r}, not made by define_op")
    if not callable(forward) or not callable(local):
        raise TypeError(f"define_op({name!r}): forward and local must be functions, like RULES' rows")
    if not isinstance(formula, str):
        raise TypeError(f"define_op({name!r}): formula must be a str, got {type(formula).__name__}")
    arity = _arity(name, forward, local)
    _check(name, forward, local, _points(name, arity, points))
    RULES[name] = Rule(forward, local, formula)  # a method already made for it is remade (RULES' rebind)
    _DEFINED.add(name)

    def op(*xs: Value | float) -> Value:
        if arity is not None and len(xs) != arity:
            raise TypeError(f"{name} takes {arity} input{'s' * (arity != 1)}, got {len(xs)}")
        return apply_op(name, *xs)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"The op {name!r} made by define_op. {formula}".strip()
    if name not in _METHODS and not hasattr(Value, name):
        # One input: the engine's own method (the fast path for floats). More: a method calling op.
        setattr(Value, name, _method(name) if arity == 1 else op)
        _METHODS.add(name)
    return op


def apply_op(name: str, *xs: Value | float) -> Value:
    """The node of op `name` (a key of RULES) over `xs`, as the ops' methods make it: numbers become
    leaves (as in `a + 1`), a batch among the inputs makes the node a batch. `apply_op("max", *logits)` is
    the largest logit; `linear` below is `apply_op("linear", b, *w, *x)`."""
    if name not in RULES:
        raise ValueError(f"no op {name!r} in chainrule.RULES")
    if not xs:
        raise TypeError(f"{name} needs at least one input")
    parents: Any = xs
    kinds = set(map(type, xs))
    if not all(issubclass(k, Value) for k in kinds):  # lifting only where needed: a layer calls this often
        parents = tuple(map(_lift, xs))
        if None in parents:
            bad = xs[parents.index(None)]
            raise TypeError(f"{name} takes Values or real numbers, got {type(bad).__name__}: {bad!r}")
    kind = next((k for k in kinds if k is not Value and issubclass(k, Value)), Value)  # a batch: its kind
    return kind._apply(name, parents, tuple(map(_data, parents)))


def linear(w: Sequence[Value | float], x: Sequence[Value | float], b: Value | float) -> Value:
    """b + w·x as one node (a neuron before its activation): `b + w[0]*x[0] + w[1]*x[1] + ...`, with
    micrograd's order of additions (the same floats as its chain of `+` and `*`)."""
    if len(w) != len(x):
        raise ValueError(f"linear needs as many weights as inputs, got {len(w)} and {len(x)}")
    return apply_op("linear", b, *w, *x)


def remove_op(name: str) -> None:
    """Take an op made by define_op out of RULES, with the Value method it added."""
    if name not in _DEFINED:
        raise ValueError(f"remove_op: {name!r} was not made by define_op")
    del RULES[name]
    _DEFINED.discard(name)
    if name in _METHODS:
        delattr(Value, name)
        _METHODS.discard(name)


def _arity(name: str, forward: Callable[..., Any], local: Callable[..., Any]) -> int | None:
    """How many inputs the rule takes (None: any number, as `linear`), from forward's signature."""
    try:
        params = list(inspect.signature(forward).parameters.values())
        local_params = list(inspect.signature(local).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: assume one input
        return 1
    variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
    n = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) - 1  # minus m
    n_local = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in local_params) - 2
    local_variadic = any(p.kind is p.VAR_POSITIONAL for p in local_params)
    if n < 0 or (n == 0 and not variadic):
        raise TypeError(f"define_op({name!r}): forward is forward(m, *xs): the math namespace, then inputs")
    if not local_variadic and n_local != n:
        raise TypeError(f"define_op({name!r}): local is local(m, out, *xs): forward takes {n} input(s), "
                        f"local {max(n_local, 0)}")
    return None if variadic else n


def _points(name: str, arity: int | None, points: Sequence[Any] | None) -> list[tuple[float, ...]]:
    n = 3 if arity is None else arity  # a variadic rule is tried with three inputs
    if points is None:
        if n == 1:
            return [(x,) for x in UNARY_POINTS]
        rng = random.Random(0)  # its own generator: the caller's random state is left alone
        return [tuple(round(rng.uniform(0.3, 2.0) * rng.choice((-1, 1)), 3) for _ in range(n))
                for _ in range(6)]
    out = []
    for p in points:
        point = (p,) if isinstance(p, int | float) else tuple(p)
        if not all(type(x) in (int, float) and math.isfinite(x) for x in point):  # bool is no number here
            raise TypeError(f"define_op({name!r}): points are finite numbers, got {p!r}")
        if arity is not None and len(point) != arity:
            raise ValueError(f"define_op({name!r}): takes {arity} input(s), but point {p!r} has {len(point)}")
        out.append(tuple(map(float, point)))
    if not out:
        raise ValueError(f"define_op({name!r}): points is empty")
    return out


def _forward_at(forward: Callable[..., Any], xs: Sequence[float]) -> float | None:
    """forward on floats, or None outside its domain (an error, or a result that is not a finite float)."""
    try:
        out = forward(FLOAT_MATH, *xs)
    except (ArithmeticError, ValueError):
        return None
    return float(out) if isinstance(out, int | float) and math.isfinite(out) else None


def _where(name: str, xs: Sequence[float], i: int) -> str:
    return f"op {name!r}, input {i}, at {tuple(xs) if len(xs) > 1 else xs[0]}"


def _check(name: str, forward: Callable[..., Any], local: Callable[..., Any],
           points: list[tuple[float, ...]]) -> None:
    checked = []
    for xs in points:
        out = _forward_at(forward, xs)
        if out is None:
            continue  # outside the domain
        grads = _locals(name, local, FLOAT_MATH, out, xs, "floats")
        for i, analytic in enumerate(grads):
            up = _forward_at(forward, [*xs[:i], xs[i] + EPS, *xs[i + 1 :]])
            down = _forward_at(forward, [*xs[:i], xs[i] - EPS, *xs[i + 1 :]])
            if up is None or down is None:
                continue  # at the edge of the domain: no central difference
            numeric = (up - down) / (2 * EPS)
            if not abs(analytic - numeric) <= ATOL + RTOL * abs(numeric):
                raise GradcheckError(f"define_op: {_where(name, xs, i)}, the local derivative is {analytic} "
                                     f"by `local`, {numeric} by finite differences")
        checked.append((xs, out, grads))
    if not checked:
        raise ValueError(f"define_op({name!r}): forward fails (or is not finite) at every point tried "
                         f"({points}); pass points= inside its domain")
    _check_batch(name, forward, local, checked)
    _check_values(name, forward, local, checked)


def _locals(name: str, local: Callable[..., Any], m: Math, out: Any, xs: Sequence[Any], kind: str
            ) -> list[Any]:
    try:
        grads = list(local(m, out, *xs))
    except (AttributeError, TypeError) as err:
        raise TypeError(f"define_op({name!r}): local does not run on {kind} ({err}); write it against the "
                        "math namespace m (m.exp(x), not math.exp(x))") from None
    if len(grads) != len(xs):
        raise TypeError(f"define_op({name!r}): local must return one derivative per input ({len(xs)}), "
                        f"got {len(grads)}")
    return grads


def _check_batch(name: str, forward: Callable[..., Any], local: Callable[..., Any],
                 checked: list[tuple[tuple[float, ...], float, list[float]]]) -> None:
    """The rule on NumPy batches (chainrule.batch, compile) gives the floats' numbers, point by point."""
    import numpy as np

    from .batch import ARRAY_MATH

    columns = [np.array([xs[i] for xs, _, _ in checked]) for i in range(len(checked[0][0]))]
    try:
        out = np.broadcast_to(forward(ARRAY_MATH, *columns), (len(checked),))
    except (AttributeError, TypeError) as err:
        raise TypeError(f"define_op({name!r}): forward does not run on batches ({err}); write it against the "
                        "math namespace m (m.exp(x), not math.exp(x))") from None
    grads = _locals(name, local, ARRAY_MATH, out, columns, "batches")
    for k, (xs, want_out, want_grads) in enumerate(checked):
        if not math.isclose(float(out[k]), want_out, rel_tol=1e-9, abs_tol=1e-12):
            raise GradcheckError(f"define_op: op {name!r} at {xs}: forward gives {want_out} on floats, "
                                 f"{float(out[k])} on a batch")
        for i, g in enumerate(grads):
            got = float(np.broadcast_to(g, (len(checked),))[k])
            if not math.isclose(got, want_grads[i], rel_tol=1e-9, abs_tol=1e-12):
                raise GradcheckError(f"define_op: {_where(name, xs, i)}, local gives {want_grads[i]} on "
                                     f"floats, {got} on a batch")


def _check_values(name: str, forward: Callable[..., Any], local: Callable[..., Any],
                  checked: list[tuple[tuple[float, ...], float, list[float]]]) -> None:
    """The rule on Values (create_graph): the same first derivatives, and their own derivatives (the
    second derivatives) against central differences of `local` on floats."""
    for xs, out, want in checked:
        inputs = [Value(x) for x in xs]
        # The op's node, as the engine makes it (the rule is not in RULES yet): backward through the local
        # derivative's graph then also passes through the op itself, as create_graph's does.
        node = Value(out)
        node.op, node.parents, node.local_grads = name, tuple(inputs), tuple(want)
        grads = _locals(name, local, ValueMath, node, inputs, "Values")
        for i, g in enumerate(grads):
            got = g.data if isinstance(g, Value) else float(g)
            if not math.isclose(got, want[i], rel_tol=1e-9, abs_tol=1e-12):
                raise GradcheckError(f"define_op: {_where(name, xs, i)}, local gives {want[i]} on floats, "
                                     f"{got} on Values")
            for v in inputs:
                v.grad = 0.0
            if isinstance(g, Value):
                g.backward()
            for j, v in enumerate(inputs):
                up, down = list(xs), list(xs)
                up[j] += EPS
                down[j] -= EPS
                f_up, f_down = _forward_at(forward, up), _forward_at(forward, down)
                if f_up is None or f_down is None:
                    continue
                numeric = (float(local(FLOAT_MATH, f_up, *up)[i]) - float(local(FLOAT_MATH, f_down, *down)[i])
                           ) / (2 * EPS)
                analytic = v.grad
                if not abs(analytic - numeric) <= 1e-4 + 1e-3 * abs(numeric):
                    raise GradcheckError(
                        f"define_op: {_where(name, xs, i)}: d/d(input {j}) of the local derivative is "
                        f"{analytic} through the Values, {numeric} by finite differences: `local` computes "
                        "part of it from plain numbers (math.*, .data), so create_graph's second derivatives "
                        "would be wrong")
