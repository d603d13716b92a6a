"""Bundles: a directory plus a byte-reproducible `.tar.gz`, written atomically, and read
back safely (no path traversal, no links) for smoke tests and inspection."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeopt.errors import BoardError

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1


@dataclass
class Bundle:
    directory: Path
    tarball: Path
    sha256: str


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def _mode(path: str, data: bytes) -> int:
    """Scripts and native programs (an ELF file that is not a .so library) are executable."""
    program = path.endswith(".py") or (data[:4] == b"\x7fELF" and not path.endswith(".so"))
    return 0o755 if program else 0o644


def _tar_bytes(name: str, files: dict[str, bytes]) -> bytes:
    """Sorted entries, zero mtimes/owners, fixed modes, gzip without name or time: same
    files in, same bytes out."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(name, p).parent) for p in files} | {name})
        entries = [(d, None) for d in dirs] + [(str(Path(name, p)), files[p]) for p in sorted(files)]
        for path, data in sorted(entries):
            info = tarfile.TarInfo(path)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), _mode(path, data)
                tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def write_bundle(out_dir: Path, name: str, files: dict[str, bytes]) -> Bundle:
    """Write `out_dir/name/` and `out_dir/name.tar.gz`; on any failure neither appears
    (an older bundle of the same name is replaced only at the very end)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target, tarball = out_dir / name, out_dir / f"{name}.tar.gz"
    packed = _tar_bytes(name, files)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_dir))
    try:
        for path, data in files.items():
            (staging / path).parent.mkdir(parents=True, exist_ok=True)
            (staging / path).write_bytes(data)
            (staging / path).chmod(_mode(path, data))
        (staging / "_tarball").write_bytes(packed)
        old = out_dir / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        (staging / "_tarball").replace(tarball)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Bundle(target, tarball, sha256(packed))


def safe_extract(tarball: Path, dest: Path) -> Path:
    """Extract a bundle tarball; refuse absolute paths, '..', links and device files."""
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                    raise BoardError(f"{tarball}: refusing unsafe entry {member.name!r} (absolute path, '..' or link)",
                                     hint="Only unpack bundles made by edgeopt build.")
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise BoardError(f"{tarball}: not a readable bundle archive ({exc})") from None
    roots = [p for p in dest.iterdir() if (p / MANIFEST).exists()]
    if len(roots) != 1:
        raise BoardError(f"{tarball}: no {MANIFEST} at the top of the archive")
    return roots[0]


@contextlib.contextmanager
def opened(path: Path):
    """A bundle directory, or a tarball unpacked safely into a temp dir for the duration."""
    if path.is_dir():
        if not (path / MANIFEST).exists():
            raise BoardError(f"{path}: no {MANIFEST}; not an edgeopt bundle")
        yield path
        return
    if not path.exists():
        raise BoardError(f"{path}: no such bundle")
    with tempfile.TemporaryDirectory(prefix="edgeopt-bundle-") as tmp:
        yield safe_extract(path, Path(tmp))


def read_manifest(directory: Path) -> dict:
    manifest = json.loads((directory / MANIFEST).read_text())
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise BoardError(f"{directory}: manifest schema_version {manifest.get('schema_version')} is not {SCHEMA_VERSION}",
                         hint="Rebuild the bundle with this edgeopt version.")
    return manifest
