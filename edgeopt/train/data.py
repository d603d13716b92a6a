"""Training batches: random minibatches of the training samples, light image augmentation.

Images are the 4-D float inputs the lowering stores NHWC; augmentation flips them left-right
and crops a random box of at least MIN_AREA of the image, resized back (Inception-style
crop-resize, milder: the model is already trained). Each batch is made when asked for, so
memory holds one batch besides the samples.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from edgeopt.data import Dataset

MIN_AREA = 0.64  # a crop keeps at least this share of the image
ASPECT = (3 / 4, 4 / 3)


def _crop_resize(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One CHW image: a random box (area, aspect) cut out and resized back to the full size."""
    _, height, width = image.shape
    area = rng.uniform(MIN_AREA, 1.0) * height * width
    aspect = np.exp(rng.uniform(*np.log(ASPECT)))
    h = int(min(height, round(np.sqrt(area / aspect))))
    w = int(min(width, round(np.sqrt(area * aspect))))
    top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
    box = np.transpose(image[:, top:top + h, left:left + w], (1, 2, 0))
    resized = tf.image.resize(box[None], (height, width), method="bilinear")[0].numpy()
    return np.transpose(resized, (2, 0, 1)).astype(image.dtype)


def _augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty_like(batch)
    for i, image in enumerate(batch):
        image = _crop_resize(image, rng)
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
            feed = {name: array[index] for name, array in data.inputs.items()}
            if augment:
                feed = {name: _augment(x, rng) if name in images else x for name, x in feed.items()}
            yield feed, None if data.labels is None else data.labels[index]
