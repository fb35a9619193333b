"""The only module that calls the C core: create and close the
``hac_client``, submit, drain, wait, cancel, statistics."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ._base import ClientBase, Route
from ._delivery import QueryHandle
from ._exceptions import ClientClosed, HttpAsyncClientError
from ._ffi import ffi, lib
from ._optable import fill_config
from ._reply import HOLD_MIN, Reply
from ._wire import REC, R_ERR_LEN, R_ERR_OFF, R_RAW_LEN, R_RAW_OFF

log = logging.getLogger("http_async_client")

_DRAIN_BATCH = 256
_HOLD_MIN = HOLD_MIN
# the drain's data area: small responses and error texts of one batch; a
# result needs at most _HOLD_MIN - 1 + an error text (< 1 KiB)
_DATA_SLACK = _HOLD_MIN + 1024
_DATA_CAP = 32 * _HOLD_MIN
_REC_SIZE = REC.size
_iter_unpack = REC.iter_unpack
_release_one = lib.hac_release_one
_wait = lib.hac_wait
_submit = lib.hac_submit


class Core(ClientBase):
    """The client's C side."""

    def _open(self, values: dict[str, Any]) -> None:
        """Create the C client from checked parameter values (the
        effective memory manager is written back into ``values``)."""
        keep: list[Any] = []
        cfg = ffi.new("hac_config *")
        fill_config(cfg, values, keep)
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

    def _close_c(self) -> None:
        """Stop the workers; every request gets its reply (GIL released)."""
        lib.hac_close(self._c)

    def _wait_c(self, ms: int) -> bool:
        """Wait up to ms (-1: forever) for finished results."""
        return bool(_wait(self._c, ms))

    def _send(
        self, rid: int, blob: bytes, url: str, url_b: bytes, fn: Route | None, xdata: Any
    ) -> QueryHandle:
        """Hand one request (its wire form) to the core; the handle."""
        loop = asyncio._get_running_loop()
        h = QueryHandle(self, rid, url if isinstance(url, str) else url_b.decode(), fn, loop, xdata)
        if loop is not None:
            last = self._last_loop
            if last is None or last() is not loop:
                self._attach(loop)
        self._pending[rid] = h
        rc = _submit(self._c, blob, len(blob))
        if rc < 0:
            self._pending.pop(rid, None)
            if rc == lib.HAC_E_CLOSED:
                raise ClientClosed("the client is closed")
            if rc == lib.HAC_E_NOMEM:
                raise MemoryError("http_async_client: out of memory queueing a request")
            raise HttpAsyncClientError(f"internal error {rc} queueing a request")
        return h

    def _drain_c(self) -> list[Reply]:
        """Take every finished result out of the core (never blocks).  One
        C call per batch: the fixed fields come as packed records (one
        struct unpack each), small responses and error texts as one bytes
        object that each reply slices; large responses stay held in C."""
        replies: list[Reply] = []
        append = replies.append
        c = self._c
        recs, held, data, used = self._recs, self._held, self._data, self._used
        records = self._records
        raw_off, raw_len, err_off, err_len = R_RAW_OFF, R_RAW_LEN, R_ERR_OFF, R_ERR_LEN
        with self._drain_lock:
            while True:
                n = lib.hac_drain_into(c, recs, held, _DRAIN_BATCH, data, _DATA_CAP,
                                       _HOLD_MIN, used)
                if not n:
                    break
                size = used[0]
                blob = ffi.unpack(data, size) if size else b""
                for i, rec in enumerate(_iter_unpack(records[: n * _REC_SIZE])):
                    off = rec[raw_off]
                    eoff = rec[err_off]
                    err = None if eoff < 0 else blob[eoff : eoff + rec[err_len]].decode("utf-8", "replace")
                    if off >= 0:
                        append(Reply(rec, blob[off : off + rec[raw_len]], err))
                    else:  # large: stays in C until asked for (see _reply)
                        append(Reply(rec, None, err, ffi.gc(held[i], _release_one)))
                # fewer than asked and not for want of room: the queue is empty
                if n < _DRAIN_BATCH and size + _DATA_SLACK <= _DATA_CAP:
                    break
        if self._verbose:
            self._flush_verbose()
        return replies

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
        if self._closed:
            return False
        return bool(lib.hac_cancel(self._c, rid) == 0)

    def stats(self) -> dict[str, int]:
        """The seed's counters summed over workers: requests (submitted),
        replies, errors, timeouts; plus cancelled, started (handed to
        libcurl), dead_connections, resent, inflight, queued,
        completed_pending, route_errors and the accounted allocator's bytes.
        Once every request has finished, requests == replies + errors +
        timeouts + cancelled."""
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
        }


__all__ = ["Core"]
