"""The `chainrule` command. The only module that reads argv or prints.

NOTE: minimal version created by the viz helper for `chainrule graph`; the nn helper owns the rest
of this file. The `graph` subcommand lives between the "graph subcommand" markers below.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

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
    from chainrule.viz import GraphTooLargeError, GraphvizMissingWarning, backward_steps, render
    from chainrule.viz.expr import ExprError, build, parse, parse_assignments

    def fail(message: str) -> int:
        print(f"chainrule graph: error: {message}", file=sys.stderr)
        return 2

    try:
        tree = parse(args.expr)
        env = parse_assignments(args.at) if args.at.strip() else {}
        root, leaves = build(tree, env)
    except ExprError as err:
        return fail(str(err))
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chainrule", description="A scalar autograd engine.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_graph_parser(subparsers)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
