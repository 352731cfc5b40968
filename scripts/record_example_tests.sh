#!/usr/bin/env bash
# Re-records the example projects' pipeline tests (fixtures in projects/tests/) from the demo
# data set, as a user would: run the pipelines, then `medallion test record` on chosen nodes.
# ad_clicks records from a small hand-written landing set (a duplicate click, a click after
# the hour, an impression never clicked); music_kafka's fixture comes from
# scripts/music_kafka_fixture.py (no broker) and its expected rows from `test --accept`.
#   CARGO_TARGET_DIR=... bash scripts/record_example_tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
B=${MEDALLION:-${CARGO_TARGET_DIR:-$HOME/.cache/medallion/target}/debug/medallion}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# users_batch: bronze -> silver (flatten, cast, distinct, LEFT JOIN ssn, domain columns) -> gold
$B demo-data "$T/batch" --users 200 --files 2 --seed 42 >/dev/null
$B run projects/users_batch.toml --lakehouse "$T/batch" >/dev/null
$B test record projects/users_batch.toml --lakehouse "$T/batch" --node domain_columns --name silver_users_sample --limit 10
$B test record projects/users_batch.toml --lakehouse "$T/batch" --node gold_users_by_title --name gold_users_by_title --limit 10

# users_stream: landing files -> bronze (stream) -> silver (stream-static join)
$B demo-data "$T/stream" --users 200 --files 2 --seed 42 >/dev/null
$B run projects/users_stream.toml --lakehouse "$T/stream" --available-now >/dev/null
$B test record projects/users_stream.toml --lakehouse "$T/stream" --node bronze_users --name bronze_users_stream --limit 10
$B test record projects/users_stream.toml --lakehouse "$T/stream" --node silver_users --name silver_users_stream --limit 10

# demo: generator -> bronze -> silver -> gold signups per title in 30-second windows
# (a copy at 2 rows/s, 200 rows, so signup times span 100 s and 30-second windows close)
$B demo-data "$T/demo" --users 1000 --files 1 --seed 42 >/dev/null
sed -e 's/^rows_per_second = 200$/rows_per_second = 2\nmax_rows = 200/' -e '/^\[\[tests\]\]/,$d' \
    projects/demo.toml >"$T/demo_slow.toml"
$B run "$T/demo_slow.toml" --lakehouse "$T/demo" --available-now >/dev/null
$B test record projects/demo.toml --lakehouse "$T/demo" --node bronze_users --name bronze_users_generated --limit 10
$B test record projects/demo.toml --lakehouse "$T/demo" --node domain_columns --name silver_users_sample --limit 10
$B test record projects/demo.toml --lakehouse "$T/demo" --node gold_signups_per_title --name gold_signups_windows --limit 100

# ad_clicks: a hand-written landing set, both stateful pipelines
A="$T/ads"
mkdir -p "$A/landing/impressions" "$A/landing/clicks"
cat >"$A/landing/impressions/part-00000.json" <<'JSON'
{"impression_id":1,"ad_id":"ad-01","user_id":10,"shown_at":"2026-01-01T12:00:00Z"}
{"impression_id":2,"ad_id":"ad-02","user_id":11,"shown_at":"2026-01-01T12:01:00Z"}
{"impression_id":3,"ad_id":"ad-01","user_id":12,"shown_at":"2026-01-01T12:02:00Z"}
{"impression_id":4,"ad_id":"ad-01","user_id":13,"shown_at":"2026-01-01T13:30:00Z"}
JSON
cat >"$A/landing/clicks/part-00000.json" <<'JSON'
{"click_id":100,"impression_id":1,"clicked_at":"2026-01-01T12:05:00Z"}
{"click_id":100,"impression_id":1,"clicked_at":"2026-01-01T12:05:00Z"}
{"click_id":101,"impression_id":2,"clicked_at":"2026-01-01T13:05:00Z"}
{"click_id":102,"impression_id":4,"clicked_at":"2026-01-01T13:31:00Z"}
JSON
$B run projects/ad_clicks.toml --lakehouse "$A" --available-now >/dev/null
$B test record projects/ad_clicks.toml --lakehouse "$A" --node silver_ad_clicks --name silver_ad_clicks_join --limit 20
$B test record projects/ad_clicks.toml --lakehouse "$A" --node gold_clicks_per_ad --name gold_clicks_per_ad_windows --limit 20

# music_kafka: Kafka records as a fixture, expected rows from the engine
~/.cache/medallion/venv/bin/python scripts/music_kafka_fixture.py
$B test projects/music_kafka.toml --accept

for p in projects/*.toml; do $B test "$p" | tail -1; done
