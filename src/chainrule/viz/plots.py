"""Pictures of a training run: the decision boundary of a classifier, its loss and accuracy curves, and the
backprop explorer of the trained model on one training point; `save_run` writes them and the model into a
folder, as `chainrule demo` and `train` do. For the character models of names: `names_curves` (train and
val loss), `attention_maps` (a GPT's heads on one name), `embedding_map` (makemore's 2-D picture of the
characters), `explore_prediction`; `save_names_run` writes them, as `chainrule names` does. For either
kind of run trained with `health=True`: `health` (makemore's pictures of activations, gradients, updates).

    from chainrule.viz.plots import decision_boundary, training_curves
    decision_boundary(model, X, y)            # a matplotlib Figure: shows in Jupyter, .savefig(path) to keep
    training_curves(fit(model, X, y))
    explore_training_point(model, X, y, "hinge", "point.html")   # backprop through one point, by neuron
    save_run(model, X, y, history, prepare_folder("run"), loss="hinge")   # all of them, and model.json

Figures are made with `matplotlib.figure.Figure`, not pyplot: no global figure list to leak into, no
backend to choose, nothing shown or printed. They are 150 dpi.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib import colormaps
from matplotlib.figure import Figure

from chainrule import serialize
from chainrule.health import Histogram
from chainrule.lm import GPT, Bigram, CharMLP, nll
from chainrule.makemore import History as NamesHistory
from chainrule.makemore import NamesModel, attention
from chainrule.nn import MLP
from chainrule.text import CharTokenizer
from chainrule.train import History, Task, class_scores, margins
from chainrule.viz.dot import GraphTooLargeError, Group
from chainrule.viz.model import trace_model
from chainrule.viz.render import render

DPI = 150
# Grid points per side. The grid is scored batched and without a graph (chainrule.train.class_scores), so
# even a model trained eagerly gets a fine grid; the boundary is then drawn through each class's margin,
# a smooth function: straight where the network is (relu nets are piecewise linear), not stair-stepped.
RESOLUTION = 300
# What save_run writes, in this order (the explorer only when asked). A folder holding nothing else was
# made by chainrule and may be written again.
OUTPUTS = ("decision_boundary.png", "training_curves.png", "model.json", "explorer.html", "health.png")


def class_colours(n_classes: int) -> npt.NDArray[np.float64]:
    """One RGBA colour per class: tab10's distinct colours up to 10 classes, then evenly along turbo."""
    if n_classes <= 10:
        return np.asarray(colormaps["tab10"](np.arange(n_classes)), dtype=np.float64)
    return np.asarray(colormaps["turbo"](np.linspace(0.05, 0.95, n_classes)), dtype=np.float64)


def _margins(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """For each class k: z_k - max_{j≠k} z_j, positive exactly where k is predicted.

    Between classes k and j the two margins are z_k - z_j and z_j - z_k, zero on the same line: each
    boundary is a level set of a smooth function (not of the class index, whose 0.5, 1.5, ... levels
    stack up where class 0 meets class 6)."""
    order = np.sort(scores, axis=0)
    top, second = order[-1], order[-2]
    best_other = np.where(scores == top, second, top)
    return np.asarray(scores - best_other, dtype=np.float64)


def decision_boundary(model: MLP, X: npt.ArrayLike, y: Sequence[int] | npt.ArrayLike, *, title: str = "",
                      resolution: int = RESOLUTION) -> Figure:
    """The classes `model` predicts over the plane around the points X (n, 2), with the points coloured
    by their labels y, one thin line between regions, and a legend of the classes."""
    points, labels = np.asarray(X, dtype=np.float64), np.asarray(y)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"decision_boundary draws 2-D points: X must have shape (n, 2), got {points.shape}")
    if labels.shape != (len(points),):
        raise ValueError(f"y must hold one label per point: {len(points)} points, y of shape {labels.shape}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or not 2 <= resolution <= 2000:
        raise ValueError(f"resolution must be an integer in [2, 2000], got {resolution!r}")
    (x0, y0), (x1, y1) = points.min(axis=0) - 0.5, points.max(axis=0) + 0.5
    xx, yy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    scores = class_scores(model, np.c_[xx.ravel(), yy.ravel()])
    margins = _margins(scores).reshape(-1, *xx.shape)
    n_classes = max(len(margins), int(labels.max()) + 1)
    colours = class_colours(n_classes)

    fig = Figure(figsize=(7.2, 4.8), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    for k, margin in enumerate(margins):
        if margin.max() > 0:  # class k wins somewhere on the grid
            ax.contourf(xx, yy, margin, levels=[0, float(margin.max())], colors=[colours[k]], alpha=0.3)
    for margin in margins:
        if margin.min() < 0 < margin.max():
            ax.contour(xx, yy, margin, levels=[0], colors="0.25", linewidths=0.8)
    for k in range(n_classes):
        mine = labels == k
        if mine.any():
            ax.scatter(points[mine, 0], points[mine, 1], s=28, color=colours[k], edgecolors="0.15",
                       linewidths=0.5, label=f"class {k}", zorder=3)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), title=title, xlabel="x₀", ylabel="x₁")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="points")
    return fig


def training_curves(history: History, *, title: str = "") -> Figure:
    """The loss (log scale) and the training accuracy, step by step."""
    if not history.loss:
        raise ValueError("training_curves needs a history of at least one step")
    fig = Figure(figsize=(9.6, 4.0), dpi=DPI, layout="constrained")
    left, right = fig.subplots(1, 2)
    steps = range(len(history.loss))
    left.plot(steps, history.loss, color="tab:red")
    left.set(yscale="log", xlabel="step", ylabel="loss (log scale)", title="loss")
    right.plot(steps, [100 * a for a in history.accuracy], color="tab:blue")
    right.set(xlabel="step", ylabel="accuracy (%)", ylim=(0, 102), title="training accuracy")
    axes: list[Any] = [left, right]
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def explore_training_point(model: MLP, X: npt.ArrayLike, y: Sequence[int] | npt.ArrayLike, loss: str,
                           path: str | Path) -> Path:
    """Write the backprop explorer (.html) of `model` on the training point it is least sure of, through that
    point's `loss` ('hinge', 'mse', 'bce', 'ce', as `fit` takes it), its neurons drawn as boxes (its layers,
    if there are too many neurons to draw). Returns the path written."""
    points, labels = np.asarray(X, dtype=np.float64), np.asarray(y)
    # A well-classified point sends no gradient back through a hinge: show the one with the smallest margin.
    i = int(margins(model, points, labels).argmin())
    trace = trace_model(model, points[i])
    point_loss = Task(points[i : i + 1], labels[i : i + 1], loss, 0.0).loss_of([trace.output], [])
    point_loss.label = "loss"
    point_loss.backward()
    title = f"{model} on training point {i}: x = ({points[i, 0]:.3g}, {points[i, 1]:.3g}), class {labels[i]}"
    try:
        return render(point_loss, path, params=trace.params, inputs=trace.inputs, groups=trace.neurons,
                      title=title)
    except GraphTooLargeError:
        return render(point_loss, path, params=trace.params, inputs=trace.inputs, groups=trace.layers,
                      title=title)


class FolderInUseError(ValueError):
    """The folder holds files chainrule did not write; `prepare_folder(..., force=True)` writes anyway."""


def prepare_folder(folder: str | Path, *, force: bool = False) -> Path:
    """Make `folder` ready for `save_run` before a run of minutes ends in "can't write there": created with
    its parents if missing. Refused with a ValueError: a file, a folder that can't be created or written,
    and (`FolderInUseError`, unless `force`) a folder holding files save_run does not write, so that a
    mistyped folder (`/`, your home) is never filled with PNGs. Returns `folder` as a Path.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder")
    foreign = sorted(set(os.listdir(folder)) - set(OUTPUTS) - set(NAMES_OUTPUTS)) if folder.is_dir() else []
    if foreign and not force:
        raise FolderInUseError(f"{folder} holds files chainrule did not write ({', '.join(foreign[:3])}"
                               f"{', ...' if len(foreign) > 3 else ''})")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{folder}: cannot create the folder ({err.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{folder}: the folder is not writable")
    return folder


def save_run(model: MLP, X: npt.ArrayLike, y: Sequence[int] | npt.ArrayLike, history: History,
             folder: str | Path, *, loss: str, title: str = "", explorer: bool = False) -> list[Path]:
    """Write a training run into `folder` (check it first with `prepare_folder`): the decision boundary and
    the training curves (PNG), the model (JSON, for `chainrule.load`) and, with `explorer`, the explorer of
    the training point the model is least sure of, through `loss`. Returns the paths written, as OUTPUTS
    names them. Raises OSError when a file can't be written, GraphTooLargeError when the explorer can't
    be drawn.
    """
    if not history.accuracy:
        raise ValueError("save_run needs a history of at least one step")
    paths = [Path(folder) / name for name in OUTPUTS[: 4 if explorer else 3]]
    accuracy = f"{history.accuracy[-1]:.0%} training accuracy"
    decision_boundary(model, X, y, title=f"{title}: {accuracy}" if title else accuracy).savefig(paths[0])
    training_curves(history, title=title).savefig(paths[1])
    serialize.save(model, paths[2])  # through the module, so that a test can stand in for a full disk
    if explorer:
        explore_training_point(model, X, y, loss, paths[3])
    if history.health is not None:  # fit(..., health=True)
        paths.append(Path(folder) / "health.png")
        health(history, paths[-1], title=title)
    return paths


# ----- character models of names (chainrule.makemore) ------------------------------------------------------
# What save_names_run writes (the attention picture for a GPT, the explorer when asked).
NAMES_OUTPUTS = ("loss.png", "embeddings.png", "attention.png", "model.json", "explorer.html", "health.png")


def names_curves(history: NamesHistory, *, title: str = "") -> Figure:
    """The training loss of every step (faint) and its running mean, and the val loss at each evaluation."""
    if not history.loss:
        raise ValueError("names_curves needs a history of at least one step")
    fig = Figure(figsize=(7.2, 4.0), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    steps = np.arange(1, len(history.loss) + 1)
    ax.plot(steps, history.loss, color="tab:red", alpha=0.25, lw=0.8, label="train (each step)")
    window = max(1, len(history.loss) // 50)
    smooth = np.convolve(history.loss, np.ones(window) / window, mode="valid")
    ax.plot(steps[window - 1 :], smooth, color="tab:red", label=f"train (mean of {window})")
    if history.val:
        ks, vs = zip(*history.val, strict=True)
        ax.plot(ks, vs, "o-", color="tab:blue", label=f"val (last {vs[-1]:.4f})")
    ax.set(xlabel="step", ylabel="loss: mean -log p(next character), nats", title=title or "loss")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return fig


def attention_maps(weights: npt.ArrayLike, tokens: Sequence[str], *, title: str = "") -> Figure:
    """Each head's attention weights (`chainrule.makemore.attention`: [layer, head, position, position]):
    row p is how much the prediction after `tokens[p]` looks at each earlier character."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 4 or w.shape[2] != w.shape[3] or w.shape[2] != len(tokens):
        raise ValueError(f"attention weights of shape [layer, head, n, n] for {len(tokens)} tokens, "
                         f"got {w.shape}")
    layers, heads, n, _ = w.shape
    fig = Figure(figsize=(2.4 * heads + 0.8, 2.5 * layers + 0.6), dpi=DPI, layout="constrained")
    axes = np.asarray(fig.subplots(layers, heads, squeeze=False))
    for (layer, head), ax in np.ndenumerate(axes):
        image = ax.imshow(w[layer, head], vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(n), tokens)
        ax.set_yticks(range(n), tokens)
        ax.set_title(f"layer {layer}, head {head}", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="attention weight")
    fig.suptitle(title or "attention: row = position reading, column = position read")
    return fig


def embedding_map(table: Sequence[Sequence[float]], symbols: Sequence[str], *, title: str = "") -> Figure:
    """makemore's picture of learned character embeddings: each character at its first two principal
    components (its first two dimensions when there are only two), so similar characters sit together."""
    E = np.asarray(table, dtype=np.float64)
    if E.ndim != 2 or len(E) != len(symbols) or E.shape[1] < 2:
        raise ValueError(f"an embedding table of {len(symbols)} rows of at least 2 numbers, got {E.shape}")
    centred = E - E.mean(axis=0)
    if E.shape[1] == 2:
        xy, what = centred, ("dimension 0", "dimension 1")
    else:
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        share = s**2 / np.sum(s**2)
        xy = centred @ vt[:2].T
        what = (f"PC 1 ({share[0]:.0%} of the variance)", f"PC 2 ({share[1]:.0%})")
    fig = Figure(figsize=(5.6, 5.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    ax.scatter(xy[:, 0], xy[:, 1], s=260, color="tab:blue", alpha=0.25)
    for (x, y), symbol in zip(xy, symbols, strict=True):
        ax.text(x, y, symbol, ha="center", va="center", fontsize=11)
    ax.set(xlabel=what[0], ylabel=what[1], title=title or "character embeddings")
    ax.grid(alpha=0.3)
    return fig


def explore_prediction(model: Bigram | CharMLP, tokenizer: CharTokenizer, context: Sequence[int], target: int,
                       path: str | Path) -> Path:
    """Write the backprop explorer (.html) of one prediction: `model` reads `context` (token ids), the loss
    is -log p(target). Grouped by layer (the hidden units, the logits, the loss) so it can be drawn."""
    ctx = [int(t) for t in context]
    logits = model(ctx)
    loss = nll(logits, target)
    loss.label = "loss"
    shown = "".join(tokenizer.symbol(t) for t in ctx)
    title = f"{model}: -log p({tokenizer.symbol(target)!r} | {shown!r})"
    groups: list[Group] = [Group("softmax + nll", (loss,), tuple(logits))]
    if isinstance(model, CharMLP):
        x = [e for t in ctx for e in model.emb.weight[t]]
        hidden = [v for v in logits[0].parents if v.op == "tanh"]  # fc2 reads (b, w..., tanh...)
        groups = [Group("fc1 + tanh (hidden)", tuple(hidden), tuple(x)),
                  Group("fc2 (logits)", tuple(logits), tuple(hidden)), *groups]
    loss.backward()
    return render(loss, path, params=model.parameters(), groups=groups, title=title)


def save_names_run(model: NamesModel, tokenizer: CharTokenizer, history: NamesHistory, folder: str | Path, *,
                   word: str, title: str = "", explorer: bool = False) -> list[Path]:
    """Write a names run into `folder` (check it first with `prepare_folder`): the loss curves, the character
    embeddings, a GPT's attention on `word` (PNG), the model (JSON) and, with `explorer` (Bigram, CharMLP),
    the explorer of the first prediction of `word`. Returns the paths written, as NAMES_OUTPUTS names them."""
    folder = Path(folder)
    paths = [folder / "loss.png", folder / "embeddings.png"]
    names_curves(history, title=title).savefig(paths[0])
    table = model.wte if isinstance(model, GPT) else model.emb if isinstance(model, CharMLP) else model.table
    rows = [[float(p.data) for p in row] for row in table.weight]
    symbols = [tokenizer.symbol(i) for i in range(len(rows))]
    embedding_map(rows, symbols, title=f"{title}: character embeddings" if title else "").savefig(paths[1])
    if isinstance(model, GPT):
        paths.append(folder / "attention.png")
        ids = tokenizer.encode(word)[: model.block_size]
        attention_maps(attention(model, tokenizer, word), [tokenizer.symbol(i) for i in ids],
                       title=f"attention reading {word!r}").savefig(paths[-1])
    paths.append(folder / "model.json")
    serialize.save(model, paths[-1])
    if explorer:
        if isinstance(model, GPT):
            raise ValueError("the explorer draws a Bigram or MLP prediction; a GPT's graph is too large")
        ids = tokenizer.encode(word)
        context = [tokenizer.bos] * model.block_size
        paths.append(explore_prediction(model, tokenizer, context, ids[1], folder / "explorer.html"))
    if history.health is not None:  # makemore.train(..., health=True)
        paths.append(folder / "health.png")
        health(history, paths[-1], title=title)
    return paths


# ----- a network's health (chainrule.health), for either kind of run ----------------------------------------
UPDATE_GUIDE = -3.0  # makemore's rule of thumb for log10(update / data)


def _density(h: Histogram) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """A histogram as makemore draws it (torch.histogram(density=True)): bin centres, density."""
    edges, counts = np.asarray(h.edges), np.asarray(h.counts, dtype=np.float64)
    widths = np.diff(edges)
    total = counts.sum() * widths
    density = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    return (edges[:-1] + edges[1:]) / 2, density


def health(history: History | NamesHistory, path: str | Path | None = None, *, title: str = "") -> Figure:
    """makemore's pictures of a network's health (`history.health`, from `fit(..., health=True)` or
    `makemore.train(..., health=True)`), saved to `path` if given. Top, the layers with a nonlinearity: their
    outputs' histogram at the last recorded step, their mean and std, and the share of saturated (tanh,
    sigmoid) or dead (relu) units, step by step. Bottom, every weight tensor: its gradients' histogram at the
    last recorded step, their std, and the update-to-data ratio log10(std(update) / std(data)) with
    makemore's guide line at -3."""
    record = history.health
    if record is None or not record.steps:
        raise ValueError("this history has no health records: train with health=True")
    steps, last = record.steps, record.steps[-1]
    fig = Figure(figsize=(14.4, 7.6), dpi=DPI, layout="constrained")
    (hist, spread, stuck), (grads, grad_std, ratio) = fig.subplots(2, 3)
    for i, layer in enumerate(record.layers):
        colour = f"C{i % 10}"
        x, density = _density(layer.histogram[-1])
        what = "dead" if layer.activation == "relu" else "saturated"
        rule = "output 0 for the whole batch" if what == "dead" else "|t| > 0.97"
        hist.plot(x, density, color=colour, label=f"{layer.name} ({layer.activation}): mean "
                  f"{layer.mean[-1]:+.2f}, std {layer.std[-1]:.2f}, {what} {layer.saturated[-1]:.0%}")
        spread.plot(steps, layer.std, color=colour, label=f"{layer.name} std")
        spread.plot(steps, layer.mean, color=colour, ls="--", label=f"{layer.name} mean")
        stuck.plot(steps, [100 * v for v in layer.saturated], "o-", ms=2.5, color=colour,
                   label=f"{layer.name}: {what} ({rule})")
    if not record.layers:
        for ax in (hist, spread, stuck):
            ax.text(0.5, 0.5, "no layer with a nonlinearity", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
    hist.set(title=f"activations at step {last}", xlabel="output", ylabel="density")
    spread.set(title="activations: std (solid), mean (dashed)", xlabel="step")
    stuck.set(title="saturated (tanh, sigmoid) or dead (relu) units", xlabel="step", ylabel="% of the layer",
              ylim=(-2, 102))
    for i, w in enumerate(record.weights):
        colour = f"C{i % 10}"
        x, density = _density(w.histogram[-1])
        grads.plot(x, density, color=colour, label=f"{w.name}: std {w.grad_std[-1]:.2e}")
        grad_std.plot(steps, w.grad_std, color=colour, label=w.name)
        ratio.plot(steps, [np.nan if r is None else r for r in w.update_ratio], color=colour, label=w.name)
    ratio.axhline(UPDATE_GUIDE, color="k", ls="--", lw=1, label="1e-3 (guide)")
    grads.set(title=f"weight gradients at step {last}", xlabel="gradient", ylabel="density")
    grad_std.set(title="weight gradients: std", xlabel="step", yscale="log")
    ratio.set(title="update / data: log10(std(update) / std(weights))", xlabel="step", ylabel="log10 ratio")
    small = len(record.weights) > 4  # a GPT's dozen tensors: a smaller legend
    axes: list[Any] = [hist, spread, stuck, grads, grad_std, ratio]
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(frameon=False, fontsize=6 if small or ax in (hist, stuck) else 7)
    fig.suptitle(f"{title}: network health" if title else "network health")
    if path is not None:
        fig.savefig(path)
    return fig
