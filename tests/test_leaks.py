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

HERE = Path(__file__).resolve().parent


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
        urls = [base + "/echo", "http://127.0.0.1:9/", base + "/delay/600", base + "/bytes/5000"]
        hs = [c.query(urls[i % 4], b"x" * (i % 7), headers=["X-I: %d" % i]) for i in range(400)]
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
            str(HERE / "leak_scenario.py"),
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
