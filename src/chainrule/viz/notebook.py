"""Graphs inline in Jupyter, with nothing fetched and nothing to install.

    from chainrule.viz import explore
    explore(loss)                          # the backprop explorer, in the notebook
    explore(trace_model(model, x))         # a whole model, one box per neuron
    explore(loss).save("loss.html")        # the same page, as a file
    explore(loss, exercise=True)           # the learner finds each grad, backward from the output
    explore(loss, forward="x1")            # forward mode: each node's d(node)/dx1, inputs to output

Both the explorer and `draw_dot`'s picture without Graphviz's `dot` program are a sandboxed
`<iframe srcdoc=...>`: the page inside carries its own Graphviz compiled to WebAssembly and runs
apart from the notebook. NOTE: inline, the vendored script would see the classic notebook's
require.js and register itself as an AMD module instead of defining `Viz`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from chainrule.engine import Value
from chainrule.viz.dot import MAX_NODES, Group
from chainrule.viz.html import _asset, _script_safe, to_html
from chainrule.viz.model import ModelTrace


def frame(page: str, height: int, title: str) -> str:
    """`page` in a sandboxed iframe: scripts run, but it cannot touch the notebook or the network."""
    return (f'<iframe sandbox="allow-scripts" title="{html.escape(title)}" srcdoc="{html.escape(page)}" '
            f'style="width: 100%; height: {height}px; border: 1px solid #e5e7eb; border-radius: 6px">'
            "</iframe>")


# The page that lays out a DOT text in the browser. Once drawn, it tells the notebook its height
# (the only thing a sandboxed frame can say), so the frame fits the picture.
_DOT_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><style>
body { margin: 0; font: 13px system-ui, sans-serif; color: #6b7280; }
svg { display: block; max-width: 100%; height: auto; }
</style></head><body>
<div id="graph">Laying out the graph…</div>
<script>{VIZ}</script>
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
    page = (_DOT_PAGE.replace("{DOT}", json.dumps(source).replace("<", "\\u003c"))
            .replace("{VIZ}", _script_safe(_asset("vendor/viz-global.js"))))
    return frame(page, height, "graph") + _FIT


class Explorer:
    """The backprop explorer of one graph: shows itself inline in Jupyter; `save` writes the page."""

    def __init__(self, page: str, *, height: int = 640, title: str = "backprop explorer") -> None:
        self.page = page  # the standalone HTML page, as `to_html` returns it
        self.height = height
        self.title = title

    def _repr_html_(self) -> str:
        return frame(self.page, self.height, self.title)

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
