"""The seeds' worked examples, written once: `chainrule tour`, the examples and the tests all build these.

The seeds are the lecture notes chainrule follows (micrograd's, from a derivative by hand to an MLP).
Each graph is a function of its leaves that labels the values on the way, as the lectures do, so a
drawing or a printout names them; an `Example` adds the lecture's numbers and what it teaches.

    L, v = FIRST_GRAPH.build()     # L = (a*b + c)*f at a=2, b=-3, c=10, f=-2; v: every value by label
    L.backward(); v["a"].grad      # 6.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chainrule.engine import Value, topological_order
from chainrule.gradcheck import GradcheckError, GraphReport, check_graph, gradcheck, numerical_grad


def _named(v: Value, label: str) -> Value:
    v.label = label
    return v


def first_graph(a: Value, b: Value, c: Value, f: Value) -> Value:
    """L = (a*b + c)*f, the first graph of the seeds, with e = a*b and d = e + c."""
    e = _named(a * b, "e")
    d = _named(e + c, "d")
    return _named(d * f, "L")


def neuron(x1: Value, x2: Value, w1: Value, w2: Value, b: Value) -> Value:
    """o = tanh(x1*w1 + x2*w2 + b): one neuron with two inputs."""
    x1w1 = _named(x1 * w1, "x1*w1")
    x2w2 = _named(x2 * w2, "x2*w2")
    n = _named(_named(x1w1 + x2w2, "x1*w1 + x2*w2") + b, "n")
    return _named(n.tanh(), "o")


def neuron_by_exp(x1: Value, x2: Value, w1: Value, w2: Value, b: Value) -> Value:
    """The same neuron with tanh written out, (e^{2n} - 1)/(e^{2n} + 1): another graph, the same gradients."""
    n = _named(x1 * w1 + x2 * w2 + b, "n")
    e = _named((2 * n).exp(), "e")
    return _named((e - 1) / (e + 1), "o")


def twice(a: Value) -> Value:
    """b = a + a: a value used twice, the bug the seeds found (its gradient must accumulate)."""
    return _named(a + a, "b")


def reused(a: Value, b: Value) -> Value:
    """f = (a*b)*(a + b): a and b each reach f along two paths."""
    d = _named(a * b, "d")
    e = _named(a + b, "e")
    return _named(d * e, "f")


@dataclass(frozen=True)
class Example:
    """A seeds' graph with the lecture's leaf values, and what it shows."""

    title: str
    note: str
    inputs: Mapping[str, float]  # leaf name -> value, in the lecture's order (the graph's arguments)
    graph: Callable[..., Value]

    def leaves(self) -> list[Value]:
        """Fresh leaves holding the lecture's values, labelled by name."""
        return [Value(x, label=name) for name, x in self.inputs.items()]

    def build(self) -> tuple[Value, dict[str, Value]]:
        """The graph on fresh leaves: (output, every labelled value of the graph by its label)."""
        out = self.graph(*self.leaves())
        return out, {v.label: v for v in topological_order(out) if v.label}

    def check(self) -> Check:
        """backward()'s gradients beside finite differences, as `chainrule tour` prints them."""
        leaves = self.leaves()
        out = self.graph(*leaves)
        out.backward()
        values = list(self.inputs.values())

        def alone(i: int) -> Callable[[float], Value]:  # out as a function of leaf i, the others held
            return lambda t: self.graph(*[Value(t if j == i else x) for j, x in enumerate(values)])

        # The leaves in the order they are named, then the labelled values from the leaves to the output.
        rows = [Row(v.label, float(v.data), v.grad, numerical_grad(alone(i), values[i]))
                for i, v in enumerate(leaves)]
        rows += [Row(v.label, float(v.data), v.grad, None) for v in topological_order(out)
                 if v.label and v.parents]
        try:
            gradcheck(self.graph, *leaves)
            failure = ""
        except GradcheckError as err:
            failure = str(err)
        return Check(rows, failure, check_graph(out))


@dataclass(frozen=True)
class Row:
    """One value of a checked graph: its data, backward()'s gradient, and for a leaf the finite difference."""

    label: str
    data: float
    grad: float
    finite_difference: float | None


@dataclass(frozen=True)
class Check:
    rows: list[Row]
    gradcheck_failure: str  # empty when backward agrees with finite differences for every leaf
    graph: GraphReport  # check_graph: every op's rule against finite differences

    @property
    def ok(self) -> bool:
        return not self.gradcheck_failure and self.graph.ok


FIRST_GRAPH = Example(
    "L = (a*b + c)*f: the seeds' first graph",
    "'+' routes the gradient unchanged; '*' scales it by the other input: dL/da = f·b = 6.",
    {"a": 2.0, "b": -3.0, "c": 10.0, "f": -2.0}, first_graph)
NEURON = Example(
    "o = tanh(x1*w1 + x2*w2 + b): the neuron, with b = 6.8813735870195432 so that n = 0.8814",
    "do/dn = 1 - o² = 0.5; w2 gets no gradient because its input x2 is 0.",
    {"x1": 2.0, "x2": 0.0, "w1": -3.0, "w2": 1.0, "b": 6.8813735870195432}, neuron)
TWICE = Example(
    "b = a + a: the bug the seeds found",
    "db/da = 2, not 1: a node used twice must *accumulate* its gradients (+=), not assign them.",
    {"a": 3.0}, twice)
REUSED = Example(
    "f = (a*b)*(a + b): a and b each feed two paths",
    "Each leaf's gradient is the sum over its paths to f (the multivariable chain rule).",
    {"a": -2.0, "b": 3.0}, reused)
EXAMPLES = (FIRST_GRAPH, NEURON, TWICE, REUSED)

# The seeds' first training set: MLP(3, [4, 4, 1]) learns these four targets.
TINY_XS = ((2.0, 3.0, -1.0), (3.0, -1.0, 0.5), (0.5, 1.0, 1.0), (1.0, 1.0, -1.0))
TINY_YS = (1.0, -1.0, -1.0, 1.0)
