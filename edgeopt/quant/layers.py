"""Which layer broke my int8 model: the int8 .tflite's intermediate tensors against the
float lowering's, layer by layer, on held-out samples.

LiteRT keeps every intermediate tensor when asked (`experimental_preserve_all_tensors`),
with its built-in kernels (XNNPACK would fuse them away). Each int8 op output is matched to
the lowering step it came from by the TF name scope its tensor name carries (a fused
activation carries both scopes: the later step wins) and by shape, both in the TF layout.
Per layer: SQNR against float over all samples, and how much worse that is than the worst
of its inputs (`growth_db`), which points at the layer that loses the signal rather than
every layer after it. With --bias-correction the float reference has the corrected biases.
"""

from __future__ import annotations

import re
from typing import Iterable

import numpy as np

from edgeopt.lower import LoweredModel
from edgeopt.tflite.convert import op_node
from edgeopt.tflite.reader import TfliteModel, read_tflite

SAMPLES = 8
WORST = 5
SKIPPED = {"QUANTIZE", "DEQUANTIZE"}
INTEGER = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16}
NUMPY = {**INTEGER, "FLOAT32": np.float32, "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_}


def _step_of(lowered: LoweredModel, name: str, shape: tuple, shapes: dict) -> str | None:
    """The key of the last step whose scope is in the tensor's name and whose output has its shape."""
    for step in reversed(lowered.steps):
        if re.search(rf"(^|[/;\s]){re.escape(step.name)}/", name):
            key = next((k for k in step.outputs if shapes.get(k) == shape), None)
            if key is not None:
                return key
    return None


def _interpreter(data: bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=data, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return interpreter


def _set_inputs(interpreter, model: TfliteModel, lowered: LoweredModel, feed: dict) -> None:
    for port, index in zip(lowered.inputs, model.inputs):
        tensor = model.tensor(index)
        x = np.transpose(feed[port.name], port.perm)
        if tensor.scale and tensor.dtype in INTEGER:
            info = np.iinfo(INTEGER[tensor.dtype])
            x = np.clip(np.round(x / tensor.scale[0] + tensor.zero_point[0]), info.min, info.max)
        interpreter.set_tensor(index, x.astype(NUMPY[tensor.dtype]))


def layer_errors(lowered: LoweredModel, data: bytes, feeds: Iterable[dict], samples: int = SAMPLES) -> list[dict]:
    """Per int8 op of `data` that matches a lowering step: {index, op, node, sqnr_db, growth_db}."""
    model = read_tflite(data)
    interpreter = _interpreter(data)
    saved, lowered.ranges = lowered.ranges, {}  # the float reference
    signal: dict[int, float] = {}
    noise: dict[int, float] = {}
    matched: dict[int, tuple[str, str]] = {}  # tflite tensor -> (step key, node)
    try:
        for n, feed in enumerate(feeds):
            if n >= samples:
                break
            env = lowered.run({p.name: np.transpose(feed[p.name], p.perm) for p in lowered.inputs}, keep=True)
            if not matched:
                shapes = {k: tuple(v.shape) for k, v in env.items()}
                matched = _match(lowered, model, shapes)
            _set_inputs(interpreter, model, lowered, feed)
            interpreter.invoke()
            for tensor, (key, _) in matched.items():
                info = model.tensor(tensor)
                actual = (interpreter.get_tensor(tensor).astype(np.float64) - info.zero_point[0]) * info.scale[0]
                expected = np.asarray(env[key], np.float64)
                signal[tensor] = signal.get(tensor, 0.0) + float(np.sum(expected ** 2))
                noise[tensor] = noise.get(tensor, 0.0) + float(np.sum((expected - actual) ** 2))
    finally:
        lowered.ranges = saved
    return _rows(model, matched, signal, noise)


def _match(lowered: LoweredModel, model: TfliteModel, shapes: dict) -> dict[int, tuple[str, str]]:
    """Quantized tflite tensors (graph inputs, op outputs) -> (lowering key, what to call them)."""
    found = {index: (port.key, f"input {port.name}") for port, index in zip(lowered.inputs, model.inputs)
             if model.tensor(index).dtype in INTEGER and model.tensor(index).scale}
    nodes = {key: step.node for step in lowered.steps for key in step.outputs}
    for op in model.operators:
        if op.opcode in SKIPPED:
            continue
        for tensor in op.outputs:
            info = model.tensor(tensor)
            if info.dtype not in INTEGER or len(info.scale) != 1:
                continue
            key = _step_of(lowered, info.name, info.shape, shapes) or _output_step(lowered, model, op, shapes)
            if key is not None:
                found[tensor] = (key, nodes[key])
    return found


def _output_step(lowered: LoweredModel, model: TfliteModel, op, shapes: dict) -> str | None:
    """For an op whose tensor was renamed after a graph output: the key of its node's step."""
    node = op_node(lowered, model, op)
    shape = model.tensor(op.outputs[0]).shape
    keys = [k for step in lowered.steps if step.node == node for k in step.outputs if shapes.get(k) == shape]
    return keys[-1] if keys else None


def _rows(model: TfliteModel, matched: dict, signal: dict, noise: dict) -> list[dict]:
    quality = {t: (float(10 * np.log10(signal[t] / noise[t])) if noise[t] > 0 and signal[t] > 0 else None)
               for t in matched}
    layers = [(-1, "INPUT", t, []) for t in model.inputs if t in matched]
    for op in model.operators:
        tensor = next((t for t in op.outputs if t in matched), None)
        if tensor is not None:
            layers.append((op.index, op.opcode, tensor, _sources(model, op, matched)))
    rows = []
    for index, opcode, tensor, sources in layers:
        own = quality[tensor]
        upstream = [quality[t] for t in sources if quality.get(t) is not None]
        growth = None if own is None or not upstream else round(float(min(upstream) - own), 2)
        rows.append({"index": index, "op": opcode, "node": matched[tensor][1],
                     "sqnr_db": None if own is None else round(own, 2), "growth_db": growth})
    return rows


def _sources(model: TfliteModel, op, matched: dict) -> list[int]:
    """The matched tensors that feed `op`, looking through QUANTIZE/DEQUANTIZE and layout ops
    that were not matched."""
    found, todo, seen = [], [t for t in op.inputs if t >= 0], set()
    while todo:
        tensor = todo.pop()
        if tensor in seen or model.tensor(tensor).constant:
            continue
        seen.add(tensor)
        if tensor in matched:
            found.append(tensor)
            continue
        producer = model.producer(tensor)
        if producer is not None:
            todo.extend(t for t in producer.inputs if t >= 0)
    return found


def worst(rows: list[dict], count: int = WORST) -> list[dict]:
    """The layers where the error grows most (SQNR lost against their inputs)."""
    grown = [r for r in rows if r["growth_db"] is not None]
    return sorted(grown, key=lambda r: -r["growth_db"])[:count]

