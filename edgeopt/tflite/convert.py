"""LoweredModel -> .tflite with the official TFLiteConverter, and its failures as our errors.

int8 is full-integer: the converter quantizes weights per channel and calibrates
activations on the representative data; tensors carrying fake-quant ranges (percentile /
MSE calibration) keep exactly those ranges. Integer I/O unless float I/O is asked for.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

import numpy as np

from edgeopt.errors import CompileError, UnsupportedOpError
from edgeopt.lower import LoweredModel
from edgeopt.tflite.compact import share_vectors
from edgeopt.tflite.isolated import run_converter
from edgeopt.tflite.reader import TfliteModel, read_tflite

QUANT_MODES = ("float32", "float16", "dynamic", "int8")
IO_DTYPES = ("int8", "uint8", "float32")
EDGE_OPS = {"QUANTIZE", "DEQUANTIZE"}
# The converter leaves ARG_MAX/ARG_MIN in float behind a DEQUANTIZE. Harmless: dequantizing
# is monotone, so the index is the one int8 gives, and their output is an index, not floats.
INDEX_OPS = {"ARG_MAX", "ARG_MIN"}
TF_LOG_LINE = re.compile(r"^[IW]\d{4} ")  # absl/glog info and warning lines


def node_of(lowered: LoweredModel, text: str) -> str | None:
    """The ONNX node whose TF name scope appears in `text` (a converter message or tensor name)."""
    found = [s for s in lowered.steps if re.search(rf"(^|[\"/;\s(]){re.escape(s.name)}/", text)]
    return max(found, key=lambda s: len(s.name)).node if found else None


def op_node(lowered: LoweredModel, model: TfliteModel, op) -> str | None:
    """The ONNX node a converted op came from. Its outputs carry the node's TF name scope,
    unless the op makes a graph output (renamed after the signature; a requantizing QUANTIZE
    may stand between): then the node is the one that produced that output. Last resort:
    the op's constants, which keep their scope."""
    node = node_of(lowered, " ".join(model.tensor(i).name for i in op.outputs))
    if node:
        return node
    tensor = op.outputs[0]
    while tensor not in model.signature_outputs.values():
        consumer = next((o for o in model.operators if tensor in o.inputs and o.opcode in EDGE_OPS), None)
        if consumer is None:
            break
        tensor = consumer.outputs[0]
    signature = {index: name for name, index in model.signature_outputs.items()}
    port = next((p for p in lowered.outputs if p.tf_name == signature.get(tensor)), None)
    step = next((s for s in lowered.steps if port is not None and port.key in s.outputs), None)
    if step is not None:
        return step.node
    constants = [model.tensor(i) for i in op.inputs if i >= 0 and model.tensor(i).constant]
    return node_of(lowered, " ".join(t.name for t in constants))


def _conversion_error(lowered: LoweredModel, said: str, log: str, quant: str) -> Exception:
    """Our error for a converter exception (`said`), with what it logged while it ran."""
    text = f"{said}\n{log}"
    missing = re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)
    node = node_of(lowered, text)
    where = f" (node {node!r})" if node else ""
    if missing:
        signature = re.search(rf"tf\.{missing[0]}(\(.*?\) -> \(?tensor<[^>]*>)", text)
        types = f" {signature.group(1)}" if signature else ""
        return UnsupportedOpError(f"TFLite has no builtin for TF op {missing[0]}{types}{where}",
                                  hint="Rewrite that op in the source model, or build with --target onnx.")
    return CompileError(f"the TFLite converter failed ({quant}){where}: {_reason(said, log)}",
                        hint="Report this with the model attached; meanwhile try another --quant mode or --target onnx.")


def _reason(said: str, log: str) -> str:
    """The converter's own words: its exception's error lines, else the log's; never the
    info/warning lines TensorFlow logs while loading (I0000 ..., W0000 ...)."""
    for text in (said, log):
        lines = [line.strip() for line in text.splitlines() if line.strip() and not TF_LOG_LINE.match(line)]
        errors = [line for line in lines if re.search(r"error|fail", line, re.IGNORECASE)]
        if errors or lines:
            return "\n".join(errors or lines)[-600:]
    return "(it said nothing)"


def float_ops_in_int8(lowered: LoweredModel, model: TfliteModel) -> list[str]:
    """Ops an int8 model still runs in float (the converter falls back silently), by node."""
    found = []
    for op in model.operators:
        if op.opcode in EDGE_OPS or op.opcode in INDEX_OPS:
            continue
        tensors = [model.tensor(i) for i in (*op.inputs, *op.outputs) if i >= 0]
        if any(t.dtype == "FLOAT32" and not t.constant for t in tensors):
            node = op_node(lowered, model, op)
            found.append(f"{op.opcode}" + (f" (node {node!r})" if node else ""))
    return found


def convert(lowered: LoweredModel, quant: str, *, representative: Callable[[], Iterable] | None = None,
            io_dtype: str = "int8", sparse: bool = False) -> bytes:
    """Convert in a child process (edgeopt.tflite.isolated); the converter's failures as our errors.
    `sparse`: weights in TFLite's sparse encoding (edgeopt.tflite.sparse_encoding)."""
    outcome = run_converter(lowered, quant, representative, io_dtype, sparse)
    if outcome.data is None:
        raise _conversion_error(lowered, outcome.said, outcome.log, quant)
    data = outcome.data
    if quant == "int8":
        floats = float_ops_in_int8(lowered, read_tflite(data))
        if floats:
            raise UnsupportedOpError(f"int8: the TFLite converter cannot quantize {len(floats)} op(s): "
                                     f"{', '.join(floats[:5])}",
                                     hint="Build with --quant dynamic (int8 weights, float activations) or "
                                          "--quant float16, or replace the op in the source model.")
    return share_vectors(data)


def representative_data(lowered: LoweredModel, feeds: Iterable[dict]) -> Callable[[], Iterable[list[np.ndarray]]]:
    """The converter's representative_dataset: samples in signature order and TF layout, made
    one at a time as the converter asks (`feeds` may be a re-iterable stream: it is not held)."""

    def generate():
        for feed in feeds:
            yield lowered.tf_arrays(feed)

    return generate
