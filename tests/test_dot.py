"""chainrule.viz.dot: the DOT text, kinds and colours, groups and the node cap."""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest
from conftest import HAVE_DOT, batched_tanh, demo_mlp

from chainrule import Value
from chainrule.engine import topological_order
from chainrule.nn import MLP
from chainrule.seeds import FIRST_GRAPH, NEURON
from chainrule.viz import GraphTooLargeError, Group, draw_dot, to_html, trace_model
from chainrule.viz.dot import BUNDLE, FILL, NEGATIVE, POSITIVE, escape_record, layout

# ----- draw_dot ----------------------------------------------------------------------------------

def test_records_ops_and_edges_in_the_seeds_style() -> None:
    L, v = FIRST_GRAPH.build()
    L.backward()
    src = draw_dot(L).source
    assert "rankdir=LR" in src
    # one record per value: { label | data | grad }, 4 decimals
    assert '"{ a | data 2.0000 | grad 6.0000 }"' in src
    assert '"{ L | data -8.0000 | grad 1.0000 }"' in src
    assert len(re.findall(r"shape=record", src)) == 7
    # one oval per op, and edges parent -> op -> value
    order = topological_order(L)
    i = {id(x): k for k, x in enumerate(order)}
    e, a, b = i[id(v["e"])], i[id(v["a"])], i[id(v["b"])]
    assert f"v{e}op [label=\"*\"" in src
    assert f"v{e}op -> v{e} " in src
    assert f"v{a} -> v{e}op " in src and f"v{b} -> v{e}op " in src


def test_a_value_used_twice_gets_two_edges() -> None:
    a = Value(3.0, "a")
    b = a + a
    b.label = "b"
    src = draw_dot(b).source
    assert src.count("v0 -> v1op") == 2


@pytest.mark.parametrize("label", ['a|b', "{x}", "<port>", 'say "hi"', "back\\slash\\", "tab\there\nnl"])
def test_labels_are_escaped(label: str) -> None:
    x = Value(1.5, label)
    y = x * 2.0
    y.label = label + "!"
    src = draw_dot(y).source
    i = next(i for i, v in enumerate(topological_order(y)) if v is x)  # x is drawn as v{i}
    record = re.search(rf'v{i} \[label="(.*?)" class', src)
    assert record is not None
    body = record.group(1)
    # every special character in the label is backslash-escaped, so the record keeps 3 fields
    assert len(re.findall(r"(?<!\\)(?:\\\\)*\|", body)) == 2
    if HAVE_DOT:
        svg = draw_dot(y).pipe(format="svg").decode()
        shown = " ".join(label.split())
        import html

        texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg)]
        assert shown in texts, texts


def test_escape_record_keeps_boxes_small() -> None:
    assert escape_record("x" * 200).endswith("…")
    assert len(escape_record("x" * 200)) == 60


def test_same_graph_same_dot_text_byte_for_byte() -> None:
    first, _ = NEURON.build()
    second, _ = NEURON.build()
    first.backward()
    second.backward()
    assert draw_dot(first).source == draw_dot(second).source
    _, loss1, _ = demo_mlp()
    _, loss2, _ = demo_mlp()
    assert to_html(loss1, max_nodes=None) == to_html(loss2, max_nodes=None)


def test_kinds_are_distinct_and_grads_coloured_by_sign() -> None:
    o, v = NEURON.build()
    o.backward()
    src = draw_dot(o, params=[v["w1"], v["w2"], v["b"]]).source
    line = {m.group(1): m.group(0) for m in re.finditer(r'(v\d+) \[label="\{ ([^|]*?) \|.*', src)}
    by_label = {re.search(r'label="\{ (.*?) \|', ln).group(1): ln for ln in line.values()}  # type: ignore[union-attr]
    assert FILL["param"] in by_label["w1"] and FILL["input"] in by_label["x1"]
    assert FILL["value"] in by_label["n"]
    assert len({FILL[k] for k in ("param", "input", "const", "value")}) == 4
    assert NEGATIVE in by_label["x1"]  # grad -1.5
    assert POSITIVE in by_label["w1"]  # grad 1.0
    # a number the engine wrapped is a constant
    c = Value(2.0, "x") * 3.0
    assert FILL["const"] in draw_dot(c).source


def test_legend_is_optional() -> None:
    o, _ = NEURON.build()
    assert "legend" not in draw_dot(o).source
    assert "legend" in draw_dot(o, legend=True).source


# ----- models: grouping, expanding, the node cap -------------------------------------------------

# ----- models: grouping, expanding, the node cap -------------------------------------------------

def test_337_parameter_mlp_draws_grouped_and_refuses_ungrouped() -> None:
    model, loss, _ = demo_mlp()
    with pytest.raises(GraphTooLargeError, match=r"max_nodes=300.*trace_model"):
        draw_dot(loss)
    trace = trace_model(model, [1.2, -0.4])
    # retrace so that groups point at this loss's graph
    out = trace.output
    assert isinstance(out, Value)
    loss = (1 + -1.0 * out).relu()
    loss.backward()
    src = draw_dot(loss, params=trace.params, inputs=trace.inputs, groups=trace.neurons).source
    assert src.count("shape=Mrecord") == 33
    assert len(re.findall(r"shape=record", src)) < 20  # inputs and the loss's few values
    assert '"{ L0.N0 (3 params) | data' in src
    assert '"{ L2.N0 (17 params) | data' in src
    layered = draw_dot(loss, params=trace.params, groups=trace.layers).source
    assert layered.count("shape=Mrecord") == 3
    assert "L1 (272 params)" in layered
    # expanding one neuron draws its insides in a dashed cluster
    opened = draw_dot(loss, params=trace.params, groups=trace.neurons, expand=["L1.N3"]).source
    assert opened.count("shape=Mrecord") == 32
    assert "subgraph cluster_" in opened and re.search(r"label=\"?L1.N3", opened)
    with pytest.raises(ValueError, match="no such group"):
        draw_dot(loss, groups=trace.neurons, expand=["L9.N9"])
    assert draw_dot(loss, max_nodes=None).source.count("shape=record") > 300


def test_group_members_stop_at_inputs() -> None:
    x = Value(1.0, "x")
    w = Value(2.0, "w")
    h = (x * w).tanh()
    g = Group("g", (h,), (x,))
    assert {m.label for m in g.members()} >= {"w"}
    assert all(m is not x for m in g.members())


# ----- grads that are Values (create_graph), data and grads that are batches ---------------------

def test_a_grad_that_is_a_value_shows_its_data() -> None:
    a = Value(1.5, "a")
    b = a * a
    b.label = "b"
    b.backward()
    a.grad = a * 2.0  # what backward(create_graph=True) leaves: a Value with a graph of its own
    src = draw_dot(b).source
    assert '"{ a | data 1.5000 | grad 3.0000 }"' in src
    assert POSITIVE in next(line for line in src.splitlines() if "{ a |" in line)  # coloured by its data
    assert to_html(b)  # the explorer too


def test_the_graph_of_a_derivative_draws() -> None:
    x = Value(0.5, "x")
    y = x.tanh()
    y.label = "y"
    y.backward(create_graph=True)
    assert isinstance(x.grad, Value)
    assert f"grad {math.cosh(0.5) ** -2:.4f}" in draw_dot(y).source
    x.grad.label = "dy/dx"
    src = draw_dot(x.grad).source  # d/dx tanh(x) = 1 - y*y, built from y itself
    assert "label=tanh" in src and f"dy/dx | data {math.cosh(0.5) ** -2:.4f}" in src


def test_a_batch_shows_its_first_numbers_and_length() -> None:
    y, _x, w = batched_tanh()
    src = draw_dot(y).source
    assert "{ x | data [1.0000, 2.0000, 3.0000, …](4) | grad [" in src
    assert f"{{ w | data 2.0000 | grad {w.grad:.4f} }}" in src
    short = Value(np.array([0.5, -0.5]), "s") * 1.0
    assert "data [0.5000, -0.5000](2) |" in draw_dot(short).source  # no … when all are shown


def test_layer_to_layer_edges_past_the_bundle_size_are_one_bundle() -> None:
    model, loss, _ = demo_mlp()
    trace = trace_model(model, [1.2, -0.4])
    out = trace.output
    assert isinstance(out, Value)
    by_neuron = layout(out, params=trace.params, inputs=trace.inputs, groups=trace.neurons)
    (bundle,) = by_neuron.bundles  # L0 -> L1 only: x -> L0 has 32 edges, L1 -> L2 has 16
    assert len(bundle.edges) == 256 and BUNDLE == 32
    assert bundle.sources == [f"g{k}" for k in range(16)]
    assert bundle.targets == [f"g{k}" for k in range(16, 32)]
    assert by_neuron.dot.source.count('class=bundled') == 256  # laid out still, shown on request
    assert layout(out, params=trace.params, groups=trace.layers).bundles == []  # one edge per layer pair
    small = trace_model(MLP(2, [4, 4, 1], rng=random.Random(0)), [1.0, 2.0])
    assert isinstance(small.output, Value)
    assert layout(small.output, groups=small.neurons).bundles == []  # 16 edges: drawn one by one
    del loss
