"""Calibration and evaluation data: `.npz`/`.npy` arrays or a folder of images, checked
against the model's inputs before any long work starts."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.errors import DataError, UsageError
from edgeopt.ir import TensorSpec
from edgeopt.stored_arrays import ImageFiles, StoredArray, open_npy, open_npz

LABEL_KEYS = ("y", "labels", "label")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
RANDOM = "random"
SPREAD_RATIO = 1.5  # data sets whose standard deviations differ more than this were scaled differently
MEAN_SHIFT = 0.5  # or whose means differ by more than this share of the larger deviation
CHUNK = 64  # samples read at a time to check or measure a whole data set


@dataclass
class Dataset:
    """Samples along axis 0 of every array; `labels` are class indices when known. Arrays may
    stay on disk (edgeopt.stored_arrays): read samples with `take` or `batches`."""

    inputs: dict[str, np.ndarray | StoredArray]
    labels: np.ndarray | None
    source: str
    rows: np.ndarray | None = None  # the samples of `inputs` this set holds (a split); None: all

    @property
    def size(self) -> int:
        return len(self.rows) if self.rows is not None else len(next(iter(self.inputs.values())))

    def take(self, index, names=None) -> dict[str, np.ndarray]:
        """The samples at `index` (a slice or an array of positions in this set) of the inputs
        `names` (default all), read."""
        rows = index if self.rows is None else self.rows[index]
        return {k: np.asarray(self.inputs[k][rows]) for k in names or self.inputs}

    def subset(self, index: np.ndarray, source: str) -> "Dataset":
        """The samples at `index`, without reading them."""
        labels = None if self.labels is None else self.labels[index]
        return Dataset(self.inputs, labels, source, np.arange(self.size)[index] if self.rows is None else self.rows[index])

    def batches(self, batch: int):
        """Feeds of the model's static batch size; a ragged tail is dropped."""
        for start in range(0, self.size - batch + 1, batch):
            yield self.take(slice(start, start + batch))

    def batch_labels(self, batch: int) -> np.ndarray | None:
        if self.labels is None:
            return None
        return self.labels[: self.size - self.size % batch]


@dataclass(frozen=True)
class Batches:
    """The feeds of `data` in batches of `batch`, read afresh on every pass over them: work that
    walks its data more than once (calibration: ranges, then histograms, then the converter)
    holds one batch at a time, not the data set."""

    data: Dataset
    batch: int

    def __iter__(self):
        return self.data.batches(self.batch)

    def __len__(self) -> int:
        return self.data.size // self.batch


@dataclass(frozen=True)
class Preprocess:
    """How images become input tensors; recorded in the manifest for the device side."""

    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    layout: str | None = None  # "nchw" | "nhwc"; None: inferred from the input shape
    resize: str = "bilinear"
    pixel_input: bool = False  # --pixel-input: the model takes pixels 0..255 and normalises them itself

    @classmethod
    def parse(cls, items: dict) -> "Preprocess":
        floats = lambda v: tuple(float(x) for x in (v.split(",") if isinstance(v, str) else v))  # noqa: E731
        parsers = {"scale": float, "mean": floats, "std": floats, "layout": str.lower, "resize": str.lower}
        unknown = sorted(set(items) - set(parsers))
        if unknown:
            raise UsageError(f"unknown preprocessing key(s) {', '.join(unknown)}", hint=f"Known: {', '.join(parsers)}")
        try:
            return cls(**{k: parsers[k](v) for k, v in items.items()})
        except ValueError as exc:
            raise UsageError(f"bad preprocessing value: {exc}") from None

    def to_json(self) -> dict:
        return {"scale": self.scale, "mean": list(self.mean), "std": list(self.std),
                "layout": self.layout, "resize": self.resize, "pixel_input": self.pixel_input}

    def normalise(self, pixels: np.ndarray, layout: str) -> np.ndarray:
        """Pixels 0..255 as the source model takes them."""
        shape = (-1, 1, 1) if layout == "nchw" else (-1,)
        mean, std = (np.asarray(v, np.float32).reshape(shape) for v in (self.mean, self.std))
        return ((pixels * np.float32(self.scale) - mean) / std).astype(np.float32)


def image_layout(spec: TensorSpec, preprocess: Preprocess) -> str:
    if preprocess.layout:
        return preprocess.layout
    return "nchw" if spec.shape[1] in (1, 3) and spec.shape[-1] not in (1, 3) else "nhwc"


def _unreadable(path: Path, exc: Exception) -> DataError:
    return DataError(f"{path}: not a readable image ({exc})", hint="Remove or replace the file.")


def _load_images(folder: Path, spec: TensorSpec, preprocess: Preprocess) -> tuple[ImageFiles, np.ndarray | None]:
    """The folder's images, decoded when read (each file's header is checked now); labels from
    class subfolders."""
    from PIL import Image

    if len(spec.shape) != 4:
        raise DataError(f"{folder}: image folders need a 4-D input, but {spec.name} is {spec.shape_text()}")
    layout = image_layout(spec, preprocess)
    _, c, h, w = spec.shape if layout == "nchw" else (spec.shape[0], spec.shape[3], *spec.shape[1:3])
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    classes = sorted({p.parent for p in files} - {folder})
    labels = np.array([classes.index(p.parent) for p in files]) if classes and all(p.parent != folder for p in files) else None
    resample = Image.Resampling.NEAREST if preprocess.resize == "nearest" else Image.Resampling.BILINEAR

    def decode(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as image:
                image = image.convert("L" if c == 1 else "RGB").resize((w, h), resample)
                x = np.asarray(image, dtype=np.float32).reshape(1, h, w, c)
        except OSError as exc:  # PIL's UnidentifiedImageError is one
            raise _unreadable(path, exc) from None
        x = x if preprocess.pixel_input else preprocess.normalise(x, "nhwc")
        return (x.transpose(0, 3, 1, 2) if layout == "nchw" else x)[0]

    for path in files:  # headers only: a file that is no image fails the build now, not mid-training
        try:
            Image.open(path).close()
        except OSError as exc:
            raise _unreadable(path, exc) from None
    return ImageFiles(files, (c, h, w) if layout == "nchw" else (h, w, c), decode), labels


def _arrays(path: Path, specs: list[TensorSpec]) -> tuple[dict[str, np.ndarray | StoredArray], np.ndarray | None]:
    try:
        if path.suffix == ".npy":
            return {specs[0].name: open_npy(path)}, None
        arrays = open_npz(path)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz/.npy file ({exc})") from None
    labels = next((arrays.pop(k) for k in LABEL_KEYS if k in arrays), None)
    labels = None if labels is None else np.asarray(labels[:])
    names = [s.name for s in specs]
    if set(names) <= set(arrays):
        return {n: arrays[n] for n in names}, labels
    if len(specs) == 1 and len(arrays) == 1:
        return {names[0]: next(iter(arrays.values()))}, labels
    raise DataError(
        f"{path}: holds arrays {', '.join(sorted(arrays)) or '(none)'}, but the model's inputs are {', '.join(names)}",
        hint=f"Save one array per input under its name, e.g. np.savez(f, {names[0]}=x, y=labels).",
    )


def _check(name: str, x: np.ndarray, spec: TensorSpec, source: str, pixels: bool = False) -> np.ndarray:
    want = tuple(spec.shape[1:])
    if x.shape[1:] != want:
        message = f"{source}: array {name!r} has samples of shape {list(x.shape[1:])}, model input {spec.name} wants {list(want)} (shape {spec.shape_text()}, samples along axis 0)"
        hint = "Reshape the data to [N, " + ", ".join(map(str, want)) + "]."
        if x.ndim == 4 and len(want) == 3:
            if x.shape[1:] == (want[1], want[2], want[0]):
                hint = "The data is NHWC but the model is NCHW: use x.transpose(0, 3, 1, 2)."
            elif x.shape[1:] == (want[2], want[0], want[1]):
                hint = "The data is NCHW but the model is NHWC: use x.transpose(0, 2, 3, 1)."
        raise DataError(message, hint=hint)
    if not pixels and not np.issubdtype(x.dtype, np.floating) and np.issubdtype(np.dtype(spec.dtype), np.floating):
        raise DataError(
            f"{source}: array {name!r} is {x.dtype} but model input {spec.name} is {spec.dtype}",
            hint="Convert and normalise it as in training (e.g. x.astype('float32') / 255).",
        )
    low, high, bad = _scan(x) if not isinstance(x, ImageFiles) else (0, 255, 0)  # decoded pixels: finite, 0..255
    if pixels and x.ndim == 4 and (low < 0 or high > 255):
        raise DataError(f"{source}: array {name!r} holds values from {low:g} to {high:g}, not pixels 0..255",
                        hint="--pixel-input takes raw pixels (uint8 arrays, or an image folder).")
    # An Inf in calibration data segfaults the TFLite converter (TF 2.21, measured): refuse it here.
    if bad:
        raise DataError(f"{source}: array {name!r} has {bad} NaN/Inf value(s)", hint="Clean or drop those samples.")
    return x.astype(spec.dtype, copy=False)


def _scan(x: np.ndarray | StoredArray) -> tuple[float, float, int]:
    """Smallest and largest finite value, and how many are NaN/Inf, read CHUNK samples at a time."""
    low, high, bad = np.inf, -np.inf, 0
    for start in range(0, len(x), CHUNK):
        part = np.asarray(x[start:start + CHUNK])
        finite = np.isfinite(part) if part.dtype.kind == "f" else np.ones(part.shape, bool)
        bad += int(part.size - np.count_nonzero(finite))
        if finite.any():
            low, high = min(low, float(part[finite].min())), max(high, float(part[finite].max()))
    return low, high, bad


def load_data(text: str, specs: list[TensorSpec], preprocess: Preprocess | None = None, seed: int = 0, samples: int = 64) -> Dataset:
    """Load `.npz`/`.npy`, an image folder, or `random` (explicit, flagged unrepresentative)."""
    if text == RANDOM:
        rng = np.random.default_rng(seed)
        return Dataset({s.name: rng.standard_normal((samples, *s.shape[1:])).astype(s.dtype) for s in specs},
                       None, "random (NOT representative: int8 ranges will be poor)")
    path = Path(text)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        if len(specs) != 1:
            raise DataError(f"{path}: image folders feed single-input models only; this one has {len(specs)}")
        x, labels = _load_images(path, specs[0], preprocess or Preprocess())
        arrays = {specs[0].name: x}
    else:
        arrays, labels = _arrays(path, specs)
    by_name = {s.name: s for s in specs}
    pixels = preprocess is not None and preprocess.pixel_input
    arrays = {k: _check(k, v, by_name[k], str(path), pixels) for k, v in arrays.items()}
    sizes = {len(v) for v in arrays.values()} | ({len(labels)} if labels is not None else set())
    if len(sizes) != 1:
        raise DataError(f"{path}: arrays (and labels) differ in sample count: {sorted(sizes)}")
    if not min(sizes):
        raise DataError(f"{path}: holds no samples")
    if labels is not None:
        labels = labels.reshape(-1).astype(np.int64)
    return Dataset(arrays, labels, str(path))


def split(data: Dataset, eval_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Held-out evaluation data when no --eval is given: a seeded shuffle, then a cut."""
    order = np.random.default_rng(seed).permutation(data.size)
    cut = max(1, int(round(data.size * eval_fraction)))
    return (data.subset(order[cut:], f"{data.source} (calibration split)"),
            data.subset(order[:cut], f"{data.source} (evaluation split, {cut} samples)"))


def scale_mismatch(reference: Dataset, other: Dataset) -> list[str]:
    """The float inputs `other` holds on another scale than `reference` (say, pixels 0..255
    beside normalised ones): a model fine-tuned or verified on them learns or reports the wrong
    thing without any error."""
    found = []
    for name, x in reference.inputs.items():
        y = other.inputs[name]
        if not (np.issubdtype(x.dtype, np.floating) and np.issubdtype(y.dtype, np.floating)):
            continue
        (mean_x, spread_x), (mean_y, spread_y) = (_moments(data, name) for data in (reference, other))
        if min(spread_x, spread_y) <= 0:
            continue
        ratio = max(spread_x, spread_y) / min(spread_x, spread_y)
        if ratio > SPREAD_RATIO or abs(mean_x - mean_y) > MEAN_SHIFT * max(spread_x, spread_y):
            found.append(f"{name}: mean {mean_y:.3g} and standard deviation {spread_y:.3g} "
                         f"in {other.source}, {mean_x:.3g} and {spread_x:.3g} in {reference.source}")
    return found


def _moments(data: Dataset, name: str) -> tuple[float, float]:
    """Mean and standard deviation, summed in float64 CHUNK samples at a time (no full-size temporaries)."""
    total = squares = count = 0.0
    for start in range(0, data.size, CHUNK):
        part = data.take(slice(start, start + CHUNK), [name])[name].astype(np.float64)
        total, squares, count = total + part.sum(), squares + np.square(part).sum(), count + part.size
    mean = float(total / count)
    return mean, float(np.sqrt(max(squares / count - mean * mean, 0.0)))
