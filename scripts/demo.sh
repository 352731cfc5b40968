#!/usr/bin/env bash
# The main job on a fresh machine: set up, build, and open the desktop app on the demo project.
# On first launch the app writes the demo data set and project into the user's data directory
# (~/.local/share/medallion/demo; never the source tree) and starts its streams. With --headless
# it runs the demo's bronze -> silver -> gold pipelines once (availableNow) from the command line
# instead and prints the tables.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MEDALLION_ROOT"
bash scripts/setup.sh
cargo build --locked --bin medallion
bin="$CARGO_TARGET_DIR/debug/medallion"
lake="${MEDALLION_DEMO_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/medallion/demo}"
if [ "${1:-}" != "--headless" ]; then
    if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
        echo "demo: no display (DISPLAY/WAYLAND_DISPLAY unset); run under a desktop, xvfb-run, or use --headless" >&2
        exit 1
    fi
    exec "$bin" "$@"
fi
shift
if [ ! -d "$lake/landing/users" ]; then
    "$bin" demo-data "$lake" --users 20000 --files 4 --seed 42
fi
"$bin" run projects/demo.toml --lakehouse "$lake" --available-now "$@"
echo
"$bin" tables projects/demo.toml --lakehouse "$lake"
echo
echo "Lakehouse: $lake"
echo "Try: $bin preview projects/demo.toml --lakehouse $lake --node join_ssn --limit 5"
echo "     $bin history $lake/silver/users"
