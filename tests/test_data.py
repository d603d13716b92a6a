from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgeopt.data import Batches, Dataset, Preprocess, load_data, scale_mismatch, split
from edgeopt.errors import DataError, UsageError
from edgeopt.ir import TensorSpec
from edgeopt.stored_arrays import ImageFiles

NCHW = [TensorSpec("image", "float32", (1, 3, 8, 8))]


def save(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return str(path)


def test_npz_by_name_with_labels(tmp_path):
    x = np.random.default_rng(0).random((6, 3, 8, 8)).astype(np.float64)
    data = load_data(save(tmp_path, image=x, y=np.arange(6)), NCHW)
    assert data.size == 6 and data.inputs["image"].dtype == np.float32
    assert data.labels.tolist() == list(range(6))
    assert len(list(data.batches(1))) == 6


def test_batches_read_the_stored_samples_again_on_every_pass(tmp_path):
    x = np.random.default_rng(0).random((7, 3, 8, 8)).astype(np.float32)
    data = load_data(save(tmp_path, image=x), NCHW)
    feeds = Batches(data, 2)
    first, second = list(feeds), list(feeds)
    assert len(feeds) == len(first) == len(second) == 3  # the ragged seventh sample is dropped
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(first, second))
    assert np.array_equal(np.concatenate([f["image"] for f in first]), x[:6])
    assert first[0]["image"] is not second[0]["image"]  # read afresh, not held


def test_single_unnamed_array(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2, 3, 8, 8), np.float32))
    assert load_data(str(path), NCHW).size == 2


def test_layout_mismatch_is_explained(tmp_path):
    with pytest.raises(DataError) as info:
        load_data(save(tmp_path, image=np.zeros((4, 8, 8, 3), np.float32)), NCHW)
    assert info.value.exit_code == 9
    assert "[8, 8, 3]" in info.value.message and "wants [3, 8, 8]" in info.value.message
    assert "NHWC but the model is NCHW" in info.value.hint and "transpose(0, 3, 1, 2)" in info.value.hint


def test_wrong_shape(tmp_path):
    with pytest.raises(DataError, match=r"shape \[3, 4, 4\]"):
        load_data(save(tmp_path, image=np.zeros((4, 3, 4, 4), np.float32)), NCHW)


def test_nan_rejected(tmp_path):
    x = np.zeros((4, 3, 8, 8), np.float32)
    x[1, 0, 0, 0] = np.nan
    x[2, 0, 0, 1] = np.inf
    with pytest.raises(DataError, match="2 NaN/Inf"):
        load_data(save(tmp_path, image=x), NCHW)


def test_integer_data_for_float_input(tmp_path):
    with pytest.raises(DataError, match="uint8 but model input image is float32"):
        load_data(save(tmp_path, image=np.zeros((4, 3, 8, 8), np.uint8)), NCHW)


def test_wrong_names_and_counts(tmp_path):
    two = [TensorSpec("a", "float32", (1, 2)), TensorSpec("b", "float32", (1, 2))]
    with pytest.raises(DataError, match="model's inputs are a, b"):
        load_data(save(tmp_path, a=np.zeros((3, 2), np.float32)), two)
    with pytest.raises(DataError, match="differ in sample count"):
        load_data(save(tmp_path, a=np.zeros((3, 2), np.float32), b=np.zeros((4, 2), np.float32)), two)


def test_missing_and_unreadable(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_data(str(tmp_path / "nope.npz"), NCHW)
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match="not a readable"):
        load_data(str(tmp_path / "bad.npz"), NCHW)


def test_random_is_labelled():
    data = load_data("random", NCHW, samples=5)
    assert data.size == 5 and "NOT representative" in data.source


def test_split_is_seeded_and_disjoint(tmp_path):
    x = np.arange(10, dtype=np.float32).reshape(10, 1).repeat(192, 1).reshape(10, 3, 8, 8)
    data = load_data(save(tmp_path, image=x, y=np.arange(10)), NCHW)
    calib, held_out = split(data)
    assert (calib.size, held_out.size) == (8, 2)
    assert set(calib.labels) | set(held_out.labels) == set(range(10))
    assert split(data)[1].labels.tolist() == held_out.labels.tolist()


def test_image_folder_with_classes(tmp_path):
    for label, value in (("cat", 0), ("dog", 255)):
        (tmp_path / label).mkdir()
        for i in range(2):
            Image.new("RGB", (16, 12), (value, value, value)).save(tmp_path / label / f"{i}.png")
    pre = Preprocess.parse({"scale": "0.00392156862745098", "mean": "0.5", "std": "0.5"})
    data = load_data(str(tmp_path), NCHW, pre)
    assert data.inputs["image"].shape == (4, 3, 8, 8)
    assert data.labels.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(data.inputs["image"][0], -1.0, atol=1e-6)
    np.testing.assert_allclose(data.inputs["image"][3], 1.0, atol=1e-6)


def test_image_folder_is_read_when_asked_and_a_file_that_is_no_image_is_named(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "b.png")
    with pytest.raises(DataError) as info:
        load_data(str(tmp_path), NCHW)
    assert info.value.exit_code == 9 and "a.png: not a readable image" in info.value.message
    (tmp_path / "a.png").unlink()
    data = load_data(str(tmp_path), NCHW)
    assert isinstance(data.inputs["image"], ImageFiles)  # decoded a batch at a time, not held
    np.testing.assert_allclose(next(data.batches(1))["image"][0, :, 0, 0], [1, 0, 0])


def test_preprocess_unknown_key():
    with pytest.raises(UsageError, match="unknown preprocessing key"):
        Preprocess.parse({"colour": "rgb"})


def photos(seed: int, scale: float = 1 / 128, offset: float = 127) -> Dataset:
    """Pixel-like values, normalised (x - offset) * scale."""
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 3, 8, 8)).astype(np.float32)
    return Dataset({"image": (pixels - offset) * scale}, None, f"photos{seed}.npz")


def test_scale_mismatch_names_the_input_and_both_scales():
    """Pixels 0..255, or ImageNet mean/std (spread ~x2), beside (x-127)/128 are flagged; more
    samples of the same convention are not."""
    normalised = photos(0)
    assert scale_mismatch(normalised, photos(1)) == []
    [found] = scale_mismatch(normalised, photos(1, scale=1, offset=0))
    assert found.startswith("image: mean 12") and "in photos1.npz" in found and "0.57" in found and "in photos0.npz" in found
    assert len(scale_mismatch(normalised, photos(1, scale=1 / 255 / 0.226, offset=0.45 * 255))) == 1


def test_scale_mismatch_skips_integer_inputs():
    tokens = Dataset({"ids": np.arange(64).reshape(8, 8)}, None, "a.npz")
    assert scale_mismatch(tokens, Dataset({"ids": 1000 * np.arange(64).reshape(8, 8)}, None, "b.npz")) == []
