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
from chainrule.forward import op_counts
from chainrule.viz.dot import MAX_NODES, Drawing, Group, layout, scalar
from chainrule.viz.steps import Step, fmt, forward_steps, replay


def _asset(name: str) -> str:
    return resources.files("chainrule.viz").joinpath(name).read_text(encoding="utf-8")


def graph_data(drawing: Drawing, steps: Sequence[Step], title: str, *,
               exercise: bool = False, forward: Value | None = None) -> dict[str, Any]:
    """Everything the page shows, as JSON-able data (numbers pre-formatted as the drawing shows them).

    Each value has its `.grad` now ("grad", "g") and the grad the replayed backward gives it ("r", "rg"):
    they differ when backward() has not been called ("ran" is False: every .grad is still 0). With
    `exercise`, "exercise" holds the questions of exercise mode (see `exercise_data`); with `forward` (a
    leaf), "forward" holds forward mode's steps for d(root)/d(forward) (see `forward_data`).
    """
    order, index = drawing.order, drawing.index
    replayed = replayed_grads(order, steps)
    values = [
        {
            "label": v.label,
            "op": v.op,
            "kind": drawing.kinds[i],
            "data": fmt(v.data),
            "grad": fmt(v.grad),
            "g": _finite(v.grad),
            "r": fmt(replayed[i]),
            "rg": _finite(replayed[i]),
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
            "ran": scalar(order[-1].grad) != 0,
            "exercise": exercise_data(drawing, steps) if exercise else None,
            "forward": forward_data(drawing, forward) if forward is not None else None,
            "bundles": [{"edges": b.edges, "from": b.sources, "to": b.targets} for b in drawing.bundles]}


def replayed_grads(order: Sequence[Value], steps: Sequence[Step]) -> list[Any]:
    """Each value's grad after the replayed backward, by position in `order` (the root 1, unreached 0)."""
    index = {id(v): i for i, v in enumerate(order)}
    grads: list[Any] = [0.0] * len(order)
    grads[-1] = 1.0
    for s in steps:
        grads[index[id(s.parent)]] = s.after
    return grads


def final_order(order: Sequence[Value], steps: Sequence[Step]) -> list[int]:
    """Positions in `order` in the order backward makes their grads final: the root first, then each node
    with parents when backward processes it (all its grad has arrived by then) and each leaf right after
    the step that adds its last contribution. The nodes with parents come in the steps' own order."""
    index = {id(v): i for i, v in enumerate(order)}
    last = {index[id(s.parent)]: k for k, s in enumerate(steps)}  # a value's last incoming step
    out, seen = [len(order) - 1], {len(order) - 1}
    for k, s in enumerate(steps):
        node, parent = index[id(s.node)], index[id(s.parent)]
        if node not in seen:
            seen.add(node)
            out.append(node)
        if not s.parent.parents and last[parent] == k and parent not in seen:
            seen.add(parent)
            out.append(parent)
    # A detach and what only it reads: no step sends them a gradient, so theirs are final at the end
    return out + [i for i in reversed(range(len(order))) if i not in seen]


def exercise_data(drawing: Drawing, steps: Sequence[Step]) -> dict[str, Any]:
    """Exercise mode's questions: the grad of every value drawn as its own box, asked in `final_order`.

    "ask": [{"i": value, "answer": its grad (None if not finite), "text": as the box shows it}], in order.
    "seed": the root, whose grad 1 is given. "given": {value: k} for the outputs of collapsed groups (a
    neuron's box): not asked, their grad is shown once the learner reaches question k (or the end).
    Raises ValueError for a graph of batches, whose grads are not one number each.
    """
    order, index = drawing.order, drawing.index
    replayed = replayed_grads(order, steps)
    shown = {index[id(o)] for elem, g, _ in drawing.groups if elem in drawing.collapsed
             for o in g.outputs if id(o) in index}  # what a collapsed box shows: its outputs' grads
    ask: list[dict[str, Any]] = []
    given: dict[int, int] = {}
    for i in final_order(order, steps)[1:]:
        if drawing.element[i] != f"v{i}":  # inside a collapsed box: not asked
            if i in shown:
                given[i] = len(ask)
            continue
        grad = replayed[i].data if isinstance(replayed[i], Value) else replayed[i]
        if isinstance(grad, bool) or not isinstance(grad, float | int):
            raise ValueError("exercise mode asks for one number per box, but this graph's grads are batches "
                             f"({order[i].label or order[i].op}'s grad is {fmt(replayed[i])}): explore one "
                             "example's graph instead")
        ask.append({"i": i, "answer": _finite(grad), "text": fmt(replayed[i])})
    return {"ask": ask, "seed": len(order) - 1, "given": given}


def forward_data(drawing: Drawing, wrt: Value) -> dict[str, Any]:
    """Forward mode's steps for d(root)/d(wrt), as the page replays them (`viz.steps.forward_steps`).

    The leaves that are not constants are the inputs (ṫ(wrt) = 1, the others' 0). "steps": [node, terms,
    ṫ(node) as shown, as a number], a term being [input, the DOT id of its edge, local, ṫ(input)] (each
    number as shown). "counts": `chainrule.forward.op_counts` for the whole gradient over the inputs.
    """
    order, index = drawing.order, drawing.index
    inputs = [v for i, v in enumerate(order) if not v.parents and drawing.kinds[i] != "const"]
    rows = []
    for step in forward_steps(order[-1], wrt, inputs):
        node = index[id(step.node)]
        terms, k = [], 0  # the terms come in the node's parent order, each with its slot (a + a has two)
        for slot, parent in enumerate(step.node.parents):
            if k < len(step.terms) and step.terms[k][0] is parent:
                _, local, tangent = step.terms[k]
                terms.append([index[id(parent)], drawing.edge.get((node, slot)), fmt(local), fmt(tangent)])
                k += 1
        rows.append([node, terms, fmt(step.tangent), _finite(step.tangent)])
    counts = op_counts(order[-1], inputs)
    return {"wrt": index[id(wrt)], "steps": rows, "inputs": len(inputs),
            "counts": {"per_pass": counts.per_pass, "forward": counts.forward, "reverse": counts.reverse}}


def _forward_leaf(order: Sequence[Value], forward: Value | str) -> Value:
    """The leaf `forward` names (a Value of the graph, or a label), or ValueError saying what is wrong."""
    leaves = [v for v in order if not v.parents]
    if isinstance(forward, Value):
        if not any(v is forward for v in order):
            raise ValueError("forward: that Value is not in the graph")
        if forward.parents:
            raise ValueError(f"forward: {forward.label or forward.op} is computed (op {forward.op}), "
                             "not an input")
        leaf = forward
    elif isinstance(forward, str):
        named = [v for v in leaves if v.label == forward]
        if len(named) != 1:
            names = ", ".join(sorted({v.label for v in leaves if v.label}))
            why = "no input" if not named else f"{len(named)} inputs"
            raise ValueError(f"forward: {why} named {forward!r} in the graph "
                             f"(inputs: {names or 'none named'})")
        leaf = named[0]
    else:
        raise TypeError(f"forward must be an input's name or Value, not {type(forward).__name__}")
    if any(type(v.data) is not float for v in order):
        raise ValueError("forward mode works on numbers, not batches")
    return leaf


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
    exercise: bool = False,
    forward: Value | str | None = None,
) -> str:
    """The explorer page for `root`'s graph, as a string; also written to `path` if given.

    Run `root.backward()` first if you want the page to open on the engine's grads (its Step
    buttons replay backward from zero either way; without backward() the page says so and its
    last step shows the grads backward() would give). Options as in `draw_dot`.

    exercise: hide every grad and ask the learner for each box's, in backward's order (the root's 1
    given), checking the answers against the engine's replayed backward.
    forward: an input (its label, or the Value): the page steps forward mode instead, each node's tangent
    d(node)/d(input) = Σ local × tangent(parent), from the input to the output.
    """
    if not isinstance(exercise, bool):
        raise TypeError(f"exercise must be True or False, not {exercise!r}")
    if exercise and forward is not None:
        raise ValueError("exercise and forward are two modes of the page: choose one")
    # The graph sorted once and backward replayed once: for the boxes' widths and for the page.
    order, steps, _ = replay(root)
    wrt = _forward_leaf(order, forward) if forward is not None else None
    drawing = layout(root, params=params, inputs=inputs, groups=groups, expand=expand, max_nodes=max_nodes,
                     grad_text=_widest_grads(root, steps), stacked=True, order=order)
    data = json.dumps(graph_data(drawing, steps, title, exercise=exercise, forward=wrt), ensure_ascii=False,
                      separators=(",", ":"))
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
