"""Training, evaluating and sampling the character models of chainrule.lm on names. It never prints.

    from chainrule import data, makemore, text
    words = data.names()
    train_words, val_words, _ = text.split(words)
    tok = text.CharTokenizer.from_words(words)
    model = makemore.new_model("mlp", tok.vocab_size, random.Random(42))
    history = makemore.train(model, train_words, tok, steps=1000, batch=32, mode="compiled")
    makemore.evaluate(model, val_words, tok)            # mean -log p(next) per character, in nats
    makemore.sample(model, tok, random.Random(0))       # a new name

A step is microgpt's: forward, loss (the mean over predicted characters of -log softmax(logits)[next]),
backward, update. Context models (Bigram, CharMLP) train on makemore's examples (`text.contexts`), a
random minibatch of them per step; the GPT on whole names: with batch 1 it reads the names in order, one
per step, as microgpt; with more, each step draws `batch` random names, padded to the longest (a mask
keeps the padding out of the loss). `mode` runs the same model code "eager" (one scalar graph per example),
"batched" (one graph over NumPy arrays, tokens one-hot) or "compiled" (that graph captured once per shape
by chainrule.compile and replayed). `microgpt()` is microgpt's whole setup, seed and order of draws.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainrule.compile import compile
from chainrule.engine import Value, no_grad
from chainrule.health import Health, Recorder
from chainrule.ir import NUMBER
from chainrule.lm import GPT, Bigram, CharMLP, Token, nll, one_hot, softmax
from chainrule.nn import Module
from chainrule.optim import SGD, Adam, Optimizer
from chainrule.replay import Program
from chainrule.text import CharTokenizer, contexts
from chainrule.train import Diverged
from chainrule.trainstep import ArrayStep

MODELS = ("bigram", "mlp", "gpt")
MODES = ("eager", "batched", "compiled")
OPTIMIZERS = ("adam", "sgd")
ContextModel = Bigram | CharMLP
NamesModel = Bigram | CharMLP | GPT


@dataclass(frozen=True)
class Settings:
    """A model's training settings. Each model's DEFAULTS trains in about a minute on 2 cores."""

    steps: int
    batch: int
    mode: str
    optimizer: str
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)


DEFAULTS = {
    "bigram": Settings(steps=300, batch=8192, mode="compiled", optimizer="adam", lr=0.2),
    "mlp": Settings(steps=6000, batch=256, mode="compiled", optimizer="adam", lr=0.01),
    "gpt": Settings(steps=1500, batch=32, mode="compiled", optimizer="adam", lr=0.01, betas=(0.85, 0.99)),
}
# microgpt's own: one name per step, Adam(0.01, β 0.85/0.99, eps 1e-8) decaying linearly to 0.
MICROGPT = Settings(steps=1000, batch=1, mode="eager", optimizer="adam", lr=0.01, betas=(0.85, 0.99))


def new_model(kind: str, vocab_size: int, rng: random.Random) -> NamesModel:
    """A fresh model of `kind` (one of MODELS) at its default sizes, weights drawn from `rng`."""
    if kind == "bigram":
        return Bigram(vocab_size, rng=rng)
    if kind == "mlp":
        return CharMLP(vocab_size, rng=rng)
    if kind == "gpt":
        return GPT(vocab_size, rng=rng)
    raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")


def new_optimizer(model: Module, settings: Settings) -> Optimizer:
    """settings.optimizer at settings.lr, the rate decaying linearly to 0 over settings.steps (microgpt)."""
    lr0, steps = settings.lr, settings.steps
    if not (math.isfinite(lr0) and lr0 > 0):
        raise ValueError(f"learning rate must be a positive number, got {lr0!r}")
    lr = lambda k: lr0 * (1 - k / steps)
    if settings.optimizer == "adam":
        return Adam(model.parameters(), lr=lr, betas=settings.betas, eps=1e-8)
    if settings.optimizer == "sgd":
        return SGD(model.parameters(), lr=lr)
    raise ValueError(f"unknown optimizer {settings.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


# ----- losses -----------------------------------------------------------------------------------------


def _mean(terms: Sequence[Value]) -> Value:
    total = terms[0]  # left to right, as microgpt's sum(losses) (its 0 + l0 is l0)
    for t in terms[1:]:
        total = total + t
    return total * (1 / len(terms))


def name_loss(model: GPT, ids: Sequence[int]) -> Value:
    """microgpt's loss of one name: the mean over its positions (at most block_size) of -log p(next)."""
    n = min(model.block_size, len(ids) - 1)
    return _mean([nll(z, ids[i + 1]) for i, z in enumerate(model(ids[:n]))])


def _padded(model: GPT, rows: Sequence[Sequence[int]]) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """`rows` cut to the block and padded to the longest with token 0 (B × (n + 1) ids), and the weight of
    each position's loss (n × B): 1/(k·B) for each of a name's k real positions, 0 for padding. The padding
    comes after every real position, so causal attention never lets it reach one; its weight keeps it out
    of the loss, which is then the mean over the names of name_loss, whatever their lengths. Array
    operations, not a Python loop per token: a compiled step pads every batch."""
    lengths = np.fromiter(map(len, rows), dtype=np.intp, count=len(rows))
    n = min(model.block_size, int(lengths.max()) - 1)
    kept = np.minimum(lengths, n + 1)  # tokens of each row inside the block
    ids = np.zeros((len(rows), n + 1), dtype=np.intp)
    ids[np.arange(n + 1) < kept[:, None]] = np.fromiter(
        itertools.chain.from_iterable(r[: n + 1] for r in rows), dtype=np.intp, count=int(kept.sum()))
    real = kept - 1  # positions with a next token: min(block, len - 1)
    weights = np.where(np.arange(n)[:, None] < real, 1.0 / (np.maximum(real, 1) * len(rows)), 0.0)
    return ids, weights


def _names_graph(model: GPT, rows: list[list[int]], vocab: int) -> tuple[Value, list[Value]]:
    """The mean over `rows` (ids of names) of name_loss as one batched graph (`_padded`), and its leaves:
    the one-hot tokens (position by position, token by token), then the positions' weights."""
    ids, weights = _padded(model, rows)
    cols = [one_hot(ids[:, i].tolist(), vocab) for i in range(ids.shape[1])]
    w = [Value(ws, label=f"weight{i}") for i, ws in enumerate(weights)]
    terms = [(nll(z, cols[i + 1]) * w[i]).sum() for i, z in enumerate(model(cols[: len(weights)]))]
    loss = terms[0]
    for t in terms[1:]:
        loss = loss + t
    return loss, [v for col in cols for v in col] + w


def _context_graph(model: ContextModel, X: Sequence[Sequence[int]],
                   Y: Sequence[int]) -> tuple[Value, list[Value]]:
    """context_loss as one batched graph, and its one-hot leaves (context column by column, then Y)."""
    cols = [one_hot(c, model.vocab_size) for c in np.asarray(X).T.tolist()]
    target = one_hot(Y, model.vocab_size)
    return nll(model(cols), target).mean(), [v for col in cols for v in col] + target


def context_loss(model: ContextModel, X: Sequence[Sequence[int]], Y: Sequence[int], batched: bool) -> Value:
    """The mean of -log p(Y[i] | X[i]) over the examples: one graph per example, or one over the batch."""
    if batched:
        return _context_graph(model, X, Y)[0]
    return _mean([nll(model(list(x)), y) for x, y in zip(X, Y, strict=True)])


# ----- one training pass per mode: forward and backward on a batch, returning the loss --------------------


class _Compiled:
    """The batched graph of one shape, captured once: later batches of that shape replay it with their
    tokens written into the one-hot leaves (a program reads its leaves' data at every run). Every softmax's
    shift is a node of the graph (a detached max), so the replay recomputes it for each batch."""

    def __init__(self, build: Callable[[], tuple[Value, list[Value]]], params: Sequence[Value]) -> None:
        self.build, self.params = build, params
        self.program: Program | None = None
        self.leaves: list[Value] = []
        self.kind, self.slots = NUMBER, np.zeros(0, dtype=np.intp)  # where the leaves' rows go

    def ready(self, rows: NDArray[np.float64]) -> Program:
        """The program, its token leaves holding this batch: `rows`, one row of the batch per leaf (in the
        order `build` returns them), written straight into the program's buffer (hold_batches)."""
        if self.program is None:
            root, self.leaves = self.build()
            self.program = compile(root)
            self.program.no_grads(self.leaves)  # the tokens and weights of a batch: data, no gradients
            # The graph's own constants (a sum's weights 1, rmsnorm's eps, a layer's b = 0): read once,
            # no gradients (the parameters are the training step's, chainrule.trainstep).
            trained = {id(p) for p in self.params}
            self.program.freeze([leaf for leaf in self.program.plan.leaves.get(NUMBER, [])
                                 if id(leaf) not in trained])
            self.kind, self.slots = self.program.hold_batches(self.leaves)
        self.program.batches(self.kind)[self.slots] = rows
        return self.program


def _onehot_rows(ids: NDArray[np.intp], vocab: int) -> NDArray[np.float64]:
    """ids: examples × columns of tokens. Row c·vocab + i: 1.0 for the examples whose token in column c is
    i, else 0.0, as one_hot's leaves column by column (one NumPy call for the whole batch)."""
    return np.eye(vocab)[ids].transpose(1, 2, 0).reshape(-1, len(ids))


class _Trainer:
    """Draws each step's batch from the training words and runs the step `mode` says, update included.
    In compiled mode the parameters live in arrays (chainrule.trainstep) shared by every program: `sync()`
    writes them back into the model's Values."""

    def __init__(self, model: NamesModel, words: Sequence[str], tok: CharTokenizer, batch: int, mode: str,
                 rng: random.Random, opt: Optimizer) -> None:
        self.model, self.tok, self.batch, self.mode, self.rng, self.opt = model, tok, batch, mode, rng, opt
        self.programs: dict[Any, _Compiled] = {}
        self.arrays = ArrayStep(opt) if mode == "compiled" else None
        if isinstance(model, GPT):
            self.names = [tok.encode(w) for w in words]
        else:
            self.X, self.Y = contexts(words, tok, model.block_size)

    def step(self, k: int, on_graph: Callable[[Value], object] | None = None) -> float:
        """Step k: zero the grads, forward and backward on its batch, the optimizer's update; the loss.
        With `on_graph`, the step builds a graph and hands its loss to it: compiled mode runs it batched (a
        replay builds no graph) on the Values, and a GPT's runs eager, one graph per name (a padded batch's
        padding would enter the statistics read from the graph)."""
        mode = self.mode
        if on_graph is not None:
            mode = "eager" if isinstance(self.model, GPT) else "batched" if mode == "compiled" else mode
        if mode != "compiled" and self.arrays is not None:  # a step on the Values, in a compiled run
            self.arrays.sync()
            try:
                return self._step(k, mode, on_graph)
            finally:
                self.arrays.reload()
        return self._step(k, mode, on_graph)

    def sync(self) -> None:
        """The model's Values up to date (a compiled run keeps the parameters in arrays)."""
        if self.arrays is not None:
            self.arrays.sync()

    def _step(self, k: int, mode: str, on_graph: Callable[[Value], object] | None) -> float:
        if mode != "compiled":
            self.opt.zero_grad()
        if isinstance(self.model, GPT):
            return self._gpt_step(self.model, k, mode, on_graph)
        picks = [self.rng.randrange(len(self.Y)) for _ in range(self.batch)]
        X, Y = [self.X[i] for i in picks], [self.Y[i] for i in picks]
        if mode == "compiled":
            vocab, model = self.tok.vocab_size, self.model
            tokens = np.column_stack([np.asarray(X, dtype=np.intp), np.asarray(Y, dtype=np.intp)])
            return self._compiled(("ctx",), lambda: _context_graph(model, X, Y), _onehot_rows(tokens, vocab))
        return self._backward(context_loss(self.model, X, Y, batched=mode == "batched"), on_graph)

    def _gpt_step(self, model: GPT, k: int, mode: str, on_graph: Callable[[Value], object] | None) -> float:
        if self.batch == 1:  # microgpt: the names in order, one per step
            rows = [self.names[k % len(self.names)]]
        else:
            rows = [self.rng.choice(self.names) for _ in range(self.batch)]
        if mode == "eager":
            return self._backward(_mean([name_loss(model, r) for r in rows]), on_graph)
        if mode == "batched":
            return self._backward(_names_graph(model, rows, self.tok.vocab_size)[0], on_graph)
        # One program per (batch size, padded length): captured at its first batch, replayed after.
        ids, weights = _padded(model, rows)
        vocab = self.tok.vocab_size
        data = np.concatenate([_onehot_rows(ids, vocab), weights])
        shape = ("gpt", len(rows), len(weights))
        return self._compiled(shape, lambda: _names_graph(model, rows, vocab), data)

    def _backward(self, loss: Value, on_graph: Callable[[Value], object] | None) -> float:
        loss.backward()
        if on_graph is not None:
            on_graph(loss)
        self.opt.step()
        return float(loss.data)

    def _compiled(self, shape: Any, build: Callable[[], tuple[Value, list[Value]]],
                  data: NDArray[np.float64]) -> float:
        program = self.programs.get(shape)
        if program is None:
            program = self.programs[shape] = _Compiled(build, self.opt.params)
        assert self.arrays is not None  # made with the trainer in compiled mode
        return self.arrays(program.ready(data))


@dataclass
class History:
    """Per step: the training loss and its wall time in seconds; per evaluation: (step, val loss); with
    `train(..., health=True)`, the network's health at a few steps (chainrule.health.Health)."""

    loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    val: list[tuple[int, float]] = field(default_factory=list)
    health: Health | None = None


def _check_count(name: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return n


def train(model: NamesModel, words: Sequence[str], tokenizer: CharTokenizer, *, steps: int, batch: int = 1,
          mode: str = "eager", optimizer: Optimizer | None = None, rng: random.Random | None = None,
          val_words: Sequence[str] = (), eval_every: int = 0,
          on_step: Callable[[int, float, float], object] | None = None,
          on_eval: Callable[[int, float], object] | None = None, health: bool = False) -> History:
    """Train `model` on `words` for `steps` steps of `batch` examples (see the module's docstring).

    `optimizer` defaults to Adam at 0.01 decaying to 0. `rng` draws the minibatches (a fresh
    random.Random(0) if None: never the global one). With `val_words` and `eval_every` = k, the val loss
    is measured every k steps and after the last (in compiled mode the model's Values are brought up to
    date for it; the parameters live in arrays in between, chainrule.trainstep). `on_step(step, loss,
    seconds)` follows each update, `on_eval(step, val_loss)` each evaluation. `health=True` records the
    network's health into `history.health` at the steps `chainrule.health.schedule(steps)` names, as
    `train.fit` does (in compiled mode those steps run batched: a replayed program builds no graph to
    read; a GPT's run eager, so that no padding enters the statistics). Raises `Diverged` if the
    loss stops being a finite number."""
    _check_count("steps", steps)
    _check_count("batch", batch)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if not words:
        raise ValueError("train needs at least one word")
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 0:
        raise ValueError(f"eval_every must be an integer >= 0, got {eval_every!r}")
    if not isinstance(health, bool):
        raise ValueError(f"health must be True or False, got {health!r}")
    opt = optimizer or new_optimizer(model, Settings(steps, batch, mode, "adam", 0.01))
    trainer = _Trainer(model, words, tokenizer, batch, mode, rng or random.Random(0), opt)
    try:
        return _train(trainer, steps, recorder=Recorder(model, steps) if health else None,
                      val_words=val_words, eval_every=eval_every, on_step=on_step, on_eval=on_eval)
    finally:
        trainer.sync()  # a compiled run's parameters live in arrays: the model's Values get them back


def _train(trainer: _Trainer, steps: int, *, recorder: Recorder | None, val_words: Sequence[str],
           eval_every: int, on_step: Callable[[int, float, float], object] | None,
           on_eval: Callable[[int, float], object] | None) -> History:
    history = History(health=None if recorder is None else recorder.health)
    for k in range(steps):
        start = time.perf_counter()
        watch = recorder is not None and recorder.wants(k)
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss = trainer.step(k, recorder.read_graph if watch and recorder is not None else None)
        except (ArithmeticError, ValueError) as err:
            raise Diverged(k, str(err).splitlines()[0][:200]) from None
        if not math.isfinite(loss):
            raise Diverged(k, f"the loss is {loss}")
        if watch and recorder is not None:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                recorder.record(k)
        history.loss.append(loss)
        history.seconds.append(time.perf_counter() - start)
        if on_step is not None:
            on_step(k, loss, history.seconds[-1])
        if val_words and eval_every and ((k + 1) % eval_every == 0 or k + 1 == steps):
            trainer.sync()
            history.val.append((k + 1, evaluate(trainer.model, val_words, trainer.tok)))
            if on_eval is not None:
                on_eval(*history.val[-1])
    return history


# ----- evaluation and sampling ----------------------------------------------------------------------------


def evaluate(model: NamesModel, words: Sequence[str], tokenizer: CharTokenizer, chunk: int = 4096) -> float:
    """The mean of -log p(next) over every character prediction in `words` (makemore's split loss), in
    nats, computed in batches (no graph recorded)."""
    if not words:
        raise ValueError("evaluate needs at least one word")
    total, count = 0.0, 0
    vocab = tokenizer.vocab_size
    with no_grad(), np.errstate(over="ignore"):
        if isinstance(model, GPT):
            groups: dict[int, list[list[int]]] = {}
            for w in words:
                ids = tokenizer.encode(w)[: model.block_size + 1]
                groups.setdefault(len(ids), []).append(ids)
            for rows in groups.values():
                n = len(rows[0]) - 1
                for s in range(0, len(rows), chunk):
                    part = rows[s : s + chunk]
                    cols = [one_hot([r[i] for r in part], vocab) for i in range(n + 1)]
                    for i, z in enumerate(model(cols[:n])):
                        total += float(np.sum(nll(z, cols[i + 1]).data))
                    count += n * len(part)
        else:
            X, Y = contexts(words, tokenizer, model.block_size)
            for s in range(0, len(Y), chunk):
                xs, ys = X[s : s + chunk], Y[s : s + chunk]
                cols = [one_hot(c, vocab) for c in np.asarray(xs).T.tolist()]
                total += float(np.sum(nll(model(cols), one_hot(ys, vocab)).data))
                count += len(ys)
    return total / count


def next_probabilities(logits: Sequence[Value], temperature: float) -> list[float]:
    """softmax(logits / temperature) as floats: below 1 sharper (likelier characters more so), above 1
    flatter."""
    if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    return [float(p.data) for p in softmax([z / temperature for z in logits])]


def sample(model: NamesModel, tokenizer: CharTokenizer, rng: random.Random, temperature: float = 1.0,
           max_length: int = 50) -> str:
    """A new name: from the boundary token, draw each next character from the model's probabilities
    (`rng.choices`, as microgpt) until the boundary comes out again (or the GPT's block is full)."""
    choices = range(tokenizer.vocab_size)
    out: list[int] = []
    with no_grad():
        if isinstance(model, GPT):
            caches, token = model.new_caches(), tokenizer.bos
            for pos in range(model.block_size):
                logits = model.step(token, pos, caches)
                token = rng.choices(choices, next_probabilities(logits, temperature))[0]
                if token == tokenizer.bos:
                    break
                out.append(token)
        else:
            window: list[Token] = [tokenizer.bos] * model.block_size
            for _ in range(max_length):
                token = rng.choices(choices, next_probabilities(model(window), temperature))[0]
                if token == tokenizer.bos:
                    break
                out.append(token)
                window = [*window[1:], token]
    return tokenizer.decode(out)


def attention(model: GPT, tokenizer: CharTokenizer, word: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The attention weights the GPT gives while reading `word`: an array [layer, head, position, position]
    whose row p holds how much position p looks at each earlier position (0 above the diagonal)."""
    ids = tokenizer.encode(word)[: model.block_size]
    n = len(ids)
    out = np.zeros((model.n_layer, model.n_head, n, n))
    caches = model.new_caches()
    with no_grad():
        for pos, token in enumerate(ids):
            model.step(token, pos, caches)
            for layer, heads in enumerate(model.attention()):
                for head, weights in enumerate(heads):
                    out[layer, head, pos, : pos + 1] = [float(w.data) for w in weights]
    return out


def microgpt(steps: int = MICROGPT.steps) -> tuple[GPT, CharTokenizer, list[str], Optimizer, random.Random]:
    """microgpt's setup, draw for draw: random.Random(42) shuffles all the names, then draws the GPT's
    weights; the tokenizer is the names' letters plus BOS. Returns the model, the tokenizer, the shuffled
    names (the training order), Adam as microgpt's over `steps`, and the generator (sampling continues it).
    `train(model, names, tok, steps=steps, optimizer=opt)` then gives microgpt's losses."""
    from chainrule.data import names

    docs = names()
    rng = random.Random(42)
    rng.shuffle(docs)
    tok = CharTokenizer.from_words(docs)
    model = GPT(tok.vocab_size, rng=rng)
    settings = Settings(steps, MICROGPT.batch, MICROGPT.mode, MICROGPT.optimizer, MICROGPT.lr, MICROGPT.betas)
    return model, tok, docs, new_optimizer(model, settings), rng
