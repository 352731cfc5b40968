#!/usr/bin/env bash
# Frame time of the real window, for the notes (issue #11): the release app under Xvfb with the
# glow renderer, driven by xdotool, with a 200-node pipeline while panning and a 100,000-row
# preview while scrolling. With MEDALLION_FRAME_STATS naming a file the app writes, per frame,
# eframe's frame time (wall clock: UI code, tessellation and GL calls, not the wait for vsync),
# the UI thread's CPU time over the frame and the UI code's CPU time (src/ui/frame_stats.rs).
# The preview step clicks at fixed places of the 1400x860 window: KEEP=1 keeps its screenshot
# to check that the 100,000 rows were shown.
#   bash scripts/frame_time.sh [--frames N]
# Builds in $MEDALLION_RELEASE_TARGET (default ~/.cache/medallion/target-release).
set -euo pipefail
cd "$(dirname "$0")/.."
frames=300
while [ $# -gt 0 ]; do
  case "$1" in
    --frames) frames="$2"; shift 2 ;;
    *) echo "usage: $0 [--frames N]" >&2; exit 2 ;;
  esac
done
source scripts/env.sh
export CARGO_TARGET_DIR="${MEDALLION_RELEASE_TARGET:-$HOME/.cache/medallion/target-release}"
[ "${NO_BUILD:-}" = 1 ] || cargo build --release --locked --bin medallion >&2
bin="$CARGO_TARGET_DIR/release/medallion"
unset RUST_BACKTRACE

work=$(mktemp -d)
app=
xvfb=
trap 'kill $app 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
"$bin" demo-data "$work" --users 100000 --files 4 >/dev/null
python3 - "$work/big.toml" <<'PY'
import sys
out = ['format_version = 1', 'name = "big"', 'lakehouse = "."', '',
       '[[pipeline]]', 'name = "big"', '',
       '[[pipeline.nodes]]', 'id = "n0"', 'kind = "file_source"', 'pos = [0.0, 0.0]',
       'path = "landing/users"', 'format = "json"', '']
for i in range(1, 200):
    out += ['[[pipeline.nodes]]', f'id = "n{i}"', 'kind = "filter"',
            f'pos = [{(i % 14) * 220.0}, {(i // 14) * 140.0}]', 'condition = "true"', '']
for i in range(1, 200):
    out += ['[[pipeline.edges]]', f'from = "n{i-1}"', f'to = "n{i}"', '']
open(sys.argv[1], 'w').write('\n'.join(out))
PY

stats="$work/frames.txt"
: > "$stats"
export MEDALLION_FRAME_STATS="$stats" HOME="$work/home" XDG_DATA_HOME="$work/home/.local/share"
mkdir -p "$HOME"
Xvfb :77 -screen 0 1400x860x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $app $xvfb 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
export DISPLAY=:77
sleep 1
env ${APP_ENV:-} "$bin" "$work/big.toml" >"$work/app.log" 2>&1 &
app=$!
for _ in $(seq 50); do
  xdotool search --name Medallion >/dev/null 2>&1 && break
  sleep 0.2
done
sleep 2

# the frames from line $2 on: p50, p99 and max of the frame's wall time (eframe's), of the UI
# thread's CPU time over the frame (UI code, tessellation, GL calls), of the UI code's alone
report() {
  for col in 1 2 3; do
    tail -n +"$2" "$stats" | awk -v c="$col" '{ print $c }' | sort -n | awk -v what="$1" -v c="$col" '
      { v[NR] = $1 }
      END {
        if (NR == 0) { print what ": no frames"; exit }
        i99 = int(NR * 0.99) + 1; if (i99 > NR) i99 = NR
        part = (c == 1) ? "frame, wall clock" : (c == 2) ? "frame, UI thread CPU" : "UI code CPU"
        printf "%s, %s: %d frames, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", what, part, NR, v[int(NR * 0.5) + 1], v[i99], v[NR]
      }'
  done
}

# 1. pan the canvas: drag its background back and forth
from=$(($(wc -l <"$stats") + 1))
xdotool mousemove 700 330 mousedown 1
for i in $(seq "$frames"); do
  # back and forth, so the nodes stay in view
  if [ $((i / 40 % 2)) -eq 0 ]; then d=4; else d=-4; fi
  xdotool mousemove_relative -- "$d" "$d"
  sleep 0.02
done
xdotool mouseup 1
sleep 0.5
report "200-node pipeline while panning" "$from"

# 2. preview the source's first 100,000 rows and scroll the table. The clicks land where the
# 1400x860 window puts them: the source node (top left once fitted), the inspector's
# "Preview rows", the row-count choice and its last entry.
# (the pan above ends where it started: 320 frames go there and back)
xdotool mousemove 224 68 click 1; sleep 0.5
xdotool mousemove 956 437 click 1; sleep 2
xdotool mousemove 327 568 click 1; sleep 0.5
xdotool mousemove 335 656 click 1; sleep 5
import -window root "$work/preview.png" 2>/dev/null || true
xdotool mousemove 500 760
from=$(($(wc -l <"$stats") + 1))
for i in $(seq "$frames"); do
  # down, and back up for the last quarter
  if [ "$i" -le $((frames * 3 / 4)) ]; then xdotool click 5; else xdotool click 4; fi
  sleep 0.02
done
sleep 0.5
report "100,000-row preview while scrolling" "$from"
[ -n "${KEEP:-}" ] && echo "(screenshot of the preview: $work/preview.png)" >&2
exit 0
