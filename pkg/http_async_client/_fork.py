"""A client used in a forked child rebuilds itself (the gunicorn/uwsgi
pre-fork pattern).

At ``fork()`` the child keeps the parent's ``Client`` object but none of
its worker threads.  The at-fork hook (no user code, no libcurl) closes the
child's copies of the parent core's fds (``hac_abandon``: connections,
epoll sets, the completion fd; its memory is left, shared copy-on-write
with the parent) and forgets every request of the parent: their handles
raise ``ClientClosed`` in the child, their replies go to the parent only.
The first use in the child (a query, a wait, ``stats()``, ``latency()``)
makes a new C client from the same parameters, with zeroed statistics and
a new completion fd (asyncio loops attach to it as usual), then calls
``_after_rebuild()`` for what lives in Python and must be replayed."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict, deque
from typing import Any, Mapping

from ._base import ClientBase
from ._exceptions import ClientClosed
from ._ffi import lib
from ._nextquery import ThreadState


class ForkMixin(ClientBase):
    """The client's fork handling (see the module docstring)."""

    _fork_floor: int  # ids below it were the parent's
    _fork_lock: threading.Lock
    _rebuild_args: tuple[dict[str, Any], Mapping[str, Any]]  # _open()'s

    def _open(self, values: dict[str, Any], extra: Mapping[str, Any]) -> None:
        raise NotImplementedError  # defined in _core

    def _new_sync(self) -> None:
        raise NotImplementedError  # defined in _client

    def _after_fork_child(self) -> None:
        """In the child, right after fork(): drop the parent's core and
        requests; a client still open rebuilds on first use."""
        old = self._c
        if old is not None:
            lib.hac_abandon(old)  # fds only; hac_destroy() is a no-op here
        self._forked = not self._closed
        self._closed = True  # every entry point goes to _check_open()
        self._drained = True
        self._fork_floor = next(self._ids)
        self._pending = {}
        self._stream = OrderedDict()
        self._outputs = {}
        self._unsent = deque()
        self._armed = set()
        self._batching = 0
        self._local = ThreadState()
        self._streams = weakref.WeakValueDictionary()
        self._fork_lock = threading.Lock()
        self._new_sync()

    def _rebuild(self) -> None:
        """First use in a forked child: a new core from the same
        parameters (any thread; one builds, the others wait)."""
        with self._fork_lock:
            if not self._forked:
                return
            values, extra = self._rebuild_args
            self._open(dict(values), extra)
            self._streaming = False
            self._news_count = 0
            self._route_errors = 0
            self._drained = False
            self._closed = False
            self._forked = False
        self._after_rebuild()

    def _after_rebuild(self) -> None:
        """Called once the child's new core exists: replay here whatever
        the core was given after creation (the parts that keep such state
        in Python extend this)."""

    def _check_usable(self, rid: int = -1) -> None:
        """Before waiting on request ``rid``: rebuild in a fresh child, and
        refuse a request of the parent."""
        if self._forked:
            self._rebuild()
        if rid >= 0 and rid < self._fork_floor:
            raise ClientClosed(
                f"query {rid} belongs to the parent process (it was in flight at "
                "fork()); its reply goes to the parent"
            )


__all__ = ["ForkMixin"]
