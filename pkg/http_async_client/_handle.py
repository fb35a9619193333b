"""A submitted query's handle and the states its reply passes through on
its way to exactly one claimer (the rule and who claims: ``_delivery``)."""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING, Any, Generator

from ._base import Route
from ._reply import Reply

if TYPE_CHECKING:
    from ._base import ClientBase as Client


class State(enum.IntEnum):
    """Where a query's reply is on its way to exactly one claimer."""

    PENDING = 0    # no reply yet
    READY = 1      # arrived, nobody's yet: in the completion stream
    HELD = 2       # arrived while a thread waited in result(); route not run
    ROUTED = 3     # claimed by result() or await: its route ran (or runs)
    ON_LOOP = 4    # arrived for an event loop; the loop runs the route
    LOOP_DONE = 5  # the loop ran the route and resolved the future
    STREAMED = 6   # taken by completions() / dispatch(), route run there


PENDING, READY, HELD, ROUTED, ON_LOOP, LOOP_DONE, STREAMED = State

# Every transition, in one place (h11's _state.py keeps its rules the same
# way).  Events: "arrive*" when the drain settles the reply (settle picks
# the one that applies; "arrive_taken" is arrive + take at once, for the
# batch consumers drain() and completions(batch=True)), "claim" by
# result() / await, "take" by completions(), "loop_done" when the loop has
# run the route.
TRANSITIONS: dict[tuple[State, str], State] = {
    (PENDING, "arrive_waited"): HELD,
    (PENDING, "arrive_on_loop"): ON_LOOP,
    (PENDING, "arrive"): READY,
    (PENDING, "arrive_taken"): STREAMED,
    (ON_LOOP, "loop_closed"): READY,
    (READY, "claim"): ROUTED,
    (HELD, "claim"): ROUTED,
    (READY, "take"): STREAMED,
    (ON_LOOP, "loop_done"): LOOP_DONE,
}
# a claim from these states runs the route; ROUTED is claimed again
# without running it (a second result() returns the same reply)
_CLAIM = {s: t for (s, e), t in TRANSITIONS.items() if e == "claim"}


class QueryHandle:
    """A submitted query: its id, an awaitable, ``result()`` and ``cancel()``."""

    __slots__ = (
        "id",
        "url",
        "_client",
        "_route",
        "_reply",
        "_state",
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
        self._state = PENDING
        self._waiters = 0  # threads in result() for this very query
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
        False when the reply is already there (or the client is closed)."""
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


__all__ = ["QueryHandle", "State", "TRANSITIONS"]
