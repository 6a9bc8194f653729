"""chainrule.viz.plots: the decision boundary and the training curves, as figures and as PNG pixels."""

from __future__ import annotations

import io
import random
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from conftest import png_size
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from chainrule.data import make_moons
from chainrule.nn import MLP
from chainrule.serialize import load
from chainrule.train import History, fit
from chainrule.viz.plots import (
    DPI,
    OUTPUTS,
    FolderInUseError,
    class_colours,
    decision_boundary,
    explore_training_point,
    prepare_folder,
    save_run,
    training_curves,
)


def _linear(weights: list[list[float]], biases: list[float]) -> MLP:
    """A one-layer model with the given weights: its boundaries are known lines."""
    model = MLP(2, [len(weights)], "linear", "linear")
    for neuron, w, b in zip(model.layers[0].neurons, weights, biases, strict=True):
        neuron.w[0].data, neuron.w[1].data = w
        neuron.b.data = b
    return model


def _pixels(fig: Figure) -> np.ndarray:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    buffer.seek(0)
    return np.asarray(matplotlib.image.imread(buffer, format="png"))[..., :3]


def _boundary_vertices(fig: Figure) -> np.ndarray:
    (ax,) = fig.axes[:1]
    lines = [c for c in ax.collections if isinstance(c, ContourSet) and not c.filled]
    return np.concatenate([p.vertices for c in lines for p in c.get_paths() if len(p.vertices)])


POINTS = np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, 0.5], [1.0, -0.5]])


def test_a_figure_at_150_dpi_with_a_legend_of_the_classes() -> None:
    X, y = make_moons(40, noise=0.1, random_state=0)
    model = MLP(2, [8, 1], "relu", "linear", rng=random.Random(0))
    fig = decision_boundary(model, X, y, title="moons")
    assert isinstance(fig, Figure) and fig.dpi == DPI == 150
    ax = fig.axes[0]
    assert ax.get_title() == "moons"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class 0", "class 1"]
    pixels = _pixels(fig)
    assert pixels.shape[:2] == (720, 1080)
    assert (pixels < 0.95).any(axis=-1).mean() > 0.3  # regions are filled, not a blank canvas


def test_the_boundary_is_where_the_score_is_zero_not_a_staircase() -> None:
    # score = x0 + 2·x1 - 0.3: the boundary is that line. A boundary traced from the predicted classes
    # on a grid would be off by up to a grid cell, in steps.
    model = _linear([[1.0, 2.0]], [-0.3])
    vertices = _boundary_vertices(decision_boundary(model, POINTS, [0, 1, 1, 0], resolution=50))
    assert len(vertices) >= 2
    assert np.abs(vertices[:, 0] + 2 * vertices[:, 1] - 0.3).max() < 1e-9


def test_class_0_meeting_class_6_is_one_thin_line() -> None:
    # Seven outputs; only class 0 (left of x0 = 0) and class 6 (right) ever win. Contours of the class
    # index drew six lines there (levels 0.5 ... 5.5), a thick black band.
    weights = [[-1.0, 0.0]] + [[0.0, 0.0]] * 5 + [[1.0, 0.0]]
    model = _linear(weights, [0.0] + [-5.0] * 5 + [0.0])
    fig = decision_boundary(model, POINTS, [0, 6, 0, 6], resolution=101)
    vertices = _boundary_vertices(fig)
    assert np.abs(vertices[:, 0]).max() < 1e-9  # every line drawn lies on x0 = 0
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["class 0", "class 6"]
    # In pixels: across the middle row, the dark line is at most ~2 px wide (0.8 pt at 150 dpi).
    pixels = _pixels(fig)
    row = pixels[pixels.shape[0] // 2, :, :]
    dark = np.flatnonzero(row.mean(axis=-1) < 0.45)
    frame = dark[(dark > 200) & (dark < 900)]  # inside the axes, away from its frame
    assert 1 <= len(frame) <= 3, frame


def test_a_model_trained_eagerly_gets_a_boundary_where_its_score_is_zero() -> None:
    X, y = make_moons(20, noise=0.1, random_state=1)
    model = MLP(2, [4, 1], "relu", "linear", rng=random.Random(0))
    fit(model, X, y, steps=3, mode="eager")
    vertices = _boundary_vertices(decision_boundary(model, X, y))
    # Scored one point at a time, eagerly, as it was trained: ~0 all along the line drawn (a relu kink
    # inside a grid cell bends the true line within that cell only).
    scores = np.array([model(list(v)).data for v in vertices])  # type: ignore[union-attr]
    assert len(vertices) > 100
    assert np.abs(scores).max() < 1e-2


def test_plotting_builds_no_graph_and_changes_no_weight() -> None:
    model = _linear([[1.0, 2.0]], [-0.3])
    before = [(p.data, p.grad) for p in model.parameters()]
    decision_boundary(model, POINTS, [0, 1, 1, 0], resolution=20)
    assert [(p.data, p.grad) for p in model.parameters()] == before


def test_plots_print_nothing_and_leave_pyplot_alone(capsys: pytest.CaptureFixture[str]) -> None:
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()
    decision_boundary(_linear([[1.0, 2.0]], [-0.3]), POINTS, [0, 1, 1, 0], resolution=20)
    training_curves(History([1.0, 0.5], [0.5, 1.0]))
    assert plt.get_fignums() == open_before
    assert capsys.readouterr() == ("", "")


def test_class_colours_are_distinct_for_many_classes() -> None:
    for n in (2, 7, 12):
        colours = class_colours(n)
        assert colours.shape == (n, 4)
        assert len({tuple(np.round(c, 3)) for c in colours}) == n


def test_training_curves_show_loss_on_a_log_scale_and_accuracy_in_percent() -> None:
    fig = training_curves(History([1.0, 0.1, 0.01], [0.5, 0.75, 1.0]), title="run")
    left, right = fig.axes
    assert left.get_yscale() == "log"
    assert list(left.get_lines()[0].get_ydata()) == [1.0, 0.1, 0.01]
    assert list(right.get_lines()[0].get_ydata()) == [50.0, 75.0, 100.0]
    assert _pixels(fig).shape[:2] == (600, 1440)


@pytest.mark.parametrize(("call", "words"), [
    (lambda m: decision_boundary(m, np.zeros((4, 3)), [0, 1, 0, 1]), r"X must have shape \(n, 2\)"),
    (lambda m: decision_boundary(m, np.zeros((0, 2)), []), r"X must have shape \(n, 2\)"),
    (lambda m: decision_boundary(m, POINTS, [0, 1]), "one label per point: 4 points"),
    (lambda m: decision_boundary(m, POINTS, [0, 1, 1, 0], resolution=1), r"resolution must be an integer"),
    (lambda m: decision_boundary(m, POINTS, [0, 1, 1, 0], resolution=1e3), r"resolution must be an integer"),
    (lambda m: training_curves(History()), "at least one step"),
])
def test_bad_input_is_refused_with_a_clear_message(call, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=words):
        call(_linear([[1.0, 2.0]], [-0.3]))


def test_the_explorer_shows_the_least_sure_point_by_neuron(tmp_path: Path) -> None:
    model = _linear([[1.0, 2.0]], [-0.3])  # score x0 + 2·x1 - 0.3
    X = np.array([[2.0, 2.0], [0.2, 0.1], [-2.0, -1.0]])  # scores 5.7, 0.1, -4.3
    written = explore_training_point(model, X, [1, 1, 0], "hinge", tmp_path / "p.html")
    page = written.read_text(encoding="utf-8")
    assert written == tmp_path / "p.html"
    assert "training point 1: x = (0.2, 0.1), class 1" in page  # the smallest margin
    assert '"name":"L0.N0"' in page and '"label":"loss"' in page


def test_the_explorer_of_a_wide_model_draws_its_layers(tmp_path: Path) -> None:
    model = MLP(2, [320, 1], "relu", "linear", rng=random.Random(0))
    page = explore_training_point(model, POINTS, [0, 1, 1, 0], "bce", tmp_path / "w.html").read_text("utf-8")
    assert '"name":"L0"' in page and '"name":"L0.N0"' not in page


def test_the_explorer_refuses_an_unknown_loss_and_labels_that_are_not_classes(tmp_path: Path) -> None:
    model = _linear([[1.0, 2.0]], [-0.3])
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        explore_training_point(model, POINTS, [0, 1, 1, 0], "l1", tmp_path / "p.html")
    with pytest.raises(ValueError, match=r"y must hold a class index in \[0, 2\)"):
        explore_training_point(model, POINTS, [0, 1, 1, 5], "hinge", tmp_path / "p.html")
    assert list(tmp_path.iterdir()) == []


# ----- a run's folder ----------------------------------------------------------------------------------


def test_save_run_writes_the_pictures_and_the_model(tmp_path: Path) -> None:
    X, y = make_moons(20, noise=0.1, random_state=0)
    model = MLP(2, [4, 1], "relu", "linear", rng=random.Random(0))
    history = fit(model, X, y, steps=2)
    written = save_run(model, X, y, history, tmp_path, loss="hinge", title="moons")
    assert written == [tmp_path / name for name in OUTPUTS[:3]]
    assert png_size(written[0]) == (1080, 720) and png_size(written[1]) == (1440, 600)
    assert [p.data for p in load(written[2]).parameters()] == [p.data for p in model.parameters()]
    written = save_run(model, X, y, history, tmp_path, loss="hinge", explorer=True)
    assert written[3] == tmp_path / "explorer.html"
    assert '"label":"loss"' in (tmp_path / "explorer.html").read_text(encoding="utf-8")


def test_save_run_refuses_a_history_without_a_step(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one step"):
        save_run(_linear([[1.0, 2.0]], [-0.3]), POINTS, [0, 1, 1, 0], History(), tmp_path, loss="hinge")
    assert list(tmp_path.iterdir()) == []


def test_prepare_folder_makes_a_new_folder_and_accepts_one_chainrule_wrote(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "run"
    assert prepare_folder(str(folder)) == folder and folder.is_dir()
    for name in OUTPUTS:
        (folder / name).write_text("from an earlier run")
    assert prepare_folder(folder) == folder


@pytest.mark.parametrize(("others", "listed"), [
    (["thesis.tex"], "(thesis.tex)"),
    (["a", "b", "c", "d"], "(a, b, c, ...)"),
])
def test_prepare_folder_refuses_a_folder_of_other_files_unless_forced(tmp_path: Path, others: list[str],
                                                                     listed: str) -> None:
    for name in [*others, "model.json"]:
        (tmp_path / name).write_text("years of work")
    with pytest.raises(FolderInUseError) as caught:
        prepare_folder(tmp_path)
    assert str(caught.value) == f"{tmp_path} holds files chainrule did not write {listed}"
    assert isinstance(caught.value, ValueError)
    assert prepare_folder(tmp_path, force=True) == tmp_path


def test_prepare_folder_refuses_a_file_and_a_folder_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ValueError, match="taken exists and is not a folder"):
        prepare_folder(tmp_path / "taken")
    with pytest.raises(ValueError, match=r"taken/run: cannot create the folder \(Not a directory\)"):
        prepare_folder(tmp_path / "taken" / "run")


# ----- character models of names -------------------------------------------------------------------------


def test_names_curves_show_train_and_val() -> None:
    from chainrule.makemore import History as NamesHistory
    from chainrule.viz.plots import names_curves

    fig = names_curves(NamesHistory(loss=[3.3, 3.0, 2.8, 2.7], seconds=[0.1] * 4, val=[(2, 2.9), (4, 2.6)]))
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["train (each step)", "train (mean of 1)", "val (last 2.6000)"]
    assert list(ax.get_lines()[2].get_xdata()) == [2, 4]
    with pytest.raises(ValueError, match="at least one step"):
        names_curves(NamesHistory())


def test_attention_maps_have_one_panel_per_head() -> None:
    from chainrule.lm import GPT
    from chainrule.makemore import attention
    from chainrule.text import CharTokenizer
    from chainrule.viz.plots import attention_maps

    tok = CharTokenizer()
    weights = attention(GPT(n_layer=2, rng=random.Random(0)), tok, "ava")
    fig = attention_maps(weights, [".", "a", "v", "a", "."])
    panels = [ax for ax in fig.axes if ax.get_title().startswith("layer")]
    assert len(panels) == 8 and panels[5].get_title() == "layer 1, head 1"
    assert np.allclose(panels[0].get_images()[0].get_array(), weights[0, 0])
    with pytest.raises(ValueError, match="for 4 tokens"):
        attention_maps(weights, ["a", "v", "a", "."])


def test_embedding_map_places_each_character_at_its_principal_components() -> None:
    from chainrule.viz.plots import embedding_map

    table = [[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.5, 0.0]]
    fig = embedding_map(table, ["a", "b", "."])
    (ax,) = fig.axes
    positions = {t.get_text(): t.get_position() for t in ax.texts}
    assert positions["a"][0] == pytest.approx(-positions["b"][0]) and abs(positions["a"][0]) > 0.9
    assert "PC 1" in ax.get_xlabel()
    two = embedding_map([[0.0, 1.0], [2.0, 3.0]], ["a", "b"])
    assert two.axes[0].get_xlabel() == "dimension 0"
    with pytest.raises(ValueError, match="3 rows of at least 2 numbers"):
        embedding_map([[1.0], [2.0], [3.0]], ["a", "b", "c"])


def test_explore_prediction_draws_the_mlp_by_layer(tmp_path: Path) -> None:
    from chainrule.lm import CharMLP
    from chainrule.text import CharTokenizer
    from chainrule.viz.plots import explore_prediction

    tok = CharTokenizer()
    model = CharMLP(hidden=20, rng=random.Random(0))
    path = explore_prediction(model, tok, [tok.bos] * 3, 4, tmp_path / "p.html")
    page = path.read_text()
    assert "fc1 + tanh (hidden)" in page and "fc2 (logits)" in page and "-log p('e' | '...')" in page
    assert all(p.grad == 0.0 for row in model.emb.weight[:26] for p in row)  # only BOS's row was read
    assert any(p.grad != 0.0 for p in model.emb.weight[tok.bos])


# ----- a network's health (chainrule.health) ----------------------------------------------------------------


def test_health_draws_makemores_pictures_from_the_record(tmp_path: Path) -> None:
    from chainrule.viz.plots import health

    X, y = make_moons(30, noise=0.1, random_state=0)
    model = MLP(2, [8, 8, 1], "tanh", "linear", rng=random.Random(0))
    history = fit(model, X, y, steps=8, health=True)
    record = history.health
    assert record is not None
    fig = health(history, tmp_path / "health.png", title="moons")
    assert png_size(tmp_path / "health.png") == (2160, 1140)
    hist, spread, stuck, grads, grad_std, ratio = fig.axes
    assert hist.get_title() == "activations at step 7" and grads.get_title() == "weight gradients at step 7"
    assert [line.get_label() for line in stuck.get_lines()] == [
        "layers.0: saturated (|t| > 0.97)", "layers.1: saturated (|t| > 0.97)"]
    assert list(stuck.get_lines()[1].get_ydata()) == [100 * v for v in record.layers[1].saturated]
    assert list(spread.get_lines()[0].get_ydata()) == record.layers[0].std
    assert list(grad_std.get_lines()[2].get_ydata()) == record.weights[2].grad_std
    *lines, guide = ratio.get_lines()
    assert [list(line.get_ydata()) for line in lines] == [w.update_ratio for w in record.weights]
    assert list(guide.get_ydata()) == [-3.0, -3.0] and guide.get_label() == "1e-3 (guide)"
    assert "mean" in hist.get_legend().get_texts()[0].get_text()
    assert (_pixels(fig) < 0.95).any(axis=-1).mean() > 0.05  # lines drawn, not a blank canvas


def test_health_of_a_relu_net_says_dead_and_of_a_bigram_says_there_is_no_layer() -> None:
    from chainrule.lm import Bigram
    from chainrule.makemore import train
    from chainrule.text import CharTokenizer
    from chainrule.viz.plots import health

    X, y = make_moons(30, noise=0.1, random_state=0)
    relu = health(fit(MLP(2, [8, 1], "relu", "linear", rng=random.Random(0)), X, y, steps=2, health=True))
    assert relu.axes[2].get_lines()[0].get_label() == "layers.0: dead (output 0 for the whole batch)"
    history = train(Bigram(rng=random.Random(0)), ["emma", "ava"], CharTokenizer(), steps=2, batch=4,
                    mode="batched", health=True)
    fig = health(history)
    assert [t.get_text() for t in fig.axes[0].texts] == ["no layer with a nonlinearity"]
    assert [line.get_label() for line in fig.axes[5].get_lines()] == ["table", "1e-3 (guide)"]


def test_health_refuses_a_history_without_records() -> None:
    from chainrule.viz.plots import health

    with pytest.raises(ValueError, match="no health records: train with health=True"):
        health(History(loss=[1.0], accuracy=[0.5]))


def test_save_run_and_save_names_run_add_health_png_when_it_was_recorded(tmp_path: Path) -> None:
    from chainrule.lm import CharMLP
    from chainrule.makemore import train
    from chainrule.text import CharTokenizer
    from chainrule.viz.plots import save_names_run

    X, y = make_moons(20, noise=0.1, random_state=0)
    model = MLP(2, [4, 1], "relu", "linear", rng=random.Random(0))
    written = save_run(model, X, y, fit(model, X, y, steps=2, health=True), tmp_path, loss="hinge")
    assert [p.name for p in written] == [*OUTPUTS[:3], "health.png"] and png_size(written[-1]) == (2160, 1140)
    tok = CharTokenizer()
    mlp = CharMLP(hidden=8, rng=random.Random(0))
    history = train(mlp, ["emma", "ava"], tok, steps=2, batch=4, mode="batched", health=True)
    written = save_names_run(mlp, tok, history, prepare_folder(tmp_path / "names"), word="ava")
    assert [p.name for p in written] == ["loss.png", "embeddings.png", "model.json", "health.png"]
    assert png_size(written[-1]) == (2160, 1140)
