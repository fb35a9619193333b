"""A destination of a set black-holes on the namespace rig while the other
stays healthy (issues #15 and #17): the set marks it down and requests
succeed on the other, none lost beyond those already in flight to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import http_async_client as hac
from support.faultrun import Baseline
from support.faults import Faults
from support.netns import ServerHost
from support.nsservers import H1Server

pytestmark = pytest.mark.netns

DEADLINE_MS = 800
WINDOW = 10


@pytest.fixture
def baseline() -> Iterator[Baseline]:
    b = Baseline()
    yield b
    b.check()


@pytest.mark.parametrize("retries", [0, 1])
def test_black_holed_destination_is_marked_down(tmp_path: Path, baseline: Baseline,
                                                retries: int) -> None:
    with ServerHost() as ha, ServerHost() as hb:
        faults = Faults(ha)
        try:
            sa, sb = H1Server(ha, tmp_path), H1Server(hb, tmp_path)
            sa.start()
            sb.start()
            with hac.Client(connection_timeout=DEADLINE_MS, connect_timeout=300,
                            retries=retries, retry_backoff=1) as c:
                c.destinations("pair", [sa.url, sb.url], max_failures=2, down_for=60)
                for _ in range(20):
                    assert c.query("dest://pair/get/warm").result().ok
                with faults.blackhole(sa.port):
                    replies = []
                    for i in range(0, 300, WINDOW):
                        hs = [c.query(f"dest://pair/get/{j}") for j in range(i, i + WINDOW)]
                        replies += [h.result() for h in hs]
                    a = c.destination_state("pair")[0]
                failed = [r for r in replies if not r.ok]
                assert len(replies) == 300
                assert a["state"] == "down", a
                # only requests sent to it before it was marked can fail: the
                # two that marked it and the others of their window
                assert a["requests"] - 10 <= WINDOW + 2, a
                assert all(r.timed_out for r in failed), [r.err for r in failed][:3]
                if retries:
                    # a black hole eats the whole deadline: no time to retry
                    assert len(failed) <= WINDOW + 2
                else:
                    assert 2 <= len(failed) <= WINDOW + 2, len(failed)
                assert sum(r.ok for r in replies) >= 300 - WINDOW - 2
                st = c.stats()
                assert st["requests"] == st["replies"] + st["errors"] + st["timeouts"]
                assert st["inflight"] == 0
        finally:
            faults.close()
