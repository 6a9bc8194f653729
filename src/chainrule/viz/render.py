"""`render(root, path)`: write a graph picture, its format chosen by the file's suffix.

`.svg` and `.png` need Graphviz's `dot` program. Learners without it get the HTML explorer
instead (it carries its own Graphviz, compiled to WebAssembly) and one warning line saying
so, rather than the `ExecutableNotFound` traceback every peer library shows.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path

import graphviz

from chainrule.engine import Value, topological_order
from chainrule.viz.dot import MAX_NODES, Group, draw_dot
from chainrule.viz.html import to_html

FORMATS = (".svg", ".png", ".html")


class GraphvizMissingWarning(UserWarning):
    """`dot` was not found, so an .html explorer was written instead of .svg/.png."""


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the format of {str(path)!r}: use one of {', '.join(FORMATS)}")
    return suffix


def check_target(root: Value, path: str | Path, *, max_nodes: int | None = MAX_NODES) -> Path:
    """Check that `render(root, path)` can write `path` before anything else is done or shown: a suffix it
    knows, a folder that exists, a graph of at most `max_nodes` nodes, and a file that opens for writing.
    The file is opened to append (which changes nothing) and removed again if it is new. Returns `path` as a
    Path; raises ValueError naming what is wrong.
    """
    path = Path(path)
    _suffix(path)
    if not path.parent.is_dir():
        raise ValueError(f"no such folder {str(path.parent)!r}")
    if max_nodes is not None and len(topological_order(root)) > max_nodes:
        raise ValueError(f"the graph has more than {max_nodes} nodes, too many to draw")
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as err:
        raise ValueError(f"cannot write {path}: {err.strerror or err}") from None
    if not existed:
        path.unlink()
    return path


def render(
    root: Value,
    path: str | Path,
    *,
    params: Iterable[Value] | None = None,
    inputs: Iterable[Value] | None = None,
    groups: Sequence[Group] = (),
    expand: Collection[str] = (),
    max_nodes: int | None = MAX_NODES,
    title: str | None = None,
    on_fallback: Callable[[str], object] | None = None,
    exercise: bool = False,
    forward: Value | str | None = None,
) -> Path:
    """Write `root`'s graph to `path` (.svg, .png or .html) and return the path actually written.

    Without Graphviz's `dot` on the PATH, .svg/.png fall back to `path` with suffix .html (or, when that
    file exists, the first free `name-1.html`, `name-2.html`, ...: it is never overwritten), with a
    `GraphvizMissingWarning`, or a call `on_fallback(message)` instead when it is given (a command line
    prints it, without touching the process's warning filters). Options as in `draw_dot`; `exercise`
    and `forward` (an .html only) as in `to_html`.
    """
    path = Path(path)
    suffix = _suffix(path)
    if (exercise or forward is not None) and suffix != ".html":
        raise ValueError(f"an {'exercise' if exercise else 'explorer of forward mode'} is an .html page, "
                         f"not {suffix}")
    params = list(params) if params is not None else None
    inputs = list(inputs) if inputs is not None else None
    options = {"params": params, "inputs": inputs, "groups": groups, "expand": expand,
               "max_nodes": max_nodes}
    if suffix != ".html":
        if shutil.which("dot") is not None:
            dot = draw_dot(root, legend=True, **options)  # type: ignore[arg-type]
            try:
                path.write_bytes(dot.pipe(format=suffix[1:]))
                return path
            except (graphviz.ExecutableNotFound, graphviz.CalledProcessError, OSError,
                    subprocess.SubprocessError) as err:
                reason = f"Graphviz's dot failed ({type(err).__name__})"
        else:
            reason = "Graphviz's dot program is not on the PATH"
        fallback = _free(path.with_suffix(".html"))  # asked for .svg: an .html there is not ours to lose
        message = (f"{reason}; wrote the HTML explorer {fallback} instead of {path} "
                   "(for .svg/.png install Graphviz: apt-get install graphviz, brew install graphviz, "
                   "or conda install graphviz)")
        if on_fallback is None:
            warnings.warn(message, GraphvizMissingWarning, stacklevel=2)
        else:
            on_fallback(message)
        path = fallback
    to_html(root, path, title=title or f"chainrule: {path.stem}", exercise=exercise, forward=forward,
            **options)  # type: ignore[arg-type]
    return path


def _free(path: Path) -> Path:
    """`path`, or `stem-1`, `stem-2`, ... with its suffix: the first name no file has."""
    candidate, k = path, 0
    while candidate.exists():
        k += 1
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
    return candidate
