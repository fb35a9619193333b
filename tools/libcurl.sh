#!/usr/bin/env bash
# tools/libcurl.sh: which libcurl the core is built against.
#
#   tools/libcurl.sh ensure8        on Debian 12 (bookworm) with libcurl < 8:
#                                   adds the bookworm-backports suite (same URIs
#                                   as the machine's own Debian source) and
#                                   installs libcurl4-openssl-dev 8.x from it
#   tools/libcurl.sh private DIR    Debian 12's own libcurl 7.88 (libcurl4 and
#                                   libcurl4-openssl-dev .debs from the bookworm
#                                   suites) unpacked into DIR, for a build kept
#                                   apart from the system's: HAC_CURL_PREFIX=DIR
#   tools/libcurl.sh version        the installed libcurl4-openssl-dev's version
#   tools/libcurl.sh mirror         the first URI of the machine's Debian bookworm
#                                   source (tools/wheel_smoke.sh's debootstrap)
#
# HAC_NO_BACKPORTS=1 keeps whatever libcurl the system has.
#
# Run as root (apt).  Nothing here names a host: the backports entry copies
# the URIs of the Debian entry that apt already uses.
set -euo pipefail

log() { echo "libcurl.sh: $*" >&2; }

codename() { . /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}"; }

# the installed libcurl4-openssl-dev's upstream version, 0 if none
sys_version() {
  local v
  v=$(dpkg-query -W -f='${Status} ${Version}' libcurl4-openssl-dev 2>/dev/null |
      awk '/install ok installed/ {print $4}')
  v=${v#*:}
  echo "${v%%-*}" | grep . || echo 0
}

major() { echo "${1%%.*}"; }

# URIs of the machine's main Debian archive entry (deb822 or one-line form)
debian_uris() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      /^[[:space:]]*$/ { if (uris != "" && suites ~ /(^| )bookworm( |$)/) { print uris; exit } uris=""; suites=""; next }
      /^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); uris=$0 }
      /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites=$0 }
      END { if (uris != "" && suites ~ /(^| )bookworm( |$)/) print uris }
    ' "$f"
  done | head -1 | grep . && return 0
  [ -f /etc/apt/sources.list ] &&
    awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list | grep .
}

ensure8() {
  if [ -n "${HAC_NO_BACKPORTS:-}" ]; then
    return 0
  fi
  if [ "$(major "$(sys_version)")" -ge 8 ] 2>/dev/null; then
    return 0
  fi
  if [ "$(codename)" != bookworm ]; then
    log "libcurl $(sys_version) and not Debian 12: building against it as it is"
    return 0
  fi
  local list=/etc/apt/sources.list.d/bookworm-backports.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    local uris
    uris=$(debian_uris) || { log "no Debian bookworm apt source found to copy"; return 1; }
    log "adding the bookworm-backports suite ($uris)"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uris" > "$list"
  fi
  if [ "$(id -u)" != 0 ]; then
    log "libcurl $(sys_version): run as root to install libcurl 8 from bookworm-backports"
    return 0
  fi
  log "installing libcurl 8 from bookworm-backports"
  apt-get update -qq
  local pkgs=(libcurl4-openssl-dev libcurl4)
  # the curl tool pins its libcurl4 version: upgrade it alongside if present
  dpkg-query -W -f='${Status}' curl 2>/dev/null | grep -q "install ok installed" && pkgs+=(curl)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports "${pkgs[@]}" >/dev/null
  log "libcurl $(sys_version)"
}

private() {
  local dir=$1
  if [ -f "$dir/.ok" ]; then
    return 0
  fi
  local ver tmp
  ver=$(apt-cache madison libcurl4-openssl-dev | awk -F'|' '{gsub(/ /, "", $2)} $2 ~ /^7\./ {print $2; exit}')
  [ -n "$ver" ] || { log "no libcurl 7.x package in the apt index"; return 1; }
  log "unpacking Debian's libcurl $ver into $dir"
  tmp=$(mktemp -d)
  chmod 755 "$tmp"  # apt downloads as _apt
  (cd "$tmp" && apt-get download -qq "libcurl4=$ver" "libcurl4-openssl-dev=$ver" >/dev/null)
  rm -rf "$dir"
  mkdir -p "$dir"
  local deb
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dir"; done
  rm -rf "$tmp"
  echo "$ver" > "$dir/.ok"
}

case "${1:-}" in
  ensure8) ensure8 ;;
  private) private "${2:?usage: tools/libcurl.sh private DIR}" ;;
  version) sys_version ;;
  mirror) uris=$(debian_uris) && echo "${uris%% *}" ;;
  *) echo "usage: tools/libcurl.sh ensure8 | private DIR | version | mirror" >&2; exit 2 ;;
esac
