"""Keras `.keras`/`.h5` files and TensorFlow SavedModel directories, through tf2onnx."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper

from edgeopt.errors import ModelError, UsageError
from edgeopt.frontends.base import OPSET, FrontendOptions, LoadedModel, normalize, resolve_shapes
from edgeopt.ir import TensorSpec
from edgeopt.quiet import captured_output


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with captured_output():
            import tensorflow as tf
            import tf2onnx
    except ImportError:
        raise UsageError("Keras/TensorFlow models need tensorflow and tf2onnx",
                         hint="pip install 'edgeopt[tensorflow]'") from None
    return tf, tf2onnx


def _spec(name: str, shape, dtype) -> TensorSpec:
    return TensorSpec(name, np.dtype(dtype.as_numpy_dtype).name, tuple(shape.as_list() if hasattr(shape, "as_list") else shape))


def _convert(run, specs: list[TensorSpec], path: Path, fmt: str) -> LoadedModel:
    """Trace `run` at the resolved static shapes with tf2onnx, then normalise."""
    tf, tf2onnx = _tf()
    signature = [tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in specs]
    function = tf.function(run)
    try:
        with captured_output():
            proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=OPSET)
    except Exception as exc:
        raise ModelError(f"{path}: tf2onnx could not convert the model: {str(exc).splitlines()[0]}",
                         hint="An op without an ONNX equivalent; see tf2onnx's support table.") from None
    _inputs_to_initializers(proto, _captured_constants(function.get_concrete_function(*signature)))

    def reference(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(t) for t in run(*(feeds[s.name] for s in specs))]

    return normalize(proto, specs, path, fmt, reference)


def _captured_constants(concrete) -> dict[str, np.ndarray]:
    """Tensors the trace captured from outside the function, by placeholder name.

    Keras 3 keeps constants such as a Normalization layer's mean and variance as eager
    tensors, not variables. tf.function passes captured eager tensors in as extra
    placeholders, and tf2onnx turns every placeholder that is not a variable handle
    into a graph input, so the model would ask the user for its own constants.
    """
    tf, _ = _tf()
    return {placeholder.name: value.numpy() for value, placeholder in concrete.graph.captures
            if value.dtype != tf.resource and hasattr(value, "numpy")}


def _inputs_to_initializers(proto: onnx.ModelProto, constants: dict[str, np.ndarray]) -> None:
    """Turn the graph inputs named in `constants` into initializers holding those values."""
    graph = proto.graph
    moved = [value for value in graph.input if value.name in constants]
    for value in moved:
        graph.input.remove(value)
        graph.initializer.append(onnx.numpy_helper.from_array(constants[value.name], value.name))


def _outputs(result) -> list:
    if isinstance(result, dict):
        return [result[k] for k in sorted(result)]
    return list(result) if isinstance(result, (list, tuple)) else [result]


def load_keras(path: Path, options: FrontendOptions) -> LoadedModel:
    _tf()
    import keras

    try:
        model = keras.models.load_model(str(path), compile=False)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable Keras model ({type(exc).__name__}: {str(exc).splitlines()[0]})",
                         hint="Save it with model.save('model.keras').") from None
    declared = [_spec(t.name, t.shape, _dtype(t.dtype)) for t in model.inputs]
    specs = resolve_shapes(declared, options.input_shapes, path)

    def run(*xs):
        return _outputs(model(list(xs) if len(xs) > 1 else xs[0], training=False))

    return _convert(run, specs, path, "keras")


def _dtype(dtype):
    tf, _ = _tf()
    return tf.as_dtype(dtype)


def load_saved_model(path: Path, options: FrontendOptions) -> LoadedModel:
    tf, _ = _tf()
    try:
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures["serving_default"]
    except Exception as exc:
        raise ModelError(f"{path}: not a loadable SavedModel with a serving_default signature ({str(exc).splitlines()[0]})",
                         hint="Export it with model.export(dir) or tf.saved_model.save(obj, dir, signatures=...).") from None
    inputs = signature.structured_input_signature[1]
    names = sorted(inputs)
    declared = [_spec(n, inputs[n].shape, inputs[n].dtype) for n in names]
    specs = resolve_shapes(declared, options.input_shapes, path)

    def run(*xs):
        return _outputs(signature(**dict(zip(names, (tf.convert_to_tensor(x) for x in xs)))))

    return _convert(run, specs, path, "saved-model")
