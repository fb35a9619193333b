#!/usr/bin/env bash
# ./run.sh [ARGS]       install what is missing, build, run the main job
#                       (the CLI; with no URL: load against an embedded
#                       loopback server)
# ./run.sh test [ARGS]  the same install and build, then the whole test suite
# PYTHON=python3.13 ./run.sh test   picks the interpreter (venv .venv-<version>)
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
APT_PKGS=(gcc pkg-config libcurl4-openssl-dev libev-dev openssl nginx-light iproute2)

missing=()
for pkg in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv python3-dev)
fi
if ((${#missing[@]})); then
  echo "run.sh: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

ver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV=${VENV:-.venv-$ver}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check '.[test]' 2>&1 | grep -v '^WARNING: Location' >&2 || true
"$VENV/bin/python" -c 'import http_async_client' # fails loudly if the build did not

case "${1:-}" in
  test) shift; exec "$VENV/bin/python" -m pytest "$@" ;;
  *) exec "$VENV/bin/python" -m http_async_client "$@" ;;
esac
