"""Training batches: seeded, every sample once per epoch, images flipped and shifted but
kept in shape and in values, other inputs untouched."""

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
    for augmented, label in zip(feed["image"], labels):  # moved by whole pixels: no value resampled
        assert set(np.unique(augmented)) <= set(np.unique(data.inputs["image"][label]))


def test_a_shift_moves_whole_pixels_and_reflects_the_border():
    from edgeopt.train.data import _shift

    image = np.arange(2 * 16 * 16, dtype=np.float32).reshape(2, 16, 16)
    shifts = set()
    for seed in range(20):
        moved = _shift(image, np.random.default_rng(seed))
        dy, dx = np.argwhere(moved[0] == image[0, 8, 8])[0] - 8  # where the centre pixel went
        shifts.add((int(dy), int(dx)))
        np.testing.assert_array_equal(moved[:, max(dy, 0):16 + min(dy, 0), max(dx, 0):16 + min(dx, 0)],
                                      image[:, max(-dy, 0):16 - max(dy, 0), max(-dx, 0):16 - max(dx, 0)])
    assert len(shifts) > 5 and max(abs(d) for s in shifts for d in s) <= 2  # up to 1/8 of the side
