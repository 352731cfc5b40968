#!/usr/bin/env bash
# The main job on a fresh machine: set up, build, write the demo data set into the user's data
# directory (never the source tree), run the users bronze -> silver -> gold pipeline, and print
# the tables it wrote. Extra arguments go to `medallion run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MEDALLION_ROOT"
bash scripts/setup.sh
cargo build --locked --bin medallion
bin="$CARGO_TARGET_DIR/debug/medallion"
lake="${MEDALLION_DEMO_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/medallion/demo}"
if [ ! -d "$lake/landing/users" ]; then
    "$bin" demo-data "$lake" --users 10000 --files 4 --seed 42
fi
"$bin" run projects/users_batch.toml --lakehouse "$lake" "$@"
echo
"$bin" tables projects/users_batch.toml --lakehouse "$lake"
echo
echo "Lakehouse: $lake"
echo "Try: $bin preview projects/users_batch.toml --lakehouse $lake --node join_ssn --limit 5"
echo "     $bin history $lake/silver/users"
