"""The device side of the arm-cpu target, made once at install time and cached: TVM's
aarch64 runtime (libtvm_runtime.so from the apache-tvm aarch64 wheel, libtvm_ffi.so from
apache-tvm-ffi's, the same versions as the host's TVM), and edgeopt's C++ runner
(targets/arm-cpu/runner.cc) cross-compiled against them. Builds only read the cache; a
missing piece is an error saying how to make it (`make install`, or `python -m edgeopt.tvm.runtime`).

    python -m edgeopt.tvm.runtime      # fetch and compile into the cache (needs PyPI and the cross compiler)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from edgeopt.errors import CompileError
from edgeopt.resources import data_dir

ARCH = "aarch64"
CROSS_COMPILER = "aarch64-linux-gnu-g++"
PLATFORM = "manylinux_2_28_aarch64"  # both wheels are tagged for glibc 2.28 (Debian 10+, Raspberry Pi OS 10+)
LIBRARIES = {"apache-tvm": "tvm/lib/libtvm_runtime.so", "apache-tvm-ffi": "tvm_ffi/lib/libtvm_ffi.so"}
RUNNER_SOURCES = ("runner.cc", "json.h", "npy.h")
RUNNER = "runner"
CORE = (RUNNER, "libtvm_runtime.so", "libtvm_ffi.so")
SYSROOT = Path("/usr/aarch64-linux-gnu")  # Debian's libc6-arm64-cross, installed with the cross compiler
# glibc's loader and the C/C++ libraries the runner and TVM's runtime need (readelf -d), from SYSROOT/lib:
# carried by bundles for devices without glibc (Android's libc is bionic), which run the runner through the
# loader: ./ld-linux-aarch64.so.1 --library-path . ./runner
GLIBC = ("ld-linux-aarch64.so.1", "libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libdl.so.2",
         "libpthread.so.0")
LOADER = GLIBC[0]
INSTALL_HINT = "Run `make install` (or scripts/setup_arm.sh, then python -m edgeopt.tvm.runtime) once."


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("EDGEOPT_CACHE", base / "edgeopt"))


def versions() -> dict[str, str]:
    return {package: importlib.metadata.version(package) for package in LIBRARIES}


def _sources() -> Path:
    return data_dir("targets") / "arm-cpu"


def runtime_dir() -> Path:
    """The cache directory for this host's TVM versions and runner sources."""
    digest = hashlib.sha256()
    for name in RUNNER_SOURCES:
        digest.update((_sources() / name).read_bytes())
    tag = "-".join(f"{p}-{v}" for p, v in versions().items())
    return cache_root() / "tvm-runtime" / f"{ARCH}-{tag}-runner-{digest.hexdigest()[:12]}"


def lacks_glibc(triple: str | None) -> bool:
    """A device whose OS triple is not a GNU one (aarch64-linux-android: bionic) gets glibc in
    its bundle; no profile means any aarch64 Linux board."""
    return triple is not None and not triple.endswith("-gnu")


def device_files(with_glibc: bool = False) -> dict[str, Path]:
    """Bundle file name -> cached file: the runner and the two runtime libraries, and glibc for
    a device that has none."""
    directory = runtime_dir()
    files = {name: directory / name for name in CORE + (GLIBC if with_glibc else ())}
    missing = [name for name, path in files.items() if not path.is_file()]
    if missing:
        raise CompileError(f"the arm-cpu device files are not in the cache ({directory}): {', '.join(missing)}",
                           hint=INSTALL_HINT)
    return files


def _fetch_libraries(into: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="edgeopt-tvm-wheels-") as wheels:
        pins = [f"{package}=={version}" for package, version in versions().items()]
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                               "--platform", PLATFORM, "--python-version", "3.11", "--dest", wheels, *pins],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise CompileError(f"pip could not download the {ARCH} TVM wheels ({', '.join(pins)}): "
                               f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}",
                               hint="It needs PyPI; run it again where PyPI is reachable.")
        for wheel in Path(wheels).glob("*.whl"):
            with zipfile.ZipFile(wheel) as archive:
                for member in LIBRARIES.values():
                    if member in archive.namelist():
                        (into / Path(member).name).write_bytes(archive.read(member))


def include_dirs() -> list[Path]:
    """Headers of the host's tvm-ffi package (the runner uses tvm-ffi's C++ API only) and DLPack."""
    import tvm_ffi

    root = Path(tvm_ffi.__file__).parent
    return [root / "include", root / "3rdparty" / "dlpack" / "include"]


def compile_runner(into: Path) -> None:
    """Cross-compile the runner against the cached libraries; it finds them beside itself."""
    if shutil.which(CROSS_COMPILER) is None:
        raise CompileError(f"the cross compiler {CROSS_COMPILER} is not installed", hint=INSTALL_HINT)
    command = [CROSS_COMPILER, "-std=c++17", "-O2", "-s", *(f"-I{d}" for d in include_dirs()), f"-I{_sources()}",
               str(_sources() / "runner.cc"), "-o", str(into / RUNNER), f"-L{into}", "-Wl,--no-as-needed",
               "-ltvm_runtime", "-ltvm_ffi", "-Wl,-rpath,$ORIGIN"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise CompileError(f"{CROSS_COMPILER} could not compile the arm-cpu runner:\n{done.stderr.strip()[-2000:]}")


def _copy_glibc(into: Path) -> None:
    missing = [name for name in GLIBC if not (SYSROOT / "lib" / name).exists()]
    if missing:
        raise CompileError(f"Debian's aarch64 C libraries are not installed ({SYSROOT}/lib lacks {', '.join(missing)})",
                           hint="Run scripts/setup_arm.sh (or `make install`).")
    for name in GLIBC:
        shutil.copyfile(SYSROOT / "lib" / name, into / name)  # the files the versioned links point to
        (into / name).chmod(0o755)


def ensure_device_files() -> Path:
    """Fetch and compile whatever of the device files the cache lacks; returns its directory."""
    directory = runtime_dir()
    if all((directory / name).is_file() for name in CORE):
        if not all((directory / name).is_file() for name in GLIBC):
            _copy_glibc(directory)  # a cache made before glibc was carried
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory.parent))
    try:
        _fetch_libraries(staging)
        compile_runner(staging)
        _copy_glibc(staging)
        staging.chmod(0o755)
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


if __name__ == "__main__":
    print(ensure_device_files())
