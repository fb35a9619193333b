"""A private nginx on 127.0.0.1 for HTTP/2 tests (h2c, TLS + ALPN h2, HTTP/1.1).

:class:`NginxProcess` runs an nginx with a given configuration in the
foreground (the benchmarks' nginx uses it too); :class:`Nginx` is the
tests' own configuration on top of it.

Everything lives in one temporary directory: configuration, pid file, error
and access logs, temp paths.  Nothing under /etc/nginx or /var is touched.
Run by root, the workers still drop to nginx's default user: they need
nothing from the directory (the master opens the logs and the key, and
every location is a ``return``, except ``/slow/`` of the slow h2c listener,
proxied to a Python backend in this process).  The access log records ``$connection`` (nginx's connection serial number) so
a test can count how many TCP connections a batch of requests used.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from .ports import HOST, PortError, free_ports, wait_listening

__all__ = ["LogLine", "Nginx", "NginxError", "NginxProcess", "find_nginx", "stop_process"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
# Longest delay the slow backend honours, s: a test asking for more still
# gets its answer in bounded time.
_MAX_DELAY = 10.0

# One field per space; $request_uri never contains a raw space.
_LOG_FORMAT = "$connection $connection_requests $server_port $server_protocol $status $request_uri"

_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;

    log_format conns '{fmt}';
    access_log {d}/access.log conns;
    default_type text/plain;
    keepalive_requests 100000;
    http2_max_concurrent_streams 256;

    # HTTP/2 over cleartext: prior knowledge only (no h2c upgrade in nginx)
    server {{
        listen {host}:{h2c_port} http2;
        location / {{ return 200 "ok"; }}
    }}

    # h2c again, closing idle connections after 1 s
    server {{
        listen {host}:{h2c_idle_port} http2;
        keepalive_timeout 1s;
        location / {{ return 200 "ok"; }}
    }}

    # HTTPS, HTTP/2 negotiated with ALPN (h2, http/1.1)
    server {{
        listen {host}:{tls_port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ return 200 "ok"; }}
    }}

    # plain HTTP/1.1
    server {{
        listen {host}:{h1_port};
        location / {{ return 200 "ok"; }}
    }}

    # h2c with a slow location: /slow/<ms>... answers 200 "slow" after <ms>
    # milliseconds (proxied to a Python backend); the rest answers at once
    server {{
        listen {host}:{h2c_slow_port} http2;
        location / {{ return 200 "ok"; }}
        location /slow/ {{
            proxy_pass http://{host}:{backend_port};
            proxy_read_timeout 30s;
        }}
    }}
}}
"""


class NginxError(RuntimeError):
    """nginx could not be configured or started."""


@dataclass(frozen=True)
class LogLine:
    """One access-log line."""

    connection: int
    connection_requests: int
    port: int
    protocol: str
    status: int
    uri: str


def find_nginx() -> str | None:
    """Path of the nginx binary, or None when it is not installed."""
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def stop_process(
    proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGQUIT, timeout: float = _STOP_TIMEOUT
) -> None:
    """Send ``sig`` (SIGQUIT: nginx's graceful stop) and wait; SIGKILL if the
    process lingers past ``timeout``.  Nothing to do if it already exited."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


class NginxProcess:
    """One nginx in the foreground (``daemon off`` in the configuration)
    from ``directory``: configuration, logs and temp paths all inside it.

    ``wrap`` rewrites the command line (``taskset -c 0 ...``, say)."""

    def __init__(
        self,
        directory: Path,
        binary: str | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.binary = binary or find_nginx() or "nginx"
        self._wrap = wrap or (lambda argv: argv)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.directory / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    def _errors(self) -> str:
        try:
            return "\n" + self.error_log.read_text(errors="replace")
        except OSError:
            return ""

    def start(self, conf_text: str, ports: Iterable[int], timeout: float = _START_TIMEOUT) -> None:
        """Write ``conf_text`` as the configuration, check it (``nginx -t``),
        start nginx and wait until every one of ``ports`` answers."""
        (self.directory / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf.write_text(conf_text)
        args = [self.binary, "-p", str(self.directory), "-e", str(self.error_log),
                "-c", str(self.conf)]
        check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise NginxError(f"nginx -t failed:\n{check.stderr.strip()}")
        self._proc = proc = subprocess.Popen(
            self._wrap(args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_listening(ports, proc, timeout)
        except PortError as exc:
            err = ""
            if proc.poll() is not None and proc.stderr is not None:
                err = ": " + proc.stderr.read().decode(errors="replace")
            self.stop()
            raise NginxError(f"nginx {exc}{err}{self._errors()}") from None

    def stop(self) -> None:
        """Graceful stop (SIGQUIT), then SIGKILL if it lingers; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        stop_process(proc, signal.SIGQUIT)
        if proc.stderr is not None:
            proc.stderr.close()


class _SlowHandler(BaseHTTPRequestHandler):
    """``GET /slow/<ms>[...]``: 200 "slow" after ``<ms>`` milliseconds."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: nginx drops upstream connections of aborted requests."""

    def do_GET(self) -> None:
        parts = self.path.split("?", 1)[0].split("/")
        ms = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
        time.sleep(min(ms / 1000, _MAX_DELAY))
        body = b"slow"
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # nginx gave up on this request (its client timed out)


class _SlowBackend:
    """HTTP/1.1 backend on 127.0.0.1 behind the slow h2c listener."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer((HOST, 0), _SlowHandler)
        self._server.daemon_threads = True
        # a handler still sleeping must not hold up stop()
        self._server.block_on_close = False
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"nginx-slow-backend:{self.port}",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass
class Nginx:
    """nginx running in the foreground (``daemon off``) from ``directory``."""

    directory: Path
    cert: Path
    key: Path
    binary: str = field(default_factory=lambda: find_nginx() or "nginx")
    h2c_port: int = 0
    tls_port: int = 0
    h1_port: int = 0
    h2c_idle_port: int = 0
    h2c_slow_port: int = 0
    _nginx: NginxProcess | None = None
    _backend: _SlowBackend | None = None

    @property
    def h2c_url(self) -> str:
        return f"http://{HOST}:{self.h2c_port}"

    @property
    def h2c_idle_url(self) -> str:
        """h2c listener whose idle connections close after 1 s."""
        return f"http://{HOST}:{self.h2c_idle_port}"

    @property
    def h2c_slow_url(self) -> str:
        """h2c listener where ``/slow/<ms>`` answers after <ms> ms and every
        other path at once (one origin for slow and fast requests)."""
        return f"http://{HOST}:{self.h2c_slow_port}"

    @property
    def tls_url(self) -> str:
        return f"https://{HOST}:{self.tls_port}"

    @property
    def h1_url(self) -> str:
        return f"http://{HOST}:{self.h1_port}"

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    def _conf_text(self) -> str:
        return _CONF.format(
            d=self.directory,
            fmt=_LOG_FORMAT,
            host=HOST,
            h2c_port=self.h2c_port,
            tls_port=self.tls_port,
            h1_port=self.h1_port,
            h2c_idle_port=self.h2c_idle_port,
            h2c_slow_port=self.h2c_slow_port,
            backend_port=self._backend.port if self._backend else 0,
            cert=self.cert,
            key=self.key,
        )

    def start(self) -> None:
        """Write the configuration, start nginx, wait until all ports answer."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.h2c_port, self.tls_port, self.h1_port, self.h2c_idle_port,
         self.h2c_slow_port) = free_ports(5)
        if self._backend is None:
            self._backend = _SlowBackend()
        self._nginx = NginxProcess(self.directory, self.binary)
        self._nginx.start(self._conf_text(), [
            self.h2c_port, self.tls_port, self.h1_port, self.h2c_idle_port, self.h2c_slow_port
        ])

    def stop(self) -> None:
        """Graceful stop (SIGQUIT), then SIGKILL if it lingers; idempotent."""
        nginx, self._nginx = self._nginx, None
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()
        if nginx is not None:
            nginx.stop()

    def log_lines(self) -> list[LogLine]:
        """Every complete line of the access log, parsed."""
        try:
            text = self.access_log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        out: list[LogLine] = []
        for line in text.splitlines():
            parts = line.split(" ")
            if len(parts) != 6:
                continue
            conn, nreq, port, proto, status, uri = parts
            out.append(LogLine(int(conn), int(nreq), int(port), proto, int(status), uri))
        return out

    def wait_log(self, marker: str, count: int, timeout: float = 5.0) -> list[LogLine]:
        """The access-log lines whose URI contains ``marker``, once there are
        at least ``count`` of them (or whatever is there after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [ln for ln in self.log_lines() if marker in ln.uri]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    def __enter__(self) -> Nginx:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
