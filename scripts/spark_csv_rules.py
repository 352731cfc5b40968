"""What Spark's CSV reader does with the cases README's "Parse modes in batch too" describes
(csv_lines.rs holds the answers in its tests).

    ~/.cache/medallion/venv/bin/python scripts/spark_csv_rules.py   (needs pyspark and Java 17)
"""
import os
import tempfile

from pyspark.sql import SparkSession

spark = (SparkSession.builder.master("local[1]").config("spark.sql.session.timeZone", "UTC")
         .config("spark.ui.enabled", "false").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
d = tempfile.mkdtemp()


def read(name, text, schema, **opts):
    path = os.path.join(d, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    for mode in ("PERMISSIVE", "DROPMALFORMED"):
        df = spark.read.schema(schema).options(mode=mode, **opts).csv(path)
        if mode == "DROPMALFORMED":
            df = df.drop("_corrupt_record")
        print(f"--- {name} {mode}: {schema} {opts}")
        for r in df.collect():
            print("   ", r)


# a short line and a long one are malformed; PERMISSIVE keeps what converts
read("fit.csv", "a,1,x\nb,2\nc,3,4,extra\nd,zz,5\n", "a STRING, b INT, c STRING, _corrupt_record STRING")
# BOOLEAN only as true/false in any case; no blank around a number
read("strict.csv", "k,b,i\n1,TRUE,5\n2,yes,5\n3,1,5\n4,False, 7 \n5,t,+5\n6,true,\t8\n",
     "k INT, b BOOLEAN, i INT, _corrupt_record STRING", header=True)
# a quoted field with a comma, non-ASCII text, a value that does not convert
read("quoted.csv", 'ville,montant\n"São Paulo, SP",abc\n東京,7\n',
     "ville STRING, montant DOUBLE, _corrupt_record STRING", header=True)
# DATE from text, as in JSON, but digits alone are no date
read("dates.csv", "1,2026\n2,20260102\n3, 2026-01-02 x\n4,2026-02-30\n", "k INT, d DATE, _corrupt_record STRING")
