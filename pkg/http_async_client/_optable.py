"""Every module parameter and per-query option, once.

Strategy: one row per setting, as h11 keeps its state machine as a table:
its names (the ``Client`` keyword, which is the seed's module parameter;
the ``query()`` keyword, which is also the ``http_req`` key unless the row
says otherwise, with the seed's other spellings), its default, its checks,
and how it reaches C (a ``hac_config`` field for the client's value, an
``HAC_O_*`` key for one query's).  ``Client.__init__``, ``client.params``,
the client's attributes, ``query()``'s option keywords, ``http_req`` and
the option tables of docs/api.md are derived from it; adding a per-query
option is one row here (a resilience option's: in ``_resilience``, next
to its checks), plus its key in ``QueryOptions`` for type checkers, which
a test keeps equal to the table, and its ``setopt`` in C.
The rows' C names are looked up in the compiled module at import, so a
name that C does not define fails at once.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence, TypedDict

from ._bodies import BodyArg, FormArg, OutputArg
from ._exceptions import InvalidOption
from ._ffi import ffi, lib
from ._transport import (
    check_authmethod,
    check_bool,
    check_ca_blob,
    check_connect_timeout,
    check_connect_to,
    check_dns_cache_timeout,
    check_no_proxy,
    check_pinned_pubkey,
    check_proxy,
    check_resolve,
    check_user_agent,
    query_connect_to,
    query_resolve,
)
from ._optrow import Check, Opt
from ._resilience import RESILIENCE_ROWS, hedge_code, rate_limit_text, statuses_text
from ._version import __version__
from ._validate import (
    HeadersArg,
    PathArg,
    check_flag,
    check_hash_size,
    check_http_version,
    check_driver,
    check_int,
    check_memory_manager,
    check_nonneg,
    check_path,
    check_positive,
    check_size,
    check_text,
    check_timeout,
    check_workers,
    path_text,
    to_int,
)

_MB = 1024 * 1024

ROWS: tuple[Opt, ...] = (
    Opt("workers", None, 1, check_workers, cfg="workers",
        doc="C worker threads, each with its own libev loop, curl multi handle and "
            "request table; requests spread round-robin (by id); < 1 → `InvalidOption`"),
    Opt("driver", None, "thread", check_driver, cfg="driver", since="ours",
        doc='who runs the worker\'s loop. `"thread"`: a C thread per worker. '
            '`"caller"` (`workers=1` only): no thread; the thread that waits in '
            "`result()`, `completions()`, `wait()` or a stream read runs the loop "
            "itself, so a request costs no hand-off between threads (for a process "
            "with one core); requests move only while some thread waits; `await` "
            "is refused (`UsageError`). See docs/architecture.md § \"Who drives the "
            "loop\""),
    Opt("connection_timeout", None, 500, check_timeout, cfg="connection_timeout",
        doc="ms; a **total deadline** per request (`CURLOPT_TIMEOUT_MS`, also the "
            "connect timeout); must be ≥ 1"),
    Opt("hash_size", None, 2048, check_hash_size, cfg="hash_size",
        doc="buckets of each worker's request table; rounded **down** to a power of "
            "two; < 1 → 1 (`Client(hash_size=1500).hash_size == 1024`)"),
    Opt("tls_version", None, 0, check_nonneg, cfg="tls_version",
        doc="`CURLOPT_SSLVERSION` value"),
    Opt("tls_verify_host", "tls_verify_host", 2, check_nonneg, check_flag,
        cfg="tls_verify_host", key="HAC_O_VERIFY_HOST", http_req=False, attribute=False,
        doc="0 off, non-zero on (`CURLOPT_SSL_VERIFYHOST` 2)"),
    Opt("tls_verify_peer", "tls_verify_peer", 1, check_nonneg, check_flag,
        cfg="tls_verify_peer", key="HAC_O_VERIFY_PEER", http_req=False, attribute=False,
        doc="`CURLOPT_SSL_VERIFYPEER`"),
    Opt("curl_verbose", None, 0, check_int, cfg="curl_verbose",
        doc="non-zero: libcurl's request/response header trace goes to logger "
            "`http_async_client` at INFO (`[id] > GET / HTTP/1.1`, `[id] < HTTP/1.1 200 "
            "OK`); gathered in C, logged by the Python thread that drains"),
    Opt("memory_manager", None, "shm", check_memory_manager, cfg="memory_manager",
        doc='`"shm"`: libcurl and the core allocate through the project\'s accounted '
            "allocator (`curl_global_init_mem`; `mem_in_use`/`mem_peak` in `stats()`); "
            '`"sys"`: malloc/free. libcurl\'s allocator is process-wide: the first '
            "client decides; a later client asking for the other gets a warning and "
            "`params` shows the mode in force. If another library initialised libcurl "
            "first, only the core's own allocations are accounted"),
    Opt("tls_client_cert", "tls_client_cert", None, check_path, path_text,
        cfg="tls_client_cert", key="HAC_O_CLIENT_CERT", doc="client certificate (PEM)"),
    Opt("tls_client_key", "tls_client_key", None, check_path, path_text,
        cfg="tls_client_key", key="HAC_O_CLIENT_KEY", doc="its key"),
    Opt("tls_ca_path", "tls_ca_path", None, check_path, path_text,
        cfg="tls_ca_path", key="HAC_O_CA_PATH",
        doc="CA directory (`openssl rehash`ed), `CURLOPT_CAPATH`; naming a CA file or "
            "directory trusts those alone, not also the system's store"),
    Opt("tls_ca_file", "tls_ca_file", None, check_path, path_text,
        cfg="tls_ca_file", key="HAC_O_CA_FILE", attribute=False, since="ours",
        doc="CA bundle file (PEM), `CURLOPT_CAINFO`; loaded once per worker and kept "
            "`tls_ca_cache` seconds. With neither this nor `tls_ca_path`, libcurl's "
            "default bundle file alone (Debian: /etc/ssl/certs/ca-certificates.crt), "
            "also kept"),
    Opt("tls_ca_cache", None, 60, check_nonneg, cfg="tls_ca_cache", attribute=False,
        since="ours",
        doc="s a worker keeps a loaded CA file before reading it again "
            "(`CURLOPT_CA_CACHE_TIMEOUT`): how long a replaced file goes unnoticed by "
            "new connections; 0 reads it for every handshake"),
    Opt("curl_follow_redirect", "follow_redirect", 0, check_flag, check_flag,
        cfg="follow_redirect", key="HAC_O_FOLLOW", since="5.x",
        doc="follow redirects: http/https targets only, at most `max_redirects`"),
    Opt("tcp_keepalive", "keepalive", 0, check_flag, check_flag,
        cfg="tcp_keepalive", key="HAC_O_KEEPALIVE", aliases=("tcp_keepalive",), since="5.x",
        doc="TCP keep-alive probes (`CURLOPT_TCP_KEEPALIVE`)"),
    Opt("tcp_ka_idle", "ka_idle", 0, check_nonneg, check_nonneg,
        cfg="tcp_ka_idle", key="HAC_O_KA_IDLE", aliases=("ka-idle", "tcp_ka_idle"),
        since="5.x",
        doc="s before the first probe (`CURLOPT_TCP_KEEPIDLE`; 0 = libcurl's 60)"),
    Opt("tcp_ka_interval", "ka_interval", 0, check_nonneg, check_nonneg,
        cfg="tcp_ka_interval", key="HAC_O_KA_INTERVAL",
        aliases=("ka-interval", "tcp_ka_interval"), since="5.x",
        doc="s between probes (`CURLOPT_TCP_KEEPINTVL`; 0 = libcurl's 60)"),
    Opt("authmethod", "authmethod", 3, check_authmethod, check_authmethod,
        cfg="authmethod", key="HAC_O_AUTHMETHOD", since="5.x",
        doc="`CURLOPT_HTTPAUTH` bitmask, used when a `username` is given: 1 Basic, 2 "
            "Digest, 4 Negotiate (SPNEGO/Kerberos), 8 NTLM, 16 Digest with IE's URI "
            "form, or their sum (libcurl picks the safest the server offers); 0 or a "
            "method this libcurl lacks → `InvalidOption`; a wrong password is a 401 "
            "reply, not an error"),
    Opt(None, "username", None, None, check_text, key="HAC_O_USERNAME", since="5.x",
        doc="user name for HTTP authentication (see `authmethod`)"),
    Opt(None, "password", None, None, check_text, key="HAC_O_PASSWORD", since="5.x",
        doc="its password (never logged or shown)"),
    Opt("max_redirects", "max_redirects", 10, check_nonneg, check_nonneg,
        cfg="max_redirects", key="HAC_O_MAX_REDIRS", http_req=False, since="ours",
        doc="bound on followed redirects (`CURLOPT_MAXREDIRS`); a loop ends as a failed "
            "reply (curl error 47)"),
    Opt(None, "http_version", None, None, check_http_version, key="HAC_O_HTTP_VERSION",
        since="6.2",
        doc="0 libcurl's default (HTTP/1.1 on http, HTTP/2 via ALPN on https), 1 HTTP/2 "
            "via `Upgrade: h2c`, 2 HTTP/2 with prior knowledge; HTTP/2 queries to one "
            "origin are multiplexed, at most 100 streams per connection"),
    Opt("max_body_size", None, 64 * _MB, check_size, cfg="max_body_size", since="ours",
        doc="cap on a response body; a larger one fails with `BODY_TOO_LARGE: ...` "
            "(announced by Content-Length: curl error 63, else 23)"),
    Opt("max_connections", None, 1024, check_positive, cfg="max_connections",
        since="ours",
        doc="per worker: at most this many transfers in libcurl (and connections "
            "open); more wait in the worker's queue with their deadline running (a "
            "miss says `waiting for a connection slot`)"),
    Opt("connect_timeout", "connect_timeout", None, check_connect_timeout, check_timeout,
        cfg="connect_timeout", key="HAC_O_CONNECT_TIMEOUT", since="ours",
        doc="ms bound on DNS + TCP + TLS (and proxy) set-up, inside the total deadline; "
            "None: the deadline alone. A miss is a timeout reply whose `err` names the "
            "phase (`phase: connect (TCP)`)"),
    Opt("low_speed_limit", "low_speed_limit", 0, check_nonneg, check_nonneg,
        cfg="low_speed_limit", key="HAC_O_LOW_SPEED_LIMIT", since="ours",
        doc="bytes/s; a transfer slower than this for `low_speed_time` fails as a "
            "timeout reply (`CURLOPT_LOW_SPEED_LIMIT`); 0: no check"),
    Opt("low_speed_time", "low_speed_time", 30, check_nonneg, check_nonneg,
        cfg="low_speed_time", key="HAC_O_LOW_SPEED_TIME", since="ours",
        doc="s below `low_speed_limit` that fail a transfer (0: 30, as curl)"),
    Opt("proxy", "proxy", None, check_proxy, check_proxy,
        cfg="proxy", key="HAC_O_PROXY", since="ours",
        doc="`http://`, `https://`, `socks5://` or `socks5h://` proxy URL (credentials "
            "in it are sent to the proxy, shown as `***`); None: no proxy (the "
            "environment is ignored unless `trust_env`); per query `\"\"`: none for "
            "this request. An `https://` proxy is verified as servers are"),
    Opt("no_proxy", "no_proxy", None, check_no_proxy, check_no_proxy,
        cfg="no_proxy", key="HAC_O_NO_PROXY", since="ours",
        doc="comma-separated hosts, domains (`example.com` also covers its "
            "subdomains), addresses or `*` reached without the proxy"),
    Opt("trust_env", None, False, check_bool, since="ours",
        doc="True: `http_proxy`, `https_proxy`, `all_proxy`, `no_proxy` (either case; "
            "upper-case `HTTP_PROXY` not in a CGI process) from the environment at "
            "creation are the defaults of `proxy`/`no_proxy`, per URL scheme; an "
            "explicit `proxy=`/`no_proxy=` wins. False: the environment is ignored"),
    Opt("tls_ca_blob", "tls_ca_blob", None, check_ca_blob, check_ca_blob,
        cfg="tls_ca_blob", key="HAC_O_CA_BLOB", attribute=False, since="ours",
        doc="PEM bytes of trusted CAs, in memory (`CURLOPT_CAINFO_BLOB`); trusted alone "
            "unless `tls_ca_file`/`tls_ca_path` are also given (parsed per handshake)"),
    Opt("tls_pinned_pubkey", "tls_pinned_pubkey", None, check_pinned_pubkey,
        lambda n, v: "" if v == "" else check_pinned_pubkey(n, v),
        cfg="tls_pinned_pubkey", key="HAC_O_PINNED_PUBKEY", since="ours",
        doc="`sha256//<base64>` pins (`;`-separated) or a PEM/DER public key file; a "
            "server key that matches none fails the transfer (`err` says pinned)"),
    Opt("resolve", "resolve", None, check_resolve, query_resolve,
        cfg="resolve", key="HAC_O_RESOLVE", since="ours",
        doc='list of `"host:port:address[,address]"` (curl\'s `--resolve`): those '
            "names bypass DNS. libcurl keeps them in the worker's DNS cache, so later "
            "requests to that host:port may use them too (`connect_to` does not)"),
    Opt("connect_to", "connect_to", None, check_connect_to, query_connect_to,
        cfg="connect_to", key="HAC_O_CONNECT_TO", since="ours",
        doc='list of `"host:port:connect-host:connect-port"` (empty parts match any / '
            "keep): connect there instead; URL, Host header and SNI stay the same"),
    Opt("dns_cache_timeout", None, 60, check_dns_cache_timeout, cfg="dns_cache_timeout",
        since="ours",
        doc="s a worker keeps a DNS answer (`CURLOPT_DNS_CACHE_TIMEOUT`); -1 forever, "
            "0 off"),
    Opt("max_host_connections", None, 0, check_nonneg, cfg="max_host_connections",
        since="ours",
        doc="at most this many connections per host per worker "
            "(`CURLMOPT_MAX_HOST_CONNECTIONS`); more requests wait inside libcurl with "
            "their deadline running; 0: no bound"),
    Opt("max_connection_age", None, 0, check_nonneg, cfg="max_connection_age",
        since="ours",
        doc="s; a connection older than this is not reused (`CURLOPT_MAXLIFETIME_CONN`: "
            "rolling deploys, DNS changes); 0: no bound"),
    Opt("unix_socket", "unix_socket", None, check_path, path_text,
        cfg="unix_socket", key="HAC_O_UNIX_SOCKET", since="ours",
        doc="path of a Unix domain socket to connect to instead of TCP; the URL still "
            "gives Host and path (`CURLOPT_UNIX_SOCKET_PATH`)"),
    Opt("stream_buffer", None, _MB, check_size, since="ours",
        doc="bytes of a streamed response (`query(..., stream=True)`) read ahead of "
            "its reader; past it the transfer pauses until the reader catches up "
            "(also a `query()` keyword)"),
    Opt("user_agent", None, f"http_async_client/{__version__}", check_user_agent,
        cfg="user_agent", since="ours",
        doc="`User-Agent` sent unless a query's headers replace (`User-Agent: x`) or "
            "remove (`User-Agent:`) it; `\"\"`: none"),
) + RESILIENCE_ROWS

CLIENT_ROWS = tuple(r for r in ROWS if r.client is not None)
QUERY_ROWS = tuple(r for r in ROWS if r.query is not None)
CLIENT_DEFAULTS: Mapping[str, Any] = {r.client: r.default for r in CLIENT_ROWS if r.client}
ATTRIBUTES = tuple(r.client for r in CLIENT_ROWS if r.client and r.attribute)

# query() keyword -> (option-list key byte, check), checked against C
QUERY_OPTS: dict[str, tuple[bytes, Check]] = {}
for _r in QUERY_ROWS:
    assert _r.query is not None and _r.key is not None and _r.query_check is not None
    QUERY_OPTS[_r.query] = (bytes([getattr(lib, _r.key)]), _r.query_check)
for _r in CLIENT_ROWS:
    if _r.cfg is not None and _r.cfg not in dict(ffi.typeof("hac_config").fields):
        raise ImportError(f"http_async_client: hac_config has no field {_r.cfg}")
OPTION_NAMES = tuple(QUERY_OPTS)

# the keys of $http_req that are not options of the table
SPECIAL_REQ_KEYS = ("all", "hdr", "method", "timeout", "suspend", "body")
ALIASES: dict[str, str] = {a: r.query for r in QUERY_ROWS if r.query for a in r.aliases}
REQ_OPTIONS = tuple(r.query for r in QUERY_ROWS if r.query and r.http_req)
REQ_KEYS = (*SPECIAL_REQ_KEYS, *REQ_OPTIONS, *ALIASES)


def encode_opt(name: str, value: object) -> tuple[bytes, bytes]:
    """(key byte, b"<key><value>\\0") for one per-query option."""
    key, check = QUERY_OPTS[name]
    v = check(name, value)
    if isinstance(v, bytes):
        return key, key + v + b"\0"
    text = v if isinstance(v, str) else str(int(v))
    return key, key + os.fsencode(text) + b"\0"


class QueryOptions(TypedDict, total=False):
    """``query()``'s keyword arguments (the table's query rows, plus the
    request's own parts); None means "not given"."""

    method: str | None
    headers: HeadersArg
    timeout: int | None
    xdata: Any
    tls_verify_host: int | None
    tls_verify_peer: int | None
    tls_client_cert: PathArg
    tls_client_key: PathArg
    tls_ca_path: PathArg
    tls_ca_file: PathArg
    follow_redirect: int | None
    keepalive: int | None
    ka_idle: int | None
    ka_interval: int | None
    authmethod: int | None
    username: str | None
    password: str | None
    max_redirects: int | None
    http_version: int | None
    connect_timeout: int | None
    low_speed_limit: int | None
    low_speed_time: int | None
    proxy: str | None
    no_proxy: str | Sequence[str] | None
    tls_ca_blob: bytes | str | None
    tls_pinned_pubkey: PathArg
    resolve: str | Sequence[str] | None
    connect_to: str | Sequence[str] | None
    unix_socket: PathArg
    # the seed's http_req keys that are not table rows, and its spellings
    hdr: str | Sequence[str] | None
    body: BodyArg
    # bodies that never pass through Python (_bodies)
    output: OutputArg
    form: FormArg
    suspend: int | str | None
    tcp_keepalive: int | None
    tcp_ka_idle: int | None
    tcp_ka_interval: int | None
    stream_buffer: int | None
    retries: int | None
    retry_statuses: Iterable[int] | None
    retry_backoff: int | None
    retry_unsafe: bool | None
    hedge_after: int | str | None
    max_queue_wait: int | None


class ClientParams(TypedDict, total=False):
    """``Client()``'s keyword arguments: the module parameters."""

    workers: int
    driver: str
    connection_timeout: int
    hash_size: int
    tls_version: int
    tls_verify_host: int
    tls_verify_peer: int
    curl_verbose: int
    memory_manager: str
    tls_client_cert: PathArg
    tls_client_key: PathArg
    tls_ca_path: PathArg
    tls_ca_file: PathArg
    tls_ca_cache: int
    curl_follow_redirect: int
    tcp_keepalive: int
    tcp_ka_idle: int
    tcp_ka_interval: int
    authmethod: int
    max_redirects: int
    max_body_size: int
    max_connections: int
    connect_timeout: int | None
    low_speed_limit: int
    low_speed_time: int
    proxy: str | None
    no_proxy: str | Sequence[str] | None
    trust_env: bool
    tls_ca_blob: bytes | str | None
    tls_pinned_pubkey: PathArg
    resolve: str | Sequence[str] | None
    connect_to: str | Sequence[str] | None
    dns_cache_timeout: int
    max_host_connections: int
    max_connection_age: int
    unix_socket: PathArg
    stream_buffer: int
    user_agent: str
    retries: int
    retry_statuses: Iterable[int] | None
    retry_backoff: int
    hedge_after: int | str | None
    hedge_budget: float
    max_queue_wait: int | None
    rate_limit: Mapping[str, float] | None


# query()'s keywords that are parts of the request, not table options
# (hdr, body, suspend: the seed's http_req keys of the same names)
REQUEST_KEYWORDS = ("method", "headers", "timeout", "xdata", "hdr", "body", "suspend",
                    "stream_buffer", "output", "form")


def check_client_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Every module parameter's checked value, defaults filled in, in the
    table's order; TypeError for a keyword that is none."""
    unknown = set(params) - set(CLIENT_DEFAULTS)
    if unknown:
        raise TypeError(
            f"Client() got unexpected keyword argument(s): {', '.join(sorted(unknown))}"
        )
    out: dict[str, Any] = {}
    for row in CLIENT_ROWS:
        name = row.client
        assert name is not None and row.client_check is not None
        out[name] = row.client_check(name, params.get(name, row.default))
    if out["driver"] == "caller" and out["workers"] != 1:
        raise InvalidOption(
            f"driver='caller' runs one loop in the waiting thread: workers must be 1, "
            f"got {out['workers']}"
        )
    return out


def fill_config(
    cfg: Any, values: Mapping[str, Any], keep: list[Any], extra: Mapping[str, Any] = {}
) -> None:
    """Write the checked values (and ``extra`` fields, e.g. the proxies
    taken from the environment) into a ``hac_config``: None is NULL or 0,
    texts are kept alive in ``keep`` until the core has copied them, lists
    are joined by newlines."""
    fields = dict(ffi.typeof("hac_config").fields)
    given = {r.cfg: values[r.client] for r in CLIENT_ROWS if r.cfg and r.client}
    given.update(extra)
    for field, value in given.items():
        if field == "memory_manager":
            value = lib.HAC_MM_SHM if value == "shm" else lib.HAC_MM_SYS
        elif field == "driver":
            value = lib.HAC_DRIVE_CALLER if value == "caller" else lib.HAC_DRIVE_THREAD
        elif field == "hedge_after":
            value = hedge_code(value)
        elif isinstance(value, frozenset):
            value = statuses_text(value) or None
        elif isinstance(value, Mapping):
            value = rate_limit_text(value)
        pointer = fields[field].type.kind == "pointer"
        if value is None:
            value = ffi.NULL if pointer else 0
        elif pointer:
            if isinstance(value, tuple):
                value = "\n".join(value)
            text = value if isinstance(value, bytes) else os.fsencode(value)
            value = ffi.new("char[]", text)
            keep.append(value)
        setattr(cfg, field, value)


__all__ = [
    "ALIASES",
    "ATTRIBUTES",
    "CLIENT_DEFAULTS",
    "CLIENT_ROWS",
    "ClientParams",
    "OPTION_NAMES",
    "Opt",
    "QUERY_OPTS",
    "QUERY_ROWS",
    "QueryOptions",
    "REQUEST_KEYWORDS",
    "REQ_KEYS",
    "REQ_OPTIONS",
    "ROWS",
    "check_client_params",
    "encode_opt",
    "fill_config",
]
