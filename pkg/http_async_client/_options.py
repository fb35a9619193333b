"""Validation of everything the caller hands us, and the per-query state.

Strategy: every check runs in Python before a byte reaches libcurl, which
sends header strings verbatim and accepts any URL scheme it was built with.
The checks are cheap string scans; validated URLs are cached because load
generators and gateways send to the same few URLs over and over.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Union

from ._exceptions import (
    InvalidHeader,
    InvalidMethod,
    InvalidOption,
    InvalidOptionType,
    InvalidURL,
    UnknownRequestKey,
)
from ._ffi import lib

METHODS: dict[str, int] = {
    "GET": lib.HAC_M_GET,
    "POST": lib.HAC_M_POST,
    "PUT": lib.HAC_M_PUT,
    "DELETE": lib.HAC_M_DELETE,
    "PATCH": lib.HAC_M_PATCH,
    "HEAD": lib.HAC_M_HEAD,
    "OPTIONS": lib.HAC_M_OPTIONS,
}

MAX_URL = 65536
MAX_HEADER = 65536
MAX_TIMEOUT_MS = 24 * 3600 * 1000

HeaderLike = Union[str, bytes, "tuple[str, str]"]
HeadersArg = Union[Mapping[str, str], Iterable[HeaderLike], None]
PathArg = Union[str, "os.PathLike[str]", None]
Body = Union[str, bytes, bytearray, memoryview]

# scheme://authority...: an http(s) scheme, a non-empty host, no bytes
# <= 0x20 (controls, space) and no DEL anywhere
_URL_RE = re.compile(r"(?i:https?)://[^\x00-\x20\x7f/?#]+[^\x00-\x20\x7f]*\Z")
_BAD_URL_CHAR = re.compile(r"[\x00-\x20\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

_url_cache: dict[str, bytes] = {}


def check_url(url: object) -> bytes:
    """The URL as bytes for libcurl, or InvalidURL naming the problem."""
    if type(url) is str:
        hit = _url_cache.get(url)
        if hit is not None:
            return hit
        text = url
    elif isinstance(url, (bytes, bytearray)):
        try:
            text = bytes(url).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidURL(f"URL is not valid UTF-8: {url!r}") from None
    elif isinstance(url, str):
        text = str(url)
    else:
        raise InvalidOptionType(f"URL must be str, not {type(url).__name__}")
    if len(text) > MAX_URL:
        raise InvalidURL(f"URL longer than {MAX_URL} characters")
    if not _URL_RE.match(text):
        bad = _BAD_URL_CHAR.search(text)
        if bad:
            raise InvalidURL(
                f"URL contains a space or control character "
                f"{bad.group()!r} at {bad.start()}: {text[:200]!r}"
            )
        scheme = text.split(":", 1)[0] if ":" in text else ""
        if scheme.lower() not in ("http", "https"):
            raise InvalidURL(f"URL scheme must be http or https: {text[:200]!r}")
        raise InvalidURL(f"URL has no host: {text[:200]!r}")
    data = text.encode("utf-8")
    if type(url) is str:
        if len(_url_cache) >= 4096:
            _url_cache.clear()
        _url_cache[url] = data
    return data


def check_method(method: object) -> int:
    """The method code; exact names, case-insensitive."""
    if isinstance(method, bytes):
        method = method.decode("latin-1")
    if not isinstance(method, str):
        raise InvalidOptionType(f"method must be str, not {type(method).__name__}")
    code = METHODS.get(method.upper())
    if code is None:
        raise InvalidMethod(
            f"unsupported method {method!r}; use one of {', '.join(METHODS)}"
        )
    return code


def header_line(name: str, value: str) -> bytes:
    """'Name: value' from a pair; an empty value sends the header empty."""
    if not isinstance(name, str) or not isinstance(value, str):
        raise InvalidOptionType("header name and value must be str")
    _check_name(name)
    _check_value(name, value)
    line = f"{name};" if value == "" else f"{name}: {value}"
    return line.encode("latin-1", "strict") if line.isascii() else _encode(line)


def check_header(header: object) -> bytes:
    """A libcurl header line: 'Name: value' (add/replace), 'Name:' (remove)
    or 'Name;' (send empty)."""
    if isinstance(header, tuple):
        if len(header) != 2:
            raise InvalidOptionType("a header tuple must be (name, value)")
        return header_line(header[0], header[1])
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    if not isinstance(header, str):
        raise InvalidOptionType(
            f"header must be a 'Name: value' str, not {type(header).__name__}"
        )
    if len(header) > MAX_HEADER:
        raise InvalidHeader(f"header longer than {MAX_HEADER} characters")
    colon = header.find(":")
    semi = header.find(";")
    if colon < 0 and semi < 0:
        raise InvalidHeader(f"header has no ':' (or ';' to send it empty): {header!r}")
    if semi >= 0 and (colon < 0 or semi < colon):
        name, rest = header[:semi], header[semi + 1 :]
        _check_name(name)
        if rest.strip(" \t"):
            raise InvalidHeader(f"'Name;' form takes nothing after ';': {header!r}")
        return _encode(f"{name};")
    name, value = header[:colon], header[colon + 1 :]
    _check_name(name)
    _check_value(name, value)
    return _encode(header)


def _encode(line: str) -> bytes:
    try:
        return line.encode("latin-1")
    except UnicodeEncodeError:
        return line.encode("utf-8")


def _check_name(name: str) -> None:
    if not _TOKEN.match(name):
        raise InvalidHeader(f"invalid header name {name!r}")


def _check_value(name: str, value: str) -> None:
    bad = _BAD_VALUE.search(value)
    if bad:
        raise InvalidHeader(
            f"header {name!r} value contains control character {bad.group()!r}"
        )


def headers_lines(headers: HeadersArg) -> list[bytes]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [header_line(k, v) for k, v in headers.items()]
    if isinstance(headers, (str, bytes)):
        return [check_header(headers)]
    return [check_header(h) for h in headers]


def to_int(name: str, value: object) -> int:
    """An int from an int or a decimal string (the seed passes strings)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            raise InvalidOption(f"{name} must be an integer, got {value!r}") from None
    raise InvalidOptionType(f"{name} must be an int, not {type(value).__name__}")


def check_timeout(name: str, value: object) -> int:
    ms = to_int(name, value)
    if ms < 0:
        raise InvalidOption(f"{name} must not be negative, got {ms}")
    if ms == 0:
        raise InvalidOption(f"{name} must be at least 1 ms (the deadline is always on)")
    if ms > MAX_TIMEOUT_MS:
        raise InvalidOption(f"{name} must be at most {MAX_TIMEOUT_MS} ms")
    return ms


def check_flag(name: str, value: object) -> int:
    v = to_int(name, value)
    if v < 0:
        raise InvalidOption(f"{name} must be 0 or 1, got {v}")
    return 1 if v else 0


def check_path(name: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, str):
        raise InvalidOptionType(f"{name} must be a path, not {type(value).__name__}")
    if "\x00" in value:
        raise InvalidOption(f"{name} contains a NUL byte")
    return value


def to_body(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InvalidOptionType(
        f"post_data must be str or bytes, not {type(value).__name__}"
    )


def round_hash_size(value: object) -> int:
    """The seed's rule: round down to a power of two; < 1 becomes 1."""
    n = to_int("hash_size", value)
    if n < 1:
        return 1
    return 1 << (n.bit_length() - 1)


@dataclass
class NextQuery:
    """Options of the next query issued by one thread (the seed's
    per-process state); None means the client's default."""

    suspend: int = 1
    timeout: int | None = None
    method: int | None = None
    headers: list[bytes] = field(default_factory=list)
    verify_host: int | None = None
    verify_peer: int | None = None
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    tls_ca_path: str | None = None

    def set_key(self, key: str, value: Any) -> None:
        """``$http_req(key) = value``."""
        if not isinstance(key, str):
            raise InvalidOptionType("http_req key must be str")
        if key == "all":
            if value is not None:
                raise InvalidOption("http_req['all'] only accepts None (reset)")
            self.__init__()  # type: ignore[misc]
        elif key == "hdr":
            self.headers.append(check_header(value))
        elif key == "method":
            self.method = check_method(value)
        elif key == "timeout":
            self.timeout = check_timeout("timeout", value)
        elif key == "suspend":
            self.suspend = check_flag("suspend", value)
        elif key in ("tls_client_cert", "tls_client_key", "tls_ca_path"):
            setattr(self, key, check_path(key, value))
        else:
            raise UnknownRequestKey(
                f"unknown http_req key {key!r}; known keys: {', '.join(REQ_KEYS)}"
            )


REQ_KEYS = (
    "all",
    "hdr",
    "method",
    "timeout",
    "tls_client_cert",
    "tls_client_key",
    "tls_ca_path",
    "suspend",
)


def encode_opts(
    verify_host: int | None,
    verify_peer: int | None,
    cert: str | None,
    key: str | None,
    capath: str | None,
) -> bytes:
    """The per-request option list: b"<key><value>\\0"... (see hac.h)."""
    parts: list[bytes] = []
    if verify_host is not None:
        parts.append(_O_VERIFY_HOST + b"%d\0" % verify_host)
    if verify_peer is not None:
        parts.append(_O_VERIFY_PEER + b"%d\0" % verify_peer)
    if cert is not None:
        parts.append(_O_CLIENT_CERT + os.fsencode(cert) + b"\0")
    if key is not None:
        parts.append(_O_CLIENT_KEY + os.fsencode(key) + b"\0")
    if capath is not None:
        parts.append(_O_CA_PATH + os.fsencode(capath) + b"\0")
    return b"".join(parts)


_O_VERIFY_HOST = bytes([lib.HAC_O_VERIFY_HOST])
_O_VERIFY_PEER = bytes([lib.HAC_O_VERIFY_PEER])
_O_CLIENT_CERT = bytes([lib.HAC_O_CLIENT_CERT])
_O_CLIENT_KEY = bytes([lib.HAC_O_CLIENT_KEY])
_O_CA_PATH = bytes([lib.HAC_O_CA_PATH])
