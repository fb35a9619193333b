"""The wire layouts shared with C, derived from the compiled structs.

Strategy: the ``struct`` formats are built from cffi's view of
``hac_reqhdr`` and ``hac_rec`` (field order, C type, offset), not written
by hand, so a change in ``csrc/hac.h`` cannot silently desynchronise
Python: a type without a format code, padding, or a size that differs
fails at import.  Record fields are read by the index constants below,
named after the C fields (arrays spread over consecutive indexes).
"""

from __future__ import annotations

import struct
from typing import Any

from ._ffi import ffi, lib
from ._validate import METHODS

_CODES = {
    "uint64_t": "Q",
    "int64_t": "q",
    "uint32_t": "I",
    "int32_t": "i",
}


def _layout(ctype: str) -> tuple[struct.Struct, dict[str, int]]:
    """The native-order, unpadded format of a C struct, and the index of
    each field's first item in an unpacked tuple."""
    fmt = "="
    index: dict[str, int] = {}
    at = 0
    offset = 0
    for name, field in ffi.typeof(ctype).fields:
        item: Any = field.type
        count = 1
        if item.kind == "array":
            count = item.length
            item = item.item
        code = _CODES.get(item.cname)
        if code is None or field.offset != offset:  # pragma: no cover
            raise ImportError(f"http_async_client: {ctype}.{name} has no wire form")
        fmt += f"{count}{code}" if count > 1 else code
        index[name] = at
        at += count
        offset += count * struct.calcsize("=" + code)
    layout = struct.Struct(fmt)
    if layout.size != ffi.sizeof(ctype):  # pragma: no cover - trailing padding
        raise ImportError(f"http_async_client: {ctype} layout mismatch")
    return layout, index


REQHDR, _H = _layout("hac_reqhdr")
REC, _R = _layout("hac_rec")

# hac_reqhdr is packed in this field order (REQHDR.pack arguments)
REQHDR_FIELDS = tuple(_H)
if REQHDR_FIELDS != (  # pragma: no cover - _client packs positionally
    "id", "timeout_ms", "method", "flags", "url_len", "body_len", "hdr_len", "opt_len"
):
    raise ImportError("http_async_client: hac_reqhdr fields changed; update _client")

# indexes into an unpacked hac_rec
R_ID = _R["id"]
R_RAW_OFF = _R["raw_off"]
R_RAW_LEN = _R["raw_len"]
R_BODY_OFF = _R["body_off"]
R_REASON_OFF = _R["reason_off"]
R_REASON_LEN = _R["reason_len"]
R_ERR_OFF = _R["err_off"]
R_ERR_LEN = _R["err_len"]
R_TIMES = _R["times"]
R_STATUS = _R["status"]
R_CURL_CODE = _R["curl_code"]
R_FLAGS = _R["flags"]
R_HTTP_VERSION = _R["http_version"]
R_WRITTEN = _R["written"]
R_ATTEMPTS = _R["attempts"]
R_HEDGED = _R["hedged"]
N_TIMES: int = dict(ffi.typeof("hac_rec").fields)["times"].type.length

__all__ = [
    "METHOD_CODES",
    "N_TIMES",
    "R_ATTEMPTS",
    "R_HEDGED",
    "REC",
    "REQHDR",
    "REQHDR_FIELDS",
    "R_BODY_OFF",
    "R_CURL_CODE",
    "R_ERR_LEN",
    "R_ERR_OFF",
    "R_FLAGS",
    "R_HTTP_VERSION",
    "R_ID",
    "R_RAW_LEN",
    "R_RAW_OFF",
    "R_REASON_LEN",
    "R_REASON_OFF",
    "R_STATUS",
    "R_TIMES",
    "R_WRITTEN",
]

# method name (as _validate.check_method returns it) -> hac.h code
METHOD_CODES: dict[str, int] = {m: getattr(lib, "HAC_M_" + m) for m in METHODS}
