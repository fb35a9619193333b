"""System calls and CPU per request: our client against the C ceiling.

Each client does N small keep-alive GETs against the benchmark nginx
(``harness.Servers``, pinned to core 0) with the client pinned to core 1,
once under ``strace -c -f`` and, with ``--perf``, under
``perf stat -e task-clock``.  Every figure is a difference between a run of
N requests and one of N/10, divided by the difference in requests, so
interpreter start-up, imports, connection set-up and the first requests
cancel out: what is left is the cost of one more request.

usage: python bench/syscalls.py [--requests 20000] [--conc 1,64]
           [--ours [LABEL=]PYTHON ...] [--ceiling BIN ...] [--curl-prefix DIR]
           [--client NAME] [--pythonpath DIR] [--perf] [--rounds 3]
           [--callgrind [--cg-requests 3000]]

``--ours`` takes interpreters with http_async_client installed (default:
this one), each with an optional row label; ``--ceiling`` takes ceiling binaries (default:
bench/.build/ceiling-<libcurl version>, built from bench/ceiling.c against
the system libcurl, and against ``--curl-prefix`` when given).  The libcurl
version of each row is what the process itself loads.  ``--pythonpath``
puts a build first on the runners' path (``bench/.venv/hac-curlsrc``: ours on
the wheel's libcurl); ``--client pycurl-multi`` measures pycurl instead.
``--callgrind`` adds user-space instructions per request by shared object
(``valgrind --tool=callgrind``, all threads; the same difference, over
``--cg-requests``): steadier than any clock on a shared machine.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import CLIENT_CORE, Servers, pinned  # noqa: E402

# the columns of the table; everything else is summed into "other"
NAMES = ["sendto", "recvfrom", "epoll_wait", "epoll_ctl", "poll", "read", "write", "futex"]
RUN_LIMIT_S = 300.0  # no single run may take longer than this
# the callgrind table's columns (a substring of the shared object's name);
# every other object is summed into "other"
CG_OBJECTS = ("libcurl", "libpython", "libc.so", "libev", "_native", "libssl", "libcrypto")


@dataclass
class Client:
    label: str
    curl: str
    argv: list[str]  # up to the URL
    runner: bool  # runner.py's arguments, else ceiling's

    def command(self, n: int, conc: int) -> list[str]:
        if self.runner:
            return [*self.argv, "--requests", str(n), "--concurrency", str(conc), "--seconds", "120"]
        return [*self.argv, str(n), str(conc), "120"]


def ldd_curl(binary: str) -> str:
    """The libcurl version a ceiling binary loads (from its ldd path)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    m = re.search(r"libcurl\.so\.4 => (\S+)", out)
    if not m:
        return "?"
    lib = ctypes.CDLL(m.group(1))
    lib.curl_version.restype = ctypes.c_char_p
    text: str = lib.curl_version().decode()  # "libcurl/8.14.1 OpenSSL/..."
    return text.split()[0].split("/")[1]


def our_curl(python: str, client: str) -> str:
    code = ("import pycurl; print(pycurl.version_info()[1])" if client.startswith("pycurl")
            else "import http_async_client as h; print(h.curl_version())")
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def build_ceiling(prefix: str | None) -> str:
    """bench/ceiling.c built against the system libcurl or a prefix."""
    out_dir = HERE / ".build"
    out_dir.mkdir(exist_ok=True)
    flags: list[str] = []
    if prefix:
        inc = next(Path(prefix).rglob("curl/curl.h")).parent.parent
        lib = next(Path(prefix).rglob("libcurl.so")).parent
        flags = [f"-I{inc}", f"-L{lib}", f"-Wl,-rpath,{lib}", "-Wl,--enable-new-dtags"]
    tmp = out_dir / "ceiling.tmp"
    cmd = ["gcc", "-std=c11", "-O2", *flags, "-o", str(tmp), str(HERE / "ceiling.c"), "-lcurl", "-lev"]
    subprocess.run(cmd, check=True)
    dest = out_dir / f"ceiling-{ldd_curl(str(tmp))}"
    tmp.replace(dest)
    return str(dest)


def strace_counts(cmd: list[str]) -> dict[str, int]:
    """System calls by name of cmd and all its threads (strace -c -f)."""
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as f:
        full = ["strace", "-f", "-c", "-o", f.name, *pinned(CLIENT_CORE, cmd)]
        run = subprocess.run(full, capture_output=True, text=True, timeout=RUN_LIMIT_S)
        if run.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed: {run.stdout}{run.stderr}")
        counts: dict[str, int] = collections.Counter()
        for line in f.read().splitlines():
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                name = parts[-1]
                counts[name] += int(parts[3])
                if len(parts) == 6 and name == "epoll_ctl":
                    counts["epoll_ctl_err"] += int(parts[4])
        return counts


def task_clock_ms(cmd: list[str]) -> float:
    """CPU time of cmd and all its threads (perf stat -e task-clock)."""
    with tempfile.NamedTemporaryFile("r", suffix=".perf") as f:
        full = ["perf", "stat", "-x,", "-e", "task-clock", "-o", f.name, *pinned(CLIENT_CORE, cmd)]
        run = subprocess.run(full, capture_output=True, text=True, timeout=RUN_LIMIT_S)
        if run.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed: {run.stdout}{run.stderr}")
        for line in f.read().splitlines():
            if "task-clock" in line:
                return float(line.split(",")[0])
    raise SystemExit("perf stat printed no task-clock")


def callgrind_counts(cmd: list[str]) -> dict[str, int]:
    """User-space instructions of cmd (all threads) by shared object:
    callgrind_annotate's per-function lines summed by their [object]."""
    with tempfile.TemporaryDirectory() as d:
        out = f"{d}/cg.out"
        # taskset outside: valgrind does not follow the exec of a wrapper
        full = pinned(CLIENT_CORE, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd])
        run = subprocess.run(full, capture_output=True, text=True, timeout=RUN_LIMIT_S * 4)
        if run.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed under callgrind: {run.stderr[-2000:]}")
        text = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", out],
                              capture_output=True, text=True, check=True).stdout
    counts: dict[str, int] = collections.Counter()
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)\s*$", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        rest = m.group(2)
        if rest.startswith("PROGRAM TOTALS"):
            counts["total"] = n
            continue
        obj = re.search(r"\[([^\]]+)\]$", rest)
        name = Path(obj.group(1)).name if obj else "?"
        for key in CG_OBJECTS:
            if key in name:
                name = key
                break
        counts[name] += n
    return counts


def callgrind_table(clients: list[Client], concs: list[int], n: int) -> None:
    small = max(100, n // 10)
    big = small + n
    print(f"\ninstructions per request (valgrind --tool=callgrind, user space, all threads;"
          f" {big} - {small} GETs, difference of the two runs), by shared object")
    keys = CG_OBJECTS
    print(f"{'client':<14} {'libcurl':<8} {'c':>4} {'total':>8} " + " ".join(f"{k:>9.9}" for k in keys)
          + f" {'other':>8}")
    for conc in concs:
        for cl in clients:
            d = per_request(callgrind_counts(cl.command(big, conc)),
                            callgrind_counts(cl.command(small, conc)), big - small)
            total = d.get("total", 0.0)
            other = total - sum(d.get(k, 0.0) for k in keys)
            print(f"{cl.label:<14} {cl.curl:<8} {conc:>4} {total:8.0f} "
                  + " ".join(f"{d.get(k, 0.0):9.0f}" for k in keys) + f" {other:8.0f}", flush=True)


def per_request(big: dict[str, int], small: dict[str, int], dn: int) -> dict[str, float]:
    return {k: (big.get(k, 0) - small.get(k, 0)) / dn for k in set(big) | set(small)}


def row(label: str, curl: str, conc: int, d: dict[str, float]) -> str:
    total = sum(v for k, v in d.items() if k != "epoll_ctl_err")
    other = total - sum(d.get(k, 0.0) for k in NAMES)
    cells = [f"{d.get(k, 0.0):6.2f}" for k in NAMES]
    err = d.get("epoll_ctl_err", 0.0)
    return (f"{label:<14} {curl:<8} {conc:>4} {total:6.2f} " + " ".join(cells)
            + f" {other:6.2f} {err:8.2f}")


def strace_table(clients: list[Client], concs: list[int], n_big: int, n_small: int) -> None:
    print(f"system calls per request ({n_big} - {n_small} GETs, client on core {CLIENT_CORE},"
          f" nginx on core 0, keep-alive; strace -c -f, difference of the two runs)")
    head = " ".join(f"{k:>6.6}" for k in NAMES)
    print(f"{'client':<14} {'libcurl':<8} {'c':>4} {'total':>6} {head} {'other':>6} {'ctl-errs':>8}")
    for conc in concs:
        for cl in clients:
            big = strace_counts(cl.command(n_big, conc))
            small = strace_counts(cl.command(n_small, conc))
            print(row(cl.label, cl.curl, conc, per_request(big, small, n_big - n_small)), flush=True)


def perf_table(clients: list[Client], concs: list[int], n_big: int, n_small: int, rounds: int) -> None:
    print(f"\nCPU µs per request of the client process (perf stat -e task-clock,"
          f" all threads, pinned to core {CLIENT_CORE}; median of {rounds} rounds)")
    print(f"{'client':<14} {'libcurl':<8} {'c':>4} {'µs/req':>7}  rounds")
    for conc in concs:
        got: dict[int, list[float]] = collections.defaultdict(list)
        for _ in range(rounds):  # interleaved: the machine's noise hits all alike
            for i, cl in enumerate(clients):
                big_ms = task_clock_ms(cl.command(n_big, conc))
                small_ms = task_clock_ms(cl.command(n_small, conc))
                got[i].append((big_ms - small_ms) * 1000.0 / (n_big - n_small))
        for i, cl in enumerate(clients):
            vals = " ".join(f"{v:.2f}" for v in got[i])
            print(f"{cl.label:<14} {cl.curl:<8} {conc:>4} {statistics.median(got[i]):7.2f}  {vals}",
                  flush=True)



def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--conc", default="1,64", help="comma-separated concurrencies")
    p.add_argument("--ours", action="append", default=[],
                   help="[LABEL=]interpreter with our client installed")
    p.add_argument("--ceiling", action="append", default=[], help="ceiling binary")
    p.add_argument("--curl-prefix", help="also build the ceiling against this libcurl prefix")
    p.add_argument("--client", default="ours-cq-w1", help="runner.py client name")
    p.add_argument("--perf", action="store_true", help="also CPU µs per request (task-clock)")
    p.add_argument("--rounds", type=int, default=3, help="perf rounds (median)")
    p.add_argument("--no-strace", action="store_true", help="only the task-clock table")
    p.add_argument("--pythonpath", help="put this directory first on the runners' path")
    p.add_argument("--callgrind", action="store_true", help="also instructions per request")
    p.add_argument("--cg-requests", type=int, default=3000, help="requests told apart under callgrind")
    a = p.parse_args()
    n_big = max(1000, a.requests)
    n_small = n_big // 10
    concs = [int(c) for c in a.conc.split(",")]
    if a.pythonpath:  # the runners inherit it (strace, perf and valgrind pass the environment on)
        os.environ["PYTHONPATH"] = os.path.abspath(a.pythonpath)

    ceilings = a.ceiling or [build_ceiling(None)] + ([build_ceiling(a.curl_prefix)] if a.curl_prefix else [])
    srv = Servers().start(slow=False)
    try:
        url = srv.http + "/"
        clients = [Client("ceiling", ldd_curl(b), [b, url], False) for b in ceilings]
        for spec in a.ours or [sys.executable]:
            label, _, py = spec.rpartition("=")
            clients.append(Client(label or a.client, our_curl(py, a.client),
                                  [py, str(HERE / "runner.py"), a.client, url], True))
        if not a.no_strace:
            strace_table(clients, concs, n_big, n_small)
        if a.perf:
            perf_table(clients, concs, n_big, n_small, a.rounds)
        if a.callgrind:
            callgrind_table(clients, concs, a.cg_requests)
    finally:
        srv.stop()
    return 0




if __name__ == "__main__":
    sys.exit(main())
