"""Training batches: random minibatches of the training samples, light image augmentation.

Images are the 4-D float inputs the lowering stores NHWC; augmentation flips them left-right
and shifts them by whole pixels, the border reflected. It does not crop and resize: a resized
image is smoother than any the model will see, and on EfficientNet-Lite0 distilling on
crop-resized photos cost the int8 model 1.6 dB on unaltered held-out ones (25.5 -> 23.9 dB;
24.3 dB with crops of at least 90% of the area), where flips and shifts kept or gained it.
Each batch is read and made when asked for: samples left on disk (edgeopt.stored_arrays)
cost memory only while they are in a batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from edgeopt.data import Dataset

SHIFT = 0.125  # a shift moves the image by up to this share of its side


def _shift(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One CHW image moved by whole pixels, the uncovered border filled by reflection."""
    _, height, width = image.shape
    my, mx = int(SHIFT * height), int(SHIFT * width)
    dy, dx = rng.integers(-my, my + 1), rng.integers(-mx, mx + 1)
    padded = np.pad(image, ((0, 0), (my, my), (mx, mx)), mode="reflect")
    return padded[:, my + dy:my + dy + height, mx + dx:mx + dx + width]


def _augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty_like(batch)
    for i, image in enumerate(batch):
        image = _shift(image, rng)
        out[i] = image[:, :, ::-1] if rng.random() < 0.5 else image
    return out


def batches(data: Dataset, batch: int, seed: int, images: set[str], augment: bool) -> Iterator[tuple[dict, np.ndarray | None]]:
    """Endless (ONNX-layout feeds, labels or None): each epoch a new permutation of the samples.
    `images` names the inputs to augment (NCHW float images)."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(data.size)
        for start in range(0, max(data.size - batch, 0) + 1, batch):  # fewer samples than a batch: one short batch
            index = order[start:start + batch]
            feed = data.take(index)
            if augment:
                feed = {name: _augment(x, rng) if name in images else x for name, x in feed.items()}
            yield feed, None if data.labels is None else data.labels[index]
