"""The analyser against real edgetpu_compiler logs, on the models those logs describe, rebuilt
here: the model code is quoted with each log (tests/edgetpu/logs/, '# model:' headers), and an
op's mapping does not depend on its weight values, so untrained weights stand in (seeded, so a
run is the same model every time: each model and its representative data have their own seed).

Today's converter (TF 2.21) is not the reporters' (TF 2.0-2.4): it may add or fold an op
(a Flatten's RESHAPE), so each log's op types and statuses are compared, and counts where the
converters agree.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from edgeopt.edgetpu import analyse, parse_log
from edgeopt.edgetpu.rules import MAPPED
from edgeopt.quiet import captured_output
from edgeopt.tflite.reader import read_tflite
from edgetpu.test_log import fixture

IO = {"float": tf.float32, "int8": tf.int8, "uint8": tf.uint8}


def _convert(model, shape: tuple[int, ...], io: str) -> bytes:
    """Full-int8 conversion as the reporters did it: DEFAULT optimizations, representative
    data, TFLITE_BUILTINS_INT8; float I/O when they set no inference type."""
    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.uniform(0, 255, (1, *shape)).astype(np.float32)] for _ in range(4))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io != "float":
        converter.inference_input_type = converter.inference_output_type = IO[io]
    with captured_output():
        return converter.convert()


def _compare(data: bytes, log_name: str, same_counts: set[str]) -> None:
    """Op types both have get the same statuses; one only a side has (added or folded by a
    converter) must map; counts of `same_counts` op types agree."""
    report = analyse(read_tflite(data))
    log = parse_log(fixture(log_name))
    assert report.compiles and not log.errors
    ours = {(op, status): count for op, count, status in report.rows()}
    theirs = {(op, status): count for op, count, status in log.rows}
    shared = {op for op, _ in ours} & {op for op, _ in theirs}
    assert {k for k in ours if k[0] in shared} == {k for k in theirs if k[0] in shared}
    assert all(status == MAPPED for op, status in set(ours) ^ set(theirs) if op not in shared)
    assert {k: ours[k] for k in theirs if k[0] in same_counts} == {k: v for k, v in theirs.items() if k[0] in same_counts}


def _mnist():
    """TF Model Garden's MNIST model, as quoted (tests/edgetpu/logs/operation_log_mnist_*)."""
    tf.keras.utils.set_random_seed(1)
    layers = tf.keras.layers
    image = layers.Input(batch_shape=(1, 28, 28, 1))
    y = layers.Conv2D(32, 5, padding="same", activation="relu")(image)
    y = layers.MaxPooling2D((2, 2), (2, 2), padding="same")(y)
    y = layers.Conv2D(32, 5, padding="same", activation="relu")(y)
    y = layers.MaxPooling2D((2, 2), (2, 2), padding="same")(y)
    y = layers.Dense(1024, activation="relu")(layers.Flatten()(y))
    return tf.keras.Model(image, layers.Dense(10, activation="softmax")(layers.Dropout(0.4)(y)))


@pytest.mark.parametrize("io", ["float", "int8", "uint8"])
def test_mnist_model_garden_all_three_io_types(io):
    """float I/O: the input QUANTIZE is an 'unspecified limitation' and the output DEQUANTIZE
    an unsupported data type, as compiler 15 logged; integer I/O maps everything."""
    _compare(_convert(_mnist(), (28, 28, 1), io), f"operation_log_mnist_{io}_io_nrf20.txt",
             same_counts={"CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE", "DEQUANTIZE"})


def test_trivial_keras_cnn_uint8():
    tf.keras.utils.set_random_seed(2)
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        layers.Input(batch_shape=(1, 100, 100, 3)),
        layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(8, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(64), layers.Activation("relu"), layers.Dense(10), layers.Activation("softmax")])
    # the reporter's TF 1 converter folded the Flatten away; TF 2.21 emits a RESHAPE (mapped)
    _compare(_convert(model, (100, 100, 3), "uint8"), "keras_trivial_cnn_uint8_io_fsalv.txt",
             same_counts={"CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE"})


def test_keras_mobilenet_v2_with_float_io():
    """The op counts in the log match keras.applications.MobileNetV2 (with its top) exactly;
    they do not depend on the input size, so 96x96 keeps the test quick. TF 2.21 folds the
    five Keras ZeroPadding2D layers into the convolutions: no PAD ops (the log's are mapped)."""
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.applications.MobileNetV2(input_tensor=tf.keras.layers.Input(batch_shape=(1, 96, 96, 3)),
                                              weights=None)
    _compare(_convert(model, (96, 96, 3), "float"), "dequantize_unsupported_data_type_f0cal_20.txt",
             same_counts={"ADD", "CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX",
                          "QUANTIZE", "DEQUANTIZE"})
