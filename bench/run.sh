#!/usr/bin/env bash
# bench/run.sh [--quick] [bench.py options]
#
# One command, fresh Debian 12 machine, as root: installs what the benchmarks
# need (apt packages, the bench-only venv bench/.venv with this package and
# the peers), builds the C ceiling, then runs bench/bench.py.
#
#   bash bench/run.sh --quick   smoke run: 1 round, 0.5 s per run (< 2 min once installed)
#   bash bench/run.sh           full run: 3 interleaved rounds, 3 s per run, then
#                               the 100,000-request check (many.py) and the
#                               micro-benchmarks (test_micro.py); ~20 min
#
# Any other option goes to bench.py (--rounds, --seconds, --workloads, --clients,
# --no-png).  BENCH_MANY=0 / BENCH_MICRO=0 skip those steps of the full run.
# Results: bench/results/latest.json, latest.png, many.json.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
cd "$ROOT"

PY=${PYTHON:-python3}
VENV=$HERE/.venv
APT_PKGS=(nginx-light wrk gcc pkg-config libcurl4-openssl-dev libev-dev libssl-dev openssl
          util-linux python3-venv python3-dev)
PEERS=(pycurl aiohttp uvloop httpx curl_cffi pyreqwest matplotlib pytest pytest-benchmark)

quick=0
for arg in "$@"; do
  [ "$arg" = "--quick" ] && quick=1
done

log() { echo "bench/run.sh: $*" >&2; }

# ---- apt ---------------------------------------------------------------
missing=()
for pkg in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

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
# pycurl built from source against Debian's libcurl (the one our core uses),
# beside the PyPI wheel (which bundles its own, newer libcurl)
if [ ! -d "$VENV/pycurl-syslib/pycurl" ]; then
  log "building pycurl against the system libcurl"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-binary pycurl --no-deps \
    --target "$VENV/pycurl-syslib" pycurl >/dev/null 2>&1 \
    || log "could not build pycurl against the system libcurl (its rows will say n/a)"
fi

# ---- the C ceiling -----------------------------------------------------
mkdir -p "$HERE/.build"
if [ ! -x "$HERE/.build/ceiling" ] || [ "$HERE/ceiling.c" -nt "$HERE/.build/ceiling" ]; then
  log "building bench/.build/ceiling"
  gcc -std=c11 -O2 -o "$HERE/.build/ceiling" "$HERE/ceiling.c" -lcurl -lev
fi

# ---- run ---------------------------------------------------------------
cd "$HERE"
status=0
"$VENV/bin/python" bench.py "$@" || status=$?
if [ "$quick" = 0 ]; then
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
