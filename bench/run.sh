#!/usr/bin/env bash
# bench/run.sh [--quick] [bench.py options]
#
# One command, fresh Debian 12 machine, as root: installs what the benchmarks
# need (libcurl 8 as the system's libcurl, Debian's own 7.88 in a private
# prefix, apt packages, the bench-only venv bench/.venv with this package
# built on each libcurl and the peers), builds the C ceiling on each libcurl,
# then runs bench/bench.py.
#
#   bash bench/run.sh --quick   smoke run: 1 round, 0.5 s per run (< 3 min once installed)
#   bash bench/run.sh           full run: 3 interleaved rounds, 3 s per run, then
#                               the 100,000-request check (many.py) and the
#                               micro-benchmarks (test_micro.py); ~30 min
#
# Any other option goes to bench.py (--rounds, --seconds, --workloads, --clients,
# --no-png).  BENCH_MANY=0 / BENCH_MICRO=0 skip those steps of the full run;
# a run given --workloads or --clients skips them too.
# Results: bench/results/latest.json, latest.png, many.json.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
cd "$ROOT"

PY=${PYTHON:-python3}
VENV=$HERE/.venv
BUILD=$HERE/.build
APT_PKGS=(nginx-light wrk gcc pkg-config libcurl4-openssl-dev libev-dev libssl-dev openssl
          util-linux python3-venv python3-dev)
PEERS=(pycurl aiohttp uvloop httpx curl_cffi pyreqwest matplotlib pytest pytest-benchmark)

quick=0 subset=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --workloads*|--clients*|--plot-only) subset=1 ;;  # many.py / test_micro.py only in a whole run
  esac
done

log() { echo "bench/run.sh: $*" >&2; }

# ---- libcurl: 8.x as the system's (on Debian 12 from bookworm-backports),
# Debian's own 7.88 unpacked in a private prefix for the *-curl7 rows,
bash tools/libcurl.sh ensure8 || log "could not install libcurl 8: rows run on the system's libcurl"
CURL7=$ROOT/.deps/curl-7.88
bash tools/libcurl.sh private "$CURL7" || log "no private libcurl 7.88: its rows will say n/a"
# the newest libcurl Debian publishes as source, built into a private prefix:
# the one the wheel bundles (the *-src rows)
CURLSRC=$ROOT/.deps/curl-src CURLSRC_OK= CURLSRC_VER=
if bash tools/libcurl.sh source "$CURLSRC"; then
  CURLSRC_OK=1 CURLSRC_VER=$("$CURLSRC/usr/bin/curl-config" --version | awk '{print $2}')
else
  log "no libcurl built from source: its rows will say n/a"
fi
CURL7_INC= CURL7_LIB=
if [ -d "$CURL7/usr" ]; then
  h=$(find -L "$CURL7/usr/include" -path '*/curl/curl.h' 2>/dev/null | head -1)
  l=$(find -L "$CURL7/usr/lib" -name libcurl.so 2>/dev/null | head -1)
  [ -n "$h" ] && CURL7_INC=$(dirname "$(dirname "$h")")
  [ -n "$l" ] && CURL7_LIB=$(dirname "$l")
fi

# ---- apt ---------------------------------------------------------------
bash tools/apt.sh "${APT_PKGS[@]}"

# ---- venv: this package and the peers ----------------------------------
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -v '^WARNING: Location' >&2 || true; }

# reinstall the package whenever its sources change (pip install "$ROOT")
stamp=$(cat pyproject.toml setup.py build_ffi.py csrc/* pkg/http_async_client/*.py 2>/dev/null | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.hac-stamp" 2>/dev/null)" != "$stamp" ] || ! "$VENV/bin/python" -c 'import http_async_client' 2>/dev/null; then
  log "installing http_async_client from $ROOT"
  pip install "$ROOT"
  pip install --force-reinstall --no-deps "$ROOT"
  "$VENV/bin/python" -c 'import http_async_client' # fails loudly if the build did not
  echo "$stamp" > "$VENV/.hac-stamp"
fi

# peers: one pip call; if it fails, one by one (a peer that cannot be
# installed is recorded as n/a by bench.py, it does not stop the run)
if [ ! -f "$VENV/.peers-ok" ]; then
  log "installing peers: ${PEERS[*]}"
  if "$VENV/bin/python" -m pip install --disable-pip-version-check -q "${PEERS[@]}" >/dev/null 2>&1; then
    touch "$VENV/.peers-ok"
  else
    for p in "${PEERS[@]}"; do
      "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$p" >/dev/null 2>&1 \
        || log "could not install $p (its rows will say n/a)"
    done
  fi
fi

# this package built against a private libcurl (HAC_CURL_PREFIX) from a
# clean copy of the tracked files (setuptools would reuse the objects of the
# system build), into a directory its rows put first on PYTHONPATH
build_hac() {  # build_hac TARGET PREFIX LABEL
  local target=$1 prefix=$2 label=$3 src
  if [ "$(cat "$target/.hac-stamp" 2>/dev/null)" = "$stamp" ] && [ -d "$target/http_async_client" ]; then
    return 0
  fi
  log "installing http_async_client built against $label into ${target#"$ROOT"/}"
  src=$(mktemp -d)
  git ls-files -z | xargs -0 cp --parents -t "$src"
  rm -rf "$target"
  if (cd "$src" && HAC_CURL_PREFIX="$prefix" "$VENV/bin/python" -m pip install \
        --disable-pip-version-check -q --no-cache-dir --no-deps --target "$target" . >"$target.log" 2>&1); then
    echo "$stamp" > "$target/.hac-stamp"
  else
    rm -rf "$target"
    log "could not build http_async_client on $label (its rows say n/a; see $target.log)"
  fi
  rm -rf "$src"
}

# pycurl from source into TARGET (put on PYTHONPATH by its rows), beside the
# PyPI wheel (which bundles its own, newer libcurl); pycurl's setup.py takes
# its flags from curl-config ($PYCURL_CURL_CONFIG when set)
build_pycurl() {  # build_pycurl TARGET [CURL_CONFIG]
  local target=$1 cfg=${2:-}
  [ -d "$target/pycurl" ] && return 0
  log "building pycurl into ${target#"$ROOT"/}${cfg:+ with $cfg}"
  if ! env ${cfg:+PYCURL_CURL_CONFIG="$cfg"} "$VENV/bin/python" -m pip install \
      --disable-pip-version-check -q --no-binary pycurl --no-deps --no-cache-dir \
      --target "$target" pycurl >"$target.log" 2>&1; then
    rm -rf "$target"
    log "could not build pycurl into $target (its rows say n/a; see $target.log)"
  fi
}
mkdir -p "$BUILD"
build_pycurl "$VENV/pycurl-syslib"
if [ -n "$CURL7_INC" ] && [ -n "$CURL7_LIB" ]; then
  # 7.88's own curl-config has prefix=/usr baked in (it would hand out the
  # system's 8.x): this one gives the private prefix's -I/-L and an rpath
  cat > "$BUILD/curl7-config" <<EOF
#!/bin/sh
# curl-config for the private libcurl in $CURL7 (written by bench/run.sh)
case "\$1" in
  --cflags) echo "-I$CURL7_INC" ;;
  --libs|--static-libs) echo "-L$CURL7_LIB -Wl,-rpath,$CURL7_LIB -Wl,--enable-new-dtags -lcurl" ;;
  --prefix) echo "$CURL7/usr" ;;
  *) exec sh "$CURL7/usr/bin/curl-config" "\$@" ;;
esac
EOF
  chmod +x "$BUILD/curl7-config"
  build_pycurl "$VENV/pycurl-curl7" "$BUILD/curl7-config"

  build_hac "$VENV/hac-curl7" "$CURL7" "libcurl 7.88"
fi
if [ -n "$CURLSRC_OK" ]; then
  build_hac "$VENV/hac-curlsrc" "$CURLSRC" "libcurl $CURLSRC_VER built from source (the wheel's)"
fi

# ---- the C ceiling, on each libcurl -------------------------------------
build_ceiling() {  # build_ceiling OUT [gcc flags...]
  local out=$1
  shift
  if [ ! -x "$out" ] || [ "$HERE/ceiling.c" -nt "$out" ]; then
    log "building ${out#"$ROOT"/}"
    gcc -std=c11 -O2 -Wall -Wextra -o "$out" "$HERE/ceiling.c" "$@" -lcurl -lev \
      || log "could not build $out (its rows say n/a)"
  fi
}
build_ceiling "$BUILD/ceiling"
if [ -n "$CURL7_INC" ] && [ -n "$CURL7_LIB" ]; then
  build_ceiling "$BUILD/ceiling-curl7" -I"$CURL7_INC" -L"$CURL7_LIB" \
    -Wl,-rpath,"$CURL7_LIB" -Wl,--enable-new-dtags
fi
if [ -n "$CURLSRC_OK" ]; then
  build_ceiling "$BUILD/ceiling-src" -I"$CURLSRC/usr/include" -L"$CURLSRC/usr/lib" \
    -Wl,-rpath,"$CURLSRC/usr/lib" -Wl,--enable-new-dtags
fi

# ---- run ---------------------------------------------------------------
cd "$HERE"
status=0
"$VENV/bin/python" bench.py "$@" || status=$?
if [ "$quick" = 0 ] && [ "$subset" = 0 ]; then
  if [ "${BENCH_MANY:-1}" != 0 ]; then
    echo
    log "100,000 queries at once (many.py)"
    "$VENV/bin/python" many.py || log "many.py: target not met or the burst did not complete (see above)"
  fi
  if [ "${BENCH_MICRO:-1}" != 0 ]; then
    echo
    log "micro-benchmarks (test_micro.py)"
    (cd "$ROOT" && "$VENV/bin/python" -m pytest bench/test_micro.py --benchmark-only -q -p no:cacheprovider) \
      || log "micro-benchmarks failed"
  fi
fi
exit "$status"
