"""Frontends: every supported model format -> the IR, chosen by file suffix.

Loaders are imported lazily: torch and TensorFlow are heavy, and a user with only
ONNX models may have neither installed.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from edgeopt.errors import ModelError
from edgeopt.frontends.base import FrontendOptions, LoadedModel, parse_input_shapes

# suffix -> (human name, "module:function")
LOADERS = {
    ".pt2": ("ExportedProgram", "torch_models:load_exported_program"),
    ".pt": ("TorchScript / state_dict", "torch_models:load_torch_file"),
    ".pth": ("TorchScript / state_dict", "torch_models:load_torch_file"),
    ".onnx": ("ONNX", "onnx_model:load_onnx"),
    ".keras": ("Keras", "keras_models:load_keras"),
    ".h5": ("Keras HDF5", "keras_models:load_keras"),
    ".hdf5": ("Keras HDF5", "keras_models:load_keras"),
}
SAVED_MODEL = ("TensorFlow SavedModel", "keras_models:load_saved_model")


def _loader(path: Path) -> str:
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return SAVED_MODEL[1]
        raise ModelError(f"{path}: is a directory without saved_model.pb, so not a SavedModel",
                         hint="Pass the model file, or a directory written by tf.saved_model.save / model.export.")
    if not path.exists():
        raise ModelError(f"{path}: no such file", hint="Check the path (relative paths start at the current directory).")
    try:
        return LOADERS[path.suffix.lower()][1]
    except KeyError:
        known = ", ".join(sorted(LOADERS)) + ", or a SavedModel directory"
        raise ModelError(f"{path}: unknown model format {path.suffix or '(no suffix)'!r}; edgeopt reads {known}",
                         hint="Export the model to ONNX (or .pt2 / .keras) and pass that file.") from None


def load_model(path: str | Path, options: FrontendOptions | None = None) -> LoadedModel:
    path = Path(path)
    module_name, func = _loader(path).split(":")
    module = importlib.import_module(f"edgeopt.frontends.{module_name}")
    return getattr(module, func)(path, options or FrontendOptions())


__all__ = ["FrontendOptions", "LoadedModel", "load_model", "parse_input_shapes", "LOADERS"]
