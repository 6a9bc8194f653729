"""Character language models from Values: makemore's Bigram and MLP, and microgpt's GPT.

Every piece is a few lines of Value arithmetic over lists of scalars, as in microgpt: `softmax`, `rmsnorm`,
an `Embedding` table, a bias-free `Linear`, causal self-attention with heads, a transformer `Block` and
the `GPT` around it. Sums of products (a neuron, a dot product of a query and a key, a weighted sum of
values) are the engine's one-node `linear`, so a step makes a few hundred nodes where microgpt makes
thousands, with the same floats. Nothing here knows a derivative.

A token is an int (eager: the embedding looks its row up, plain list indexing) or a *one-hot* list of
batched Values, one per vocabulary entry (`one_hot`): then the lookup is the sum Σ_i onehot_i·row_i,
`linear` nodes over the whole batch, and the same model code trains a batch at once (and compiles).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias, cast

from chainrule.engine import Value
from chainrule.nn import Module, _check_count
from chainrule.ops import apply_op, linear

# An int, or one batched Value per vocabulary entry holding 1.0 where the example's token is that entry.
Token: TypeAlias = int | Sequence[Value]

__all__ = ["GPT", "Bigram", "Block", "CausalSelfAttention", "CharMLP", "Embedding", "Linear", "Token",
           "nll", "one_hot", "rmsnorm", "softmax"]


def one_hot(ids: Sequence[int], vocab_size: int) -> list[Value]:
    """The tokens `ids` of a batch of examples as `vocab_size` batched Values (1.0 where id == i)."""
    import numpy as np  # only batches need NumPy

    a = np.asarray(ids)
    if a.ndim != 1 or a.dtype.kind not in "iu" or ((a < 0) | (a >= vocab_size)).any():
        raise ValueError(f"one_hot needs a 1-D list of token ids in [0, {vocab_size}), got {ids!r}")
    return [Value(cast(float, (a == i).astype(np.float64)), label=f"onehot{i}") for i in range(vocab_size)]


def _zero() -> Value:
    return Value(0.0)  # the bias of a sum of products that has none (linear's first input)


def _max_shift(z: Sequence[Value]) -> Value:
    """The largest logit (per example), detached: exp(z - m) never overflows and Σ exp ≥ 1. Both are ops
    of the graph, so a compiled program recomputes the shift from new logits; detached, because softmax is
    the same for any m, and no gradient need flow through it (the grads are those of a constant m)."""
    return apply_op("max", *z).detach()


def softmax(logits: Sequence[Value]) -> list[Value]:
    """exp(z_i - m) / Σ_j exp(z_j - m): probabilities, stable for any logits (m the largest)."""
    m = _max_shift(logits)
    exps = [(z - m).exp() for z in logits]
    total = _sum(exps)
    return [e / total for e in exps]


def nll(logits: Sequence[Value], target: Token) -> Value:
    """-log softmax(logits)[target], written as log Σ_j exp(z_j - m) - (z_target - m): no log(0) even
    where the target's probability underflows. PyTorch: `F.cross_entropy` of one example."""
    m = _max_shift(logits)
    shifted = [z - m for z in logits]
    lse = _sum([s.exp() for s in shifted]).log()
    if isinstance(target, int):
        return lse - shifted[target]
    return lse - linear(target, shifted, _zero())  # Σ_i onehot_i·shifted_i: each example's own target


def rmsnorm(x: Sequence[Value], eps: float = 1e-5) -> list[Value]:
    """x / sqrt(mean(x²) + eps) (no learned gain, as microgpt). Σ x² is one linear node."""
    scale = (linear(x, x, _zero()) / len(x) + eps) ** -0.5
    return [xi * scale for xi in x]


def _sum(xs: Sequence[Value]) -> Value:
    """x0 + x1 + ... as one `linear` node (weights 1, bias 0): the floats of Python's sum() left to right
    (0 + 1·x0 is x0), and one node at one depth whatever the count, so the softmaxes of a sequence's
    positions (p + 1 terms at position p) line up depth by depth and compile into the same instructions
    (a chain of `+` would put each position one level deeper than the last)."""
    one = Value(1.0)
    return linear([one] * len(xs), xs, _zero())


def _matrix(rows: int, cols: int, std: float, rng: random.Random, name: str) -> list[list[Value]]:
    # Drawn row by row (outputs × inputs), microgpt's order: its seed gives its weights.
    return [[Value(rng.gauss(0.0, std), label=f"{name}[{i},{j}]") for j in range(cols)] for i in range(rows)]


def _named(prefix: str, rows: list[list[Value]]) -> list[tuple[str, Value]]:
    return [(f"{prefix}.{i}.{j}", p) for i, row in enumerate(rows) for j, p in enumerate(row)]


class Embedding(Module):
    """A table of `num` rows of `dim` learned numbers; token i reads row i (PyTorch: nn.Embedding)."""

    def __init__(self, num: int, dim: int, *, std: float = 1.0, rng: random.Random | None = None,
                 name: str = "emb") -> None:
        self.num, self.dim = _check_count("num", num), _check_count("dim", dim)
        self.weight = _matrix(num, dim, std, rng or random.Random(), name)
        self.zero = _zero()  # the b of every one-hot sum, at every call: compile's product (see Linear)

    def __call__(self, token: Token | Value) -> list[Value]:
        """The row of `token`: an int reads the row itself (eager; the graph then depends on the token); a
        Value holding the index (a number, or a batch of token ids) makes one `lookup` node per column,
        whose graph is the same for every token (what `chainrule.compile` needs); a one-hot list of
        Values makes Σ_i onehot_i·row_i (batched)."""
        if isinstance(token, Value):
            return [apply_op("lookup", token, *[row[d] for row in self.weight]) for d in range(self.dim)]
        if isinstance(token, int):
            if not 0 <= token < self.num:
                raise ValueError(f"token {token} is not in [0, {self.num}) for {self!r}")
            return self.weight[token]
        if len(token) != self.num:
            raise ValueError(f"a one-hot token needs {self.num} Values, got {len(token)}")
        return [linear([row[d] for row in self.weight], token, self.zero) for d in range(self.dim)]

    def named_parameters(self) -> list[tuple[str, Value]]:
        return _named("weight", self.weight)

    def parameters(self) -> list[Value]:
        return [p for row in self.weight for p in row]

    def __repr__(self) -> str:
        return f"Embedding({self.num} × {self.dim})"


class Linear(Module):
    """y_i = Σ_j W[i][j]·x_j (+ b_i): one `linear` node per output (PyTorch: nn.Linear, weight out × in)."""

    def __init__(self, nin: int, nout: int, *, bias: bool = False, std: float = 0.08,
                 rng: random.Random | None = None, name: str = "w") -> None:
        self.nin, self.nout = _check_count("nin", nin), _check_count("nout", nout)
        self.weight = _matrix(nout, nin, std, rng or random.Random(), name)
        self.bias = [Value(0.0, label=f"{name}.b[{i}]") for i in range(nout)] if bias else None
        # Without biases, every output's sum starts from this one constant 0 (linear's b), at every call:
        # the layer's nodes at all positions then share their b and weights, which is what lets compile
        # run the layer over a whole sequence as one matrix product. Not a parameter (no update reads it).
        self.zero = _zero()

    def __call__(self, x: Sequence[Value]) -> list[Value]:
        if len(x) != self.nin:
            raise ValueError(f"{self!r} got {len(x)} inputs")
        if self.bias is None:
            return [linear(row, x, self.zero) for row in self.weight]
        return [linear(row, x, b) for row, b in zip(self.weight, self.bias, strict=True)]

    def named_parameters(self) -> list[tuple[str, Value]]:
        bias = [(f"bias.{i}", b) for i, b in enumerate(self.bias or [])]
        return _named("weight", self.weight) + bias

    def parameters(self) -> list[Value]:
        return [p for row in self.weight for p in row] + (self.bias or [])

    def __repr__(self) -> str:
        return f"Linear({self.nin} → {self.nout}{', bias' if self.bias else ''})"


# Attention's state while a sequence is read one position at a time: the keys and values so far.
Cache: TypeAlias = tuple[list[list[Value]], list[list[Value]]]


class CausalSelfAttention(Module):
    """Multi-head self-attention, one position at a time: the query of this position against the keys of
    every position so far (causal: never a later one), softmax, the weighted sum of their values."""

    def __init__(self, n_embd: int, n_head: int, *, std: float = 0.08, rng: random.Random | None = None,
                 name: str = "attn") -> None:
        _check_count("n_embd", n_embd)
        if _check_count("n_head", n_head) > n_embd or n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
        self.n_embd, self.n_head, self.head_dim = n_embd, n_head, n_embd // n_head
        rng = rng or random.Random()
        self.wq, self.wk, self.wv, self.wo = (Linear(n_embd, n_embd, std=std, rng=rng, name=f"{name}_{w}")
                                              for w in ("wq", "wk", "wv", "wo"))
        self.last_weights: list[list[Value]] = []  # each head's attention weights at the last position

    def __call__(self, x: Sequence[Value], cache: Cache) -> list[Value]:
        keys, values = cache
        q = self.wq(x)
        keys.append(self.wk(x))
        values.append(self.wv(x))
        scale = 1.0 / math.sqrt(self.head_dim)  # 1/√d keeps the logits' spread independent of d
        out: list[Value] = []
        self.last_weights = []
        for h in range(self.n_head):
            s = slice(h * self.head_dim, (h + 1) * self.head_dim)
            zero = _zero()
            logits = [linear(q[s], k[s], zero) * scale for k in keys]
            weights = softmax(logits)
            self.last_weights.append(weights)
            out += [linear(weights, [v[s][j] for v in values], zero) for j in range(self.head_dim)]
        return self.wo(out)

    def parts(self) -> list[tuple[str, Module]]:
        return [("wq", self.wq), ("wk", self.wk), ("wv", self.wv), ("wo", self.wo)]


class Block(Module):
    """x + attention(rmsnorm(x)), then x + mlp(rmsnorm(x)), the MLP 4·n_embd ReLU units wide (GPT-2's
    block with RMSNorm for LayerNorm and ReLU for GELU, as microgpt; no biases)."""

    def __init__(self, n_embd: int, n_head: int, *, std: float = 0.08, rng: random.Random | None = None,
                 name: str = "layer0") -> None:
        rng = rng or random.Random()
        self.attn = CausalSelfAttention(n_embd, n_head, std=std, rng=rng, name=f"{name}.attn")
        self.fc1 = Linear(n_embd, 4 * n_embd, std=std, rng=rng, name=f"{name}.mlp_fc1")
        self.fc2 = Linear(4 * n_embd, n_embd, std=std, rng=rng, name=f"{name}.mlp_fc2")

    def __call__(self, x: Sequence[Value], cache: Cache) -> list[Value]:
        x = [a + b for a, b in zip(self.attn(rmsnorm(x), cache), x, strict=True)]
        hidden = [h.relu() for h in self.fc1(rmsnorm(x))]
        return [a + b for a, b in zip(self.fc2(hidden), x, strict=True)]

    def parts(self) -> list[tuple[str, Module]]:
        return [("attn", self.attn), ("mlp_fc1", self.fc1), ("mlp_fc2", self.fc2)]


class GPT(Module):
    """microgpt's GPT, its sizes the defaults. Weights are drawn N(0, std) in microgpt's order (wte, wpe,
    lm_head, then per layer attn wq, wk, wv, wo, mlp fc1, fc2), so `GPT(rng=random.Random(42))` after the
    same draws as microgpt's script holds its very weights.

    `model(tokens)` gives the logits after every prefix of `tokens` (at most `block_size` of them);
    `model.step(token, pos, caches)` reads one more token, as sampling does."""

    def __init__(self, vocab_size: int = 27, *, n_layer: int = 1, n_embd: int = 16, n_head: int = 4,
                 block_size: int = 16, std: float = 0.08, rng: random.Random | None = None) -> None:
        self.vocab_size = _check_count("vocab_size", vocab_size)
        self.n_layer = _check_count("n_layer", n_layer)
        self.block_size = _check_count("block_size", block_size)
        self.n_embd, self.n_head = n_embd, n_head
        if not (isinstance(std, int | float) and math.isfinite(std) and std > 0):
            raise ValueError(f"std must be a positive number, got {std!r}")
        self.std = float(std)
        rng = rng or random.Random()
        self.wte = Embedding(vocab_size, n_embd, std=std, rng=rng, name="wte")
        self.wpe = Embedding(block_size, n_embd, std=std, rng=rng, name="wpe")
        self.lm_head = Linear(n_embd, vocab_size, std=std, rng=rng, name="lm_head")
        self.blocks = [Block(n_embd, n_head, std=std, rng=rng, name=f"layer{i}") for i in range(n_layer)]

    def new_caches(self) -> list[Cache]:
        return [([], []) for _ in self.blocks]

    def step(self, token: Token, pos: int, caches: list[Cache]) -> list[Value]:
        """The logits of the token after `token`, read at position `pos` (caches: the earlier positions)."""
        if not 0 <= pos < self.block_size:
            raise ValueError(f"position {pos} is past the block size {self.block_size} of {self!r}")
        x = [t + p for t, p in zip(self.wte(token), self.wpe(pos), strict=True)]
        x = rmsnorm(x)  # NOTE: microgpt normalises the embedding once more before the first block
        for block, cache in zip(self.blocks, caches, strict=True):
            x = block(x, cache)
        return self.lm_head(x)

    def __call__(self, tokens: Sequence[Token]) -> list[list[Value]]:
        caches = self.new_caches()
        return [self.step(t, pos, caches) for pos, t in enumerate(tokens[: self.block_size])]

    def attention(self) -> list[list[list[Value]]]:
        """Per layer, per head: the attention weights of the last position read."""
        return [block.attn.last_weights for block in self.blocks]

    def parts(self) -> list[tuple[str, Module]]:
        parts: list[tuple[str, Module]] = [("wte", self.wte), ("wpe", self.wpe), ("lm_head", self.lm_head)]
        return parts + [(f"layer{i}", b) for i, b in enumerate(self.blocks)]

    def config(self) -> dict[str, Any]:
        return {"type": "GPT", "vocab_size": self.vocab_size, "n_layer": self.n_layer, "n_embd": self.n_embd,
                "n_head": self.n_head, "block_size": self.block_size, "std": self.std}

    def __repr__(self) -> str:
        return (f"GPT({self.n_layer} layer, n_embd {self.n_embd}, {self.n_head} heads, block "
                f"{self.block_size}, {self.num_parameters()} parameters)")


class Bigram(Module):
    """makemore's bigram model as a network: the logits of the next character are row `previous` of a
    vocab × vocab table (training finds the log-counts; `block_size` is 1)."""

    block_size = 1

    def __init__(self, vocab_size: int = 27, *, rng: random.Random | None = None) -> None:
        self.vocab_size = _check_count("vocab_size", vocab_size)
        self.table = Embedding(vocab_size, vocab_size, std=1.0, rng=rng or random.Random(), name="W")

    def __call__(self, context: Sequence[Token]) -> list[Value]:
        if len(context) != 1:
            raise ValueError(f"a bigram reads 1 token of context, got {len(context)}")
        return self.table(context[0])

    def parts(self) -> list[tuple[str, Module]]:
        return [("table", self.table)]

    def config(self) -> dict[str, Any]:
        return {"type": "Bigram", "vocab_size": self.vocab_size}

    def __repr__(self) -> str:
        return f"Bigram({self.vocab_size} tokens, {self.num_parameters()} parameters)"


class CharMLP(Module):
    """makemore's MLP (Bengio et al. 2003): the embeddings of the last `block_size` characters, side by
    side, through `hidden` tanh units to the logits. Initialised as makemore's later lecture: hidden
    weights N(0, (5/3)/√fan_in) (tanh's gain), output weights small (N(0, 0.01)), biases 0, so the
    first loss is near log(vocab_size) instead of saturating tanh."""

    def __init__(self, vocab_size: int = 27, *, block_size: int = 3, n_embd: int = 10, hidden: int = 200,
                 rng: random.Random | None = None) -> None:
        self.vocab_size = _check_count("vocab_size", vocab_size)
        self.block_size, self.n_embd = _check_count("block_size", block_size), _check_count("n_embd", n_embd)
        self.hidden = _check_count("hidden", hidden)
        rng = rng or random.Random()
        fan_in = block_size * n_embd
        self.emb = Embedding(vocab_size, n_embd, std=1.0, rng=rng, name="C")
        self.fc1 = Linear(fan_in, hidden, bias=True, std=(5 / 3) / math.sqrt(fan_in), rng=rng, name="W1")
        self.fc2 = Linear(hidden, vocab_size, bias=True, std=0.01, rng=rng, name="W2")

    def __call__(self, context: Sequence[Token]) -> list[Value]:
        if len(context) != self.block_size:
            raise ValueError(f"{self!r} reads {self.block_size} tokens of context, got {len(context)}")
        x = [e for token in context for e in self.emb(token)]
        return self.fc2([h.tanh() for h in self.fc1(x)])

    def parts(self) -> list[tuple[str, Module]]:
        return [("emb", self.emb), ("fc1", self.fc1), ("fc2", self.fc2)]

    def config(self) -> dict[str, Any]:
        return {"type": "CharMLP", "vocab_size": self.vocab_size, "block_size": self.block_size,
                "n_embd": self.n_embd, "hidden": self.hidden}

    def __repr__(self) -> str:
        return (f"CharMLP(context {self.block_size}, embedding {self.n_embd}, {self.hidden} tanh, "
                f"{self.num_parameters()} parameters)")


# build(config) for these models (chainrule.nn.build hands them here) and their parameter counts, which
# chainrule.serialize checks before anything is built.
_FIELDS = {"GPT": {"vocab_size", "n_layer", "n_embd", "n_head", "block_size", "std"},
           "Bigram": {"vocab_size"},
           "CharMLP": {"vocab_size", "block_size", "n_embd", "hidden"}}
ARCHITECTURES = tuple(_FIELDS)


def parameter_count(config: Mapping[str, Any]) -> int | None:
    """How many parameters `build(config)` makes, from the numbers alone; None if it can't be built."""
    kind = config.get("type")
    if kind not in _FIELDS or set(config) - {"type"} != _FIELDS[kind]:
        return None
    sizes: dict[str, int] = {k: v for k, v in config.items() if k not in ("type", "std")}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sizes.values()):
        return None
    v = sizes["vocab_size"]
    if kind == "Bigram":
        return v * v
    if kind == "CharMLP":
        d, h = sizes["block_size"] * sizes["n_embd"], sizes["hidden"]
        return v * sizes["n_embd"] + d * h + h + h * v + v
    e = sizes["n_embd"]
    return 2 * v * e + sizes["block_size"] * e + sizes["n_layer"] * 12 * e * e


def build(config: Mapping[str, Any], rng: random.Random | None = None) -> Module:
    """A fresh model from `config()` output (weights drawn anew from `rng`; load a state to fill them)."""
    kind = config.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ValueError(f"unknown architecture type {kind!r}; expected one of {', '.join(ARCHITECTURES)}")
    given = set(config) - {"type"}
    if given != _FIELDS[kind]:
        missing, extra = sorted(_FIELDS[kind] - given), sorted(given - _FIELDS[kind])
        raise ValueError(f"{kind} architecture: missing {missing}, unexpected {extra}")
    args = {k: v for k, v in config.items() if k != "type"}
    for key, value in args.items():
        if key != "std" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{kind} architecture: {key} must be a positive integer, got {value!r}")
    rng = rng if rng is not None else random.Random(0)
    v = args.pop("vocab_size")
    model: Module = {"GPT": GPT, "Bigram": Bigram, "CharMLP": CharMLP}[kind](v, rng=rng, **args)
    return model
