"""microgpt's engine and model code, the peer of the `names` workload (see README.md).

Karpathy's microgpt (February 2026) trains a GPT on the names with its own ~30-line scalar engine: a
`Value` with `data`, `grad`, its children and the local derivative towards each, filled in by every op;
backward sorts the graph depth first (recursively, with a visited set) and adds `local * grad` into each
child. Written here again from its description, not copied; what matters for a fair comparison is kept
as it is there: the same ops, the same graph (one node per `+` and `*`, `sum()` starting from the int 0,
softmax's max shift read from `.data`, `x ** -0.5` in rmsnorm) and the same order of random draws.

`train_step(make, ...)` runs microgpt's model code with any Value class `make`: `Value` below (microgpt
as its users run it) or `chainrule.engine.Value` (the same code on chainrule's engine).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any


class Value:
    """microgpt's engine: each op returns a node holding its children and local derivatives."""

    __slots__ = ("_children", "_local_grads", "data", "grad")

    def __init__(self, data: float, children: tuple[Any, ...] = (), local_grads: tuple[float, ...] = ()
                 ) -> None:
        self.data, self.grad = data, 0.0
        self._children, self._local_grads = children, local_grads

    def __add__(self, other: Any) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    def __mul__(self, other: Any) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    def __pow__(self, k: float) -> Value:  # a constant exponent only
        return Value(self.data ** k, (self,), (k * self.data ** (k - 1),))

    def log(self) -> Value:
        return Value(math.log(self.data), (self,), (1.0 / self.data,))

    def exp(self) -> Value:
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    def relu(self) -> Value:
        return Value(max(0.0, self.data), (self,), (float(self.data > 0),))

    def __neg__(self) -> Value:
        return self * -1

    def __radd__(self, other: Any) -> Value:
        return self + other

    def __sub__(self, other: Any) -> Value:
        return self + (-other)

    def __rsub__(self, other: Any) -> Value:
        return other + (-self)

    def __rmul__(self, other: Any) -> Value:
        return self * other

    def __truediv__(self, other: Any) -> Value:
        return self * other ** -1

    def __rtruediv__(self, other: Any) -> Value:
        return other * self ** -1

    def backward(self) -> None:
        order: list[Value] = []
        visited: set[Value] = set()

        def visit(v: Value) -> None:
            if v not in visited:
                visited.add(v)
                for child in v._children:
                    visit(child)
                order.append(v)

        visit(self)
        self.grad = 1.0
        for v in reversed(order):
            for child, local in zip(v._children, v._local_grads):  # noqa: B905
                child.grad += local * v.grad


# Sizes and Adam's settings, as microgpt sets them.
N_LAYER, N_EMBD, BLOCK_SIZE, N_HEAD = 1, 16, 16, 4
HEAD_DIM = N_EMBD // N_HEAD
LR, BETA1, BETA2, EPS = 0.01, 0.85, 0.99, 1e-8


class Model:
    """microgpt's state: the names in training order, the tokenizer, the weights and Adam's moments."""

    def __init__(self, make: Callable[[float], Any], docs: list[str]) -> None:
        docs = list(docs)
        rng = random.Random(42)
        rng.shuffle(docs)
        self.docs = docs
        self.chars = sorted(set("".join(docs)))
        self.bos = len(self.chars)
        vocab = self.bos + 1

        def matrix(rows: int, cols: int) -> list[list[Any]]:
            return [[make(rng.gauss(0, 0.08)) for _ in range(cols)] for _ in range(rows)]

        # The order of the draws: wte, wpe, lm_head, then per layer q, k, v, o, fc1, fc2.
        self.weights: dict[str, list[list[Any]]] = {
            "wte": matrix(vocab, N_EMBD), "wpe": matrix(BLOCK_SIZE, N_EMBD), "lm_head": matrix(vocab, N_EMBD)}
        for i in range(N_LAYER):
            for name in ("wq", "wk", "wv", "wo"):
                self.weights[f"layer{i}.attn_{name}"] = matrix(N_EMBD, N_EMBD)
            self.weights[f"layer{i}.mlp_fc1"] = matrix(4 * N_EMBD, N_EMBD)
            self.weights[f"layer{i}.mlp_fc2"] = matrix(N_EMBD, 4 * N_EMBD)
        self.params = [p for rows in self.weights.values() for row in rows for p in row]
        self.m = [0.0] * len(self.params)
        self.v = [0.0] * len(self.params)


def _linear(x: list[Any], w: list[list[Any]]) -> list[Any]:
    return [sum(wi * xi for wi, xi in zip(row, x)) for row in w]  # noqa: B905


def _softmax(logits: list[Any]) -> list[Any]:
    shift = max(v.data for v in logits)
    exps = [(v - shift).exp() for v in logits]
    total = sum(exps)
    return [e / total for e in exps]


def _rmsnorm(x: list[Any]) -> list[Any]:
    scale = (sum(xi * xi for xi in x) / len(x) + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def _forward(model: Model, token: int, pos: int, keys: list[list[Any]], values: list[list[Any]]
             ) -> list[Any]:
    w = model.weights
    x = _rmsnorm([t + p for t, p in zip(w["wte"][token], w["wpe"][pos])])  # noqa: B905
    for i in range(N_LAYER):
        residual = x
        x = _rmsnorm(x)
        q, k, v = (_linear(x, w[f"layer{i}.attn_{name}"]) for name in ("wq", "wk", "wv"))
        keys[i].append(k)
        values[i].append(v)
        heads: list[Any] = []
        for h in range(N_HEAD):
            lo, hi = h * HEAD_DIM, (h + 1) * HEAD_DIM
            q_h = q[lo:hi]
            k_h = [kt[lo:hi] for kt in keys[i]]
            v_h = [vt[lo:hi] for vt in values[i]]
            att = _softmax([sum(q_h[j] * kt[j] for j in range(HEAD_DIM)) / HEAD_DIM ** 0.5 for kt in k_h])
            heads += [sum(att[t] * v_h[t][j] for t in range(len(v_h))) for j in range(HEAD_DIM)]
        x = [a + b for a, b in zip(_linear(heads, w[f"layer{i}.attn_wo"]), residual)]  # noqa: B905
        residual = x
        hidden = [h.relu() for h in _linear(_rmsnorm(x), w[f"layer{i}.mlp_fc1"])]
        x = [a + b for a, b in zip(_linear(hidden, w[f"layer{i}.mlp_fc2"]), residual)]  # noqa: B905
    return _linear(x, w["lm_head"])


def loss_of(model: Model, step: int) -> Any:
    """The mean cross-entropy of name number `step` (boundary token at both ends), as a graph."""
    name = model.docs[step % len(model.docs)]
    tokens = [model.bos, *(model.chars.index(c) for c in name), model.bos]
    n = min(BLOCK_SIZE, len(tokens) - 1)
    keys: list[list[Any]] = [[] for _ in range(N_LAYER)]
    values: list[list[Any]] = [[] for _ in range(N_LAYER)]
    losses = [-_softmax(_forward(model, tokens[p], p, keys, values))[tokens[p + 1]].log() for p in range(n)]
    return (1 / n) * sum(losses)


def train_step(model: Model, step: int, steps: int) -> float:
    """One of microgpt's steps: loss, backward, Adam with the rate decaying linearly to 0 over `steps`."""
    loss = loss_of(model, step)
    loss.backward()
    lr = LR * (1 - step / steps)
    for i, p in enumerate(model.params):
        model.m[i] = BETA1 * model.m[i] + (1 - BETA1) * p.grad
        model.v[i] = BETA2 * model.v[i] + (1 - BETA2) * p.grad ** 2
        m_hat = model.m[i] / (1 - BETA1 ** (step + 1))
        v_hat = model.v[i] / (1 - BETA2 ** (step + 1))
        p.data -= lr * m_hat / (v_hat ** 0.5 + EPS)
        p.grad = 0.0
    return float(loss.data)
