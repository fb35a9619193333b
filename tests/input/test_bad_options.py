"""Bad values of the (5.x) options (keep-alive, auth, redirects, HTTP
version) are refused with InvalidOption before anything is sent."""

from __future__ import annotations

import pytest

import http_async_client as hac
from support.servers import HTTPTestServer


# the (5.x) module parameters (api/test_params.py: NEW_PARAMS)
@pytest.mark.parametrize(
    "name",
    ["authmethod", "curl_follow_redirect", "max_redirects", "tcp_ka_idle", "tcp_ka_interval", "tcp_keepalive"],
)
def test_new_param_negative_is_invalid(name: str) -> None:
    """A negative value is refused with InvalidOption."""
    with pytest.raises(hac.InvalidOption):
        hac.Client(**{name: -1})


@pytest.mark.parametrize(
    "options",
    [
        {"ka_idle": -1},
        {"ka_interval": -5},
        {"authmethod": -1},
        {"max_redirects": -1},
        {"keepalive": -1},
        {"follow_redirect": -1},
        {"http_version": 3},
        {"http_version": -1},
    ],
)
def test_per_query_bad_values(client: hac.Client, http_server: HTTPTestServer, options: dict[str, int]) -> None:
    """Bad per-query values raise before anything is sent."""
    before = client.stats()["requests"]
    with pytest.raises(hac.InvalidOption):
        client.query(f"{http_server.url}/echo", **options)
    assert client.stats()["requests"] == before


@pytest.mark.parametrize(
    "key, value",
    [("ka-idle", -1), ("ka-interval", -1), ("tcp_ka_idle", -1), ("http_version", 7), ("authmethod", -2)],
)
def test_http_req_bad_values(client: hac.Client, key: str, value: int) -> None:
    """Bad http_req values raise InvalidOption at assignment."""
    with pytest.raises(hac.InvalidOption):
        client.http_req[key] = value
