"""The only module that calls the C core: create and close the
``hac_client``, submit, drain, wait, cancel, statistics."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Mapping, TypeVar

from ._base import ClientBase, Route
from ._bodies import Extras
from ._handle import QueryHandle
from ._exceptions import ClientClosed, HttpAsyncClientError
from ._ffi import ffi, lib
from ._optable import fill_config
from ._prometheus import prometheus_text
from ._reply import HOLD_MIN, SHARE_MAX, Reply
from ._wire import REC, REQHDR, R_ERR_LEN, R_ERR_OFF, R_FLAGS, R_ID, R_RAW_LEN, R_RAW_OFF

log = logging.getLogger("http_async_client")

_T = TypeVar("_T")
_DRAIN_BATCH = 256
_NEWS_BATCH = 256
_HOLD_MIN = HOLD_MIN
# the drain's data area: small responses and error texts of one batch; a
# result needs at most _HOLD_MIN - 1 + an error text (< 1 KiB)
_DATA_SLACK = _HOLD_MIN + 1024
_DATA_CAP = 32 * _HOLD_MIN
_REC_SIZE = REC.size
_REC_FIELDS = len(REC.unpack(bytes(REC.size)))
_iter_unpack = REC.iter_unpack
_release_one = lib.hac_release_one
_wait = lib.hac_wait
_submit = lib.hac_submit
_drain_into = lib.hac_drain_into
_running_loop = asyncio._get_running_loop
_R_CANCELLED = lib.HAC_R_CANCELLED
_SHARE_MAX = SHARE_MAX


def _raise_refused(rc: int) -> None:
    if rc == lib.HAC_E_CLOSED:
        raise ClientClosed("the client is closed")
    if rc == lib.HAC_E_NOMEM:
        raise MemoryError("http_async_client: out of memory queueing a request")
    raise HttpAsyncClientError(f"internal error {rc} queueing a request")


def _blob_ids(blob: bytes) -> list[int]:
    """The request ids of a wire blob (a batch of requests)."""
    ids = []
    off = 0
    size = REQHDR.size
    while off < len(blob):
        rid, _t, _m, _f, url_len, body_len, hdr_len, opt_len = REQHDR.unpack_from(blob, off)
        ids.append(rid)
        off += size + url_len + body_len + hdr_len + opt_len
    return ids


def local_reply(rid: int, flags: int, text: str) -> Reply:
    """A reply made in Python for a request the core never took."""
    rec = [0] * _REC_FIELDS
    rec[R_ID] = rid
    rec[R_ERR_OFF] = -1
    rec[R_FLAGS] = flags
    return Reply(tuple(rec), b"", text)


class Core(ClientBase):
    """The client's C side."""

    def _open(self, values: dict[str, Any], extra: Mapping[str, Any]) -> None:
        """Create the C client from checked parameter values and ``extra``
        hac_config fields (the effective memory manager is written back
        into ``values``)."""
        keep: list[Any] = []
        cfg = ffi.new("hac_config *")
        fill_config(cfg, values, keep, extra)
        mm = ffi.new("int *")
        err = ffi.new("char[256]")
        ptr = lib.hac_client_new(cfg, mm, err, 256)
        if ptr == ffi.NULL:
            raise HttpAsyncClientError(
                f"cannot create client: {ffi.string(err).decode(errors='replace')}"
            )
        effective = "shm" if mm[0] == lib.HAC_MM_SHM else "sys"
        if effective != values["memory_manager"]:
            log.warning(
                "memory_manager=%r ignored: libcurl's allocator is process-wide "
                "and the first client chose %r",
                values["memory_manager"],
                effective,
            )
            values["memory_manager"] = effective
        self._c = ffi.gc(ptr, lib.hac_destroy)
        self._fd = lib.hac_fd(ptr)
        self._recs = ffi.new("hac_rec[]", _DRAIN_BATCH)
        self._records = memoryview(ffi.buffer(self._recs))
        self._held = ffi.new("hac_result *[]", _DRAIN_BATCH)
        self._data = ffi.new("char[]", _DATA_CAP)
        self._used = ffi.new("size_t *")
        self._news_ids = ffi.new("uint64_t[]", _NEWS_BATCH)
        self._news_count = 0

    def _close_c(self) -> None:
        """Stop the workers; every request gets its reply (GIL released)."""
        lib.hac_close(self._c)

    def _wait_c(self, ms: int) -> bool:
        """Wait up to ms (-1: forever) for finished results."""
        return bool(_wait(self._c, ms))

    def _send(
        self, rid: int, blob: bytes, url: str, url_b: bytes, fn: Route | None, xdata: Any
    ) -> QueryHandle:
        """Hand one request (its wire form) to the core; the handle.  From
        a coroutine, and inside ``batch()``, the request is buffered and
        sent with the others of its batch (see _defer)."""
        loop = _running_loop()
        h = QueryHandle(self, rid, url if isinstance(url, str) else url_b.decode(), fn, loop, xdata)
        self._pending[rid] = h
        rc = self._route_blob(blob, loop)
        if rc < 0:
            self._pending.pop(rid, None)
            _raise_refused(rc)
        return h

    def _route_blob(self, blob: bytes, loop: asyncio.AbstractEventLoop | None) -> int:
        """Send a blob now, or buffer it for the running loop's next pass or
        the thread's open batch(); hac_submit's code (0 when buffered)."""
        if loop is not None:
            last = self._last_loop
            if last is None or last() is not loop:
                self._attach(loop)
            self._defer(blob, loop)
            return 0
        if self._batching and self._local.batch:
            self._unsent.append(blob)
            return 0
        rc: int = _submit(self._c, blob, len(blob))
        return rc

    def _send_many(
        self, made: list[tuple[int, str, Route | None, Any]], blob: bytes
    ) -> list[QueryHandle]:
        """``_send`` for a batch: one blob, one call (or one buffered blob)."""
        loop = _running_loop()
        pending = self._pending
        handles = []
        for rid, url, fn, xdata in made:
            h = QueryHandle(self, rid, url, fn, loop, xdata)
            pending[rid] = h
            handles.append(h)
        rc = self._route_blob(blob, loop)
        if rc < 0:
            for h in handles:
                pending.pop(h.id, None)
            _raise_refused(rc)
        return handles

    # Strategy: a coroutine's query is not sent at once but buffered, and
    # the loop sends the buffer with one hac_submit at its next iteration
    # (one call_soon per loop and batch): the tasks a drained batch wakes
    # resubmit in the same iteration, so a batch of replies turns into one
    # batch of requests, one C call and at most one wake-up of the worker.
    # Whatever waits on or cancels a buffered request sends the buffer
    # first.  A buffer that cannot be sent gives its requests local replies
    # (error, or cancelled once the client is closed): each still gets one.
    def _defer(self, blob: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self._unsent.append(blob)
        armed = self._armed
        if loop not in armed:
            armed.add(loop)
            loop.call_soon(self._flush_on, loop)

    def _flush_on(self, loop: asyncio.AbstractEventLoop) -> None:
        self._armed.discard(loop)
        if self._unsent:
            self._flush()

    def _flush(self) -> None:
        """Send every buffered request (any thread; deque operations are
        atomic, so concurrent flushes split the buffer between them)."""
        q = self._unsent
        pop = q.popleft
        parts: list[bytes] = []
        try:
            while q:
                parts.append(pop())
        except IndexError:  # another thread took the last one
            pass
        if not parts:
            return
        blob = parts[0] if len(parts) == 1 else b"".join(parts)
        if self._closed:
            lib.hac_discard(blob, len(blob))  # hac_submit would have closed its fds
            rc = lib.HAC_E_CLOSED
        else:
            rc = _submit(self._c, blob, len(blob))
        if rc < 0:
            self._fail_unsent(blob, rc)

    def _fail_unsent(self, blob: bytes, rc: int) -> None:
        """The buffered requests of ``blob`` were refused: give each its
        reply here.  Refused for closing: close() gives the cancelled
        replies after its last drain unless that is already done."""
        if rc == lib.HAC_E_CLOSED:
            flags, text = _R_CANCELLED, "CANCELLED: client closed"
        elif rc == lib.HAC_E_NOMEM:
            flags, text = 0, "out of memory queueing the request"
        else:  # pragma: no cover - the blob is ours
            flags, text = 0, f"internal error {rc} queueing the request"
        with self._lock:
            if rc == lib.HAC_E_CLOSED and not self._drained:
                return  # close() answers what is still pending
            replies = [local_reply(rid, flags, text) for rid in _blob_ids(blob)]
            self._settle(replies, None)
            self._cv.notify_all()

    def _answer_leftovers(self) -> None:
        """With _cv held, after close()'s last drain: requests the core
        never took (refused while closing) get their cancelled reply."""
        if self._pending:
            replies = [local_reply(rid, _R_CANCELLED, "CANCELLED: client closed")
                       for rid in list(self._pending)]
            self._settle(replies, None)

    def _batch_enter(self) -> None:
        with self._lock:
            self._local.batch += 1
            self._batching += 1

    def _batch_exit(self) -> None:
        with self._lock:
            self._local.batch -= 1
            self._batching -= 1
            last = not self._local.batch
        if last and self._unsent:
            self._flush()

    def _drain_c(self) -> list[Reply]:
        """Take every finished result out of the core (never blocks).  One
        C call per batch: the fixed fields come as packed records (one
        struct unpack each), small responses and error texts as one bytes
        object that the batch's replies share and slice when read (see
        _reply); large responses stay held in C."""
        replies: list[Reply] = []
        append = replies.append
        c = self._c
        recs, held, data, used = self._recs, self._held, self._data, self._used
        records = self._records
        raw_off, raw_len, err_off, err_len = R_RAW_OFF, R_RAW_LEN, R_ERR_OFF, R_ERR_LEN
        with self._drain_lock:
            while True:
                n = _drain_into(c, recs, held, _DRAIN_BATCH, data, _DATA_CAP, _HOLD_MIN, used)
                if not n:
                    break
                size = used[0]
                blob = ffi.unpack(data, size) if size else b""
                share = size <= _SHARE_MAX
                for i, rec in enumerate(_iter_unpack(records[: n * _REC_SIZE])):
                    eoff = rec[err_off]
                    err = None if eoff < 0 else blob[eoff : eoff + rec[err_len]].decode("utf-8", "replace")
                    off = rec[raw_off]
                    if off < 0:  # large: stays in C until asked for
                        append(Reply(rec, None, err, ffi.gc(held[i], _release_one)))
                    elif share:
                        append(Reply(rec, blob, err))
                    else:  # a big batch buffer: not pinned by each reply
                        reply = Reply(rec, blob[off : off + rec[raw_len]], err)
                        reply._base = 0
                        append(reply)
                # fewer than asked and not for want of room: the queue is empty
                if n < _DRAIN_BATCH and size + _DATA_SLACK <= _DATA_CAP:
                    break
            if self._streaming:  # once any stream was made: news must not pile up
                self._take_news()
        if self._verbose:
            self._flush_verbose()
        return replies

    def _take_news(self) -> None:
        """Wake the readers of streams with news (with _drain_lock)."""
        ids = self._news_ids
        streams = self._streams
        while True:
            n = lib.hac_stream_news(self._c, ids, _NEWS_BATCH)
            for i in range(n):
                s = streams.get(ids[i])
                if s is not None:
                    s._wake()
            self._news_count += n
            if n < _NEWS_BATCH:
                return

    def _flush_verbose(self) -> None:
        size = ffi.new("size_t *")
        p = lib.hac_log_take(self._c, size)
        if p == ffi.NULL:
            return
        try:
            text = ffi.unpack(p, size[0]).decode("utf-8", "replace")
        finally:
            lib.hac_free(p)
        for line in text.splitlines():
            log.info("%s", line)

    def _cancel(self, rid: int) -> bool:
        if self._closed or rid < self._fork_floor:  # a parent's, in a forked child
            return False
        if self._unsent:
            self._flush()  # the core must know the request first
        return bool(lib.hac_cancel(self._c, rid) == 0)

    def _send_extras(self, extras: Extras, send: Callable[[], _T]) -> _T:
        """``send()`` a blob with what its queries' files need: the output
        each reply shows (known before any reply can arrive), the feeder
        threads of iterator bodies (started once the blob is the core's)."""
        outputs = extras.outputs
        if not outputs and not extras.feeders:
            return send()
        if outputs:
            self._outputs.update(outputs)
        try:
            sent = send()
        except BaseException:
            for rid in outputs:
                self._outputs.pop(rid, None)
            extras.abandon()
            raise
        extras.start()
        return sent

    def stats_prometheus(self, labels: Mapping[str, str] | None = None) -> str:
        """``stats()`` as Prometheus text exposition (format 0.0.4): the
        seed's counters as ``http_async_client_requests_total`` etc., plus
        in-flight and allocator gauges.  ``labels`` (e.g. ``{"client":
        "billing"}``) tell several clients apart; to put several in one
        scrape, use ``http_async_client.prometheus_text``."""
        return prometheus_text([(labels or {}, self.stats())]) + self._latency_prometheus(labels)

    def stats(self) -> dict[str, Any]:
        """The seed's counters summed over workers: requests (submitted),
        replies, errors, timeouts; plus cancelled, started (handed to
        libcurl), dead_connections, resent, inflight, queued,
        completed_pending, route_errors and the accounted allocator's bytes;
        retries, hedges, hedge_wins, shed (failed by max_queue_wait),
        rate_delayed, and ``destinations``: each destination set's
        ``destination_state()``.  Once every request has finished,
        requests == replies + errors + timeouts + cancelled."""
        if self._forked:
            self._rebuild()
        if self._c is None:
            return {}
        s = ffi.new("hac_stats *")
        lib.hac_stats_get(self._c, s)
        return {
            "requests": s.requests,
            "started": s.started,
            "replies": s.replies,
            "errors": s.errors,
            "timeouts": s.timeouts,
            "cancelled": s.cancelled,
            "dead_connections": s.dead_connections,
            "resent": s.resent,
            "inflight": s.inflight,
            "queued": s.queued,
            "completed_pending": s.completed_pending,
            "route_errors": self._route_errors,
            "mem_in_use": s.mem_in_use,
            "mem_peak": s.mem_peak,
            "log_dropped": s.log_dropped,
            "streams": s.streams,
            "streams_paused": s.streams_paused,
            "retries": s.retries,
            "hedges": s.hedges,
            "hedge_wins": s.hedge_wins,
            "shed": s.shed,
            "rate_delayed": s.rate_delayed,
            "destinations": getattr(self, "_destination_stats")(),
        }


__all__ = ["Core"]
