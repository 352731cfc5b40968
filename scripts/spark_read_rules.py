"""What Spark's JSON and CSV readers do with the cases README's "JSON the way Spark reads it"
and "Parse modes in batch too" list (json_*.rs, csv_lines.rs and timestamps.rs hold the answers
in their tests).

    ~/.cache/medallion/venv/bin/python scripts/spark_read_rules.py   (needs pyspark and Java 17)
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
    with open(path, "wb") as f:
        f.write(text.encode("utf-8") if isinstance(text, str) else text)
    df = spark.read.schema(schema).options(**opts).json(path)
    print(f"--- {name}: {schema} {opts}")
    for r in df.collect():
        print("   ", r)


read("strings.json",
     '{"track_id": 0, "ok": true, "o": {"a": 1}, "f": 2.50, "arr": [1, {"b": 2.50}]}\n',
     "track_id STRING, ok STRING, o STRING, f STRING, arr STRING")
read("bom.json", b"\xef\xbb\xbf" + b'{"id": 1}\n{"id": 2}\n', "id BIGINT, _corrupt_record STRING")
read("ts.json",
     '{"ts": "2026-01-02T03:04:05.123Z"}\n{"ts": "2026-01-02T03:04:05"}\n{"ts": "2026-01-02 03:04:05"}\n'
     '{"ts": "2026-01-02T04:04:05+01:00"}\n{"ts": "2026-01-02"}\n{"ts": 1767323045}\n{"ts": "soon"}\n',
     "ts TIMESTAMP, _corrupt_record STRING")
read("date.json", '{"d": "2026-01-02"}\n{"d": "2026-1-2"}\n', "d DATE")
read("numtext.json", '{"n": "7"}\n{"n": 7}\n', "n BIGINT, _corrupt_record STRING")
# PySpark 4.3.0: "7" into BIGINT / INT / DOUBLE and "true" into BOOLEAN are malformed records;
# "NaN" into DOUBLE and "7.50" into DECIMAL are read
read("numtext_int.json", '{"n": "7"}\n{"n": 7}\n', "n INT, _corrupt_record STRING")
read("numtext_double.json", '{"n": "7"}\n{"n": "7.5"}\n{"n": "NaN"}\n{"n": 7}\n',
     "n DOUBLE, _corrupt_record STRING")
read("numtext_decimal.json", '{"n": "7.50"}\n{"n": 7.5}\n', "n DECIMAL(10,2), _corrupt_record STRING")
read("booltext.json", '{"n": "true"}\n{"n": true}\n', "n BOOLEAN, _corrupt_record STRING")
read("partial.json", '{"a": 1, "b": "x", "c": 3}\n', "a BIGINT, b BIGINT, c BIGINT, _corrupt_record STRING")
# PERMISSIVE partial results (json_partial.rs): the fields that read are kept, in structs too;
# an array with a bad element, a bad TIMESTAMP, a number out of range are NULL; the last of a
# repeated key counts; a fraction or exponent into an integer, a number into a DATE are bad
read("partial_nested.json",
     '{"v":"a","e":{"x":"bad","y":1},"l":[1,"z",3],"t":"2026-01-02T03:04:05"}\n'
     '{"v":"b","e":{"x":2,"y":3},"l":[1,2],"t":"not a time"}\n'
     '{"v":"c","n":12345678901234567890}\n{"v":"d","n":1.5}\n[1,2]\n{"v":"f","v":"g","n":"x"}\n',
     "v STRING, e STRUCT<x: INT, y: INT>, l ARRAY<INT>, t TIMESTAMP, n BIGINT, _corrupt_record STRING")
read("fraction_exponent.json", '{"n": 1.0}\n{"n": 2e0}\n{"n": 3}\n', "n BIGINT, _corrupt_record STRING")
read("number_date.json", '{"d": 20260102}\n{"d": "2026-01-02"}\n', "d DATE, _corrupt_record STRING")
# DATE from text (timestamps::spark_date): `2026` is 2026-01-01, text after a space or T is
# ignored, digits alone are days since 1970 (only in JSON: the CSV reader refuses them)
read("date_forms.json",
     '{"d": "2026"}\n{"d": "2026-01"}\n{"d": " 2026-01-02 junk"}\n{"d": "2026-01-02T99"}\n'
     '{"d": "2026-02-30"}\n{"d": 2026}\n',
     "d DATE, _corrupt_record STRING")
with open(os.path.join(d, "date_digits.json"), "w") as f:
    f.write('{"d": "20260102"}\n')
print("--- date_digits.json: d DATE (as text: Python has no year 57440)")
print("   ", spark.read.schema("d DATE").json(os.path.join(d, "date_digits.json"))
      .selectExpr("CAST(d AS STRING)").collect())


# ---- CSV: PERMISSIVE and DROPMALFORMED side by side
def read_csv(name, text, schema, **opts):
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
read_csv("fit.csv", "a,1,x\nb,2\nc,3,4,extra\nd,zz,5\n", "a STRING, b INT, c STRING, _corrupt_record STRING")
# BOOLEAN only as true/false in any case; no blank around a number
read_csv("strict.csv", "k,b,i\n1,TRUE,5\n2,yes,5\n3,1,5\n4,False, 7 \n5,t,+5\n6,true,\t8\n",
     "k INT, b BOOLEAN, i INT, _corrupt_record STRING", header=True)
# a quoted field with a comma, non-ASCII text, a value that does not convert
read_csv("quoted.csv", 'ville,montant\n"São Paulo, SP",abc\n東京,7\n',
     "ville STRING, montant DOUBLE, _corrupt_record STRING", header=True)
# DATE from text, as in JSON, but digits alone are no date
read_csv("dates.csv", "1,2026\n2,20260102\n3, 2026-01-02 x\n4,2026-02-30\n", "k INT, d DATE, _corrupt_record STRING")
# DOUBLE: blanks trimmed (Java's parseDouble), NaN/Inf only as Spark spells them; DECIMAL takes no blanks
read_csv("doubles.csv", "0, 1.5 \n1,nan\n2,NaN\n3,+Infinity\n4,-Inf\n5,inf\n6,1e3\n7,\t2.5\n8,Inf\n",
         "k INT, d DOUBLE, _corrupt_record STRING")
read_csv("decimals.csv", "0, 1.5 \n1,+1.5\n", "k INT, d DECIMAL(10,2), _corrupt_record STRING")
# TIMESTAMP from text (spark_timestamp.rs), JSON and CSV alike
ts_forms = ["2026-01-02 03:04", "2026-01-02T03:04:05.5", "2026-01-02 03:04:05 +02:00", "2026", "2026-01",
            "2026-01-02T03", " 2026-01-02 03:04:05", "2026-01-02 03:04:05 junk", "2026-01-02T03:04:05.123+0100",
            "2026-01-02T03:04:05UTC", "2026-01-02T03:04:05.1234567", "1/2/2026 03:04", "2026-01-02T03:04:05Z",
            "2026-07-02T03:04:05 Europe/Paris", "2026-02-30", "2026-01-02 24:00:00", "1700000000", "2026-01-02T03:04Z"]
read_csv("ts_forms.csv", "".join(f'{i},"{t}"\n' for i, t in enumerate(ts_forms)), "k INT, t TIMESTAMP, _corrupt_record STRING")
# a JSON integer into a TIMESTAMP is seconds; a string of digits is text ("2026" is a year)
read("ts_digits.json", '{"t": 1767323045}\n{"t": "2026"}\n{"t": "1767323045"}\n', "t TIMESTAMP, _corrupt_record STRING")
