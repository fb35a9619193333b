"""This process's open file descriptors (``/proc/self/fd``): how many, of
which kind, and a baseline to compare later counts with.

Kinds are ``"socket"``, ``"pipe"``, ``"anon_inode:[eventfd]"`` (and the
other anonymous inodes, whole), or the path of a file.
"""

from __future__ import annotations

import gc
import os
import time
from collections import Counter

__all__ = ["EVENTFD", "FdBaseline", "count", "kind_of", "kinds"]

EVENTFD = "anon_inode:[eventfd]"
SETTLE_S = 3.0  # default wait for fds to return to a baseline (some close asynchronously)


def count() -> int:
    """How many fds are open right now (the listing's own included)."""
    return len(os.listdir("/proc/self/fd"))


def kind_of(target: str) -> str:
    """The kind of an fd, from its ``/proc/self/fd`` link target."""
    if target.startswith(("socket:", "pipe:")):
        return target.split(":", 1)[0]
    return target  # anon_inode:[...] or a path


def kinds() -> Counter[str]:
    """How many fds of each kind are open right now."""
    out: Counter[str] = Counter()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listing's own fd, closed by now
            continue
        out[kind_of(target)] += 1
    return out


class FdBaseline:
    """The open fds at one moment (after a garbage collection when
    ``collect``), to compare later counts with.  Fewer fds later is fine:
    unrelated sockets (other tests' servers) may close meanwhile."""

    def __init__(self, collect: bool = False) -> None:
        if collect:
            gc.collect()
        self.total = count()
        self.kinds = kinds()

    def excess(self, kind: str | None = None) -> Counter[str]:
        """Kinds (or just ``kind``) with more fds open now than at the baseline."""
        extra = kinds() - self.kinds
        if kind is not None:
            extra = Counter({kind: extra[kind]}) - Counter()
        return extra

    def settle(self, kind: str | None = None, seconds: float = SETTLE_S) -> Counter[str]:
        """:meth:`excess`, polled for up to ``seconds`` until it is empty."""
        deadline = time.monotonic() + seconds
        extra = self.excess(kind)
        while extra and time.monotonic() < deadline:
            time.sleep(0.02)
            extra = self.excess(kind)
        return extra

    def settle_total(self, seconds: float = SETTLE_S) -> int:
        """:func:`count`, polled for up to ``seconds`` until it is back to
        the baseline's total or below."""
        deadline = time.monotonic() + seconds
        now = count()
        while now > self.total and time.monotonic() < deadline:
            time.sleep(0.02)
            now = count()
        return now

    def assert_back(self, kind: str | None = None, what: str = "", seconds: float = SETTLE_S) -> None:
        """Fail unless, within ``seconds``, no fd (of ``kind``) exceeds the baseline."""
        extra = self.settle(kind, seconds)
        if extra:
            raise AssertionError(f"fds still open {what}: {dict(extra)} beyond the baseline")
