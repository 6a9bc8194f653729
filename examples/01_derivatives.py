"""Derivatives from first principles: the slope (f(x + h) - f(x)) / h, and what goes wrong when h is tiny.

Run it as a script, or cell by cell (# %%) in VS Code / Jupyter. Plots go to $CHAINRULE_OUT
(default chainrule-out/examples).
"""

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from chainrule import numerical_grad

OUT = Path(os.environ.get("CHAINRULE_OUT", "chainrule-out/examples"))
OUT.mkdir(parents=True, exist_ok=True)


def f(x):
    return 3 * x**2 - 4 * x + 5


def df(x):  # by the rules of differentiation
    return 6 * x - 4


print("f(3.0) =", f(3.0))

# %% [markdown]
# The slope at a few points, with h = 1e-8, against the exact derivative 6x - 4.
# At x = 2/3 the slope is 0: the bottom of the parabola.

# %%
h = 0.00000001
print(f"{'x':>8} {'(f(x+h) - f(x))/h':>20} {'6x - 4':>10}")
for x in [3.0, 2.0, 0.0, -1.0, 2 / 3]:
    slope = (f(x + h) - f(x)) / h
    print(f"{x:8.4f} {slope:20.10f} {df(x):10.4f}")
    assert abs(slope - df(x)) < 1e-5

# %% [markdown]
# Too small an h breaks it. With h = 1e-20, x + h is exactly x in floating point (a double carries
# about 16 significant digits), so the difference is 0 and so is the "slope".

# %%
x = 3.0
h = 0.00000000000000000001
print("h = 1e-20:", (f(x + h) - f(x)) / h, "(3.0 + 1e-20 == 3.0 is", 3.0 + h == 3.0, ")")
assert (f(x + h) - f(x)) / h == 0.0

# %% [markdown]
# The trade-off: large h is a coarse slope (error ~ 3h here), small h loses digits to rounding
# (error ~ 1e-16 · f / h). The sweet spot for this forward difference is near h = 1e-8.
# The central difference (f(x+h) - f(x-h)) / 2h is exact for a parabola up to rounding: chainrule's
# `numerical_grad` uses it by default.

# %%
print(f"{'h':>8} {'forward error':>14} {'central error':>14}")
hs = [10.0**-k for k in range(1, 17)]
forward_errors, central_errors = [], []
for h in hs:
    forward_errors.append(abs((f(x + h) - f(x)) / h - df(x)))
    central_errors.append(abs(numerical_grad(f, x, h=h) - df(x)))
    print(f"{h:8.0e} {forward_errors[-1]:14.3e} {central_errors[-1]:14.3e}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
xs = np.arange(-5, 5, 0.25)
left.plot(xs, f(xs), label="f(x) = 3x² - 4x + 5")
left.plot(xs, df(xs), label="f'(x) = 6x - 4")
left.axhline(0, color="grey", linewidth=0.5)
left.legend()
left.set_title("f and its derivative")
right.loglog(hs, np.maximum(forward_errors, 1e-17), "o-", label="forward (f(x+h) - f(x)) / h")
right.loglog(hs, np.maximum(central_errors, 1e-17), "s-", label="central (f(x+h) - f(x-h)) / 2h")
right.set(xlabel="h", ylabel="|error| at x = 3", title="too big, too small")
right.legend()
fig.tight_layout()
fig.savefig(OUT / "01_derivatives.png")
print("wrote", OUT / "01_derivatives.png")
