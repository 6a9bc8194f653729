"""chainrule.viz.notebook: the explorer and draw_dot inline in Jupyter, with and without `dot`."""

from __future__ import annotations

import base64
import html
import os
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import need_dot, page_data

from chainrule import Value
from chainrule.nn import MLP, Layer
from chainrule.seeds import FIRST_GRAPH, NEURON
from chainrule.viz import Explorer, draw_dot, explore, notebook, to_html, trace_model
from chainrule.viz.notebook import inline_page

BUNDLE = 'data-chainrule-viz="1"'  # the notebook's copy of Graphviz, sent with a kernel's first picture
VIZ_JS = "Viz.js 3.31.0"  # the bundle's first line


def copies(shown: str) -> int:
    """How many copies of Graphviz an output holds: as the notebook's base64 text, or as a script."""
    return shown.count(BUNDLE) + shown.count(VIZ_JS)


@pytest.fixture(autouse=True)
def new_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a fresh kernel: its first picture carries the bundle."""
    for name, start in (("bundle_shown", False), ("bundle_cell", None), ("bundle_request", None)):
        monkeypatch.setattr(notebook._Kernel, name, start)


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
    tag = shown[shown.index("<iframe "): shown.index("srcdoc=")]
    # Scripts run, but the frame is its own origin: it cannot reach into the notebook.
    assert 'sandbox="allow-scripts"' in tag and "allow-same-origin" not in tag
    page = srcdoc(shown)
    standalone = to_html(o)
    assert VIZ_JS in standalone and VIZ_JS not in page  # the frame's Graphviz comes from the notebook...
    assert page == inline_page(standalone) and len(page) < len(standalone) - 1_000_000
    assert page.replace(notebook._LOADER, notebook._viz()) == standalone  # ...else the same page
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)  # and nothing fetched
    assert len(page_data(page)["values"]) == 10  # type: ignore[arg-type]


def test_the_bundle_goes_to_the_notebook_with_the_first_picture_only(hide_dot: Path) -> None:
    L, _ = FIRST_GRAPH.build()
    first, second, third = draw_dot(L)._repr_mimebundle_()["text/html"], explore(L)._repr_html_(), \
        draw_dot(L)._repr_mimebundle_()["text/html"]
    m = re.match(f'<script type="text/plain" {BUNDLE}>([A-Za-z0-9+/=]+)</script>', first)
    assert m is not None and copies(first) == 1  # in the notebook's DOM, outside the frame
    viz = base64.b64decode(m.group(1)).decode("utf-8")
    assert viz.startswith(f"/*!\n{VIZ_JS}") and notebook._script_safe(viz) == notebook._viz()
    for later in (second, third):
        assert copies(later) == 0 and len(later) < 200_000  # the bundle alone is 1.8 MB
        assert notebook._ANSWER in later  # each output can hand the bundle on, once it is on the page
    assert explore(L).page.count(VIZ_JS) == 1  # what .save() writes still carries its own


def test_the_bundle_goes_out_again_when_the_cell_that_held_it_is_run_again_or_deleted(
        monkeypatch: pytest.MonkeyPatch, hide_dot: Path) -> None:
    import IPython

    L, _ = FIRST_GRAPH.build()
    run: dict[str, Any] = {}
    kernel = SimpleNamespace(get_parent=lambda: run)  # ipykernel's parent message, as JupyterLab sends it
    monkeypatch.setattr(IPython, "get_ipython", lambda: SimpleNamespace(kernel=kernel))

    def show(cell: str, request: str, deleted: tuple[str, ...] = ()) -> int:
        run.clear()
        run.update(header={"msg_id": request}, metadata={"cellId": cell, "deletedCells": list(deleted)})
        return copies(draw_dot(L)._repr_mimebundle_()["text/html"])

    assert [show("a", "1"), show("a", "1"), show("b", "2")] == [1, 0, 0]  # twice in one run of a: once
    assert show("a", "3") == 1  # a run again: its new output replaces the one that held the bundle
    assert [show("b", "4"), show("c", "5", deleted=("x",))] == [0, 0]
    assert show("c", "6", deleted=("a",)) == 1  # the cell holding it was deleted
    run.clear()  # a front end that names no cells (nbclient, the classic notebook): once per kernel
    assert [copies(draw_dot(L)._repr_mimebundle_()["text/html"]) for _ in range(2)] == [0, 0]


def test_a_page_not_made_by_to_html_is_shown_as_it_is() -> None:
    assert inline_page("<p>hello</p>") == "<p>hello</p>"
    assert srcdoc(Explorer("<p>hello</p>")._repr_html_()) == "<p>hello</p>"


def test_the_inline_pages_declare_their_charset(hide_dot: Path) -> None:
    L, _ = FIRST_GRAPH.build()
    L.label = "L = (a·b + c)·f ✓"  # not ASCII: a page without its charset would show mojibake
    for shown in (draw_dot(L)._repr_mimebundle_()["text/html"], explore(L)._repr_html_()):
        head = srcdoc(shown).split("</head>")[0]
        assert re.search(r"<head>\s*<meta charset=\"utf-8\">", head), head[:200]


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
    assert '<iframe sandbox="allow-scripts"' in shown and copies(shown) == 1
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



# As JupyterLab shows an output of a running kernel: its HTML goes in, then each of its scripts runs anew.
ADD_OUTPUT = """<script>
window.addOutput = (html) => {
  const div = document.createElement("div");
  div.innerHTML = html;
  document.body.appendChild(div);
  for (const old of div.querySelectorAll("script")) {
    const fresh = document.createElement("script");
    for (const a of old.attributes) fresh.setAttribute(a.name, a.value);
    fresh.textContent = old.textContent;
    old.replaceWith(fresh);
  }
};
</script>"""


def open_notebook(browser: Any, outputs: list[str], tmp_path: Path, *, own_frames: bool = False) -> Any:
    """A page holding `outputs` one after the other, as a saved notebook's HTML export does (or, with
    own_frames, each output in a sandboxed frame of its own, as some front ends show them)."""
    if own_frames:
        body = "".join(f'<iframe sandbox="allow-scripts" style="width: 950px; height: 700px" srcdoc="'
                       f'{html.escape("<!doctype html><meta charset=utf-8><body>" + out)}"></iframe>'
                       for out in outputs)
    else:
        body = "".join(f"<div class='output'>{out}</div>" for out in outputs)
    host = tmp_path / "notebook.html"
    host.write_text(f"<!doctype html><meta charset='utf-8'><body style='width: 960px'>{ADD_OUTPUT}{body}"
                    "</body>", encoding="utf-8")
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.errors, page.requests = [], []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("request", lambda r: page.requests.append(r.url) if r.url.startswith(("http", "ws")) else None)
    page.goto(host.resolve().as_uri())
    return page


def drawn(page: Any, count: int, timeout: float = 120) -> None:
    """Wait until `count` chainrule frames on the page (at any depth) have laid out their graphs."""
    deadline = time.monotonic() + timeout
    while frames_ready(page).count("1") < count:
        assert time.monotonic() < deadline, frames_ready(page)
        page.wait_for_timeout(250)


def frames_ready(page: Any) -> list[str | None]:
    """Each chainrule frame's state: '1' drawn, 'waiting' for the notebook's Graphviz, None still loading."""
    return [f.evaluate("document.body.dataset.ready || null") for f in page.frames
            if f.query_selector("#graph") is not None]


def test_every_picture_of_a_notebook_page_draws_with_one_bundle(browser: Any, tmp_path: Path,
                                                                hide_dot: Path) -> None:
    L, _ = FIRST_GRAPH.build()
    L.backward()
    o, _ = NEURON.build()
    o.backward()
    outputs = [draw_dot(L)._repr_mimebundle_()["text/html"], explore(o, height=400)._repr_html_(),
               draw_dot(o)._repr_mimebundle_()["text/html"], explore(L, height=400)._repr_html_()]
    assert sum(copies(out) for out in outputs) == 1
    page = open_notebook(browser, outputs, tmp_path)
    page.wait_for_function("() => [...document.querySelectorAll('iframe')].length === 4")
    for f in [f for f in page.frames if f.parent_frame is not None]:
        f.wait_for_selector("body[data-ready='1']", timeout=120_000)
    assert frames_ready(page) == ["1"] * 4
    assert not page.errors and not page.requests, (page.errors, page.requests)
    page.close()


def test_a_page_whose_bundle_was_cleared_says_so_and_draws_once_a_new_kernel_shows_one(
        browser: Any, tmp_path: Path, hide_dot: Path) -> None:
    L, _ = FIRST_GRAPH.build()
    L.backward()
    draw_dot(L)._repr_mimebundle_()  # the cell that carried the bundle, cleared before the notebook was saved
    saved = [explore(L, height=400)._repr_html_(), draw_dot(L)._repr_mimebundle_()["text/html"]]
    page = open_notebook(browser, saved, tmp_path)
    for f in [f for f in page.frames if f.parent_frame is not None]:
        f.wait_for_selector("body[data-ready='waiting']", timeout=30_000)
        assert "run this cell again" in f.locator("#graph").inner_text()
    notebook._Kernel.bundle_shown = False  # a new kernel: its first picture carries the bundle again
    page.evaluate("addOutput", draw_dot(L)._repr_mimebundle_()["text/html"])
    drawn(page, 3)  # the new output and both that were waiting
    assert frames_ready(page) == ["1"] * 3
    assert not page.errors and not page.requests, (page.errors, page.requests)
    page.close()


def test_outputs_each_in_a_frame_of_their_own_find_the_bundle(browser: Any, tmp_path: Path,
                                                              hide_dot: Path) -> None:
    L, _ = FIRST_GRAPH.build()
    L.backward()
    outputs = [draw_dot(L)._repr_mimebundle_()["text/html"], explore(L, height=400)._repr_html_(),
               draw_dot(L)._repr_mimebundle_()["text/html"]]
    page = open_notebook(browser, outputs, tmp_path, own_frames=True)
    drawn(page, 3)
    assert frames_ready(page) == ["1"] * 3
    assert not page.errors and not page.requests, (page.errors, page.requests)
    page.close()


# ----- the first lecture as a notebook, run headless as Jupyter runs it -------------------------

LECTURE = Path(__file__).parent.parent / "examples" / "01_first_lecture.ipynb"


@pytest.fixture(scope="module")
def lecture(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Any]:
    """The first lecture executed in a kernel, with Graphviz's `dot` or without: once per module each."""
    import nbformat
    from nbclient import NotebookClient

    done: dict[str, Any] = {}

    def run(graphviz: str) -> Any:
        if graphviz not in done:
            folder = tmp_path_factory.mktemp("lecture")
            env = dict(os.environ)
            if graphviz == "no dot":
                (folder / "empty-bin").mkdir()
                env["PATH"] = str(folder / "empty-bin")  # the kernel starts from sys.executable, not PATH
            nb = nbformat.read(LECTURE, as_version=4)
            # Each cell's assertions (slopes, hand-made grads equal backward's) run in the kernel; an error
            # in any cell fails here with its traceback.
            NotebookClient(nb, timeout=300, kernel_name="python3",
                           resources={"metadata": {"path": str(folder)}}).execute(env=env)
            done[graphviz] = nb
        return done[graphviz]

    return run


@pytest.mark.parametrize("graphviz", ["dot", "no dot"])
def test_first_lecture_notebook_draws_every_graph_inline(graphviz: str,
                                                        lecture: Callable[[str], Any]) -> None:
    if graphviz == "dot":
        need_dot()
    nb = lecture(graphviz)
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
            assert "<iframe" in bundle["text/html"] and "Viz.instance" in srcdoc(bundle["text/html"])
    assert "grad 6.0000" in str(shown("b.grad = a.data * e.grad"))  # the grads set by hand, drawn
    page = srcdoc(shown("explore(o")["text/html"])
    assert len(page_data(page)["values"]) == 10  # type: ignore[arg-type]
    assert any("image/png" in o.get("data", {}) for c in cells for o in c.outputs)  # f's plot


def test_the_lecture_run_without_dot_holds_graphviz_once_and_draws_every_graph(
        lecture: Callable[[str], Any], browser: Any, tmp_path: Path) -> None:
    import nbformat

    nb = lecture("no dot")
    shown = [o.data["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if "text/html" in o.get("data", {})]
    pictures = sum("<iframe" in out for out in shown)
    assert pictures >= 4  # draw_dot three times and the explorer
    assert sum(copies(out) for out in shown) == 1  # the bundle once for the whole notebook
    assert len(nbformat.writes(nb)) < 2_500_000  # it was 3 MB per picture
    # The saved outputs in one page, as the notebook's HTML export (or the notebook reopened) shows them.
    page = open_notebook(browser, shown, tmp_path)
    drawn(page, pictures)
    assert frames_ready(page) == ["1"] * pictures
    assert not page.errors and not page.requests, (page.errors, page.requests)
    page.close()


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
