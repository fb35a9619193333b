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

__all__ = ["CURL_VERSION", "ffi", "lib"]
