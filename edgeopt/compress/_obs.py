"""Which weights of a layer to zero, chosen by what zeroing them costs the layer's output
(Optimal Brain Surgeon, in SparseGPT's column-by-column form: Frantar & Alistarh, 2023).

A weight's cost is w^2 / [H^-1]_jj over the layer's input statistics H = X'X, not |w|: an
input that is small or that others repeat costs little to lose. Each weight zeroed is paid
for by updating the row's weights not yet visited, so later choices see the row as it has
become. The columns are visited in blocks; each row loses the same share of each block, the
way the pruning pass gives each output channel's scale its own ranking.
"""

from __future__ import annotations

import numpy as np

BLOCK = 128  # columns whose masks are chosen together (SparseGPT's blocksize)


def obs_prune(weight: np.ndarray, h: np.ndarray, sparsity: float, damping: float,
              frozen: int = 0) -> np.ndarray:
    """`weight` [out, in] with `sparsity` of each row's first in - `frozen` columns zeroed (the
    last `frozen` columns, a bias, are never zeroed), the rest updated to make up for it."""
    w = weight.astype(np.float64).copy()
    columns = w.shape[1] - frozen
    inverse = np.linalg.inv(h + damping * np.eye(len(h)))
    upper = np.linalg.cholesky(inverse).T  # H^-1 = U'U: row j of U updates the columns after j
    for start in range(0, w.shape[1], BLOCK):
        stop = min(start + BLOCK, w.shape[1])
        block, u = w[:, start:stop], upper[start:stop]  # block: a view, updated in place
        diagonal = np.diag(u[:, start:stop])
        cost = block ** 2 / diagonal ** 2
        prunable = max(0, min(stop, columns) - start)
        drop = np.zeros_like(block, dtype=bool)
        count = round(sparsity * prunable)
        if count:
            lowest = np.argsort(cost[:, :prunable], axis=1, kind="stable")[:, :count]
            np.put_along_axis(drop, lowest, True, axis=1)
        errors = np.zeros_like(block)
        for j in range(stop - start):
            errors[:, j] = np.where(drop[:, j], block[:, j], 0.0) / diagonal[j]
            block[:, j:] -= np.outer(errors[:, j], u[j, start + j:stop])  # column j itself becomes 0 where dropped
            block[drop[:, j], j] = 0.0
        w[:, stop:] -= errors @ upper[start:stop, stop:]  # the later blocks, at once
    return w
