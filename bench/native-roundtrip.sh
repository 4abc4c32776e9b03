#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# B7 (first part): the median and p99 round trip of a trivial ioctl through the preload library and the
# model. Usage: bench/native-roundtrip.sh [CALLS]   (runs the built CLI if present, else from source)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sh "$root/scripts/build-native.sh"
cc -O2 -Wall -o "$work/roundtrip" "$root/bench/native/roundtrip.c"
if [ -f "$root/dist/src/cli/bin.js" ]; then
	set -- node "$root/dist/src/cli/bin.js" run --db "$work/runs.db" -- "$work/roundtrip" "${1:-2000}"
else
	set -- "$root/node_modules/.bin/vite-node" "$root/src/cli/bin.ts" -- run --db "$work/runs.db" -- "$work/roundtrip" "${1:-2000}"
fi
"$@"
