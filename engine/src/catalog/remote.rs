//! Datasets on object storage (`--dataset s3://bucket/prefix`).
//!
//! There the tables' Delta logs ([`super::delta`]) are the whole truth: no manifest, no lock
//! file, so writers on many machines need nothing but the bucket. Every command still works on a
//! local directory, which is why this module has two verbs:
//! - [`Remote::stage`] then [`Remote::push`] (ingest): the run writes into a private staging
//!   directory whose manifest holds the sources the tables' logs know (each data file's `add`
//!   carries its source's record as the tag `logcrunch.source`); the new files are then uploaded
//!   (multipart above [`MULTIPART`]) and committed to each table's log with the `txn` of each
//!   source read. A commit that finds another writer's commit in its place reads it and tries the
//!   next version, unless that writer advanced one of the same sources (two processes read the
//!   same file): then it deletes what it uploaded and fails, so no row is stored twice. The logs
//!   table is committed last, and its `txn` says how far a source is read.
//! - [`Remote::pull`] (query, report, detect, stats): the tables' files are downloaded into a
//!   cache directory (only those not there yet; data files never change) with a manifest listing
//!   exactly them, and the command reads that directory.
//!
//! Requests go through the `object_store` crate (credentials and region from the AWS
//! environment variables, or from `~/.aws/credentials` and `~/.aws/config` for `AWS_PROFILE`;
//! `AWS_ENDPOINT_URL` for an S3-compatible server; retries with backoff), on a small tokio
//! runtime owned by [`Remote`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use serde_json::Value;

use super::delta::{self, DeltaLog, LogStore, Snapshot};
use super::manifest::{FileRecord, Manifest, SourceRecord};
use crate::error::{Error, Result};

/// Files above this size are uploaded in parts.
pub const MULTIPART: u64 = 16 << 20;
/// Uploads and downloads in flight at once.
const CONCURRENCY: usize = 8;
/// The dataset's tables, in the order a push commits them (`logs` last: its `txn` is the
/// progress a later run resumes from).
const TABLES: [&str; 3] = [crate::schema::STATS_TABLE, "errors", "logs"];
/// The `add` tag holding the record of the file's source.
const SOURCE_TAG: &str = "logcrunch.source";
/// The `add` tag of `stats` files holding the routes that have series of their own (the
/// manifest's `route_groups`), so every writer keeps the first writer's choice.
const ROUTES_TAG: &str = "logcrunch.route_groups";

/// A dataset on object storage.
pub struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    root: Key,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

/// Whether `dataset` names object storage rather than a local directory.
pub fn is_remote(dataset: &Path) -> bool {
    let s = dataset.to_string_lossy();
    s.starts_with("s3://") || s.starts_with("s3a://")
}

/// The dataset an argument or `storage.dataset` names: a directory, `file:///absolute/path`
/// (that directory), or an `s3://` URL (kept as it is). Other URL schemes are refused.
pub fn dataset_location(arg: &str) -> std::result::Result<PathBuf, String> {
    let Some((scheme, rest)) = arg.split_once("://") else {
        return Ok(PathBuf::from(arg));
    };
    match scheme {
        "s3" | "s3a" => Ok(PathBuf::from(arg)),
        "file" => {
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(format!(
                    "{arg}: a file URL names an absolute path (file:///srv/logs), or give the directory itself"
                ));
            }
            Ok(PathBuf::from(super::delta::unescape(path)))
        }
        _ => Err(format!(
            "{arg}: datasets are directories, file:// or s3:// URLs; {scheme}:// is not supported (for GCS or Azure, use their S3-compatible endpoints through AWS_ENDPOINT_URL, or a mounted directory)"
        )),
    }
}

/// `dataset` itself when it is local; a remote dataset is refused for `command`, which needs a
/// local one.
pub fn local_only(dataset: &Path, command: &str) -> Result<()> {
    if is_remote(dataset) {
        return Err(Error::Usage(format!(
            "`{command}` works on a local dataset only, not on {}; ingest, query, report, detect, stats and compare read and write object storage",
            dataset.display()
        )));
    }
    Ok(())
}

/// The days a reading command needs: every day, or the UTC days from `first` to `last`
/// (`YYYY-MM-DD`, inclusive), as the tables' `date` partitions name them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Days {
    first: Option<String>,
    last: Option<String>,
}

impl Days {
    /// Every day.
    pub fn all() -> Days {
        Days::default()
    }

    /// The days holding the times from `since` to `until` (µs since the epoch), with a day to
    /// spare on each side (a relative `--since 24h` is read again later, a moment after).
    pub fn between(since_us: Option<i64>, until_us: Option<i64>) -> Days {
        let day = |us: i64, spare: i64| {
            let (y, m, d) =
                crate::parse::value::civil_from_days(us.div_euclid(86_400_000_000) + spare);
            format!("{y:04}-{m:02}-{d:02}")
        };
        Days {
            first: since_us.map(|us| day(us, -1)),
            last: until_us.map(|us| day(us, 1)),
        }
    }

    /// Whether the partition of `date` is needed (a file without a date always is).
    fn holds(&self, date: &str) -> bool {
        date.is_empty()
            || (self.first.as_deref().is_none_or(|f| date >= f)
                && self.last.as_deref().is_none_or(|l| date <= l))
    }
}

/// The local directory a reading command opens for `dataset`: the dataset itself, or for a
/// remote one its cache, brought up to date first for `days` ([`Remote::pull`]).
pub fn readable(dataset: &Path, days: &Days) -> Result<PathBuf> {
    if !is_remote(dataset) {
        return Ok(dataset.to_path_buf());
    }
    let remote = Arc::new(Remote::open(dataset)?);
    let cache = remote.cache_dir();
    remote.pull(&cache, days)?;
    Ok(cache)
}

/// The AWS settings of `AWS_PROFILE` (else `default`) from `~/.aws/credentials` and
/// `~/.aws/config`, for those the environment does not set.
fn profile_settings() -> Vec<(&'static str, String)> {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return Vec::new();
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let section = |file: &Path, names: &[String]| -> BTreeMap<String, String> {
        let Ok(text) = std::fs::read_to_string(file) else {
            return BTreeMap::new();
        };
        let mut current = false;
        let mut out = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = names.iter().any(|n| n == name.trim());
            } else if current && let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_lowercase(), v.trim().to_string());
            }
        }
        out
    };
    let credentials = section(
        &std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
            .map_or_else(|| home.join(".aws/credentials"), PathBuf::from),
        std::slice::from_ref(&profile),
    );
    let config = section(
        &std::env::var_os("AWS_CONFIG_FILE")
            .map_or_else(|| home.join(".aws/config"), PathBuf::from),
        &[format!("profile {profile}"), profile.clone()],
    );
    [
        ("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
        ("AWS_SESSION_TOKEN", "aws_session_token"),
        ("AWS_REGION", "region"),
        ("AWS_ENDPOINT_URL", "endpoint_url"),
    ]
    .into_iter()
    .filter(|(env, _)| std::env::var_os(env).is_none())
    .filter_map(|(env, key)| {
        credentials
            .get(key)
            .or_else(|| config.get(key))
            .map(|v| (env, v.clone()))
    })
    .collect()
}

impl Remote {
    /// Connects to the dataset at `url` (`s3://bucket/prefix`); nothing is requested yet.
    pub fn open(url: &Path) -> Result<Remote> {
        let url = url.to_string_lossy().trim_end_matches('/').to_string();
        let fail = |message: String| Error::Storage {
            location: url.clone(),
            message,
        };
        let rest = url
            .strip_prefix("s3://")
            .or_else(|| url.strip_prefix("s3a://"))
            .ok_or_else(|| fail("not an s3:// URL".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(fail("the URL names no bucket: s3://BUCKET/PREFIX".into()));
        }
        // TLS with ring, as the rest of the binary; a second install is refused and harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(object_store::RetryConfig::default());
        let mut endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
        for (key, value) in profile_settings() {
            builder = match key {
                "AWS_ACCESS_KEY_ID" => builder.with_access_key_id(value),
                "AWS_SECRET_ACCESS_KEY" => builder.with_secret_access_key(value),
                "AWS_SESSION_TOKEN" => builder.with_token(value),
                "AWS_REGION" => builder.with_region(value),
                _ => {
                    endpoint = Some(value);
                    builder
                }
            };
        }
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        }
        let store = builder.build().map_err(|e| fail(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the I/O runtime: {e}")))?;
        Ok(Remote {
            root: Key::from(prefix),
            store: Arc::new(store),
            runtime,
            url,
        })
    }

    /// The dataset's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, rel: &str) -> Key {
        rel.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.root.clone(), |k, part| k.join(part))
    }

    fn fail(&self, rel: &str, e: impl std::fmt::Display) -> Error {
        Error::Storage {
            location: format!("{}/{rel}", self.url),
            message: e.to_string(),
        }
    }

    /// The object `rel`, `None` when absent.
    pub fn get(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let key = self.key(rel);
        self.runtime.block_on(async {
            match self.store.get(&key).await {
                Ok(r) => Ok(Some(
                    r.bytes().await.map_err(|e| self.fail(rel, e))?.to_vec(),
                )),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.fail(rel, e)),
            }
        })
    }

    /// Writes `rel` unless it exists (then `false`).
    pub fn create(&self, rel: &str, bytes: &[u8]) -> Result<bool> {
        let key = self.key(rel);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let payload = PutPayload::from(bytes.to_vec());
        self.runtime.block_on(async {
            match self.store.put_opts(&key, payload, opts).await {
                Ok(_) => Ok(true),
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => Ok(false),
                Err(e) => Err(self.fail(rel, e)),
            }
        })
    }

    /// Writes or replaces `rel`.
    pub fn put(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let key = self.key(rel);
        let payload = PutPayload::from(bytes.to_vec());
        self.runtime
            .block_on(self.store.put(&key, payload))
            .map(|_| ())
            .map_err(|e| self.fail(rel, e))
    }

    /// Uploads the local files `(rel, path)`, several at a time; a file already there is an
    /// error (names are unique per run, so it is another writer's).
    fn upload_all(&self, files: &[(String, PathBuf)]) -> Result<()> {
        self.runtime.block_on(async {
            futures::stream::iter(files.iter().map(|(rel, path)| self.upload(rel, path)))
                .buffer_unordered(CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await
                .map(|_| ())
        })
    }

    async fn upload(&self, rel: &str, path: &Path) -> Result<()> {
        let key = self.key(rel);
        let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
        if bytes.len() as u64 > MULTIPART {
            let upload = self
                .store
                .put_multipart(&key)
                .await
                .map_err(|e| self.fail(rel, e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART as usize);
            writer.put(bytes::Bytes::from(bytes));
            writer.finish().await.map_err(|e| self.fail(rel, e))?;
            return Ok(());
        }
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&key, PutPayload::from(bytes), opts)
            .await
            .map(|_| ())
            .map_err(|e| self.fail(rel, e))
    }

    /// Downloads `(rel, path)` pairs, several at a time, each written aside and renamed.
    fn download_all(&self, files: &[(String, PathBuf)]) -> Result<()> {
        self.runtime.block_on(async {
            futures::stream::iter(files.iter().map(|(rel, path)| async move {
                let bytes = self
                    .store
                    .get(&self.key(rel))
                    .await
                    .map_err(|e| self.fail(rel, e))?
                    .bytes()
                    .await
                    .map_err(|e| self.fail(rel, e))?;
                let tmp = path.with_extension("download.tmp");
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
                }
                std::fs::write(&tmp, &bytes).map_err(|e| Error::io("cannot write", &tmp, e))?;
                std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot replace", path, e))
            }))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
        })
    }

    fn delete_all(&self, rels: &[String]) {
        self.runtime.block_on(async {
            for rel in rels {
                if let Err(e) = self.store.delete(&self.key(rel)).await {
                    tracing::warn!(object = %format!("{}/{rel}", self.url), error = %e, "cannot remove an uploaded file");
                }
            }
        });
    }

    /// The log of `table`, adding files from the local directory `files`.
    fn log(self: &Arc<Self>, table: &str, files: &Path) -> DeltaLog {
        DeltaLog::with_store(
            table,
            files,
            Box::new(RemoteLog {
                remote: Arc::clone(self),
                prefix: format!("{table}/{}", delta::LOG_DIR),
            }),
        )
    }

    /// The latest state of every table's log.
    fn snapshots(self: &Arc<Self>) -> Result<BTreeMap<&'static str, Snapshot>> {
        TABLES
            .into_iter()
            .map(|t| Ok((t, self.log(t, Path::new(t)).snapshot()?)))
            .collect()
    }

    /// Where this dataset is cached for reading commands: `$LOGCRUNCH_CACHE`, else
    /// `$XDG_CACHE_HOME/logcrunch`, else `~/.cache/logcrunch`, under `datasets/<hash of the URL>`.
    pub fn cache_dir(&self) -> PathBuf {
        let base = std::env::var_os("LOGCRUNCH_CACHE")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("logcrunch"))
            })
            .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/logcrunch")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("datasets").join(format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(self.url.as_bytes())
        ))
    }
}

/// A table's log under the dataset's prefix.
struct RemoteLog {
    remote: Arc<Remote>,
    prefix: String,
}

impl LogStore for RemoteLog {
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.remote.get(&format!("{}/{name}", self.prefix))
    }

    fn create(&self, name: &str, bytes: &[u8]) -> Result<bool> {
        self.remote
            .create(&format!("{}/{name}", self.prefix), bytes)
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.remote.put(&format!("{}/{name}", self.prefix), bytes)
    }

    fn location(&self) -> String {
        format!("{}/{}", self.remote.url, self.prefix)
    }
}

/// The record of each source the tables' files carry, by fingerprint: the latest one of the
/// table a push commits it to last (`logs` for access logs, `errors` for error logs), which
/// says how far the source is read. Statistics never say it: a run killed after committing them
/// has not stored its rows yet.
fn sources_of(snapshots: &BTreeMap<&'static str, Snapshot>) -> BTreeMap<u64, SourceRecord> {
    let mut out: BTreeMap<u64, SourceRecord> = BTreeMap::new();
    for table in ["errors", "logs"] {
        let mut latest: BTreeMap<u64, SourceRecord> = BTreeMap::new();
        for listed in snapshots
            .get(table)
            .into_iter()
            .flat_map(|s| s.files.values())
        {
            let Some(record) = listed
                .tag(SOURCE_TAG)
                .and_then(|t| serde_json::from_str::<SourceRecord>(t).ok())
            else {
                continue;
            };
            match latest.get(&record.fingerprint) {
                Some(known) if known.offset >= record.offset => {}
                _ => {
                    latest.insert(record.fingerprint, record);
                }
            }
        }
        out.extend(latest);
    }
    // Sources numbered afresh, in a stable order: ids are local to one directory.
    for (id, record) in out.values_mut().enumerate() {
        record.id = id as u64;
    }
    out
}

/// What a staged ingest started from.
#[derive(Debug)]
pub struct Staged {
    dir: PathBuf,
    /// Each table's `txn` versions when the stage was made.
    txns: BTreeMap<&'static str, BTreeMap<String, i64>>,
    /// Held while the stage is in use, so that another run can tell a stage abandoned by a
    /// killed process (its lock free) from one in use.
    _lock: std::fs::File,
}

/// Staging directories are `<temp dir>/logcrunch-stage-<pid>-<hash>`.
const STAGE_PREFIX: &str = "logcrunch-stage-";
/// The lock file a stage's process holds.
const STAGE_LOCK: &str = ".stage.lock";
/// A stage without a lock file was made before stages had one; it is removed once this old.
const STAGE_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

/// A new staging directory under `root`, with its lock held. It is made under another name and
/// renamed into place once locked, so no other run ever sees it unlocked.
fn make_stage(root: &Path, url: &str) -> Result<(PathBuf, std::fs::File)> {
    let name = format!(
        "{}-{:x}",
        std::process::id(),
        xxhash_rust::xxh3::xxh3_64(format!("{url}{:?}", std::time::SystemTime::now()).as_bytes())
    );
    let making = root.join(format!(".{STAGE_PREFIX}{name}"));
    let dir = root.join(format!("{STAGE_PREFIX}{name}"));
    std::fs::create_dir_all(&making).map_err(|e| Error::io("cannot create", &making, e))?;
    let lock_path = making.join(STAGE_LOCK);
    let lock =
        std::fs::File::create(&lock_path).map_err(|e| Error::io("cannot create", &lock_path, e))?;
    lock.lock()
        .map_err(|e| Error::io("cannot lock", &lock_path, e))?;
    std::fs::rename(&making, &dir).map_err(|e| Error::io("cannot rename", &making, e))?;
    Ok((dir, lock))
}

/// Removes the staging directories under `root` that a killed run left behind: those whose lock
/// no process holds (a lock dies with its process). Failures are ignored: a stage left behind
/// costs disk, not correctness.
fn remove_abandoned_stages(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGE_PREFIX)
        {
            continue;
        }
        let dir = entry.path();
        let abandoned = match std::fs::File::open(dir.join(STAGE_LOCK)) {
            Ok(lock) => lock.try_lock().is_ok(),
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STAGE_GRACE)),
        };
        if abandoned {
            tracing::info!(dir = %dir.display(), "removing a staging directory a killed run left");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

impl Staged {
    /// The local directory the run writes into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a push committed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Pushed {
    /// Files uploaded.
    pub files: usize,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Version committed per table.
    pub versions: BTreeMap<String, u64>,
    /// Tables done with (committed, or holding these rows already).
    #[serde(skip)]
    done: BTreeSet<&'static str>,
}

impl Remote {
    /// A private staging directory for an ingest into this dataset: its manifest holds the
    /// sources the tables know, so the run reads only what is new.
    pub fn stage(self: &Arc<Self>) -> Result<Staged> {
        let snapshots = self.snapshots()?;
        let root = std::env::temp_dir();
        remove_abandoned_stages(&root);
        let (dir, lock) = make_stage(&root, &self.url)?;
        let staged = Staged {
            txns: snapshots
                .iter()
                .map(|(t, s)| (*t, s.txns.clone()))
                .collect(),
            dir,
            _lock: lock,
        };
        let route_groups = snapshots
            .get(crate::schema::STATS_TABLE)
            .map(route_groups_of)
            .unwrap_or_default();
        let manifest = Manifest {
            version: super::manifest::MANIFEST_VERSION,
            sources: sources_of(&snapshots).into_values().collect(),
            route_groups,
            ..Manifest::default()
        };
        manifest.save(&staged.dir)?;
        Ok(staged)
    }

    /// Uploads what the run wrote into `staged` and commits it to the tables' logs (see the
    /// module text). On a conflict over a source, what was uploaded is removed and nothing is
    /// committed for the tables not yet committed.
    pub fn push(self: &Arc<Self>, staged: &Staged) -> Result<Pushed> {
        let manifest = Manifest::load(&staged.dir)?;
        let mut pushed = Pushed::default();
        let files: Vec<(String, PathBuf)> = manifest
            .files
            .iter()
            .map(|f| (f.path.clone(), staged.dir.join(&f.path)))
            .collect();
        pushed.files = files.len();
        pushed.bytes = manifest.files.iter().map(|f| f.bytes).sum();
        self.upload_all(&files)?;
        let sources: BTreeMap<u64, &SourceRecord> =
            manifest.sources.iter().map(|s| (s.id, s)).collect();
        for table in TABLES {
            let files: Vec<&FileRecord> =
                manifest.files.iter().filter(|f| f.table == table).collect();
            if files.is_empty() {
                continue;
            }
            crate::sink::pause_point(&format!("push-{table}"));
            let base = &staged.txns[table];
            let log = self.log(table, &staged.dir.join(table));
            let mut skipped = Vec::new();
            let committed = log.commit_with(|snap| {
                let app = |f: &FileRecord| {
                    sources
                        .get(&f.source)
                        .map(|s| (delta::source_app_id(s.fingerprint), s.offset))
                };
                if let Some((app, _)) = files
                    .iter()
                    .filter_map(|f| app(f))
                    .find(|(a, _)| snap.txns.get(a) != base.get(a))
                {
                    return Err(Error::Dataset {
                        path: PathBuf::from(&self.url),
                        message: format!(
                            "another writer ingested the same source ({app}) at the same time; nothing of this run was committed to `{table}` and the tables after it. Run it again: it resumes where that writer stopped"
                        ),
                    });
                }
                // A run killed between its commits left this table holding a source's rows up
                // to where this run ends: they are not added twice.
                let (adds, done): (Vec<&FileRecord>, Vec<&FileRecord>) =
                    files.iter().copied().partition(|f| {
                        app(f).is_none_or(|(a, offset)| {
                            snap.txns
                                .get(&a)
                                .is_none_or(|v| u64::try_from(*v).map_or(true, |v| v < offset))
                        })
                    });
                skipped = done.iter().map(|f| f.path.clone()).collect();
                if adds.is_empty() {
                    return Ok(None);
                }
                Ok(Some(appends(&log, table, snap, &adds, &sources, &manifest.route_groups)?))
            });
            match committed {
                Ok(v) => {
                    self.delete_all(&skipped);
                    if let Some(v) = v {
                        pushed.versions.insert(table.to_string(), v);
                    }
                    pushed.done.insert(table);
                }
                Err(e) => {
                    let unused: Vec<String> = manifest
                        .files
                        .iter()
                        .filter(|f| !pushed.done.contains(f.table.as_str()))
                        .map(|f| f.path.clone())
                        .collect();
                    self.delete_all(&unused);
                    return Err(e);
                }
            }
        }
        Ok(pushed)
    }

    /// Brings the cache directory `cache` in line with the dataset for `days`: downloads the
    /// files of those days it lacks, writes a manifest listing the tables' files it holds, and
    /// removes the rest. Files of other days stay cached if they were, else are left out.
    pub fn pull(self: &Arc<Self>, cache: &Path, days: &Days) -> Result<()> {
        std::fs::create_dir_all(cache).map_err(|e| Error::io("cannot create", cache, e))?;
        // Readers of the same cache on this machine take turns bringing it up to date.
        let _writer = super::WriterLock::wait(cache, "pull")?;
        let ds = super::Dataset::open_for_write(cache)?;
        let snapshots = self.snapshots()?;
        let sources = sources_of(&snapshots);
        let mut manifest = Manifest {
            version: super::manifest::MANIFEST_VERSION,
            ..Manifest::load(cache)?
        };
        manifest.files.clear();
        let mut missing = Vec::new();
        for (table, snap) in &snapshots {
            for (rel, listed) in &snap.files {
                let path = format!("{table}/{rel}");
                let local = cache.join(&path);
                if std::fs::metadata(&local).map_or(true, |m| m.len() != listed.size()) {
                    if !days.holds(listed.date()) {
                        // Not needed now: left out of the cache's manifest until a command
                        // reads its day.
                        continue;
                    }
                    missing.push((path.clone(), local));
                }
                let source = listed
                    .tag(SOURCE_TAG)
                    .and_then(|t| serde_json::from_str::<SourceRecord>(t).ok())
                    .and_then(|r| sources.get(&r.fingerprint))
                    .map_or(u64::MAX, |r| r.id);
                manifest.files.push(FileRecord {
                    table: table.to_string(),
                    path,
                    source,
                    run: String::new(),
                    date: listed.date().to_string(),
                    rows: listed.rows(),
                    bytes: listed.size(),
                    compacted: false,
                });
            }
        }
        manifest.sources = sources.into_values().collect();
        tracing::info!(dataset = %self.url, files = manifest.files.len(), download = missing.len(), "pulling");
        self.download_all(&missing)?;
        manifest.save(cache)?;
        ds.recover(&manifest)?;
        Ok(())
    }
}

/// The route groups the `stats` files were written with. Each run keeps the groups before it and
/// may add routes, so each file's list extends an earlier one: the longest list first, then
/// whatever other lists added (two writers that extended the same list at once), so no route that
/// has series of its own is folded into `other` by a later run.
fn route_groups_of(stats: &Snapshot) -> Vec<String> {
    let mut lists: Vec<Vec<String>> = stats
        .files
        .values()
        .filter_map(|l| l.tag(ROUTES_TAG))
        .filter_map(|t| serde_json::from_str(t).ok())
        .collect();
    lists.sort_by_key(|l| std::cmp::Reverse(l.len()));
    let mut groups: Vec<String> = Vec::new();
    for route in lists.into_iter().flatten() {
        if !groups.contains(&route) {
            groups.push(route);
        }
    }
    groups
}

/// The actions that add `files` of `table` (each tagged with its source's record, and `stats`
/// files with the route groups) at `snap`, with the `txn` of each of their sources.
fn appends(
    log: &DeltaLog,
    table: &str,
    snap: &Snapshot,
    files: &[&FileRecord],
    sources: &BTreeMap<u64, &SourceRecord>,
    route_groups: &[String],
) -> Result<Vec<Value>> {
    let prefix = format!("{table}/");
    let routes = serde_json::to_string(route_groups).expect("routes serialise");
    let added: Vec<delta::Added<'_>> = files
        .iter()
        .filter_map(|f| {
            let mut tags = serde_json::Map::new();
            if let Some(r) = sources.get(&f.source) {
                let record = serde_json::to_string(r).expect("records serialise");
                tags.insert(SOURCE_TAG.into(), Value::String(record));
            }
            if table == crate::schema::STATS_TABLE {
                tags.insert(ROUTES_TAG.into(), Value::String(routes.clone()));
            }
            let tags = (!tags.is_empty()).then_some(Value::Object(tags));
            Some(delta::Added {
                path: f.path.strip_prefix(&prefix)?,
                file: f,
                tags,
            })
        })
        .collect();
    let now = delta::now_ms();
    let mut actions = log.additions(snap, &added, sources, now)?;
    actions.push(delta::commit_info("WRITE", added.len(), 0, now));
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn add(path: &str, fingerprint: u64, offset: u64) -> Value {
        let record = json!({
            "id": 7, "path": "a.log", "encoding": "plain", "size": offset,
            "fingerprint": fingerprint, "fingerprint_len": 10, "offset": offset,
            "ends_with_newline": true, "lines": 1, "rows": 1, "bad_lines": 0,
            "format": "combined", "last_run": "r"
        });
        json!({"add": {"path": path, "size": 1, "partitionValues": {"date": "2024-01-01"},
            "tags": {SOURCE_TAG: record.to_string()}}})
    }

    fn snapshot(actions: &[Value]) -> Snapshot {
        let mut s = Snapshot::default();
        actions.iter().for_each(|a| s.apply(a));
        s
    }

    #[test]
    fn route_groups_are_every_run_s_groups_the_longest_list_first() {
        let stats = |path: &str, routes: &[&str]| {
            json!({"add": {"path": path, "size": 1, "partitionValues": {"date": "2024-01-01"},
                "tags": {ROUTES_TAG: serde_json::to_string(routes).unwrap()}}})
        };
        // Sorted by path, the first run's file comes first: its shorter list is not the answer.
        let snap = snapshot(&[
            stats("date=2024-01-01/part-a.parquet", &["/a"]),
            stats("date=2024-01-02/part-b.parquet", &["/a", "/b", "/c"]),
            stats("date=2024-01-03/part-c.parquet", &["/a", "/d"]),
            json!({"add": {"path": "date=2024-01-03/part-d.parquet", "size": 1,
                "partitionValues": {"date": "2024-01-03"}}}),
        ]);
        assert_eq!(route_groups_of(&snap), ["/a", "/b", "/c", "/d"]);
        assert!(route_groups_of(&Snapshot::default()).is_empty());
    }

    #[test]
    fn a_sources_progress_is_what_its_rows_say_never_its_statistics() {
        let mut snapshots = BTreeMap::new();
        // Source 1: rows to 100 then 300; statistics already to 500 (a run killed between its
        // commits). Source 2: statistics only. Source 3: an error log.
        snapshots.insert(
            crate::schema::STATS_TABLE,
            snapshot(&[add("s1", 1, 500), add("s2", 2, 50)]),
        );
        snapshots.insert("logs", snapshot(&[add("a", 1, 100), add("b", 1, 300)]));
        snapshots.insert("errors", snapshot(&[add("e", 3, 40)]));
        let sources = sources_of(&snapshots);
        let offsets: Vec<(u64, u64, u64)> = sources
            .values()
            .map(|r| (r.fingerprint, r.offset, r.id))
            .collect();
        assert_eq!(offsets, [(1, 300, 0), (3, 40, 1)]);
    }

    #[test]
    fn stages_of_killed_runs_are_removed_and_stages_in_use_kept() {
        let root = tempfile::tempdir().unwrap();
        let (in_use, _held) = make_stage(root.path(), "s3://b/p").unwrap();
        let (abandoned, lock) = make_stage(root.path(), "s3://b/q").unwrap();
        std::fs::write(abandoned.join("part.parquet"), b"rows").unwrap();
        drop(lock);
        let being_made = root.path().join(format!("{STAGE_PREFIX}1-young"));
        std::fs::create_dir(&being_made).unwrap();
        remove_abandoned_stages(root.path());
        assert!(in_use.join(STAGE_LOCK).exists());
        assert!(!abandoned.exists());
        assert!(
            being_made.exists(),
            "a young stage without its lock yet is left"
        );
    }

    #[test]
    fn file_urls_name_directories_and_unknown_schemes_are_refused() {
        let at = |s: &str| dataset_location(s);
        assert_eq!(at("data"), Ok(PathBuf::from("data")));
        assert_eq!(
            at("file:///srv/my%20logs"),
            Ok(PathBuf::from("/srv/my logs"))
        );
        assert_eq!(at("file://localhost/srv/x"), Ok(PathBuf::from("/srv/x")));
        assert_eq!(at("s3://b/p"), Ok(PathBuf::from("s3://b/p")));
        assert!(at("file://relative/x").unwrap_err().contains("absolute"));
        assert!(at("gs://b/p").unwrap_err().contains("gs://"));
    }

    #[test]
    fn urls_name_a_bucket_and_other_datasets_are_local() {
        assert!(is_remote(Path::new("s3://bucket/prefix")));
        assert!(is_remote(Path::new("s3a://bucket")));
        assert!(!is_remote(Path::new("data/s3:/x")));
        assert!(local_only(Path::new("data"), "watch").is_ok());
        let refused = local_only(Path::new("s3://b/p"), "watch").unwrap_err();
        assert_eq!(refused.exit_code(), crate::error::EXIT_USAGE);
        let e = Remote::open(Path::new("s3:///no-bucket")).unwrap_err();
        assert!(e.to_string().contains("names no bucket"), "{e}");
    }
}
