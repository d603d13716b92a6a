"""One module per family of ONNX ops; importing them fills edgeopt.lower._table.OPS."""

from edgeopt.lower.ops import activations, conv, elementwise, linear, norm, pool, reduce, resize, shape, slicing  # noqa: F401
