"""Backprop by hand, checked: the learner's gradients against the engine's, with the chain-rule sum of each.

The seeds' second lecture fills in `L.grad = 1`, `f.grad = 4`, `d.grad = -2`, ... by hand, from the
output back. `check_by_hand` says which of those numbers are right and, for each wrong one, the number
`backward()` gives and the sum that makes it: one term per use of the value, the user's grad times the
local derivative of its op (`RULES[op].formula`). The terms are the engine's own trace of `backward()`
(`chainrule.viz.steps.replay`), so the report explains exactly what the engine computes.

    from chainrule import check_by_hand
    L, v = FIRST_GRAPH.build()                           # chainrule.seeds: L = (a*b + c)*f
    report = check_by_hand(L, {"L": 1, "f": 4, "d": -2, "c": 2})
    report.ok                                            # False: c is wrong
    print(report)    # ✓ L, f, d; ✗ c: you have 2.0000, backward() gives -2.0000, and the sum that makes it

With no `grads`, the learner's numbers are the `.grad` fields they set by hand, as the lecture does, of
every labelled value (an unlabelled one, such as the constant 2 of `2 * a`, is not the learner's to set).
The graph's `.grad` fields are never changed by a check.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chainrule.engine import RULES, Value


@dataclass(frozen=True)
class Term:
    """One use of a value in the chain-rule sum: `user` (a node made from it) sends `upstream × local`."""

    user: Value  # the node that has the value among its parents
    slot: int  # which of `user`'s parents it is (a + a uses a at slots 0 and 1)
    upstream: float  # d(root)/d(user), the user's grad
    local: float  # d(user)/d(value), the local derivative of user's op
    contribution: float  # upstream × local


@dataclass(frozen=True)
class Check:
    """One of the learner's gradients: theirs, the engine's, and the terms that add up to the engine's."""

    value: Value
    name: str
    yours: float
    right: float
    ok: bool
    terms: tuple[Term, ...]  # empty for the root (its grad is 1 by definition) and for unused values
    is_root: bool
    wrong_upstream: tuple[str, ...] = ()  # users of this value whose grads the learner also got wrong

    def why(self) -> str:
        """The chain-rule sum that makes the right number, in words and numbers."""
        if self.is_root:
            return f"grad({self.name}) = 1: the output, d{self.name}/d{self.name}"
        if not self.terms:
            return f"nothing uses {self.name} on the way to the output, so its grad is 0"
        names = " + ".join(f"grad({_name(t.user)}) × ∂{_operand(t.user)}/∂{_operand(self.value)}"
                           for t in self.terms)
        from chainrule.viz.steps import factors  # decimals enough for each product shown to read true

        shown = [factors(t.local, t.upstream, t.contribution) for t in self.terms]
        figures = " + ".join(f"{upstream} × {local}" for local, upstream in shown)
        lines = [f"grad({self.name}) = {names} = {figures} = {_fmt(self.right)}",
                 *dict.fromkeys(_rule(t.user) for t in self.terms)]
        if len({id(t.user) for t in self.terms}) < len(self.terms):
            lines.append(f"{self.name} is used more than once by one op: each use adds its own term")
        if self.wrong_upstream:
            lines.append(f"your {', '.join(f'grad({n})' for n in self.wrong_upstream)} "
                         f"{'is' if len(self.wrong_upstream) == 1 else 'are'} wrong too: fix "
                         f"{'it' if len(self.wrong_upstream) == 1 else 'them'} first")
        return "\n".join(lines)

    def __str__(self) -> str:
        if self.ok:
            return f"✓ {self.name}: {_fmt(self.yours)}"
        return f"✗ {self.name}: you have {_fmt(self.yours)}, backward() gives {_fmt(self.right)}\n    " + \
            self.why().replace("\n", "\n    ")


@dataclass(frozen=True)
class Report:
    """What `check_by_hand` found, in the graph's backward order (the output first)."""

    checks: tuple[Check, ...]
    tolerance: float

    @property
    def ok(self) -> bool:
        """Every number checked is right."""
        return all(c.ok for c in self.checks)

    @property
    def wrong(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def __getitem__(self, key: Value | str) -> Check:
        for c in self.checks:
            if c.value is key or (isinstance(key, str) and c.name == key):
                return c
        raise KeyError(key)

    def __str__(self) -> str:
        right = len(self.checks) - len(self.wrong)
        head = f"{right} of {len(self.checks)} gradients right"
        return "\n".join([head + (":" if self.checks else ""), *(str(c) for c in self.checks)])

    def __repr__(self) -> str:
        return f"<Report: {len(self.checks) - len(self.wrong)} of {len(self.checks)} gradients right>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # a notebook cell's last line shows str(report)
        p.text(str(self))


def check_by_hand(root: Value, grads: Mapping[Value | str, float] | None = None, *,
                  tolerance: float = 1e-4) -> Report:
    """Check the learner's gradients of `root` (d root / d value) against `root.backward()`'s.

    grads: the learner's numbers by Value or by label (any subset of root's graph); None checks every
        labelled value's `.grad` as it is now (the lecture sets them by hand: `L.grad = 1.0`, ...).
    tolerance: a number is right within `tolerance · max(1, |right|)`, as far as the drawings' 4 decimals
        show (tanh's 1 - 0.7071² is 0.4999999999999999; 0.5 is right).

    Raises TypeError if root is not a Value or a number is not a real number, ValueError if root is a
    batch, a key is not a value of root's graph or a label names none or several of them.
    """
    if not isinstance(root, Value):
        raise TypeError(f"check_by_hand needs the output Value, not {type(root).__name__}")
    if type(root.data) is not float:
        raise ValueError("check_by_hand checks the gradients of one number; reduce the batch first "
                         "(.sum(), .mean())")
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    # viz.steps is imported here, not at the top: `import chainrule` stays free of the drawing code.
    from chainrule.viz.steps import replay

    run = replay(root)
    order = run.order
    if any(type(v.data) is not float for v in order):
        raise ValueError("check_by_hand works on graphs of numbers; this one holds a batch")
    yours = _learners(order, grads)
    terms: dict[int, list[Term]] = {}
    for s in run.steps:
        terms.setdefault(id(s.parent), []).append(
            Term(s.node, s.slot, float(s.upstream), float(s.local), float(s.contribution)))
    checks = []
    mistaken: set[int] = set()  # the values checked so far whose grads were wrong
    for v in reversed(order):  # backward's order: the output first, each value after all its users
        if id(v) not in yours:
            continue
        right, mine = float(run.grads[id(v)]), yours[id(v)]
        ok = math.isclose(mine, right, rel_tol=0.0, abs_tol=tolerance * max(1.0, abs(right))) or (
            math.isnan(mine) and math.isnan(right))
        uses = tuple(terms.get(id(v), ()))
        wrong_users = tuple(dict.fromkeys(_name(t.user) for t in uses if id(t.user) in mistaken))
        if not ok:
            mistaken.add(id(v))
        checks.append(Check(v, _name(v), mine, right, ok, uses, v is root, wrong_users))
    return Report(tuple(checks), float(tolerance))


def _learners(order: list[Value], grads: Mapping[Value | str, float] | None) -> dict[int, float]:
    """The learner's numbers by id(value), every key and number checked."""
    if grads is None:  # the labelled values: the ones a learner can name and set by hand
        labelled = {id(v): _number(v.grad, v) for v in order if v.label}
        if not labelled:
            raise ValueError("check_by_hand(root) checks the .grad of every labelled value, and this graph "
                             "has none: label the values (Value(2.0, label='a')) or pass grads={value: n}")
        return labelled
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads must map Values (or their labels) to numbers, not {type(grads).__name__}")
    members = {id(v) for v in order}
    by_label: dict[str, list[Value]] = {}
    for v in order:
        if v.label:
            by_label.setdefault(v.label, []).append(v)
    out: dict[int, float] = {}
    for key, number in grads.items():
        if isinstance(key, str):
            found = by_label.get(key, [])
            if len(found) != 1:
                known = ", ".join(sorted(by_label)) or "none"
                raise ValueError(f"{key!r} labels {'no' if not found else len(found)} values of this graph "
                                 f"(labels: {known}); pass the Value itself")
            v = found[0]
        elif isinstance(key, Value):
            if id(key) not in members:
                raise ValueError(f"{key!r} is not a value of this graph: root does not depend on it")
            v = key
        else:
            raise TypeError(f"grads' keys are Values or labels, not {type(key).__name__}: {key!r}")
        out[id(v)] = _number(number, v)
    return out


def _number(x: object, v: Value) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"the grad given for {_name(v)} must be a number, not {type(x).__name__}: {x!r}")
    return float(x)


def _rule(user: Value) -> str:
    """`d = e + c: ∂d/∂e = 1, ∂d/∂c = 1`: the op's formula (RULES[op].formula) read with this node's names.
    The formulas call the inputs x (one) or a, b (two); they are replaced all at once, so a learner's own
    `a` and `b` in another order read right (`c = b / a: ∂c/∂b = 1/a, ∂c/∂a = -b/a²`)."""
    names = [_operand(p) for p in user.parents]
    formula = RULES[user.op].formula
    placeholders = {1: ("x",), 2: ("a", "b")}.get(len(names), ())
    if placeholders and formula.startswith("∂/∂" + placeholders[0]):
        swap = dict(zip(placeholders, names, strict=True))
        formula = re.sub(r"(?<![A-Za-z_])[abx](?![A-Za-z_])", lambda m: swap.get(m[0], m[0]), formula)
    formula = formula.replace("∂/∂", f"∂{_operand(user)}/∂")
    return f"{_name(user)} = {user.op}({', '.join(_name(p) for p in user.parents)}): {formula}"


def _operand(v: Value) -> str:  # a name as it reads inside a formula: x1*w1 + x2*w2 in brackets
    name = _name(v)
    return name if re.fullmatch(r"[\w.]+", name) or not v.label else f"({name})"  # unlabelled: (op data)


def _name(v: Value) -> str:
    return v.label or f"({v.op or 'const'} {_fmt(float(v.data))})"


def _fmt(x: float) -> str:
    return f"{x:.4f}"
