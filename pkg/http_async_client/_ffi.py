"""The compiled core, checked at import to be the build of this package."""

from __future__ import annotations

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

CURL_VERSION: str = ffi.string(lib.hac_curl_version()).decode()
# "libcurl/8.14.1 OpenSSL/3.0.19 ..." -> "8.14.1"
_CURL_NUMBER = CURL_VERSION.split()[0].partition("/")[2]


def curl_version() -> str:
    """The version of the libcurl the core runs on, e.g. ``"8.14.1"``.

    The full string, with the TLS library and the other components, is
    ``CURL_VERSION``."""
    return _CURL_NUMBER


__all__ = ["CURL_VERSION", "curl_version", "ffi", "lib"]
