"""The `chainrule` command (also `python -m chainrule`): demo, train, names, tour, graph. The only module
that reads argv or prints; the work is done by chainrule.train, .makemore, .viz.plots, .seeds, .expr and
.viz.render.

Each subcommand is an `_add_<name>_parser` function (its options) and a `_cmd_<name>` function (call the
library, print). Bad arguments raise `_UsageError`, the library's ValueError on them too (`_refused`): one
line on stderr, exit 2. A run that fails raises `_Failed` (one line, exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

from chainrule import __version__  # the package is imported anyway, as chainrule.cli's parent

# The heavy imports (numpy, matplotlib, tqdm) wait inside the commands, so `chainrule --help` is instant.

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_PIPE = 0, 1, 2, 130, 141  # 141: killed by SIGPIPE
# Past this a run takes hours (or a laptop's memory): refused at once (the parameters: train.classifier).
MAX_SAMPLES = 100_000
_SubParsers = argparse._SubParsersAction  # argparse's type for what add_subparsers returns
T = TypeVar("T")


class _UsageError(Exception):
    """Bad command-line arguments: one line on stderr, exit code 2."""


class _Failed(Exception):
    """The command could not do its job (training diverged, a file can't be written): one line, exit 1."""


@contextlib.contextmanager
def _refused(prefix: str = "") -> Iterator[None]:
    """The library's ValueError on what the user typed is a usage error: `prefix` (an option), its message."""
    try:
        yield
    except ValueError as err:
        raise _UsageError(f"{prefix}{err}") from None


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


def _typed(convert: Callable[[str], T], ok: Callable[[T], bool], what: str) -> Callable[[str], T]:
    """An argparse type: `convert` the text, refused unless `ok` (argparse makes that a usage error)."""
    def parse(text: str) -> T:
        with contextlib.suppress(ValueError):  # int("1.5"), float("x"): refused below, as out of range
            value = convert(text.strip())
            if ok(value):
                return value
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")

    return parse


_positive_int = _typed(int, lambda n: n >= 1, "a positive integer")
_demo_steps = _typed(int, lambda n: 1 <= n <= 100, "1 to 100 steps, as the demo's learning-rate schedule "
                                                   "is defined for 100 (`chainrule train` runs longer)")
_samples = _typed(int, lambda n: 1 <= n <= MAX_SAMPLES, f"a number of points in [1, {MAX_SAMPLES:,}]")
_seed = _typed(int, lambda n: 0 <= n < 2**32, "an integer in [0, 2**32)")  # NumPy's RandomState's seeds
# float() reads "nan" and "inf" too: the finite check refuses them, as it refuses what they'd do to a run.
_positive_float = _typed(float, lambda x: 0 < x < math.inf, "a finite number > 0")
_non_negative = _typed(float, lambda x: 0 <= x < math.inf, "a finite number >= 0")
_layer_sizes = _typed(lambda text: [int(n) for n in text.split(",")] if text else [],  # '': no hidden layer
                      lambda sizes: all(n > 0 for n in sizes),
                      "comma-separated positive layer sizes like 16,16")


# ----- demo and train: fit a classifier, print its progress, write its pictures ------------------------
def _add_training_options(p: argparse.ArgumentParser, steps: Callable[[str], int], steps_help: str) -> None:
    p.add_argument("--out", type=Path, default=Path("chainrule-out"), metavar="DIR",
                   help="folder for the PNGs and the model JSON (default: chainrule-out)")
    p.add_argument("--force", action="store_true",
                   help="write into --out even if it holds files chainrule did not write")
    p.add_argument("--explorer", action="store_true",
                   help="also write explorer.html: backprop through the trained model on the training point "
                        "it is least sure of, by neuron")
    p.add_argument("--steps", type=steps, default=100, help=steps_help)
    # Not argparse choices: the modes are chainrule.train.MODES, and importing it (NumPy) would slow --help.
    p.add_argument("--mode", default="batched",
                   help="batched: the whole dataset per op, on NumPy arrays (fast, the default); eager: one "
                        "scalar graph per example, as micrograd; compiled: the batched graph captured once "
                        "by chainrule.compile and replayed (fastest); see chainrule.train.MODES")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    _add_health_option(p)


def _add_health_option(p: argparse.ArgumentParser) -> None:  # train's, demo's and names'
    p.add_argument("--health", action="store_true",
                   help="also write health.png: makemore's pictures of the network's health at ~50 steps "
                        "(activations, saturated tanh or dead relu units, weight gradients, update-to-data "
                        "ratios; chainrule.health)")


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


def _add_demo_parser(subparsers: _SubParsers[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo", help="reproduce micrograd's demo.ipynb (moons, MLP(2, [16, 16, 1]), 100 SGD steps)",
        description="Reproduce micrograd's demo.ipynb: make_moons(100, noise=0.1), MLP(2, [16, 16, 1]) "
                    "seeded with 1337, ReLU hidden layers, a linear output, hinge loss + 1e-4·Σp², SGD "
                    "with lr = 1.0 - 0.9·k/100. micrograd's published log: step 0 loss 0.8958 (50%%), "
                    "step 99 loss 0.0110 (100%%).")
    _add_training_options(p, _demo_steps, "training steps, at most 100 (default 100, the published run)")
    # The demo is `train` with micrograd's settings. The notebook seeds NumPy's and Python's global generators
    # with 1337; train's own generators with that seed draw the same numbers and leave the global ones alone.
    p.set_defaults(func=_cmd_train, dataset="moons", samples=100, noise=0.1, classes=2, hidden=[16, 16],
                   activation="relu", loss="hinge", optimizer="sgd", lr=1.0, l2=1e-4, seed=1337,
                   schedule=100, title="micrograd's demo: moons")


def _add_train_parser(subparsers: _SubParsers[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "train", help="train an MLP on a toy dataset of your choice",
        description="Full-batch training of an MLP on a 2-D toy dataset, with the demo's outputs. With the "
                    "defaults it is the demo. The learning rate decays linearly to a tenth of --lr.")
    # Not argparse choices, as --mode: the names are chainrule.data.DATASETS (importing it loads NumPy).
    p.add_argument("--dataset", default="moons", metavar="NAME",
                   help="moons (default), circles, blobs, xor or spirals (chainrule.data.make_dataset)")
    p.add_argument("--samples", type=_samples, default=100, help="number of points (default 100)")
    p.add_argument("--noise", type=_non_negative, default=None,
                   help="dataset noise (blobs: cluster std); default: moons 0.1, circles 0.1, blobs 1.0, "
                        "xor 0.1, spirals 0.02 (chainrule.data.DEFAULT_NOISE)")
    p.add_argument("--classes", type=_positive_int, default=2, help="classes (blobs, spirals; default 2)")
    p.add_argument("--hidden", type=_layer_sizes, default=[16, 16], metavar="SIZES",
                   help="hidden layer sizes, comma-separated (default 16,16)")
    p.add_argument("--activation", choices=["relu", "tanh", "sigmoid"], default="relu",
                   help="hidden activation (default relu); the output layer is linear")
    p.add_argument("--loss", choices=["hinge", "mse", "bce", "ce"], default=None,
                   help="hinge (default for 2 classes), mse, bce (from logits), ce (softmax cross-entropy, "
                        "the default for 3+ classes)")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="starting learning rate (default per loss: sgd 1.0, mse 0.1; adam 0.05)")
    p.add_argument("--l2", type=_non_negative, default=1e-4, help="L2 penalty alpha·Σp² (default 1e-4)")
    p.add_argument("--seed", type=_seed, default=1337, help="seeds the data and the weights (default 1337)")
    _add_training_options(p, _positive_int, "training steps (default 100)")
    p.set_defaults(func=_cmd_train, schedule=None, title=None)  # the rate decays over --steps


def _cmd_train(args: argparse.Namespace) -> int:  # demo's too, with micrograd's settings as defaults
    from chainrule.data import make_dataset
    from chainrule.train import MODES, Diverged, classifier, default_optimizer, fit
    from chainrule.viz import GraphTooLargeError
    from chainrule.viz.plots import FolderInUseError, prepare_folder, save_run

    if args.mode not in MODES:
        raise _UsageError(f"--mode: choose one of {', '.join(MODES)}, got {args.mode!r}")
    # The library refuses an unknown dataset, --classes it can't make, a class without a point, a binary
    # loss for 3+ classes, too big a model. The data has its own generator: NumPy's global one is left alone.
    with _refused():
        X, labels = make_dataset(args.dataset, args.samples, noise=args.noise, n_classes=args.classes,
                                 random_state=args.seed)
        model, loss = classifier(args.classes, args.hidden, loss=args.loss, activation=args.activation,
                                 seed=args.seed)
    with _refused("--out "):
        try:
            prepare_folder(args.out, force=args.force)
        except FolderInUseError as err:  # the library's remedy is force=True; ours is spelled --force
            raise ValueError(f"{err}: pick an empty or new folder, or --force") from None
    optimizer = default_optimizer(model, loss, args.optimizer, args.schedule or args.steps, args.lr)
    print(f"{model} on {len(labels)} points, {args.mode} mode")
    on_step, close = _reporter(args.steps, show=not args.no_progress)
    # The cyclic collector finds nothing in chainrule's graphs (no cycles) but rescans them as they grow:
    # off while training, as only an application may do (never the library); on for matplotlib's pictures.
    start, gc_was_enabled = time.perf_counter(), gc.isenabled()
    gc.disable()
    try:
        history = fit(model, X, labels, loss=loss, optimizer=optimizer, steps=args.steps, mode=args.mode,
                      l2=args.l2, on_step=on_step, health=args.health)
    except Diverged as err:
        raise _Failed(f"{err}; try a smaller --lr") from None
    finally:
        close()
        if gc_was_enabled:  # as it was found, also when training failed
            gc.enable()
    print(f"trained {args.steps} steps in {time.perf_counter() - start:.1f} s: final loss "
          f"{history.loss[-1]:.4f}, accuracy {history.accuracy[-1]:.1%}")
    try:
        written = save_run(model, X, labels, history, args.out, loss=loss, explorer=args.explorer,
                           title=args.title or f"{args.dataset}, {loss} loss, {args.optimizer}")
    except OSError as err:
        raise _Failed(f"cannot write to {args.out}: {err.strerror or err}") from None
    except GraphTooLargeError as err:
        raise _Failed(f"explorer.html: {err}") from None
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


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
    p.add_argument("--exercise", action="store_true",
                   help="with --out PAGE.html: an exercise page that hides every grad and asks for each one, "
                        "backward from the output, checking the answers")
    p.add_argument("--forward", metavar="NAME",
                   help="also print forward mode for d/dNAME, one node at a time (ṫ = Σ local × ṫ(input)), "
                        "and the multiply-adds each mode needs for the whole gradient; with --out PAGE.html "
                        "the page steps forward mode too")
    p.set_defaults(func=_cmd_graph)


def _cmd_graph(args: argparse.Namespace) -> int:
    from chainrule.expr import EvalError, gradients
    from chainrule.viz import GraphTooLargeError, backward_steps, check_target, render
    from chainrule.viz.steps import why_not_finite

    # Everything that can go wrong is checked before any gradient is printed.
    with _refused():
        try:
            root, leaves = gradients(args.expr, args.at)
        except EvalError as err:  # well formed, but the engine refused the arithmetic: in its words, exit 1
            raise _Failed(str(err)) from None
    params = [n.strip() for n in args.params.split(",") if n.strip()]
    unknown = [n for n in params if n not in leaves]
    if unknown:
        raise _UsageError(f"--params names not in the expression: {', '.join(unknown)}")
    if args.forward is not None and args.forward not in leaves:
        names = ", ".join(leaves)
        raise _UsageError(f"--forward: no name {args.forward!r} in the expression (names: {names})")
    if args.exercise and (args.out is None or args.out.suffix.lower() != ".html"):
        raise _UsageError("--exercise needs --out PAGE.html (the exercise is the HTML explorer)")
    if args.exercise and args.forward is not None:
        raise _UsageError("--exercise and --forward are two pages: choose one")
    if args.exercise and args.steps:
        raise _UsageError("--exercise hides the grads that --steps prints: choose one")
    if args.out:
        with _refused("--out: "):
            check_target(root, args.out)

    width = max((len(n) for n in leaves), default=1)
    print(f"{args.expr.strip()} = {root.data:.4f}")
    if args.exercise:  # the answers stay on the page, where they are checked: none printed here
        print(f"the grads of {', '.join(leaves)} are the exercise: fill them in on the page")
    for name, leaf in () if args.exercise else leaves.items():
        print(f"  dL/d{name:<{width}} = {leaf.grad: .4f}")
    reasons = {} if all(math.isfinite(leaf.grad) for leaf in leaves.values()) else why_not_finite(root)
    by_reason: dict[str, list[str]] = {}
    for name, leaf in () if args.exercise else leaves.items():
        if id(leaf) in reasons:
            by_reason.setdefault(reasons[id(leaf)], []).append(f"dL/d{name}")
    for reason, grads in by_reason.items():
        print(f"note: {', '.join(grads)} = {reason}", file=sys.stderr)
    if args.steps and not root.parents:
        print(f"{args.expr.strip()} is a leaf: backward has no edges to step through")
    elif args.steps:
        print("backward, one edge at a time (grad(input) += local × upstream):")
        for step in backward_steps(root):
            print(step)
    if args.forward is not None:
        _print_forward(args.expr.strip(), root, leaves, args.forward)
    if args.out:
        forward_page = args.forward is not None and args.out.suffix.lower() == ".html"
        try:
            written = render(root, args.out, params=[leaves[n] for n in params], title=args.expr.strip(),
                             inputs=[v for n, v in leaves.items() if n not in params],
                             on_fallback=lambda note: print(f"note: {note}", file=sys.stderr),
                             exercise=args.exercise,
                             forward=leaves[args.forward] if forward_page else None)
        except (ValueError, GraphTooLargeError, OSError) as err:
            raise _Failed(str(err).splitlines()[0]) from None
        print(f"wrote {written}")
    return EXIT_OK


def _print_forward(expr: str, root: Any, leaves: dict[str, Any], name: str) -> None:
    """graph --forward NAME: forward mode's steps for d/dNAME, then what each mode costs for every name."""
    from chainrule.forward import op_counts
    from chainrule.viz import forward_steps

    if not root.parents:
        print(f"{expr} is a leaf: forward mode has no edges to step through")
        return
    print(f"forward mode for d/d{name}, one node at a time (ṫ({name}) = 1, the other names 0; "
          "ṫ = Σ local × ṫ(input)):")
    steps = forward_steps(root, leaves[name], list(leaves.values()))
    for step in steps:
        print(step)
    print(f"  d({expr})/d{name} = {steps[-1].tangent:.4f}, as backward's dL/d{name}")
    n, per_pass, forward, reverse = op_counts(root, list(leaves.values()))
    print(f"the whole gradient ({n} names): forward mode {n} passes × {per_pass} = {forward} multiply-adds, "
          f"reverse mode 1 pass × {reverse} = {reverse}")


# ----- names: the character models of makemore and microgpt -------------------------------------------
_temperature = _typed(float, lambda x: 0 < x < math.inf, "a temperature > 0 (1 samples the model as it is, "
                                                        "lower is more conservative)")


def _add_names_parser(subparsers: _SubParsers[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "names", help="train a character model of names (bigram, MLP, GPT) and sample new names",
        description="Train makemore's bigram or MLP, or microgpt's GPT, on the 32,033 names shipped with "
                    "chainrule (80/10/10 split, seeded), print samples, write loss.png, embeddings.png, "
                    "attention.png (GPT) and model.json into --out. --preset microgpt runs microgpt's exact "
                    "setup (its seed, order of draws, Adam, 1000 steps of one name): its losses, step by "
                    "step. --load FILE samples from a saved model instead of training.")
    p.add_argument("--preset", choices=["microgpt"], default=None,
                   help="microgpt: its model and seed, eager, one name per step, temperature 0.5")
    p.add_argument("--model", default=None, metavar="KIND", help="bigram, mlp or gpt (default gpt)")
    p.add_argument("--steps", type=_positive_int, default=None, help="training steps (default per model)")
    p.add_argument("--batch", type=_positive_int, default=None,
                   help="examples per step: contexts (bigram, mlp) or names of one length (gpt)")
    p.add_argument("--block", type=int, default=None,
                   help="context length: mlp's characters read (default 3), gpt's block size (default 16)")
    p.add_argument("--mode", default=None, help="eager, batched or compiled (default per model)")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default=None, help="default adam")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="starting learning rate, decaying linearly to 0 (default per model)")
    p.add_argument("--seed", type=_seed, default=42, help="seeds the split, the weights, batches, samples")
    p.add_argument("--sample", type=int, default=None, metavar="K", help="names to sample (default 10)")
    p.add_argument("--temperature", type=_temperature, default=None, help="sampling temperature (default 1)")
    p.add_argument("--eval-every", type=int, default=None, metavar="N",
                   help="val loss every N steps (default: 10 times per run; 0: only at the end)")
    p.add_argument("--load", type=Path, default=None, metavar="FILE", help="sample from a saved model")
    p.add_argument("--log-json", type=Path, default=None, metavar="FILE",
                   help="one JSON object per line: each step (step, loss, seconds), each val_loss, the final")
    p.add_argument("--out", type=Path, default=Path("chainrule-out"), metavar="DIR",
                   help="folder for the PNGs and model.json (default: chainrule-out)")
    p.add_argument("--force", action="store_true", help="write into --out even if it holds other files")
    p.add_argument("--explorer", action="store_true",
                   help="also write explorer.html: backprop through one prediction (bigram, mlp)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    _add_health_option(p)
    p.set_defaults(func=_cmd_names)


def _names_settings(args: argparse.Namespace) -> tuple[str, Any]:
    """The model kind and its Settings: the defaults, the preset's, then what was typed."""
    from chainrule.makemore import DEFAULTS, MICROGPT, MODELS, MODES, Settings

    if args.preset and args.model not in (None, "gpt"):
        raise _UsageError(f"--preset microgpt trains a gpt, not --model {args.model}")
    kind = args.model or "gpt"
    if kind not in MODELS:
        raise _UsageError(f"--model: choose one of {', '.join(MODELS)}, got {kind!r}")
    base = MICROGPT if args.preset else DEFAULTS[kind]
    mode = args.mode or base.mode
    if mode not in MODES:
        raise _UsageError(f"--mode: choose one of {', '.join(MODES)}, got {mode!r}")
    if args.block is not None and (args.block < 1 or (kind == "bigram" and args.block != 1)):
        why = " (a bigram reads 1)" if kind == "bigram" else ""
        raise _UsageError(f"--block: expected a positive integer{why}, got {args.block}")
    if args.preset and args.block not in (None, 16):
        raise _UsageError("--preset microgpt has microgpt's block size, 16")
    for name in ("sample", "eval_every"):
        if getattr(args, name) is not None and getattr(args, name) < (0 if name == "eval_every" else 1):
            raise _UsageError(f"--{name.replace('_', '-')}: expected a "
                              f"{'number >= 0' if name == 'eval_every' else 'positive integer'}, "
                              f"got {getattr(args, name)}")
    return kind, Settings(args.steps or base.steps, args.batch or base.batch, mode,
                          args.optimizer or base.optimizer, args.lr or base.lr, base.betas)


def _names_model(kind: str, block: int | None, vocab: int, rng: Any) -> Any:
    from chainrule.lm import GPT, CharMLP
    from chainrule.makemore import new_model

    if block is None or kind == "bigram":
        return new_model(kind, vocab, rng)
    if kind == "mlp":
        return CharMLP(vocab, block_size=block, rng=rng)
    return GPT(vocab, block_size=block, rng=rng)


def _cmd_names(args: argparse.Namespace) -> int:
    import json
    import random

    from chainrule import data, makemore, text
    from chainrule.serialize import ModelFileError, load
    from chainrule.train import Diverged
    from chainrule.viz import GraphTooLargeError
    from chainrule.viz.plots import FolderInUseError, prepare_folder, save_names_run

    words = data.names()
    tok = text.CharTokenizer.from_words(words)
    train_words, val_words, _ = text.split(words, seed=args.seed)
    temperature = args.temperature or (0.5 if args.preset else 1.0)
    k_samples = args.sample or (20 if args.preset else 10)
    rng = random.Random(args.seed)
    if args.load is not None and args.health:
        raise _UsageError("--health watches a training run; --load trains nothing")
    if args.load is not None:
        try:
            model = load(args.load)
        except FileNotFoundError:
            raise _Failed(f"--load: no such file: {args.load}") from None
        except (ModelFileError, OSError) as err:
            raise _Failed(f"--load: {err}") from None
        if not isinstance(model, makemore.NamesModel):
            raise _Failed(f"--load: {args.load} holds {model!r}, not a model of names (bigram, mlp, gpt)")
        if model.vocab_size != tok.vocab_size:
            raise _Failed(f"--load: {args.load} reads {model.vocab_size} tokens, names have {tok.vocab_size}")
        print(f"{model} from {args.load}: val loss {makemore.evaluate(model, val_words, tok):.4f}")
        for i in range(k_samples):
            print(f"sample {i + 1:2d}: {makemore.sample(model, tok, rng, temperature)}")
        return EXIT_OK

    kind, settings = _names_settings(args)
    with _refused("--out "):
        try:
            prepare_folder(args.out, force=args.force)
        except FolderInUseError as err:
            raise ValueError(f"{err}: pick an empty or new folder, or --force") from None
    if args.explorer and kind == "gpt":
        raise _UsageError("--explorer draws one prediction of a bigram or mlp; a GPT step is too large")
    if args.preset:
        model, tok, train_words, optimizer, rng = makemore.microgpt(settings.steps)
        if (settings.optimizer, settings.lr) != (makemore.MICROGPT.optimizer, makemore.MICROGPT.lr):
            optimizer = makemore.new_optimizer(model, settings)
    else:
        model = _names_model(kind, args.block, tok.vocab_size, rng)
        optimizer = makemore.new_optimizer(model, settings)
    every = args.eval_every if args.eval_every is not None else max(1, settings.steps // 10)
    source = "microgpt's shuffled names" if args.preset else f"{len(train_words):,} training names"
    print(f"{model} on {source}, {settings.mode} mode, batch {settings.batch}, {settings.optimizer} "
          f"lr {settings.lr} for {settings.steps} steps")
    log = None
    if args.log_json is not None:
        try:
            log = args.log_json.open("w", encoding="utf-8")
        except OSError as err:
            raise _Failed(f"--log-json: cannot write {args.log_json}: {err.strerror or err}") from None

    def write(record: dict[str, Any]) -> None:
        if log is not None:
            log.write(json.dumps(record) + "\n")

    show, steps = not args.no_progress, settings.steps
    lines = 1 if args.preset else max(1, steps // 20)  # microgpt prints every step
    # Progress as `train` shows it: a tqdm bar on a terminal, a plain line every 10% in a pipe or a log.
    from tqdm import tqdm

    bar = tqdm(total=steps, desc="training", unit="step", file=sys.stderr) if show and sys.stderr.isatty() \
        else None

    def say(line: str) -> None:
        if bar:
            bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def on_step(k: int, loss: float, seconds: float) -> None:
        write({"step": k + 1, "loss": loss, "seconds": seconds})
        if k % lines == 0 or k == steps - 1:
            say(f"step {k + 1:4d} / {steps:4d} | loss {loss:.4f}")
        if bar:
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            bar.update()
        elif show and (k + 1) * 10 // steps > k * 10 // steps:
            print(f"training: {k + 1}/{steps} steps ({(k + 1) * 100 // steps}%)", file=sys.stderr,
                  flush=True)

    def on_eval(k: int, val: float) -> None:
        write({"step": k, "val_loss": val})
        say(f"step {k:4d} / {steps:4d} | val loss {val:.4f}")

    start, gc_was_enabled = time.perf_counter(), gc.isenabled()
    gc.disable()  # as `train`: the graphs have no cycles, the collector would only rescan them
    try:
        history = makemore.train(model, train_words, tok, steps=steps, batch=settings.batch,
                                 mode=settings.mode, optimizer=optimizer, rng=random.Random(args.seed + 1),
                                 val_words=val_words, eval_every=every, on_step=on_step, on_eval=on_eval,
                                 health=args.health)
    except Diverged as err:
        raise _Failed(f"{err}; try a smaller --lr") from None
    finally:
        if bar:
            bar.close()
        if gc_was_enabled:
            gc.enable()
    final = history.val[-1][1] if history.val else makemore.evaluate(model, val_words, tok)
    write({"val_loss": final})
    if log is not None:
        log.close()
    print(f"trained {steps} steps in {time.perf_counter() - start:.1f} s: val loss {final:.4f}")
    print(f"--- {k_samples} samples at temperature {temperature} ---")
    samples = [makemore.sample(model, tok, rng, temperature) for _ in range(k_samples)]
    for i, name in enumerate(samples):
        print(f"sample {i + 1:2d}: {name}")
    word = next((s for s in samples if s), "emma")
    try:
        written = save_names_run(model, tok, history, args.out, word=word, explorer=args.explorer,
                                 title=f"{kind}{' (microgpt)' if args.preset else ''}")
    except OSError as err:
        raise _Failed(f"cannot write to {args.out}: {err.strerror or err}") from None
    except GraphTooLargeError as err:
        raise _Failed(f"explorer.html: {err}") from None
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


# ----- main -------------------------------------------------------------------------------------------
def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="chainrule", description="A scalar autograd engine to learn backpropagation with.")
    parser.add_argument("-V", "--version", action="version", version=f"chainrule {__version__}")
    # Subparsers are made by type(parser), so they are _Parsers too (one-line errors).
    subparsers = cast("_SubParsers[argparse.ArgumentParser]",
                      parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    for add in (_add_demo_parser, _add_train_parser, _add_names_parser, _add_tour_parser,
                _add_graph_parser):  # --help's order
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
