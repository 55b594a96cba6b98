"""The engine: primitives, trace levels, the reverse sweep.  It knows no op by name."""

from .backward import add_cotangents, backward_pass
from .primitive import Box, Primitive, primitive, record, registry
from .trace import enable_grad, is_grad_enabled, no_grad

__all__ = [
    "Box", "record", "Primitive", "primitive", "registry", "add_cotangents", "backward_pass",
    "no_grad", "enable_grad", "is_grad_enabled",
]
