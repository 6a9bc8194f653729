"""The `chainrule` command (also `python -m chainrule`): demo, train, tour, graph. The only module that reads
argv or prints; the work is done by chainrule.train, .viz.plots, .seeds and .expr.

Each subcommand is an `_add_<name>_parser` function (its options) and a `_cmd_<name>` function (call the
library, print). Bad arguments raise `_UsageError` (one line on stderr, exit 2); a run that fails raises
`_Failed` (one line, exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

from chainrule import __version__  # the package is imported anyway, as chainrule.cli's parent

# The heavy imports (numpy, matplotlib, tqdm) wait inside the commands, so `chainrule --help` is instant.

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_PIPE = 0, 1, 2, 130, 141  # 141: killed by SIGPIPE
# Past these a run takes hours (or the memory of a laptop): a usage error says so at once instead.
MAX_PARAMETERS, MAX_SAMPLES = 100_000, 100_000
# What demo and train write: a folder holding nothing else was made by chainrule and may be written again.
OUTPUTS = ("decision_boundary.png", "training_curves.png", "model.json", "explorer.html")
_SubParsers = argparse._SubParsersAction  # argparse's type for what add_subparsers returns


class _UsageError(Exception):
    """Bad command-line arguments: one line on stderr, exit code 2."""


class _Failed(Exception):
    """The command could not do its job (training diverged, a file can't be written): one line, exit 1."""


def _refuse(checks: list[tuple[object, str]]) -> None:
    """Raise the usage error of the first (bad, message) whose `bad` is true."""
    for bad, message in checks:
        if bad:
            raise _UsageError(message)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # An expression may start with a minus (`graph "-x*y"`): a word with one leading '-' that is not
        # one of our options is an argument, as argparse already treats "-1".
        self._negative_number_matcher = re.compile(r"^-[^-]")

    # argparse's default prints the whole usage block and calls sys.exit(2); we want one line, and main()
    # (not argparse) to decide how the process ends, so tests can call main() in-process.
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: error: {message}")


def _int_in(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.strip().isdigit() or not low <= int(text) < high:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return int(text)

    return parse


_positive_int = _int_in(1, 10**18, "a positive integer")
_seed = _int_in(0, 2**32, "an integer in [0, 2**32)")  # NumPy's RandomState takes exactly these


def _positive_float(strict: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            x = float("nan")  # refused below, as are nan and inf typed in
        if not (x > 0 if strict else x >= 0) or x == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a finite number {'>' if strict else '>='} 0, "
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


# ----- demo and train: fit a classifier, print its progress, write its pictures ------------------------


def _add_training_options(p: argparse.ArgumentParser, steps_help: str) -> None:
    p.add_argument("--out", type=Path, default=Path("chainrule-out"), metavar="DIR",
                   help="folder for the PNGs and the model JSON (default: chainrule-out)")
    p.add_argument("--force", action="store_true",
                   help="write into --out even if it holds files chainrule did not write")
    p.add_argument("--explorer", action="store_true",
                   help="also write explorer.html: backprop through the trained model on the training point "
                        "it is least sure of, by neuron")
    p.add_argument("--steps", type=_positive_int, default=100, help=steps_help)
    # Not argparse choices: the modes are chainrule.train.MODES, and importing it (NumPy) would slow --help.
    p.add_argument("--mode", default="batched",
                   help="batched: the whole dataset per op, on NumPy arrays (fast, the default); eager: one "
                        "scalar graph per example, as micrograd; compiled: the batched graph captured once "
                        "by chainrule.compile and replayed (fastest); see chainrule.train.MODES")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")


def _check_training_options(args: argparse.Namespace) -> None:
    from chainrule.train import MODES

    if args.mode not in MODES:
        raise _UsageError(f"--mode: choose one of {', '.join(MODES)}, got {args.mode!r}")
    out, force = args.out, args.force
    # Checked before training, so that a run of minutes doesn't end in "can't write there".
    if out.exists() and not out.is_dir():
        raise _UsageError(f"--out {out} exists and is not a folder")
    foreign = sorted(set(os.listdir(out)) - set(OUTPUTS)) if out.is_dir() else []
    if foreign and not force:
        raise _UsageError(f"--out {out} holds files chainrule did not write ({', '.join(foreign[:3])}"
                          f"{', ...' if len(foreign) > 3 else ''}): pick an empty or new folder, or --force")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _UsageError(f"--out {out}: cannot create the folder ({err.strerror})") from None
    if not os.access(out, os.W_OK):
        raise _UsageError(f"--out {out}: the folder is not writable")


def _reporter(steps: int, show: bool) -> tuple[Callable[[int, float, float], None], Callable[[], None]]:
    """fit's on_step: micrograd's log line every 10 steps on stdout, and progress on stderr (a tqdm bar on a
    terminal; in a pipe or a log, a plain line every 10%, never a \\r redraw). Returns (on_step, close)."""
    from tqdm import tqdm

    bar = tqdm(total=steps, desc="training", unit="step", file=sys.stderr) if show and sys.stderr.isatty() \
        else None

    def on_step(k: int, loss: float, accuracy: float) -> None:
        if k % 10 == 0 or k == steps - 1:  # micrograd's full-precision loss, to compare with its log
            line = f"step {k} loss {loss}, accuracy {accuracy * 100:.1f}%"
            if bar:
                bar.write(line, file=sys.stdout)
            else:
                print(line, flush=True)
        if bar:
            bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.0%}", refresh=False)
            bar.update()
        elif show and (k + 1) * 10 // steps > k * 10 // steps:
            print(f"training: {k + 1}/{steps} steps ({(k + 1) * 100 // steps}%)", file=sys.stderr, flush=True)

    return on_step, (bar.close if bar else lambda: None)


@contextlib.contextmanager
def _cyclic_gc_off() -> Iterator[None]:
    """CPython's cyclic collector off while training, as it was found after. chainrule's graphs have no
    reference cycles and are freed by reference counting, so the collector finds nothing in them, but it
    rescans the growing live graph while a step builds it. The library never does this to its caller (the
    CLI is the application); the pictures drawn after training (matplotlib makes cycles) run with it on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _run(model: Any, X: Any, labels: Any, loss: str, optimizer: Any, args: argparse.Namespace,
         title: str) -> int:
    from chainrule.serialize import save
    from chainrule.train import Diverged, fit
    from chainrule.viz import GraphTooLargeError
    from chainrule.viz.plots import decision_boundary, explore_training_point, training_curves

    print(f"{model} on {len(labels)} points, {args.mode} mode")
    on_step, close = _reporter(args.steps, show=not args.no_progress)
    start = time.perf_counter()
    try:
        with _cyclic_gc_off():
            history = fit(model, X, labels, loss=loss, optimizer=optimizer, steps=args.steps, mode=args.mode,
                          l2=args.l2, on_step=on_step)
    except Diverged as err:
        raise _Failed(f"{err}; try a smaller --lr") from None
    finally:
        close()
    print(f"trained {args.steps} steps in {time.perf_counter() - start:.1f} s: final loss "
          f"{history.loss[-1]:.4f}, accuracy {history.accuracy[-1]:.1%}")
    out: Path = args.out
    paths = [out / name for name in OUTPUTS[: 4 if args.explorer else 3]]
    try:
        accuracy = f"{history.accuracy[-1]:.0%} training accuracy"
        decision_boundary(model, X, labels, title=f"{title}: {accuracy}").savefig(paths[0])
        training_curves(history, title=title).savefig(paths[1])
        save(model, paths[2])
        if args.explorer:
            explore_training_point(model, X, labels, loss, paths[3])
    except OSError as err:
        raise _Failed(f"cannot write to {out}: {err.strerror or err}") from None
    except GraphTooLargeError as err:
        raise _Failed(f"{paths[3].name}: {err}") from None
    for p in paths:
        print(f"wrote {p}")
    return EXIT_OK


def _add_demo_parser(subparsers: _SubParsers[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo", help="reproduce micrograd's demo.ipynb (moons, MLP(2, [16, 16, 1]), 100 SGD steps)",
        description="Reproduce micrograd's demo.ipynb: make_moons(100, noise=0.1), MLP(2, [16, 16, 1]) "
                    "seeded with 1337, ReLU hidden layers, a linear output, hinge loss + 1e-4·Σp², SGD "
                    "with lr = 1.0 - 0.9·k/100. micrograd's published log: step 0 loss 0.8958 (50%%), "
                    "step 99 loss 0.0110 (100%%).")
    _add_training_options(p, "training steps, at most 100 (default 100, the published run)")
    # The demo is `train` with micrograd's settings. The notebook seeds NumPy's and Python's global generators
    # with 1337; train's own generators with that seed draw the same numbers and leave the global ones alone.
    p.set_defaults(func=_cmd_demo, dataset="moons", samples=100, noise=0.1, classes=2, hidden=[16, 16],
                   activation="relu", loss="hinge", optimizer="sgd", lr=1.0, l2=1e-4, seed=1337,
                   schedule=100, title="micrograd's demo: moons")


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.steps > 100:
        raise _UsageError("--steps: the demo's learning-rate schedule is defined for at most 100 steps "
                          "(use `chainrule train` for longer runs)")
    return _cmd_train(args)


def _add_train_parser(subparsers: _SubParsers[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "train", help="train an MLP on a toy dataset of your choice",
        description="Full-batch training of an MLP on a 2-D toy dataset, with the demo's outputs. With the "
                    "defaults it is the demo. The learning rate decays linearly to a tenth of --lr.")
    # Not argparse choices, as --mode: the names are chainrule.data.DATASETS (importing it loads NumPy).
    p.add_argument("--dataset", default="moons", metavar="NAME",
                   help="moons (default), circles, blobs, xor or spirals (chainrule.data.make_dataset)")
    p.add_argument("--samples", type=_positive_int, default=100, help="number of points (default 100)")
    p.add_argument("--noise", type=_positive_float(strict=False), default=None,
                   help="dataset noise (blobs: cluster std); default: moons 0.1, circles 0.1, blobs 1.0, "
                        "xor 0.1, spirals 0.02 (chainrule.data.DEFAULT_NOISE)")
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
    p.add_argument("--lr", type=_positive_float(strict=True), default=None,
                   help="starting learning rate (default per loss: sgd 1.0, mse 0.1; adam 0.05)")
    p.add_argument("--l2", type=_positive_float(strict=False), default=1e-4,
                   help="L2 penalty alpha·Σp² (default 1e-4)")
    p.add_argument("--seed", type=_seed, default=1337, help="seeds the data and the weights (default 1337)")
    _add_training_options(p, "training steps (default 100)")
    p.set_defaults(func=_cmd_train, schedule=None, title=None)  # the rate decays over --steps


def _cmd_train(args: argparse.Namespace) -> int:
    from chainrule.data import make_dataset
    from chainrule.nn import MLP
    from chainrule.train import default_optimizer

    loss = args.loss or ("hinge" if args.classes == 2 else "ce")
    sizes = [2, *args.hidden, args.classes if loss == "ce" else 1]
    n_params = sum((nin + 1) * nout for nin, nout in itertools.pairwise(sizes))
    _refuse([
        (args.samples > MAX_SAMPLES, f"--samples: at most {MAX_SAMPLES:,} points, got {args.samples:,}"),
        (n_params > MAX_PARAMETERS, f"--hidden: {n_params:,} parameters is more than this scalar engine "
                                    f"trains in reasonable time (at most {MAX_PARAMETERS:,})"),
    ])
    try:  # it checks the name, --classes for that dataset, one point per class; a seed leaves NumPy's alone
        X, labels = make_dataset(args.dataset, args.samples, noise=args.noise, n_classes=args.classes,
                                 random_state=args.seed)
    except ValueError as err:
        raise _UsageError(str(err)) from None
    if args.classes > 2 and loss != "ce":
        raise _UsageError(f"--loss {loss} is for 2 classes; use --loss ce for more")
    _check_training_options(args)
    model = MLP(2, sizes[1:], args.activation, "linear", bias_init="zero", rng=random.Random(args.seed))
    optimizer = default_optimizer(model, loss, args.optimizer, args.schedule or args.steps, args.lr)
    title = args.title or f"{args.dataset}, {loss} loss, {args.optimizer}"
    return _run(model, X, labels, loss, optimizer, args, title)


# ----- tour: the seeds' examples ----------------------------------------------------------------------


def _add_tour_parser(subparsers: _SubParsers[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "tour", help="walk through the seeds' worked examples, gradients checked numerically",
        description="The worked examples learners meet first (chainrule.seeds): L = (a*b + c)*f, the tanh "
                    "neuron, b = a + a, and a variable used twice. For each: the values, backward()'s "
                    "gradients, and the same gradients by finite differences (chainrule.gradcheck).")
    p.set_defaults(func=_cmd_tour)


def _cmd_tour(args: argparse.Namespace) -> int:
    from chainrule.seeds import EXAMPLES

    checks = [example.check() for example in EXAMPLES]
    for number, (example, check) in enumerate(zip(EXAMPLES, checks, strict=True), 1):
        width = max(4, *(len(row.label) for row in check.rows))
        print(f"{number}. {example.title}\n  {'node':<{width}} {'data':>11} {'grad (backward)':>16} "
              f"{'finite diff.':>13}")
        for r in check.rows:
            fd = "" if r.finite_difference is None else f"{r.finite_difference:13.6f}"
            print(f"  {r.label:<{width}} {r.data:11.6f} {r.grad:16.6f} {fd:>13}")
        print(f"  gradcheck FAILED: {check.gradcheck_failure}" if check.gradcheck_failure else
              f"  gradcheck: backward agrees with finite differences for {', '.join(example.inputs)}")
        print(f"  check_graph: {check.graph}\n  {example.note}\n")
    ok = all(check.ok for check in checks)
    print("all gradients agree with finite differences" if ok else "SOME CHECKS FAILED")
    return EXIT_OK if ok else EXIT_FAILED


# ----- graph: an expression's gradients and drawing ---------------------------------------------------


def _add_graph_parser(subparsers: _SubParsers[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "graph", help="draw an expression's graph and its gradients",
        description="Build EXPR from Values labelled by their names, run backward, print each name's "
                    "gradient, and optionally draw the graph. EXPR may use numbers, names, + - * / **, "
                    "unary minus, parentheses and tanh exp log relu sigmoid; it is parsed, never eval'd.",
        epilog='example: chainrule graph "tanh(x1*w1 + x2*w2 + b)" '
               "--at x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432 --params w1,w2,b --out neuron.html")
    p.add_argument("expr", help='the expression, e.g. "tanh(x1*w1 + b)" or "-x*y"')
    p.add_argument("--at", default="", metavar="NAME=VALUE,...",
                   help="a value for every name in EXPR, e.g. x1=2,w1=-3")
    p.add_argument("--out", type=Path, metavar="PATH",
                   help="write the graph: .html (step-through explorer), .svg or .png (these two need "
                        "Graphviz's dot program; without it the .html is written instead)")
    p.add_argument("--params", default="", metavar="NAME,...",
                   help="names to colour as parameters (the others are inputs)")
    p.add_argument("--steps", action="store_true", help="also print backward one edge at a time")
    p.set_defaults(func=_cmd_graph)


def _check_writable(path: Path) -> None:
    """Open `path` for appending (changes nothing) and remove it again if it did not exist."""
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as err:
        raise _UsageError(f"cannot write --out {path}: {err.strerror or err}") from None
    if not existed:
        path.unlink()


def _cmd_graph(args: argparse.Namespace) -> int:
    import warnings

    from chainrule.engine import topological_order
    from chainrule.expr import ExprError, build, parse, parse_assignments
    from chainrule.viz import MAX_NODES, GraphTooLargeError, GraphvizMissingWarning, backward_steps, render
    from chainrule.viz.render import FORMATS

    try:
        root, leaves = build(parse(args.expr), parse_assignments(args.at) if args.at.strip() else {})
    except ExprError as err:
        raise _UsageError(str(err)) from None
    params = [n.strip() for n in args.params.split(",") if n.strip()]
    unknown = [n for n in params if n not in leaves]
    out: Path | None = args.out
    # Everything that can go wrong is checked before any gradient is printed.
    _refuse([
        (unknown, f"--params names not in the expression: {', '.join(unknown)}"),
        (out and out.suffix.lower() not in FORMATS,
         f"cannot tell the format of {str(out)!r}: use one of {', '.join(FORMATS)}"),
        (out and not out.parent.is_dir(), f"no such folder for --out: {str(out and out.parent)!r}"),
        (out and len(topological_order(root)) > MAX_NODES,
         f"--out: the graph has more than {MAX_NODES} nodes, too many to draw"),
    ])
    if out:
        _check_writable(out)

    root.backward()
    width = max((len(n) for n in leaves), default=1)
    print(f"{args.expr.strip()} = {root.data:.4f}")
    for name, leaf in leaves.items():
        print(f"  dL/d{name:<{width}} = {leaf.grad: .4f}")
    if args.steps and not root.parents:
        print(f"{args.expr.strip()} is a leaf: backward has no edges to step through")
    elif args.steps:
        print("backward, one edge at a time (grad(input) += local × upstream):")
        for step in backward_steps(root):
            print(step)
    if out:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", GraphvizMissingWarning)
                written = render(root, out, params=[leaves[n] for n in params], title=args.expr.strip(),
                                 inputs=[v for n, v in leaves.items() if n not in params])
        except (ValueError, GraphTooLargeError, OSError) as err:
            raise _Failed(str(err).splitlines()[0]) from None
        for w in caught:
            if issubclass(w.category, GraphvizMissingWarning):
                print(f"note: {w.message}", file=sys.stderr)
        print(f"wrote {written}")
    return EXIT_OK


# ----- main -------------------------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="chainrule", description="A scalar autograd engine to learn backpropagation with.")
    parser.add_argument("--version", action="version", version=f"chainrule {__version__}")
    # Subparsers are made by type(parser), so they are _Parsers too (one-line errors).
    subparsers = cast("_SubParsers[argparse.ArgumentParser]",
                      parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    for add in (_add_demo_parser, _add_train_parser, _add_tour_parser, _add_graph_parser):  # --help's order
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failed, 2 bad arguments, 130 interrupted,
    141 the reader of our output went away)."""
    prog = "chainrule"
    try:
        args = _build_parser().parse_args(argv)
        prog = f"chainrule {args.command}"
        code: int = args.func(args)
        sys.stdout.flush()  # so that a closed pipe shows up here, not in Python's flush at exit
        return code
    except (_UsageError, _Failed) as err:
        message = str(err).splitlines()[0]
        print(message if message.startswith("chainrule") else f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, _UsageError) else EXIT_FAILED
    except SystemExit as exit_:  # --help and --version end here, with code 0
        return exit_.code if isinstance(exit_.code, int) else EXIT_OK
    except KeyboardInterrupt:
        print("chainrule: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `chainrule demo | head -2`: the reader has gone. Stop quietly, as Unix tools do; Python's last
        # flush of stdout at exit would fail again, so stdout becomes /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE


if __name__ == "__main__":
    sys.exit(main())
