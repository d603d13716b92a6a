"""The IR compiled ahead of time by Apache TVM: Relax's ONNX frontend, `tvm.compile` for the
board's target (with tuning's schedules when a database has them), and `export_library`
with the aarch64 cross compiler. The same module is compiled for this host too, which is
what the build verifies and takes its golden outputs from."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from edgeopt.errors import CompileError, UnsupportedOpError
from edgeopt.ir import to_bytes
from edgeopt.tvm.runtime import CROSS_COMPILER, INSTALL_HINT


def relax_module(model: ir.Model):
    """The IR as a Relax module, its weights bound in; an op the frontend lacks is named."""
    from tvm.relax.frontend.onnx import from_onnx
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    known = _get_convert_map()
    missing = [n for n in model.graph if n.domain in ("", "ai.onnx") and n.op_type not in known]
    if missing:
        names = ", ".join(f"{n.op_type} '{n.name}'" for n in missing[:5])
        raise UnsupportedOpError(f"TVM's ONNX frontend has no converter for {names}",
                                 hint="Rewrite the op in the source model, or build with --target tflite or onnx.")
    try:
        return from_onnx(onnx.load_from_string(to_bytes(model)), keep_params_in_input=False)
    except Exception as exc:  # the frontend's own words name the node it failed on
        raise UnsupportedOpError(f"TVM's ONNX frontend cannot import the model: {str(exc).strip().splitlines()[-1]}",
                                 hint="Rewrite the node in the source model, or build with --target tflite or onnx.") from None


@dataclass
class Compiled:
    library: bytes  # model.so for the board
    host: object  # the VM executable for this host (tvm.relax.VMExecutable)


def target_of(spec):
    import tvm

    try:
        return tvm.target.Target(spec)
    except Exception as exc:
        raise CompileError(f"not a TVM target: {spec!r} ({str(exc).strip().splitlines()[-1]})",
                           hint="Give a TVM target tag (raspberry-pi/4b-aarch64) or a JSON dict in the profile.") from None


def compile_model(module, target_spec, database: Path | None = None) -> Compiled:
    """Compile for the board (cross) and for this host, with the tuned schedules of
    `database` (a MetaSchedule work directory) where it has them."""
    import tvm
    from tvm.support import cc

    from edgeopt.tvm.tuning import apply, host_target

    if shutil.which(CROSS_COMPILER) is None:
        raise CompileError(f"the cross compiler {CROSS_COMPILER} is not installed", hint=INSTALL_HINT)
    target = target_of(target_spec)
    if database is not None:  # once for both: the database's lookup is by workload, not target
        module = apply(module, target, database)
    board = tvm.compile(module, target=target)
    host = tvm.compile(module, target=tvm.target.Target(host_target()))  # what the build verifies
    with tempfile.TemporaryDirectory(prefix="edgeopt-tvm-") as work:
        path = Path(work) / "model.so"
        try:
            board.export_library(str(path), fcompile=cc.cross_compiler(CROSS_COMPILER))
        except Exception as exc:
            raise CompileError(f"{CROSS_COMPILER} could not link the model library: "
                               f"{str(exc).strip().splitlines()[-1]}") from None
        library = path.read_bytes()
    return Compiled(library, host)


def host_runner(executable, input_names: list[str]):
    """run(feeds) -> outputs, on this host's CPU."""
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(executable, tvm.cpu())

    def run(feeds: dict) -> list[np.ndarray]:
        result = vm["main"](*(tvm.runtime.tensor(np.ascontiguousarray(feeds[name])) for name in input_names))
        items = result if isinstance(result, (list, tuple)) or type(result).__name__ == "Array" else [result]
        return [item.numpy() for item in items]
    return run
