"""A query's wire form: the blob ``hac_submit`` reads (layout in _wire)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping, Union

from ._base import Route, RouteArg
from ._exceptions import InvalidOptionType
from ._ffi import lib
from ._nextquery import NextQuery
from ._optable import QUERY_OPTS, encode_opt
from ._validate import (
    HeadersArg,
    _url_cache,
    check_method,
    check_timeout,
    check_url,
    headers_lines,
    to_body,
)
from ._wire import METHOD_CODES, REQHDR

# an item of query_many(): a URL, (url, post_data), or query()'s arguments
QueryItem = Union[str, "tuple[str, str | bytes | None]", Mapping[str, Any]]

_M_POST = lib.HAC_M_POST
_M_GET = lib.HAC_M_GET
_F_BODY = lib.HAC_F_BODY
_pack = REQHDR.pack


def encode_items(
    items: Iterable[QueryItem],
    ids: Iterator[int],
    fn0: Route | None,
    resolve: Callable[[RouteArg], Route | None],
) -> tuple[list[bytes], list[tuple[int, str, Route | None, Any]]]:
    """query_many()'s items as blob parts, and what the client keeps of
    each (id, URL, route, xdata); a bad item raises before anything is
    returned, so nothing of the batch is sent."""
    cache_get = _url_cache.get
    parts: list[bytes] = []
    made: list[tuple[int, str, Route | None, Any]] = []
    add_part = parts.append
    add_made = made.append
    for item in items:
        rid = next(ids)
        if type(item) is str:
            url_b = cache_get(item) or check_url(item)
            add_part(_pack(rid, 0, _M_GET, 0, len(url_b), 0, 0, 0))
            add_part(url_b)
            add_made((rid, item, fn0, None))
            continue
        if isinstance(item, tuple):
            if len(item) != 2:
                raise InvalidOptionType("a query_many() item tuple is (url, post_data)")
            url, post_data = item
            url_b = (type(url) is str and cache_get(url)) or check_url(url)
            if post_data is None:
                add_part(_pack(rid, 0, _M_GET, 0, len(url_b), 0, 0, 0))
                add_part(url_b)
            else:
                body_b = post_data if type(post_data) is bytes else to_body(post_data)
                add_part(_pack(rid, 0, _M_POST, _F_BODY, len(url_b), len(body_b), 0, 0))
                add_part(url_b)
                add_part(body_b)
            add_made((rid, url if isinstance(url, str) else url_b.decode(), fn0, None))
            continue
        if not isinstance(item, Mapping):
            raise InvalidOptionType(
                "a query_many() item is a URL, a (url, post_data) pair or a mapping, "
                f"not {type(item).__name__}"
            )
        kw: dict[str, Any] = dict(item)
        try:
            url = kw.pop("url")
        except KeyError:
            raise InvalidOptionType("a query_many() mapping needs a 'url'") from None
        post_data = kw.pop("post_data", None)
        fn = resolve(kw.pop("route")) if "route" in kw else fn0
        method, headers, timeout, xdata, opts = split_options(
            kw, "query_many() got an unexpected key")
        url_b = (type(url) is str and cache_get(url)) or check_url(url)
        add_part(encode(rid, url_b, None, post_data, method, headers, timeout, opts))
        add_made((rid, url if isinstance(url, str) else url_b.decode(), fn, xdata))
    return parts, made


def split_options(
    kw: dict[str, Any], unknown: str
) -> tuple[Any, Any, Any, Any, dict[str, object] | None]:
    """(method, headers, timeout, xdata, per-query options) out of a query's
    keywords; ``unknown`` starts the TypeError for a name that is none."""
    method = kw.pop("method", None)
    headers = kw.pop("headers", None)
    timeout = kw.pop("timeout", None)
    xdata = kw.pop("xdata", None)
    opts: dict[str, object] | None = None
    for name, value in kw.items():
        if name not in QUERY_OPTS:
            raise TypeError(f"{unknown} {name!r}")
        if value is not None:
            if opts is None:
                opts = {}
            opts[name] = value
    return method, headers, timeout, xdata, opts


def encode(
    rid: int,
    url_b: bytes,
    state: NextQuery | None,
    post_data: str | bytes | None,
    method: str | None,
    headers: HeadersArg,
    timeout: int | None,
    opts: dict[str, object] | None,
) -> bytes:
    """The wire form of one query with options of its own (or the thread's
    next-query state)."""
    if post_data is not None:
        body: bytes | None = to_body(post_data)
    else:
        body = state.body if state is not None else None
    if method is not None:
        mcode = METHOD_CODES[check_method(method)]
    elif state is not None and state.method is not None:
        mcode = state.method
    else:
        mcode = _M_POST if body is not None else _M_GET
    tmo = 0
    if timeout is not None:
        tmo = check_timeout("timeout", timeout)
    elif state is not None and state.timeout is not None:
        tmo = state.timeout
    hdrs = headers_lines(headers) if headers is not None else []
    opt_b = b""
    if state is not None:
        if state.headers:
            hdrs = state.headers + hdrs
        if state.opts or opts:
            entries = dict(state.opts)
            if opts:
                for name, value in opts.items():
                    k, entry = encode_opt(name, value)
                    entries[k] = entry
            opt_b = b"".join(entries.values())
    elif opts:
        opt_b = b"".join(encode_opt(n, v)[1] for n, v in opts.items())
    hdr_b = b"\0".join(hdrs) + b"\0" if hdrs else b""
    if body is None:
        body, flags = b"", 0
    else:
        flags = _F_BODY
    return b"".join(
        (
            _pack(rid, tmo, mcode, flags, len(url_b), len(body), len(hdr_b), len(opt_b)),
            url_b,
            body,
            hdr_b,
            opt_b,
        )
    )
