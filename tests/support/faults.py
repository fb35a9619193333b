"""Faults injected into a :class:`~support.netns.ServerHost` with nftables.

Every fault is a context manager: its rules are added to the rig's chains
inside the host's namespace when it is entered and deleted (by handle, so
other faults stay) when it is left, also when the test fails::

    faults = Faults(host)            # before the first connection (see below)
    with faults.loss(5):             # 5% of packets dropped both ways
        ...
    with faults.blackhole(port):     # everything dropped from now on
        ...

Byte and packet counts (``ct original bytes``, ``ct reply packets``) need
conntrack accounting, which the kernel attaches to a connection only when
it is created: :class:`Faults` turns accounting on and keeps conntrack
active in the namespace (a counting rule), so make it before the client
connects.  Counts are IP-level: each packet's headers included.

``reject with tcp reset`` only answers a packet the client sends; a client
silently waiting for the rest of a response is reset from the server's side
instead (:meth:`Faults.kill_connections`: ``ss -K`` in the namespace).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from .netns import NetnsError, ServerHost

__all__ = ["Faults"]

_NFT = shutil.which("nft") or "/usr/sbin/nft"
_SS = shutil.which("ss") or "/usr/bin/ss"
_TABLE = "hacrig"
_HANDLE_RE = re.compile(r"# handle (\d+)")


class Faults:
    """The faults of one host (see the module docstring)."""

    def __init__(self, host: ServerHost) -> None:
        self.host = host
        host.run(["sysctl", "-q", "-w", "net.netfilter.nf_conntrack_acct=1"])
        # a non-terminal rule that uses conntrack keeps it tracking every
        # connection of the namespace from its first packet
        self._base = self._add("input ct state new counter")

    # ------------------------------------------------------------ rules

    def _add(self, rule: str) -> tuple[str, int]:
        chain = rule.split(" ", 1)[0]
        out = self.host.run([_NFT, "--echo", "--handle", "add", "rule", "inet", _TABLE,
                             *rule.split(" ")]).stdout
        m = _HANDLE_RE.search(out)
        if m is None:
            raise NetnsError(f"nft printed no handle for {rule!r}: {out!r}")
        return chain, int(m.group(1))

    def _delete(self, chain: str, handle: int) -> None:
        self.host.run([_NFT, "delete", "rule", "inet", _TABLE, chain, "handle", str(handle)],
                      check=False)

    @contextmanager
    def rules(self, *rules: str) -> Iterator[None]:
        """``rules`` (each starting with its chain, as ServerHost.nft())
        while the block runs; deleted afterwards whatever happens."""
        added: list[tuple[str, int]] = []
        try:
            for rule in rules:
                added.append(self._add(rule))
            yield
        finally:
            for chain, handle in reversed(added):
                self._delete(chain, handle)

    # ------------------------------------------------------------ the faults

    @staticmethod
    def _ports(port: int | None) -> tuple[str, str]:
        if port is None:
            return "meta l4proto tcp", "meta l4proto tcp"
        return f"tcp dport {port}", f"tcp sport {port}"

    def loss(self, percent: int, port: int | None = None) -> AbstractContextManager[None]:
        """Random loss of ``percent``% of the TCP packets, each way."""
        into, out = self._ports(port)
        return self.rules(f"input {into} numgen random mod 100 < {percent} drop",
                          f"output {out} numgen random mod 100 < {percent} drop")

    def blackhole(self, port: int | None = None) -> AbstractContextManager[None]:
        """Every packet (of ``port``'s connections) dropped from now on,
        established connections included: no FIN, no RST, no answer."""
        into, out = self._ports(port)
        return self.rules(f"input {into} drop", f"output {out} drop")

    def blackhole_after_handshake(self, port: int) -> AbstractContextManager[None]:
        """New connections to ``port`` complete the TCP handshake (SYN,
        SYN-ACK, ACK), then nothing more passes either way: the client is
        connected and never hears a byte."""
        return self.rules(f"input tcp dport {port} ct original packets > 2 drop",
                          f"output tcp sport {port} ct reply packets > 1 drop")

    def drop_after(self, port: int, nbytes: int) -> AbstractContextManager[None]:
        """The server's packets on a connection of ``port`` are dropped once
        it has sent more than ``nbytes`` (IP bytes, its SYN-ACK included):
        the response stops there, the connection stays open.  RSTs pass, so
        :meth:`kill_connections` can still end it."""
        return self.rules(f"output tcp sport {port} tcp flags & rst == rst accept",
                          f"output tcp sport {port} ct reply bytes > {nbytes} drop")

    def reset_on_send(self, port: int, nbytes: int = 0) -> AbstractContextManager[None]:
        """A packet the client sends on a connection of ``port`` once it has
        sent more than ``nbytes`` (IP bytes) is answered with a RST."""
        return self.rules(f"input tcp dport {port} ct original bytes > {nbytes} "
                          "reject with tcp reset")

    def kill_connections(self, port: int) -> int:
        """Destroy the server's established sockets on ``port`` (``ss -K``:
        the kernel sends each client a RST).  Returns how many there were."""
        filt = ["state", "established", "(", "sport", "=", f":{port}", ")"]
        listed = self.host.run([_SS, "-Htn", *filt]).stdout
        n = sum(1 for ln in listed.splitlines() if ln.strip())
        if n:
            self.host.run([_SS, "-K", "-Htn", *filt])
        return n

    def wait_server_sockets(self, port: int, count: int = 1, timeout: float = 5.0) -> int:
        """Until the server has ``count`` established sockets on ``port``."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.host.run([_SS, "-Htn", "state", "established", "(", "sport", "=",
                                 f":{port}", ")"]).stdout
            n = sum(1 for ln in out.splitlines() if ln.strip())
            if n >= count or time.monotonic() > deadline:
                return n
            time.sleep(0.02)

    @contextmanager
    def link_outage(self) -> Iterator[None]:
        """The link is down while the block runs; up again afterwards."""
        self.host.link_down()
        try:
            yield
        finally:
            self.host.link_up()

    def close(self) -> None:
        """Delete the conntrack rule (the namespace's own deletion would too)."""
        self._delete(*self._base)
