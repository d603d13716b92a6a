"""The Edge TPU analyser on int8 .tflite models built here with TensorFlow's own converter, each
made to break one rule, and on a model whose op version compiler 16 cannot parse."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from edgeopt.edgetpu import analyse, parse_log, render, summary
from edgeopt.edgetpu.rules import AFTER_PARTITION, DATA_TYPE, LIMITATION, MAPPED, NOT_SUPPORTED
from edgeopt.tflite.reader import read_tflite
from edgetpu.tflite_models import set_version, tflite

KERNEL = tf.constant(np.random.default_rng(0).standard_normal((3, 3, 3, 12)).astype(np.float32))
DENSE = tf.constant(np.random.default_rng(1).standard_normal((768, 10)).astype(np.float32))


def conv(x):
    return tf.nn.relu(tf.nn.conv2d(x, KERNEL, 1, "SAME"))


def statuses(report) -> list[tuple[str, str]]:
    return [(op.opcode, op.status) for op in report.ops]


def test_a_conv_net_maps_entirely_and_caches_its_parameters_on_chip():
    report = analyse(read_tflite(tflite(lambda x: tf.reshape(conv(x), (1, 768)) @ DENSE)))
    assert report.compiles and report.mapped == len(report.ops) and report.partition is None
    assert report.on_chip_bytes == 3 * 3 * 3 * 12 + 12 * 4 + 2 * 4 + 768 * 10  # conv, bias, reshape shape, matmul
    assert report.off_chip_bytes == 0


def test_a_transpose_in_the_middle_cuts_the_graph_there():
    report = analyse(read_tflite(tflite(lambda x: tf.reshape(tf.transpose(conv(x), (0, 3, 1, 2)), (1, 768)) @ DENSE)))
    ops = statuses(report)
    assert ops[0] == ("CONV_2D", MAPPED)
    cut = [op.opcode for op in report.ops].index("TRANSPOSE")
    assert ops[cut] == ("TRANSPOSE", LIMITATION) and report.partition == cut
    assert all(status == AFTER_PARTITION for _, status in ops[cut + 1:]) and len(ops) > cut + 1
    assert "google-coral/edgetpu#433" in report.ops[cut].reason


def test_an_unsupported_op_is_named_and_ends_the_edge_tpu_part():
    report = analyse(read_tflite(tflite(lambda x: conv(tf.gather(conv(x), [2, 0, 1], axis=3)))))
    assert statuses(report) == [("CONV_2D", MAPPED), ("GATHER", NOT_SUPPORTED), ("CONV_2D", AFTER_PARTITION)]
    assert report.partition == 1 and "GATHER has no Edge TPU kernel" in report.ops[1].reason


def test_a_5d_tensor_breaks_the_innermost_three_dimensions_rule():
    offset = tf.constant(np.random.default_rng(2).standard_normal((2, 4, 8, 4, 3)).astype(np.float32))
    report = analyse(read_tflite(tflite(lambda x: tf.reshape(tf.reshape(conv(x), (2, 4, 8, 4, 3)) + offset, (1, 8, 8, 12)))))
    reshape = next(op for op in report.ops if op.opcode == "RESHAPE")
    assert reshape.status == LIMITATION and "[2, 4, 8, 4, 3]" in reshape.reason
    assert report.partition == reshape.index and report.ops[-1].status in (LIMITATION, AFTER_PARTITION)


def test_float_io_leaves_the_edge_quantize_ops_on_the_cpu_without_cutting_the_middle():
    report = analyse(read_tflite(tflite(conv, io=tf.float32)))
    assert statuses(report) == [("QUANTIZE", LIMITATION), ("CONV_2D", MAPPED), ("DEQUANTIZE", DATA_TYPE)]
    assert "FLOAT32" in report.ops[0].reason and "--io-dtype" in report.ops[0].reason


def test_a_float_model_is_not_quantized():
    report = analyse(read_tflite(tflite(conv, quant="float32")))
    assert not report.compiles and "Model not quantized" in report.errors
    assert parse_log(render(report, "m.tflite")).summary()["errors"][:1] == ["Model not quantized"]


def test_a_dynamic_batch_fails_the_compile_and_names_the_tensor():
    report = analyse(read_tflite(tflite(conv, batch=None)))
    assert not report.compiles
    assert "dynamic-sized tensors" in report.errors[0] and "[-1, 8, 8, 3]" in report.errors[1]


def test_an_op_version_newer_than_compiler_16_fails_the_parse():
    # version 6: what TF >= 2.9 writes for some convs (google-coral/edgetpu#631); every entry: test_versions.py
    report = analyse(read_tflite(set_version(tflite(conv), "CONV_2D", 6)))
    assert report.errors[:2] == ["Didn't find op for builtin opcode 'CONV_2D' version '6'", "Model could not be parsed"]


def test_mean_over_channels_needs_a_multiple_of_4():
    kernel = tf.constant(np.random.default_rng(3).standard_normal((1, 1, 3, 6)).astype(np.float32))
    report = analyse(read_tflite(tflite(lambda x: tf.reduce_mean(tf.nn.conv2d(x, kernel, 1, "SAME"), axis=3))))
    mean = next(op for op in report.ops if op.opcode == "MEAN")
    assert mean.status == LIMITATION and "size 6" in mean.reason


@pytest.mark.parametrize("cache", [4096, 7680])
def test_parameters_beyond_the_cache_are_streamed_whole_layers_at_a_time(cache):
    report = analyse(read_tflite(tflite(lambda x: tf.reshape(conv(x), (1, 768)) @ DENSE)), cache_bytes=cache)
    total = sum(op.parameter_bytes for op in report.ops)
    assert report.on_chip_bytes <= cache and report.off_chip_bytes == total - report.on_chip_bytes
    assert report.off_chip_bytes >= 768 * 10  # the FC's weights do not fit
    assert summary(report)["on_chip_remaining_bytes"] == cache - report.on_chip_bytes


def test_the_rendered_log_reads_back_as_the_same_prediction():
    report = analyse(read_tflite(tflite(lambda x: conv(tf.gather(conv(x), [2, 0, 1], axis=3)))))
    text = render(report, "m.tflite")
    theirs, ours = parse_log(text).summary(), summary(report)
    for key in ("compiles", "total_ops", "edgetpu_ops", "cpu_ops", "subgraphs", "operators"):
        assert theirs[key] == ours[key], key
    assert "the Edge TPU subgraph ends at op #1 GATHER" in text
