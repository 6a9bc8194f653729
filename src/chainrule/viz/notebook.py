"""Graphs inline in Jupyter, with nothing fetched and nothing to install.

    from chainrule.viz import explore
    explore(loss)                          # the backprop explorer, in the notebook
    explore(trace_model(model, x))         # a whole model, one box per neuron
    explore(loss).save("loss.html")        # the same page, as a file
    explore(loss, exercise=True)           # the learner finds each grad, backward from the output
    explore(loss, forward="x1")            # forward mode: each node's d(node)/dx1, inputs to output

Both the explorer and `draw_dot`'s picture without Graphviz's `dot` program are a sandboxed
`<iframe sandbox="allow-scripts" srcdoc=...>`: the page inside runs apart from the notebook (its own
opaque origin: it cannot read or change the notebook's page). NOTE: Graphviz runs inside the frame,
never in the notebook itself, where the vendored script would see the classic notebook's require.js
and register itself as an AMD module instead of defining `Viz`.

Graphviz compiled to WebAssembly (vendor/viz-global.js) is 1.3 MB, so it goes to a notebook page once,
not with every picture (the first lecture, run without `dot`, saved 15.7 MB; now 2.0 MB):

- The first output this process (the kernel) shows carries the bundle in the notebook's DOM, as
  `<script type="text/plain" data-chainrule-viz>` (inert base64 text, nothing runs). Every output
  carries a small script that, once per page, listens for frames asking for it (and keeps a copy on
  `window`, so clearing that first output later in the session loses nothing).
- A frame's page has, where its own copy would be, a stand-in `Viz` and a loader: it asks by
  `postMessage` (the only thing a sandboxed srcdoc frame can do with its parent) and runs the text it
  gets back as a script inside the frame. It asks its parent, and also the top window and the frames
  below it, so that a front end putting each output in its own frame still finds the copy.
- A page reopened later renders from its saved outputs as long as one of them holds the bundle. Where
  the front end names its cells (JupyterLab does), running again or deleting the cell that held it
  sends it again with the next picture, as that output is about to go. If no output holds it (its
  cell was cleared before saving, or the notebook is untrusted so no output runs scripts), the frame
  says so and keeps asking: running any cell that draws, in a new kernel, puts the bundle back on the
  page and every waiting picture draws.

What `Explorer.save` and `to_html(path)` write stays one self-contained page, its Graphviz inline.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Collection, Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from chainrule.engine import Value
from chainrule.viz.dot import MAX_NODES, Group
from chainrule.viz.html import _asset, _script_safe, to_html
from chainrule.viz.model import ModelTrace


def frame(page: str, height: int, title: str) -> str:
    """`page` in a sandboxed iframe: scripts run, but they cannot touch the notebook's page."""
    return (f'<iframe sandbox="allow-scripts" title="{html.escape(title)}" srcdoc="{html.escape(page)}" '
            f'style="width: 100%; height: {height}px; border: 1px solid #e5e7eb; border-radius: 6px">'
            "</iframe>")


@cache
def _viz() -> str:
    """Graphviz compiled to WebAssembly, safe inside a <script> element."""
    return _script_safe(_asset("vendor/viz-global.js"))


@cache
def _viz_base64() -> str:
    """The same bundle as base64 of its UTF-8: it holds the WebAssembly as raw bytes in a string, which a
    notebook's JSON would store 6 characters each (2.9 MB); base64 is 1.8 MB and needs no escaping."""
    return base64.b64encode(_asset("vendor/viz-global.js").encode("utf-8")).decode("ascii")


# Inside a frame, in place of the bundle: a stand-in `Viz` whose instance() waits for the notebook's copy.
_LOADER = """(() => {
  let resolve;
  const ready = new Promise((r) => { resolve = r; });
  window.Viz = { instance: () => ready.then((viz) => viz.instance()) };
  let got = false, asked = 0, waiting = null;
  const reachable = () => {  // parent, top and the frames under top: where a notebook's outputs live
    const found = new Set([parent]);
    const walk = (w, depth) => {
      try {
        for (let i = 0; i < w.frames.length; i++) {
          found.add(w.frames[i]);
          if (depth < 3) walk(w.frames[i], depth + 1);
        }
      } catch (e) { /* a window that vanished */ }
    };
    try { found.add(top); walk(top, 0); } catch (e) { /* parent only */ }
    found.delete(window);
    return found;
  };
  const ask = () => {
    if (got) return;
    for (const w of reachable()) {
      try { w.postMessage({ chainruleWants: "viz" }, "*"); } catch (e) { /* closed */ }
    }
    asked += 1;
    if (asked === 25) {  // ~4 s: no output on this page holds the bundle (yet)
      const graph = document.getElementById("graph");
      waiting = graph.innerHTML;
      graph.textContent = "Graphviz for this picture comes with the first chainrule graph a Python " +
        "kernel shows, and no output on this page holds it (cleared, or the notebook is not trusted): " +
        "run this cell again. Waiting…";
      document.body.dataset.ready = "waiting";
    }
    setTimeout(ask, asked < 25 ? 150 : 1000);
  };
  window.addEventListener("message", (e) => {
    if (got || !e.data || typeof e.data.chainruleViz !== "string") return;
    const bytes = Uint8Array.from(atob(e.data.chainruleViz), (c) => c.charCodeAt(0));
    got = true;
    if (waiting !== null) {
      document.getElementById("graph").innerHTML = waiting;
      delete document.body.dataset.ready;
    }
    const script = document.createElement("script");
    script.textContent = new TextDecoder().decode(bytes);
    document.head.appendChild(script);  // runs now, and defines the real Viz in place of the stand-in
    resolve(window.Viz);
  });
  ask();
})();"""

# In the notebook, with the first output of a kernel: the bundle, as inert text (base64).
_BUNDLE = '<script type="text/plain" data-chainrule-viz="1">{VIZ}</script>'

# In the notebook, with every output: once per page, hand the bundle to whichever frame asks for it.
_ANSWER = """<script>
(() => {
  const held = document.querySelector("script[data-chainrule-viz]");
  if (held && !window.chainruleViz) window.chainruleViz = held.textContent;
  if (window.chainruleVizAnswers) return;
  window.chainruleVizAnswers = true;
  window.addEventListener("message", (e) => {
    if (!e.data || e.data.chainruleWants !== "viz" || !e.source) return;
    if (!window.chainruleViz) {
      const found = document.querySelector("script[data-chainrule-viz]");
      if (!found) return;  // not on this page (yet): the frame asks again
      window.chainruleViz = found.textContent;
    }
    e.source.postMessage({ chainruleViz: window.chainruleViz }, "*");
  });
})();
</script>"""


class _Kernel:
    """What this process has shown so far: the bundle goes out once, with its first picture."""

    bundle_shown = False
    bundle_cell: str | None = None  # the notebook cell whose output holds it, when the front end says
    bundle_request: str | None = None  # the run of that cell


def _request() -> tuple[str | None, str | None, list[str]]:
    """(cell id, request id, ids of cells deleted since) of the cell being run, as JupyterLab sends them
    in an execute request; (None, None, []) outside a kernel or from a front end that does not."""
    try:
        from IPython import get_ipython

        parent: dict[str, Any] = get_ipython().kernel.get_parent()
        meta, header = parent.get("metadata") or {}, parent.get("header") or {}
        return meta.get("cellId"), header.get("msg_id"), list(meta.get("deletedCells") or [])
    except Exception:  # no IPython, no kernel, an older ipykernel: one bundle per process
        return None, None, []


def _host() -> str:
    """What goes into the notebook next to a frame: the bundle the first time, and the answering script.

    The bundle goes out again when the cell that held it is run again or deleted (its output, and the
    bundle with it, is about to leave the saved notebook) where the front end names its cells."""
    cell, request, deleted = _request()
    again = _Kernel.bundle_cell is not None and (
        _Kernel.bundle_cell in deleted or (cell == _Kernel.bundle_cell and request != _Kernel.bundle_request))
    send = not _Kernel.bundle_shown or again
    if send:
        _Kernel.bundle_shown, _Kernel.bundle_cell, _Kernel.bundle_request = True, cell, request
    return (_BUNDLE.replace("{VIZ}", _viz_base64()) if send else "") + _ANSWER


def inline_page(page: str) -> str:
    """An explorer page (as `to_html` makes it) with its Graphviz taken from the notebook instead of inline.
    A page that does not hold the bundle in to_html's place is returned as it is (it carries its own)."""
    block = f"<script>\n{_viz()}\n</script>"
    return page.replace(block, f"<script>\n{_LOADER}\n</script>", 1) if block in page else page


# The page that lays out a DOT text in the browser. Once drawn, it tells the notebook its height
# (the only thing a sandboxed frame can say), so the frame fits the picture.
_DOT_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><style>
body { margin: 0; font: 13px system-ui, sans-serif; color: #6b7280; }
svg { display: block; max-width: 100%; height: auto; }
</style></head><body>
<div id="graph">Laying out the graph…</div>
<script>{LOADER}</script>
<script type="application/json" id="dot">{DOT}</script>
<script>
Viz.instance().then((viz) => {
  const svg = viz.renderSVGElement(JSON.parse(document.getElementById("dot").textContent));
  document.getElementById("graph").replaceChildren(svg);
  document.body.dataset.ready = "1";
  parent.postMessage({ chainruleHeight: document.documentElement.scrollHeight }, "*");
}).catch((err) => {
  document.getElementById("graph").textContent = "Could not lay out the graph: " + err;
  document.body.dataset.ready = "error";
});
</script>
</body></html>
"""

# Next to the frame, in the notebook: fit the frame to the height its page reports. Without it
# (an untrusted notebook runs no scripts) the frame keeps its first height and scrolls.
_FIT = """<script>
(() => {
  const frame = document.currentScript.previousElementSibling;
  window.addEventListener("message", (e) => {
    if (e.source === frame.contentWindow && e.data && e.data.chainruleHeight > 0) {
      frame.style.height = (e.data.chainruleHeight + 4) + "px";
    }
  });
})();
</script>"""


def dot_frame(source: str, height: int = 360) -> str:
    """HTML that draws the DOT text `source` with the bundled Graphviz (no `dot` program needed)."""
    page = _DOT_PAGE.replace("{LOADER}", _LOADER).replace("{DOT}", json.dumps(source).replace("<", "\\u003c"))
    return _host() + frame(page, height, "graph") + _FIT


class Explorer:
    """The backprop explorer of one graph: shows itself inline in Jupyter; `save` writes the page."""

    def __init__(self, page: str, *, height: int = 640, title: str = "backprop explorer") -> None:
        self.page = page  # the standalone HTML page, as `to_html` returns it
        self.height = height
        self.title = title

    def _repr_html_(self) -> str:
        return _host() + frame(inline_page(self.page), self.height, self.title)

    def save(self, path: str | Path) -> Path:
        """Write the standalone page (opens offline in any browser) and return its path."""
        path = Path(path)
        path.write_text(self.page, encoding="utf-8")
        return path


def explore(
    root: Value | ModelTrace,
    *,
    params: Iterable[Value] | None = None,
    inputs: Iterable[Value] | None = None,
    groups: Sequence[Group] | None = None,
    expand: Collection[str] = (),
    max_nodes: int | None = MAX_NODES,
    title: str = "chainrule: backprop explorer",
    height: int = 640,
    exercise: bool = False,
    forward: Value | str | None = None,
) -> Explorer:
    """The explorer of `root`'s graph, to show in a notebook (the cell's last line) or `.save()`.

    root: a Value, or what `trace_model(model, x)` returns: then the model's output is explored,
        its parameters and inputs are coloured as such and each neuron is one box (`groups`
        defaults to the trace's neurons; pass `groups=trace.layers` for one box per layer).
    height: of the frame in the notebook, in pixels. Other options as in `draw_dot`.
    exercise: hide every grad and ask the learner for each one, backward from the output (the root's
        grad 1 given); collapsed neurons are not asked. See `to_html`.
    forward: an input's name (or the Value): step forward mode's tangents d(node)/d(input) instead.
    """
    if isinstance(root, ModelTrace):
        trace = root
        if not isinstance(trace.output, Value):
            raise ValueError(f"the traced model has {len(trace.output)} outputs: explore one of them, "
                             "e.g. explore(trace.output[0], params=trace.params, groups=trace.neurons)")
        root = trace.output
        params = trace.params if params is None else params
        inputs = trace.inputs if inputs is None else inputs
        groups = trace.neurons if groups is None else groups
    if not isinstance(root, Value):
        raise TypeError(f"explore() takes a Value or a trace_model(...) result, not {type(root).__name__}")
    if not isinstance(exercise, bool):
        raise TypeError(f"exercise must be True or False, not {exercise!r}")
    if isinstance(height, bool) or not isinstance(height, int) or height < 100:
        raise ValueError(f"height must be a whole number of pixels, at least 100, not {height!r}")
    page = to_html(root, title=title, params=params, inputs=inputs, groups=groups or (), expand=expand,
                   max_nodes=max_nodes, exercise=exercise,
                   forward=forward)
    return Explorer(page, height=height, title=title)
