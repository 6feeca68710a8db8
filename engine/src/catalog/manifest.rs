//! The dataset manifest: which sources were ingested how far, and which Parquet files hold them.
//!
//! It is one JSON document replaced atomically (write, fsync, rename, fsync the directory), so a
//! reader always sees a complete version and a crash leaves the previous one. A Parquet file is part
//! of the dataset exactly when the manifest lists it; that single rule makes ingest idempotent and
//! crash-safe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::scan::Encoding;
use crate::sink::sync_dir;

/// File name of the manifest inside the dataset.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Version of the manifest layout this build writes.
pub const MANIFEST_VERSION: u32 = 1;

/// The whole manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Layout version.
    pub version: u32,
    /// Committed runs, oldest first.
    pub runs: Vec<RunRecord>,
    /// Every source ever ingested.
    pub sources: Vec<SourceRecord>,
    /// Every Parquet file of the dataset.
    pub files: Vec<FileRecord>,
    /// Routes that have their own series in the `stats` table (the rest are `other`); chosen by
    /// volume when first seen and then kept, so series stay comparable across runs.
    #[serde(default)]
    pub route_groups: Vec<String>,
    /// Raw sources copied into the archive, one entry per source (the latest copy).
    #[serde(default)]
    pub archives: Vec<ArchiveRecord>,
    /// Parquet files of retired partitions that were exported to the archive.
    #[serde(default)]
    pub exports: Vec<ExportRecord>,
}

/// A source's raw bytes, kept in the archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchiveRecord {
    /// Source id.
    pub source: u64,
    /// Where the original was (the path it was archived from).
    pub original: String,
    /// Size of the original in bytes.
    pub size: u64,
    /// xxh3-128 of the original bytes, 32 hex digits.
    pub checksum: String,
    /// The archive file: relative to the dataset when inside it, else absolute.
    pub path: String,
    /// Size of the archive file in bytes.
    pub archived_bytes: u64,
    /// `zstd` (the original compressed) or `stored` (already compressed: kept as it is).
    pub codec: String,
    /// When it was archived, RFC 3339.
    pub archived_at: String,
    /// Whether the original has been removed (after verification).
    #[serde(default)]
    pub source_deleted: bool,
}

/// A Parquet file of a retired partition, moved to the archive before the partition was deleted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportRecord {
    /// The file as it was listed in the dataset.
    pub file: FileRecord,
    /// Where it is now: relative to the dataset when inside it, else absolute.
    pub path: String,
    /// xxh3-128 of its bytes.
    pub checksum: String,
}

/// One committed ingest run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    /// Run id (also in the names of the files it wrote).
    pub id: String,
    /// Start time, RFC 3339 UTC.
    pub started: String,
    /// Seconds the run took.
    pub elapsed_s: f64,
    /// Sources read (new or grown).
    pub sources: u64,
    /// Lines read.
    pub lines: u64,
    /// Rows written.
    pub rows: u64,
    /// Bad lines.
    pub bad_lines: u64,
}

impl RunRecord {
    /// Adds the counts of `other` (a later ingest of the same `watch` session) to this record.
    pub fn fold(&mut self, other: &RunRecord) {
        self.elapsed_s += other.elapsed_s;
        self.sources += other.sources;
        self.lines += other.lines;
        self.rows += other.rows;
        self.bad_lines += other.bad_lines;
    }
}

/// One source (a log file's content, recognised by its fingerprint).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceRecord {
    /// Stable id, referenced by files.
    pub id: u64,
    /// Path as given when first ingested (`-` for stdin).
    pub path: String,
    /// Other paths the same content was seen under (rotated or compressed copies).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// How it was stored.
    pub encoding: Encoding,
    /// Size on disk when last read.
    pub size: u64,
    /// xxh3 of the first `fingerprint_len` bytes of content.
    pub fingerprint: u64,
    /// Bytes covered by `fingerprint`.
    pub fingerprint_len: u64,
    /// Shorter heads of a plain file: (length, xxh3) for the lengths of `scan::PREFIX_BYTES`
    /// below `fingerprint_len`; they recognise the file once it is truncated below that.
    #[serde(default)]
    pub prefixes: Vec<(u64, u64)>,
    /// Content offset up to which the source has been ingested.
    pub offset: u64,
    /// Whether the content ingested so far ended with a newline.
    pub ends_with_newline: bool,
    /// Lines read so far.
    pub lines: u64,
    /// Rows stored so far.
    pub rows: u64,
    /// Bad lines so far.
    pub bad_lines: u64,
    /// Bad lines by reason.
    #[serde(default)]
    pub bad_by_reason: BTreeMap<String, u64>,
    /// Log format used.
    pub format: String,
    /// The format inferred from its lines (a `patterns.yaml` entry), when no known one read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inferred_format: Option<String>,
    /// Run that last read it.
    pub last_run: String,
}

/// One Parquet file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileRecord {
    /// Table: `logs` (access logs) or `errors` (error logs).
    #[serde(default = "logs_table")]
    pub table: String,
    /// Path relative to the dataset directory.
    pub path: String,
    /// Source id.
    pub source: u64,
    /// Run that wrote it.
    pub run: String,
    /// Partition date, `YYYY-MM-DD`.
    pub date: String,
    /// Rows.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Written by compaction (time-sorted, high compression): compacted again only when new
    /// files join its partition.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compacted: bool,
}

fn logs_table() -> String {
    "logs".into()
}

impl Manifest {
    /// Reads the manifest of `dataset`; an absent file is an empty manifest.
    pub fn load(dataset: &Path) -> Result<Manifest> {
        let path = dataset.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Manifest {
                    version: MANIFEST_VERSION,
                    ..Manifest::default()
                });
            }
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        Manifest::from_json(&text, &path)
    }

    /// Parses the text of a manifest read from `path`.
    pub fn from_json(text: &str, path: &Path) -> Result<Manifest> {
        let m: Manifest = serde_json::from_str(text).map_err(|e| Error::Dataset {
            path: path.to_path_buf(),
            message: format!("the manifest is not valid ({e}); restore it from a backup or re-ingest into a new dataset"),
        })?;
        if m.version > MANIFEST_VERSION {
            return Err(Error::Dataset {
                path: path.to_path_buf(),
                message: format!(
                    "manifest version {} is newer than this logcrunch understands ({MANIFEST_VERSION}); upgrade logcrunch",
                    m.version
                ),
            });
        }
        Ok(m)
    }

    /// Replaces the manifest of `dataset` atomically, then brings the tables' Delta logs in line
    /// with it ([`super::delta::publish`]: a log it cannot update is reported and caught up by the
    /// next save; the manifest stays the dataset's truth for logcrunch).
    pub fn save(&self, dataset: &Path) -> Result<()> {
        let path = dataset.join(MANIFEST_FILE);
        let tmp: PathBuf = dataset.join(format!(".{MANIFEST_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self).expect("the manifest serialises");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()
        };
        write().map_err(|e| Error::io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("cannot replace", &path, e))?;
        sync_dir(dataset)?;
        super::delta::publish(dataset, self);
        Ok(())
    }

    /// The next free source id.
    pub fn next_source_id(&self) -> u64 {
        self.sources
            .iter()
            .map(|s| s.id.saturating_add(1))
            .max()
            .unwrap_or(0)
    }

    /// Total rows of the files listed.
    pub fn total_rows(&self) -> u64 {
        self.files.iter().fold(0, |n, f| n.saturating_add(f.rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let empty = Manifest::load(dir.path()).unwrap();
        assert!(empty.sources.is_empty() && empty.files.is_empty());
        let mut m = empty.clone();
        m.files.push(FileRecord {
            table: "logs".into(),
            path: "logs/date=2024-01-01/part-x-0-0.parquet".into(),
            source: 0,
            run: "x".into(),
            date: "2024-01-01".into(),
            rows: 5,
            bytes: 100,
            compacted: false,
        });
        m.save(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), m);
        assert_eq!(m.total_rows(), 5);
    }

    #[test]
    fn a_run_time_in_any_notation_survives_a_save_and_a_load() {
        let text = r#"{"version": 0, "runs": [{"id": "r", "started": "2026-12-07T19:45:18Z",
            "elapsed_s": 0.04219E54, "sources": 1, "lines": 1, "rows": 1, "bad_lines": 0}],
            "sources": [], "files": []}"#;
        let m = Manifest::from_json(text, Path::new("manifest.json")).unwrap();
        let again = serde_json::to_string(&m).unwrap();
        assert_eq!(
            Manifest::from_json(&again, Path::new("manifest.json")).unwrap(),
            m
        );
    }

    #[test]
    fn a_corrupt_manifest_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), "{not json").unwrap();
        let err = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("manifest.json") && err.contains("not valid"),
            "{err}"
        );
    }
}
