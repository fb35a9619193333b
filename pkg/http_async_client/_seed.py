"""The seed's functions: per-query state for the calling thread's next
query, and the module's entry points (``http_async_query`` suspends,
``http_async_send`` never does)."""

from __future__ import annotations

import logging
from typing import Any

from ._aio import _Suspended
from ._base import ClientBase, RouteArg
from ._exceptions import ClientClosed, UsageError
from ._nextquery import NextQuery
from ._validate import PathArg, check_flag, check_header, check_timeout

log = logging.getLogger("http_async_client")


class SeedFunctions(ClientBase):
    """Kamailio's http_async_client functions as methods."""

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


__all__ = ["SeedFunctions"]
