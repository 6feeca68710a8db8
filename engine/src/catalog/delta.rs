//! Delta Lake transaction logs over the dataset's tables, so engines that are not logcrunch
//! (Spark, Trino, DuckDB's `delta_scan`, Polars, the `deltalake` Python package) read exactly the
//! files the manifest lists.
//!
//! Each table directory (`logs/`, `errors/`, `stats/`) is a Delta table: its `_delta_log/` holds
//! numbered JSON commits ([protocol](https://github.com/delta-io/delta/blob/master/PROTOCOL.md),
//! reader version 1, writer version 2) and, every `delta.checkpointInterval` commits, a Parquet
//! checkpoint with `_last_checkpoint` naming it. The files keep their Hive paths, so `date` is the
//! partition column. [`DeltaLog::publish`] makes a table's log say what the manifest says: the
//! files the log does not list yet are added (with their row counts as statistics), the ones the
//! manifest dropped are removed (`dataChange` false when compaction replaced them), new columns
//! (a format's extra fields) widen the schema, and a `txn` action per source carries how far that
//! source was read (`appId` `logcrunch-source-<fingerprint>`, `version` the byte offset). Because
//! it compares states rather than replaying what happened, a crash between the manifest's commit
//! and the log's is mended by the next commit. A commit file is created only if absent, so two
//! writers never overwrite each other's commit: the loser reads the winner's and tries again.
//! The state of each table's log is kept between commits of one process and read again only
//! from the commits it has not seen.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, Schema};
use serde_json::{Value, json};

use super::manifest::{FileRecord, Manifest, SourceRecord};
use crate::error::{Error, Result};

mod checkpoint;

/// Directory of a table's transaction log.
pub const LOG_DIR: &str = "_delta_log";
/// Commits between checkpoints unless the table's `delta.checkpointInterval` says otherwise.
const CHECKPOINT_INTERVAL: u64 = 10;
/// How many times a commit is retried after another writer took its version.
const RETRIES: usize = 20;

/// A table's file as its log lists it: its `add` action.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed(Value);

impl Listed {
    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.0.get("size").and_then(Value::as_u64).unwrap_or(0)
    }

    /// Its `date` partition.
    pub fn date(&self) -> &str {
        self.0
            .pointer("/partitionValues/date")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Its rows, from the statistics (0 when it has none).
    pub fn rows(&self) -> u64 {
        self.0
            .get("stats")
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|s| s.get("numRecords").and_then(Value::as_u64))
            .unwrap_or(0)
    }

    /// The value of tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.0.get("tags")?.get(key)?.as_str()
    }
}

/// What a table's log says at one version.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Latest version read, `None` before the first commit.
    pub version: Option<u64>,
    /// Active files by path relative to the table.
    pub files: BTreeMap<String, Listed>,
    /// The `metaData` action in force.
    meta: Option<Value>,
    /// The `protocol` action in force.
    protocol: Option<Value>,
    /// Latest `txn` version per application id.
    pub txns: BTreeMap<String, i64>,
}

impl Snapshot {
    /// Applies one action of a commit or checkpoint.
    pub(crate) fn apply(&mut self, action: &Value) {
        if let Some(add) = action.get("add") {
            if let Some(path) = add.get("path").and_then(Value::as_str) {
                self.files.insert(unescape(path), Listed(add.clone()));
            }
        } else if let Some(protocol) = action.get("protocol") {
            self.protocol = Some(protocol.clone());
        } else if let Some(path) = action.pointer("/remove/path").and_then(Value::as_str) {
            self.files.remove(&unescape(path));
        } else if let Some(meta) = action.get("metaData") {
            self.meta = Some(meta.clone());
        } else if let (Some(app), Some(v)) = (
            action.pointer("/txn/appId").and_then(Value::as_str),
            action.pointer("/txn/version").and_then(Value::as_i64),
        ) {
            self.txns.insert(app.to_string(), v);
        }
    }

    /// The table's columns as the `metaData` in force declares them.
    fn fields(&self) -> Vec<Value> {
        self.meta
            .as_ref()
            .and_then(|m| m.get("schemaString"))
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|s| s.get("fields").and_then(Value::as_array).cloned())
            .unwrap_or_default()
    }

    /// `delta.checkpointInterval` of the table.
    fn checkpoint_interval(&self) -> u64 {
        self.meta
            .as_ref()
            .and_then(|m| m.pointer("/configuration/delta.checkpointInterval"))
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(CHECKPOINT_INTERVAL)
    }
}

/// Delta paths are URI-encoded; the dataset's own names never need it, other writers' may.
pub(crate) fn unescape(path: &str) -> String {
    if !path.contains('%') {
        return path.to_string();
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A file to add to a table.
#[derive(Debug)]
pub struct Added<'a> {
    /// Its path relative to the table.
    pub path: &'a str,
    /// Its manifest record.
    pub file: &'a FileRecord,
    /// The `tags` of its `add` action.
    pub tags: Option<Value>,
}

/// The `commitInfo` action of a commit made `now` that adds and removes that many files.
pub fn commit_info(operation: &str, added: usize, removed: usize, now: i64) -> Value {
    json!({"commitInfo": {
        "timestamp": now,
        "operation": operation,
        "operationParameters": {"files_added": added, "files_removed": removed},
        "engineInfo": format!("logcrunch/{}", env!("CARGO_PKG_VERSION")),
        "isBlindAppend": removed == 0,
    }})
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Snapshots of the logs this process has read or written, by [`LogStore::location`].
static SEEN: Mutex<Option<HashMap<String, Snapshot>>> = Mutex::new(None);

/// Where a table's log lives: a local directory, or a prefix of object storage
/// ([`super::remote`]).
pub trait LogStore: Send + Sync {
    /// The file `name` of the log, `None` when it does not exist.
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Writes `name` only if it does not exist; `false` when another writer has written it.
    fn create(&self, name: &str, bytes: &[u8]) -> Result<bool>;
    /// Writes or replaces `name` atomically.
    fn replace(&self, name: &str, bytes: &[u8]) -> Result<()>;
    /// Where the log is (a directory or a URL), for messages.
    fn location(&self) -> String;
}

/// A log in a local `_delta_log` directory.
#[derive(Debug)]
struct LocalLog {
    dir: PathBuf,
}

impl LogStore for LocalLog {
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("cannot read", &path, e)),
        }
    }

    fn create(&self, name: &str, bytes: &[u8]) -> Result<bool> {
        // Written aside, then linked into place: the link fails if the name exists, and a reader
        // never sees a half-written file.
        let path = self.dir.join(name);
        let tmp = self.write_aside(name, bytes)?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                crate::sink::sync_dir(&self.dir)?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io("cannot commit", &path, e)),
        }
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        let tmp = self.write_aside(name, bytes)?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("cannot replace", &path, e))?;
        crate::sink::sync_dir(&self.dir)
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}

impl LocalLog {
    /// Writes `bytes` to a temporary file beside `name` and syncs it.
    fn write_aside(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io("cannot create", &self.dir, e))?;
        let tmp = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        write().map_err(|e| Error::io("cannot write", &tmp, e))?;
        Ok(tmp)
    }
}

/// One table's transaction log.
pub struct DeltaLog {
    table: String,
    /// The table's directory holding the files being added (their footers give the schema).
    dir: PathBuf,
    store: Box<dyn LogStore>,
}

/// The name of commit `version` in the log.
fn commit_name(version: u64) -> String {
    format!("{version:020}.json")
}

impl DeltaLog {
    /// The log of `table` inside the local `dataset`.
    pub fn new(dataset: &Path, table: &str) -> DeltaLog {
        let dir = dataset.join(table);
        DeltaLog {
            table: table.to_string(),
            store: Box::new(LocalLog {
                dir: dir.join(LOG_DIR),
            }),
            dir,
        }
    }

    /// The log of `table` in `store`, adding files found under the local directory `files`.
    pub fn with_store(table: &str, files: &Path, store: Box<dyn LogStore>) -> DeltaLog {
        DeltaLog {
            table: table.to_string(),
            dir: files.to_path_buf(),
            store,
        }
    }

    fn failed(&self, message: String) -> Error {
        Error::Dataset {
            path: PathBuf::from(self.store.location()),
            message,
        }
    }

    /// Makes the log list exactly `manifest`'s files of this table (see the module text).
    /// Returns the version committed, or `None` when the log already agreed.
    pub fn publish(&self, manifest: &Manifest) -> Result<Option<u64>> {
        let prefix = format!("{}/", self.table);
        let wanted: BTreeMap<String, &FileRecord> = manifest
            .files
            .iter()
            .filter(|f| f.table == self.table)
            .filter_map(|f| Some((f.path.strip_prefix(&prefix)?.to_string(), f)))
            .collect();
        self.commit_with(|snap| {
            if snap.version.is_none() && wanted.is_empty() {
                return Ok(None);
            }
            self.changes(snap, &wanted, manifest)
        })
    }

    /// Commits the actions `build` makes from the log's latest state (`None`: nothing to
    /// commit), at the next version; when another writer takes that version first, `build`
    /// runs again on the state that includes it.
    pub fn commit_with(
        &self,
        mut build: impl FnMut(&Snapshot) -> Result<Option<Vec<Value>>>,
    ) -> Result<Option<u64>> {
        for _ in 0..RETRIES {
            let snap = self.snapshot()?;
            self.check_protocol(&snap)?;
            let Some(actions) = build(&snap)? else {
                return Ok(None);
            };
            let version = snap.version.map_or(0, |v| v + 1);
            if self.write_commit(version, &actions)? {
                let mut next = snap;
                next.version = Some(version);
                actions.iter().for_each(|a| next.apply(a));
                if version > 0 && version % next.checkpoint_interval() == 0 {
                    checkpoint::write(self.store.as_ref(), version, &next)?;
                }
                remember(&self.store.location(), next);
                return Ok(Some(version));
            }
        }
        Err(self.failed(format!(
            "other writers kept committing to the table's log; {RETRIES} attempts lost the race. Run the command again"
        )))
    }

    /// Refuses a table another writer upgraded to Delta features this writer does not know.
    fn check_protocol(&self, snap: &Snapshot) -> Result<()> {
        let version = |key: &str| {
            snap.protocol
                .as_ref()
                .and_then(|p| p.get(key))
                .and_then(Value::as_u64)
                .unwrap_or(1)
        };
        if version("minWriterVersion") > 2 || version("minReaderVersion") > 1 {
            return Err(self.failed(format!(
                "the table's Delta protocol (reader {}, writer {}) asks for features logcrunch does not write (it writes reader 1, writer 2); write to a new dataset",
                version("minReaderVersion"),
                version("minWriterVersion")
            )));
        }
        Ok(())
    }

    /// The actions that take the log from `snap` to `wanted`, or `None` when there are none.
    fn changes(
        &self,
        snap: &Snapshot,
        wanted: &BTreeMap<String, &FileRecord>,
        manifest: &Manifest,
    ) -> Result<Option<Vec<Value>>> {
        let added: Vec<Added<'_>> = wanted
            .iter()
            .filter(|(p, _)| !snap.files.contains_key(*p))
            .map(|(p, f)| Added {
                path: p,
                file: f,
                tags: None,
            })
            .collect();
        let removed: Vec<(&String, &Listed)> = snap
            .files
            .iter()
            .filter(|(p, _)| !wanted.contains_key(*p))
            .collect();
        if added.is_empty() && removed.is_empty() {
            return Ok(None);
        }
        let now = now_ms();
        let sources: BTreeMap<u64, &SourceRecord> =
            manifest.sources.iter().map(|s| (s.id, s)).collect();
        let mut actions = self.additions(snap, &added, &sources, now)?;
        // Compaction replaces a (source, day)'s files by one file flagged `compacted`: neither
        // side changes the data.
        let rewritten: BTreeSet<&str> = added
            .iter()
            .filter(|a| a.file.compacted)
            .map(|a| a.file.date.as_str())
            .collect();
        for (path, l) in &removed {
            actions.push(json!({"remove": {
                "path": path,
                "deletionTimestamp": now,
                "dataChange": !rewritten.contains(l.date()),
                "extendedFileMetadata": true,
                "partitionValues": {"date": l.date()},
                "size": l.size(),
            }}));
        }
        let operation = match (added.is_empty(), rewritten.is_empty()) {
            (true, _) => "DELETE",
            (false, false) => "OPTIMIZE",
            (false, true) => "WRITE",
        };
        actions.push(commit_info(operation, added.len(), removed.len(), now));
        Ok(Some(actions))
    }

    /// The actions that add `added` to the table at `snap`: `protocol` on the first commit,
    /// `metaData` on the first commit and when the files bring new columns, one `add` per file,
    /// then a `txn` per source of the files that are data changes (not compaction's).
    pub fn additions(
        &self,
        snap: &Snapshot,
        added: &[Added<'_>],
        sources: &BTreeMap<u64, &SourceRecord>,
        now: i64,
    ) -> Result<Vec<Value>> {
        let mut actions = Vec::new();
        if snap.version.is_none() {
            actions.push(json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}));
        }
        let fields = self.widened(snap, added.iter().map(|a| self.dir.join(a.path)))?;
        if let Some(fields) = fields {
            actions.push(self.meta_data(snap, fields, now));
        }
        let mut txns = BTreeSet::new();
        for a in added {
            let f = a.file;
            let modified = std::fs::metadata(self.dir.join(a.path))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(now, |d| d.as_millis() as i64);
            let mut add = json!({
                "path": a.path,
                "partitionValues": {"date": f.date},
                "size": f.bytes,
                "modificationTime": modified,
                "dataChange": !f.compacted,
                "stats": json!({"numRecords": f.rows}).to_string(),
            });
            if let Some(tags) = &a.tags {
                add["tags"] = tags.clone();
            }
            actions.push(json!({ "add": add }));
            if !f.compacted {
                txns.insert(f.source);
            }
        }
        for s in txns.iter().filter_map(|id| sources.get(id)) {
            actions.push(json!({"txn": {
                "appId": source_app_id(s.fingerprint),
                "version": i64::try_from(s.offset).unwrap_or(i64::MAX),
                "lastUpdated": now,
            }}));
        }
        Ok(actions)
    }

    /// The table's columns widened by those of `files` (read from their footers), or `None`
    /// when they add none.
    fn widened(
        &self,
        snap: &Snapshot,
        files: impl Iterator<Item = PathBuf>,
    ) -> Result<Option<Vec<Value>>> {
        let mut fields = snap.fields();
        let before = fields.len();
        let mut names: BTreeSet<String> = fields
            .iter()
            .filter_map(|f| f.get("name").and_then(Value::as_str))
            .map(str::to_lowercase)
            .collect();
        for path in files {
            for field in footer_schema(&path)?.fields() {
                if names.insert(field.name().to_lowercase()) {
                    fields.push(json!({
                        "name": field.name(),
                        "type": delta_type(field, &path)?,
                        "nullable": true,
                        "metadata": {},
                    }));
                }
            }
        }
        if names.insert("date".into()) {
            fields.push(json!({"name": "date", "type": "date", "nullable": true, "metadata": {}}));
        }
        Ok((snap.meta.is_none() || fields.len() != before).then_some(fields))
    }

    /// A `metaData` action declaring `fields` (the table's identity kept when it has one).
    fn meta_data(&self, snap: &Snapshot, fields: Vec<Value>, now: i64) -> Value {
        let schema = json!({"type": "struct", "fields": fields}).to_string();
        let old = snap.meta.as_ref();
        let keep =
            |key: &str, default: Value| old.and_then(|m| m.get(key)).cloned().unwrap_or(default);
        json!({"metaData": {
            "id": keep("id", Value::String(table_id(&self.store.location(), now))),
            "name": keep("name", Value::String(self.table.clone())),
            "format": {"provider": "parquet", "options": {}},
            "schemaString": schema,
            "partitionColumns": ["date"],
            "createdTime": keep("createdTime", Value::from(now)),
            "configuration": keep(
                "configuration",
                json!({"delta.checkpointInterval": CHECKPOINT_INTERVAL.to_string()}),
            ),
        }})
    }

    /// Writes commit `version` unless another writer wrote it first (then `false`).
    fn write_commit(&self, version: u64, actions: &[Value]) -> Result<bool> {
        let mut text = Vec::new();
        for a in actions {
            serde_json::to_writer(&mut text, a).expect("actions serialise");
            text.push(b'\n');
        }
        let created = self.store.create(&commit_name(version), &text)?;
        if !created {
            forget(&self.store.location());
        }
        Ok(created)
    }

    /// The log's latest state: what this process last saw, brought up to date.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let location = self.store.location();
        let known = SEEN
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|m| m.get(&location).cloned());
        let mut snap = match known {
            Some(s) => s,
            None => checkpoint::latest(self.store.as_ref())?.unwrap_or_default(),
        };
        loop {
            let next = snap.version.map_or(0, |v| v + 1);
            let name = commit_name(next);
            let Some(bytes) = self.store.read(&name)? else {
                break;
            };
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let action: Value = serde_json::from_str(line).map_err(|e| {
                    self.failed(format!(
                        "Delta commit {name} is not valid JSON ({e}); restore the file or delete the table's _delta_log (logcrunch writes it again)"
                    ))
                })?;
                snap.apply(&action);
            }
            snap.version = Some(next);
        }
        Ok(snap)
    }
}

/// Removes what a writer that crashed left in `log_dir` (commits and checkpoints written aside,
/// never linked into place); returns how many. Only the dataset's writer calls it, under its lock.
pub fn remove_temporary(log_dir: &Path) -> Result<usize> {
    let entries = std::fs::read_dir(log_dir).map_err(|e| Error::io("cannot list", log_dir, e))?;
    let mut removed = 0;
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn remember(location: &str, snap: Snapshot) {
    SEEN.lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(location.to_string(), snap);
}

fn forget(location: &str) {
    if let Some(m) = SEEN.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        m.remove(location);
    }
}

/// The Delta `appId` under which a source's progress is recorded.
pub fn source_app_id(fingerprint: u64) -> String {
    format!("logcrunch-source-{fingerprint:016x}")
}

/// A table id in UUID form, unique to the log's location and the moment.
fn table_id(location: &str, now: i64) -> String {
    let h = xxhash_rust::xxh3::xxh3_128(format!("{location}\0{now}").as_bytes());
    let hex = format!("{h:032x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// The Arrow schema a Parquet file's footer declares.
fn footer_schema(path: &Path) -> Result<Arc<Schema>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|source| Error::Parquet {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Arc::clone(builder.schema()))
}

/// The Delta type of an Arrow column (unsigned columns of older files as their signed width).
fn delta_type(field: &Field, path: &Path) -> Result<&'static str> {
    Ok(match field.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string",
        DataType::Dictionary(_, v) if v.is_string() => "string",
        DataType::Int8 => "byte",
        DataType::Int16 | DataType::UInt8 | DataType::UInt16 => "short",
        DataType::Int32 | DataType::UInt32 => "integer",
        DataType::Int64 | DataType::UInt64 => "long",
        DataType::Float32 => "float",
        DataType::Float64 => "double",
        DataType::Boolean => "boolean",
        DataType::Binary | DataType::LargeBinary => "binary",
        DataType::Date32 => "date",
        DataType::Timestamp(_, Some(_)) => "timestamp",
        other => {
            return Err(Error::Dataset {
                path: path.to_path_buf(),
                message: format!(
                    "column {} has type {other}, which a Delta table cannot declare; re-ingest its source with --force",
                    field.name()
                ),
            });
        }
    })
}

/// Brings the Delta logs of every table of `dataset` in line with `manifest`. The manifest has
/// been committed when this runs, so a log that cannot be updated is reported, not fatal: the
/// next save brings it up to date.
pub fn publish(dataset: &Path, manifest: &Manifest) {
    let mut tables: BTreeSet<&str> = manifest.files.iter().map(|f| f.table.as_str()).collect();
    tables.extend(
        ["logs", "errors", crate::schema::STATS_TABLE]
            .into_iter()
            .filter(|t| dataset.join(t).join(LOG_DIR).is_dir()),
    );
    for table in tables {
        let started = std::time::Instant::now();
        match DeltaLog::new(dataset, table).publish(manifest) {
            Ok(version) => tracing::debug!(
                table,
                ?version,
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "Delta log published"
            ),
            Err(e) => tracing::warn!(
                table,
                error = %e,
                "the table's Delta log was not updated; the next write to the dataset updates it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};

    /// A Parquet file at `dataset/rel` with an `offset` column and, when given, an extra one.
    fn parquet(dataset: &Path, rel: &str, extra: Option<&str>) {
        let mut fields = vec![Field::new("offset", DataType::Int64, false)];
        let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![1, 2]))];
        if let Some(name) = extra {
            fields.push(Field::new(name, DataType::Utf8, true));
            cols.push(Arc::new(StringArray::from(vec![Some("x"), None])));
        }
        let schema = Arc::new(Schema::new(fields));
        let path = dataset.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::fs::File::create(&path).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, Arc::clone(&schema), None).unwrap();
        w.write(&RecordBatch::try_new(schema, cols).unwrap())
            .unwrap();
        w.close().unwrap();
    }

    fn record(rel: &str, source: u64, compacted: bool) -> FileRecord {
        FileRecord {
            table: "logs".into(),
            path: rel.into(),
            source,
            run: "r".into(),
            date: "2024-01-02".into(),
            rows: 2,
            bytes: 10,
            compacted,
        }
    }

    fn source(id: u64, offset: u64) -> SourceRecord {
        serde_json::from_value(json!({
            "id": id, "path": "a.log", "encoding": "plain", "size": offset, "fingerprint": 0xabc + id,
            "fingerprint_len": 10, "offset": offset, "ends_with_newline": true, "lines": 2,
            "rows": 2, "bad_lines": 0, "format": "combined", "last_run": "r"
        }))
        .unwrap()
    }

    /// The actions of commit `version` of the `logs` table.
    fn commit(dataset: &Path, version: u64) -> Vec<Value> {
        let path = dataset
            .join("logs")
            .join(LOG_DIR)
            .join(commit_name(version));
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn kinds(actions: &[Value]) -> Vec<String> {
        actions
            .iter()
            .map(|a| a.as_object().unwrap().keys().next().unwrap().clone())
            .collect()
    }

    #[test]
    fn the_log_follows_the_manifest_through_appends_widening_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dir.path();
        let log = DeltaLog::new(ds, "logs");
        let mut m = Manifest::default();
        assert_eq!(log.publish(&m).unwrap(), None, "no files, no table");
        assert!(!ds.join("logs").join(LOG_DIR).exists());

        parquet(ds, "logs/date=2024-01-02/part-a.parquet", None);
        m.files
            .push(record("logs/date=2024-01-02/part-a.parquet", 0, false));
        m.sources.push(source(0, 100));
        assert_eq!(log.publish(&m).unwrap(), Some(0));
        let first = commit(ds, 0);
        assert_eq!(
            kinds(&first),
            ["protocol", "metaData", "add", "txn", "commitInfo"]
        );
        assert_eq!(first[2]["add"]["path"], "date=2024-01-02/part-a.parquet");
        assert_eq!(first[2]["add"]["partitionValues"]["date"], "2024-01-02");
        assert_eq!(first[3]["txn"]["appId"], source_app_id(0xabc));
        assert_eq!(first[3]["txn"]["version"], 100);
        assert_eq!(log.publish(&m).unwrap(), None, "nothing new, no commit");

        // A second file with a column the first lacks widens the schema.
        parquet(ds, "logs/date=2024-01-02/part-b.parquet", Some("port"));
        m.files
            .push(record("logs/date=2024-01-02/part-b.parquet", 0, false));
        m.sources[0].offset = 200;
        assert_eq!(log.publish(&m).unwrap(), Some(1));
        let second = commit(ds, 1);
        assert_eq!(kinds(&second), ["metaData", "add", "txn", "commitInfo"]);
        let schema: Value =
            serde_json::from_str(second[0]["metaData"]["schemaString"].as_str().unwrap()).unwrap();
        let names: Vec<&str> = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["offset", "date", "port"]);
        assert_eq!(second[0]["metaData"]["id"], first[1]["metaData"]["id"]);

        // Compaction: one file replaces both, neither side a data change.
        parquet(ds, "logs/date=2024-01-02/part-c.parquet", Some("port"));
        m.files = vec![record("logs/date=2024-01-02/part-c.parquet", 0, true)];
        assert_eq!(log.publish(&m).unwrap(), Some(2));
        let third = commit(ds, 2);
        assert_eq!(kinds(&third), ["add", "remove", "remove", "commitInfo"]);
        assert!(third[..3].iter().all(|a| {
            let body = a.as_object().unwrap().values().next().unwrap();
            body["dataChange"] == false
        }));
        assert_eq!(third[3]["commitInfo"]["operation"], "OPTIMIZE");

        // Dropping the partition removes its file as a data change.
        m.files.clear();
        assert_eq!(log.publish(&m).unwrap(), Some(3));
        let fourth = commit(ds, 3);
        assert_eq!(fourth[0]["remove"]["dataChange"], true);
        assert_eq!(fourth[1]["commitInfo"]["operation"], "DELETE");
    }

    #[test]
    fn a_version_another_writer_took_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dir.path();
        let log = DeltaLog::new(ds, "logs");
        let mut m = Manifest::default();
        parquet(ds, "logs/date=2024-01-02/part-a.parquet", None);
        m.files
            .push(record("logs/date=2024-01-02/part-a.parquet", 0, false));
        assert_eq!(log.publish(&m).unwrap(), Some(0));
        // Another writer commits version 1 behind this process's back.
        let theirs = "{\"commitInfo\":{\"operation\":\"WRITE\"}}\n";
        let taken = ds.join("logs").join(LOG_DIR).join(commit_name(1));
        std::fs::write(&taken, theirs).unwrap();
        assert!(!log.write_commit(1, &[json!({"commitInfo": {}})]).unwrap());
        assert_eq!(std::fs::read_to_string(&taken).unwrap(), theirs);

        parquet(ds, "logs/date=2024-01-02/part-b.parquet", None);
        m.files
            .push(record("logs/date=2024-01-02/part-b.parquet", 0, false));
        assert_eq!(log.publish(&m).unwrap(), Some(2));
        assert_eq!(std::fs::read_to_string(&taken).unwrap(), theirs);
        assert_eq!(kinds(&commit(ds, 2)), ["add", "commitInfo"]);
    }

    #[test]
    fn checkpoints_hold_the_state_their_commits_built() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dir.path();
        let log = DeltaLog::new(ds, "logs");
        let mut m = Manifest::default();
        m.sources.push(source(0, 0));
        for i in 0..=CHECKPOINT_INTERVAL {
            let rel = format!("logs/date=2024-01-02/part-{i}.parquet");
            parquet(ds, &rel, (i == 3).then_some("port"));
            m.files.push(record(&rel, 0, false));
            m.sources[0].offset = 10 * (i + 1);
            assert_eq!(log.publish(&m).unwrap(), Some(i));
        }
        let log_dir = ds.join("logs").join(LOG_DIR);
        let last: Value = serde_json::from_str(
            &std::fs::read_to_string(log_dir.join("_last_checkpoint")).unwrap(),
        )
        .unwrap();
        assert_eq!(last["version"], CHECKPOINT_INTERVAL);
        let from_checkpoint = checkpoint::latest(log.store.as_ref()).unwrap().unwrap();
        forget(&log.store.location());
        let replayed = {
            std::fs::rename(log_dir.join("_last_checkpoint"), ds.join("aside")).unwrap();
            let s = log.snapshot().unwrap();
            std::fs::rename(ds.join("aside"), log_dir.join("_last_checkpoint")).unwrap();
            s
        };
        assert_eq!(from_checkpoint.version, replayed.version);
        assert_eq!(from_checkpoint.txns, replayed.txns);
        assert_eq!(
            from_checkpoint.txns[&source_app_id(0xabc)],
            10 * (CHECKPOINT_INTERVAL as i64 + 1)
        );
        assert_eq!(from_checkpoint.fields(), replayed.fields());
        assert_eq!(from_checkpoint.protocol, replayed.protocol);
        let paths = |s: &Snapshot| s.files.keys().cloned().collect::<Vec<_>>();
        assert_eq!(paths(&from_checkpoint), paths(&replayed));
        assert_eq!(
            from_checkpoint.files.len(),
            CHECKPOINT_INTERVAL as usize + 1
        );
        let sizes = |s: &Snapshot| s.files.values().map(Listed::size).collect::<Vec<_>>();
        assert_eq!(sizes(&from_checkpoint), sizes(&replayed));

        // A process that starts afresh reads the checkpoint and the commits after it.
        forget(&log.store.location());
        m.files.remove(0);
        assert_eq!(
            log.publish(&m).unwrap(),
            Some(CHECKPOINT_INTERVAL + 1),
            "one file removed after the checkpoint"
        );
        assert_eq!(
            kinds(&commit(ds, CHECKPOINT_INTERVAL + 1)),
            ["remove", "commitInfo"]
        );
    }

    #[test]
    fn escaped_paths_of_other_writers_are_read_as_names() {
        assert_eq!(
            unescape("date=2024-01-02/a%20b.parquet"),
            "date=2024-01-02/a b.parquet"
        );
        assert_eq!(unescape("plain.parquet"), "plain.parquet");
        assert_eq!(unescape("bad%zz"), "bad%zz");
    }
}
