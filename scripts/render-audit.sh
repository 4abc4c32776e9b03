#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Render an audit report (ioptrace audit RUN --html REPORT.html) in headless Chromium and save what a
# browser shows as a PNG, to look at the chart without a desktop:
#   scripts/render-audit.sh REPORT.html [OUT.png] [WIDTH,HEIGHT]
# OUT.png defaults to REPORT.png, the window to 1200,900. Chromium comes from CHROMIUM, else the PATH
# (Debian: apt-get install chromium). The page loads nothing from the network, so no network is needed.
# Exit 2 for bad usage or no Chromium, 3 when Chromium wrote no screenshot.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 3 ] || [ ! -f "$1" ]; then
  echo "usage: scripts/render-audit.sh REPORT.html [OUT.png] [WIDTH,HEIGHT]" >&2
  exit 2
fi
html=$1
png=${2:-${html%.html}.png}
size=${3:-1200,900}
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [ -z "$browser" ]; then
  echo "render-audit: no Chromium found (apt-get install chromium, or set CHROMIUM)" >&2
  exit 2
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$png"
"$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
  --user-data-dir="$profile" --screenshot="$png" --window-size="$size" \
  "file://$(realpath "$html")" >/dev/null 2>&1 || true
if [ ! -s "$png" ]; then
  echo "render-audit: $browser wrote no screenshot of $html" >&2
  exit 3
fi
echo "$png"
