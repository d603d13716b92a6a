"""`arm-cpu` target: the IR compiled ahead of time by Apache TVM into a shared library for the
board's CPU (its TVM target from the device profile), run on the device by TVM's runtime and
edgeopt's C++ runner with no Python at all (edgeopt/tvm). float32."""

from __future__ import annotations

from edgeopt.backends.base import Artefact, Backend, CompileOptions
from edgeopt.ir import input_specs, output_specs, to_bytes

MODEL_FILE = "model.so"
DEFAULT_TARGET = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}  # any ARMv8-A board
TOLERANCE = {"atol": 1e-4, "rtol": 1e-3}  # the same kernels, compiled for another CPU


class ArmCpuBackend(Backend):
    name = "arm-cpu"
    quant_modes = ("float32",)
    description = "ARM Linux boards' CPUs (Raspberry Pi, Coral Dev Board, phones): TVM, ahead of time, no Python"
    runner = "runner"

    def compile(self, model, options: CompileOptions) -> Artefact:
        from edgeopt.tvm.compile import compile_model, host_runner, relax_module
        from edgeopt.tvm.runtime import LOADER, device_files, lacks_glibc
        from edgeopt.tvm.tuning import tuned_database

        device = device_files(with_glibc=lacks_glibc(options.device_triple))  # before the slow part: fails fast
        target = options.tvm_target or DEFAULT_TARGET
        module = relax_module(model)
        database, tuning = tuned_database(module, to_bytes(model), target, options.tune_trials, options.tune_seconds,
                                          options.tvm_tracker, options.note)
        info = {"tuning": tuning} if tuning else {}
        options.note(f"compiling with TVM for {target if isinstance(target, str) else target.get('mcpu', 'aarch64')}")
        compiled = compile_model(module, target, database)
        inputs, outputs = input_specs(model), output_specs(model)
        files = {MODEL_FILE: compiled.library, **{name: path.read_bytes() for name, path in device.items()}}
        runtime_bytes = sum(len(data) for name, data in files.items() if name != MODEL_FILE)
        return Artefact(files=files, main=MODEL_FILE, inputs=[s.to_json() for s in inputs],
                        outputs=[s.to_json() for s in outputs],
                        run=host_runner(compiled.host, [s.name for s in inputs]),
                        tolerances=[dict(TOLERANCE) for _ in outputs],
                        info={**info, "tvm_target": target, "runtime_bytes": runtime_bytes,
                              "runner": "runner (C++, aarch64; libtvm_runtime.so, libtvm_ffi.so beside it)"
                              + (f"; run through {LOADER}, with the glibc it carries" if LOADER in device else "")})
