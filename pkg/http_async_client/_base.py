"""What the parts of ``Client`` share: its state and the methods they call
across modules (each defined by exactly one part, see ``_client``)."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, Mapping, Union

from ._reply import Reply

if TYPE_CHECKING:
    from ._bodies import BodyArg
    from ._handle import QueryHandle
    from ._nextquery import NextQuery, ThreadState
    from ._validate import HeadersArg

Route = Callable[[Reply], Any]
RouteArg = Union[Route, str, None]


class ClientBase:
    """State of a client, declared once for the modules that implement it:
    ``_core`` (the C side), ``_delivery`` (who gets each reply),
    ``_aio`` (asyncio), ``_client`` (the facade)."""

    _c: Any
    _fd: int
    _params: Mapping[str, Any]
    _closed: bool
    _drained: bool
    _forked: bool  # a forked child's client that rebuilds on first use (_fork)
    _fork_floor: int  # request ids below it were the parent's
    _ids: Iterator[int]
    _verbose: bool
    _pending: dict[int, QueryHandle]
    _stream: OrderedDict[int, QueryHandle]
    _lock: threading.Lock
    _cv: threading.Condition
    _drain_lock: threading.Lock
    _recs: Any
    _records: memoryview
    _held: Any
    _data: Any
    _used: Any
    _pumping: bool
    _sleepers: int
    _loops_seen: bool
    _loops: weakref.WeakSet[asyncio.AbstractEventLoop]
    _last_loop: weakref.ref[asyncio.AbstractEventLoop] | None
    _route_errors: int
    _unsent: deque[bytes]
    _streams: weakref.WeakValueDictionary[int, Any]  # id -> _stream.Stream
    _streaming: bool  # a stream was made: stream news are drained
    _news_ids: Any
    _news_count: int
    _armed: set[asyncio.AbstractEventLoop]
    _batching: int
    _local: ThreadState
    _outputs: dict[int, object]  # id -> reply.output of output= queries
    _has_next: bool

    # defined in _core
    def _drain_c(self) -> list[Reply]:
        raise NotImplementedError

    def _wait_c(self, ms: int) -> bool:
        raise NotImplementedError

    def _cancel(self, rid: int) -> bool:
        raise NotImplementedError

    def _flush(self) -> None:
        raise NotImplementedError

    def _answer_leftovers(self) -> None:
        raise NotImplementedError

    # defined in _delivery
    def _settle(
        self,
        replies: list[Reply],
        here: asyncio.AbstractEventLoop | None,
        taken: list[QueryHandle] | None = None,
    ) -> list[QueryHandle]:
        raise NotImplementedError

    def _claim(self, h: QueryHandle) -> bool:
        raise NotImplementedError

    def _run_route(self, h: QueryHandle) -> None:
        raise NotImplementedError

    def _wait_handle(self, h: QueryHandle, timeout: float | None) -> Reply:
        raise NotImplementedError

    # defined in _aio
    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        raise NotImplementedError

    def _resolve_fut(self, h: QueryHandle) -> None:
        raise NotImplementedError

    def _complete_batch(self, batch: list[QueryHandle]) -> None:
        raise NotImplementedError

    def _complete_on_loop(self, h: QueryHandle) -> None:
        raise NotImplementedError

    def _await_prepare(self, h: QueryHandle) -> Reply | asyncio.Future[Reply]:
        raise NotImplementedError

    # defined in _client
    def _check_open(self) -> None:
        raise NotImplementedError

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
        raise NotImplementedError

    def _check_usable(self, rid: int = -1) -> None:
        raise NotImplementedError  # defined in _fork

    def _rebuild(self) -> None:
        raise NotImplementedError  # defined in _fork

    # defined in _latency
    def _latency_prometheus(self, labels: Mapping[str, str] | None) -> str:
        raise NotImplementedError
