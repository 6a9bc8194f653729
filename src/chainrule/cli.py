"""The `chainrule` command (also `python -m chainrule`). The only module that reads argv or prints.

    chainrule demo     micrograd's demo.ipynb, reproduced: moons, MLP(2, [16, 16, 1]), 100 SGD steps
    chainrule train    the same loop with your choice of dataset, network, loss and optimizer
    chainrule tour     the seeds' worked examples, gradients checked by finite differences
    chainrule graph    draw an expression's graph and its gradients

Each subcommand is an `_add_<name>_parser` function (its options) and a `_cmd_<name>` function (what it
does), registered together in `_build_parser`. Bad arguments give one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from chainrule.engine import Value
    from chainrule.nn import MLP

# The heavy imports (numpy, matplotlib, tqdm) wait inside the commands, so `chainrule --help` is instant.

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Past these a run takes hours (or the memory of a laptop): a usage error says so at once instead.
MAX_PARAMETERS, MAX_SAMPLES = 100_000, 100_000


class _UsageError(Exception):
    """Bad command-line arguments: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    # argparse's default prints the whole usage block and calls sys.exit(2); we want one line, and
    # main() (not argparse) to decide how the process ends, so tests can call main() in-process.
    def error(self, message: str) -> Any:
        raise _UsageError(f"{self.prog}: error: {message}")


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _seed(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n < 2**32:  # NumPy's RandomState takes exactly these
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), got {text!r}")
    return n


def _float_at_least(low: float, strict: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (x > low if strict else x >= low) or x != x or x == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a finite number {'>' if strict else '>='} {low:g}, "
                                             f"got {text!r}")
        return x

    return parse


def _layer_sizes(text: str) -> list[int]:
    """'16,16' -> [16, 16]; '' -> [] (no hidden layer)."""
    parts = [p.strip() for p in text.split(",")] if text.strip() else []
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive layer sizes like 16,16, "
                                         f"got {text!r}")
    return [int(p) for p in parts]


def _batched_available() -> bool:
    return importlib.util.find_spec("chainrule.batch") is not None


def _add_common_training_options(p: argparse.ArgumentParser, steps_help: str) -> None:
    p.add_argument("--out", type=Path, default=Path("chainrule-out"), metavar="DIR",
                   help="folder for the PNGs and the model JSON (default: chainrule-out)")
    p.add_argument("--steps", type=_positive_int, default=100, help=steps_help)
    p.add_argument("--mode", choices=["batched", "eager"], default=None,
                   help="batched: the whole dataset per op, on NumPy arrays (fast); eager: one scalar "
                        "graph per example, as micrograd (default: batched when available)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _check_out_dir(out: Path) -> None:
    # Checked before training, so that a run of minutes doesn't end in "can't write there".
    if out.exists() and not out.is_dir():
        raise _UsageError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _UsageError(f"--out {out}: cannot create the folder ({err.strerror})") from None
    if not os.access(out, os.W_OK):
        raise _UsageError(f"--out {out}: the folder is not writable")


def _resolve_mode(mode: str | None) -> str:
    if mode is None:
        return "batched" if _batched_available() else "eager"
    if mode == "batched" and not _batched_available():
        raise _UsageError("--mode batched needs chainrule.batch, which this version does not have")
    return mode


# ----- training a classifier on a 2-D toy dataset (shared by demo and train) --------------------------


@dataclass
class _Task:
    """What to fit: points X (n, 2), integer class labels, and the loss that decides the targets."""

    X: npt.NDArray[np.float64]
    labels: npt.NDArray[np.intp]
    n_classes: int
    loss: str  # 'hinge' | 'mse' | 'bce' | 'ce'
    l2: float  # alpha of the alpha·Σp² penalty

    def targets(self) -> list[float]:
        # hinge and mse want ±1 (micrograd's y*2 - 1), bce wants 0/1; ce takes the class indices.
        if self.loss in ("hinge", "mse"):
            return [2.0 * int(c) - 1.0 for c in self.labels]
        return [float(c) for c in self.labels]


class _Diverged(Exception):
    """Training blew up (an overflow, or a non-finite loss or weight): usually too big a learning rate."""

    def __init__(self, step: int, why: str) -> None:
        super().__init__(f"training diverged at step {step} ({why}); try a smaller --lr")


@dataclass
class _History:
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


# The model's outputs for a set of points: eager, a list with one output per point (a Value, or a list
# of class scores); batched, what the model returns for the whole set at once (a batch Value, or one
# batch Value per class). Both the losses and `_classes` accept either form.
_Outputs = Any


def _forward(model: MLP, X: npt.NDArray[np.float64], mode: str) -> _Outputs:
    from chainrule.engine import Value

    if mode == "batched":
        # The same model code, once, on columns: a few hundred nodes instead of tens of thousands.
        return model([Value(cast(float, X[:, j])) for j in range(X.shape[1])])
    # micrograd: inputs = [list(map(Value, xrow)) for xrow in Xb]; scores = list(map(model, inputs))
    return [model([Value(x) for x in row]) for row in X]


def _classes(outs: _Outputs, mode: str, n_classes: int) -> npt.NDArray[np.intp]:
    """Predicted class per point: score > 0 with one output (micrograd's accuracy), else the argmax."""
    import numpy as np

    if mode == "batched":
        scores = np.stack([o.data for o in outs]) if n_classes > 2 else outs.data[None, :] > 0
    else:
        scores = (np.array([[v.data for v in o] for o in outs]).T if n_classes > 2
                  else np.array([[o.data > 0 for o in outs]]))
    return np.asarray(np.argmax(scores, axis=0) if n_classes > 2 else scores[0], dtype=np.intp)


def _loss_and_accuracy(model: MLP, task: _Task, mode: str) -> tuple[Value, float]:
    from chainrule import losses

    outs = _forward(model, task.X, mode)
    if task.loss == "ce":
        data_loss = losses.cross_entropy(outs, task.labels)
    else:
        loss_fn = {"hinge": losses.hinge, "mse": losses.mse, "bce": losses.binary_cross_entropy}
        data_loss = loss_fn[task.loss](outs, task.targets())
    total = data_loss + losses.l2(model.parameters(), task.l2) if task.l2 else data_loss
    # micrograd: accuracy = [(yi > 0) == (scorei.data > 0) ...]
    accuracy = float((_classes(outs, mode, task.n_classes) == task.labels).mean())
    return total, accuracy


def _fit(model: MLP, task: _Task, optimizer: Any, steps: int, mode: str, progress: bool) -> _History:
    """Full-batch training: forward, loss, zero grads, backward, update; micrograd's loop."""
    from tqdm import tqdm

    history = _History()
    bar = tqdm(range(steps), desc="training", unit="step", disable=not progress, file=sys.stderr)
    for k in bar:
        try:
            loss, acc = _loss_and_accuracy(model, task, mode)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        except (ArithmeticError, ValueError) as err:  # an op overflowed: the engine says which
            bar.close()
            raise _Diverged(k, str(err).splitlines()[0][:200]) from None
        if not math.isfinite(loss.data):
            bar.close()
            raise _Diverged(k, f"loss is {loss.data}")
        if not all(math.isfinite(p.data) for p in model.parameters()):
            bar.close()
            raise _Diverged(k, "a weight is no longer a finite number")
        history.loss.append(float(loss.data))
        history.accuracy.append(acc)
        bar.set_postfix(loss=f"{loss.data:.4f}", acc=f"{acc:.0%}", refresh=False)
        if k % 10 == 0 or k == steps - 1:
            # micrograd's log line, full precision, so it can be compared with the published run.
            tqdm.write(f"step {k} loss {loss.data}, accuracy {acc * 100}%", file=sys.stdout)
    bar.close()
    return history


def _predict(model: MLP, points: npt.NDArray[np.float64], mode: str, n_classes: int) -> npt.NDArray[np.intp]:
    from chainrule.engine import no_grad

    with no_grad():  # prediction only: no graph, no memory for backward
        return _classes(_forward(model, points, mode), mode, n_classes)


def _plot_boundary(model: MLP, task: _Task, mode: str, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    # Eager mode evaluates the grid one point at a time through Value ops: keep it coarse there.
    n = 200 if mode == "batched" else 60
    (x0, y0), (x1, y1) = task.X.min(axis=0) - 0.5, task.X.max(axis=0) + 0.5
    xx, yy = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    grid = np.c_[xx.ravel(), yy.ravel()]
    zz = _predict(model, grid, mode, task.n_classes).reshape(xx.shape)

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    # Same colour scale for regions and points: a point sits on a region of its own class's colour.
    colours: dict[str, Any] = {"cmap": "Spectral", "vmin": 0, "vmax": task.n_classes - 1}
    ax.contourf(xx, yy, zz, levels=np.arange(task.n_classes + 1) - 0.5, alpha=0.35, **colours)
    ax.contour(xx, yy, zz, levels=np.arange(task.n_classes - 1) + 0.5, colors="k", linewidths=0.8)
    ax.scatter(task.X[:, 0], task.X[:, 1], c=task.labels, s=30, edgecolors="k", linewidths=0.6, **colours)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), title=title, xlabel="x₀", ylabel="x₁")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_curves(history: _History, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 4.0), dpi=100)
    steps = range(len(history.loss))
    left.plot(steps, history.loss, color="tab:red")
    left.set(yscale="log", xlabel="step", ylabel="loss (log scale)", title="loss")
    right.plot(steps, [100 * a for a in history.accuracy], color="tab:blue")
    right.set(xlabel="step", ylabel="accuracy (%)", ylim=(0, 102), title="training accuracy")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _train_and_report(model: MLP, task: _Task, optimizer: Any, args: argparse.Namespace,
                      mode: str, title: str) -> int:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window: works headless and over ssh
    from chainrule.serialize import save

    print(f"{model} on {len(task.labels)} points, {mode} mode")
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # NumPy's overflow warnings say nothing useful; a blow-up is reported as _Diverged instead.
            warnings.simplefilter("ignore", RuntimeWarning)
            history = _fit(model, task, optimizer, args.steps, mode, progress=not args.no_progress)
    except _Diverged as err:
        print(f"chainrule: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    seconds = time.perf_counter() - start
    print(f"trained {args.steps} steps in {seconds:.1f} s: final loss {history.loss[-1]:.4f}, "
          f"accuracy {history.accuracy[-1]:.0%}")
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "decision_boundary.png", out / "training_curves.png", out / "model.json"]
        _plot_boundary(model, task, mode, paths[0],
                       f"{title}: {history.accuracy[-1]:.0%} training accuracy")
        _plot_curves(history, paths[1], title)
        save(model, paths[2])
    except OSError as err:
        print(f"chainrule: error: cannot write to {out}: {err.strerror or err}", file=sys.stderr)
        return EXIT_FAILED
    for p in paths:
        print(f"wrote {p}")
    return EXIT_OK


# ----- demo -------------------------------------------------------------------------------------------


def _add_demo_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo", help="reproduce micrograd's demo.ipynb (moons, MLP(2, [16, 16, 1]), 100 SGD steps)",
        description="Reproduce micrograd's demo.ipynb exactly: np.random.seed(1337), random.seed(1337), "
                    "make_moons(100, noise=0.1), MLP(2, [16, 16, 1]) with ReLU hidden layers and a "
                    "linear output, hinge loss + 1e-4·Σp², SGD with lr = 1.0 - 0.9·k/100. micrograd's "
                    "published log: step 0 loss 0.8958 (50%%), step 99 loss 0.0110 (100%%).")
    _add_common_training_options(p, "training steps, at most 100 (default 100, the published run)")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    import numpy as np

    from chainrule.data import make_moons
    from chainrule.nn import MLP
    from chainrule.optim import SGD, linear_decay

    if args.steps > 100:
        raise _UsageError("--steps: the demo's learning-rate schedule is defined for at most 100 steps "
                          "(use `chainrule train` for longer runs)")
    _check_out_dir(args.out)
    mode = _resolve_mode(args.mode)
    # As the notebook does: global seeds, then everything draws from the global generators.
    np.random.seed(1337)
    random.seed(1337)
    X, labels = make_moons(n_samples=100, noise=0.1)
    model = MLP(2, [16, 16, 1], "relu", "linear", bias_init="zero")
    task = _Task(X, labels, n_classes=2, loss="hinge", l2=1e-4)
    optimizer = SGD(model.parameters(), lr=linear_decay(1.0, 0.1, 100))
    return _train_and_report(model, task, optimizer, args, mode, "micrograd's demo: moons")


# ----- train ------------------------------------------------------------------------------------------

_DATASETS = ("moons", "circles", "blobs", "xor", "spirals")
_NOISE = {"moons": 0.1, "circles": 0.1, "blobs": 1.0, "xor": 0.1, "spirals": 0.02}


def _add_train_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "train", help="train an MLP on a toy dataset of your choice",
        description="Full-batch training of an MLP on a 2-D toy dataset, with the demo's outputs. "
                    "With the defaults it is the demo. The learning rate decays linearly to a tenth "
                    "of --lr over the run, as in the demo.")
    p.add_argument("--dataset", choices=_DATASETS, default="moons")
    p.add_argument("--samples", type=_positive_int, default=100, help="number of points (default 100)")
    p.add_argument("--noise", type=_float_at_least(0, strict=False), default=None,
                   help="dataset noise (blobs: cluster std); default per dataset: "
                        + ", ".join(f"{k} {v}" for k, v in _NOISE.items()))
    p.add_argument("--classes", type=_positive_int, default=2,
                   help="number of classes for blobs and spirals (default 2)")
    p.add_argument("--hidden", type=_layer_sizes, default=[16, 16], metavar="SIZES",
                   help="hidden layer sizes, comma-separated (default 16,16)")
    p.add_argument("--activation", choices=["relu", "tanh", "sigmoid"], default="relu",
                   help="hidden activation (default relu); the output layer is linear")
    p.add_argument("--loss", choices=["hinge", "mse", "bce", "ce"], default=None,
                   help="hinge (default for 2 classes), mse, bce (from logits), ce (softmax cross-entropy, "
                        "the default for 3+ classes)")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--lr", type=_float_at_least(0, strict=True), default=None,
                   help="starting learning rate (default: sgd 1.0, adam 0.05)")
    p.add_argument("--l2", type=_float_at_least(0, strict=False), default=1e-4,
                   help="L2 penalty alpha·Σp² (default 1e-4)")
    p.add_argument("--seed", type=_seed, default=1337, help="seeds the data and the weights (default 1337)")
    _add_common_training_options(p, "training steps (default 100)")
    p.set_defaults(func=_cmd_train)


def _dataset(name: str, n: int, noise: float, classes: int, seed: int) -> tuple[Any, Any]:
    import numpy as np

    from chainrule import data

    rs = np.random.RandomState(seed)  # our own generator: the global one is left alone
    if name == "moons":
        return data.make_moons(n, noise=noise, random_state=rs)
    if name == "circles":
        return data.make_circles(n, noise=noise, factor=0.5, random_state=rs)
    if name == "xor":
        return data.make_xor(n, noise=noise, random_state=rs)
    if name == "spirals":
        return data.make_spirals(n, n_classes=classes, noise=noise, random_state=rs)
    X, y = data.make_blobs(n, centers=classes, cluster_std=noise, random_state=rs)
    # Blob centres lie anywhere in [-10, 10]²: standardise, or tanh/sigmoid units start saturated.
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def _cmd_train(args: argparse.Namespace) -> int:
    from chainrule.nn import MLP
    from chainrule.optim import SGD, Adam, linear_decay

    if args.classes != 2 and args.dataset not in ("blobs", "spirals"):
        raise _UsageError(f"--classes: {args.dataset} always has 2 classes")
    loss = args.loss or ("hinge" if args.classes == 2 else "ce")
    if args.classes > 2 and loss != "ce":
        raise _UsageError(f"--loss {loss} is for 2 classes; use --loss ce for {args.classes}")
    if args.classes < 2:
        raise _UsageError("--classes: need at least 2 classes")
    if args.samples < args.classes:
        raise _UsageError(f"--samples: need at least one point per class ({args.classes})")
    if args.samples > MAX_SAMPLES:
        raise _UsageError(f"--samples: at most {MAX_SAMPLES:,} points, got {args.samples:,}")
    _check_out_dir(args.out)
    mode = _resolve_mode(args.mode)
    noise = _NOISE[args.dataset] if args.noise is None else args.noise
    X, labels = _dataset(args.dataset, args.samples, noise, args.classes, args.seed)
    outputs = args.classes if loss == "ce" else 1
    sizes = [2, *args.hidden, outputs]
    n_params = sum((nin + 1) * nout for nin, nout in itertools.pairwise(sizes))
    if n_params > MAX_PARAMETERS:
        raise _UsageError(f"--hidden: {n_params:,} parameters is more than this scalar engine trains in "
                          f"reasonable time (at most {MAX_PARAMETERS:,})")
    model = MLP(2, [*args.hidden, outputs], args.activation, "linear", bias_init="zero",
                rng=random.Random(args.seed))
    task = _Task(X, labels, n_classes=args.classes, loss=loss, l2=args.l2)
    lr0 = args.lr if args.lr is not None else (1.0 if args.optimizer == "sgd" else 0.05)
    schedule = linear_decay(lr0, 0.1 * lr0, args.steps)
    optimizer = (SGD if args.optimizer == "sgd" else Adam)(model.parameters(), lr=schedule)
    return _train_and_report(model, task, optimizer, args, mode,
                             f"{args.dataset}, {loss} loss, {args.optimizer}")


# ----- tour -------------------------------------------------------------------------------------------


def _add_tour_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "tour", help="walk through the seeds' worked examples, gradients checked numerically",
        description="The worked examples learners meet first: L = (a*b + c)*f, the tanh neuron, "
                    "b = a + a, and a variable used twice. For each: the values, backward()'s gradients, "
                    "and the same gradients by finite differences (chainrule.gradcheck).")
    p.set_defaults(func=_cmd_tour)


def _tour_case(title: str, note: str, names: list[str], values: list[float],
               f: Callable[..., Value]) -> bool:
    from chainrule.engine import Value, topological_order
    from chainrule.gradcheck import GradcheckError, check_graph, gradcheck, numerical_grad

    print(title)
    leaves = [Value(x, label=n) for n, x in zip(names, values, strict=True)]
    out = f(*leaves)
    out.backward()

    def nudged(i: int) -> Callable[[float], Value]:
        # out as a function of leaf i alone, the others held at their values
        def g(t: float) -> Value:
            return f(*[Value(t if j == i else x) for j, x in enumerate(values)])

        return g

    print(f"  {'node':<12} {'data':>11} {'grad (backward)':>16} {'finite diff.':>13}")
    # The leaves in the order they were named, then the labelled values from the leaves to the output.
    for node in [*leaves, *(n for n in topological_order(out) if n.label and n.parents)]:
        i = next((j for j, leaf in enumerate(leaves) if leaf is node), None)  # identity: no __eq__
        fd = "" if i is None else f"{numerical_grad(nudged(i), values[i]):13.6f}"
        print(f"  {node.label:<12} {node.data:11.6f} {node.grad:16.6f} {fd:>13}")
    ok = True
    try:
        gradcheck(f, *leaves)
        print(f"  gradcheck: backward agrees with finite differences for {', '.join(names)}")
    except GradcheckError as err:
        print(f"  gradcheck FAILED: {err}")
        ok = False
    report = check_graph(out)
    print(f"  check_graph: {report}")
    print(f"  {note}\n")
    return ok and report.ok


def _cmd_tour(args: argparse.Namespace) -> int:
    def first_graph(a: Value, b: Value, c: Value, f: Value) -> Value:
        e = a * b
        e.label = "e = a*b"
        d = e + c
        d.label = "d = e + c"
        L = d * f
        L.label = "L = d*f"
        return L

    def neuron(x1: Value, x2: Value, w1: Value, w2: Value, b: Value) -> Value:
        n = x1 * w1 + x2 * w2 + b
        n.label = "n"
        o = n.tanh()
        o.label = "o = tanh(n)"
        return o

    def twice(a: Value) -> Value:
        b = a + a
        b.label = "b = a + a"
        return b

    def reused(a: Value, b: Value) -> Value:
        d = a * b
        d.label = "d = a*b"
        e = a + b
        e.label = "e = a + b"
        f = d * e
        f.label = "f = d*e"
        return f

    cases: list[tuple[str, str, list[str], list[float], Callable[..., Value]]] = [
        ("1. L = (a*b + c)*f: the seeds' first graph",
         "'+' routes the gradient unchanged; '*' scales it by the other input: dL/da = f·b = 6.",
         ["a", "b", "c", "f"], [2.0, -3.0, 10.0, -2.0], first_graph),
        ("2. o = tanh(x1*w1 + x2*w2 + b): the neuron, with b = 6.8813735870195432 so that n = 0.8814",
         "do/dn = 1 - o² = 0.5; w2 gets no gradient because its input x2 is 0.",
         ["x1", "x2", "w1", "w2", "b"], [2.0, 0.0, -3.0, 1.0, 6.8813735870195432], neuron),
        ("3. b = a + a: the bug the seeds found",
         "db/da = 2, not 1: a node used twice must *accumulate* its gradients (+=), not assign them.",
         ["a"], [3.0], twice),
        ("4. f = (a*b)*(a + b): a and b each feed two paths",
         "Each leaf's gradient is the sum over its paths to f (the multivariable chain rule).",
         ["a", "b"], [-2.0, 3.0], reused),
    ]
    results = [_tour_case(*case) for case in cases]
    print("all gradients agree with finite differences" if all(results) else "SOME CHECKS FAILED")
    return EXIT_OK if all(results) else EXIT_FAILED


# ----- graph subcommand (owned by the viz helper) -------------------------------------------------

def _add_graph_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "graph",
        help="draw an expression's graph and its gradients",
        description=(
            "Build EXPR from Values labelled by their names, run backward, print each name's "
            "gradient, and optionally draw the graph. EXPR may use numbers, names, + - * / **, "
            "unary minus, parentheses and tanh exp log relu sigmoid; it is parsed, never eval'd."
        ),
        epilog='example: chainrule graph "tanh(x1*w1 + x2*w2 + b)" '
        "--at x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432 --params w1,w2,b --out neuron.html",
    )
    p.add_argument("expr", help='the expression, e.g. "tanh(x1*w1 + b)"')
    p.add_argument("--at", default="", metavar="NAME=VALUE,...",
                   help="a value for every name in EXPR, e.g. x1=2,w1=-3")
    p.add_argument("--out", metavar="PATH",
                   help="write the graph: .html (step-through explorer), .svg or .png")
    p.add_argument("--params", default="", metavar="NAME,...",
                   help="names to colour as parameters (the others are inputs)")
    p.add_argument("--steps", action="store_true",
                   help="also print backward one edge at a time")
    p.set_defaults(func=_cmd_graph)


def _cmd_graph(args: argparse.Namespace) -> int:
    from chainrule.expr import ExprError, build, parse, parse_assignments
    from chainrule.viz import GraphTooLargeError, GraphvizMissingWarning, backward_steps, render
    from chainrule.viz.render import FORMATS

    def fail(message: str) -> int:
        print(f"chainrule graph: error: {message}", file=sys.stderr)
        return 2

    try:
        tree = parse(args.expr)
        env = parse_assignments(args.at) if args.at.strip() else {}
        root, leaves = build(tree, env)
    except ExprError as err:
        return fail(str(err))
    if args.out and Path(args.out).suffix.lower() not in FORMATS:
        return fail(f"cannot tell the format of {args.out!r}: use one of {', '.join(FORMATS)}")
    if args.out and not Path(args.out).parent.is_dir():  # say so before printing any gradient
        return fail(f"no such folder for --out: {str(Path(args.out).parent)!r}")
    params = [n.strip() for n in args.params.split(",") if n.strip()]
    unknown = [n for n in params if n not in leaves]
    if unknown:
        return fail(f"--params names not in the expression: {', '.join(unknown)}")

    root.backward()
    width = max((len(n) for n in leaves), default=1)
    print(f"{args.expr.strip()} = {root.data:.4f}")
    for name, leaf in leaves.items():
        print(f"  dL/d{name:<{width}} = {leaf.grad: .4f}")
    if args.steps:
        print("backward, one edge at a time (grad(input) += local × upstream):")
        for step in backward_steps(root):
            print(step)
    if args.out:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", GraphvizMissingWarning)
                written = render(root, args.out, params=[leaves[n] for n in params],
                                 inputs=[v for n, v in leaves.items() if n not in params],
                                 title=args.expr.strip())
        except (ValueError, GraphTooLargeError, OSError) as err:
            return fail(str(err).splitlines()[0])
        for w in caught:
            if issubclass(w.category, GraphvizMissingWarning):
                print(f"note: {w.message}", file=sys.stderr)
        print(f"wrote {written}")
    return 0


# ----- end of graph subcommand --------------------------------------------------------------------


# ----- main -------------------------------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chainrule")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="chainrule", description="A scalar autograd engine to learn backpropagation with.")
    parser.add_argument("--version", action="version", version=f"chainrule {_version()}")
    # Subparsers are made by type(parser), so they are _Parsers too (one-line errors).
    subparsers = cast("argparse._SubParsersAction[argparse.ArgumentParser]",
                      parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    # One line per subcommand, in the order `chainrule --help` lists them.
    _add_demo_parser(subparsers)
    _add_train_parser(subparsers)
    _add_tour_parser(subparsers)
    _add_graph_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failed, 2 bad arguments, 130 interrupted)."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        code: int = args.func(args)
    except _UsageError as err:
        message = str(err).splitlines()[0]
        print(message if message.startswith("chainrule") else f"chainrule: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exit_:  # --help and --version end here, with code 0
        return exit_.code if isinstance(exit_.code, int) else EXIT_OK
    except KeyboardInterrupt:
        print("chainrule: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
