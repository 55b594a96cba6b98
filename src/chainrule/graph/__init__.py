"""Static graphs (define, then run) and the program machinery behind ``cr.compile``.

Define-then-run, TensorFlow-1 style::

    from chainrule import graph as G
    x = G.placeholder(shape=(None, 3), name="x")        # None = any size
    w = G.variable(np.zeros((3, 1)), name="w")
    y = cnp.tanh(x @ w + G.constant(0.5))
    loss = cnp.mean(y ** 2)
    loss.forward({x: data})          # -> array
    loss.backward()                  # w.grad = d loss / d w
    gw, = G.gradients(loss, [w])     # gradient nodes, differentiable again
    run = G.compile([loss, gw], inputs=[x])
    print(G.to_dot(loss))

Programs (what ``cr.compile`` and the graphs run): :func:`trace` records a
Python function as a :class:`Program` -- a flat list of equations
(:mod:`.ir`); :mod:`.passes` optimise it (DCE, CSE, constant folding,
exact simplifications); :mod:`.executor` generates straight-line Python
that calls each primitive's NumPy implementation, reusing buffers.
"""

from .dims import Dim
from .dot import to_dot, to_svg
from .executor import Executable, generate, plan_buffers
from .ir import Equation, GuardFailed, Lit, Program, Var
from .nodes import Node, constant, gradients, placeholder, shape, stop_gradient, variable
from .passes import cse, dce, fold_constants, optimize, simplify
from .run import GraphFunction, compile
from .trace import Tracer, trace

__all__ = [
    "placeholder", "variable", "constant", "gradients", "compile", "to_dot", "to_svg",
    "shape", "stop_gradient", "Node", "Dim", "GraphFunction",
    "Program", "Equation", "Var", "Lit", "GuardFailed", "trace", "Tracer",
    "optimize", "dce", "cse", "fold_constants", "simplify", "generate", "plan_buffers",
    "Executable",
]
