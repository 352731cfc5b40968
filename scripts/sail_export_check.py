"""Runs an exported Medallion script's batch pipelines on Sail (pysail: a Spark Connect server
that writes real Delta tables) and compares the tables it writes, read back with the Python
`deltalake` package, with Medallion's own tables.

    python scripts/sail_export_check.py SCRIPT SAIL_LAKEHOUSE MEDALLION_LAKEHOUSE TABLE... \
        [--pipelines P1,P2] [--ignore COL,...]

SAIL_LAKEHOUSE must hold the inputs (landing files, Delta tables the pipelines only read).
The script runs unchanged, without --verify: getOrCreate() connects to Sail through
SPARK_REMOTE. Prints one line per table and exits 1 when a table differs.
"""

import argparse
import importlib.util
import os
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spark_export_check import rows_of  # noqa: E402 - the same comparison as the Spark check

from deltalake import DeltaTable  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("script")
    parser.add_argument("sail_lake")
    parser.add_argument("medallion_lake")
    parser.add_argument("tables", nargs="+")
    parser.add_argument("--pipelines", default="")
    parser.add_argument("--ignore", default="")
    args = parser.parse_args()
    from pysail.spark import SparkConnectServer

    started = time.time()
    server = SparkConnectServer("127.0.0.1", 0)
    server.start(background=True)
    host, port = server.listening_address
    os.environ["SPARK_REMOTE"] = f"sc://{host}:{port}"
    print(f"sail: listening on {host}:{port} after {time.time() - started:.2f} s", flush=True)
    spec = importlib.util.spec_from_file_location("exported_on_sail", args.script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pipelines = [p for p in args.pipelines.split(",") if p]
    t0 = time.time()
    module.main([args.sail_lake, *pipelines])
    print(f"sail: ran {os.path.basename(args.script)} in {time.time() - t0:.2f} s", flush=True)
    ignore = [c for c in args.ignore.split(",") if c]
    failed = 0
    for table in args.tables:
        sail = DeltaTable(os.path.join(args.sail_lake, table))
        cols_s, rows_s = rows_of(sail.to_pyarrow_table(), ignore, False)
        cols_m, rows_m = rows_of(
            DeltaTable(os.path.join(args.medallion_lake, table)).to_pyarrow_table(), ignore, False
        )
        same = cols_s == cols_m and Counter(rows_s) == Counter(rows_m)
        failed += not same
        detail = (
            f"{len(rows_s)} rows equal (Delta version {sail.version()})"
            if same
            else f"differs: Medallion {cols_m} {len(rows_m)} rows, Sail {cols_s} {len(rows_s)} rows"
        )
        print(f"{table}: {detail}", flush=True)
    sys.stdout.flush()
    os._exit(1 if failed else 0)


if __name__ == "__main__":
    main()
