"""Command line: ``fetch`` URLs concurrently, or ``bench`` (load-test) one.

``python -m http_async_client fetch URL...`` fetches each URL once, all at
once, one summary line per URL.  ``python -m http_async_client bench
[URL]`` keeps ``-c`` requests in flight for ``-n`` requests or ``-z``
seconds and prints requests/s, latency percentiles, a histogram, status
codes and error kinds; with no URL it starts the embedded loopback server
first, so ``bench`` alone is a complete demo.

Older forms still work: no argument at all runs that demo (what ``./run.sh``
does), and URLs without a subcommand are a ``fetch``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO, Any, Iterator, Sequence

from . import _ui
from ._bench import BenchConfig, BenchResult, Progress, StopFlag, run_load
from ._bodies import BodyArg, FormFile, FormValue
from ._client import Client
from ._exceptions import HttpAsyncClientError, UsageError
from ._validate import check_method, check_url, headers_lines
from ._ffi import CURL_VERSION
from ._version import __version__

from ._cliargs import (
    DEFAULT_DURATION,
    DEFAULT_REQUESTS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CliError,
    parse_args,
)

# ------------------------------------------------------------------ shared
def _read_data(data: str | None) -> bytes | None:
    if data is None:
        return None
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as exc:
            raise CliError(f"-d {data}: {exc.strerror or exc}") from None
    return data.encode("utf-8")


def _fetch_body(data: str | None) -> BodyArg:
    """fetch's -d: text, or @FILE streamed from disk by the worker (@-:
    stdin, read as it comes)."""
    if data is None or not data.startswith("@"):
        return _read_data(data)
    if data == "@-":
        return sys.stdin.buffer
    path = Path(data[1:])
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise CliError(f"-d {data}: not a regular file")
    except OSError as exc:
        raise CliError(f"-d {data}: {exc.strerror or exc}") from None
    return path


def _form(fields: list[str]) -> list[tuple[str, FormValue]]:
    """-F fields in curl's syntax: name=value, name=@FILE[;type=T][;filename=N]
    (a FormFile), name=<FILE (the file's content as the value)."""
    out: list[tuple[str, FormValue]] = []
    for field in fields:
        name, sep, value = field.partition("=")
        if not sep or not name:
            raise CliError(f"-F {field!r}: expected NAME=VALUE, NAME=@FILE or NAME=<FILE")
        if value.startswith("@"):
            path, *params = value[1:].split(";")
            extra: dict[str, str] = {}
            for param in params:
                key, sep, v = param.partition("=")
                if key.strip() not in ("type", "filename") or not sep:
                    raise CliError(f"-F {field!r}: unknown parameter {param!r} "
                                   "(type=..., filename=...)")
                extra[key.strip()] = v
            out.append((name, FormFile(path, content_type=extra.get("type"),
                                       filename=extra.get("filename"))))
        elif value.startswith("<"):
            try:
                out.append((name, Path(value[1:]).read_bytes()))
            except OSError as exc:
                raise CliError(f"-F {field!r}: {exc.strerror or exc}") from None
        else:
            out.append((name, value))
    return out


def _check_cacert(cafile: str) -> None:
    """--cacert FILE must hold a PEM certificate: said here, as curl's
    own message would be a failed transfer per URL."""
    try:
        text = Path(cafile).read_text("ascii", errors="replace")
    except OSError as exc:
        raise CliError(f"--cacert {cafile}: {exc.strerror or exc}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise CliError(f"--cacert {cafile}: no PEM certificate in it")


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Client]:
    verify = 0 if args.insecure else 1
    if args.cacert:
        _check_cacert(args.cacert)
    try:
        client = Client(
            workers=args.workers,
            connection_timeout=args.timeout,
            tls_verify_host=2 if verify else 0,
            tls_verify_peer=verify,
            tls_ca_path=args.capath,
            tls_ca_file=args.cacert,
            tls_client_cert=args.cert,
            tls_client_key=args.key,
            tls_pinned_pubkey=args.pinnedpubkey,
            curl_follow_redirect=1 if args.location else 0,
            connect_timeout=(None if args.connect_timeout is None
                             else max(1, round(args.connect_timeout * 1000))),
            proxy=args.proxy,
            no_proxy=args.noproxy,
            resolve=args.resolve or None,
            connect_to=args.connect_to or None,
            unix_socket=args.unix_socket,
            **({} if args.user_agent is None else {"user_agent": args.user_agent}),
        )
    except UsageError as exc:
        raise CliError(str(exc)) from None
    with client:
        yield client


def _validate(args: argparse.Namespace) -> None:
    """Refuse bad URLs, method or headers before anything starts or is
    sent (the library's own checks, so the messages are the same)."""
    for url in args.urls:
        check_url(url)
    if args.method is not None:
        check_method(args.method)
    headers_lines(args.header)


def _http_version(args: argparse.Namespace, url: str) -> int | None:
    """The per-query ``http_version`` (curl's flags of the same names)."""
    if args.http2_prior_knowledge:
        return 2
    # https negotiates HTTP/2 by ALPN already; cleartext asks with Upgrade
    if args.http2 and url.lower().startswith("http://"):
        return 1
    return None


# ------------------------------------------------------------------ fetch
def _output_name(index: int, width: int, url: str) -> str:
    path = url.split("://", 1)[-1].split("?", 1)[0].split("#", 1)[0]
    host, _, rest = path.partition("/")
    base = rest.rstrip("/").rsplit("/", 1)[-1] if rest.strip("/") else ""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", base or f"{host}-index")[:100].lstrip(".") or "body"
    return f"{index:0{width}d}-{name}"


def fetch(args: argparse.Namespace) -> int:
    _validate(args)
    if args.form and args.data is not None:
        raise CliError("-F and -d both give the request body: use one")
    body = _fetch_body(args.data)
    form = _form(args.form) if args.form else None
    if args.no_buffer:
        return _fetch_streamed(args, body, form)
    outdir: Path | None = None
    if args.output and args.output != "-":
        outdir = Path(args.output)
        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"-o {args.output}: {exc.strerror or exc}") from None
    width = len(str(len(args.urls)))
    failed = 0
    out = sys.stdout
    with _client(args) as client:
        started: dict[int, tuple[int, float]] = {}
        for i, url in enumerate(args.urls, 1):
            # the worker writes the body to its file as it arrives
            target = None if outdir is None else outdir / _output_name(i, width, url)
            h = client.query(url, body, method=args.method, headers=args.header,
                             http_version=_http_version(args, url), output=target, form=form)
            started[h.id] = (i, time.perf_counter())
        for reply in client.completions():
            _, t = started[reply.id]
            ms = (time.perf_counter() - t) * 1000
            if not reply.ok:
                failed += 1
                out.write(f"ERR  {ms:8.1f} ms {'-':>10}    {reply.url}  {reply.err}\n")
                continue
            bad_status = args.fail and reply.status >= 400
            failed += bad_status
            saved = f"  -> {reply.output}" if reply.output is not None else ""
            version = f"HTTP/{reply.http_version}" if reply.http_version else "HTTP/?"
            out.write(f"{reply.status:<4} {ms:8.1f} ms {reply.bs:>10} B  {version:<8}  "
                      f"{reply.url}{saved}\n")
            if args.include:
                # with output= the message holds the head alone
                raw = reply.mb if reply.output is not None else reply.mb[: reply.ml - reply.bs]
                head = raw.decode("latin-1").rstrip("\r\n")
                out.write("".join(f"    {line}\n" for line in head.splitlines()))
            if args.output == "-":
                out.flush()
                sys.stdout.buffer.write(reply.body)
                if reply.body and not reply.body.endswith(b"\n"):
                    sys.stdout.buffer.write(b"\n")
                sys.stdout.buffer.flush()
            out.flush()
    return EXIT_FAILED if failed else EXIT_OK


def _fetch_streamed(args: argparse.Namespace, body: BodyArg, form: Any) -> int:
    """fetch -N: each body written to stdout as it arrives (curl -N), the
    URLs one after another; the summary lines go to stderr."""
    failed = 0
    out = sys.stdout.buffer
    with _client(args) as client:
        for url in args.urls:
            t = time.perf_counter()
            stream = client.query(url, body, stream=True, method=args.method, form=form,
                                  headers=args.header, http_version=_http_version(args, url))
            try:
                for chunk in stream.iter_bytes():
                    out.write(chunk)
                    out.flush()
                reply = stream.result()
            except HttpAsyncClientError as exc:
                failed += 1
                sys.stderr.write(f"ERR  {(time.perf_counter() - t) * 1000:8.1f} ms  {url}  {exc}\n")
                continue
            failed += args.fail and reply.status >= 400
            sys.stderr.write(f"{reply.status:<4} {(time.perf_counter() - t) * 1000:8.1f} ms  {url}\n")
    return EXIT_FAILED if failed else EXIT_OK


# ------------------------------------------------------------------ bench
@contextlib.contextmanager
def _loopback_server() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The embedded server in a child process, pinned to the first CPU and
    this process to the second when there are two: the server must not
    compete with the client for a core (or for the GIL)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    cmd = [sys.executable, "-m", "http_async_client._loopback", "0"]
    if len(cpus) >= 2:
        cmd.append(str(cpus[0]))
    server = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.strip().isdigit():
            raise CliError("the embedded loopback server did not start")
        if len(cpus) >= 2:
            os.sched_setaffinity(0, {cpus[1]})  # before the client's workers start
        yield f"http://127.0.0.1:{int(line)}/", server
    finally:
        if server.stdin:
            server.stdin.close()  # the server exits when its stdin closes
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _bench_config(args: argparse.Namespace, url: str) -> BenchConfig:
    requests, duration = args.requests, args.duration
    if requests is None and duration is None:
        requests, duration = DEFAULT_REQUESTS, DEFAULT_DURATION
    return BenchConfig(
        url=url,
        method=args.method,
        headers=list(args.header),
        body=_read_data(args.data),
        requests=requests,
        duration=duration,
        concurrency=args.concurrency,
        rate=args.rate,
        http_version=_http_version(args, url),
    )


def _choose_ui(args: argparse.Namespace, stream: IO[str]) -> str:
    """"rich" or "plain" for output to ``stream`` (progress: stderr,
    report: stdout, each decided on its own: `bench > report.txt` still
    shows the bar)."""
    if args.ui == "rich":
        if not _ui.rich_available():
            raise CliError("--ui rich needs the rich package: pip install 'http_async_client[cli]'")
        return "rich"
    if args.ui == "plain":
        return "plain"
    return "rich" if _ui.rich_available() and stream.isatty() else "plain"


def _progress(args: argparse.Namespace, cfg: BenchConfig) -> Progress:
    ui = _choose_ui(args, sys.stderr)
    if args.no_progress or (args.json and ui != "rich"):
        return _ui.NullProgress()
    if ui == "rich":
        return _ui.RichProgress(sys.stderr, force=args.ui == "rich")
    return _ui.PlainProgress(sys.stderr, cfg.requests)


def _describe(cfg: BenchConfig) -> str:
    bounds = []
    if cfg.requests is not None:
        bounds.append(f"{cfg.requests} requests max")
    if cfg.duration is not None:
        bounds.append(f"{cfg.duration:g} s max")
    rate = f", rate {cfg.rate:g}/s" if cfg.rate else ""
    return f"{', '.join(bounds)}, concurrency {cfg.concurrency}{rate}"


def bench(args: argparse.Namespace) -> int:
    ui = _choose_ui(args, sys.stdout)
    url = args.urls[0] if args.urls else None
    if len(args.urls) > 1:
        raise CliError("bench takes one URL")
    if getattr(args, "form", None):
        raise CliError("-F is for fetch (bench sends -d's body)")
    _validate(args)
    _read_data(args.data)  # a missing @FILE before the server starts
    banner: IO[str] = sys.stderr if args.json else sys.stdout
    with contextlib.ExitStack() as stack:
        if url is None:
            url, server = stack.enter_context(_loopback_server())
            where = f"embedded loopback server {url} (pid {server.pid})"
        else:
            where = f"target {url}"
        cfg = _bench_config(args, url)
        client = stack.enter_context(_client(args))
        banner.write(f"http_async_client {__version__}, {CURL_VERSION.split()[0]}\n")
        banner.write(f"{where}; {_describe(cfg)}, workers {args.workers}\n")
        banner.flush()
        result = _run_with_sigint(client, cfg, _progress(args, cfg))
        if result.abandoned:
            client.close()  # cancels what is still in flight
        result.stats = client.stats()
    _print_report(args, ui, result)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.errors == 0 and result.completed else EXIT_FAILED


def _run_with_sigint(client: Client, cfg: BenchConfig, progress: Progress) -> BenchResult:
    """Run the load with Ctrl-C turned into a request to stop (first: stop
    sending and wait for what is in flight; second: stop waiting), so the
    partial numbers survive and get reported."""
    stop = StopFlag()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        stop.request()

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    try:
        return run_load(client, cfg, progress, stop)
    finally:
        if main_thread and previous is not None:
            signal.signal(signal.SIGINT, previous)
        progress.close()


def _print_report(args: argparse.Namespace, ui: str, result: BenchResult) -> None:
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif ui == "rich":
        console: Any = _ui.make_console(sys.stdout, force=args.ui == "rich")
        _ui.rich_report(result, console)
    else:
        sys.stdout.write("\n" + _ui.plain_report(result, sys.stdout))
    sys.stdout.flush()


# ------------------------------------------------------------------ main
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m http_async_client`` and ``http-async-client``."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "fetch":
            return fetch(args)
        return bench(args)
    except (HttpAsyncClientError, CliError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `... | head`
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
