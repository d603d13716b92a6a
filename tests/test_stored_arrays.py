"""Arrays left on disk read the same samples numpy would, in any order, converted on the way;
what cannot be read in pieces is loaded whole; a truncated file is a DataError naming it."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.data import load_data, split
from edgeopt.errors import DataError
from edgeopt.ir import TensorSpec
from edgeopt.stored_arrays import StoredArray, open_npy, open_npz

SAMPLES = np.random.default_rng(0).standard_normal((10, 3, 4, 4))


@pytest.mark.parametrize("index", [slice(2, 6), np.array([7, 1, 2, 3, 9, 0]), np.array([], int), 4])
def test_npy_reads_the_samples_asked_for(tmp_path, index):
    np.save(tmp_path / "x.npy", SAMPLES)
    stored = open_npy(tmp_path / "x.npy")
    assert isinstance(stored, StoredArray) and stored.shape == SAMPLES.shape
    np.testing.assert_array_equal(stored[index], SAMPLES[index])
    converted = stored.astype(np.float32)[index]
    assert converted.dtype == np.float32
    np.testing.assert_array_equal(converted, SAMPLES[index].astype(np.float32))


def test_uncompressed_npz_members_stay_on_disk_and_compressed_ones_load(tmp_path):
    labels = np.arange(10)
    np.savez(tmp_path / "plain.npz", image=SAMPLES, y=labels)
    np.savez_compressed(tmp_path / "packed.npz", image=SAMPLES)
    plain, packed = open_npz(tmp_path / "plain.npz"), open_npz(tmp_path / "packed.npz")
    assert isinstance(plain["image"], StoredArray) and isinstance(packed["image"], np.ndarray)
    np.testing.assert_array_equal(plain["image"][::-1], SAMPLES[::-1])
    np.testing.assert_array_equal(plain["y"][:], labels)
    np.testing.assert_array_equal(packed["image"], SAMPLES)


def test_fortran_order_loads_whole(tmp_path):
    np.save(tmp_path / "f.npy", np.asfortranarray(SAMPLES))
    loaded = open_npy(tmp_path / "f.npy")
    assert isinstance(loaded, np.ndarray)
    np.testing.assert_array_equal(loaded, SAMPLES)


def test_a_split_of_stored_data_reads_its_own_samples(tmp_path):
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1).repeat(3, 1)
    np.savez(tmp_path / "d.npz", image=x, y=np.arange(10))
    data = load_data(str(tmp_path / "d.npz"), [TensorSpec("image", "float32", (1, 3, 1, 1))])
    assert isinstance(data.inputs["image"], StoredArray)
    calib, held_out = split(data)
    for part in (calib, held_out):
        read = np.concatenate([feed["image"] for feed in part.batches(1)])
        np.testing.assert_array_equal(read[:, 0, 0, 0], part.labels)  # sample i holds the value i
    inner = held_out.subset(np.array([1]), "one")
    assert inner.take(slice(None))["image"][0, 0, 0, 0] == held_out.labels[1]


def test_truncated_file_is_a_data_error_naming_it(tmp_path):
    np.save(tmp_path / "x.npy", SAMPLES)
    (tmp_path / "x.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:-100])
    with pytest.raises(DataError, match=r"x\.npy: ends before sample 9 of 10"):
        load_data(str(tmp_path / "x.npy"), [TensorSpec("image", "float64", (1, 3, 4, 4))])


def test_an_index_past_the_end_is_an_index_error_like_numpys(tmp_path):
    np.save(tmp_path / "x.npy", SAMPLES)
    stored = open_npy(tmp_path / "x.npy")
    np.testing.assert_array_equal(stored[np.array([-1])], SAMPLES[[-1]])
    with pytest.raises(IndexError):
        stored[np.array([10])]
