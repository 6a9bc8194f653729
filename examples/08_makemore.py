"""makemore on names: a bigram model by counting, the same model by gradient descent, then an MLP.

The 32,033 names of makemore's names.txt (`chainrule.data.names()`), split 80/10/10 as makemore's lecture
does. Every model is scored the same way, by its val loss: the mean over every character of the val
names (the end of a name included) of -log p(that character | what came before), in nats. Guessing
uniformly among the 27 tokens scores log 27 = 3.30.

Run it as a script, or cell by cell (# %%). The count matrix's picture goes to $CHAINRULE_OUT (default
chainrule-out/examples). CHAINRULE_FAST=1 (set by the tests) trains for fewer steps: the same story in
seconds, a little further from the full run's numbers.
"""

# %%
import dataclasses
import itertools
import math
import os
import random
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from chainrule import data, makemore, text
from chainrule.lm import Bigram, CharMLP, nll, softmax
from chainrule.viz.plots import health

OUT = Path(os.environ.get("CHAINRULE_OUT", "chainrule-out/examples"))
FAST = os.environ.get("CHAINRULE_FAST") == "1"
BIGRAM_STEPS = 60 if FAST else makemore.DEFAULTS["bigram"].steps  # 300 steps of 8192 examples
MLP_STEPS = 300 if FAST else 2000  # makemore.DEFAULTS["mlp"] trains 6000

words = data.names()
train_words, val_words, test_words = text.split(words)  # random.Random(42): makemore's shuffle
tok = text.CharTokenizer.from_words(words)
V = tok.vocab_size
print(f"{len(words)} names, e.g. {words[:5]}; split {len(train_words)}/{len(val_words)}/{len(test_words)}")
print(tok, "| 'emma' ->", tok.encode("emma"))


def bigrams(word):
    """The (previous, next) token pairs of a word: ., e / e, m / m, m / m, a / a, . for 'emma'."""
    return itertools.pairwise(tok.encode(word))


# %% [markdown]
# ## 1. The bigram model by counting
# Count how often each token follows each other token in the training names: a 27 × 27 matrix N, row =
# previous token, column = next. The boundary token '.' (id 26) starts row 26: N[26, j] counts the names
# that start with letter j; column 26 counts the names that end with a letter.

# %%
N = np.zeros((V, V), dtype=np.int64)
for w in train_words:
    for a, b in bigrams(w):
        N[a, b] += 1
top = sorted(((N[a, b], tok.symbol(a) + tok.symbol(b)) for a in range(V) for b in range(V)), reverse=True)
print("most common bigrams:", ", ".join(f"{pair} {n}" for n, pair in top[:6]))

fig, ax = plt.subplots(figsize=(14, 14))
ax.imshow(N, cmap="Blues")
for a in range(V):
    for b in range(V):
        ax.text(b, a, tok.symbol(a) + tok.symbol(b), ha="center", va="bottom", color="gray", fontsize=7)
        ax.text(b, a, str(N[a, b]), ha="center", va="top", color="gray", fontsize=7)
ax.set_axis_off()
ax.set_title("bigram counts of the training names (row: previous, column: next)")
OUT.mkdir(parents=True, exist_ok=True)
fig.savefig(OUT / "08_bigram_counts.png", dpi=80, bbox_inches="tight")
plt.close(fig)

# %% [markdown]
# Normalise each row to get p(next | previous). Some bigrams never occur in training ('jq' for one): their
# probability would be 0 and a val name holding one would cost -log 0 = infinity. Adding 1 to every count
# first (+1 "smoothing") keeps every probability above 0. The val loss is then the mean of -log p over
# every bigram of the val names: the model was fitted on the training names only.

# %%
P = (N + 1) / (N + 1).sum(axis=1, keepdims=True)
assert np.allclose(P.sum(axis=1), 1.0)
print("p(next | '.'), the first letter of a name:",
      ", ".join(f"{tok.symbol(j)} {P[tok.bos, j]:.3f}" for j in np.argsort(-P[tok.bos])[:5]))
val_nll = [-math.log(P[a, b]) for w in val_words for a, b in bigrams(w)]
count_val = sum(val_nll) / len(val_nll)
print(f"counting model: val loss {count_val:.4f} over {len(val_nll)} characters (uniform: {math.log(V):.4f})")
assert 2.40 < count_val < 2.50

# %% [markdown]
# makemore.evaluate computes the same number for a `Bigram` network, a 27 × 27 table of logits: row
# `previous` goes through softmax. With the table set to log P, softmax(log P[a]) = P[a] (each row already
# sums to 1), so it is the counting model exactly, and scores the same.

# %%
counted = Bigram(V, rng=random.Random(0))
for a, row in enumerate(counted.table.weight):
    for b, w in enumerate(row):
        w.data = math.log(P[a, b])
assert abs(makemore.evaluate(counted, val_words, tok) - count_val) < 1e-12
print("makemore.evaluate of the counts as a Bigram agrees to 1e-12")

# %% [markdown]
# ## 2. One gradient by hand
# For one example the loss is nll = -log softmax(z)[target] = log Σ_j exp(z_j) - z_target, with z the 27
# logits. Its derivative with respect to z_i is exp(z_i) / Σ_j exp(z_j) - [i == target]: the model's
# probability minus the one-hot target. Backward should find exactly that. In a Bigram the logits for
# "after '.'" are the parameters of row 26 themselves, so it is their .grad.

# %%
net = Bigram(V, rng=random.Random(42))  # a fresh network: its table is N(0, 1) noise
target = tok.encode("emma")[1]  # the example: after '.', the next token is 'e'
logits = net([tok.bos])
net.zero_grad()
loss = nll(logits, target)
loss.backward()
p = [q.data for q in softmax(logits)]
by_hand = [p[i] - (1.0 if i == target else 0.0) for i in range(V)]
print(f"nll = {loss.data:.4f} = -log p('e' | '.') = {-math.log(p[target]):.4f}")
for i in (target, 0, 1):
    print(f"  d nll / d z[{tok.symbol(i)}]: backward {logits[i].grad:+.6f}, "
          f"softmax - one-hot {by_hand[i]:+.6f}")
assert all(abs(z.grad - g) < 1e-12 for z, g in zip(logits, by_hand, strict=True))
print("all 27 agree to 1e-12")

# %% [markdown]
# So a step pushes the target's logit up by 1 - p and every other logit down by its own p. Averaged over
# every training example that follows '.', the gradient of row '.' is (the model's p) - (the data's
# frequencies): zero exactly when the row's softmax equals the counts' frequencies. Gradient descent on
# the mean nll therefore heads to the counting model (without the +1, which only matters for rare pairs).
#
# ## 3. The bigram model as a network
# The same network trained by makemore.train: each step takes 8192 random (previous, next) examples of
# the training names, and "compiled" mode replays one captured graph of the whole batch (one-hot tokens
# times the table) instead of building 8192 graphs. Adam at 0.2, decaying to 0.

# %%
def fit(model: makemore.NamesModel, kind: str, steps: int) -> tuple[makemore.History, float]:
    """Train `model` with makemore's defaults for `kind` (but `steps`), compiled; its history and val loss."""
    settings = dataclasses.replace(makemore.DEFAULTS[kind], steps=steps)
    start = time.perf_counter()
    history = makemore.train(model, train_words, tok, steps=steps, batch=settings.batch, mode="compiled",
                             optimizer=makemore.new_optimizer(model, settings), rng=random.Random(1))
    print(f"{steps} steps of {settings.batch} in {time.perf_counter() - start:.1f}s: train loss "
          f"{history.loss[0]:.3f} -> {history.loss[-1]:.3f}")
    return history, makemore.evaluate(model, val_words, tok)


history, net_val = fit(net, "bigram", BIGRAM_STEPS)
print(f"val loss: network {net_val:.4f}, counting {count_val:.4f}, difference {net_val - count_val:+.4f}")
assert abs(net_val - count_val) < (0.02 if FAST else 0.005)

learned = np.array([[w.data for w in row] for row in net.table.weight])
learned = np.exp(learned - learned.max(axis=1, keepdims=True))
learned /= learned.sum(axis=1, keepdims=True)  # each row's softmax: the network's p(next | previous)
print("p(next | '.'):", ", ".join(f"{tok.symbol(j)} {learned[tok.bos, j]:.3f} (counts {P[tok.bos, j]:.3f})"
                                  for j in np.argsort(-P[tok.bos])[:5]))

# %% [markdown]
# ## 4. An MLP: three characters of context
# A bigram only sees the previous character. makemore's MLP (Bengio et al. 2003) embeds each of the last
# three characters as 10 numbers, puts the three side by side and sends them through 200 tanh units to
# the 27 logits. It trains on contexts: "emma" gives [., ., .] -> e, [., ., e] -> m, ..., [m, m, a] -> '.'.
# Counting three-character contexts would need 27³ = 19,683 rows, most of them never seen; the MLP shares
# what it learns between similar contexts through the embeddings, and beats the bigram.

# %%
X, Y = text.contexts(["emma"], tok, 3)
print("contexts of 'emma':", ", ".join(f"{''.join(map(tok.symbol, x))} -> {tok.symbol(y)}"
                                       for x, y in zip(X, Y, strict=True)))
mlp = makemore.new_model("mlp", V, random.Random(42))
print(mlp)
history, mlp_val = fit(mlp, "mlp", MLP_STEPS)
print(f"val loss: MLP {mlp_val:.4f}, bigram {count_val:.4f}")
assert history.loss[0] > 3.2  # starts near log 27: small output weights, no confident wrong guesses
assert mlp_val < count_val - (0.1 if FAST else 0.2)

# %% [markdown]
# Sampling: start from '.', draw the next token from the model's probabilities, feed it back, stop when
# '.' comes out again. The bigram's names are mostly noise; the MLP's start to sound like names.

# %%
rng = random.Random(0)


def sample_counts(rng):
    out, a = [], tok.bos
    while True:
        a = rng.choices(range(V), P[a])[0]
        if a == tok.bos:
            return tok.decode(out)
        out.append(a)


print("bigram (counts):", ", ".join(sample_counts(rng) for _ in range(10)))
print("MLP:            ", ", ".join(makemore.sample(mlp, tok, rng) for _ in range(10)))

# %% [markdown]
# ## 5. A network's health (makemore's third lecture)
# `health=True` records, at about 50 steps, what the hidden layer's tanh units are doing and how large the
# gradients and updates are (`chainrule.health`). The MLP above starts its hidden weights at
# N(0, (5/3)/√30), makemore's tanh-aware init: about a fifth of the tanh outputs sit beyond |t| > 0.97,
# where the slope 1 - t² passes almost no gradient. Five times larger weights, and most units saturate:
# their gradients shrink, and those units learn slowly. `viz.plots.health` draws both runs as makemore does.

# %%
HEALTH_STEPS = 30 if FAST else 300
saturated = {}
for scale in (1, 5):
    net = CharMLP(V, rng=random.Random(42))
    for row in net.fc1.weight:
        for w in row:
            w.data *= scale
    settings = makemore.Settings(HEALTH_STEPS, 32, "compiled", "adam", 0.01)
    run = makemore.train(net, train_words, tok, steps=HEALTH_STEPS, batch=32, mode="compiled",
                         optimizer=makemore.new_optimizer(net, settings), rng=random.Random(1), health=True)
    assert run.health is not None
    (hidden,) = run.health.layers
    saturated[scale] = hidden.saturated[0]
    print(f"hidden weights x{scale}: {hidden.saturated[0]:.0%} of the tanh outputs saturated at step 0, "
          f"fc1 gradient std {run.health.weights[1].grad_std[0]:.2e}")
    health(run, OUT / f"08_health_x{scale}.png", title=f"CharMLP, hidden weights x{scale}")
assert saturated[1] < 0.3 < 0.6 < saturated[5]
