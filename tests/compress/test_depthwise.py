"""depthwise: a k x k conv as depthwise + pointwise, exact for a separable kernel (strides and
asymmetric pads kept), the best rank-1 start otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.compress.depthwise import separate
from edgeopt.passes import make_pass


def separable(m: int, c: int, k: int, seed: int = 0) -> np.ndarray:
    """W[m, c] = p[m, c] * d[c]: every input channel's slice is rank 1."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, c))[:, :, None, None] * rng.standard_normal((c, k, k))[None]


@pytest.mark.parametrize("attributes", [{}, {"strides": [2, 2], "pads": [1, 0, 2, 1]}, {"dilations": [2, 2]}],
                         ids=["plain", "strided-asymmetric-pads", "dilated"])
def test_a_separable_kernel_is_rewritten_exactly(between_convs, outputs, attributes):
    model = between_convs(separable(16, 8, 3), **attributes)
    x = np.random.default_rng(1).standard_normal((1, 3, 10, 10)).astype(np.float32)
    before = outputs(model, x)
    changes = make_pass("depthwise").apply(model)
    assert len(changes) == 1 and changes[0].startswith("Conv 'layer': depthwise 3x3 on 8 channels + pointwise 8->16")
    convs = [n for n in model.graph if n.op_type == "Conv"]
    assert [n.attributes.get_int("group", 1) for n in convs] == [1, 8, 1, 1]
    np.testing.assert_allclose(outputs(model, x), before, rtol=1e-4, atol=1e-4)


def test_any_kernel_gets_its_best_rank_one_slices():
    weight = np.random.default_rng(0).standard_normal((6, 4, 3, 3))
    depthwise, pointwise = separate(weight)
    rebuilt = pointwise[:, :, 0, 0][:, :, None, None] * depthwise[:, 0][None]
    for c in range(4):  # the error of each slice is what its rank-1 SVD leaves: the other singular values
        s = np.linalg.svd(weight[:, c].reshape(6, 9), compute_uv=False)
        assert np.sum((rebuilt[:, c] - weight[:, c]) ** 2) == pytest.approx(np.sum(s[1:] ** 2), rel=1e-9)


def test_where_macs_would_not_drop_nothing_changes(between_convs):
    model = between_convs(separable(2, 8, 1))  # a 1x1 conv has nothing to separate
    assert make_pass("depthwise").apply(model) == []
