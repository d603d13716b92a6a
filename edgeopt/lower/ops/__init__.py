"""One module per family of ONNX ops; importing them fills edgeopt.lower._table.OPS."""

from edgeopt.lower.ops import (activations, conv, elementwise, gather, generate, linear, logic, norm, pool,  # noqa: F401
                               reduce, resize, shape, slicing)
