"""The `chainrule` command: the demo's numbers, its files, train, tour, graph, pipes and bad arguments."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import need_dot, page_data, png_size

from chainrule import cli, train
from chainrule.serialize import load
from chainrule.viz import plots

# micrograd's demo.ipynb, run with micrograd 0.1.0: the published log and its first steps in full.
MICROGRAD_STEP_LOSSES = [0.8958441028683222, 1.723590533697202, 0.7429006313851131]
DATASETS = ["moons", "circles", "blobs", "xor", "spirals"]
# Figures are 150 dpi: 7.2 x 4.8 in and 9.6 x 4.0 in.
BOUNDARY_SIZE, CURVES_SIZE = (1080, 720), (1440, 600)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_real_image(path: Path, size: tuple[int, int]) -> None:
    import matplotlib.image

    assert png_size(path) == size
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
    # stderr is not a terminal here: plain progress lines every 10%, no tqdm bar redrawn with \\r
    assert "training: 100/100 steps (100%)" in err and "\r" not in err


def test_demo_writes_two_real_pngs_and_the_model(demo_run):
    _, out, _, out_dir = demo_run
    for name in ("decision_boundary.png", "training_curves.png", "model.json"):
        assert f"wrote {out_dir / name}" in out
    _assert_real_image(out_dir / "decision_boundary.png", BOUNDARY_SIZE)
    _assert_real_image(out_dir / "training_curves.png", CURVES_SIZE)
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


def test_batched_and_eager_demo_agree(capsys, tmp_path):
    runs = []
    for mode in ("batched", "eager"):
        code, out, _ = _run(capsys, "demo", "--mode", mode, "--steps", "3", "--no-progress",
                            "--out", str(tmp_path / mode))
        assert code == 0
        runs.append({k: float(v.split()[3].rstrip(",")) for k, v in _step_lines(out).items()})
    assert runs[0] == pytest.approx(runs[1], abs=1e-12)


def test_compiled_demo_agrees_with_batched(capsys, tmp_path):
    # --mode compiled: the batched graph captured once by chainrule.compile, replayed at every step.
    runs = []
    for mode in ("batched", "compiled"):
        code, out, _ = _run(capsys, "demo", "--mode", mode, "--steps", "5", "--no-progress",
                            "--out", str(tmp_path / mode))
        assert code == 0 and f"{mode} mode" in out
        runs.append({k: float(v.split()[3].rstrip(",")) for k, v in _step_lines(out).items()})
    assert runs[1] == pytest.approx(runs[0], abs=1e-12)


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
    _assert_real_image(tmp_path / "decision_boundary.png", BOUNDARY_SIZE)
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


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_exits_zero(capsys, flag):
    from chainrule import __version__

    code, out, _ = _run(capsys, flag)
    assert code == 0 and out == f"chainrule {__version__}\n"


def test_help_exits_zero(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0 and "demo" in out and "train" in out and "tour" in out and "graph" in out


def test_help_loads_no_numpy() -> None:
    # --help must be instant: the commands import NumPy, matplotlib and the library's modules when they run.
    code = ("import sys, contextlib, io; from chainrule import cli\n"
            "for argv in ([], ['--help'], *([c, '--help'] for c in ('demo', 'train', 'tour', 'graph'))):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "        cli.main(argv)\n"
            "print(' '.join(m for m in ('numpy', 'matplotlib', 'tqdm') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_train_help_names_every_dataset_and_its_default_noise(capsys):
    from chainrule.data import DEFAULT_NOISE  # --help itself doesn't import it (NumPy)

    code, out, _ = _run(capsys, "train", "--help")
    help_text = " ".join(out.split())
    assert code == 0
    assert all(f"{name} {noise}" in help_text for name, noise in DEFAULT_NOISE.items()), help_text


BAD_ARGS = [
    [],
    ["bogus"],
    ["demo", "--steps", "x"],
    ["demo", "--steps", "0"],
    ["demo", "--steps", "101"],
    ["demo", "--mode", "gpu"],
    ["train", "--mode", "quantum", "--steps", "2"],
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
    ["train", "--dataset", "spirals", "--classes", "5", "--samples", "4"],  # a class with no point
    ["train", "--hidden", "100000,100000"],  # 10^10 parameters: refused at once, not an hour of building
    ["train", "--samples", "1000000"],
    ["demo", "--out", "/proc/no-such-folder"],  # refused before training, not after
    ["train", "--out", "/"],  # a folder of other files: refused unless --force
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


# ----- graph -------------------------------------------------------------------------------------------

NEURON = ["tanh(x1*w1 + x2*w2 + b)", "--at", "x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432"]


def test_prints_every_leaf_gradient_and_writes_html(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "neuron.html"
    assert cli.main(["graph", *NEURON, "--params", "w1,w2,b", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "tanh(x1*w1 + x2*w2 + b) = 0.7071"
    assert printed[1:6] == ["  dL/dx1 = -1.5000", "  dL/dw1 =  1.0000", "  dL/dx2 =  0.5000",
                            "  dL/dw2 =  0.0000", "  dL/db  =  0.5000"]
    assert printed[-1] == f"wrote {out}"
    page = out.read_text(encoding="utf-8")
    assert '"label":"w1","op":"","kind":"param"' in page
    assert '"label":"x1","op":"","kind":"input"' in page


def test_steps_flag_prints_the_text_stepper(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["graph", "a + a", "--at", "a=3", "--steps"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == ["  1. a + a (+) → a: grad(a) += 1.0000 × 1.0000 = 1.0000 → 1.0000",
                          "  2. a + a (+) → a: grad(a) += 1.0000 × 1.0000 = 1.0000 → 2.0000"]


# ----- graph --forward NAME: forward mode's tangent steps and both modes' counts -----------------------
def test_forward_flag_steps_the_tangent_and_counts_both_modes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["graph", "a + a*b", "--at", "a=3,b=2", "--forward", "b"]) == 0
    assert capsys.readouterr().out.splitlines()[3:] == [
        "forward mode for d/db, one node at a time (ṫ(b) = 1, the other names 0; ṫ = Σ local × ṫ(input)):",
        "  1. a*b (*): ṫ = 2.0000 × ṫ(a) + 3.0000 × ṫ(b) = 2.0000 × 0.0000 + 3.0000 × 1.0000 = 3.0000",
        "  2. a + a*b (+): ṫ = 1.0000 × ṫ(a) + 1.0000 × ṫ(a*b) = 1.0000 × 0.0000 + 1.0000 × 3.0000 = 3.0000",
        "  d(a + a*b)/db = 3.0000, as backward's dL/db",
        "the whole gradient (2 names): forward mode 2 passes × 4 = 8 multiply-adds, "
        "reverse mode 1 pass × 4 = 4"]


def test_forward_flag_on_the_neuron_after_the_backward_steps(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["graph", *NEURON, "--steps", "--forward", "x1"]) == 0
    out = capsys.readouterr().out
    assert out.index("backward, one edge at a time") < out.index("forward mode for d/dx1")
    assert "  d(tanh(x1*w1 + x2*w2 + b))/dx1 = -1.5000, as backward's dL/dx1\n" in out
    assert out.endswith("forward mode 5 passes × 9 = 45 multiply-adds, reverse mode 1 pass × 9 = 9\n")


def test_forward_flag_on_a_leaf_and_on_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["graph", "x", "--at", "x=1", "--forward", "x"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == "x is a leaf: forward mode has no edges to step through"
    assert cli.main(["graph", "x*y", "--at", "x=1,y=2", "--forward", "z"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("chainrule graph: error: --forward: no name 'z' in the expression "
                            "(names: x, y)\n")


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_svg_and_png_with_graphviz(tmp_path: Path, suffix: str) -> None:
    need_dot()
    out = tmp_path / f"n{suffix}"
    assert cli.main(["graph", *NEURON, "--out", str(out)]) == 0
    assert out.stat().st_size > 1000


def test_svg_without_graphviz_writes_html_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli.main(["graph", *NEURON, "--out", str(tmp_path / "n.svg")]) == 0
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
    (["a", "--at", "a=1", "--params", "w"], "--params names not in the expression: w"),
    (["a", "--at", "a=1", "--out", "g.pdf"], "use one of .svg, .png, .html"),
    (["a", "--at", "a=1", "--out", "/no-such-chainrule-dir/g.html"], "--out: no such folder"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], words: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["graph", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("chainrule graph: error: ")
    assert words in err[0]


@pytest.mark.parametrize(("args", "column", "engine"), [
    (["1/x", "--at", "x=0"], 2, "division by zero: Value(data=1.0, label='1') / Value(data=0.0, label='x')"),
    (["exp(x)", "--at", "x=1000"], 1, "exp overflow: Value(data=1000.0, label='x')"),
    (["a**b", "--at", "a=10,b=400"], 2,
     "** failed (result too large): Value(data=10.0, label='a') ** Value(data=400.0, label='b')"),
    (["log(x)*0", "--at", "x=0"], 1, "log of non-positive input: Value(data=0.0, label='x')"),
])
def test_arithmetic_the_engine_refuses_is_its_message_on_one_line_exit_1(
        args: list[str], column: int, engine: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["graph", *args]) == 1  # the input is well formed: the computation failed
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"chainrule graph: error: expression error at column {column}: "
                                         f"{engine}"]


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


def test_a_minus_at_the_start_of_an_expression_is_not_an_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["graph", "-x*y", "--at", "x=1,y=2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["-x*y = -2.0000", "  dL/dx = -2.0000", "  dL/dy = -1.0000"]


def test_an_infinite_slope_is_printed_not_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # sqrt at 0: the value is 0, only the slope is infinite (PyTorch's convention, which the engine follows).
    assert cli.main(["graph", "x**0.5", "--at", "x=0"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["x**0.5 = 0.0000", "  dL/dx =  inf"]
    assert captured.err.splitlines() == [
        "note: dL/dx = inf: the local derivative of ** is inf (x**0.5 (**) → x)"]


@pytest.mark.parametrize(("args", "grads", "notes"), [
    (["x**0.5*y", "--at", "x=0,y=0"], ["  dL/dx =  nan", "  dL/dy =  0.0000"],
     ["note: dL/dx = nan: 0 × inf in the chain rule (x**0.5 (**) → x: local inf × upstream 0)"]),
    (["x**0.5*0 + y**0.5*0", "--at", "x=0,y=0"], ["  dL/dx =  nan", "  dL/dy =  nan"],
     ["note: dL/dx = nan: 0 × inf in the chain rule (x**0.5 (**) → x: local inf × upstream 0)",
      "note: dL/dy = nan: 0 × inf in the chain rule (y**0.5 (**) → y: local inf × upstream 0)"]),
    (["x**0.5 - x**0.5", "--at", "x=0"], ["  dL/dx =  nan"],
     ["note: dL/dx = nan: inf + -inf where two paths meet at x"]),
    (["log(x)*1e300", "--at", "x=1e-10"], ["  dL/dx =  inf"],
     ["note: dL/dx = inf: local × upstream is too large for a float (log(x) (log) → x: local 1e+10 × "
      "upstream 1e+300)"]),
    (["x*y", "--at", "x=2,y=3"], ["  dL/dx =  3.0000", "  dL/dy =  2.0000"], []),  # all finite: no note
])
def test_a_gradient_that_is_not_finite_comes_with_a_note_saying_why(
        args: list[str], grads: list[str], notes: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["graph", *args]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1:] == grads
    assert captured.err.splitlines() == notes


def test_a_leaf_has_no_steps(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["graph", "x", "--at", "x=1", "--steps"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "x is a leaf: backward has no edges to step through"


@pytest.mark.parametrize("target", ["/proc/g.svg", "{tmp}/folder.html"])
def test_an_unwritable_out_file_fails_before_printing(tmp_path: Path, target: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "folder.html").mkdir()  # a folder where the file should go
    path = target.format(tmp=tmp_path)
    assert cli.main(["graph", *NEURON, "--out", path]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"chainrule graph: error: --out: cannot write {path}: ")
    assert len(captured.err.splitlines()) == 1


def test_the_out_file_check_leaves_nothing_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "old.html"
    existing.write_text("keep me")
    assert cli.main(["graph", "a**b", "--at", "a=10,b=400", "--out", str(existing)]) == 1  # overflow
    assert cli.main(["graph", "x", "--at", "x=1", "--params", "y", "--out", str(tmp_path / "new.svg")]) == 2
    assert existing.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["old.html"]


def test_too_big_a_graph_to_draw_is_refused_before_printing(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path) -> None:
    expr = " + ".join(["x"] * 400)
    assert cli.main(["graph", expr, "--at", "x=1", "--out", str(tmp_path / "g.html")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "too many to draw" in captured.err
    assert cli.main(["graph", expr, "--at", "x=1"]) == 0  # printing its gradient is fine


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_without_graphviz_the_html_written_is_named_on_stdout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], suffix: str,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on it
    assert cli.main(["graph", *NEURON, "--out", str(tmp_path / f"n{suffix}")]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == f"wrote {tmp_path / 'n.html'}"
    assert "not on the PATH" in captured.err and not (tmp_path / f"n{suffix}").exists()


def test_a_drawing_that_fails_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import chainrule.viz

    def full_disk(*args: object, **kwargs: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(chainrule.viz, "render", full_disk)
    assert cli.main(["graph", *NEURON, "--out", str(tmp_path / "n.html")]) == 1
    assert capsys.readouterr().err == "chainrule graph: error: [Errno 28] No space left on device\n"


# ----- every loss on every dataset, in every mode -----------------------------------------------------


@pytest.fixture
def quick_pictures(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """Stand-ins for the plots (drawn for real by the tests above and in test_plots): they score the grid's
    corners with the trained model, as the boundary does, and save a 1x1 inch figure."""
    from matplotlib.figure import Figure

    import chainrule.viz.plots as plots

    calls: list[tuple[object, ...]] = []

    def boundary(model: object, X: np.ndarray, y: np.ndarray, *, title: str) -> Figure:
        calls.append((train.predict(model, X[:4]), title))  # type: ignore[arg-type]
        return Figure(figsize=(1, 1))

    monkeypatch.setattr(plots, "decision_boundary", boundary)
    monkeypatch.setattr(plots, "training_curves", lambda history, *, title: Figure(figsize=(1, 1)))
    return calls


@pytest.mark.parametrize("mode", train.MODES)
@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("loss", train.LOSSES)
def test_every_loss_dataset_and_mode_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path, loss: str,
                                          dataset: str, mode: str, quick_pictures: list[tuple[object, ...]],
                                          ) -> None:
    # --loss ce with 2 classes (two outputs, softmax) crashed in both modes.
    code, out, err = _run(capsys, "train", "--loss", loss, "--dataset", dataset, "--mode", mode,
                          "--steps", "3", "--samples", "20", "--hidden", "4", "--no-progress",
                          "--out", str(tmp_path))
    assert code == 0, err
    assert re.fullmatch(r"step 2 loss [0-9.e-]+, accuracy \d{1,3}\.\d%", _step_lines(out)[2])
    assert load(tmp_path / "model.json").num_parameters() == (17 if loss != "ce" else 22)
    (predicted, title), = quick_pictures
    assert set(predicted.tolist()) <= {0, 1} and title.startswith(f"{dataset}, {loss} loss, sgd: ")


@pytest.mark.parametrize("dataset", DATASETS)
def test_mse_converges_at_its_default_rate(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           dataset: str) -> None:
    code, out, err = _run(capsys, "train", "--loss", "mse", "--dataset", dataset, "--no-progress",
                          "--out", str(tmp_path))
    assert code == 0, err  # at the old default lr 1.0, moons diverged at step 2
    steps = _step_lines(out)
    assert float(steps[99].split()[3].rstrip(",")) < 0.5 * float(steps[0].split()[3].rstrip(","))


def test_a_huge_learning_rate_is_diverged_not_a_final_loss_of_1e29(capsys: pytest.CaptureFixture[str],
                                                                  tmp_path: Path) -> None:
    code, out, err = _run(capsys, "train", "--lr", "100", "--no-progress", "--out", str(tmp_path))
    assert code == 1
    assert re.fullmatch(r"chainrule train: error: training diverged at step \d+ \(the loss grew from .*\); "
                        r"try a smaller --lr\n", err)
    assert "final loss" not in out and list(tmp_path.iterdir()) == []


def test_percentages_are_rounded(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # 7 of 50 right is 14.000000000000002% in floating point.
    code, out, _ = _run(capsys, "train", "--samples", "50", "--steps", "12", "--no-progress", "--out",
                        str(tmp_path))
    assert code == 0
    for line in [*_step_lines(out).values(), next(x for x in out.splitlines() if x.startswith("trained"))]:
        assert re.search(r"accuracy \d{1,3}\.\d%$", line), line


# ----- --out, --force, --explorer ---------------------------------------------------------------------


def test_out_holding_other_files_is_refused_unless_forced(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    argv = ["train", "--steps", "2", "--samples", "10", "--no-progress", "--out", str(tmp_path)]
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert err == (f"chainrule train: error: --out {tmp_path} holds files chainrule did not write "
                   "(thesis.tex): pick an empty or new folder, or --force\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]
    code, _, _ = _run(capsys, *argv, "--force")
    assert code == 0 and (tmp_path / "model.json").exists() and (tmp_path / "thesis.tex").exists()


def test_a_folder_chainrule_wrote_may_be_written_again(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    argv = ["demo", "--steps", "2", "--no-progress", "--explorer", "--health", "--out", str(tmp_path)]
    assert _run(capsys, *argv)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(plots.OUTPUTS)
    assert _run(capsys, *argv)[0] == 0


@pytest.mark.parametrize("argv", [["demo"], ["train", "--loss", "ce", "--hidden", "4,3"]])
def test_explorer_shows_the_trained_model_by_neuron(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    argv: list[str]) -> None:
    code, out, _ = _run(capsys, *argv, "--steps", "2", "--no-progress", "--explorer", "--out", str(tmp_path))
    assert code == 0 and f"wrote {tmp_path / 'explorer.html'}" in out
    page = (tmp_path / "explorer.html").read_text(encoding="utf-8")
    model = load(tmp_path / "model.json")
    neurons = sum(len(layer.neurons) for layer in model.layers)  # type: ignore[attr-defined]
    assert all(f'"name":"L{i}.N0"' in page for i in range(len(model.layers)))  # type: ignore[attr-defined]
    assert page.count('"name":"L') == neurons
    assert '"label":"loss"' in page  # traced on a training point, through its loss


def test_explorer_of_a_wide_model_groups_by_layer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "train", "--hidden", "320", "--steps", "1", "--samples", "10",
                        "--no-progress", "--explorer", "--out", str(tmp_path))
    assert code == 0, err
    page = (tmp_path / "explorer.html").read_text(encoding="utf-8")
    assert '"name":"L0"' in page and '"name":"L0.N0"' not in page


def test_explorer_that_cannot_be_drawn_is_one_line_and_exit_1(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import chainrule.viz.plots

    def too_large(*args: object, **kwargs: object) -> Path:
        raise chainrule.viz.GraphTooLargeError("graph has 999 boxes to draw")

    monkeypatch.setattr(chainrule.viz.plots, "render", too_large)
    code, _, err = _run(capsys, "demo", "--steps", "1", "--no-progress", "--explorer", "--out", str(tmp_path))
    assert code == 1 and err == "chainrule demo: error: explorer.html: graph has 999 boxes to draw\n"


def test_a_write_failing_after_training_is_one_line_and_exit_1(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import chainrule.serialize

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(chainrule.serialize, "save", full_disk)
    code, _, err = _run(capsys, "demo", "--steps", "1", "--no-progress", "--out", str(tmp_path))
    assert code == 1
    assert err == f"chainrule demo: error: cannot write to {tmp_path}: No space left on device\n"


# ----- the garbage collector -------------------------------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("outcome", ["trained", "diverged"])
def test_training_runs_with_the_cyclic_collector_off_and_restores_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, enabled: bool,
        outcome: str) -> None:
    # The graphs have no cycles, so the collector only rescans them as they grow: the CLI, which is the
    # application, turns it off while training (the library never does, test_train checks).
    seen: list[bool] = []
    real_fit = train.fit

    def fit(*args: object, **kwargs: object) -> train.History:
        seen.append(gc.isenabled())
        if outcome == "diverged":
            raise train.Diverged(0, "the loss is nan")
        return real_fit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(train, "fit", fit)
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        code, _, _ = _run(capsys, "demo", "--steps", "2", "--no-progress", "--out", str(tmp_path))
        after = gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
    assert code == (0 if outcome == "trained" else 1)
    assert seen == [False] and after == enabled


# ----- progress, pipes ------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_tqdm_bar(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stdout, stderr = io.StringIO(), _Terminal()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    assert cli.main(["demo", "--steps", "5", "--out", str(tmp_path)]) == 0
    assert "\r" in stderr.getvalue() and "5/5" in stderr.getvalue()  # redrawn in place
    assert "steps (" not in stderr.getvalue()  # not the plain lines meant for pipes
    assert "step 4 loss" in stdout.getvalue() and "\r" not in stdout.getvalue()


def test_no_progress_means_nothing_on_stderr(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "demo", "--steps", "5", "--no-progress", "--out", str(tmp_path))
    assert code == 0 and err == ""


def test_piped_output_has_plain_lines_and_no_carriage_returns(tmp_path: Path) -> None:
    proc = _subprocess("demo", "--steps", "20", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout and "\r" not in proc.stderr
    assert proc.stderr.splitlines() == [f"training: {k}/20 steps ({k * 5}%)" for k in range(2, 21, 2)]
    assert list(_step_lines(proc.stdout)) == [0, 10, 19]


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    argv = [sys.executable, "-m", "chainrule", "demo", "--steps", "5", "--out", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before the first line, as `head` does after its last
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == cli.EXIT_PIPE
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


def test_demo_piped_into_head(tmp_path: Path) -> None:
    command = f"{sys.executable} -m chainrule demo --out {tmp_path} | head -2"
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.stdout.splitlines()[1] == "step 0 loss 0.8958441028683222, accuracy 50.0%"
    assert len(proc.stdout.splitlines()) == 2
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr


# ----- names: makemore's and microgpt's character models -------------------------------------------------
MICROGPT_FIRST = [3.3659669475848504, 3.4242727838717717, 3.1775778689839966]


def _log(path: Path) -> list[dict[str, float]]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def microgpt_cli(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, float]], Path]:
    out = tmp_path_factory.mktemp("microgpt")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["names", "--preset", "microgpt", "--steps", "20", "--out", str(out / "run"),
                         "--log-json", str(out / "log.jsonl"), "--sample", "5"])
    assert code == 0
    return stdout.getvalue(), _log(out / "log.jsonl"), out / "run"


NamesRun = tuple[str, list[dict[str, float]], Path]


def test_names_preset_reproduces_microgpts_losses(microgpt_cli: NamesRun) -> None:
    out, log, _ = microgpt_cli
    steps = [r for r in log if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 21))
    assert [r["loss"] for r in steps[:3]] == pytest.approx(MICROGPT_FIRST, abs=1e-12)
    assert "step    1 /   20 | loss 3.3660" in out  # microgpt's own line
    assert all(r["seconds"] > 0 for r in steps)
    assert out.count("sample ") == 5 and "samples at temperature 0.5" in out


def test_names_log_json_has_every_step_each_evaluation_and_the_final_val_loss(
        microgpt_cli: tuple[str, list[dict[str, float]], Path]) -> None:
    _, log, _ = microgpt_cli
    evals = [r for r in log if "val_loss" in r and "step" in r]
    assert [r["step"] for r in evals] == list(range(2, 21, 2))
    assert set(log[-1]) == {"val_loss"} and log[-1]["val_loss"] == evals[-1]["val_loss"]
    assert 2.0 < log[-1]["val_loss"] < 3.3


def test_names_writes_the_pictures_and_the_model(microgpt_cli: NamesRun) -> None:
    _, _, folder = microgpt_cli
    assert sorted(p.name for p in folder.iterdir()) == ["attention.png", "embeddings.png", "loss.png",
                                                        "model.json"]
    _assert_real_image(folder / "loss.png", (1080, 600))
    _assert_real_image(folder / "embeddings.png", (840, 780))
    assert png_size(folder / "attention.png")[0] > 1000
    assert load(folder / "model.json").config()["type"] == "GPT"


def test_names_load_samples_from_a_saved_model(capsys: pytest.CaptureFixture[str],
                                              microgpt_cli: tuple[str, list[dict[str, float]], Path]) -> None:
    code, out, _ = _run(capsys, "names", "--load", str(microgpt_cli[2] / "model.json"), "--sample", "3",
                        "--temperature", "0.5")
    assert code == 0
    assert out.startswith("GPT(1 layer, n_embd 16") and "val loss" in out
    assert len([line for line in out.splitlines() if line.startswith("sample ")]) == 3
    assert _run(capsys, "names", "--load", str(microgpt_cli[2] / "model.json"), "--sample", "3",
                "--temperature", "0.5")[1] == out  # same seed, same samples


@pytest.mark.parametrize("model", ["bigram", "mlp", "gpt"])
def test_names_same_seed_same_losses_and_samples(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                  model: str) -> None:
    argv = ["names", "--model", model, "--steps", "4", "--batch", "16", "--sample", "4", "--no-progress",
            "--eval-every", "0"]
    first = _run(capsys, *argv, "--out", str(tmp_path / "a"))
    second = _run(capsys, *argv, "--out", str(tmp_path / "b"))
    assert first[0] == second[0] == 0
    strip = lambda out: [line for line in out.splitlines() if " in " not in line and "wrote" not in line]
    assert strip(first[1]) == strip(second[1])
    other = _run(capsys, *argv, "--seed", "7", "--out", str(tmp_path / "c"))
    assert strip(other[1]) != strip(first[1])


def test_names_modes_give_the_same_losses(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    logs = []
    for mode in ("eager", "batched", "compiled"):
        path = tmp_path / f"{mode}.jsonl"
        code, _, _ = _run(capsys, "names", "--model", "mlp", "--steps", "3", "--batch", "8", "--mode", mode,
                          "--out", str(tmp_path / mode), "--log-json", str(path), "--no-progress")
        assert code == 0
        logs.append([r["loss"] for r in _log(path) if "loss" in r])
    assert logs[1] == pytest.approx(logs[0], rel=1e-12) and logs[2] == pytest.approx(logs[0], rel=1e-12)


@pytest.mark.parametrize("model", ["bigram", "mlp"])
def test_names_explorer_draws_one_prediction(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             model: str) -> None:
    code, out, _ = _run(capsys, "names", "--model", model, "--steps", "2", "--batch", "8", "--explorer",
                        "--out", str(tmp_path), "--no-progress")
    assert code == 0 and f"wrote {tmp_path / 'explorer.html'}" in out
    page = (tmp_path / "explorer.html").read_text()
    assert "-log p(" in page and ("fc1 + tanh" in page) == (model == "mlp")


@pytest.mark.parametrize(("argv", "words"), [
    (["--model", "rnn"], "--model: choose one of bigram, mlp, gpt, got 'rnn'"),
    (["--temperature", "0"], "argument --temperature: expected a temperature > 0"),
    (["--temperature", "-0.5"], "argument --temperature: expected a temperature > 0"),
    (["--temperature", "nan"], "argument --temperature: expected a temperature > 0"),
    (["--steps", "0"], "argument --steps: expected a positive integer, got '0'"),
    (["--block", "0"], "--block: expected a positive integer, got 0"),
    (["--model", "bigram", "--block", "2"], "(a bigram reads 1)"),
    (["--mode", "lazy"], "--mode: choose one of eager, batched, compiled"),
    (["--sample", "0"], "--sample: expected a positive integer, got 0"),
    (["--eval-every", "-1"], "--eval-every: expected a number >= 0"),
    (["--preset", "microgpt", "--model", "mlp"], "--preset microgpt trains a gpt"),
    (["--model", "gpt", "--explorer"], "--explorer draws one prediction of a bigram or mlp"),
    (["--load", "model.json", "--health"], "--health watches a training run; --load trains nothing"),
    (["--optimizer", "lbfgs"], "argument --optimizer: invalid choice"),
])
def test_names_bad_arguments_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     argv: list[str], words: str) -> None:
    code, out, err = _run(capsys, "names", *argv, "--out", str(tmp_path / "out"))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and words in err and err.startswith("chainrule names: error:")


@pytest.mark.parametrize(("content", "words"), [
    (None, "no such file"),
    (b"\x89PNG\r\n", "not a text file"),
    (b'{"format": "chainrule-model", "version": 1', "not valid JSON"),
    (b'{"format": "pickle"}', "not a chainrule model"),
])
def test_names_a_bad_load_file_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                      content: bytes | None, words: str) -> None:
    path = tmp_path / "model.json"
    if content is not None:
        path.write_bytes(content)
    code, out, err = _run(capsys, "names", "--load", str(path))
    assert code == 1 and out == "" and len(err.splitlines()) == 1 and words in err


def test_names_load_refuses_a_classifier(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         demo_run: tuple[int, str, Path]) -> None:
    folder = next(p for p in demo_run if isinstance(p, Path))
    code, _, err = _run(capsys, "names", "--load", str(folder / "model.json"))
    assert code == 1 and "not a model of names" in err


def test_names_piped_and_into_a_closed_pipe(tmp_path: Path) -> None:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    argv = [sys.executable, "-m", "chainrule", "names", "--model", "bigram", "--steps", "10", "--batch", "64",
            "--out", str(tmp_path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [f"training: {k}/10 steps ({k * 10}%)" for k in range(1, 11)]
    closed = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert closed.stdout is not None and closed.stderr is not None
    closed.stdout.close()
    err = closed.stderr.read().decode()
    assert closed.wait(timeout=120) == cli.EXIT_PIPE
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_names_on_a_terminal_gets_the_tqdm_bar(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stdout, stderr = io.StringIO(), _Terminal()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    argv = ["names", "--model", "bigram", "--steps", "5", "--batch", "32", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    assert "\r" in stderr.getvalue() and "5/5" in stderr.getvalue() and "steps (" not in stderr.getvalue()
    assert "step    5 /    5 | loss" in stdout.getvalue() and "\r" not in stdout.getvalue()


# ----- --health: makemore's pictures of a network's health (chainrule.health) -------------------------------
HEALTH_SIZE = (2160, 1140)  # 14.4 x 7.6 in at 150 dpi


@pytest.mark.parametrize("mode", ["batched", "eager", "compiled"])
def test_train_health_writes_health_png_and_prints_its_path(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path, mode: str) -> None:
    code, out, err = _run(capsys, "train", "--activation", "tanh", "--steps", "6", "--samples", "30",
                          "--mode", mode, "--health", "--no-progress", "--out", str(tmp_path))
    assert code == 0, err
    assert out.splitlines()[-1] == f"wrote {tmp_path / 'health.png'}"
    _assert_real_image(tmp_path / "health.png", HEALTH_SIZE)


def test_train_without_health_writes_no_health_png(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    code, out, _ = _run(capsys, "train", "--steps", "2", "--samples", "30", "--no-progress",
                        "--out", str(tmp_path))
    assert code == 0 and "health.png" not in out and not (tmp_path / "health.png").exists()


@pytest.mark.parametrize("model", ["bigram", "mlp", "gpt"])
def test_names_health_writes_health_png_and_prints_its_path(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path, model: str) -> None:
    code, out, err = _run(capsys, "names", "--model", model, "--steps", "3", "--batch", "8", "--sample", "1",
                          "--eval-every", "0", "--health", "--no-progress", "--out", str(tmp_path))
    assert code == 0, err
    assert out.splitlines()[-1] == f"wrote {tmp_path / 'health.png'}"
    _assert_real_image(tmp_path / "health.png", HEALTH_SIZE)


# ----- graph --exercise: the explorer page that asks for each grad -------------------------------------
def test_exercise_flag_writes_the_exercise_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ex.html"
    argv = ["graph", "(a*b + c)*f", "--at", "a=2,b=-3,c=10,f=-2", "--out", str(out), "--exercise"]
    assert cli.main(argv) == 0
    # the value, a line saying where the exercise is, the page: no grad printed (they are the answers)
    assert capsys.readouterr().out.splitlines() == [
        "(a*b + c)*f = -8.0000", "the grads of a, b, c, f are the exercise: fill them in on the page",
        f"wrote {out}"]
    exercise = page_data(out.read_text(encoding="utf-8"))["exercise"]
    assert isinstance(exercise, dict)
    assert sorted(a["text"] for a in exercise["ask"]) == sorted(["6.0000", "-4.0000", "-2.0000", "-2.0000",
                                                                  "-2.0000", "4.0000"])


@pytest.mark.parametrize("out", [None, "g.svg", "g.png"])
def test_exercise_without_an_html_out_is_a_usage_error(out: str | None, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    args = ["graph", "a*b", "--at", "a=1,b=2", "--exercise"]
    args += [] if out is None else ["--out", str(tmp_path / out)]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("chainrule graph: error: --exercise needs --out PAGE.html (the exercise is the "
                            "HTML explorer)\n")
    assert list(tmp_path.iterdir()) == []


def test_forward_with_an_html_out_writes_the_forward_page(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fwd.html"
    assert cli.main(["graph", *NEURON, "--forward", "x1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "forward mode for d/dx1" in printed and printed.splitlines()[-1] == f"wrote {out}"
    forward = page_data(out.read_text(encoding="utf-8"))["forward"]
    assert isinstance(forward, dict) and forward["counts"] == {"per_pass": 9, "forward": 45, "reverse": 9}
    assert cli.main(["graph", *NEURON, "--out", str(out)]) == 0
    assert page_data(out.read_text(encoding="utf-8"))["forward"] is None


def test_exercise_and_steps_together_is_a_usage_error(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g.html"
    assert cli.main(["graph", "a*b", "--at", "a=1,b=2", "--steps", "--exercise", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not out.exists()
    assert captured.err == ("chainrule graph: error: --exercise hides the grads that --steps prints: "
                            "choose one\n")


def test_exercise_and_forward_together_is_a_usage_error(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "g.html")
    assert cli.main(["graph", "a*b", "--at", "a=1,b=2", "--forward", "a", "--exercise", "--out", out]) == 2
    assert capsys.readouterr().err == ("chainrule graph: error: --exercise and --forward are two pages: "
                                       "choose one\n")
