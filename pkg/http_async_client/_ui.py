"""Terminal output of the CLI: progress while a bench runs, then its report.

Two renderings of the same data: plain text (always available; what a pipe,
a log or a CI job gets) and ``rich`` (optional extra ``[cli]``: a live
progress bar and tables on a terminal).  ``rich`` is imported only when
chosen, so the core package keeps its single dependency (cffi).
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

from ._bench import BenchConfig, BenchResult, Snapshot, latency_origin

if TYPE_CHECKING:
    from rich.console import Console

BAR_WIDTH = 40


def rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _bar_char(stream: IO[str]) -> str:
    """A filled square where the stream can encode it, else '#'."""
    try:
        "\u25a0".encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "#"
    return "\u25a0"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"  # pragma: no cover - the loop returns


# ------------------------------------------------------------ progress
def _stopping_text(inflight: int) -> str:
    if not inflight:
        return "interrupted: stopped sending"
    return (
        f"interrupted: stopped sending, waiting for {inflight} in flight "
        "(Ctrl-C again to stop waiting)"
    )


class NullProgress:
    """No progress output (``--json`` to a pipe, ``--no-progress``)."""

    interval = 0.25  # still wakes the loop, to notice Ctrl-C

    def update(self, snap: Snapshot) -> None:
        pass

    def stopping(self, inflight: int) -> None:
        pass

    def close(self) -> None:
        pass


class PlainProgress:
    """One line per second on ``stream`` (stderr): readable in a log."""

    interval = 1.0

    def __init__(self, stream: IO[str], total: int | None) -> None:
        self.stream = stream
        self.total = total
        self._last_done = 0
        self._last_t = 0.0

    def update(self, snap: Snapshot) -> None:
        dt = snap.elapsed - self._last_t
        rate = (snap.done - self._last_done) / dt if dt > 0 else 0.0
        self._last_done, self._last_t = snap.done, snap.elapsed
        of = f"/{self.total}" if self.total else ""
        self.stream.write(
            f"[{snap.elapsed:6.1f} s] {snap.done}{of} done ({snap.fraction * 100:3.0f}%), "
            f"{rate:.0f} req/s, {snap.errors} errors, {snap.inflight} in flight\n"
        )
        self.stream.flush()

    def stopping(self, inflight: int) -> None:
        self.stream.write(_stopping_text(inflight) + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class RichProgress:
    """A live bar on the terminal (rich), refreshed by the bench loop itself
    at 10 Hz: no refresh thread competing with the loop for the GIL."""

    interval = 0.1

    def __init__(self, stream: IO[str], force: bool) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(file=stream, force_terminal=force or None)
        self.progress = Progress(
            BarColumn(bar_width=24),
            TaskProgressColumn(),
            TextColumn("{task.fields[done]:>9,} done"),
            TextColumn("[cyan]{task.fields[rps]:>7,.0f}/s"),
            TextColumn("[red]{task.fields[errors]} err"),
            TextColumn("{task.fields[inflight]} in flight"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            auto_refresh=False,
            transient=False,
        )
        self.task = self.progress.add_task(
            "bench", total=1000, done=0, rps=0.0, errors=0, inflight=0
        )
        self.progress.start()
        self._last_done = 0
        self._last_t = 0.0
        self._rps = 0.0

    def update(self, snap: Snapshot) -> None:
        dt = snap.elapsed - self._last_t
        if dt >= 0.25 or snap.fraction >= 1.0:  # steadier than per 100 ms
            self._rps = (snap.done - self._last_done) / dt if dt > 0 else self._rps
            self._last_done, self._last_t = snap.done, snap.elapsed
        self.progress.update(
            self.task,
            completed=int(snap.fraction * 1000),
            done=snap.done,
            rps=self._rps,
            errors=snap.errors,
            inflight=snap.inflight,
        )
        self.progress.refresh()

    def stopping(self, inflight: int) -> None:
        self.progress.console.print(_stopping_text(inflight), style="yellow", markup=False)
        self.progress.refresh()

    def close(self) -> None:
        self.progress.stop()


# ------------------------------------------------------------ report
def _us(v: float) -> str:
    return f"{v:.0f} us"


def _latency_title(cfg: BenchConfig) -> str:
    if latency_origin(cfg) == "scheduled start":
        return "from each request's scheduled start to its reply: --rate, coordinated-omission corrected"
    return "transfer time, C histograms"


def plain_report(res: BenchResult, stream: IO[str]) -> str:
    """The final report as text.  The first and the latency line keep the
    form of the original demo (scripts grep them)."""
    lat = res.latency_us()
    cfg = res.config
    method = cfg.method or ("POST" if cfg.body is not None else "GET")
    out: list[str] = []
    add = out.append
    add("Summary:" + ("  (interrupted: partial results)" if res.interrupted else ""))
    add(
        f"  {res.completed} requests in {res.seconds:.2f} s: {res.rps:.0f} requests/s, "
        f"{res.ok} ok, {res.errors} errors"
    )
    add(f"  target: {method} {cfg.url}, concurrency {cfg.concurrency}"
        + (f", rate {cfg.rate:g}/s" if cfg.rate else ""))
    if res.abandoned:
        add(f"  abandoned: {res.abandoned} requests still in flight were not waited for")
    add(
        f"  transferred: {human_bytes(res.bytes_received)} received "
        f"({human_bytes(res.body_bytes_received)} of bodies), "
        f"{human_bytes(res.sent * len(cfg.body or b''))} of request bodies sent"
    )
    add("")
    add(f"Latency ({_latency_title(cfg)}):")
    if not res.completed:
        add("  no replies")
    else:
        add(
            f"  latency p50 {lat['p50']:.0f} us  p90 {lat['p90']:.0f} us  "
            f"p99 {lat['p99']:.0f} us  p99.9 {lat['p99.9']:.0f} us  max {lat['max']:.0f} us"
        )
        add(f"  min {lat['min']:.0f} us  mean {lat['mean']:.0f} us  stdev {lat['stdev']:.0f} us")
    hist = res.histogram()
    if hist:
        add("")
        add("Latency histogram (log-spaced buckets):")
        peak = max(c for _, _, c in hist) or 1
        char = _bar_char(stream)
        wa = max(len(f"{a:.0f}") for a, _, _ in hist)
        wb = max(len(f"{b:.0f}") for _, b, _ in hist)
        wc = max(len(str(c)) for _, _, c in hist)
        for a, b, c in hist:
            bar = char * (round(c / peak * BAR_WIDTH) if c else 0)
            add(f"  {a:>{wa}.0f} .. {b:>{wb}.0f} us  {c:>{wc}}  {bar}".rstrip())
    add("")
    add("Status codes:")
    if res.status:
        for code, n in sorted(res.status.items()):
            add(f"  {code}  {n}  ({n / res.completed * 100:.1f}%)")
    else:
        add("  none")
    add("")
    add("Errors:")
    if res.error_kinds:
        for kind, n in sorted(res.error_kinds.items(), key=lambda kv: -kv[1]):
            add(f"  {n}  {kind}")
    else:
        add("  none")
    if res.stats:
        add("")
        add("stats: " + ", ".join(
            f"{k}={res.stats[k]}" for k in ("requests", "replies", "errors", "timeouts")
        ))
    return "\n".join(out) + "\n"


def rich_report(res: BenchResult, console: Console) -> None:
    """The same report as rich tables."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    lat = res.latency_us()
    cfg = res.config
    method = cfg.method or ("POST" if cfg.body is not None else "GET")

    summary = Table(title="Summary" + (" (interrupted: partial)" if res.interrupted else ""),
                    box=box.SIMPLE, show_header=False, title_justify="left")
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("target", f"{method} {cfg.url}")
    summary.add_row("requests", f"{res.completed} in {res.seconds:.2f} s")
    summary.add_row("requests/s", f"[bold cyan]{res.rps:,.0f}")
    summary.add_row("ok / errors", f"[green]{res.ok}[/] / [red]{res.errors}")
    summary.add_row("concurrency", str(cfg.concurrency) + (f", rate {cfg.rate:g}/s" if cfg.rate else ""))
    if res.abandoned:
        summary.add_row("abandoned", f"{res.abandoned} in flight not waited for")
    summary.add_row(
        "transferred",
        f"{human_bytes(res.bytes_received)} received ({human_bytes(res.body_bytes_received)} bodies)",
    )
    console.print(summary)

    pct = Table(title=f"Latency ({_latency_title(res.config)}, us)", box=box.SIMPLE,
                title_justify="left")
    for key in ("min", "p50", "p90", "p99", "p99.9", "max", "mean", "stdev"):
        pct.add_column(key, justify="right")
    pct.add_row(*(f"{lat[k]:,.0f}" for k in ("min", "p50", "p90", "p99", "p99.9", "max", "mean", "stdev")))
    console.print(pct)

    hist = res.histogram()
    if hist:
        table = Table(title="Latency histogram (log-spaced, us)", box=box.SIMPLE, title_justify="left")
        table.add_column("from", justify="right")
        table.add_column("to", justify="right")
        table.add_column("count", justify="right")
        table.add_column("", min_width=BAR_WIDTH)
        peak = max(c for _, _, c in hist) or 1
        for a, b, c in hist:
            bar = Text("\u25a0" * (round(c / peak * BAR_WIDTH) if c else 0), style="green")
            table.add_row(f"{a:,.0f}", f"{b:,.0f}", str(c), bar)
        console.print(table)

    codes = Table(title="Status codes", box=box.SIMPLE, title_justify="left")
    codes.add_column("status", justify="right")
    codes.add_column("count", justify="right")
    codes.add_column("share", justify="right")
    for code, n in sorted(res.status.items()):
        style = "green" if code < 400 else "red"
        codes.add_row(f"[{style}]{code}", str(n), f"{n / res.completed * 100:.1f}%")
    console.print(codes)

    errs = Table(title="Errors", box=box.SIMPLE, title_justify="left")
    errs.add_column("count", justify="right")
    errs.add_column("kind")
    for kind, n in sorted(res.error_kinds.items(), key=lambda kv: -kv[1]):
        errs.add_row(str(n), kind)
    if not res.error_kinds:
        errs.add_row("0", "none")
    console.print(errs)
    if res.stats:
        console.print("stats: " + ", ".join(
            f"{k}={res.stats[k]}" for k in ("requests", "replies", "errors", "timeouts")
        ), highlight=False)


def make_console(stream: IO[str], force: bool) -> Any:
    from rich.console import Console

    return Console(file=stream, force_terminal=force or None)
