//! The lakehouse as a user sees it: tables by layer (here), their history (`history`), a
//! version and the difference of two (`versions`), and their upkeep: health, OPTIMIZE,
//! VACUUM (`upkeep`) and auto-compaction of streaming sinks (`auto_compact`).

use std::path::{Path, PathBuf};

use deltalake::table::config::TablePropertiesExt as _;

use crate::model::node::Layer;

use super::{EngineError, Result, delta};

mod auto_compact;
mod files;
mod health;
mod history;
mod log_cleanup;
mod upkeep;
mod versions;

pub use auto_compact::{AutoCompactor, Compacted};
pub use health::{COMPACT_MIN_FILES, TableHealth, table_health};
pub use history::{HistoryEntry, history};
pub use upkeep::{
    OptimizeOptions, OptimizeReport, UpkeepDone, UpkeepOp, VacuumOptions, VacuumReport, optimize,
    run_upkeep, vacuum,
};
pub(crate) use versions::open_version;
pub use versions::{VersionDiff, VersionPreview, compare_versions, table_at_version};

#[cfg(test)]
mod tests;

/// One Delta table found under the lakehouse root.
#[derive(Clone, Debug)]
pub struct TableInfo {
    /// Path relative to the root, with `/` separators (`silver/users`).
    pub name: String,
    pub path: PathBuf,
    pub layer: Option<Layer>,
    pub version: i64,
    /// From the file statistics; `None` when a file has none.
    pub rows: Option<u64>,
    pub files: usize,
    pub size_bytes: u64,
    /// Files under a quarter of the table's target file size.
    pub small_files: usize,
}

impl TableInfo {
    /// Enough small files that OPTIMIZE would help (the sink node's badge).
    pub fn needs_compaction(&self) -> bool {
        self.small_files >= COMPACT_MIN_FILES
    }
}

/// Every Delta table under `root` (up to four folders deep), sorted by layer then name.
pub async fn list_tables(root: &Path) -> Result<Vec<TableInfo>> {
    let mut dirs = Vec::new();
    find_tables(root, 0, &mut dirs)?;
    let mut out = Vec::new();
    for dir in dirs {
        let Some(table) = delta::try_open(&dir).await? else {
            continue;
        };
        let name = dir
            .strip_prefix(root)
            .unwrap_or(&dir)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let snapshot = table.snapshot()?;
        let mut rows = Some(0u64);
        let mut files = 0;
        let mut size_bytes = 0u64;
        let mut sizes = Vec::new();
        for f in snapshot.log_data().iter() {
            files += 1;
            size_bytes += f.size().max(0) as u64;
            sizes.push(f.size());
            rows = match (rows, f.num_records()) {
                (Some(r), Some(n)) => Some(r + n as u64),
                _ => None,
            };
        }
        out.push(TableInfo {
            layer: Layer::from_table_path(&name),
            name,
            path: dir,
            version: snapshot.version() as i64,
            rows,
            files,
            size_bytes,
            small_files: health::small_file_count(
                sizes.into_iter(),
                snapshot.table_config().target_file_size().get(),
            ),
        });
    }
    out.sort_by(|a, b| (a.layer, &a.name).cmp(&(b.layer, &b.name)));
    Ok(out)
}

pub(crate) fn find_tables(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    if dir.join("_delta_log").is_dir() {
        out.push(dir.to_owned());
        return Ok(());
    }
    if depth >= 4 {
        return Ok(());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(EngineError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io(dir, e))?;
        let name = entry.file_name();
        if entry.file_type().is_ok_and(|t| t.is_dir()) && !name.to_string_lossy().starts_with('.') {
            find_tables(&entry.path(), depth + 1, out)?;
        }
    }
    Ok(())
}
