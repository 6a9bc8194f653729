"""chainrule.viz: the DOT text, rendering (with and without Graphviz), grouping, the text stepper."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import warnings
from pathlib import Path

import pytest

from chainrule import RULES, Value
from chainrule.engine import topological_order
from chainrule.nn import MLP
from chainrule.viz import (
    GraphTooLargeError,
    GraphvizMissingWarning,
    Group,
    backward_steps,
    draw_dot,
    render,
    to_html,
    trace_model,
)
from chainrule.viz.dot import FILL, NEGATIVE, POSITIVE, escape_record
from chainrule.viz.steps import final_grads

REQUIRE = os.environ.get("CHAINRULE_REQUIRE_BROWSER") == "1"
HAVE_DOT = shutil.which("dot") is not None


def need_dot() -> None:
    if not HAVE_DOT:
        if REQUIRE:
            pytest.fail("Graphviz's dot is missing but CHAINRULE_REQUIRE_BROWSER=1")
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz)")


# ----- the seeds' examples ---------------------------------------------------------------------

def seeds_expression() -> tuple[Value, dict[str, Value]]:
    """L = (a*b + c) * f, the seeds' first graph."""
    a, b, c, f = Value(2.0, "a"), Value(-3.0, "b"), Value(10.0, "c"), Value(-2.0, "f")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    L = d * f
    L.label = "L"
    return L, {"a": a, "b": b, "c": c, "f": f, "e": e, "d": d}


def seeds_neuron() -> tuple[Value, dict[str, Value]]:
    x1, x2 = Value(2.0, "x1"), Value(0.0, "x2")
    w1, w2 = Value(-3.0, "w1"), Value(1.0, "w2")
    b = Value(6.8813735870195432, "b")
    x1w1 = x1 * w1
    x1w1.label = "x1*w1"
    x2w2 = x2 * w2
    x2w2.label = "x2*w2"
    s = x1w1 + x2w2
    s.label = "x1*w1 + x2*w2"
    n = s + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return o, {"x1": x1, "x2": x2, "w1": w1, "w2": w2, "b": b}


def demo_mlp() -> tuple[MLP, Value, list[Value]]:
    """micrograd's demo model, MLP(2, [16, 16, 1]) = 337 parameters, on one datapoint (hinge loss)."""
    model = MLP(2, [16, 16, 1], activation="relu", output_activation="linear", bias_init="zero",
                rng=random.Random(1337))
    trace = trace_model(model, [1.2, -0.4])
    out = trace.output
    assert isinstance(out, Value)
    loss = (1 + -1.0 * out).relu()
    loss.label = "loss"
    return model, loss, trace.inputs


# ----- draw_dot ----------------------------------------------------------------------------------

def test_records_ops_and_edges_in_the_seeds_style() -> None:
    L, v = seeds_expression()
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
    first, _ = seeds_neuron()
    second, _ = seeds_neuron()
    first.backward()
    second.backward()
    assert draw_dot(first).source == draw_dot(second).source
    _, loss1, _ = demo_mlp()
    _, loss2, _ = demo_mlp()
    assert to_html(loss1, max_nodes=None) == to_html(loss2, max_nodes=None)


def test_kinds_are_distinct_and_grads_coloured_by_sign() -> None:
    o, v = seeds_neuron()
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
    o, _ = seeds_neuron()
    assert "legend" not in draw_dot(o).source
    assert "legend" in draw_dot(o, legend=True).source


# ----- models: grouping, expanding, the node cap -------------------------------------------------

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


# ----- render ------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_render_with_graphviz(tmp_path: Path, suffix: str) -> None:
    need_dot()
    o, _ = seeds_neuron()
    o.backward()
    path = tmp_path / f"neuron{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = render(o, path)
    assert written == path
    data = path.read_bytes()
    if suffix == ".svg":
        assert b"<svg" in data and b"grad 0.5000" in data
    else:
        assert data.startswith(b"\x89PNG")


def test_render_falls_back_to_html_without_graphviz(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # hide dot
    o, _ = seeds_neuron()
    with pytest.warns(GraphvizMissingWarning) as caught:
        written = render(o, tmp_path / "neuron.svg")
    assert written == tmp_path / "neuron.html"
    assert written.exists() and not (tmp_path / "neuron.svg").exists()
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert "neuron.html" in str(caught[0].message)


def test_render_rejects_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.svg, \.png, \.html"):
        render(Value(1.0), tmp_path / "g.pdf")


# ----- the HTML page -----------------------------------------------------------------------------

def page_data(page: str) -> dict[str, object]:
    m = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', page, re.S)
    assert m is not None
    data: dict[str, object] = json.loads(m.group(1))
    return data


def test_html_is_self_contained_and_embeds_the_graph(tmp_path: Path) -> None:
    o, _ = seeds_neuron()
    o.backward()
    page = to_html(o, tmp_path / "n.html")
    assert (tmp_path / "n.html").read_text(encoding="utf-8") == page
    assert "{{" not in page.replace("{{ ", "")  # every placeholder filled
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)  # nothing fetched
    assert "Viz.instance" in page and "Copyright (c) Michael Daines" in page
    data = page_data(page)
    values = data["values"]
    assert isinstance(values, list) and len(values) == 10
    assert len(data["steps"]) == 9  # type: ignore[arg-type]
    formulas = {v["op"]: v["formula"] for v in values if v["op"]}
    assert formulas["tanh"] == RULES["tanh"].formula  # the page shows the engine's rule text
    assert 1_200_000 < len(page.encode()) < 1_600_000


def test_explorer_stacks_fields_draw_dot_keeps_the_seeds_records() -> None:
    o, _ = seeds_neuron()
    o.backward()
    page_dot = str(page_data(to_html(o))["dot"])
    assert 'label="{ o | data 0.7071 | grad 1.0000 }"' in draw_dot(o).source  # the seeds' style
    assert 'label="o | data 0.7071 | grad 1.0000"' in page_dot  # one above the other: narrower
    trace = trace_model(MLP(2, [3, 1], rng=random.Random(0)), [1.0, 2.0])
    assert isinstance(trace.output, Value)
    grouped = str(page_data(to_html(trace.output, params=trace.params, groups=trace.neurons))["dot"])
    assert "L0.N0\\n3 params | data" in grouped  # the count on a line of its own
    assert "L0.N0 (3 params)" in draw_dot(trace.output, params=trace.params, groups=trace.neurons).source


def test_html_survives_hostile_labels() -> None:
    x = Value(1.0, "</script><script>alert(1)</script>")
    y = x * 2.0
    page = to_html(y, title="<b>{{DATA}}</b>")
    assert "<script>alert(1)" not in page
    assert "&lt;b&gt;{{DATA}}&lt;/b&gt;" in page
    assert x.label in [v["label"] for v in page_data(page)["values"]]  # type: ignore[attr-defined]


# ----- the text stepper --------------------------------------------------------------------------

@pytest.mark.parametrize("make", ["expression", "neuron", "twice", "mlp"])
def test_steps_end_at_the_engines_grads(make: str) -> None:
    if make == "expression":
        root, _ = seeds_expression()
    elif make == "neuron":
        root, _ = seeds_neuron()
    elif make == "twice":
        a = Value(-1.5, "a")
        root = (a + a) * a
    else:
        _, root, _ = demo_mlp()
    before = {id(v): v.grad for v in topological_order(root)}
    steps = list(backward_steps(root))
    assert {id(v): v.grad for v in topological_order(root)} == before  # engine grads untouched
    assert len(steps) == sum(len(v.parents) for v in topological_order(root))
    root.backward()
    grads = final_grads(root)
    for v in topological_order(root):
        assert grads[id(v)] == v.grad, v  # exactly: same order, same arithmetic
    for s in steps:
        assert s.local == s.node.local_grads[s.slot]
        assert s.contribution == s.local * s.upstream
        assert s.after == s.before + s.contribution


def test_steps_show_two_contributions_for_a_plus_a() -> None:
    a = Value(3.0, "a")
    b = a + a
    b.label = "b"
    steps = list(backward_steps(b))
    assert [(s.slot, s.after) for s in steps] == [(0, 1.0), (1, 2.0)]
    assert str(steps[1]) == "  2. b (+) → a: grad(a) += 1.0000 × 1.0000 = 1.0000 → 2.0000"


def test_step_str_is_one_readable_line() -> None:
    o, _ = seeds_neuron()
    lines = [str(s) for s in backward_steps(o)]
    assert lines[0] == "  1. o (tanh) → n: grad(n) += 0.5000 × 1.0000 = 0.5000 → 0.5000"
    assert all("\n" not in ln for ln in lines)
    unnamed = Value(2.0) * Value(3.0)
    assert "*:6.0000" in str(next(backward_steps(unnamed.tanh())))
