#!/usr/bin/env bash
# Takes docs/monitor.png: the real window (glow on Mesa) under Xvfb, on a fresh demo directory,
# with the demo's streams running as on first launch. Installs Xvfb and ImageMagick if missing.
#   bash scripts/screenshot.sh [SECONDS_BEFORE_THE_SHOT] [OUTPUT.png]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MEDALLION_ROOT"
bash scripts/setup.sh
need=()
for pkg in xvfb imagemagick xdotool; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if [ "${#need[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --locked --bin medallion
wait_s="${1:-20}"
out="${2:-docs/monitor.png}"
tmp="$(mktemp -d)"
export MEDALLION_DEMO_DIR="$tmp/demo"
Xvfb :97 -screen 0 1600x1000x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $app $xvfb 2>/dev/null || true; rm -rf "$tmp"' EXIT
sleep 1
DISPLAY=:97 "$CARGO_TARGET_DIR/debug/medallion" >"$tmp/app.log" 2>&1 &
app=$!
sleep "$wait_s"
# show the silver stream's tab: its graph has the most edges to show rates on
if [ -n "${MEDALLION_SHOT_CLICK:-}" ]; then
    DISPLAY=:97 xdotool mousemove ${MEDALLION_SHOT_CLICK} click 1
    sleep 3
fi
DISPLAY=:97 import -window root "$out"
echo "screenshot: $out"
