"""Fixtures of the resilience tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.scripted import ScriptedServer


@pytest.fixture
def servers() -> Iterator[list[ScriptedServer]]:
    """Scripted servers a test appends to; all stopped at teardown."""
    made: list[ScriptedServer] = []
    yield made
    for s in made:
        s.stop()
