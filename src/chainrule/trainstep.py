"""A whole training step on arrays: a compiled program and an optimizer, with no per-parameter Python work.

    step, program = ArrayStep(optimizer), chainrule.compile(loss)
    for k in range(steps):
        loss = step(program)   # zero grads, forward, backward and the optimizer's update: array operations
    step.sync()                # the parameters' Values as an eager run would leave them

The step owns three float64 vectors, one entry per `optimizer.params` (in that order): `data`, `grad`
(this step's d(loss)/d(parameter)) and the optimizer's state (its momentum or moments, kept by the
optimizer itself). Each call copies `data` into the program's buffer (the program holds these inputs
from its first step on: `Program.hold`), replays forward and backward
(chainrule.replay) and calls `optimizer.update(data, grad)`: the same formula `optimizer.step()` applies
to Values, written once in chainrule.optim. A parameter the loss does not reach gets grad 0.

When the Values and the arrays agree: when the step is made (it reads the Values' data and grads), after
`sync()` (it writes `data` into each `.data` and the last step's `grad` into each `.grad`, as the eager
step's `backward()` would have left them) and after `reload()` (it reads the Values' `.data` and `.grad`
again, for code that changed them or trained a step on them). In between, the Values keep the numbers
of the last sync: read `step.data`, or sync first; a callback of a training loop (`fit`'s `on_step`) sees
the Values as they were at the start, unless it calls `sync`. Two steps may run one program in turn:
each holds it again for its own parameters when it runs. `chainrule.train.fit(mode="compiled")` and
`chainrule.makemore.train` sync when they return, on success or error, so `parameters()`, `save`,
`to_torch` and the explorer see the trained numbers.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from chainrule.ir import NUMBER
from chainrule.optim import Optimizer, gather
from chainrule.replay import Program

Array = NDArray[np.float64]


class ArrayStep:
    """Training steps on arrays for the parameters of `optimizer` (see the module's docstring). One step
    object serves every program over those parameters (a program per batch shape, as makemore's)."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ArrayStep needs a chainrule.optim optimizer, not {type(optimizer).__name__}")
        params = optimizer.params
        if len({id(p) for p in params}) != len(params):
            raise ValueError("the optimizer holds a parameter twice")
        self.optimizer = optimizer
        # By id(program): the program, which parameters are its inputs, and their slots in its buffer.
        self._held: dict[int, tuple[Program, NDArray[np.intp], NDArray[np.intp]]] = {}
        self.data: Array = np.zeros(len(params))
        self.grad: Array = np.zeros(len(params))
        self.reload()

    def __call__(self, program: Program) -> float:
        """One step with `program` (compiled from a loss over these parameters): the loss at the current
        data; then `data` holds the updated parameters and `grad` this step's gradient."""
        held = self._held.get(id(program))
        if held is None or program.holder is not self:  # new, or held since by another step
            held = self._hold(program)
        _, inside, slots = held
        program.numbers[slots] = self.data[inside]
        loss = program()
        self.grad.fill(0.0)
        self.grad[inside] = program.number_grads[slots]
        self.data = self.optimizer.update(self.data, self.grad)
        return loss

    def _hold(self, program: Program) -> tuple[Program, NDArray[np.intp], NDArray[np.intp]]:
        if not isinstance(program, Program):
            raise TypeError(f"ArrayStep runs a compiled program (chainrule.compile), not "
                            f"{type(program).__name__}")
        params = self.optimizer.params
        inputs = {id(leaf) for leaf in program.plan.leaves.get(NUMBER, [])}
        inside = np.array([i for i, p in enumerate(params) if id(p) in inputs], dtype=np.intp)
        slots = program.hold([params[i] for i in inside.tolist()], holder=self)
        held = self._held[id(program)] = (program, inside, slots)
        return held

    def sync(self) -> None:
        """Write `data` into the parameters' `.data` and the last step's `grad` into their `.grad`."""
        for p, x, g in zip(self.optimizer.params, self.data.tolist(), self.grad.tolist(), strict=True):
            p.data, p.grad = x, g

    def reload(self) -> None:
        """Read the parameters' `.data` and `.grad` into `data` and `grad` (after code changed the Values,
        or trained a step on them: the next `sync` then writes that step's gradient back, not an older)."""
        params = self.optimizer.params
        self.data, self.grad = gather(params, "data"), gather(params, "grad")

    def release(self) -> None:
        """Sync, and give the parameters back to their Values: the programs read them again."""
        self.sync()
        for program, _, _ in self._held.values():
            if program.holder is self:
                program.hold([])
        self._held.clear()
