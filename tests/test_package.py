"""The installed package is the tested package.

Build the sdist and the wheel as a release would, install the wheel (no `-e`) into a throwaway venv
outside the source tree, and run there what a new user runs first. Every other test imports
chainrule from `src/`, where a file left out of the wheel is still on disk; only this one notices.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import chainrule

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "chainrule"


def _checkout_files() -> list[str]:
    """What a fresh clone would hold, plus uncommitted work: tracked and untracked-but-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def _data_files() -> set[str]:
    """Every non-Python file of the package in the checkout, e.g. 'chainrule/viz/explorer.js'."""
    return {name.removeprefix("src/") for name in _checkout_files()
            if name.startswith("src/chainrule/") and not name.endswith(".py")}


@dataclass
class Dists:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    if not (ROOT / ".git").exists():
        pytest.skip("builds from the git checkout's file list; not a git checkout")
    # Build from a copy of the checkout, not in place: a stale src/chainrule.egg-info/SOURCES.txt
    # in the working tree would smuggle files into the sdist that a fresh clone's build leaves out.
    copy = tmp_path_factory.mktemp("checkout")
    for name in _checkout_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((ROOT / name).read_bytes())
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: use this venv's setuptools instead of downloading one (CI may be offline).
    # With neither --sdist nor --wheel, build makes the sdist and then the wheel *from the sdist*,
    # so a file the sdist forgets is missing from the wheel too.
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(copy)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"python -m build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    (wheel,), (sdist,) = out.glob("*.whl"), out.glob("*.tar.gz")
    return Dists(wheel, sdist)


@pytest.fixture(scope="module")
def venv(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv, outside the source tree, with the wheel installed; returns its bin/ folder."""
    home = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True, timeout=120)
    python = home / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The dependencies (numpy, matplotlib, ...) come from this venv's site-packages, named in a .pth
    # file: no network needed. Python does not run the .pth files *inside* a folder a .pth adds, so
    # this venv's editable chainrule (its own .pth pointing at src/) stays out of the new one.
    Path(site, "_chainrule_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                           "--no-index", "--no-deps", str(dists.wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip install of the wheel failed:\n{proc.stdout}\n{proc.stderr}"
    return home / "bin"


def _run(venv: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command of the throwaway venv as a user's shell would, from a folder outside the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env.update(MPLBACKEND="Agg", PATH=f"{venv}{os.pathsep}{env.get('PATH', '')}")
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def test_the_wheel_ships_every_data_file_of_the_package(dists: Dists) -> None:
    shipped = set(zipfile.ZipFile(dists.wheel).namelist())
    missing = sorted(_data_files() - shipped)
    assert not missing, f"{dists.wheel.name} leaves out {missing}: add them to package-data in pyproject.toml"
    assert {"chainrule/viz/explorer.js", "chainrule/viz/vendor/viz-global.js"} <= shipped
    assert {"chainrule/datasets/names.txt", "chainrule/datasets/names.LICENSE.txt"} <= shipped


def test_the_sdist_ships_every_data_file_of_the_package(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        shipped = {name.removeprefix(f"{top}/src/") for name in tar.getnames()}
    missing = sorted(_data_files() - shipped)
    assert not missing, f"{dists.sdist.name} leaves out {missing}: add them to package-data in pyproject.toml"


def test_the_version_is_written_once(dists: Dists) -> None:
    # pyproject.toml reads chainrule.__version__; the built metadata must agree with the module.
    meta = zipfile.ZipFile(dists.wheel).read(f"chainrule-{chainrule.__version__}.dist-info/METADATA")
    assert f"\nVersion: {chainrule.__version__}\n" in meta.decode()
    assert dists.sdist.name == f"chainrule-{chainrule.__version__}.tar.gz"


def test_the_installed_package_imports_from_the_venv(venv: Path, tmp_path: Path) -> None:
    code = "import chainrule; print(chainrule.__version__); print(chainrule.__file__)"
    version, where = _run(venv, str(venv / "python"), "-c", code, cwd=tmp_path).stdout.split()
    assert version == chainrule.__version__
    assert Path(where).is_relative_to(venv.parent) and not Path(where).is_relative_to(ROOT)


def test_the_installed_demo_runs(venv: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    _run(venv, "chainrule", "demo", "--out", str(out), cwd=tmp_path)
    assert chainrule.load(out / "model.json").num_parameters() == 337
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in out.glob("*.png"))
    assert len(list(out.glob("*.png"))) >= 2


def test_the_installed_names_command_trains_on_the_shipped_names(venv: Path, tmp_path: Path) -> None:
    out = tmp_path / "names"
    proc = _run(venv, "chainrule", "names", "--model", "bigram", "--steps", "3", "--sample", "2", "--out",
                str(out), cwd=tmp_path)
    assert "on 25,626 training names" in proc.stdout and proc.stdout.count("sample ") == 2
    assert chainrule.load(out / "model.json").num_parameters() == 27 * 27


def test_the_installed_graph_command_writes_the_explorer(venv: Path, tmp_path: Path) -> None:
    page = tmp_path / "x.html"
    proc = _run(venv, "chainrule", "graph", "x*y", "--at", "x=1,y=2", "--out", str(page), cwd=tmp_path)
    assert "2.0" in proc.stdout
    html = page.read_text(encoding="utf-8")
    # Self-contained: the page carries the vendored Graphviz and the explorer's own script inline.
    vendored = (PACKAGE / "viz" / "vendor" / "viz-global.js").read_text(encoding="utf-8")
    assert vendored[:2000] in html
    assert "<script" in html and "</html>" in html


def test_import_chainrule_loads_neither_numpy_nor_torch() -> None:
    # The scalar core is pure Python: NumPy is for batches and datasets, torch only a test oracle.
    code = ("import sys, chainrule; chainrule.save, chainrule.load; "
            "print(' '.join(m for m in ('numpy', 'torch') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
