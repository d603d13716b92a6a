"""The `edgeopt` command. Exit codes: see edgeopt/errors.py and README.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

import edgeopt
from edgeopt import config as config_file
from edgeopt.cli_training import compression_requests, training_configs, training_options
from edgeopt.errors import EdgeoptError, UsageError

screen = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _print_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _load_config(ctx: click.Context, _param, value: str | None):
    """Eager: fill the command's defaults from edgeopt.toml before other flags parse."""
    path = Path(value) if value else Path(config_file.DEFAULT_NAME)
    if value is None and not path.exists():
        return None
    keys = {_config_key(p): p.name for p in ctx.command.params if p.name and p.name != "json_output"}
    ctx.default_map = {**(ctx.default_map or {}), **config_file.load_section(path, ctx.command.name, keys)}
    return str(path)


def _config_key(param: click.Parameter) -> str:
    """The TOML key of a parameter: its long flag without dashes (`max-drop`), or its name."""
    longs = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return longs[0][2:] if longs else param.name


config_option = click.option("--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=False,
                             callback=_load_config, help="Config file with the same keys as the flags "
                             f"(default: ./{config_file.DEFAULT_NAME} if present). Flags override it.")
json_option = click.option("--json", "json_output", is_flag=True, help="Print one machine-readable JSON report on stdout.")
shape_option = click.option("--input-shape", "input_shape", multiple=True, metavar="NAME=D1,D2,..",
                            help="Static shape for an input with dynamic or unrecorded dims (repeatable).")
module_option = click.option("--module", metavar="PKG.MOD:FACTORY", help="For a state_dict: a function returning the nn.Module.")
pickle_option = click.option("--trust-pickle", is_flag=True, help="Allow loading a pickled whole torch module (runs code from the file).")


def edgetpu_options(command):
    """The coral target's compiler flags."""
    for option in reversed((
        click.option("--edgetpu-compiler", metavar="PATH", help="coral: the edgetpu_compiler to run (default: PATH)."),
        click.option("--require-edgetpu-compiler", is_flag=True,
                     help="coral: fail (exit 7) when edgetpu_compiler is not installed, instead of bundling the "
                          "Edge TPU-ready model and the command to finish on an x86-64 Linux host."),
        click.option("--edgetpu-segments", type=click.IntRange(min=2), metavar="N",
                     help="coral: split into N segments for pipelining across N Edge TPUs (compiler -n)."),
        click.option("--edgetpu-timeout", type=click.IntRange(min=1), default=180, show_default=True, metavar="S",
                     help="coral: compiler timeout in seconds."),
        click.option("--edgetpu-fix", is_flag=True,
                     help="coral: rewrite what keeps ops off the Edge TPU (activations it lacks, fully connected "
                          "layers streamed off-chip, a post-processing tail moved to the CPU) and report the cost."),
    )):
        command = option(command)
    return command


def _edgetpu_options(target, compiler, require, segments, timeout, fix):
    from edgeopt.edgetpu.compiler import EdgeTpuOptions

    if target != "coral" and (compiler or require or segments or fix):
        raise UsageError("--edgetpu-* flags are for --target coral", hint="Drop them, or build with --target coral.")
    return EdgeTpuOptions(compiler, require, segments, timeout, fix)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(edgeopt.__version__, prog_name="edgeopt")
def cli():
    """Compile a trained model into a verified, size-checked bundle for an edge device."""


@cli.command()
@click.argument("model", required=False, type=click.Path())
@config_option
@click.option("--target", "-t", default="onnx", show_default=True, help="Backend: onnx | tflite | coral.")
@click.option("--quant", "-q", help="float32 (default) | int8 (needs --calib); tflite also float16 | dynamic "
              "(int8 weights, float activations); coral int8 only (its default).")
@click.option("--io-dtype", type=click.Choice(["int8", "uint8", "float32"]),
              help="int8 builds: the model's input/output type (tflite default int8, coral uint8).")
@click.option("--calibration", "calibration_method", default="minmax", show_default=True,
              type=click.Choice(["minmax", "percentile", "mse"]), help="int8 activation ranges (tflite: all three).")
@click.option("--bias-correction", is_flag=True, help="int8 (tflite): correct conv/FC biases for weight rounding, "
              "layer by layer on the calibration data.")
@click.option("--rounding", default="nearest", show_default=True, type=click.Choice(["nearest", "learned"]),
              help="int8 (tflite, coral): round each weight to nearest, or learn up/down per weight to match the "
              "float layer outputs on the calibration data (AdaRound).")
@click.option("--rounding-steps", default=100, show_default=True, type=int,
              help="--rounding learned: optimisation steps per layer.")
@click.option("--no-sparse-encoding", is_flag=True, help="tflite: keep pruned weights dense, even where TFLite's "
              "sparse encoding would make the file smaller.")
@click.option("--profile", "-p", help="Device profile to size-check against (edgeopt profiles list), or a .toml path.")
@click.option("--calib", metavar="DATA", help=".npz/.npy arrays, an image folder, or 'random' (unrepresentative).")
@click.option("--eval", "eval_data", metavar="DATA", help="Held-out data (with labels y for accuracy). Default: a split of --calib.")
@click.option("--max-drop", type=float, help="Fail (exit 6) if accuracy, or top-1 agreement, drops more than this (0.01 = 1 point).")
@shape_option
@module_option
@pickle_option
@click.option("--preprocess", multiple=True, metavar="KEY=VALUE", help="Image preprocessing: scale, mean, std, layout, resize.")
@click.option("--pixel-input", is_flag=True, help="The model takes raw pixels 0..255 and normalises them itself "
              "(--preprocess's scale, mean, std folded into its first conv); data are then pixels too.")
@edgetpu_options
@click.option("--tune-trials", type=int, metavar="N", help="arm-cpu: MetaSchedule tuning, N measured trials (on "
              "this host as a proxy for the board); cached per model and reused by later builds.")
@click.option("--tune-time", type=float, metavar="S", help="arm-cpu: tune for at most S seconds.")
@click.option("--tvm-tracker", metavar="HOST:PORT:KEY", help="arm-cpu: tune on the board registered with this TVM "
              "RPC tracker under KEY, instead of on this host.")
@training_options
@click.option("--out", "-o", default="dist", show_default=True, type=click.Path(file_okay=False), help="Where bundles go.")
@click.option("--name", help="Bundle name prefix (default: the model file's stem).")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@json_option
def build(model, target, quant, io_dtype, calibration_method, bias_correction, rounding, rounding_steps,
          no_sparse_encoding, profile, calib,
          eval_data, max_drop, input_shape, module, trust_pickle, preprocess, pixel_input, edgetpu_compiler,
          require_edgetpu_compiler, edgetpu_segments, edgetpu_timeout, edgetpu_fix, tune_trials, tune_time, tvm_tracker,
          qat, prune, prune_scope, prune_exclude, prune_channels, prune_allocation, prune_importance, no_refit, lowrank,
          lowrank_rank, depthwise, no_fine_tune, train_data, train_steps, train_time, train_rate, train_batch, seed,
          no_augment, out, name, quiet, json_output):
    """Build MODEL into dist/<name>-<target>-<profile>/ and a reproducible .tar.gz."""
    from edgeopt.build import BuildRequest, build as run_build
    from edgeopt.progress import Progress
    from edgeopt.quant.layers import worst
    from edgeopt.report import (compression_table, edgetpu_fix_lines, fidelity_table, layers_table, passes_table,
                                stages_table,
                                training_line, transposes_lines)

    if not model:
        raise UsageError("no model given", hint="edgeopt build MODEL (or `model = ...` in [build] of edgeopt.toml)")
    preprocess_items = preprocess if isinstance(preprocess, dict) else dict(_key_value(p) for p in preprocess)
    compression = compression_requests(prune, prune_scope, prune_exclude, prune_channels, prune_allocation,
                                       prune_importance, no_refit, lowrank, lowrank_rank, depthwise, no_augment)
    training, fine_tuning = training_configs(qat, compression, no_fine_tune, train_data, train_steps, train_time,
                                             train_rate, train_batch, seed, no_augment)
    request = BuildRequest(
        model=Path(model), target=target, quant=quant, io_dtype=io_dtype, calibration_method=calibration_method,
        bias_correction=bias_correction, rounding=rounding, rounding_steps=rounding_steps,
        sparse_encoding=not no_sparse_encoding, profile=profile, calib=calib,
        eval=eval_data, max_drop=max_drop, input_shapes=parse_input_shapes_cli(input_shape), module=module,
        trust_pickle=trust_pickle, preprocess=preprocess_items, pixel_input=pixel_input, out=Path(out), name=name,
        edgetpu=_edgetpu_options(target, edgetpu_compiler, require_edgetpu_compiler, edgetpu_segments, edgetpu_timeout,
                                 edgetpu_fix),
        training=training, train_data=train_data, compression=compression, fine_tuning=fine_tuning,
        tune_trials=tune_trials, tune_seconds=tune_time, tvm_tracker=tvm_tracker,
    )
    result = run_build(request, Progress(quiet=quiet or json_output))
    if json_output:
        _print_json({"ok": True, "bundle": str(result.bundle.directory), "tarball": str(result.bundle.tarball),
                     "tarball_sha256": result.bundle.sha256, "manifest": result.manifest, "stages": result.stages,
                     "compression": result.compression})
        return
    from edgeopt.profiles import render

    screen.print(passes_table(result.manifest["passes"]))
    if result.compression:
        screen.print(compression_table(result.compression))
    screen.print(fidelity_table(result.manifest["fidelity"]))
    if result.manifest["fidelity"].get("layers"):
        screen.print(layers_table(worst(result.manifest["fidelity"]["layers"]), "int8: where the error grows most "
                                  "(every layer: edgeopt inspect BUNDLE --layers)"))
    for line in transposes_lines(result.manifest["artefact"].get("transposes")):
        screen.print(escape(line))
    trained = training_line(result.manifest["artefact"].get("training"))
    if trained:
        screen.print(escape(trained))
    for log in ("edgetpu_compiler.log", "edgetpu_analysis.log"):
        if log in result.artefact.files:
            screen.print(escape(result.artefact.files[log].decode()))
            break
    fix = result.manifest["artefact"].get("edgetpu", {}).get("fix")
    if fix:
        screen.print(escape("\n".join(edgetpu_fix_lines(fix))))
    if result.size_check:
        screen.print(render(result.size_check))
    screen.print(stages_table(result.stages))
    screen.print(f"[bold green]bundle[/] {result.bundle.directory}\n[bold green]tarball[/] {result.bundle.tarball} "
              f"(sha256 {result.bundle.sha256})")


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"--preprocess {text!r} is not KEY=VALUE")
    return key.strip(), value.strip()


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value or ())


@cli.command()
@click.argument("path", type=click.Path())
@shape_option
@module_option
@pickle_option
@click.option("--layers", is_flag=True, help="For an int8 bundle: the int8 error of every layer against float.")
@json_option
def inspect(path, input_shape, module, trust_pickle, layers, json_output):
    """Inputs/outputs, ops, parameters, MACs and peak activation memory of a model or bundle."""
    from edgeopt.inspect import bundle_layers, inspect_path
    from edgeopt.report import analysis_tables, layers_table

    if layers:
        title, rows = bundle_layers(Path(path))
        if json_output:
            _print_json({"ok": True, "path": path, "layers": rows})
        else:
            screen.print(layers_table(rows, title))
        return
    title, analysis, manifest = inspect_path(Path(path), parse_input_shapes_cli(input_shape), module, trust_pickle)
    if json_output:
        _print_json({"ok": True, "path": path, "analysis": analysis.to_json(), "bundle": manifest})
        return
    screen.print(analysis_tables(analysis, title))


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--target", "-t", default="coral", show_default=True, type=click.Choice(["coral"]),
              help="The accelerator to check for.")
@click.option("--profile", "-p", help="Device profile for the on-chip parameter cache size (default: 6.9 MiB).")
@click.option("--calib", metavar="DATA", help="For a source model: calibration data (default: random; the op "
              "mapping does not depend on it).")
@shape_option
@module_option
@pickle_option
@json_option
def check(model, target, profile, calib, input_shape, module, trust_pickle, json_output):
    """Predict what edgetpu_compiler makes of MODEL (a .tflite from any tool, or a source model, which is
    converted to Edge TPU-ready int8 first): per-op mapping, where the graph is cut, parameter caching.
    Exit 0 when every op maps to the Edge TPU, 4 when some do not or the compiler would refuse the model."""
    from edgeopt.check import check_model

    result = check_model(Path(model), profile, calib, parse_input_shapes_cli(input_shape), module, trust_pickle)
    if json_output:
        _print_json({"ok": result.ok, **result.to_json()})
    else:
        click.echo(result.log, nl=False)
    if not result.ok:
        raise SystemExit(result.exit_code)


def parse_input_shapes_cli(values) -> dict:
    from edgeopt.frontends import parse_input_shapes

    return parse_input_shapes(_as_list(values))


@cli.group()
def profiles():
    """Device profiles (device_profiles/*.toml)."""


@profiles.command("list")
@json_option
def profiles_list(json_output):
    """All known device profiles."""
    from rich.table import Table

    from edgeopt.profiles import list_profiles
    from edgeopt.units import format_bytes

    found = list_profiles()
    if json_output:
        _print_json({"ok": True, "profiles": [p.to_json() for p in found]})
        return
    table = Table()
    for column in ("name", "description", "arch", "RAM", "storage", "accelerator"):
        table.add_column(column)
    for p in found:
        table.add_row(p.name, p.description, p.cpu["arch"], format_bytes(p.ram_bytes), format_bytes(p.storage_bytes),
                      p.accelerator["kind"])
    screen.print(table)


@profiles.command("show")
@click.argument("name")
@json_option
def profiles_show(name, json_output):
    """One profile with every number and its source."""
    from edgeopt.profiles import load_profile

    profile = load_profile(name)
    if json_output:
        _print_json({"ok": True, "profile": profile.to_json()})
        return
    screen.print(f"[bold]{profile.name}[/]: {profile.description}  ({profile.path})")
    screen.print(profile.path.read_text())


@cli.command()
@click.argument("bundle", required=False, type=click.Path())
@config_option
@click.option("--board", "-b", default="local", show_default=True,
              help="Where to run: local; qemu-aarch64 (an arm-cpu bundle under emulation); ssh://user@host[:port]; "
                   "adb or adb:SERIAL (Android).")
@click.option("--runs", default=50, show_default=True, help="Timed runs after one warm-up.")
@click.option("--threads", default=1, show_default=True)
@click.option("--identity", type=click.Path(dir_okay=False), help="ssh: the private key to log in with (ssh -i).")
@click.option("--host-key-fingerprint", metavar="SHA256:...",
              help="ssh: accept the board only with this host key (else known_hosts decides).")
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True, metavar="S",
              help="ssh, adb: seconds the runner may take on the board.")
@json_option
def smoke(bundle, board, runs, threads, identity, host_key_fingerprint, timeout, json_output):
    """Run BUNDLE (directory or .tar.gz) on a board against its golden I/O; report latency and memory."""
    from edgeopt.report import smoke_table
    from edgeopt.smoke import smoke as run_smoke

    if not bundle:
        raise UsageError("no bundle given", hint="edgeopt smoke dist/<name>-<target>-<profile>")
    options = {"identity": identity, "fingerprint": host_key_fingerprint, "timeout": timeout}
    report = run_smoke(Path(bundle), board, runs, threads, options)
    if json_output:
        _print_json({"ok": True, **report})
        return
    screen.print(smoke_table(report))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        cli.main(args=args, prog_name="edgeopt", standalone_mode=False)
    except EdgeoptError as exc:
        if "--json" in args:
            _print_json({"ok": False, "error": exc.to_json()})
        else:
            err.print(f"[bold red]error[/] ({exc.kind}, exit {exc.exit_code}): {escape(exc.message)}")
            if exc.hint:
                err.print(f"[bold]fix:[/] {escape(exc.hint)}")
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(UsageError.exit_code)
    sys.exit(0)
