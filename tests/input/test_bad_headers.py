"""Bad headers are refused with InvalidHeader before anything is sent,
whatever form they come in (``headers=`` as a mapping, (name, value) pairs,
lines or bytes, ``http_append_header``, ``http_req["hdr"]``): the counters
do not move and a fresh server on 127.0.0.1 receives nothing but the next
valid query (support.refusals); refused headers do not stick to a later
query.

Also a property test (hypothesis): no header (name, value) can make the
server see an extra header line or a second request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import http_async_client as hac
from support.refusals import (
    WAIT,
    assert_nothing_sent,
    counters,
    header_names,
    refused,
    split_request,
)
from support.servers import RawServer

BIG = 64 * 1024 + 1

# ------------------------------------------------------------ header lines

# Malformed lines: no colon, no name, a bad name or value, two lines in one
BAD_HEADER_LINES = [
    "X-A: 1\r\nX-B: 2",
    "X-A: 1\nX-B: 2",
    "X-A: 1\rX-B: 2",
    "X-A: a\x00b",
    "X-A: a\x1bb",
    "X-A\r: 1",
    "X-A\n: 1",
    "X\x00A: 1",
    "Bad Name: 1",
    " X-A: 1",
    "NoColonHere",
    ": value",
    "X-E; junk",
    "",
]


@pytest.mark.parametrize("line", BAD_HEADER_LINES)
def test_header_line_rejected_everywhere(client: hac.Client, sink: RawServer, line: str) -> None:
    """A malformed header line is InvalidHeader via http_append_header,
    http_req["hdr"], query(headers=[...]) and query(headers="...")."""
    url = f"{sink.url}/echo"
    refused(
        client, sink, hac.InvalidHeader,
        lambda: client.http_append_header(line),
        lambda: client.http_req.__setitem__("hdr", line),
        lambda: client.query(url, headers=[line]),
        lambda: client.query(url, headers=["X-Good: 1", line]),
        lambda: client.query(url, headers=line),
    )
    # the refused lines were not kept for the next query either
    names = header_names(sink.requests[0])
    assert "x-a" not in names and "x-b" not in names and "x-good" not in names


# ------------------------------------------------------ (name, value) pairs

# Lib/test/test_httplib.py, HeaderTests.test_invalid_headers: putheader()
# must refuse each of these (name, value) pairs.
CPYTHON_INVALID_HEADERS = [
    (b"Invalid\r\nName", b"ValidValue"),
    (b"Invalid\rName", b"ValidValue"),
    (b"Invalid\nName", b"ValidValue"),
    (b"\r\nInvalidName", b"ValidValue"),
    (b"\rInvalidName", b"ValidValue"),
    (b"\nInvalidName", b"ValidValue"),
    (b" InvalidName", b"ValidValue"),
    (b"\tInvalidName", b"ValidValue"),
    (b"Invalid:Name", b"ValidValue"),
    (b":InvalidName", b"ValidValue"),
    (b"ValidName", b"Invalid\r\nValue"),
    (b"ValidName", b"Invalid\rValue"),
    (b"ValidName", b"Invalid\nValue"),
    (b"ValidName", b"InvalidValue\r\n"),
    (b"ValidName", b"InvalidValue\r"),
    (b"ValidName", b"InvalidValue\n"),
]

# Beyond CPython's list: whitespace around names, spaces, separators and
# non-token characters in names, obs-fold and other control bytes in values.
MORE_INVALID_HEADERS = [
    (b"InvalidName ", b"ValidValue"),
    (b"InvalidName\t", b"ValidValue"),
    (b"Invalid Name", b"ValidValue"),
    (b"Invalid(Name)", b"ValidValue"),
    (b"Invalid/Name", b"ValidValue"),
    (b"Invalid@Name", b"ValidValue"),
    (b"Invalid\x00Name", b"ValidValue"),
    (b"Invalid\x7fName", b"ValidValue"),
    (b"Inv\xe4lidName", b"ValidValue"),
    (b"", b"ValidValue"),
    (b"ValidName", b"folded\n value"),
    (b"ValidName", b"folded\r\n\tvalue"),
    (b"ValidName", b"Invalid\x00Value"),
    (b"ValidName", b"Invalid\x0bValue"),
    (b"ValidName", b"Invalid\x0cValue"),
    (b"ValidName", b"Invalid\x1bValue"),
    (b"ValidName", b"Invalid\x7fValue"),
    (b"ValidName", b"x\r\nX-Injected: 1"),
    (b"ValidName", b"x\r\n\r\nGET /smuggled HTTP/1.1"),
    # CR, LF, NUL in names and values, a space or a colon in a name, no name
    (b"X-A", b"a\r\nX-B: b"),
    (b"X-A", b"a\nb"),
    (b"X-A", b"a\rb"),
    (b"X-A", b"a\x00b"),
    (b"X-A\r\n", b"v"),
    (b"X-A\n", b"v"),
    (b"X\x00A", b"v"),
    (b"Bad Name", b"v"),
    (b"X-A:", b"v"),
    (b"", b"v"),
]


def _header_calls(client: hac.Client, url: str, name: bytes, value: bytes) -> list[Callable[[], Any]]:
    """Every way to hand (name, value) to the client."""
    n, v = name.decode("latin-1"), value.decode("latin-1")
    calls: list[Callable[[], Any]] = [
        lambda: client.query(url, headers={n: v}),
        lambda: client.query(url, headers=[(n, v)]),
        lambda: client.query(url, headers=["X-Good: 1", (n, v)]),
        lambda: client.http_append_header((n, v)),  # type: ignore[arg-type]
    ]
    # "Invalid:Name: ValidValue" is a valid line (header "Invalid", value
    # "Name: ValidValue"): only the pair forms can carry that name
    if b":" not in name[1:]:
        line, raw = f"{n}: {v}", name + b": " + value
        calls += [
            lambda: client.query(url, headers=[line]),
            lambda: client.query(url, headers=line),
            lambda: client.query(url, headers=[raw]),
            lambda: client.http_append_header(line),
            lambda: client.http_append_header(raw),  # type: ignore[arg-type]
            lambda: client.http_req.__setitem__("hdr", line),
        ]
    return calls


@pytest.mark.parametrize(
    ("name", "value"),
    [pytest.param(n, v, id=repr(n + b": " + v)) for n, v in CPYTHON_INVALID_HEADERS + MORE_INVALID_HEADERS],
)
def test_invalid_header_refused_everywhere(
    client: hac.Client, sink: RawServer, name: bytes, value: bytes
) -> None:
    """CPython's invalid headers (and more) are InvalidHeader via headers=
    (mapping, pairs, lines, bytes), http_append_header and http_req["hdr"]
    (a UsageError each time)."""
    refused(client, sink, hac.InvalidHeader, *_header_calls(client, f"{sink.url}/h", name, value))
    # the refused headers did not stick to the next query either
    assert b"ValidValue" not in sink.requests[0] and b"X-Good" not in sink.requests[0]


def test_refused_header_does_not_reach_later_query(client: hac.Client, sink: RawServer) -> None:
    """A header accepted before a refused one on the same query is not sent
    with a later query."""
    client.http_append_header("X-Kept: 1")
    with pytest.raises(hac.InvalidHeader):
        client.http_append_header("X-Bad: 1\r\nX-Injected: 1")
    reply = client.query(f"{sink.url}/a").result(timeout=WAIT)
    assert reply.ok, reply.err
    assert b"X-Injected" not in sink.requests[0]


def test_header_messages_name_problem(client: hac.Client) -> None:
    """The messages say what is wrong with the header."""
    with pytest.raises(hac.InvalidHeader, match="control character"):
        client.http_append_header("X-A: 1\r\nX-B: 2")
    with pytest.raises(hac.InvalidHeader, match="name"):
        client.http_append_header("Bad Name: 1")
    with pytest.raises(hac.InvalidHeader, match="':'"):
        client.http_append_header("NoColonHere")


def test_header_wrong_type(client: hac.Client, sink: RawServer) -> None:
    """A header that is neither str, bytes nor a pair is InvalidOptionType
    (for ``query(headers=...)``: test_bad_options.py, QUERY_BAD)."""
    with pytest.raises(hac.InvalidOptionType):
        client.http_append_header(5)  # type: ignore[arg-type]
    assert_nothing_sent(client, sink)


# ---------------------------------------------------------------- oversize


@pytest.mark.parametrize(
    "form", ["line", "bytes-line", "append", "http_req", "pair", "mapping", "long-name"]
)
def test_header_over_64k_refused(client: hac.Client, sink: RawServer, form: str) -> None:
    """A header over 64 KiB is InvalidHeader whatever form it comes in."""
    url = f"{sink.url}/h"
    value = "a" * BIG
    call: Callable[[], Any] = {
        "line": lambda: client.query(url, headers=[f"X-Big: {value}"]),
        "bytes-line": lambda: client.query(url, headers=[b"X-Big: " + value.encode()]),
        "append": lambda: client.http_append_header(f"X-Big: {value}"),
        "http_req": lambda: client.http_req.__setitem__("hdr", f"X-Big: {value}"),
        "pair": lambda: client.query(url, headers=[("X-Big", value)]),
        "mapping": lambda: client.query(url, headers={"X-Big": value}),
        "long-name": lambda: client.query(url, headers={"X" * BIG: "v"}),
    }[form]
    refused(client, sink, hac.InvalidHeader, call)


def test_header_under_the_cap_arrives_intact(client: hac.Client, sink: RawServer) -> None:
    """Control: an 8 KiB header value is sent as given."""
    value = "b" * 8192
    reply = client.query(f"{sink.url}/h", headers={"X-Big": value}).result(timeout=WAIT)
    assert reply.ok, reply.err
    assert f"\r\nX-Big: {value}\r\n".encode() in sink.requests[0]


# ----------------------------------------------------------- property test

_TOKEN_CHARS = "!#$%&'*+-.^_`|~" + "0123456789" + "abcxyzABCXYZ"
_NAME_NOISE = " \t:;\r\n\x00\x7f()@/\xe9"
_VALUE_CHARS = "abcXYZ019 \t:;,=\"'\\/" + "\r\n\x00\x01\x0b\x1b\x7f" + "\x85\xa0\xe9\u20ac\u2028"
# headers libcurl manages itself or that change the framing of a GET
_SPECIAL = {"host", "accept", "content-length", "transfer-encoding", "expect",
            "accept-encoding", "connection", "te", "upgrade", "trailer", "content-type"}

# mostly valid names, so that values get exercised too
names = st.one_of(
    st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=12),
    st.text(alphabet=_TOKEN_CHARS + _NAME_NOISE, max_size=12),
)
values = st.one_of(
    st.text(alphabet=_VALUE_CHARS, max_size=24),
    st.text(alphabet=" \t", max_size=3),
)
forms = st.sampled_from(["pair", "mapping", "line", "append", "http_req"])


def _wire(text: str) -> bytes:
    """How the client encodes a header line: latin-1 if it can, else UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def test_property_header_cannot_inject(sink: RawServer) -> None:
    """No (name, value), in any form, makes the server see an extra header
    line or a second request: either InvalidHeader before sending, or the
    server receives exactly that one header with exactly that value ("Name:"
    lines with no value remove the header, as libcurl documents)."""
    server = sink
    url = f"{server.url}/p"

    with hac.Client(connection_timeout=2000) as client:

        @settings(max_examples=200, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(name=names, value=values, form=forms)
        @example(name="X-A", value="1\r\nX-Injected: 1", form="pair")
        @example(name="X-A", value="1\r\n\r\nGET /smuggled HTTP/1.1", form="line")
        @example(name="X-A\r\nX-Injected", value="1", form="mapping")
        @example(name="X-A", value="", form="pair")
        @example(name="X-A", value=" ", form="pair")
        @example(name="X-A", value="\t", form="mapping")
        @example(name="X-A", value="  v  ", form="append")
        @example(name="X-A", value="\u20ac \xe9", form="http_req")
        def prop(name: str, value: str, form: str) -> None:
            before_requests = counters(client)["requests"]
            before_seen = len(server.requests)
            line = f"{name}: {value}"
            try:
                if form == "pair":
                    handle = client.query(url, headers=[(name, value)])
                elif form == "mapping":
                    handle = client.query(url, headers={name: value})
                elif form == "line":
                    handle = client.query(url, headers=[line])
                elif form == "append":
                    client.http_append_header(line)
                    handle = client.query(url)
                else:
                    client.http_req["hdr"] = line
                    handle = client.query(url)
            except hac.InvalidHeader:
                client.http_req["all"] = None
                assert counters(client)["requests"] == before_requests
                assert len(server.requests) == before_seen
                return
            if form in ("line", "append", "http_req"):
                # the line is split at its first colon
                name, _, value = line.partition(":")
            if name.lower() in _SPECIAL:
                handle.result(timeout=WAIT)
                return
            reply = handle.result(timeout=WAIT)
            assert reply.ok, reply.err
            assert server.requests.wait_for(before_seen + 1, timeout=WAIT)
            assert len(server.requests) == before_seen + 1
            request_line, fields = split_request(server.requests[-1])
            assert request_line == b"GET /p HTTP/1.1"
            sent = [v for n, v in fields if n.lower() == _wire(name).lower()]
            others = sorted(n.lower() for n, _ in fields if n.lower() != _wire(name).lower())
            # the client's default User-Agent, unless this header replaced it
            defaults = {b"accept", b"host", b"user-agent"} - {_wire(name).lower()}
            assert others == sorted(defaults), fields
            expected = _wire(f"{name}:{value}").partition(b":")[2].strip(b" \t")
            removal = form in ("line", "append", "http_req") and not expected
            if removal:
                assert sent == [], fields
            else:
                assert sent == [expected], (name, value, fields)

        prop()
