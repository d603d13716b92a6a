"""A plain (non-editable) `pip install .` must find device_profiles/ and targets/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_data_and_works_installed(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("edgeopt-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "edgeopt/device_profiles/rpi4.toml" in names
    assert {"edgeopt/targets/onnx/runner.py", "edgeopt/targets/common/edgeopt_runner.py"} <= set(names)
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "edgeopt").rglob("*.py")}
    assert modules <= set(names), f"subpackages missing from pyproject.toml: {sorted(modules - set(names))}"

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    code = ("import json, edgeopt, edgeopt.resources as r; from edgeopt.profiles import list_profiles; "
            "print(json.dumps([edgeopt.__file__, str(r.data_dir('targets')), len(list_profiles())]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(site)})
    module, targets, profiles = json.loads(done.stdout)
    assert module.startswith(str(site)) and targets.startswith(str(site)) and profiles == 7
