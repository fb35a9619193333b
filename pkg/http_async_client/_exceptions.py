"""One exception hierarchy: misuse, transfer failure, timeout.

Misuse (bad URL, method, header, option, closed client) is raised before
anything reaches libcurl.  Transfer failures never raise by themselves: they
come back as a :class:`Reply` with ``ok == False``; ``Reply.raise_for_error()``
turns one into a :class:`TransferError` when the caller prefers exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # _reply imports this module
    from ._reply import Reply


class HttpAsyncClientError(Exception):
    """Base class of every exception this package raises."""


class UsageError(HttpAsyncClientError, ValueError):
    """The caller asked for something invalid; nothing was sent."""


class InvalidURL(UsageError):
    """The URL is not http/https, or has spaces or control bytes."""


class InvalidMethod(UsageError):
    """The method is not one of GET POST PUT DELETE PATCH HEAD OPTIONS."""


class InvalidHeader(UsageError):
    """A header name or value is malformed (CR, LF, NUL, bad name)."""


class InvalidOption(UsageError):
    """A parameter or per-query option has a bad value."""


class InvalidOptionType(InvalidOption, TypeError):
    """A parameter or per-query option has the wrong type."""


class UnknownRequestKey(InvalidOption, KeyError):
    """``client.http_req[key]`` with a key the module does not know."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class ClientClosed(HttpAsyncClientError, RuntimeError):
    """The client was closed (or belongs to the parent of a fork)."""


class WaitTimeout(HttpAsyncClientError, TimeoutError):
    """``result(timeout)`` or ``completions(timeout)`` ran out of time.

    The request itself goes on; only the wait ended."""


class TransferError(HttpAsyncClientError):
    """A transfer failed (refused, reset, TLS, ...); see ``reply``."""

    def __init__(self, message: str, reply: Reply | None = None) -> None:
        super().__init__(message)
        #: the failed :class:`Reply` (None when raised without one)
        self.reply = reply


class TransferTimeout(TransferError, TimeoutError):
    """A transfer missed its deadline."""


class Cancelled(TransferError):
    """A request was cancelled, or dropped by ``close()``."""


class HTTPStatusError(TransferError):
    """``Reply.raise_for_status()``: the server answered 4xx or 5xx.

    The transfer itself completed; ``reply`` holds the whole response and
    ``status`` its code."""

    reply: Reply

    def __init__(self, message: str, reply: Reply) -> None:
        super().__init__(message, reply)
        self.status: int = reply.status
