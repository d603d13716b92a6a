"""The qemu-aarch64 board and the ELF facts the boards read: an Android arm-cpu bundle carries
glibc and runs under qemu with no aarch64 libraries from this host at all."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from edgeopt.boards.qemu import QemuBoard, elf_interpreter, elf_machine
from edgeopt.tvm.runtime import CORE, GLIBC

RUNTIME_LIMIT = 10 * 1024 * 1024  # issue 14: runtime + runner add at most 10 MB (9.7 MiB with glibc)


def test_an_android_bundle_carries_glibc_and_runs_on_it_alone(android_bundle, arm_bundle):
    directory = android_bundle.directory
    assert all((directory / name).is_file() for name in GLIBC)
    manifest = json.loads((directory / "manifest.json").read_text())
    carried = manifest["artefact"]["runtime_bytes"]
    assert carried == sum((directory / name).stat().st_size for name in CORE + GLIBC) <= RUNTIME_LIMIT
    assert not any((arm_bundle.directory / name).exists() for name in GLIBC)  # a Linux board has its own
    done = QemuBoard().run(directory, "runner", ["--json", "--runs", "2"])
    assert done.returncode == 0, done.stderr
    assert done.args[:2] == ["qemu-aarch64", f"{directory}/ld-linux-aarch64.so.1"]  # no -L: nothing from this host
    assert json.loads(done.stdout.strip().splitlines()[-1])["ok"]


def test_without_its_loader_the_runner_does_not_start_where_there_is_no_glibc(arm_bundle):
    """What an Android device does with a Linux board's bundle (the adb board checks first)."""
    done = subprocess.run(["qemu-aarch64", str(arm_bundle.directory / "runner")], capture_output=True, text=True)
    assert done.returncode != 0 and "ld-linux-aarch64.so.1" in done.stderr


def test_elf_facts(arm_bundle):
    runner = arm_bundle.directory / "runner"
    assert elf_machine(runner) == "aarch64" and elf_interpreter(runner) == "/lib/ld-linux-aarch64.so.1"
    assert elf_interpreter(arm_bundle.directory / "libtvm_runtime.so") is None  # a library has no loader
    assert elf_interpreter(arm_bundle.directory / "manifest.json") is None
    assert elf_machine(Path("/bin/sh").resolve()) == "x86_64"
