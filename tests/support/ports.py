"""Loopback ports: free ones, and waiting until something listens.

Everything here binds or connects to 127.0.0.1 only.  A "free" port is one
the OS picked for a socket bound to port 0 and released again: free at
that moment, so use it at once (the window is small, not zero).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterable

__all__ = ["HOST", "PortError", "free_port", "free_ports", "port_open", "wait_listening"]

HOST = "127.0.0.1"


class PortError(RuntimeError):
    """A server did not come to listen on its ports."""


def free_port(host: str = HOST) -> int:
    """An OS-chosen free TCP port on ``host`` (bound to 0, then released)."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = HOST) -> list[int]:
    """``n`` distinct free TCP ports: all are bound at once before any is
    released, so the OS cannot hand out the same one twice."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port: int, host: str = HOST, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_listening(
    ports: Iterable[int],
    proc: subprocess.Popen[bytes] | None = None,
    timeout: float = 10.0,
    host: str = HOST,
) -> None:
    """Return once every port accepts connections; raise :class:`PortError`
    if ``proc`` (the server's process, when given) exits first or
    ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    pending = set(ports)
    while pending:
        if proc is not None and proc.poll() is not None:
            raise PortError(f"exited with {proc.returncode}")
        pending = {p for p in pending if not port_open(p, host)}
        if not pending:
            return
        if time.monotonic() > deadline:
            raise PortError(f"did not listen on {sorted(pending)} in {timeout:g} s")
        time.sleep(0.05)
