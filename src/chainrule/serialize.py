"""Save and load models as versioned, human-readable JSON.

A model file looks like this (one parameter per line, floats written so they read back exactly):

    {
      "format": "chainrule-model",
      "version": 1,
      "architecture": {"type": "MLP", "nin": 2, "nouts": [16, 16, 1], ...},
      "parameter_count": 337,
      "parameters": {"layers.0.neurons.0.w.0": 0.23550571390294128, ...}
    }

Saving is atomic: the text goes to a temporary file in the same folder, which then replaces the
target in one rename, so a crash mid-save leaves the previous file whole. Loading checks everything
before it touches a model.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from chainrule.nn import Module, build

FORMAT = "chainrule-model"
VERSION = 1
_KEYS = {"format", "version", "architecture", "parameter_count", "parameters"}


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file and the problem."""


def to_json(model: Module) -> str:
    state = model.state_dict()
    bad = [name for name, x in state.items() if not math.isfinite(x)]
    if bad:
        raise ValueError(f"cannot save a model with non-finite parameters: {', '.join(bad[:3])}")
    doc = {"format": FORMAT, "version": VERSION, "architecture": model.config(),
           "parameter_count": len(state), "parameters": state}
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def save(model: Module, path: str | os.PathLike[str]) -> Path:
    """Write `model` to `path` (atomically) and return the path."""
    target = Path(path)
    text = to_json(model)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600); a model file is not secret
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the real file
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity by default; a model file must not contain them.
    raise ModelFileError(f"non-finite number {name} in model file")


def from_json(text: str, into: Module | None = None, source: str = "model file") -> Module:
    """Build a model from `to_json` text, or fill `into` (whose architecture must match).

    Raises ModelFileError on any problem; `into` is unchanged in that case.
    """

    def fail(why: str) -> ModelFileError:
        return ModelFileError(f"{source}: {why}")

    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise fail(f"not valid JSON (truncated or corrupt?): {e}") from None
    except ModelFileError as e:
        raise fail(str(e)) from None
    if not isinstance(doc, dict):
        raise fail(f"expected a JSON object, found {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise fail(f"not a chainrule model (format {doc.get('format')!r}, expected {FORMAT!r})")
    version = doc.get("version")
    if version != VERSION or isinstance(version, bool):
        raise fail(f"unsupported version {version!r} (this chainrule reads version {VERSION})")
    if set(doc) != _KEYS:
        missing, extra = sorted(_KEYS - set(doc)), sorted(set(doc) - _KEYS)
        raise fail(f"missing fields {missing}, unexpected fields {extra}")
    arch = doc["architecture"]
    try:
        model = build(arch)
    except ValueError as e:
        raise fail(f"bad architecture: {e}") from None
    if into is not None:
        if arch != into.config():
            raise fail(f"architecture {arch} does not match the model's {into.config()}")
        model = into
    count, params = doc["parameter_count"], doc["parameters"]
    n = model.num_parameters()
    if isinstance(count, bool) or count != n:
        raise fail(f"parameter_count is {count!r} but the architecture has {n} parameters")
    if not isinstance(params, dict):
        raise fail(f"parameters must be an object of name -> number, found {type(params).__name__}")
    if len(params) != n:
        raise fail(f"{len(params)} parameter values for {n} parameters")
    try:
        model.load_state_dict(params)
    except ValueError as e:
        raise fail(str(e)) from None
    return model


def load(path: str | os.PathLike[str], into: Module | None = None) -> Module:
    """Read a model saved by `save`. With `into`, load the weights into that model instead.

    Raises ModelFileError (a ValueError) naming the file and the problem; the model is then untouched.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{p}: not a text file: {e}") from None
    return from_json(text, into=into, source=str(p))
