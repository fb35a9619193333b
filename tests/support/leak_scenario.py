"""A mixed scenario for the leak check (run under valgrind by test_leaks).

Successes, HTTP errors, refused connections, deadline misses, cancels and a
close() with requests in flight, against the package's own loopback server
(a child process, not under valgrind).
"""

from __future__ import annotations

import subprocess
import sys

import http_async_client as hac


def main(total: int) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "http_async_client._loopback", "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    base = f"http://127.0.0.1:{int(server.stdout.readline())}"
    try:
        kinds = [
            f"{base}/",
            f"{base}/bytes/3000",
            "http://127.0.0.1:9/",
            f"{base}/delay/400",
        ]
        with hac.Client(workers=2, connection_timeout=200) as client:
            done = 0
            while done < total:
                batch = [
                    client.query(kinds[i % len(kinds)], b"x" * (i % 3), headers=["X-N: %d" % i])
                    for i in range(min(200, total - done))
                ]
                batch[0].cancel()
                for h in batch:
                    h.result(timeout=30)
                done += len(batch)
            stats = client.stats()
            assert stats["requests"] >= total - stats["cancelled"], stats
            # close with requests in flight
            for _ in range(100):
                client.query(f"{base}/delay/400", timeout=5000)
        print("scenario done", stats)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10000)
