"""The seeds' first training loop: MLP(3, [4, 4, 1]) learns four targets.

forward → loss → zero the grads → backward → update, twenty times. Run it as a script, or cell by cell.
"""

# %%
import random

from chainrule import Value
from chainrule.losses import mse
from chainrule.nn import MLP
from chainrule.seeds import TINY_XS, TINY_YS

random.seed(42)  # the model draws its weights from Python's random, as the seeds do

xs = [list(x) for x in TINY_XS]  # the seeds' four examples, three inputs each
ys = list(TINY_YS)  # desired targets
model = MLP(3, [4, 4, 1])  # tanh everywhere, like the seeds' MLP
print(model)

# %%
history = []
for step in range(20):
    ypred = [model(x) for x in xs]  # forward pass: one Value per example
    loss = mse(ypred, ys, reduction="sum")  # the seeds' sum((y - yhat)**2)
    model.zero_grad()  # grads accumulate: clear last step's first
    loss.backward()
    for p in model.parameters():
        p.data += -0.1 * p.grad  # a small step downhill
    history.append(loss.data)
    print(f"{step:2d}: {loss.data:.6f}")

# %%
print("predictions:", [round(v.data, 3) for v in ypred if isinstance(v, Value)], "targets:", ys)
assert history[-1] < 0.5 * history[0], "the loss should fall"
