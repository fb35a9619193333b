"""The option table is the one place options are declared: everything else
is derived from it, and the static declarations for type checkers match it."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import http_async_client as hac
from http_async_client import _optable as t
from http_async_client._optdocs import render_api


def test_type_declarations_match_the_table() -> None:
    """QueryOptions/ClientParams (for type checkers) list exactly the
    table's query and client names."""
    query_names = {r.query for r in t.QUERY_ROWS}
    spellings = {a for a in t.ALIASES if a.isidentifier()}
    assert set(t.QueryOptions.__annotations__) == query_names | set(t.REQUEST_KEYWORDS) | spellings
    assert set(t.ClientParams.__annotations__) == {r.client for r in t.CLIENT_ROWS}


def test_client_params_defaults_and_attributes_come_from_the_table() -> None:
    with hac.Client() as client:
        assert dict(client.params) == dict(t.CLIENT_DEFAULTS)
        for name in t.ATTRIBUTES:
            assert getattr(client, name) == client.params[name]
        # the seed's per-query functions keep their names on the client
        assert callable(client.tls_verify_host) and callable(client.tls_verify_peer)


def test_every_query_row_is_a_query_keyword_and_validated() -> None:
    with hac.Client() as client:
        for name in t.QUERY_OPTS:
            with pytest.raises((hac.InvalidOption, hac.InvalidOptionType)):
                client.query("http://127.0.0.1:9/", **{name: object()})  # type: ignore[misc]
        with pytest.raises(TypeError, match="no_such_option"):
            client.query("http://127.0.0.1:9/", no_such_option=1)  # type: ignore[call-arg]
    assert "http_version" in (inspect.getdoc(hac.Client.query) or "")


def test_http_req_keys_come_from_the_table() -> None:
    with hac.Client() as client:
        keys = set(client.http_req.keys())
    assert keys >= {r.query for r in t.QUERY_ROWS if r.http_req}
    assert keys >= {a for r in t.QUERY_ROWS for a in r.aliases}
    assert not keys & {"tls_verify_host", "tls_verify_peer", "max_redirects"}


def test_unknown_client_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="bogus"):
        hac.Client(bogus=1)  # type: ignore[call-arg]


def _repo_file(rel: str) -> Path:
    for parent in Path(__file__).resolve().parents:
        if (parent / rel).is_file():
            return parent / rel
    raise FileNotFoundError(rel)


def test_docs_option_tables_are_generated_from_the_table() -> None:
    """docs/api.md's option tables are what `python tools/gen_api_tables.py`
    writes from the table (run it after changing a row)."""
    text = _repo_file("docs/api.md").read_text(encoding="utf-8")
    assert render_api(text) == text, "run: python tools/gen_api_tables.py"
    for r in t.ROWS:
        assert f"`{r.query or r.client}`" in text
