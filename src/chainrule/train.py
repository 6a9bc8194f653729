"""Training a classifier on points: `fit` runs micrograd's loop and returns what happened. It never prints.

    from chainrule.train import fit, predict
    history = fit(model, X, y, loss="hinge", steps=100)      # SGD, the loss's default learning rate
    history.loss[-1], history.accuracy[-1]
    predict(model, X)                                         # a class index per point

Each step is micrograd's: forward, loss, zero the grads, backward, update. `mode` says how the forward and
backward passes run: "batched" (one graph for the whole dataset, NumPy arrays in the Values), "eager"
(one scalar graph per point, as micrograd) or "compiled" (the batched graph captured once by
chainrule.compile and replayed each step). Same model, same numbers up to rounding.
A run that blows up raises `Diverged` (step and reason) instead of returning nonsense.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from chainrule import losses
from chainrule.compile import compile
from chainrule.engine import Value, no_grad
from chainrule.health import Health, Recorder
from chainrule.nn import MLP, Activation
from chainrule.optim import SGD, Adam, Optimizer, gather, linear_decay
from chainrule.replay import Program
from chainrule.trainstep import ArrayStep

LOSSES = ("hinge", "mse", "bce", "ce")
# A starting learning rate per (loss, optimizer) that trains without diverging on every dataset of the CLI
# (moons, circles, blobs, xor, spirals; 2 to 7 classes; relu, tanh or sigmoid; 100 points, MLP 16,16, 100
# steps decaying to a tenth). Measured, not derived: mse's gradient 2(s - y) is twice hinge's and unbounded,
# and at sgd's 1.0 (or 0.5) it overshoots until the loss overflows (moons: step 2); at 0.1 it converges.
DEFAULT_LR = {
    ("hinge", "sgd"): 1.0, ("mse", "sgd"): 0.1, ("bce", "sgd"): 1.0, ("ce", "sgd"): 1.0,
    ("hinge", "adam"): 0.05, ("mse", "adam"): 0.05, ("bce", "adam"): 0.05, ("ce", "adam"): 0.05,
}
OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {"sgd": SGD, "adam": Adam}
# A loss this many times its first value is diverging, not learning.
DIVERGED_FACTOR = 1e6
# Past this a scalar engine trains for hours (and builds graphs a laptop can't hold): `classifier` says so
# at once, before building anything.
MAX_PARAMETERS = 100_000


class Diverged(ArithmeticError):
    """Training blew up at `step`: an op overflowed, or the loss or a weight stopped being a finite number,
    or the loss grew past DIVERGED_FACTOR times its start. Usually too large a learning rate."""

    def __init__(self, step: int, why: str) -> None:
        self.step, self.why = step, why
        super().__init__(f"training diverged at step {step} ({why})")


@dataclass
class History:
    """One entry per step: the loss and the training accuracy (0..1) before that step's update; with
    `fit(..., health=True)`, the network's health at a few steps (chainrule.health.Health)."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    health: Health | None = None


Points = npt.NDArray[np.float64]
Labels = npt.NDArray[np.intp]
# Class scores, one row per class, one column per point: the predicted class is the row with the top score.
Scores = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Task:
    """What to fit: points X (n, d), class labels, the loss that turns outputs into a number, and the L2."""

    X: Points
    labels: Labels
    loss: str
    l2: float

    def __post_init__(self) -> None:
        _check_loss(self.loss)

    def loss_of(self, outputs: Any, params: list[Value]) -> Value:
        """The loss of the model's outputs on all points (eager or batched form, as `losses` takes both)."""
        if self.loss == "ce":
            data_loss = losses.cross_entropy(outputs, self.labels)
        elif self.loss == "bce":
            data_loss = losses.binary_cross_entropy(outputs, self.labels.astype(np.float64))
        else:  # hinge and mse want ±1 targets, micrograd's y*2 - 1
            signs = 2.0 * self.labels - 1.0
            data_loss = (losses.hinge if self.loss == "hinge" else losses.mse)(outputs, signs)
        return data_loss + losses.l2(params, self.l2) if self.l2 else data_loss


def _scores_of_batch(outputs: Value | list[Value]) -> Scores:
    rows = [o.data for o in outputs] if isinstance(outputs, list) else [outputs.data]
    return _class_scores(np.array(rows, dtype=np.float64))


def _scores_of_points(outputs: list[Value] | list[list[Value]]) -> Scores:
    rows = [[v.data for v in o] if isinstance(o, list) else [o.data] for o in outputs]
    return _class_scores(np.array(rows, dtype=np.float64).T)


def _class_scores(outputs: npt.NDArray[np.float64]) -> Scores:
    # One output s is a binary classifier (class 1 when s > 0, micrograd's accuracy): scores (0, s).
    return np.vstack([np.zeros_like(outputs[0]), outputs[0]]) if len(outputs) == 1 else outputs


def _batched_inputs(X: Points) -> list[Value]:
    # One Value per feature, holding that column for every point: the model's scalar code runs once.
    return [Value(cast(float, X[:, j])) for j in range(X.shape[1])]


# A pass is one whole training step: zero the grads, forward and backward on the parameters' current
# data, the optimizer's update; it returns the loss and the class scores of the training points (before
# the update). `data()` is every parameter's data now, in the optimizer's order; `sync()` brings the
# model's Values up to date (a pass that keeps the parameters in arrays writes them back), `reload()`
# reads them again after other code changed them.
OnGraph = Callable[[Value], object] | None  # called with the loss after backward (health=True reads it)


class _ValuePass:
    """Eager and batched: a graph of Values per step, and the optimizer updates the Values."""

    def __init__(self, model: MLP, task: Task, opt: Optimizer, batched: bool, on_graph: OnGraph = None):
        self.model, self.task, self.opt, self.batched, self.on_graph = model, task, opt, batched, on_graph
        self.params = model.parameters()

    def __call__(self) -> tuple[float, Scores]:
        self.opt.zero_grad()
        task = self.task
        outputs: Any
        if self.batched:
            outputs = self.model(_batched_inputs(task.X))
        else:  # one scalar graph per point, as micrograd (the sum of losses spans all of them)
            outputs = [self.model([Value(x) for x in row]) for row in task.X.tolist()]
        loss = task.loss_of(outputs, self.params)
        loss.backward()
        if self.on_graph is not None:
            self.on_graph(loss)
        self.opt.step()
        scores = _scores_of_batch(outputs) if self.batched else _scores_of_points(cast(list[Value], outputs))
        return float(loss.data), scores

    def data(self) -> npt.NDArray[np.float64]:
        return gather(self.opt.params, "data")

    def sync(self) -> None:
        pass  # the Values are the parameters

    reload = sync


def _batched_pass(model: MLP, task: Task, opt: Optimizer) -> _ValuePass:
    return _ValuePass(model, task, opt, batched=True)


def _eager_pass(model: MLP, task: Task, opt: Optimizer) -> _ValuePass:
    return _ValuePass(model, task, opt, batched=False)


class _CompiledPass:
    """The batched graph captured once by chainrule.compile at the first step, then the whole step on
    arrays (chainrule.trainstep): the parameters, their grads and the optimizer's state live in vectors,
    and the Values are brought up to date by `sync()`."""

    def __init__(self, model: MLP, task: Task, opt: Optimizer) -> None:
        self.model, self.task, self.opt = model, task, opt
        self.heads: list[Value] = []
        self.step: ArrayStep | None = None
        self.program: Program | None = None

    def __call__(self) -> tuple[float, Scores]:
        if self.step is None or self.program is None:  # at the first step, inside fit's error handling
            outputs = self.model(_batched_inputs(self.task.X))
            self.heads[:] = outputs if isinstance(outputs, list) else [outputs]
            self.program = compile(self.task.loss_of(outputs, self.model.parameters()), outputs=self.heads)
            params = {id(p) for p in self.opt.params}
            # The points, the labels and the constants never change in a fit: read once, no grads kept.
            self.program.freeze([leaf for leaf in self.program.inputs if id(leaf) not in params])
            self.step = ArrayStep(self.opt)
        program = self.program
        loss = self.step(program)  # the losses' stable forms are ops (a detached max): replay recomputes them
        return loss, _class_scores(np.array([program.value(h) for h in self.heads], dtype=np.float64))

    def data(self) -> npt.NDArray[np.float64]:
        return self.step.data if self.step is not None else gather(self.opt.params, "data")

    def sync(self) -> None:
        if self.step is not None:
            self.step.sync()

    def reload(self) -> None:
        if self.step is not None:
            self.step.reload()


# The ways to run a pass, by name. Each entry is called once per `fit` with the model and the task, and
# returns the pass that every step calls: a mode that prepares something once (captures a program to
# replay each step) does it there. A new mode is one entry here; `fit`, `MODES` and the CLI follow.
_MODES: dict[str, Callable[[MLP, Task, Optimizer], _ValuePass | _CompiledPass]] = {
    "batched": _batched_pass, "eager": _eager_pass, "compiled": _CompiledPass}
MODES = tuple(_MODES)


def _outputs_of(model: MLP) -> int:
    return model.nouts[-1]


def _check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")


def _check(model: MLP, X: Points, labels: Labels, loss: str, mode: str, steps: int) -> None:
    _check_loss(loss)
    if mode not in _MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if X.ndim != 2 or len(X) == 0 or X.shape[1] != model.nin:
        raise ValueError(f"X must have shape (n, {model.nin}) with n >= 1 for {model}, got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X holds a number that is not finite (nan or inf)")
    if labels.shape != (len(X),):
        raise ValueError(f"y must hold one class index per point: {len(X)} points, y of shape {labels.shape}")
    classes = _outputs_of(model) if loss == "ce" else 2
    if loss != "ce" and _outputs_of(model) != 1:
        raise ValueError(f"loss {loss!r} scores 2 classes with one output, but {model} has "
                         f"{_outputs_of(model)} (use loss='ce')")
    bad = labels[(labels < 0) | (labels >= classes)]
    if len(bad):
        raise ValueError(f"y holds {bad[0]}, not a class index in [0, {classes}) for loss {loss!r} "
                         f"and a model with {_outputs_of(model)} output(s)")


def _as_labels(y: Sequence[int] | npt.ArrayLike) -> Labels:
    labels = np.asarray(y)
    if labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
        labels = labels.astype(np.intp)  # 0.0 / 1.0 labels, as some datasets give them
    if labels.dtype.kind not in "iub":
        raise ValueError(f"y must hold integer class indices, got dtype {labels.dtype}")
    return labels.astype(np.intp)


def classifier(n_classes: int = 2, hidden: Sequence[int] = (16, 16), *, loss: str | None = None,
               activation: Activation = "relu", n_features: int = 2, seed: int = 1337) -> tuple[MLP, str]:
    """An MLP for `fit` to sort points of `n_features` coordinates into `n_classes` classes, and the loss it
    is built for: `loss`, by default 'hinge' for 2 classes and 'ce' for more. One output for hinge, mse and
    bce (2 classes only), one per class for ce; `hidden` layers of `activation`, a linear output, zero
    biases and weights drawn from random.Random(seed), as micrograd's demo (seed 1337).

    Raises ValueError, before building anything, on a binary loss for 3+ classes and on more than
    MAX_PARAMETERS parameters.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    loss = loss or ("hinge" if n_classes == 2 else "ce")
    _check_loss(loss)
    if n_classes > 2 and loss != "ce":
        raise ValueError(f"the {loss} loss is for 2 classes, not {n_classes}: use the ce loss")
    sizes = [n_features, *hidden, n_classes if loss == "ce" else 1]
    n_params = sum((nin + 1) * nout for nin, nout in itertools.pairwise(sizes))
    if n_params > MAX_PARAMETERS:
        raise ValueError(f"hidden layers {list(hidden)} make {n_params:,} parameters, more than this scalar "
                         f"engine trains in reasonable time (at most {MAX_PARAMETERS:,})")
    model = MLP(n_features, sizes[1:], activation, "linear", bias_init="zero", rng=random.Random(seed))
    return model, loss


def default_optimizer(model: MLP, loss: str, name: str = "sgd", steps: int = 100,
                      lr: float | None = None) -> Optimizer:
    """`name` ('sgd' or 'adam') over the model's parameters, its rate decaying linearly from `lr` (default:
    the loss's DEFAULT_LR) to a tenth of it over `steps`, as micrograd's demo decays 1.0 to 0.1."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    _check_loss(loss)
    lr0 = DEFAULT_LR[loss, name] if lr is None else lr
    return OPTIMIZERS[name](model.parameters(), lr=linear_decay(lr0, 0.1 * lr0, steps))


def fit(
    model: MLP,
    X: npt.ArrayLike,
    y: Sequence[int] | npt.ArrayLike,
    *,
    loss: str = "hinge",
    optimizer: Optimizer | None = None,
    steps: int = 100,
    mode: str = "batched",
    l2: float = 0.0,
    on_step: Callable[[int, float, float], object] | None = None,
    health: bool = False,
) -> History:
    """Train `model` on points `X` (n, d) with class indices `y`, full batch, for `steps` steps.

    `loss`: 'hinge', 'mse' or 'bce' for a one-output model (two classes: class 1 where the output > 0), or
    'ce' (softmax cross-entropy) with one output per class. `optimizer` defaults to
    `default_optimizer(model, loss, steps=steps)`; `l2` adds l2·Σp² to the loss (micrograd's demo: 1e-4).
    `on_step(step, loss, accuracy)` is called after each step's update (in "compiled" mode the parameters
    live in arrays during the run, chainrule.trainstep, and the model's Values get them when fit returns or
    raises: an `on_step` that reads the model's weights sees their first values). Returns the loss and
    accuracy per step; raises `Diverged` if the run blows up, `ValueError` on bad arguments.

    `health=True` also records the network's health (chainrule.health: activations, saturated or dead
    units, gradients, update-to-data ratios) at the steps `chainrule.health.schedule(steps)` names, into
    `history.health`. They are read from each such step's graph: in "compiled" mode, which replays a
    program and builds none, those few steps run batched (the same numbers up to rounding).
    """
    points = np.asarray(X, dtype=np.float64)
    labels = _as_labels(y)
    _check(model, points, labels, loss, mode, steps)
    if not (math.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
    if not isinstance(health, bool):
        raise ValueError(f"health must be True or False, got {health!r}")
    opt = optimizer if optimizer is not None else default_optimizer(model, loss, steps=steps)
    named = {id(p): name for name, p in model.named_parameters()}
    names = [named.get(id(p), "?") for p in opt.params]  # for Diverged: which weight stopped being finite
    task = Task(points, labels, loss, l2)
    run = _MODES[mode](model, task, opt)
    recorder = Recorder(model, steps) if health else None
    watched = None if recorder is None else _ValuePass(model, task, opt, mode != "eager", recorder.read_graph)
    history = History(health=None if recorder is None else recorder.health)
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a blow-up is Diverged, below
            for k in range(steps):
                recording = watched is not None and recorder is not None and recorder.wants(k)
                try:
                    if recording and watched is not None:  # a graph of Values to read: on the Values
                        run.sync()
                        value, scores = watched()
                        run.reload()
                    else:
                        value, scores = run()
                except (ArithmeticError, ValueError) as err:  # an op overflowed or left its domain: it says
                    raise Diverged(k, str(err).splitlines()[0][:200]) from None
                _check_diverged(k, value, history.loss[0] if history.loss else value, run.data(), names)
                if recording and recorder is not None:  # (`recording` says it; mypy needs it said again)
                    recorder.record(k)
                history.loss.append(value)
                history.accuracy.append(float(np.mean(np.argmax(scores, axis=0) == labels)))
                if on_step is not None:
                    on_step(k, value, history.accuracy[-1])
    finally:
        run.sync()  # a compiled run's parameters live in arrays: the model's Values get them back
    return history


def _check_diverged(step: int, loss: float, start: float, data: npt.NDArray[np.float64],
                    names: Sequence[str]) -> None:
    if not math.isfinite(loss):
        raise Diverged(step, f"the loss is {loss}")
    if start > 0 and loss > DIVERGED_FACTOR * start:
        raise Diverged(step, f"the loss grew from {start:.4g} to {loss:.4g}, over {DIVERGED_FACTOR:g} times")
    finite = np.isfinite(data)
    if not finite.all():
        raise Diverged(step, f"weight {names[int(np.argmin(finite))]} is no longer a finite number")


def class_scores(model: MLP, X: npt.ArrayLike) -> Scores:
    """The model's class scores on points X (n, d), one row per class: the predicted class has the top one.

    A one-output model scores class 0 as 0 and class 1 as its output. Evaluated batched and without a graph
    (`no_grad`), whichever mode the model was trained in: the model is the same.
    """
    points = np.asarray(X, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != model.nin:
        raise ValueError(f"X must have shape (n, {model.nin}) for {model}, got {points.shape}")
    with no_grad():
        return _scores_of_batch(model(_batched_inputs(points)))


def predict(model: MLP, X: npt.ArrayLike) -> Labels:
    """The predicted class of each point of X (n, d)."""
    return np.asarray(np.argmax(class_scores(model, X), axis=0), dtype=np.intp)


def margins(model: MLP, X: npt.ArrayLike, y: Sequence[int] | npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Each point's score for its own class minus the best other class's: negative where the model is wrong,
    small where it is unsure (the points that still have a gradient to give)."""
    scores, labels = class_scores(model, X), _as_labels(y)
    if labels.shape != (scores.shape[1],) or ((labels < 0) | (labels >= len(scores))).any():
        raise ValueError(f"y must hold a class index in [0, {len(scores)}) for each of the {scores.shape[1]} "
                         f"points, got {labels.tolist()[:5]}")
    columns = np.arange(scores.shape[1])
    others = scores.copy()
    others[labels, columns] = -np.inf
    return np.asarray(scores[labels, columns] - others.max(axis=0), dtype=np.float64)
