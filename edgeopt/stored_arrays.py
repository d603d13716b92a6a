"""Arrays left on disk: a `.npy` file, a member `np.savez` stored uncompressed in a `.npz`, or
a folder of images, read a few samples at a time when asked for. A training set larger than
memory then costs a batch, not its size; memory-mapping would not do, since every page a run
touches stays in its resident memory. `np.savez_compressed` members (and Fortran-order or
pickled arrays) cannot be read in pieces and are loaded whole.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeopt.errors import DataError

HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
ZIP_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then the name and extra-field lengths at bytes 26-29


class _Samples:
    """Samples along axis 0, read when indexed (a slice, a sample, or an array of samples) and
    converted to `dtype`; a subclass reads an array of sample indices, in any order."""

    def __init__(self, shape: tuple[int, ...], dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, slice):
            return self._read(np.arange(*index.indices(len(self)))).astype(self.dtype, copy=False)
        if np.ndim(index) == 0:
            return self[np.array([index])][0]
        rows = np.asarray(index, np.int64)
        rows = np.where(rows < 0, rows + len(self), rows)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"sample index out of range for {len(self)} samples")
        return self._read(rows).astype(self.dtype, copy=False)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class StoredArray(_Samples):
    """A C-order array of dtype `stored` at `offset` in `path`."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], stored: np.dtype, dtype: np.dtype | None = None):
        super().__init__(shape, dtype or stored)
        self.path, self.offset, self.stored = path, offset, np.dtype(stored)

    def astype(self, dtype, copy: bool = False) -> "StoredArray":
        """The same samples, converted to `dtype` as they are read."""
        return StoredArray(self.path, self.offset, self.shape, self.stored, dtype)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        per_row = self.stored.itemsize * int(np.prod(self.shape[1:]))
        out = np.empty((len(rows), *self.shape[1:]), self.stored)
        runs = np.split(np.arange(len(rows)), np.flatnonzero(np.diff(rows) != 1) + 1)  # consecutive samples: one read
        with open(self.path, "rb") as file:
            for run in runs if len(rows) else []:
                file.seek(self.offset + int(rows[run[0]]) * per_row)
                data = file.read(per_row * len(run))
                if len(data) != per_row * len(run):
                    raise DataError(f"{self.path}: ends before sample {int(rows[run[-1]])} of {len(self)} (truncated?)")
                out[run[0]:run[-1] + 1] = np.frombuffer(data, self.stored).reshape(len(run), *self.shape[1:])
        return out


class ImageFiles(_Samples):
    """Images in files, each decoded (by `decode`: path -> one sample) when read."""

    def __init__(self, files: list[Path], sample_shape: tuple[int, ...], decode: Callable[[Path], np.ndarray],
                 dtype=np.float32):
        super().__init__((len(files), *sample_shape), dtype)
        self.files, self.decode = files, decode

    def astype(self, dtype, copy: bool = False) -> "ImageFiles":
        return ImageFiles(self.files, self.shape[1:], self.decode, dtype)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.shape[1:]), np.float32)
        for i, row in enumerate(rows):
            out[i] = self.decode(self.files[row])
        return out


def _header(file, path: Path, offset: int) -> StoredArray | None:
    """The array whose `.npy` header `file` is at; None when it cannot be read in pieces."""
    version = np.lib.format.read_magic(file)
    reader = HEADER_READERS.get(version)
    if reader is None:
        return None
    shape, fortran_order, dtype = reader(file)
    if fortran_order or dtype.hasobject or not shape:
        return None
    return StoredArray(path, offset + file.tell(), shape, dtype)


def open_npy(path: Path) -> StoredArray | np.ndarray:
    with open(path, "rb") as file:
        stored = _header(file, path, 0)
    return stored if stored is not None else np.load(path, allow_pickle=False)


def open_npz(path: Path) -> dict[str, StoredArray | np.ndarray]:
    """Each member by its name: uncompressed members left on disk, the others loaded."""
    arrays = {}
    with zipfile.ZipFile(path) as archive, np.load(path, allow_pickle=False) as loaded, open(path, "rb") as raw:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            stored = None
            if info.compress_type == zipfile.ZIP_STORED:
                raw.seek(info.header_offset)
                signature, name_length, extra_length = ZIP_LOCAL_HEADER.unpack(raw.read(ZIP_LOCAL_HEADER.size))
                if signature == b"PK\x03\x04":
                    with archive.open(info) as member:
                        stored = _header(member, path, info.header_offset + ZIP_LOCAL_HEADER.size + name_length + extra_length)
            arrays[name] = stored if stored is not None else loaded[name]
    return arrays
