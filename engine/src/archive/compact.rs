//! Compaction of one source's files of one partition into a single time-sorted file.
//!
//! Ingest writes a file per worker, run and (source, day), compressed for speed; a day that is no
//! longer written to is better kept as one file, sorted by time (so DuckDB prunes row groups by
//! `ts`) and compressed hard. The new file is written, fsynced and read back; it replaces the old
//! ones only when its row count and every column's checksum equal theirs. The checksums are
//! order-independent (a sum of per-value hashes), so sorting does not change them and any lost,
//! duplicated or altered value does. Unsigned integer columns of files written before the columns
//! became signed are read as signed ([`crate::schema::signed`]), so a group may mix both and its
//! new file has today's types. Files stay per source, so `ingest --force` of one source still
//! replaces exactly its rows.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{SortColumn, concat, interleave_record_batch, lexsort_to_indices};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::sink::ParallelWriter;

/// Row count and per-column checksums of a set of rows, independent of their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Rows.
    pub rows: u64,
    /// Per column (in schema order): name, wrapping sum and xor of the xxh3 of each value's
    /// row-format encoding (nulls included).
    pub columns: Vec<(String, u64, u64)>,
}

impl Fingerprint {
    fn new(schema: &SchemaRef) -> Fingerprint {
        Fingerprint {
            rows: 0,
            columns: schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), 0, 0))
                .collect(),
        }
    }

    /// Adds the values of `batches`, the columns in parallel.
    fn add_all(&mut self, batches: &[RecordBatch]) -> Result<()> {
        self.rows += batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        self.columns
            .par_iter_mut()
            .enumerate()
            .try_for_each(|(i, (_, sum, xor))| {
                for batch in batches {
                    value_hashes(batch.column(i), &mut |h| {
                        *sum = sum.wrapping_add(h);
                        *xor ^= h;
                    })?;
                }
                Ok(())
            })
    }

    /// Adds the values counted by `other` (of the same columns).
    fn merge(&mut self, other: &Fingerprint) {
        self.rows += other.rows;
        for ((_, sum, xor), (_, s, x)) in self.columns.iter_mut().zip(&other.columns) {
            *sum = sum.wrapping_add(*s);
            *xor ^= x;
        }
    }

    /// The first column whose checksum differs from `other`'s, or a row-count difference.
    fn differs_from(&self, other: &Fingerprint) -> Option<String> {
        if self.rows != other.rows {
            return Some(format!("{} rows instead of {}", other.rows, self.rows));
        }
        self.columns
            .iter()
            .zip(&other.columns)
            .find(|(a, b)| a != b)
            .map(|(a, _)| format!("column {} has different values", a.0))
    }
}

/// Hands `f` a hash of each value of `col` (nulls included): strings and binaries by their bytes,
/// dictionaries by their values, fixed-width values by their bytes; other types through Arrow's
/// row format.
fn value_hashes(col: &ArrayRef, f: &mut dyn FnMut(u64)) -> Result<()> {
    const NULL: u64 = 0x9e37_79b9_7f4a_7c15;
    let hash = xxhash_rust::xxh3::xxh3_64;
    if let Some(a) = col.as_string_opt::<i32>() {
        a.iter()
            .for_each(|v| f(v.map_or(NULL, |s| hash(s.as_bytes()))));
    } else if let Some(a) = col.as_binary_opt::<i32>() {
        a.iter().for_each(|v| f(v.map_or(NULL, hash)));
    } else if let Some(d) = col.as_any_dictionary_opt() {
        let mut values = Vec::with_capacity(d.values().len());
        value_hashes(d.values(), &mut |h| values.push(h))?;
        for (i, k) in d.normalized_keys().into_iter().enumerate() {
            f(if col.is_null(i) { NULL } else { values[k] });
        }
    } else if let Some(width) = col.data_type().primitive_width() {
        let data = col.to_data();
        let bytes = &data.buffers()[0];
        let first = data.offset();
        for i in 0..col.len() {
            let at = (first + i) * width;
            f(if col.is_null(i) {
                NULL
            } else {
                hash(&bytes[at..at + width])
            });
        }
    } else {
        let conv =
            RowConverter::new(vec![SortField::new(col.data_type().clone())]).map_err(arrow_err)?;
        let rows = conv
            .convert_columns(std::slice::from_ref(col))
            .map_err(arrow_err)?;
        rows.iter().for_each(|r| f(hash(r.as_ref())));
    }
    Ok(())
}

/// `batch` with each column of a type other than `schema`'s (by name) cast to that type; a value
/// the new type cannot hold fails rather than becoming null.
fn conform(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let target = |f: &arrow::datatypes::Field| schema.field_with_name(f.name()).ok().cloned();
    let fields = batch.schema().fields().clone();
    if fields
        .iter()
        .all(|f| target(f).is_none_or(|t| t.data_type() == f.data_type()))
    {
        return Ok(batch);
    }
    let options = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut out_fields = Vec::with_capacity(fields.len());
    let mut columns = Vec::with_capacity(fields.len());
    for (f, col) in fields.iter().zip(batch.columns()) {
        let field = target(f).unwrap_or_else(|| f.as_ref().clone());
        columns.push(
            arrow::compute::cast_with_options(col, field.data_type(), &options)
                .map_err(arrow_err)?,
        );
        out_fields.push(field);
    }
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(out_fields)), columns)
        .map_err(arrow_err)
}

fn arrow_err(source: arrow::error::ArrowError) -> Error {
    Error::Arrow {
        format: "compaction".into(),
        source,
    }
}

fn damaged(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Dataset {
        path: path.to_path_buf(),
        message: format!(
            "cannot read it for compaction ({e}); re-ingest its source with --force, then archive again"
        ),
    }
}

/// A reader of a Parquet file (its footer read), in batches of [`BATCH`] rows.
fn open(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    Ok(ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| damaged(path, e))?
        .with_batch_size(BATCH))
}

/// Reads a Parquet file batch by batch, only `columns` when given.
fn reader(path: &Path, columns: Option<&[&str]>) -> Result<ParquetRecordBatchReader> {
    let mut builder = open(path)?;
    if let Some(cols) = columns {
        let mask = ProjectionMask::columns(builder.parquet_schema(), cols.iter().copied());
        builder = builder.with_projection(mask);
    }
    builder.build().map_err(|e| damaged(path, e))
}

const BATCH: usize = 64 * 1024;

/// The [`Fingerprint`] of a Parquet file, its row groups read in parallel.
fn fingerprint_file(path: &Path, schema: &SchemaRef) -> Result<Fingerprint> {
    let groups = open(path)?.metadata().num_row_groups();
    let parts = (0..groups)
        .into_par_iter()
        .map(|g| {
            let reader = open(path)?
                .with_row_groups(vec![g])
                .build()
                .map_err(|e| damaged(path, e))?;
            let mut fp = Fingerprint::new(schema);
            for b in reader {
                fp.add_all(&[conform(b.map_err(|e| damaged(path, e))?, schema)?])?;
            }
            Ok(fp)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut all = Fingerprint::new(schema);
    for p in parts {
        all.merge(&p);
    }
    Ok(all)
}

/// What a compaction wrote.
#[derive(Debug, Clone)]
pub struct Compacted {
    /// Rows in the new file.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// An input file read forward as the output needs its rows; a batch is dropped once all of its
/// rows have been written. Logs are written in (nearly) time order, so only a window of each
/// input is in memory at a time.
struct Input {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    /// The types its batches are read as.
    schema: SchemaRef,
    /// Loaded batches: first row, rows not yet written, the batch.
    loaded: std::collections::VecDeque<(usize, usize, RecordBatch)>,
    /// Rows loaded so far.
    end: usize,
    /// File bytes per row, to report progress in bytes.
    bytes_per_row: f64,
}

impl Input {
    fn open(path: &Path, schema: &SchemaRef) -> Result<Input> {
        let size = std::fs::metadata(path)
            .map_err(|e| Error::io("cannot read", path, e))?
            .len();
        let builder = open(path)?;
        let rows = builder.metadata().file_metadata().num_rows().max(1);
        Ok(Input {
            path: path.to_path_buf(),
            reader: builder.build().map_err(|e| damaged(path, e))?,
            schema: Arc::clone(schema),
            loaded: Default::default(),
            end: 0,
            bytes_per_row: size as f64 / rows as f64,
        })
    }

    /// Loads batches until `row` is in memory; each batch loaded is added to `fp` and its share
    /// of the file's bytes to `progress`.
    fn load_to(&mut self, row: usize, fp: &mut Fingerprint, progress: &AtomicU64) -> Result<()> {
        while self.end <= row {
            let b = match self.reader.next() {
                Some(b) => conform(b.map_err(|e| damaged(&self.path, e))?, &self.schema)?,
                None => {
                    return Err(damaged(
                        &self.path,
                        "it has fewer rows than its key columns",
                    ));
                }
            };
            fp.add_all(std::slice::from_ref(&b))?;
            let n = b.num_rows();
            progress.fetch_add((n as f64 * self.bytes_per_row) as u64, Ordering::Relaxed);
            self.loaded.push_back((self.end, n, b));
            self.end += n;
        }
        Ok(())
    }

    /// Position of `row` among the loaded batches, and within its batch.
    fn locate(&self, row: usize) -> (usize, usize) {
        let i = self.loaded.partition_point(|(first, _, _)| *first <= row) - 1;
        (i, row - self.loaded[i].0)
    }

    /// Reads the rest: rows the key columns did not count (none, unless the file changed since),
    /// which then make the fingerprints differ.
    fn drain(&mut self, fp: &mut Fingerprint) -> Result<()> {
        for b in self.reader.by_ref() {
            fp.add_all(&[conform(
                b.map_err(|e| damaged(&self.path, e))?,
                &self.schema,
            )?])?;
        }
        Ok(())
    }

    /// Drops the leading batches whose rows have all been written.
    fn evict(&mut self) {
        while self.loaded.front().is_some_and(|(_, left, _)| *left == 0) {
            self.loaded.pop_front();
        }
    }
}

/// Rewrites `inputs` as the single file `output` (which must not be part of the dataset yet),
/// sorted by `time_column` (then `offset` when present), and verifies it. Memory stays near one
/// output row group plus the input batches still waiting to be written: the sort order comes
/// from the key columns alone, then the inputs are read forward as the output needs them, and the
/// output is read back batch by batch.
pub fn compact(
    inputs: &[PathBuf],
    output: &Path,
    time_column: &str,
    props: &WriterProperties,
    progress: &AtomicU64,
) -> Result<Compacted> {
    let schemas = inputs
        .iter()
        .map(|p| Ok(Arc::clone(open(p)?.schema())))
        .collect::<Result<Vec<SchemaRef>>>()?;
    let Some(schema) = schemas.first().map(|s| crate::schema::signed(s)) else {
        return Err(Error::Usage("nothing to compact".into()));
    };
    if let Some(i) = schemas
        .iter()
        .position(|s| crate::schema::signed(s).fields() != schema.fields())
    {
        return Err(Error::Dataset {
            path: inputs[i].clone(),
            message: format!(
                "its columns differ from those of {}; it is left as it is (re-ingest the source with --force to rewrite both)",
                inputs[0].display()
            ),
        });
    }
    let keys: Vec<&str> = [time_column, "offset"]
        .into_iter()
        .filter(|k| schema.column_with_name(k).is_some())
        .collect();
    let order = sort_order(inputs, &keys, &schema)?;

    let file = File::create(output).map_err(|e| Error::io("cannot create", output, e))?;
    let sync = file
        .try_clone()
        .map_err(|e| Error::io("cannot open", output, e))?;
    let perr = |source| Error::Parquet {
        path: output.to_path_buf(),
        source,
    };
    let mut writer = ParallelWriter::try_new(file, Arc::clone(&schema), props).map_err(perr)?;
    let mut sources = inputs
        .iter()
        .map(|p| Input::open(p, &schema))
        .collect::<Result<Vec<_>>>()?;
    let mut before = Fingerprint::new(&schema);
    let step = props.max_row_group_row_count().unwrap_or(1 << 20).max(1);
    for rows in order.chunks(step) {
        for &(f, r) in rows {
            sources[f as usize].load_to(r as usize, &mut before, progress)?;
        }
        let mut base = Vec::with_capacity(sources.len());
        let mut refs: Vec<&RecordBatch> = Vec::new();
        for s in &sources {
            base.push(refs.len());
            refs.extend(s.loaded.iter().map(|(_, _, b)| b));
        }
        let mut used = Vec::with_capacity(rows.len());
        let picks: Vec<(usize, usize)> = rows
            .iter()
            .map(|&(f, r)| {
                let (i, at) = sources[f as usize].locate(r as usize);
                used.push((f as usize, i));
                (base[f as usize] + i, at)
            })
            .collect();
        let group = interleave_record_batch(&refs, &picks).map_err(arrow_err)?;
        drop(refs);
        writer.write_row_group(&group).map_err(perr)?;
        for (f, i) in used {
            sources[f].loaded[i].1 -= 1;
        }
        sources.iter_mut().for_each(Input::evict);
    }
    writer.close().map_err(perr)?;
    for s in &mut sources {
        s.drain(&mut before)?;
    }
    drop((sources, order));
    sync.sync_all()
        .map_err(|e| Error::io("cannot sync", output, e))?;
    super::checkpoint("compact-verify");

    let after = fingerprint_file(output, &schema)?;
    if let Some(diff) = before.differs_from(&after) {
        return Err(Error::Dataset {
            path: output.to_path_buf(),
            message: format!(
                "the compacted file does not hold the rows of the files it replaces ({diff}); they were kept and it was not used"
            ),
        });
    }
    let bytes = sync
        .metadata()
        .map_err(|e| Error::io("cannot read", output, e))?
        .len();
    Ok(Compacted {
        rows: after.rows,
        bytes,
    })
}

/// (input, row) of every row of `inputs` in order of the `keys` columns, read alone.
fn sort_order(inputs: &[PathBuf], keys: &[&str], schema: &SchemaRef) -> Result<Vec<(u32, u32)>> {
    let per_file = inputs
        .par_iter()
        .map(|p| {
            let batches = reader(p, Some(keys))?
                .map(|b| conform(b.map_err(|e| damaged(p, e))?, schema))
                .collect::<Result<Vec<_>>>()?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            Ok((batches, rows))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut index: Vec<(u32, u32)> = Vec::new();
    for (f, (_, rows)) in per_file.iter().enumerate() {
        let rows =
            u32::try_from(*rows).map_err(|_| damaged(&inputs[f], "more than 4 billion rows"))?;
        index.extend((0..rows).map(|r| (f as u32, r)));
    }
    if keys.is_empty() {
        return Ok(index);
    }
    let columns = keys
        .iter()
        .enumerate()
        .map(|(k, _)| {
            let parts: Vec<&dyn Array> = per_file
                .iter()
                .flat_map(|(bs, _)| bs.iter().map(move |b| b.column(k).as_ref()))
                .collect();
            concat(&parts).map_err(arrow_err)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    drop(per_file);
    let sort: Vec<SortColumn> = columns
        .into_iter()
        .map(|values| SortColumn {
            values,
            options: None,
        })
        .collect();
    let order = lexsort_to_indices(&sort, None).map_err(arrow_err)?;
    Ok(order.values().iter().map(|i| index[*i as usize]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};

    fn batch(ts: &[i64], paths: &[Option<&str>]) -> RecordBatch {
        let offsets: Vec<i64> = ts.iter().map(|t| t * 10).collect();
        with_offsets(ts, paths, Arc::new(Int64Array::from(offsets)))
    }

    /// A batch as files written before the integer columns became signed hold it.
    fn unsigned_batch(ts: &[i64], paths: &[Option<&str>]) -> RecordBatch {
        let offsets: Vec<u64> = ts.iter().map(|t| *t as u64 * 10).collect();
        with_offsets(ts, paths, Arc::new(UInt64Array::from(offsets)))
    }

    fn with_offsets(ts: &[i64], paths: &[Option<&str>], offsets: ArrayRef) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("path", DataType::Utf8, true),
            Field::new("offset", offsets.data_type().clone(), false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMicrosecondArray::from(ts.to_vec()).with_timezone("UTC")),
                Arc::new(StringArray::from(paths.to_vec())),
                offsets,
            ],
        )
        .unwrap()
    }

    fn write(path: &Path, b: &RecordBatch) {
        let mut w =
            parquet::arrow::ArrowWriter::try_new(File::create(path).unwrap(), b.schema(), None)
                .unwrap();
        w.write(b).unwrap();
        w.close().unwrap();
    }

    #[test]
    fn files_merge_into_one_sorted_file_with_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        write(&a, &batch(&[5, 1, 9], &[Some("/e"), None, Some("/i")]));
        write(&b, &batch(&[3, 7], &[Some("/c"), Some("/g")]));
        let out = dir.path().join("c.parquet");
        let props = WriterProperties::builder().build();
        let done = compact(&[a, b], &out, "ts", &props, &AtomicU64::new(0)).unwrap();
        assert_eq!(done.rows, 5);
        let got: Vec<RecordBatch> = reader(&out, None).unwrap().map(|b| b.unwrap()).collect();
        let ts: Vec<i64> = got
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(ts, vec![1, 3, 5, 7, 9]);
    }

    #[test]
    fn unsigned_files_of_older_datasets_compact_with_signed_ones_into_signed_columns() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        write(&a, &unsigned_batch(&[4, 2], &[Some("/d"), Some("/b")]));
        write(&b, &batch(&[3, 1], &[Some("/c"), None]));
        let out = dir.path().join("c.parquet");
        let props = WriterProperties::builder().build();
        let done = compact(&[a, b], &out, "ts", &props, &AtomicU64::new(0)).unwrap();
        assert_eq!(done.rows, 4);
        let got: Vec<RecordBatch> = reader(&out, None).unwrap().map(|b| b.unwrap()).collect();
        let offsets: Vec<i64> = got
            .iter()
            .flat_map(|b| b.column(2).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(offsets, vec![10, 20, 30, 40]);
    }

    #[test]
    fn fingerprints_ignore_order_and_see_any_change() {
        let schema = batch(&[], &[]).schema();
        let fp = |b: &RecordBatch| {
            let mut f = Fingerprint::new(&schema);
            f.add_all(std::slice::from_ref(b)).unwrap();
            f
        };
        let base = fp(&batch(&[1, 2], &[Some("/a"), None]));
        assert_eq!(base, fp(&batch(&[2, 1], &[None, Some("/a")])));
        let changed = fp(&batch(&[1, 2], &[Some("/b"), None]));
        assert_eq!(
            base.differs_from(&changed).as_deref(),
            Some("column path has different values")
        );
        let nulled = fp(&batch(&[1, 2], &[None, None]));
        assert!(base.differs_from(&nulled).is_some());
        let fewer = fp(&batch(&[1], &[Some("/a")]));
        assert_eq!(
            base.differs_from(&fewer).as_deref(),
            Some("1 rows instead of 2")
        );
    }
}
