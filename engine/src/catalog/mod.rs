//! The dataset on disk and the SQL view over it.
//!
//! [`Dataset`] owns the directory layout and the writer's lock: one writer at a time, and on opening
//! for writing it removes what a crashed run left behind (temporary files and Parquet files the
//! manifest does not list). [`Catalog`] opens embedded DuckDB (compiled in with its Parquet reader;
//! no extension is ever downloaded) with a view `logs` over exactly the files the manifest lists, so
//! a query never sees a half-written run.

pub mod manifest;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};

use crate::error::{Error, Result};
use manifest::Manifest;

/// Lock file inside the dataset.
pub const LOCK_FILE: &str = ".lock";
/// Directory of quarantine files inside the dataset.
pub const QUARANTINE_DIR: &str = "quarantine";

/// A dataset directory opened for writing (holds the lock until dropped).
#[derive(Debug)]
pub struct Dataset {
    dir: PathBuf,
    _lock: File,
}

impl Dataset {
    /// Creates `dir` if needed, takes the writer lock and cleans up after crashed runs.
    pub fn open_for_write(dir: &Path) -> Result<Dataset> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("cannot create dataset directory", dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("cannot open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::DatasetLocked(dir.to_path_buf()));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("cannot lock", &lock_path, e));
            }
        }
        let ds = Dataset {
            dir: dir.to_path_buf(),
            _lock: lock,
        };
        ds.recover(&Manifest::load(dir)?)?;
        Ok(ds)
    }

    /// The dataset directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes temporary files and Parquet files that `manifest` does not list (left by a run that
    /// crashed before its commit, or superseded by a `--force` whose cleanup was interrupted).
    pub fn recover(&self, manifest: &Manifest) -> Result<usize> {
        let listed: std::collections::HashSet<PathBuf> = manifest
            .files
            .iter()
            .map(|f| self.dir.join(&f.path))
            .collect();
        let mut removed = 0;
        for table in ["logs", "errors"] {
            let Ok(entries) = std::fs::read_dir(self.dir.join(table)) else {
                continue;
            };
            for entry in entries.filter_map(|e| e.ok()) {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(".tmp-") {
                    std::fs::remove_file(&path)
                        .map_err(|e| Error::io("cannot remove", &path, e))?;
                    removed += 1;
                } else if name.starts_with("date=") && path.is_dir() {
                    let files =
                        std::fs::read_dir(&path).map_err(|e| Error::io("cannot list", &path, e))?;
                    for f in files.filter_map(|e| e.ok()) {
                        let fp = f.path();
                        let fname = f.file_name().to_string_lossy().into_owned();
                        if fname.starts_with("part-")
                            && fname.ends_with(".parquet")
                            && !listed.contains(&fp)
                        {
                            std::fs::remove_file(&fp)
                                .map_err(|e| Error::io("cannot remove", &fp, e))?;
                            removed += 1;
                        }
                    }
                }
            }
        }
        if removed > 0 {
            tracing::warn!(dataset = %self.dir.display(), removed, "removed files left by an interrupted run");
        }
        Ok(removed)
    }
}

/// Result of a query: Arrow batches with their schema.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Column names and types.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// Embedded DuckDB over a dataset.
pub struct Catalog {
    conn: duckdb::Connection,
}

fn sql_type(dt: &DataType) -> &'static str {
    match dt {
        DataType::Timestamp(..) => "TIMESTAMP",
        DataType::UInt16 => "USMALLINT",
        DataType::UInt32 => "UINTEGER",
        DataType::UInt64 => "UBIGINT",
        _ => "VARCHAR",
    }
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Catalog {
    /// Opens `dataset` read-only; fails with advice when it does not exist.
    pub fn open(dataset: &Path) -> Result<Catalog> {
        if !dataset.is_dir() {
            return Err(Error::Dataset {
                path: dataset.to_path_buf(),
                message: "no such dataset; create it with: logcrunch ingest --dataset DIR FILE..."
                    .into(),
            });
        }
        let manifest = Manifest::load(dataset)?;
        let config = duckdb::Config::default()
            .enable_autoload_extension(false)?
            .with("autoinstall_known_extensions", "false")?;
        let conn = duckdb::Connection::open_in_memory_with_flags(config)?;
        for (table, schema) in [
            ("logs", crate::schema::arrow_schema(&[])),
            ("errors", crate::schema::error_schema()),
        ] {
            let files: Vec<String> = manifest
                .files
                .iter()
                .filter(|f| f.table == table)
                .map(|f| sql_string(&dataset.join(&f.path).to_string_lossy()))
                .collect();
            let view = if files.is_empty() {
                let cols: Vec<String> = schema
                    .fields()
                    .iter()
                    .map(|f| format!("CAST(NULL AS {}) AS {}", sql_type(f.data_type()), f.name()))
                    .chain(std::iter::once("CAST(NULL AS DATE) AS date".to_string()))
                    .collect();
                format!(
                    "CREATE VIEW {table} AS SELECT {} WHERE false",
                    cols.join(", ")
                )
            } else {
                format!(
                    "CREATE VIEW {table} AS SELECT * REPLACE (CAST(ts AS TIMESTAMP) AS ts) \
                     FROM read_parquet([{}], hive_partitioning = true, union_by_name = true)",
                    files.join(", ")
                )
            };
            conn.execute_batch(&view)?;
        }
        Ok(Catalog { conn })
    }

    /// Runs `sql` and returns all of its rows.
    pub fn query(&self, sql: &str) -> Result<QueryResult> {
        let mut stmt = self.conn.prepare(sql)?;
        let batches: Vec<RecordBatch> = stmt.query_arrow([])?.collect();
        let schema = batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| stmt.schema());
        Ok(QueryResult {
            schema: Arc::clone(&schema),
            batches,
        })
    }
}
