"""Pure checks of everything the caller hands us (no C here).

Strategy: every check runs in Python before a byte reaches libcurl, which
sends header strings verbatim and accepts any URL scheme it was built with.
The checks are cheap string scans; validated URLs are cached because load
generators and gateways send to the same few URLs over and over.  Each
check takes the option's name, so its error names the option.
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Mapping, Union

from ._exceptions import (
    InvalidHeader,
    InvalidMethod,
    InvalidOption,
    InvalidOptionType,
    InvalidURL,
)

# the methods the core sends (hac.h HAC_M_*, mapped in _wire)
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")

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

# names of the destination sets some client of this process defined
# (_resilience): dest://NAME/... is refused before sending when none did
DEST_NAMES: set[str] = set()
_DEST_URL = re.compile(r"(?i:dest)://([A-Za-z0-9_.\-]{1,64})([/?#][^\x00-\x20\x7f]*)?\Z")


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
    if text[:7].lower() == "dest://":
        return _dest_url(text)
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


def _dest_url(text: str) -> bytes:
    """dest://NAME/path: a destination set's URL (not cached: the set may
    be defined later)."""
    m = _DEST_URL.match(text)
    if m is None:
        bad = _BAD_URL_CHAR.search(text)
        if bad:
            raise InvalidURL(
                f"URL contains a space or control character {bad.group()!r} at "
                f"{bad.start()}: {text[:200]!r}"
            )
        raise InvalidURL(f"dest:// URL must be dest://NAME/path: {text[:200]!r}")
    if m.group(1) not in DEST_NAMES:
        raise InvalidURL(
            f"no destination set named {m.group(1)!r} (client.destinations() defines one): "
            f"{text[:200]!r}"
        )
    return ("dest://" + text[7:]).encode("utf-8")


def _host(url: str) -> str:
    """The host of a URL that matched _URL_RE (user info and port off)."""
    authority = url.split("://", 1)[1]
    for sep in "/?#":
        authority = authority.split(sep, 1)[0]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.split(":", 1)[0]


def check_method(method: object) -> str:
    """The method's name in capitals; exact names, case-insensitive."""
    if isinstance(method, bytes):
        method = method.decode("latin-1")
    if not isinstance(method, str):
        raise InvalidOptionType(f"method must be str, not {type(method).__name__}")
    name = method.upper()
    if name not in METHODS:
        raise InvalidMethod(
            f"unsupported method {method!r}; use one of {', '.join(METHODS)}"
        )
    return name


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


def path_text(name: str, value: object) -> str:
    """A path for the per-query option list: "" means none."""
    path = check_path(name, value)
    return "" if path is None else path


def check_workers(name: str, value: object) -> int:
    n = to_int(name, value)
    if n < 1:
        raise InvalidOption(f"{name} must be >= 1, got {n}")
    if n > 256:
        raise InvalidOption(f"{name} must be <= 256, got {n}")
    return n


def check_positive(name: str, value: object) -> int:
    n = to_int(name, value)
    if n < 1:
        raise InvalidOption(f"{name} must be >= 1, got {n}")
    return n


def check_size(name: str, value: object) -> int:
    n = to_int(name, value, 2**62)
    if n < 1:
        raise InvalidOption(f"{name} must be >= 1 byte, got {n}")
    return n


def check_hash_size(name: str, value: object) -> int:
    return round_hash_size(value)


def _check_choice(name: str, value: object, a: str, b: str) -> str:
    """value is the text a or b."""
    if not isinstance(value, str):
        raise InvalidOptionType(f"{name} must be {a!r} or {b!r}")
    if value not in (a, b):
        raise InvalidOption(f"{name} must be {a!r} or {b!r}, got {value!r}")
    return value


def check_driver(name: str, value: object) -> str:
    return _check_choice(name, value, "thread", "caller")


def check_memory_manager(name: str, value: object) -> str:
    return _check_choice(name, value, "shm", "sys")


def check_int(name: str, value: object) -> int:
    return to_int(name, value)
