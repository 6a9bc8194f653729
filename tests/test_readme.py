"""The README's code blocks run as written (a taste of the API that fails is worse than none)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.DOTALL)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(code: str) -> None:
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})


def test_the_taste_prints_what_its_comments_say(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(BLOCKS[0], str(README), "exec"), {"__name__": "readme"})
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["6.0 -4.0 -2.0 4.0", "14.0"]


def test_the_seeds_are_explained_where_the_readme_first_names_them() -> None:
    first = TEXT.lower().index("the seeds")
    paragraph = TEXT[TEXT.rfind("\n\n", 0, first): TEXT.find("\n\n", first)]
    assert "three lecture notes" in paragraph


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
def test_every_make_command_the_readme_names_exists() -> None:
    # `make X` in prose, or a line of a shell block starting with it.
    targets = sorted(set(re.findall(r"(?:^|`)make ([a-z-]+)", TEXT, flags=re.MULTILINE)))
    assert {"demo", "test"} <= set(targets)
    for target in targets:
        # -n: print the recipe without running it; an unknown target exits 2 ("No rule to make target").
        proc = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, f"README says `make {target}`, but: {proc.stderr.strip()}"


CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def test_every_torch_install_the_readme_shows_takes_the_cpu_index() -> None:
    # On Linux, PyPI's torch is the multi-GB CUDA build: each install command names PyTorch's CPU index.
    installs = [line for line in TEXT.splitlines() if re.search(r"pip install.*torch|torch.*make test", line)]
    assert len(installs) >= 3, installs  # the test extras, torch alone, the torch extra
    for line in installs:
        assert f"--index-url {CPU_INDEX}" in line or f"--extra-index-url {CPU_INDEX}" in line \
            or f"PIP_EXTRA_INDEX_URL={CPU_INDEX} make test" in line, line


def test_the_readme_pins_torch_as_pyproject_does() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = {r for extra in project["optional-dependencies"].values() for r in extra if r.startswith("torch")}
    assert len(pins) == 1, pins
    assert set(re.findall(r"torch==[0-9.]+[0-9]", TEXT)) == pins
