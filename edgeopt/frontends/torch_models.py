"""PyTorch inputs: ExportedProgram `.pt2` (dynamo exporter), TorchScript `.pt` (legacy
exporter), an `nn.Module` factory plus a state_dict, and, only when trusted, a pickled
whole module. Every path ends in torch.onnx.export and `normalize`."""

from __future__ import annotations

import importlib
import io
import logging
import pickle
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx

from edgeopt.errors import ModelError, UsageError
from edgeopt.frontends.base import OPSET, FrontendOptions, LoadedModel, example_inputs, normalize, resolve_shapes
from edgeopt.ir import TensorSpec
from edgeopt.quiet import captured_output


def _torch():
    try:
        import torch
    except ImportError:
        raise UsageError("PyTorch models need torch", hint="pip install 'edgeopt[torch]'") from None
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    return torch


def _flatten(out) -> list[np.ndarray]:
    if isinstance(out, dict):
        out = list(out.values())
    if not isinstance(out, (list, tuple)):
        out = [out]
    flat = []
    for item in out:
        flat.extend(_flatten(item) if isinstance(item, (list, tuple, dict)) else [item.detach().cpu().numpy()])
    return flat


def _reference(module, names: list[str]):
    torch = _torch()

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            return _flatten(module(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names)))

    return run


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def exporter_reason(exc: Exception) -> str:
    """The exporter's own reason in one line: its exception summary and the model source line
    it failed at, without the colour codes and the "file an issue" advice around them."""
    text = ANSI_ESCAPE.sub("", str(exc)).strip()
    if not text:
        return type(exc).__name__
    summary = re.search(r"## Exception summary\s+(?:<class '([\w.]+)'>:\s*)?(.+)", text)
    if summary is None:
        return text.splitlines()[0]
    kind, reason = summary.group(1), summary.group(2).strip()
    reason = f"{kind.rsplit('.', 1)[-1]}: {reason}" if kind else reason
    frames = re.findall(r'File "([^"]+)", line (\d+), in \w+\n\s+(.+)', text)
    if frames:
        path, line, code = frames[-1]
        reason += f" (at {'/'.join(Path(path).parts[-3:])}:{line}: {code.strip()})"
    return reason


def _export(model, args: tuple, source: Path, **kwargs):
    """torch.onnx.export with its console chatter captured; failures become ModelError."""
    torch = _torch()
    try:
        with captured_output():
            return torch.onnx.export(model, args, opset_version=OPSET, verbose=False, **kwargs)
    except Exception as exc:
        raise ModelError(
            f"{source}: torch.onnx.export failed: {exporter_reason(exc)}",
            hint="The model uses something the ONNX exporter cannot express; see the PyTorch exporter docs, "
            "or export to .onnx yourself and pass that file.",
        ) from None


def _program_to_onnx(program, source: Path):
    """An ExportedProgram as ONNX. The exporter decomposes with its own table, in which some
    graphs stop: Swin's `reshape` after attention was recorded as a `view` of the real
    kernel's output, whose strides the exporter's attention does not reproduce ("Cannot view
    a tensor with shape ..."). Decomposed by torch's default table first, such graphs export
    (Swin: 129 dB against torch in onnxruntime); the first failure is reported if not."""
    try:
        return _export(program, (), source, dynamo=True).model_proto
    except ModelError as failure:
        try:
            with captured_output():
                decomposed = program.run_decompositions()
            return _export(decomposed, (), source, dynamo=True).model_proto
        except Exception:
            raise failure from None


def _dynamo_to_onnx(module, specs: list[TensorSpec], source: Path):
    torch = _torch()
    args = tuple(torch.from_numpy(x) for x in example_inputs(specs).values())
    try:
        with captured_output():
            program = torch.export.export(module, args)
    except Exception as exc:
        raise ModelError(f"{source}: torch.export could not trace the module: {str(exc).splitlines()[0]}") from None
    return _program_to_onnx(program, source)


def _placeholder_specs(program) -> list[TensorSpec]:
    user_inputs = set(program.graph_signature.user_inputs)
    specs = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            val = node.meta["val"]
            dims = tuple(int(d) if isinstance(d, int) else None for d in val.shape)
            specs.append(TensorSpec(node.name, str(val.dtype).removeprefix("torch."), dims))
    return specs


def load_exported_program(path: Path, options: FrontendOptions) -> LoadedModel:
    torch = _torch()
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise ModelError(
            f"{path}: not a readable ExportedProgram ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
            hint="Save it with torch.export.save(torch.export.export(model, args), 'model.pt2').",
        ) from None
    declared = _placeholder_specs(program)
    specs = resolve_shapes(declared, options.input_shapes, path)
    module = program.module()
    if all(s.is_static for s in declared):
        proto = _program_to_onnx(program, path)
    else:  # re-trace at the resolved static shapes: a graph without Shape arithmetic
        proto = _dynamo_to_onnx(module, specs, path)
    return normalize(proto, specs, path, "exported-program", _reference(module, [s.name for s in specs]))


def _torch_file_kind(path: Path) -> str:
    """'torchscript', 'state-dict' or 'pickled-module', from the archive layout and a safe load."""
    torch = _torch()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist()):
                return "torchscript"
    try:
        obj = torch.load(str(path), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Weights only" in str(exc):
            return "pickled-module"
        raise ModelError(f"{path}: not a readable PyTorch file ({str(exc).splitlines()[0]})") from None
    except Exception as exc:
        raise ModelError(f"{path}: not a readable PyTorch file ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, dict):
        return "state-dict"
    raise ModelError(f"{path}: holds a {type(obj).__name__}, not a model", hint="Pass a TorchScript, .pt2 or ONNX file.")


def _script_input_names(script) -> list[str]:
    return [a.name for a in script.forward.schema.arguments[1:]]


def load_torchscript(path: Path, options: FrontendOptions) -> LoadedModel:
    torch = _torch()
    script = torch.jit.load(str(path), map_location="cpu").eval()
    names = _script_input_names(script)
    specs = resolve_shapes([TensorSpec(n, "float32", None) for n in names], options.input_shapes, path)
    args = tuple(torch.from_numpy(x) for x in example_inputs(specs).values())
    with torch.no_grad():
        n_outputs = len(_flatten(script(*args)))
    output_names = ["output"] if n_outputs == 1 else [f"output_{i}" for i in range(n_outputs)]
    _export(script, args, path, f=(buffer := io.BytesIO()), dynamo=False, input_names=names, output_names=output_names)
    return normalize(onnx.load_from_string(buffer.getvalue()), specs, path, "torchscript", _reference(script, names))


def _module_input_specs(module, options: FrontendOptions, path: Path) -> list[TensorSpec]:
    import inspect

    names = [p.name for p in inspect.signature(module.forward).parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return resolve_shapes([TensorSpec(n, "float32", None) for n in names], options.input_shapes, path)


def _from_module(module, path: Path, options: FrontendOptions, fmt: str) -> LoadedModel:
    module.eval()
    specs = _module_input_specs(module, options, path)
    proto = _dynamo_to_onnx(module, specs, path)
    return normalize(proto, specs, path, fmt, _reference(module, [s.name for s in specs]))


def _import_factory(spec: str):
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise UsageError(f"--module {spec!r} is not 'package.module:factory'")
    if "" not in sys.path:
        sys.path.insert(0, "")  # the user's project, run from its root
    try:
        return getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--module {spec}: cannot import it ({exc})",
                         hint="Run from the directory that holds the package, or install it.") from None


def load_state_dict(path: Path, options: FrontendOptions) -> LoadedModel:
    torch = _torch()
    module = _import_factory(options.module)()
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"--module {options.module} returned a {type(module).__name__}, not an nn.Module")
    state = torch.load(str(path), weights_only=True, map_location="cpu")
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(
            f"{path}: state_dict does not match {options.module}: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}",
            hint="Check that the factory builds the same architecture the weights were trained with.",
        )
    return _from_module(module, path, options, "state-dict")


def load_torch_file(path: Path, options: FrontendOptions) -> LoadedModel:
    """`.pt`/`.pth`: TorchScript, or a state_dict with --module, or a pickle (trusted only)."""
    if options.module:
        return load_state_dict(path, options)
    kind = _torch_file_kind(path)
    if kind == "torchscript":
        return load_torchscript(path, options)
    if kind == "state-dict":
        raise UsageError(
            f"{path}: is a state_dict (weights only); edgeopt needs the architecture too",
            hint="Pass --module package.module:factory (a function returning the nn.Module), "
            "or save a .pt2 with torch.export.save.",
        )
    if not options.trust_pickle:
        raise ModelError(
            f"{path}: is a pickled whole module (torch.save(model)). Loading a pickle runs arbitrary code "
            "from the file, so edgeopt refuses it by default.",
            hint="Re-save it with torch.export.save (.pt2) or torch.jit.save, or pass --trust-pickle "
            "if you trust where the file came from.",
        )
    torch = _torch()
    module = torch.load(str(path), weights_only=False, map_location="cpu")
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"{path}: the pickle holds a {type(module).__name__}, not an nn.Module")
    return _from_module(module, path, options, "pickled-module")
