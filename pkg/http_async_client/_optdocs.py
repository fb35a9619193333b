"""The option tables of docs/api.md, made from the option table's rows
(``python tools/gen_api_tables.py`` writes them between the file's
``<!-- BEGIN options:NAME -->`` markers)."""

from __future__ import annotations

from typing import Any

from ._optable import CLIENT_ROWS, QUERY_ROWS, REQUEST_KEYWORDS

_MB = 1024 * 1024

_SPECIAL_REQ_DOCS = (
    ("all", "", "`= None` resets every key to the client's defaults"),
    ("hdr", "", "appends a header (as `http_append_header`); `None` drops the appended ones"),
    ("method", "", "as `http_set_method`"),
    ("timeout", "", "as `http_set_timeout` (ms)"),
    ("suspend", "", "as `http_async_suspend` (a `query()` keyword too, where it changes "
     "nothing: `query()` never blocks)"),
    ("body", "5.x", "request body of the next query (as `post_data`; POST unless a "
     "method is set)"),
)


def _default_text(value: Any) -> str:
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, int) and value >= _MB and value % _MB == 0:
        return f"{value // _MB} MiB"
    return str(value)


def api_tables() -> dict[str, str]:
    """The option tables of docs/api.md (between its ``<!-- BEGIN
    options:NAME -->`` markers), made from the rows."""
    client = ["| seed parameter | Python | default | notes |", "|---|---|---|---|"]
    for r in CLIENT_ROWS:
        name = f"`{r.client}`" + (f" ({r.since})" if r.since else "")
        python = f"`.{r.client}`" if r.attribute else f'`params["{r.client}"]`'
        client.append(f"| {name} | {python} | {_default_text(r.default)} | {r.doc} |")
    req = ["| key | effect |", "|---|---|"]
    for key, since, doc in _SPECIAL_REQ_DOCS:
        req.append(f"| `{key}`{f' ({since})' if since else ''} | {doc} |")
    for r in QUERY_ROWS:
        if not r.http_req:
            continue
        since = f" ({r.since})" if r.since not in ("", "ours") else ""
        also = ""
        if r.aliases:
            also = "; also spelled " + ", ".join(f"`{a}`" for a in r.aliases)
        req.append(f"| `{r.query}`{since} | {r.doc}{also} |")
    keywords = ", ".join(f"{k}=" for k in (*REQUEST_KEYWORDS, *(r.query for r in QUERY_ROWS)))
    query = [
        f"- `client.query(url, post_data=None, route=None, *, stream=False, {keywords})` → "
        "`QueryHandle` (`Stream` with `stream=True`, see below); never blocks. `headers` is "
        'a mapping, or an iterable of `"Name: value"` strings or `(name, value)` pairs; '
        "`post_data`/`body` may also be a `pathlib.Path`, an open binary file or an "
        "iterable of `bytes`, and `output`/`form` write the response to a file and send a "
        "multipart form (see [Bodies that never pass through Python]"
        "(#bodies-that-never-pass-through-python)); every other keyword is the per-query "
        "option of the same name (the module parameter's value when omitted or None):",
        "",
        "  | keyword | module parameter | notes |",
        "  |---|---|---|",
    ]
    for r in QUERY_ROWS:
        param = f"`{r.client}`" if r.client else "—"
        query.append(f"  | `{r.query}` | {param} | {r.doc} |")
    return {"client": "\n".join(client), "http_req": "\n".join(req), "query": "\n".join(query)}


def render_api(text: str) -> str:
    """``text`` (docs/api.md) with every generated table replaced."""
    for name, table in api_tables().items():
        begin = f"<!-- BEGIN options:{name} -->"
        end = f"<!-- END options:{name} -->"
        head, sep, rest = text.partition(begin)
        _, sep2, tail = rest.partition(end)
        if not sep or not sep2:
            raise ValueError(f"docs/api.md lacks the markers of options:{name}")
        text = f"{head}{begin}\n{table}\n{end}{tail}"
    return text


__all__ = ["api_tables", "render_api"]
