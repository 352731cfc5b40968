#!/usr/bin/env bash
# What CI does, plus formatting and lints: run before every commit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MEDALLION_ROOT"
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
bash scripts/test.sh
