"""PyTorch in and out: `to_torch(model)` and `from_torch(module)`, the way past one machine.

An MLP is a chain of `nn.Linear` layers, each followed by its activation module (`nn.Tanh`, `nn.ReLU`,
`nn.Sigmoid`; none for 'linear'). Neuron j of a layer is row j of its Linear: `w[k]` is `weight[j, k]`
and `b` is `bias[j]`. Everything is float64, chainrule's precision, so both models compute the same
numbers up to the order of additions inside a dot product.

torch is imported only when one of these functions runs: `import chainrule` never pays for it, and
works where it is not installed (`pip install "chainrule[torch]"` adds it).
"""

from __future__ import annotations

import math
import numbers
import random
from typing import TYPE_CHECKING, cast

from chainrule.nn import MLP, Activation, Layer, Neuron

if TYPE_CHECKING:
    import torch

__all__ = ["from_torch", "to_torch"]

# PyTorch's CPU index: without it pip may pick the multi-GB CUDA build of torch.
INSTALL = 'pip install "chainrule[torch]" --extra-index-url https://download.pytorch.org/whl/cpu'
# chainrule's activation -> the torch.nn class computing it ('linear' is no module on the way out,
# and a Linear followed directly by another Linear, or by nn.Identity, on the way in).
_TORCH_NAMES: dict[str, str] = {"tanh": "Tanh", "relu": "ReLU", "sigmoid": "Sigmoid", "linear": "Identity"}


def _missing_torch(caller: str) -> ImportError:
    return ImportError(f"chainrule.{caller} needs PyTorch, which is not installed: {INSTALL}")


def _stages(model: object) -> list[tuple[list[Neuron], Activation]]:
    """The model as (neurons of a layer, their activation), input to output."""
    if isinstance(model, MLP):
        return [(layer.neurons, layer.activation) for layer in model.layers]
    if isinstance(model, Layer):
        return [(model.neurons, model.activation)]
    if isinstance(model, Neuron):
        return [([model], model.activation)]
    raise ValueError(f"to_torch takes a chainrule MLP, Layer or Neuron, got {type(model).__name__}")


def _weight(name: str, x: object) -> float:
    # bool is an int to Python; a batch (an array) in a parameter is a mistake, not a weight.
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise ValueError(f"parameter {name!r} is not a number: {x!r}")
    if not math.isfinite(x):
        raise ValueError(f"parameter {name!r} is not finite ({x!r}): the model has diverged")
    return float(x)


def to_torch(model: MLP | Layer | Neuron) -> torch.nn.Sequential:
    """A `torch.nn.Sequential` of float64 `nn.Linear` layers and activation modules with `model`'s weights.

    The copy is independent: training it leaves `model` alone (bring the weights back with `from_torch`).
    A Layer or a Neuron becomes a one-Linear Sequential. Raises ImportError saying what to install
    when torch is missing, and ValueError naming the parameter if a weight is not a finite number.
    """
    try:
        import torch
    except ImportError:
        raise _missing_torch("to_torch") from None
    stages = _stages(model)
    for name, p in model.named_parameters():
        _weight(name, p.data)
    modules: list[torch.nn.Module] = []
    for neurons, activation in stages:
        # Made on the meta device (no data), then given empty memory: nn.Linear's own initialisation
        # would draw from torch's global generator, which a library must leave alone.
        linear = torch.nn.Linear(neurons[0].nin, len(neurons), dtype=torch.float64, device="meta")
        linear = linear.to_empty(device="cpu")
        with torch.no_grad():
            linear.weight.copy_(torch.tensor([[float(w.data) for w in n.w] for n in neurons],
                                             dtype=torch.float64))
            linear.bias.copy_(torch.tensor([float(n.b.data) for n in neurons], dtype=torch.float64))
        modules.append(linear)
        if activation != "linear":
            modules.append(getattr(torch.nn, _TORCH_NAMES[activation])())
    return torch.nn.Sequential(*modules)


def from_torch(module: torch.nn.Module) -> MLP:
    """The `MLP` computing what `module` computes: an `nn.Sequential` of `nn.Linear` layers, each
    optionally followed by `nn.Tanh`, `nn.ReLU`, `nn.Sigmoid` or `nn.Identity` (or one bare `nn.Linear`).

    - A Linear without a bias gets a bias of 0, which computes the same thing.
    - Weights of any floating dtype are accepted and widened to float64. Widening is exact: a float32
      model comes back with the very same numbers (its chainrule outputs are float64's, so they differ
      from the float32 model's by float32's rounding, ~1e-7).
    - An MLP has one activation for every hidden layer (and its own for the output); a Sequential
      mixing hidden activations is refused.
    - The MLP's `bias_init` is 'uniform', MLP's default: it only says how fresh weights are drawn.

    Raises ValueError naming the offending module for anything an MLP cannot express (a Conv2d, a
    GELU, a Dropout, sizes that do not chain, complex or non-finite weights), and ImportError saying
    what to install when torch is missing.
    """
    try:
        from torch import nn
    except ImportError:
        raise _missing_torch("from_torch") from None

    children: list[tuple[str, nn.Module]]
    if type(module) is nn.Linear:
        children = [("0", module)]
    elif type(module) is nn.Sequential:
        children = list(module.named_children())
    else:
        hint = " (pass its .module)" if hasattr(module, "module") else ""  # DistributedDataParallel
        raise ValueError("from_torch takes an nn.Sequential of Linear layers and activations, or one "
                         f"nn.Linear, got {type(module).__name__}{hint}")
    # Exact types, not isinstance: a subclass may compute something else in its forward.
    activations: dict[type, Activation] = {getattr(nn, torch_name): cast(Activation, name)
                                           for name, torch_name in _TORCH_NAMES.items()}
    known = ", ".join(["Linear", *_TORCH_NAMES.values()])
    # Per layer: its Linear, and its activation, each with the module that gave it (for errors).
    linears: list[tuple[nn.Linear, str]] = []
    acts: list[tuple[Activation, str]] = []  # 'linear' (given by the Linear itself) until a module says
    explicit = False  # did a module after the last Linear already set its activation?
    for name, m in children:
        where = f"module {name} ({m})"
        if isinstance(m, nn.Linear) and type(m) is nn.Linear:  # isinstance: for the type checker
            if linears and m.in_features != linears[-1][0].out_features:
                raise ValueError(f"{where} takes {m.in_features} inputs, but the layer before gives "
                                 f"{linears[-1][0].out_features}")
            if m.in_features < 1 or m.out_features < 1:
                raise ValueError(f"{where} is empty: an MLP layer needs at least one input and output")
            linears.append((m, where))
            acts.append(("linear", where))
            explicit = False
        elif type(m) in activations:
            if not linears:
                raise ValueError(f"{where} comes before any Linear: an MLP starts with a Linear layer")
            if explicit:
                raise ValueError(f"{where} follows another activation: an MLP has one per layer")
            acts[-1] = (activations[type(m)], where)
            explicit = True
        else:
            raise ValueError(f"{where} is not something an MLP can express; from_torch knows {known}")
    if not linears:
        raise ValueError("from_torch got an empty nn.Sequential: an MLP needs at least one Linear layer")

    hidden = acts[0][0]
    for activation, where in acts[1:-1]:
        if activation != hidden:
            raise ValueError(f"{where}: an MLP has one activation for all hidden layers, and this layer's "
                             f"is {activation} where the first's is {hidden}")
    weights = [_linear_weights(m, where) for m, where in linears]

    # A throwaway generator: building the MLP must not draw from the caller's global `random`.
    model = MLP(linears[0][0].in_features, [m.out_features for m, _ in linears], hidden, acts[-1][0],
                rng=random.Random(0))
    for layer, (w, b) in zip(model.layers, weights, strict=True):
        for neuron, row, bias in zip(layer.neurons, w, b, strict=True):
            for v, x in zip(neuron.w, row, strict=True):
                v.data = x
            neuron.b.data = bias
    return model


def _linear_weights(m: torch.nn.Linear, where: str) -> tuple[list[list[float]], list[float]]:
    """(weight rows, bias) of one Linear as float64 Python floats, checked."""
    import torch as t  # already imported by from_torch

    if not m.weight.dtype.is_floating_point:
        raise ValueError(f"{where} has {m.weight.dtype} weights; from_torch takes real floating-point ones")
    weight = m.weight.detach().to(device="cpu", dtype=t.float64)
    bias = (m.bias.detach().to(device="cpu", dtype=t.float64) if m.bias is not None
            else t.zeros(m.out_features, dtype=t.float64))
    for part, values in (("weight", weight), ("bias", bias)):
        if not bool(t.isfinite(values).all()):
            raise ValueError(f"{where} has a non-finite {part}: the model has diverged")
    return weight.tolist(), bias.tolist()
