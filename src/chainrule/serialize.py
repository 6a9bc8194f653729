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
target in one rename, so a crash mid-save leaves the previous file whole (and the next save of that
path sweeps up the temporary file a killed save left behind).

Loading treats the file as hostile: it reads only a regular file of at most MAX_BYTES, counts the
parameters the architecture asks for (at most MAX_PARAMETERS, and as many as the file holds) before
it builds anything, and turns every problem into a ModelFileError naming the file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

from chainrule import lm
from chainrule.nn import Module, build

FORMAT = "chainrule-model"
VERSION = 1
_KEYS = {"format", "version", "architecture", "parameter_count", "parameters"}

MAX_BYTES = 64 * 2**20  # 64 MiB: about 2.5 million parameters at ~25 bytes each
MAX_PARAMETERS = 10**7
# Any integer of up to 308 digits converts to a finite float; a longer one is no count or weight.
_MAX_DIGITS = 308


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file and the problem."""


def to_json(model: Module) -> str:
    if not isinstance(model, Module):
        raise TypeError(f"can only save a chainrule Module (an MLP, a GPT, ...), not {type(model).__name__}")
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
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot save {target}: there is no folder {target.parent}")
    for stale in _temp_files(target):
        if not _alive(stale):
            with contextlib.suppress(OSError):  # sweeping is a courtesy: never a reason not to save
                stale.unlink(missing_ok=True)
    tmp, fd = _create_temp(target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the real file
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _create_temp(target: Path) -> tuple[Path, int]:
    # `.model.json.<pid>-<random>.tmp`: the pid tells a later save whether the writer is still alive.
    # Mode 0o666 as open() would use, so the umask applies (mkstemp's 0600 would make it private).
    while True:
        tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue


def _temp_files(target: Path) -> list[Path]:
    prefix = f".{target.name}."
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []  # no folder to sweep: the save itself will report the problem
    return [target.parent / n for n in names if n.startswith(prefix) and n.endswith(".tmp")]


def _alive(tmp: Path) -> bool:
    """Whether the save that made `tmp` may still be writing it (so it must not be swept away)."""
    pid = tmp.name.removesuffix(".tmp").rsplit(".", 1)[-1].split("-")[0]
    if not pid.isdigit():
        return False  # not a name this module makes: left by an older save
    if int(pid) == os.getpid():
        return True  # another thread of this process, saving the same path right now
    if os.name != "posix":
        return True  # NOTE: on Windows os.kill(pid, 0) would send Ctrl-C; keep the file instead
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):  # OverflowError: digits no pid can have
        return False
    except OSError:
        return True  # it exists, but belongs to someone else
    return True


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity by default; a model file must not contain them.
    raise ModelFileError(f"non-finite number {name}")


def _parse_int(digits: str) -> int:
    # Python refuses to parse ints past 4,300 digits with a ValueError that suggests raising a global
    # limit; no count or weight needs a tenth of that, so refuse them here, with the file's name.
    if len(digits.lstrip("-")) > _MAX_DIGITS:
        raise ModelFileError(f"an integer of {len(digits.lstrip('-'))} digits")
    return int(digits)


def _decode(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
    except ModelFileError:
        raise
    except ValueError as e:  # json.JSONDecodeError, mostly
        raise ModelFileError(f"not valid JSON (truncated or corrupt?): {e}") from None
    except RecursionError:
        # json's parser recurses once per [ or {; a model file nests three deep.
        raise ModelFileError("JSON nested too deep for a model file") from None


def _is_count(x: object) -> TypeGuard[int]:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


def _parameter_count(arch: object) -> int | None:
    """How many parameters `build(arch)` would make, without making them; None if `arch` can't be built.

    Each neuron has a weight per input and a bias. Stops counting once past MAX_PARAMETERS, so a
    200-byte file asking for a billion weights costs nothing to refuse.
    """
    if not isinstance(arch, Mapping):
        return None
    kind, nin = arch.get("type"), arch.get("nin")
    if kind in lm.ARCHITECTURES:
        return lm.parameter_count(arch)
    if not _is_count(nin):
        return None
    if kind == "Neuron":
        return nin + 1
    if kind == "Layer":
        nout = arch.get("nout")
        return nout * (nin + 1) if _is_count(nout) else None
    nouts = arch.get("nouts")
    if kind != "MLP" or not isinstance(nouts, list) or not nouts or not all(map(_is_count, nouts)):
        return None
    total, fan_in = 0, nin
    for nout in nouts:
        total += nout * (fan_in + 1)
        if total > MAX_PARAMETERS:
            break
        fan_in = nout
    return total


def from_json(text: str, into: Module | None = None, source: str = "model file") -> Module:
    """Build a model from `to_json` text, or fill `into` (whose architecture must match).

    Raises ModelFileError on any problem; `into` is unchanged in that case.
    """

    if into is not None and not isinstance(into, Module):
        raise TypeError(f"into must be a chainrule Module to fill, not {type(into).__name__}")

    def fail(why: str) -> ModelFileError:
        return ModelFileError(f"{source}: {why}")

    try:
        doc = _decode(text)
    except ModelFileError as e:
        raise fail(str(e)) from None
    if not isinstance(doc, dict):
        raise fail(f"expected a JSON object, found {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise fail(f"not a chainrule model (format {_short(doc.get('format'))}, expected {FORMAT!r})")
    version = doc.get("version")
    if version != VERSION or isinstance(version, bool):
        raise fail(f"unsupported version {_short(version)} (this chainrule reads version {VERSION})")
    if set(doc) != _KEYS:
        missing, extra = sorted(_KEYS - set(doc)), sorted(set(doc) - _KEYS)
        raise fail(f"missing fields {missing}, unexpected fields {_short(extra)}")
    arch, count, params = doc["architecture"], doc["parameter_count"], doc["parameters"]

    # Everything that can be checked on the numbers alone is checked before a single Value is made.
    n = _parameter_count(arch)
    if n is not None and n > MAX_PARAMETERS:
        raise fail(f"the architecture asks for more than {MAX_PARAMETERS:,} parameters")
    if n is not None and (isinstance(count, bool) or count != n):
        raise fail(f"parameter_count is {_short(count)} but the architecture has {n} parameters")
    if not isinstance(params, dict):
        raise fail(f"parameters must be an object of name -> number, found {type(params).__name__}")
    if n is not None and len(params) != n:
        raise fail(f"{len(params)} parameter values for {n} parameters")

    if into is not None:
        if arch != into.config():
            raise fail(f"architecture {_short(arch)} does not match the model's {into.config()}")
        model = into
    else:
        try:
            model = build(arch)
        except ValueError as e:
            raise fail(f"bad architecture: {_short(e)}") from None
    try:
        model.load_state_dict(params)
    except ValueError as e:
        raise fail(_short(e)) from None
    return model


def _short(x: object, limit: int = 200) -> str:
    """repr(x) (str for an error), cut to `limit` characters: a hostile file must not flood the message."""
    text = str(x) if isinstance(x, Exception) else repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load(path: str | os.PathLike[str], into: Module | None = None) -> Module:
    """Read a model saved by `save`. With `into`, load the weights into that model instead.

    Raises FileNotFoundError if there is no such file, and ModelFileError (a ValueError) naming
    the file and the problem for anything else; the model is then untouched.
    """
    p = Path(path)
    return from_json(_read(p), into=into, source=str(p))


def _read(p: Path) -> str:
    # Open first, then ask the open file what it is: a check on the path could be raced. O_NONBLOCK
    # so that opening a FIFO returns at once instead of waiting for a writer.
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ModelFileError(f"{p}: cannot open: {e.strerror or e}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ModelFileError(f"{p}: not a regular file ({_kind(info.st_mode)})")
        if info.st_size > MAX_BYTES:
            raise ModelFileError(f"{p}: {info.st_size:,} bytes, more than a model file's {MAX_BYTES:,}")
        with open(fd, "rb", closefd=False) as f:
            data = f.read(MAX_BYTES + 1)  # +1: a file growing as we read is caught too
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise ModelFileError(f"{p}: more than a model file's {MAX_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{p}: not a text file: {e}") from None


def _kind(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "not a regular file")
