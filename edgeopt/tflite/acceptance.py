"""Runtime acceptance: a converted model must load and run in the interpreter a device
uses (LiteRT with its default XNNPACK delegate) before it is verified or bundled.

The converter checks its own rules, not the runtime's: XNNPACK refuses, at prepare time,
int8 ops whose scales its kernels cannot requantize (a convolution whose input scale x
filter scale / output scale is 256 or more, for one), and a device would then fail to load
the model. The runtime names only "Node number N": an op when N is below the op count, else
the delegate's kernel standing for a whole partition of ops. Then the op is found by
loading ever shorter prefixes of the model, and named with its ONNX node.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from edgeopt.errors import CompileError
from edgeopt.lower import LoweredModel
from edgeopt.tflite.convert import op_node
from edgeopt.tflite.reader import TfliteModel, read_tflite

Open = Callable[[bytes], object]  # model bytes -> allocated interpreter (litert_model.open_model)
NODE = re.compile(r"Node number (\d+)")


REFUSALS = (RuntimeError, ValueError)  # failed to prepare or invoke; a model the runtime cannot read


def accept(data: bytes, open_model: Open, lowered: LoweredModel):
    """The allocated interpreter of `data`, after one inference on zeros; a runtime refusal
    is a CompileError naming the op and its ONNX node."""
    try:
        return _run_once(data, open_model)
    except REFUSALS as exc:
        raise _refusal(data, str(exc), open_model, lowered) from None


def _run_once(data: bytes, open_model: Open):
    interpreter = open_model(data)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    return interpreter


def _runs(data: bytes, open_model: Open) -> bool:
    try:
        _run_once(data, open_model)
        return True
    except REFUSALS:
        return False


def prefix(data: bytes, count: int) -> bytes:
    """The model cut after its first `count` ops, the last one's outputs made the outputs
    (no signature: it would name tensors that are gone)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    graph = model.subgraphs[0]
    graph.operators = graph.operators[:count]
    graph.outputs = [int(i) for i in graph.operators[-1].outputs if i >= 0]
    model.signatureDefs = None
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def failing_op(data: bytes, model: TfliteModel, said: str, open_model: Open) -> int | None:
    """The index of the op the runtime refused: the node it names, or, when that is a
    delegate kernel, the first op whose prefix of the model fails (log2(ops) loads)."""
    named = NODE.search(said)
    count = len(model.operators)
    if named and int(named.group(1)) < count:
        return int(named.group(1))
    if model.subgraphs != 1 or not count or _runs(prefix(data, count), open_model):
        return None
    low, high = 1, count  # prefix(high) fails; find the shortest failing one
    while low < high:
        middle = (low + high) // 2
        if _runs(prefix(data, middle), open_model):
            low = middle + 1
        else:
            high = middle
    return high - 1


def _scales(model: TfliteModel, op) -> str:
    """`; int8 scales in [..] out [..]` of a quantized op: what XNNPACK's int8 checks read."""
    def listed(tensors):
        return ", ".join(f"{model.tensor(i).scale[0]:.3g}" if model.tensor(i).scale else "-" for i in tensors if i >= 0)

    if not any(model.tensor(i).scale for i in op.outputs):
        return ""
    return f"; int8 scales in [{listed(op.inputs)}] out [{listed(op.outputs)}]"


def _refusal(data: bytes, said: str, open_model: Open, lowered: LoweredModel) -> CompileError:
    model = read_tflite(data)
    words = "; ".join(part.strip() for part in re.split(r"(?=Node number)", said) if part.strip())
    index = failing_op(data, model, said, open_model)
    hint = ("A device's LiteRT interpreter (XNNPACK on by default) would refuse this model too. XNNPACK refuses int8 "
            "ops it cannot requantize (input x weight scale 256 times the output scale or more): look for an "
            "extreme range at or before the refused op. Meanwhile build with --quant float16 or dynamic, or --target onnx.")
    if index is None:
        return CompileError(f"LiteRT cannot run the converted model: {words}", hint=hint,
                            details={"runtime_error": words})
    op = model.operators[index]
    node = op_node(lowered, model, op)
    where = f"op #{index} {op.opcode}" + (f" (node {node!r})" if node else "")
    return CompileError(f"LiteRT cannot run the converted model: it refuses {where}{_scales(model, op)}: {words}",
                        hint=hint, details={"op_index": index, "op": op.opcode, "node": node, "runtime_error": words})
