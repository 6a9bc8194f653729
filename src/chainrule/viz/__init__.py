"""See every gradient: graph drawing, the backprop explorer page, and a text stepper.

    from chainrule.viz import draw_dot, explore, render, backward_steps
    draw_dot(loss)                      # a graphviz.Digraph: shows inline in Jupyter (dot or not)
    explore(loss)                       # the step-through explorer, inline in Jupyter
    render(loss, "loss.html")           # the same explorer, one offline file
    check_target(loss, "loss.svg")      # ValueError now, if render could not write there
    for step in backward_steps(loss):   # backward, one edge at a time
        print(step)
    for step in forward_steps(loss, w):  # forward mode for d(loss)/dw, one node at a time
        print(step)
"""

from chainrule.viz.dot import MAX_NODES, GraphTooLargeError, Group, draw_dot
from chainrule.viz.html import to_html
from chainrule.viz.model import ModelTrace, trace_model
from chainrule.viz.notebook import Explorer, explore
from chainrule.viz.render import GraphvizMissingWarning, check_target, render
from chainrule.viz.steps import Step, TangentStep, backward_steps, forward_steps

__all__ = [
    "MAX_NODES",
    "Explorer",
    "GraphTooLargeError",
    "GraphvizMissingWarning",
    "Group",
    "ModelTrace",
    "Step",
    "TangentStep",
    "backward_steps",
    "check_target",
    "draw_dot",
    "explore",
    "forward_steps",
    "render",
    "to_html",
    "trace_model",
]
