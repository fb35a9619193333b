"""The command line's grammar: ``fetch``, ``bench`` and the older form
without a command; option types and the program's exit codes."""

from __future__ import annotations

import argparse
import re
from typing import Sequence

from ._ffi import CURL_VERSION
from ._version import __version__

PROG = "http-async-client"
COMMANDS = ("fetch", "bench")
# the demo's bounds, also bench's when neither -n nor -z is given
DEFAULT_REQUESTS = 50000
DEFAULT_DURATION = 5.0

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CliError(Exception):
    """Bad input found by the CLI itself: message to stderr, exit 2."""


# ------------------------------------------------------------------ parsing
def _duration(text: str) -> float:
    """Seconds from '30', '2.5', '500ms', '30s', '2m' or '1h'."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 10, 10s, 500ms, 2m)")
    value = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2) or "s"]
    if value <= 0:
        raise argparse.ArgumentTypeError("duration must be > 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _add_request_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("request")
    g.add_argument("-X", "--method", default=None,
                   help="GET POST PUT DELETE PATCH HEAD OPTIONS (default: GET, POST with -d)")
    g.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'",
                   help="add, replace ('Name: v'), remove ('Name:') or send empty ('Name;'); repeatable")
    g.add_argument("-d", "--data", default=None, metavar="DATA",
                   help="request body; @FILE streams it from a file (fetch), @- from stdin")
    g.add_argument("--timeout", type=_positive_int, default=5000, metavar="MS",
                   help="total deadline per request, ms (default 5000)")
    h2 = g.add_mutually_exclusive_group()
    h2.add_argument("--http2", action="store_true",
                    help="HTTP/2: ALPN on https:// (the default there), Upgrade: h2c on http:// "
                    "(falls back to HTTP/1.1)")
    h2.add_argument("--http2-prior-knowledge", action="store_true",
                    help="HTTP/2 without negotiation (h2c servers)")
    g.add_argument("-L", "--location", action="store_true", help="follow redirects")
    g.add_argument("--workers", type=_positive_int, default=1, metavar="W",
                   help="C worker threads (default 1)")
    t = p.add_argument_group("TLS")
    t.add_argument("-k", "--insecure", action="store_true", help="no certificate or host verification")
    ca = t.add_mutually_exclusive_group()
    ca.add_argument("--cacert", metavar="FILE", help="trust the CA certificate(s) in this PEM file")
    ca.add_argument("--capath", metavar="DIR", help="trust the CAs in this (openssl rehash'ed) directory")
    t.add_argument("--cert", metavar="FILE", help="client certificate (PEM)")
    t.add_argument("--key", metavar="FILE", help="client certificate key (PEM)")
    t.add_argument("--pinnedpubkey", metavar="PINS", default=None,
                   help="sha256//<base64>[;sha256//...] pins or a public key file")
    c = p.add_argument_group("connection")
    c.add_argument("--connect-timeout", type=_duration, default=None, metavar="SECONDS",
                   help="bound on DNS + TCP + TLS set-up: seconds as curl (2, 0.5) or 500ms "
                   "(default: the --timeout deadline)")
    c.add_argument("-x", "--proxy", default=None, metavar="URL",
                   help="http://, https://, socks5:// or socks5h:// proxy (the environment's "
                   "http_proxy etc. are never used)")
    c.add_argument("--noproxy", default=None, metavar="HOSTS",
                   help="comma-separated hosts reached without the proxy")
    c.add_argument("--resolve", action="append", default=[], metavar="HOST:PORT:ADDR[,ADDR]",
                   help="use this address for HOST:PORT (no DNS); repeatable")
    c.add_argument("--connect-to", action="append", default=[],
                   metavar="HOST:PORT:CONNECT-HOST:CONNECT-PORT",
                   help="connect there instead (URL, Host and SNI unchanged); repeatable")
    c.add_argument("--unix-socket", default=None, metavar="PATH",
                   help="connect to this Unix domain socket instead of TCP")
    c.add_argument("-A", "--user-agent", default=None, metavar="NAME",
                   help="User-Agent to send (default http_async_client/<version>; '' none)")


def _add_fetch_options(p: argparse.ArgumentParser) -> None:
    b = p.add_argument_group("fetch request body")
    b.add_argument("-F", "--form", action="append", default=[], metavar="NAME=VALUE",
                   help="multipart form field (curl's syntax): name=value, "
                   "name=@FILE[;type=TYPE][;filename=NAME] (streamed from disk), name=<FILE "
                   "(the file's content as the value); repeatable; not with -d")
    g = p.add_argument_group("fetch output")
    g.add_argument("-i", "--include", action="store_true",
                   help="print each response's status line and headers under its summary line")
    g.add_argument("-o", "--output", metavar="DIR",
                   help="save each body to DIR/<n>-<name>, written as it arrives "
                   "('-' writes bodies to stdout)")
    g.add_argument("-N", "--no-buffer", action="store_true",
                   help="write each body to stdout as it arrives (a stream: server-sent "
                   "events, long downloads); URLs one after another, summaries on stderr")
    g.add_argument("-f", "--fail", action="store_true",
                   help="count HTTP 4xx/5xx responses as failures (exit code 1)")


def _add_bench_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("load")
    g.add_argument("-n", "--requests", type=_positive_int, default=None, metavar="N",
                   help=f"total requests (default {DEFAULT_REQUESTS} unless -z is given)")
    g.add_argument("-z", "--duration", type=_duration, default=None, metavar="TIME",
                   help=f"run for this long: 10, 10s, 500ms, 2m (default {DEFAULT_DURATION:g} s "
                   "unless -n is given; with both, whichever comes first)")
    g.add_argument("-c", "--concurrency", type=_positive_int, default=64, metavar="C",
                   help="requests in flight (default 64)")
    g.add_argument("--rate", type=_positive_float, default=None, metavar="R",
                   help="at most R requests/s overall, on a fixed schedule")
    o = p.add_argument_group("bench output")
    o.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    o.add_argument("--ui", choices=("auto", "rich", "plain"), default="auto",
                   help="auto: rich on a terminal when installed, else plain; "
                   "rich: force it (needs http_async_client[cli])")
    o.add_argument("--no-progress", action="store_true", help="no progress output")


def _version() -> str:
    return f"%(prog)s {__version__} ({CURL_VERSION})"


def _top_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Asynchronous HTTP client (libcurl multi + libev in C): fetch URLs "
        "concurrently, or load-test one.",
        epilog=f"With no argument: `{PROG} bench` against the embedded loopback server "
        f"(at most {DEFAULT_REQUESTS} requests or {DEFAULT_DURATION:g} s). "
        f"`{PROG} URL...` is `{PROG} fetch URL...`.",
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    f = sub.add_parser("fetch", help="fetch URLs concurrently, one summary line each",
                       description="Fetch every URL once, all at once; one line per URL "
                       "(status, time, size, HTTP version, URL) in completion order. "
                       "Exit code 1 if any failed, 2 on bad input.")
    f.add_argument("urls", nargs="+", metavar="URL")
    _add_request_options(f)
    _add_fetch_options(f)
    b = sub.add_parser("bench", help="load-test a URL (no URL: the embedded loopback server)",
                       description="Keep -c requests in flight until -n requests or -z time; "
                       "report requests/s, latency percentiles and histogram, status codes, "
                       "error kinds, bytes. No URL: starts the embedded loopback server. "
                       "Ctrl-C stops sending and prints the partial report (exit 130).")
    b.add_argument("url", nargs="?", metavar="URL")
    _add_request_options(b)
    _add_bench_options(b)
    return p


def _legacy_parser() -> argparse.ArgumentParser:
    """`http-async-client [options] [URL...]`: URLs → fetch, none → bench."""
    p = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [options] [URL...]  (see `{PROG} -h`: fetch, bench)",
        description="The form without a command: URLs are fetched (as `fetch`); "
        "with none, `bench` runs against the embedded loopback server.",
    )
    p.add_argument("urls", nargs="*", metavar="URL")
    _add_request_options(p)
    _add_fetch_options(p)
    _add_bench_options(p)
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    if argv and (argv[0] in COMMANDS or argv[0] in ("-h", "--help", "--version")):
        args = _top_parser().parse_args(argv)
        if args.command is None:  # pragma: no cover - -h/--version exit
            args.command = "bench"
        if args.command == "bench":
            args.urls = [args.url] if args.url else []
        return args
    args = _legacy_parser().parse_args(argv)
    args.command = "fetch" if args.urls else "bench"
    return args


__all__ = ["CliError", "PROG", "parse_args"]
