"""Training batches: seeded, every sample once per epoch, images flipped and cropped but
kept in shape, other inputs untouched."""

import numpy as np

from edgeopt.data import Dataset
from edgeopt.train.data import batches


def dataset():
    images = np.arange(6 * 3 * 8 * 8, dtype=np.float32).reshape(6, 3, 8, 8)
    return Dataset({"image": images, "ids": np.arange(6)[:, None]}, np.arange(6), "test")


def test_an_epoch_visits_every_sample_once_in_a_seeded_order():
    first = [labels.tolist() for _, (_, labels) in zip(range(3), batches(dataset(), 2, 7, set(), False))]
    again = [labels.tolist() for _, (_, labels) in zip(range(3), batches(dataset(), 2, 7, set(), False))]
    assert first == again and sorted(sum(first, [])) == list(range(6))


def test_augmentation_changes_images_only_and_keeps_their_shape():
    data = dataset()
    feed, labels = next(batches(data, 4, 0, {"image"}, True))
    assert feed["image"].shape == (4, 3, 8, 8) and feed["image"].dtype == np.float32
    np.testing.assert_array_equal(feed["ids"][:, 0], labels)  # non-image inputs as stored
    assert not np.array_equal(feed["image"], data.inputs["image"][labels])
    lo, hi = data.inputs["image"].min(), data.inputs["image"].max()
    assert feed["image"].min() >= lo - 1e-3 and feed["image"].max() <= hi + 1e-3  # resampled, not invented
