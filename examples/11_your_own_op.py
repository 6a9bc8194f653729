"""Your own op: softplus, written as one rule and checked the moment you define it.

Every op of chainrule is one row of `RULES`: a forward and its local derivatives, written against a math
namespace `m` so that floats, NumPy batches and Values (gradients of gradients) all read the same row.
`define_op` adds a row of your own: it tries your rule against finite differences first, and refuses a
wrong local derivative, naming the point where it is wrong. Run it as a script, or cell by cell (# %%).
"""

# %%
import math

import numpy as np

import chainrule
from chainrule import GradcheckError, Value, define_op

# softplus(x) = log(1 + eˣ), a smooth relu; its slope is the sigmoid.
softplus = define_op(
    "softplus",
    forward=lambda m, x: m.log(1.0 + m.exp(x)),
    local=lambda m, out, x: (m.sigmoid(x),),
    formula="∂/∂x = σ(x)",
)
x = Value(0.5, label="x")
y = x.softplus()  # Value had no `softplus`, so it gained a method; softplus(x) is the same op
y.backward()
print(f"softplus(0.5) = {y.data:.6f}, slope {x.grad:.6f}, σ(0.5) = {1 / (1 + math.exp(-0.5)):.6f}")
assert math.isclose(x.grad, 1 / (1 + math.exp(-0.5)), rel_tol=1e-12)

# %% [markdown]
# A wrong local derivative never makes it into `RULES`: here the slope is written as eˣ.

# %%
try:
    define_op("softplus_wrong", lambda m, x: m.log(1.0 + m.exp(x)), lambda m, out, x: (m.exp(x),))
except GradcheckError as err:
    print("refused:", err)
assert "softplus_wrong" not in chainrule.RULES

# %% [markdown]
# The same row runs everywhere a built-in op does: the second derivative (σ(x)·(1 - σ(x))) by
# `create_graph`, a batch, and the compiled program.

# %%
x = Value(0.5)
softplus(x).backward(create_graph=True)
slope = x.grad
x.grad = 0.0
slope.backward()
s = 1 / (1 + math.exp(-0.5))
print(f"second derivative {x.grad:.6f} = σ(1 - σ) = {s * (1 - s):.6f}")
assert math.isclose(x.grad, s * (1 - s), rel_tol=1e-12)

xs = Value(np.linspace(-3.0, 3.0, 7))
loss = softplus(xs).sum()
loss.backward()
eager = xs.grad.copy()
program = chainrule.compile(loss)
xs.grad = 0.0
program()
print(program)
assert np.allclose(xs.grad, eager, rtol=1e-12)
print("the batch's slopes:", np.round(xs.grad, 4))
