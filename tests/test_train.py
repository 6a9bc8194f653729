"""chainrule.train: fit's loop against micrograd's demo and PyTorch, its modes, divergence, and bad input."""

from __future__ import annotations

import gc
import math
import random
from typing import Any

import numpy as np
import pytest

from chainrule import train
from chainrule.data import make_blobs, make_moons
from chainrule.nn import MLP
from chainrule.optim import SGD, Optimizer, linear_decay
from chainrule.train import Diverged, History, class_scores, classifier, default_optimizer, fit, predict

# micrograd 0.1.0's demo.ipynb: its loss at step 0 and after 100 steps.
MICROGRAD_FIRST, MICROGRAD_LAST = 0.8958441028683222, 0.010978370135492717


def _demo() -> tuple[MLP, np.ndarray, np.ndarray, Optimizer]:
    # The notebook seeds the global generators; a RandomState and a Random with the same seed draw the same.
    X, y = make_moons(n_samples=100, noise=0.1, random_state=np.random.RandomState(1337))
    model = MLP(2, [16, 16, 1], "relu", "linear", bias_init="zero", rng=random.Random(1337))
    return model, X, y, SGD(model.parameters(), lr=linear_decay(1.0, 0.1, 100))


def _small(outputs: int = 1, seed: int = 0, activation: str = "tanh") -> tuple[MLP, np.ndarray, np.ndarray]:
    X, y = make_moons(n_samples=24, noise=0.1, random_state=seed)
    return MLP(2, [6, outputs], activation, "linear", rng=random.Random(seed)), X, y


def test_fit_is_micrograds_demo() -> None:
    model, X, y, sgd = _demo()
    history = fit(model, X, y, loss="hinge", optimizer=sgd, steps=100, l2=1e-4)
    assert history.loss[0] == MICROGRAD_FIRST
    assert history.loss[-1] == pytest.approx(MICROGRAD_LAST, rel=1e-9)
    assert history.accuracy[0] == 0.5 and history.accuracy[-1] == 1.0
    assert len(history.loss) == len(history.accuracy) == 100


@pytest.mark.parametrize("loss", train.LOSSES)
@pytest.mark.parametrize(("mode", "steps", "rel"), [("eager", 5, 1e-12), ("compiled", 20, 1e-9)])
def test_eager_and_compiled_give_the_batched_run(loss: str, mode: str, steps: int, rel: float) -> None:
    # eager: one scalar graph per point; compiled: the batched graph captured once (chainrule.compile) and
    # replayed. The same steps, up to rounding.
    runs = []
    for m in ("batched", mode):
        model, X, y = _small(2 if loss == "ce" else 1)
        runs.append(fit(model, X, y, loss=loss, steps=steps, mode=m, l2=1e-4))
    assert runs[1].loss == pytest.approx(runs[0].loss, rel=rel)
    assert runs[1].accuracy == runs[0].accuracy


def test_compiled_demo_ends_where_micrograd_does() -> None:
    model, X, y, sgd = _demo()
    history = fit(model, X, y, loss="hinge", optimizer=sgd, steps=100, l2=1e-4, mode="compiled")
    assert history.loss[0] == pytest.approx(MICROGRAD_FIRST, rel=1e-12)
    assert history.loss[-1] == pytest.approx(MICROGRAD_LAST, rel=1e-9)
    assert history.accuracy[-1] == 1.0


@pytest.mark.parametrize("mode", train.MODES)
def test_cross_entropy_with_two_classes_learns(mode: str) -> None:
    # Two outputs scored by softmax: the CLI's `--loss ce` on 2 classes used to crash in both modes.
    model, X, y = _small(outputs=2)
    history = fit(model, X, y, loss="ce", steps=30, mode=mode)
    assert history.loss[-1] < 0.6 * history.loss[0]
    assert history.accuracy[-1] >= 0.8


def test_seven_classes_with_cross_entropy() -> None:
    X, y = make_blobs(140, centers=7, cluster_std=0.5, random_state=0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    model = MLP(2, [16, 7], "relu", "linear", rng=random.Random(0))
    history = fit(model, X, y, loss="ce", optimizer=default_optimizer(model, "ce", "adam", 80), steps=80)
    assert history.accuracy[-1] > 0.85
    assert (predict(model, X) == y).mean() > 0.85


@pytest.mark.parametrize("loss", train.LOSSES)
def test_one_step_moves_every_weight_as_pytorch_does(loss: str, torch: Any) -> None:
    F = torch.nn.functional
    model, X, y = _small(2 if loss == "ce" else 1)
    layers = [(torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=torch.float64,
                             requires_grad=True),
               torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64, requires_grad=True))
              for layer in model.layers]
    h = torch.tensor(X, dtype=torch.float64)
    for i, (W, b) in enumerate(layers):
        h = F.linear(h, W, b)
        h = torch.tanh(h) if i < len(layers) - 1 else h
    t = torch.tensor(y)
    signs = (2 * t - 1).to(torch.float64)
    s = h[:, 0]
    data_loss = {"hinge": lambda: torch.relu(1 - signs * s).mean(), "mse": lambda: ((s - signs) ** 2).mean(),
                 "bce": lambda: F.binary_cross_entropy_with_logits(s, t.to(torch.float64)),
                 "ce": lambda: F.cross_entropy(h, t)}[loss]()
    total = data_loss + 1e-3 * sum((p**2).sum() for pair in layers for p in pair)
    total.backward()

    history = fit(model, X, y, loss=loss, optimizer=SGD(model.parameters(), lr=0.5), steps=1, l2=1e-3)
    assert history.loss[0] == pytest.approx(total.item(), rel=1e-12)
    for layer, (W, b) in zip(model.layers, layers, strict=True):
        with torch.no_grad():
            W_new, b_new = W - 0.5 * W.grad, b - 0.5 * b.grad
        for n, w_row, bias in zip(layer.neurons, W_new.tolist(), b_new.tolist(), strict=True):
            assert [w.data for w in n.w] == pytest.approx(w_row, rel=1e-10, abs=1e-12)
            assert n.b.data == pytest.approx(bias, rel=1e-10, abs=1e-12)


def test_on_step_sees_each_step_and_history_holds_them() -> None:
    model, X, y = _small()
    seen: list[tuple[int, float, float]] = []
    history = fit(model, X, y, steps=6, on_step=lambda k, loss, acc: seen.append((k, loss, acc)))
    assert seen == list(zip(range(6), history.loss, history.accuracy, strict=True))
    assert isinstance(history, History)


def test_accuracy_is_that_of_the_model_before_the_step() -> None:
    model, X, y = _small(seed=3)
    before = (predict(model, X) == y).mean()
    assert fit(model, X, y, steps=1).accuracy == [before]


def test_fit_prints_nothing_and_leaves_global_random_state_alone(capsys: pytest.CaptureFixture[str]) -> None:
    np_state, py_state = np.random.get_state(), random.getstate()
    model, X, y = _small()
    fit(model, X, y, steps=3, mode="eager")
    assert capsys.readouterr() == ("", "")
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert np.array_equal(np_state[1], after[1]) and np_state[2] == after[2]


@pytest.mark.parametrize("mode", train.MODES)
@pytest.mark.parametrize("enabled", [True, False])
def test_fit_leaves_the_garbage_collector_as_it_found_it(mode: str, enabled: bool) -> None:
    # Turning the collector off speeds graph building, but that is the application's choice (the CLI's).
    model, X, y = _small()
    seen: list[bool] = []
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        fit(model, X, y, steps=2, mode=mode, on_step=lambda *_: seen.append(gc.isenabled()))
        after = gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
    assert seen == [enabled, enabled] and after == enabled


def test_default_optimizer_uses_the_losss_rate_decaying_to_a_tenth() -> None:
    model, _, _ = _small()
    opt = default_optimizer(model, "mse", "sgd", steps=10)
    assert opt.current_lr() == train.DEFAULT_LR["mse", "sgd"]
    opt.steps = 10
    assert opt.current_lr() == pytest.approx(0.1 * train.DEFAULT_LR["mse", "sgd"])


def test_mse_at_its_default_rate_converges_on_moons() -> None:
    # At sgd's old default of 1.0, mse on the demo's moons overflowed at step 2. (Eager runs the same
    # numbers: test_eager_and_compiled_give_the_batched_run.)
    model, X, y, _ = _demo()
    history = fit(model, X, y, loss="mse", steps=100, l2=1e-4)
    assert history.loss[-1] < 0.3 * history.loss[0] and history.accuracy[-1] > 0.9


# ----- divergence -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", train.MODES)
@pytest.mark.parametrize("loss", train.LOSSES)
def test_a_loss_growing_a_million_fold_is_diverged(mode: str, loss: str) -> None:
    model, X, y = _small(2 if loss == "ce" else 1, activation="relu")  # tanh units would cap the growth
    with pytest.raises(Diverged, match=r"^training diverged at step \d+ \(the loss grew from") as info:
        fit(model, X, y, loss=loss, optimizer=SGD(model.parameters(), lr=1e6), steps=20, mode=mode)
    assert info.value.step >= 1


def _hugely_scaled(model: MLP, factor: float) -> MLP:
    for p in model.parameters():
        p.data *= factor
    return model


@pytest.mark.parametrize("mode", train.MODES)
def test_a_non_finite_loss_is_diverged(mode: str) -> None:
    model, X, y = _small(activation="relu")
    model = _hugely_scaled(model, 1e300)  # outputs overflow to ±inf in the first pass
    with pytest.raises(Diverged, match=r"step 0 \(.*(inf|nan|overflow|too large)"):
        fit(model, X, y, loss="hinge", steps=3, mode=mode)


def test_an_overflowing_op_is_diverged_and_named() -> None:
    model, X, y = _small(activation="relu")
    model = _hugely_scaled(model, 1e100)  # outputs near 1e200
    # Eagerly, (s - y)**2 overflows in Python's float power, which raises: the engine names the op.
    with pytest.raises(Diverged, match=r"step 0 \(.*\*\*"):
        fit(model, X, y, loss="mse", steps=3, mode="eager")


class _Poison(SGD):
    """SGD that turns one weight into inf at its third update."""

    def _update(self, p: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
        out = super()._update(p, g, lr)
        if self.steps == 2:
            out[1] = float("inf")
        return out


@pytest.mark.parametrize("mode", train.MODES)
def test_a_non_finite_weight_is_diverged_and_named(mode: str) -> None:
    model, X, y = _small()
    with pytest.raises(Diverged, match=r"step 2 \(weight layers\.0\.neurons\.0\.w\.1 is no longer a finite"):
        fit(model, X, y, optimizer=_Poison(model.parameters(), lr=0.1), steps=5, mode=mode)
    assert math.isinf(model.parameters()[1].data)  # a compiled run's arrays came back to the Values


# ----- predictions ------------------------------------------------------------------------------------


def test_predict_agrees_with_the_eager_model_point_by_point() -> None:
    model, X, _ = _small(seed=5)
    eager = [int(model(list(row)).data > 0) for row in X]  # type: ignore[union-attr]
    assert predict(model, X).tolist() == eager
    multi, X, _ = _small(outputs=3, seed=6)
    eager = [int(np.argmax([v.data for v in multi(list(row))])) for row in X]  # type: ignore[union-attr]
    assert predict(multi, X).tolist() == eager


def test_class_scores_of_a_one_output_model_are_zero_and_the_output() -> None:
    model, X, _ = _small()
    scores = class_scores(model, X[:4])
    assert scores.shape == (2, 4)
    assert scores[0].tolist() == [0.0] * 4
    eager = [model(list(row)).data for row in X[:4]]  # type: ignore[union-attr]
    assert scores[1].tolist() == pytest.approx(eager, rel=1e-15)  # NumPy may add in another order


def test_predict_builds_no_graph() -> None:
    model, X, _ = _small()
    model.zero_grad()
    predict(model, X)
    assert all(p.grad == 0.0 for p in model.parameters())


def test_classifier_with_the_demos_settings_is_the_demos_model() -> None:
    model, loss = classifier(2, [16, 16], seed=1337)
    demo, _, _, _ = _demo()
    assert loss == "hinge" and repr(model) == repr(demo)
    assert [p.data for p in model.parameters()] == [p.data for p in demo.parameters()]


@pytest.mark.parametrize(("n_classes", "loss", "expected", "outputs"), [
    (2, None, "hinge", 1), (3, None, "ce", 3), (2, "ce", "ce", 2), (2, "bce", "bce", 1), (7, "ce", "ce", 7),
])
def test_classifier_picks_the_loss_and_one_output_per_class_for_ce(n_classes: int, loss: str | None,
                                                                   expected: str, outputs: int) -> None:
    model, chosen = classifier(n_classes, [4], loss=loss, activation="tanh", seed=0)
    assert chosen == expected and model.nouts == [4, outputs]
    assert [layer.activation for layer in model.layers] == ["tanh", "linear"]
    assert all(neuron.b.data == 0.0 for layer in model.layers for neuron in layer.neurons)


def test_a_classifier_trains_with_fit() -> None:
    X, y = make_blobs(n_samples=30, centers=3, random_state=0)
    model, loss = classifier(3, [8], seed=0)
    history = fit(model, X, y, loss=loss, steps=20, optimizer=default_optimizer(model, loss, "adam", 20))
    assert history.loss[-1] < history.loss[0]


@pytest.mark.parametrize(("args", "kwargs", "words"), [
    ((3,), {"loss": "hinge"}, "the hinge loss is for 2 classes, not 3: use the ce loss"),
    ((2,), {"loss": "l1"}, "unknown loss 'l1'"),
    ((1,), {}, "n_classes must be an integer >= 2, got 1"),
    ((True,), {}, "n_classes must be an integer >= 2"),
    ((2, [100_000, 100_000]), {}, r"hidden layers \[100000, 100000\] make 10,000,500,001 parameters.*"
                                  r"at most 100,000"),
    ((2, [0]), {}, "layer size must be a positive integer"),
    ((2, [4]), {"activation": "gelu"}, "unknown activation 'gelu'"),
])
def test_classifier_refuses_what_it_cannot_build(args: tuple[object, ...], kwargs: dict[str, object],
                                                 words: str) -> None:
    # 10^10 parameters is refused from their count: building them would take an hour and the memory with it.
    with pytest.raises(ValueError, match=words):
        classifier(*args, **kwargs)  # type: ignore[arg-type]


# ----- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "words"), [
    ({"loss": "hinj"}, "unknown loss 'hinj'"),
    ({"mode": "gpu"}, "unknown mode 'gpu'; choose one of batched, eager"),
    ({"steps": 0}, "steps must be a positive integer, got 0"),
    ({"steps": 2.5}, "steps must be a positive integer"),
    ({"X": np.zeros((24, 3))}, r"X must have shape \(n, 2\)"),
    ({"X": np.zeros((0, 2))}, r"X must have shape \(n, 2\) with n >= 1"),
    ({"X": np.full((24, 2), np.nan)}, "not finite"),
    ({"y": [0, 1]}, "one class index per point: 24 points"),
    ({"y": np.full(24, 2)}, r"y holds 2, not a class index in \[0, 2\)"),
    ({"y": np.full(24, -1)}, r"y holds -1"),
    ({"y": np.full(24, 0.5)}, "integer class indices"),
    ({"y": ["a"] * 24}, "integer class indices"),
    ({"l2": -1.0}, "l2 must be a finite number >= 0"),
    ({"l2": float("nan")}, "l2 must be a finite number >= 0"),
    ({"health": "yes"}, "health must be True or False, got 'yes'"),
])
def test_bad_arguments_are_refused_with_a_clear_message(change: dict[str, object], words: str) -> None:
    model, X, y = _small()
    kwargs: dict[str, object] = {"X": X, "y": y, "steps": 1, **change}
    with pytest.raises(ValueError, match=words):
        fit(model, kwargs.pop("X"), kwargs.pop("y"), **kwargs)  # type: ignore[arg-type]


def test_a_binary_loss_on_a_multi_output_model_is_refused() -> None:
    model, X, y = _small(outputs=3)
    with pytest.raises(ValueError, match=r"loss 'hinge' scores 2 classes with one output.*use loss='ce'"):
        fit(model, X, y, loss="hinge", steps=1)


def test_labels_past_the_models_classes_are_refused_for_ce() -> None:
    model, X, _ = _small(outputs=2)
    with pytest.raises(ValueError, match=r"y holds 2, not a class index in \[0, 2\)"):
        fit(model, X, np.arange(24) % 3, loss="ce", steps=1)


def test_float_labels_that_are_whole_numbers_are_accepted() -> None:
    model, X, y = _small()
    assert len(fit(model, X, y.astype(float), steps=2).loss) == 2


@pytest.mark.parametrize(("args", "words"), [
    (("hinge", "rmsprop"), "unknown optimizer 'rmsprop'; choose one of sgd, adam"),
    (("nll", "sgd"), "unknown loss 'nll'"),
])
def test_default_optimizer_refuses_unknown_names(args: tuple[str, str], words: str) -> None:
    model, _, _ = _small()
    with pytest.raises(ValueError, match=words):
        default_optimizer(model, *args)


def test_class_scores_refuse_points_of_the_wrong_width() -> None:
    model, _, _ = _small()
    with pytest.raises(ValueError, match=r"X must have shape \(n, 2\)"):
        class_scores(model, np.zeros(5))


def test_margins_are_the_own_class_score_minus_the_best_other() -> None:
    model = MLP(2, [3], "linear", "linear")
    for neuron, w in zip(model.layers[0].neurons, [(1.0, 0.0), (0.0, 1.0), (0.0, 0.0)], strict=True):
        neuron.w[0].data, neuron.w[1].data = w
        neuron.b.data = 0.0
    X = np.array([[2.0, 1.0], [2.0, 1.0], [-1.0, -3.0]])  # scores (2, 1, 0), (2, 1, 0), (-1, -3, 0)
    assert train.margins(model, X, [0, 1, 2]).tolist() == [1.0, -1.0, 1.0]
    one = _linear_one_output()
    assert train.margins(one, np.array([[0.5, 0.0], [0.5, 0.0]]), [1, 0]).tolist() == [0.5, -0.5]


def _linear_one_output() -> MLP:
    model = MLP(2, [1], "linear", "linear")
    model.layers[0].neurons[0].w[0].data, model.layers[0].neurons[0].w[1].data = 1.0, 0.0
    model.layers[0].neurons[0].b.data = 0.0
    return model


def test_margins_refuse_labels_that_are_not_classes() -> None:
    with pytest.raises(ValueError, match=r"y must hold a class index in \[0, 2\) for each of the 2 points"):
        train.margins(_linear_one_output(), np.zeros((2, 2)), [0, 2])


def test_a_task_refuses_an_unknown_loss() -> None:
    with pytest.raises(ValueError, match="unknown loss 'l1'; choose one of hinge, mse, bce, ce"):
        train.Task(np.zeros((1, 2)), np.zeros(1, dtype=np.intp), "l1", 0.0)


# ----- health=True (chainrule.health) -------------------------------------------------------------------


def test_health_is_recorded_only_when_asked_and_leaves_the_run_as_it_was() -> None:
    runs = {}
    for health in (False, True):
        model, X, y = _small(seed=4)
        history = fit(model, X, y, steps=120, health=health)
        runs[health] = (history, [p.data for p in model.parameters()])
    assert runs[False][0].health is None
    record = runs[True][0].health
    assert record is not None and [layer.name for layer in record.layers] == ["layers.0"]
    assert record.steps == [0, 1, 2, 4, 5, *range(6, 120, 2), 119]  # 0, 1, 2, 5, every 120 // 50, the last
    # Watching a step does not change it: same losses, same weights.
    assert runs[True][0].loss == runs[False][0].loss and runs[True][1] == runs[False][1]


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_health_is_the_same_in_every_mode(mode: str) -> None:
    records = []
    for m in ("batched", mode):
        model, X, y = _small(seed=5, activation="relu")
        records.append(fit(model, X, y, steps=6, mode=m, health=True).health)
    batched, other = records
    assert batched is not None and other is not None and other.steps == batched.steps
    for a, b in zip(batched.layers, other.layers, strict=True):
        assert a.mean == pytest.approx(b.mean, rel=1e-9) and a.std == pytest.approx(b.std, rel=1e-9)
        assert a.saturated == b.saturated
    for wa, wb in zip(batched.weights, other.weights, strict=True):
        assert wa.grad_std == pytest.approx(wb.grad_std, rel=1e-9)
        assert wa.update_ratio == pytest.approx(wb.update_ratio, rel=1e-9)


def test_a_run_that_blows_up_with_health_is_still_diverged() -> None:
    model, X, y = _small()
    with pytest.raises(Diverged):
        fit(model, X, y, loss="mse", optimizer=SGD(model.parameters(), lr=1e6), steps=30, health=True)


def test_a_compiled_run_with_health_leaves_the_last_steps_grads() -> None:
    runs = {}
    for mode in ("batched", "compiled"):
        model, X, y = _small()
        fit(model, X, y, steps=120, mode=mode, health=True)  # ~50 of them recorded, on Values
        runs[mode] = ([p.data for p in model.parameters()], [p.grad for p in model.parameters()])
    assert runs["compiled"][0] == pytest.approx(runs["batched"][0], rel=1e-9, abs=1e-12)
    assert runs["compiled"][1] == pytest.approx(runs["batched"][1], rel=1e-9, abs=1e-12)
