"""The compiled core and the wire form of a request."""

from __future__ import annotations

import struct

from ._version import __version__

try:
    from ._native import ffi, lib
except ImportError as exc:  # pragma: no cover - a broken install
    raise ImportError(
        "http_async_client: the compiled core is missing; reinstall with "
        "`pip install .` (needs libcurl4-openssl-dev libev-dev pkg-config)"
    ) from exc

_built = ffi.string(lib.hac_version()).decode()
if _built != __version__:  # pragma: no cover - a stale build
    raise ImportError(
        f"http_async_client: compiled core is version {_built} but the "
        f"package is {__version__}; rebuild the extension"
    )

# hac_reqhdr: id, timeout_ms, method, flags, url_len, body_len, hdr_len,
# opt_len.  Native byte order and sizes, no padding (checked below).
REQHDR = struct.Struct("=QqIIIIII")
if ffi.sizeof("hac_reqhdr") != REQHDR.size:  # pragma: no cover
    raise ImportError("http_async_client: hac_reqhdr layout mismatch")

CURL_VERSION: str = ffi.string(lib.hac_curl_version()).decode()

__all__ = ["CURL_VERSION", "REQHDR", "ffi", "lib"]
