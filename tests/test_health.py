"""chainrule.health: the statistics against an independent NumPy forward pass (and PyTorch float64 for the
gradients), on networks whose health is known: saturated, dead, fresh; the schedule; plain data."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from types import ModuleType

import numpy as np
import pytest

from chainrule import Value, health, makemore
from chainrule.data import make_moons
from chainrule.health import Recorder, layers_of, saturated_share, schedule
from chainrule.lm import GPT, CharMLP
from chainrule.nn import MLP, Module
from chainrule.optim import SGD, Adam
from chainrule.text import CharTokenizer, contexts
from chainrule.train import fit

X, Y = make_moons(n_samples=16, noise=0.1, random_state=0)
ACT = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0), "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
       "linear": lambda z: z}


def _mlp(activation: str = "tanh", scale: float = 1.0, bias: float | None = None, seed: int = 0) -> MLP:
    """MLP(2, [6, 5, 1]) with its weights drawn U(-1, 1) and multiplied by `scale`; biases `bias` if given."""
    model = MLP(2, [6, 5, 1], activation, "linear", rng=random.Random(seed))
    for layer in model.layers:
        for n in layer.neurons:
            for w in n.w:
                w.data *= scale
            if bias is not None and layer.activation != "linear":
                n.b.data = bias
    return model


def _numpy_outputs(model: MLP, X: np.ndarray) -> list[np.ndarray]:
    """Each layer's outputs (units × points), by NumPy from the weights: the oracle of the graph reading."""
    h, outs = X.T, []
    for layer in model.layers:
        W = np.array([[w.data for w in n.w] for n in layer.neurons])
        b = np.array([[n.b.data] for n in layer.neurons])
        h = ACT[layer.activation](W @ h + b)
        outs.append(h)
    return outs


def _weights(model: MLP) -> list[np.ndarray]:
    return [np.array([w.data for n in layer.neurons for w in n.w]) for layer in model.layers]


@pytest.mark.parametrize(("activation", "scale", "bias", "expected"), [
    ("tanh", 50.0, None, (0.9, 1.0)),      # huge weights: almost every tanh output at ±1
    ("tanh", 0.01, 0.0, (0.0, 0.0)),       # a fresh small-init net: nothing saturated
    ("sigmoid", 50.0, None, (0.9, 1.0)),   # σ saturates where tanh(x/2) does
    ("relu", 1.0, -100.0, (1.0, 1.0)),     # biases far below zero: every unit dead
    ("relu", 0.01, 0.0, (0.0, 0.0)),       # small weights, zero biases: each unit fires for some point
])
def test_step_0_statistics_are_numpys(activation: str, scale: float, bias: float | None,
                                      expected: tuple[float, float]) -> None:
    model = _mlp(activation, scale, bias)
    oracle = _numpy_outputs(model, X)
    history = fit(model, X, Y, loss="mse", optimizer=SGD(model.parameters(), lr=0.0), steps=1, health=True)
    record = history.health
    assert record is not None and record.steps == [0]
    assert [layer.name for layer in record.layers] == ["layers.0", "layers.1"]  # the linear output: no layer
    for layer, t in zip(record.layers, oracle, strict=False):
        assert layer.activation == activation
        assert layer.mean[0] == pytest.approx(np.mean(t), abs=1e-12)
        assert layer.std[0] == pytest.approx(np.std(t), abs=1e-12)
        if activation == "relu":  # dead: 0 for every point of the batch
            share = np.mean(np.all(t == 0, axis=1))
        else:
            share = np.mean(np.abs(t if activation == "tanh" else 2 * t - 1) > 0.97)
        assert layer.saturated[0] == share
        assert expected[0] <= share <= expected[1]
        counts, edges = np.histogram(t, bins=health.BINS)
        assert layer.histogram[0].counts == counts.tolist()
        assert layer.histogram[0].edges == pytest.approx(edges.tolist())


def _torch_grads(torch: ModuleType, model: MLP, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """d(mse loss)/dW for each layer's weights, by PyTorch float64 (row by row, as chainrule names them)."""
    Ws = [torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=torch.float64,
                       requires_grad=True) for layer in model.layers]
    h = torch.tensor(X.T, dtype=torch.float64)
    for layer, W in zip(model.layers, Ws, strict=True):
        b = torch.tensor([[n.b.data] for n in layer.neurons], dtype=torch.float64)
        z = W @ h + b
        h = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda v: v}[layer.activation](z)
    ((h[0] - torch.tensor(2.0 * y - 1.0)) ** 2).mean().backward()
    return [W.grad.numpy().ravel() for W in Ws]


@pytest.mark.parametrize("mode", ["batched", "eager", "compiled"])
def test_gradient_std_and_an_sgd_steps_update_ratio_are_pytorchs(torch: ModuleType, mode: str) -> None:
    model, lr = _mlp("tanh"), 0.3
    grads, before = _torch_grads(torch, model, X, Y), _weights(model)
    history = fit(model, X, Y, loss="mse", optimizer=SGD(model.parameters(), lr=lr), steps=1, mode=mode,
                  health=True)
    record = history.health
    assert record is not None
    assert [w.name for w in record.weights] == ["layers.0", "layers.1", "layers.2"]
    for w, g, data in zip(record.weights, grads, before, strict=True):
        assert w.grad_std[0] == pytest.approx(np.std(g), rel=1e-10)
        # SGD's update is -lr·g: the ratio is log10(lr·std(g) / std(W)).
        assert w.update_ratio[0] == pytest.approx(math.log10(lr * np.std(g) / np.std(data)), abs=1e-10)


def test_the_update_ratio_is_measured_from_the_weights_so_it_holds_for_adam() -> None:
    # Adam's first update is ±lr for every weight, whatever the gradient: lr·grad would be wrong here.
    model = _mlp("relu", seed=3)
    before = _weights(model)
    adam = Adam(model.parameters(), lr=0.05)
    history = fit(model, X, Y, loss="hinge", optimizer=adam, steps=1, health=True)
    record = history.health
    assert record is not None
    for w, b, a in zip(record.weights, before, _weights(model), strict=True):
        assert w.update_ratio[0] == pytest.approx(math.log10(np.std(a - b) / np.std(b)), abs=1e-12)


def test_no_update_has_no_ratio_and_the_record_is_plain_json() -> None:
    model = _mlp("tanh")
    record = fit(model, X, Y, optimizer=SGD(model.parameters(), lr=0.0), steps=3, health=True).health
    assert record is not None and record.steps == [0, 1, 2]
    assert all(w.update_ratio == [None, None, None] for w in record.weights)  # log10(0) is no number
    plain = dataclasses.asdict(record)
    assert json.loads(json.dumps(plain, allow_nan=False)) == plain
    for layer in plain["layers"]:
        assert {len(layer[k]) for k in ("mean", "std", "saturated", "histogram")} == {3}


def test_schedule_records_the_first_steps_then_about_fifty_and_the_last() -> None:
    assert schedule(1) == [0]
    assert schedule(4) == [0, 1, 2, 3]
    assert schedule(100) == sorted({0, 1, 2, 5, 99, *range(0, 100, 2)})
    long = schedule(6000)
    assert long[:5] == [0, 1, 2, 5, 120] and long[-1] == 5999 and len(long) == 54


def test_fit_records_at_the_scheduled_steps_only() -> None:
    model = _mlp("tanh")
    record = fit(model, X, Y, steps=12, health=True).health
    assert record is not None and record.steps == schedule(12)
    assert all(len(layer.mean) == len(schedule(12)) for layer in record.layers)


def test_saturated_share_definitions() -> None:
    t = np.array([[0.99, -0.98, 0.0], [0.5, -0.1, 0.2]])
    assert saturated_share("tanh", t) == pytest.approx(2 / 6)
    assert saturated_share("sigmoid", (t + 1) / 2) == pytest.approx(2 / 6)
    # relu: a unit is dead only when *every* sample is 0; one live sample keeps it alive.
    assert saturated_share("relu", np.array([[0.0, 0.0], [0.0, 3.0], [1.0, 2.0]])) == pytest.approx(1 / 3)


# ----- the names models --------------------------------------------------------------------------------


def test_a_charmlps_tanh_layer_is_read_from_its_batched_graph() -> None:
    words = ["emma", "olivia", "ava", "mia"]
    tok = CharTokenizer.from_words(words)
    model = CharMLP(tok.vocab_size, n_embd=3, hidden=8, rng=random.Random(1))
    Xc, Yc = contexts(words, tok, model.block_size)
    recorder = Recorder(model, steps=1)
    loss = makemore.context_loss(model, Xc, Yc, batched=True)
    loss.backward()
    recorder.read_graph(loss)
    C = np.array([[p.data for p in row] for row in model.emb.weight])
    W1 = np.array([[p.data for p in row] for row in model.fc1.weight])
    b1 = np.array([b.data for b in model.fc1.bias or []])
    t = np.tanh(W1 @ C[np.asarray(Xc)].reshape(len(Xc), -1).T + b1[:, None])
    (layer,) = recorder.health.layers
    assert (layer.name, layer.activation) == ("fc1", "tanh")
    assert layer.mean == pytest.approx([np.mean(t)], abs=1e-12)
    assert layer.std == pytest.approx([np.std(t)], abs=1e-12)
    assert layer.saturated == [np.mean(np.abs(t) > 0.97)]
    assert [w.name for w in recorder.health.weights] == ["emb", "fc1", "fc2"]


def test_a_gpt_whose_mlp_weights_are_zero_has_every_relu_dead() -> None:
    words = ["emma", "olivia", "ava", "mia", "zoe", "lily"]
    tok = CharTokenizer.from_words(words)
    model = GPT(tok.vocab_size, n_embd=8, n_head=2, block_size=8, rng=random.Random(0))
    for row in model.blocks[0].fc1.weight:
        for w in row:
            w.data = 0.0  # relu(0) = 0 for every position of every name
    record = makemore.train(model, words, tok, steps=1, batch=2, mode="batched", health=True).health
    assert record is not None
    (layer,) = record.layers
    assert (layer.name, layer.saturated, layer.mean, layer.std) == ("layer0.mlp_fc1", [1.0], [0.0], [0.0])
    assert [w.name for w in record.weights][:3] == ["wte", "wpe", "layer0.attn.wq"]


# ----- bad input ------------------------------------------------------------------------------------------


def test_an_unknown_model_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="health=True watches an MLP, a CharMLP, a GPT or a Bigram, not"):
        layers_of(Module())


def test_record_needs_the_graph_read_first() -> None:
    with pytest.raises(RuntimeError, match="follows read_graph"):
        Recorder(_mlp(), steps=1).record(0)


def test_a_graph_without_the_layers_outputs_is_an_error() -> None:
    with pytest.raises(RuntimeError, match=r"layer layers\.0's tanh outputs are not in the graph"):
        Recorder(_mlp(), steps=1).read_graph(Value(1.0) * 2.0)
