"""The Client: the seed's parameters, functions and routes over the C core.

Delivery rule (each reply is delivered exactly once): a finished reply is
*claimed* once, by the first of

1. a thread blocked in ``handle.result()`` or a suspended
   ``http_async_query()`` for that very query;
2. the asyncio loop, for a query awaited there or issued from a coroutine;
3. ``completions()`` / ``dispatch()``, in completion order, across all
   threads.

Its route runs exactly once, in the claimer's thread.  ``handle.result()``
after another consumer claimed the reply returns the same ``Reply`` object
without running the route again.

Strategy: C never calls Python.  Whoever needs a reply "pumps": waits on the
client's eventfd with the GIL released, drains a batch of results, and
settles them under one condition variable; other waiting threads sleep on
that condition.  The asyncio reader is just another pump.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Generator,
    Iterator,
    Mapping,
    TypeVar,
    Union,
    overload,
)

from ._exceptions import (
    ClientClosed,
    HttpAsyncClientError,
    InvalidOption,
    InvalidOptionType,
    UsageError,
    WaitTimeout,
)
from ._ffi import ffi, lib
from ._nextquery import HttpReq, NextQuery
from ._optable import (
    ATTRIBUTES,
    QUERY_OPTS,
    ClientParams,
    QueryOptions,
    check_client_params,
    encode_opt,
    fill_config,
)
from ._prometheus import prometheus_text
from ._reply import HOLD_MIN, Reply
from ._validate import (
    HeadersArg,
    PathArg,
    _url_cache,
    check_flag,
    check_header,
    check_method,
    check_timeout,
    check_url,
    headers_lines,
    to_body,
)
from ._wire import METHOD_CODES, REC, REQHDR, R_ERR_LEN, R_ERR_OFF, R_RAW_LEN, R_RAW_OFF

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger("http_async_client")

Route = Callable[[Reply], Any]
RouteArg = Union[Route, str, None]
F = TypeVar("F", bound=Route)

_DRAIN_BATCH = 256
_HOLD_MIN = HOLD_MIN
# the drain's data area: small responses and error texts of one batch; a
# result needs at most _HOLD_MIN - 1 + an error text (< 1 KiB)
_DATA_SLACK = _HOLD_MIN + 1024
_DATA_CAP = 32 * _HOLD_MIN
_REC_SIZE = REC.size
_iter_unpack = REC.iter_unpack
_release_one = lib.hac_release_one
_SLICE_S = 0.05  # a pumper re-checks this often when a loop may steal results
_M_POST = lib.HAC_M_POST
_M_GET = lib.HAC_M_GET
_F_BODY = lib.HAC_F_BODY
_pack = REQHDR.pack

# who claimed a reply (QueryHandle._owner)
_WAIT, _LOOP, _STREAM = 1, 2, 3

_live: "weakref.WeakSet[Client]" = weakref.WeakSet()


class _ThreadState(threading.local):
    """Per-thread "next query" options; the class attribute makes the
    common no-options lookup a plain attribute read, not an exception."""

    next: NextQuery | None = None


class QueryHandle:
    """A submitted query: its id, an awaitable, ``result()`` and ``cancel()``."""

    __slots__ = (
        "id",
        "url",
        "_client",
        "_route",
        "_reply",
        "_owner",
        "_routed",
        "_finished",
        "_waiters",
        "_fut",
        "_loop",
        "_xdata",
        "__weakref__",
    )

    def __init__(
        self,
        client: Client,
        rid: int,
        url: str,
        route: Route | None,
        loop: asyncio.AbstractEventLoop | None,
        xdata: Any,
    ) -> None:
        self.id = rid
        self.url = url
        self._client = client
        self._route = route
        self._reply: Reply | None = None
        self._owner: int | None = None
        self._routed = False
        self._finished = False
        self._waiters = 0
        self._fut: asyncio.Future[Reply] | None = None
        self._loop = loop
        self._xdata = xdata

    def done(self) -> bool:
        """True once the reply has arrived (success, error or cancel)."""
        return self._reply is not None

    def result(self, timeout: float | None = None) -> Reply:
        """Wait for the reply (its route runs first if this call claims it).

        Raises WaitTimeout when ``timeout`` seconds pass first; the request
        goes on."""
        return self._client._wait_handle(self, timeout)

    def cancel(self) -> bool:
        """Ask the core to abort the query; its reply says cancelled.
        False when the reply is already there."""
        if self._reply is not None:
            return False
        return self._client._cancel(self.id)

    def __await__(self) -> Generator[Any, None, Reply]:
        # the asyncio per-request path: no coroutine, no shield, and no frame
        # of ours in between once waiting: the task resumes the future's own
        # (C) iterator, whose result is the reply
        got = self._client._await_prepare(self)
        if isinstance(got, Reply):
            return _ready(got)
        return got.__await__()

    def __repr__(self) -> str:
        reply = self._reply
        if reply is None:
            state = "pending"
        elif reply.ok:
            state = f"done {reply.status}"
        else:
            state = "done timed out" if reply.timed_out else "done failed"
        return f"<QueryHandle id={self.id} {state} url={self.url!r}>"


def _ready(reply: Reply) -> Generator[Any, None, Reply]:
    """An awaitable iterator that is already done: ``reply``."""
    return reply
    yield  # pragma: no cover - makes this a generator


class _Suspended(int):
    """The 0 that ``http_async_query`` returns inside a running event loop:
    awaiting it waits for the reply and its route without blocking the loop
    (the seed's suspended transaction).  Not awaiting it is like suspend=0:
    the route still runs on the loop when the reply arrives."""

    _handle: QueryHandle

    def __await__(self) -> Generator[Any, None, int]:
        async def wait() -> int:
            await self._handle
            return 0

        return wait().__await__()


class Client:
    """An asynchronous HTTP client: ``workers`` C threads, each with a libev
    loop driving a libcurl multi handle.  Every keyword is the seed's module
    parameter of the same name, with the seed's default."""

    # the module parameters as attributes (properties made from the option
    # table below the class); tls_verify_host/peer are the seed's methods
    workers: int
    connection_timeout: int
    hash_size: int
    tls_version: int
    curl_verbose: int
    memory_manager: str
    tls_client_cert: str | None
    tls_client_key: str | None
    tls_ca_path: str | None
    curl_follow_redirect: int
    tcp_keepalive: int
    tcp_ka_idle: int
    tcp_ka_interval: int
    authmethod: int
    max_redirects: int
    max_body_size: int
    max_connections: int

    def __init__(self, **params: Unpack[ClientParams]) -> None:
        self._c: Any = None
        self._closed = True
        values = check_client_params(params)
        keep: list[Any] = []
        cfg = ffi.new("hac_config *")
        fill_config(cfg, values, keep)
        mm = ffi.new("int *")
        err = ffi.new("char[256]")
        ptr = lib.hac_client_new(cfg, mm, err, 256)
        if ptr == ffi.NULL:
            raise HttpAsyncClientError(
                f"cannot create client: {ffi.string(err).decode(errors='replace')}"
            )
        effective = "shm" if mm[0] == lib.HAC_MM_SHM else "sys"
        if effective != values["memory_manager"]:
            log.warning(
                "memory_manager=%r ignored: libcurl's allocator is process-wide "
                "and the first client chose %r",
                values["memory_manager"],
                effective,
            )
            values["memory_manager"] = effective
        self._c = ffi.gc(ptr, lib.hac_destroy)
        self._fd: int = lib.hac_fd(ptr)
        self._params: Mapping[str, Any] = MappingProxyType(values)
        verbose = values["curl_verbose"]
        self._closed = False
        self._drained = False
        self._forked = False
        self._verbose = bool(verbose)
        self._ids = itertools.count(1)
        self._pending: dict[int, QueryHandle] = {}
        # unclaimed replies in completion order, by id: result() and await
        # take theirs out in O(1)
        self._stream: OrderedDict[int, QueryHandle] = OrderedDict()
        # `with self._lock` rather than `with self._cv`: Condition's
        # __enter__/__exit__ are Python functions, the lock's are C
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._drain_lock = threading.Lock()
        self._recs = ffi.new("hac_rec[]", _DRAIN_BATCH)
        self._records = memoryview(ffi.buffer(self._recs))
        self._held = ffi.new("hac_result *[]", _DRAIN_BATCH)
        self._data = ffi.new("char[]", _DATA_CAP)
        self._used = ffi.new("size_t *")
        self._pumping = False
        self._loops: "weakref.WeakSet[asyncio.AbstractEventLoop]" = weakref.WeakSet()
        self._last_loop: "weakref.ref[asyncio.AbstractEventLoop] | None" = None
        self._routes: dict[str, Route] = {}
        self._route_errors = 0
        self._local = _ThreadState()
        self._has_next = False
        self.http_req = HttpReq(self)
        _live.add(self)

    # ------------------------------------------------------------ params
    @property
    def params(self) -> Mapping[str, Any]:
        """Every module parameter with its effective value (read-only)."""
        return self._params

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------ routes
    @overload
    def route(self, name: str) -> Callable[[F], F]: ...

    @overload
    def route(self, name: str, func: F) -> F: ...

    def route(self, name: str, func: F | None = None) -> Any:
        """Register a route by name; usable as ``@client.route("NAME")``."""
        if not isinstance(name, str) or not name:
            raise InvalidOptionType("route name must be a non-empty str")

        def register(f: F) -> F:
            if not callable(f):
                raise InvalidOptionType("a route must be callable")
            self._routes[name] = f
            return f

        if func is not None:
            return register(func)
        return register

    def _resolve_route(self, route: RouteArg) -> Route | None:
        if route is None or callable(route):
            return route
        if isinstance(route, str):
            try:
                return self._routes[route]
            except KeyError:
                raise InvalidOption(f"no route named {route!r} is registered") from None
        raise InvalidOptionType(
            f"route must be a callable or a registered name, not {type(route).__name__}"
        )

    def _run_route(self, h: QueryHandle) -> None:
        """Call the route; the caller has claimed it (h._routed set under
        _cv), so this happens once per reply."""
        if h._route is None or h._reply is None:
            return
        try:
            h._route(h._reply)
        except Exception:
            with self._lock:  # routes run in many threads at once
                self._route_errors += 1
            log.exception("route of query %d (%s) raised", h.id, h.url)

    # ------------------------------------------------- next-query state
    def _next(self) -> NextQuery:
        # from now on query() looks for per-thread state (it is per thread:
        # a thread that never set any never has some, whatever this says)
        self._has_next = True
        state = self._local.next
        if state is None:
            state = self._local.next = NextQuery()
        return state

    def _take_next(self) -> NextQuery | None:
        local = self._local
        state = local.next
        if state is not None:
            local.next = None
        return state

    def http_async_suspend(self, suspend: int | str) -> None:
        """Whether the next ``http_async_query`` waits for its reply."""
        self._next().suspend = check_flag("suspend", suspend)

    def tls_verify_host(self, verify: int | str) -> None:
        """Verify the server host name on the next query (0/1)."""
        self._next().set_opt("tls_verify_host", verify)

    def tls_verify_peer(self, verify: int | str) -> None:
        """Verify the server certificate on the next query (0/1)."""
        self._next().set_opt("tls_verify_peer", verify)

    def http_set_timeout(self, timeout: int | str) -> None:
        """Deadline of the next query, ms."""
        self._next().timeout = check_timeout("timeout", timeout)

    def http_append_header(self, header: str) -> None:
        """Add ('Name: v'), replace, remove ('Name:') or send empty ('Name;')
        a header on the next query."""
        self._next().headers.append(check_header(header))

    def http_set_method(self, method: str) -> None:
        """Method of the next query."""
        self._next().set_method(method)

    def http_set_tls_client_cert(self, path: PathArg) -> None:
        self._next().set_opt("tls_client_cert", path)

    def http_set_tls_client_key(self, path: PathArg) -> None:
        self._next().set_opt("tls_client_key", path)

    def http_set_tls_ca_path(self, path: PathArg) -> None:
        self._next().set_opt("tls_ca_path", path)

    # ------------------------------------------------------- submission
    def _check_open(self) -> None:
        if self._closed:
            if self._forked:
                raise ClientClosed(
                    "this client belongs to the parent process; create a new "
                    "Client after fork()"
                )
            raise ClientClosed("the client is closed")

    def query(
        self,
        url: str,
        post_data: str | bytes | None = None,
        route: RouteArg = None,
        **options: Unpack[QueryOptions],
    ) -> QueryHandle:
        """Send a query; never blocks.  Keywords: ``method``, ``headers``
        (a mapping, or ``"Name: value"`` strings or ``(name, value)``
        pairs), ``timeout`` (ms), ``xdata`` (any object, returned as
        ``reply.xdata``), and every per-query option of the option table
        (``tls_verify_host`` ... ``http_version``, see docs/api.md).
        Options set for the next query of this thread (seed functions,
        ``http_req``) apply and are reset; keyword arguments override them."""
        state = self._take_next() if self._has_next else None
        if not options:
            # the common query (no keywords): straight to the submit path
            return self._submit(state, url, post_data, route, None, None, None, None, None)
        kw: dict[str, Any] = dict(options)
        method = kw.pop("method", None)
        headers = kw.pop("headers", None)
        timeout = kw.pop("timeout", None)
        xdata = kw.pop("xdata", None)
        opts: dict[str, object] | None = None
        for name, value in kw.items():
            if name not in QUERY_OPTS:
                raise TypeError(f"query() got an unexpected keyword argument {name!r}")
            if value is not None:
                if opts is None:
                    opts = {}
                opts[name] = value
        return self._submit(state, url, post_data, route, method, headers, timeout, xdata, opts)

    def _submit(
        self,
        state: NextQuery | None,
        url: str,
        post_data: str | bytes | None,
        route: RouteArg,
        method: str | None,
        headers: HeadersArg,
        timeout: int | None,
        xdata: Any,
        opts: dict[str, object] | None,
    ) -> QueryHandle:
        if self._closed:
            self._check_open()
        url_b = (type(url) is str and _url_cache.get(url)) or check_url(url)
        fn = route if route is None else self._resolve_route(route)
        if (
            state is None
            and opts is None
            and headers is None
            and method is None
            and timeout is None
        ):
            # the common query: no options of its own (same checks, less work)
            rid = next(self._ids)
            if post_data is None:
                blob = _pack(rid, 0, _M_GET, 0, len(url_b), 0, 0, 0) + url_b
            else:
                body_b = post_data if type(post_data) is bytes else to_body(post_data)
                blob = b"".join(
                    (_pack(rid, 0, _M_POST, _F_BODY, len(url_b), len(body_b), 0, 0), url_b, body_b)
                )
            return self._send(rid, blob, url, url_b, fn, xdata)
        if post_data is not None:
            body: bytes | None = to_body(post_data)
        else:
            body = state.body if state is not None else None
        if method is not None:
            mcode = METHOD_CODES[check_method(method)]
        elif state is not None and state.method is not None:
            mcode = state.method
        else:
            mcode = _M_POST if body is not None else _M_GET
        tmo = 0
        if timeout is not None:
            tmo = check_timeout("timeout", timeout)
        elif state is not None and state.timeout is not None:
            tmo = state.timeout
        hdrs = headers_lines(headers) if headers is not None else []
        opt_b = b""
        if state is not None:
            if state.headers:
                hdrs = state.headers + hdrs
            if state.opts or opts:
                entries = dict(state.opts)
                if opts:
                    for name, value in opts.items():
                        k, entry = encode_opt(name, value)
                        entries[k] = entry
                opt_b = b"".join(entries.values())
        elif opts:
            opt_b = b"".join(encode_opt(n, v)[1] for n, v in opts.items())
        hdr_b = b"\0".join(hdrs) + b"\0" if hdrs else b""
        if body is None:
            body, flags = b"", 0
        else:
            flags = _F_BODY
        rid = next(self._ids)
        blob = b"".join(
            (
                _pack(rid, tmo, mcode, flags, len(url_b), len(body), len(hdr_b), len(opt_b)),
                url_b,
                body,
                hdr_b,
                opt_b,
            )
        )
        return self._send(rid, blob, url, url_b, fn, xdata)

    def _send(
        self, rid: int, blob: bytes, url: str, url_b: bytes, fn: Route | None, xdata: Any
    ) -> QueryHandle:
        """Hand one request (its wire form) to the core; the handle."""
        loop = asyncio._get_running_loop()
        h = QueryHandle(self, rid, url if isinstance(url, str) else url_b.decode(), fn, loop, xdata)
        if loop is not None:
            last = self._last_loop
            if last is None or last() is not loop:
                self._attach(loop)
        self._pending[rid] = h
        rc = lib.hac_submit(self._c, blob, len(blob))
        if rc < 0:
            self._pending.pop(rid, None)
            if rc == lib.HAC_E_CLOSED:
                raise ClientClosed("the client is closed")
            if rc == lib.HAC_E_NOMEM:
                raise MemoryError("http_async_client: out of memory queueing a request")
            raise HttpAsyncClientError(f"internal error {rc} queueing a request")
        return h

    def http_async_query(self, url: str, *args: Any, **kwargs: Any) -> int:
        """The seed's ``http_async_query(url, [post_data], route)``.

        Suspended (the default): waits for the reply, runs the route, returns
        0; inside a running event loop it returns an awaitable 0 instead of
        blocking.  With suspend off: returns 1 at once; the route runs on
        ``dispatch()`` (or on the loop).  -1 when the query is refused before
        sending (the reason is logged)."""
        if len(args) == 1:
            post_data, route = kwargs.pop("post_data", None), args[0]
        elif len(args) == 2:
            post_data, route = args
        elif not args:
            post_data, route = kwargs.pop("post_data", None), kwargs.pop("route", None)
        else:
            raise TypeError("http_async_query(url, [post_data], route)")
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(kwargs)}")
        state = self._take_next()
        suspend = 1 if state is None else state.suspend
        try:
            h = self._submit(state, url, post_data, route, None, None, None, None, None)
        except (UsageError, ClientClosed) as exc:
            log.error("http_async_query(%r) refused: %s", url, exc)
            return -1
        if not suspend:
            return 1
        if h._loop is not None:
            zero = _Suspended(0)
            zero._handle = h
            return zero
        self._wait_handle(h, None)
        return 0

    def http_async_send(self, url: str, route: RouteArg) -> int:
        """(6.2) Send without ever suspending: 1 when queued, -1 when refused
        before sending.  The route runs on ``dispatch()`` (or on the loop).
        The body, if any, comes from ``http_req["body"]``."""
        return self.http_async_send_xdata(url, route, None)

    def http_async_send_xdata(self, url: str, route: RouteArg, xdata: Any) -> int:
        """(6.2) ``http_async_send`` carrying any Python object back as the
        reply's ``xdata`` (the very object, not a copy)."""
        state = self._take_next()
        try:
            self._submit(state, url, None, route, None, None, None, xdata, None)
        except (UsageError, ClientClosed) as exc:
            log.error("http_async_send(%r) refused: %s", url, exc)
            return -1
        return 1

    # ------------------------------------------------------------ pumping
    def _drain_c(self) -> list[Reply]:
        """Take every finished result out of the core (never blocks).  One
        C call per batch: the fixed fields come as packed records (one
        struct unpack each), small responses and error texts as one bytes
        object that each reply slices; large responses stay held in C."""
        replies: list[Reply] = []
        append = replies.append
        c = self._c
        recs, held, data, used = self._recs, self._held, self._data, self._used
        records = self._records
        raw_off, raw_len, err_off, err_len = R_RAW_OFF, R_RAW_LEN, R_ERR_OFF, R_ERR_LEN
        with self._drain_lock:
            while True:
                n = lib.hac_drain_into(c, recs, held, _DRAIN_BATCH, data, _DATA_CAP,
                                       _HOLD_MIN, used)
                if not n:
                    break
                size = used[0]
                blob = ffi.unpack(data, size) if size else b""
                for i, rec in enumerate(_iter_unpack(records[: n * _REC_SIZE])):
                    off = rec[raw_off]
                    eoff = rec[err_off]
                    err = None if eoff < 0 else blob[eoff : eoff + rec[err_len]].decode("utf-8", "replace")
                    if off >= 0:
                        append(Reply(rec, blob[off : off + rec[raw_len]], err))
                    else:  # large: stays in C until asked for (see _reply)
                        append(Reply(rec, None, err, ffi.gc(held[i], _release_one)))
                # fewer than asked and not for want of room: the queue is empty
                if n < _DRAIN_BATCH and size + _DATA_SLACK <= _DATA_CAP:
                    break
        if self._verbose:
            self._flush_verbose()
        return replies

    def _flush_verbose(self) -> None:
        size = ffi.new("size_t *")
        p = lib.hac_log_take(self._c, size)
        if p == ffi.NULL:
            return
        try:
            text = ffi.unpack(p, size[0]).decode("utf-8", "replace")
        finally:
            lib.hac_free(p)
        for line in text.splitlines():
            log.info("%s", line)

    def _settle(
        self, replies: list[Reply], here: asyncio.AbstractEventLoop | None
    ) -> list[QueryHandle]:
        """With _cv held: hand each reply to its claimer.  Returns the
        handles to complete on ``here`` once the lock is released."""
        local: list[QueryHandle] = []
        pending = self._pending
        for reply in replies:
            h = pending.pop(reply.id, None)
            if h is None:
                continue
            reply.url = h.url
            reply.xdata = h._xdata
            h._reply = reply
            if h._waiters:
                h._owner = _WAIT
                if h._fut is not None:
                    self._resolve_fut(h)
                continue
            loop = h._fut.get_loop() if h._fut is not None else h._loop
            if loop is not None:
                h._owner = _LOOP
                if loop is here:
                    local.append(h)
                    continue
                try:
                    loop.call_soon_threadsafe(self._complete_on_loop, h)
                    continue
                except RuntimeError:  # that loop is closed: fall back
                    h._owner = None
            self._stream[h.id] = h
        return local

    def _complete_on_loop(self, h: QueryHandle) -> None:
        """On the owning loop: run the route, then wake the awaiter."""
        self._run_route(h)
        h._finished = True
        self._resolve_fut(h)

    def _resolve_fut(self, h: QueryHandle) -> None:
        fut = h._fut
        if fut is None or fut.done() or h._reply is None:
            return
        floop = fut.get_loop()
        if asyncio._get_running_loop() is floop:
            fut.set_result(h._reply)
        else:
            try:
                floop.call_soon_threadsafe(self._resolve_fut, h)
            except RuntimeError:  # loop closed: nobody can await it any more
                pass

    def _pump(self, timeout: float | None) -> None:
        """With _cv held: wait up to timeout for results and settle them, or
        sleep on _cv while another thread pumps."""
        if self._pumping:
            self._cv.wait(timeout)
            return
        self._pumping = True
        self._cv.release()
        replies: list[Reply] = []
        try:
            wait = timeout
            if self._loops:
                # an event loop's reader may take our reply: look again soon
                wait = _SLICE_S if wait is None else min(wait, _SLICE_S)
            ms = -1 if wait is None else max(0, int(wait * 1000 + 0.999))
            if lib.hac_wait(self._c, ms):
                replies = self._drain_c()
        finally:
            self._cv.acquire()
            self._pumping = False
        self._settle(replies, None)
        self._cv.notify_all()

    def _wait_handle(self, h: QueryHandle, timeout: float | None) -> Reply:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if h._reply is None:
                self._check_usable()
                h._waiters += 1
                try:
                    while h._reply is None:
                        if self._drained:
                            raise ClientClosed(f"query {h.id} has no reply: client closed")
                        remaining = None
                        if deadline is not None:
                            remaining = deadline - time.monotonic()
                            if remaining <= 0:
                                raise WaitTimeout(
                                    f"no reply to query {h.id} within {timeout} s"
                                )
                        self._pump(remaining)
                finally:
                    h._waiters -= 1
            run = self._claim(h, _WAIT)
        if run:
            self._run_route(h)
        return h._reply

    def _claim(self, h: QueryHandle, owner: int) -> bool:
        """With _cv held: take an arrived reply for owner unless someone else
        has it; True when the caller must run its route."""
        if h._owner is None or h._owner == owner:
            if h._owner is None:
                # result() or await took it: it must not stay in the stream
                # (code that never iterates completions() would keep every
                # reply it ever received)
                self._stream.pop(h.id, None)
            h._owner = owner
            if not h._routed:
                h._routed = True
                return True
        return False

    def _check_usable(self) -> None:
        if self._forked:
            self._check_open()

    def _await_prepare(self, h: QueryHandle) -> Reply | asyncio.Future[Reply]:
        """The synchronous part of ``await handle``: the reply when it is
        already there (its route run if this claims it), else the future the
        loop will resolve.  A future cancelled by one awaiter is replaced,
        so other awaiters of the same handle are not affected."""
        loop = asyncio.get_running_loop()
        self._check_usable()
        run = False
        with self._lock:
            if h._reply is not None and h._owner != _LOOP:
                run = self._claim(h, _WAIT)
                fut = None
            elif h._reply is not None and h._finished:
                fut = None
            else:
                if h._fut is None or h._fut.cancelled():
                    h._fut = loop.create_future()
                fut = h._fut
        if fut is None:
            if run:
                self._run_route(h)
            assert h._reply is not None
            return h._reply
        last = self._last_loop
        if last is None or last() is not loop:
            self._attach(loop)
        return fut

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """One reader on the client's fd per loop: one Python wake-up per
        batch of completions, never per socket event."""
        if self._drained:
            return
        # the loop of the last call: the per-request check is one weakref
        # call, not a WeakSet lookup
        self._last_loop = weakref.ref(loop)
        if loop in self._loops:
            return
        self._loops.add(loop)
        loop.add_reader(self._fd, self._on_readable, loop)

    def _on_readable(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._drained:
            return
        replies = self._drain_c()
        with self._lock:
            local = self._settle(replies, loop)
            self._cv.notify_all()
        # _complete_on_loop() inlined: this is the asyncio per-reply path
        for h in local:
            if h._route is not None:
                self._run_route(h)
            h._finished = True
            fut = h._fut
            reply = h._reply
            if fut is not None and reply is not None and not fut.done():
                if fut.get_loop() is loop:
                    fut.set_result(reply)
                else:
                    self._resolve_fut(h)

    def _take(self, deadline: float | None, block: bool) -> QueryHandle | None:
        """The next unclaimed reply of the stream, claimed and with its route
        still to run; None when nothing is left to wait for (or, not
        blocking, nothing is ready)."""
        with self._lock:
            while True:
                while self._stream:
                    h = self._stream.popitem(last=False)[1]
                    if h._owner is None:
                        h._owner = _STREAM
                        h._routed = True
                        return h
                if not self._drained and lib.hac_wait(self._c, 0):
                    replies = self._drain_c()
                    if replies:
                        self._settle(replies, None)
                        self._cv.notify_all()
                        continue
                if not block or not self._pending or self._drained:
                    return None
                remaining = None
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise WaitTimeout("no reply within the timeout")
                self._pump(remaining)

    def completions(self, timeout: float | None = None) -> Iterator[Reply]:
        """Finished replies in completion order, each once (across threads);
        routes run before a reply is yielded.  Ends when nothing is in
        flight; ``timeout`` bounds the wait for each next reply
        (WaitTimeout)."""
        while True:
            deadline = None if timeout is None else time.monotonic() + timeout
            h = self._take(deadline, True)
            if h is None:
                return
            self._run_route(h)
            assert h._reply is not None
            yield h._reply

    def dispatch(self, timeout: float | None = 0) -> int:
        """Run the routes of finished replies; returns how many.

        ``timeout=0``: only what is ready; ``timeout=x``: wait up to x s for
        the first one; ``None``: until nothing is in flight."""
        count = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            block = timeout is None or (timeout > 0 and count == 0)
            try:
                h = self._take(deadline, block)
            except WaitTimeout:
                return count
            if h is None:
                return count
            self._run_route(h)
            count += 1

    # ------------------------------------------------------------- control
    def _cancel(self, rid: int) -> bool:
        if self._closed:
            return False
        return bool(lib.hac_cancel(self._c, rid) == 0)

    def stats(self) -> dict[str, int]:
        """The seed's counters summed over workers: requests (submitted),
        replies, errors, timeouts; plus cancelled, started (handed to
        libcurl), dead_connections, resent, inflight, queued,
        completed_pending, route_errors and the accounted allocator's bytes.
        Once every request has finished, requests == replies + errors +
        timeouts + cancelled."""
        if self._c is None:
            return {}
        s = ffi.new("hac_stats *")
        lib.hac_stats_get(self._c, s)
        return {
            "requests": s.requests,
            "started": s.started,
            "replies": s.replies,
            "errors": s.errors,
            "timeouts": s.timeouts,
            "cancelled": s.cancelled,
            "dead_connections": s.dead_connections,
            "resent": s.resent,
            "inflight": s.inflight,
            "queued": s.queued,
            "completed_pending": s.completed_pending,
            "route_errors": self._route_errors,
            "mem_in_use": s.mem_in_use,
            "mem_peak": s.mem_peak,
            "log_dropped": s.log_dropped,
        }

    def stats_prometheus(self, labels: Mapping[str, str] | None = None) -> str:
        """``stats()`` as Prometheus text exposition (format 0.0.4): the
        seed's counters as ``http_async_client_requests_total`` etc., plus
        in-flight and allocator gauges.  ``labels`` (e.g. ``{"client":
        "billing"}``) tell several clients apart; to put several in one
        scrape, use ``http_async_client.prometheus_text``."""
        return prometheus_text([(labels or {}, self.stats())])

    def close(self) -> None:
        """Stop accepting queries, cancel what is in flight (each gets a
        cancelled reply), join the worker threads.  Idempotent."""
        if self._closed or self._c is None:
            return
        self._closed = True
        _live.discard(self)
        if self._forked:
            return
        # hac_close() closes the fd: the running loop's reader goes first
        # (other loops' readers are removed on their own threads, later)
        running = asyncio._get_running_loop()
        if running is not None and running in self._loops:
            try:
                running.remove_reader(self._fd)
            except (RuntimeError, ValueError, OSError):
                pass
        lib.hac_close(self._c)  # joins the workers, GIL released
        replies = self._drain_c()
        with self._lock:
            local = self._settle(replies, None)
            self._drained = True
            self._cv.notify_all()
        for h in local:  # pragma: no cover - settle(here=None) returns none
            self._complete_on_loop(h)
        for loop in list(self._loops):
            try:
                if loop.is_closed():
                    continue
                if asyncio._get_running_loop() is loop:
                    loop.remove_reader(self._fd)
                else:
                    loop.call_soon_threadsafe(loop.remove_reader, self._fd)
            except RuntimeError:
                pass
        self._loops = weakref.WeakSet()
        self._last_loop = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<Client {state} workers={self._params['workers']} "
            f"connection_timeout={self._params['connection_timeout']}ms "
            f"memory_manager={self._params['memory_manager']} "
            f"pending={len(self._pending)}>"
        )

    def _after_fork_child(self) -> None:
        self._forked = True
        self._closed = True
        self._drained = True
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._drain_lock = threading.Lock()
        self._pumping = False
        self._loops = weakref.WeakSet()
        self._last_loop = None


def _at_fork_child() -> None:
    for client in list(_live):
        client._after_fork_child()


def _close_all() -> None:
    for client in list(_live):
        try:
            client.close()
        except Exception:  # pragma: no cover - best effort at exit
            pass



def _param_property(name: str) -> property:
    def get(self: Client) -> Any:
        return self._params[name]

    get.__name__ = name
    get.__doc__ = f"The module parameter {name} in force (read-only)."
    return property(get)


for _name in ATTRIBUTES:
    setattr(Client, _name, _param_property(_name))


os.register_at_fork(after_in_child=_at_fork_child)
atexit.register(_close_all)
