"""One module per family of ONNX ops; importing them fills edgeopt.lower._table.OPS."""

from edgeopt.lower.ops import (activations, blocks, conv, einsum, elementwise, gather, generate,  # noqa: F401
                               grid_sample, linear, logic, norm, pool, reduce, resize, select, shape, slicing)
