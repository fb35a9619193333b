"""http_async_client: an asynchronous HTTP client for Python with a C core.

Kamailio's ``http_async_client`` module for Python services: libcurl multi
handles driven by libev in C worker threads, the seed's parameters,
functions and ``$http_*`` variables, plus a Pythonic surface (handles,
``completions()``, asyncio ``await``).
"""

from ._bodies import FormFile as FormFile
from ._client import Client
from ._handle import QueryHandle
from ._exceptions import (
    Cancelled,
    ClientClosed,
    HTTPStatusError,
    HttpAsyncClientError,
    InvalidHeader,
    InvalidMethod,
    InvalidOption,
    InvalidOptionType,
    InvalidURL,
    TransferError,
    TransferTimeout,
    UnknownRequestKey,
    UsageError,
    WaitTimeout,
)
from ._ffi import CURL_VERSION, curl_version
from ._latency import Latency, PhaseLatency, origin_key
from ._nextquery import HttpReq
from ._prometheus import prometheus_text
from ._reply import Reply
from ._stream import Stream
from ._version import __version__

__all__ = [
    "CURL_VERSION",
    "Cancelled",
    "Client",
    "ClientClosed",
    "FormFile",
    "HTTPStatusError",
    "HttpAsyncClientError",
    "HttpReq",
    "InvalidHeader",
    "InvalidMethod",
    "InvalidOption",
    "InvalidOptionType",
    "InvalidURL",
    "Latency",
    "PhaseLatency",
    "QueryHandle",
    "Reply",
    "Stream",
    "TransferError",
    "TransferTimeout",
    "UnknownRequestKey",
    "UsageError",
    "WaitTimeout",
    "__version__",
    "curl_version",
    "origin_key",
    "prometheus_text",
]
