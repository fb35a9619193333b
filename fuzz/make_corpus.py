"""Writes the seed corpora under fuzz/corpus/ (committed; run again after
the bad-server cases change):

- ``capture/``: every response of tests/transport/test_badserver.py's
  byte cases (BYTES_CASES, BYTES_CASES_WITH_PARAMS), behind the shape byte
  fuzz_capture.c reads first, plus a few 1xx, redirect, chunked-trailer
  and gzip responses;
- ``req/``: request blobs in hac.h's wire form (hac_reqhdr, then URL,
  body, NUL-ended header lines, "<key><value>" NUL-ended options),
  built the way the package's encoder lays them out.

    .venv-3.11/bin/python fuzz/make_corpus.py
"""

from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "transport")]

import test_badserver  # noqa: E402  (the test module's own cases)

REQHDR = struct.Struct("<QqIIIIII")  # hac_reqhdr
M_GET, M_POST, M_PUT, M_HEAD = 0, 1, 2, 5
F_BODY, F_FILES = 1, 16
FORMPART = struct.Struct("<IIIII")  # hac_formpart


def write(kind: str, data: bytes) -> None:
    d = HERE / "corpus" / kind
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def blob(url: bytes, method: int = M_GET, flags: int = 0, body: bytes = b"",
         hdrs: list[bytes] | None = None, opts: list[tuple[int, bytes]] | None = None,
         rid: int = 1, timeout: int = 0) -> bytes:
    hdr = b"".join(h + b"\0" for h in hdrs or [])
    opt = b"".join(bytes([k]) + v + b"\0" for k, v in opts or [])
    return REQHDR.pack(rid, timeout, method, flags, len(url), len(body), len(hdr),
                       len(opt)) + url + body + hdr + opt


def form(parts: list[tuple[int, bytes, bytes, bytes, bytes]]) -> bytes:
    return b"".join(FORMPART.pack(f, len(n), len(v), len(t), len(fn)) + n + v + t + fn
                    for f, n, v, t, fn in parts)


def responses() -> list[bytes]:
    out = []
    for case in [*test_badserver.BYTES_CASES, *test_badserver.BYTES_CASES_WITH_PARAMS]:
        data = case.values[0]
        if isinstance(data, bytes) and len(data) <= 4096:
            out.append(data)
    out += [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n"
        b"2\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nuntil close",
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    ]
    return out


def requests() -> list[bytes]:
    u = b"http://127.0.0.1:8080/path?q=1"
    s = b"https://localhost:8443/"
    return [
        blob(u),
        blob(u, M_POST, F_BODY, b"payload"),
        blob(u, M_PUT, F_BODY, b"x" * 64, [b"Content-Type: text/plain", b"Expect: 100-continue"]),
        blob(u, M_HEAD, hdrs=[b"Accept-Encoding: gzip", b"X-A: b"]),
        blob(s, opts=[(104, b"0"), (112, b"0"), (118, b"6"), (97, b"/tmp/capath"),
                      (89, b"sha256//AAAA"), (72, b"2")]),
        blob(u, opts=[(117, b"user"), (119, b"pw"), (109, b"1"), (114, b"1"), (82, b"3"),
                      (75, b"1"), (105, b"30"), (110, b"5")]),
        blob(u, opts=[(80, b"http://127.0.0.1:3128"), (78, b"localhost,.local"),
                      (68, b"example.test:80:127.0.0.1\nexample.test:443:127.0.0.1"),
                      (79, b"a:80:b:8080"), (67, b"250"), (76, b"1000"), (84, b"2"),
                      (85, b"/tmp/sock")], timeout=1500),
        blob(u, M_POST, F_BODY | F_FILES, form([(0, b"field", b"value", b"", b""),
                                                 (2 | 4, b"f", b"data", b"text/plain", b"a.txt")]),
             opts=[(70, b"1")]),
        blob(u, opts=[(72, b"1"), (66, b"-----BEGIN CERTIFICATE-----\nAAAA\n")], rid=7)
        + blob(s, M_POST, F_BODY, b"two in one batch", rid=8),
    ]


def main() -> None:
    for data in responses():
        for shape in (0, 2):
            write("capture", bytes([shape]) + data)
    for data in requests():
        write("req", data)
    print(f"fuzz/make_corpus.py: {len(list((HERE / 'corpus').glob('*/*')))} seeds")


if __name__ == "__main__":
    main()
