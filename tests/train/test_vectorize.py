"""The trainer batches the per-sample forward pass under tf.vectorized_map: the ops our pfor
converters replace give per sample what the op gives alone."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from edgeopt.train import _vectorize  # noqa: F401  (registers the converters)


def batched_and_alone(fn, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    batched = tf.vectorized_map(lambda s: fn(s[None])[0], tf.constant(x)).numpy()
    return batched, np.concatenate([fn(tf.constant(s[None])).numpy() for s in x])


def test_pad_keeps_its_value_under_vectorized_map():
    """--pixel-input pads with the mean pixel; TensorFlow's own PadV2 converter pads with zeros."""
    x = np.random.default_rng(0).uniform(0, 255, (3, 4, 4, 2)).astype(np.float32)
    batched, alone = batched_and_alone(lambda t: tf.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=127.0), x)
    assert alone[0, 0, 0, 0] == 127.0
    np.testing.assert_array_equal(batched, alone)


def test_fake_quant_batched_gives_what_it_gives_alone():
    x = np.random.default_rng(1).normal(0, 2, (3, 5)).astype(np.float32)
    x[0, 0], x[1, 0] = -10.0, 10.0
    low, high = tf.Variable(-1.5), tf.Variable(2.5)
    fn = lambda t: tf.quantization.fake_quant_with_min_max_vars(t, low, high, num_bits=8)  # noqa: E731
    batched, alone = batched_and_alone(fn, x)
    assert alone.min() > -1.52 and alone.max() < 2.52 and not np.allclose(alone, x, atol=1e-3)  # clipped, rounded
    np.testing.assert_array_equal(batched, alone)
