"""The Client facade: the seed's parameters, functions and routes, and
``query()``, over the parts in ``_core`` (C), ``_delivery`` (who gets each
reply) and ``_aio`` (asyncio)."""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import os
import threading
import weakref
from collections import OrderedDict, deque
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, TypeVar, overload

from ._aio import AsyncioMixin
from ._base import Route, RouteArg
from ._bodies import BodyArg, Extras
from ._core import Core
from ._seed import SeedFunctions
from ._delivery import Delivery
from ._handle import QueryHandle
from ._exceptions import ClientClosed, InvalidOption, InvalidOptionType
from ._fork import ForkMixin
from ._latency import LatencyMixin
from ._ffi import lib
from ._encode import QueryItem, body_of, encode, encode_items, split_options
from ._nextquery import HttpReq, NextQuery, ThreadState
from ._resilience import Destinations
from ._optable import ATTRIBUTES, ClientParams, QueryOptions, check_client_params
from ._transport import check_bool, proxy_fields, redact_url
from ._stream import Stream, start_stream
from ._validate import HeadersArg, _url_cache, check_url, to_body
from ._wire import REQHDR

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger("http_async_client")

F = TypeVar("F", bound=Route)

_M_POST = lib.HAC_M_POST
_M_GET = lib.HAC_M_GET
_F_BODY = lib.HAC_F_BODY
_pack = REQHDR.pack

_live: "weakref.WeakSet[Client]" = weakref.WeakSet()


class Client(SeedFunctions, Core, AsyncioMixin, Delivery, LatencyMixin, Destinations,
             ForkMixin):
    """An asynchronous HTTP client: ``workers`` C threads, each with a libev
    loop driving a libcurl multi handle.  Every keyword is the seed's module
    parameter of the same name, with the seed's default."""

    # the module parameters as attributes (properties made from the option
    # table below the class); tls_verify_host/peer are the seed's methods
    workers: int
    driver: str
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
    connect_timeout: int | None
    low_speed_limit: int
    low_speed_time: int
    proxy: str | None
    no_proxy: str | None
    trust_env: bool
    tls_pinned_pubkey: str | None
    resolve: tuple[str, ...] | None
    connect_to: tuple[str, ...] | None
    dns_cache_timeout: int
    max_host_connections: int
    max_connection_age: int
    unix_socket: str | None
    user_agent: str

    def __init__(self, **params: Unpack[ClientParams]) -> None:
        self._c = None
        self._closed = True
        values = check_client_params(params)
        extra = proxy_fields(values, os.environ)
        self._open(values, extra)
        self._rebuild_args = (dict(values), extra)  # a forked child's new core (_fork)
        if values["proxy"]:
            values["proxy"] = redact_url(values["proxy"])  # shown, never the password
        self._params: Mapping[str, Any] = MappingProxyType(values)
        verbose = values["curl_verbose"]
        self._closed = False
        self._drained = False
        self._forked = False
        self._fork_floor = 0
        self._verbose = bool(verbose)
        self._ids = itertools.count(1)
        self._pending = {}
        self._outputs = {}
        self._unsent = deque()  # wire blobs not yet handed to the core (_core._defer)
        self._armed = set()
        self._batching = 0
        # unclaimed replies in completion order, by id: result() and await
        # take theirs out in O(1)
        self._stream = OrderedDict()
        self._new_sync()
        self._routes: dict[str, Route] = {}
        self._route_errors = 0
        self._local = ThreadState()
        self._has_next = False
        self._streams: weakref.WeakValueDictionary[int, Stream] = weakref.WeakValueDictionary()
        self._streaming = False
        self._dests = {}
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

    # ------------------------------------------------------- submission
    def _check_open(self) -> None:
        if self._closed:
            if self._forked:  # first use in a forked child
                self._rebuild()
                return
            raise ClientClosed("the client is closed")

    @overload
    def query(
        self,
        url: str,
        post_data: BodyArg = None,
        route: RouteArg = None,
        *,
        stream: Literal[True],
        **options: Unpack[QueryOptions],
    ) -> Stream: ...

    @overload
    def query(
        self,
        url: str,
        post_data: BodyArg = None,
        route: RouteArg = None,
        *,
        stream: Literal[False] = False,
        **options: Unpack[QueryOptions],
    ) -> QueryHandle: ...

    def query(
        self,
        url: str,
        post_data: BodyArg = None,
        route: RouteArg = None,
        *,
        stream: bool = False,
        **options: Unpack[QueryOptions],
    ) -> QueryHandle | Stream:
        """Send a query; never blocks.  Keywords: ``method``, ``headers``
        (a mapping, or ``"Name: value"`` strings or ``(name, value)``
        pairs), ``timeout`` (ms), ``xdata`` (any object, returned as
        ``reply.xdata``), ``output`` (a path, fd or binary file the worker
        writes the body to), ``form`` (a multipart body: fields and
        ``FormFile``), and every per-query option of the option table
        (``tls_verify_host`` ... ``http_version``, see docs/api.md).
        ``post_data`` may also be a ``pathlib.Path``, an open binary file
        or an iterable of bytes: the worker reads it, Python never copies it.
        Options set for the next query of this thread (seed functions,
        ``http_req``) apply and are reset; keyword arguments override them.
        ``stream=True`` returns a ``Stream``: the head as soon as the
        headers are in, then the body as it arrives (``timeout=0``: no
        deadline, for streams only)."""
        state = self._take_next() if self._has_next else None
        if not options and not stream:
            # the common query (no keywords): straight to the submit path
            return self._submit(state, url, post_data, route, None, None, None, None, None)
        kw: dict[str, Any] = dict(options)
        limit = kw.pop("stream_buffer", None)
        method, headers, timeout, xdata, opts, body = split_options(
            kw, "query() got an unexpected keyword argument")
        post_data = body_of(post_data, body)
        if stream or limit is not None:
            if not check_bool("stream", stream):
                raise InvalidOption("stream_buffer is for stream=True queries")
            if self._closed:
                self._check_open()
            fn = route if route is None else self._resolve_route(route)
            return start_stream(self, state, url, post_data, fn, method, headers, timeout,
                                xdata, opts, limit)
        return self._submit(state, url, post_data, route, method, headers, timeout, xdata, opts)

    def _submit(
        self,
        state: NextQuery | None,
        url: str,
        post_data: BodyArg,
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
            and (post_data is None or type(post_data) is bytes or type(post_data) is str)
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
        rid = next(self._ids)
        extras = Extras()
        blob = encode(rid, url_b, state, post_data, method, headers, timeout, opts, extras)
        return self._send_extras(extras, lambda: self._send(rid, blob, url, url_b, fn, xdata))

    def query_many(
        self, items: Iterable[QueryItem], route: RouteArg = None
    ) -> list[QueryHandle]:
        """Send a batch of queries with one call into the core; never
        blocks.  Each item is a URL, a ``(url, post_data)`` pair, or a
        mapping of ``query()``'s arguments (``{"url": ..., "post_data":
        ..., "route": ..., "method": ..., "headers": ...}``).  ``route`` is
        the route of items that name none.  Returns one handle per item, in
        order.  Every item is checked before anything is sent: on an error
        nothing is.  The thread's next-query options (seed functions,
        ``http_req``) are not used and stay for the next ``query()``."""
        if self._closed:
            self._check_open()
        fn0 = route if route is None else self._resolve_route(route)
        extras = Extras()
        parts, made = encode_items(items, self._ids, fn0, self._resolve_route, extras)
        if not made:
            return []
        blob = b"".join(parts)
        return self._send_extras(extras, lambda: self._send_many(made, blob))

    def batch(self) -> Batch:
        """``with client.batch():`` the queries this thread issues inside
        the block (``query()``, ``query_many()``, the seed functions that
        do not wait) are buffered and handed to the core with one call when
        the block ends, as one blob.  A call that waits on a buffered query
        (``result()``, ``completions()``, ``drain()``...) or cancels one
        sends the buffer first.  Blocks nest; the outermost sends."""
        return Batch(self)

    # ------------------------------------------------------------- control

    def close(self) -> None:
        """Stop accepting queries, cancel what is in flight (each gets a
        cancelled reply), join the worker threads.  Idempotent."""
        if self._forked:  # a forked child that never used it: nothing runs
            self._forked = False
            _live.discard(self)
            return
        if self._closed or self._c is None:
            return
        self._closed = True
        _live.discard(self)
        if self._unsent:
            self._flush()  # sent, then cancelled by hac_close: one reply each
        # hac_close() closes the fd: the running loop's reader goes first
        # (other loops' readers are removed on their own threads, later)
        running = asyncio._get_running_loop()
        if running is not None and running in self._loops:
            try:
                running.remove_reader(self._fd)
            except (RuntimeError, ValueError, OSError):
                pass
        self._close_c()  # joins the workers, GIL released
        replies = self._drain_c()
        with self._lock:
            local = self._settle(replies, None)
            self._answer_leftovers()
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

    def _new_sync(self) -> None:
        """Locks and loop readers: new in a client, and new again in a
        forked child (the parent's may be held by threads that are gone)."""
        # `with self._lock` rather than `with self._cv`: Condition's
        # __enter__/__exit__ are Python functions, the lock's are C
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._drain_lock = threading.Lock()
        self._pumping = False
        self._sleepers = 0  # threads in _cv.wait(): notify only when some
        self._loops = weakref.WeakSet()
        self._loops_seen = False  # a cheap test before the WeakSet's len()
        self._last_loop = None


class Batch:
    """The context manager of ``client.batch()``."""

    __slots__ = ("_client",)

    def __init__(self, client: Client) -> None:
        self._client = client

    def __enter__(self) -> Client:
        self._client._batch_enter()
        return self._client

    def __exit__(self, *exc: object) -> None:
        self._client._batch_exit()


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
