#!/usr/bin/env bash
# tools/apt.sh PKG...: installs those of the given Debian packages that are
# not installed yet (one apt-get update + install for all of them; nothing
# when every one is there).  The run.sh, bench/run.sh and tools/libcurl.sh
# steps share it.
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
((${#missing[@]})) || exit 0
echo "apt.sh: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
