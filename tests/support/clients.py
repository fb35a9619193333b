"""Types of the client fixtures of tests/conftest.py, for annotations:
``def test_x(fetch: Fetch, make_client: MakeClient) -> None``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import http_async_client as hac

__all__ = ["Fetch", "MakeClient"]

MakeClient = Callable[..., hac.Client]


class Fetch(Protocol):
    """``fetch(url, *args, client=None, wait=10.0, **options) -> Reply``."""

    def __call__(
        self, url: Any, *args: Any, client: hac.Client | None = None, wait: float = ...,
        **options: Any,
    ) -> hac.Reply: ...
