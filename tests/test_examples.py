"""Every script in examples/ runs to the end, headless, writing only into a temporary folder."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))
# Each example asserts its own results (gradients agree, loss falls, the moons reach 100%),
# so running to the end is the test; these are the figures it must also leave behind.
FIGURES = {"01_derivatives.py": "01_derivatives.png", "05_moons.py": "05_moons.png"}


def test_there_are_five_examples():
    assert [p.name for p in EXAMPLES] == [
        "01_derivatives.py", "02_manual_backprop.py", "03_neuron.py", "04_tiny_mlp.py", "05_moons.py"]


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    if script.name == "05_moons.py" and importlib.util.find_spec("chainrule.batch") is None:
        pytest.skip("05_moons trains in batched mode (chainrule.batch); eagerly it would take a minute")
    env = {**os.environ, "MPLBACKEND": "Agg", "CHAINRULE_OUT": str(tmp_path / "out")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr
    assert seconds < 60, f"{script.name} took {seconds:.0f} s; examples should stay quick"
    if script.name in FIGURES:
        png = tmp_path / "out" / FIGURES[script.name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {p.name for p in tmp_path.iterdir()} <= {"out"}  # nothing written elsewhere
    # The cells: every example is a `# %%` script that reads top to bottom.
    assert script.read_text().count("# %%") >= 3
