//! A table's data files as they lie on disk: the log's paths decoded, sizes, and every data
//! file under the table folder (to find the ones no version references).

use std::path::Path;

/// A path as written in the Delta log or by object_store (`title=Software%20Engineer/part-…`)
/// decoded to the file system's (`title=Software Engineer/part-…`).
pub(crate) fn decode_path(p: &str) -> String {
    let bytes = p.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&p[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| p.to_owned())
}

/// The size of a file in bytes (0 when it cannot be read).
pub(crate) fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Every data file under the table folder, relative to it with `/` separators, and its size:
/// everything but hidden entries (`_delta_log`, `_change_data`, `.part-….crc`), as VACUUM
/// considers them.
pub(crate) fn data_files_on_disk(table: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    walk(table, "", &mut out);
    out
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&entry.path(), &rel, out),
            Ok(t) if t.is_file() => {
                out.push((rel, entry.metadata().map(|m| m.len()).unwrap_or(0)));
            }
            _ => {}
        }
    }
}

/// Whether `name` is an object_store upload staging file (`part-….parquet#3`): a writer
/// killed mid-upload leaves one behind, and object_store's listing hides them, so delta-rs's
/// VACUUM never sees them.
pub(crate) fn is_staging_file(name: &str) -> bool {
    match name.rsplit_once('#') {
        Some((stem, n)) => {
            !stem.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// The upload staging files under the table folder that were last written more than
/// `older_than` ago, relative to the table with their sizes.
pub(crate) fn stale_staging_files(
    table: &Path,
    older_than: std::time::Duration,
) -> Vec<(String, u64)> {
    let now = std::time::SystemTime::now();
    data_files_on_disk(table)
        .into_iter()
        .filter(|(rel, _)| is_staging_file(rel.rsplit('/').next().unwrap_or(rel)))
        .filter(|(rel, _)| {
            std::fs::metadata(table.join(rel))
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() >= older_than)
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes_and_keeps_the_rest() {
        assert_eq!(
            decode_path("title=Software%20Engineer/part-1.parquet"),
            "title=Software Engineer/part-1.parquet"
        );
        assert_eq!(decode_path("regi%C3%A3o=s%C3%A3o/x"), "região=são/x");
        assert_eq!(decode_path("100%"), "100%");
        assert_eq!(decode_path("a%zzb"), "a%zzb");
    }

    #[test]
    fn staging_files_are_told_from_data_files() {
        assert!(is_staging_file("part-00000-8bd7-c000.zstd.parquet#1"));
        assert!(is_staging_file("x.parquet#12"));
        assert!(!is_staging_file("part-00000-8bd7-c000.zstd.parquet"));
        assert!(!is_staging_file("a#b.parquet"));
        assert!(!is_staging_file("#1"));
        assert!(!is_staging_file("x.parquet#"));
    }
}
