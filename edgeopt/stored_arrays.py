"""Arrays left on disk: a `.npy` file, a member `np.savez` stored uncompressed in a `.npz`, or
a folder of images, read a few samples at a time when asked for. A training set larger than memory then costs a
batch, not its size; memory-mapping would not do, since every page a run touches stays in its
resident memory. `np.savez_compressed` members (and Fortran-order or pickled arrays) cannot be
read in pieces and are loaded whole.
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


class StoredArray:
    """Samples along axis 0 of a C-order array at `offset` in `path`; indexing (a slice or an
    array of sample indices) reads those samples, converted to `dtype`."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], stored: np.dtype, dtype: np.dtype | None = None):
        self.path, self.offset, self.shape, self.stored = path, offset, shape, np.dtype(stored)
        self.dtype = np.dtype(dtype or stored)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def astype(self, dtype, copy: bool = False) -> "StoredArray":
        """The same samples, converted to `dtype` as they are read."""
        return StoredArray(self.path, self.offset, self.shape, self.stored, dtype)

    def __getitem__(self, index) -> np.ndarray:
        rows = np.arange(len(self))[index]
        if np.ndim(rows) == 0:
            return self[rows[None]][0]
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
        return out.astype(self.dtype, copy=False)


class ImageFiles:
    """Images in files as samples along axis 0, decoded (by `decode`: path -> sample) when indexed."""

    def __init__(self, files: list[Path], sample_shape: tuple[int, ...], decode: Callable[[Path], np.ndarray],
                 dtype=np.float32):
        self.files, self.decode = files, decode
        self.shape, self.dtype = (len(files), *sample_shape), np.dtype(dtype)

    ndim, size, __len__ = StoredArray.ndim, StoredArray.size, StoredArray.__len__

    def astype(self, dtype, copy: bool = False) -> "ImageFiles":
        return ImageFiles(self.files, self.shape[1:], self.decode, dtype)

    def __getitem__(self, index) -> np.ndarray:
        rows = np.arange(len(self))[index]
        if np.ndim(rows) == 0:
            return self[rows[None]][0]
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
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
