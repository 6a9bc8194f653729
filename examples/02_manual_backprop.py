"""Backpropagation by hand through L = (a·b + c)·f, then `L.backward()` agreeing with it.

Run it as a script, or cell by cell (# %%).
"""

# %%
from chainrule.seeds import FIRST_GRAPH, first_graph

# The seeds' graph, as chainrule/seeds.py writes it: e = a*b, d = e + c, L = d*f, each value labelled.
L, v = FIRST_GRAPH.build()  # a = 2, b = -3, c = 10, f = -2; v holds every value by its label
a, b, c, f, e, d = (v[name] for name in "abcfed")
print(L)

# %% [markdown]
# By hand, from the output back. dL/dL = 1. L = d·f, so dL/dd = f and dL/df = d.
# d = e + c: '+' passes the gradient through unchanged, dL/de = dL/dc = dL/dd.
# e = a·b: '*' scales it by the other input, dL/da = dL/de · b and dL/db = dL/de · a (the chain rule).

# %%
manual = {}
manual["L"] = 1.0
manual["f"] = d.data * manual["L"]
manual["d"] = f.data * manual["L"]
manual["c"] = 1.0 * manual["d"]
manual["e"] = 1.0 * manual["d"]
manual["a"] = b.data * manual["e"]
manual["b"] = a.data * manual["e"]
print("by hand: ", manual)

# %% [markdown]
# The same, automatically: `backward()` walks the graph in reverse topological order and applies
# each op's local derivative, adding into the parents' `.grad`.

# %%
L.backward()
automatic = {v.label: v.grad for v in [L, f, d, c, e, a, b]}
print("backward:", automatic)
assert automatic == manual

# %% [markdown]
# One step of optimisation: nudge every leaf a little along its gradient, and L goes up.

# %%
step = 0.01
for leaf in (a, b, c, f):
    leaf.data += step * leaf.grad
L2 = first_graph(a, b, c, f)  # the same graph on the nudged leaves
print(f"L before: {L.data}, after a step along the gradient: {L2.data}")
assert L2.data > L.data
