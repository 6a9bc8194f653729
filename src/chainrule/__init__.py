"""chainrule: a scalar autograd engine to learn backpropagation with."""

from .byhand import check_by_hand  # the learner's gradients against backward()'s
from .compile import compile  # NumPy is imported by the first compile, not with chainrule
from .engine import RULES, Rule, Value, enable_grad, no_grad, topological_order
from .export import from_torch, to_torch  # torch itself is imported only when one of them runs
from .forward import Dual, hvp, jvp  # forward mode: jvp, and hvp (forward-over-reverse)
from .functional import grad, hessian, value_and_grad
from .gradcheck import GradcheckError, check_graph, gradcheck, numerical_grad
from .ops import apply_op, define_op, linear, remove_op
from .serialize import load, save

__version__ = "0.1.0"  # pyproject.toml reads it from here

__all__ = [
    "RULES",
    "Dual",
    "GradcheckError",
    "Rule",
    "Value",
    "apply_op",
    "check_by_hand",
    "check_graph",
    "compile",
    "define_op",
    "enable_grad",
    "from_torch",
    "grad",
    "gradcheck",
    "hessian",
    "hvp",
    "jvp",
    "linear",
    "load",
    "no_grad",
    "numerical_grad",
    "remove_op",
    "save",
    "to_torch",
    "topological_order",
    "value_and_grad",
]
