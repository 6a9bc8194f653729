"""The backprop explorer: one self-contained HTML file that works offline.

The page holds three things inline: Graphviz compiled to WebAssembly (the vendored
`vendor/viz-global.js`, MIT, see `vendor/LICENSE`), the graph as DOT text plus its values and
backward steps as JSON, and a small script (`explorer.js`) that lays the graph out, replays the
steps and explains any node you click. The steps are `replay(root)`'s and the derivative
formulas are `RULES[op].formula`: the page computes nothing of its own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from chainrule.engine import RULES, Value
from chainrule.viz.dot import MAX_NODES, Drawing, Group, layout, scalar
from chainrule.viz.steps import Step, fmt, replay


def _asset(name: str) -> str:
    return resources.files("chainrule.viz").joinpath(name).read_text(encoding="utf-8")


def graph_data(drawing: Drawing, steps: Sequence[Step], title: str) -> dict[str, Any]:
    """Everything the page shows, as JSON-able data (numbers pre-formatted as the drawing shows them)."""
    order, index = drawing.order, drawing.index
    values = [
        {
            "label": v.label,
            "op": v.op,
            "kind": drawing.kinds[i],
            "data": fmt(v.data),
            "grad": fmt(v.grad),
            "g": _finite(v.grad),
            "el": drawing.element[i],
            "parents": [index[id(p)] for p in v.parents],
            "locals": [fmt(x) for x in v.local_grads],
            "formula": RULES[v.op].formula if v.op else "",
        }
        for i, v in enumerate(order)
    ]
    rows = [
        [index[id(s.node)], index[id(s.parent)], s.slot, fmt(s.upstream), fmt(s.local),
         fmt(s.contribution), fmt(s.after), _finite(s.after), drawing.edge.get((index[id(s.node)], s.slot))]
        for s in steps
    ]
    groups = {
        elem: {
            "name": g.name,
            "outputs": [index[id(o)] for o in g.outputs if id(o) in index],
            "members": members,
            "collapsed": elem in drawing.collapsed,
        }
        for elem, g, members in drawing.groups
    }
    return {"title": title, "dot": drawing.dot.source, "root": len(order) - 1, "values": values,
            "steps": rows, "groups": groups, "texts": drawing.texts,
            "bundles": [{"edges": b.edges, "from": b.sources, "to": b.targets} for b in drawing.bundles]}


def _widest_grads(root: Value, steps: Sequence[Step]) -> dict[int, str]:
    """By `id(value)`, the widest grad text the replay will show in its box.

    Partial sums can be wider than the final grad (-12.5 on the way to 0.5): the boxes are laid
    out for the widest, so no text spills out of its box at any step.
    """
    widest = {id(root): max(fmt(root.grad), "1.0000", key=len)}
    for s in steps:
        now = widest.setdefault(id(s.parent), max(fmt(s.parent.grad), "0.0000", key=len))
        if len(fmt(s.after)) > len(now):
            widest[id(s.parent)] = fmt(s.after)
    return widest


def _finite(x: object) -> float | None:
    # JSON has no inf or nan; the page shows the formatted text and colours null as zero.
    number = scalar(x)
    return number if math.isfinite(number) else None


def _script_safe(text: str) -> str:
    # Inside <script>, only "</" (as in "</script>") and "<!--" can end or confuse the block.
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def to_html(
    root: Value,
    path: str | Path | None = None,
    *,
    title: str = "chainrule: backprop explorer",
    params: Iterable[Value] | None = None,
    inputs: Iterable[Value] | None = None,
    groups: Sequence[Group] = (),
    expand: Collection[str] = (),
    max_nodes: int | None = MAX_NODES,
) -> str:
    """The explorer page for `root`'s graph, as a string; also written to `path` if given.

    Run `root.backward()` first if you want the page to open on the engine's grads (its Step
    buttons replay backward from zero either way). Options as in `draw_dot`.
    """
    # The graph sorted once and backward replayed once: for the boxes' widths and for the page.
    order, steps, _ = replay(root)
    drawing = layout(root, params=params, inputs=inputs, groups=groups, expand=expand, max_nodes=max_nodes,
                     grad_text=_widest_grads(root, steps), stacked=True, order=order)
    data = json.dumps(graph_data(drawing, steps, title), ensure_ascii=False, separators=(",", ":"))
    parts = {
        "TITLE": _html_escape(title),
        "CSS": _asset("explorer.css"),
        # '<' only occurs inside JSON strings, where \u003c means the same: no tag can form.
        "DATA": data.replace("<", "\\u003c"),
        "APP": _script_safe(_asset("explorer.js")),
        "VIZ": _script_safe(_asset("vendor/viz-global.js")),
    }
    # One pass, so that text substituted in (a title, a label) is never searched for placeholders.
    page = re.sub(r"\{\{([A-Z]+)\}\}", lambda m: parts[m.group(1)], _asset("explorer.html"))
    if path is not None:
        Path(path).write_text(page, encoding="utf-8")
    return page


def _html_escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))
