"""OBS mask selection (edgeopt/compress/_obs.py): it zeroes the weight whose loss the others
can make up for, not the smallest one, keeps each row's share exact and never zeroes the
frozen (bias) columns."""

from __future__ import annotations

import numpy as np

from edgeopt.compress._obs import obs_prune


def test_a_repeated_input_is_the_one_zeroed_and_its_twin_takes_its_weight():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 500))
    x = np.stack([a, a, b, c], 1)  # inputs 0 and 1 are the same
    weight = np.array([[1.0, 1.0, 0.8, 0.9]])
    pruned = obs_prune(weight, x.T @ x, 0.25, damping=1e-9)
    assert sorted(pruned[0, :2].round(6).tolist()) == [0.0, 2.0]  # magnitude would zero the 0.8
    np.testing.assert_allclose(pruned[0, 2:], [0.8, 0.9], atol=1e-6)
    np.testing.assert_allclose(x @ pruned[0], x @ weight[0], atol=1e-5)


def test_each_row_loses_its_share_of_every_block_and_the_bias_column_none():
    rng = np.random.default_rng(1)
    correlated = rng.normal(size=(4000, 300)) @ rng.normal(size=(300, 300))  # as a layer's inputs are
    x = np.concatenate([correlated, np.ones((4000, 1))], 1)
    weight = rng.normal(size=(6, 301))
    h = x.T @ x
    pruned = obs_prune(weight, h, 0.5, damping=1e-2 * np.mean(np.diag(h)), frozen=1)
    assert ((pruned[:, :300] == 0).sum(1) == [150] * 6).all()  # blocks of 128, 128, 44: 64 + 64 + 22
    assert (pruned[:, 300] != 0).all()
    error = np.sum((x @ (pruned - weight).T) ** 2)
    magnitude = np.where(np.abs(weight) >= np.median(np.abs(weight[:, :300]), 1, keepdims=True), weight, 0)
    magnitude[:, 300] = weight[:, 300]
    assert error < 0.8 * np.sum((x @ (magnitude - weight).T) ** 2)
