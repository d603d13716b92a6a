"""Axis permutations between an ONNX tensor and the TF tensor that holds it.

A lowered value is stored as `tf = np.transpose(onnx, perm)`: TF axis j holds ONNX axis
perm[j]. 4-D activations use NHWC = (0, 2, 3, 1); everything else starts as identity.
"""

from __future__ import annotations

import numpy as np

Perm = tuple[int, ...]
NHWC: Perm = (0, 2, 3, 1)


def identity(rank: int) -> Perm:
    return tuple(range(rank))


def relative(have: Perm, want: Perm) -> Perm:
    """The tf.transpose perm turning a tensor stored in `have` into one stored in `want`."""
    return tuple(have.index(axis) for axis in want)


def after_transpose(have: Perm, onnx_perm: Perm) -> Perm:
    """Layout of `Transpose(x, onnx_perm)` that keeps the TF tensor of x (x stored in `have`)."""
    return tuple(onnx_perm.index(axis) for axis in have)


def before_transpose(wanted_after: Perm, onnx_perm: Perm) -> Perm:
    """Layout of x such that `Transpose(x, onnx_perm)` is stored in `wanted_after` for free."""
    return tuple(onnx_perm[axis] for axis in wanted_after)


def tf_axis(perm: Perm, onnx_axis: int) -> int:
    return perm.index(onnx_axis % len(perm))


def onnx_shape(perm: Perm, tf_shape) -> tuple[int, ...]:
    shape = [0] * len(perm)
    for j, axis in enumerate(perm):
        shape[axis] = int(tf_shape[j])
    return tuple(shape)


def without_axes(perm: Perm, removed) -> Perm:
    """Layout after dropping ONNX axes `removed` (Squeeze, Reduce* without keepdims)."""
    kept = sorted(set(perm) - set(removed))
    return tuple(kept.index(axis) for axis in perm if axis in kept)


def broadcast_const(array: np.ndarray, rank: int, perm: Perm) -> np.ndarray:
    """A constant operand, broadcast ONNX-style to `rank` dims and stored in `perm`."""
    array = np.asarray(array)
    array = array.reshape((1,) * (rank - array.ndim) + array.shape)
    return np.transpose(array, perm)
