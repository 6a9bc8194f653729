"""The `chainrule` command: the demo's numbers, its output files, train, tour, and bad arguments."""

from __future__ import annotations

import contextlib
import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chainrule import cli
from chainrule.serialize import load

# micrograd's demo.ipynb, run with micrograd 0.1.0: the published log and its first steps in full.
MICROGRAD_STEP_LOSSES = [0.8958441028683222, 1.723590533697202, 0.7429006313851131]
BATCHED = cli._batched_available()


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def _assert_real_image(path: Path, size: tuple[int, int]) -> None:
    import matplotlib.image

    assert _png_size(path) == size
    pixels = matplotlib.image.imread(str(path))[..., :3]
    assert pixels.shape[:2] == size[::-1]
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50, f"{path} looks blank ({len(colours)} colours)"
    not_white = (pixels < 0.95).any(axis=-1).mean()
    assert not_white > 0.05, f"{path} is almost all white"


def _step_lines(out: str) -> dict[int, str]:
    return {int(line.split()[1]): line for line in out.splitlines() if line.startswith("step ")}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One full `chainrule demo` (default mode), shared by the tests that look at its results."""
    out_dir = tmp_path_factory.mktemp("demo")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(["demo", "--out", str(out_dir)])
    return code, stdout.getvalue(), stderr.getvalue(), out_dir


def test_demo_matches_micrograds_published_log(demo_run):
    code, out, err, _ = demo_run
    assert code == 0
    steps = _step_lines(out)
    # Published: step 0 loss 0.8958..., accuracy 50.0%; step 99 loss 0.0110..., accuracy 100.0%.
    loss0 = float(steps[0].split()[3].rstrip(","))
    loss99 = float(steps[99].split()[3].rstrip(","))
    assert round(loss0, 4) == 0.8958 and steps[0].endswith("accuracy 50.0%")
    assert round(loss99, 4) == 0.0110 and steps[99].endswith("accuracy 100.0%")
    assert abs(loss0 - MICROGRAD_STEP_LOSSES[0]) < 1e-12
    assert abs(loss99 - 0.010978370135492717) < 1e-9  # micrograd 0.1.0's own final loss
    assert "training" in err and "100/100" in err  # the tqdm bar, on stderr


def test_demo_writes_two_real_pngs_and_the_model(demo_run):
    _, out, _, out_dir = demo_run
    for name in ("decision_boundary.png", "training_curves.png", "model.json"):
        assert f"wrote {out_dir / name}" in out
    _assert_real_image(out_dir / "decision_boundary.png", (640, 480))
    _assert_real_image(out_dir / "training_curves.png", (960, 400))
    model = load(out_dir / "model.json")
    assert repr(model) == "MLP(2 → 16 relu → 16 relu → 1 linear, 337 parameters)"


def test_saved_demo_model_classifies_the_moons(demo_run):
    from chainrule.data import make_moons

    model = load(demo_run[3] / "model.json")
    X, y = make_moons(n_samples=100, noise=0.1, random_state=1337)  # the demo's data (global seed 1337)
    scores = [model(list(row)) for row in X]
    assert all((s.data > 0) == (c == 1) for s, c in zip(scores, y, strict=True))


def test_eager_demo_is_micrograd_to_the_last_bits(capsys, tmp_path):
    # The forward pass does micrograd's arithmetic in micrograd's order (step 0's loss is the very same
    # float). Backward adds a hidden unit's gradient contributions in another order (a neuron is one
    # `linear` node here), so later steps may differ in the last bits: 1e-12 is the benchmarks' bar.
    code, out, _ = _run(capsys, "demo", "--mode", "eager", "--steps", "3", "--no-progress",
                        "--out", str(tmp_path))
    assert code == 0
    steps = _step_lines(out)
    assert steps[0] == f"step 0 loss {MICROGRAD_STEP_LOSSES[0]}, accuracy 50.0%"
    loss2 = float(steps[2].split()[3].rstrip(","))
    assert loss2 == pytest.approx(MICROGRAD_STEP_LOSSES[2], rel=1e-12, abs=0)
    assert steps[2].endswith("accuracy 77.0%")


@pytest.mark.skipif(not BATCHED, reason="needs chainrule.batch")
def test_batched_and_eager_demo_agree(capsys, tmp_path):
    runs = []
    for mode in ("batched", "eager"):
        code, out, _ = _run(capsys, "demo", "--mode", mode, "--steps", "3", "--no-progress",
                            "--out", str(tmp_path / mode))
        assert code == 0
        runs.append({k: float(v.split()[3].rstrip(",")) for k, v in _step_lines(out).items()})
    assert runs[0] == pytest.approx(runs[1], abs=1e-12)


@pytest.mark.skipif(not BATCHED, reason="100 eager steps are slow; needs chainrule.batch")
def test_train_with_defaults_is_the_demo(capsys, tmp_path, demo_run):
    code, train, _ = _run(capsys, "train", "--no-progress", "--out", str(tmp_path))
    assert code == 0 and _step_lines(train) == _step_lines(demo_run[1])


@pytest.mark.parametrize(
    "argv",
    [
        ["--dataset", "circles", "--activation", "tanh", "--loss", "mse"],
        ["--dataset", "xor", "--loss", "bce", "--optimizer", "adam"],
        ["--dataset", "blobs", "--classes", "3", "--hidden", "8"],
        ["--dataset", "spirals", "--classes", "3", "--loss", "ce", "--optimizer", "adam", "--mode", "eager"],
        ["--dataset", "moons", "--hidden", "", "--loss", "hinge", "--activation", "sigmoid"],
    ],
)
def test_train_variants_run_and_write_outputs(capsys, tmp_path, argv):
    code, out, err = _run(capsys, "train", *argv, "--steps", "4", "--samples", "30", "--no-progress",
                          "--out", str(tmp_path))
    assert code == 0, err
    assert "step 3 loss" in out
    _assert_real_image(tmp_path / "decision_boundary.png", (640, 480))
    assert load(tmp_path / "model.json").num_parameters() > 0


def test_train_learns_blobs(capsys, tmp_path):
    code, out, _ = _run(capsys, "train", "--dataset", "blobs", "--classes", "3", "--optimizer", "adam",
                        "--steps", "60", "--no-progress", "--out", str(tmp_path))
    assert code == 0
    first, last = _step_lines(out)[0].split(), _step_lines(out)[59].split()
    assert float(last[3].rstrip(",")) < 0.25 * float(first[3].rstrip(","))
    assert float(last[5].rstrip("%")) >= 90  # two of seed 1337's three blobs overlap a little


def test_tour_checks_the_seeds_examples(capsys):
    code, out, _ = _run(capsys, "tour")
    assert code == 0
    assert "all gradients agree with finite differences" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ")}
    assert lines["x1"][1:] == ["2.000000", "-1.500000", "-1.500000"]  # the tanh neuron's dx1
    assert lines["w2"][2] == "0.000000"  # w2 sees x2 = 0
    assert "b = a + a" in out and "all 2 nodes agree" in out
    first = [line.split()[0] for line in out.split("\n\n")[0].splitlines() if line.startswith("  ")]
    assert first[:8] == ["node", "a", "b", "c", "f", "e", "d", "L"]  # leaves as named, then to the output


def test_version_exits_zero(capsys):
    code, out, _ = _run(capsys, "--version")
    assert code == 0 and out.startswith("chainrule ") and len(out.splitlines()) == 1


def test_help_exits_zero(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0 and "demo" in out and "train" in out and "tour" in out and "graph" in out


BAD_ARGS = [
    [],
    ["bogus"],
    ["demo", "--steps", "x"],
    ["demo", "--steps", "0"],
    ["demo", "--steps", "101"],
    ["demo", "--mode", "gpu"],
    ["demo", "--frobnicate"],
    ["train", "--hidden", "16,a"],
    ["train", "--hidden", "16,-1"],
    ["train", "--dataset", "mnist"],
    ["train", "--lr", "-1"],
    ["train", "--lr", "nan"],
    ["train", "--noise", "inf"],
    ["train", "--samples", "0"],
    ["train", "--seed", "-1"],
    ["train", "--seed", "4294967296"],
    ["train", "--seed", "1.5"],
    ["train", "--classes", "3"],
    ["train", "--dataset", "blobs", "--classes", "3", "--loss", "hinge"],
    ["train", "--dataset", "blobs", "--classes", "1"],
    ["train", "--hidden", "100000,100000"],  # 10^10 parameters: refused at once, not an hour of building
    ["train", "--samples", "1000000"],
    ["demo", "--out", "/proc/no-such-folder"],  # refused before training, not after
    ["tour", "extra"],
]


@pytest.mark.parametrize("argv", BAD_ARGS, ids=lambda a: " ".join(a) or "(nothing)")
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("chainrule") and "error" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("mode", ["batched", "eager"])
@pytest.mark.parametrize("loss", ["hinge", "bce", "mse"])
def test_divergence_is_one_line_and_exit_1(capsys, tmp_path, mode, loss):
    if mode == "batched" and not BATCHED:
        pytest.skip("needs chainrule.batch")
    code, _, err = _run(capsys, "train", "--lr", "1e6", "--loss", loss,
                        "--samples", "20", "--steps", "30", "--mode", mode, "--no-progress",
                        "--out", str(tmp_path))
    assert code == 1
    assert len(err.splitlines()) == 1 and "training diverged at step" in err and "smaller --lr" in err
    assert not (tmp_path / "model.json").exists()


def test_out_that_is_a_file_is_a_usage_error(capsys, tmp_path):
    f = tmp_path / "taken"
    f.write_text("x")
    code, _, err = _run(capsys, "demo", "--out", str(f))
    assert code == 2 and "not a folder" in err and len(err.splitlines()) == 1


def test_interrupt_exits_130(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_tour", interrupted)
    code, _, err = _run(capsys, "tour")
    assert code == 130 and err == "chainrule: interrupted\n"


def _subprocess(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "chainrule", *argv], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("argv", [["demo", "--steps", "abc"], ["train", "--dataset", "mnist"], []])
def test_bad_arguments_in_a_real_process(argv):
    proc = _subprocess(*argv)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "chainrule"
    if not script.exists():
        pytest.skip("console script not installed in this environment")
    proc = subprocess.run([str(script), "demo", "--mode", "quantum"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1


def test_python_m_chainrule_runs_the_tour():
    proc = _subprocess("tour")
    assert proc.returncode == 0, proc.stderr
    assert "all gradients agree" in proc.stdout
