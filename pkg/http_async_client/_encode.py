"""A query's wire form: the blob ``hac_submit`` reads (layout in _wire)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping, Union

from ._base import Route, RouteArg
from ._bodies import (
    FORM_ENTRY,
    BodyArg,
    Extras,
    encode_form,
    entries as file_entries,
    is_memory_body,
    plan_body,
    plan_output,
)
from ._exceptions import InvalidOption, InvalidOptionType
from ._ffi import lib
from ._nextquery import NextQuery
from ._optable import ALIASES, QUERY_OPTS, encode_opt
from ._validate import (
    HeadersArg,
    _url_cache,
    check_flag,
    check_header,
    check_method,
    check_timeout,
    check_url,
    headers_lines,
    to_body,
)
from ._wire import METHOD_CODES, REQHDR

# an item of query_many(): a URL, (url, post_data), or query()'s arguments
QueryItem = Union[str, "tuple[str, Any]", Mapping[str, Any]]

_M_POST = lib.HAC_M_POST
_M_GET = lib.HAC_M_GET
_F_BODY = lib.HAC_F_BODY
_F_FILES = lib.HAC_F_FILES
_pack = REQHDR.pack
# query()'s keywords encode() takes out of the options (see _bodies)
_FILE_KEYWORDS = ("output", "form")


def encode_items(
    items: Iterable[QueryItem],
    ids: Iterator[int],
    fn0: Route | None,
    resolve: Callable[[RouteArg], Route | None],
    extras: Extras,
) -> tuple[list[bytes], list[tuple[int, str, Route | None, Any]]]:
    """query_many()'s items as blob parts, and what the client keeps of
    each (id, URL, route, xdata); a bad item raises before anything is
    returned, so nothing of the batch is sent (and the fds made for the
    items before it are closed)."""
    parts: list[bytes] = []
    try:
        return _encode_items(items, ids, fn0, resolve, extras, parts)
    except BaseException:
        blob = b"".join(parts)
        lib.hac_discard(blob, len(blob))
        extras.abandon()
        raise


def _encode_items(
    items: Iterable[QueryItem],
    ids: Iterator[int],
    fn0: Route | None,
    resolve: Callable[[RouteArg], Route | None],
    extras: Extras,
    parts: list[bytes],
) -> tuple[list[bytes], list[tuple[int, str, Route | None, Any]]]:
    cache_get = _url_cache.get
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
            elif not is_memory_body(post_data):  # a Path, a file, an iterator
                add_part(encode(rid, url_b, None, post_data, None, None, None, None, extras))
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
        method, headers, timeout, xdata, opts, body = split_options(
            kw, "query_many() got an unexpected key")
        post_data = body_of(post_data, body)
        url_b = (type(url) is str and cache_get(url)) or check_url(url)
        add_part(encode(rid, url_b, None, post_data, method, headers, timeout, opts, extras))
        add_made((rid, url if isinstance(url, str) else url_b.decode(), fn, xdata))
    return parts, made


def split_options(
    kw: dict[str, Any], unknown: str
) -> tuple[Any, Any, Any, Any, dict[str, object] | None, Any]:
    """(method, headers, timeout, xdata, per-query options, body) out of a
    query's keywords; ``unknown`` starts the TypeError for a name that is
    none.  The seed's http_req keys are keywords too: ``hdr`` (one header
    line or a list, appended after ``headers``), ``body``, ``suspend``
    (checked, and nothing else: a query never blocks), the Kamailio
    spellings of the options."""
    method = kw.pop("method", None)
    headers = kw.pop("headers", None)
    timeout = kw.pop("timeout", None)
    xdata = kw.pop("xdata", None)
    body = kw.pop("body", None)
    opts: dict[str, object] | None = None
    for name in _FILE_KEYWORDS:  # encode() takes them out again
        value = kw.pop(name, None)
        if value is not None:
            if opts is None:
                opts = {}
            opts[name] = value
    if "hdr" in kw:
        hdr = kw.pop("hdr")
        if hdr is not None:
            lines = [check_header(hdr)] if isinstance(hdr, (str, bytes)) else [
                check_header(h) for h in _lines("hdr", hdr)]
            headers = [*headers_lines(headers), *lines]
    if "suspend" in kw:
        suspend = kw.pop("suspend")
        if suspend is not None:
            check_flag("suspend", suspend)
    for name, value in kw.items():
        name = ALIASES.get(name, name)
        if name not in QUERY_OPTS:
            raise TypeError(f"{unknown} {name!r}")
        if value is not None:
            if opts is None:
                opts = {}
            opts[name] = value
    return method, headers, timeout, xdata, opts, body


def _lines(name: str, value: object) -> Iterable[object]:
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return value
    raise InvalidOptionType(
        f"{name} must be a header line or a list of them, not {type(value).__name__}"
    )


def body_of(post_data: Any, body: Any) -> Any:
    """``post_data`` or the ``body`` keyword (the seed's http_req key)."""
    if body is None:
        return post_data
    if post_data is not None:
        raise InvalidOption("give the request body as post_data or body=, not both")
    return body


def encode(
    rid: int,
    url_b: bytes,
    state: NextQuery | None,
    post_data: BodyArg,
    method: str | None,
    headers: HeadersArg,
    timeout: int | None,
    opts: dict[str, object] | None,
    extras: Extras | None = None,
    extra_opt: bytes = b"",
    timeout_ms: int = 0,
) -> bytes:
    """The wire form of one query with options of its own (or the thread's
    next-query state).  A streamed body, ``output`` or ``form`` needs
    ``extras``: the fds are made last, once everything else is checked.
    ``extra_opt``: option entries made by the client itself (a stream's),
    ``timeout_ms``: a deadline code that overrides the others
    (HAC_NO_DEADLINE)."""
    streamed = output = None
    form: bytes | None = None
    if opts and ("output" in opts or "form" in opts):
        opts = dict(opts)
        if opts.get("output") is not None:
            output = plan_output(opts.pop("output"))
        if opts.get("form") is not None:
            if post_data is not None or (state is not None and state.body is not None):
                raise InvalidOption("form= is the request body: give no post_data or body with it")
            form = encode_form(opts.pop("form"))
        opts.pop("output", None)
        opts.pop("form", None)
    if form is not None:
        body: bytes | None = form
    elif post_data is None:
        body = state.body if state is not None else None
    elif is_memory_body(post_data):
        body = to_body(post_data)
    else:
        streamed = plan_body(post_data)
        body = b""
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
    if extra_opt:
        opt_b += extra_opt
    if timeout_ms:
        tmo = timeout_ms
    hdr_b = b"\0".join(hdrs) + b"\0" if hdrs else b""
    if body is None:
        body, flags = b"", 0
    else:
        flags = _F_BODY
    if streamed is not None or output is not None or form is not None:
        if extras is None:  # pragma: no cover - every caller passes one
            raise InvalidOptionType("this call cannot stream bodies or write files")
        flags |= _F_FILES
        opt_b += file_entries(streamed, output, rid, extras)
        if form is not None:
            opt_b += FORM_ENTRY
    return b"".join(
        (
            _pack(rid, tmo, mcode, flags, len(url_b), len(body), len(hdr_b), len(opt_b)),
            url_b,
            body,
            hdr_b,
            opt_b,
        )
    )
