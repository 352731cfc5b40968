# Shared settings for the project's scripts; sourced, not run.
# The target directory lives outside the clone so repeated CI runs on one machine reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/medallion/target}"
export MEDALLION_VENV="${MEDALLION_VENV:-$HOME/.cache/medallion/venv}"
# Sail (pysail 0.7.2) accepts PySpark clients up to 4.1, not the 4.3 above: its own venv
export MEDALLION_SAIL_VENV="${MEDALLION_SAIL_VENV:-$HOME/.cache/medallion/venv-sail}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
MEDALLION_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MEDALLION_ROOT
