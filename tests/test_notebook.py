"""chainrule.viz.notebook: the explorer and draw_dot inline in Jupyter, with and without `dot`."""

from __future__ import annotations

import html
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import need_dot, page_data

from chainrule import Value
from chainrule.nn import MLP, Layer
from chainrule.seeds import FIRST_GRAPH, NEURON
from chainrule.viz import Explorer, draw_dot, explore, to_html, trace_model


def srcdoc(frame: str) -> str:
    """The page inside an `<iframe srcdoc=...>`, unescaped."""
    m = re.search(r'<iframe [^>]*srcdoc="([^"]*)"', frame)
    assert m is not None, frame[:200]
    return html.unescape(m.group(1))


def test_explore_shows_the_explorer_in_a_sandboxed_frame() -> None:
    o, _ = NEURON.build()
    o.backward()
    explorer = explore(o)
    assert isinstance(explorer, Explorer)
    shown = explorer._repr_html_()
    assert shown.startswith("<iframe ")
    tag = shown[: shown.index("srcdoc=")]
    # Scripts run, but the frame is its own origin: it cannot reach into the notebook.
    assert 'sandbox="allow-scripts"' in tag and "allow-same-origin" not in tag
    page = srcdoc(shown)
    assert page == to_html(o)  # the standalone explorer, byte for byte
    assert "Viz.instance" in page  # Graphviz inlined...
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)  # ...and nothing fetched
    assert len(page_data(page)["values"]) == 10  # type: ignore[arg-type]


def test_explore_save_writes_the_standalone_page(tmp_path: Path) -> None:
    L, _ = FIRST_GRAPH.build()
    L.backward()
    explorer = explore(L, title="L = (a*b + c)*f")
    written = explorer.save(tmp_path / "L.html")
    assert written == tmp_path / "L.html"
    assert written.read_text(encoding="utf-8") == explorer.page == to_html(L, title="L = (a*b + c)*f")


def test_explore_a_traced_model_one_box_per_neuron_or_layer() -> None:
    model = MLP(2, [4, 4, 1], rng=random.Random(0))
    trace = trace_model(model, [0.5, -1.5])
    by_neuron = page_data(explore(trace).page)
    assert len(by_neuron["groups"]) == 9  # type: ignore[arg-type]
    kinds = [v["kind"] for v in by_neuron["values"]]  # type: ignore[attr-defined]
    assert kinds.count("param") == model.num_parameters() and kinds.count("input") == 2
    by_layer = page_data(explore(trace, groups=trace.layers).page)
    assert [g["name"] for g in by_layer["groups"].values()] == ["L0", "L1", "L2"]  # type: ignore[attr-defined]


def test_explore_refuses_what_it_cannot_show() -> None:
    with pytest.raises(TypeError, match=r"takes a Value or a trace_model\(\.\.\.\) result, not float"):
        explore(3.0)  # type: ignore[arg-type]
    two = trace_model(Layer(2, 2, rng=random.Random(0)), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"2 outputs: explore one of them, e\.g\. explore\(trace\.output"):
        explore(two)
    for bad in (0, 99, 600.0, "600", True):
        with pytest.raises(ValueError, match="height must be a whole number of pixels"):
            explore(Value(1.0), height=bad)  # type: ignore[arg-type]


def test_draw_dot_shows_the_bundled_graphviz_without_dot(hide_dot: Path) -> None:
    L, _ = FIRST_GRAPH.build()
    L.backward()
    graph = draw_dot(L)
    bundle = graph._repr_mimebundle_()  # what Jupyter calls; graphviz itself raises ExecutableNotFound
    assert set(bundle) == {"text/html"}
    shown = bundle["text/html"]
    assert shown.startswith('<iframe sandbox="allow-scripts"')
    page = srcdoc(shown)
    assert "Viz.instance" in page and not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    # the very DOT text graphviz would have drawn, as JSON, with '<' escaped so no tag can form
    assert graph.source.replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") in page


def test_draw_dot_is_graphviz_svg_with_dot() -> None:
    need_dot()
    L, _ = FIRST_GRAPH.build()
    bundle = draw_dot(L)._repr_mimebundle_()
    assert set(bundle) == {"image/svg+xml"} and "<svg" in bundle["image/svg+xml"]
    assert draw_dot(L)._repr_mimebundle_(include=["image/png"])["image/png"].startswith(b"\x89PNG")


# ----- in a real browser: the frames lay their graphs out, offline ------------------------------

def open_frame(browser: Any, shown: str, tmp_path: Path) -> tuple[Any, Any]:
    """Open a notebook-like page holding `shown`; return (page, the frame once it is ready)."""
    host = tmp_path / "notebook.html"
    host.write_text(f"<!doctype html><meta charset='utf-8'><body style='width: 900px'>{shown}</body>",
                    encoding="utf-8")
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url) if r.url.startswith(("http", "ws")) else None)
    page.goto(host.resolve().as_uri())
    frame = page.frame_locator("iframe")
    frame.locator("body[data-ready='1']").wait_for(timeout=120_000)
    assert not errors and not requests, (errors, requests)
    return page, frame


def test_explore_runs_inside_its_frame(browser: Any, tmp_path: Path) -> None:
    o, _ = NEURON.build()
    o.backward()
    page, frame = open_frame(browser, explore(o, height=500)._repr_html_(), tmp_path)
    assert frame.locator("#graph g.node.value").count() == 10
    frame.locator("#reset").click()
    frame.locator("#step").click()
    assert "grad(o) = 1.0000" in frame.locator("#explain").inner_text()
    assert page.locator("iframe").bounding_box()["height"] == pytest.approx(500, abs=3)
    page.close()


def test_draw_dot_without_dot_draws_in_its_frame(browser: Any, tmp_path: Path, hide_dot: Path) -> None:
    L, _ = FIRST_GRAPH.build()
    L.backward()
    page, frame = open_frame(browser, draw_dot(L)._repr_mimebundle_()["text/html"], tmp_path)
    assert frame.locator("svg g.node").count() == 7 + 3  # 7 values and 3 ops, as `dot` draws them
    assert "grad 6.0000" in (frame.locator("svg").text_content() or "")
    # The frame grows to the picture (its page reports its height to the notebook).
    page.wait_for_function("document.querySelector('iframe').getBoundingClientRect().height != 364")
    svg_height = frame.locator("svg").bounding_box()["height"]
    assert page.locator("iframe").bounding_box()["height"] >= svg_height
    page.close()



# ----- the first lecture as a notebook, run headless as Jupyter runs it -------------------------

LECTURE = Path(__file__).parent.parent / "examples" / "01_first_lecture.ipynb"


@pytest.mark.parametrize("graphviz", ["dot", "no dot"])
def test_first_lecture_notebook_draws_every_graph_inline(graphviz: str, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    env = dict(os.environ)
    if graphviz == "no dot":
        (tmp_path / "empty-bin").mkdir()
        env["PATH"] = str(tmp_path / "empty-bin")  # the kernel starts from sys.executable, not PATH
    else:
        need_dot()
    nb = nbformat.read(LECTURE, as_version=4)
    # Each cell's assertions (slopes, hand-made grads equal backward's) run in the kernel; an error
    # in any cell fails here with its traceback.
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute(env=env)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in cells for o in c.outputs if o.output_type == "error"]

    def shown(fragment: str) -> dict[str, Any]:
        (cell,) = [c for c in cells if fragment in c.source]
        (out,) = [o for o in cell.outputs if o.output_type == "execute_result"]
        data: dict[str, Any] = out.data
        return data

    for fragment in ('L.label = "L"', "b.grad = a.data * e.grad", "draw_dot(o)"):
        bundle = shown(fragment)
        if graphviz == "dot":
            assert "<svg" in bundle["image/svg+xml"], fragment
        else:
            assert bundle["text/html"].startswith("<iframe") and "Viz.instance" in bundle["text/html"]
    assert "grad 6.0000" in str(shown("b.grad = a.data * e.grad"))  # the grads set by hand, drawn
    page = srcdoc(shown("explore(o")["text/html"])
    assert len(page_data(page)["values"]) == 10  # type: ignore[arg-type]
    assert any("image/png" in o.get("data", {}) for c in cells for o in c.outputs)  # f's plot


def test_explore_exercise_is_the_exercise_page() -> None:
    L, _ = FIRST_GRAPH.build()
    page = explore(L, exercise=True, title="L").page
    assert page == to_html(L, title="L", exercise=True)
    assert page_data(page)["exercise"] is not None and page_data(explore(L).page)["exercise"] is None
    for bad in (1, "true"):
        with pytest.raises(TypeError, match="exercise must be True or False"):
            explore(L, exercise=bad)  # type: ignore[arg-type]
    assert explore(L, forward="f").page == to_html(L, forward="f")
    with pytest.raises(ValueError, match="forward: no input named 'x'"):
        explore(L, forward="x")
