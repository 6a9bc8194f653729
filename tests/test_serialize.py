"""chainrule.serialize: exact round trips, atomic saves, and every corrupt file rejected cleanly."""

from __future__ import annotations

import json
import os
import random

import pytest

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
