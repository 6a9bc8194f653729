"""chainrule.export: to_torch / from_torch, torch kept optional, and the DDP example's step-0 gradient."""

from __future__ import annotations

import itertools
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import oracle

from chainrule import Value, from_torch, to_torch
from chainrule.data import make_moons
from chainrule.losses import hinge, l2
from chainrule.nn import ACTIVATIONS, MLP, Layer, Neuron

# This whole file is about torch (its parametrizations name torch's dtypes, so the module is imported at
# collection): skipped without it, except in CI where a missing oracle fails.
torch = oracle("torch")
nn = torch.nn

ROOT = Path(__file__).parent.parent
DDP_EXAMPLE = ROOT / "examples" / "06_ddp.py"
LAYOUTS = [(1, [1]), (3, [4]), (2, [8, 1]), (3, [5, 3]), (2, [16, 16, 1]), (4, [6, 5, 2])]


def _inputs(nin: int, n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).uniform(-3, 3, size=(n, nin))


def _chainrule_outputs(model, X: np.ndarray) -> np.ndarray:
    """The model on a batch, as an (n, nout) array (the batched path: one Value per input feature)."""
    out = model([Value(X[:, k].copy()) for k in range(X.shape[1])])
    outs = out if isinstance(out, list) else [out]
    return np.stack([np.asarray(o.data, dtype=np.float64) for o in outs], axis=1)


def _torch_outputs(net, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.tensor(X, dtype=torch.float64)).numpy()


def _assert_agree(a: np.ndarray, b: np.ndarray, tol: float = 1e-12) -> None:
    assert a.shape == b.shape
    gap = np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))
    assert gap <= tol, f"outputs differ by {gap:.2e} (relative)"


def _by_chainrule_name(linears) -> dict[str, float]:
    """Numbers held per Linear as (weight, bias) tensors, under chainrule's parameter names.

    Written out here, independently of chainrule.export: neuron j of layer i is row j of Linear i."""
    named = {}
    for i, (w, b) in enumerate(linears):
        for j, row in enumerate(w.tolist()):
            for k, x in enumerate(row):
                named[f"layers.{i}.neurons.{j}.w.{k}"] = x
            named[f"layers.{i}.neurons.{j}.b"] = b.tolist()[j]
    return named


# ----- to_torch ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("activation", "output_activation"),
                         list(itertools.product(ACTIVATIONS, ACTIVATIONS)))
@pytest.mark.parametrize(("nin", "nouts"), LAYOUTS, ids=lambda x: str(x))
def test_to_torch_outputs_agree(nin, nouts, activation, output_activation):
    model = MLP(nin, nouts, activation, output_activation, rng=random.Random(7))
    net = to_torch(model)
    assert isinstance(net, nn.Sequential)
    linears = [m for m in net if type(m) is nn.Linear]
    assert [(m.in_features, m.out_features) for m in linears] == list(itertools.pairwise([nin, *nouts]))
    assert all(p.dtype == torch.float64 and p.requires_grad for p in net.parameters())
    X = _inputs(nin)
    _assert_agree(_chainrule_outputs(model, X), _torch_outputs(net, X))


@pytest.mark.parametrize(("activation", "modules"), [
    ("tanh", [nn.Linear, nn.Tanh]), ("relu", [nn.Linear, nn.ReLU]),
    ("sigmoid", [nn.Linear, nn.Sigmoid]), ("linear", [nn.Linear])])
def test_to_torch_layout_names_pytorchs_modules(activation, modules):
    net = to_torch(MLP(3, [4, 2], activation, rng=random.Random(0)))
    assert [type(m) for m in net] == modules * 2


def test_to_torch_puts_neuron_j_in_row_j():
    model = MLP(2, [3], "relu", rng=random.Random(1))
    (linear, _) = to_torch(model)
    for j, neuron in enumerate(model.layers[0].neurons):
        assert linear.weight[j].tolist() == [w.data for w in neuron.w]
        assert linear.bias[j].item() == neuron.b.data


def test_to_torch_takes_a_layer_and_a_neuron():
    layer = Layer(3, 4, "sigmoid", rng=random.Random(2))
    neuron = Neuron(3, "tanh", rng=random.Random(3))
    X = _inputs(3)
    for module in (layer, neuron):
        net = to_torch(module)
        _assert_agree(_chainrule_outputs(module, X), _torch_outputs(net, X))


def test_to_torch_gradients_agree_with_backward():
    # The exported net's backward (PyTorch's) against chainrule's on the demo's loss, every parameter.
    model = MLP(2, [16, 16, 1], "relu", "linear", rng=random.Random(5))
    X, labels = make_moons(n_samples=40, noise=0.1, random_state=0)
    y = 2.0 * labels - 1
    loss = hinge(model([Value(X[:, 0]), Value(X[:, 1])]), y) + l2(model.parameters(), 1e-4)
    model.zero_grad()
    loss.backward()

    net = to_torch(model)
    scores = net(torch.tensor(X)).squeeze(1)
    t_loss = (torch.relu(1 - torch.tensor(y) * scores).mean()
              + 1e-4 * sum((p * p).sum() for p in net.parameters()))
    t_loss.backward()
    assert t_loss.item() == pytest.approx(loss.data, rel=1e-12)
    ours = {name: p.grad for name, p in model.named_parameters()}
    theirs = _by_chainrule_name([(m.weight.grad, m.bias.grad) for m in net if type(m) is nn.Linear])
    assert ours.keys() == theirs.keys()
    assert max(abs(ours[k] - theirs[k]) for k in ours) < 1e-12


def test_to_torch_copy_is_independent():
    model = MLP(2, [3, 1], rng=random.Random(0))
    before = model.state_dict()
    net = to_torch(model)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    assert model.state_dict() == before


def test_export_leaves_global_generators_alone():
    model, net = MLP(2, [16, 16, 1], rng=random.Random(0)), nn.Sequential(nn.Linear(2, 3))
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    to_torch(model)
    from_torch(net)  # builds an MLP, which draws its weights before they are overwritten
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state


@pytest.mark.parametrize("bad", [MLP, "MLP(2, [1])", None, nn.Linear(2, 1)],
                         ids=["class", "str", "none", "torch-module"])
def test_to_torch_refuses_what_is_not_a_chainrule_model(bad):
    with pytest.raises(ValueError, match=r"to_torch takes a chainrule MLP, Layer or Neuron, got \w+"):
        to_torch(bad)


@pytest.mark.parametrize(("value", "message"), [
    (math.nan, r"parameter 'layers.1.neurons.0.w.2' is not finite \(nan\): the model has diverged"),
    (math.inf, r"parameter 'layers.1.neurons.0.w.2' is not finite \(inf\)"),
    (np.array([1.0, 2.0]), r"parameter 'layers.1.neurons.0.w.2' is not a number: array")])
def test_to_torch_refuses_a_bad_weight_and_names_it(value, message):
    model = MLP(2, [3, 1], rng=random.Random(0))
    model.layers[1].neurons[0].w[2].data = value
    with pytest.raises(ValueError, match=message):
        to_torch(model)


# ----- from_torch --------------------------------------------------------------------------------


@pytest.mark.parametrize(("activation", "output_activation"),
                         list(itertools.product(ACTIVATIONS, ACTIVATIONS)))
@pytest.mark.parametrize(("nin", "nouts"), LAYOUTS, ids=lambda x: str(x))
def test_round_trip_is_exact(nin, nouts, activation, output_activation):
    model = MLP(nin, nouts, activation, output_activation, rng=random.Random(11))
    back = from_torch(to_torch(model))
    assert isinstance(back, MLP)
    # One layer has no hidden activation to recover: from_torch uses the output's for both.
    hidden = activation if len(nouts) > 1 else output_activation
    assert back.config() == {**model.config(), "activation": hidden}
    assert back.state_dict() == model.state_dict()  # the same floats, bit for bit
    X = _inputs(nin, seed=1)
    assert np.array_equal(_chainrule_outputs(back, X), _chainrule_outputs(model, X))


def test_round_trip_from_torch_side():
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2),
                        nn.Sigmoid()).double()
    model = from_torch(net)
    assert (model.nin, model.nouts, model.activation, model.output_activation) == (3, [8, 8, 2], "tanh",
                                                                                   "sigmoid")
    X = _inputs(3, seed=2)
    _assert_agree(_chainrule_outputs(model, X), _torch_outputs(net, X))
    again = to_torch(model)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), net.state_dict().values(),
                                                 strict=True))


def test_from_torch_reads_identity_and_back_to_back_linears_as_linear():
    net = nn.Sequential(nn.Linear(2, 4), nn.Identity(), nn.Linear(4, 3), nn.Linear(3, 1), nn.ReLU()).double()
    model = from_torch(net)
    assert (model.nouts, model.activation, model.output_activation) == ([4, 3, 1], "linear", "relu")
    X = _inputs(2, seed=3)
    _assert_agree(_chainrule_outputs(model, X), _torch_outputs(net, X))


def test_from_torch_takes_one_bare_linear():
    net = nn.Linear(3, 2).double()
    model = from_torch(net)
    assert (model.nin, model.nouts, model.output_activation) == (3, [2], "linear")
    X = _inputs(3, seed=4)
    _assert_agree(_chainrule_outputs(model, X), _torch_outputs(net, X))


def test_from_torch_gives_a_linear_without_bias_a_zero_bias():
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1)).double()
    model = from_torch(net)
    assert [n.b.data for n in model.layers[0].neurons] == [0.0, 0.0, 0.0]
    X = _inputs(2, seed=5)
    _assert_agree(_chainrule_outputs(model, X), _torch_outputs(net, X))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_from_torch_widens_lower_precision_exactly(dtype):
    net = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 1)).to(dtype)
    model = from_torch(net)
    # Every float32/16 number is a float64: the weights come back unchanged, not rounded.
    assert model.state_dict() == from_torch(net.double()).state_dict()
    wide = model.layers[0].neurons[0].w[0].data
    assert wide == net[0].weight[0, 0].item()


class _Relu(nn.ReLU):  # a subclass may compute anything in its forward: refused
    pass


@pytest.mark.parametrize(("make", "message"), [
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Conv2d(1, 1, 3)),
     r"module 1 \(Conv2d\(1, 1, kernel_size=\(3, 3\).*\) is not something an MLP can express; "
     r"from_torch knows Linear, Tanh, ReLU, Sigmoid, Identity"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.GELU(), nn.Linear(3, 1)),
     r"module 1 \(GELU\(approximate='none'\)\) is not something an MLP can express"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dropout(0.5), nn.Linear(3, 1)),
     r"module 2 \(Dropout\(p=0.5, inplace=False\)\) is not something"),
    (lambda: nn.Sequential(nn.Linear(2, 3), _Relu()), r"module 1 \(_Relu\(\)\) is not something"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.Linear(3, 1))),
     r"module 1 \(Sequential\(.*"),
    (lambda: nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(8, 1)),
     r"module 2 \(Linear\(in_features=8, out_features=1, bias=True\)\) takes 8 inputs, "
     r"but the layer before gives 16"),
    (lambda: nn.Sequential(nn.ReLU(), nn.Linear(2, 1)), r"module 0 \(ReLU\(\)\) comes before any Linear"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Tanh(), nn.Linear(3, 1)),
     r"module 2 \(Tanh\(\)\) follows another activation: an MLP has one per layer"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.Sigmoid(), nn.Linear(3, 1)),
     r"module 3 \(Sigmoid\(\)\): an MLP has one activation for all hidden layers, and this layer's is "
     r"sigmoid where the first's is relu"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.Linear(3, 1)),
     r"module 2 \(Linear\(in_features=3, out_features=3, bias=True\)\): an MLP has one activation for all "
     r"hidden layers, and this layer's is linear where the first's is relu"),
    (lambda: nn.Sequential(nn.Linear(2, 0)),
     r"module 0 \(Linear\(in_features=2, out_features=0.*\) is empty"),
    (lambda: nn.Sequential(),
     r"from_torch got an empty nn.Sequential: an MLP needs at least one Linear layer"),
    (lambda: nn.Conv2d(1, 1, 3),
     r"from_torch takes an nn.Sequential of Linear layers and activations, or one nn.Linear, got Conv2d$"),
    (lambda: nn.DataParallel(nn.Linear(2, 1)),
     r"got DataParallel \(pass its .module\)$"),
    (lambda: MLP(2, [1], rng=random.Random(0)), r"got MLP$"),
    (lambda: nn.Sequential(nn.Linear(2, 2).to(torch.complex128)),
     r"module 0 .* has torch.complex128 weights; from_torch takes real floating-point ones"),
], ids=["conv2d", "gelu", "dropout", "relu-subclass", "nested", "sizes", "activation-first",
        "two-activations", "mixed-hidden", "mixed-hidden-implicit", "empty-linear", "empty",
        "not-sequential", "ddp-like", "chainrule-model", "complex"])
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors", "ignore:Complex modules")
def test_from_torch_refuses_what_an_mlp_cannot_express(make, message):
    net = make()
    with pytest.raises(ValueError, match=message):
        from_torch(net)


@pytest.mark.parametrize(("index", "part", "value"), [(2, "weight", math.nan), (2, "bias", math.inf),
                                                   (0, "weight", -math.inf)])
def test_from_torch_refuses_non_finite_weights(index, part, value):
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        getattr(net[index], part).view(-1)[0] = value
    with pytest.raises(ValueError, match=rf"module {index} \(Linear\(.*\)\) has a non-finite {part}: "
                                         r"the model has diverged"):
        from_torch(net)


# ----- torch stays optional ------------------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


def test_import_chainrule_does_not_import_torch():
    proc = _python("import sys, chainrule, chainrule.export, chainrule.nn; "
                   "print(chainrule.to_torch.__module__, 'torch' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["chainrule.export", "False"]


@pytest.mark.parametrize("call", ["to_torch(MLP(2, [1]))", "from_torch(None)"])
def test_without_torch_one_line_says_what_to_install(call):
    # sys.modules['torch'] = None makes `import torch` fail, as if it were not installed.
    proc = _python("import sys; sys.modules['torch'] = None\n"
                   "from chainrule import from_torch, to_torch\nfrom chainrule.nn import MLP\n"
                   f"try:\n    {call}\nexcept ImportError as e:\n    print(repr(str(e)))\n")
    assert proc.returncode == 0, proc.stderr
    name = call.split("(")[0]
    assert proc.stdout == (f"'chainrule.{name} needs PyTorch, which is not installed: "
                           f"pip install \"chainrule[torch]\" --extra-index-url "
                           f"https://download.pytorch.org/whl/cpu'\n")


def test_the_torch_extra_keeps_the_exact_pin():
    # Any other spelling of the requirement pulls gigabytes of CUDA wheels.
    text = (ROOT / "pyproject.toml").read_text()
    assert 'torch = ["torch==2.13.0"]' in text


# ----- the DDP example ------------------------------------------------------------------------------


def test_ddp_step0_gradient_is_the_full_batch_gradient(tmp_path):
    """Two processes, three steps: DDP's averaged gradient at step 0 is chainrule's full-batch one,
    and the weights DDP trained are those of full-batch SGD in chainrule."""
    steps = 3
    env = {**os.environ, "CHAINRULE_OUT": str(tmp_path), "CHAINRULE_DDP_STEPS": str(steps)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(DDP_EXAMPLE)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    print(f"06_ddp.py, 2 processes, {steps} steps: {seconds:.1f} s")

    # The reference, built here from scratch: the demo's data and model, full batch, loss.backward().
    X, labels = make_moons(n_samples=100, noise=0.1, random_state=1337)
    y = labels * 2 - 1
    model = MLP(2, [16, 16, 1], "relu", "linear", bias_init="zero", rng=random.Random(1337))

    def full_batch_loss():
        return hinge(model([Value(X[:, 0]), Value(X[:, 1])]), y) + l2(model.parameters(), 1e-4)

    full_batch_loss().backward()
    reference = {name: p.grad for name, p in model.named_parameters()}
    assert all(math.isfinite(g) for g in reference.values()) and any(g != 0.0 for g in reference.values())

    saved = torch.load(tmp_path / "06_ddp_step0_grads.pt")
    averaged = _by_chainrule_name([(saved[f"{i}.weight"], saved[f"{i}.bias"]) for i in (0, 2, 4)])
    assert averaged.keys() == reference.keys()
    gap = max(abs(averaged[k] - reference[k]) for k in reference)
    assert gap < 1e-10, f"DDP's step-0 gradient is {gap:.1e} away from the full-batch gradient"

    # The same steps in chainrule, full batch (step 0's gradient is already in .grad).
    for k in range(steps):
        if k:
            model.zero_grad()
            full_batch_loss().backward()
        for p in model.parameters():
            p.data -= (1.0 - 0.9 * k / steps) * p.grad
    trained = torch.load(tmp_path / "06_ddp_model.pt")
    ddp_weights = _by_chainrule_name([(trained[f"{i}.weight"], trained[f"{i}.bias"]) for i in (0, 2, 4)])
    drift = max(abs(ddp_weights[name] - p.data) for name, p in model.named_parameters())
    assert drift < 1e-10, f"DDP's weights after {steps} steps are {drift:.1e} away from full-batch SGD's"
    assert f"after {steps} steps on 2 processes, scored by chainrule" in proc.stdout
