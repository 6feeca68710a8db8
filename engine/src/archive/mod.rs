//! `archive`: keeps what has been processed in as little space as it needs, and gives it back.
//!
//! Three passes, each under the dataset's writer lock and each committed through the manifest, so
//! that a crash at any point leaves either the old state or the new one:
//!
//! 1. **Raw logs.** Every source that has been ingested to its end is compressed with zstd (or, when
//!    it is already gzip or zstd, copied byte for byte) into `archive/raw/`, hashed (xxh3-128) as it
//!    is read. The archive is fsynced, read back and hashed again before it is renamed into place
//!    and listed in the manifest; only then, and only with `delete_source`, is the original removed.
//!    `ingest` reads the archived files directly (they are recognised as the sources they came from).
//! 2. **Compaction.** A partition older than `compact_after_days` has each source's files rewritten
//!    as one time-sorted file at a high zstd level ([`compact`]); the manifest swaps the old files
//!    for the new one in one atomic replace, and the old files are deleted after it.
//! 3. **Retention.** A partition older than `retention_days` is removed from the dataset, its files
//!    first moved (copied, verified, listed) to `archive/partitions/` when `export_before_delete`.
//!
//! Anything a crash leaves behind (temporary files, an archive copy or a compacted file the manifest
//! does not list) is removed by the next run, which then does the interrupted work again.
//! `restore` writes an archived source back, verifying every byte before the file is renamed into
//! place. Tests stop the process at named points with `LOGCRUNCH_TEST_PAUSE` (see [`checkpoint`]).

pub mod compact;
pub mod raw;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

#[cfg(feature = "duckdb")]
use crate::catalog::Catalog;
use crate::catalog::Dataset;
use crate::catalog::manifest::{ArchiveRecord, ExportRecord, FileRecord, Manifest};
use crate::error::{Error, Result};
use crate::parse::value::{format_rfc3339, now_us, parse_date};
use crate::scan::Encoding;
#[cfg(feature = "duckdb")]
use crate::scan::Progress;
use crate::sink::sync_dir;
use raw::{Codec, Compression, Digest};

pub use crate::sink::{PAUSE_ENV, pause_point as checkpoint};

const DAY_US: i64 = 86_400_000_000;

/// `archive:` section of the configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Run the archive step at the end of `logcrunch run`.
    pub enabled: bool,
    /// Archive directory (default: `archive` inside the dataset).
    pub dir: Option<PathBuf>,
    /// zstd level of raw log archives.
    pub zstd_level: i32,
    /// zstd worker threads; 0 means one per core.
    pub threads: usize,
    /// Remove an original log once its archive is verified.
    pub delete_source: bool,
    /// A log modified more recently than this is still being written and is left alone.
    pub min_idle: String,
    /// Partitions older than this many days are compacted (null: never).
    pub compact_after_days: Option<u32>,
    /// zstd level of compacted Parquet files.
    pub compact_zstd_level: i32,
    /// Rows per row group of compacted files.
    pub compact_row_group_rows: usize,
    /// Partitions older than this many days are removed from the dataset (null: never).
    pub retention_days: Option<u32>,
    /// Move a retired partition's files to the archive instead of deleting them.
    pub export_before_delete: bool,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            enabled: true,
            dir: None,
            zstd_level: 12,
            threads: 0,
            delete_source: false,
            min_idle: "10m".into(),
            compact_after_days: Some(7),
            compact_zstd_level: 9,
            compact_row_group_rows: 1 << 18,
            retention_days: None,
            export_before_delete: true,
        }
    }
}

impl ArchiveConfig {
    /// Checks the values; the message names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (key, level) in [
            ("zstd_level", self.zstd_level),
            ("compact_zstd_level", self.compact_zstd_level),
        ] {
            if !(1..=22).contains(&level) {
                return Err(format!("archive.{key} must be 1..=22, got {level}"));
            }
        }
        crate::parse::value::parse_duration(&self.min_idle)
            .map_err(|e| format!("archive.min_idle: {e}"))?;
        if self.compact_row_group_rows == 0 {
            return Err("archive.compact_row_group_rows must be positive".into());
        }
        if let (Some(c), Some(r)) = (self.compact_after_days, self.retention_days)
            && r < c
        {
            return Err(format!(
                "archive.retention_days ({r}) is shorter than archive.compact_after_days ({c}); partitions would be compacted never or just before they are deleted"
            ));
        }
        Ok(())
    }
}

/// What happened, or would happen, to one source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceAction {
    /// The original's path.
    pub path: String,
    /// `archived`, `deleted` (archived earlier, original removed now), `kept` (already archived),
    /// `skipped` or `failed`.
    pub action: String,
    /// Why it was skipped, or the error that stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The archive file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    /// `zstd` or `stored`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// Size of the original.
    pub bytes_before: u64,
    /// Size of the archive (0 in a dry run: unknown until compressed).
    pub bytes_after: u64,
    /// Whether the original was removed.
    pub source_deleted: bool,
}

/// One source's files of one partition rewritten as one.
#[derive(Debug, Clone, Serialize)]
pub struct CompactAction {
    /// Table (`logs`, `errors`, `stats`).
    pub table: String,
    /// Partition date.
    pub date: String,
    /// Source path.
    pub source: String,
    /// Files before (after: one).
    pub files: usize,
    /// Rows.
    pub rows: u64,
    /// Bytes before.
    pub bytes_before: u64,
    /// Bytes after (0 in a dry run).
    pub bytes_after: u64,
    /// Why it failed (the old files were kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One partition removed from the dataset.
#[derive(Debug, Clone, Serialize)]
pub struct RetireAction {
    /// Partition date.
    pub date: String,
    /// Files of every table.
    pub files: usize,
    /// Rows of `logs`.
    pub rows: u64,
    /// Bytes of every table.
    pub bytes: u64,
    /// Where the files went, when exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exported_to: Option<String>,
}

/// Bytes before and after a pass, and their ratio.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    /// Bytes before.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
    /// before / after (0 when nothing was written).
    pub ratio: f64,
}

impl Totals {
    fn of(pairs: impl Iterator<Item = (u64, u64)>) -> Totals {
        let (b, a) = pairs.fold((0, 0), |(b, a), (x, y)| (b + x, a + y));
        Totals {
            bytes_before: b,
            bytes_after: a,
            ratio: if a > 0 { b as f64 / a as f64 } else { 0.0 },
        }
    }
}

/// Seconds each pass of `archive` took.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Seconds {
    /// Raw logs (compression and verification).
    pub raw: f64,
    /// Compaction.
    pub compaction: f64,
    /// Retention.
    pub retention: f64,
}

/// What `archive` did (or would do, in a dry run).
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveSummary {
    /// Nothing was changed.
    pub dry_run: bool,
    /// The archive directory.
    pub archive_dir: String,
    /// Day everything is judged against, `YYYY-MM-DD`.
    pub as_of: String,
    /// Per source.
    pub sources: Vec<SourceAction>,
    /// Raw logs archived by this run.
    pub raw: Totals,
    /// Compactions.
    pub compactions: Vec<CompactAction>,
    /// Compacted Parquet before and after.
    pub compacted: Totals,
    /// Partitions removed.
    pub retired: Vec<RetireAction>,
    /// Seconds of each pass.
    pub seconds: Seconds,
    /// Seconds it took.
    pub elapsed_s: f64,
    /// What failed (the rest was done); the command exits 1 when this is not empty.
    pub errors: Vec<String>,
}

/// What `restore` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The archive file read.
    pub archive: String,
    /// The file written.
    pub path: String,
    /// `restored`, `present` (an identical file was already there) or `would_restore` (dry run).
    pub action: String,
    /// Size of the archive file.
    pub bytes_before: u64,
    /// Size of the restored file.
    pub bytes_after: u64,
    /// after / before.
    pub ratio: f64,
    /// The verified checksum.
    pub checksum: String,
}

/// Which archived sources `restore` writes back.
#[derive(Debug, Clone)]
pub enum RestoreTarget {
    /// A source by its original path, file name or archive path.
    Source(String),
    /// Every archived source with rows on this day (`YYYY-MM-DD`).
    Date(String),
}

/// A source to archive (or, archived earlier, whose original is to be removed).
struct Job {
    /// Index in the manifest's sources.
    source: usize,
    /// The file to read.
    path: PathBuf,
    /// Bytes to archive (all of the file, as ingested).
    len: u64,
    /// Archived already: only the original is to be removed.
    delete_only: bool,
    /// Index of its [`SourceAction`].
    action: usize,
}

#[cfg(feature = "duckdb")]
/// Archives, compacts, retires and restores; see the module docs.
#[derive(Debug, Clone)]
pub struct Archiver {
    cfg: ArchiveConfig,
    dataset: PathBuf,
    dir: PathBuf,
    as_of_day: i64,
}

fn date_of(day: i64) -> String {
    format_rfc3339(day * DAY_US)[..10].to_string()
}

/// `path` relative to `base` when inside it, else as it is.
fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(feature = "duckdb")]
impl Archiver {
    /// An archiver of `dataset` judging ages against the day of `now_us` (µs since the epoch).
    pub fn new(cfg: &ArchiveConfig, dataset: &Path, now_us: i64) -> Archiver {
        let dir = match &cfg.dir {
            Some(d) => std::path::absolute(d).unwrap_or_else(|_| d.clone()),
            None => dataset.join("archive"),
        };
        Archiver {
            cfg: cfg.clone(),
            dataset: dataset.to_path_buf(),
            dir,
            as_of_day: now_us.div_euclid(DAY_US),
        }
    }

    fn raw_dir(&self) -> PathBuf {
        self.dir.join("raw")
    }

    fn resolve(&self, stored: &str) -> PathBuf {
        let p = Path::new(stored);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dataset.join(p)
        }
    }

    fn zstd(&self) -> Compression {
        let threads = crate::scan::threads_or_cores(self.cfg.threads);
        Compression {
            level: self.cfg.zstd_level,
            threads: if threads > 1 { threads as u32 } else { 0 },
        }
    }

    /// Runs the three passes (or, with `dry_run`, reports what they would do).
    pub fn archive(&self, dry_run: bool, progress: &Progress) -> Result<ArchiveSummary> {
        let started = std::time::Instant::now();
        let lock = if dry_run {
            None
        } else {
            Some(Dataset::open_for_write(&self.dataset)?)
        };
        let mut manifest = Manifest::load(&self.dataset)?;
        if !dry_run {
            self.clean(&manifest)?;
        }
        let mut seconds = [0.0; 3];
        let mut lap = std::time::Instant::now();
        let mut split = |i: usize| {
            seconds[i] = lap.elapsed().as_secs_f64();
            lap = std::time::Instant::now();
        };
        let sources = self.archive_sources(&mut manifest, dry_run, progress)?;
        split(0);
        let compactions = self.compact(&mut manifest, dry_run, progress)?;
        split(1);
        let retired = self.retire(&mut manifest, dry_run)?;
        split(2);
        if let Some(ds) = &lock {
            // The catalog's `files` and `archives` tables follow the manifest.
            Catalog::open_for_write(ds, &manifest)?;
        }
        let errors = sources
            .iter()
            .filter(|s| s.action == "failed")
            .filter_map(|s| s.reason.clone())
            .chain(compactions.iter().filter_map(|c| c.error.clone()))
            .collect();
        Ok(ArchiveSummary {
            errors,
            dry_run,
            archive_dir: self.dir.display().to_string(),
            as_of: date_of(self.as_of_day),
            raw: Totals::of(
                sources
                    .iter()
                    .filter(|s| s.action == "archived")
                    .map(|s| (s.bytes_before, s.bytes_after)),
            ),
            sources,
            compacted: Totals::of(
                compactions
                    .iter()
                    .filter(|c| c.error.is_none())
                    .map(|c| (c.bytes_before, c.bytes_after)),
            ),
            compactions,
            retired,
            seconds: Seconds {
                raw: seconds[0],
                compaction: seconds[1],
                retention: seconds[2],
            },
            elapsed_s: started.elapsed().as_secs_f64(),
        })
    }

    /// Removes temporary files and archive copies the manifest does not list (left by a crash).
    fn clean(&self, manifest: &Manifest) -> Result<()> {
        let listed: HashSet<PathBuf> = manifest
            .archives
            .iter()
            .map(|a| self.resolve(&a.path))
            .chain(manifest.exports.iter().map(|e| self.resolve(&e.path)))
            .collect();
        let mut stack = vec![self.raw_dir(), self.dir.join("partitions")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.filter_map(|e| e.ok()) {
                let path = e.path();
                if path.is_dir() {
                    stack.push(path);
                } else if !listed.contains(&path) {
                    std::fs::remove_file(&path)
                        .map_err(|e| Error::io("cannot remove", &path, e))?;
                    tracing::warn!(path = %path.display(), "removed an archive file left by an interrupted run");
                }
            }
        }
        Ok(())
    }

    /// Pass 1: raw logs.
    fn archive_sources(
        &self,
        manifest: &mut Manifest,
        dry_run: bool,
        progress: &Progress,
    ) -> Result<Vec<SourceAction>> {
        let min_idle =
            crate::parse::value::parse_duration(&self.cfg.min_idle).map_err(Error::Usage)?;
        let archive_root = std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let mut actions = Vec::new();
        let mut todo = Vec::new();
        for (i, s) in manifest.sources.iter().enumerate() {
            if s.encoding == Encoding::Stdin {
                continue;
            }
            let mut action = SourceAction {
                path: s.path.clone(),
                action: "skipped".into(),
                reason: None,
                archive: None,
                codec: None,
                bytes_before: 0,
                bytes_after: 0,
                source_deleted: false,
            };
            let existing = manifest.archives.iter().find(|a| a.source == s.id);
            // The file the source's bytes are read from: its path, else an alias, that is still
            // there and not itself in the archive.
            let on_disk = std::iter::once(&s.path)
                .chain(&s.aliases)
                .map(PathBuf::from)
                .filter(|p| std::fs::canonicalize(p).is_ok_and(|c| !c.starts_with(&archive_root)))
                .find_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m)));
            if let Some(a) = existing {
                action.archive = Some(a.path.clone());
                action.codec = Some(a.codec.clone());
                action.bytes_before = a.size;
                action.bytes_after = a.archived_bytes;
                action.source_deleted = a.source_deleted;
                match &on_disk {
                    // Grown or replaced since it was archived: archived again below once ingested.
                    Some((_, m)) if m.len() != a.size => {}
                    // Removed once; a copy brought back with `restore` is the user's to keep.
                    Some((p, _)) if self.cfg.delete_source && !a.source_deleted => {
                        action.path = p.display().to_string();
                        action.action = "deleted".into();
                        todo.push(Job {
                            source: i,
                            path: p.clone(),
                            len: a.size,
                            delete_only: true,
                            action: actions.len(),
                        });
                        actions.push(action);
                        continue;
                    }
                    _ => {
                        action.action = "kept".into();
                        actions.push(action);
                        continue;
                    }
                }
            }
            let Some((path, meta)) = on_disk else {
                action.reason =
                    Some("the file is gone (moved or deleted since it was ingested)".into());
                actions.push(action);
                continue;
            };
            action.path = path.display().to_string();
            action.bytes_before = meta.len();
            let ingested_to_end = match s.encoding {
                Encoding::Plain => meta.len() == s.offset,
                _ => meta.len() == s.size,
            };
            let idle = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_none_or(|age| age >= min_idle);
            if meta.len() == 0 {
                action.reason = Some("empty".into());
            } else if !ingested_to_end {
                action.reason = Some(if s.encoding == Encoding::Plain && meta.len() > s.offset {
                    "not ingested to its end yet (it grew since the last ingest)".into()
                } else {
                    "changed since it was ingested (its size differs from what was read); ingest it again".into()
                });
            } else if let Some(why) = match same_content(&path, s) {
                Ok(true) => None,
                Ok(false) => Some("another file has taken its path (its first bytes differ from what was ingested); ingest it".to_string()),
                Err(e) => Some(format!("cannot read it: {e}")),
            } {
                action.reason = Some(why);
            } else if !idle {
                action.reason = Some(format!(
                    "modified less than archive.min_idle ({}) ago; it may still be written",
                    self.cfg.min_idle
                ));
            } else {
                action.action = "archived".into();
                action.codec = Some(self.codec_of(s.encoding).name().into());
                todo.push(Job {
                    source: i,
                    len: meta.len(),
                    path,
                    delete_only: false,
                    action: actions.len(),
                });
            }
            actions.push(action);
        }
        if dry_run {
            return Ok(actions);
        }
        // Each archived byte is read twice: compressed, then verified.
        progress.total_bytes.store(
            todo.iter()
                .filter(|j| !j.delete_only)
                .map(|j| 2 * j.len)
                .sum(),
            Ordering::Relaxed,
        );
        for job in todo {
            let Job {
                source: i,
                path,
                len,
                delete_only,
                action,
            } = job;
            let id = manifest.sources[i].id;
            let act = &mut actions[action];
            let mut one = || -> Result<()> {
                if !delete_only {
                    let rec = self.archive_one(manifest, i, &path, len, &progress.bytes)?;
                    act.archive = Some(rec.path.clone());
                    act.bytes_after = rec.archived_bytes;
                }
                if self.cfg.delete_source {
                    self.delete_original(manifest, id, &path, !delete_only, &progress.bytes)?;
                    act.source_deleted = true;
                }
                Ok(())
            };
            // One source's failure (a damaged copy, a changed file) does not stop the others.
            if let Err(e) = one() {
                act.action = "failed".into();
                act.reason = Some(e.to_string());
            }
        }
        Ok(actions)
    }

    fn codec_of(&self, encoding: Encoding) -> Codec {
        match encoding {
            Encoding::Plain => Codec::Zstd,
            _ => Codec::Stored,
        }
    }

    /// Archives source `i` from `path` (its first `len` bytes) and commits the manifest.
    fn archive_one(
        &self,
        manifest: &mut Manifest,
        i: usize,
        path: &Path,
        len: u64,
        progress: &AtomicU64,
    ) -> Result<ArchiveRecord> {
        let src = &manifest.sources[i];
        let codec = self.codec_of(src.encoding);
        let dir = self.raw_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        let name = path
            .file_name()
            .map_or_else(|| "source".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".tmp-{}-{name}", src.id));
        let digest = match raw::pack(
            path,
            len,
            &tmp,
            codec,
            self.zstd(),
            progress,
            Some("archive-compress"),
        ) {
            Ok(d) => d,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        checkpoint("archive-verify");
        let advice = "the original was kept; the copy read back differs from what was written, so check the disk, then run logcrunch archive again";
        if let Err(e) = raw::verify(&tmp, codec, &digest, progress, advice) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let hex = digest.hex();
        let ext = if codec == Codec::Zstd { ".zst" } else { "" };
        let dest = dir.join(format!("{}-{}-{name}{ext}", src.id, &hex[..8]));
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io("cannot rename", &tmp, e))?;
        sync_dir(&dir)?;
        checkpoint("archive-commit");
        let archived_bytes = std::fs::metadata(&dest)
            .map_err(|e| Error::io("cannot read", &dest, e))?
            .len();
        let rec = ArchiveRecord {
            source: src.id,
            original: std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string(),
            size: digest.size,
            checksum: hex,
            path: relative(&dest, &self.dataset),
            archived_bytes,
            codec: codec.name().into(),
            archived_at: format_rfc3339(now_us()),
            source_deleted: false,
        };
        let replaced = match manifest.archives.iter_mut().find(|a| a.source == src.id) {
            Some(old) => Some(std::mem::replace(old, rec.clone())),
            None => {
                manifest.archives.push(rec.clone());
                None
            }
        };
        manifest.save(&self.dataset)?;
        if let Some(old) = replaced
            && old.path != rec.path
        {
            let p = self.resolve(&old.path);
            std::fs::remove_file(&p).map_err(|e| Error::io("cannot remove", &p, e))?;
        }
        tracing::info!(source = %path.display(), archive = %dest.display(), before = digest.size, after = archived_bytes, "archived");
        Ok(rec)
    }

    /// Removes the original of an archived source after checking that it is still the archived
    /// content and, unless this run has just `verified` it, that the archive gives it back.
    fn delete_original(
        &self,
        manifest: &mut Manifest,
        id: u64,
        path: &Path,
        verified: bool,
        progress: &AtomicU64,
    ) -> Result<()> {
        let rec = manifest
            .archives
            .iter_mut()
            .find(|a| a.source == id)
            .expect("archived before deletion");
        let expected = parse_checksum(&rec.checksum, rec.size)?;
        if !verified {
            raw::verify(
                &self.resolve(&rec.path),
                Codec::from_name(&rec.codec).unwrap_or(Codec::Zstd),
                &expected,
                progress,
                "the original was kept; archive it again after removing the damaged file from the manifest's archives, or restore the archive directory from a backup",
            )?;
        }
        let now = raw::digest_file(path)?;
        if now != expected {
            return Err(Error::Dataset {
                path: path.to_path_buf(),
                message: "it changed after it was archived, so it was not deleted; ingest it, then archive again".into(),
            });
        }
        checkpoint("archive-delete");
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot remove", path, e)),
        }
        if let Some(parent) = path.parent() {
            sync_dir(if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            })?;
        }
        rec.source_deleted = true;
        manifest.save(&self.dataset)
    }

    /// Pass 2: compaction.
    fn compact(
        &self,
        manifest: &mut Manifest,
        dry_run: bool,
        progress: &Progress,
    ) -> Result<Vec<CompactAction>> {
        let Some(after) = self.cfg.compact_after_days else {
            return Ok(Vec::new());
        };
        let limit = self.as_of_day - i64::from(after);
        let retire_limit = self
            .cfg
            .retention_days
            .map_or(i64::MIN, |r| self.as_of_day - i64::from(r));
        let mut groups: BTreeMap<(String, String, u64), Vec<FileRecord>> = BTreeMap::new();
        for f in &manifest.files {
            if parse_date(&f.date).is_some_and(|d| d < limit && d >= retire_limit) {
                groups
                    .entry((f.date.clone(), f.table.clone(), f.source))
                    .or_default()
                    .push(f.clone());
            }
        }
        let paths: BTreeMap<u64, String> = manifest
            .sources
            .iter()
            .map(|s| (s.id, s.path.clone()))
            .collect();
        let source_path = |id: u64| paths.get(&id).cloned().unwrap_or_else(|| id.to_string());
        let mut actions = Vec::new();
        let run = format!("c{}", format_rfc3339(now_us()).replace([':', '-'], ""));
        groups.retain(|_, files| !(files.len() == 1 && files[0].compacted));
        // The bar restarts on the Parquet bytes to rewrite.
        progress.bytes.store(0, Ordering::Relaxed);
        progress.total_bytes.store(
            groups.values().flatten().map(|f| f.bytes).sum(),
            Ordering::Relaxed,
        );
        for ((date, table, source), files) in groups {
            let mut act = CompactAction {
                table: table.clone(),
                date: date.clone(),
                source: source_path(source),
                files: files.len(),
                rows: files.iter().map(|f| f.rows).sum(),
                bytes_before: files.iter().map(|f| f.bytes).sum(),
                bytes_after: 0,
                error: None,
            };
            if !dry_run {
                // A group that fails keeps its old files; the others go on.
                let base = progress.bytes.load(Ordering::Relaxed);
                match self.compact_group(
                    manifest,
                    (&table, &date, source),
                    &files,
                    &run,
                    &progress.bytes,
                ) {
                    Ok(bytes) => act.bytes_after = bytes,
                    Err(e) => act.error = Some(e.to_string()),
                }
                progress
                    .bytes
                    .store(base + act.bytes_before, Ordering::Relaxed);
            }
            actions.push(act);
        }
        Ok(actions)
    }

    /// Rewrites one group and swaps it into the manifest; returns the new file's size.
    fn compact_group(
        &self,
        manifest: &mut Manifest,
        (table, date, source): (&str, &str, u64),
        files: &[FileRecord],
        run: &str,
        progress: &AtomicU64,
    ) -> Result<u64> {
        let inputs: Vec<PathBuf> = files.iter().map(|f| self.dataset.join(&f.path)).collect();
        let rel = format!("{table}/date={date}/part-{run}-s{source}.parquet");
        let output = self.dataset.join(&rel);
        let base = crate::sink::writer_properties(
            self.cfg.compact_zstd_level,
            self.cfg.compact_row_group_rows,
        )?;
        let (props, time) = if table == crate::stats::STATS_TABLE {
            (crate::stats::file_properties(&base), "minute")
        } else {
            (base, "ts")
        };
        let done = match compact::compact(&inputs, &output, time, &props, progress) {
            Ok(d) => d,
            Err(e) => {
                let _ = std::fs::remove_file(&output);
                return Err(e);
            }
        };
        checkpoint("compact-swap");
        let old: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
        manifest.files.retain(|f| !old.contains(f.path.as_str()));
        manifest.files.push(FileRecord {
            table: table.to_string(),
            path: rel,
            source,
            run: run.to_string(),
            date: date.to_string(),
            rows: done.rows,
            bytes: done.bytes,
            compacted: true,
        });
        manifest.save(&self.dataset)?;
        checkpoint("compact-delete");
        for p in &inputs {
            std::fs::remove_file(p).map_err(|e| Error::io("cannot remove", p, e))?;
        }
        if let Some(dir) = output.parent() {
            sync_dir(dir)?;
        }
        tracing::info!(
            table,
            date,
            source,
            files = files.len(),
            rows = done.rows,
            "compacted"
        );
        Ok(done.bytes)
    }

    /// Compacts the partitions of `days` while they are still being filled (by `watch`, which
    /// commits every few seconds): in each (table, source) group, the files not yet compacted
    /// are rewritten as one once there are `min_files` of them, and the smallest compacted ones
    /// are merged once `min_files` of them fit in [`MERGE_ROWS`] rows together. A merge sorts its
    /// rows' times in memory, so merging a whole day again and again (a busy log's day is tens of
    /// millions of rows) would cost memory and time that grow with the day; this way a merge
    /// holds at most `MERGE_ROWS` rows, and a group holds its large files (one per
    /// `MERGE_ROWS` rows or so) and fewer than about `2 * min_files` small ones. A source that `run` (the ingest just committed) did not add to, such as
    /// a log rotated away, has its files compacted once there are two: otherwise frequent
    /// rotations would leave every source a few files short of `min_files`, and the dataset's
    /// file count (with every reader's cost) would grow with each one. Each rewrite is checked as
    /// `archive`'s compaction checks it. Returns the number of groups rewritten.
    pub fn compact_recent(&self, days: &[String], min_files: usize, run: &str) -> Result<usize> {
        let ds = Dataset::open_for_write(&self.dataset)?;
        let mut manifest = Manifest::load(&self.dataset)?;
        let active: std::collections::HashSet<u64> = manifest
            .files
            .iter()
            .filter(|f| f.run == run)
            .map(|f| f.source)
            .collect();
        let mut groups: BTreeMap<(String, String, u64), Vec<FileRecord>> = BTreeMap::new();
        for f in manifest.files.iter().filter(|f| days.contains(&f.date)) {
            groups
                .entry((f.date.clone(), f.table.clone(), f.source))
                .or_default()
                .push(f.clone());
        }
        let run = format!("c{}", now_us());
        let mut rewritten = 0;
        for ((date, table, source), files) in groups {
            let (merged, fresh): (Vec<FileRecord>, Vec<FileRecord>) =
                files.into_iter().partition(|f| f.compacted);
            let enough = if active.contains(&source) {
                min_files
            } else {
                2
            };
            let mergeable = smallest_within(merged, MERGE_ROWS);
            let pick = if mergeable.len() >= min_files {
                mergeable
            } else if fresh.len() >= enough {
                fresh
            } else {
                continue;
            };
            let progress = AtomicU64::new(0);
            self.compact_group(
                &mut manifest,
                (&table, &date, source),
                &pick,
                &run,
                &progress,
            )?;
            rewritten += 1;
        }
        if rewritten > 0 {
            // The catalog's `files` table follows the manifest.
            Catalog::open_for_write(&ds, &manifest)?;
        }
        Ok(rewritten)
    }

    /// Pass 3: retention.
    fn retire(&self, manifest: &mut Manifest, dry_run: bool) -> Result<Vec<RetireAction>> {
        let Some(days) = self.cfg.retention_days else {
            return Ok(Vec::new());
        };
        let limit = self.as_of_day - i64::from(days);
        let mut by_date: BTreeMap<String, Vec<FileRecord>> = BTreeMap::new();
        for f in &manifest.files {
            if parse_date(&f.date).is_some_and(|d| d < limit) {
                by_date.entry(f.date.clone()).or_default().push(f.clone());
            }
        }
        let mut actions = Vec::new();
        for (date, files) in by_date {
            let export_dir = self.dir.join("partitions").join(format!("date={date}"));
            let act = RetireAction {
                date: date.clone(),
                files: files.len(),
                rows: files
                    .iter()
                    .filter(|f| f.table == "logs")
                    .map(|f| f.rows)
                    .sum(),
                bytes: files.iter().map(|f| f.bytes).sum(),
                exported_to: self
                    .cfg
                    .export_before_delete
                    .then(|| export_dir.display().to_string()),
            };
            if !dry_run {
                self.retire_date(manifest, &files, &export_dir)?;
            }
            actions.push(act);
        }
        Ok(actions)
    }

    fn retire_date(
        &self,
        manifest: &mut Manifest,
        files: &[FileRecord],
        export_dir: &Path,
    ) -> Result<()> {
        let mut exports = Vec::new();
        if self.cfg.export_before_delete {
            for f in files {
                let from = self.dataset.join(&f.path);
                let dir = export_dir.join(&f.table);
                std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
                let name = Path::new(&f.path).file_name().map_or_else(
                    || "part.parquet".into(),
                    |n| n.to_string_lossy().into_owned(),
                );
                let tmp = dir.join(format!(".tmp-{name}"));
                let digest = raw::copy_file(&from, &tmp)?;
                raw::verify(
                    &tmp,
                    Codec::Stored,
                    &digest,
                    &AtomicU64::new(0),
                    "the partition was kept; check the disk, then run logcrunch archive again",
                )?;
                let dest = dir.join(&name);
                std::fs::rename(&tmp, &dest).map_err(|e| Error::io("cannot rename", &tmp, e))?;
                sync_dir(&dir)?;
                exports.push(ExportRecord {
                    file: f.clone(),
                    path: relative(&dest, &self.dataset),
                    checksum: digest.hex(),
                });
            }
        }
        let gone: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
        manifest.files.retain(|f| !gone.contains(f.path.as_str()));
        manifest.exports.extend(exports);
        manifest.save(&self.dataset)?;
        for f in files {
            let p = self.dataset.join(&f.path);
            std::fs::remove_file(&p).map_err(|e| Error::io("cannot remove", &p, e))?;
            if let Some(dir) = p.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
        Ok(())
    }

    /// Checks every archive file and exported partition against its checksum; returns the
    /// problems found (empty: all good).
    pub fn verify_all(&self, progress: &Progress) -> Result<Vec<String>> {
        let _reading = crate::catalog::lock_shared(&self.dataset)?;
        let manifest = Manifest::load(&self.dataset)?;
        progress.total_bytes.store(
            manifest.archives.iter().map(|a| a.size).sum::<u64>()
                + manifest.exports.iter().map(|e| e.file.bytes).sum::<u64>(),
            Ordering::Relaxed,
        );
        let mut problems = Vec::new();
        for a in &manifest.archives {
            let expected = parse_checksum(&a.checksum, a.size)?;
            let codec = Codec::from_name(&a.codec).unwrap_or(Codec::Zstd);
            if let Err(e) = raw::verify(
                &self.resolve(&a.path),
                codec,
                &expected,
                &progress.bytes,
                raw::RESTORE_ADVICE,
            ) {
                problems.push(e.to_string());
            }
        }
        for x in &manifest.exports {
            let expected = parse_checksum(&x.checksum, x.file.bytes)?;
            if let Err(e) = raw::verify(
                &self.resolve(&x.path),
                Codec::Stored,
                &expected,
                &progress.bytes,
                raw::RESTORE_ADVICE,
            ) {
                problems.push(e.to_string());
            }
        }
        Ok(problems)
    }

    /// Writes archived sources back: to `to` (a directory, or a file for a single source) or to
    /// their original paths. An existing file is left alone when it is identical and refused
    /// (unless `overwrite`) when it is not. With `dry_run`, says what it would write.
    pub fn restore(
        &self,
        target: &RestoreTarget,
        to: Option<&Path>,
        overwrite: bool,
        dry_run: bool,
        progress: &Progress,
    ) -> Result<Vec<Restored>> {
        let _reading = crate::catalog::lock_shared(&self.dataset)?;
        let manifest = Manifest::load(&self.dataset)?;
        let chosen: Vec<&ArchiveRecord> = match target {
            RestoreTarget::Source(s) => {
                let abs = std::path::absolute(s).map(|p| p.display().to_string());
                let by_path = |a: &&ArchiveRecord| {
                    let src = manifest.sources.iter().find(|r| r.id == a.source);
                    a.original == *s
                        || abs.as_ref().is_ok_and(|p| a.original == *p)
                        || a.path == *s
                        || self.resolve(&a.path) == Path::new(s)
                        || src.is_some_and(|r| r.path == *s || r.aliases.iter().any(|x| x == s))
                };
                let mut found: Vec<_> = manifest.archives.iter().filter(by_path).collect();
                if found.is_empty() {
                    found = manifest
                        .archives
                        .iter()
                        .filter(|a| Path::new(&a.original).file_name() == Some(s.as_ref()))
                        .collect();
                }
                if found.len() > 1 {
                    return Err(Error::Usage(format!(
                        "{s} names {} archived sources ({}); give the full path",
                        found.len(),
                        found
                            .iter()
                            .map(|a| a.original.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                found
            }
            RestoreTarget::Date(d) => {
                if parse_date(d).is_none() {
                    return Err(Error::Usage(format!("--date {d}: expected YYYY-MM-DD")));
                }
                let ids: HashSet<u64> = manifest
                    .files
                    .iter()
                    .chain(manifest.exports.iter().map(|e| &e.file))
                    .filter(|f| f.date == *d)
                    .map(|f| f.source)
                    .collect();
                manifest
                    .archives
                    .iter()
                    .filter(|a| ids.contains(&a.source))
                    .collect()
            }
        };
        if chosen.is_empty() {
            let known: Vec<&str> = manifest
                .archives
                .iter()
                .take(5)
                .map(|a| a.original.as_str())
                .collect();
            let what = match target {
                RestoreTarget::Source(s) => s.clone(),
                RestoreTarget::Date(d) => format!("a source with rows on {d}"),
            };
            return Err(Error::Usage(format!(
                "no archived source matches {what}; archived: {}{}",
                if known.is_empty() {
                    "none (run logcrunch archive first)".to_string()
                } else {
                    known.join(", ")
                },
                if manifest.archives.len() > 5 {
                    ", ..."
                } else {
                    ""
                }
            )));
        }
        progress
            .total_bytes
            .store(chosen.iter().map(|a| a.size).sum(), Ordering::Relaxed);
        let single = chosen.len() == 1;
        chosen
            .into_iter()
            .map(|a| {
                let dest = match to {
                    Some(t)
                        if t.is_dir()
                            || !single
                            || t.as_os_str().to_string_lossy().ends_with('/') =>
                    {
                        let name = Path::new(&a.original).file_name().map_or_else(
                            || format!("source-{}", a.source).into(),
                            |n| n.to_owned(),
                        );
                        t.join(name)
                    }
                    Some(t) => t.to_path_buf(),
                    None => PathBuf::from(&a.original),
                };
                self.restore_one(a, &dest, overwrite, dry_run, &progress.bytes)
            })
            .collect()
    }

    fn restore_one(
        &self,
        a: &ArchiveRecord,
        dest: &Path,
        overwrite: bool,
        dry_run: bool,
        progress: &AtomicU64,
    ) -> Result<Restored> {
        let expected = parse_checksum(&a.checksum, a.size)?;
        let archive = self.resolve(&a.path);
        let mut out = Restored {
            archive: archive.display().to_string(),
            path: dest.display().to_string(),
            action: "restored".into(),
            bytes_before: a.archived_bytes,
            bytes_after: a.size,
            ratio: if a.archived_bytes > 0 {
                a.size as f64 / a.archived_bytes as f64
            } else {
                0.0
            },
            checksum: a.checksum.clone(),
        };
        if dest.exists() {
            if raw::digest_file(dest)? == expected {
                out.action = "present".into();
                return Ok(out);
            }
            if !overwrite {
                return Err(Error::Usage(format!(
                    "{} exists and differs from the archived source; restore elsewhere with --to DIR, or replace it with --force",
                    dest.display()
                )));
            }
        }
        if dry_run {
            out.action = "would_restore".into();
            return Ok(out);
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        let name = dest
            .file_name()
            .map_or_else(|| "restored".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{name}.logcrunch-restore"));
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let codec = Codec::from_name(&a.codec).unwrap_or(Codec::Zstd);
        let written = raw::unpack(
            &archive,
            codec,
            &expected,
            |b| std::io::Write::write_all(&mut w, b),
            progress,
            raw::RESTORE_ADVICE,
        )
        .and_then(|()| {
            let f = w
                .into_inner()
                .map_err(|e| Error::io("cannot write", &tmp, e.into_error()))?;
            f.sync_all().map_err(|e| Error::io("cannot sync", &tmp, e))
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, dest).map_err(|e| Error::io("cannot rename", &tmp, e))?;
        sync_dir(&dir)?;
        Ok(out)
    }
}

/// Whether `path` starts with the content `source` was recognised by at ingest.
fn same_content(path: &Path, source: &crate::catalog::manifest::SourceRecord) -> Result<bool> {
    let Some(input) = crate::scan::resolve(&[path.display().to_string()])?.pop() else {
        return Ok(false);
    };
    let (hash, got) = crate::scan::fingerprint(&input, source.fingerprint_len)?;
    Ok(got == source.fingerprint_len && hash == source.fingerprint)
}

fn parse_checksum(hex: &str, size: u64) -> Result<Digest> {
    let hash = u128::from_str_radix(hex, 16).map_err(|_| Error::Dataset {
        path: crate::catalog::manifest::MANIFEST_FILE.into(),
        message: format!("archive checksum {hex:?} is not 32 hex digits; the manifest was edited"),
    })?;
    Ok(Digest { size, hash })
}

/// Rows a merge of compacted files by [`Archiver::compact_recent`] holds at most (their times
/// are sorted in memory: about 50 MB).
pub const MERGE_ROWS: u64 = 2_000_000;

/// The smallest of `files`, as many as fit in `limit` rows together (each below it).
fn smallest_within(mut files: Vec<FileRecord>, limit: u64) -> Vec<FileRecord> {
    files.retain(|f| f.rows < limit);
    files.sort_by_key(|f| f.rows);
    let mut total = 0;
    files
        .into_iter()
        .take_while(|f| {
            total += f.rows;
            total <= limit
        })
        .collect()
}

/// The day (µs since the epoch, at midnight UTC) of a `YYYY-MM-DD` argument.
pub fn parse_as_of(text: &str) -> Option<i64> {
    parse_date(text).map(|d| d * DAY_US)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_take_the_smallest_compacted_files_that_fit() {
        let file = |rows: u64| FileRecord {
            table: "logs".into(),
            path: format!("f{rows}"),
            source: 1,
            run: "r".into(),
            date: "2024-01-01".into(),
            rows,
            bytes: 0,
            compacted: true,
        };
        let rows = |picked: Vec<FileRecord>| picked.iter().map(|f| f.rows).collect::<Vec<_>>();
        let files = vec![file(900), file(100), file(5_000), file(300), file(400)];
        assert_eq!(rows(smallest_within(files.clone(), 1_000)), [100, 300, 400]);
        assert_eq!(
            rows(smallest_within(files, 10_000)),
            [100, 300, 400, 900, 5_000]
        );
        assert!(smallest_within(vec![file(2_000)], 1_000).is_empty());
    }
}
