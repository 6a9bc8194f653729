"""chainrule.viz.render: pictures by suffix, with and without Graphviz."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from conftest import need_dot

from chainrule import Value
from chainrule.seeds import NEURON
from chainrule.viz import GraphvizMissingWarning, render


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_render_with_graphviz(tmp_path: Path, suffix: str) -> None:
    need_dot()
    o, _ = NEURON.build()
    o.backward()
    path = tmp_path / f"neuron{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = render(o, path)
    assert written == path
    data = path.read_bytes()
    if suffix == ".svg":
        assert b"<svg" in data and b"grad 0.5000" in data
    else:
        assert data.startswith(b"\x89PNG")


def test_render_falls_back_to_html_without_graphviz(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # hide dot
    o, _ = NEURON.build()
    with pytest.warns(GraphvizMissingWarning) as caught:
        written = render(o, tmp_path / "neuron.svg")
    assert written == tmp_path / "neuron.html"
    assert written.exists() and not (tmp_path / "neuron.svg").exists()
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert "neuron.html" in str(caught[0].message)


def test_render_rejects_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.svg, \.png, \.html"):
        render(Value(1.0), tmp_path / "g.pdf")
