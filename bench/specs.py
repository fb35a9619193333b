"""What the benchmark runs: the workloads and the client variants.

A workload names its server (harness.py), path, concurrency and whether
TLS is verified; a client spec names how it runs (runner.py, a C binary or
wrk) and, for the builds kept apart from the venv's (this package and
pycurl on Debian's libcurl 7.88, pycurl on the system's libcurl), the
directory bench/run.sh installed them into, put first on PYTHONPATH.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import HERE

REF = "ours-cq-w1"
SRC = "ours-cq-w1-src"  # the same client on the libcurl the wheel bundles
VENV = HERE / ".venv"
BUILD = HERE / ".build"


@dataclass(frozen=True)
class Workload:
    """One row group: what to request, from which server, how many at once."""

    key: str
    title: str
    server: str  # "http", "https", "https-close" or "slow"
    path: str
    concurrency: int
    body_bytes: int = 0
    expect_bytes: int = 2
    max_rate: int = 150_000  # requests cap = max_rate * seconds (time binds first)
    verify: bool = False  # TLS verification on, with the bench's private CA
    bundle: bool = False  # ... appended to the system's CA bundle (a CA file of ~150 certificates)
    only: tuple[str, ...] = ()  # when set, only these clients run it
    without: tuple[str, ...] = ()  # clients that cannot run it (left out of the group)

    def wants(self, client: str) -> bool:
        return (not self.only or client in self.only) and client not in self.without


# the new-connection rows: the same clients for both, so that
# verified / unverified is a ratio within one client
_TLSNEW_PEERS = ("ours-cq-w1", "ours-cq-w1-curl7", "ours-cq-w1-src", "ours-aio-w1",
                 "pycurl-multi", "pycurl-multi-sys", "pycurl-multi-curl7",
                 "ceiling", "ceiling-curl7", "ceiling-src", "ceiling-nocapath")

WORKLOADS = [
    Workload("get", "GET 2 B body, c=64", "http", "/", 64),
    Workload("post", "POST 1 KiB, c=64", "http", "/post", 64, body_bytes=1024),
    Workload("get64k", "GET 64 KiB body, c=32", "http", "/64k", 32, expect_bytes=65536),
    Workload("serial", "GET 2 B, one at a time (c=1)", "http", "/", 1, max_rate=50_000),
    Workload("slow", "GET, server delay 10 ms, c=256", "slow", "/", 256, max_rate=60_000),
    Workload("https", "HTTPS GET 2 B, keep-alive, c=64, verification off", "https", "/", 64),
    Workload("tlsnew", "HTTPS GET 2 B, new connection per request, c=8, verified (private CA file)",
             "https-close", "/", 8, max_rate=20_000, verify=True,
             without=("wrk",)),  # wrk cannot verify
    Workload("tlsnew-bundle", "HTTPS GET 2 B, new connection per request, c=8, verified "
             "(system CA bundle + private CA, one file)", "https-close", "/", 8, max_rate=20_000,
             verify=True, bundle=True, only=_TLSNEW_PEERS),
    Workload("tlsnew-nv", "HTTPS GET 2 B, new connection per request, c=8, verification off",
             "https-close", "/", 8, max_rate=20_000, only=_TLSNEW_PEERS),
]


@dataclass(frozen=True)
class ClientSpec:
    """A client variant: how to run it and how to label it."""

    key: str
    label: str
    group: str  # "ours", "peer" or "ceiling"
    kind: str = "py"  # "py" (runner.py), "ceiling" or "wrk"
    pythonpath: str = ""  # put first on PYTHONPATH (a build kept apart from the venv's)
    binary: str = ""  # kind "ceiling": the executable
    runner: str = ""  # runner.py's client name when not the key
    env: tuple[tuple[str, str], ...] = ()  # extra environment of its runs
    workloads: tuple[str, ...] = ()  # when set, it runs only these

    @property
    def runner_name(self) -> str:
        return self.runner or self.key


_CURL7_HAC = str(VENV / "hac-curl7")
# built against the newest libcurl Debian publishes as source (tools/libcurl.sh
# source): the libcurl the wheel bundles
_SRC_HAC = str(VENV / "hac-curlsrc")

CLIENTS = [
    ClientSpec("ours-cq-w1", "ours completions() w=1 [ref]", "ours"),
    ClientSpec("ours-cq-w2", "ours completions() w=2", "ours"),
    ClientSpec("ours-cq-batch", "ours batch API w=1", "ours"),
    ClientSpec("ours-cq-caller", "ours completions() driver=caller", "ours"),
    ClientSpec("ours-cq-batch-caller", "ours batch API driver=caller", "ours"),
    ClientSpec("ours-cq-caller-src", "ours completions() driver=caller, wheel libcurl", "ours",
               pythonpath=_SRC_HAC, runner="ours-cq-caller"),
    ClientSpec("ours-cq-w1-curl7", "ours completions() w=1, libcurl 7.88", "ours",
               pythonpath=_CURL7_HAC, runner="ours-cq-w1"),
    ClientSpec("ours-cq-w1-src", "ours completions() w=1, wheel libcurl", "ours",
               pythonpath=_SRC_HAC, runner="ours-cq-w1"),
    ClientSpec("ours-cq-batch-src", "ours batch API w=1, wheel libcurl", "ours",
               pythonpath=_SRC_HAC, runner="ours-cq-batch"),
    ClientSpec("ours-aio-w1", "ours asyncio await w=1", "ours"),
    ClientSpec("ours-aio-w2", "ours asyncio await w=2", "ours"),
    ClientSpec("ours-aio-uv-w1", "ours asyncio await w=1 (uvloop)", "ours"),
    ClientSpec("ours-thr-w1", "ours threads http_async_query w=1", "ours"),
    ClientSpec("ours-thr-w2", "ours threads http_async_query w=2", "ours"),
    ClientSpec("pycurl-multi", "pycurl CurlMulti (PyPI wheel)", "peer"),
    ClientSpec("pycurl-multi-sys", "pycurl CurlMulti (built, system lib)", "peer",
               pythonpath=str(VENV / "pycurl-syslib"), runner="pycurl-multi"),
    ClientSpec("pycurl-multi-curl7", "pycurl CurlMulti (built, 7.88)", "peer",
               pythonpath=str(VENV / "pycurl-curl7"), runner="pycurl-multi"),
    ClientSpec("aiohttp", "aiohttp (asyncio loop)", "peer"),
    ClientSpec("aiohttp-uvloop", "aiohttp (uvloop)", "peer"),
    ClientSpec("httpx", "httpx AsyncClient", "peer"),
    ClientSpec("curl_cffi", "curl_cffi AsyncSession", "peer"),
    ClientSpec("pyreqwest", "pyreqwest async Client", "peer"),
    ClientSpec("ceiling", "C ceiling (libcurl+libev)", "ceiling", kind="ceiling",
               binary=str(BUILD / "ceiling")),
    ClientSpec("ceiling-curl7", "C ceiling, libcurl 7.88", "ceiling", kind="ceiling",
               binary=str(BUILD / "ceiling-curl7")),
    ClientSpec("ceiling-src", "C ceiling, wheel libcurl", "ceiling", kind="ceiling",
               binary=str(BUILD / "ceiling-src")),
    # Debian builds libcurl with a default CA directory (/etc/ssl/certs),
    # and a CA directory turns libcurl's CA cache off: the CA file is parsed
    # again for every connection unless CURLOPT_CAPATH is cleared
    ClientSpec("ceiling-nocapath", "C ceiling, CAPATH cleared (CA cache)", "ceiling", kind="ceiling",
               binary=str(BUILD / "ceiling"), env=(("CEILING_NO_CAPATH", "1"),),
               workloads=("tlsnew", "tlsnew-bundle", "tlsnew-nv")),
    # pycurl's way of driving libcurl, in C: curl_multi_perform over every
    # transfer + curl_multi_poll, no socket/timer callbacks
    ClientSpec("ceiling-perform", "C ceiling, perform+poll loop", "ceiling", kind="ceiling",
               binary=str(BUILD / "ceiling"), env=(("CEILING_PERFORM", "1"),)),
    ClientSpec("ceiling-perform-curl7", "C ceiling, perform+poll, libcurl 7.88", "ceiling",
               kind="ceiling", binary=str(BUILD / "ceiling-curl7"), env=(("CEILING_PERFORM", "1"),)),
    ClientSpec("wrk", "wrk -t1", "ceiling", kind="wrk"),
]


def applies(w: Workload, c: ClientSpec) -> bool:
    """Whether client ``c`` runs workload ``w``."""
    return w.wants(c.key) and (not c.workloads or w.key in c.workloads)

# the libcurl-version column for clients that use none
NO_CURL = "-"
