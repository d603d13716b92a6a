"""Tuning on the board itself: a TVM RPC tracker (`python -m tvm.exec.rpc_tracker`) with the
board's RPC server registered under a key (`python -m tvm.exec.rpc_server --tracker
HOST:PORT --key KEY` on the board). MetaSchedule's RPC runner then measures each candidate on
the board; this module reads `--tvm-tracker host:port:key` and checks, before any slow work,
that the tracker answers and has a board under that key."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from edgeopt.errors import BoardError, UsageError

CONNECT_TIMEOUT_S = 5.0  # TVM's own connect retries for a minute; a wrong address should fail at once
SESSION_TIMEOUT_S = 60  # one candidate's upload, load and timing on a slow board
SETUP_HINT = ("On the board: python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY; on a machine both "
              "reach: python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port PORT.")


@dataclass(frozen=True)
class Tracker:
    host: str
    port: int
    key: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port}:{self.key}"


def parse(spec: str) -> Tracker:
    host, _, rest = spec.rpartition(":")
    host, _, port = host.rpartition(":")
    if not (host and port.isdigit() and rest):
        raise UsageError(f"--tvm-tracker {spec!r}: give host:port:key, e.g. 192.168.1.20:9190:rpi4",
                         hint=SETUP_HINT)
    return Tracker(host, int(port), rest)


def check(tracker: Tracker) -> int:
    """The number of free boards under the tracker's key; a clear error when there is none."""
    from tvm import rpc

    try:
        socket.create_connection((tracker.host, tracker.port), timeout=CONNECT_TIMEOUT_S).close()
        queues = rpc.connect_tracker(tracker.host, tracker.port).summary()["queue_info"]
    except (OSError, RuntimeError) as exc:
        raise BoardError(f"the TVM RPC tracker at {tracker.host}:{tracker.port} does not answer ({exc})",
                         hint=SETUP_HINT) from None
    if tracker.key not in queues:
        known = ", ".join(sorted(queues)) or "none"
        raise BoardError(f"no board is registered with the TVM RPC tracker {tracker.host}:{tracker.port} under key "
                         f"{tracker.key!r} (keys there: {known})", hint=SETUP_HINT)
    return int(queues[tracker.key].get("free", 0))


def runner(tracker: Tracker):
    """MetaSchedule's runner measuring on the board behind the tracker."""
    from tvm.s_tir import meta_schedule as ms

    config = ms.runner.RPCConfig(tracker_host=tracker.host, tracker_port=tracker.port, tracker_key=tracker.key,
                                 session_timeout_sec=SESSION_TIMEOUT_S)
    return ms.runner.RPCRunner(rpc_config=config, max_workers=1)
