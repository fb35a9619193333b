"""Fixtures of the bad-input tests (see support.refusals)."""

from __future__ import annotations

import pytest

from support.refusals import answer
from support.servers import RawServer, RawServerFactory


@pytest.fixture
def sink(raw_server_factory: RawServerFactory) -> RawServer:
    """A fresh server that records each request head and answers 200, close."""
    return raw_server_factory(answer)
