"""asyncio: one reader on the client's fd per loop, futures for awaited
handles, and the seed's suspended query inside a loop."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Generator

from ._base import ClientBase
from ._handle import LOOP_DONE, ON_LOOP, QueryHandle
from ._exceptions import UsageError
from ._reply import Reply

_running_loop = asyncio._get_running_loop

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


class AsyncioMixin(ClientBase):
    """The loop side of delivery."""

    def _complete_on_loop(self, h: QueryHandle) -> None:
        """On the owning loop: run the route, then wake the awaiter."""
        self._run_route(h)
        h._state = LOOP_DONE  # loop_done
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

    def _await_prepare(self, h: QueryHandle) -> Reply | asyncio.Future[Reply]:
        """The synchronous part of ``await handle``: the reply when it is
        already there (its route run if this claims it), else the future the
        loop will resolve.  A future cancelled by one awaiter is replaced,
        so other awaiters of the same handle are not affected."""
        loop = asyncio.get_running_loop()
        self._check_usable(h.id)
        run = False
        with self._lock:
            state = h._state
            if h._reply is not None and state is not ON_LOOP and state is not LOOP_DONE:
                run = self._claim(h)
                fut = None
            elif state is LOOP_DONE:
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
        if self._params["driver"] == "caller":
            # nothing would run the loop while the event loop waits
            raise UsageError(
                "await needs the worker thread: this client has driver='caller' "
                "(use result()/completions(), or a Client with driver='thread')"
            )
        # the loop of the last call: the per-request check is one weakref
        # call, not a WeakSet lookup
        self._last_loop = weakref.ref(loop)
        if loop in self._loops:
            return
        self._loops.add(loop)
        self._loops_seen = True
        loop.add_reader(self._fd, self._on_readable, loop)

    def _on_readable(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop's reader: drain one batch, settle it, and complete this
        loop's share of it right here (other loops get theirs in one
        callback each, see _settle)."""
        if self._drained:
            return
        replies = self._drain_c()
        if not replies:
            return
        with self._lock:
            local = self._settle(replies, loop)
            self._cv.notify_all()
        if local:
            self._complete_batch(local)

    def _complete_batch(self, batch: list[QueryHandle]) -> None:
        """On the owning loop: for each handle, run the route, then resolve
        the future (the awaiting task wakes in the loop's next pass)."""
        run = self._run_route
        for h in batch:
            if h._route is not None:
                run(h)
            h._state = LOOP_DONE  # loop_done
            fut = h._fut
            if fut is not None and not fut.done():
                if fut.get_loop() is _running_loop():
                    fut.set_result(h._reply)  # type: ignore[arg-type]
                else:
                    self._resolve_fut(h)


__all__ = ["AsyncioMixin"]
