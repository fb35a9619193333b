"""The Kamailio http_async_client 4.4 README's examples (1.1 to 1.22) in Python.

Each ``Example 1.x`` of the seed's README becomes the Python it maps to,
run against servers on 127.0.0.1 that this script starts: a plain HTTP
"test.php" that echoes what it got, and, when the ``openssl`` command is
there for the certificates, three HTTPS servers (a CA-signed certificate
for 127.0.0.1; one for the wrong host name; one that requires a client
certificate).  ``route[HTTP_REPLY]`` is a Python function; ``xlog`` prints.

    python examples/kamailio_examples.py
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import http_async_client as hac

# The SIP message being routed: the pseudo-variables the seed's examples use.
SIP = {"rU": "alice", "fU": "bob", "ci": "a84b4c76e66710@pc33.example.com"}


def xlog(level: str, text: str) -> None:
    """Kamailio's xlog: here, a line on stdout."""
    print(f"  {level}: {text}")


def example(number: str, title: str) -> None:
    print(f"\nExample 1.{number}. {title}")


def http_reply(reply: hac.Reply) -> None:
    """route[HTTP_REPLY] of Example 1.12, used by every query below."""
    if reply.ok:  # $http_ok
        xlog("L_INFO", f"route[HTTP_REPLY]: status {reply.rs}")  # $http_rs
        xlog("L_INFO", f"route[HTTP_REPLY]: body   {reply.rb.decode()}")  # $http_rb
    else:
        xlog("L_INFO", f"route[HTTP_REPLY]: error  {reply.err}")  # $http_err


# ---------------------------------------------------------------- servers
class TestPhp(BaseHTTPRequestHandler):
    """http(s)://127.0.0.1:PORT/test.php: echoes method, query, the X- and
    Content-Type headers and the body as compact JSON; ?delay=MS waits."""

    protocol_version = "HTTP/1.1"

    def handle_any(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if "delay" in query:
            threading.Event().wait(int(query.pop("delay")) / 1000)
        headers = {k: v for k, v in self.headers.items() if k.startswith("X-") or k == "Content-Type"}
        payload: dict[str, Any] = {"method": self.command}
        if query:
            payload["query"] = query
        if headers:
            payload["headers"] = headers
        if body:
            payload["body"] = body
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    """TestPhp on 127.0.0.1, optionally TLS (handshake in the connection's
    thread, so a failing one cannot stall the others)."""

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), TestPhp)
        self.tls = tls
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server_address[1]}/test.php"

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client's certificate was refused, or it gave up
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class Pki:
    """A CA, certificates it signs and a CA directory, made with openssl."""

    def __init__(self, directory: Path) -> None:
        self.d = directory
        self.ca = self._ca()
        self.capath = directory / "ca"
        self.capath.mkdir()
        shutil.copy(self.ca, self.capath / "ca.pem")
        self._openssl("rehash", str(self.capath))  # OpenSSL finds CAs by hash name
        self.server = self.sign("server", "subjectAltName=IP:127.0.0.1,DNS:localhost")
        self.wronghost = self.sign("wronghost", "subjectAltName=DNS:sip.example.com")
        self.client = self.sign("client", "extendedKeyUsage=clientAuth")

    def _openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], cwd=self.d, check=True, capture_output=True)

    def _ca(self) -> Path:
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
                      "-subj", "/CN=Example CA")
        return self.d / "ca.pem"

    def sign(self, name: str, ext: str) -> tuple[Path, Path]:
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        (self.d / f"{name}.ext").write_text(ext + "\n")
        self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                      "-CAcreateserial", "-out", f"{name}.pem", "-days", "1",
                      "-extfile", f"{name}.ext")
        return self.d / f"{name}.pem", self.d / f"{name}.key"

    def server_context(self, cert: tuple[Path, Path], client_ca: Path | None = None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        if client_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        return ctx


# ---------------------------------------------------------------- 1.1 - 1.11
def module_parameters(pki: Pki | None) -> None:
    """modparam("http_async_client", NAME, VALUE) is Client(NAME=VALUE)."""
    etc = Path("/etc/kamailio/ssl")
    cert = str(pki.client[0]) if pki else str(etc / "clientcert.pem")
    key = str(pki.client[1]) if pki else str(etc / "clientcert.key")
    capath = str(pki.capath) if pki else str(etc / "ca")
    rows: list[tuple[str, str, str, Any]] = [
        ("1", "workers", "workers", 2),
        ("2", "connection_timeout", "connection_timeout", 1000),
        ("3", "hash_size", "hash_size", 1024),
        ("4", "tls_version", "tls_version", 6),  # CURL_SSLVERSION_TLSv1_2
        ("5", "tls_verify_host", "tls_verify_host", 0),
        ("6", "tls_verify_peer", "tls_verify_peer", 0),
        ("7", "curl_verbose", "curl_verbose", 1),
        ("8", "memory_manager", "memory_manager", "sys"),
        ("9", "tls_client_cert", "tls_client_cert", cert),
        ("10", "tls_client_key", "tls_client_key", key),
        ("11", "tls_ca_path", "tls_ca_path", capath),
    ]
    for number, seed_name, name, value in rows:
        example(number, f"Set {seed_name} parameter")
        print(f'  modparam("http_async_client", "{seed_name}", {json.dumps(value)})')
        with hac.Client(**{name: value}) as client:
            print(f"  Client({name}={value!r}).params[{name!r}] == {client.params[name]!r}")
            if name == "curl_verbose":
                # the request/response header trace goes to the logger at INFO
                client.query(http_server.url).result(timeout=5)
            if name == "memory_manager":
                print("  (libcurl's allocator is process-wide: the first client chose it)")


# ---------------------------------------------------------------- 1.12 - 1.22
def functions(client: hac.Client, pki: Pki | None) -> None:
    """The functions, in the README's order.  ``client`` has the module's
    defaults; the TLS examples use two more: ``trusting`` knows the test CA
    (tls_ca_path), ``untrusting`` does not."""
    url = http_server.url
    client.route("HTTP_REPLY", http_reply)
    with contextlib.ExitStack() as stack:
        tls = wronghost = mtls = None
        trusting = untrusting = None
        if pki is not None:
            tls = Server(pki.server_context(pki.server))
            wronghost = Server(pki.server_context(pki.wronghost))
            mtls = Server(pki.server_context(pki.server, client_ca=pki.ca))
            for server in (tls, wronghost, mtls):
                stack.callback(server.stop)
            trusting = stack.enter_context(hac.Client(connection_timeout=2000, tls_ca_path=str(pki.capath)))
            untrusting = stack.enter_context(hac.Client(connection_timeout=2000))
            trusting.route("HTTP_REPLY", http_reply)
            untrusting.route("HTTP_REPLY", http_reply)

        example("12", "http_async_query() usage")
        # t_newtran(): the caller is suspended; the route runs before the return
        rc = client.http_async_query(f"{url}?r_uri={SIP['rU']}&f_uri={SIP['fU']}", "HTTP_REPLY")
        print(f"  GET: http_async_query() returned {rc}")
        rc = client.http_async_query(url, f"{{'r_uri':'{SIP['rU']}', 'f_uri':'{SIP['fU']}'}}", "HTTP_REPLY")
        print(f"  POST: http_async_query() returned {rc}")

        example("13", "http_async_suspend() usage")
        client.http_async_suspend(0)
        # the transaction won't be suspended for the next query
        rc = client.http_async_query(url, "HTTP_REPLY")
        xlog("L_INFO", f"query sent (returned {rc})")
        print('  t_reply("200", "Ok")')
        client.dispatch(timeout=5)  # the route runs when this process drains replies

        example("14", "tls_verify_host() usage")
        if trusting is not None and wronghost is not None:
            print("  (the server's certificate names sip.example.com, not 127.0.0.1)")
            trusting.http_async_query(wronghost.url, "HTTP_REPLY")
            trusting.tls_verify_host("0")
            # host verification is disabled for the next query
            trusting.http_async_query(wronghost.url, "HTTP_REPLY")
        else:
            print(NO_OPENSSL)

        example("15", "tls_verify_peer() usage")
        if untrusting is not None and tls is not None:
            print("  (this client does not know the server's CA)")
            untrusting.http_async_query(tls.url, "HTTP_REPLY")
            untrusting.tls_verify_peer("0")
            # server identity verification is disabled for the next query
            untrusting.http_async_query(tls.url, "HTTP_REPLY")
        else:
            print(NO_OPENSSL)

        example("16", "http_set_timeout() usage")
        client.http_set_timeout("200")
        # the server must respond in maximum 200ms, otherwise the query will fail
        client.http_async_query(f"{url}?delay=500", "HTTP_REPLY")

        example("17", "http_append_header() usage")
        client.http_append_header(f"X-Sip-Call-Id: {SIP['ci']}")
        # a new 'X-Sip-Call-Id' header will be added to the next query
        client.http_append_header("Content-Type: application/json")
        # the curl default 'application/x-www-form-urlencoded' Content-Type will be replaced
        client.http_async_query(url, "{'foo': 'bar'}", "HTTP_REPLY")

        example("18", "http_set_method() usage")
        client.http_set_method("PUT")
        # the next query will be a HTTP PUT request
        client.http_async_query(url, "{'foo': 'bar'}", "HTTP_REPLY")

        example("19", "http_set_tls_client_cert() usage")
        if trusting is not None and mtls is not None and pki is not None:
            print("  (this server requires a client certificate: first without one)")
            trusting.http_async_query(mtls.url, "HTTP_REPLY")
            trusting.http_set_tls_client_cert(str(pki.client[0]))
            # Next query will use the client cert above (and the key of 1.20)
            trusting.http_set_tls_client_key(str(pki.client[1]))
            trusting.http_async_query(mtls.url, "HTTP_REPLY")
        else:
            print(NO_OPENSSL)

        example("20", "http_set_tls_client_key() usage")
        if trusting is not None and mtls is not None and pki is not None:
            trusting.http_set_tls_client_cert(str(pki.client[0]))
            trusting.http_set_tls_client_key(str(pki.client[1]))
            # Next query will use the client cert key above
            trusting.http_async_query(mtls.url, "HTTP_REPLY")
        else:
            print(NO_OPENSSL)

        example("21", "http_set_tls_ca_path() usage")
        if untrusting is not None and tls is not None and pki is not None:
            # (the seed's snippet calls http_set_tls_client_key here: a typo)
            untrusting.http_set_tls_ca_path(str(pki.capath))
            # Next query will use the CA certs above
            untrusting.http_async_query(tls.url, "HTTP_REPLY")
        else:
            print(NO_OPENSSL)

        example("22", "$http_req(key) variable usage")
        client.http_req["all"] = None  # reset the parameters
        client.http_req["timeout"] = 100  # 100 ms
        client.http_req["method"] = "DELETE"
        client.http_req["hdr"] = "X-Sip-Call-Id: " + SIP["ci"]
        client.http_req["hdr"] = "X-Foo: bar"  # add a 2nd header
        client.http_req["suspend"] = 0  # don't suspend, continue the script
        # the following request will use the above parameters
        rc = client.http_async_query(url, "HTTP_REPLY")
        xlog("L_INFO", f"http_async_query() returned {rc}, routing goes on")
        client.dispatch(timeout=5)


NO_OPENSSL = "  skipped: no openssl command to make the certificates"


http_server: Server


def main() -> int:
    global http_server
    # the seed logs through Kamailio; here the package's logger, on stdout
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="  %(levelname)s: %(message)s")
    http_server = Server()
    work = tempfile.TemporaryDirectory(prefix="kamailio-examples-")
    try:
        pki = Pki(Path(work.name)) if shutil.which("openssl") else None
        module_parameters(pki)
        with hac.Client(connection_timeout=1000) as client:
            functions(client, pki)
            stats = client.stats()
        print("\nStatistics (6.1 - 6.4):")
        for name in ("requests", "replies", "errors", "timeouts"):
            print(f"  {name} = {stats[name]}")
    finally:
        http_server.stop()
        work.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
