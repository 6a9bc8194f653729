"""Neural networks from Values: Module, Neuron, Layer, MLP (micrograd's nn.py, grown a little).

A Neuron computes act(w·x + b); a Layer is a list of neurons fed the same inputs; an MLP chains layers.
Nothing here knows a derivative: every forward pass is ordinary Value arithmetic, so `loss.backward()`
reaches every weight through the engine's rules.
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias, cast, get_args

from chainrule.engine import Value
from chainrule.ops import linear

Activation: TypeAlias = Literal["tanh", "relu", "sigmoid", "linear"]
BiasInit: TypeAlias = Literal["uniform", "zero"]
Input: TypeAlias = Value | float
ACTIVATIONS: tuple[str, ...] = get_args(Activation)

# Each activation is one Value method (or none): no derivative is restated here.
_APPLY: dict[str, Callable[[Value], Value]] = {
    "tanh": lambda v: v.tanh(),
    "relu": lambda v: v.relu(),
    "sigmoid": lambda v: v.sigmoid(),
    "linear": lambda v: v,
}


def _check_activation(activation: str) -> Activation:
    if activation not in _APPLY:
        raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    return cast(Activation, activation)


def _check_bias_init(bias_init: str) -> BiasInit:
    if bias_init not in ("uniform", "zero"):
        raise ValueError(f"unknown bias_init {bias_init!r}; choose 'uniform' or 'zero'")
    return cast(BiasInit, bias_init)


def _check_count(name: str, n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return n


class Module:
    """Base class: something with parameters. A module made of modules names them in `parts()`; one holding
    Values itself overrides `parameters` and `named_parameters` (the same Values, in the same order).
    Subclasses also give their `config`."""

    def parts(self) -> list[tuple[str, Module]]:
        """The modules this one is made of, named, in parameter order."""
        return []

    def named_parameters(self) -> list[tuple[str, Value]]:
        return [(f"{name}.{p}", v) for name, part in self.parts() for p, v in part.named_parameters()]

    def parameters(self) -> list[Value]:
        """The Values training changes, in order. No names are built: a training step calls it (and
        `zero_grad`) every time, where naming 26k parameters took ~10x as long as zeroing them."""
        return [v for _, part in self.parts() for v in part.parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = 0.0

    def config(self) -> dict[str, Any]:
        """The architecture as plain JSON-able data: `build(module.config())` makes a twin."""
        raise NotImplementedError(f"{type(self).__name__} does not describe its architecture")

    def state_dict(self) -> dict[str, float]:
        """Parameter name -> value, in parameter order (PyTorch's `state_dict`, with floats for tensors)."""
        return {name: float(p.data) for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Copy values from `state` into the parameters.

        Everything is checked first (same names, every value a finite real number); on any problem a
        ValueError names the culprit and no parameter has changed.
        """
        named = self.named_parameters()
        if not isinstance(state, Mapping):
            raise ValueError(f"state must be a mapping of name -> number, got {type(state).__name__}")
        expected = [name for name, _ in named]
        missing = [k for k in expected if k not in state]
        known = set(expected)
        unexpected = [k for k in state if k not in known]
        if missing or unexpected:
            raise ValueError(
                f"state does not fit {self!r}: {len(state)} entries for {len(expected)} parameters"
                + (f"; missing {_few(missing)}" if missing else "")
                + (f"; unexpected {_few(unexpected)}" if unexpected else "")
            )
        values = [_finite_number(name, state[name]) for name in expected]
        for (_, p), x in zip(named, values, strict=True):
            p.data = x

    def num_parameters(self) -> int:
        return len(self.parameters())


def _few(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _finite_number(name: str, x: object) -> float:
    # bool is an int in Python; a weight of `true` is a corrupt file, not 1.0.
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ValueError(f"parameter {name!r} is not a number: {x!r}")
    if not math.isfinite(x):
        raise ValueError(f"parameter {name!r} is not finite: {x!r}")
    return float(x)


def _as_inputs(x: Input | Iterable[Input]) -> list[Input]:
    # A 1-neuron layer returns a bare Value (as the seeds do); the next layer takes it as a 1-list.
    # micrograd crashes here for MLP(2, [16, 1, 1]).
    if isinstance(x, Value | numbers.Real):  # numbers.Real: NumPy's scalars and Fraction too
        return [cast(Input, x)]
    return list(cast(Iterable[Input], x))


class Neuron(Module):
    """act(w·x + b). Weights are drawn from U(-1, 1); the bias too, unless bias_init='zero'."""

    def __init__(
        self,
        nin: int,
        activation: Activation = "tanh",
        *,
        bias_init: BiasInit = "uniform",
        rng: random.Random | None = None,
    ) -> None:
        # rng=None draws from Python's global `random`: `random.seed(1337)` replays the seeds, micrograd.
        draw = rng if rng is not None else random
        self.nin = _check_count("nin", nin)
        self.activation = _check_activation(activation)
        self.bias_init = _check_bias_init(bias_init)
        self.w = [Value(draw.uniform(-1, 1), label=f"w{i}") for i in range(nin)]
        self.b = Value(draw.uniform(-1, 1) if bias_init == "uniform" else 0.0, label="b")

    def __call__(self, x: Input | Iterable[Input]) -> Value:
        xs = _as_inputs(x)
        if len(xs) != self.nin:
            raise ValueError(f"{self!r} got {len(xs)} inputs")
        # b + w0*x0 + w1*x1 + ... as one node (the engine's `linear` op), in micrograd's order of
        # additions, so the demo's forward floats are micrograd's, bit for bit.
        return _APPLY[self.activation](linear(self.w, xs, self.b))

    def named_parameters(self) -> list[tuple[str, Value]]:
        return [(f"w.{i}", w) for i, w in enumerate(self.w)] + [("b", self.b)]

    def parameters(self) -> list[Value]:
        return [*self.w, self.b]

    def config(self) -> dict[str, Any]:
        return {"type": "Neuron", "nin": self.nin, "activation": self.activation,
                "bias_init": self.bias_init}

    def __repr__(self) -> str:
        return f"Neuron({self.nin} → {self.activation}, {self.num_parameters()} parameters)"


class Layer(Module):
    """`nout` neurons reading the same inputs. With one neuron it returns a Value, else a list."""

    def __init__(
        self,
        nin: int,
        nout: int,
        activation: Activation = "tanh",
        *,
        bias_init: BiasInit = "uniform",
        rng: random.Random | None = None,
    ) -> None:
        self.nin = _check_count("nin", nin)
        self.nout = _check_count("nout", nout)
        self.activation = _check_activation(activation)
        self.bias_init = _check_bias_init(bias_init)
        self.neurons = [Neuron(nin, activation, bias_init=bias_init, rng=rng) for _ in range(nout)]

    def __call__(self, x: Input | Iterable[Input]) -> Value | list[Value]:
        xs = _as_inputs(x)
        outs = [n(xs) for n in self.neurons]
        return outs[0] if len(outs) == 1 else outs

    def parts(self) -> list[tuple[str, Module]]:
        return [(f"neurons.{i}", n) for i, n in enumerate(self.neurons)]

    def config(self) -> dict[str, Any]:
        return {"type": "Layer", "nin": self.nin, "nout": self.nout, "activation": self.activation,
                "bias_init": self.bias_init}

    def __repr__(self) -> str:
        return (f"Layer({self.nin} → {self.nout} {self.activation}, "
                f"{self.num_parameters()} parameters)")


class MLP(Module):
    """Layers of sizes `nouts` after `nin` inputs.

    Every layer uses `activation`, the last one too unless `output_activation` says otherwise
    (the seeds: tanh throughout; micrograd's demo: relu hidden, linear output, bias_init='zero').
    """

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        activation: Activation = "tanh",
        output_activation: Activation | None = None,
        *,
        bias_init: BiasInit = "uniform",
        rng: random.Random | None = None,
    ) -> None:
        self.nin = _check_count("nin", nin)
        if isinstance(nouts, str | bytes) or not isinstance(nouts, Sequence) or not nouts:
            raise ValueError(f"nouts must be a non-empty list of layer sizes, got {nouts!r}")
        self.nouts = [_check_count("layer size", n) for n in nouts]
        self.activation = _check_activation(activation)
        self.output_activation = _check_activation(
            activation if output_activation is None else output_activation)
        self.bias_init = _check_bias_init(bias_init)
        sizes = [nin, *self.nouts]
        acts = [self.activation] * (len(self.nouts) - 1) + [self.output_activation]
        self.layers = [Layer(sizes[i], sizes[i + 1], acts[i], bias_init=bias_init, rng=rng)
                       for i in range(len(self.nouts))]

    def __call__(self, x: Input | Iterable[Input]) -> Value | list[Value]:
        out: Value | list[Value] = self.layers[0](x)
        for layer in self.layers[1:]:
            out = layer(out)
        return out

    def parts(self) -> list[tuple[str, Module]]:
        return [(f"layers.{i}", layer) for i, layer in enumerate(self.layers)]

    def config(self) -> dict[str, Any]:
        return {"type": "MLP", "nin": self.nin, "nouts": list(self.nouts),
                "activation": self.activation, "output_activation": self.output_activation,
                "bias_init": self.bias_init}

    def __repr__(self) -> str:
        stages = " → ".join(f"{layer.nout} {layer.activation}" for layer in self.layers)
        return f"MLP({self.nin} → {stages}, {self.num_parameters()} parameters)"


def build(config: Mapping[str, Any], rng: random.Random | None = None) -> Module:
    """Make a fresh module from `Module.config()` output (weights drawn anew; load a state to fill them).

    Raises ValueError naming the problem if the description is not one we can build.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"architecture must be an object, got {type(config).__name__}")
    kind = config.get("type")
    fields = {"Neuron": {"nin", "activation", "bias_init"},
              "Layer": {"nin", "nout", "activation", "bias_init"},
              "MLP": {"nin", "nouts", "activation", "output_activation", "bias_init"}}
    from chainrule import lm  # the character models (lm imports this module, so not at the top)

    if isinstance(kind, str) and kind in lm.ARCHITECTURES:
        return lm.build(config, rng)
    if not isinstance(kind, str) or kind not in fields:
        known = ", ".join([*fields, *lm.ARCHITECTURES])
        raise ValueError(f"unknown architecture type {kind!r}; expected one of {known}")
    given = set(config) - {"type"}
    if given != fields[kind]:
        missing, extra = sorted(fields[kind] - given), sorted(given - fields[kind])
        raise ValueError(f"{kind} architecture: missing {missing}, unexpected {extra}")
    # A throwaway RNG: rebuilding a saved model must not consume the caller's global random stream.
    rng = rng if rng is not None else random.Random(0)
    try:
        if kind == "Neuron":
            return Neuron(config["nin"], config["activation"], bias_init=config["bias_init"], rng=rng)
        if kind == "Layer":
            return Layer(config["nin"], config["nout"], config["activation"],
                         bias_init=config["bias_init"], rng=rng)
        return MLP(config["nin"], config["nouts"], config["activation"],
                   config["output_activation"], bias_init=config["bias_init"], rng=rng)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{kind} architecture: {e}") from None
