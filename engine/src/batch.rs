//! Builds Arrow record batches of the canonical schema from parsed rows.
//!
//! A [`ChunkBatcher`] is the [`RowSink`] a worker hands to the parser for one chunk: it appends each
//! row to the builder of the row's UTC day (partitions are per day, and a chunk rarely spans more
//! than one), keeps the first bad lines as quarantine samples and counts all of them, and at the end
//! of the chunk yields one `RecordBatch` per day. Builders are owned by the worker: no locks.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    ArrayRef, DictionaryArray, Int16Builder, Int32Array, Int64Builder, RecordBatch, StringArray,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};
use crate::parse::{BadReason, Kind, Row, RowSink};
use crate::route::Router;
use crate::schema::StrCol;
use crate::security::{TagScratch, Tagger};

/// µs in a day.
pub const US_PER_DAY: i64 = 86_400_000_000;
/// Bytes of a bad line kept in its quarantine sample.
pub const SAMPLE_BYTES: usize = 1024;

/// A `Utf8` column built from bytes: ASCII (nearly every log field) is copied as is, other text is
/// checked and, when invalid, replaced lossily; the array is validated once when finished.
struct StrColumn {
    values: Vec<u8>,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

impl StrColumn {
    fn new() -> StrColumn {
        StrColumn {
            values: Vec::new(),
            offsets: vec![0],
            nulls: NullBufferBuilder::new(0),
        }
    }

    #[inline]
    fn push(&mut self, v: Option<&[u8]>) {
        match v {
            Some(bytes) => {
                if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() {
                    self.values.extend_from_slice(bytes);
                } else {
                    self.values
                        .extend_from_slice(String::from_utf8_lossy(bytes).as_bytes());
                }
                self.nulls.append_non_null();
            }
            None => self.nulls.append_null(),
        }
        self.offsets.push(self.values.len() as i32);
    }

    fn finish(&mut self) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let values = Buffer::from_vec(std::mem::take(&mut self.values));
        let array = StringArray::try_new(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            values,
            self.nulls.finish(),
        )?;
        Ok(Arc::new(array))
    }
}

/// Arrow builders for the rows of one source and day.
pub struct BatchBuilder {
    kind: Kind,
    schema: SchemaRef,
    source: Arc<str>,
    router: Arc<Router>,
    route: StrColumn,
    scratch: Vec<u8>,
    tagger: Arc<Tagger>,
    threats: Vec<u32>,
    ts: TimestampMicrosecondBuilder,
    strs: Vec<StrColumn>,
    status: Int16Builder,
    bytes: Int64Builder,
    response_time: Int64Builder,
    upstream_time: Int64Builder,
    offset: Int64Builder,
    extras: Vec<StrColumn>,
    len: usize,
}

impl BatchBuilder {
    /// Empty builders for `schema` (from [`crate::schema::arrow_schema`] for access logs, or
    /// [`crate::schema::error_schema`]) and source label `source`.
    pub fn new(
        kind: Kind,
        schema: SchemaRef,
        source: Arc<str>,
        enrich: &Enrich,
        extras: usize,
    ) -> BatchBuilder {
        BatchBuilder {
            kind,
            schema,
            source,
            router: Arc::clone(&enrich.router),
            route: StrColumn::new(),
            scratch: Vec::new(),
            tagger: Arc::clone(&enrich.tagger),
            threats: Vec::new(),
            ts: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            strs: (0..StrCol::ALL.len()).map(|_| StrColumn::new()).collect(),
            status: Int16Builder::new(),
            bytes: Int64Builder::new(),
            response_time: Int64Builder::new(),
            upstream_time: Int64Builder::new(),
            offset: Int64Builder::new(),
            extras: (0..extras).map(|_| StrColumn::new()).collect(),
            len: 0,
        }
    }

    /// Appends one row; `tags` is the worker's tagging scratch (its cache outlives the chunk).
    pub fn push(&mut self, row: &Row<'_>, tags: &mut TagScratch) {
        self.ts.append_value(row.ts_us);
        if self.kind == Kind::Access {
            for (b, c) in self.strs.iter_mut().zip(StrCol::ALL) {
                b.push(row.str(c));
            }
            match row.str(StrCol::Path) {
                Some(path) => {
                    self.scratch.clear();
                    self.router.route_into(path, &mut self.scratch);
                    self.route.push(Some(&self.scratch));
                }
                None => self.route.push(None),
            }
            self.threats.push(self.tagger.tag(
                row.str(StrCol::Path),
                row.str(StrCol::Query),
                row.str(StrCol::Referer),
                row.str(StrCol::UserAgent),
                tags,
            ));
            self.status
                .append_option(row.status.and_then(|s| i16::try_from(s).ok()));
            self.bytes.append_option(row.bytes.map(signed));
            self.response_time
                .append_option(row.response_time_us.map(signed));
            self.upstream_time
                .append_option(row.upstream_response_time_us.map(signed));
        }
        self.offset.append_value(signed(row.offset));
        for (i, b) in self.extras.iter_mut().enumerate() {
            b.push(row.extra(i));
        }
        self.len += 1;
    }

    /// Rows appended since the last [`BatchBuilder::finish`].
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no rows are pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes the pending rows as a batch and leaves the builders empty.
    pub fn finish(&mut self) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
        let n = self.len;
        self.len = 0;
        let keys = Int32Array::from(vec![0i32; n]);
        let values = Arc::new(StringArray::from(vec![&*self.source]));
        let source: ArrayRef = Arc::new(DictionaryArray::try_new(keys, values)?);
        let mut cols: Vec<ArrayRef> = vec![Arc::new(self.ts.finish())];
        if self.kind == Kind::Error {
            for b in self.extras.iter_mut() {
                cols.push(b.finish()?);
            }
            cols.push(source);
            cols.push(Arc::new(self.offset.finish()));
            return RecordBatch::try_new(Arc::clone(&self.schema), cols);
        }
        let strs = self
            .strs
            .iter_mut()
            .map(StrColumn::finish)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut s = strs.into_iter();
        cols.extend(s.by_ref().take(7));
        cols.push(self.route.finish()?);
        cols.push(Arc::new(self.status.finish()));
        cols.push(Arc::new(self.bytes.finish()));
        cols.extend(s);
        cols.push(Arc::new(self.response_time.finish()));
        cols.push(Arc::new(self.upstream_time.finish()));
        cols.push(Arc::new(Int32Array::from_iter_values(
            self.threats.drain(..).map(|bits| bits as i32),
        )));
        cols.push(source);
        cols.push(Arc::new(self.offset.finish()));
        for b in self.extras.iter_mut() {
            cols.push(b.finish()?);
        }
        RecordBatch::try_new(Arc::clone(&self.schema), cols)
    }
}

/// A count or size as stored: the columns are signed (open table formats and Spark have no
/// unsigned integers), and no log holds a value past `i64::MAX`, so larger ones saturate.
fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What ingest adds to each access-log row besides its fields: the route and the threat tags.
#[derive(Debug)]
pub struct Enrich {
    /// Route normalisation.
    pub router: Arc<Router>,
    /// Threat signatures.
    pub tagger: Arc<Tagger>,
}

impl Enrich {
    /// Built-in route rules and signatures at paranoia 1 (for tests and benchmarks).
    pub fn builtin() -> Enrich {
        let file: crate::security::SignatureFile =
            serde_norway::from_str(crate::security::BUILTIN_SIGNATURES)
                .expect("the built-in signatures parse");
        Enrich {
            router: Arc::new(Router::default()),
            tagger: Arc::new(Tagger::new(&file, 1).expect("the built-in signatures compile")),
        }
    }
}

/// A bad line kept for the quarantine file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// Chunk sequence number within the source.
    pub seq: u64,
    /// Line index within the chunk.
    pub line_index: u64,
    /// Byte offset of the line in its source.
    pub offset: u64,
    /// Why it was rejected.
    pub reason: BadReason,
    /// The first [`SAMPLE_BYTES`] of the line.
    pub sample: Vec<u8>,
}

/// Collects one chunk's rows into per-day batches and its bad lines; see the module docs.
pub struct ChunkBatcher<'w> {
    kind: Kind,
    schema: SchemaRef,
    source: Arc<str>,
    enrich: Arc<Enrich>,
    extras: usize,
    seq: u64,
    days: BTreeMap<i32, BatchBuilder>,
    current: Option<(i32, BatchBuilder)>,
    tags: &'w mut TagScratch,
    /// Bad lines kept as samples (at most `sample_budget`).
    pub bad: Vec<BadLine>,
    /// All bad lines by reason.
    pub bad_counts: BTreeMap<BadReason, u64>,
    sample_budget: usize,
}

impl<'w> ChunkBatcher<'w> {
    /// A batcher for chunk `seq` of a source labelled `source` whose rows have `schema`; keeps at
    /// most `sample_budget` bad-line samples. `tags` is the worker's tagging scratch, kept from
    /// chunk to chunk: its cache of tagged values is what spares most rows the signature scan.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: Kind,
        schema: SchemaRef,
        source: Arc<str>,
        enrich: Arc<Enrich>,
        extras: usize,
        seq: u64,
        sample_budget: usize,
        tags: &'w mut TagScratch,
    ) -> ChunkBatcher<'w> {
        ChunkBatcher {
            kind,
            schema,
            source,
            enrich,
            extras,
            seq,
            days: BTreeMap::new(),
            current: None,
            tags,
            bad: Vec::new(),
            bad_counts: BTreeMap::new(),
            sample_budget,
        }
    }

    /// The chunk's rows as one batch per UTC day (days since the epoch).
    pub fn finish(mut self, format: &str) -> Result<Vec<(i32, RecordBatch)>> {
        if let Some((day, b)) = self.current.take() {
            self.days.insert(day, b);
        }
        self.days
            .into_iter()
            .map(|(day, mut b)| {
                b.finish()
                    .map(|batch| (day, batch))
                    .map_err(|source| Error::Arrow {
                        format: format.to_string(),
                        source,
                    })
            })
            .collect()
    }
}

impl RowSink for ChunkBatcher<'_> {
    fn row(&mut self, row: &Row<'_>) {
        let day = row.ts_us.div_euclid(US_PER_DAY) as i32;
        match &mut self.current {
            Some((d, b)) if *d == day => b.push(row, self.tags),
            current => {
                let mut builder = self.days.remove(&day).unwrap_or_else(|| {
                    BatchBuilder::new(
                        self.kind,
                        Arc::clone(&self.schema),
                        Arc::clone(&self.source),
                        &self.enrich,
                        self.extras,
                    )
                });
                builder.push(row, self.tags);
                if let Some((d, old)) = current.replace((day, builder)) {
                    self.days.insert(d, old);
                }
            }
        }
    }

    fn bad(&mut self, offset: u64, line_index: u64, reason: BadReason, line: &[u8]) {
        *self.bad_counts.entry(reason).or_default() += 1;
        if self.bad.len() < self.sample_budget {
            self.bad.push(BadLine {
                seq: self.seq,
                line_index,
                offset,
                reason,
                sample: line[..line.len().min(SAMPLE_BYTES)].to_vec(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Patterns;
    use crate::schema::arrow_schema;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};

    #[test]
    fn rows_split_by_day_and_keep_types() {
        let pats =
            Patterns::parse(crate::parse::BUILTIN_PATTERNS, std::path::Path::new("b")).unwrap();
        let p = pats.parser("nginx_timed", 1 << 16).unwrap();
        let text = b"1.1.1.1 - - [31/Dec/2023:23:59:59 +0000] \"GET /a HTTP/1.1\" 200 10 \"-\" \"ua\" 0.5\n\
                     2.2.2.2 - bob [01/Jan/2024:00:00:00 +0000] \"GET /b?q HTTP/1.1\" 404 - \"r\" \"\xffua\" 0.001\n\
                     nonsense\n";
        let schema = arrow_schema(p.extras());
        let mut tags = TagScratch::default();
        let mut b = ChunkBatcher::new(
            Kind::Access,
            schema,
            Arc::from("src.log"),
            Arc::new(Enrich::builtin()),
            p.extras().len(),
            3,
            10,
            &mut tags,
        );
        p.parse_chunk(&mut p.scratch(), text, 100, &mut b);
        assert_eq!(b.bad.len(), 1);
        assert_eq!(
            b.bad[0].offset,
            100 + text.windows(8).position(|w| w == b"nonsense").unwrap() as u64
        );
        assert_eq!(b.bad[0].seq, 3);
        let days = b.finish("nginx_timed").unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].0, 19_722);
        assert_eq!(days[1].0, 19_723);
        let second = &days[1].1;
        let col = |n: &str| second.column(second.schema().index_of(n).unwrap()).clone();
        assert_eq!(
            col("ts")
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_704_067_200_000_000
        );
        assert_eq!(col("user_agent").as_string::<i32>().value(0), "\u{fffd}ua");
        assert!(col("bytes").is_null(0));
        assert_eq!(
            col("response_time_us").as_primitive::<Int64Type>().value(0),
            1000
        );
        assert_eq!(col("query").as_string::<i32>().value(0), "q");
        let second_line = text.iter().position(|c| *c == b'\n').unwrap() as u64 + 1;
        assert_eq!(
            col("offset").as_primitive::<Int64Type>().value(0),
            100 + second_line as i64
        );
    }
}
