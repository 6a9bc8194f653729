"""Forward mode: the same op rules, read from the inputs to the output, and why training runs backward.

`chainrule.jvp(f, primals, tangents)` runs f once on numbers that carry a tangent ṫ (how fast they move
when the inputs move along `tangents`): each op computes its number by its rule in `RULES` and its tangent
by the chain rule read forward, ṫ(out) = Σ local_i · ṫ(x_i), with the very local derivatives `backward`
uses. One pass gives one directional derivative; a gradient over n inputs takes n passes, reverse mode
one. `chainrule.hvp` is forward-over-reverse: the Hessian times a vector, without the Hessian.
Run it as a script, or cell by cell (# %%).
"""

# %%
import random
import time

from chainrule import Value, grad, hessian, hvp, jvp
from chainrule.forward import forward_pass, op_counts
from chainrule.nn import MLP
from chainrule.seeds import NEURON, neuron  # o = tanh(x1*w1 + x2*w2 + b)
from chainrule.viz import forward_steps

f = lambda x: 3 * x**2 - 4 * x + 5  # the seeds' first function
value, slope = jvp(f, 3.0, 1.0)  # f(3) and f'(3) in one forward pass: 20 and 6·3 - 4 = 14
print(f"jvp(f, 3, 1) = ({value}, {slope})")
assert (value, slope) == (20.0, 14.0) == (value, grad(f)(3.0))

# %% [markdown]
# The neuron, differentiated forward along x1 (tangent 1 on x1, 0 on the others). Each line is one node,
# in the order the forward pass computes it: its tangent is the sum of local × the inputs' tangents.
# Compare `chainrule graph "tanh(x1*w1 + x2*w2 + b)" --at ... --forward x1`.

# %%
o, named = NEURON.build()
inputs = [named[k] for k in NEURON.inputs]  # x1, x2, w1, w2, b
for step in forward_steps(o, named["x1"], inputs):
    print(step)

# %% [markdown]
# One forward pass per input gives the whole gradient, the same numbers as one backward pass.

# %%
point = list(NEURON.inputs.values())
forward_gradient = [jvp(neuron, point, [float(i == j) for j in range(5)])[1] for i in range(5)]
o.backward()
print("by 5 forward passes:", [round(g, 6) for g in forward_gradient])
print("by 1 backward pass: ", [round(v.grad, 6) for v in inputs])
assert all(abs(a - v.grad) < 1e-15 for a, v in zip(forward_gradient, inputs, strict=True))

# %% [markdown]
# What each mode costs, counted in multiply-adds `local × tangent` (forward) or `local × grad` (backward):
# forward mode pays one pass per input, reverse mode one pass for all of them. For the neuron, 5 inputs:

# %%
counts = op_counts(o, inputs)
print(f"neuron: forward {counts.inputs} passes × {counts.per_pass} = {counts.forward}, "
      f"reverse 1 pass × {counts.reverse} = {counts.reverse}")
assert counts.forward == 5 * counts.reverse

# %% [markdown]
# micrograd's demo MLP(2, [16, 16, 1]): one loss, 337 parameters. Forward mode needs 337 passes, each as
# long as the forward pass itself; backward needs one. This is why networks train by reverse mode.
# (Replayed here on the recorded graph with `forward_pass`, the same Dual arithmetic as `jvp`.)

# %%
model = MLP(2, [16, 16, 1], activation="relu", output_activation="linear", bias_init="zero",
            rng=random.Random(1337))
out = model([Value(1.2), Value(-0.4)])
assert isinstance(out, Value)
loss = (1 + -1.0 * out).relu()  # the hinge loss of one point labelled +1
params = model.parameters()
counts = op_counts(loss, params)
print(f"MLP: forward {counts.inputs} passes × {counts.per_pass} = {counts.forward:,} multiply-adds, "
      f"reverse 1 pass × {counts.reverse} = {counts.reverse} ({counts.forward / counts.reverse:.0f}x)")

start = time.perf_counter()
tangents = []
for p in params:  # forward mode: one pass per parameter
    tangents.append(forward_pass(loss, {q: float(q is p) for q in params})[-1].tangent)
forward_seconds = time.perf_counter() - start
start = time.perf_counter()
loss.backward()
backward_seconds = time.perf_counter() - start
print(f"the whole gradient: {forward_seconds * 1e3:.0f} ms forward, {backward_seconds * 1e3:.2f} ms backward")
assert all(abs(t - p.grad) < 1e-12 for t, p in zip(tangents, params, strict=True))
assert counts.forward > 300 * counts.reverse

# %% [markdown]
# The other way round, forward mode is the cheap one: the MLP's output against its 2 *inputs* (the
# parameters held fixed) is 2 forward passes, each touching only what depends on the inputs.

# %%
x0, x1 = Value(1.2, "x0"), Value(-0.4, "x1")
out = model([x0, x1])
assert isinstance(out, Value)
counts = op_counts(out, [x0, x1])
print(f"MLP output against its 2 inputs: forward {counts.inputs} × {counts.per_pass} = {counts.forward}, "
      f"reverse {counts.reverse}")
slope_x0 = jvp(lambda a, b: model([a, b]), (1.2, -0.4), (1.0, 0.0))[1]
out.backward()
assert abs(slope_x0 - x0.grad) < 1e-12

# %% [markdown]
# Hessian-vector products, forward-over-reverse: `hvp(f, x, v)` is `jvp` of `grad(f)`: one reverse pass
# whose numbers carry tangents. Here the neuron's, against the full Hessian times v.

# %%
v = [1.0, 0.0, 0.5, 0.0, -1.0]
Hv = hvp(neuron, point, v)
H = hessian(neuron)(*point)
print("H·v =", [round(h, 6) for h in Hv])
assert all(abs(a - sum(h * vj for h, vj in zip(row, v, strict=True))) < 1e-12
           for a, row in zip(Hv, H, strict=True))
