"""microgpt in chainrule: its GPT of scalars, its first losses to the last digit, then trained in batches.

`makemore.microgpt()` is microgpt's whole setup draw for draw: `random.Random(42)` shuffles the 32,033
names, then draws every weight from gauss(0, 0.08) in microgpt's order, and Adam (0.01, β 0.85/0.99) decays
linearly to 0. A GPT of 1 layer, 16 dimensions, 4 heads and a context of 16 tokens: 4,192 parameters.

Run it as a script, or cell by cell (# %%). CHAINRULE_FAST=1 (set by the tests) trains the batched GPT for
fewer steps: the same story in seconds, its val loss and samples a little worse than the full run's.
"""

# %%
import dataclasses
import math
import os
import random
import time

import numpy as np

from chainrule import makemore, text

FAST = os.environ.get("CHAINRULE_FAST") == "1"
GPT_STEPS = 60 if FAST else 500  # makemore.DEFAULTS["gpt"] trains 1500
# The losses microgpt prints for its first three steps, on a run of 20 steps.
MICROGPT_FIRST = [3.3659669475848504, 3.4242727838717717, 3.1775778689839966]

# %% [markdown]
# ## 1. microgpt's run, step for step
# One name per step, in the shuffled order: the loss of a step is the mean over the name's positions of
# -log p(next token | the tokens so far). "eager" mode builds that graph of scalar Values for each name,
# as microgpt does, and backward walks it. The learning rate at step k is 0.01·(1 - k/steps), so the
# losses from step 3 on depend on the length of the run: these are microgpt's with 20 steps.

# %%
model, tok, docs, opt, rng = makemore.microgpt(steps=20)
print(model, "|", tok)
print("the first names, in microgpt's order:", docs[:5])
history = makemore.train(model, docs, tok, steps=20, optimizer=opt)
for k, loss in enumerate(history.loss):
    print(f"step {k + 1:4d} / 20 | loss {loss:.16f}  {docs[k]}")
assert all(abs(a - b) < 1e-12 for a, b in zip(history.loss, MICROGPT_FIRST, strict=False))
print(f"the first three are microgpt's to 1e-12; {sum(history.seconds):.2f}s for 20 eager steps")

# %% [markdown]
# ## 2. Three ways to run the same model code
# With 32 names a step, "eager" builds 32 graphs. "batched" builds one: every token becomes a one-hot list
# of 27 batched Values (arrays over the 32 names), the embedding lookup becomes the sum Σ_i onehot_i·row_i,
# and each node of the graph holds 32 numbers. "compiled" captures that graph once per name length and
# replays it. The GPT's code is the same in all three; so are the losses, up to rounding. (Each step draws
# a length, then 32 training names of that length, so the positions of a batch line up.)

# %%
train_words, val_words, _ = text.split(docs)
gpt_settings = dataclasses.replace(makemore.DEFAULTS["gpt"], steps=GPT_STEPS)  # batch 32, Adam 0.01
losses = {}
for mode in makemore.MODES:
    gpt = makemore.new_model("gpt", tok.vocab_size, random.Random(42))
    run = makemore.train(gpt, train_words, tok, steps=2, batch=32, mode=mode,
                         optimizer=makemore.new_optimizer(gpt, gpt_settings), rng=random.Random(1))
    losses[mode] = run.loss
    print(f"{mode:>8}: losses {run.loss[0]:.15f}, {run.loss[1]:.15f} in {sum(run.seconds):.2f}s")
assert np.allclose(losses["eager"], losses["batched"], rtol=0, atol=1e-12)
assert np.allclose(losses["batched"], losses["compiled"], rtol=0, atol=1e-12)

# %% [markdown]
# ## 3. Training the GPT in batches
# Compiled, 32 names a step, on the training split only, so the val loss is measured on names it has
# never seen. The bigram model of examples/08 scores 2.45 on the same val names, makemore's MLP about 2.2.

# %%
gpt = makemore.new_model("gpt", tok.vocab_size, random.Random(42))
start = time.perf_counter()
history = makemore.train(gpt, train_words, tok, steps=gpt_settings.steps, batch=gpt_settings.batch,
                         mode="compiled", optimizer=makemore.new_optimizer(gpt, gpt_settings),
                         rng=random.Random(1), val_words=val_words, eval_every=gpt_settings.steps // 4)
print(f"{gpt_settings.steps} steps of {gpt_settings.batch} names in {time.perf_counter() - start:.1f}s: "
      f"train loss {history.loss[0]:.3f} -> {np.mean(history.loss[-20:]):.3f} (mean of the last 20)")
for step, val in history.val:
    print(f"  val loss after step {step:4d}: {val:.4f}")
val_loss = history.val[-1][1]
assert val_loss < math.log(tok.vocab_size) - 0.5  # uniform guessing scores log 27 = 3.30
if not FAST:
    assert val_loss < 2.35

# %% [markdown]
# Samples at temperature 0.5: the logits are divided by 0.5 before the softmax, which sharpens it, so
# likely characters are drawn even more often (microgpt samples this way). Temperature 1 is the model as
# trained; far below 1 every name looks alike.

# %%
sampler = random.Random(0)
names = [makemore.sample(gpt, tok, sampler, temperature=0.5) for _ in range(15)]
print("samples at temperature 0.5:", ", ".join(names))
print("new (not a training name):", sum(n not in set(train_words) for n in names), "of", len(names))

# %% [markdown]
# ## 4. What attention looks at
# At each position the GPT's 4 heads compare that position's query with the keys of every position so
# far; the softmax of those scores is the attention weights: row p says how much position p reads from
# each position 0..p (nothing from later ones: causal). Each row sums to 1.

# %%
word = "emma"
weights = makemore.attention(gpt, tok, word)  # [layer, head, position, position]
assert np.allclose(weights.sum(axis=-1), 1.0)
assert np.all(np.triu(weights, k=1) == 0.0)
# The positions the GPT reads to predict e, m, m, a, '.': ". e m m a" (the last '.' is only ever a target).
symbols = [tok.symbol(i) for i in tok.encode(word)[:-1]]
heads = range(weights.shape[1])
print(f"layer 0 reading '{word}': row = the position reading, column = the position read")
print("   " + " | ".join(f"{f'head {h}':^{5 * len(symbols)}}" for h in heads))
print("   " + " | ".join("".join(f"{s:>5}" for s in symbols) for _ in heads))
for p, s in enumerate(symbols):
    rows = []
    for h in heads:
        row = weights[0, h, p, : len(symbols)]
        rows.append("".join(f"{w:5.2f}" if q <= p else "    ." for q, w in enumerate(row)))
    print(f"{s:>3}" + " | ".join(rows))
