"""Backprop by hand, checked: the seeds' exercises, with `check_by_hand` saying what is right and why.

The second lecture fills in every `.grad` by hand, from the output back, before `backward()` exists.
Here a learner does the same, and `check_by_hand` compares each number with the one `backward()` gives;
for a wrong one it prints the right number and the chain-rule sum that makes it (the engine's own
trace). Run it as a script, or cell by cell (# %%).
"""

# %%
import os
from pathlib import Path

from chainrule import Value, check_by_hand
from chainrule.seeds import FIRST_GRAPH, NEURON, TWICE
from chainrule.viz import explore

# L = (a*b + c)*f at a = 2, b = -3, c = 10, f = -2, with e = a*b and d = e + c (chainrule/seeds.py).
L, v = FIRST_GRAPH.build()
a, b, c, f, e, d = (v[name] for name in "abcfed")

# %% [markdown]
# ## 1. The first graph, the lecture's way: set every `.grad` by hand
# dL/dL = 1. L = d·f, so dL/df = d = 4 and dL/dd = f = -2. A `+` passes the gradient on unchanged.
# A learner's first try often slips a sign at `c`:

# %%
L.grad = 1.0
f.grad = d.data * L.grad
d.grad = f.data * L.grad
c.grad = 2.0  # the slip: '+' passes d's grad, -2, unchanged
e.grad = d.grad
a.grad = b.data * e.grad
b.grad = a.data * e.grad
report = check_by_hand(L)  # reads the .grad fields just set, changes none of them
print(report)
assert [check.name for check in report.wrong] == ["c"] and report["c"].right == -2.0

# %% [markdown]
# The report names the rule it used, read with the graph's names (d = e + c: ∂d/∂c = 1), and the numbers:
# grad(c) = grad(d) × 1.
# Fix it, and every number is right:

# %%
c.grad = 1.0 * d.grad
assert check_by_hand(L).ok
print(check_by_hand(L).checks[-1])

# %% [markdown]
# ## 2. A mistake upstream spreads downstream
# Given as numbers (by Value or by label, any subset), without touching `.grad`. Here e's sign slipped,
# and a and b followed it: the report says which mistake to fix first.

# %%
report = check_by_hand(L, {"e": 2.0, "a": -3.0 * 2.0, "b": 2.0 * 2.0})
print(report)
assert report["a"].wrong_upstream == ("e",)

# %% [markdown]
# ## 3. The neuron, node by node with `_backward()`
# As in the lecture: set o's grad to 1, then call each node's own `_backward()` from the output back.
# Each call applies that node's local derivatives (the rules in `chainrule.RULES`) to its parents.

# %%
o, neuron = NEURON.build()
o.grad = 1.0
for label in ("o", "n", "x1*w1 + x2*w2", "x1*w1", "x2*w2"):
    neuron[label]._backward()
print(check_by_hand(o))
assert check_by_hand(o).ok  # dn = 1 - 0.7071² = 0.5, and so on down to the weights

# %% [markdown]
# ## 4. The bug the seeds found: `b = a + a`
# Writing `a.grad = 1.0 * b.grad` twice (assigning, as the first micrograd did) gives 1; the two uses
# must add up.

# %%
bb, _ = TWICE.build()
report = check_by_hand(bb, {"b": 1.0, "a": 1.0})
print(report)
assert report["a"].right == 2.0 and len(report["a"].terms) == 2

# %% [markdown]
# ## 5. Your turn
# Build any graph, write down your numbers, and check them. A value that is not in the graph, or a
# number that is not a number, is refused with a message saying so.

# %%
x, y = Value(3.0, label="x"), Value(-1.5, label="y")
z = (x * y + x.tanh()) * y
z.label = "z"
mine = {x: y.data * y.data + (1 - x.tanh().data ** 2) * y.data, y: 2 * x.data * y.data + x.tanh().data}
report = check_by_hand(z, mine)
print(report)
assert report.ok

# %% [markdown]
# ## 6. The same exercise in the browser
# `explore(L, exercise=True)` (in a notebook) or `chainrule graph "(a*b + c)*f" --at a=2,b=-3,c=10,f=-2
# --out L.html --exercise` hides every grad and asks for them one by one, in backward's order.

# %%
out = Path(os.environ.get("CHAINRULE_OUT", "chainrule-out/examples"))
out.mkdir(parents=True, exist_ok=True)
page = explore(L, title="L = (a*b + c)*f: backprop by hand", exercise=True).save(out / "10_by_hand.html")
print(f"wrote {page}: open it in a browser")
