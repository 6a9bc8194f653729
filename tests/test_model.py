"""chainrule.viz.model: a model's neurons and layers located in its graph."""

from __future__ import annotations

import random

from conftest import demo_mlp

from chainrule import Value
from chainrule.nn import MLP
from chainrule.viz import trace_model


def test_trace_model_matches_the_model_bit_for_bit() -> None:
    model = MLP(2, [16, 16, 1], activation="relu", output_activation="linear", bias_init="zero",
                rng=random.Random(1337))
    direct = model([1.2, -0.4])
    trace = trace_model(model, [1.2, -0.4])
    assert isinstance(direct, Value) and isinstance(trace.output, Value)
    assert trace.output.data == direct.data
    assert len(trace.neurons) == 33 and len(trace.layers) == 3
    assert len(trace.params) == 337


def test_neuron_groups_hold_exactly_their_parameters() -> None:
    model, loss, _ = demo_mlp()
    trace = trace_model(model, [1.2, -0.4])
    for group, neuron in zip(trace.neurons,
                             [n for layer in model.layers for n in layer.neurons], strict=True):
        members = {id(m) for m in group.members()}
        params = {id(p) for p in neuron.parameters()}
        assert params <= members
        others = {id(p) for p in model.parameters()} - params
        assert not (members & others)
    del loss
