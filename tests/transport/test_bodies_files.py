"""Bodies that never pass through Python (#14): responses the worker
writes to a file (``output=``), request bodies it reads from a file, an
open file or an iterator's pipe, multipart forms (``form=``), against the
loopback servers of support.bodyservers.

The 1 GiB download and the 512 MiB upload run in a child process so that
its peak RSS (VmHWM) measures the client alone; they dominate this
file's time (about 6 s and 4 s here, transfers of about 2 s and 1 s)."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import http_async_client as hac
from support.bodyservers import BodyServer, pattern_chunks, pattern_sha256
from support.fds import FdBaseline
from support.servers import HTTPTestServer, pattern_bytes

MiB = 1 << 20
GiB = 1 << 30
WAIT = 30.0


@pytest.fixture(scope="module")
def bodies() -> Iterator[BodyServer]:
    with BodyServer() as server:
        yield server
    assert not server.errors, list(server.errors)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def write_pattern(path: Path, size: int) -> str:
    with open(path, "wb") as f:
        for chunk in pattern_chunks(size):
            f.write(chunk)
    return pattern_sha256(size)


def leftovers(directory: Path) -> list[str]:
    """Temporary output files left in a directory (``.<name>.hac-XXXXXX``)."""
    return sorted(p.name for p in directory.iterdir() if ".hac-" in p.name)


def run_child(script: str, *args: str, timeout: float = 180) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


# The client in a child process: peak RSS before and after one transfer,
# the Python calls made while it ran (sys.setprofile) and the replies drained.
CHILD = """
    import json, os, sys, time
    from pathlib import Path
    import http_async_client as hac

    def status(key):
        with open("/proc/self/status") as f:
            return int(next(l for l in f if l.startswith(key)).split()[1]) * 1024

    def peak():
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over execve(), so a
        # child of pytest would start with pytest's peak (50+ MiB) as its own
        return status("VmHWM:")

    def now():  # VmRSS, for the record (the bound is on the peak)
        return status("VmRSS:")

    mode, url, path = sys.argv[1], sys.argv[2], sys.argv[3]
    with hac.Client(connection_timeout=120000) as client:
        # the first transfer of each kind pays for imports, handles, buffers
        warm = Path(path + ".warm")
        if mode == "download":
            client.query(url.rsplit("/", 1)[0] + "/65536", output=warm).result(30)
        else:
            warm.write_bytes(b"w" * 65536)
            client.query(url, warm).result(30)
        warm.unlink()
        drained = []
        real = client._drain_c
        def counting():
            got = real()
            drained.extend(got)
            return got
        client._drain_c = counting
        calls = 0
        def profile(frame, event, arg):
            global calls
            if event == "call":
                calls += 1
        before, rss0 = peak(), now()
        t0 = time.monotonic()
        sys.setprofile(profile)
        if mode == "download":
            reply = client.query(url, output=path).result(170)
        else:
            reply = client.query(url, Path(path), method="PUT").result(170)
        sys.setprofile(None)
        elapsed = time.monotonic() - t0
        after, rss1 = peak(), now()
    print(json.dumps({"rss0": rss0, "rss1": rss1, "ok": reply.ok, "err": reply.err, "status": reply.status, "bs": reply.bs,
                      "body": len(reply.body), "text": reply.text if mode == "upload" else "",
                      "output": reply.output, "before": before, "after": after,
                      "elapsed": elapsed, "calls": calls, "drained": len(drained)}))
"""


# ------------------------------------------------------------ output=


def test_1gib_download_to_file_in_constant_memory(bodies: BodyServer, tmp_path: Path) -> None:
    """1 GiB through output=: the file's sha256 is the pattern's, the
    client's peak RSS grows by less than 16 MiB, and no Python ran per
    chunk: the one reply is all that was drained, and the Python calls
    made during the whole transfer are a few dozen (libcurl's write
    callback ran some 16,000+ times)."""
    target = tmp_path / "big.bin"
    got = run_child(CHILD, "download", f"{bodies.url}/pattern/{GiB}", str(target))
    try:
        assert got["ok"] and got["status"] == 200, got
        assert got["bs"] == GiB and got["body"] == 0 and got["output"] == str(target)
        assert target.stat().st_size == GiB
        assert file_sha256(target) == pattern_sha256(GiB)
    finally:
        target.unlink(missing_ok=True)
    growth = got["after"] - got["before"]
    print(f"\n1 GiB output=: {got['elapsed']:.2f} s, peak RSS {got['before'] / MiB:.1f} -> "
          f"{got['after'] / MiB:.1f} MiB (+{growth / MiB:.2f}), RSS {got['rss0'] / MiB:.1f} -> "
          f"{got['rss1'] / MiB:.1f} MiB, Python calls {got['calls']}")
    assert growth < 16 * MiB, got
    assert got["drained"] == 1
    assert got["calls"] < 200, got
    assert leftovers(tmp_path) == []


def test_reset_halfway_leaves_no_file(client: hac.Client, bodies: BodyServer,
                                      tmp_path: Path) -> None:
    target = tmp_path / "cut.bin"
    reply = client.query(f"{bodies.url}/pattern/{100 * MiB}?reset={10 * MiB}",
                         output=target, timeout=int(WAIT * 1000)).result(WAIT)
    assert not reply.ok and reply.err
    assert reply.output == str(target)
    assert not target.exists() and leftovers(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_only_the_final_response_is_in_the_file(client: hac.Client, bodies: BodyServer,
                                                http_server: HTTPTestServer,
                                                tmp_path: Path) -> None:
    """Redirect hops have bodies of their own; the file holds the last one."""
    target = tmp_path / "final.bin"
    reply = client.query(f"{bodies.url}/redirect/{3 * MiB + 5}", output=target,
                         follow_redirect=1).result(WAIT)
    assert reply.ok and reply.status == 200 and reply.bs == 3 * MiB + 5
    assert file_sha256(target) == pattern_sha256(3 * MiB + 5)
    chain = client.query(f"{http_server.url}/redirect/3", output=target,
                         follow_redirect=1).result(WAIT)  # replaces the file
    assert chain.ok and target.read_bytes() == b"landed" and chain.bs == 6
    assert leftovers(tmp_path) == []


def test_output_replaces_a_file_and_keeps_headers(client: hac.Client,
                                                  http_server: HTTPTestServer,
                                                  tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    target.write_bytes(b"old contents, longer than the new body")
    reply = client.query(f"{http_server.url}/bytes/100", output=str(target)).result(WAIT)
    assert reply.ok and target.read_bytes() == pattern_bytes(100)
    assert reply.body == b"" and reply.bs == 100 and reply.output == str(target)
    assert reply.hdr("Content-Length") == "100" and reply.raw.startswith(b"HTTP/1.1 200")
    # any status writes the body, as curl -o does
    missing = client.query(f"{http_server.url}/nope", output=target).result(WAIT)
    assert missing.ok and missing.status == 404 and target.read_bytes() == b"not found"
    plain = client.query(f"{http_server.url}/bytes/10").result(WAIT)
    assert plain.output is None and plain.body == pattern_bytes(10)


def test_output_larger_than_max_body_size(make_client: Any, bodies: BodyServer,
                                          tmp_path: Path) -> None:
    client = make_client(connection_timeout=20000, max_body_size=1000)
    target = tmp_path / "big.bin"
    reply = client.query(f"{bodies.url}/pattern/{5 * MiB}", output=target).result(WAIT)
    assert reply.ok and reply.bs == 5 * MiB and file_sha256(target) == pattern_sha256(5 * MiB)
    capped = client.query(f"{bodies.url}/pattern/{5 * MiB}").result(WAIT)
    assert not capped.ok and "BODY_TOO_LARGE" in (capped.err or "")


def test_output_to_an_fd_and_a_file_object(client: hac.Client, http_server: HTTPTestServer,
                                           tmp_path: Path) -> None:
    """Written where the fd stands (no temporary file, no rename); the core
    closes its own copy (os.dup), the caller's stays open."""
    target = tmp_path / "fd.bin"
    assert client.query(f"{http_server.url}/bytes/1").result(WAIT).ok  # its connection
    baseline = FdBaseline()
    with open(target, "wb") as f:
        f.write(b"head:")  # still in Python's buffer: flushed first
        reply = client.query(f"{http_server.url}/bytes/10", output=f).result(WAIT)
        assert reply.ok and reply.output is f and reply.bs == 10
        f.write(b":tail")
    assert target.read_bytes() == b"head:" + pattern_bytes(10) + b":tail"
    fd = os.open(tmp_path / "raw.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        reply = client.query(f"{http_server.url}/bytes/7", output=fd).result(WAIT)
        assert reply.ok and reply.output == fd
        os.write(fd, b"!")
    finally:
        os.close(fd)
    assert (tmp_path / "raw.bin").read_bytes() == pattern_bytes(7) + b"!"
    baseline.assert_back(what="after output= to fds")
    assert leftovers(tmp_path) == []


def test_write_errors_fail_the_transfer(client: hac.Client, http_server: HTTPTestServer,
                                        tmp_path: Path) -> None:
    with open("/dev/full", "wb") as full:
        reply = client.query(f"{http_server.url}/bytes/100000", output=full).result(WAIT)
    assert not reply.ok
    assert reply.err and "OUTPUT_FAILED: cannot write" in reply.err
    assert "No space left on device" in reply.err and "curl error 23" in reply.err
    # a directory that exists but takes no file: the worker cannot create it
    reply = client.query(f"{http_server.url}/bytes/10", output="/proc/hac-test.bin").result(WAIT)
    assert not reply.ok and reply.err
    assert reply.err.startswith("OUTPUT_FAILED: cannot create a temporary file for "
                                "hac-test.bin in /proc: ")


def test_a_full_file_system_leaves_no_file(bodies: BodyServer, tmp_path: Path) -> None:
    """RLIMIT_FSIZE stands for a full disk (EFBIG) in a child process."""
    script = """
        import json, resource, signal, sys
        import http_async_client as hac
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        with hac.Client(connection_timeout=20000) as client:
            r = client.query(sys.argv[1], output=sys.argv[2]).result(30)
        print(json.dumps({"ok": r.ok, "err": r.err}))
    """
    got = run_child(script, f"{bodies.url}/pattern/{4 * MiB}", str(tmp_path / "big.bin"))
    assert not got["ok"] and "File too large" in got["err"], got
    assert got["err"].startswith(f"OUTPUT_FAILED: cannot write {tmp_path / 'big.bin'}: ")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ uploads


def test_512mib_upload_from_a_path_in_constant_memory(bodies: BodyServer,
                                                      tmp_path: Path) -> None:
    source = tmp_path / "up.bin"
    sha = write_pattern(source, 512 * MiB)
    try:
        got = run_child(CHILD, "upload", f"{bodies.url}/sink", str(source))
    finally:
        source.unlink()
    assert got["ok"] and got["status"] == 200, got
    answer = json.loads(got["text"])
    assert answer == {"length": 512 * MiB, "sha256": sha, "chunked": False}
    record = bodies.uploads[-1]
    assert record["method"] == "PUT" and ("Content-Length", str(512 * MiB)) in record["headers"]
    growth = got["after"] - got["before"]
    print(f"\n512 MiB upload from a Path: {got['elapsed']:.2f} s, peak RSS "
          f"{got['before'] / MiB:.1f} -> {got['after'] / MiB:.1f} MiB (+{growth / MiB:.2f}), "
          f"RSS {got['rss0'] / MiB:.1f} -> {got['rss1'] / MiB:.1f} MiB, Python calls {got['calls']}")
    assert growth < 32 * MiB, got
    assert got["drained"] == 1 and got["calls"] < 200, got


def test_upload_from_a_generator_is_chunked(client: hac.Client, bodies: BodyServer) -> None:
    closed = threading.Event()

    def chunks() -> Iterator[bytes]:
        try:
            yield b"first,"
            yield b""  # sends nothing (an empty frame would end the body)
            yield bytearray(b"second,")
            yield memoryview(b"x" * (3 * MiB))  # more than one frame and pipe
            for i in range(100):
                yield b"%d," % i
        finally:
            closed.set()

    expected = b"first,second," + b"x" * (3 * MiB) + b"".join(b"%d," % i for i in range(100))
    reply = client.query(f"{bodies.url}/sink", chunks()).result(WAIT)
    assert reply.ok and reply.status == 200, reply.err
    record = bodies.uploads[-1]
    assert record["chunked"] and record["method"] == "POST"
    assert ("Transfer-Encoding", "chunked") in record["headers"]
    assert record["body"] == expected
    assert closed.wait(5)
    lst = client.query(f"{bodies.url}/sink", [b"a", b"bc"], method="PUT").result(WAIT)
    assert lst.ok and bodies.uploads[-1]["body"] == b"abc"


def test_a_generator_that_raises_fails_the_transfer(client: hac.Client,
                                                    bodies: BodyServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"some bytes"
        raise ValueError("the source broke")

    reply = client.query(f"{bodies.url}/sink", chunks()).result(WAIT)
    assert not reply.ok and not reply.timed_out
    assert reply.err == ("UPLOAD_FAILED: the request body iterator raised ValueError: the "
                         "source broke (curl error 42)")
    bad = client.query(f"{bodies.url}/sink", iter([b"ok", "text"])).result(WAIT)  # type: ignore[list-item]
    assert not bad.ok and "yielded str, not bytes" in (bad.err or "")


def test_upload_from_an_open_file(client: hac.Client, bodies: BodyServer,
                                  tmp_path: Path) -> None:
    """From the file's position to its end; the caller's position stays."""
    source = tmp_path / "src.bin"
    source.write_bytes(pattern_bytes(300_000))
    with open(source, "rb") as f:
        f.read(1000)
        reply = client.query(f"{bodies.url}/sink", f).result(WAIT)
        assert reply.ok, reply.err
        assert f.tell() == 1000
    record = bodies.uploads[-1]
    assert record["body"] == pattern_bytes(300_000)[1000:] and not record["chunked"]
    r, w = os.pipe()  # a stream: sent chunked as it comes
    with open(r, "rb") as reader:
        h = client.query(f"{bodies.url}/sink", reader)
        for part in (b"piped ", b"bytes"):
            os.write(w, part)
            time.sleep(0.05)
        os.close(w)
        assert h.result(WAIT).ok
    assert bodies.uploads[-1]["body"] == b"piped bytes" and bodies.uploads[-1]["chunked"]
    memory = client.query(f"{bodies.url}/sink", io.BytesIO(b"in memory")).result(WAIT)
    assert memory.ok and bodies.uploads[-1]["body"] == b"in memory"


def test_a_307_rewinds_a_file_but_not_a_generator(client: hac.Client, bodies: BodyServer,
                                                  tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(pattern_bytes(200_000))
    reply = client.query(f"{bodies.url}/sink?redirect=307", source,
                         follow_redirect=1).result(WAIT)
    assert reply.ok and reply.status == 200
    first, second = bodies.uploads[-2:]
    assert first["body"] == second["body"] == pattern_bytes(200_000)
    gen = client.query(f"{bodies.url}/sink?redirect=307", iter([b"once"]),
                       follow_redirect=1).result(WAIT)
    assert not gen.ok and gen.curl_code == 65  # CURLE_SEND_FAIL_REWIND


# ------------------------------------------------------------ form=


def parse_form(record: dict[str, Any]) -> list[Any]:
    ctype = dict((k.lower(), v) for k, v in record["headers"])["content-type"]
    assert ctype.startswith("multipart/form-data; boundary=")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + record["body"])
    assert message.is_multipart()
    return list(message.iter_parts())  # type: ignore[attr-defined]


def test_multipart_form_with_a_field_and_a_file(client: hac.Client, bodies: BodyServer,
                                                tmp_path: Path) -> None:
    data = bytes(range(256)) * 4000 + b"\r\n--not a boundary\r\n"
    upload = tmp_path / "photo.jpg"
    upload.write_bytes(data)
    reply = client.query(f"{bodies.url}/sink", form={
        "title": "héllo wörld",
        "raw": b"\x00\x01\xff",
        "file": hac.FormFile(upload, content_type="image/x-test", filename="renamed.bin"),
        "plain": hac.FormFile(str(upload)),
    }).result(WAIT)
    assert reply.ok, reply.err
    record = bodies.uploads[-1]
    assert record["method"] == "POST"
    title, raw, file, plain = parse_form(record)
    assert title.get_param("name", header="content-disposition") == "title"
    assert title.get_payload(decode=True) == "héllo wörld".encode()
    assert raw.get_payload(decode=True) == b"\x00\x01\xff"
    assert file.get_param("name", header="content-disposition") == "file"
    assert file.get_filename() == "renamed.bin" and file.get_content_type() == "image/x-test"
    assert file.get_payload(decode=True) == data
    assert plain.get_filename() == "photo.jpg"  # the path's name by default
    assert plain.get_content_type() == "image/jpeg"  # libcurl's guess from .jpg
    assert plain.get_payload(decode=True) == data
    pairs = client.query(f"{bodies.url}/sink", form=[("a", "1"), ("a", "2")],
                         method="PUT").result(WAIT)
    assert pairs.ok and bodies.uploads[-1]["method"] == "PUT"
    assert [p.get_payload(decode=True) for p in parse_form(bodies.uploads[-1])] == [b"1", b"2"]


# ------------------------------------------------- cancel, timeout, close


def temp_file_grows(directory: Path, seconds: float = 10.0) -> None:
    """Wait until a temporary output file in directory holds some bytes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for p in directory.iterdir():
            if ".hac-" in p.name and p.stat().st_size > 0:
                return
        time.sleep(0.01)
    raise AssertionError(f"no temporary file grew in {directory}: {list(directory.iterdir())}")


@pytest.mark.parametrize("how", ["cancel", "timeout", "close"])
def test_stopping_a_download_leaves_no_file_and_no_fd(make_client: Any, bodies: BodyServer,
                                                      tmp_path: Path, how: str) -> None:
    client = make_client(connection_timeout=20000)
    baseline = FdBaseline(collect=True)
    target = tmp_path / "stopped.bin"
    h = client.query(f"{bodies.url}/pattern/{200 * MiB}?pause=50", output=target,
                     **({"timeout": 800} if how == "timeout" else {}))
    temp_file_grows(tmp_path)
    if how == "cancel":
        assert h.cancel()
    elif how == "close":
        client.close()
    reply = h.result(WAIT)
    assert not reply.ok
    assert reply.cancelled if how != "timeout" else reply.timed_out
    assert list(tmp_path.iterdir()) == []
    client.close()
    baseline.assert_back(what=f"after a download stopped by {how}")


@pytest.mark.parametrize("how", ["cancel", "timeout", "close"])
@pytest.mark.parametrize("source", ["path", "generator"])
def test_stopping_an_upload_leaves_no_fd(make_client: Any, bodies: BodyServer,
                                         tmp_path: Path, how: str, source: str) -> None:
    client = make_client(connection_timeout=20000)
    path = tmp_path / "src.bin"
    path.write_bytes(b"u" * (16 * MiB))
    closed = threading.Event()

    def endless() -> Iterator[bytes]:
        try:
            while True:
                yield b"g" * 65536
        finally:
            closed.set()

    baseline = FdBaseline(collect=True)
    body: Any = path if source == "path" else endless()
    h = client.query(f"{bodies.url}/sink?pause=20", body,
                     **({"timeout": 800} if how == "timeout" else {}))
    time.sleep(0.3)
    assert not h.done()
    if how == "cancel":
        assert h.cancel()
    elif how == "close":
        client.close()
    reply = h.result(WAIT)
    assert not reply.ok
    assert reply.cancelled if how != "timeout" else reply.timed_out
    if source == "generator":
        assert closed.wait(5), "the feeder did not stop and close the generator"
    client.close()
    baseline.assert_back(what=f"after a {source} upload stopped by {how}")


def test_an_early_end_never_raises_sigpipe(bodies: BodyServer) -> None:
    """An application that restored SIGPIPE's default (CLI tools do) is not
    killed when a transfer ends before its iterator body does."""
    script = """
        import json, signal, sys, time
        import http_async_client as hac
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        def endless():
            while True:
                yield b"x" * 65536
        with hac.Client(connection_timeout=20000) as client:
            h = client.query(sys.argv[1], endless())
            time.sleep(0.3)
            h.cancel()
            r = h.result(10)
            time.sleep(0.3)  # the feeder's next send() meets the closed end
        print(json.dumps({"cancelled": r.cancelled}))
    """
    assert run_child(script, f"{bodies.url}/sink?pause=20") == {"cancelled": True}


def test_queries_never_sent_close_their_fds(make_client: Any, http_server: HTTPTestServer,
                                            tmp_path: Path) -> None:
    """A batch closed before it was sent, a refused query_many() item and a
    closed client: the dup'd fds and pipes are closed all the same."""
    client = make_client(connection_timeout=20000)
    source = tmp_path / "src.bin"
    source.write_bytes(b"abc")
    baseline = FdBaseline(collect=True)
    with open(source, "rb") as f, open(tmp_path / "out.bin", "wb") as out:
        with pytest.raises(hac.InvalidOption):
            client.query_many([
                {"url": f"{http_server.url}/echo", "post_data": f, "output": out},
                {"url": f"{http_server.url}/echo", "post_data": iter([b"x"])},
                {"url": f"{http_server.url}/echo", "output": "/no/such/dir/x"},
            ])
        with client.batch():
            hs = [client.query(f"{http_server.url}/echo", f, output=out),
                  client.query(f"{http_server.url}/echo", iter([b"x"]))]
            client.close()
        assert all(h.result(WAIT).cancelled for h in hs)
        with pytest.raises(hac.ClientClosed):
            client.query(f"{http_server.url}/echo", f, output=out)
    baseline.assert_back(what="after queries that were never sent")
    assert leftovers(tmp_path) == []


def test_query_many_and_asyncio(client: hac.Client, http_server: HTTPTestServer,
                                bodies: BodyServer, tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(b"from a path")
    hs = client.query_many([
        {"url": f"{http_server.url}/bytes/{n}", "output": tmp_path / f"{n}.bin"} for n in (1, 2, 3)
    ] + [(f"{bodies.url}/sink", source), (f"{bodies.url}/sink", iter([b"it"]))])
    replies = [h.result(WAIT) for h in hs]
    assert all(r.ok for r in replies), [r.err for r in replies]
    assert [r.output for r in replies[:3]] == [str(tmp_path / f"{n}.bin") for n in (1, 2, 3)]
    assert (tmp_path / "3.bin").read_bytes() == pattern_bytes(3)
    assert sorted(u["body"] for u in bodies.uploads[-2:]) == [b"from a path", b"it"]

    async def main() -> list[hac.Reply]:
        return list(await asyncio.gather(
            client.query(f"{http_server.url}/bytes/50", output=tmp_path / "a.bin"),
            client.query(f"{bodies.url}/sink", form={"k": "v"}),
            client.query(f"{bodies.url}/sink", iter([b"async ", b"gen"]))))

    down, form, gen = asyncio.run(main())
    assert down.ok and (tmp_path / "a.bin").read_bytes() == pattern_bytes(50)
    assert form.ok and gen.ok
    assert b"async gen" in [u["body"] for u in bodies.uploads[-2:]]


def test_over_http2(make_client: Any, nginx: Any, certs: Any, tmp_path: Path) -> None:
    """The same over HTTP/2 (nginx: h2c with prior knowledge, TLS + ALPN):
    the file, and bodies streamed without chunked encoding (h2 frames).

    libcurl 7.88 fails POSTs to nginx's ``return 200`` over h2c, and hangs
    on TLS ones larger than a few KiB, in-memory bodies alike (nginx answers
    without reading the body); there the uploads go over TLS, small."""
    client = make_client(connection_timeout=20000, tls_ca_file=str(certs.ca_cert))
    old_curl = hac.curl_version().startswith("7.")
    size = 1000 if old_curl else 300_000
    source = tmp_path / "src.bin"
    source.write_bytes(b"p" * size)
    for url, version in ((nginx.h2c_url, 2), (nginx.tls_url, 0)):
        target = tmp_path / "h2.txt"
        down = client.query(f"{url}/x", output=target, http_version=version).result(WAIT)
        assert down.ok and down.http_version == "2" and target.read_bytes() == b"ok"
        if old_curl and version == 2:
            continue
        for body in (source, iter([b"a" * (size // 3), b"b"]), None):
            kw: dict[str, Any] = {"form": {"f": hac.FormFile(source)}} if body is None else {}
            up = client.query(f"{url}/up", body, http_version=version, **kw).result(WAIT)
            assert up.ok and up.status == 200 and up.http_version == "2", up.err
            assert up.body == b"ok"
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------ bad values


def test_bad_values_raise_before_anything_is_sent(client: hac.Client, bodies: BodyServer,
                                                  tmp_path: Path) -> None:
    url = f"{bodies.url}/sink"
    before = len(bodies.uploads), client.stats()["requests"]
    text = tmp_path / "t.txt"
    text.write_text("x")
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"output": tmp_path / "no" / "x.bin"}, hac.InvalidOption, "does not exist"),
        ({"output": tmp_path}, hac.InvalidOption, "is a directory"),
        ({"output": ""}, hac.InvalidOption, "non-empty path"),
        ({"output": 1.5}, hac.InvalidOptionType, "output must be"),
        ({"output": True}, hac.InvalidOptionType, "not bool"),
        ({"output": 987654}, hac.InvalidOption, "fd 987654"),
        ({"form": {"f": hac.FormFile(tmp_path / "missing")}}, hac.InvalidOption,
         "cannot read"),
        ({"form": {"f": hac.FormFile(tmp_path)}}, hac.InvalidOption, "not a regular file"),
        ({"form": {"a": "b"}, "body": b"x"}, hac.InvalidOption, "give no post_data"),
        ({"form": {"a": 1}}, hac.InvalidOptionType, "str, bytes or FormFile"),
        ({"form": {"a\r\nX": "b"}}, hac.InvalidOption, "control character"),
        ({"form": {"f": hac.FormFile(text, content_type="a\nb")}}, hac.InvalidOption,
         "control character"),
        ({"form": {}}, hac.InvalidOption, "no fields"),
        ({"form": "a=b"}, hac.InvalidOptionType, "mapping or (name, value) pairs"),
        ({"body": tmp_path / "missing"}, hac.InvalidOption, "cannot read"),
        ({"body": tmp_path}, hac.InvalidOption, "not a regular file"),
        ({"body": [b"a", 1]}, hac.InvalidOptionType, "holds bytes"),
        ({"body": 12}, hac.InvalidOptionType, "post_data must be"),
    ]
    with open(text, "r") as textfile, open(text, "rb") as readonly:
        cases += [({"body": textfile}, hac.InvalidOptionType, "binary mode"),
                  ({"output": textfile}, hac.InvalidOptionType, "binary mode"),
                  ({"output": readonly}, hac.InvalidOption, "not open for writing"),
                  ({"output": readonly.fileno()}, hac.InvalidOption, "not open for writing")]
        for kw, exc, words in cases:
            with pytest.raises(exc, match=words.replace("(", r"\(").replace(")", r"\)")):
                client.query(url, **kw)
    assert (len(bodies.uploads), client.stats()["requests"]) == before
    assert list(p.name for p in tmp_path.iterdir()) == ["t.txt"]


# ------------------------------------------------------------ faults


FAULTS = """
    import gc, sys
    from pathlib import Path
    import http_async_client as hac
    from http_async_client._ffi import lib

    url, work = sys.argv[1], Path(sys.argv[2])
    (work / "src.bin").write_bytes(b"s" * 100000)
    keep = hac.Client()

    def scenario():
        try:
            c = hac.Client(connection_timeout=5000)
        except hac.HttpAsyncClientError:
            return
        hs = []
        for kw in ({"output": work / "out.bin"}, {"post_data": work / "src.bin"},
                   {"post_data": iter([b"a", b"b"])},
                   {"form": {"a": "b", "f": hac.FormFile(work / "src.bin")}}):
            try:
                hs.append(c.query(url + ("/pattern/70000" if "output" in kw else "/sink"), **kw))
            except MemoryError:
                pass
        for h in hs:
            h.result(timeout=15)
        c.close()

    lib.hac_fault_inject(-1)
    scenario()
    gc.collect()
    baseline = keep.stats()["mem_in_use"]
    lib.hac_fault_inject(-1)
    scenario()
    total = lib.hac_fault_inject(-1)
    for n in range(total):
        lib.hac_fault_inject(n)
        scenario()
        lib.hac_fault_inject(-1)
        gc.collect()
        leaked = keep.stats()["mem_in_use"] - baseline
        left = sorted(p.name for p in work.iterdir() if ".hac-" in p.name)
        if leaked or left:
            print("LEAK at allocation", n, leaked, "bytes", left)
            sys.exit(1)
    print("allocations", total)
"""


def test_allocation_failures_leave_nothing_behind(bodies: BodyServer, tmp_path: Path) -> None:
    """With the fault-injection build: every allocation of the core failed
    in turn over output=, Path, generator and form queries: no crash, no
    leak, no temporary file, and every query ends."""
    from http_async_client._ffi import lib

    if lib.hac_fault_inject(-1) == -1:
        pytest.skip("needs the fault-injection build (./run.sh sanitize runs it)")
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(FAULTS), bodies.url,
                             str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) >= 10
