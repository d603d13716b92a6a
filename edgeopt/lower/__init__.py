"""Lowering of the ONNX IR to TensorFlow, channels-last: the one executor the TFLite and
Coral backends convert, and that calibration and training run (DESIGN.md, "Lowering to
TensorFlow")."""

from edgeopt.lower import ops  # noqa: F401  (fills the table)
from edgeopt.lower._builder import NeedsConstant, lower
from edgeopt.lower._model import LoweredModel, Port, Step
from edgeopt.lower._table import OPS

__all__ = ["OPS", "LoweredModel", "NeedsConstant", "Port", "Step", "lower"]
