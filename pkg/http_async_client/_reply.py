"""The reply of one query: the seed's ``$http_*`` variables as attributes.

Strategy: the C core hands over one contiguous copy of the last response
(header block + body) and a few offsets.  Everything else (reason, header
list, body slice, timings) is derived lazily, so a caller that only looks at
``status`` pays for one bytes copy and nothing more.
"""

from __future__ import annotations

from typing import Any, Iterator

from ._exceptions import Cancelled, TransferError, TransferTimeout
from ._ffi import lib

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

_R_OK = lib.HAC_R_OK
_R_TIMEOUT = lib.HAC_R_TIMEOUT
_R_CANCELLED = lib.HAC_R_CANCELLED


class Reply:
    """A finished query.  ``ok`` is True when libcurl completed the transfer,
    whatever the HTTP status; otherwise ``err`` says why."""

    __slots__ = (
        "id",
        "url",
        "flags",
        "status",
        "err",
        "raw",
        "_body_off",
        "_reason_span",
        "_times",
        "_version",
        "_headers",
        "_body",
        "curl_code",
        "xdata",
    )

    id: int
    url: str
    flags: int
    status: int
    err: str | None
    raw: bytes
    curl_code: int
    xdata: Any

    def __init__(
        self,
        id: int,
        url: str,
        flags: int,
        status: int,
        err: str | None,
        raw: bytes,
        body_off: int,
        reason_span: tuple[int, int],
        times: tuple[int, ...] | None,
        version: int,
        curl_code: int,
        xdata: Any = None,
    ) -> None:
        self.id = id
        self.url = url
        self.flags = flags
        self.status = status
        self.err = err
        self.raw = raw
        self._body_off = body_off
        self._reason_span = reason_span
        self._times = times
        self._version = version
        self._headers: list[tuple[str, str]] | None = None
        self._body: bytes | None = None
        self.curl_code = curl_code
        self.xdata = xdata

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

    # ---- status line
    @property
    def rs(self) -> int:
        """``$http_rs``: the status code (0 when no response arrived)."""
        return self.status

    @property
    def reason(self) -> str:
        """``$http_rr``: the reason phrase of the last response."""
        start, length = self._reason_span
        return self.raw[start : start + length].decode("latin-1")

    rr = reason

    @property
    def http_version(self) -> str:
        """HTTP version of the response: "1.0", "1.1", "2", "3" or ""."""
        return _HTTP_VERSIONS.get(self._version, str(self._version))

    # ---- headers
    @property
    def headers(self) -> list[tuple[str, str]]:
        """Response headers in order, repeats kept, as (name, value)."""
        if self._headers is None:
            self._headers = _parse_headers(self.raw[: self._body_off])
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
    @property
    def mb(self) -> bytes:
        """``$http_mb``: the whole response, headers and body."""
        return self.raw

    @property
    def ml(self) -> int:
        """``$http_ml``: length of the whole response."""
        return len(self.raw)

    @property
    def body(self) -> bytes:
        """``$http_rb``: the body, binary-safe."""
        if self._body is None:
            self._body = self.raw[self._body_off :]
        return self._body

    rb = body

    @property
    def bs(self) -> int:
        """``$http_bs``: the body length."""
        return len(self.raw) - self._body_off

    # ---- timings
    @property
    def times(self) -> dict[str, int]:
        """``$http_time``: µs per phase; all zero unless ``ok``."""
        t = self._times or (0,) * len(TIME_KEYS)
        return {k: t[_TIME_INDEX[k]] for k in TIME_KEYS}

    def time(self, key: str) -> int:
        """One phase of ``times``: total, lookup, connect, appconnect,
        pretransfer, starttransfer or redirect (µs)."""
        try:
            index = _TIME_INDEX[key]
        except KeyError:
            raise KeyError(f"unknown time key {key!r}; use one of {TIME_KEYS}") from None
        return self._times[index] if self._times else 0

    def __repr__(self) -> str:
        if self.ok:
            return (
                f"<Reply id={self.id} {self.status} {self.reason!r} "
                f"body={self.bs}B url={self.url!r}>"
            )
        return f"<Reply id={self.id} failed err={self.err!r} url={self.url!r}>"

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)


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
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        out.append((name.strip().decode("latin-1"), value.strip().decode("latin-1")))
    return out
