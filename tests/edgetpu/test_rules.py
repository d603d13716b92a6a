"""Every constraint check of the Edge TPU rules table, each on one real int8 model that breaks
it and one that keeps it, made by TensorFlow's converter (tests/edgetpu/tflite_models.py).

Some rows need an edit of the converted flatbuffer, because TF 2.21 never writes them: a
SQUEEZE (the converter makes every static SQUEEZE a RESHAPE; the edited model is run by
LiteRT against the RESHAPE it replaces), a FULLY_CONNECTED with shuffled weights, a
STRIDED_SLICE with an ellipsis or new-axis mask (the converter resolves both), and a
CONCATENATION with a fused activation (the converter keeps the RELU separate).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema

from edgeopt.edgetpu import analyse
from edgeopt.edgetpu.rules import LIMITATION, MAPPED, RULES
from edgeopt.tflite.reader import read_tflite
from edgetpu.tflite_models import opcode_index, rewrite, run_once, tflite

IMAGE = (1, 8, 8, 3)
BATCH_OF_ROWS = (2, 8, 3)  # 3-D, so the batch dimension is among the innermost three


def _constant(shape, seed: int, low=-1.0, high=1.0):
    return tf.constant(np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32))


def _conv(dilations):
    kernel = _constant((3, 3, 3, 4), 1)
    return lambda x: tf.nn.conv2d(x, kernel, 1, "SAME", dilations=dilations)


def _depthwise(dilations):
    kernel = _constant((3, 3, 3, 1), 2)
    return lambda x: tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "SAME", dilations=dilations)


def _dense(x):
    return x @ _constant((3, 5), 3)


def _prelu(shared_axes):
    layer = tf.keras.layers.PReLU(shared_axes=shared_axes, alpha_initializer=tf.keras.initializers.Constant(0.2))
    layer.build(IMAGE)
    return layer


# (id, function, input shape, op checked, status, what its reason says)
CASES = [
    # fused activation (AVERAGE_POOL_2D, MAX_POOL_2D)
    ("maxpool-relu", lambda x: tf.nn.relu(tf.nn.max_pool2d(x, 2, 2, "VALID")), IMAGE, "MAX_POOL_2D", LIMITATION,
     "MAX_POOL_2D with a fused activation"),
    ("maxpool", lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID"), IMAGE, "MAX_POOL_2D", MAPPED, ""),
    ("avgpool-relu6", lambda x: tf.nn.relu6(tf.nn.avg_pool2d(x, 2, 2, "VALID")), IMAGE, "AVERAGE_POOL_2D", LIMITATION,
     "AVERAGE_POOL_2D with a fused activation"),
    ("avgpool", lambda x: tf.nn.avg_pool2d(x, 2, 2, "VALID"), IMAGE, "AVERAGE_POOL_2D", MAPPED, ""),
    # dilation (CONV_2D, DEPTHWISE_CONV_2D)
    ("conv-dilation-2x1", _conv([2, 1]), IMAGE, "CONV_2D", LIMITATION, "dilation 2x1: the Edge TPU needs the same"),
    ("conv-dilation-2x2", _conv(2), IMAGE, "CONV_2D", MAPPED, ""),
    ("depthwise-dilation-1x2", _depthwise([1, 2]), IMAGE, "DEPTHWISE_CONV_2D", LIMITATION, "dilation 1x2"),
    ("depthwise-dilation-2x2", _depthwise([2, 2]), IMAGE, "DEPTHWISE_CONV_2D", MAPPED, ""),
    # reductions over the batch dimension (REDUCE_MAX, REDUCE_MIN, MEAN)
    ("reduce-max-batch", lambda x: tf.reduce_max(x, axis=0), BATCH_OF_ROWS, "REDUCE_MAX", LIMITATION,
     "REDUCE_MAX over the batch dimension"),
    ("reduce-max-rows", lambda x: tf.reduce_max(x, axis=1), BATCH_OF_ROWS, "REDUCE_MAX", MAPPED, ""),
    ("reduce-min-batch", lambda x: tf.reduce_min(x, axis=-3), BATCH_OF_ROWS, "REDUCE_MIN", LIMITATION,
     "REDUCE_MIN over the batch dimension"),
    ("reduce-min-rows", lambda x: tf.reduce_min(x, axis=1), BATCH_OF_ROWS, "REDUCE_MIN", MAPPED, ""),
    ("mean-batch", lambda x: tf.reduce_mean(x, axis=0), BATCH_OF_ROWS, "MEAN", LIMITATION,
     "MEAN over the batch dimension"),
    ("mean-rows", lambda x: tf.reduce_mean(x, axis=1), BATCH_OF_ROWS, "MEAN", MAPPED, ""),
    # PAD
    ("pad-batch", lambda x: tf.pad(x, [[1, 0], [0, 0], [0, 0]]), BATCH_OF_ROWS, "PAD", LIMITATION,
     "PAD of the batch dimension"),
    ("pad-rows", lambda x: tf.pad(x, [[0, 0], [1, 1], [0, 0]]), BATCH_OF_ROWS, "PAD", MAPPED, ""),
    # PACK
    ("pack-axis-0", lambda x: tf.stack([x, 2 * x], axis=0), (8, 3), "PACK", LIMITATION,
     "PACK along the batch dimension"),
    ("pack-axis-1", lambda x: tf.stack([x, 2 * x], axis=1), (8, 3), "PACK", MAPPED, ""),
    # CONCATENATION: a constant input allows only 2 inputs
    ("concat-constant-of-3", lambda x: tf.concat([x, tf.zeros((1, 8, 8, 1)), 2 * x], -1), IMAGE, "CONCATENATION",
     LIMITATION, "CONCATENATION of a constant with more than 2 inputs"),
    ("concat-constant-of-2", lambda x: tf.concat([x, tf.zeros((1, 8, 8, 1))], -1), IMAGE, "CONCATENATION", MAPPED, ""),
    ("concat-3-activations", lambda x: tf.concat([x, 2 * x, 3 * x], -1), IMAGE, "CONCATENATION", MAPPED, ""),
    # FULLY_CONNECTED: 1-D output
    ("fc-batch-2", _dense, (2, 3), "FULLY_CONNECTED", LIMITATION,
     "FULLY_CONNECTED output [2, 5]: the Edge TPU needs a 1-D output"),
    ("fc-batch-1", _dense, (1, 3), "FULLY_CONNECTED", MAPPED, ""),
    # PRELU: 1-D alpha
    ("prelu-alpha-8x8x3", _prelu(None), IMAGE, "PRELU", LIMITATION, "PRELU alpha of shape [8, 8, 3]"),
    ("prelu-shared-axes", _prelu([1, 2]), IMAGE, "PRELU", MAPPED, ""),
    # RESIZE_*: 3-D (batch 1)
    ("resize-bilinear-batch-2", lambda x: tf.image.resize(x, (16, 16)), (2, 8, 8, 3), "RESIZE_BILINEAR", LIMITATION,
     "RESIZE_BILINEAR of a batch of 2"),
    ("resize-bilinear", lambda x: tf.image.resize(x, (16, 16)), IMAGE, "RESIZE_BILINEAR", MAPPED, ""),
    ("resize-nearest-batch-2", lambda x: tf.image.resize(x, (16, 16), "nearest"), (2, 8, 8, 3),
     "RESIZE_NEAREST_NEIGHBOR", LIMITATION, "RESIZE_NEAREST_NEIGHBOR of a batch of 2"),
    ("resize-nearest", lambda x: tf.image.resize(x, (16, 16), "nearest"), IMAGE, "RESIZE_NEAREST_NEIGHBOR",
     MAPPED, ""),
    # STRIDED_SLICE: strides of 1
    ("strided-slice-stride-2", lambda x: x[:, ::2], IMAGE, "STRIDED_SLICE", LIMITATION,
     "STRIDED_SLICE with strides [1, 2, 1, 1]"),
    ("strided-slice-stride-1", lambda x: x[:, 1:5, :, 1:], IMAGE, "STRIDED_SLICE", MAPPED, ""),
    # SOFTMAX: 1-D input
    ("softmax-2d", lambda x: tf.nn.softmax(x), (1, 4, 8), "SOFTMAX", LIMITATION, "SOFTMAX of shape [1, 4, 8]"),
    ("softmax-1d", lambda x: tf.nn.softmax(x), (1, 10), "SOFTMAX", MAPPED, ""),
]


def verdict_of(data: bytes, opcode: str):
    report = analyse(read_tflite(data))
    assert report.compiles, report.errors
    ops = [op for op in report.ops if op.opcode == opcode]
    assert len(ops) == 1, [op.opcode for op in report.ops]
    return report, ops[0]


@pytest.mark.parametrize("fn, shape, opcode, status, reason", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_rule(fn, shape, opcode, status, reason):
    report, op = verdict_of(tflite(fn, shape=shape), opcode)
    assert op.status == status
    if status == MAPPED:
        assert op.reason == "" and report.mapped == len(report.ops)
    else:
        assert reason in op.reason, op.reason
        assert op.parameter_bytes == 0  # a CPU op brings nothing to the on-chip cache


def _as_squeeze(data: bytes, axis: int) -> bytes:
    """The converter's RESHAPE (of a tf.squeeze) rewritten into the SQUEEZE it stands for."""
    def edit(model):
        op = next(op for op in model.subgraphs[0].operators
                  if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.RESHAPE)
        op.opcodeIndex = opcode_index(model, schema.BuiltinOperator.SQUEEZE)
        op.inputs = op.inputs[:1]
        op.builtinOptionsType = schema.BuiltinOptions.SqueezeOptions
        op.builtinOptions = schema.SqueezeOptionsT()
        op.builtinOptions.squeezeDims = [axis]

    return rewrite(data, edit)


@pytest.mark.parametrize("shape, axis, status", [((1, 8, 1, 3), 2, LIMITATION), ((1, 1, 8, 3), 1, MAPPED)],
                         ids=["squeeze-inner-1", "squeeze-leading-1"])
def test_squeeze_only_of_leading_ones(shape, axis, status):
    reshape = tflite(lambda x: tf.squeeze(x, axis), shape=shape)
    squeeze = _as_squeeze(reshape, axis)
    x = np.random.default_rng(4).integers(-128, 128, shape, dtype=np.int8)
    assert np.array_equal(run_once(squeeze, x), run_once(reshape, x))  # a model LiteRT runs, as the converter's
    _, op = verdict_of(squeeze, "SQUEEZE")
    assert op.status == status
    assert op.reason == ("SQUEEZE of a dimension that is not a leading 1" if status == LIMITATION else "")


@pytest.mark.parametrize("fn, shape, options, field, value, reason", [
    (_dense, (1, 3), schema.FullyConnectedOptionsT, "weightsFormat",
     schema.FullyConnectedOptionsWeightsFormat.SHUFFLED4x16INT8, "default weights format only"),
    (lambda x: x[:, 1:5, :, 1:], IMAGE, schema.StridedSliceOptionsT, "ellipsisMask", 1, "an ellipsis or new-axis mask"),
    (lambda x: x[:, 1:5, :, 1:], IMAGE, schema.StridedSliceOptionsT, "newAxisMask", 1, "an ellipsis or new-axis mask"),
    (lambda x: tf.concat([x, 2 * x], -1), IMAGE, schema.ConcatenationOptionsT, "fusedActivationFunction",
     schema.ActivationFunctionType.RELU, "CONCATENATION with a fused activation"),
], ids=["fc-shuffled-weights", "strided-slice-ellipsis", "strided-slice-new-axis", "concat-fused-relu"])
def test_options_todays_converter_does_not_write(fn, shape, options, field, value, reason):
    """The converter's model, mapped, then with one option of the op set as older tools wrote it."""
    data = tflite(fn, shape=shape)
    opcode = {schema.FullyConnectedOptionsT: "FULLY_CONNECTED", schema.StridedSliceOptionsT: "STRIDED_SLICE",
              schema.ConcatenationOptionsT: "CONCATENATION"}[options]
    assert verdict_of(data, opcode)[1].status == MAPPED

    def edit(model):
        op = next(op for op in model.subgraphs[0].operators if isinstance(op.builtinOptions, options))
        setattr(op.builtinOptions, field, value)

    _, op = verdict_of(rewrite(data, edit), opcode)
    assert op.status == LIMITATION and reason in op.reason, op.reason


def test_every_rule_with_a_check_is_broken_here_or_in_test_analyse():
    broken = {case[3] for case in CASES if case[4] == LIMITATION} | {"SQUEEZE"}
    in_test_analyse = {"QUANTIZE", "TRANSPOSE"}  # float I/O; the NCHW transpose
    assert {op for op, rule in RULES.items() if rule.check} == broken | in_test_analyse
