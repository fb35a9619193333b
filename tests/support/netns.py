"""The network-fault rig: a server "host" in its own network namespace.

Each :class:`ServerHost` is a private namespace joined to the root namespace
(where the client under test runs) by a veth pair on its own /30::

    root ns: <root_if> 10.213.X.1/30  <==veth==>  <host_if> 10.213.X.2/30 :host ns

Both ends carry permanent ARP entries, so :meth:`ServerHost.link_down` is a
black hole (packets silently dropped, as on a routed network) rather than an
ARP failure that would hand the client an immediate EHOSTUNREACH.  The link
is taken down on the *host* side: the root side then only loses carrier and
keeps its route and address, so the client's kernel keeps sending into the
void.  (Downing the root side instead removes the client's route, and the
client sees ENETUNREACH at once: not an outage it cannot see.)

:meth:`ServerHost.crash` is "the host forgets every connection": every
process in the namespace is SIGKILLed and every TCP socket left in it
(orphans retransmitting their FIN, say) is destroyed with ``ss -K``; with the
link down none of their FIN/RST segments reach the client, whose pooled
connections therefore stay ESTABLISHED until it sends on them and the
returned host answers with a RST.

Namespaces and veths are named after the pid plus a counter and removed on
``close()``/``__exit__``, at interpreter exit, and (for a crashed earlier
run whose pid is gone) when the next host is made.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["NetnsError", "ServerHost", "available"]

_IP = shutil.which("ip") or "/usr/sbin/ip"
_NFT = shutil.which("nft") or "/usr/sbin/nft"
_SS = shutil.which("ss") or "/usr/bin/ss"

_TABLE = "hacrig"  # the rig's own nftables table inside each host namespace
_SUBNET = "10.213"  # X in 10.213.X.0/30 is picked per host
_CMD_TIMEOUT = 10.0
_IFNAMSIZ = 15  # interface names longer than this are refused by the kernel

# Tag and metric of the per-host safety route (below).
_GUARD_PROTO = "242"
_GUARD_METRIC = "4242"

_NS_RE = re.compile(r"^hac(\d+)n\d+$")
_ROOT_IF_RE = re.compile(r"^hr(\d+)x\d+$")

_counter = itertools.count(1)
_lock = threading.RLock()  # subnet choice + registry (close() may run under it)
_live: dict[int, ServerHost] = {}
_atexit_registered = False
_swept = False


class NetnsError(RuntimeError):
    """A namespace, veth, route or nftables command failed."""


def _run(
    args: Sequence[str], *, timeout: float = _CMD_TIMEOUT, check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, input=input
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"{' '.join(args)}: {exc}") from exc
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed run whose parent
    has not reaped it yet owns nothing any more)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # the state follows the parenthesised command name, which may hold spaces
    return stat.rpartition(")")[2].split()[0] != "Z"


def _ns_pids(name: str) -> list[int]:
    out = _run([_IP, "netns", "pids", name], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def _sweep_stale() -> None:
    """Remove namespaces/veths a previous run left when it died without atexit
    (SIGKILL): only names of this rig whose owner pid no longer exists."""
    names = _run([_IP, "netns", "list"], check=False).stdout.split("\n")
    for line in names:
        name = line.split(" ")[0].strip()
        m = _NS_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            for pid in _ns_pids(name):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _run([_IP, "netns", "del", name], check=False)
    for ifname in os.listdir("/sys/class/net"):
        m = _ROOT_IF_RE.match(ifname)
        if m and not _pid_alive(int(m.group(1))):
            _run([_IP, "link", "del", ifname], check=False)
    # guard routes of hosts that no longer have a veth
    live = _run([_IP, "-4", "-o", "addr", "show"], check=False).stdout
    out = _run([_IP, "-4", "route", "show", "proto", _GUARD_PROTO], check=False).stdout
    for m in re.finditer(r"blackhole (10\.213\.\d+\.0/30)", out):
        if m.group(1)[:-4] + "1/30" not in live:
            _run([_IP, "route", "del", "blackhole", m.group(1), "proto", _GUARD_PROTO,
                  "metric", _GUARD_METRIC], check=False)


def _close_all() -> None:
    with _lock:
        hosts = list(_live.values())
    for host in hosts:
        host.close()


def _used_third_octets() -> set[int]:
    """X of every 10.213.X.* address or route already in the root namespace."""
    used: set[int] = set()
    for args in ([_IP, "-4", "-o", "addr", "show"], [_IP, "-4", "route", "show", "table", "all"]):
        out = _run(args, check=False).stdout
        for m in re.finditer(r"\b10\.213\.(\d+)\.\d+", out):
            used.add(int(m.group(1)))
    return used


class ServerHost:
    """A server host in its own network namespace, reached over a veth pair.

    ``with ServerHost() as host:`` sets everything up; ``host.ip`` is the
    server-side address, ``host.popen([...])`` starts a server in it.
    """

    def __init__(self) -> None:
        pid = os.getpid()
        k = next(_counter)
        self.name = f"hac{pid}n{k}"
        self.root_if = f"hr{pid}x{k}"
        self.host_if = f"hs{pid}x{k}"
        if len(self.root_if) > _IFNAMSIZ or len(self.host_if) > _IFNAMSIZ:
            raise NetnsError(f"interface name {self.root_if!r} longer than {_IFNAMSIZ}")
        self.octet = 0
        self.root_ip = ""
        self.ip = ""
        self.root_mac = ""
        self.host_mac = ""
        self._procs: list[subprocess.Popen[Any]] = []
        self._started = False
        self._closed = False
        self._link_up = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> ServerHost:
        """Create the namespace, the veth pair, addresses, static ARP, nft table."""
        global _atexit_registered, _swept
        with _lock:
            if not _swept:
                _swept = True
                _sweep_stale()
            if not _atexit_registered:
                atexit.register(_close_all)
                _atexit_registered = True
            used = _used_third_octets()
            start = os.getpid() % 254
            free = [(start + i) % 254 + 1 for i in range(254)]
            free = [x for x in free if x not in used]
            if not free:
                raise NetnsError(f"no free {_SUBNET}.X.0/30 subnet left")
            self.octet = free[0]
            self.root_ip = f"{_SUBNET}.{self.octet}.1"
            self.ip = f"{_SUBNET}.{self.octet}.2"
            # locally administered MACs derived from the subnet: stable per host
            self.root_mac = f"02:68:61:63:{self.octet:02x}:01"
            self.host_mac = f"02:68:61:63:{self.octet:02x}:02"
            _live[id(self)] = self
            self._started = True
            try:
                # Claim the subnet while holding the lock so a second host in
                # this process cannot pick the same X.
                # Safety net first: should the connected route ever go (the
                # root end down or deleted), traffic to the host's subnet must
                # be dropped here, never follow the default route off the box.
                _run([_IP, "route", "replace", "blackhole", f"{_SUBNET}.{self.octet}.0/30",
                      "proto", _GUARD_PROTO, "metric", _GUARD_METRIC])
                self._guard = True
                _run([_IP, "netns", "add", self.name])
                _run([_IP, "link", "add", self.root_if, "address", self.root_mac, "type", "veth",
                      "peer", "name", self.host_if, "address", self.host_mac,
                      "netns", self.name])
                _run([_IP, "addr", "add", f"{self.root_ip}/30", "dev", self.root_if])
            except BaseException:
                self.close()
                raise
        try:
            self._disable_ipv6_root()
            _run([_IP, "link", "set", self.root_if, "up"])
            self._ip_ns("link", "set", "lo", "up")
            self._ip_ns("addr", "add", f"{self.ip}/30", "dev", self.host_if)
            # Orphaned sockets give up quickly: a fallback should ss -K fail.
            self.run(["sysctl", "-q", "-w", "net.ipv4.tcp_orphan_retries=1",
                      f"net.ipv6.conf.{self.host_if}.disable_ipv6=1"], check=False)
            self._ip_ns("link", "set", self.host_if, "up")
            self._set_neighbours()
            self._nft_apply(
                f"table inet {_TABLE} {{\n"
                "  chain input { type filter hook input priority filter; policy accept; }\n"
                "  chain output { type filter hook output priority filter; policy accept; }\n"
                "}\n"
            )
            self._link_up = True
            self._wait_carrier(up=True, timeout=5.0)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill everything in the namespace, delete veth and namespace; idempotent."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        procs = list(self._procs)  # kill_all() forgets those that exited
        try:
            self.kill_all(timeout=5.0)
        except NetnsError:
            pass
        for proc in procs:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        # Deleting the root end takes the peer with it at once; a namespace
        # deletion alone frees its veth only asynchronously.
        _run([_IP, "link", "del", self.root_if], check=False)
        _run([_IP, "netns", "del", self.name], check=False)
        if self._guard:
            _run([_IP, "route", "del", "blackhole", f"{_SUBNET}.{self.octet}.0/30",
                  "proto", _GUARD_PROTO, "metric", _GUARD_METRIC], check=False)
        with _lock:
            _live.pop(id(self), None)

    def __enter__(self) -> ServerHost:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("up" if self._link_up else "down")
        return f"<ServerHost {self.name} {self.ip} link {state}>"

    # ------------------------------------------------------------ processes

    def exec_args(self, cmd: Sequence[str | os.PathLike[str]]) -> list[str]:
        """``cmd`` prefixed so that it runs inside the namespace."""
        return [_IP, "netns", "exec", self.name, *map(str, cmd)]

    def run(
        self, cmd: Sequence[str | os.PathLike[str]], *, timeout: float = _CMD_TIMEOUT,
        check: bool = True, input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the namespace to completion (text output captured)."""
        return _run(self.exec_args(cmd), timeout=timeout, check=check, input=input)

    def popen(self, cmd: Sequence[str | os.PathLike[str]], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``cmd`` inside the namespace; it is killed by crash()/close().

        ``ip netns exec`` execs the command itself, so the Popen's pid is the
        server's own pid."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc: subprocess.Popen[Any] = subprocess.Popen(self.exec_args(cmd), **kwargs)
        self._procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        """Every process whose network namespace is this host's."""
        return _ns_pids(self.name)

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the namespace and wait until they are gone."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            for proc in self._procs:
                proc.poll()  # reap our own children so they do not linger as zombies
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise NetnsError(f"processes {pids} in {self.name} survived SIGKILL")
            time.sleep(0.02)
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired as exc:
                raise NetnsError(f"pid {proc.pid} did not exit") from exc
        self._procs = [p for p in self._procs if p.returncode is None]

    def tcp_sockets(self) -> list[str]:
        """``ss`` lines of every TCP socket in the namespace (any state)."""
        out = self.run([_SS, "-Htan"]).stdout
        return [ln for ln in out.splitlines() if ln.strip()]

    def crash(self, timeout: float = 5.0) -> None:
        """The host loses every process and every connection at once.

        Call it with the link down: the RSTs that killing sends are then
        lost, so the client learns nothing until it talks to the host again.
        """
        self.kill_all(timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            left = self.tcp_sockets()
            if not left:
                return
            # destroys the socket (a RST goes out, into the black hole)
            self.run([_SS, "-K", "-Htan"], check=False)
            if time.monotonic() > deadline:
                raise NetnsError(f"TCP sockets survived in {self.name}: {left}")
            time.sleep(0.05)

    # ------------------------------------------------------------ the link

    @property
    def link_is_up(self) -> bool:
        return self._link_up

    def link_down(self) -> None:
        """Black-hole the link: the host side goes administratively down.

        The root side only loses carrier: it keeps its address, route and
        permanent ARP entry, so the client's packets are silently dropped."""
        self._ip_ns("link", "set", self.host_if, "down")
        self._link_up = False
        self._wait_carrier(up=False, timeout=5.0)

    def link_up(self, wait_port: int | None = None, timeout: float = 5.0) -> None:
        """Bring the link back; with ``wait_port``, also wait until a TCP
        connect from the root namespace to ``ip:wait_port`` succeeds."""
        self._ip_ns("link", "set", self.host_if, "up")
        # An administrative down flushes even permanent neighbour entries
        # on that device: put them back before anything is sent.
        self._set_neighbours()
        self._link_up = True
        self._wait_carrier(up=True, timeout=timeout)
        if wait_port is not None:
            self.wait_reachable(wait_port, timeout=timeout)

    def wait_reachable(self, port: int, timeout: float = 5.0) -> None:
        """Until a connect from the root namespace to ``ip:port`` succeeds."""
        deadline = time.monotonic() + timeout
        last: OSError | None = None
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.ip, port), timeout=0.5):
                    return
            except OSError as exc:
                last = exc
                time.sleep(0.02)
        raise NetnsError(f"{self.ip}:{port} not reachable after {timeout} s: {last}")

    def wait_listening(self, port: int, timeout: float = 5.0) -> None:
        """Until something listens on TCP ``port`` inside the namespace
        (works with the link down, unlike a connect from outside)."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.run([_SS, "-Hltn", f"sport = :{port}"]).stdout
            if out.strip():
                return
            if time.monotonic() > deadline:
                raise NetnsError(f"nothing listens on port {port} in {self.name}")
            time.sleep(0.02)

    def client_connections(self, port: int) -> int:
        """ESTABLISHED sockets in the root namespace towards ``ip:port``: the
        connections the client still believes are open."""
        out = _run([_SS, "-Htn", "state", "established", "dst", self.ip,
                    "dport", "=", f":{port}"]).stdout
        return sum(1 for ln in out.splitlines() if ln.strip())

    # ------------------------------------------------------------ nftables

    def nft(self, *rules: str) -> None:
        """Add rules to the rig's chains inside the namespace, atomically.

        Each rule starts with its chain: ``"input tcp dport 80 drop"``,
        ``"input tcp dport 443 reject with tcp reset"``, ``"output tcp sport 80 drop"``.
        """
        self._nft_apply("".join(f"add rule inet {_TABLE} {rule}\n" for rule in rules))

    def nft_flush(self) -> None:
        """Remove every rule added with nft() (the chains stay, accepting)."""
        self._nft_apply(f"flush chain inet {_TABLE} input\nflush chain inet {_TABLE} output\n")

    def nft_ruleset(self) -> str:
        """The rig's table as nft prints it (for failure messages)."""
        return self.run([_NFT, "list", "table", "inet", _TABLE]).stdout

    # ------------------------------------------------------------ internals

    def _ip_ns(self, *args: str) -> None:
        _run([_IP, "-n", self.name, *args])

    def _nft_apply(self, text: str) -> None:
        self.run([_NFT, "-f", "-"], input=text)

    def _set_neighbours(self) -> None:
        _run([_IP, "neigh", "replace", self.ip, "lladdr", self.host_mac,
              "dev", self.root_if, "nud", "permanent"])
        self._ip_ns("neigh", "replace", self.root_ip, "lladdr", self.root_mac,
                    "dev", self.host_if, "nud", "permanent")

    def _disable_ipv6_root(self) -> None:
        # no router solicitations or DAD on the rig's link
        knob = Path(f"/proc/sys/net/ipv6/conf/{self.root_if}/disable_ipv6")
        try:
            knob.write_text("1")
        except OSError:
            pass

    def _wait_carrier(self, *, up: bool, timeout: float) -> None:
        """Until the root end's carrier matches ``up`` (veth reports the
        peer's administrative state as our carrier)."""
        path = Path(f"/sys/class/net/{self.root_if}/carrier")
        deadline = time.monotonic() + timeout
        while True:
            try:
                carrier = path.read_text().strip() == "1"
            except OSError:
                carrier = False  # reading carrier of a down device fails with EINVAL
            if carrier == up:
                return
            if time.monotonic() > deadline:
                raise NetnsError(f"{self.root_if} carrier not {'up' if up else 'down'}")
            time.sleep(0.01)


@functools.lru_cache(maxsize=None)
def available() -> str | None:
    """None when a ServerHost (namespace, veth, nft table) can be made here,
    else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in (_IP, _NFT, _SS):
        if not os.access(tool, os.X_OK):
            return f"{os.path.basename(tool)} is not installed (iproute2 / nftables)"
    try:
        with ServerHost() as host:
            host.nft("input tcp dport 9 drop")
            host.nft_flush()
            host.link_down()
            host.link_up()
    except NetnsError as exc:
        return f"cannot build a namespaced server host: {exc}"
    return None
