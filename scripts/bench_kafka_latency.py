"""Kafka -> bronze delay at a steady produce rate (issue figure, not a test).

Produces RATE messages/s for SECONDS to a fresh 3-partition topic while `medallion run` streams
it into bronze, then computes, per message, the time from its produce timestamp to the end of
the micro-batch that committed it (from the checkpoint's event log). Prints p50/p99.

usage: python bench_kafka_latency.py MEDALLION_BIN BROKER [RATE] [SECONDS]
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

medallion, broker = sys.argv[1], sys.argv[2]
rate = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
seconds = int(sys.argv[4]) if len(sys.argv) > 4 else 20
topic = f"latency_{int(time.time())}"
admin = AdminClient({"bootstrap.servers": broker})
admin.create_topics([NewTopic(topic, 3, 1)])[topic].result()

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
text = open(os.path.join(root, "projects/music_kafka.toml")).read()
text = text.replace("music_data_json", topic).replace('trigger = "1s"', 'trigger = "100ms"')
lake = tempfile.mkdtemp(prefix="medallion-latency-")
project = os.path.join(lake, "latency.toml")
open(project, "w").write(text)
env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=broker)
run = subprocess.Popen([medallion, "run", project, "--lakehouse", lake], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
time.sleep(2)

p = Producer({"bootstrap.servers": broker, "linger.ms": 5})
start = time.time()
sent = 0
while time.time() - start < seconds:
    due = int((time.time() - start) * rate)
    while sent < due:
        v = json.dumps({"user_id": sent, "track_id": "trk-00001", "artist": "a", "title": "t",
                        "genre": "jazz", "duration_ms": 1, "played_at": "2026-11-24T10:00:00Z"})
        p.produce(topic, v.encode())
        sent += 1
    p.poll(0)
    time.sleep(0.001)
p.flush()
time.sleep(3)
run.send_signal(signal.SIGINT)
run.wait(timeout=30)

# offsets -> batch end time, from the event log
batches = []
for line in open(os.path.join(lake, "_checkpoints/bronze_music/events.jsonl")):
    ev = json.loads(line)["progress"]
    done = datetime.fromisoformat(ev["timestamp"]).timestamp()
    ranges = ev["sources"]["music_topic"]["offset"]["ranges"]
    batches.append((done, ranges))

from deltalake import DeltaTable  # noqa: E402

t = DeltaTable(os.path.join(lake, "bronze/music")).to_pyarrow_table(columns=["partition", "offset", "timestamp"])
parts = t["partition"].to_pylist()
offs = t["offset"].to_pylist()
stamps = [ts.timestamp() for ts in t["timestamp"].to_pylist()]
delays = []
for part, off, ts in zip(parts, offs, stamps):
    key = f"{topic}:{part}"
    for done, ranges in batches:
        r = ranges.get(key)
        if r and r[0] <= off < r[1]:
            delays.append((done - ts) * 1000)
            break
delays.sort()
n = len(delays)
print(f"kafka -> bronze at {rate} msg/s for {seconds} s: {sent} produced, {t.num_rows} in bronze, "
      f"{len(batches)} batches; delay p50 {delays[n // 2]:.0f} ms, p99 {delays[int(n * 0.99)]:.0f} ms, "
      f"max {delays[-1]:.0f} ms")
