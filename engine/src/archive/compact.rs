//! Compaction of one source's files of one partition into a single time-sorted file.
//!
//! Ingest writes a file per worker, run and (source, day), compressed for speed; a day that is no
//! longer written to is better kept as one file, sorted by time (so DuckDB prunes row groups by
//! `ts`) and compressed hard. The new file is written, fsynced and read back; it replaces the old
//! ones only when its row count and every column's checksum equal theirs. The checksums are
//! order-independent (a sum of per-value hashes), so sorting does not change them and any lost,
//! duplicated or altered value does. Files stay per source, so `ingest --force` of one source still
//! replaces exactly its rows.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};

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

    /// Adds a batch's values.
    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        for (i, col) in batch.columns().iter().enumerate() {
            let conv = RowConverter::new(vec![SortField::new(col.data_type().clone())])
                .map_err(arrow_err)?;
            let rows = conv
                .convert_columns(std::slice::from_ref(col))
                .map_err(arrow_err)?;
            let (_, sum, xor) = &mut self.columns[i];
            for r in rows.iter() {
                let h = xxhash_rust::xxh3::xxh3_64(r.as_ref());
                *sum = sum.wrapping_add(h);
                *xor ^= h;
            }
        }
        Ok(())
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

fn arrow_err(source: arrow::error::ArrowError) -> Error {
    Error::Arrow {
        format: "compaction".into(),
        source,
    }
}

/// Reads every row of a Parquet file.
fn read_all(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let damaged = |e: String| Error::Dataset {
        path: path.to_path_buf(),
        message: format!(
            "cannot read it for compaction ({e}); re-ingest its source with --force, then archive again"
        ),
    };
    let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| damaged(e.to_string()))?
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| damaged(e.to_string()))?;
    let schema = arrow::array::RecordBatchReader::schema(&reader);
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| damaged(e.to_string()))?;
    Ok((schema, batches))
}

/// What a compaction wrote.
#[derive(Debug, Clone)]
pub struct Compacted {
    /// Rows in the new file.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Rewrites `inputs` as the single file `output` (which must not be part of the dataset yet),
/// sorted by `time_column` (then `offset` when present), and verifies it.
pub fn compact(
    inputs: &[PathBuf],
    output: &Path,
    time_column: &str,
    props: &WriterProperties,
) -> Result<Compacted> {
    let mut schema: Option<SchemaRef> = None;
    let mut batches = Vec::new();
    let mut before: Option<Fingerprint> = None;
    for path in inputs {
        let (s, bs) = read_all(path)?;
        match &schema {
            None => {
                before = Some(Fingerprint::new(&s));
                schema = Some(s);
            }
            Some(first) if first.fields() != s.fields() => {
                return Err(Error::Dataset {
                    path: path.clone(),
                    message: format!(
                        "its columns differ from those of {}; it is left as it is (re-ingest the source with --force to rewrite both)",
                        inputs[0].display()
                    ),
                });
            }
            Some(_) => {}
        }
        let fp = before.as_mut().expect("set with the schema");
        for b in &bs {
            fp.add(b)?;
        }
        batches.extend(bs);
    }
    let (Some(schema), Some(before)) = (schema, before) else {
        return Err(Error::Usage("nothing to compact".into()));
    };
    let all = concat_batches(&schema, &batches).map_err(arrow_err)?;
    drop(batches);
    let mut keys: Vec<SortColumn> = Vec::new();
    for name in [time_column, "offset"] {
        if let Some(col) = all.column_by_name(name) {
            keys.push(SortColumn {
                values: Arc::clone(col) as ArrayRef,
                options: None,
            });
        }
    }
    let sorted = if keys.is_empty() {
        all
    } else {
        let order = lexsort_to_indices(&keys, None).map_err(arrow_err)?;
        drop(keys);
        take_record_batch(&all, &order).map_err(arrow_err)?
    };
    let file = File::create(output).map_err(|e| Error::io("cannot create", output, e))?;
    let sync = file
        .try_clone()
        .map_err(|e| Error::io("cannot open", output, e))?;
    crate::stats::write_columns(file, &sorted, props).map_err(|source| Error::Parquet {
        path: output.to_path_buf(),
        source,
    })?;
    drop(sorted);
    sync.sync_all()
        .map_err(|e| Error::io("cannot sync", output, e))?;
    super::checkpoint("compact-verify");
    let (s, written) = read_all(output)?;
    let mut after = Fingerprint::new(&s);
    for b in &written {
        after.add(b)?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMicrosecondArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn batch(ts: &[i64], paths: &[Option<&str>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("path", DataType::Utf8, true),
            Field::new("offset", DataType::UInt64, false),
        ]));
        let offsets: Vec<u64> = ts.iter().map(|t| *t as u64 * 10).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampMicrosecondArray::from(ts.to_vec()).with_timezone("UTC")),
                Arc::new(StringArray::from(paths.to_vec())),
                Arc::new(UInt64Array::from(offsets)),
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
        let done = compact(&[a, b], &out, "ts", &props).unwrap();
        assert_eq!(done.rows, 5);
        let (_, got) = read_all(&out).unwrap();
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
    fn fingerprints_ignore_order_and_see_any_change() {
        let schema = batch(&[], &[]).schema();
        let fp = |b: &RecordBatch| {
            let mut f = Fingerprint::new(&schema);
            f.add(b).unwrap();
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
