"""The tanh neuron from the seeds, o = tanh(x1·w1 + x2·w2 + b), with b chosen so the numbers are nice.

Its gradients by backward(), by finite differences, and by PyTorch when it is installed.
Run it as a script, or cell by cell (# %%).
"""

# %%
import math

from chainrule import Value, gradcheck
from chainrule.seeds import NEURON, neuron, neuron_by_exp

# n = x1*w1 + x2*w2 + b, o = tanh(n), as chainrule/seeds.py writes it; b makes n = 0.8814, o = 1/√2.
o, named = NEURON.build()
x1, x2, w1, w2, b = (named[name] for name in NEURON.inputs)
o.backward()
print(f"o = {o.data:.6f}")
for v in (x1, w1, x2, w2, b):
    print(f"do/d{v.label} = {v.grad: .6f}")

# %% [markdown]
# do/dn = 1 - tanh(n)² = 1 - 1/2 = 0.5. Through the '+' nodes it reaches b unchanged; through
# x1·w1 it is scaled by the other factor: do/dx1 = 0.5 · w1 = -1.5, do/dw1 = 0.5 · x1 = 1.
# x2 = 0, so w2 cannot change anything: do/dw2 = 0.

# %%
assert abs(o.data - 1 / math.sqrt(2)) < 1e-12
assert [round(v.grad, 10) for v in (x1, w1, x2, w2, b)] == [-1.5, 1.0, 0.5, 0.0, 0.5]

# %% [markdown]
# tanh written out with exp, (e^{2n} - 1) / (e^{2n} + 1), is a different graph with the same
# gradients: backward() only needs each small op's local derivative.

# %%
# neuron_by_exp (chainrule/seeds.py): n as above, e = exp(2n), o = (e - 1) / (e + 1).
inputs = list(NEURON.inputs.values())
leaves = [Value(x) for x in inputs]
neuron_by_exp(*leaves).backward()
assert all(abs(v.grad - w.grad) < 1e-12 for v, w in zip(leaves, (x1, x2, w1, w2, b), strict=True))
print("the exp form gives the same gradients")
print("finite differences agree:", gradcheck(neuron, *inputs))

# %% [markdown]
# PyTorch, in float64, as the seeds do.

# %%
try:
    import torch
except ImportError:
    print("PyTorch is not installed: skipping the comparison")
else:
    tx = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
    to = torch.tanh(tx[0] * tx[2] + tx[1] * tx[3] + tx[4])
    to.backward()
    print("torch:", round(to.item(), 6), [round(t.grad.item(), 6) for t in tx])
    assert abs(to.item() - o.data) < 1e-12
    assert all(abs(t.grad.item() - v.grad) < 1e-12 for t, v in zip(tx, (x1, x2, w1, w2, b), strict=True))
