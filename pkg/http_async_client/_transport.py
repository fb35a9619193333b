"""Checks of the transport controls (proxy, DNS overrides, pins, CA
blobs, User-Agent, the authentication methods libcurl was built with) and
the proxy settings a client takes from the
environment when asked to (``trust_env``).

Strategy: libcurl reads ``http_proxy``/``https_proxy``/``all_proxy``/
``no_proxy`` by itself unless told otherwise, but not upper-case
``HTTP_PROXY``, and silently; the core therefore always sets the proxy
(``""``: none) and the environment is read here, only when the caller
asks, with the rules Python's urllib and curl's tool follow.
"""

from __future__ import annotations

import os
import re
from typing import Mapping
from urllib.parse import urlsplit

from ._exceptions import InvalidOption, InvalidOptionType
from ._ffi import lib
from ._validate import check_timeout, to_int

PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[^:\[\]\s,]*)"
_RESOLVE = re.compile(rf"[+-]?{_HOST}:\d{{1,5}}(?::.*)?\Z")
_CONNECT_TO = re.compile(rf"{_HOST}:\d{{0,5}}:{_HOST}:\d{{0,5}}\Z")
_PIN = re.compile(r"sha256//[A-Za-z0-9+/=]+(?:;sha256//[A-Za-z0-9+/=]+)*\Z")


def _text(name: str, value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise InvalidOptionType(f"{name} must be str, not {type(value).__name__}")
    bad = _CONTROL.search(value)
    if bad:
        raise InvalidOption(f"{name} contains control character {bad.group()!r}")
    return value


def redact_url(url: str) -> str:
    """``url`` with the password of its user info replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    user, _, host = authority.rpartition("@")
    name = user.split(":", 1)[0]
    return f"{scheme}://{name}:***@{host}{slash}{path}"


def check_proxy(name: str, value: object) -> str | None:
    """A proxy URL (``scheme://[user:password@]host[:port]``, scheme one of
    PROXY_SCHEMES); ``""`` means "no proxy"; None: not set."""
    if value is None:
        return None
    url = _text(name, value).strip()
    if not url:
        return ""
    if "://" not in url:
        # curl's rule for a bare "host:port"
        url = "http://" + url
    scheme = url.split("://", 1)[0].lower()
    if scheme not in PROXY_SCHEMES:
        raise InvalidOption(
            f"{name} scheme must be one of {', '.join(PROXY_SCHEMES)}: {redact_url(url)!r}"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise InvalidOption(f"{name} is not a valid URL ({exc}): {redact_url(url)!r}") from None
    if not parts.hostname:
        raise InvalidOption(f"{name} has no host: {redact_url(url)!r}")
    if " " in url:
        raise InvalidOption(f"{name} contains a space: {redact_url(url)!r}")
    return url


def check_no_proxy(name: str, value: object) -> str | None:
    """Comma-separated host names, domains (``.example.com``), addresses or
    ``*``; None: not set."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = ",".join(_text(name, v) for v in value)
    return ",".join(h.strip() for h in _text(name, value).split(",") if h.strip())


def _entries(name: str, value: object, pattern: re.Pattern[str], form: str) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)):
        items: list[object] = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise InvalidOptionType(
            f"{name} must be a list of {form!r} strings, not {type(value).__name__}"
        )
    out = []
    for item in items:
        text = _text(name, item).strip()
        if not pattern.match(text):
            raise InvalidOption(f"{name} entry {text!r} is not of the form {form!r}")
        out.append(text)
    return tuple(out)


def check_resolve(name: str, value: object) -> tuple[str, ...] | None:
    """``["host:port:address[,address...]", ...]`` (curl's ``--resolve``)."""
    if value is None:
        return None
    return _entries(name, value, _RESOLVE, "host:port:address[,address]")


def check_connect_to(name: str, value: object) -> tuple[str, ...] | None:
    """``["host:port:connect-host:connect-port", ...]`` (curl's
    ``--connect-to``)."""
    if value is None:
        return None
    return _entries(name, value, _CONNECT_TO, "host:port:connect-host:connect-port")


def query_resolve(name: str, value: object) -> str:
    """check_resolve for one query: the entries as the option list's text."""
    return "\n".join(check_resolve(name, value) or ())


def query_connect_to(name: str, value: object) -> str:
    return "\n".join(check_connect_to(name, value) or ())


def check_pinned_pubkey(name: str, value: object) -> str | None:
    """``sha256//<base64>`` pins separated by ``;``, or a key file path."""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    text = _text(name, value).strip()
    if text.lower().startswith("sha256//"):
        if not _PIN.match(text):
            raise InvalidOption(f"{name} must be sha256//<base64>[;sha256//<base64>...]: {text!r}")
    elif not text:
        raise InvalidOption(f"{name} is empty")
    return text


# authmethod bits (the seed's, = CURLAUTH_*) and the curl_version_info
# feature a bit needs (CURL_VERSION_SPNEGO, CURL_VERSION_NTLM)
_AUTH_NAMES = {1: "Basic", 2: "Digest", 4: "Negotiate", 8: "NTLM", 16: "Digest-IE"}
_AUTH_FEATURE = {4: 1 << 8, 8: 1 << 4}


def check_authmethod(name: str, value: object) -> int:
    """A sum of 1 Basic, 2 Digest, 4 Negotiate, 8 NTLM, 16 Digest-IE that
    this libcurl can do."""
    v = to_int(name, value)
    if not 1 <= v <= 31:
        raise InvalidOption(
            f"{name} must be a sum of 1 Basic, 2 Digest, 4 Negotiate, 8 NTLM, "
            f"16 Digest-IE (1..31), got {v}"
        )
    features = lib.hac_curl_features()
    for bit, feature in _AUTH_FEATURE.items():
        if v & bit and not features & feature:
            raise InvalidOption(
                f"{name} {v} includes {bit} ({_AUTH_NAMES[bit]}), which this libcurl "
                "was built without"
            )
    return v


def check_ca_blob(name: str, value: object) -> bytes | None:
    """PEM text of one or more CA certificates."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("ascii", "strict")
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise InvalidOptionType(f"{name} must be bytes (PEM), not {type(value).__name__}")
    if b"\0" in value:
        raise InvalidOption(f"{name} must be PEM text (it contains a NUL byte)")
    if b"-----BEGIN CERTIFICATE-----" not in value:
        raise InvalidOption(f"{name} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return value


def check_user_agent(name: str, value: object) -> str:
    """The default User-Agent; ``""`` sends none."""
    if value is None:
        return ""
    return _text(name, value)


def check_connect_timeout(name: str, value: object) -> int | None:
    """ms, or None: the request's own deadline bounds connecting."""
    if value is None:
        return None
    return check_timeout(name, value)


def check_dns_cache_timeout(name: str, value: object) -> int:
    v = to_int(name, value)
    if v < -1:
        raise InvalidOption(f"{name} must be -1 (forever), 0 (off) or seconds, got {v}")
    return v


def check_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InvalidOptionType(f"{name} must be True or False, not {value!r}")


def env_proxies(environ: Mapping[str, str]) -> dict[str, str | None]:
    """The proxies ``trust_env=True`` takes: ``{"http": ..., "https": ...,
    "no_proxy": ...}``.  Lower-case names win over upper-case ones;
    ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` is set (a CGI
    process, where it comes from the client's ``Proxy:`` header, as
    urllib does); ``all_proxy`` is the fallback of both schemes."""

    def get(var: str) -> str | None:
        for key in (var, var.upper()):
            if key == "HTTP_PROXY" and "REQUEST_METHOD" in environ:
                continue
            value = environ.get(key)
            if value is not None and value.strip():
                return value
        return None

    def proxy(var: str) -> str | None:
        value = get(var)
        return None if value is None else check_proxy(f"environment variable {var}", value)

    fallback = proxy("all_proxy")
    http = proxy("http_proxy")
    https = proxy("https_proxy")
    no_proxy = get("no_proxy")
    return {
        "http": http if http is not None else fallback,
        "https": https if https is not None else fallback,
        "no_proxy": None if no_proxy is None else check_no_proxy("no_proxy", no_proxy),
    }


def proxy_fields(values: Mapping[str, object], environ: Mapping[str, str]) -> dict[str, object]:
    """The hac_config fields of the environment's proxies: none unless
    ``trust_env``; an explicit ``proxy``/``no_proxy`` wins over them."""
    if not values["trust_env"]:
        return {}
    env = env_proxies(environ)
    out: dict[str, object] = {}
    if values["proxy"] is None:
        out["proxy_http"], out["proxy_https"] = env["http"], env["https"]
    if values["no_proxy"] is None and env["no_proxy"] is not None:
        out["no_proxy"] = env["no_proxy"]
    return out


__all__ = [
    "PROXY_SCHEMES",
    "check_authmethod",
    "check_bool",
    "check_ca_blob",
    "check_connect_timeout",
    "check_connect_to",
    "check_dns_cache_timeout",
    "check_no_proxy",
    "check_pinned_pubkey",
    "check_proxy",
    "check_resolve",
    "check_user_agent",
    "env_proxies",
    "proxy_fields",
    "query_connect_to",
    "query_resolve",
    "redact_url",
]
