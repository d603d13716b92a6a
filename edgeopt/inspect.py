"""`edgeopt inspect`: analysis of a source model, or of the artefact inside a bundle."""

from __future__ import annotations

import tarfile
from pathlib import Path

from edgeopt.bundle import MANIFEST, opened, read_manifest
from edgeopt.errors import ModelError
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
