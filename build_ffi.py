"""cffi build script: compiles csrc/ into ``http_async_client._native``.

Out-of-line API mode.  The cdef is the block of ``csrc/hac.h`` between the
CDEF markers, with every ``#define NAME value`` turned into
``#define NAME ...`` so that constant values come from the compiler, never
from a hand-kept copy.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
CSRC = HERE / "csrc"
DEBIAN_HINT = (
    "http_async_client: libcurl and libev development files not found; "
    "install them with: apt-get install libcurl4-openssl-dev libev-dev pkg-config"
)


def read_version() -> str:
    text = (HERE / "pkg" / "http_async_client" / "_version.py").read_text()
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if not match:
        raise SystemExit("http_async_client: cannot read the package version")
    return match.group(1)


def read_cdef() -> str:
    header = (CSRC / "hac.h").read_text()
    match = re.search(r"/\* CDEF BEGIN \*/(.*)/\* CDEF END \*/", header, re.S)
    if not match:
        raise SystemExit("http_async_client: csrc/hac.h has no CDEF block")
    block = re.sub(r"/\*.*?\*/", "", match.group(1), flags=re.S)
    return re.sub(r"^#define (\w+) .*$", r"#define \1 ...", block, flags=re.M)


def pkg_config(*args: str) -> list[str]:
    if not shutil.which("pkg-config"):
        return []
    try:
        out = subprocess.run(
            ["pkg-config", *args], check=True, capture_output=True, text=True
        ).stdout
    except subprocess.CalledProcessError:
        return []
    return shlex.split(out)


def find_header(name: str, dirs: list[str]) -> bool:
    candidates = dirs + ["/usr/include", "/usr/local/include"]
    multiarch = subprocess.run(
        ["gcc", "-print-multiarch"], capture_output=True, text=True
    ).stdout.strip() if shutil.which("gcc") else ""
    if multiarch:
        candidates.append(f"/usr/include/{multiarch}")
    return any((Path(d) / name).is_file() for d in candidates)


def prefix_flags(prefix: Path) -> tuple[list[str], list[str], list[str]]:
    """Flags for a libcurl unpacked into ``prefix`` (tools/libcurl.sh private).

    The library directory is also the run path, so the module loads that
    libcurl and never the system's."""
    incs = sorted(str(p.parent.parent) for p in prefix.glob("usr/include/**/curl/curl.h"))
    libs = sorted(str(p.parent) for p in prefix.glob("usr/lib/**/libcurl.so"))
    if not incs or not libs:
        raise SystemExit(f"http_async_client: HAC_CURL_PREFIX={prefix} holds no libcurl")
    return incs[:1], libs[:1], [f"-Wl,-rpath,{libs[0]}", "-Wl,--enable-new-dtags"]


def build_flags() -> tuple[list[str], list[str], list[str]]:
    """(include_dirs, library_dirs, extra link args) for libcurl and libev."""
    prefix = os.environ.get("HAC_CURL_PREFIX", "").strip()
    if prefix:
        return prefix_flags(Path(prefix).resolve())
    cflags = pkg_config("--cflags", "libcurl")
    libs = pkg_config("--libs-only-L", "libcurl")
    include_dirs = [f[2:] for f in cflags if f.startswith("-I")]
    library_dirs = [f[2:] for f in libs if f.startswith("-L")]
    if not find_header("curl/curl.h", include_dirs) or not find_header(
        "ev.h", include_dirs
    ):
        print(DEBIAN_HINT, file=sys.stderr)
        raise SystemExit(DEBIAN_HINT)
    return include_dirs, library_dirs, []


def sanitizer_flags() -> list[str]:
    # HAC_SANITIZE=address,undefined or HAC_SANITIZE=thread: test builds only
    value = os.environ.get("HAC_SANITIZE", "").strip()
    if not value:
        return []
    return [
        f"-fsanitize={value}",
        "-fno-sanitize-recover=all",  # any report fails the run
        "-fno-omit-frame-pointer",
        "-g",
    ]


include_dirs, library_dirs, link_args = build_flags()
san = sanitizer_flags()
macros = [("HAC_VERSION_STR", f'"{read_version()}"')]
if os.environ.get("HAC_FAULT_INJECTION"):  # test builds: failing allocations
    macros.append(("HAC_FAULT_INJECTION", "1"))
ffibuilder = FFI()
ffibuilder.cdef(read_cdef())
ffibuilder.set_source(
    "http_async_client._native",
    '#include "hac.h"',
    sources=sorted(str(p.relative_to(HERE)) for p in CSRC.glob("*.c")),
    include_dirs=[str(CSRC), *include_dirs],
    library_dirs=library_dirs,
    libraries=["curl", "ev", "pthread"],
    define_macros=macros,
    # hidden: calls between the core's files bind locally (no PLT); cffi's
    # module init is exported by PyMODINIT_FUNC itself
    extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra", "-fvisibility=hidden", *san],
    extra_link_args=[*link_args, *san],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
