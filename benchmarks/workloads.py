"""The four benchmark workloads, written once and run unchanged by every engine.

Every scalar engine here (chainrule, micrograd, PyTorch on 0-d tensors) is driven through the same
few lines: a `leaf(x)` factory, Python operators, `.relu()`/`.tanh()`/`.exp()` methods and
`.backward()`. So each engine builds exactly the same graph, op for op, and differences in time
are the engines' own. Only PyTorch's batched moons step is written in PyTorch's idiom (matrices),
because that is how a PyTorch user would write it.

No function here prints, reads argv or touches the garbage collector: `worker.py` does that.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

Leaf = Callable[[float], Any]
Layers = list[list[tuple[list[Any], Any]]]  # layer -> neuron -> (weights, bias)

# ---------------------------------------------------------------------------------------------
# moons: one step of micrograd's demo.ipynb
# ---------------------------------------------------------------------------------------------


def make_layers(leaf: Leaf, weights: list[list[list[float]]]) -> Layers:
    """weights[layer][neuron] = [w_0, ..., w_{nin-1}, b], as drawn once by run.py."""
    return [[([leaf(w) for w in neuron[:-1]], leaf(neuron[-1])) for neuron in layer]
            for layer in weights]


def parameters(layers: Layers) -> list[Any]:
    # micrograd's order: layer by layer, neuron by neuron, weights then bias. The L2 term sums in
    # this order, so keeping it keeps the losses bit-identical across engines.
    return [p for layer in layers for w, b in layer for p in [*w, b]]


def mlp(layers: Layers, x: list[Any]) -> Any:
    """micrograd's MLP forward by hand: act = b + w0*x0 + w1*x1 + ... (left to right), ReLU
    on hidden layers, linear output. Works on scalar Values and on batched Values alike."""
    for i, layer in enumerate(layers):
        out = []
        for w, b in layer:
            act = b
            for wi, xi in zip(w, x, strict=True):
                act = act + wi * xi
            out.append(act if i == len(layers) - 1 else act.relu())
        x = out
    return x[0]


def learning_rate(k: int) -> float:
    return 1.0 - 0.9 * k / 100  # the demo's schedule


def hand_built(leaf: Leaf, weights: list[list[list[float]]]) -> tuple[Callable[[Any], Any], list[Any]]:
    """The model as (forward, parameters), built by hand from `leaf` Values: every engine runs it."""
    layers = make_layers(leaf, weights)
    return (lambda x: mlp(layers, x)), parameters(layers)


def _sgd_step(total: Any, params: list[Any], k: int, t0: int, accuracy: float) -> dict[str, float]:
    """The end of every scalar engine's moons step: zero grads, backward, SGD with the demo's lr; then
    the step's record (its time since t0, the backward's alone, loss and accuracy; at step 0, a warm-up
    the medians leave out, also the graph's node count, counted after the clock stopped)."""
    for p in params:
        p.grad = 0.0
    tb = time.perf_counter_ns()
    total.backward()
    tb1 = time.perf_counter_ns()
    lr = learning_rate(k)
    for p in params:
        p.data -= lr * p.grad
    t1 = time.perf_counter_ns()
    record = {"ns": t1 - t0, "bwd_ns": tb1 - tb, "loss": float(total.data), "acc": float(accuracy)}
    if k == 0:
        record["nodes"] = count_nodes(total)
    return record


def count_nodes(root: Any) -> int:
    """Nodes of a scalar engine's graph, leaves included (an iterative walk over `_prev`: micrograd's
    and chainrule's name for a node's parents)."""
    seen = {id(root)}
    stack = [root]
    while stack:
        for parent in stack.pop()._prev:
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    return len(seen)


def moons_scalar(leaf: Leaf, model: Callable[[Any], Any], params: list[Any],
                 X: Sequence[Sequence[float]], y: Sequence[float],
                 steps: int) -> list[dict[str, float]]:
    """The demo's step, one Value per number, the model built by hand from + and * (micrograd,
    chainrule-ops)."""
    records = []
    for k in range(steps):
        t0 = time.perf_counter_ns()
        inputs = [[leaf(xi) for xi in row] for row in X]
        scores = [model(x) for x in inputs]
        # hinge loss; the demo writes 1 + -yi*scorei, the same floats (+ and * commute exactly)
        losses = [(s * -yi + 1.0).relu() for yi, s in zip(y, scores, strict=True)]
        data_loss = sum(losses) * (1.0 / len(losses))
        reg_loss = 1e-4 * sum(p * p for p in params)
        total = data_loss + reg_loss
        accuracy = sum((yi > 0) == (s.data > 0) for yi, s in zip(y, scores, strict=True)) / len(y)
        records.append(_sgd_step(total, params, k, t0, accuracy))
    return records


def moons_nn(leaf: Leaf, model: Callable[[Any], Any], params: list[Any], losses: Any, X: Any, y: Any,
             steps: int, batched: bool) -> list[dict[str, float]]:
    """The demo's step as a chainrule user writes it: `chainrule.nn.MLP` (one `linear` node per
    neuron), `losses.hinge(scores, y) + losses.l2(params, 1e-4)`, backward, SGD. Eager: one Value
    per number (`X`, `y` lists). Batched: one Value per feature column (`X`, `y` NumPy arrays)."""
    records = []
    for k in range(steps):
        t0 = time.perf_counter_ns()
        if batched:
            scores = model([leaf(X[:, 0]), leaf(X[:, 1])])
            accuracy = float(((y > 0) == (scores.data > 0)).mean())
        else:
            scores = [model([leaf(xi) for xi in row]) for row in X]
            accuracy = sum((yi > 0) == (s.data > 0) for yi, s in zip(y, scores, strict=True)) / len(y)
        total = losses.hinge(scores, y) + losses.l2(params, 1e-4)
        records.append(_sgd_step(total, params, k, t0, accuracy))
    return records


def moons_compiled(prog: Any, outputs: list[Any], params: list[Any], y: Any, steps: int,
                   batched: bool) -> list[dict[str, float]]:
    """The demo's step replayed by `chainrule.compile`: the graph was built and compiled once, before
    the clock; each step zeroes the grads, runs the program (forward and backward, grads into the
    parameters), reads the scores for the accuracy and updates the parameters (SGD)."""
    step = compiled_stepper(prog, outputs, params, y, batched)
    return [step(k) for k in range(steps)]


def compiled_stepper(prog: Any, outputs: list[Any], params: list[Any], y: Any,
                     batched: bool) -> Callable[[int], dict[str, float]]:
    """moons_compiled's step k, as a function (for running it in turn with another engine's)."""

    def step(k: int) -> dict[str, float]:
        t0 = time.perf_counter_ns()
        for p in params:
            p.grad = 0.0
        loss = prog()
        if batched:
            accuracy = float(((y > 0) == (prog.value(outputs[0]) > 0)).mean())
        else:
            accuracy = sum((yi > 0) == (prog.value(s) > 0) for yi, s in zip(y, outputs, strict=True)) / len(y)
        lr = learning_rate(k)
        for p in params:
            p.data -= lr * p.grad
        t1 = time.perf_counter_ns()
        return {"ns": t1 - t0, "loss": loss, "acc": float(accuracy)}

    return step


def moons_batched(leaf: Leaf, model: Callable[[Any], Any], params: list[Any], X: Any, y: Any,
                  steps: int) -> list[dict[str, float]]:
    """The hand-built step (+ and * only) in chainrule's batched mode: one Value holds a feature
    column (a 1-D array), so the same per-example model code builds one graph for the whole batch."""
    records = []
    for k in range(steps):
        t0 = time.perf_counter_ns()
        inputs = [leaf(X[:, 0]), leaf(X[:, 1])]
        scores = model(inputs)
        losses = (scores * leaf(-y) + 1.0).relu()
        data_loss = losses.sum() * (1.0 / len(y))
        reg_loss = 1e-4 * sum(p * p for p in params)
        total = data_loss + reg_loss
        accuracy = float(((y > 0) == (scores.data > 0)).mean())
        records.append(_sgd_step(total, params, k, t0, accuracy))
    return records


def moons_torch(torch: Any, weights: list[list[list[float]]], X: Any, y: Any,
                steps: int) -> list[dict[str, float]]:
    """The same step as a PyTorch user writes it: float64 tensors, one matmul per layer."""
    step = torch_stepper(torch, weights, X, y)
    return [step(k) for k in range(steps)]


def torch_stepper(torch: Any, weights: list[list[list[float]]], X: Any,
                  y: Any) -> Callable[[int], dict[str, float]]:
    """moons_torch's step k, as a function (the tensors are made once, before any clock)."""
    f64 = torch.float64
    Ws = [torch.tensor([n[:-1] for n in layer], dtype=f64, requires_grad=True) for layer in weights]
    bs = [torch.tensor([n[-1] for n in layer], dtype=f64, requires_grad=True) for layer in weights]
    Xt = torch.tensor(X, dtype=f64)
    yt = torch.tensor(y, dtype=f64)
    params = [p for W, b in zip(Ws, bs, strict=True) for p in (W, b)]

    def step(k: int) -> dict[str, float]:
        t0 = time.perf_counter_ns()
        h = Xt
        for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
            h = torch.addmm(b, h, W.t())
            if i < len(Ws) - 1:
                h = h.relu()
        scores = h[:, 0]
        losses = (scores * -yt + 1.0).relu()
        data_loss = losses.sum() * (1.0 / len(y))
        reg_loss = 1e-4 * sum((p * p).sum() for p in params)
        total = data_loss + reg_loss
        accuracy = ((yt > 0) == (scores > 0)).double().mean().item()
        for p in params:
            p.grad = None
        total.backward()
        lr = learning_rate(k)
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
        t1 = time.perf_counter_ns()
        return {"ns": t1 - t0, "loss": total.item(), "acc": accuracy}

    return step


# ---------------------------------------------------------------------------------------------
# chain: y = y*1.0001 + 0.0001, n deep
# ---------------------------------------------------------------------------------------------


def chain_nodes(n: int) -> int:
    return 1 + 4 * n  # x, then per link: the constant 1.0001, *, the constant 0.0001, +


def chain(leaf: Leaf, grad: Callable[[Any], float], n: int,
          stage: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    stage("forward")
    t0 = time.perf_counter_ns()
    x = leaf(1.0)
    y = x
    for _ in range(n):
        y = y * 1.0001 + 0.0001
    t1 = time.perf_counter_ns()
    stage("backward")
    y.backward()
    t2 = time.perf_counter_ns()
    expected = 1.0001**n  # dy/dx
    rel_err = abs(grad(x) - expected) / expected
    return {"fwd_ns": t1 - t0, "bwd_ns": t2 - t1, "grad_rel_err": rel_err, "graph": (x, y)}


# ---------------------------------------------------------------------------------------------
# wide: a_0*b_0 + a_1*b_1 + ... summed left to right
# ---------------------------------------------------------------------------------------------


def wide_inputs(n: int, seed: int = 0) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    return [rng.uniform(-1, 1) for _ in range(n)], [rng.uniform(-1, 1) for _ in range(n)]


def wide_nodes(n: int) -> int:
    return 2 * n + n + (n - 1)  # leaves, products, sums


def build_wide(leaf: Leaf, A: list[float], B: list[float]) -> tuple[list[Any], list[Any], Any]:
    xs = [leaf(a) for a in A]
    ys = [leaf(b) for b in B]
    s = xs[0] * ys[0]
    for x, y in zip(xs[1:], ys[1:], strict=True):
        s = s + x * y
    return xs, ys, s


def wide(leaf: Leaf, grad: Callable[[Any], float], A: list[float], B: list[float],
         stage: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    stage("forward")
    t0 = time.perf_counter_ns()
    xs, ys, s = build_wide(leaf, A, B)
    t1 = time.perf_counter_ns()
    stage("backward")
    s.backward()
    t2 = time.perf_counter_ns()
    # d s / d a_i = b_i, exactly
    probe = range(0, len(A), max(1, len(A) // 97))
    ok = all(grad(xs[i]) == B[i] and grad(ys[i]) == A[i] for i in probe)
    return {"fwd_ns": t1 - t0, "bwd_ns": t2 - t1, "grads_ok": ok, "graph": (xs, ys, s)}


# ---------------------------------------------------------------------------------------------
# ops: ns per op, and backward ns per node
# ---------------------------------------------------------------------------------------------

OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "*": lambda a, b: a * b,
    "**": lambda a, b: a**2,
    "relu": lambda a, b: a.relu(),
    "tanh": lambda a, b: a.tanh(),
    "exp": lambda a, b: a.exp(),
}


def op_supported(leaf: Leaf, op: str) -> bool:
    try:
        OPS[op](leaf(0.5), leaf(0.25))
    except (AttributeError, TypeError, AssertionError):
        return False
    return True


def time_op(leaf: Leaf, op: str, n: int) -> tuple[int, Any]:
    """Apply one op n times, written out (no lambda call) so the only overhead left is the loop,
    which `time_loop` measures and the caller subtracts. Returns (ns, outputs)."""
    rng = random.Random(1)
    xs = [leaf(rng.uniform(-1, 1)) for _ in range(n)]
    ys = [leaf(rng.uniform(-1, 1)) for _ in range(n)]
    t0 = time.perf_counter_ns()
    if op == "+":
        out = [a + b for a, b in zip(xs, ys, strict=True)]
    elif op == "*":
        out = [a * b for a, b in zip(xs, ys, strict=True)]
    elif op == "**":
        out = [a**2 for a, b in zip(xs, ys, strict=True)]
    elif op == "relu":
        out = [a.relu() for a, b in zip(xs, ys, strict=True)]
    elif op == "tanh":
        out = [a.tanh() for a, b in zip(xs, ys, strict=True)]
    elif op == "exp":
        out = [a.exp() for a, b in zip(xs, ys, strict=True)]
    else:
        raise ValueError(f"unknown op {op!r}")
    t1 = time.perf_counter_ns()
    return t1 - t0, (xs, ys, out)


def time_loop(n: int) -> int:
    xs = list(range(n))
    ys = list(range(n))
    t0 = time.perf_counter_ns()
    out = [a for a, b in zip(xs, ys, strict=True)]
    t1 = time.perf_counter_ns()
    del out
    return t1 - t0


def backward_nodes(n: int) -> int:
    return 3 * n + 4 * n + (n - 1)  # leaves a, b, c; *, +, relu, **; the sum


def build_backward_graph(leaf: Leaf, n: int) -> tuple[list[Any], Any]:
    """s = sum_i relu(a_i*b_i + c_i)**2: a mix of + * relu ** that every engine supports."""
    rng = random.Random(2)
    leaves = [leaf(rng.uniform(-1, 1)) for _ in range(3 * n)]
    s = None
    for i in range(n):
        a, b, c = leaves[3 * i: 3 * i + 3]
        t = (a * b + c).relu() ** 2
        s = t if s is None else s + t
    return leaves, s


def median(xs: Sequence[float]) -> float:
    ys = sorted(xs)
    mid = len(ys) // 2
    return ys[mid] if len(ys) % 2 else (ys[mid - 1] + ys[mid]) / 2



# ---------------------------------------------------------------------------------------------
# compiler: chainrule's compiled training step and PyTorch's, in turn in one process
# ---------------------------------------------------------------------------------------------
#
# Each round runs one chainrule step, then one PyTorch step doing the same math on the same numbers, so
# the load of a shared machine falls on both alike. chainrule's steps run inside its own training loop
# (`chainrule.train.fit`, `chainrule.makemore.train`), as users run them; PyTorch's step runs from the
# loop's `on_step` callback, off chainrule's clock.


def digits_data() -> tuple[Any, Any]:
    """scikit-learn's bundled digits (1,797 images of 8×8 pixels, 0..16): X/16 and the class indices."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data / 16.0, d.target


def digits_in_turn(torch: Any, hidden: list[int], steps: int) -> dict[str, Any]:
    """Full-batch training on the digits, 64 → hidden → 10, tanh hidden layers, cross-entropy, SGD lr 0.5.
    chainrule: `fit(..., mode="compiled")` on `chainrule.nn.MLP`, each step timed between `on_step`
    calls (step 0 captures and compiles the graph: it is timed from fit's call). PyTorch: the model from
    `chainrule.export.to_torch` (float64 nn.Linear layers holding the same weights), zero_grad, forward,
    F.cross_entropy, backward, SGD's step."""
    import torch.nn.functional as F

    from chainrule.export import to_torch
    from chainrule.nn import MLP
    from chainrule.optim import SGD
    from chainrule.train import fit

    X, y = digits_data()
    model = MLP(64, [*hidden, 10], "tanh", "linear", rng=random.Random(0))
    theirs = to_torch(model)  # before fit: a compiled run writes the trained weights back when it returns
    linears = [m for m in theirs if isinstance(m, torch.nn.Linear)]
    copied = all(
        lin.weight.tolist() == [[w.data for w in n.w] for n in layer.neurons]
        and lin.bias.tolist() == [n.b.data for n in layer.neurons]
        for lin, layer in zip(linears, model.layers, strict=True))
    Xt, yt = torch.tensor(X, dtype=torch.float64), torch.tensor(y)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.5)
    torch_ns: list[int] = []
    torch_losses: list[float] = []
    ends: list[int] = []  # chainrule's step k ended (on_step called)
    resumes: list[int] = []  # PyTorch's step k ended: chainrule's step k+1 starts

    def torch_step(k: int, loss: float, accuracy: float) -> None:
        ends.append(time.perf_counter_ns())
        t0 = time.perf_counter_ns()
        topt.zero_grad()
        out = F.cross_entropy(theirs(Xt), yt)
        out.backward()
        topt.step()
        t1 = time.perf_counter_ns()
        torch_ns.append(t1 - t0)
        torch_losses.append(out.item())
        resumes.append(time.perf_counter_ns())

    start = time.perf_counter_ns()
    history = fit(model, X, y, loss="ce", optimizer=SGD(model.parameters(), lr=0.5), steps=steps,
                  mode="compiled", on_step=torch_step)
    ours_ns = [ends[0] - start] + [ends[k] - resumes[k - 1] for k in range(1, steps)]
    return {"ours_ns": ours_ns, "torch_ns": torch_ns, "ours_losses": history.loss,
            "torch_losses": torch_losses, "weights_copied_exactly": copied,
            "parameters": model.num_parameters()}


def blas_floor(torch: Any, hidden: list[int], rounds: int = 60) -> dict[str, float]:
    """The matrix products of one full-batch digits step alone (64 → hidden → 10 on 1,797 points):
    forward W @ X per layer, backward ∂W = G @ Xᵀ per layer and ∂X = Wᵀ @ G past the first, on the
    shapes the compiled program multiplies (a row per neuron, a column per point), NumPy's BLAS against
    PyTorch's (float64, one thread), in turn. Their ratio is the floor under the compiled step's ratio:
    what no Python work saved can go below. Median of `rounds` rounds of all the products."""
    import numpy as np

    rng = np.random.default_rng(0)
    sizes = [64, *hidden, 10]
    Ws = [rng.normal(size=(o, i)) for i, o in itertools.pairwise(sizes)]
    Xs = [rng.normal(size=(i, 1797)) for i in sizes[:-1]]
    Gs = [rng.normal(size=(o, 1797)) for o in sizes[1:]]
    tW, tX, tG = ([torch.tensor(a) for a in arrays] for arrays in (Ws, Xs, Gs))

    def products(W: list[Any], X: list[Any], G: list[Any]) -> None:
        for k, (w, x, g) in enumerate(zip(W, X, G, strict=True)):
            w @ x
            g @ x.T
            if k:
                w.T @ g

    ours, theirs = [], []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        products(Ws, Xs, Gs)
        t1 = time.perf_counter_ns()
        products(tW, tX, tG)
        t2 = time.perf_counter_ns()
        ours.append(t1 - t0)
        theirs.append(t2 - t1)
    return {"numpy_ms": median(ours[1:]) / 1e6, "torch_ms": median(theirs[1:]) / 1e6}


def gpt_batches(model: Any, names: list[list[int]], steps: int, batch: int,
                seed: int) -> list[tuple[list[list[int]], Any, Any]]:
    """Every step's batch as chainrule.makemore.train draws it with rng=random.Random(seed): `batch` random
    names (`rng.choice`), then `makemore._padded`'s arrays of padded token ids and per-position loss weights
    (1/(n·B) on a name's n real positions, 0 on padding). Returns (rows, ids, weights) per step."""
    from chainrule.makemore import _padded

    rng = random.Random(seed)
    out = []
    for _ in range(steps):
        rows = [rng.choice(names) for _ in range(batch)]
        ids, weights = _padded(model, rows)
        out.append((rows, ids, weights))
    return out


def torch_gpt(torch: Any, model: Any) -> tuple[list[Any], Callable[[Any, Any], Any]]:
    """chainrule.lm's GPT written batched in PyTorch, float64, holding `model`'s weights now: the
    parameters, and loss(ids [B, n+1], weights [B, n]) = Σ weights · cross-entropy(logits, next token).
    Per position: token row + position row, rmsnorm (eps 1e-5, no gain), then per block x + attention(
    rmsnorm(x)) (causal, multi-head, scaled 1/√head_dim) and x + fc2(relu(fc1(rmsnorm(x)))), then lm_head;
    no biases (chainrule.lm.GPT's docstring)."""
    import torch.nn.functional as F

    f64 = torch.float64

    def tensor(rows: list[list[Any]]) -> Any:
        return torch.tensor([[float(p.data) for p in row] for row in rows], dtype=f64, requires_grad=True)

    wte, wpe, lm_head = tensor(model.wte.weight), tensor(model.wpe.weight), tensor(model.lm_head.weight)
    blocks = [[tensor(m.weight) for m in (b.attn.wq, b.attn.wk, b.attn.wv, b.attn.wo, b.fc1, b.fc2)]
              for b in model.blocks]
    params = [wte, wpe, lm_head, *(p for block in blocks for p in block)]
    heads, dim = model.n_head, model.n_embd
    head_dim = dim // heads

    def rmsnorm(x: Any) -> Any:
        return x * (x.pow(2).mean(-1, keepdim=True) + 1e-5).rsqrt()

    def loss(ids: Any, weights: Any) -> Any:
        B, n = weights.shape
        x = rmsnorm(wte[ids[:, :n]] + wpe[:n])
        for wq, wk, wv, wo, fc1, fc2 in blocks:
            h = rmsnorm(x)
            q, k, v = (F.linear(h, w).view(B, n, heads, head_dim).transpose(1, 2) for w in (wq, wk, wv))
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # scale 1/√head_dim
            x = x + F.linear(att.transpose(1, 2).reshape(B, n, dim), wo)
            x = x + F.linear(F.linear(rmsnorm(x), fc1).relu(), fc2)
        logits = F.linear(x, lm_head)
        nll = F.cross_entropy(logits.reshape(B * n, -1), ids[:, 1:].reshape(-1), reduction="none")
        return (nll * weights.reshape(-1)).sum()

    return params, loss


def gpt_capture_compile(model: Any, rows: list[list[int]], vocab: int) -> dict[str, Any]:
    """What the first batch of a new shape costs before its step runs: building the batched graph
    (`makemore._names_graph`, the capture) and `chainrule.compile` of its loss."""
    import chainrule
    from chainrule.makemore import _names_graph

    t0 = time.perf_counter_ns()
    root, _ = _names_graph(model, rows, vocab)
    t1 = time.perf_counter_ns()
    program = chainrule.compile(root)
    t2 = time.perf_counter_ns()
    return {"capture_ns": t1 - t0, "compile_ns": t2 - t1, "instructions": len(program),
            "nodes": program.plan.nodes}


def gpt_in_turn(torch: Any, steps: int, batch: int, seed: int = 0) -> dict[str, Any]:
    """microgpt's GPT (makemore.microgpt(): its weights and shuffled names) trained on batches of `batch`
    names, block 16, compiled (`makemore.train(..., mode="compiled")`), Adam(0.01 decaying linearly to 0,
    β 0.85/0.99, eps 1e-8); PyTorch's batched GPT (`torch_gpt`) with torch.optim.Adam at the same settings
    on the same batches (`gpt_batches`), its step from train's `on_step`. chainrule's step times are
    train's own (`history.seconds`); a step whose padded length is new includes that shape's capture and
    compile. Also the capture and compile of the first batch's shape, timed alone (median of 3)."""
    from chainrule import makemore

    model, tok, words, _, _ = makemore.microgpt(steps)
    settings = makemore.Settings(steps, batch, "compiled", "adam", 0.01, (0.85, 0.99))
    opt = makemore.new_optimizer(model, settings)
    schedule = opt.lr
    assert callable(schedule)  # new_optimizer's rate decays: a schedule
    batches = gpt_batches(model, [tok.encode(w) for w in words], steps, batch, seed)
    params, torch_loss = torch_gpt(torch, model)  # before train: it writes the trained weights back
    topt = torch.optim.Adam(params, lr=settings.lr, betas=settings.betas, eps=1e-8)
    captures = [gpt_capture_compile(model, batches[0][0], tok.vocab_size) for _ in range(3)]
    torch_ns: list[int] = []
    torch_losses: list[float] = []

    def torch_step(k: int, loss: float, seconds: float) -> None:
        t0 = time.perf_counter_ns()
        _, ids, weights = batches[k]
        ids_t = torch.tensor(ids)
        weights_t = torch.tensor(weights, dtype=torch.float64).T  # [B, n]
        for group in topt.param_groups:
            group["lr"] = schedule(k)  # chainrule's rate at step k
        topt.zero_grad()
        out = torch_loss(ids_t, weights_t)
        out.backward()
        topt.step()
        torch_ns.append(time.perf_counter_ns() - t0)
        torch_losses.append(out.item())

    history = makemore.train(model, words, tok, steps=steps, batch=batch, mode="compiled", optimizer=opt,
                             rng=random.Random(seed), on_step=torch_step)
    seen: set[int] = set()
    new_shape = []
    for _, ids, _ in batches:
        new_shape.append(len(ids[0]) not in seen)
        seen.add(len(ids[0]))
    return {"ours_ns": [s * 1e9 for s in history.seconds], "torch_ns": torch_ns,
            "ours_losses": history.loss, "torch_losses": torch_losses, "new_shape": new_shape,
            "capture_ns": median([c["capture_ns"] for c in captures]),
            "compile_ns": median([c["compile_ns"] for c in captures]),
            "capture_compile_ns": median([c["capture_ns"] + c["compile_ns"] for c in captures]),
            "instructions": captures[0]["instructions"], "nodes": captures[0]["nodes"],
            "capture_rows": len(batches[0][1][0]) - 1, "parameters": model.num_parameters()}
