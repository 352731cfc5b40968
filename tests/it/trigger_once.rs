//! `trigger = "once"` is Spark's `Trigger.Once`: everything available at start in ONE batch,
//! whatever `maxFilesPerTrigger` / `maxBytesPerTrigger` say, then stop (#11 item 3). Checked
//! with a real file source and a real Delta source whose caps would need three batches.

use std::path::Path;
use std::sync::Mutex;

use medallion::engine::{self, RunEvent};
use medallion::model::Project;

use crate::common::{USERS, demo_lakehouse, scalar_i64};

const PROJECT: &str = r#"
format_version = 1
name = "once"

# availableNow keeps the caps: one landing file per batch, so bronze gets three versions
[[pipeline]]
name = "bronze"
mode = "stream"
trigger = "available_now"
[[pipeline.nodes]]
id = "landing"
kind = "file_source"
path = "landing/users"
schema = "uuid STRING, id BIGINT, first_name STRING"
max_files_per_trigger = 1
[[pipeline.nodes]]
id = "bronze_users"
kind = "delta_sink"
table = "bronze/users"
[[pipeline.edges]]
from = "landing"
to = "bronze_users"

# once over the same files, capped at one file and one byte per trigger
[[pipeline]]
name = "bronze_once"
mode = "stream"
trigger = "once"
[[pipeline.nodes]]
id = "landing"
kind = "file_source"
path = "landing/users"
schema = "uuid STRING, id BIGINT, first_name STRING"
max_files_per_trigger = 1
max_bytes_per_trigger = 1
[[pipeline.nodes]]
id = "out"
kind = "delta_sink"
table = "bronze/users_once"
[[pipeline.edges]]
from = "landing"
to = "out"

# once over bronze's three versions, capped at one data file per trigger
[[pipeline]]
name = "silver_once"
mode = "stream"
trigger = "once"
[[pipeline.nodes]]
id = "bronze_in"
kind = "delta_source"
table = "bronze/users"
max_files_per_trigger = 1
[[pipeline.nodes]]
id = "out"
kind = "delta_sink"
table = "silver/users_once"
[[pipeline.edges]]
from = "bronze_in"
to = "out"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_once_reads_everything_in_one_batch_whatever_the_caps() {
    let (lake, _) = demo_lakehouse().await;
    let root = lake.path();
    let project = Project::from_toml(PROJECT, Path::new("once.toml")).unwrap();
    let batches: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
    let on_event = |e: RunEvent| {
        if let RunEvent::BatchCompleted(p) = e {
            batches.lock().unwrap().push((p.pipeline.clone(), p.num_input_rows));
        }
    };
    engine::run_project(&project, root, &engine::RunOptions::default(), &on_event).await.unwrap();
    let batches = batches.into_inner().unwrap();
    let of = |name: &str| batches.iter().filter(|(p, _)| p == name).collect::<Vec<_>>();
    let bronze_rows = scalar_i64(&root.join("bronze/users"), "SELECT count(*) FROM t").await;
    assert!(bronze_rows >= USERS as i64, "{bronze_rows}");
    assert_eq!(of("bronze").len(), 3, "availableNow keeps the cap of one file: {batches:?}");
    for name in ["bronze_once", "silver_once"] {
        let b = of(name);
        assert_eq!(b.len(), 1, "{name}: one batch: {batches:?}");
        assert_eq!(b[0].1 as i64, bronze_rows, "{name}: every row in it: {batches:?}");
    }
    for table in ["bronze/users_once", "silver/users_once"] {
        let n = scalar_i64(&root.join(table), "SELECT count(*) FROM t").await;
        assert_eq!(n, bronze_rows, "{table}");
    }
}
