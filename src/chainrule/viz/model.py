"""Find the neurons and layers of a model inside its graph, so a drawing can collapse them.

A graph only knows values and ops; "this tanh is the output of layer 1's neuron 3" is knowledge
the model has. `trace_model` runs the model's forward pass one neuron at a time (the same
arithmetic as `model(x)`, so the same floats), remembering each neuron's output and the values it
read. A `Group` then finds everything in between: that neuron's weights, bias, products and sums.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chainrule.engine import Value
from chainrule.nn import MLP, Layer, Neuron
from chainrule.viz.dot import Group


@dataclass(frozen=True)
class ModelTrace:
    """One forward pass of a model on one datapoint, with its neurons and layers located."""

    output: Value | list[Value]  # what `model(x)` returns
    inputs: list[Value]  # the datapoint as leaves x0, x1, ...
    params: list[Value]
    neurons: list[Group]  # named L{layer}.N{neuron}, counting from 0 as `named_parameters` does
    layers: list[Group]  # named L{layer}


def trace_model(model: MLP | Layer | Neuron, x: Iterable[Value | float]) -> ModelTrace:
    """Run `model` on the single datapoint `x` and locate its neurons and layers in the graph."""
    inputs = [v if isinstance(v, Value) else Value(float(v), label=f"x{i}") for i, v in enumerate(x)]
    if isinstance(model, MLP):
        stages = [layer.neurons for layer in model.layers]
    elif isinstance(model, Layer):
        stages = [model.neurons]
    else:
        stages = [[model]]
    h: list[Value] = inputs
    neuron_groups: list[Group] = []
    layer_groups: list[Group] = []
    for li, neurons in enumerate(stages):
        outs = []
        for ni, neuron in enumerate(neurons):
            out = neuron(h)  # exactly what Layer.__call__ does, one neuron at a time
            out.label = out.label or f"L{li}.N{ni}"
            neuron_groups.append(Group(f"L{li}.N{ni}", (out,), tuple(h)))
            outs.append(out)
        layer_groups.append(Group(f"L{li}", tuple(outs), tuple(h)))
        h = outs
    output: Value | list[Value] = h[0] if len(h) == 1 else h
    return ModelTrace(output, inputs, model.parameters(), neuron_groups, layer_groups)

