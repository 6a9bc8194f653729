"""chainrule.nn: shapes, parameter counts, randomness, activations, state dicts, and PyTorch agreement."""

from __future__ import annotations

import math
import random
from fractions import Fraction
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from chainrule.engine import Value
from chainrule.nn import MLP, Layer, Module, Neuron, build


def _out(v: Value | list[Value]) -> Value:
    assert isinstance(v, Value)
    return v


@pytest.mark.parametrize(
    ("module", "count"),
    [
        (lambda: Neuron(3), 4),
        (lambda: Layer(3, 5), 20),
        (lambda: MLP(3, [4, 4, 1]), 41),
        (lambda: MLP(2, [16, 16, 1]), 337),
        (lambda: MLP(2, [16, 1, 1]), 67),
    ],
)
def test_parameter_counts(module, count):
    m = module()
    assert len(m.parameters()) == count == m.num_parameters()
    assert len({id(p) for p in m.parameters()}) == count  # no parameter listed twice


def test_layer_of_one_returns_a_value_and_wider_layers_a_list():
    x = [1.0, 3.0, 5.0]
    assert isinstance(Layer(3, 1)(x), Value)
    outs = Layer(3, 5)(x)
    assert isinstance(outs, list) and len(outs) == 5 and all(isinstance(o, Value) for o in outs)


def test_intermediate_one_neuron_layer_works():
    # micrograd crashes here: its second layer zips weights with a bare Value.
    out = MLP(2, [16, 1, 1])([0.5, -0.25])
    assert isinstance(out, Value)
    out.backward()


def test_defaults_follow_the_seeds_tanh_everywhere():
    m = MLP(3, [4, 4, 1])
    assert [layer.activation for layer in m.layers] == ["tanh", "tanh", "tanh"]
    assert -1 < _out(m([2.0, 3.0, -1.0])).data < 1


def test_output_activation_and_repr():
    m = MLP(2, [16, 16, 1], "relu", "linear", bias_init="zero")
    assert repr(m) == "MLP(2 → 16 relu → 16 relu → 1 linear, 337 parameters)"
    assert repr(Layer(3, 5)) == "Layer(3 → 5 tanh, 20 parameters)"
    assert repr(Neuron(2, "sigmoid")) == "Neuron(2 → sigmoid, 3 parameters)"
    assert all(n.b.data == 0.0 for layer in m.layers for n in layer.neurons)


def test_seeded_global_random_replays_the_seeds_draw_order():
    # The seeds' Neuron: w drawn first (one uniform per input), then b.
    random.seed(42)
    n = Neuron(3)
    random.seed(42)
    expected = [random.uniform(-1, 1) for _ in range(4)]
    assert [p.data for p in n.parameters()] == expected


def test_rng_argument_keeps_global_random_untouched():
    random.seed(7)
    before = random.getstate()
    a = MLP(2, [3, 1], rng=random.Random(5))
    assert random.getstate() == before
    b = MLP(2, [3, 1], rng=random.Random(5))
    assert a.state_dict() == b.state_dict()
    assert MLP(2, [3, 1], rng=random.Random(6)).state_dict() != a.state_dict()


def test_matches_micrograd_with_the_same_global_seed(micrograd: SimpleNamespace):
    random.seed(1337)
    theirs = micrograd.nn.MLP(2, [16, 16, 1])
    random.seed(1337)
    ours = MLP(2, [16, 16, 1], "relu", "linear", bias_init="zero")
    assert [p.data for p in ours.parameters()] == [p.data for p in theirs.parameters()]
    x = [0.3, -1.7]
    mine = _out(ours(x)).data
    their = theirs([micrograd.engine.Value(v) for v in x]).data
    assert mine == their  # same floats in the same order: bit for bit


@pytest.mark.parametrize(
    ("activation", "f"),
    [
        ("tanh", math.tanh),
        ("relu", lambda z: max(z, 0.0)),
        ("sigmoid", lambda z: 1 / (1 + math.exp(-z))),
        ("linear", lambda z: z),
    ],
)
def test_neuron_computes_act_of_w_dot_x_plus_b(activation, f):
    n = Neuron(3, activation, rng=random.Random(0))
    x = [0.5, -2.0, 1.5]
    z = n.b.data + sum(w.data * xi for w, xi in zip(n.w, x, strict=True))
    assert n(x).data == pytest.approx(f(z), abs=1e-15)


def test_bad_arguments_fail_loudly():
    with pytest.raises(ValueError, match="unknown activation 'softmax'"):
        Neuron(2, "softmax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nin must be a positive integer"):
        Neuron(0)
    with pytest.raises(ValueError, match="layer size"):
        MLP(2, [3, 0])
    with pytest.raises(ValueError, match="nouts"):
        MLP(2, [])
    with pytest.raises(ValueError, match="bias_init"):
        Layer(2, 2, bias_init="ones")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got 2 inputs"):
        Neuron(3)([1.0, 2.0])


def test_zero_grad():
    m = MLP(2, [3, 1])
    _out(m([1.0, 2.0])).backward()
    assert any(p.grad != 0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad == 0.0 for p in m.parameters())


def test_gradients_match_finite_differences():
    m = MLP(2, [3, 3, 1], rng=random.Random(3))
    x = [0.4, -0.9]
    out = _out(m(x))
    out.backward()
    for p in m.parameters():
        h, x0 = 1e-6, p.data
        p.data = x0 + h
        up = _out(m(x)).data
        p.data = x0 - h
        down = _out(m(x)).data
        p.data = x0
        assert p.grad == pytest.approx((up - down) / (2 * h), abs=1e-7)


def test_forward_and_gradients_match_pytorch(torch: ModuleType):
    m = MLP(3, [4, 4, 2], "tanh", "sigmoid", rng=random.Random(11))
    x = [2.0, 3.0, -1.0]
    outs = m(x)
    assert isinstance(outs, list)
    (outs[0] * outs[1]).backward()

    xt = torch.tensor(x, dtype=torch.float64)
    weights = []
    h = xt
    for i, layer in enumerate(m.layers):
        W = torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=torch.float64,
                         requires_grad=True)
        b = torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64, requires_grad=True)
        weights.append((W, b))
        z = W @ h + b
        h = torch.sigmoid(z) if i == len(m.layers) - 1 else torch.tanh(z)
    (h[0] * h[1]).backward()
    assert [o.data for o in outs] == pytest.approx(h.tolist(), abs=1e-14)
    for layer, (W, b) in zip(m.layers, weights, strict=True):
        for n, wrow, brow in zip(layer.neurons, W.grad, b.grad, strict=True):
            assert [w.grad for w in n.w] == pytest.approx(wrow.tolist(), abs=1e-14)
            assert n.b.grad == pytest.approx(float(brow), abs=1e-14)


def test_state_dict_names_follow_parameter_order():
    m = MLP(2, [2, 1], rng=random.Random(0))
    assert list(m.state_dict()) == [
        "layers.0.neurons.0.w.0", "layers.0.neurons.0.w.1", "layers.0.neurons.0.b",
        "layers.0.neurons.1.w.0", "layers.0.neurons.1.w.1", "layers.0.neurons.1.b",
        "layers.1.neurons.0.w.0", "layers.1.neurons.0.w.1", "layers.1.neurons.0.b",
    ]
    assert list(m.state_dict().values()) == [p.data for p in m.parameters()]


@pytest.mark.parametrize("module", [Neuron(3), Layer(3, 4), MLP(3, [4, 4, 1]), MLP(2, [16, 16, 1])],
                         ids=repr)
def test_parameters_are_the_named_parameters_without_names(module):
    # parameters() and zero_grad() build no names; named_parameters() names the same Values, in order.
    values = [p for _, p in module.named_parameters()]
    assert len(module.parameters()) == len(values) == module.num_parameters()
    assert all(a is b for a, b in zip(module.parameters(), values, strict=True))
    assert len({id(p) for p in values}) == len(values)  # each once
    for p in values:
        p.grad = 1.5
    module.zero_grad()
    assert all(p.grad == 0.0 for p in values)


def test_load_state_dict_round_trip():
    a, b = MLP(2, [4, 1], rng=random.Random(1)), MLP(2, [4, 1], rng=random.Random(2))
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict()
    assert _out(a([0.1, 0.2])).data == _out(b([0.1, 0.2])).data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("layers.1.neurons.0.b"), "missing 'layers.1.neurons.0.b'"),
        (lambda d: d.update(extra=1.0), "unexpected 'extra'"),
        (lambda d: d.update({"layers.0.neurons.0.b": float("nan")}), "not finite"),
        (lambda d: d.update({"layers.0.neurons.0.b": float("inf")}), "not finite"),
        (lambda d: d.update({"layers.0.neurons.0.b": "0.5"}), "not a number"),
        (lambda d: d.update({"layers.0.neurons.0.b": True}), "not a number"),
        (lambda d: d.update({"layers.0.neurons.0.b": None}), "not a number"),
    ],
)
def test_load_state_dict_rejects_bad_states_without_touching_the_model(edit, message):
    m = MLP(2, [4, 1], rng=random.Random(1))
    before = m.state_dict()
    state = {k: v + 1.0 for k, v in before.items()}  # every value differs, so any write would show
    edit(state)
    with pytest.raises(ValueError, match=message):
        m.load_state_dict(state)
    assert m.state_dict() == before


@pytest.mark.parametrize(
    "module",
    [lambda: Neuron(3, "relu"), lambda: Layer(2, 3, "sigmoid", bias_init="zero"),
     lambda: MLP(2, [16, 16, 1], "relu", "linear", bias_init="zero")],
)
def test_build_makes_a_twin_from_config_without_touching_global_random(module):
    m: Module = module()
    random.seed(0)
    before = random.getstate()
    twin = build(m.config())
    assert random.getstate() == before
    assert twin.config() == m.config() and repr(twin) == repr(m)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "CNN"}, "unknown architecture type 'CNN'"),
        ({"type": "Neuron", "nin": 2, "activation": "relu"}, "missing \\['bias_init'\\]"),
        ({"type": "Neuron", "nin": "2", "activation": "relu", "bias_init": "zero"}, "nin"),
        ({"type": "MLP", "nin": 2, "nouts": "16", "activation": "relu",
          "output_activation": "linear", "bias_init": "zero"}, "nouts"),
        ([1, 2], "must be an object"),
    ],
)
def test_build_rejects_bad_configs(config, message):
    with pytest.raises(ValueError, match=message):
        build(config)


def test_a_batch_runs_through_the_same_model_code():
    m = MLP(2, [8, 8, 3], "tanh", "linear", rng=random.Random(4))
    X = np.array([[0.5, -1.0], [2.0, 0.25], [-0.3, 0.0]])
    columns = m([Value(X[:, 0]), Value(X[:, 1])])
    assert isinstance(columns, list) and len(columns) == 3
    for i, row in enumerate(X):
        outs = m(list(row))
        assert isinstance(outs, list)
        assert [float(c.data[i]) for c in columns] == pytest.approx([o.data for o in outs], abs=1e-14)


def test_a_neuron_takes_any_real_number_as_its_single_input() -> None:
    n = Neuron(1, rng=random.Random(0))
    expected = n([3.0]).data
    assert n(np.int64(3)).data == expected and n(3).data == expected
    assert n(Fraction(1, 2)).data == n([0.5]).data
