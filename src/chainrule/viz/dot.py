"""Draw a Value graph with Graphviz, in the seeds' style: a record `{ label | data | grad }` per
value, an oval per op, edges parent → op → value, left to right.

Additions a learner needs once graphs get real:
- leaves are coloured by kind (parameter, input, constant) and every box's outline by its grad
  (green positive, red negative, thicker when larger);
- `groups` collapse a neuron or a layer into one box showing its output's data and grad
  (`trace_model` in `chainrule.viz.model` finds them in an MLP); `expand` opens one by name;
- `max_nodes` refuses to draw a picture nobody could read, and says what to do instead;
- a grad that is a Value (after `backward(create_graph=True)`) shows its data, and a batch (a
  NumPy array) its first numbers and length (`fmt`), so any graph the engine builds can be drawn.

Node names come from the topological order, never from `id()`, so the same graph always gives
the same DOT text, byte for byte.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import graphviz

from chainrule.engine import Value, topological_order
from chainrule.viz.steps import fmt

MAX_NODES = 300
# More edges than this between two layers of collapsed boxes, and the explorer draws them as one
# bundle with a count (expandable): 16 neurons feeding 16 make 256 edges, a solid grey band.
BUNDLE = 32

# kind of a value -> fill colour. Outline colour and width carry the grad.
FILL = {
    "param": "#fde68a",  # amber: what training changes
    "input": "#bfdbfe",  # blue: data fed in
    "const": "#e5e7eb",  # grey: numbers written into the expression
    "value": "#ffffff",  # white: computed
    "group": "#ede9fe",  # lavender: a collapsed neuron or layer
}
POSITIVE, NEGATIVE, ZERO = "#15803d", "#b91c1c", "#6b7280"


class GraphTooLargeError(ValueError):
    """The drawing would have more boxes than `max_nodes`."""


def scalar(x: object) -> float:
    """The number a box's outline is coloured by: a Value's data; 0 (grey) for a batch."""
    if isinstance(x, Value):
        return scalar(x.data)
    shape = getattr(x, "shape", None)
    if shape is not None and shape != ():
        return 0.0  # one colour cannot show a batch's signs
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


class Digraph(graphviz.Digraph):  # type: ignore[misc]
    """`graphviz.Digraph` that still shows in Jupyter without Graphviz's `dot` program.

    With `dot` on the PATH it is graphviz's own SVG; without it, an HTML frame that lays the graph
    out with the bundled Graphviz compiled to WebAssembly (where graphviz raises ExecutableNotFound).
    """

    def _repr_mimebundle_(self, include: Iterable[str] | None = None,
                          exclude: Iterable[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        if shutil.which("dot") is not None:
            bundle: dict[str, Any] = super()._repr_mimebundle_(include, exclude, **kwargs)
            return bundle
        from chainrule.viz.notebook import dot_frame  # notebook imports this module

        return {"text/html": dot_frame(self.source)}


@dataclass(frozen=True)
class Group:
    """A part of the graph to draw as one box: everything computed from `inputs` to `outputs`.

    Members are found by walking back from `outputs` without stepping into `inputs`, so a
    neuron's group holds its weights, bias, products, sums and activation, but not the values
    it reads from the previous layer.
    """

    name: str
    outputs: tuple[Value, ...]
    inputs: tuple[Value, ...] = ()

    def members(self) -> list[Value]:
        stop = {id(v) for v in self.inputs}
        seen: set[int] = set()
        found: list[Value] = []
        stack = [v for v in self.outputs if id(v) not in stop]
        while stack:
            v = stack.pop()
            if id(v) in seen:
                continue
            seen.add(id(v))
            found.append(v)
            stack.extend(p for p in v.parents if id(p) not in stop and id(p) not in seen)
        return found


@dataclass
class Drawing:
    """What was drawn, and where each value went (the explorer needs the mapping)."""

    dot: Digraph
    order: list[Value]  # topological order; value i is drawn as `v{i}` unless collapsed
    index: dict[int, int]  # id(value) -> i
    kinds: list[str]  # kind of value i
    element: list[str]  # DOT node showing value i (`v{i}`, or `g{k}` when collapsed)
    edge: dict[tuple[int, int], str]  # (value i, slot) -> DOT id of the drawn edge, if any
    groups: list[tuple[str, Group, list[int]]] = field(default_factory=list)  # (elem, group, members)
    collapsed: set[str] = field(default_factory=set)  # element ids of collapsed groups
    # DOT node id -> (font size, its width in inches as declared, the lines of text drawn in it):
    # the explorer measures them in the browser's own font and widens boxes drawn too narrow.
    texts: dict[str, tuple[float, float, list[str]]] = field(default_factory=dict)
    bundles: list[Bundle] = field(default_factory=list)


@dataclass(frozen=True)
class Bundle:
    """The edges between two layers of collapsed boxes, when there are more than `BUNDLE`."""

    edges: list[str]  # DOT ids of the edges, drawn with class "bundled"
    sources: list[str]  # the boxes they leave
    targets: list[str]  # the boxes they enter


def shown_label(text: str) -> str:
    """A label as a box shows it: on one line, at most 60 characters."""
    text = " ".join(text.split())  # no newlines or tabs inside a box
    return text[:59] + "…" if len(text) > 60 else text


def escape_record(text: str) -> str:
    """Make `text` safe inside a record label (and inside DOT's double quotes)."""
    text = shown_label(text)
    out = []
    for ch in text:
        if ch in '\\{}|<>"':
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _record(*fields: str, stacked: bool = False) -> str:
    # The outer braces lay the fields side by side under rankdir=LR, as in the seeds; without
    # them the fields stack, one above the other (a box a third as wide).
    return " | ".join(fields) if stacked else "{ " + " | ".join(fields) + " }"


def classify(v: Value, params: set[int], inputs: set[int] | None) -> str:
    if v.parents:
        return "value"
    if id(v) in params:
        return "param"
    if inputs is not None:
        return "input" if id(v) in inputs else "const"
    return "input" if v.label else "const"


def grad_style(grad: object, biggest: float) -> dict[str, str]:
    """Outline by sign (green +, red -) and thickness by |grad| relative to the largest."""
    grad = scalar(grad)
    if grad == 0 or not math.isfinite(grad) or biggest == 0:
        color = ZERO if math.isfinite(grad) else NEGATIVE
        return {"color": color, "penwidth": "1"}
    share = min(1.0, math.sqrt(abs(grad) / biggest))
    return {"color": POSITIVE if grad > 0 else NEGATIVE, "penwidth": f"{1 + 2.5 * share:.2f}"}


def layout(
    root: Value,
    *,
    rankdir: str = "LR",
    params: Iterable[Value] | None = None,
    inputs: Iterable[Value] | None = None,
    groups: Sequence[Group] = (),
    expand: Collection[str] = (),
    max_nodes: int | None = MAX_NODES,
    legend: bool = False,
    grad_text: Mapping[int, str] | None = None,
    stacked: bool = False,
    order: list[Value] | None = None,
) -> Drawing:
    """Build the drawing of `root`'s graph; `draw_dot` returns its `.dot`.

    grad_text: by `id(value)`, the grad to write in its box instead of its `.grad` (the explorer
        passes the widest text the replay will show, so Graphviz makes every box wide enough).
    stacked: label, data and grad one above the other instead of side by side (the explorer's
        boxes, so that the seeds' neuron fits a laptop screen at a readable size).
    order: `topological_order(root)`, when the caller has it already (the explorer sorts once).
    """
    order = topological_order(root) if order is None else order
    index = {id(v): i for i, v in enumerate(order)}
    param_ids = {id(v) for v in params} if params is not None else set()
    input_ids = {id(v) for v in inputs} if inputs is not None else None
    kinds = [classify(v, param_ids, input_ids) for v in order]

    names = [g.name for g in groups]
    unknown = sorted(set(expand) - set(names))
    if unknown:
        raise ValueError(f"cannot expand {unknown}: no such group (groups: {', '.join(names)})")

    # Which values disappear into a collapsed box. A value claimed by two groups goes to the first.
    element = [f"v{i}" for i in range(len(order))]
    cluster_of: dict[int, str] = {}  # value i -> name of the expanded group drawn around it
    group_info: list[tuple[str, Group, list[int]]] = []
    collapsed: set[str] = set()
    claimed: set[int] = set()
    for k, g in enumerate(groups):
        members = [index[id(v)] for v in g.members() if id(v) in index and index[id(v)] not in claimed]
        members.sort()
        claimed.update(members)
        elem = f"g{k}"
        group_info.append((elem, g, members))
        if g.name in expand:
            for i in members:
                cluster_of[i] = g.name
        else:
            collapsed.add(elem)
            for i in members:
                element[i] = elem

    boxes = len(set(element))
    if max_nodes is not None and boxes > max_nodes:
        hint = (
            "draw a model grouped: t = trace_model(model, x), then groups=t.neurons or t.layers"
            if not groups
            else "group by layer instead of by neuron, or expand fewer groups"
        )
        raise GraphTooLargeError(
            f"graph has {boxes} boxes to draw, more than max_nodes={max_nodes}; {hint}, "
            "or pass max_nodes=None to draw everything anyway"
        )

    def gtext(v: Value) -> str:
        return fmt(v.grad) if grad_text is None else grad_text.get(id(v), fmt(v.grad))  # no edge in: none

    drawn_grads = [abs(scalar(order[i].grad)) for i in range(len(order)) if element[i] == f"v{i}"]
    drawn_grads += [abs(scalar(v.grad)) for _, g, _ in group_info for v in g.outputs]
    biggest = max((g for g in drawn_grads if math.isfinite(g)), default=0.0)
    texts: dict[str, tuple[float, float, list[str]]] = {}

    dot = Digraph(format="svg", graph_attr={"rankdir": rankdir, "ranksep": "0.35",
                                                     "nodesep": "0.2"})
    dot.attr("node", fontname="Helvetica", fontsize="12")
    dot.attr("edge", color="#6b7280", arrowsize="0.7")

    clusters: dict[str, Digraph] = {}
    for name in names:
        if name in expand:
            sub = Digraph(name=f"cluster_{names.index(name)}")
            sub.attr(label=" ".join(name.split()), style="rounded,dashed", color="#7c3aed",
                     fontname="Helvetica", fontcolor="#5b21b6")
            clusters[name] = sub

    for i, v in enumerate(order):
        if element[i] != f"v{i}":
            continue
        target = clusters.get(cluster_of.get(i, ""), dot)
        fields = [escape_record(v.label)] if v.label else []  # no empty cell for unnamed values
        numbers = [f"data {fmt(v.data)}", f"grad {gtext(v)}"]
        label = _record(*fields, *numbers, stacked=stacked)
        texts[f"v{i}"] = (12, 0.75, [shown_label(v.label), *numbers] if v.label else numbers)
        target.node(f"v{i}", label=label, shape="record", style="filled", fillcolor=FILL[kinds[i]],
                    id=f"v{i}", **{"class": f"value {kinds[i]}"}, **grad_style(v.grad, biggest))
        if v.op:
            # Same naming as the seeds: the op's oval is the value's name + its op.
            target.node(f"v{i}op", label=escape_record(v.op), id=f"v{i}op", width="0.45",
                        height="0.32", margin="0.02", fontsize="11", **{"class": "op"})
            texts[f"v{i}op"] = (11, 0.45, [shown_label(v.op)])
            dot.edge(f"v{i}op", f"v{i}", id=f"v{i}out")
    for elem, g, members in group_info:
        if elem not in collapsed:
            continue
        nparams = sum(1 for i in members if kinds[i] == "param")
        title = escape_record(g.name)
        lines = [shown_label(g.name)]
        if nparams:  # stacked: on a line of its own, so the box is no wider than its numbers
            title += f"\\n{nparams} params" if stacked else f" ({nparams} params)"
            if stacked:
                lines.append(f"{nparams} params")
            else:
                lines[0] += f" ({nparams} params)"
        if len(g.outputs) == 1:
            out = g.outputs[0]
            rows = [f"data {fmt(out.data)}", f"grad {gtext(out)}"]
            label = _record(title, *rows, stacked=stacked)
            style = grad_style(out.grad, biggest)
        else:
            rows = [f"{j}: data {fmt(o.data)} grad {gtext(o)}" for j, o in enumerate(g.outputs)]
            # One row per output, under the title.
            label = _record(title, *rows, stacked=True) if stacked else _record(title, _record(*rows))
            style = {"color": "#7c3aed", "penwidth": "1.5"}
        texts[elem] = (12, 0.75, lines + rows)  # 0.75: Graphviz's default width
        dot.node(elem, label=label, shape="Mrecord", style="filled", fillcolor=FILL["group"],
                 id=elem, **{"class": "group"}, **style)
    for sub in clusters.values():
        dot.subgraph(sub)

    # Edges parent -> op of the child, one per (child, slot): `a + a` gets two edges.
    edge: dict[tuple[int, int], str] = {}
    drawn: dict[str, tuple[str, str]] = {}  # DOT edge id -> (tail, head), in drawing order
    merged: dict[tuple[str, str], str] = {}  # edges touching a collapsed box are drawn once
    for i, v in enumerate(order):
        for slot, p in enumerate(v.parents):
            src = element[index[id(p)]]
            dst = element[i] if element[i] != f"v{i}" else (f"v{i}op" if v.op else f"v{i}")
            if src == dst:
                continue  # inside one collapsed box
            if src in collapsed or dst in collapsed:
                key = (src, dst)
                if key not in merged:
                    merged[key] = f"c{len(merged)}"
                    drawn[merged[key]] = key
                edge[(i, slot)] = merged[key]
            else:
                edge[(i, slot)] = f"e{i}_{slot}"
                drawn[f"e{i}_{slot}"] = (src, dst)

    # Boxes that read the same values are one layer (as trace_model's neurons are).
    layer = {elem: tuple(id(x) for x in g.inputs) for elem, g, _ in group_info if elem in collapsed}
    between: dict[tuple[tuple[int, ...], tuple[int, ...]], list[str]] = {}
    for eid, (src, dst) in drawn.items():
        if src in layer and dst in layer:
            between.setdefault((layer[src], layer[dst]), []).append(eid)
    bundles = [Bundle(ids, sorted({drawn[e][0] for e in ids}, key=_box_order),
                      sorted({drawn[e][1] for e in ids}, key=_box_order))
               for ids in between.values() if len(ids) > BUNDLE]
    bundled = {e for b in bundles for e in b.edges}
    for eid, (src, dst) in drawn.items():
        # Still laid out (they rank the layers), but the explorer shows them only on request.
        dot.edge(src, dst, id=eid, **({"class": "bundled"} if eid in bundled else {}))

    if legend:
        _add_legend(dot)
    return Drawing(dot, order, index, kinds, element, edge, group_info, collapsed, texts, bundles)


def _box_order(elem: str) -> tuple[str, int]:
    # `g10` after `g9`: by kind, then by number.
    return elem[0], int(elem[1:].removesuffix("op"))


def _add_legend(dot: graphviz.Digraph) -> None:
    rows = "".join(
        f'<TR><TD BGCOLOR="{FILL[k]}">{text}</TD></TR>'
        for k, text in (("param", "parameter"), ("input", "input"), ("const", "constant"),
                        ("value", "computed"))
    )
    rows += (f'<TR><TD><FONT COLOR="{POSITIVE}">green outline: grad &gt; 0</FONT></TD></TR>'
             f'<TR><TD><FONT COLOR="{NEGATIVE}">red outline: grad &lt; 0</FONT></TD></TR>'
             "<TR><TD>thicker: larger |grad|</TD></TR>")
    dot.node("legend", label=f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0">{rows}</TABLE>>',
             shape="plaintext", fontsize="10", id="legend")


def draw_dot(
    root: Value,
    rankdir: str = "LR",
    *,
    params: Iterable[Value] | None = None,
    inputs: Iterable[Value] | None = None,
    groups: Sequence[Group] = (),
    expand: Collection[str] = (),
    max_nodes: int | None = MAX_NODES,
    legend: bool = False,
) -> Digraph:
    """The graph of `root` as a `graphviz.Digraph` (shows inline in Jupyter, with or without `dot`).

    params, inputs: which leaves to colour as parameters and as inputs. Without `inputs`, a
        labelled leaf is an input and an unlabelled one (a number the engine wrapped) a constant.
    groups: parts to draw collapsed, one box each (see `Group`, `trace_model`).
    expand: names of groups to draw in full, framed by a dashed box.
    max_nodes: refuse (GraphTooLargeError) rather than draw more boxes than this; None: no cap.
    """
    return layout(root, rankdir=rankdir, params=params, inputs=inputs, groups=groups,
                  expand=expand, max_nodes=max_nodes, legend=legend).dot
