"""The C core compiles warning-free and the cffi boundary matches it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT

CSRC = ROOT / "csrc"


def _include_flags() -> list[str]:
    out = subprocess.run(
        ["pkg-config", "--cflags", "libcurl"], capture_output=True, text=True
    ).stdout.split()
    return out


@pytest.mark.parametrize("source", sorted(p.name for p in CSRC.glob("*.c")))
def test_c_source_has_no_warnings(source: str, tmp_path: Path) -> None:
    """Every csrc/ file: C11, -Wall -Wextra -Wpedantic, not one warning."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "a C compiler is required to build the package"
    cmd = [
        gcc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow",
        "-Wstrict-prototypes", "-Werror", "-I", str(CSRC), *_include_flags(),
        "-c", str(CSRC / source), "-o", str(tmp_path / "x.o"),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr, result.stderr


def test_no_python_api_in_core() -> None:
    """csrc/ never includes Python.h nor calls the Python C API."""
    for path in CSRC.glob("*.[ch]"):
        text = path.read_text()
        assert "Python.h" not in text and "Py_" not in text, path.name


def test_cdef_comes_from_the_header() -> None:
    """build_ffi reads the cdef from csrc/hac.h; constants stay symbolic."""
    sys.path.insert(0, str(ROOT))
    try:
        import build_ffi
    finally:
        sys.path.remove(str(ROOT))
    cdef = build_ffi.read_cdef()
    assert "hac_client_new" in cdef and "hac_drain_into" in cdef
    assert "#define HAC_M_GET ..." in cdef
    assert not any(
        line.startswith("#define") and not line.endswith("...")
        for line in cdef.splitlines()
    )


def test_compiled_version_matches_package() -> None:
    import http_async_client as hac
    from http_async_client._ffi import ffi, lib

    assert ffi.string(lib.hac_version()).decode() == hac.__version__
