"""The backprop explorer in real headless Chromium (Debian's `chromium`, driven by Playwright).

Without /usr/bin/chromium or the playwright package these tests skip, saying why; with
CHAINRULE_REQUIRE_BROWSER=1 (set in CI) they fail instead. Screenshots go to
tests/output/explorer/ for a person to look at.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, page_data
from conftest import browser_unavailable as _unavailable

from chainrule import RULES, Value
from chainrule.engine import topological_order
from chainrule.nn import MLP
from chainrule.seeds import FIRST_GRAPH, NEURON
from chainrule.viz import backward_steps, to_html, trace_model
from chainrule.viz.dot import layout
from chainrule.viz.steps import fmt

OUT = Path(__file__).parent / "output" / "explorer"


def open_page(browser: Any, html: Path, width: int = 1280, height: int = 800) -> Any:
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Offline means offline: any request that is not the file itself fails the test.
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith("file:") else None)
    page.goto(html.resolve().as_uri())
    page.wait_for_selector("body[data-ready]", timeout=120_000)
    assert page.evaluate("document.body.dataset.ready") == "1", page.inner_text("#graph")
    assert not errors, errors
    assert not requests, requests
    page.errors = errors
    return page


def shot(page: Any, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"))


def box_texts(boxes: str, prefix: str) -> str:
    """JS: by box id, the last text starting with `prefix` in each box `boxes` selects."""
    return """() => {
  const out = {};
  document.querySelectorAll('BOXES').forEach(g => {
    const t = [...g.querySelectorAll('text')].map(t => t.textContent).filter(s => s.startsWith('PREFIX'));
    if (t.length) out[g.id] = t[t.length - 1];
  });
  return out;
}""".replace("BOXES", boxes).replace("PREFIX", prefix)


# JS: the grad text each box shows, by box id (values `v{i}`, collapsed neurons `g{k}`).
DISPLAYED = box_texts("#graph g.node.value, #graph g.node.group", "grad ")

# JS: boxes whose text sticks out of them (a tidy page has none).
OVERFLOWING = """() => {
  const bad = [];
  document.querySelectorAll('#graph g.node').forEach(g => {
    const shape = g.querySelector(':scope > polygon, :scope > path, :scope > ellipse');
    if (!shape) return;
    const box = shape.getBBox();
    g.querySelectorAll('text').forEach(t => {
      const b = t.getBBox();
      if (b.x < box.x - 1 || b.x + b.width > box.x + box.width + 1) bad.push(g.id + ': ' + t.textContent);
    });
  });
  return bad;
}"""


def seeds_neuron() -> tuple[Value, list[Value]]:
    """The seeds' neuron (conftest's) and its parameters w1, w2, b."""
    o, named = NEURON.build()
    return o, [named["w1"], named["w2"], named["b"]]


def test_neuron_step_through_whole_pass(browser: Any, tmp_path: Path) -> None:
    root, params = seeds_neuron()
    root.backward()
    html = tmp_path / "neuron.html"
    to_html(root, html, params=params, title="The seeds' neuron: o = tanh(x1*w1 + x2*w2 + b)")
    order = topological_order(root)
    index = {id(v): i for i, v in enumerate(order)}
    page = open_page(browser, html)

    assert page.locator("#graph g.node.value").count() == len(order) == 10
    assert page.locator("#graph g.node.op").count() == 5
    final = page.evaluate(DISPLAYED)
    assert final == {f"v{i}": f"grad {fmt(v.grad)}" for i, v in enumerate(order)}
    assert page.evaluate(OVERFLOWING) == []
    shot(page, "neuron-1280-final")

    page.click("#reset")
    assert set(page.evaluate(DISPLAYED).values()) == {"grad 0.0000"}
    page.click("#step")  # the seed
    assert page.evaluate(DISPLAYED)[f"v{len(order) - 1}"] == "grad 1.0000"
    steps = list(backward_steps(root))
    for k, s in enumerate(steps):
        page.click("#step")
        shown = page.evaluate(DISPLAYED)
        assert shown[f"v{index[id(s.parent)]}"] == f"grad {fmt(s.after)}", s
        assert f"= {fmt(s.contribution)}" in page.inner_text("#explain")
        assert page.locator("#graph g.node.cur").count() >= 1
        assert page.evaluate(OVERFLOWING) == []
        if k == 3:
            shot(page, "neuron-1280-step4")
    assert page.evaluate(DISPLAYED) == final  # the end of the replay is the engine's backward
    assert page.locator("#step").is_disabled()
    assert "Done." in page.inner_text("#explain")

    # Back undoes one step exactly.
    page.click("#back")
    last = steps[-1]
    assert page.evaluate(DISPLAYED)[f"v{index[id(last.parent)]}"] == f"grad {fmt(last.before)}"
    page.click("#step")

    # The panel of `n`: its op, the rule's formula, and the chain-rule sum with numbers.
    n = next(v for v in order if v.label == "n")
    page.click(f"#graph g#v{index[id(n)]}")
    panel = page.inner_text("#panel")
    assert "made by op +" in panel.lower()
    assert RULES["+"].formula in panel
    assert "dL/dn = Σ dL/dout · dout/dn" in panel
    assert "= dL/do · do/dn = 1.0000 × 0.5000 = 0.5000" in panel.replace("\n", " ")
    shot(page, "neuron-1280-panel")
    assert not page.errors


def test_a_plus_a_adds_two_contributions(browser: Any, tmp_path: Path) -> None:
    a = Value(3.0, "a")
    b = a + a
    b.label = "b"
    b.backward()
    html = tmp_path / "twice.html"
    to_html(b, html, title="b = a + a")
    page = open_page(browser, html)
    assert page.locator("#graph g.edge").count() == 3  # op -> b, and two a -> op
    page.click("#reset")
    page.click("#step")
    page.click("#step")
    assert page.evaluate(DISPLAYED)["v0"] == "grad 1.0000"
    assert "used twice" in page.inner_text("#explain")
    page.click("#step")
    assert page.evaluate(DISPLAYED)["v0"] == "grad 2.0000"
    page.click("#graph g#v0")
    assert "1.0000 × 1.0000 + 1.0000 × 1.0000" in page.inner_text("#panel").replace("\n", " ")
    shot(page, "a-plus-a")


def demo_mlp() -> tuple[Value, Any]:
    model = MLP(2, [16, 16, 1], activation="relu", output_activation="linear", bias_init="zero",
                rng=random.Random(1337))
    assert model.num_parameters() == 337
    trace = trace_model(model, [1.2, -0.4])
    out = trace.output
    assert isinstance(out, Value)
    loss = (1 + -1.0 * out).relu()  # micrograd's demo: hinge loss, here on one datapoint
    loss.label = "loss"
    loss.backward()
    return loss, trace


def test_mlp_on_one_datapoint_grouped_by_neuron(browser: Any, tmp_path: Path) -> None:
    loss, trace = demo_mlp()
    html = tmp_path / "mlp.html"
    t0 = time.perf_counter()
    to_html(loss, html, params=trace.params, inputs=trace.inputs, groups=trace.neurons,
            title="micrograd's demo MLP(2, [16, 16, 1]), 337 parameters, one datapoint")
    build_s = time.perf_counter() - t0
    drawing = layout(loss, params=trace.params, inputs=trace.inputs, groups=trace.neurons)
    drawn_values = sum(1 for i, e in enumerate(drawing.element) if e == f"v{i}")
    t0 = time.perf_counter()
    page = open_page(browser, html)
    open_s = time.perf_counter() - t0
    layout_ms = int(page.evaluate("document.body.dataset.layoutMs"))
    print(f"\n337-parameter MLP explorer: page {html.stat().st_size / 1e6:.2f} MB, built in "
          f"{build_s * 1000:.0f} ms, opened in {open_s:.2f} s, Graphviz-wasm layout {layout_ms} ms")

    assert page.locator("#graph g.node.group").count() == 33
    assert page.locator("#graph g.node.value").count() == drawn_values
    shot(page, "mlp-1280-final")

    # What each box must show after every position of the replay, computed here from the steps.
    order = drawing.order
    index = drawing.index
    shows: dict[str, int] = {}  # box -> the value whose grad it shows
    for i, e in enumerate(drawing.element):
        if e == f"v{i}":
            shows[e] = i
    for elem, g, _ in drawing.groups:
        shows[elem] = index[id(g.outputs[0])]
    grads = [0.0] * len(order)
    page.click("#reset")
    steps = list(backward_steps(loss))
    # Click Step through the whole pass in the page (1 click per edge), reading every box each time.
    seen = page.evaluate(
        "(n) => { const got = [], spill = new Set(); const read = " + DISPLAYED + ";"
        " const over = " + OVERFLOWING + ";"
        " for (let k = 0; k < n; k++) { document.getElementById('step').click(); got.push(read());"
        "   over().forEach((b) => spill.add(b)); }"
        " return [got, [...spill]]; }",
        len(steps) + 1,
    )
    seen, spilled = seen
    assert spilled == []  # no grad text ever sticks out of its box during the replay
    grads[len(order) - 1] = 1.0
    expected = [{box: f"grad {fmt(grads[i])}" for box, i in shows.items()}]
    for s in steps:
        grads[index[id(s.parent)]] = s.after
        expected.append({box: f"grad {fmt(grads[i])}" for box, i in shows.items()})
    assert len(seen) == len(expected)
    for k, (got, want) in enumerate(zip(seen, expected, strict=True)):
        assert got == want, f"after click {k + 1}"
    assert seen[-1] == {box: f"grad {fmt(order[i].grad)}" for box, i in shows.items()}

    page.click("#graph g#g0")
    panel = page.inner_text("#panel")
    assert "L0.N0" in panel and "3 of them parameters" in panel
    shot(page, "mlp-1280-group-panel")
    assert page.evaluate(OVERFLOWING) == []


@pytest.mark.parametrize("graph", ["neuron", "mlp"])
def test_layout_is_tidy_wide_and_narrow(browser: Any, tmp_path: Path, graph: str) -> None:
    html = tmp_path / f"{graph}.html"
    if graph == "neuron":
        root, params = seeds_neuron()
        root.backward()
        to_html(root, html, params=params, title="The seeds' neuron")
    else:
        loss, trace = demo_mlp()
        to_html(loss, html, params=trace.params, inputs=trace.inputs, groups=trace.neurons,
                title="micrograd's demo MLP(2, [16, 16, 1]), 337 parameters, one datapoint")
    for width, height in ((1280, 800), (420, 860)):
        page = open_page(browser, html, width, height)
        if width == 1280:
            # Both open with the whole width of the graph in view (inputs to output), at a zoom
            # where 12pt labels are at least ~11px: only a tall graph scrolls, and only down.
            fits = page.evaluate("(() => { const g = document.getElementById('graph');"
                                 " return [g.scrollWidth <= g.clientWidth,"
                                 " parseFloat(g.querySelector('svg').getAttribute('width'))"
                                 " / g.querySelector('svg').viewBox.baseVal.width]; })()")
            assert fits[0] and fits[1] >= 0.7 * 4 / 3 - 1e-3, fits  # (width is rounded to 0.1 px)
        page.click("#reset")
        for _ in range(4):
            page.click("#step")
        page.locator("#graph g.node.value").first.click()
        # Nothing wider than the window, and the toolbar's buttons never overlap each other.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        boxes = [page.locator(sel).bounding_box() for sel in ("#reset", "#back", "#step", "#play")]
        for i, a in enumerate(boxes):
            assert a is not None and a["x"] >= 0 and a["x"] + a["width"] <= width
            for b in boxes[i + 1:]:
                assert b is not None
                apart = (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                         or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])
                assert apart, (a, b)
        font = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#explain p')).fontSize)")
        assert font >= 14
        assert page.evaluate(OVERFLOWING) == []
        shot(page, f"{graph}-{width}x{height}")
        page.close()


def test_boxes_fit_partial_sums_wider_than_the_final_grad(browser: Any, tmp_path: Path) -> None:
    a = Value(1.0, "a")
    y = a * 12345.0 + a * -12345.0 + a * 0.5  # grad(a) passes through 12345.0 on its way to 0.5
    y.label = "y"
    y.backward()
    html = tmp_path / "cancel.html"
    to_html(y, html)
    page = open_page(browser, html)
    page.click("#reset")
    spilled: set[str] = set()
    for _ in range(len(list(backward_steps(y))) + 1):
        page.click("#step")
        spilled.update(page.evaluate(OVERFLOWING))
    assert spilled == set()
    i = next(i for i, v in enumerate(topological_order(y)) if v is a)
    assert page.evaluate(DISPLAYED)[f"v{i}"] == "grad 0.5000"


def test_mlp_with_one_neuron_expanded(browser: Any, tmp_path: Path) -> None:
    loss, trace = demo_mlp()
    html = tmp_path / "expanded.html"
    to_html(loss, html, params=trace.params, inputs=trace.inputs, groups=trace.neurons,
            expand=["L1.N3"], title="MLP with neuron L1.N3 expanded")
    page = open_page(browser, html)
    assert page.locator("#graph g.node.group").count() == 32
    assert page.locator("#graph g.cluster").count() == 1
    assert page.locator("#graph g.node.param").count() == 17  # L1.N3's 16 weights and bias
    page.locator("#graph g.node.param").first.click()
    assert "parameter" in page.inner_text("#panel")
    shot(page, "mlp-expanded-L1.N3")


# ----- text measured in the browser's own font ----------------------------------------------------

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")

# JS: every text of every box, by how many points it sticks out of the box (left, right, top, bottom).
SPILLS = """() => {
  const bad = [];
  document.querySelectorAll('#graph g.node').forEach(g => {
    const shape = g.querySelector(':scope > polygon, :scope > path, :scope > ellipse');
    const box = shape.getBBox();
    g.querySelectorAll('text').forEach(t => {
      const b = t.getBBox();
      const out = Math.max(box.x - b.x, b.x + b.width - box.x - box.width, box.y - b.y,
                           b.y + b.height - box.y - box.height);
      if (out > 0.25) bad.push(`${g.id} "${t.textContent}" by ${out.toFixed(1)}pt`);
    });
  });
  return bad;
}"""


@pytest.fixture(scope="module")
def dejavu_browser(playwright: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium that finds only DejaVu fonts, as on a machine without Helvetica or its metric twins
    (Liberation Sans, Arial): "Helvetica" is then drawn in DejaVu Sans, 10-15% wider."""
    if not DEJAVU.is_dir():
        _unavailable(f"{DEJAVU} not found (apt-get install fonts-dejavu-core)")
    folder = tmp_path_factory.mktemp("fontconfig")
    (folder / "fonts.conf").write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        f"<dir>{DEJAVU}</dir><cachedir>{folder / 'cache'}</cachedir>"
        "<alias><family>Helvetica</family><prefer><family>DejaVu Sans</family></prefer></alias>"
        "<alias><family>sans-serif</family><prefer><family>DejaVu Sans</family></prefer></alias>"
        "</fontconfig>", encoding="utf-8")
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                   env={**os.environ, "FONTCONFIG_FILE": str(folder / "fonts.conf")})
    yield b
    b.close()


def long_labels(tmp_path: Path, graph: str) -> Path:
    html = tmp_path / f"{graph}.html"
    if graph == "neuron":
        root, params = seeds_neuron()
        root.label = "tanh(x1*w1 + x2*w2 + b)"  # as `chainrule graph` labels it: a slice of the source
        root.backward()
        to_html(root, html, params=params)
    else:
        loss, trace = demo_mlp()
        groups = trace.layers if graph == "mlp-layers" else trace.neurons
        to_html(loss, html, params=trace.params, inputs=trace.inputs, groups=groups)
    return html


@pytest.mark.parametrize("fonts", ["dejavu", "system"])
@pytest.mark.parametrize("graph", ["neuron", "mlp-layers", "mlp-neurons"])
def test_every_label_lies_inside_its_box(browser: Any, dejavu_browser: Any, tmp_path: Path,
                                         graph: str, fonts: str) -> None:
    page = open_page(dejavu_browser if fonts == "dejavu" else browser, long_labels(tmp_path, graph))
    if fonts == "dejavu":  # the page really draws Helvetica in DejaVu Sans
        assert page.evaluate("""() => { const c = document.createElement('canvas').getContext('2d');
          const w = (f) => { c.font = '12px ' + f; return c.measureText('tanh(x1*w1 + x2*w2 + b)').width; };
          return w('Helvetica') === w('"DejaVu Sans"'); }""")
    assert page.evaluate(SPILLS) == []
    page.click("#reset")  # and at every step of the replay, where partial sums are shown
    spilled = page.evaluate("(n) => { const bad = new Set(); const spills = " + SPILLS + ";"
                            " for (let k = 0; k < n; k++) { document.getElementById('step').click();"
                            "   spills().forEach((b) => bad.add(b)); } return [...bad]; }",
                            page.evaluate("JSON.parse(document.getElementById('graph-data').textContent)"
                                          ".steps.length") + 1)
    assert spilled == []
    if graph == "neuron":
        shot(page, f"neuron-long-label-{fonts}")
    page.close()


# ----- many edges between two layers: one bundle, expandable -------------------------------------

VISIBLE_BUNDLED = """() => [...document.querySelectorAll('#graph g.edge.bundled')]
  .filter((e) => e.getBoundingClientRect().width > 0).length"""


def test_mlp_layer_to_layer_edges_are_one_bundle_until_clicked(browser: Any, tmp_path: Path) -> None:
    loss, trace = demo_mlp()
    html = long_labels(tmp_path, "mlp-neurons")
    page = open_page(browser, html)
    bundle = page.locator("#graph g.bundle")
    assert bundle.count() == 1  # L0 -> L1: 16 x 16 edges; x -> L0 (32) and L1 -> L2 (16) stay edges
    assert bundle.locator("text").text_content() == "256 edges · click to show"
    assert page.locator("#graph g.edge.bundled").count() == 256
    assert page.evaluate(VISIBLE_BUNDLED) == 0
    assert page.locator("#graph g.edge:not(.bundled)").count() > 0
    level = "document.getElementById('bundle0').scrollIntoView({block: 'center', inline: 'center'})"
    page.evaluate(level)
    shot(page, "mlp-1280-bundled")

    bundle.locator("polygon").click()
    assert page.evaluate(VISIBLE_BUNDLED) == 256
    assert bundle.locator("text").text_content() == "256 edges · click to hide"
    page.evaluate(level)
    shot(page, "mlp-1280-bundle-open")
    bundle.locator("polygon").click()
    assert page.evaluate(VISIBLE_BUNDLED) == 0

    # Stepping backward along a hidden edge lights up its bundle.
    data = page.evaluate("JSON.parse(document.getElementById('graph-data').textContent)")
    edges = set(data["bundles"][0]["edges"])
    k = next(k for k, s in enumerate(data["steps"]) if s[8] in edges)
    page.click("#reset")
    page.evaluate("(n) => { for (let i = 0; i < n; i++) document.getElementById('step').click(); }", k + 2)
    assert "flow" in (bundle.get_attribute("class") or "")
    page.click("#step")
    assert not page.errors
    del loss, trace


# ----- exercise mode: the learner finds each grad, backward from the output ---------------------------

def test_exercise_hides_grads_checks_answers_and_scores(browser: Any, tmp_path: Path) -> None:
    L, named = FIRST_GRAPH.build()
    L.backward()
    html = tmp_path / "exercise.html"
    to_html(L, html, title="L = (a*b + c)*f", exercise=True)
    order = topological_order(L)
    box = {v.label: f"v{i}" for i, v in enumerate(order)}
    page = open_page(browser, html, 1280, 800)

    # Nothing shows a grad but the seed: no box reads f's 4.0000, and the replay controls are gone.
    shown = page.evaluate(DISPLAYED)
    assert shown == {**{b: "grad ?" for b in box.values()}, box["L"]: "grad 1.0000"}
    assert "grad 4.0000" not in page.inner_text("#graph")  # (d's data is 4.0000 too)
    assert not page.locator("#step").is_visible() and not page.locator("#play").is_visible()
    card = page.inner_text("#explain")
    assert "grad(L) = 1" in card and "the seed" in card
    assert page.inner_text("#ex-q").strip() == "grad(f) ="  # backward's order: f's grad is final first
    assert page.inner_text("#counter") == "question 1 of 6"
    page.keyboard.press("ArrowRight")  # the stepper's keys do nothing here
    assert page.evaluate(DISPLAYED)[box["f"]] == "grad ?"
    page.click(f"#graph g#{box['f']}")
    assert "?" in page.inner_text("#panel") and "4.0000" not in page.inner_text("#panel")  # f's data is -2
    shot(page, "exercise-1280-start")

    # Not a number: said so, not counted. A wrong number: said so, the grad stays hidden.
    page.fill("#ex-answer", "four")
    page.press("#ex-answer", "Enter")
    assert "Type a number" in page.inner_text("#ex-feedback")
    page.fill("#ex-answer", "-4")
    page.press("#ex-answer", "Enter")
    assert "Wrong" in page.inner_text("#ex-feedback")
    assert page.evaluate(DISPLAYED)[box["f"]] == "grad ?"
    assert page.inner_text("#ex-q").strip() == "grad(f) ="
    # "Show how": the chain-rule terms (upstream × local for each use), the sum left to the learner.
    page.click("#ex-how")
    how = page.inner_text("#ex-how-box").replace("\n", " ")
    assert "dL/dL · ∂L/∂f" in how and "= 1.0000 × 4.0000 = ?" in how
    assert page.locator("#graph g.edge.flow").count() == 1
    shot(page, "exercise-1280-show-how")
    page.fill("#ex-answer", "4")
    page.press("#ex-answer", "Enter")
    assert page.evaluate(DISPLAYED)[box["f"]] == "grad 4.0000"
    assert "Right" in page.inner_text("#ex-feedback")
    assert page.inner_text("#ex-q").strip() == "grad(d) ="
    assert "0 of 1 right first try" in page.inner_text("#ex-score")

    # The rest, in backward's order: d, c, e first try (typed as "-2.0", "-2", "-2.00001"); a revealed;
    # b first try with the Check button.
    for label, typed in (("d", "-2.0"), ("c", "-2"), ("e", "-2.00001")):
        assert page.inner_text("#ex-q").strip() == f"grad({label}) ="
        page.fill("#ex-answer", typed)
        page.press("#ex-answer", "Enter")
        assert page.evaluate(DISPLAYED)[box[label]] == "grad -2.0000", label
    assert page.inner_text("#ex-q").strip() == "grad(a) ="
    page.click("#ex-reveal")
    assert "Revealed: grad(a) = 6.0000" in page.inner_text("#ex-feedback")
    assert page.evaluate(DISPLAYED)[box["a"]] == "grad 6.0000"
    page.fill("#ex-answer", "-4e0")
    page.click("#ex-check")
    assert page.evaluate(DISPLAYED) == {box[v.label]: f"grad {fmt(v.grad)}" for v in order}
    assert page.inner_text("#ex-score") == "Score: 4 of 6 right first try · 1 revealed"
    assert "Done." in page.inner_text("#explain")
    assert page.inner_text("#counter") == "exercise done"
    assert not page.locator("#ex-form").is_visible()
    page.click(f"#graph g#{box['a']}")  # now the panel shows a's chain rule in full
    assert "= -2.0000 × -3.0000" in page.inner_text("#panel").replace("\n", " ")
    shot(page, "exercise-1280-done")
    page.click("#ex-again")
    assert page.evaluate(DISPLAYED)[box["f"]] == "grad ?"
    assert named["f"].grad == 4.0  # the page never touches the graph
    assert not page.errors


def test_exercise_on_a_model_skips_collapsed_neurons(browser: Any, tmp_path: Path) -> None:
    model = MLP(2, [2, 1], rng=random.Random(0))
    trace = trace_model(model, [1.0, -2.0])
    out = trace.output
    assert isinstance(out, Value)
    html = tmp_path / "model-exercise.html"
    to_html(out, html, params=trace.params, inputs=trace.inputs, groups=trace.neurons, exercise=True)
    page = open_page(browser, html, 960, 640)
    data = page.evaluate("JSON.parse(document.getElementById('graph-data').textContent).exercise")
    assert len(data["ask"]) == 2  # the two inputs; the three neurons are given as backward reaches them
    shown = page.evaluate(DISPLAYED)
    # The neurons' grads are all final before the first input's: given from the start, the inputs asked.
    inputs = [f"v{a['i']}" for a in data["ask"]]
    assert sorted(shown) == sorted(["g0", "g1", "g2", *inputs])
    assert {shown[i] for i in inputs} == {"grad ?"} and "?" not in shown["g0"] + shown["g1"] + shown["g2"]
    shot(page, "exercise-model-960x640")
    for a in data["ask"]:
        page.fill("#ex-answer", a["text"])
        page.press("#ex-answer", "Enter")
    assert "Score: 2 of 2 right first try" in page.inner_text("#ex-score")
    assert "?" not in "".join(page.evaluate(DISPLAYED).values())
    assert not page.errors


# ----- a graph backward() never ran on ---------------------------------------------------------------

def test_before_backward_the_page_says_so_and_replays_what_backward_would_give(browser: Any,
                                                                               tmp_path: Path) -> None:
    L, named = FIRST_GRAPH.build()  # no L.backward(): every .grad is 0
    html = tmp_path / "no-backward.html"
    to_html(L, html, title="L = (a*b + c)*f, before backward()")
    order = topological_order(L)
    page = open_page(browser, html)
    assert set(page.evaluate(DISPLAYED).values()) == {"grad 0.0000"}  # what the Values hold
    opening = page.inner_text("#explain")
    assert "backward() has not been called" in opening and "grad 0" in opening
    assert "Every grad shown is now" not in opening
    shot(page, "no-backward-start")
    steps = list(backward_steps(L))
    for _ in range(len(steps) + 1):
        page.click("#step")
    assert page.locator("#step").is_disabled()
    L.backward()  # the grads the replay showed are the ones backward() then gives
    assert page.evaluate(DISPLAYED) == {f"v{i}": f"grad {fmt(v.grad)}" for i, v in enumerate(order)}
    done = page.inner_text("#explain")
    assert ("Done. These are the grads backward() would give; the Values themselves still hold 0 until you "
            "call L.backward().") in done
    page.click("#graph g#v0")  # a: its panel says both
    panel = page.inner_text("#panel").replace("\n", " ")
    row = "#panel tr:has(th:text-is('{}')) td"
    assert page.inner_text(row.format(".grad (no backward yet)")) == "0.0000"
    assert page.inner_text(row.format("backward() would give")) == "6.0000"
    assert "= -2.0000 × -3.0000 = 6.0000" in panel
    shot(page, "no-backward-done")
    assert named["a"].grad == 6.0 and not page.errors


def test_a_traced_model_before_backward(browser: Any, tmp_path: Path) -> None:
    from chainrule.viz import explore

    model = MLP(2, [2, 1], rng=random.Random(0))
    html = tmp_path / "model.html"
    explore(trace_model(model, [1.0, -2.0])).save(html)  # as the README shows: no backward
    page = open_page(browser, html)
    assert set(page.evaluate(DISPLAYED).values()) == {"grad 0.0000"}
    assert "backward() has not been called" in page.inner_text("#explain")
    page.click("#play")
    page.wait_for_function("document.getElementById('step').disabled", timeout=30_000)
    assert "the Values themselves still hold 0 until you call backward()" in page.inner_text("#explain")
    assert page.evaluate(DISPLAYED)["g2"] == "grad 1.0000"  # the output neuron's replayed grad
    assert all(p.grad == 0 for p in model.parameters())


# ----- the first view in a notebook's frame ------------------------------------------------------------

# JS: the boxes not wholly inside the graph pane's visible area (its scrolled window, not the page).
OUT_OF_VIEW = """() => {
  const g = document.getElementById('graph'), b = g.getBoundingClientRect();
  const [left, top] = [b.left + g.clientLeft, b.top + g.clientTop];
  const [right, bottom] = [left + g.clientWidth, top + g.clientHeight];
  const side = document.getElementById('side').getBoundingClientRect().left;
  return [...document.querySelectorAll('#graph g.node')].filter((n) => {
    const r = n.getBoundingClientRect();
    return r.left < left || r.top < top || r.right > Math.min(right, side) || r.bottom > bottom;
  }).map((n) => n.id);
}"""


@pytest.mark.parametrize("graph", ["neuron", "mlp"])
@pytest.mark.parametrize("exercise", [False, True], ids=["explorer", "exercise"])
def test_first_view_in_a_notebook_frame_shows_the_output(browser: Any, tmp_path: Path, graph: str,
                                                         exercise: bool) -> None:
    html = tmp_path / f"{graph}.html"
    if graph == "neuron":
        root, params = seeds_neuron()
        root.backward()
        to_html(root, html, params=params, exercise=exercise)
    else:
        root, trace = demo_mlp()
        to_html(root, html, params=trace.params, inputs=trace.inputs, groups=trace.neurons, exercise=exercise)
    page = open_page(browser, html, 960, 640)  # explore()'s frame: 640 high, a notebook's width
    hidden = page.evaluate(OUT_OF_VIEW)
    data = page_data(html.read_text(encoding="utf-8"))
    root_box = data["values"][data["root"]]["el"]  # type: ignore[index]
    assert root_box not in hidden  # backward starts at the output: it shows, whole
    zoom = page.evaluate("(() => { const s = document.querySelector('#graph svg'); return"
                         " parseFloat(s.getAttribute('width')) / s.viewBox.baseVal.width / (4 / 3); })()")
    if graph == "neuron":
        assert hidden == []  # the whole graph ...
        assert zoom >= 0.6 - 1e-3  # ... at a zoom where 12pt labels are at least ~9.5px
    else:
        assert len(hidden) > 0 and zoom >= 0.6 - 1e-3  # too big to show whole: readable, at the output
    shot(page, f"first-view-{graph}-{'exercise' if exercise else 'explorer'}-960x640")
    page.close()


# ----- forward mode: tangents pushed from one input to the output ------------------------------------

# JS: the tangent text each box shows, by box id.
TANGENTS = box_texts("#graph g.node.value", "ṫ ")


def test_forward_mode_steps_tangents_to_the_output_and_compares_the_counts(browser: Any,
                                                                           tmp_path: Path) -> None:
    from chainrule.forward import op_counts
    from chainrule.viz import explore, forward_steps

    root, params = seeds_neuron()
    html = tmp_path / "forward.html"
    explore(root, params=params, forward="x1").save(html)
    order = topological_order(root)
    index = {id(v): i for i, v in enumerate(order)}
    x1 = next(v for v in order if v.label == "x1")
    page = open_page(browser, html)
    assert set(page.evaluate(TANGENTS).values()) == {"ṫ 0.0000"}
    assert page.evaluate(DISPLAYED) == {}  # no grad shown in this mode
    assert page.text_content("#explain h2") == "Forward mode: d/dx1"
    assert "how fast the value moves when x1 moves" in page.inner_text("#explain")
    page.click("#step")  # the seed
    assert page.evaluate(TANGENTS)[f"v{index[id(x1)]}"] == "ṫ 1.0000"
    steps = forward_steps(root, x1, [v for v in order if not v.parents])
    for k, s in enumerate(steps):
        page.click("#step")
        assert page.evaluate(TANGENTS)[f"v{index[id(s.node)]}"] == f"ṫ {fmt(s.tangent)}", s
        assert f"= {fmt(s.tangent)}" in page.inner_text("#explain")
        assert page.evaluate(OVERFLOWING) == []
        if k == 2:
            shot(page, "forward-1280-step3")
    assert page.locator("#step").is_disabled()
    assert page.inner_text("#counter") == "step 5 of 5"
    root.backward()
    assert page.evaluate(TANGENTS)[f"v{len(order) - 1}"] == f"ṫ {fmt(x1.grad)}"  # d o/d x1 = -1.5
    counts = op_counts(root, [v for v in order if not v.parents])
    done = page.inner_text("#explain")
    assert f"One forward pass gave one derivative: do/dx1 = {fmt(x1.grad)}" in done
    assert (f"forward mode takes 5 passes × {counts.per_pass} = {counts.forward} multiply-adds; reverse mode "
            f"(o.backward()) gives them all in one pass of {counts.reverse}") in done
    page.click(f"#graph g#v{index[id(steps[0].node)]}")  # x1*w1: its forward chain rule
    assert "= -3.0000 × 1.0000 + 2.0000 × 0.0000 = -3.0000" in page.inner_text("#panel").replace("\n", " ")
    shot(page, "forward-1280-done")
    assert not page.errors


def test_a_detach_passes_no_gradient_and_says_so(browser: Any, tmp_path: Path) -> None:
    x = Value(2.0, "x")
    s = x * 3.0
    s.label = "s"
    d = s.detach()
    d.label = "d"
    y = x * d
    y.label = "y"
    y.backward()
    assert (x.grad, d.grad, s.grad) == (6.0, 2.0, 0.0)  # only y's direct edge reaches x
    html = tmp_path / "detach.html"
    to_html(y, html, title="y = x · detach(3x)")
    order = topological_order(y)
    index = {id(v): i for i, v in enumerate(order)}
    page = open_page(browser, html)
    final = page.evaluate(DISPLAYED)
    assert final == {f"v{i}": f"grad {fmt(v.grad)}" for i, v in enumerate(order)}
    page.click("#reset")
    while not page.locator("#step").is_disabled():
        page.click("#step")
    assert page.evaluate(DISPLAYED) == final  # the replay sends nothing through the detach either
    page.click(f"#graph g#v{index[id(d)]}")
    panel = page.inner_text("#panel")
    assert "made by op detach" in panel.lower()
    assert RULES["detach"].formula in panel
    assert "none (no gradient passes)" in panel
    shot(page, "detach-panel")
    page.click(f"#graph g#v{index[id(s)]}")  # read by the detach only
    assert "No gradient reaches this value: what uses it lies behind a detach" in page.inner_text("#panel")
    page.click(f"#graph g#v{index[id(s.parents[1])]}")  # the 3.0, behind the detach too
    assert "lies behind a detach" in page.inner_text("#panel")
    assert not page.errors
