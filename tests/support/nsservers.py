"""Servers that run inside a :class:`~support.netns.ServerHost`: the Python
keep-alive HTTP/1.1 server (``h1server.py``) and a private nginx (HTTP/2
over TLS with ALPN h2, HTTP/1.1), plus a certificate for the host's IP.

Both survive :meth:`ServerHost.crash`: ``start()`` again brings them back on
the same address and port, and their logs accumulate across restarts.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .certs import Certs, issue_cert
from .netns import NetnsError, ServerHost
from .nginx import find_nginx, stop_process

__all__ = ["H1Server", "NginxLine", "NsNginx", "Request", "issue_ip_cert"]

_SCRIPT = Path(__file__).with_name("h1server.py")
_START_TIMEOUT = 10.0


@dataclass(frozen=True)
class Request:
    """One request the Python server read."""

    conn: str
    method: str
    target: str


class H1Server:
    """``h1server.py`` listening on ``bind:port`` inside ``host``."""

    def __init__(self, host: ServerHost, directory: Path, port: int = 8080,
                 bind: str | None = None) -> None:
        self.host = host
        self.port = port
        self.bind = bind or host.ip
        self.log = directory / f"h1-{port}.log"
        self.stderr_log = directory / f"h1-{port}.stderr"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.bind}:{self.port}"

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Start the server; returns once it listens (link up or down)."""
        with open(self.stderr_log, "ab") as err:
            proc = self.host.popen(
                [sys.executable, _SCRIPT, self.bind, str(self.port), self.log],
                stdout=subprocess.PIPE, stderr=err,
            )
        self._proc = proc
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, left))
            if not ready:
                raise NetnsError(f"h1server did not start in {timeout} s: {self._stderr()}")
            ch = os.read(proc.stdout.fileno(), 1)
            if not ch:
                raise NetnsError(f"h1server exited {proc.wait()}: {self._stderr()}")
            line += ch
        if line.strip() != b"READY":
            raise NetnsError(f"h1server said {line!r}")

    def stop(self) -> None:
        """Kill the server if it still runs (crash() usually did already)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=5)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()

    def _stderr(self) -> str:
        try:
            return self.stderr_log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _lines(self) -> list[list[str]]:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        # a line still being written has no newline yet: skip it
        return [ln.split(" ") for ln in text.split("\n")[:-1]]

    def requests(self, method: str | None = None) -> list[Request]:
        """Every request read so far (all generations of the server)."""
        out = [Request(p[1], p[2], p[3]) for p in self._lines() if p[0] == "R" and len(p) == 4]
        return [r for r in out if method is None or r.method == method]

    def connections_used(self, marker: str = "") -> set[str]:
        """Connections that carried a request whose target contains ``marker``."""
        return {r.conn for r in self.requests() if marker in r.target}

    def count_by_target(self, method: str) -> Counter[str]:
        return Counter(r.target for r in self.requests(method))

    def wait_requests(self, marker: str, count: int, timeout: float = 5.0) -> list[Request]:
        """Requests whose target contains ``marker``, once there are ``count``
        (or what there is after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            got = [r for r in self.requests() if marker in r.target]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.02)


def issue_ip_cert(certs: Certs, ip: str, directory: Path) -> tuple[Path, Path]:
    """A server certificate for ``ip`` (IP SAN) signed by the test CA of
    ``certs``, so a client with ``tls_ca_path=certs.capath`` verifies it."""
    return issue_cert(certs, "ip", f"IP:{ip}", directory, subject=f"/CN={ip}")


# nginx's connection serial restarts with nginx: $pid tells generations apart.
_LOG_FORMAT = "$pid $connection $connection_requests $server_port $server_protocol $status $request_uri"

_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    log_format rig '{fmt}';
    access_log {d}/access.log rig;
    default_type text/plain;
    keepalive_requests 100000;
    keepalive_timeout 300s;
    http2_max_concurrent_streams 256;
    server {{
        listen {ip}:{tls_port} ssl http2;
        listen {ip}:{h1_port};
{extra_listen}        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ return 200 "ok"; }}
{upstream}    }}
}}
"""

_UPSTREAM = """\
        # slow answers from a backend in the same namespace
        location /slow {{
            proxy_pass http://{upstream};
            proxy_read_timeout 60s;
        }}
"""


@dataclass(frozen=True)
class NginxLine:
    """One access-log line."""

    pid: int
    connection: int
    connection_requests: int
    port: int
    protocol: str
    status: int
    uri: str

    @property
    def conn(self) -> tuple[int, int]:
        """Connection identity across nginx restarts."""
        return (self.pid, self.connection)


class NsNginx:
    """nginx inside ``host``: TLS (ALPN h2, http/1.1) on ``tls_port``, plain
    HTTP/1.1 on ``h1_port``, optionally h2c with prior knowledge on
    ``h2c_port`` and TLS without h2 on ``tls1_port``; every location answers 200 "ok", except
    ``/slow...``, proxied to ``upstream`` ("addr:port") when given."""

    def __init__(self, host: ServerHost, directory: Path, cert: Path, key: Path,
                 tls_port: int = 8443, h1_port: int = 8081,
                 upstream: str | None = None, h2c_port: int | None = None,
                 tls1_port: int | None = None) -> None:
        binary = find_nginx()
        if binary is None:
            raise NetnsError("nginx is not installed (apt-get install nginx-light)")
        self.binary = binary
        self.host = host
        self.directory = directory
        self.cert, self.key = cert, key
        self.tls_port, self.h1_port = tls_port, h1_port
        self.upstream = upstream
        self.h2c_port, self.tls1_port = h2c_port, tls1_port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def tls_url(self) -> str:
        return f"https://{self.host.ip}:{self.tls_port}"

    @property
    def h1_url(self) -> str:
        return f"http://{self.host.ip}:{self.h1_port}"

    @property
    def h2c_url(self) -> str:
        """HTTP/2 with prior knowledge (``http_version=2``): needs ``h2c_port``."""
        return f"http://{self.host.ip}:{self.h2c_port}"

    @property
    def tls1_url(self) -> str:
        """HTTPS that offers no ALPN h2 (HTTP/1.1 only): needs ``tls1_port``."""
        return f"https://{self.host.ip}:{self.tls1_port}"

    @property
    def ports(self) -> list[int]:
        """Every port it listens on."""
        extra = [p for p in (self.h2c_port, self.tls1_port) if p is not None]
        return [self.tls_port, self.h1_port, *extra]

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    def _write_conf(self) -> Path:
        d = self.directory
        (d / "tmp").mkdir(parents=True, exist_ok=True)
        conf = d / "nginx.conf"
        upstream = _UPSTREAM.format(upstream=self.upstream) if self.upstream else ""
        extra = ""
        if self.h2c_port is not None:
            extra += f"        listen {self.host.ip}:{self.h2c_port} http2;\n"
        if self.tls1_port is not None:
            extra += f"        listen {self.host.ip}:{self.tls1_port} ssl;\n"
        conf.write_text(_CONF.format(
            d=d, fmt=_LOG_FORMAT, ip=self.host.ip, tls_port=self.tls_port,
            h1_port=self.h1_port, cert=self.cert, key=self.key, upstream=upstream,
            extra_listen=extra,
        ))
        return conf

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Start nginx in the namespace; returns once both ports listen."""
        conf = self._write_conf()
        args = [self.binary, "-p", str(self.directory), "-c", str(conf)]
        check = self.host.run([*args, "-t"], check=False, timeout=30)
        if check.returncode:
            raise NetnsError(f"nginx -t failed: {check.stderr.strip()}")
        self._proc = proc = self.host.popen(args, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        for port in self.ports:
            try:
                self.host.wait_listening(port, timeout=max(0.1, deadline - time.monotonic()))
            except NetnsError:
                raise NetnsError(f"nginx (exit {proc.poll()}) not listening: {self._errors()}")

    def stop(self) -> None:
        """Graceful stop if it still runs (crash() usually killed it)."""
        proc, self._proc = self._proc, None
        stop_process(proc, signal.SIGQUIT)

    def _errors(self) -> str:
        try:
            return (self.directory / "error.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def log_lines(self) -> list[NginxLine]:
        try:
            text = self.access_log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        out = []
        for line in text.split("\n")[:-1]:
            p = line.split(" ")
            if len(p) == 7:
                out.append(NginxLine(int(p[0]), int(p[1]), int(p[2]), int(p[3]), p[4],
                                     int(p[5]), p[6]))
        return out

    def wait_log(self, marker: str, count: int, timeout: float = 5.0) -> list[NginxLine]:
        """Log lines whose URI contains ``marker``, once there are ``count``
        (or what there is after ``timeout``): nginx logs after replying."""
        deadline = time.monotonic() + timeout
        while True:
            got = [ln for ln in self.log_lines() if marker in ln.uri]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.02)
