#!/usr/bin/env bash
# Takes docs/monitor.png: the real window (glow on Mesa) under Xvfb, on a fresh demo directory,
# with the demo's streams running as on first launch. Installs Xvfb and ImageMagick if missing.
#   bash scripts/screenshot.sh [SECONDS_BEFORE_THE_SHOT] [OUTPUT.png]
# docs/monitor.png was taken with the silver tab open and the graph fitted (double-click):
#   MEDALLION_SHOT_XDOTOOL="mousemove 170 32 click 1;mousemove 620 540 click --repeat 2 1" \
#       bash scripts/screenshot.sh 15
# docs/stateful.png: the gold tab, the bottom panel dragged 110 px taller for the plots' legends
# (move onto the edge, then press, as separate steps: a press in the same instant as the move
# reaches egui before the edge was hovered):
#   MEDALLION_SHOT_XDOTOOL="mousemove 268 32 click 1;mousemove 620 579;mousedown 1;mousemove 620 520;mousemove 620 470;mouseup 1;mousemove 1200 700" \
#       bash scripts/screenshot.sh 50 docs/stateful.png
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MEDALLION_ROOT"
bash scripts/setup.sh
need=()
for pkg in xvfb imagemagick xdotool; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --locked --bin medallion
wait_s="${1:-20}"
out="${2:-docs/monitor.png}"
tmp="$(mktemp -d)"
export MEDALLION_DEMO_DIR="$tmp/demo"
# as on first launch: no window size or panel layout remembered from an earlier run (eframe
# keeps them in $XDG_DATA_HOME/medallion/app.ron)
export XDG_DATA_HOME="$tmp/data"
Xvfb :97 -screen 0 1400x860x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $app $xvfb 2>/dev/null || true; rm -rf "$tmp"' EXIT
sleep 1
DISPLAY=:97 "$CARGO_TARGET_DIR/debug/medallion" >"$tmp/app.log" 2>&1 &
app=$!
sleep "$wait_s"
# MEDALLION_SHOT_XDOTOOL="mousemove 170 32 click 1;...": xdotool steps before the shot
IFS=';' read -ra steps <<<"${MEDALLION_SHOT_XDOTOOL:-}"
for step in "${steps[@]}"; do
    # shellcheck disable=SC2086
    DISPLAY=:97 xdotool $step
    sleep 3
done
DISPLAY=:97 import -window root "$out"
echo "screenshot: $out"
