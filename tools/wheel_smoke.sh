#!/usr/bin/env bash
# tools/wheel_smoke.sh: the wheel in dist/ (./run.sh wheel) proved where it
# has to work.  Run as root, after ./run.sh wheel.
#
#   0. the sdist still builds from source: pip install dist/*.tar.gz in a
#      fresh venv compiles the core against the system's libcurl
#   1. host, CPython 3.10 and 3.13 (pyenv): a fresh venv each, the wheel
#      installed, and Debian 12's own libcurl 7.88 first on LD_LIBRARY_PATH
#      (tools/libcurl.sh private): the smoke must still run the wheel's libcurl 8
#   2. a Debian 12 root made by `debootstrap --variant=minbase` with python3
#      and python3-venv only (no compiler, no libcurl, no libev: checked), the
#      wheel and its pure-Python/abi3 dependencies installed offline into a venv
#      there, the smoke run under chroot
#
# The smoke (tools/wheel_smoke.py): bundled libcurl >= 8 resolved (ldd) and
# mapped (/proc/self/maps) from http_async_client.libs, GET, POST, HTTPS with
# a CA file, HTTP/2 over TLS, and `python -m http_async_client bench -n 2000`
# (embedded loopback server); every server on 127.0.0.1, inside the chroot
# for step 2 (the chroot shares the host's loopback, nothing else).
#
# The root is kept in .deps/minbase (HAC_MINBASE=DIR elsewhere) for the next
# run; a fresh clone (CI) makes it anew.  HAC_WHEEL_PYTHONS="py1 py2" replaces
# the pyenv interpreters of step 1.  The Debian mirror is the machine's own
# (tools/libcurl.sh mirror): no host name is written here.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD

log() { echo "wheel_smoke.sh: $*" >&2; }
die() { log "$*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(now)
wheels=(dist/*-manylinux_*.whl)
[ ${#wheels[@]} = 1 ] && [ -f "${wheels[0]}" ] || die "expected one manylinux wheel in dist/ (./run.sh wheel)"
wheel=$here/${wheels[0]}
log "$(basename "$wheel"): $(du -k "$wheel" | cut -f1) KiB"

tmp=$(mktemp -d)
root=${HAC_MINBASE:-$here/.deps/minbase}
cleanup() {
  rm -rf "$tmp"
  [ ! -d "$root/smoke" ] || rm -rf "$root/smoke"
}
trap cleanup EXIT

# a throw-away PKI (tests/support/certs.py, standard library + openssl CLI)
python3 - "$tmp/certs" <<'EOF'
import shutil, sys
from pathlib import Path
sys.path.insert(0, "tests")
from support.certs import make_certs
out = Path(sys.argv[1])
c = make_certs(out / "gen")
for src, name in ((c.ca_cert, "ca.pem"), (c.server_cert, "server.pem"), (c.server_key, "server.key")):
    shutil.copy(src, out / name)
EOF

# --- 0. the sdist, compiled here against the system's libcurl
t=$(now)
sdists=(dist/*.tar.gz)
[ ${#sdists[@]} = 1 ] && [ -f "${sdists[0]}" ] || die "expected one sdist in dist/ (./run.sh wheel)"
python3 -m venv "$tmp/venv-sdist"
"$tmp/venv-sdist/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir "${sdists[0]}" 2>&1 |
  grep -v '^WARNING: Location' >&2 || true
got=$(cd "$tmp" && "$tmp/venv-sdist/bin/python" -c 'import http_async_client as h; print(h.curl_version())')
sys_curl=$(bash tools/libcurl.sh version)
[ "$got" = "$sys_curl" ] || die "the sdist build runs libcurl $got, the system has $sys_curl"
log "sdist $(basename "${sdists[0]}"): built from source, runs the system's libcurl $got ($(since "$t") s)"
# the smoke must tell that source build from the wheel: its ldd and mapping
# checks fail (the system's libcurl, no http_async_client.libs)
"$tmp/venv-sdist/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir h2 2>&1 |
  grep -v '^WARNING: Location' >&2 || true
if (cd "$tmp" && "$tmp/venv-sdist/bin/python" "$here/tools/wheel_smoke.py" "$tmp/certs") > "$tmp/neg.log" 2>&1; then
  cat "$tmp/neg.log" >&2
  die "the smoke passed a source build: it cannot see where libcurl comes from"
fi
grep -q '^FAIL ldd' "$tmp/neg.log" && grep -q '^FAIL loaded' "$tmp/neg.log" ||
  { cat "$tmp/neg.log" >&2; die "the smoke failed a source build for another reason"; }
log "the smoke refuses the source build: $(grep '^FAIL loaded' "$tmp/neg.log")"

# --- 1. the host's CPython 3.10 and 3.13, a libcurl 7.88 on the search path
curl7=$here/.deps/curl-7.88
bash tools/libcurl.sh private "$curl7"
curl7_lib=$(dirname "$(ls "$curl7"/usr/lib/*/libcurl.so.4 | head -1)")
pythons=${HAC_WHEEL_PYTHONS:-}
if [ -z "$pythons" ]; then
  pyenv=${PYENV_ROOT:-/root/.pyenv}/versions
  for v in 3.10 3.13; do
    py=$(ls -d "$pyenv/$v".*/bin/python3 2>/dev/null | sort -V | tail -1)
    [ -n "$py" ] || die "no CPython $v under $pyenv (HAC_WHEEL_PYTHONS= names others)"
    pythons+=" $py"
  done
fi
for py in $pythons; do
  t=$(now)
  ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv=$tmp/venv-$ver
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir "$wheel" h2 2>&1 |
    grep -v '^WARNING: Location' >&2 || true
  # what a plain dlopen("libcurl.so.4") finds with this search path: 7.88
  plain=$(LD_LIBRARY_PATH=$curl7_lib "$venv/bin/python" -c \
    'import ctypes; f = ctypes.CDLL("libcurl.so.4").curl_version; f.restype = ctypes.c_char_p; print(f().decode())')
  log "CPython $ver, LD_LIBRARY_PATH=$curl7_lib: dlopen(libcurl.so.4) gives $plain"
  case "$plain" in libcurl/7.*) ;; *) die "the libcurl 7.88 prefix did not load: $plain" ;; esac
  (cd "$tmp" && LD_LIBRARY_PATH=$curl7_lib "$venv/bin/python" "$here/tools/wheel_smoke.py" "$tmp/certs") ||
    die "smoke failed on CPython $ver"
  log "CPython $ver: $(since "$t") s"
done

# --- 2. a Debian 12 minbase root: python3 and python3-venv, nothing else
t=$(now)
if [ ! -f "$root/.ok" ]; then
  command -v debootstrap >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  mirror=$(bash tools/libcurl.sh mirror) || die "no Debian bookworm apt source to copy the mirror from"
  log "debootstrap --variant=minbase bookworm (python3, python3-venv) into $root"
  rm -rf "$root.new"
  mkdir -p "$(dirname "$root")"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root.new" "$mirror" \
    > "$tmp/debootstrap.log" 2>&1 || { tail -20 "$tmp/debootstrap.log" >&2; die "debootstrap failed"; }
  rm -rf "$root"
  mv "$root.new" "$root"
  touch "$root/.ok"
  log "debootstrap: $(since "$t") s, $(du -sm "$root" | cut -f1) MiB"
else
  log "reusing the minbase root $root"
fi

# the premise: nothing in the root could build or provide the core
for tool in gcc cc c99 clang tcc ld; do
  [ ! -e "$root/usr/bin/$tool" ] || die "$root has $tool"
done
for lib in libcurl libev.so; do
  found=$(find "$root/usr/lib" "$root/lib" -name "$lib*" 2>/dev/null | head -1)
  [ -z "$found" ] || die "$root has $found"
done
! chroot "$root" dpkg-query -W -f='${Package}\n' 2>/dev/null | grep -E '^(gcc|gcc-[0-9]+|cpp|cpp-[0-9]+|clang.*|tcc|binutils.*|libcurl.*|libev4|libev-dev|.*-dev)$' ||
  die "$root has a compiler, libcurl, libev or -dev package"

cver=$(chroot "$root" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
smoke=$root/smoke
rm -rf "$smoke"
mkdir -p "$smoke/wheelhouse"
cp "$wheel" "$smoke/wheelhouse/"
cp tools/wheel_smoke.py "$smoke/"
cp -r "$tmp/certs" "$smoke/certs"
# the wheel's dependency (cffi) and the smoke's h2 server, fetched here as
# wheels for the root's CPython: the root itself installs offline
"$here/.venv-build/bin/python" -m pip download -q --disable-pip-version-check --no-cache-dir \
  --only-binary=:all: --python-version "$cver" --platform manylinux2014_x86_64 \
  -d "$smoke/wheelhouse" cffi h2 2>&1 | grep -v '^WARNING: Location' >&2 || true
log "CPython $cver in the root; wheelhouse: $(cd "$smoke/wheelhouse" && ls | tr '\n' ' ')"

t=$(now)
# a mount namespace of its own: /proc and /dev vanish with it, whatever happens
unshare --mount --propagation private /bin/sh -ec '
  root=$1
  mount -t proc proc "$root/proc"
  mount --bind /dev "$root/dev"
  exec chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/smoke LANG=C.UTF-8 /bin/sh -ec "
    cd /smoke
    python3 -m venv venv
    venv/bin/python -m pip install -q --disable-pip-version-check --no-cache-dir \
      --no-index --find-links wheelhouse http_async_client h2
    echo \"in the root: gcc \$(command -v gcc || echo absent), cc \$(command -v cc || echo absent)\"
    echo \"ldd of the core (libcurl and libev lines):\"
    ldd venv/lib/python3*/site-packages/http_async_client/_native.abi3.so | grep -E \"libcurl|libev\"
    venv/bin/python wheel_smoke.py certs
  "
' sh "$root" || die "smoke failed in the minbase root"
log "minbase root: $(since "$t") s"
log "all done in $(since "$t0") s"
