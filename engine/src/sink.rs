//! Writes record batches as Hive-partitioned, zstd-compressed Parquet files, atomically.
//!
//! Each worker owns a [`Sink`] with one open writer per (source, day) it has seen; writers are closed
//! least-recently-used beyond a small bound so memory stays bounded however many days a log spans.
//! A file is written under a hidden temporary name in its `date=YYYY-MM-DD` directory, flushed and
//! fsynced; [`publish`] renames finished files to their final `part-<run>-<worker>-<n>.parquet` names
//! only after every worker has finished, and the manifest commit that follows is what makes them
//! part of the dataset. Files of runs that never committed are removed by the next writer.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowColumnChunk;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::{Error, Result};
use crate::parse::value::civil_from_days;

/// Writers kept open per worker before the least recently used is closed.
pub const MAX_OPEN_WRITERS: usize = 8;
/// Memory the open writers of one worker may hold in unfinished row groups before the least
/// recently used is closed (the one being written is never closed for this).
pub const WRITER_MEMORY: usize = 64 << 20;

/// A Parquet writer that encodes and compresses the columns of each row group in parallel (for
/// files written while nothing else runs: the stats file of a commit, a compaction).
pub struct ParallelWriter {
    writer: parquet::file::writer::SerializedFileWriter<File>,
    factory: parquet::arrow::arrow_writer::ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    row_groups: usize,
}

impl ParallelWriter {
    /// A writer of `schema` into `file`.
    pub fn try_new(
        file: File,
        schema: SchemaRef,
        props: &WriterProperties,
    ) -> parquet::errors::Result<ParallelWriter> {
        let (writer, factory) =
            ArrowWriter::try_new(file, std::sync::Arc::clone(&schema), Some(props.clone()))?
                .into_serialized_writer()?;
        Ok(ParallelWriter {
            writer,
            factory,
            schema,
            row_groups: 0,
        })
    }

    /// Writes `batch` as one row group.
    pub fn write_row_group(&mut self, batch: &RecordBatch) -> parquet::errors::Result<()> {
        let chunks = self.encode(self.row_groups, batch)?;
        self.append(chunks)
    }

    /// Encodes and compresses `batch` as row group `index` without writing it, its columns in
    /// parallel; several row groups may be encoded at once and then [`ParallelWriter::append`]ed
    /// in order.
    pub fn encode(
        &self,
        index: usize,
        batch: &RecordBatch,
    ) -> parquet::errors::Result<Vec<ArrowColumnChunk>> {
        use parquet::arrow::arrow_writer::compute_leaves;
        use rayon::prelude::*;
        self.factory
            .create_column_writers(index)?
            .into_par_iter()
            .zip(
                batch
                    .columns()
                    .par_iter()
                    .zip(self.schema.fields().par_iter()),
            )
            .map(|(mut w, (array, field))| {
                for leaf in compute_leaves(field, array)? {
                    w.write(&leaf)?;
                }
                w.close()
            })
            .collect()
    }

    /// Writes the next row group from its [`ParallelWriter::encode`]d columns.
    pub fn append(&mut self, chunks: Vec<ArrowColumnChunk>) -> parquet::errors::Result<()> {
        let mut group = self.writer.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut group)?;
        }
        group.close()?;
        self.row_groups += 1;
        Ok(())
    }

    /// Writes the footer.
    pub fn close(self) -> parquet::errors::Result<()> {
        self.writer.close()?;
        Ok(())
    }
}

/// `date=YYYY-MM-DD` for a day number since the epoch.
pub fn partition_name(day: i32) -> String {
    let (y, m, d) = civil_from_days(day as i64);
    format!("date={y:04}-{m:02}-{d:02}")
}

/// Parquet settings of the dataset.
pub fn writer_properties(zstd_level: i32, row_group_rows: usize) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(zstd_level)
        .map_err(|e| Error::Usage(format!("invalid zstd level {zstd_level}: {e}")))?;
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_created_by(format!("logcrunch {}", env!("CARGO_PKG_VERSION")));
    // Time and offset grow steadily within a file: delta encoding shrinks them to a few bits per
    // row, where a dictionary would only fill up and be abandoned. Sizes and durations are too
    // varied for a dictionary to pay off.
    for col in ["ts", "offset"] {
        props = props
            .set_column_dictionary_enabled(ColumnPath::from(col), false)
            .set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED);
    }
    for col in ["bytes", "response_time_us", "upstream_response_time_us"] {
        props = props.set_column_dictionary_enabled(ColumnPath::from(col), false);
    }
    // Min/max of free text prunes nothing and costs a comparison per value.
    for col in [
        "ident",
        "user",
        "path",
        "query",
        "referer",
        "user_agent",
        "x_forwarded_for",
    ] {
        props = props.set_column_statistics_enabled(ColumnPath::from(col), EnabledStatistics::None);
    }
    Ok(props.build())
}

/// A file a worker finished, not yet published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Index of the source in the ingest plan.
    pub source: usize,
    /// Day number since the epoch (the partition).
    pub day: i32,
    /// Table (directory) it belongs to: `logs` or `errors`.
    pub table: &'static str,
    /// Where it was written.
    pub tmp: PathBuf,
    /// Its final path relative to the dataset directory.
    pub rel_path: String,
    /// Rows in it.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

struct OpenFile {
    table: &'static str,
    writer: ArrowWriter<File>,
    sync: File,
    tmp: PathBuf,
    rel_path: String,
    rows: u64,
    last_used: u64,
}

/// A worker's Parquet writers; see the module docs.
pub struct Sink {
    dataset: PathBuf,
    run_id: String,
    worker: usize,
    props: WriterProperties,
    open: HashMap<(usize, i32), OpenFile>,
    done: Vec<WrittenFile>,
    next_file: usize,
    tick: u64,
}

impl Sink {
    /// A sink writing under `dataset/logs/` for run `run_id` and worker number `worker`.
    pub fn new(dataset: &Path, run_id: &str, worker: usize, props: WriterProperties) -> Sink {
        Sink {
            dataset: dataset.to_path_buf(),
            run_id: run_id.to_string(),
            worker,
            props,
            open: HashMap::new(),
            done: Vec::new(),
            next_file: 0,
            tick: 0,
        }
    }

    /// Appends `batch` (rows of source `source` on day `day`) to that partition's open file.
    pub fn write(
        &mut self,
        source: usize,
        day: i32,
        table: &'static str,
        schema: &SchemaRef,
        batch: &RecordBatch,
    ) -> Result<()> {
        self.tick += 1;
        if !self.open.contains_key(&(source, day)) {
            if self.open.len() >= MAX_OPEN_WRITERS {
                self.close_least_recent()?;
            }
            let f = self.create(schema, day, table)?;
            self.open.insert((source, day), f);
        }
        let f = self
            .open
            .get_mut(&(source, day))
            .expect("writer was just opened");
        f.last_used = self.tick;
        f.rows += batch.num_rows() as u64;
        f.writer.write(batch).map_err(|source| Error::Parquet {
            path: f.tmp.clone(),
            source,
        })?;
        // Unfinished row groups are held in memory: close idle files when they add up.
        while self.open.len() > 1
            && self
                .open
                .values()
                .map(|f| f.writer.memory_size())
                .sum::<usize>()
                > WRITER_MEMORY
        {
            self.close_least_recent()?;
        }
        Ok(())
    }

    fn close_least_recent(&mut self) -> Result<()> {
        let oldest = *self
            .open
            .iter()
            .min_by_key(|(_, f)| f.last_used)
            .map(|(k, _)| k)
            .expect("writers are open");
        self.close(oldest)
    }

    fn create(&mut self, schema: &SchemaRef, day: i32, table: &'static str) -> Result<OpenFile> {
        let dir = self.dataset.join("logs");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        let name = format!(
            "part-{}-{}-{}.parquet",
            self.run_id, self.worker, self.next_file
        );
        self.next_file += 1;
        let tmp = dir.join(format!(".tmp-{name}"));
        let rel_path = format!("{table}/{}/{name}", partition_name(day));
        let file = File::create(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
        let sync = file
            .try_clone()
            .map_err(|e| Error::io("cannot open", &tmp, e))?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(self.props.clone())).map_err(
            |source| Error::Parquet {
                path: tmp.clone(),
                source,
            },
        )?;
        Ok(OpenFile {
            table,
            writer,
            sync,
            tmp,
            rel_path,
            rows: 0,
            last_used: self.tick,
        })
    }

    fn close(&mut self, key: (usize, i32)) -> Result<()> {
        let f = self.open.remove(&key).expect("closing an open writer");
        let tmp = f.tmp.clone();
        let closed = f
            .writer
            .close()
            .map_err(|source| Error::Parquet {
                path: f.tmp.clone(),
                source,
            })
            .and_then(|_| {
                f.sync
                    .sync_all()
                    .map_err(|e| Error::io("cannot sync", &f.tmp, e))
            })
            .and_then(|_| {
                f.sync
                    .metadata()
                    .map_err(|e| Error::io("cannot read", &f.tmp, e))
            });
        let bytes = match closed {
            Ok(meta) => meta.len(),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        self.done.push(WrittenFile {
            source: key.0,
            day: key.1,
            table: f.table,
            tmp: f.tmp,
            rel_path: f.rel_path,
            rows: f.rows,
            bytes,
        });
        Ok(())
    }

    /// Closes every writer and returns the finished (unpublished) files; on an error, removes
    /// every file it wrote.
    pub fn finish(mut self) -> Result<Vec<WrittenFile>> {
        let keys: Vec<_> = self.open.keys().copied().collect();
        for k in keys {
            if let Err(e) = self.close(k) {
                self.abandon();
                return Err(e);
            }
        }
        Ok(self.done)
    }

    /// Removes every file this sink wrote, open or finished: what a failed run leaves (a full
    /// disk must not stay full of a run that was not committed).
    pub fn abandon(self) {
        let open = self.open.into_values().map(|f| f.tmp);
        for tmp in open.chain(self.done.into_iter().map(|f| f.tmp)) {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// Moves finished files to their final names, creating partition directories, and syncs the
/// directories so that the renames are durable before the manifest names the files.
pub fn publish(dataset: &Path, files: &[WrittenFile]) -> Result<()> {
    let mut dirs = std::collections::BTreeSet::new();
    for f in files {
        let dest = dataset.join(&f.rel_path);
        let dir = dest.parent().expect("partition directory").to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        std::fs::rename(&f.tmp, &dest).map_err(|e| Error::io("cannot rename into", &dest, e))?;
        dirs.insert(dir);
    }
    for d in dirs {
        sync_dir(&d)?;
    }
    Ok(())
}

/// fsyncs a directory so that entries created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("cannot sync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_are_utc_dates() {
        assert_eq!(partition_name(0), "date=1970-01-01");
        assert_eq!(partition_name(19_723), "date=2024-01-01");
        assert_eq!(partition_name(-1), "date=1969-12-31");
    }
}
