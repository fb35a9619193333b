"""Smoke test of an installed http_async_client wheel (tools/wheel_smoke.sh).

Runs with the interpreter of a venv the wheel was installed into, on a
machine that may have no compiler and no libcurl: only the standard
library, the wheel, cffi and (for the HTTP/2 server) the pure-Python ``h2``
package.  Every server is started here, on 127.0.0.1.

    python wheel_smoke.py CERTDIR     # CERTDIR: ca.pem, server.pem, server.key

Checks: the core loads the libcurl (>= 8) bundled in the wheel's
``http_async_client.libs`` (ldd and /proc/self/maps), GET, POST, HTTPS
verified with a CA file (and refused without it), HTTP/2 over TLS (ALPN)
with concurrent streams, and the CLI's ``bench`` against its embedded
loopback server.  Ends with ``wheel smoke: N passed, M failed``; exits 1 if
any check failed.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.events

import http_async_client as hac

TIMEOUT_S = 10.0
H2_STREAMS = 20
BENCH_N = 2000


def libs_dir() -> Path:
    """Where auditwheel put the bundled libraries: beside the package."""
    return Path(hac.__file__).resolve().parent.parent / "http_async_client.libs"


def native_so() -> Path:
    from http_async_client import _native

    return Path(_native.__file__).resolve()


def answer(method: str, path: str, body: bytes) -> bytes:
    """What every test server replies: method, path, body length and hash."""
    digest = hashlib.sha256(body).hexdigest()[:16]
    return f"{method} {path} {len(body)} {digest}".encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, Content-Length on every reply

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        out = answer(self.command, self.path, body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = _reply
    do_POST = _reply

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def start_h1(tls: ssl.SSLContext | None) -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if tls else "http"
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


def _h2_connection(conn: ssl.SSLSocket) -> None:
    """One HTTP/2 connection: answer every request, until the peer leaves."""
    h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    h2c.initiate_connection()
    conn.sendall(h2c.data_to_send())
    heads: dict[int, tuple[str, str]] = {}
    bodies: dict[int, bytearray] = {}
    conn.settimeout(TIMEOUT_S)
    with conn:
        for _ in range(10_000):  # bounded: far more frames than the smoke sends
            try:
                data = conn.recv(65536)
            except (OSError, ssl.SSLError):
                return
            if not data:
                return
            for event in h2c.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    fields = {bytes(k): bytes(v) for k, v in event.headers or []}
                    sid = event.stream_id or 0
                    heads[sid] = (fields[b":method"].decode(), fields[b":path"].decode())
                    bodies[sid] = bytearray()
                elif isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id or 0] += event.data or b""
                    h2c.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id or 0)
                elif isinstance(event, h2.events.StreamEnded):
                    sid = event.stream_id or 0
                    method, path = heads.pop(sid)
                    out = answer(method, path, bytes(bodies.pop(sid)))
                    h2c.send_headers(sid, [(":status", "200"), ("content-length", str(len(out)))])
                    h2c.send_data(sid, out, end_stream=True)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return
            conn.sendall(h2c.data_to_send())


def start_h2(tls: ssl.SSLContext) -> tuple[socket.socket, str]:
    """An HTTP/2 server over TLS (ALPN "h2" only) on 127.0.0.1."""
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return  # closed
            try:
                conn = tls.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()
                continue
            threading.Thread(target=_h2_connection, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener, f"https://127.0.0.1:{listener.getsockname()[1]}"


def server_tls(certs: Path, alpn: list[str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs / "server.pem", certs / "server.key")
    ctx.set_alpn_protocols(alpn)
    return ctx


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


class Smoke:
    def __init__(self, certs: Path) -> None:
        self.ca = str(certs / "ca.pem")
        self.client = hac.Client(connection_timeout=int(TIMEOUT_S * 1000))
        _, self.http = start_h1(None)
        _, self.https = start_h1(server_tls(certs, ["http/1.1"]))
        _, self.h2 = start_h2(server_tls(certs, ["h2"]))

    def get(self, url: str, body: bytes | None = None, ca: str | None = None) -> hac.Reply:
        """One request (POST with a body), TLS peer and host verified."""
        handle = self.client.query(
            url, body=body, method="POST" if body is not None else None,
            tls_ca_file=ca, tls_verify_peer=1, tls_verify_host=2,
        )
        return handle.result(timeout=TIMEOUT_S)

    def check_version(self) -> str:
        major = int(hac.curl_version().split(".")[0])
        expect(major >= 8, f"libcurl {hac.curl_version()} < 8")
        return hac.CURL_VERSION

    def check_ldd(self) -> str:
        out = subprocess.run(["ldd", str(native_so())], capture_output=True, text=True, check=True).stdout
        expect("not found" not in out, f"unresolved libraries:\n{out}")
        # "libcurl-<hash>.so.4.8.0 => /.../http_async_client.libs/libcurl-<hash>.so.4.8.0 (0x...)"
        resolved = {
            name: Path(rest.split()[0]).resolve()
            for name, sep, rest in (line.strip().partition(" => ") for line in out.splitlines())
            if sep and rest.startswith("/")
        }
        for lib in ("libcurl", "libev"):
            found = [(n, p) for n, p in resolved.items() if n.startswith(lib + "-") or n.startswith(lib + ".")]
            expect(len(found) == 1, f"{lib}: {found}")
            expect(found[0][1].parent == libs_dir(), f"{lib} resolves outside the wheel: {found[0]}")
        return f"libcurl => {[str(p) for n, p in resolved.items() if n.startswith('libcurl')][0]}"

    def check_loaded(self) -> str:
        self.get(self.http + "/loaded")
        maps = Path("/proc/self/maps").read_text().splitlines()
        paths = sorted({line.split()[-1] for line in maps if "libcurl" in line})
        expect(bool(paths), "no libcurl mapped")
        expect(all(p.startswith(str(libs_dir())) for p in paths), f"libcurl mapped from {paths}")
        return ", ".join(paths)

    def check_get(self) -> str:
        reply = self.get(self.http + "/get?x=1")
        expect(reply.ok and reply.status == 200, f"GET: {reply.status} {reply.err}")
        expect(reply.body == answer("GET", "/get?x=1", b""), f"GET body {reply.body!r}")
        return f"{reply.status} HTTP/{reply.http_version}"

    def check_post(self) -> str:
        data = bytes(range(256)) * 64
        reply = self.get(self.http + "/post", body=data)
        expect(reply.ok and reply.status == 200, f"POST: {reply.status} {reply.err}")
        expect(reply.body == answer("POST", "/post", data), f"POST body {reply.body!r}")
        return f"{reply.status}, {len(data)} bytes echoed by hash"

    def check_https(self) -> str:
        reply = self.get(self.https + "/tls", ca=self.ca)
        expect(reply.ok and reply.status == 200, f"HTTPS: {reply.status} {reply.err}")
        expect(reply.body == answer("GET", "/tls", b""), f"HTTPS body {reply.body!r}")
        # without the CA the same server must be refused: verification is on
        refused = self.get(self.https + "/tls")
        expect(not refused.ok, "HTTPS without the CA file was accepted")
        return f"{reply.status} HTTP/{reply.http_version}; without the CA: {refused.err}"

    def check_h2(self) -> str:
        handles = [
            self.client.query(f"{self.h2}/s{i}", tls_ca_file=self.ca, tls_verify_peer=1, tls_verify_host=2)
            for i in range(H2_STREAMS)
        ]
        for i, handle in enumerate(handles):
            reply = handle.result(timeout=TIMEOUT_S)
            expect(reply.ok and reply.status == 200, f"h2 /s{i}: {reply.status} {reply.err}")
            expect(reply.http_version == "2", f"h2 /s{i}: HTTP/{reply.http_version}")
            expect(reply.body == answer("GET", f"/s{i}", b""), f"h2 body {reply.body!r}")
        return f"{H2_STREAMS} concurrent GETs, all 200 over HTTP/2 (ALPN)"

    def check_bench(self) -> str:
        cmd = [sys.executable, "-m", "http_async_client", "bench", "-n", str(BENCH_N), "--json"]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        expect(run.returncode == 0, f"bench exit {run.returncode}: {run.stderr}")
        summary = json.loads(run.stdout)["summary"]
        expect(summary["ok"] == BENCH_N and summary["errors"] == 0, f"bench: {summary}")
        return f"bench -n {BENCH_N}: {summary['ok']} ok, {summary['requests_per_s']} requests/s"


def main() -> int:
    smoke = Smoke(Path(sys.argv[1]))
    checks: list[tuple[str, Callable[[], str]]] = [
        ("libcurl >= 8", smoke.check_version),
        ("ldd", smoke.check_ldd),
        ("loaded", smoke.check_loaded),
        ("GET", smoke.check_get),
        ("POST", smoke.check_post),
        ("HTTPS", smoke.check_https),
        ("HTTP/2", smoke.check_h2),
        ("bench", smoke.check_bench),
    ]
    print(f"python {sys.version.split()[0]}, http_async_client {hac.__version__}, {native_so()}")
    passed = failed = 0
    for name, check in checks:
        start = time.monotonic()
        try:
            detail = check()
        except Exception as exc:  # report every check, then fail the run
            failed += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}")
        else:
            passed += 1
            print(f"ok   {name} ({time.monotonic() - start:.2f} s): {detail}")
    smoke.client.close()
    print(f"wheel smoke: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
