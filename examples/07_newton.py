"""Gradients of gradients: Newton's method on the seeds' f(x) = 3x² - 4x + 5, and the tanh neuron's Hessian.

Newton's step x ← x - f'(x) / f''(x) needs the second derivative. chainrule gets it the way PyTorch does:
`backward(create_graph=True)` makes each `.grad` a Value with a graph of its own, built from the same op
rules, so it can be differentiated again (`chainrule.grad(chainrule.grad(f))`, `chainrule.hessian(f)`).
Run it as a script, or cell by cell (# %%).
"""

# %%
import math
import os
from pathlib import Path

from chainrule import Value, grad, hessian
from chainrule.seeds import NEURON, neuron  # o = tanh(x1*w1 + x2*w2 + b)
from chainrule.viz import render

OUT = Path(os.environ.get("CHAINRULE_OUT", "chainrule-out/examples"))

f = lambda x: 3 * x**2 - 4 * x + 5  # the seeds' first function
df, d2f = grad(f), grad(grad(f))
print(f"f'(3) = {df(3.0)}, f''(3) = {d2f(3.0)}")  # 6x - 4 = 14 and 6

# %% [markdown]
# On a quadratic, Newton's method lands on the minimum in one step, from anywhere: x = 2/3, where the
# seeds found the slope to be zero.

# %%
x = 3.0
for step in range(3):
    x = x - df(x) / d2f(x)
    print(f"step {step + 1}: x = {x:.15f}, f'(x) = {df(x):.2e}")
assert abs(x - 2 / 3) < 1e-15 and abs(df(x)) < 1e-12

# %% [markdown]
# The same thing by hand: after `backward(create_graph=True)`, `x.grad` is a Value, the graph of
# f'(x) = 6x - 4 built from the rules of `*`, `**` and `+`; its own backward gives f''(x).

# %%
x = Value(3.0, label="x")
y = f(x)
y.backward(create_graph=True)
slope = x.grad
print(f"x.grad = {slope.data} is a Value with op {slope.op!r}")
x.grad = 0.0  # backward accumulates: start the second derivative from zero
slope.backward()
print(f"d/dx of x.grad = {x.grad}")
assert slope.data == 14.0 and x.grad == 6.0

# %% [markdown]
# The derivative's own graph, drawn: d/dx tanh(x) is built from the tanh node itself, as its rule says,
# 1 - out·out. Open the page and click the nodes (or use `draw_dot(x.grad)` in a notebook).

# %%
x = Value(0.5, label="x")
out = x.tanh()
out.label = "out"
out.backward(create_graph=True)
dout_dx = x.grad
dout_dx.label = "dout/dx"
OUT.mkdir(parents=True, exist_ok=True)
page = render(dout_dx, OUT / "07_dtanh.html", title="d/dx tanh(x), built from 1 - out*out")
print(f"dout/dx = {dout_dx.data:.6f} = 1 - tanh(0.5)²; its graph: {page}")
assert abs(dout_dx.data - (1 - math.tanh(0.5) ** 2)) < 1e-15

# %% [markdown]
# A less friendly function: g(x) = x·tanh(x) - 0.5·x has its minimum near x = 0.2614. From x = 0.5,
# Newton's method doubles the correct digits each step (quadratic convergence), each step using g''
# from the tanh rule read twice. (Started far out, at x = 1.5, it runs away: g is nearly flat there.)

# %%
g = lambda x: x * x.tanh() - 0.5 * x
dg, d2g = grad(g), grad(grad(g))
x = 0.5
for step in range(6):
    x = x - dg(x) / d2g(x)
    print(f"step {step + 1}: x = {x:.12f}, g'(x) = {dg(x):+.2e}")
assert abs(dg(x)) < 1e-12 and abs(x - 0.261442244) < 1e-9

# %% [markdown]
# The tanh neuron's Hessian: the second derivatives of o = tanh(x1·w1 + x2·w2 + b) with respect to all
# five inputs, a symmetric 5×5 matrix. Every entry is (1 - o²)'s derivative, -2·o·(1 - o²), times the
# two inputs' own factors (a weight's is its input, an input's is its weight), plus 1 - o² where the
# two inputs multiply each other.

# %%
names = list(NEURON.inputs)
point = list(NEURON.inputs.values())


H = hessian(neuron)(*point)
print("      " + "".join(f"{n:>9}" for n in names))
for name, row in zip(names, H, strict=True):
    print(f"{name:>6}" + "".join(f"{h:9.4f}" for h in row))
o = math.tanh(sum(x * w for x, w in zip(point[:2], point[2:4], strict=True)) + point[4])
factor = {"x1": point[2], "x2": point[3], "w1": point[0], "w2": point[1], "b": 1.0}
pairs = {("x1", "w1"), ("w1", "x1"), ("x2", "w2"), ("w2", "x2")}
for i, a in enumerate(names):
    for j, c in enumerate(names):
        expected = -2 * o * (1 - o * o) * factor[a] * factor[c] + ((1 - o * o) if (a, c) in pairs else 0.0)
        assert abs(H[i][j] - expected) < 1e-12 and abs(H[i][j] - H[j][i]) < 1e-15
print("matches -2·o·(1 - o²)·(∂n/∂a)(∂n/∂c) + (1 - o²)·∂²n/∂a∂c for every pair")
