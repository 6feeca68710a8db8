//! Writes record batches as Hive-partitioned, zstd-compressed Parquet files, atomically.
//!
//! Each worker owns a [`Sink`] with one writer per (source, day) it has seen, kept for the whole run,
//! so an archive whose dates interleave (many old logs in one run, a log that cycles through days)
//! still makes one file per partition per worker and source, not one per visit. Memory stays
//! bounded however many days a run spans: when the unfinished row groups of a worker's writers add
//! up to [`WRITER_MEMORY`], the largest is flushed as a row group of its file (the file stays
//! open), and at most [`MAX_OPEN_FILES`] file descriptors are held per worker (a writer whose file
//! is parked reopens it for appending when it next flushes).
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

/// File descriptors a worker's writers hold at once; beyond it the least recently used is parked.
pub const MAX_OPEN_FILES: usize = 16;
/// Memory the writers of one worker may hold in unfinished row groups before the largest is
/// flushed.
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

/// A file opened for appending only while something is written to it, so that a writer can keep
/// its file for the whole run without holding a descriptor.
struct ParkableFile {
    path: PathBuf,
    file: Option<File>,
}

impl ParkableFile {
    fn create(path: PathBuf) -> std::io::Result<ParkableFile> {
        let file = File::create(&path)?;
        Ok(ParkableFile {
            path,
            file: Some(file),
        })
    }

    fn file(&mut self) -> std::io::Result<&mut File> {
        match &mut self.file {
            Some(f) => Ok(f),
            none => {
                let f = std::fs::OpenOptions::new().append(true).open(&self.path)?;
                Ok(none.insert(f))
            }
        }
    }

    /// Closes the descriptor; the next write reopens the file at its end.
    fn park(&mut self) {
        self.file = None;
    }

    fn is_open(&self) -> bool {
        self.file.is_some()
    }
}

impl std::io::Write for ParkableFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

struct OpenFile {
    table: &'static str,
    writer: ArrowWriter<ParkableFile>,
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
    memory_limit: usize,
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
            memory_limit: WRITER_MEMORY,
            done: Vec::new(),
            next_file: 0,
            tick: 0,
        }
    }

    /// Appends `batch` (rows of source `source` on day `day`) to that partition's file.
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
        self.bound_memory()?;
        self.park_idle_files();
        Ok(())
    }

    /// Unfinished row groups are held in memory: when they add up, the largest becomes a row group
    /// of its file.
    fn bound_memory(&mut self) -> Result<()> {
        let mut held: usize = self.open.values().map(|f| f.writer.memory_size()).sum();
        while held > self.memory_limit {
            let largest = self
                .open
                .values_mut()
                .max_by_key(|f| f.writer.memory_size())
                .expect("writers hold the memory");
            let before = largest.writer.memory_size();
            largest.writer.flush().map_err(|source| Error::Parquet {
                path: largest.tmp.clone(),
                source,
            })?;
            held = held - before + largest.writer.memory_size();
        }
        Ok(())
    }

    fn park_idle_files(&mut self) {
        let holding = self
            .open
            .values()
            .filter(|f| f.writer.inner().is_open())
            .count();
        if holding <= MAX_OPEN_FILES {
            return;
        }
        let mut open: Vec<_> = self
            .open
            .values_mut()
            .filter(|f| f.writer.inner().is_open())
            .collect();
        open.sort_unstable_by_key(|f| std::cmp::Reverse(f.last_used));
        for f in &mut open[MAX_OPEN_FILES..] {
            f.writer.inner_mut().park();
        }
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
        let file =
            ParkableFile::create(tmp.clone()).map_err(|e| Error::io("cannot create", &tmp, e))?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(self.props.clone())).map_err(
            |source| Error::Parquet {
                path: tmp.clone(),
                source,
            },
        )?;
        Ok(OpenFile {
            table,
            writer,
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
            .into_inner()
            .map_err(|source| Error::Parquet {
                path: f.tmp.clone(),
                source,
            })
            .and_then(|mut inner| {
                let file = inner
                    .file()
                    .map_err(|e| Error::io("cannot open", &f.tmp, e))?;
                file.sync_all()
                    .and_then(|_| file.metadata())
                    .map_err(|e| Error::io("cannot sync", &f.tmp, e))
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

/// Environment variable naming a [`pause_point`] to pause at.
pub const PAUSE_ENV: &str = "LOGCRUNCH_TEST_PAUSE";

/// A named point of a commit's work where a test may stop the process (the archive's steps, the
/// commits of a push to object storage): when [`PAUSE_ENV`] names it, the process prints
/// `paused at NAME` on stderr and waits for a line on stdin (the test then kills it, or changes
/// files and lets it go on).
pub fn pause_point(name: &str) {
    if std::env::var(PAUSE_ENV).is_ok_and(|v| v == name) {
        eprintln!("paused at {name}");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
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

    /// Days revisited in turn, over more days than files are kept open and with every row group
    /// flushed at once for memory: one readable file per day holding all its rows, in order.
    #[test]
    fn revisited_days_append_to_one_file_under_memory_pressure() {
        use arrow::array::{Array, Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let dir = tempfile::tempdir().unwrap();
        let schema: SchemaRef = std::sync::Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let props = writer_properties(1, 1000).unwrap();
        let mut sink = Sink::new(dir.path(), "r", 0, props);
        sink.memory_limit = 1;
        let days = MAX_OPEN_FILES as i32 * 2;
        for round in 0..5i64 {
            for day in 0..days {
                let n: Vec<i64> = (0..10).map(|i| round * 10 + i).collect();
                let s: Vec<String> = n.iter().map(|v| format!("day {day} row {v}")).collect();
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        std::sync::Arc::new(Int64Array::from(n)),
                        std::sync::Arc::new(StringArray::from(s)),
                    ],
                )
                .unwrap();
                sink.write(0, day, "logs", &schema, &batch).unwrap();
                assert!(
                    sink.open
                        .values()
                        .filter(|f| f.writer.inner().is_open())
                        .count()
                        <= MAX_OPEN_FILES
                );
            }
        }
        let files = sink.finish().unwrap();
        assert_eq!(files.len(), days as usize);
        for f in files {
            assert_eq!(f.rows, 50);
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                File::open(&f.tmp).unwrap(),
            )
            .unwrap();
            assert_eq!(
                reader.metadata().num_row_groups(),
                5,
                "one row group per visit"
            );
            let values: Vec<String> = reader
                .build()
                .unwrap()
                .flat_map(|b| {
                    let b = b.unwrap();
                    let s = b
                        .column(1)
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .unwrap()
                        .clone();
                    (0..s.len())
                        .map(move |i| s.value(i).to_string())
                        .collect::<Vec<_>>()
                })
                .collect();
            let want: Vec<String> = (0..50).map(|v| format!("day {} row {v}", f.day)).collect();
            assert_eq!(values, want);
        }
    }
}
