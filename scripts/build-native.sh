#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Builds the preload library of `ioptrace run` with the machine's C compiler into native/build/.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "build-native: no C compiler ($cc): ioptrace run will be unavailable" >&2
	exit 0
fi
mkdir -p "$root/native/build"
"$cc" -O2 -g -Wall -Wextra -Werror -fPIC -shared -o "$root/native/build/libioptrace-preload.so.tmp" \
	"$root/native/preload/preload.c" -ldl -lpthread
mv "$root/native/build/libioptrace-preload.so.tmp" "$root/native/build/libioptrace-preload.so"
