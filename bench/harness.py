"""Servers for the benchmarks: a private nginx and the 10 ms delay server.

Everything listens on 127.0.0.1 only and lives in one temporary directory
(configuration, pid file, error log, self-signed certificate, the 64 KiB
file).  Both servers are pinned to core 0 (``taskset -c 0``) when the
machine has two cores or more; the clients run on core 1.

nginx (one worker, ``worker_cpu_affinity``, access log off, keep-alive for
1,000,000 requests per connection) serves:

- ``/``      200 "ok" (2 bytes)
- ``/post``  200 "ok" to a POST (the 1 KiB body is read and discarded)
- ``/64k``   a 64 KiB static file

on a cleartext HTTP/1.1 port, an HTTPS port (HTTP/1.1 only: no ``http2`` on
the listener, so every client speaks HTTP/1.1 over TLS), a second HTTPS
port with ``keepalive_timeout 0`` (nginx closes every connection after its
reply: a new TLS connection per request), an HTTPS port with HTTP/2 (ALPN
h2, up to 1000 streams per connection, used by ``many.py``) and an h2c port
(HTTP/2 with prior knowledge).  Clients that verify get the throw-away CA
as a PEM file (``ca_file``) or a hashed directory (``ca_dir``), or
appended to a copy of the system's CA bundle (``ca_bundle``: the cost of
verifying with the default trust store).

nginx-light has no echo module, so the slow endpoint is ``slow_server.py``:
a small asyncio server (uvloop when importable) pinned to core 0 that
answers each request 10 ms after reading it (the tests' threaded servers
could not keep up with the benchmark's rates).

Free ports, waiting for a listener, the server certificate (the tests'
throw-away PKI) and running nginx come from the tests' support package
(``tests/support``), put on ``sys.path`` here: the benchmarks run as plain
scripts, with no pytest configuration to do it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

HERE = Path(__file__).resolve().parent
_TESTS = HERE.parent / "tests"
if str(_TESTS) not in sys.path:
    sys.path.insert(1, str(_TESTS))  # after the script's own directory

from support.certs import make_certs  # noqa: E402
from support.nginx import NginxError, NginxProcess, find_nginx, stop_process  # noqa: E402
from support.ports import HOST, PortError, free_ports, wait_listening  # noqa: E402

SERVER_CORE = 0
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's default CA bundle
CLIENT_CORE = 1

_NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
worker_cpu_affinity {affinity};
worker_rlimit_nofile {nofile};
pid {d}/nginx.pid;
error_log {d}/error.log error;

events {{
    worker_connections {conns};
    multi_accept on;
}}

http {{
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;

    access_log off;
    default_type text/plain;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_max_body_size 1m;
    client_body_buffer_size 64k;
    sendfile on;
    tcp_nodelay on;
    open_file_cache max=16;
    http2_max_concurrent_streams 1000;
    http2_max_requests 1000000;

    server {{
        listen {host}:{http_port} backlog=4096;
        listen {host}:{https_port} ssl backlog=4096;
        listen {host}:{h2c_port} http2 backlog=4096;
        listen {host}:{h2_port} ssl http2 backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_cache shared:bench:1m;
        root {d}/www;

        location = / {{ return 200 "ok"; }}
        location = /post {{ return 200 "ok"; }}
        location = /64k {{ }}
    }}

    # a new TLS connection per request: nginx closes after each reply
    server {{
        listen {host}:{https_close_port} ssl backlog=4096;
        keepalive_timeout 0;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_cache shared:bench:1m;
        root {d}/www;

        location = / {{ return 200 "ok"; }}
    }}
}}
"""


class ServerError(RuntimeError):
    """A benchmark server could not be configured or started."""


def pinning_available() -> bool:
    """True when taskset exists and cores 0 and 1 are both usable."""
    if shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"):
        return False
    cpus = os.sched_getaffinity(0)
    return SERVER_CORE in cpus and CLIENT_CORE in cpus


def pinned(core: int, argv: list[str]) -> list[str]:
    """``argv`` under ``taskset -c core`` (unchanged when pinning is unavailable)."""
    if pinning_available():
        return ["taskset", "-c", str(core), *argv]
    return argv


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit; returns it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


@dataclass
class Servers:
    """nginx and the delay server, started together (context manager)."""

    delay_ms: float = 10.0
    nginx: str = field(default_factory=lambda: find_nginx() or "/usr/sbin/nginx")
    python: str = sys.executable
    directory: Path | None = None
    http_port: int = 0
    https_port: int = 0
    h2c_port: int = 0
    h2_port: int = 0
    slow_port: int = 0
    https_close_port: int = 0
    ca_file: Path | None = None  # the CA of the server certificate, PEM
    ca_dir: Path | None = None  # the same CA in a hashed directory (CAPATH)
    ca_bundle: Path | None = None  # the system's CA bundle with that CA appended
    _nginx: NginxProcess | None = None
    _slow: subprocess.Popen[bytes] | None = None
    _own_dir: bool = False

    @property
    def http(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def https(self) -> str:
        return f"https://{HOST}:{self.https_port}"

    @property
    def https_close(self) -> str:
        """HTTPS with keepalive_timeout 0: one request per connection."""
        return f"https://{HOST}:{self.https_close_port}"

    @property
    def h2c(self) -> str:
        return f"http://{HOST}:{self.h2c_port}"

    @property
    def h2(self) -> str:
        return f"https://{HOST}:{self.h2_port}"

    @property
    def slow(self) -> str:
        return f"http://{HOST}:{self.slow_port}"

    def start(self, slow: bool = True) -> Servers:
        """Write the configuration, start nginx (and the delay server)."""
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="hac-bench-"))
            self._own_dir = True
        d = self.directory
        # run as root, nginx's worker drops privileges: it must read www/64k
        os.chmod(d, 0o755)
        (d / "tmp").mkdir(exist_ok=True)
        www = d / "www"
        www.mkdir(exist_ok=True)
        (www / "64k").write_bytes(bytes(range(256)) * 256)
        os.chmod(www, 0o755)
        os.chmod(www / "64k", 0o644)
        pki = make_certs(d / "pki")
        cert, key = pki.server_cert, pki.server_key
        self.ca_file, self.ca_dir = pki.ca_cert, pki.capath
        if Path(SYSTEM_BUNDLE).is_file():  # what a client verifying public hosts loads
            self.ca_bundle = d / "pki" / "bundle.pem"
            self.ca_bundle.write_bytes(Path(SYSTEM_BUNDLE).read_bytes() + pki.ca_cert.read_bytes())
        (self.http_port, self.https_port, self.h2c_port, self.h2_port,
         self.slow_port, self.https_close_port) = free_ports(6)
        affinity = "1" if pinning_available() else "auto"
        import resource

        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if nofile == resource.RLIM_INFINITY or nofile > 1_048_576:
            nofile = 1_048_576
        conf = _NGINX_CONF.format(
            d=d, host=HOST, http_port=self.http_port, https_port=self.https_port,
            h2c_port=self.h2c_port, h2_port=self.h2_port, https_close_port=self.https_close_port,
            cert=cert, key=key, affinity=affinity,
            nofile=nofile, conns=max(1024, min(65000, nofile - 64)),
        )
        self._nginx = NginxProcess(d, self.nginx, wrap=lambda argv: pinned(SERVER_CORE, argv))
        try:
            self._nginx.start(conf, [self.http_port, self.https_port, self.h2c_port, self.h2_port,
                                     self.https_close_port])
        except NginxError as exc:
            raise ServerError(str(exc)) from None
        if slow:
            argv = [self.python, str(HERE / "slow_server.py"), str(self.slow_port), str(self.delay_ms)]
            self._slow = subprocess.Popen(
                pinned(SERVER_CORE, argv), stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            try:
                wait_listening([self.slow_port], self._slow)
            except PortError as exc:
                raise ServerError(f"slow_server.py {exc}") from None
        return self

    def stop(self) -> None:
        """Stop both servers and remove the directory; idempotent."""
        if self._slow is not None:
            if self._slow.stdin:
                self._slow.stdin.close()  # EOF on stdin: the server exits
            stop_process(self._slow, signal.SIGTERM)
            self._slow = None
        if self._nginx is not None:
            self._nginx.stop()
            self._nginx = None
        if self._own_dir and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> Servers:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
