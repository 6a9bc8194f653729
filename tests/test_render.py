"""chainrule.viz.render: pictures by suffix, with and without Graphviz."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from conftest import need_dot

from chainrule import Value
from chainrule.seeds import NEURON
from chainrule.viz import MAX_NODES, GraphvizMissingWarning, check_target, render


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


def test_render_hands_the_fallback_to_a_callback_instead_of_warning(tmp_path: Path, hide_dot: Path) -> None:
    o, _ = NEURON.build()
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all
        written = render(o, tmp_path / "neuron.png", on_fallback=notes.append)
    assert written == tmp_path / "neuron.html" and written.exists()
    assert len(notes) == 1 and notes[0].startswith("Graphviz's dot program is not on the PATH")


def test_the_fallback_never_overwrites_an_html_file(tmp_path: Path, hide_dot: Path) -> None:
    o, _ = NEURON.build()
    (tmp_path / "g.html").write_text("mine")
    (tmp_path / "g-1.html").write_text("mine too")
    notes: list[str] = []
    written = render(o, tmp_path / "g.svg", on_fallback=notes.append)
    assert written == tmp_path / "g-2.html" and "<html" in written.read_text().lower()
    assert (tmp_path / "g.html").read_text() == "mine" and (tmp_path / "g-1.html").read_text() == "mine too"
    assert str(written) in notes[0]


def test_check_target_accepts_a_path_render_can_write_and_changes_nothing(tmp_path: Path) -> None:
    o, _ = NEURON.build()
    kept = tmp_path / "kept.svg"
    kept.write_text("keep me")
    assert check_target(o, str(tmp_path / "new.html")) == tmp_path / "new.html"
    assert check_target(o, kept) == kept
    assert kept.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["kept.svg"]


@pytest.mark.parametrize(("name", "words"), [
    ("g.pdf", r"cannot tell the format of '.*g\.pdf': use one of \.svg, \.png, \.html"),
    ("missing/g.html", r"no such folder '.*missing'"),
    ("folder.html", r"cannot write .*folder\.html: Is a directory"),
])
def test_check_target_refuses_what_render_could_not_write(tmp_path: Path, name: str, words: str) -> None:
    (tmp_path / "folder.html").mkdir()
    with pytest.raises(ValueError, match=words):
        check_target(Value(1.0), tmp_path / name)


def test_check_target_refuses_a_graph_too_big_to_draw(tmp_path: Path) -> None:
    x = Value(1.0)
    big = x
    for _ in range(MAX_NODES):
        big = big + x
    with pytest.raises(ValueError, match=f"more than {MAX_NODES} nodes, too many to draw"):
        check_target(big, tmp_path / "g.html")
    assert check_target(big, tmp_path / "g.html", max_nodes=None) == tmp_path / "g.html"
    assert list(tmp_path.iterdir()) == []


def test_render_an_exercise_only_as_html(tmp_path: Path) -> None:
    o, _ = NEURON.build()
    with pytest.raises(ValueError, match=r"an exercise is an \.html page, not \.svg"):
        render(o, tmp_path / "n.svg", exercise=True)
    assert '"exercise":{"ask":' in render(o, tmp_path / "n.html", exercise=True).read_text(encoding="utf-8")
    with pytest.raises(ValueError, match=r"an explorer of forward mode is an \.html page, not \.png"):
        render(o, tmp_path / "n.png", forward="x1")
    assert '"forward":{"wrt":' in render(o, tmp_path / "f.html", forward="x1").read_text(encoding="utf-8")
