"""The CLI's bodies that never pass through Python (#14): ``fetch -o DIR``
writes through ``output=``, ``-F`` sends a multipart form (curl's syntax),
``-d @FILE`` streams the file and ``-d @-`` stdin."""

from __future__ import annotations

import email.parser
import email.policy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.bodyservers import BodyServer, pattern_sha256

MiB = 1 << 20


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "http_async_client", *args],
                            capture_output=True, input=stdin, timeout=60)
    return subprocess.CompletedProcess(result.args, result.returncode,
                                       result.stdout.decode(), result.stderr.decode())


@pytest.fixture(scope="module")
def bodies() -> Iterator[BodyServer]:
    with BodyServer() as server:
        yield server
    assert not server.errors, list(server.errors)


def test_fetch_output_dir_writes_through_output(bodies: BodyServer, tmp_path: Path) -> None:
    """A body beyond max_body_size (64 MiB) reaches its file: it never was
    in memory; -i still shows the head."""
    size = 70 * MiB
    result = run_cli("fetch", "-i", "--timeout", "60000", "-o", str(tmp_path / "out"),
                     f"{bodies.url}/pattern/{size}")
    assert result.returncode == 0, result.stdout + result.stderr
    saved = tmp_path / "out" / f"1-{size}"
    assert f"{size} B" in result.stdout and f"-> {saved}" in result.stdout
    assert f"    Content-Length: {size}" in result.stdout.splitlines()
    assert saved.stat().st_size == size
    import hashlib
    h = hashlib.sha256()
    with open(saved, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    assert h.hexdigest() == pattern_sha256(size)
    failed = run_cli("fetch", "-o", str(tmp_path / "out"),
                     f"{bodies.url}/pattern/{size}?reset={MiB}")
    assert failed.returncode == 1 and failed.stdout.startswith("ERR")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"1-{size}"]


def form_parts(record: dict[str, Any]) -> list[Any]:
    ctype = dict((k.lower(), v) for k, v in record["headers"])["content-type"]
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + record["body"])
    return list(message.iter_parts())  # type: ignore[attr-defined]


def test_fetch_form(bodies: BodyServer, tmp_path: Path) -> None:
    upload = tmp_path / "report.csv"
    upload.write_bytes(b"a,b\r\n1,2\r\n")
    value = tmp_path / "value.txt"
    value.write_bytes(b"from a file")
    result = run_cli("fetch", "-F", "name=value", "-F",
                     f"file=@{upload};type=text/csv;filename=r.csv", "-F", f"plain=@{upload}",
                     "-F", f"inline=<{value}", f"{bodies.url}/sink")
    assert result.returncode == 0, result.stdout + result.stderr
    record = bodies.uploads[-1]
    assert record["method"] == "POST"
    name, file, plain, inline = form_parts(record)
    assert name.get_param("name", header="content-disposition") == "name"
    assert name.get_payload(decode=True) == b"value"
    assert file.get_filename() == "r.csv" and file.get_content_type() == "text/csv"
    assert file.get_payload(decode=True) == b"a,b\r\n1,2\r\n"
    assert plain.get_filename() == "report.csv"
    assert inline.get_payload(decode=True) == b"from a file" and inline.get_filename() is None


@pytest.mark.parametrize(("args", "words"), [
    (["-F", "novalue"], "expected NAME=VALUE"),
    (["-F", "f=@/no/such/file"], "cannot read /no/such/file"),
    (["-F", "f=@x;size=3"], "unknown parameter"),
    (["-F", "a=b", "-d", "x"], "-F and -d both"),
    (["-d", "@/no/such/file"], "No such file"),
])
def test_fetch_body_errors(bodies: BodyServer, args: list[str], words: str) -> None:
    before = len(bodies.uploads)
    result = run_cli("fetch", *args, f"{bodies.url}/sink")
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert len(bodies.uploads) == before


def test_fetch_data_at_file_and_stdin_stream(bodies: BodyServer, tmp_path: Path) -> None:
    source = tmp_path / "body.bin"
    source.write_bytes(bytes(range(256)) * 1000)
    result = run_cli("fetch", "-X", "PUT", "-d", f"@{source}", f"{bodies.url}/sink")
    assert result.returncode == 0, result.stderr
    record = bodies.uploads[-1]
    assert record["method"] == "PUT" and record["body"] == source.read_bytes()
    assert ("Content-Length", "256000") in record["headers"] and not record["chunked"]
    piped = run_cli("fetch", "-d", "@-", f"{bodies.url}/sink", stdin=b"from stdin\n")
    assert piped.returncode == 0, piped.stderr
    assert bodies.uploads[-1]["body"] == b"from stdin\n" and bodies.uploads[-1]["chunked"]
