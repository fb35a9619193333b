"""Bodies that never pass through Python: ``output=`` (the worker writes
the response to a file), a request body from a ``Path``, an open file or
an iterator of ``bytes``, and ``form=`` (multipart, files streamed from
disk by libcurl).

Strategy: everything is checked first (``plan_body``, ``plan_output``,
``encode_form``: a bad path or value raises the typed exceptions before
anything is made), then ``Plans.entries()`` makes the fds (``os.dup`` of a
caller's file, a socket pair for an iterator) and the option entries naming them
(csrc/files.h).  From the moment the blob holding them reaches
``hac_submit`` (whatever it returns) or ``hac_discard`` those fds are the
core's: it closes them.  An iterator is pulled by a feeder thread that
writes its chunks as frames (csrc/upload.c) into a socket pair, which the
worker reads in C: its buffer is the backpressure.  A socket pair rather
than a pipe because ``send(MSG_NOSIGNAL)`` cannot raise SIGPIPE when the
transfer ends first (an application may have restored SIGPIPE's default,
which would kill the process).
"""

from __future__ import annotations

import fcntl
import io
import os
import socket
import stat
import struct
import threading
from typing import IO, Any, Iterable, Iterator, Mapping, Union

from ._exceptions import InvalidOption, InvalidOptionType
from ._ffi import ffi, lib

_O_OUTPUT = bytes([lib.HAC_O_OUTPUT])
_O_OUTPUT_FD = bytes([lib.HAC_O_OUTPUT_FD])
_O_BODY_FILE = bytes([lib.HAC_O_BODY_FILE])
_O_BODY_FD = bytes([lib.HAC_O_BODY_FD])
_O_BODY_START = bytes([lib.HAC_O_BODY_START])
_O_BODY_PIPE = bytes([lib.HAC_O_BODY_PIPE])
FORM_ENTRY = bytes([lib.HAC_O_FORM]) + b"1\0"

_FORMPART = struct.Struct("=5I")  # hac_formpart, checked against C below
_FRAME = struct.Struct("=I")      # upload.c's frame header
_FRAME_MAX = 1 << 20              # a larger chunk goes as several frames
_FRAME_ERROR = 0x80000000
_ERROR_TEXT = 400                 # bytes of an iterator's error sent to C
_FILE_CHUNK = 64 * 1024           # read() size for a file object without fd
_END = object()

if _FORMPART.size != ffi.sizeof("hac_formpart"):  # pragma: no cover
    raise ImportError("http_async_client: hac_formpart layout changed")

BodyArg = Union[str, bytes, bytearray, memoryview, "os.PathLike[str]", IO[bytes],
                Iterable[bytes], None]
OutputArg = Union[str, "os.PathLike[str]", int, IO[bytes], None]


class FormFile:
    """A file part of ``query(form=...)``: streamed from disk by libcurl.
    ``filename`` is sent in Content-Disposition (default: the path's base
    name), ``content_type`` as the part's Content-Type (default: libcurl's
    guess from the extension, else application/octet-stream)."""

    __slots__ = ("path", "content_type", "filename")

    def __init__(
        self,
        path: str | os.PathLike[str],
        content_type: str | None = None,
        filename: str | None = None,
    ) -> None:
        self.path = path
        self.content_type = content_type
        self.filename = filename

    def __repr__(self) -> str:
        return (f"FormFile({os.fspath(self.path)!r}, content_type={self.content_type!r}, "
                f"filename={self.filename!r})")


FormValue = Union[str, bytes, FormFile]
FormArg = Union[Mapping[str, FormValue], Iterable["tuple[str, FormValue]"], None]


# ------------------------------------------------------------------ checks
def _path_text(name: str, value: object) -> str:
    try:
        text = os.fsdecode(os.fspath(value))  # type: ignore[call-overload]
    except TypeError:
        raise InvalidOptionType(f"{name} must be a path, not {type(value).__name__}") from None
    if not text or "\x00" in text:
        raise InvalidOption(f"{name} must be a non-empty path without NUL bytes")
    return text


def _readable_file(name: str, path: str) -> str:
    """The absolute path of a readable regular file, or InvalidOption."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidOption(f"{name}: cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidOption(f"{name}: {path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise InvalidOption(f"{name}: cannot read {path}: permission denied")
    return os.path.abspath(path)


def _check_text(name: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise InvalidOptionType(f"{name} must be str, not {type(value).__name__}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidOption(f"{name} contains a control character: {value!r}")
    return value.encode("utf-8")


def is_memory_body(value: object) -> bool:
    """A body that goes in the wire form itself (the buffered path)."""
    return value is None or isinstance(value, (str, bytes, bytearray, memoryview))


class _Body:
    """A checked streamed body: a file path, a file object with an fd, or
    an iterator (chunks pulled by a feeder thread)."""

    __slots__ = ("path", "fileobj", "chunks")

    def __init__(self, path: str | None = None, fileobj: Any = None,
                 chunks: Iterator[Any] | None = None) -> None:
        self.path = path
        self.fileobj = fileobj
        self.chunks = chunks


def plan_body(value: object) -> _Body:
    """A request body that is not in memory: a ``Path`` (any os.PathLike),
    an open binary file, or an iterable of bytes-like chunks."""
    if isinstance(value, os.PathLike):
        return _Body(path=_readable_file("post_data", _path_text("post_data", value)))
    if isinstance(value, io.TextIOBase):
        raise InvalidOptionType("post_data: open the file in binary mode ('rb')")
    if isinstance(value, Mapping):
        raise InvalidOptionType("post_data must be str, bytes, a Path, a binary file or "
                                "an iterable of bytes, not a mapping (form= sends fields)")
    if hasattr(value, "read"):
        f: Any = value
        try:
            f.fileno()
        except (AttributeError, OSError, ValueError):
            # io.BytesIO and friends: read in the feeder thread
            read = f.read
            return _Body(chunks=iter(lambda: read(_FILE_CHUNK), b""))
        if hasattr(f, "readable") and not f.readable():
            raise InvalidOption("post_data: the file is not open for reading")
        return _Body(fileobj=f)
    if isinstance(value, (list, tuple)):
        # what can be checked now is checked now (a generator: as it runs)
        for chunk in value:
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise InvalidOptionType(
                    f"post_data: a list of chunks holds bytes, not {type(chunk).__name__}")
    if isinstance(value, Iterable):
        return _Body(chunks=iter(value))
    raise InvalidOptionType(
        "post_data must be str, bytes, a Path, a binary file or an iterable of bytes, "
        f"not {type(value).__name__}"
    )


class _Output:
    __slots__ = ("path", "fd", "fileobj", "shown")

    def __init__(self, shown: object, path: str | None = None, fd: int | None = None,
                 fileobj: Any = None) -> None:
        self.shown = shown
        self.path = path
        self.fd = fd
        self.fileobj = fileobj


def plan_output(value: object) -> _Output:
    """``output=``: a path (its directory must exist), an fd, or an open
    binary file (written where it stands)."""
    if isinstance(value, bool):
        raise InvalidOptionType("output must be a path, an fd or a binary file, not bool")
    if isinstance(value, int):
        try:
            flags = fcntl.fcntl(value, fcntl.F_GETFL)
        except OSError as exc:
            raise InvalidOption(f"output: fd {value}: {exc.strerror}") from None
        if flags & os.O_ACCMODE == os.O_RDONLY:
            raise InvalidOption(f"output: fd {value} is not open for writing")
        return _Output(value, fd=value)
    if isinstance(value, io.TextIOBase):
        raise InvalidOptionType("output: open the file in binary mode ('wb')")
    if hasattr(value, "write") and hasattr(value, "fileno"):
        try:
            value.fileno()
        except (OSError, ValueError) as exc:
            raise InvalidOption(f"output: the file has no fd ({exc})") from None
        if hasattr(value, "writable") and not value.writable():
            raise InvalidOption("output: the file is not open for writing")
        return _Output(value, fileobj=value)
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise InvalidOptionType(
            f"output must be a path, an fd or a binary file, not {type(value).__name__}")
    text = _path_text("output", value)
    path = os.path.abspath(text)
    if os.path.isdir(path):
        raise InvalidOption(f"output: {text} is a directory")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise InvalidOption(f"output: the directory {parent} does not exist")
    return _Output(text, path=path)


def encode_form(form: object) -> bytes:
    """``form=`` as the core's description (hac_formpart + strings per
    part): a mapping or (name, value) pairs; values str, bytes or
    FormFile."""
    if isinstance(form, Mapping):
        items: Iterable[Any] = form.items()
    elif isinstance(form, (str, bytes)) or not isinstance(form, Iterable):
        raise InvalidOptionType(
            f"form must be a mapping or (name, value) pairs, not {type(form).__name__}")
    else:
        items = form
    parts: list[bytes] = []
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise InvalidOptionType("form pairs must be (name, value) tuples")
        key, value = item
        name = _check_text("form field name", key)
        what = f"form field {key!r}"
        kind, ctype, fname = 0, b"", b""
        if isinstance(value, FormFile):
            kind = lib.HAC_FORM_FILE
            data = os.fsencode(_readable_file(what, _path_text(what, value.path)))
            if value.content_type is not None:
                kind |= lib.HAC_FORM_TYPE
                ctype = _check_text(f"{what} content_type", value.content_type)
            if value.filename is not None:
                kind |= lib.HAC_FORM_FILENAME
                fname = _check_text(f"{what} filename", value.filename)
        elif isinstance(value, str):
            data = value.encode("utf-8")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        else:
            raise InvalidOptionType(
                f"{what} must be str, bytes or FormFile, not {type(value).__name__}")
        parts.append(_FORMPART.pack(kind, len(name), len(data), len(ctype), len(fname)))
        parts += (name, data, ctype, fname)
    if not parts:
        raise InvalidOption("form has no fields")
    return b"".join(parts)


# --------------------------------------------------------------- resources
class Feeder:
    """Writes an iterator's chunks into the socket the worker reads
    (frames: see csrc/upload.c), on a thread of its own, then closes its
    end.  The worker closing the other end (the transfer ended) stops it at
    its next write; the iterator is closed either way (a generator's
    ``finally`` runs)."""

    __slots__ = ("_chunks", "_sock")

    def __init__(self, chunks: Iterator[Any], sock: socket.socket) -> None:
        self._chunks = chunks
        self._sock = sock

    def start(self) -> None:
        threading.Thread(target=self._run, name="http_async_client body", daemon=True).start()

    def close(self) -> None:
        """Never started (its query was not sent): just close."""
        self._sock.close()
        _close_iter(self._chunks)

    def _write(self, data: bytes | memoryview) -> None:
        self._sock.sendall(data, socket.MSG_NOSIGNAL)

    def _run(self) -> None:
        chunks = self._chunks
        try:
            while True:
                try:
                    chunk = next(chunks, _END)
                    view: memoryview | None = None
                    if isinstance(chunk, (bytes, bytearray, memoryview)):
                        view = memoryview(chunk).cast("B")
                    elif chunk is not _END:
                        raise InvalidOptionType(
                            f"the body iterator yielded {type(chunk).__name__}, not bytes")
                except BaseException as exc:  # the caller's iterator failed
                    text = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")
                    text = text[:_ERROR_TEXT]
                    self._write(_FRAME.pack(_FRAME_ERROR | len(text)) + text)
                    return
                if view is None:
                    self._write(_FRAME.pack(0))  # the end of the body
                    return
                while view:  # an empty chunk sends nothing (0 ends the body)
                    part = view[:_FRAME_MAX]
                    self._write(_FRAME.pack(len(part)))
                    self._write(part)
                    view = view[len(part):]
        except OSError:
            pass  # EPIPE: the transfer ended (done, failed, cancelled)
        finally:
            self._sock.close()
            _close_iter(chunks)


def _close_iter(chunks: Iterator[Any]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # pragma: no cover - the caller's generator
            pass


class Extras:
    """What one call's queries leave to do once their blob is built: the
    ``output`` each reply shows (by id), the feeders to start."""

    __slots__ = ("outputs", "feeders")

    def __init__(self) -> None:
        self.outputs: dict[int, object] = {}
        self.feeders: list[Feeder] = []

    def start(self) -> None:
        for feeder in self.feeders:
            feeder.start()
        self.feeders = []

    def abandon(self) -> None:
        """The blob was not built or sent: close what the feeders hold."""
        for feeder in self.feeders:
            feeder.close()
        self.feeders = []


def entries(body: _Body | None, out: _Output | None, rid: int, extras: Extras) -> bytes:
    """The option entries of a query's streamed body and output, with the
    fds they name made now (the last step: nothing can fail after it but
    the core's submission, which takes the fds whatever happens)."""
    made: list[int] = []
    parts: list[bytes] = []
    feeder = None
    try:
        if out is not None:
            extras.outputs[rid] = out.shown
            if out.path is not None:
                parts.append(_O_OUTPUT + os.fsencode(out.path) + b"\0")
            else:
                if out.fileobj is not None:
                    out.fileobj.flush()  # what Python buffered goes first
                    fd = os.dup(out.fileobj.fileno())
                else:
                    assert out.fd is not None
                    fd = os.dup(out.fd)
                made.append(fd)
                parts.append(b"%s%d\0" % (_O_OUTPUT_FD, fd))
        if body is not None:
            if body.path is not None:
                parts.append(_O_BODY_FILE + os.fsencode(body.path) + b"\0")
            elif body.fileobj is not None:
                f = body.fileobj
                start = f.tell() if f.seekable() else -1
                fd = os.dup(f.fileno())
                made.append(fd)
                parts.append(b"%s%d\0%s%d\0" % (_O_BODY_FD, fd, _O_BODY_START, start))
            else:
                assert body.chunks is not None
                reader, writer = socket.socketpair()
                feeder = Feeder(body.chunks, writer)
                rfd = reader.detach()  # the core's from now on
                made.append(rfd)
                parts.append(b"%s%d\0" % (_O_BODY_PIPE, rfd))
    except BaseException:
        extras.outputs.pop(rid, None)
        for fd in made:
            os.close(fd)
        if feeder is not None:
            feeder.close()
        raise
    if feeder is not None:
        extras.feeders.append(feeder)
    return b"".join(parts)


__all__ = [
    "BodyArg",
    "Extras",
    "FORM_ENTRY",
    "Feeder",
    "FormArg",
    "FormFile",
    "FormValue",
    "OutputArg",
    "encode_form",
    "entries",
    "is_memory_body",
    "plan_body",
    "plan_output",
]
