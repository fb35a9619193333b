"""The seed's per-query state: options set for the next query of a thread
(``http_set_method()``, ``http_append_header()``, ``$http_req(key)``...),
applied to that query and then reset."""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from ._exceptions import ClientClosed, InvalidOption, InvalidOptionType, UnknownRequestKey
from ._optable import ALIASES, QUERY_OPTS, REQ_KEYS, REQ_OPTIONS, encode_opt
from ._validate import check_flag, check_header, check_method, check_timeout, to_body
from ._wire import METHOD_CODES

if TYPE_CHECKING:
    from ._client import Client

_REQ_OPTIONS = frozenset(REQ_OPTIONS)


class NextQuery:
    """Options of the next query issued by one thread (the seed's
    per-process state); absent means the client's default."""

    __slots__ = ("suspend", "timeout", "method", "headers", "body", "opts")

    def __init__(self) -> None:
        self.suspend = 1
        self.timeout: int | None = None
        self.method: int | None = None
        self.headers: list[bytes] = []
        self.body: bytes | None = None
        self.opts: dict[bytes, bytes] = {}

    def set_opt(self, name: str, value: object) -> None:
        key, entry = encode_opt(name, value)
        self.opts[key] = entry

    def set_method(self, value: object) -> None:
        self.method = METHOD_CODES[check_method(value)]

    def set_key(self, key: str, value: Any) -> None:
        """``$http_req(key) = value``; None resets that key to the client's
        default (the seed's ``$null``)."""
        if not isinstance(key, str):
            raise InvalidOptionType("http_req key must be str")
        key = ALIASES.get(key, key)
        if key == "all":
            if value is not None:
                raise InvalidOption("http_req['all'] only accepts None (reset)")
            self.__init__()  # type: ignore[misc]
        elif key == "hdr":
            if value is None:
                self.headers = []
            else:
                self.headers.append(check_header(value))
        elif key == "method":
            self.method = None if value is None else METHOD_CODES[check_method(value)]
        elif key == "timeout":
            self.timeout = None if value is None else check_timeout("timeout", value)
        elif key == "suspend":
            self.suspend = 1 if value is None else check_flag("suspend", value)
        elif key == "body":
            self.body = None if value is None else to_body(value)
        elif key in _REQ_OPTIONS:
            if value is None:
                self.opts.pop(QUERY_OPTS[key][0], None)
            else:
                self.set_opt(key, value)
        else:
            raise UnknownRequestKey(
                f"unknown http_req key {key!r}; known keys: {', '.join(REQ_KEYS)}"
            )


class ThreadState(threading.local):
    """Per-thread "next query" options; the class attribute makes the
    common no-options lookup a plain attribute read, not an exception."""

    next: NextQuery | None = None
    batch: int = 0  # depth of client.batch() blocks in this thread


class HttpReq:
    """``client.http_req[key] = value``: the seed's ``$http_req(key)``
    (write-only), for the next query of the calling thread."""

    __slots__ = ("_client",)

    def __init__(self, client: Client) -> None:
        # weak: no reference cycle keeps a dropped client (and its fd) alive
        self._client = weakref.ref(client)

    def __setitem__(self, key: str, value: Any) -> None:
        client = self._client()
        if client is None:
            raise ClientClosed("the client is gone")
        client._next().set_key(key, value)

    def __getitem__(self, key: str) -> Any:
        raise TypeError("http_req is write-only, as $http_req in the seed")

    def keys(self) -> tuple[str, ...]:
        return REQ_KEYS

    def __repr__(self) -> str:
        return f"<http_req keys={', '.join(REQ_KEYS)}>"
