"""Writes the Kafka fixture of projects/music_kafka.toml's recorded test, so the test needs
no broker: two micro-batches of records from topic music_data_json, in the Kafka source's
exact Arrow schema (key, value, topic, partition, offset, timestamp, timestampType: Spark's
columns without includeHeaders).
Batch 0 holds a malformed record, which the parse_json node (drop_malformed) drops.

    ~/.cache/medallion/venv/bin/python scripts/music_kafka_fixture.py
    medallion test projects/music_kafka.toml --accept    # the expected rows, from the engine
"""
import json
import pathlib
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([
    pa.field("key", pa.binary()),
    pa.field("value", pa.binary()),
    pa.field("topic", pa.string(), nullable=False),
    pa.field("partition", pa.int32(), nullable=False),
    pa.field("offset", pa.int64(), nullable=False),
    pa.field("timestamp", pa.timestamp("us", tz="UTC")),
    pa.field("timestampType", pa.int32()),
])


def play(user, track, artist, title, genre, ms, at):
    return json.dumps({"user_id": user, "track_id": track, "artist": artist, "title": title,
                       "genre": genre, "duration_ms": ms, "played_at": at}).encode()


BATCHES = [
    [
        (0, 0, play(1, "t-001", "Nina Simone", "Sinnerman", "jazz", 622000, "2026-01-01T12:00:00Z")),
        (1, 0, play(2, "t-002", "Daft Punk", "One More Time", "electronic", 320000, "2026-01-01T12:00:05Z")),
        (0, 1, b"{\"user_id\": 3, \"track_id\": "),  # cut off: malformed
        (2, 0, play(4, "t-004", "Björk", "Jóga", "pop", 305000, "2026-01-01T12:00:09Z")),
    ],
    [
        (0, 2, play(1, "t-005", "Miles Davis", "So What", "jazz", 562000, "2026-01-01T12:10:00Z")),
        (1, 1, play(5, "t-002", "Daft Punk", "One More Time", "electronic", 320000, "2026-01-01T12:10:30Z")),
    ],
]

root = pathlib.Path(__file__).resolve().parent.parent / "projects/tests/music_kafka/bronze_music"
for i, records in enumerate(BATCHES):
    base = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc).timestamp()
    table = pa.table({
        "key": [f"user-{n}".encode() for n in range(len(records))],
        "value": [v for _, _, v in records],
        "topic": ["music_data_json"] * len(records),
        "partition": [p for p, _, _ in records],
        "offset": [o for _, o, _ in records],
        "timestamp": [datetime.fromtimestamp(base + 600 * i + n, tz=timezone.utc) for n in range(len(records))],
        "timestampType": [0] * len(records),
    }, schema=SCHEMA)
    out = root / f"batch_{i}"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "music_topic.parquet")
    print(f"wrote {out / 'music_topic.parquet'} ({len(records)} records)")
