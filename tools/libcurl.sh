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
#   tools/libcurl.sh source DIR     the newest libcurl Debian publishes as source
#                                   (the curl source package of the testing and
#                                   unstable suites, same URIs as the machine's
#                                   Debian entry, checked by apt against the
#                                   archive's signatures) built into DIR/usr:
#                                   what the wheel bundles; HAC_CURL_PREFIX=DIR.
#                                   HAC_CURL_SOURCE=8.22.0-1 picks the version
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

# libcurl's features beyond HTTP(S) that the core never uses are left out;
# the TLS library, HTTP/2, compression, IDN and the public suffix list are
# the ones Debian's libcurl4-openssl-dev already depends on (their headers
# come with it).  The default CA file is Debian's bundle and there is no
# default CA directory: libcurl >= 8.2x adds a built-in directory to every
# transfer that sets none (CURLOPT_CAPATH NULL no longer clears it), and a
# directory turns its CA cache off and widens a caller's tls_ca_file
CONFIGURE=(--with-openssl --with-nghttp2 --with-zlib --with-brotli --with-zstd
  --with-libidn2 --with-libpsl --with-gssapi --enable-ntlm --without-libssh2 --without-librtmp
  --disable-ldap --disable-ldaps --disable-rtsp --disable-dict --disable-telnet
  --disable-tftp --disable-pop3 --disable-imap --disable-smtp --disable-gopher
  --disable-mqtt --disable-smb --disable-manual --disable-docs --disable-static
  --enable-versioned-symbols --enable-unity
  --with-ca-bundle=/etc/ssl/certs/ca-certificates.crt --without-ca-path)

source_build() {
  local dir=$1
  if [ -f "$dir/.ok" ]; then
    return 0
  fi
  local uris tmp apt ver cand
  # the build needs make and the headers of what libcurl links; Debian's
  # libcurl4-openssl-dev depends on every one of them
  bash "$(dirname "${BASH_SOURCE[0]}")/apt.sh" make gcc libcurl4-openssl-dev
  uris=$(debian_uris) || { log "no Debian bookworm apt source found to copy"; return 1; }
  tmp=$(mktemp -d)
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/parts" "$tmp/src"
  printf 'Types: deb-src\nURIs: %s\nSuites: forky sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uris" > "$tmp/src.sources"
  # a private apt state: the machine's own apt configuration is not touched
  apt=(-o "Dir::Etc::SourceList=$tmp/src.sources" -o "Dir::Etc::SourceParts=$tmp/parts"
       -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" update -qq
  ver=""
  if [ -n "${HAC_CURL_SOURCE:-}" ]; then
    cand=$HAC_CURL_SOURCE
  else
    # newest first; release candidates skipped; a version still listed but
    # already gone from the pool fails to download and the next is tried
    cand=$(apt-cache "${apt[@]}" showsrc curl | awk '/^Version:/ {print $2}' |
      grep -v '~' | sort -u -r -V)
  fi
  for v in $cand; do
    if (cd "$tmp/src" && apt-get "${apt[@]}" source --download-only -qq "curl=$v" >/dev/null 2>&1); then
      ver=$v
      break
    fi
    rm -f "$tmp/src"/*
  done
  [ -n "$ver" ] || { log "no curl source package could be downloaded (tried: $(echo $cand))"; rm -rf "$tmp"; return 1; }
  log "building libcurl ${ver%%-*} (Debian source curl=$ver) into $dir"
  tar -xf "$(ls "$tmp"/src/curl_*.orig.tar.* | grep -v "\.asc$" | head -1)" -C "$tmp/src"
  local top
  top=$(find "$tmp/src" -maxdepth 1 -type d -name 'curl-*' | head -1)
  rm -rf "$dir"
  mkdir -p "$dir"
  (
    cd "$top"
    ./configure -q --prefix="$dir/usr" "${CONFIGURE[@]}" > "$tmp/build.log" 2>&1
    make -s -C lib -j "$(nproc)" libcurl.la >> "$tmp/build.log" 2>&1
    make -s -C lib install-libLTLIBRARIES >> "$tmp/build.log" 2>&1
    make -s -C include install >> "$tmp/build.log" 2>&1
    make -s install-pkgconfigDATA install-binSCRIPTS >> "$tmp/build.log" 2>&1
  ) || { tail -30 "$tmp/build.log" >&2; rm -rf "$tmp"; return 1; }
  rm -rf "$tmp"
  echo "$ver" > "$dir/.ok"
  log "$("$dir/usr/bin/curl-config" --version) in $dir"
}

case "${1:-}" in
  ensure8) ensure8 ;;
  source) source_build "${2:?usage: tools/libcurl.sh source DIR}" ;;
  private) private "${2:?usage: tools/libcurl.sh private DIR}" ;;
  version) sys_version ;;
  mirror) uris=$(debian_uris) && echo "${uris%% *}" ;;
  *) echo "usage: tools/libcurl.sh ensure8 | private DIR | source DIR | version | mirror" >&2; exit 2 ;;
esac
