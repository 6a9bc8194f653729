"""chainrule.viz.html: the explorer page, self-contained and safe."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import batched_tanh, page_data

from chainrule import RULES, Value
from chainrule.nn import MLP
from chainrule.seeds import FIRST_GRAPH, NEURON
from chainrule.viz import backward_steps, draw_dot, forward_steps, to_html, trace_model


def test_html_is_self_contained_and_embeds_the_graph(tmp_path: Path) -> None:
    o, _ = NEURON.build()
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
    o, _ = NEURON.build()
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


def test_explorer_shows_value_grads_and_batches() -> None:
    y, _x, w = batched_tanh()
    w.grad = Value(w.grad, "dy/dw")  # as backward(create_graph=True) leaves it
    data = page_data(to_html(y))
    by_label = {v["label"]: v for v in data["values"]}  # type: ignore[attr-defined]
    assert by_label["x"]["data"] == "[1.0000, 2.0000, 3.0000, …](4)"
    assert by_label["x"]["grad"].endswith("](4)") and by_label["x"]["g"] == 0  # a batch: no one sign
    assert by_label["w"]["grad"] == f"{w.grad.data:.4f}" and by_label["w"]["g"] == w.grad.data
    assert len(data["steps"]) == 4  # type: ignore[arg-type]


def test_explorer_of_a_batch_not_reduced_says_what_to_do() -> None:
    x = Value(np.array([1.0, 2.0]), "x")
    y = x * 3.0
    assert "data [3.0000, 6.0000](2)" in draw_dot(y).source  # drawn, without a backward pass
    with pytest.raises(ValueError, match=r"needs a number; reduce the batch first \(\.sum\(\), \.mean\(\)\)"):
        to_html(y)  # the explorer replays backward, which starts from one number


def test_a_page_sorts_the_graph_once_and_replays_backward_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import chainrule.engine
    import chainrule.viz.dot
    import chainrule.viz.steps

    calls = {"sort": 0, "backward": 0}

    def counted(name: str, f: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return f(*args, **kwargs)
        return wrapper

    sort = counted("sort", chainrule.engine.topological_order)
    for module in (chainrule.engine, chainrule.viz.dot, chainrule.viz.steps):
        monkeypatch.setattr(module, "topological_order", sort)
    backward = counted("backward", chainrule.engine.backward_pass)
    monkeypatch.setattr(chainrule.viz.steps, "backward_pass", backward)
    o, _ = NEURON.build()
    o.backward()
    to_html(o)
    assert calls == {"sort": 1, "backward": 1}


def test_explorer_of_a_derivative_shows_its_own_graph() -> None:
    x = Value(0.5, "x")
    y = x.tanh()
    y.label = "y"
    y.backward(create_graph=True)  # x.grad is a Value: the graph of dy/dx = 1 - y*y
    dydx = x.grad
    assert isinstance(dydx, Value)
    dydx.label = "dy/dx"
    data = page_data(to_html(dydx))
    values = data["values"]
    assert isinstance(values, list)
    assert {v["op"] for v in values} >= {"tanh", "*", "+"}
    assert values[-1]["label"] == "dy/dx" and values[-1]["data"] == f"{1 - y.data**2:.4f}"
    assert x.grad is dydx  # drawing it replays backward on the side: the grads stay as they were
    before = page_data(to_html(y))["values"]
    assert [v["grad"] for v in before if v["label"] == "x"] == [f"{1 - y.data**2:.4f}"]


# ----- exercise mode's data, and a graph backward() never ran on ------------------------------------

def test_exercise_data_asks_each_box_in_backwards_order_with_the_replayed_grads() -> None:
    L, v = FIRST_GRAPH.build()  # no backward(): the answers come from the replay, not from .grad
    data = page_data(to_html(L, exercise=True))
    values = data["values"]
    assert isinstance(values, list)
    exercise = data["exercise"]
    assert isinstance(exercise, dict)
    assert values[exercise["seed"]]["label"] == "L"  # the root's 1 is given, never asked
    asked = [values[a["i"]]["label"] for a in exercise["ask"]]
    assert asked == ["f", "d", "c", "e", "a", "b"]
    L.backward()
    assert [a["answer"] for a in exercise["ask"]] == [v[name].grad for name in asked]
    assert [a["text"] for a in exercise["ask"]] == [f"{v[name].grad:.4f}" for name in asked]
    assert exercise["given"] == {}
    # Every node with parents is asked in the order backward processes it (its grad final by then),
    # each leaf after backward's last step into it.
    steps = list(backward_steps(L))
    processed = list(dict.fromkeys(s.node.label for s in steps))
    assert [n for n in ["L", *asked] if v[n].parents] == processed
    for k, name in enumerate(asked):  # everything that uses a value is asked (or given) before it
        assert {s.node.label for s in steps if s.parent is v[name]} <= {"L", *asked[:k]}, name
    assert page_data(to_html(L))["exercise"] is None


def test_exercise_asks_a_detach_and_what_only_it_reads_at_the_end() -> None:
    a, b = Value(2.0, "a"), Value(-1.0, "b")
    c = a * b
    c.label = "c"
    d = c.detach()
    d.label = "d"
    e = d * a + b
    e.label = "e"
    data = page_data(to_html(e, exercise=True))
    values, exercise = data["values"], data["exercise"]
    assert isinstance(values, list) and isinstance(exercise, dict)
    asked = [values[q["i"]]["label"] for q in exercise["ask"]]
    assert sorted(asked) == sorted(v["label"] for v in values if v["label"] != "e")  # every box is asked
    assert asked.index("d") > asked.index("a") and asked.index("c") > asked.index("d")  # no step: last
    e.backward()
    answers = {values[q["i"]]["label"]: q["answer"] for q in exercise["ask"]}
    assert answers["d"] == d.grad == 2.0 and answers["c"] == 0.0 and answers["a"] == a.grad == -2.0


def test_exercise_of_a_model_gives_collapsed_neurons_as_backward_reaches_them() -> None:
    trace = trace_model(MLP(2, [2, 1], rng=random.Random(0)), [1.0, -2.0])
    assert isinstance(trace.output, Value)
    data = page_data(to_html(trace.output, params=trace.params, inputs=trace.inputs, groups=trace.neurons,
                             exercise=True))
    exercise = data["exercise"]
    assert isinstance(exercise, dict)
    values = data["values"]
    assert isinstance(values, list)
    assert [values[a["i"]]["label"] for a in exercise["ask"]] == ["x0", "x1"]
    # L0.N0 and L0.N1's outputs: final before either input is, so shown from question 0.
    assert sorted(values[int(i)]["el"] for i in exercise["given"]) == ["g0", "g1"]
    assert set(exercise["given"].values()) == {0}


def test_exercise_refuses_what_it_cannot_ask() -> None:
    L, _ = FIRST_GRAPH.build()
    for bad in (1, "yes", None):
        with pytest.raises(TypeError, match="exercise must be True or False, not"):
            to_html(L, exercise=bad)  # type: ignore[arg-type]
    y, _x, _w = batched_tanh()
    with pytest.raises(ValueError, match="exercise mode asks for one number per box, but this graph's grads "
                                         "are batches"):
        to_html(y, exercise=True)


def test_the_page_knows_whether_backward_ran() -> None:
    L, _ = FIRST_GRAPH.build()
    before = page_data(to_html(L))
    values = before["values"]
    assert isinstance(values, list)
    assert before["ran"] is False
    assert {x["grad"] for x in values} == {"0.0000"}  # the Values' own grads ...
    assert [x["r"] for x in values] == ["6.0000", "-4.0000", "-2.0000", "-2.0000", "-2.0000", "4.0000",
                                        "1.0000"]  # ... and what backward() will give them
    L.backward()
    after = page_data(to_html(L))
    assert after["ran"] is True
    assert [x["grad"] for x in after["values"]] == [x["r"] for x in values]  # type: ignore[attr-defined]


def test_forward_data_is_forward_steps_with_the_edges_and_both_counts() -> None:
    o, v = NEURON.build()
    data = page_data(to_html(o, forward=v["x1"]))
    assert page_data(to_html(o, forward="x1")) == data  # by name or by Value
    forward = data["forward"]
    assert isinstance(forward, dict)
    values = data["values"]
    assert isinstance(values, list)
    assert values[forward["wrt"]]["label"] == "x1"
    steps = forward_steps(o, v["x1"], [v[n] for n in NEURON.inputs])
    assert [values[s[0]]["label"] for s in forward["steps"]] == [s.node.label for s in steps]
    assert [s[2] for s in forward["steps"]] == [f"{s.tangent:.4f}" for s in steps]
    first = forward["steps"][0]  # x1*w1: ṫ = w1 · ṫ(x1) + x1 · ṫ(w1), along the edges drawn into its op
    assert [[values[t[0]]["label"], t[2], t[3]] for t in first[1]] == [["x1", "-3.0000", "1.0000"],
                                                                       ["w1", "2.0000", "0.0000"]]
    assert all(t[1] for s in forward["steps"] for t in s[1])  # each term's edge is drawn
    assert forward["counts"] == {"per_pass": 9, "forward": 45, "reverse": 9} and forward["inputs"] == 5
    assert data["exercise"] is None and page_data(to_html(o))["forward"] is None
    # a + a: one term per use
    a = Value(3.0, "a")
    b = a + a
    twice = page_data(to_html(b, forward="a"))["forward"]
    assert [t[2] for t in twice["steps"][0][1]] == ["1.0000", "1.0000"]  # type: ignore[index]
    assert twice["steps"][0][2] == "2.0000"  # type: ignore[index]


def test_forward_refuses_what_it_cannot_step() -> None:
    o, v = NEURON.build()
    with pytest.raises(ValueError, match=r"forward: no input named 'z' in the graph \(inputs: b, w1, w2, x1, "
                                         r"x2\)"):
        to_html(o, forward="z")
    with pytest.raises(ValueError, match="forward: n is computed"):
        to_html(o, forward=v["n"])
    with pytest.raises(ValueError, match="that Value is not in the graph"):
        to_html(o, forward=Value(1.0, "x1"))
    with pytest.raises(TypeError, match="forward must be an input's name or Value, not int"):
        to_html(o, forward=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exercise and forward are two modes"):
        to_html(o, forward="x1", exercise=True)
    twins = Value(1.0, "x") * Value(2.0, "x")
    with pytest.raises(ValueError, match="forward: 2 inputs named 'x'"):
        to_html(twins, forward="x")
    y, _x, _w = batched_tanh()
    with pytest.raises(ValueError, match="forward mode works on numbers, not batches"):
        to_html(y, forward="w")
