"""Validation of everything the caller hands us, and the per-query state.

Strategy: every check runs in Python before a byte reaches libcurl, which
sends header strings verbatim and accepts any URL scheme it was built with.
The checks are cheap string scans; validated URLs are cached because load
generators and gateways send to the same few URLs over and over.
"""

from __future__ import annotations

import os
import re
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
MAX_HASH_SIZE = 1 << 24

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
    if not _host(text):
        raise InvalidURL(f"URL has no host: {text[:200]!r}")
    data = text.encode("utf-8")
    if type(url) is str:
        if len(_url_cache) >= 4096:
            _url_cache.clear()
        _url_cache[url] = data
    return data


def _host(url: str) -> str:
    """The host of a URL that matched _URL_RE (user info and port off)."""
    authority = url.split("://", 1)[1]
    for sep in "/?#":
        authority = authority.split(sep, 1)[0]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.split(":", 1)[0]


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
    if len(name) + len(value) + 2 > MAX_HEADER:
        raise InvalidHeader(f"header longer than {MAX_HEADER} characters")
    _check_name(name)
    _check_value(name, value)
    # libcurl reads "Name:" plus blanks as "remove": an empty value is sent
    # with the 'Name;' form instead
    line = f"{name};" if not value.strip(" \t") else f"{name}: {value}"
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
    try:
        items = iter(headers)
    except TypeError:
        raise InvalidOptionType(
            f"headers must be a mapping or an iterable of header lines, "
            f"not {type(headers).__name__}"
        ) from None
    return [check_header(h) for h in items]


INT_MAX = 2**31 - 1


def to_int(name: str, value: object, limit: int = INT_MAX) -> int:
    """An int from an int or a decimal string (the seed passes strings),
    within +-limit (what the C side holds)."""
    if isinstance(value, bool):
        v = int(value)
    elif isinstance(value, int):
        v = value
    elif isinstance(value, str):
        try:
            v = int(value.strip(), 10)
        except ValueError:
            raise InvalidOption(f"{name} must be an integer, got {value!r}") from None
    else:
        raise InvalidOptionType(f"{name} must be an int, not {type(value).__name__}")
    if not -limit <= v <= limit:
        raise InvalidOption(f"{name} out of range: {v}")
    return v


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
    n = to_int("hash_size", value, 2**63 - 1)
    if n < 1:
        return 1
    if n > MAX_HASH_SIZE:
        raise InvalidOption(f"hash_size must be at most {MAX_HASH_SIZE}, got {n}")
    return 1 << (n.bit_length() - 1)


def check_nonneg(name: str, value: object) -> int:
    v = to_int(name, value)
    if v < 0:
        raise InvalidOption(f"{name} must be >= 0, got {v}")
    return v


def check_text(name: str, value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise InvalidOptionType(f"{name} must be str, not {type(value).__name__}")
    bad = _BAD_VALUE.search(value)
    if bad:
        # libcurl puts user names into Digest headers verbatim
        raise InvalidOption(f"{name} contains control character {bad.group()!r}")
    return value


def check_http_version(name: str, value: object) -> int:
    v = to_int(name, value)
    if v not in (0, 1, 2):
        raise InvalidOption(
            f"{name} must be 0 (default), 1 (HTTP/2 upgrade) or "
            f"2 (HTTP/2 prior knowledge), got {v}"
        )
    return v


def _path_text(name: str, value: object) -> str:
    path = check_path(name, value)
    return "" if path is None else path


# Per-query options that travel to C in the option list (hac.h HAC_O_*):
# name -> (key byte, validator).  An empty string value means "none".
_OPTS: dict[str, tuple[bytes, Any]] = {
    "tls_verify_host": (bytes([lib.HAC_O_VERIFY_HOST]), check_flag),
    "tls_verify_peer": (bytes([lib.HAC_O_VERIFY_PEER]), check_flag),
    "tls_client_cert": (bytes([lib.HAC_O_CLIENT_CERT]), _path_text),
    "tls_client_key": (bytes([lib.HAC_O_CLIENT_KEY]), _path_text),
    "tls_ca_path": (bytes([lib.HAC_O_CA_PATH]), _path_text),
    "authmethod": (bytes([lib.HAC_O_AUTHMETHOD]), check_nonneg),
    "username": (bytes([lib.HAC_O_USERNAME]), check_text),
    "password": (bytes([lib.HAC_O_PASSWORD]), check_text),
    "keepalive": (bytes([lib.HAC_O_KEEPALIVE]), check_flag),
    "ka_idle": (bytes([lib.HAC_O_KA_IDLE]), check_nonneg),
    "ka_interval": (bytes([lib.HAC_O_KA_INTERVAL]), check_nonneg),
    "follow_redirect": (bytes([lib.HAC_O_FOLLOW]), check_flag),
    "max_redirects": (bytes([lib.HAC_O_MAX_REDIRS]), check_nonneg),
    "http_version": (bytes([lib.HAC_O_HTTP_VERSION]), check_http_version),
}
OPTION_NAMES = tuple(_OPTS)

# Kamailio's other spellings of the same keys
_ALIASES = {
    "ka-idle": "ka_idle",
    "ka-interval": "ka_interval",
    "tcp_keepalive": "keepalive",
    "tcp_ka_idle": "ka_idle",
    "tcp_ka_interval": "ka_interval",
}

REQ_KEYS = (
    "all",
    "hdr",
    "method",
    "timeout",
    "tls_client_cert",
    "tls_client_key",
    "tls_ca_path",
    "suspend",
    "body",
    "authmethod",
    "username",
    "password",
    "keepalive",
    "ka_idle",
    "ka_interval",
    "follow_redirect",
    "http_version",
    *_ALIASES,
)


def encode_opt(name: str, value: object) -> tuple[bytes, bytes]:
    """(key byte, b"<key><value>\\0") for one per-query option."""
    key, check = _OPTS[name]
    v = check(name, value)
    text = v if isinstance(v, str) else str(int(v))
    return key, key + os.fsencode(text) + b"\0"


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

    def set_key(self, key: str, value: Any) -> None:
        """``$http_req(key) = value``."""
        if not isinstance(key, str):
            raise InvalidOptionType("http_req key must be str")
        key = _ALIASES.get(key, key)
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
        elif key == "body":
            self.body = None if value is None else to_body(value)
        elif key in _OPTS and key not in ("tls_verify_host", "tls_verify_peer", "max_redirects"):
            self.set_opt(key, value)
        else:
            raise UnknownRequestKey(
                f"unknown http_req key {key!r}; known keys: {', '.join(REQ_KEYS)}"
            )
