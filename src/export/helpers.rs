//! The Python the generated script defines besides its pipelines: the `Lakehouse` (root and
//! profile) and the helpers a node may call, each emitted only when a node uses it.

use super::nodes::Helper;

pub const LAKEHOUSE_CLASS: &str = r#"class Lakehouse:
    """The lakehouse root that table paths are relative to, and the run's profile.

    The verify profile (--verify) runs this script where the Delta and Kafka connectors
    cannot be downloaded: tables are Parquet folders, a Kafka source reads the topic's records
    from JSON files under LAKEHOUSE/_verify/kafka/<node id>/, and every stream runs
    availableNow.
    """

    def __init__(self, root: str, verify: bool = False, available_now: bool = False) -> None:
        self.root = root
        self.verify = verify
        self.available_now = available_now or verify
        self.table_format = "parquet" if verify else "delta"

    def path(self, table: str) -> str:
        """A table or folder path, relative to the lakehouse root unless absolute."""
        return table if os.path.isabs(table) else os.path.join(self.root, table)

    def trigger(self, **trigger: object) -> dict:
        """The pipeline's trigger, or availableNow with --available-now or --verify."""
        return {"availableNow": True} if self.available_now else trigger

    def read_stream(self, spark: SparkSession, table: str):
        """A stream over a table's new versions (a Parquet stream needs its schema first)."""
        reader = spark.readStream.format(self.table_format)
        if self.verify:
            reader = reader.schema(spark.read.parquet(self.path(table)).schema)
        return reader

    def read_files_stream(self, spark: SparkSession, file_format: str):
        """Auto Loader (Databricks' cloudFiles); Spark's own file stream when verifying."""
        if self.verify:
            return spark.readStream.format(file_format)
        return spark.readStream.format("cloudFiles").option("cloudFiles.format", file_format)
"#;

/// The Python of one helper.
pub fn helper_code(h: Helper) -> &'static str {
    match h {
        Helper::Flatten => FLATTEN,
        Helper::MergeInto => MERGE_INTO,
        Helper::OverwriteTable => OVERWRITE_TABLE,
        Helper::Quarantine => QUARANTINE,
        Helper::KafkaRecords => KAFKA_RECORDS,
    }
}

const FLATTEN: &str = r#"def flatten(
    df: DataFrame, separator: str = "_", columns: list[str] | None = None, recursive: bool = True
) -> DataFrame:
    """Every struct field to a top-level column parent<separator>field (Medallion's Flatten)."""

    def expand(column, name: str, struct: StructType, out: list) -> None:
        for field in struct.fields:
            child = column.getField(field.name)
            child_name = f"{name}{separator}{field.name}"
            if recursive and isinstance(field.dataType, StructType):
                expand(child, child_name, field.dataType, out)
            else:
                out.append(child.alias(child_name))

    out: list = []
    for field in df.schema.fields:
        column = F.col(f"`{field.name}`")
        if isinstance(field.dataType, StructType) and (not columns or field.name in columns):
            expand(column, field.name, field.dataType, out)
        else:
            out.append(column)
    return df.select(*out)
"#;

const MERGE_INTO: &str = r#"def merge_into(
    spark: SparkSession, lake: Lakehouse, batch: DataFrame, table: str, keys: list[str]
) -> None:
    """MERGE batch into table on keys: matched rows are updated, new keys inserted."""
    path = lake.path(table)
    if lake.verify:  # Parquet has no MERGE: the table's rows with other keys, then the batch
        if os.path.exists(path):
            kept = spark.read.parquet(path).join(batch.select(*keys), keys, "left_anti")
            batch = kept.unionByName(batch).localCheckpoint()
        batch.write.mode("overwrite").parquet(path)
        return
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        batch.write.format("delta").save(path)
        return
    condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(batch.alias("s"), condition)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
"#;

const OVERWRITE_TABLE: &str = r#"def overwrite_table(lake: Lakehouse, batch: DataFrame, table: str) -> None:
    """Rewrite table with a micro-batch's whole result (complete output mode)."""
    batch.write.format(lake.table_format).mode("overwrite").save(lake.path(table))
"#;

const QUARANTINE: &str = r#"def write_quarantine(lake: Lakehouse, rows: DataFrame, table: str, batch_id: int) -> None:
    """Append the rows a pipeline set aside to its quarantine table, with batch and time."""
    if rows.isEmpty():
        return
    (
        rows.withColumn("batch_id", F.lit(batch_id).cast("bigint"))
        .withColumn("quarantined_at", F.current_timestamp())
        .write.format(lake.table_format)
        .mode("append")
        .save(lake.path(table))
    )
"#;

const KAFKA_RECORDS: &str = r#"KAFKA_RECORDS = (
    "key STRING, value STRING, topic STRING, partition INT, offset BIGINT, "
    "timestamp TIMESTAMP, timestampType INT"
)


def kafka_records(
    spark: SparkSession, lake: Lakehouse, node: str, stream: bool, headers: bool = False
) -> DataFrame:
    """The verify profile's Kafka source: the records as JSON lines under
    LAKEHOUSE/_verify/kafka/<node>/, key and value binary as the connector gives them
    (and its headers column with includeHeaders)."""
    reader = spark.readStream if stream else spark.read
    schema = KAFKA_RECORDS
    if headers:
        schema += ", headers ARRAY<STRUCT<key: STRING, value: STRING>>"
    records = reader.schema(schema).json(lake.path(f"_verify/kafka/{node}"))
    records = records.withColumn("key", F.col("key").cast("binary")).withColumn(
        "value", F.col("value").cast("binary")
    )
    if headers:
        records = records.withColumn(
            "headers", F.col("headers").cast("array<struct<key: string, value: binary>>")
        )
    return records
"#;

/// The end of the imports and the support code both exports share: the `StructType` import
/// when a Flatten needs it, the `Lakehouse` class, then each helper the nodes use.
pub fn push_support_code(
    out: &mut String,
    helpers: &std::collections::BTreeSet<super::nodes::Helper>,
    body: &str,
    extra_imports: &[&str],
) {
    out.push_str(if helpers.is_empty() {
        "from pyspark.sql import SparkSession\n"
    } else {
        "from pyspark.sql import DataFrame, SparkSession\n"
    });
    let helper_text: String =
        helpers.iter().map(|h| helper_code(*h)).collect::<Vec<_>>().join("\n\n");
    if body.contains("F.") || helper_text.contains("F.") {
        out.push_str("from pyspark.sql import functions as F\n");
    }
    for line in extra_imports {
        out.push_str(line);
        out.push('\n');
    }
    if helpers.contains(&super::nodes::Helper::Flatten) {
        out.push_str("from pyspark.sql.types import StructType\n");
    }
    out.push_str("\n\n");
    out.push_str(LAKEHOUSE_CLASS);
    for h in helpers {
        out.push_str("\n\n");
        out.push_str(helper_code(*h));
    }
}
