"""Pictures of a training run: the decision boundary of a classifier, its loss and accuracy curves, and the
backprop explorer of the trained model on one training point; `save_run` writes them and the model into a
folder, as `chainrule demo` and `train` do.

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
from chainrule.nn import MLP
from chainrule.train import History, Task, class_scores, margins
from chainrule.viz.dot import GraphTooLargeError
from chainrule.viz.model import trace_model
from chainrule.viz.render import render

DPI = 150
# Grid points per side. The grid is scored batched and without a graph (chainrule.train.class_scores), so
# even a model trained eagerly gets a fine grid; the boundary is then drawn through each class's margin,
# a smooth function: straight where the network is (relu nets are piecewise linear), not stair-stepped.
RESOLUTION = 300
# What save_run writes, in this order (the explorer only when asked). A folder holding nothing else was
# made by chainrule and may be written again.
OUTPUTS = ("decision_boundary.png", "training_curves.png", "model.json", "explorer.html")


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
    foreign = sorted(set(os.listdir(folder)) - set(OUTPUTS)) if folder.is_dir() else []
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
    return paths
