"""`make demo`: build the example digits CNN for every target, smoke-test each bundle,
and show the reports. Runs the `edgeopt` command exactly as a user would."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from edgeopt.backends import TARGETS

EXAMPLES = Path("examples")
MODEL = EXAMPLES / "digits_cnn.pt2"
DATA = ["--calib", str(EXAMPLES / "digits_calib.npz"), "--eval", str(EXAMPLES / "digits_eval.npz")]
PROFILES = {"coral": "coral-usb"}  # the rest run on a Raspberry Pi 4
QUANTS = {"arm-cpu": "float32"}  # the rest: int8
BOARDS = {"arm-cpu": "qemu-aarch64"}  # an aarch64 program: emulated here; the rest run locally


def edgeopt(*args: str) -> None:
    command = [str(Path(sys.executable).parent / "edgeopt"), *args]
    print(f"\n$ {shlex.join(['edgeopt', *args])}", flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    edgeopt("inspect", str(MODEL))
    for target in TARGETS:
        profile = PROFILES.get(target, "rpi4")
        edgeopt("build", "--target", target, "--quant", QUANTS.get(target, "int8"), *DATA, "--max-drop", "0.01",
                "--profile", profile, str(MODEL))
        edgeopt("smoke", f"dist/{MODEL.stem}-{target}-{profile}.tar.gz", "--runs", "200",
                "--board", BOARDS.get(target, "local"))


if __name__ == "__main__":
    main()
