"""--tvm-tracker: MetaSchedule measures through a real TVM RPC tracker and server that the test
starts on 127.0.0.1 (the server is this x86 host, so the tuning target is the host's; a board
runs the same server). Bad trackers are clear errors before any slow work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from edgeopt.cli import main
from edgeopt.frontends import FrontendOptions, load_model
from edgeopt.tvm import tracker
from edgeopt.tvm.compile import relax_module
from edgeopt.tvm.tuning import host_target, records, tune
from loopback import free_port

KEY = "edgeopt-test"


@pytest.fixture(scope="module")
def rpc(tmp_path_factory):
    """A tracker and one server registered under KEY; the server's log shows its sessions."""
    log = tmp_path_factory.mktemp("rpc") / "server.log"
    port = free_port()
    # each in its own process group: the server runs its sessions in worker processes, which go with it
    processes = [subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port",
                                   str(port), "--port-end", str(port + 1)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)]
    with log.open("w") as output:
        server_port = free_port()
        processes.append(subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1", "--port",
                                           str(server_port), "--port-end", str(server_port + 20), "--tracker",
                                           f"127.0.0.1:{port}", "--key", KEY], stdout=output, stderr=subprocess.STDOUT,
                                          start_new_session=True))
    address = tracker.Tracker("127.0.0.1", port, KEY)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if tracker.check(address) >= 1:
                    break
            except Exception:  # not up yet
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.5)
        yield address, log
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_tuning_measures_on_the_server_behind_the_tracker(rpc, one_conv, tmp_path):
    address, log = rpc
    module = relax_module(load_model(one_conv, FrontendOptions({}, False, None)).model)
    done = tune(module, host_target(), 4, None, tmp_path / "db", lambda text: None, str(address))
    assert done["trials_measured"] >= 1 and records(tmp_path / "db") == done["trials_measured"]
    assert "connected from" in log.read_text()  # the candidates ran in the server, not here


def test_the_tracker_reports_its_free_boards(rpc):
    address, _ = rpc
    assert tracker.check(address) == 1


@pytest.mark.parametrize("flags, code, fragment", [
    (["--tvm-tracker", "127.0.0.1:{port}:{key}", "--tune-trials", "4"], 0, None),
    (["--tvm-tracker", "127.0.0.1:{port}:rpi5", "--tune-trials", "4"], 8,
     "no board is registered with the TVM RPC tracker 127.0.0.1:{port} under key 'rpi5' (keys there: edgeopt-test)"),
    (["--tvm-tracker", "127.0.0.1:{closed}:rpi5", "--tune-trials", "4"], 8, "the TVM RPC tracker at 127.0.0.1:{closed} does not answer"),
    (["--tvm-tracker", "rpi5.local:9190", "--tune-trials", "4"], 2, "give host:port:key"),
    (["--tvm-tracker", "127.0.0.1:{port}:{key}"], 2, "--tvm-tracker says where to tune, not how long"),
    (["--tvm-tracker", "127.0.0.1:{port}:{key}", "--target", "onnx"], 2, "target onnx does not support --tvm-tracker"),
], ids=["ok", "unknown-key", "no-tracker", "malformed", "no-tuning", "not-arm-cpu"])
def test_bad_trackers_are_clear_errors_without_a_bundle(rpc, capsys, tmp_path, one_conv, board_without_tvm_target, flags,
                                                       code, fragment):
    """Only the checks run here (the good case stops at a bad profile, after the tracker check)."""
    address, _ = rpc
    values = {"port": address.port, "key": KEY, "closed": free_port()}
    flags = [flag.format(**values) for flag in flags]
    target = [] if "--target" in flags else ["--target", "arm-cpu"]
    profile = ["--profile", str(board_without_tvm_target)] if code == 0 else []  # exit 2 after the tracker check
    with pytest.raises(SystemExit) as done:
        main(["build", str(one_conv), *target, *profile, *flags, "--out", str(tmp_path / "out")])
    said = " ".join(capsys.readouterr().err.split())
    if code == 0:
        assert done.value.code == 2 and "has no TVM target" in said
    else:
        assert done.value.code == code and fragment.format(**values) in said
    assert not (tmp_path / "out").exists()
