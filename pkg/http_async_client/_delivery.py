"""Who gets each reply: the claim rules, the pump and the consumers.

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
that condition.  The asyncio reader is just another pump (``_aio``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Iterator, Literal, overload

from ._base import ClientBase
from ._exceptions import ClientClosed, WaitTimeout
from ._handle import (
    _CLAIM,
    HELD,
    ON_LOOP,
    READY,
    STREAMED,
    TRANSITIONS,
    QueryHandle,
    State,
)
from ._reply import Reply

log = logging.getLogger("http_async_client")

_SLICE_S = 0.05  # a pumper re-checks this often when a loop may steal results


class Delivery(ClientBase):
    """Settling drained replies and handing each to its one claimer."""

    def _run_route(self, h: QueryHandle) -> None:
        """Call the route; the caller has claimed it (h._state moved under
        _cv), so this happens once per reply."""
        if h._route is None or h._reply is None:
            return
        try:
            h._route(h._reply)
        except Exception:
            with self._lock:  # routes run in many threads at once
                self._route_errors += 1
            log.exception("route of query %d (%s) raised", h.id, h.url)

    def _settle(
        self,
        replies: list[Reply],
        here: asyncio.AbstractEventLoop | None,
        taken: list[QueryHandle] | None = None,
    ) -> list[QueryHandle]:
        """With _cv held: hand each reply to its claimer.  Returns the
        handles to complete on ``here`` once the lock is released.  With
        ``taken``, the replies nobody else claims are appended to it
        (taken by a batch consumer) instead of entering the stream.
        Replies for other loops go to each in one callback per batch."""
        local: list[QueryHandle] = []
        pending = self._pending
        outputs = self._outputs
        others: dict[asyncio.AbstractEventLoop, list[QueryHandle]] | None = None
        for reply in replies:
            if outputs:
                reply.output = outputs.pop(reply.id, None)
            h = pending.pop(reply.id, None)
            if h is None:
                continue
            reply.url = h.url
            reply.xdata = h._xdata
            h._reply = reply
            if h._waiters:
                h._state = HELD  # arrive_waited
                if h._fut is not None:
                    self._resolve_fut(h)
                continue
            fut = h._fut
            loop = fut.get_loop() if fut is not None else h._loop
            if loop is not None:
                h._state = ON_LOOP  # arrive_on_loop
                if loop is here:
                    local.append(h)
                    continue
                if others is None:
                    others = {}
                batch = others.get(loop)
                if batch is None:
                    others[loop] = [h]
                else:
                    batch.append(h)
                continue
            if taken is not None:
                h._state = STREAMED  # arrive_taken
                taken.append(h)
            else:
                h._state = READY  # arrive
                self._stream[h.id] = h
        if others:
            for loop, batch in others.items():
                try:
                    loop.call_soon_threadsafe(self._complete_batch, batch)
                except RuntimeError:  # that loop is closed: fall back
                    for h in batch:
                        h._state = READY  # loop_closed
                        self._stream[h.id] = h
        return local

    def _pump(self, timeout: float | None) -> None:
        """With _cv held: wait up to timeout for results and settle them, or
        sleep on _cv while another thread pumps."""
        if self._pumping:
            self._sleepers += 1
            try:
                self._cv.wait(timeout)
            finally:
                self._sleepers -= 1
            return
        self._pumping = True
        self._cv.release()
        replies: list[Reply] = []
        try:
            wait = timeout
            if self._loops_seen and self._loops:
                # an event loop's reader may take our reply: look again soon
                wait = _SLICE_S if wait is None else min(wait, _SLICE_S)
            ms = -1 if wait is None else max(0, int(wait * 1000 + 0.999))
            if self._wait_c(ms):
                replies = self._drain_c()
        finally:
            self._cv.acquire()
            self._pumping = False
        if replies:
            self._settle(replies, None)
        # Condition.notify_all() is Python code: skip it when nobody sleeps
        if self._sleepers:
            self._cv.notify_all()

    def _look(self, taken: list[QueryHandle] | None = None) -> bool:
        """With _cv held: settle what the core has finished, without
        waiting (``taken`` as for _settle); True when there was any."""
        if not self._wait_c(0):
            return False
        replies = self._drain_c()
        if not replies:
            return False
        self._settle(replies, None, taken)
        if self._sleepers:
            self._cv.notify_all()
        return True

    def _wait_handle(self, h: QueryHandle, timeout: float | None) -> Reply:
        if self._unsent:
            self._flush()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if h._reply is None:
                self._check_usable(h.id)
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
            run = self._claim(h)
        if run:
            self._run_route(h)
        return h._reply

    def _claim(self, h: QueryHandle) -> bool:
        """With _cv held: result() or await takes an arrived reply unless
        the loop or completions() has it; True when the caller must run its
        route (the "claim" transitions)."""
        state = h._state
        after = _CLAIM.get(state)
        if after is None:
            return False
        if state is READY:
            # it must not stay in the stream (code that never iterates
            # completions() would keep every reply it ever received)
            self._stream.pop(h.id, None)
        h._state = after
        return True

    def _take(self, deadline: float | None, block: bool) -> QueryHandle | None:
        """The next unclaimed reply of the stream, claimed and with its route
        still to run; None when nothing is left to wait for (or, not
        blocking, nothing is ready)."""
        with self._lock:
            while True:
                while self._stream:
                    h = self._stream.popitem(last=False)[1]
                    if h._state is READY:
                        h._state = STREAMED  # take
                        return h
                if self._drained:
                    return None
                # blocking with nobody pumping: the pump's wait returns at
                # once when results are ready (no separate look first)
                if not block or self._pumping or not self._pending:
                    if self._look():
                        continue
                    if not block or not self._pending:
                        return None
                remaining = None
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise WaitTimeout("no reply within the timeout")
                self._pump(remaining)

    def _take_batch(self, deadline: float | None, block: bool) -> list[QueryHandle]:
        """Every unclaimed reply there is (the stream, then what the core
        has), claimed, routes still to run; waits for the first one when
        ``block``.  Empty when nothing is left to wait for (or, not
        blocking, nothing is ready)."""
        if self._unsent:
            self._flush()
        taken: list[QueryHandle] = []
        with self._lock:
            while True:
                stream = self._stream
                if stream:
                    for h in stream.values():
                        if h._state is READY:
                            h._state = STREAMED  # take
                            taken.append(h)
                    stream.clear()
                if self._drained:
                    return taken
                # nothing taken yet and blocking: the pump's wait looks at
                # the core anyway
                if taken or not block or self._pumping or not self._pending:
                    self._look(taken)
                    if taken or not block or not self._pending:
                        return taken
                remaining = None
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise WaitTimeout("no reply within the timeout")
                self._pump(remaining)

    def _routed(self, taken: list[QueryHandle]) -> list[Reply]:
        """Run the routes of taken handles; their replies, in order."""
        out: list[Reply] = []
        append = out.append
        run = self._run_route
        for h in taken:
            if h._route is not None:
                run(h)
            append(h._reply)  # type: ignore[arg-type]
        return out

    def drain(self, timeout: float | None = 0) -> list[Reply]:
        """Every finished reply nobody else claims, in completion order,
        each once (across threads), routes run: the batch form of
        ``completions()``, with the Python overhead paid once per batch.

        ``timeout=0``: only what is ready; ``timeout=x``: wait up to x s
        for the first one; ``None``: until one arrives.  ``[]`` when the
        time is up or nothing is in flight (no WaitTimeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            taken = self._take_batch(deadline, timeout is None or timeout > 0)
        except WaitTimeout:
            return []
        return self._routed(taken)

    @overload
    def completions(
        self, timeout: float | None = None, *, batch: Literal[False] = False
    ) -> Iterator[Reply]: ...

    @overload
    def completions(
        self, timeout: float | None = None, *, batch: Literal[True]
    ) -> Iterator[list[Reply]]: ...

    def completions(
        self, timeout: float | None = None, *, batch: bool = False
    ) -> Iterator[Reply] | Iterator[list[Reply]]:
        """Finished replies in completion order, each once (across threads);
        routes run before a reply is yielded.  Ends when nothing is in
        flight; ``timeout`` bounds the wait for each next reply
        (WaitTimeout).  ``batch=True`` yields lists instead: every reply
        ready at that moment, never an empty list."""
        if batch:
            return self._batches(timeout)
        return self._singles(timeout)

    def _singles(self, timeout: float | None) -> Iterator[Reply]:
        while True:
            deadline = None if timeout is None else time.monotonic() + timeout
            h = self._take(deadline, True)
            if h is None:
                return
            if h._route is not None:
                self._run_route(h)
            assert h._reply is not None
            yield h._reply

    def _batches(self, timeout: float | None) -> Iterator[list[Reply]]:
        while True:
            deadline = None if timeout is None else time.monotonic() + timeout
            taken = self._take_batch(deadline, True)
            if not taken:
                return
            yield self._routed(taken)

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


__all__ = ["Delivery", "QueryHandle", "State", "TRANSITIONS"]
