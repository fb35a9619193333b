#!/usr/bin/env bash
# fuzz/build.sh OUTDIR: the harnesses, each linked with every csrc/ file,
# built with clang's libFuzzer, ASan and UBSan (Debian 12: clang-14 and
# libclang-rt-14-dev).  Warnings of the core's own files fail the build.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-fuzz/build}
CC=${CC:-$(command -v clang-14 || command -v clang)}
mkdir -p "$out"
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' pkg/http_async_client/_version.py)
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-std=c11 -g -O1 -Wall -Wextra -Werror -fno-omit-frame-pointer $san \
  -DHAC_VERSION_STR=\"$version\" $(pkg-config --cflags libcurl libev 2>/dev/null || true)"
libs="$(pkg-config --libs libcurl 2>/dev/null || echo -lcurl) -lev -lpthread"
objs=()
for src in csrc/*.c; do
  obj="$out/$(basename "${src%.c}").o"
  # shellcheck disable=SC2086
  "$CC" $cflags -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
  objs+=("$obj")
done
for harness in fuzz/fuzz_*.c; do
  name=$(basename "${harness%.c}")
  # shellcheck disable=SC2086
  "$CC" $cflags -fsanitize=fuzzer "$harness" "${objs[@]}" $libs -o "$out/$name"
done
echo "fuzz/build.sh: built the harnesses of fuzz/fuzz_*.c in $out" >&2
