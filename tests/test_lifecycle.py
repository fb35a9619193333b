"""Lifecycle: interpreter exit and fork with live clients (subprocesses)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time


def run_py(code: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_exit_with_requests_in_flight(http_server) -> None:
    """1,000 slow requests in flight at exit: no hang, no crash."""
    code = f"""
        import http_async_client as hac
        c = hac.Client(connection_timeout=20000)
        hs = [c.query("{http_server.url}/delay/3000") for _ in range(300)]
        d = hac.Client(workers=2, connection_timeout=20000)
        hs += [d.query("http://127.0.0.1:9/") for _ in range(700)]
        print("leaving")
    """
    t0 = time.monotonic()
    result = run_py(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "leaving"
    assert time.monotonic() - t0 < 5


def test_fork_child_gets_clear_error_parent_unaffected(http_server) -> None:
    code = f"""
        import os, http_async_client as hac
        url = "{http_server.url}/echo"
        c = hac.Client()
        assert c.query(url).result(5).status == 200
        pid = os.fork()
        if pid == 0:
            try:
                c.query(url)
                os._exit(3)
            except hac.ClientClosed as exc:
                assert "after fork" in str(exc), exc
            assert c.http_async_query(url, None) == -1
            fresh = hac.Client()
            r = fresh.query(url).result(5)
            fresh.close()
            os._exit(0 if r.status == 200 else 4)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert c.query(url).result(5).status == 200
        assert c.stats()["replies"] == 2
        c.close()
        print("ok")
    """
    result = run_py(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
