"""A network's health while it trains (makemore's third lecture): at a few steps, per layer, how spread its
activations are and how many of its units are saturated or dead; per weight tensor, how large the gradients
are and how large each update is next to the weights it changes. It never prints; `chainrule.viz.plots.health`
draws it.

    history = fit(model, X, y, health=True)           # or makemore.train(..., health=True)
    history.health.steps                               # the steps recorded (see `schedule`)
    history.health.layers[0].saturated                 # share of saturated tanh outputs, per recorded step
    history.health.weights[0].update_ratio             # log10(std(update) / std(weights)), per recorded step
    json.dumps(dataclasses.asdict(history.health))     # plain lists of numbers and names

What is measured, and from where:

- activations: the outputs of every layer with a nonlinearity (an MLP's tanh, relu or sigmoid Layers,
  CharMLP's tanh hidden layer, each GPT block's relu MLP), read from the step's own graph after backward:
  the nodes act(linear(b, w0, ..., x...)) whose first weight w0 is one of the layer's units'. Nothing is
  recomputed. mean and std are over all units and all samples of the step's batch (examples, positions).
- saturated: tanh, the share of outputs with |t| > 0.97 (slope 1 - t² < 0.06: hardly any gradient gets
  through); sigmoid, the same test on 2σ - 1 (σ(x) = (1 + tanh(x/2))/2); relu, the share of *dead* units,
  those whose output is 0 for every sample of the step's batch (makemore's "dead for all examples").
- weights: every weight tensor (biases left out, as makemore's `p.ndim == 2`): the gradients' std after
  backward, and the update-to-data ratio log10(std(after - before) / std(before)) from the weights before
  and after the optimizer's step, so it means the same for Adam or momentum as for plain SGD. makemore's
  rule of thumb: about -3 (1e-3); far below, the layer learns slowly; far above, it thrashes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from chainrule.engine import Value, topological_order
from chainrule.lm import GPT, Bigram, CharMLP
from chainrule.nn import MLP, Module

SATURATED = 0.97  # |tanh| above this is saturated (makemore's threshold)
BINS = 40  # the histograms' bins
RECORDS = 50  # about this many records per run, whatever its length
NONLINEAR = ("tanh", "sigmoid", "relu")


def schedule(steps: int) -> list[int]:
    """The steps recorded in a run of `steps` steps: 0, 1, 2, 5 (the first steps move fastest), then every
    max(1, steps // RECORDS)-th step, and the last: about 50 records, whatever the run's length."""
    every = max(1, steps // RECORDS)
    return sorted({k for k in (0, 1, 2, 5) if k < steps} | set(range(0, steps, every)) | {steps - 1})


@dataclass
class Histogram:
    """np.histogram's answer as lists: `counts[i]` values fell in [edges[i], edges[i + 1])."""

    edges: list[float]
    counts: list[int]


@dataclass
class LayerHealth:
    """A layer with a nonlinearity: one entry per recorded step in each list."""

    name: str
    activation: str  # tanh, sigmoid or relu
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    saturated: list[float] = field(default_factory=list)  # relu: the share of dead units (see the module)
    histogram: list[Histogram] = field(default_factory=list)  # of the outputs


@dataclass
class WeightHealth:
    """A weight tensor: one entry per recorded step in each list."""

    name: str
    grad_std: list[float] = field(default_factory=list)
    # None where the ratio is not a number: no update (a rate of 0) or weights all equal (std 0).
    update_ratio: list[float | None] = field(default_factory=list)
    histogram: list[Histogram] = field(default_factory=list)  # of the gradients


@dataclass
class Health:
    """What `fit(..., health=True)` and `makemore.train(..., health=True)` record: `steps[i]` is the step of
    the i-th entry of every list below. `dataclasses.asdict(health)` is plain JSON-able data."""

    steps: list[int] = field(default_factory=list)
    layers: list[LayerHealth] = field(default_factory=list)
    weights: list[WeightHealth] = field(default_factory=list)


Layers = list[tuple[str, str, list[Value]]]  # (name, activation, each unit's first weight)
Weights = list[tuple[str, list[Value]]]  # (name, the tensor's weights)


def _matrix(rows: list[list[Value]]) -> list[Value]:
    return [w for row in rows for w in row]


def layers_of(model: Module) -> tuple[Layers, Weights]:
    """The layers with a nonlinearity of `model` (MLP, CharMLP, GPT, Bigram) and its weight tensors."""
    if isinstance(model, MLP):
        named = [f"layers.{i}" for i in range(len(model.layers))]
        hidden: Layers = [(name, layer.activation, [n.w[0] for n in layer.neurons])
                          for name, layer in zip(named, model.layers, strict=True)
                          if layer.activation in NONLINEAR]
        return hidden, [(name, [w for n in layer.neurons for w in n.w])
                        for name, layer in zip(named, model.layers, strict=True)]
    if isinstance(model, CharMLP):
        return ([("fc1", "tanh", [row[0] for row in model.fc1.weight])],
                [("emb", _matrix(model.emb.weight)), ("fc1", _matrix(model.fc1.weight)),
                 ("fc2", _matrix(model.fc2.weight))])
    if isinstance(model, GPT):
        layers: Layers = [(f"layer{i}.mlp_fc1", "relu", [row[0] for row in b.fc1.weight])
                          for i, b in enumerate(model.blocks)]
        weights = [("wte", _matrix(model.wte.weight)), ("wpe", _matrix(model.wpe.weight))]
        for i, b in enumerate(model.blocks):
            parts = [("attn.wq", b.attn.wq), ("attn.wk", b.attn.wk), ("attn.wv", b.attn.wv),
                     ("attn.wo", b.attn.wo), ("mlp_fc1", b.fc1), ("mlp_fc2", b.fc2)]
            weights += [(f"layer{i}.{name}", _matrix(lin.weight)) for name, lin in parts]
        return layers, [*weights, ("lm_head", _matrix(model.lm_head.weight))]
    if isinstance(model, Bigram):
        return [], [("table", _matrix(model.table.weight))]
    raise ValueError(f"health=True watches an MLP, a CharMLP, a GPT or a Bigram, not {model!r}")


def _histogram(values: npt.NDArray[np.float64]) -> Histogram:
    counts, edges = np.histogram(values, bins=BINS)
    return Histogram([float(e) for e in edges], [int(c) for c in counts])


def saturated_share(activation: str, t: npt.NDArray[np.float64]) -> float:
    """`t` holds a layer's outputs, one row per unit, one column per sample: the share of saturated outputs
    (tanh, sigmoid) or of dead units (relu: every sample 0), as the module's docstring defines them."""
    if activation == "relu":
        return float(np.mean(np.all(t == 0.0, axis=1)))
    flat = t if activation == "tanh" else 2.0 * t - 1.0
    return float(np.mean(np.abs(flat) > SATURATED))


def _ratio(before: npt.NDArray[np.float64], after: npt.NDArray[np.float64]) -> float | None:
    update, data = float(np.std(after - before)), float(np.std(before))
    return math.log10(update / data) if update > 0 and data > 0 else None


class Recorder:
    """Records a run's Health: at a step that `wants` it, `read_graph(loss)` after backward (activations,
    gradients and the weights before the update), then `record(step)` after the optimizer's step."""

    def __init__(self, model: Module, steps: int) -> None:
        self.layers, self.weights = layers_of(model)
        self.steps = frozenset(schedule(steps))
        self.health = Health([], [LayerHealth(name, act) for name, act, _ in self.layers],
                             [WeightHealth(name) for name, _ in self.weights])
        # Unit j of layer i by its first weight: a graph node act(linear(b, w0, ...)) is found by its w0.
        self._units = {id(w): (i, j)
                       for i, (_, _, firsts) in enumerate(self.layers) for j, w in enumerate(firsts)}
        self._before: list[npt.NDArray[np.float64]] | None = None

    def wants(self, step: int) -> bool:
        return step in self.steps

    def read_graph(self, loss: Value) -> None:
        """Read the activations and gradients of the step whose graph ends at `loss` (backward has run, the
        optimizer has not)."""
        outputs: list[list[list[Any]]] = [[[] for _ in firsts] for _, _, firsts in self.layers]
        for node in topological_order(loss):
            if node.op in NONLINEAR and node.parents[0].op == "linear":
                place = self._units.get(id(node.parents[0].parents[1]))
                if place is not None and self.layers[place[0]][1] == node.op:
                    outputs[place[0]][place[1]].append(node.data)  # a float, or a batch's array
        for (name, act, _), units, out in zip(self.layers, outputs, self.health.layers, strict=True):
            if not all(units):
                raise RuntimeError(f"layer {name}'s {act} outputs are not in the graph of this loss")
            t = np.array([np.concatenate([np.atleast_1d(d) for d in unit]) for unit in units])
            out.mean.append(float(np.mean(t)))
            out.std.append(float(np.std(t)))
            out.saturated.append(saturated_share(act, t))
            out.histogram.append(_histogram(t))
        for (_, tensor), w in zip(self.weights, self.health.weights, strict=True):
            grads = np.array([float(p.grad) for p in tensor])
            w.grad_std.append(float(np.std(grads)))
            w.histogram.append(_histogram(grads))
        self._before = [np.array([float(p.data) for p in tensor]) for _, tensor in self.weights]

    def record(self, step: int) -> None:
        """After the optimizer's step: the update-to-data ratios, and the step's record is complete."""
        if self._before is None:
            raise RuntimeError("record() follows read_graph() of the same step")
        for (_, tensor), before, out in zip(self.weights, self._before, self.health.weights, strict=True):
            out.update_ratio.append(_ratio(before, np.array([float(p.data) for p in tensor])))
        self.health.steps.append(step)
        self._before = None
