"""Every example runs to the end, headless, writing only into a temporary folder.

Each `examples/*.py` runs as a script and each `examples/*.ipynb` runs in a Jupyter kernel (nbclient), as
a learner would run them. The examples assert their own results (gradients agree, the loss falls, the
moons reach 100%), so running to the end is the test; an example added to the folder is picked up here.
CHAINRULE_FAST=1 asks the examples that train for a while (08, 09 and the makemore notebook) for a short
run of the same story; without it, as a learner runs them, they train for their full settings.
tests/test_notebook.py checks what the first lecture's notebook *shows*.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
# The seeds' examples (see the README) and the figures they must leave behind.
SEEDS = ["01_derivatives.py", "02_manual_backprop.py", "03_neuron.py", "04_tiny_mlp.py", "05_moons.py"]
FIGURES = {"01_derivatives.py": "01_derivatives.png", "05_moons.py": "05_moons.png",
           "08_makemore.py": "08_bigram_counts.png"}


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MPLBACKEND": "Agg", "CHAINRULE_OUT": str(tmp_path / "out"), "CHAINRULE_FAST": "1"}


def test_the_seeds_examples_and_a_notebook_are_there() -> None:
    # Guards the globs: an empty list would make the tests below pass by running nothing.
    assert set(SEEDS) <= {p.name for p in SCRIPTS}
    assert NOTEBOOKS, "examples/ should hold at least one notebook"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_script_runs(script: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr
    if script.name in FIGURES:
        png = tmp_path / "out" / FIGURES[script.name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {p.name for p in tmp_path.iterdir()} <= {"out"}  # nothing written elsewhere


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_example_notebook_runs(notebook: Path, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=_env(tmp_path))  # a cell that raises fails here, with its traceback
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert not errors
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "the notebook showed nothing"
    assert {p.name for p in tmp_path.iterdir()} <= {"out"}  # nothing written elsewhere
