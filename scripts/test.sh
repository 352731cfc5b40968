#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh) and runs every test: unit tests, the integration
# tests on real Delta tables, and the interop check with the Python deltalake reader.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MEDALLION_ROOT"
bash scripts/setup.sh
echo "test: building (target dir $CARGO_TARGET_DIR)"
cargo build --all-targets --locked
cargo test --locked -- --test-threads=2
