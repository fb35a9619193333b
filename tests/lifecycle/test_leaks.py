"""Nothing leaks: the accounted allocator returns to its baseline, and
valgrind finds no definitely-lost block allocated by the core, libcurl or
libev over a mixed scenario."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import support
from support.clients import MakeClient

SCENARIO = Path(support.__file__).with_name("leak_scenario.py")


def test_accounted_memory_returns_to_baseline(http_server) -> None:
    """shm allocator: successes, errors, timeouts, cancels and a close with
    requests in flight leave not one byte behind once the client is gone."""
    code = textwrap.dedent(
        f"""
        import gc, http_async_client as hac
        base = "{http_server.url}"
        keep = hac.Client()              # holds libcurl's global state
        before = keep.stats()["mem_in_use"]
        c = hac.Client(workers=2, connection_timeout=300)
        urls = [base + "/echo", "http://127.0.0.1:9/", base + "/delay/600", base + "/bytes/5000",
                base + "/large/70000"]
        hs = [c.query(urls[i % 5], b"x" * (i % 7), headers=["X-I: %d" % i]) for i in range(500)]
        hs[5].cancel()
        for h in hs:
            h.result(timeout=10)
        for _ in range(50):
            c.query(base + "/delay/2000", timeout=5000)
        c.close()
        del c, hs, h
        gc.collect()
        after = keep.stats()["mem_in_use"]
        print(before, after)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    assert before > 0
    assert after == before, f"{after - before} bytes still allocated"


_OURS = re.compile(r"\b(hac_\w+|acc_\w+|curl_\w+|Curl_\w+|ev_\w+)\b")


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
def test_valgrind_no_definite_leaks(tmp_path: Path) -> None:
    """10,000 mixed requests under memcheck: no definitely-lost block whose
    allocation stack passes through the core, libcurl or libev (cffi's own
    module-init blocks are not ours and are reported separately)."""
    log = tmp_path / "vg.log"
    env = dict(os.environ, PYTHONMALLOC="malloc")
    result = subprocess.run(
        [
            "valgrind",
            "--leak-check=full",
            "--show-leak-kinds=definite",
            "--num-callers=40",
            f"--log-file={log}",
            sys.executable,
            str(SCENARIO),
            "10000",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "scenario done" in result.stdout
    text = log.read_text()
    assert "LEAK SUMMARY" in text or "no leaks are possible" in text, text[-2000:]
    records = [r for r in re.split(r"==\d+== \n", text) if "definitely lost in" in r]
    ours = [r for r in records if _OURS.search(r)]
    assert not ours, "\n\n".join(ours)


def test_large_reply_outlives_its_client(http_server) -> None:
    """A large reply stays in C until read (see _reply.HOLD_MIN): it reads
    correctly after its client is closed and collected, and dropping it
    gives every byte back, the client's buffer cache included."""
    code = textwrap.dedent(
        f"""
        import gc, http_async_client as hac
        from http_async_client._reply import HOLD_MIN
        keep = hac.Client()
        before = keep.stats()["mem_in_use"]
        c = hac.Client()
        hs = [c.query("{http_server.url}/large/%d" % (HOLD_MIN * 4 + i)) for i in range(40)]
        replies = [h.result(timeout=10) for h in hs]
        held = keep.stats()["mem_in_use"] - before
        c.close()
        del c, hs
        gc.collect()
        r = replies[7]
        n = HOLD_MIN * 4 + 7
        assert r.ok and r.status == 200 and r.bs == n and r.ml > n
        assert r.body == bytes(i % 256 for i in range(n))
        assert r.raw.endswith(r.body) and r.raw.startswith(b"HTTP/1.1 200")
        assert r.reason == "OK" and r.hdr("content-length") == str(n)
        still = keep.stats()["mem_in_use"] - before
        del replies, r
        gc.collect()
        print(held, still, keep.stats()["mem_in_use"] - before)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    held, still, after = map(int, out.stdout.split())
    assert held > 40 * 4 * 16 * 1024  # the bodies are in C while the replies live
    # ... even after the client is gone (but for the one whose .raw was
    # read: that copy replaces its C buffer)
    assert still > 39 * 4 * 16 * 1024
    assert after == 0, f"{after} bytes still allocated"


def test_held_reply_dropped_in_forked_child(http_server) -> None:
    """A child forked while a large reply is held can read it and drop it
    (no lock of the parent's is taken there), then use a new client."""
    code = textwrap.dedent(
        f"""
        import gc, os, http_async_client as hac
        c = hac.Client()
        r = c.query("{http_server.url}/large/100000").result(timeout=10)
        pid = os.fork()
        if pid == 0:
            ok = r.bs == 100000 and len(r.body) == 100000
            del r
            gc.collect()
            with hac.Client() as c2:
                r2 = c2.query("{http_server.url}/large/100000").result(timeout=10)
                ok = ok and len(r2.body) == 100000
                del r2
                gc.collect()
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert len(r.body) == 100000
        c.close()
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_buffer_cache_is_bounded(http_server, make_client: MakeClient) -> None:
    """Reusing large response buffers keeps at most the cache's bound
    (16 MiB) once the replies are gone, and nothing after close()."""
    import gc

    import http_async_client as hac

    keep = make_client()
    base = keep.stats()["mem_in_use"]
    with hac.Client() as c:
        # the same 100 connections and easy handles first, small replies
        hs = [c.query(f"{http_server.url}/echo") for _ in range(100)]
        assert all(h.result(timeout=20).ok for h in hs)
        del hs
        gc.collect()
        warm = keep.stats()["mem_in_use"]
        for _ in range(3):
            hs = [c.query(f"{http_server.url}/large/300000") for _ in range(100)]
            assert all(len(h.result(timeout=20).body) == 300000 for h in hs)
            del hs
        gc.collect()
        cached = keep.stats()["mem_in_use"] - warm
        assert 0 < cached <= 16 * 1024 * 1024 + 128 * 1024, cached
    gc.collect()
    assert keep.stats()["mem_in_use"] - base <= 64 * 1024
