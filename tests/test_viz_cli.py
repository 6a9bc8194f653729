"""`chainrule graph`: draw an expression from the command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chainrule.cli import main

NEURON = ["tanh(x1*w1 + x2*w2 + b)", "--at", "x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432"]


def test_prints_every_leaf_gradient_and_writes_html(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "neuron.html"
    assert main(["graph", *NEURON, "--params", "w1,w2,b", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "tanh(x1*w1 + x2*w2 + b) = 0.7071"
    assert printed[1:6] == ["  dL/dx1 = -1.5000", "  dL/dw1 =  1.0000", "  dL/dx2 =  0.5000",
                            "  dL/dw2 =  0.0000", "  dL/db  =  0.5000"]
    assert printed[-1] == f"wrote {out}"
    page = out.read_text(encoding="utf-8")
    assert '"label":"w1","op":"","kind":"param"' in page
    assert '"label":"x1","op":"","kind":"input"' in page


def test_steps_flag_prints_the_text_stepper(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "a + a", "--at", "a=3", "--steps"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == ["  1. a + a (+) → a: grad(a) += 1.0000 × 1.0000 = 1.0000 → 1.0000",
                          "  2. a + a (+) → a: grad(a) += 1.0000 × 1.0000 = 1.0000 → 2.0000"]


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_svg_and_png_with_graphviz(tmp_path: Path, suffix: str) -> None:
    if shutil.which("dot") is None:
        if os.environ.get("CHAINRULE_REQUIRE_BROWSER") == "1":
            pytest.fail("Graphviz's dot is missing but CHAINRULE_REQUIRE_BROWSER=1")
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz)")
    out = tmp_path / f"n{suffix}"
    assert main(["graph", *NEURON, "--out", str(out)]) == 0
    assert out.stat().st_size > 1000


def test_svg_without_graphviz_writes_html_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["graph", *NEURON, "--out", str(tmp_path / "n.svg")]) == 0
    captured = capsys.readouterr()
    notes = captured.err.strip().splitlines()
    assert len(notes) == 1 and notes[0].startswith("note: Graphviz's dot program is not on the PATH")
    assert (tmp_path / "n.html").exists()
    assert captured.out.splitlines()[-1] == f"wrote {tmp_path / 'n.html'}"


@pytest.mark.parametrize(("args", "words"), [
    (["x.__class__", "--at", "x=1"], "column 2: unexpected '.': attribute access"),
    (["x[0]", "--at", "x=1"], "column 2: unexpected '['"),
    (["(lambda: 1)()", "--at", ""], "column 8: unexpected ':'"),
    (["open(x)", "--at", "x=1"], "column 1: unknown function 'open'"),
    (["a*b", "--at", "a=1"], "no value for b"),
    (["a", "--at", "a=1,b=2"], "b not used"),
    (["a", "--at", "a=two"], "--at error at column 3: value of a is not a number"),
    (["a**b", "--at", "a=10,b=400"], "column 2: overflow"),
    (["a", "--at", "a=1", "--params", "w"], "--params names not in the expression: w"),
    (["a", "--at", "a=1", "--out", "g.pdf"], "use one of .svg, .png, .html"),
    (["a", "--at", "a=1", "--out", "/no-such-chainrule-dir/g.html"], "no such folder for --out"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], words: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("chainrule graph: error: ")
    assert words in err[0]


def test_hostile_expression_executes_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = f"__import__('os').system('touch {marker}')"
    result = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", "graph", hostile, "--at", "x=1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()
