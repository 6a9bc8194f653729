"""chainrule.serialize: exact round trips, atomic saves, and every corrupt file rejected cleanly."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chainrule
from chainrule import serialize
from chainrule.engine import Value
from chainrule.nn import MLP, Layer, Neuron
from chainrule.serialize import ModelFileError, load, save


def _model(seed: int = 0) -> MLP:
    return MLP(2, [16, 16, 1], "relu", "linear", bias_init="uniform", rng=random.Random(seed))


def _score(m, x):
    out = m(x)
    assert isinstance(out, Value)
    return out.data


def test_round_trip_is_exact(tmp_path):
    m = _model()
    # Awkward floats: the shortest repr must read back to the very same double.
    m.parameters()[0].data = 0.1 + 0.2
    m.parameters()[1].data = 5e-324
    m.parameters()[2].data = -1.7976931348623157e308
    path = save(m, tmp_path / "model.json")
    back = load(path)
    assert isinstance(back, MLP)
    assert back.config() == m.config() and repr(back) == repr(m)
    assert back.state_dict() == m.state_dict()
    assert _score(back, [0.3, -0.4]) == _score(m, [0.3, -0.4])


@pytest.mark.parametrize("module", [lambda: Neuron(3, "tanh"), lambda: Layer(2, 4, "sigmoid")])
def test_round_trip_of_smaller_modules(tmp_path, module):
    m = module()
    back = load(save(m, tmp_path / "m.json"))
    assert type(back) is type(m) and back.state_dict() == m.state_dict()


def test_file_is_versioned_human_readable_json(tmp_path):
    path = save(_model(), tmp_path / "model.json")
    text = path.read_text()
    doc = json.loads(text)
    assert doc["format"] == "chainrule-model" and doc["version"] == 1
    assert doc["architecture"] == {"type": "MLP", "nin": 2, "nouts": [16, 16, 1], "activation": "relu",
                                   "output_activation": "linear", "bias_init": "uniform"}
    assert doc["parameter_count"] == 337 == len(doc["parameters"])
    assert '"layers.0.neurons.0.w.0": ' in text and text.count("\n") > 337  # one weight per line


def test_load_into_an_existing_model(tmp_path):
    src, dst = _model(1), _model(2)
    assert load(save(src, tmp_path / "m.json"), into=dst) is dst
    assert dst.state_dict() == src.state_dict()


def _doc(tmp_path):
    return json.loads(save(_model(), tmp_path / "good.json").read_text())


def _first(doc):
    return next(iter(doc["parameters"]))


CORRUPTIONS = {
    "truncated": lambda text, doc: text[: len(text) // 2],
    "empty": lambda text, doc: "",
    "not json": lambda text, doc: "weights: 1, 2, 3",
    "a list": lambda text, doc: "[1, 2, 3]",
    "wrong format": lambda text, doc: _dump(doc, format="other-model"),
    "newer version": lambda text, doc: _dump(doc, version=2),
    "version as string": lambda text, doc: _dump(doc, version="1"),
    "version as bool": lambda text, doc: _dump(doc, version=True),
    "missing field": lambda text, doc: json.dumps({k: v for k, v in doc.items() if k != "parameter_count"}),
    "extra field": lambda text, doc: _dump(doc, comment="hi"),
    "unknown architecture": lambda text, doc: _dump(doc, architecture={"type": "CNN"}),
    "bad layer size": lambda text, doc: _dump(doc, architecture={**doc["architecture"], "nouts": [16, -1]}),
    "bad activation": lambda text, doc: _dump(
        doc, architecture={**doc["architecture"], "activation": "gelu"}),
    "wrong architecture": lambda text, doc: _dump(doc, architecture={**doc["architecture"], "nouts": [8, 1]}),
    "wrong count": lambda text, doc: _dump(doc, parameter_count=336),
    "count as bool": lambda text, doc: _dump(doc, parameter_count=True),
    "one weight missing": lambda text, doc: _dump(
        doc, parameters={k: v for k, v in list(doc["parameters"].items())[:-1]}),
    "one weight extra": lambda text, doc: _dump(doc, parameters={**doc["parameters"], "x": 1.0}),
    "renamed weight": lambda text, doc: _dump(doc, parameters={
        ("w" if i == 0 else k): v for i, (k, v) in enumerate(doc["parameters"].items())}),
    "weights as list": lambda text, doc: _dump(doc, parameters=list(doc["parameters"].values())),
    "NaN": lambda text, doc: text.replace(f'"{_first(doc)}": {doc["parameters"][_first(doc)]!r}',
                                          f'"{_first(doc)}": NaN'),
    "Infinity": lambda text, doc: text.replace(f'"{_first(doc)}": {doc["parameters"][_first(doc)]!r}',
                                               f'"{_first(doc)}": -Infinity'),
    "overflowing number": lambda text, doc: text.replace(
        f'"{_first(doc)}": {doc["parameters"][_first(doc)]!r}', f'"{_first(doc)}": 1e999'),
    "string weight": lambda text, doc: _dump(doc, parameters={**doc["parameters"], _first(doc): "0.5"}),
    "null weight": lambda text, doc: _dump(doc, parameters={**doc["parameters"], _first(doc): None}),
    "bool weight": lambda text, doc: _dump(doc, parameters={**doc["parameters"], _first(doc): False}),
    "nested weight": lambda text, doc: _dump(doc, parameters={**doc["parameters"], _first(doc): [0.5]}),
}


def _dump(doc, **changes):
    return json.dumps({**doc, **changes}, indent=2)


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_files_are_rejected_without_touching_the_model(tmp_path, case):
    doc = _doc(tmp_path)
    text = (tmp_path / "good.json").read_text()
    bad = CORRUPTIONS[case](text, doc)
    assert bad != text
    path = tmp_path / "bad.json"
    path.write_text(bad)
    target = _model(seed=99)
    before = target.state_dict()
    with pytest.raises(ModelFileError) as err:
        load(path, into=target)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert target.state_dict() == before
    with pytest.raises(ModelFileError):
        load(path)  # and without a model to fill


def test_binary_garbage_is_rejected(tmp_path):
    path = tmp_path / "model.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ModelFileError, match="not a text file"):
        load(path)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name != "model.json")


def test_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = save(_model(1), tmp_path / "model.json")
    old = path.read_text()
    real_fdopen = os.fdopen

    class HalfWriter:
        """A file that takes half the text and then dies, as a full disk or a kill would."""

        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            self.f.flush()
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(serialize.os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    with pytest.raises(OSError, match="No space left"):
        save(_model(2), path)
    assert path.read_text() == old
    assert _leftovers(tmp_path) == []  # the half-written temp file is gone too
    assert load(path).state_dict() == _model(1).state_dict()


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_crash_before_the_rename_leaves_the_old_file_intact(tmp_path, monkeypatch, where):
    path = save(_model(1), tmp_path / "model.json")
    old = path.read_text()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # not even an Exception: the temp file must still be cleaned up

    monkeypatch.setattr(serialize.os, where, crash)
    with pytest.raises(KeyboardInterrupt):
        save(_model(2), path)
    assert path.read_text() == old and _leftovers(tmp_path) == []


def test_saving_non_finite_weights_is_refused(tmp_path):
    path = save(_model(1), tmp_path / "model.json")
    old = path.read_text()
    m = _model(2)
    m.parameters()[5].data = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        save(m, path)
    assert path.read_text() == old


def test_missing_file_is_a_plain_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.json")


def test_save_and_load_are_top_level_names(tmp_path):
    m = _model(3)
    assert chainrule.save(m, tmp_path / "m.json") == tmp_path / "m.json"
    assert chainrule.load(tmp_path / "m.json").state_dict() == m.state_dict()


def test_saved_file_has_the_usual_permissions(tmp_path):
    # As open() would make it (0666 less the umask), not mkstemp's private 0600.
    old = os.umask(0o022)
    try:
        path = save(_model(), tmp_path / "m.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# --- hostile files: every failure is a ModelFileError naming the file, and none of them hangs ---------


def _load_elsewhere(path: Path, timeout: float = 60) -> dict[str, Any]:
    """load(path) in a child process: a regression that hangs or eats memory dies there, not here.

    Returns the exception's type and message and how long load() took (None as type if it loaded).
    """
    code = textwrap.dedent("""
        import json, sys, time
        from chainrule.serialize import load
        start = time.perf_counter()
        try:
            load(sys.argv[1])
            kind, message = None, ""
        except Exception as e:
            kind, message = type(e).__name__, str(e)
        print(json.dumps({"type": kind, "message": message, "seconds": time.perf_counter() - start}))
    """)
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _refused(path: Path, *, match: str) -> None:
    result = _load_elsewhere(path)
    assert result["type"] == "ModelFileError", result
    assert result["message"].startswith(f"{path}: ") and match in result["message"], result
    assert "\n" not in result["message"] and len(result["message"]) < 400
    # Loose on purpose (a hang test, not a benchmark): before the checks these took 14-38 s or never ended.
    assert result["seconds"] < 5, result


def test_a_folder_is_refused(tmp_path):
    _refused(tmp_path, match="not a regular file (a folder)")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "model.json"
    os.mkfifo(fifo)
    _refused(fifo, match="not a regular file (a FIFO)")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_dev_zero_is_refused_before_reading():
    _refused(Path("/dev/zero"), match="not a regular file (a character device)")


def test_a_file_over_the_size_cap_is_refused_before_reading(tmp_path):
    path = tmp_path / "model.json"
    with path.open("wb") as f:
        f.truncate(serialize.MAX_BYTES + 1)  # sparse: 64 MiB of NUL bytes that take no disk
    # Read, it would fail as "not valid JSON"; this message says it was refused on its size.
    _refused(path, match=f"{serialize.MAX_BYTES + 1:,} bytes, more than a model file's")


def test_a_path_through_a_file_is_a_model_file_error(tmp_path):
    (tmp_path / "file").write_text("{}")
    path = tmp_path / "file" / "model.json"
    with pytest.raises(ModelFileError, match="cannot open") as err:
        load(path)
    assert str(path) in str(err.value)


def _bomb(architecture: dict[str, Any], count: int) -> str:
    doc = {"format": "chainrule-model", "version": 1, "architecture": architecture,
           "parameter_count": count, "parameters": {}}
    return json.dumps(doc, separators=(",", ":"))


BOMBS = {
    "neuron of a billion inputs": _bomb(
        {"type": "Neuron", "nin": 10**9, "activation": "tanh", "bias_init": "zero"}, 10**9 + 1),
    "mlp of two 100000-wide layers": _bomb(
        {"type": "MLP", "nin": 2, "nouts": [100000, 100000], "activation": "relu",
         "output_activation": "linear", "bias_init": "zero"}, 300000 + 100000 * 100001),
    "layer of 10^4 x 10^4": _bomb(
        {"type": "Layer", "nin": 10**4, "nout": 10**4, "activation": "tanh", "bias_init": "zero"},
        10**4 * (10**4 + 1)),
    "mlp of a million one-neuron layers": _bomb(
        {"type": "MLP", "nin": 1, "nouts": [1] * 10**6, "activation": "relu",
         "output_activation": "linear", "bias_init": "zero"}, 2 * 10**6),
}


@pytest.mark.parametrize("case", list(BOMBS))
def test_architecture_bombs_are_refused_before_building(tmp_path, case):
    path = tmp_path / "model.json"
    path.write_text(BOMBS[case])
    assert len(BOMBS[case]) < 250 or case == "mlp of a million one-neuron layers"
    # The last one is under the 10^7 cap: refused because the file holds no weights for it.
    match = ("0 parameter values for 2000000 parameters" if case == "mlp of a million one-neuron layers"
             else "the architecture asks for more than 10,000,000 parameters")
    _refused(path, match=match)


def test_a_stated_count_is_checked_before_building(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(_bomb({"type": "Neuron", "nin": 5 * 10**6, "activation": "tanh", "bias_init": "zero"},
                          1))
    _refused(path, match="parameter_count is 1 but the architecture has 5000001 parameters")


@pytest.mark.parametrize("depth", [2000, 100_000])
def test_deeply_nested_json_is_a_model_file_error(tmp_path, depth):
    path = tmp_path / "model.json"
    path.write_text("[" * depth + "]" * depth)
    _refused(path, match="nested too deep")


@pytest.mark.parametrize(("where", "digits"), [("parameter_count", 4300), ("parameter_count", 10_000),
                                               ("weight", 4300), ("weight", 400)])
def test_a_huge_integer_is_a_model_file_error(tmp_path, where, digits):
    doc = _doc(tmp_path)
    huge = "9" * digits  # 400 digits still parses, but no float can hold it
    text = json.dumps({**doc, "parameter_count": "HUGE"} if where == "parameter_count"
                      else {**doc, "parameters": {**doc["parameters"], _first(doc): "HUGE"}})
    path = tmp_path / "model.json"
    path.write_text(text.replace('"HUGE"', huge))
    _refused(path, match=f"an integer of {digits} digits")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
NEURON_DOC = json.loads(serialize.to_json(Neuron(2, rng=random.Random(0))))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["format", "version", "architecture", "parameter_count", "parameters",
                              "nin", "activation", "bias_init", "type"]),
       junk=JSON)
def test_any_junk_in_any_field_is_a_model_file_error(tmp_path, field, junk):
    doc = json.loads(json.dumps(NEURON_DOC))
    if field in doc:
        doc[field] = junk
    else:
        doc["architecture"][field] = junk
    path = tmp_path / "junk.json"
    path.write_text(json.dumps(doc))
    try:
        load(path)
    except ModelFileError as e:
        assert str(e).startswith(f"{path}: ") and len(str(e)) < 1000
    # Or it loaded: some junk is valid (bias_init "zero", a weight of 7).


# --- a killed save leaves a temporary file; the next save of that path sweeps it up ---------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_save_removes_temp_files_a_killed_save_left(tmp_path):
    path = tmp_path / "model.json"
    stale = [tmp_path / ".model.json.k3x9_q.tmp",  # an older save's mkstemp name
             tmp_path / f".model.json.{_dead_pid()}-0a1b2c3d.tmp",  # its writer is gone
             tmp_path / f".model.json.{'9' * 30}-0a1b2c3d.tmp"]  # no process has that pid
    kept = [tmp_path / f".model.json.{os.getppid()}-0a1b2c3d.tmp",  # its writer may still be writing
            tmp_path / ".other.json.k3x9_q.tmp",  # another file's
            tmp_path / "model.json.tmp"]  # not a name save makes
    for p in stale + kept:
        p.write_text('{"half": ')
    save(_model(), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [path, *kept])
    assert load(path).state_dict() == _model().state_dict()


def test_saving_into_a_missing_folder_names_the_folder(tmp_path):
    target = tmp_path / "nope" / "model.json"
    with pytest.raises(FileNotFoundError) as err:
        save(_model(), target)
    assert str(err.value) == f"cannot save {target}: there is no folder {tmp_path / 'nope'}"


def test_only_modules_are_saved_or_filled(tmp_path):
    with pytest.raises(TypeError, match=r"can only save a chainrule Module .*, not dict"):
        save({"w": 1.0}, tmp_path / "m.json")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    path = save(_model(), tmp_path / "m.json")
    with pytest.raises(TypeError, match="into must be a chainrule Module to fill, not list"):
        load(path, into=[])  # type: ignore[arg-type]
