"""The reply of one query: the seed's ``$http_*`` variables as attributes.

Strategy: the drain hands over a batch at a time: a packed record per
reply (``_wire.REC``) and one ``bytes`` object holding the small
responses and error texts of the whole batch back to back.  A reply keeps
its record and a reference to that shared buffer and slices only what is
read: ``body`` copies just the body, ``raw`` the whole message,
``status``/``bs``/``ok`` copy nothing, headers are parsed on first use.  So
a loop that checks ``status`` and ``len(body)`` pays one small copy per
reply and no per-reply object beyond the ``Reply``.  A batch buffer larger
than ``SHARE_MAX`` is not shared (each reply gets its own slice at once),
so a reply kept for long pins at most that much memory.

A large response (``HOLD_MIN`` bytes or more) stays in C, held by the
reply, and is copied only when asked for.  That halves the copies of a
64 KiB body and keeps a drained batch of large replies from allocating
(and glibc from unmapping) megabytes of Python memory at once.  The C
buffer goes back to the client's cache when the reply is collected.
"""

from __future__ import annotations

import codecs
import json as _json
from typing import Any, Iterator

from ._exceptions import Cancelled, HTTPStatusError, TransferError, TransferTimeout
from ._ffi import ffi, lib
from ._wire import (
    N_TIMES,
    R_BODY_OFF,
    R_CURL_CODE,
    R_FLAGS,
    R_HTTP_VERSION,
    R_ID,
    R_RAW_LEN,
    R_RAW_OFF,
    R_REASON_LEN,
    R_REASON_OFF,
    R_STATUS,
    R_TIMES,
    R_WRITTEN,
    R_ATTEMPTS,
    R_HEDGED,
)

# responses at least this large stay in C until a property needs them
HOLD_MIN = 16 * 1024
# a drained batch's buffer up to this size is shared by its replies
SHARE_MAX = 64 * 1024

TIME_KEYS = (
    "total",
    "lookup",
    "connect",
    "appconnect",
    "pretransfer",
    "starttransfer",
    "redirect",
)
_TIME_INDEX = {
    "total": lib.HAC_T_TOTAL,
    "lookup": lib.HAC_T_LOOKUP,
    "connect": lib.HAC_T_CONNECT,
    "appconnect": lib.HAC_T_APPCONNECT,
    "pretransfer": lib.HAC_T_PRETRANSFER,
    "starttransfer": lib.HAC_T_STARTTRANSFER,
    "redirect": lib.HAC_T_REDIRECT,
}
# CURL_HTTP_VERSION_* as reported by CURLINFO_HTTP_VERSION
_HTTP_VERSIONS = {0: "", 1: "1.0", 2: "1.1", 3: "2", 30: "3"}

_ID = R_ID
_STATUS = R_STATUS
_FLAGS = R_FLAGS
_RAW_OFF = R_RAW_OFF
_R_OK = lib.HAC_R_OK
_R_TIMEOUT = lib.HAC_R_TIMEOUT
_R_CANCELLED = lib.HAC_R_CANCELLED


class Reply:
    """A finished query.  ``ok`` is True when libcurl completed the transfer,
    whatever the HTTP status; otherwise ``err`` says why.  ``output`` is
    where ``query(output=...)`` wrote the body (None for other queries)."""

    __slots__ = (
        "id",
        "url",
        "flags",
        "status",
        "err",
        "xdata",
        "output",
        "_rec",
        "_src",
        "_base",
        "_headers",
        "_body",
    )

    id: int
    url: str
    flags: int
    status: int
    err: str | None
    xdata: Any
    output: Any

    def __init__(self, rec: tuple[int, ...], data: bytes | None, err: str | None = None,
                 held: Any = None) -> None:
        """Built by the drain: ``rec`` is the unpacked ``hac_rec`` (see
        ``_wire.REC``) and the response starts at ``data[rec.raw_off]``;
        ``data`` is None when ``held`` (a ``hac_result *`` released when
        collected) still holds the response in C."""
        self.id = rec[_ID]
        self.status = rec[_STATUS]
        self.flags = rec[_FLAGS]
        self.err = err
        self.url = ""
        self.xdata = None
        self.output = None
        self._rec = rec
        self._headers: list[tuple[str, str]] | None = None
        self._body: bytes | None = None
        if data is None:
            self._src: Any = held
            self._base = -1
        else:
            self._src = data
            self._base = rec[_RAW_OFF]

    def __reduce__(self) -> tuple[Any, ...]:
        # pickle/copy: travels as its own bytes (not the batch's, not C's)
        return (_rebuild, (self._rec, self.raw, self.err, self.url, self.xdata, self.output))

    @property
    def curl_code(self) -> int:
        """libcurl's CURLcode of the transfer (0 on success)."""
        return self._rec[R_CURL_CODE]

    # ---- outcome
    @property
    def ok(self) -> bool:
        """``$http_ok``: the transfer completed (any HTTP status)."""
        return bool(self.flags & _R_OK)

    @property
    def timed_out(self) -> bool:
        """The request missed its deadline (``connection_timeout``/``timeout``)."""
        return bool(self.flags & _R_TIMEOUT)

    @property
    def cancelled(self) -> bool:
        """The request was cancelled or dropped by ``close()``."""
        return bool(self.flags & _R_CANCELLED)

    def raise_for_error(self) -> "Reply":
        """Raise TransferTimeout / Cancelled / TransferError unless ``ok``."""
        if self.ok:
            return self
        message = self.err or "transfer failed"
        if self.timed_out:
            raise TransferTimeout(message, self)
        if self.cancelled:
            raise Cancelled(message, self)
        raise TransferError(message, self)

    def raise_for_status(self) -> "Reply":
        """Raise unless the server answered with a status below 400.

        A failed transfer raises as ``raise_for_error()`` does; a 4xx or 5xx
        response raises :class:`HTTPStatusError`.  Returns the reply, so
        ``reply.raise_for_status().json()`` reads well."""
        self.raise_for_error()
        if self.status >= 400:
            kind = "client error" if self.status < 500 else "server error"
            raise HTTPStatusError(
                f"{self.status} {self.reason} ({kind}) for {self.url}", self
            )
        return self

    # ---- status line
    @property
    def rs(self) -> int:
        """``$http_rs``: the status code (0 when no response arrived)."""
        return self.status

    @property
    def reason(self) -> str:
        """``$http_rr``: the reason phrase of the last response."""
        start, length = self._rec[R_REASON_OFF], self._rec[R_REASON_LEN]
        return self._slice(start, start + length).decode("latin-1")

    rr = reason

    @property
    def http_version(self) -> str:
        """HTTP version of the response: "1.0", "1.1", "2", "3" or ""."""
        version = self._rec[R_HTTP_VERSION]
        return _HTTP_VERSIONS.get(version, str(version))

    # ---- headers
    @property
    def headers(self) -> list[tuple[str, str]]:
        """Response headers in order, repeats kept, as (name, value)."""
        if self._headers is None:
            self._headers = _parse_headers(self._slice(0, self._rec[R_BODY_OFF]))
        return self._headers

    def hdr(self, name: str, index: int = 0) -> str | None:
        """``$(http_hdr(Name)[index])``: the index-th header called name
        (case-insensitive); -1 is the last.  None when absent."""
        wanted = name.lower()
        values = [v for k, v in self.headers if k.lower() == wanted]
        try:
            return values[index]
        except IndexError:
            return None

    # ---- message and body
    def _slice(self, start: int, end: int) -> bytes:
        """raw[start:end], copied from C when the reply is held there."""
        base = self._base
        if base >= 0:
            return self._src[base + start : base + end]  # type: ignore[no-any-return]
        return ffi.unpack(self._src.raw + start, end - start) if end > start else b""

    @property
    def raw(self) -> bytes:
        """The whole last response as received: status line, headers, body."""
        base = self._base
        length = self._rec[R_RAW_LEN]
        if base == 0 and len(self._src) == length:
            return self._src  # type: ignore[no-any-return]
        raw = self._slice(0, length)
        # from now on slice this copy: no second copy, and the batch's
        # buffer (or the C one) is no longer pinned by this reply
        self._src, self._base = raw, 0
        return raw

    mb = raw  # ``$http_mb``

    @property
    def ml(self) -> int:
        """``$http_ml``: length of the whole response."""
        return self._rec[R_RAW_LEN]

    @property
    def body(self) -> bytes:
        """``$http_rb``: the body, binary-safe (empty with ``output=``: the
        body is in the file, ``output``)."""
        if self._body is None:
            self._body = self._slice(self._rec[R_BODY_OFF], self._rec[R_RAW_LEN])
        return self._body

    rb = body

    @property
    def bs(self) -> int:
        """``$http_bs``: the body length (with ``output=``: the bytes
        written to the file; ``body`` is then empty)."""
        rec = self._rec
        return rec[R_RAW_LEN] - rec[R_BODY_OFF] + rec[R_WRITTEN]

    @property
    def attempts(self) -> int:
        """Transfers started for this query: 1, more with ``retries`` (and
        a hedge, and the worker's own re-send of a request whose cached
        connection was dead); 0 when it never went out."""
        return self._rec[R_ATTEMPTS]

    @property
    def hedged(self) -> bool:
        """True when this reply is the hedge's (``hedge_after``), which
        beat the first copy."""
        return bool(self._rec[R_HEDGED])

    @property
    def encoding(self) -> str:
        """The charset ``text`` decodes with: the ``charset`` parameter of
        Content-Type when Python knows it, else "utf-8" (JSON's only
        encoding, and what RFC 9110 text without a charset is in practice;
        the old ISO-8859-1 default was dropped in RFC 7231)."""
        return _charset(self.hdr("Content-Type")) or "utf-8"

    @property
    def text(self) -> str:
        """The body decoded with ``encoding``; undecodable bytes become
        U+FFFD, so this never raises."""
        return self.body.decode(self.encoding, "replace")

    def json(self, **kwargs: Any) -> Any:
        """The body parsed by the stdlib ``json.loads`` (keyword arguments
        go to it).  Raises ``json.JSONDecodeError`` (a ValueError) on a body
        that is not JSON."""
        if _charset(self.hdr("Content-Type")) not in (None, "utf-8"):
            return _json.loads(self.text, **kwargs)
        # bytes: json detects UTF-8/16/32 and a BOM itself (RFC 8259)
        return _json.loads(self.body, **kwargs)

    # ---- timings
    @property
    def times(self) -> dict[str, int]:
        """``$http_time``: µs per phase; all zero unless ``ok``."""
        t = self._rec[R_TIMES : R_TIMES + N_TIMES] if self.flags & _R_OK else (0,) * N_TIMES
        return {k: t[_TIME_INDEX[k]] for k in TIME_KEYS}

    def time(self, key: str) -> int:
        """One phase of ``times``: total, lookup, connect, appconnect,
        pretransfer, starttransfer or redirect (µs)."""
        try:
            index = _TIME_INDEX[key]
        except KeyError:
            raise KeyError(f"unknown time key {key!r}; use one of {TIME_KEYS}") from None
        return self._rec[R_TIMES + index] if self.flags & _R_OK else 0

    def __repr__(self) -> str:
        if self.ok:
            version = f" HTTP/{self.http_version}" if self.http_version else ""
            return (
                f"<Reply id={self.id} {self.status} {self.reason!r}{version} "
                f"body={self.bs}B url={self.url!r}>"
            )
        outcome = "timed out" if self.timed_out else "cancelled" if self.cancelled else "failed"
        return f"<Reply id={self.id} {outcome} err={self.err!r} url={self.url!r}>"

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)


def _rebuild(rec: tuple[int, ...], raw: bytes, err: str | None, url: str, xdata: Any,
             output: Any = None) -> Reply:
    reply = Reply(rec, raw, err)
    reply._base = 0
    reply.url = url
    reply.xdata = xdata
    reply.output = output
    return reply


def _charset(content_type: str | None) -> str | None:
    """The normalised codec name of Content-Type's charset parameter, or
    None when there is none or Python does not know it."""
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip('"\'').strip()).name
            except LookupError:
                return None
    return None


def _parse_headers(block: bytes) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    lines = block.split(b"\n")
    for raw in lines[1:]:  # lines[0] is the status line
        line = raw.rstrip(b"\r")
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and out:  # obsolete line folding
            name, value = out[-1]
            out[-1] = (name, f"{value} {line.strip().decode('latin-1')}")
            continue
        raw_name, sep, raw_value = line.partition(b":")
        if not sep:
            continue
        out.append((raw_name.strip().decode("latin-1"), raw_value.strip().decode("latin-1")))
    return out
