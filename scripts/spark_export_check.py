"""Runs exported Medallion scripts on local PySpark and compares their tables with Medallion's.

One Spark session (one JVM start) for every case, as the tests want it:

    python scripts/spark_export_check.py MANIFEST.json

The manifest (written by tests/it/export.rs) lists cases; each case prepares a Spark
lakehouse (Delta tables Medallion read become Parquet, since the verify profile has no Delta
connector), runs the exported script's main() with its arguments, then compares tables:
the expected rows (a Delta table Medallion wrote, or an Arrow IPC file of Medallion's
preview) with the rows Spark wrote (a Parquet folder, or JSON records of a Kafka sink),
A case may instead run a command (`spark-pipelines run` for an SDP export) in a folder.
order-insensitive, timestamps in UTC. Results go to the manifest's "results" path as JSON.
"""

import datetime
import decimal
import importlib.util
import json
import math
import os
import shutil
import sys
import time
import traceback
from collections import Counter

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.ipc
import pyarrow.parquet as pq
from deltalake import DeltaTable


def norm(v):
    """A value as something hashable and comparable across engines."""
    if v is None:
        return None
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return v.astimezone(datetime.timezone.utc).isoformat()
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        return round(v, 9)
    if isinstance(v, decimal.Decimal):
        return str(v.normalize())
    if isinstance(v, bool):
        return v
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, dict):
        return tuple(sorted((k, norm(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, tuple) and len(x) == 2 for x in v):
            # a map as pyarrow gives it
            return tuple(sorted((norm(k), norm(x)) for k, x in v))
        return tuple(norm(x) for x in v)
    return v


def read_expected(spec):
    if "delta" in spec:
        return DeltaTable(spec["delta"]).to_pyarrow_table()
    if "ipc" in spec:
        with pa.ipc.open_file(spec["ipc"]) as f:
            return f.read_all()
    raise ValueError(f"unknown expected spec {spec}")


def read_actual(spec):
    if "parquet" in spec:
        path = spec["parquet"]
        if not os.path.exists(path):
            raise FileNotFoundError(f"Spark wrote no table at {path}")
        return ds.dataset(path, format="parquet", exclude_invalid_files=True).to_table()
    if "json_values" in spec:
        rows = []
        for root, _, files in os.walk(spec["json_values"]):
            for name in sorted(files):
                if name.endswith(".json") and not name.startswith(("_", ".")):
                    with open(os.path.join(root, name), encoding="utf-8") as f:
                        rows.extend(json.loads(json.loads(line)["value"]) for line in f if line.strip())
        return rows
    raise ValueError(f"unknown actual spec {spec}")


def rows_of(table, ignore, rescued_as_flag):
    if isinstance(table, list):
        cols = sorted({k for r in table for k in r} - set(ignore))
        rows = table
    else:
        cols = sorted(set(table.column_names) - set(ignore))
        rows = table.select(cols).to_pylist()
    out = []
    for r in rows:
        vals = []
        for c in cols:
            v = r.get(c)
            if rescued_as_flag and c == "_rescued_data":
                v = v is not None
            vals.append(norm(v))
        out.append(tuple(vals))
    return cols, out


def compare(cmp):
    ignore = cmp.get("ignore", [])
    flag = cmp.get("rescued_as_flag", False)
    exp_cols, exp = rows_of(read_expected(cmp["expected"]), ignore, flag)
    act_cols, act = rows_of(read_actual(cmp["actual"]), ignore, flag)
    res = {"expected_rows": len(exp), "actual_rows": len(act), "ok": False}
    if exp_cols != act_cols:
        res["detail"] = f"columns differ: Medallion {exp_cols}, Spark {act_cols}"
        return res
    ce, ca = Counter(exp), Counter(act)
    if ce == ca:
        res["ok"] = True
        res["detail"] = f"{len(exp)} rows equal"
        return res
    missing = list((ce - ca).elements())[:3]
    extra = list((ca - ce).elements())[:3]
    res["detail"] = (
        f"columns {exp_cols}: {sum((ce - ca).values())} row(s) only in Medallion's, e.g. {missing}; "
        f"{sum((ca - ce).values())} only in Spark's, e.g. {extra}"
    )
    return res


def prepare(prep):
    for src, dst in prep.get("delta_to_parquet", []):
        table = DeltaTable(src).to_pyarrow_table()
        os.makedirs(dst, exist_ok=True)
        pq.write_table(table, os.path.join(dst, "part-00000.parquet"))
    for src, dst in prep.get("copy", []):
        shutil.copytree(src, dst, dirs_exist_ok=True)
        # Spark's file source takes new files in modification-time order, Medallion in name
        # order: give the copies increasing times in name order, so both cut the same batches
        for root, _, files in os.walk(dst):
            for i, name in enumerate(sorted(files)):
                t = 1_700_000_000 + i
                os.utime(os.path.join(root, name), (t, t))


def run_script(path, args, name):
    spec = importlib.util.spec_from_file_location(f"exported_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(args)


def run_command(command, cwd):
    """A Spark tool in its own process (spark-pipelines starts its own Spark Connect server)."""
    import pyspark
    import subprocess

    env = dict(os.environ)
    env["SPARK_HOME"] = os.path.dirname(pyspark.__file__)
    env["PYSPARK_PYTHON"] = sys.executable
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    out = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {(out.stdout + out.stderr)[-3000:]}")


def main():
    manifest = json.load(open(sys.argv[1], encoding="utf-8"))
    from pyspark.sql import SparkSession

    started = time.time()
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("medallion-export-check")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.streaming.forceDeleteTempCheckpointLocation", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    results = {"jvm_start_s": round(time.time() - started, 2), "cases": {}}
    for case in manifest["cases"]:
        t0 = time.time()
        res = {"ok": False, "tables": {}}
        try:
            prepare(case.get("prepare", {}))
            if case.get("script"):
                run_script(case["script"], case["args"], case["name"])
            if case.get("command"):
                run_command(case["command"], case["cwd"])
            for cmp in case.get("compare", []):
                try:
                    res["tables"][cmp["name"]] = compare(cmp)
                except Exception as e:  # noqa: BLE001 - reported per table
                    res["tables"][cmp["name"]] = {"ok": False, "detail": f"{type(e).__name__}: {e}"}
            res["ok"] = all(t["ok"] for t in res["tables"].values())
        except BaseException as e:  # noqa: BLE001 - SystemExit from argparse too
            res["error"] = f"{type(e).__name__}: {str(e)[:2000]}"
            res["trace"] = traceback.format_exc()[-3000:]
        for q in spark.streams.active:
            q.stop()
        res["seconds"] = round(time.time() - t0, 2)
        results["cases"][case["name"]] = res
        print(f"{case['name']}: {'ok' if res['ok'] else 'FAILED'} in {res['seconds']} s", flush=True)
    results["total_s"] = round(time.time() - started, 2)
    with open(manifest["results"], "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
