"""`edgeopt inspect`: analysis of a source model, or of the artefact inside a bundle."""

from __future__ import annotations

import tarfile
from pathlib import Path

from edgeopt.bundle import MANIFEST, opened, read_manifest
from edgeopt.errors import ModelError, UsageError
from edgeopt.frontends import FrontendOptions, load_model
from edgeopt.ir import load
from edgeopt.ir.analysis import Analysis, analyze


def _is_bundle(path: Path) -> bool:
    return (path / MANIFEST).exists() if path.is_dir() else path.name.endswith(".tar.gz") and tarfile.is_tarfile(path)


def inspect_path(path: Path, input_shapes: dict, module: str | None, trust_pickle: bool) -> tuple[str, Analysis, dict | None]:
    """(title, analysis, bundle manifest or None)."""
    if not _is_bundle(path):
        loaded = load_model(path, FrontendOptions(input_shapes, trust_pickle, module))
        return f"{path.name} ({loaded.format})", analyze(loaded.model), None
    with opened(path) as directory:
        manifest = read_manifest(directory)
        artefact = directory / manifest["artefact"]["file"]
        if artefact.suffix != ".onnx":
            raise ModelError(f"{path}: the {manifest['target']} artefact {artefact.name} is not ONNX; "
                             "its analysis is in manifest.json (analysis.artefact)")
        analysis = analyze(load(artefact))
    summary = {k: manifest[k] for k in ("name", "target", "profile", "quant", "source", "artefact", "fidelity", "size_check")}
    return f"bundle {manifest['name']} ({manifest['target']}, {manifest['quant']})", analysis, summary


def bundle_layers(path: Path) -> tuple[str, list[dict]]:
    """(title, per-layer int8 error rows) recorded in a bundle's manifest (fidelity.layers)."""
    if not _is_bundle(path):
        raise UsageError(f"{path}: --layers reads a bundle (a directory with {MANIFEST}, or its .tar.gz)",
                         hint="Build first: edgeopt build MODEL --quant int8 --calib DATA --eval DATA")
    with opened(path) as directory:
        manifest = read_manifest(directory)
    layers = (manifest.get("fidelity") or {}).get("layers")
    if not layers:
        raise UsageError(f"{path}: no per-layer errors in this bundle ({manifest['target']}, {manifest['quant']})",
                         hint="They are measured for int8 builds of the tflite and coral targets.")
    return f"bundle {manifest['name']}: int8 error per layer against float", layers
