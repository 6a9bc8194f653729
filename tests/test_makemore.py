"""Tests for chainrule.makemore: microgpt reproduced, the three modes agreeing, evaluation and sampling."""

from __future__ import annotations

import math
import random
from types import ModuleType

import pytest
from conftest import torch_gpt

from chainrule import makemore
from chainrule.lm import GPT, Bigram, CharMLP
from chainrule.optim import Adam
from chainrule.text import CharTokenizer, split
from chainrule.train import Diverged

# microgpt's printed losses for its first three steps (to 1e-12, as the issue of record gives them).
MICROGPT_FIRST = [3.3659669475848504, 3.4242727838717717, 3.1775778689839966]
WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail",
         "ella", "zoe", "lily", "noah", "liam", "jacob", "ethan", "mason", "logan", "lucas"]


@pytest.fixture(scope="module")
def microgpt_run() -> tuple[list[float], GPT, random.Random, CharTokenizer]:
    model, tok, docs, opt, rng = makemore.microgpt(steps=20)
    history = makemore.train(model, docs, tok, steps=20, optimizer=opt)
    return history.loss, model, rng, tok


def test_microgpt_first_losses(microgpt_run: tuple[list[float], GPT, random.Random, CharTokenizer]) -> None:
    losses = microgpt_run[0]
    assert len(losses) == 20
    assert losses[:3] == pytest.approx(MICROGPT_FIRST, abs=1e-12)


def test_microgpt_every_step_agrees_with_pytorch(
        microgpt_run: tuple[list[float], GPT, random.Random, CharTokenizer], torch: ModuleType) -> None:
    """All 20 steps against microgpt's maths run independently in PyTorch float64: the same shuffle and
    weights, one name per step, and microgpt's Adam written out (m̂ / (√v̂ + eps), lr decaying to 0)."""
    model, tok, docs, _, _ = makemore.microgpt(steps=20)
    P = {name: torch.tensor(p.data, dtype=torch.float64, requires_grad=True)
         for name, p in model.named_parameters()}
    m = {k: torch.zeros((), dtype=torch.float64) for k in P}
    v = {k: torch.zeros((), dtype=torch.float64) for k in P}
    ref = []
    for step in range(20):
        ids = tok.encode(docs[step])
        n = min(16, len(ids) - 1)
        loss, _ = torch_gpt(torch, model, ids[:n], ids[1 : n + 1], P)
        loss.backward()
        ref.append(loss.item())
        lr = 0.01 * (1 - step / 20)
        with torch.no_grad():
            for k, p in P.items():
                m[k] = 0.85 * m[k] + 0.15 * p.grad
                v[k] = 0.99 * v[k] + 0.01 * p.grad**2
                m_hat, v_hat = m[k] / (1 - 0.85 ** (step + 1)), v[k] / (1 - 0.99 ** (step + 1))
                p -= lr * m_hat / (v_hat.sqrt() + 1e-8)
                p.grad = None
    assert ref[:3] == pytest.approx(MICROGPT_FIRST, abs=1e-12)
    assert microgpt_run[0] == pytest.approx(ref, abs=1e-12)


Run = tuple[list[float], GPT, random.Random, CharTokenizer]


def test_microgpt_samples_are_seeded(microgpt_run: Run) -> None:
    _, model, rng, tok = microgpt_run
    state = rng.getstate()
    first = [makemore.sample(model, tok, rng, temperature=0.5) for _ in range(5)]
    rng.setstate(state)
    assert [makemore.sample(model, tok, rng, temperature=0.5) for _ in range(5)] == first
    assert all(set(s) <= set("abcdefghijklmnopqrstuvwxyz") and len(s) <= 16 for s in first)


@pytest.mark.parametrize("kind", makemore.MODELS)
def test_the_three_modes_take_the_same_steps(kind: str) -> None:
    tok = CharTokenizer()
    runs = {}
    for mode in makemore.MODES:
        model = makemore.new_model(kind, tok.vocab_size, random.Random(3))
        if isinstance(model, GPT):
            model = GPT(n_embd=8, n_head=2, block_size=8, rng=random.Random(3))
        settings = makemore.Settings(4, 6, mode, "adam", 0.01)
        history = makemore.train(model, WORDS, tok, steps=4, batch=6, mode=mode,
                                 optimizer=makemore.new_optimizer(model, settings), rng=random.Random(9))
        runs[mode] = (history.loss, [p.data for p in model.parameters()])
    for mode in ("batched", "compiled"):
        assert runs[mode][0] == pytest.approx(runs["eager"][0], rel=1e-12)
        assert runs[mode][1] == pytest.approx(runs["eager"][1], rel=1e-9, abs=1e-12)


def test_the_microgpt_preset_compiled_gives_the_eager_losses_over_20_names_of_varying_length() -> None:
    # One name per step: each length is captured once (a program per structure), and every softmax's
    # shift is a detached max node, recomputed by the replay; the first name's program serves later ones.
    runs = {}
    for mode in ("eager", "compiled"):
        model, tok, docs, opt, _ = makemore.microgpt(20)
        history = makemore.train(model, docs, tok, steps=20, optimizer=opt, mode=mode)
        runs[mode] = (history.loss, [p.data for p in model.parameters()])
    lengths = {len(w) for w in makemore.microgpt(20)[2][:20]}
    assert 3 < len(lengths) < 20  # some lengths repeat (programs reused), others are new (captured)
    assert runs["compiled"][0] == pytest.approx(runs["eager"][0], rel=1e-9, abs=0)
    assert runs["compiled"][1] == pytest.approx(runs["eager"][1], rel=1e-9, abs=1e-12)


def test_a_padded_batch_of_names_of_any_lengths_is_the_mean_of_their_eager_losses() -> None:
    tok = CharTokenizer()
    model = GPT(n_embd=8, n_head=2, block_size=8, rng=random.Random(5))
    rows = [tok.encode(w) for w in ("al", "isabella", "mia", "maximiliana")]  # the last is cut to the block
    loss, leaves = makemore._names_graph(model, rows, tok.vocab_size)
    eager = [makemore.name_loss(model, r) for r in rows]
    assert loss.data == pytest.approx(math.fsum(e.data for e in eager) / len(rows), rel=1e-12)
    loss.backward()
    batched = [p.grad for p in model.parameters()]
    model.zero_grad()
    makemore._mean(eager).backward()
    assert batched == pytest.approx([p.grad for p in model.parameters()], rel=1e-9, abs=1e-14)
    # the weights: 1/(n·B) on a name's n real positions, 0 on its padding
    weights = [leaf.data for leaf in leaves if leaf.label.startswith("weight")]
    assert [w[0] for w in weights] == pytest.approx([1 / (3 * 4)] * 3 + [0.0] * 5)


def test_one_program_per_batch_size_and_padded_length_serves_every_mix_of_lengths() -> None:
    tok = CharTokenizer()
    model = GPT(n_embd=8, n_head=2, block_size=8, rng=random.Random(5))
    trainer = makemore._Trainer(model, WORDS, tok, batch=5, mode="compiled", rng=random.Random(1),
                                opt=Adam(model.parameters(), lr=0.01))
    losses = [trainer.step(k) for k in range(12)]
    assert all(math.isfinite(x) for x in losses)
    assert {key[:2] for key in trainer.programs} == {("gpt", 5)}
    assert len(trainer.programs) < 12  # padded lengths repeat: their programs are replayed, not captured


def test_training_lowers_the_val_loss_and_records_every_step() -> None:
    tok = CharTokenizer()
    train, val, _ = split(WORDS * 5, seed=0)
    model = Bigram(rng=random.Random(0))
    seen: list[tuple[int, float]] = []
    start = makemore.evaluate(model, val, tok)
    history = makemore.train(model, train, tok, steps=30, batch=64, mode="batched", val_words=val,
                             eval_every=10, optimizer=makemore.new_optimizer(
                                 model, makemore.Settings(30, 64, "batched", "adam", 0.2)),
                             on_eval=lambda k, loss: seen.append((k, loss)))
    assert len(history.loss) == len(history.seconds) == 30 and all(s > 0 for s in history.seconds)
    assert [k for k, _ in history.val] == [10, 20, 30] and history.val == seen
    assert history.val[-1][1] < start - 0.5


def test_evaluate_is_the_mean_nll_per_character() -> None:
    tok = CharTokenizer()
    model = Bigram(rng=random.Random(0))
    for row in model.table.weight:
        for p in row:
            p.data = 0.0  # uniform: every prediction costs log 27
    assert makemore.evaluate(model, ["ab", "xyz"], tok) == pytest.approx(math.log(27))
    gpt = GPT(rng=random.Random(0))
    gpt.lm_head.weight = [[p for p in row] for row in gpt.lm_head.weight]
    for row in gpt.lm_head.weight:
        for p in row:
            p.data = 0.0
    assert makemore.evaluate(gpt, ["ab", "xyz"], tok) == pytest.approx(math.log(27))


def test_attention_rows_are_distributions() -> None:
    tok = CharTokenizer()
    model = GPT(rng=random.Random(0))
    att = makemore.attention(model, tok, "emma")
    assert att.shape == (1, 4, 6, 6)
    assert att.sum(axis=-1) == pytest.approx(1.0)
    assert (att[..., 0, 1:] == 0).all()  # position 0 sees only itself


@pytest.mark.parametrize(("call", "message"), [
    (lambda m, t: makemore.train(m, WORDS, t, steps=0), "steps must be a positive integer, got 0"),
    (lambda m, t: makemore.train(m, WORDS, t, steps=1, mode="lazy"), "unknown mode 'lazy'"),
    (lambda m, t: makemore.train(m, [], t, steps=1), "at least one word"),
    (lambda m, t: makemore.train(m, WORDS, t, steps=1, health=1), "health must be True or False, got 1"),
    (lambda m, t: makemore.sample(m, t, random.Random(0), temperature=0), "temperature must be a positive"),
    (lambda m, t: makemore.sample(m, t, random.Random(0), temperature=-1.0), "temperature must be a"),
    (lambda m, t: makemore.new_model("rnn", 27, random.Random(0)), "unknown model 'rnn'"),
    (lambda m, t: makemore.new_optimizer(m, makemore.Settings(1, 1, "eager", "lbfgs", 0.1)),
     "unknown optimizer 'lbfgs'"),
    (lambda m, t: makemore.new_optimizer(m, makemore.Settings(1, 1, "eager", "adam", 0.0)),
     "learning rate must be a positive number"),
])
def test_bad_arguments_are_rejected(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(CharMLP(rng=random.Random(0)), CharTokenizer())  # type: ignore[operator]


def test_a_loss_that_is_no_number_is_diverged() -> None:
    model = Bigram(rng=random.Random(0))
    model.table.weight[26][4].data = math.inf  # the logit of e after BOS: inf - inf is nan
    with pytest.raises(Diverged, match="the loss is nan"):
        makemore.train(model, ["emma"], CharTokenizer(), steps=5)


@pytest.mark.parametrize("kind", ["mlp", "gpt"])
def test_health_is_the_same_in_the_three_modes_and_changes_no_step(kind: str) -> None:
    tok = CharTokenizer()
    runs = {}
    for mode, health in [("eager", False), *((m, True) for m in makemore.MODES)]:
        model = makemore.new_model(kind, tok.vocab_size, random.Random(3))
        if isinstance(model, GPT):
            model = GPT(n_embd=8, n_head=2, block_size=8, rng=random.Random(3))
        history = makemore.train(model, WORDS, tok, steps=6, batch=4, mode=mode, rng=random.Random(9),
                                 health=health)
        runs[mode, health] = history
    assert runs["eager", False].health is None
    eager = runs["eager", True].health
    assert eager is not None and eager.steps == list(range(6))
    assert runs["eager", True].loss == runs["eager", False].loss  # watching changes nothing
    (layer,) = eager.layers
    assert layer.activation == ("tanh" if kind == "mlp" else "relu")
    for mode in ("batched", "compiled"):
        other = runs[mode, True].health
        assert other is not None and other.steps == eager.steps
        assert other.layers[0].mean == pytest.approx(layer.mean, rel=1e-9)
        assert other.layers[0].saturated == layer.saturated
        for a, b in zip(eager.weights, other.weights, strict=True):
            assert b.grad_std == pytest.approx(a.grad_std, rel=1e-9, abs=1e-15)
            assert b.update_ratio == pytest.approx(a.update_ratio, rel=1e-6)
