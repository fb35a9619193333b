"""Streamed responses: ``query(url, stream=True)``.

Strategy: the worker appends the body to a buffer of the request's own in
C (csrc/stream.c) and tells the client once per batch that a stream has
news, through the same fd as completions; whoever pumps the client
(``result()``, ``completions()``, the asyncio reader) also takes the news
and wakes that stream's reader.  A reader takes every unread byte at once
(one ``bytes`` per take, however many libcurl writes it holds), which is
also what resumes a transfer paused because its reader fell behind.  The
handle the caller holds is not the one the client keeps for the reply, so
dropping it cancels the transfer.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Generator, Iterator

from ._base import Route
from ._handle import QueryHandle
from ._bodies import BodyArg, Extras
from ._encode import encode
from ._exceptions import ClientClosed, InvalidOption, WaitTimeout
from ._ffi import ffi, lib
from ._nextquery import NextQuery
from ._reply import Reply
from ._validate import HeadersArg, _url_cache, check_size, check_url
from ._wire import REC, R_BODY_OFF, R_ERR_OFF, R_FLAGS, R_HTTP_VERSION, R_ID, R_RAW_LEN
from ._wire import R_REASON_LEN, R_REASON_OFF, R_STATUS

if TYPE_CHECKING:
    from ._client import Client

_S_DONE = lib.HAC_S_DONE
_N_FIELDS = len(REC.unpack(bytes(REC.size)))


def _head_reply(rid: int, head: bytes, status: int, version: int) -> Reply:
    """A Reply of the head alone: status line and headers, empty body."""
    rec = [0] * _N_FIELDS
    rec[R_ID] = rid
    rec[R_ERR_OFF] = -1
    rec[R_FLAGS] = lib.HAC_R_OK
    rec[R_STATUS] = status
    rec[R_HTTP_VERSION] = version
    rec[R_RAW_LEN] = rec[R_BODY_OFF] = len(head)
    line_end = head.find(b"\r\n")
    first = head[: line_end if line_end >= 0 else len(head)]
    parts = first.split(b" ", 2)
    if len(parts) == 3:
        rec[R_REASON_OFF] = len(parts[0]) + len(parts[1]) + 2
        rec[R_REASON_LEN] = len(parts[2])
    return Reply(tuple(rec), head)


class Stream:
    """The handle of a streamed query: the reply head as soon as the
    headers are in, then the body chunk by chunk, then the final reply
    (``result()``: status, headers, ``err``; its body is empty)."""

    __slots__ = ("_h", "_client", "_s", "_news", "_waiter", "_head", "_size", "_state",
                 "__weakref__")

    def __init__(self, client: Client, h: QueryHandle, s: Any) -> None:
        self._h = h
        self._client = client
        self._s = s  # the hac_stream *, released with this handle
        self._news = 0
        self._waiter: asyncio.Future[None] | None = None
        self._head: Reply | None = None
        # hac_stream_take()'s out-parameters, made once per stream, not per take
        self._size = ffi.new("size_t *")
        self._state = ffi.new("uint32_t *")

    # the QueryHandle surface
    @property
    def id(self) -> int:
        return self._h.id

    @property
    def url(self) -> str:
        return self._h.url

    def done(self) -> bool:
        """True once the transfer has ended (its final reply is in)."""
        return self._h.done()

    def result(self, timeout: float | None = None) -> Reply:
        """The final reply (after the last byte; the body is not in it)."""
        return self._h.result(timeout)

    def cancel(self) -> bool:
        """Stop the transfer; the iteration then raises ``Cancelled``."""
        return self._h.cancel()

    def __await__(self) -> Generator[Any, None, Reply]:
        return self._h.__await__()

    # ------------------------------------------------------------ reading

    def _take(self) -> tuple[bytes | None, int]:
        if self._h.id < self._client._fork_floor:  # its core is the parent's
            raise ClientClosed(f"stream {self._h.id} belongs to the parent process")
        size, state = self._size, self._state
        p = lib.hac_stream_take(self._s, size, state)
        if p == ffi.NULL:
            return None, state[0]
        try:
            return ffi.unpack(p, size[0]), state[0]
        finally:
            lib.hac_free(p)

    def _head_now(self) -> Reply | None:
        if self._head is None:
            status = ffi.new("int32_t *", -1)  # left alone until there is a head
            version = ffi.new("int32_t *")
            n = lib.hac_stream_head(self._s, ffi.NULL, 0, status, version)
            if status[0] < 0:
                return None
            buf = ffi.new("char[]", max(1, n))
            n = lib.hac_stream_head(self._s, buf, n, status, version)
            head = _head_reply(self.id, ffi.unpack(buf, n), status[0], version[0])
            head.url = self.url
            head.xdata = self._h._xdata
            self._head = head
        return self._head

    def head(self, timeout: float | None = None) -> Reply:
        """The reply head (status, reason, headers, ``http_version``; empty
        body) once the headers of the final response are in.  A transfer
        that fails before raises its typed exception."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            seen = self._news
            head = self._head_now()
            if head is not None:
                return head
            if self._h.done():
                reply = self._h.result()
                reply.raise_for_error()
                return self._head_now() or reply
            self._wait(seen, deadline, f"no response head for query {self.id} within {timeout} s")

    def iter_bytes(self, timeout: float | None = None) -> Iterator[bytes]:
        """The body as it arrives: each chunk is everything that arrived
        since the last one.  Ends after the last byte; a transfer that
        fails (even half-way) raises its typed exception after the bytes
        that did arrive.  ``timeout`` bounds each wait for more."""
        while True:
            seen = self._news
            data, state = self._take()
            if data:
                yield data
                continue
            if state & _S_DONE:
                self._finish(timeout)
                return
            deadline = None if timeout is None else time.monotonic() + timeout
            self._wait(seen, deadline, f"no data on stream {self.id} within {timeout} s")

    def _finish(self, timeout: float | None) -> None:
        reply = self._h.result(timeout)
        reply.raise_for_error()

    def _wait(self, seen: int, deadline: float | None, what: str) -> None:
        """Until this stream has news since ``seen`` (or its reply is in):
        pump the client as result() does."""
        client = self._client
        if client._unsent:
            client._flush()
        with client._lock:
            while self._news == seen and not self._h.done():
                if client._drained:
                    raise ClientClosed(f"stream {self.id}: client closed")
                remaining = None
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise WaitTimeout(what)
                client._pump(remaining)

    # ------------------------------------------------------------ asyncio

    async def ahead(self) -> Reply:
        """``head()`` for a coroutine."""
        while True:
            seen = self._news
            head = self._head_now()
            if head is not None:
                return head
            if self._h.done():
                reply = await self._h
                reply.raise_for_error()
                return self._head_now() or reply
            await self._await_news(seen)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """``iter_bytes()`` for a coroutine."""
        while True:
            seen = self._news
            data, state = self._take()
            if data:
                yield data
                continue
            if state & _S_DONE:
                reply = await self._h
                reply.raise_for_error()
                return
            await self._await_news(seen)

    async def _await_news(self, seen: int) -> None:
        """Until news since ``seen`` (taken by this loop's reader or any
        other pump)."""
        loop = asyncio.get_running_loop()
        client = self._client
        waiter = loop.create_future()
        self._waiter = waiter
        last = client._last_loop
        if last is None or last() is not loop:
            client._attach(loop)
        if client._unsent:
            client._flush()
        if self._news != seen or self._h.done():
            self._waiter = None
            return
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        """News drained for this stream (any thread)."""
        self._news += 1
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        loop = waiter.get_loop()
        if asyncio._get_running_loop() is loop:
            waiter.set_result(None)
        else:
            try:
                loop.call_soon_threadsafe(_set_none, waiter)
            except RuntimeError:  # its loop is closed
                pass

    # ------------------------------------------------------------ the end

    def close(self) -> None:
        """Stop the transfer if it still runs and free its buffer."""
        if not self._h.done():
            self._h.cancel()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._h.done() and not self._client._closed:
                self._h.cancel()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __repr__(self) -> str:
        return f"<Stream id={self.id} {'done' if self.done() else 'open'} url={self.url!r}>"


def start_stream(
    client: Client,
    state: NextQuery | None,
    url: str,
    post_data: BodyArg,
    fn: Route | None,
    method: str | None,
    headers: HeadersArg,
    timeout: int | None,
    xdata: Any,
    opts: dict[str, object] | None,
    limit: object,
) -> Stream:
    """query(stream=True): the request names a stream of its own (made
    here, in C) whose body the caller reads while it arrives; ``timeout=0``
    means no deadline."""
    if opts and opts.get("output") is not None:
        raise InvalidOption("stream=True and output= both take the response body: use one")
    size = client._params["stream_buffer"] if limit is None else check_size("stream_buffer", limit)
    no_deadline = timeout is not None and not isinstance(timeout, bool) and timeout == 0
    url_b = (type(url) is str and _url_cache.get(url)) or check_url(url)
    ptr = lib.hac_stream_new(client._c, size)
    if ptr == ffi.NULL:
        raise MemoryError("out of memory for a stream")
    s = ffi.gc(ptr, lib.hac_stream_release)
    rid = next(client._ids)
    entry = bytes([lib.HAC_O_STREAM]) + str(int(ffi.cast("uintptr_t", ptr))).encode() + b"\0"
    extras = Extras()
    blob = encode(rid, url_b, state, post_data, method, headers,
                  None if no_deadline else timeout, opts, extras, entry,
                  lib.HAC_NO_DEADLINE if no_deadline else 0)
    client._streaming = True
    h = client._send_extras(extras, lambda: client._send(rid, blob, url, url_b, fn, xdata))
    stream = Stream(client, h, s)
    client._streams[rid] = stream
    return stream


def _set_none(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


__all__ = ["Stream", "start_stream"]
