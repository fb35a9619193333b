"""A Locust user backed by this library (``pip install http_async_client[locust]``).

Subclass :class:`CurlUser` in a locustfile, set ``host``, and use
``self.client`` as with Locust's ``FastHttpUser``::

    from locust import constant, task
    from http_async_client.contrib.locust import CurlUser

    class Api(CurlUser):
        host = "http://127.0.0.1:8080"
        wait_time = constant(0)

        @task
        def index(self) -> None:
            self.client.get("/", name="index")

Each request is reported to Locust's ``request`` event (request type, name,
response time in ms, response length, exception, context, response).  A
transfer failure, or an HTTP status of ``failure_status`` (400) or more,
is a failure unless ``catch_response=True`` says otherwise.

Strategy: one :class:`~http_async_client.Client` per process (per distinct
``client_params``), shared by every user of the process (they are
greenlets).  A greenlet that sends a request parks on a gevent ``Waiter``.
One io watcher in the gevent hub watches the client's completion fd; when
it is readable, the hub drains every finished reply at once (``drain(0)``,
which never waits) and switches to the greenlet of each in turn.  The C
worker threads do all the network I/O, so nothing here blocks the hub: a
slow server costs a parked greenlet, never a stalled worker process.
"""

from __future__ import annotations

import atexit
import json as _json
import logging
import os
import time
from types import TracebackType
from typing import Any, Callable, ClassVar, Mapping

from gevent.hub import Waiter, get_hub
from locust import User
from locust.env import Environment
from locust.event import EventHook
from locust.exception import CatchResponseError, LocustError

from .._client import Client
from .._delivery import QueryHandle
from .._exceptions import HTTPStatusError, InvalidOption, TransferError
from .._reply import Reply

__all__ = ["CurlResponse", "CurlSession", "CurlUser", "shared_client"]

log = logging.getLogger("http_async_client")

_perf = time.perf_counter


class _Dispatcher:
    """The hub side of one shared client: who waits for which reply."""

    __slots__ = ("client", "waiting", "_watcher")

    def __init__(self, client: Client) -> None:
        self.client = client
        self.waiting: dict[int, Any] = {}  # request id -> gevent Waiter
        self._watcher = get_hub().loop.io(client._fd, 1)  # 1: READ
        # unreferenced while nobody waits: an idle client must not keep the
        # hub (and so the process) alive
        self._watcher.ref = False
        self._watcher.start(self._ready)

    def wait(self, h: QueryHandle) -> Reply:
        """Park this greenlet until the reply of ``h`` is drained."""
        rid = h.id
        waiter = Waiter()
        waiting = self.waiting
        if not waiting:
            self._watcher.ref = True
        waiting[rid] = waiter
        try:
            reply: Reply = waiter.get()
            return reply
        finally:
            # killed while parked (Locust stopping its users): nobody will
            # read this reply, so stop the transfer too
            if waiting.pop(rid, None) is not None:
                h.cancel()
            if not waiting:
                self._watcher.ref = False

    def _ready(self) -> None:
        """In the hub: the fd is readable; drain and wake each waiter."""
        try:
            replies = self.client.drain(0)
        except Exception:  # pragma: no cover - a closed client or a bug
            log.exception("http_async_client.contrib.locust: drain failed")
            self.stop()
            return
        waiting = self.waiting
        for reply in replies:
            waiter = waiting.pop(reply.id, None)
            if waiter is not None:
                # runs the greenlet until it parks again, then returns here
                waiter.switch(reply)
        if not waiting:
            self._watcher.ref = False

    def stop(self) -> None:
        self._watcher.stop()


_shared: dict[tuple[int, tuple[tuple[str, Any], ...]], _Dispatcher] = {}


def shared_client(params: Mapping[str, Any] | None = None) -> Client:
    """The process's client for ``params`` (made on first use; a forked
    child makes its own)."""
    return _dispatcher(params or {}).client


def _dispatcher(params: Mapping[str, Any]) -> _Dispatcher:
    key = (os.getpid(), tuple(sorted(params.items())))
    d = _shared.get(key)
    if d is None or d.client.closed:
        d = _Dispatcher(Client(**params))
        _shared[key] = d
    return d


def _close_shared() -> None:
    """At exit, before the library closes its clients (atexit runs the
    later registration first): the watchers go before their fds."""
    for key, d in list(_shared.items()):
        if key[0] == os.getpid():
            d.stop()
            d.client.close()
    _shared.clear()


atexit.register(_close_shared)


class CurlResponse:
    """A reply as Locust sees it: ``status_code``, ``content``, ``text``,
    ``json()``, ``headers``; the library's :class:`Reply` is ``reply``.
    With ``catch_response=True`` it is a context manager that reports the
    request on exit, ``success()`` or ``failure(exc)`` deciding."""

    __slots__ = ("reply", "error", "request_meta", "_fire", "_catch", "_entered", "_manual")

    def __init__(self, reply: Reply, error: Exception | None, request_meta: dict[str, Any],
                 event: EventHook, catch: bool) -> None:
        self.reply = reply
        self.error = error
        self.request_meta = request_meta
        self._fire: Callable[..., object] = event.fire  # untyped in locust
        self._catch = catch
        self._entered = False
        self._manual: bool | Exception | None = None

    @property
    def status_code(self) -> int:
        return self.reply.status

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def content(self) -> bytes:
        return self.reply.body

    @property
    def text(self) -> str:
        return self.reply.text

    @property
    def headers(self) -> dict[str, str]:
        """The response headers, names lower-cased (the last of repeats)."""
        return {k.lower(): v for k, v in self.reply.headers}

    @property
    def url(self) -> str:
        return self.reply.url

    def json(self, **kwargs: Any) -> Any:
        return self.reply.json(**kwargs)

    def raise_for_status(self) -> None:
        """Raise the failure this response was (or was marked) counted as."""
        if isinstance(self._manual, Exception):
            raise self._manual
        if self._manual is None and self.error is not None:
            raise self.error

    def success(self) -> None:
        """Count the request as a success (inside the ``with`` block)."""
        self._check_entered()
        self._manual = True

    def failure(self, exc: Exception | str) -> None:
        """Count the request as a failure (inside the ``with`` block)."""
        self._check_entered()
        self._manual = exc if isinstance(exc, Exception) else CatchResponseError(exc)

    def _check_entered(self) -> None:
        if not self._entered:
            raise LocustError(
                "success()/failure() need `with self.client.get(..., catch_response=True) as r:`"
            )

    def __enter__(self) -> CurlResponse:
        if not self._catch:
            raise LocustError("a with-block over a request needs catch_response=True")
        self._entered = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        meta = self.request_meta
        if self._manual is not None:
            meta["exception"] = None if self._manual is True else self._manual
        elif exc is not None:
            if not isinstance(exc, Exception):
                return False
            meta["exception"] = exc  # an assertion in the block fails the request
        else:
            meta["exception"] = self.error
        self._fire(**meta)
        return exc is None or isinstance(exc, Exception)

    def __repr__(self) -> str:
        return f"<CurlResponse {self.reply!r}>"


class CurlSession:
    """``self.client`` of a :class:`CurlUser`: requests relative to the
    user's host, each reported to Locust."""

    def __init__(self, base_url: str, request_event: EventHook, user: User | None,
                 dispatcher: _Dispatcher, failure_status: int | None = 400) -> None:
        self.base_url = base_url.rstrip("/")
        self.request_event = request_event
        self._fire: Callable[..., object] = request_event.fire  # untyped in locust
        self.user = user
        self.failure_status = failure_status
        self._d = dispatcher
        self._query = dispatcher.client.query

    def _url(self, path: str) -> str:
        if "://" in path:
            return path
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def request(self, method: str, url: str, *, name: str | None = None,
                data: bytes | str | None = None, json: Any = None,
                headers: Mapping[str, str] | None = None, catch_response: bool = False,
                context: Mapping[str, Any] | None = None, **options: Any) -> CurlResponse:
        """Send one request and wait for it (this greenlet only); other
        keywords are ``Client.query()``'s (``timeout``, ``http_version``...)."""
        if json is not None:
            if data is not None:
                raise InvalidOption("give data= or json=, not both")
            data = _json.dumps(json)
            hdrs = dict(headers or {})
            hdrs.setdefault("Content-Type", "application/json")
            headers = hdrs
        if headers is not None:
            options["headers"] = headers
        method = method.upper()
        return self._run(method, url, data, name, catch_response, context,
                         dict(method=method, **options))

    def query(self, url: str, post_data: Any = None, *, name: str | None = None,
              catch_response: bool = False, context: Mapping[str, Any] | None = None,
              **options: Any) -> CurlResponse:
        """``Client.query()`` (every keyword of it), waited for and reported."""
        method = options.get("method") or ("GET" if post_data is None else "POST")
        return self._run(str(method).upper(), url, post_data, name, catch_response, context,
                         options)

    def _run(self, method: str, url: str, body: Any, name: str | None, catch: bool,
             context: Mapping[str, Any] | None, options: dict[str, Any]) -> CurlResponse:
        full = self._url(url)
        user = self.user
        ctx: dict[str, Any] = user.context() if user is not None else {}
        if context:
            ctx = {**ctx, **context}
        start_time = time.time()
        t0 = _perf()
        if options:
            h = self._query(full, body, **options)
        else:
            h = self._query(full, body)
        reply = self._d.wait(h)
        error = _failure(reply, self.failure_status)
        # libcurl's own clock when the transfer completed (no Python or hub
        # delay in it); the wall clock for a failure, which has no times
        total = reply.time("total")
        elapsed = total / 1000.0 if total > 0 else (_perf() - t0) * 1000.0
        meta = {
            "request_type": method,
            "name": name or url,
            "response_time": elapsed,
            "response_length": reply.bs,
            "response": None,
            "context": ctx,
            "exception": error,
            "start_time": start_time,
            "url": full,
        }
        response = CurlResponse(reply, error, meta, self.request_event, catch)
        meta["response"] = response
        if not catch:
            self._fire(**meta)
        return response

    def get(self, url: str, **kwargs: Any) -> CurlResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, data: bytes | str | None = None, **kwargs: Any) -> CurlResponse:
        return self.request("POST", url, data=data, **kwargs)

    def put(self, url: str, data: bytes | str | None = None, **kwargs: Any) -> CurlResponse:
        return self.request("PUT", url, data=data, **kwargs)

    def patch(self, url: str, data: bytes | str | None = None, **kwargs: Any) -> CurlResponse:
        return self.request("PATCH", url, data=data, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> CurlResponse:
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> CurlResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> CurlResponse:
        return self.request("OPTIONS", url, **kwargs)


def _failure(reply: Reply, failure_status: int | None) -> Exception | None:
    """What Locust counts the reply as: None (success) or the exception."""
    if not reply.ok:
        try:
            reply.raise_for_error()
        except TransferError as exc:
            return exc
    if failure_status is not None and reply.status >= failure_status:
        kind = "client error" if reply.status < 500 else "server error"
        return HTTPStatusError(f"{reply.status} {reply.reason} ({kind})", reply)
    return None


class CurlUser(User):
    """A Locust user whose ``client`` is a :class:`CurlSession` over the
    process's shared :class:`~http_async_client.Client`.

    ``client_params``: the Client's keyword arguments (users with the same
    ones share one client); ``failure_status``: the lowest HTTP status
    counted as a failure (None: only transfer failures)."""

    abstract = True
    client_params: ClassVar[Mapping[str, Any]] = {}
    failure_status: ClassVar[int | None] = 400

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        host = self.host
        if not host or not host.startswith(("http://", "https://")):
            raise LocustError(
                f"{type(self).__name__}: set host (or --host) to an http:// or https:// URL, "
                f"not {host!r}"
            )
        self.client = CurlSession(host, environment.events.request, self,
                                  _dispatcher(self.client_params), self.failure_status)
