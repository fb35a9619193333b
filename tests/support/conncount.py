"""Per-connection accounting for the loopback test servers: accept and close
times, requests served, the most connections open and the most requests in
flight at once (for max_host_connections and max_connection_age tests)."""

from __future__ import annotations

import dataclasses
import threading
import time

__all__ = ["ConnCounter", "ConnRecord"]


@dataclasses.dataclass
class ConnRecord:
    """One accepted connection.  Times are ``time.monotonic()``; ``index`` is
    the accept order (0-based); ``peer_port`` is 0 on a Unix socket."""

    index: int
    peer_port: int
    accepted_at: float
    closed_at: float | None = None
    requests: int = 0

    @property
    def is_open(self) -> bool:
        """True until the server has closed its side."""
        return self.closed_at is None

    @property
    def lifetime(self) -> float:
        """Seconds from accept to close (or to now, while open)."""
        end = time.monotonic() if self.closed_at is None else self.closed_at
        return end - self.accepted_at


class ConnCounter:
    """Thread-safe accounting of a server's client connections.

    ``total`` accepted, ``open`` now, ``max_open`` (the most open at once),
    ``active``/``max_active`` (requests being handled now / at most at once)
    and ``records`` (a :class:`ConnRecord` copy per connection, accept order).

    A connection counts as open from accept until the server's thread has
    seen the client's close and closed its side, so a client that closes one
    connection and opens another at once can briefly overlap the two;
    ``max_active`` has no such lag (a request is active while handled).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._records: list[ConnRecord] = []
        self._index = 0
        self._open = 0
        self._max_open = 0
        self._active = 0
        self._max_active = 0

    def opened(self, peer_port: int) -> ConnRecord:
        """Count an accepted connection; returns its (live) record."""
        with self._cond:
            record = ConnRecord(self._index, peer_port, time.monotonic())
            self._index += 1
            self._records.append(record)
            self._open += 1
            self._max_open = max(self._max_open, self._open)
            self._cond.notify_all()
            return record

    def closed(self, record: ConnRecord) -> None:
        """Mark ``record``'s connection closed (idempotent)."""
        with self._cond:
            if record.closed_at is None:
                record.closed_at = time.monotonic()
                self._open -= 1
                self._cond.notify_all()

    def request_started(self, record: ConnRecord) -> None:
        """A request on ``record``'s connection is being handled."""
        with self._cond:
            record.requests += 1
            self._active += 1
            self._max_active = max(self._max_active, self._active)

    def request_finished(self) -> None:
        """The request counted by the last :meth:`request_started` is done."""
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def reset(self) -> None:
        """Forget the records and maxima; connections open now stay counted."""
        with self._cond:
            self._records = [r for r in self._records if r.closed_at is None]
            self._max_open = self._open
            self._max_active = self._active

    def wait_total(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` connections were accepted; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._records) >= count, timeout)

    def wait_open(self, count: int, timeout: float = 5.0) -> bool:
        """Block until exactly ``count`` connections are open (``0``: all
        closed); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._open == count, timeout)

    @property
    def total(self) -> int:
        with self._cond:
            return len(self._records)

    @property
    def open(self) -> int:
        with self._cond:
            return self._open

    @property
    def max_open(self) -> int:
        with self._cond:
            return self._max_open

    @property
    def active(self) -> int:
        with self._cond:
            return self._active

    @property
    def max_active(self) -> int:
        with self._cond:
            return self._max_active

    @property
    def records(self) -> list[ConnRecord]:
        """Copies of the records, so they cannot change under the caller."""
        with self._cond:
            return [dataclasses.replace(r) for r in self._records]
