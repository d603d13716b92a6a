"""Servers the tests start on 127.0.0.1 (sshd, TVM's RPC tracker and server) need free ports."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
