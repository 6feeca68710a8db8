//! `stats`: streaming latency histograms and request counters per minute and route group.
//!
//! During ingest every worker owns a [`Recorder`] that folds the rows it batches into one
//! hdrhistogram per (source, minute, route) and one per (source, minute) for all routes (`*`),
//! with request and status-class counters beside them. No locks are taken on the hot path; a
//! worker finishes a minute's cells as soon as the next but one minute starts (while they are
//! still in the cache; later for logs out of time order), so memory stays bounded however many
//! minutes a log spans: a busy cell as a serialised histogram (V2 format) with its quantiles, a
//! small one as its values, into one block of exactly sized buffers per minute ([`Recorded`]). At
//! the commit the cells of all workers are folded, in parallel, into route
//! *groups*: the dataset keeps up to `stats.route_groups` routes by volume (chosen once and then
//! stable, so series stay comparable across runs) and every other route becomes `other`; most
//! small cells are merged there, which is why their quantiles and stored form wait for the fold.
//! The result is one row per (minute, group) in Hive-partitioned Parquet files
//! (`stats/date=YYYY-MM-DD/`) that the manifest lists like the log files, with p50/p90/p95/p99
//! precomputed and the serialised histogram, so percentiles over any range and route come from
//! merging histograms instead of rescanning the logs. Rows with the same key from different files
//! or runs are merged by readers ([`StatsReader`]).

pub mod compare;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::hash::BuildHasherDefault;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, Int16Array, Int64Array, Int64Builder, RecordBatch,
    StringArray, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::DataType;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use parquet::basic::Encoding;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sink::{ParallelWriter, WrittenFile, partition_name};

pub use crate::schema::{STATS_TABLE, stats_schema};
/// Route name of the rows that count every route.
pub const ALL_ROUTES: &str = "*";
/// Route group of the routes outside the dataset's groups.
pub const OTHER_ROUTE: &str = "other";
/// Width of a stored bucket.
pub const MINUTE_US: i64 = 60_000_000;
/// Largest latency a histogram tracks exactly (one hour); longer ones are counted as one hour.
pub const MAX_TRACKED_US: u64 = 3_600_000_000;
/// Quantiles stored with every row.
pub const QUANTILES: [(f64, &str); 4] = [
    (0.50, "p50_us"),
    (0.90, "p90_us"),
    (0.95, "p95_us"),
    (0.99, "p99_us"),
];
/// Distinct routes one worker tracks before further new routes go to `other` directly.
const MAX_ROUTES_PER_WORKER: usize = 4096;
/// Live minutes per worker to begin with, before the older half is finished: rows arrive in time
/// order within a chunk, so a minute is finished once the next but one starts, while its cells
/// and histograms are still in the cache (finishing them cold cost more than recording them).
const MIN_LIVE_MINUTES: usize = 2;
/// Live minutes per worker at most: each time rows come back to a minute already finished (a log
/// out of time order), the window doubles up to this, so such a log is not cut into a block per
/// row.
const MAX_LIVE_MINUTES: usize = 32;
/// Bytes of finished blocks a worker holds before it merges the blocks of the minutes it finished
/// more than once (an archive whose dates come back chunk after chunk finishes the same minutes
/// again and again). When little merges, the bound doubles: what is left is one block per minute.
const DONE_BUDGET: usize = 64 << 20;

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The multiply-rotate hash of rustc (FxHash) for the integer keys of the hot path and xxh3 for
/// its strings: a few cycles each, where a general-purpose hasher's setup costs more than the
/// lookup.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Route strings: word-at-a-time FxHash is a chain of dependent multiplies, xxh3 hashes
        // the words of a short string in parallel.
        self.mix(xxhash_rust::xxh3::xxh3_64(bytes));
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(i as u64);
    }

    fn write_u32(&mut self, i: u32) {
        self.mix(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    fn write_i64(&mut self, i: i64) {
        self.mix(i as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `stats:` section of the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// Record the histograms at ingest (off: `detect` and `compare` have nothing to read).
    pub enabled: bool,
    /// Significant decimal digits the latency histograms keep (1-3); 2 means within 1%.
    pub significant_digits: u8,
    /// Routes kept as their own group; the rest are `other`.
    pub route_groups: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            enabled: true,
            significant_digits: 2,
            route_groups: 50,
        }
    }
}

impl StatsConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(1..=3).contains(&self.significant_digits) {
            return Err("stats.significant_digits must be 1, 2 or 3".into());
        }
        if self.route_groups == 0 {
            return Err("stats.route_groups must be at least 1".into());
        }
        Ok(())
    }
}

/// An empty latency histogram with the dataset's precision.
pub fn histogram<T: hdrhistogram::Counter>(sigfig: u8) -> Histogram<T> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, sigfig.clamp(1, 3))
        .expect("1..1h with 1-3 significant digits is a valid histogram")
}

/// Serialises a histogram (hdrhistogram V2 encoding).
pub fn encode<T: hdrhistogram::Counter>(h: &Histogram<T>) -> Vec<u8> {
    encode_with(&mut V2Serializer::new(), h)
}

/// [`encode`] with a serializer whose buffer is reused (it sizes it for the densest histogram).
fn encode_with<T: hdrhistogram::Counter>(ser: &mut V2Serializer, h: &Histogram<T>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    ser.serialize(h, &mut out)
        .expect("serialising into memory does not fail");
    out
}

/// First byte of a stored cell that holds its values rather than a histogram.
const VALUES_TAG: u8 = b'L';

/// Stores the (sorted) values of a small cell: [`VALUES_TAG`], then the deltas as LEB128.
fn encode_values(sorted: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + sorted.len() * 2);
    out.push(VALUES_TAG);
    let mut prev = 0u32;
    for v in sorted {
        let mut d = v - prev;
        prev = *v;
        loop {
            let byte = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

fn damaged(what: String) -> Error {
    Error::Dataset {
        path: STATS_TABLE.into(),
        message: format!(
            "a stored latency histogram is damaged ({what}); re-ingest its source with --force"
        ),
    }
}

/// The values of a stored small cell (`None` when `bytes` is a serialised histogram).
fn decode_values(bytes: &[u8]) -> Option<Result<Vec<u32>>> {
    let rest = bytes.strip_prefix(&[VALUES_TAG])?;
    let mut out = Vec::with_capacity(rest.len());
    let (mut acc, mut d, mut shift) = (0u64, 0u64, 0u32);
    for b in rest {
        if shift > 28 {
            return Some(Err(damaged("a value is too long".into())));
        }
        d |= ((b & 0x7f) as u64) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            acc += d;
            out.push(acc.clamp(1, MAX_TRACKED_US) as u32);
            (d, shift) = (0, 0);
        }
    }
    Some(Ok(out))
}

/// Adds a stored cell (an [`encode`]d histogram, or the values of a small cell) to `into`.
pub fn merge_into(into: &mut Histogram<u64>, bytes: &[u8]) -> Result<()> {
    if let Some(values) = decode_values(bytes) {
        for v in values? {
            into.saturating_record(v as u64);
        }
        return Ok(());
    }
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| damaged(format!("{e:?}")))?;
    into.add(h)
        .map_err(|e| damaged(format!("cannot merge: {e:?}")))
}

/// Exact quantiles (hdrhistogram's definition: the value of rank ceil(q * n)) and the stored form
/// of a small cell's values.
fn small_cell(vals: &mut [u32]) -> (Option<[u64; 5]>, Vec<u8>) {
    vals.sort_unstable();
    let n = vals.len();
    let at = |q: f64| vals[((q * n as f64).ceil() as usize).clamp(1, n) - 1] as u64;
    let q = (n > 0).then(|| {
        let mut q = [at(1.0); 5];
        for (slot, (p, _)) in q.iter_mut().zip(QUANTILES) {
            *slot = at(p);
        }
        q
    });
    (q, encode_values(vals))
}

/// Request and status-class counters of a cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests.
    pub requests: u64,
    /// 2xx responses.
    pub c2xx: u64,
    /// 3xx responses.
    pub c3xx: u64,
    /// 4xx responses.
    pub c4xx: u64,
    /// 5xx responses.
    pub c5xx: u64,
    /// Requests with a response time.
    pub timed: u64,
    /// Sum of the response times, µs.
    pub sum_us: u64,
}

impl Counts {
    /// Adds `o`.
    pub fn add(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.c2xx += o.c2xx;
        self.c3xx += o.c3xx;
        self.c4xx += o.c4xx;
        self.c5xx += o.c5xx;
        self.timed += o.timed;
        self.sum_us = self.sum_us.saturating_add(o.sum_us);
    }

    fn status(&mut self, status: Option<u16>) {
        self.requests += 1;
        match status.map(|s| s / 100) {
            Some(2) => self.c2xx += 1,
            Some(3) => self.c3xx += 1,
            Some(4) => self.c4xx += 1,
            Some(5) => self.c5xx += 1,
            _ => {}
        }
    }
}

/// A finished cell: counters, quantiles and the serialised histogram.
#[derive(Debug, Clone)]
pub struct Part {
    /// Index of the source in the ingest plan.
    pub source: usize,
    /// Minute, µs since the epoch.
    pub minute: i64,
    /// Route (or [`ALL_ROUTES`]).
    pub route: Arc<str>,
    /// Counters.
    pub counts: Counts,
    /// [`QUANTILES`] and the maximum, µs (`None` without timed requests).
    pub quantiles: Option<[u64; 5]>,
    /// [`encode`]d histogram.
    pub hist: Vec<u8>,
}

/// Where the latencies of a finished cell are in its [`Block`] (a block holds at most
/// [`MAX_ROUTES_PER_WORKER`] cells, so its offsets fit in 32 bits).
#[derive(Debug, Clone, Copy)]
enum Latencies {
    /// `len` values of a small cell at `values[at..]`, unsorted: most cells are merged into
    /// `other` or with the other half of a split minute, so their quantiles and stored form are
    /// left to [`fold`].
    Values { at: u32, len: u32 },
    /// The [`encode`]d histogram of a cell with more than [`SMALL_CELL`] values, `len` bytes at
    /// `hists[at..]`, with its [`QUANTILES`] and maximum at `quantiles[q]`.
    Hist { at: u32, len: u32, q: u32 },
}

/// A cell as a worker's [`Recorder`] finishes it, before [`fold`] groups its route.
#[derive(Debug, Clone, Copy)]
struct Cell {
    /// The worker's id of the route ([`Recorded::names`]).
    route: u32,
    counts: Counts,
    latencies: Latencies,
}

/// The finished cells of one (source, minute) in one worker, with their values and histograms.
/// Each block is allocated at its exact size when its minute is finished: buffers shared by a
/// worker's cells would grow by doubling, copying what they hold and faulting in fresh pages
/// each time.
#[derive(Debug, Clone, Default)]
struct Block {
    source: u32,
    minute: i64,
    cells: Vec<Cell>,
    values: Vec<u32>,
    hists: Vec<u8>,
    quantiles: Vec<[u64; 5]>,
}

/// A block buffer's length as a stored offset.
fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("a block's buffers stay under 4 GiB")
}

impl Block {
    /// Bytes held.
    fn bytes(&self) -> usize {
        self.cells.capacity() * std::mem::size_of::<Cell>()
            + self.values.capacity() * 4
            + self.hists.capacity()
            + self.quantiles.capacity() * std::mem::size_of::<[u64; 5]>()
    }

    /// The cells of `blocks` (one source and minute) merged into one cell per route.
    fn merge(blocks: &[Block], h: &mut Histogram<u64>, ser: &mut V2Serializer) -> Block {
        let mut cells: Vec<(&Block, &Cell)> = blocks
            .iter()
            .flat_map(|b| b.cells.iter().map(move |c| (b, c)))
            .collect();
        cells.sort_by_key(|(_, c)| c.route);
        let mut out = Block {
            source: blocks[0].source,
            minute: blocks[0].minute,
            ..Block::default()
        };
        let mut values = Vec::new();
        for same in cells.chunk_by(|a, b| a.1.route == b.1.route) {
            let (counts, small) = match same {
                [(b, c)] => {
                    out.push(c.route, c.counts, b.latencies(c));
                    continue;
                }
                many => merge_cells(
                    many.iter().map(|(b, c)| (c.counts, b.latencies(c))),
                    h,
                    &mut values,
                )
                .expect("a recorder's own histograms decode"),
            };
            let route = same[0].1.route;
            if small {
                out.push(route, counts, Lat::Values(&values));
            } else {
                out.push_histogram(route, counts, h, ser);
            }
        }
        out
    }

    /// Appends a cell of route `route` with `counts` and latencies `lat` (values, or a histogram
    /// already encoded).
    fn push(&mut self, route: u32, counts: Counts, lat: Lat<'_>) {
        let latencies = match lat {
            Lat::Values(v) => {
                let at = offset(self.values.len());
                self.values.extend_from_slice(v);
                Latencies::Values {
                    at,
                    len: offset(v.len()),
                }
            }
            Lat::Hist(bytes, q) => {
                let at = offset(self.hists.len());
                self.hists.extend_from_slice(bytes);
                self.quantiles.push(*q);
                Latencies::Hist {
                    at,
                    len: offset(bytes.len()),
                    q: offset(self.quantiles.len() - 1),
                }
            }
        };
        self.cells.push(Cell {
            route,
            counts,
            latencies,
        });
    }

    /// Appends a cell of route `route` with `counts` and the latencies of `h` (not empty),
    /// encoded in place.
    fn push_histogram<T: hdrhistogram::Counter>(
        &mut self,
        route: u32,
        counts: Counts,
        h: &Histogram<T>,
        ser: &mut V2Serializer,
    ) {
        let at = self.hists.len();
        ser.serialize(h, &mut self.hists)
            .expect("serialising into memory does not fail");
        self.quantiles
            .push(summarise(h).expect("a histogram cell has values"));
        self.cells.push(Cell {
            route,
            counts,
            latencies: Latencies::Hist {
                at: offset(at),
                len: offset(self.hists.len() - at),
                q: offset(self.quantiles.len() - 1),
            },
        });
    }

    fn latencies(&self, c: &Cell) -> Lat<'_> {
        let span = |at: u32, len: u32| at as usize..(at + len) as usize;
        match c.latencies {
            Latencies::Values { at, len } => Lat::Values(&self.values[span(at, len)]),
            Latencies::Hist { at, len, q } => {
                Lat::Hist(&self.hists[span(at, len)], &self.quantiles[q as usize])
            }
        }
    }
}

/// The latencies of a cell, resolved in its [`Block`].
enum Lat<'a> {
    Values(&'a [u32]),
    Hist(&'a [u8], &'a [u64; 5]),
}

/// What one worker's [`Recorder`] recorded: its finished cells, one block per (source, minute),
/// each block's values and histograms in buffers the block's cells share. A log has a cell for
/// nearly every (minute, route) it touches, and an allocation, a route reference and a sort
/// entry for each cost more than the recording itself.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Route name of each route id (`*` and `other` first).
    names: Vec<Arc<str>>,
    blocks: Vec<Block>,
}

impl Recorded {
    /// Forgets the cells of the sources for which `failed` holds (their ingest failed).
    pub fn drop_sources(&mut self, failed: impl Fn(usize) -> bool) {
        self.blocks.retain(|b| !failed(b.source as usize));
    }

    /// Number of cells kept.
    pub fn cells(&self) -> usize {
        self.blocks.iter().map(|b| b.cells.len()).sum()
    }
}

/// [`QUANTILES`] and the maximum of a histogram (`None` when it is empty).
pub fn summarise<T: hdrhistogram::Counter>(h: &Histogram<T>) -> Option<[u64; 5]> {
    (!h.is_empty()).then(|| {
        let mut q = [0u64; 5];
        for (slot, v) in q
            .iter_mut()
            .zip(h.value_at_quantiles(QUANTILES.map(|(p, _)| p)))
        {
            *slot = v;
        }
        q[4] = h.max();
        q
    })
}

/// Values of a cell that has seen few requests are kept as they are: most (minute, route) cells
/// of a long-tailed site hold a handful of requests, and a dense histogram (13 KiB) for each would
/// cost more than the rest of ingest. Folded cells stay lists up to the same size.
const SMALL_CELL: usize = 64;

enum Values {
    Small(Vec<u32>),
    Big(Box<Histogram<u32>>),
}

#[derive(Default)]
struct Live {
    counts: Counts,
    values: Option<Values>,
}

/// Emptied value buffers and histograms of finished cells, for the next ones: a cell lives for
/// a minute, and allocating its buffers afresh each time would keep the allocator faulting in
/// new pages.
#[derive(Default)]
struct Pools {
    hists: Vec<Histogram<u32>>,
    smalls: Vec<Vec<u32>>,
}

impl Live {
    fn add(&mut self, pools: &mut Pools, sigfig: u8, st: Option<u16>, us: Option<u64>) {
        self.counts.status(st);
        let Some(us) = us else { return };
        self.counts.timed += 1;
        self.counts.sum_us = self.counts.sum_us.saturating_add(us);
        let v = us.clamp(1, MAX_TRACKED_US);
        match &mut self.values {
            None => {
                let mut vals = pools
                    .smalls
                    .pop()
                    .unwrap_or_else(|| Vec::with_capacity(SMALL_CELL));
                vals.push(v as u32);
                self.values = Some(Values::Small(vals));
            }
            Some(Values::Small(vals)) if vals.len() < SMALL_CELL => vals.push(v as u32),
            Some(Values::Small(vals)) => {
                let mut h = Box::new(pools.hists.pop().unwrap_or_else(|| histogram(sigfig)));
                for x in vals.iter() {
                    h.saturating_record(*x as u64);
                }
                h.saturating_record(v);
                let mut vals = std::mem::take(vals);
                vals.clear();
                pools.smalls.push(vals);
                self.values = Some(Values::Big(h));
            }
            Some(Values::Big(h)) => h.saturating_record(v),
        }
    }
}

/// The cells of one (source, minute), indexed by route id, and the ids in use.
#[derive(Default)]
struct Minute {
    key: (u32, i64),
    cells: Vec<Live>,
    touched: Vec<u32>,
}

/// A slot of [`RouteIds`]: a route's length and its first and last eight bytes (zero-padded).
#[derive(Clone, Copy, Default)]
struct Slot {
    head: u64,
    tail: u64,
    len: u32,
    /// Route id; 0 ([`ALL_ID`], never looked up) marks a free slot.
    id: u32,
}

/// The route ids of one worker. Every row looks its route up, so this is an open-addressing
/// table keyed by a route's length and its first and last eight bytes: for a route of up to 16
/// bytes these words are the whole route and a lookup compares three words; longer routes also
/// compare their bytes once the words match.
struct RouteIds {
    slots: Vec<Slot>,
    names: Vec<Arc<str>>,
}

impl RouteIds {
    fn new() -> RouteIds {
        RouteIds {
            slots: vec![Slot::default(); 64],
            names: vec![Arc::from(ALL_ROUTES), Arc::from(OTHER_ROUTE)],
        }
    }

    fn words(b: &[u8]) -> (u64, u64) {
        let n = b.len();
        if n >= 8 {
            let word = |at: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&b[at..at + 8]);
                u64::from_le_bytes(w)
            };
            (word(0), word(n - 8))
        } else {
            let mut w = [0u8; 8];
            w[..n].copy_from_slice(b);
            (u64::from_le_bytes(w), 0)
        }
    }

    /// The first slot to probe: a folded 128-bit multiply of the two words, whose low bits
    /// depend on every bit of both (routes often differ in one byte of their tail).
    fn home(&self, head: u64, tail: u64, len: u32) -> usize {
        let m = u128::from(head ^ 0x243F_6A88_85A3_08D3)
            * u128::from(tail ^ u64::from(len) ^ 0x1319_8A2E_0370_7344);
        ((m as u64) ^ ((m >> 64) as u64)) as usize & (self.slots.len() - 1)
    }

    /// The id of `route`, given one when new (up to [`MAX_ROUTES_PER_WORKER`], then `other`).
    fn get(&mut self, route: &str) -> u32 {
        let b = route.as_bytes();
        let (head, tail) = Self::words(b);
        let len = b.len() as u32;
        let mask = self.slots.len() - 1;
        let mut i = self.home(head, tail, len);
        loop {
            let s = self.slots[i];
            if s.id == ALL_ID {
                break;
            }
            if s.head == head
                && s.tail == tail
                && s.len == len
                && (b.len() <= 16 || self.names[s.id as usize].as_bytes() == b)
            {
                return s.id;
            }
            i = (i + 1) & mask;
        }
        if self.names.len() >= MAX_ROUTES_PER_WORKER {
            return OTHER_ID;
        }
        let id = self.names.len() as u32;
        self.names.push(Arc::from(route));
        self.slots[i] = Slot {
            head,
            tail,
            len,
            id,
        };
        if self.names.len() * 2 > self.slots.len() {
            let old = std::mem::replace(&mut self.slots, vec![Slot::default(); mask * 2 + 2]);
            let mask = self.slots.len() - 1;
            for s in old.into_iter().filter(|s| s.id != ALL_ID) {
                let mut i = self.home(s.head, s.tail, s.len);
                while self.slots[i].id != ALL_ID {
                    i = (i + 1) & mask;
                }
                self.slots[i] = s;
            }
        }
        id
    }
}

/// Per-worker recorder; see the module docs.
///
/// Rows arrive in time order within a chunk, so a batch is recorded in runs of one minute: the
/// minute is found once per run, and a row costs one route lookup and two cell updates.
pub struct Recorder {
    sigfig: u8,
    routes: RouteIds,
    minutes: Vec<Minute>,
    /// Live minutes before the older half is finished.
    live: usize,
    /// The newest minute the last eviction finished.
    last_finished: Option<(u32, i64)>,
    /// Finished blocks.
    done: Vec<Block>,
    /// Bytes of the finished blocks, and the bound that makes them merge ([`DONE_BUDGET`]).
    done_bytes: usize,
    budget: usize,
    /// Emptied buffers and histograms for reuse.
    pools: Pools,
    /// Emptied minutes for reuse: their cell array spans every route id the worker has seen,
    /// and allocating it afresh for each minute would make the allocator fault in new pages.
    spare: Vec<Minute>,
    ser: V2Serializer,
    /// The route ids of a batch's rows.
    ids: Vec<u32>,
}

const ALL_ID: u32 = 0;
const OTHER_ID: u32 = 1;

impl Recorder {
    /// A recorder with histograms of `sigfig` significant digits.
    pub fn new(sigfig: u8) -> Recorder {
        Recorder {
            sigfig,
            routes: RouteIds::new(),
            minutes: Vec::new(),
            live: MIN_LIVE_MINUTES,
            last_finished: None,
            done: Vec::new(),
            done_bytes: 0,
            budget: DONE_BUDGET,
            pools: Pools::default(),
            spare: Vec::new(),
            ser: V2Serializer::new(),
            ids: Vec::new(),
        }
    }

    /// Index of the cells of `key`, created when new. [`Recorder::record`] asks once per run of
    /// rows of one minute.
    fn minute(&mut self, key: (u32, i64)) -> usize {
        match self.minutes.iter().rposition(|m| m.key == key) {
            Some(i) => i,
            None => {
                if self
                    .last_finished
                    .is_some_and(|(s, m)| s == key.0 && key.1 <= m)
                {
                    self.live = (self.live * 2).min(MAX_LIVE_MINUTES);
                }
                if self.minutes.len() >= self.live {
                    self.evict();
                }
                let mut m = self.spare.pop().unwrap_or_default();
                m.key = key;
                self.minutes.push(m);
                self.minutes.len() - 1
            }
        }
    }

    /// Folds the rows of an access-log batch (`ts`, `route`, `status`, `response_time_us`).
    pub fn record(&mut self, source: usize, batch: &RecordBatch) {
        let col = |name: &str| batch.column_by_name(name);
        let Some(ts) = col("ts").and_then(|c| {
            c.as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .cloned()
        }) else {
            return;
        };
        let route = col("route").and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
        let status = col("status").and_then(|c| c.as_any().downcast_ref::<Int16Array>().cloned());
        let rt =
            col("response_time_us").and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned());
        let source = source as u32;
        let n = batch.num_rows();
        // The route ids first, in a loop of their own: the lookup is most of a row's cost.
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        match &route {
            Some(r) => ids.extend((0..n).map(|i| {
                if r.is_valid(i) {
                    self.routes.get(r.value(i))
                } else {
                    OTHER_ID
                }
            })),
            None => ids.resize(n, OTHER_ID),
        }
        // Rows come in runs of one minute: each run divides once and finds its minute once.
        let ts = ts.values();
        let routes = self.routes.names.len();
        let mut i = 0;
        while i < n {
            let lo = ts[i].div_euclid(MINUTE_US) * MINUTE_US;
            let hi = lo.saturating_add(MINUTE_US);
            let end = ts[i..]
                .iter()
                .position(|&t| t < lo || t >= hi)
                .map_or(n, |k| i + k);
            let m = self.minute((source, lo));
            let Minute { cells, touched, .. } = &mut self.minutes[m];
            if cells.len() < routes {
                cells.resize_with(routes, Live::default);
            }
            for (j, &route_id) in ids.iter().enumerate().take(end).skip(i) {
                let st = status
                    .as_ref()
                    .and_then(|s| s.is_valid(j).then(|| s.value(j)))
                    .and_then(|v| u16::try_from(v).ok());
                let us = rt
                    .as_ref()
                    .and_then(|r| r.is_valid(j).then(|| r.value(j)))
                    .and_then(|v| u64::try_from(v).ok());
                for id in [route_id as usize, ALL_ID as usize] {
                    let cell = &mut cells[id];
                    if cell.counts.requests == 0 {
                        touched.push(id as u32);
                    }
                    cell.add(&mut self.pools, self.sigfig, st, us);
                }
            }
            i = end;
        }
        self.ids = ids;
    }

    /// Finishes the older half of the live minutes.
    fn evict(&mut self) {
        self.minutes.sort_unstable_by_key(|m| m.key.1);
        let old: Vec<Minute> = self.minutes.drain(..self.minutes.len() / 2).collect();
        self.last_finished = old.last().map(|m| m.key);
        for m in old {
            self.finish_minute(m);
        }
    }

    fn finish_minute(&mut self, mut m: Minute) {
        let (mut small, mut big) = (0, 0);
        for &route in &m.touched {
            match &m.cells[route as usize].values {
                Some(Values::Small(vals)) => small += vals.len(),
                Some(Values::Big(_)) => big += 1,
                None => {}
            }
        }
        let mut b = Block {
            source: m.key.0,
            minute: m.key.1,
            cells: Vec::with_capacity(m.touched.len()),
            values: Vec::with_capacity(small),
            // A busy cell's histogram encodes in a few hundred bytes.
            hists: Vec::with_capacity(big * 256),
            quantiles: Vec::with_capacity(big),
        };
        for route in m.touched.drain(..) {
            let cell = std::mem::take(&mut m.cells[route as usize]);
            match cell.values {
                None => b.push(route, cell.counts, Lat::Values(&[])),
                Some(Values::Small(mut vals)) => {
                    b.push(route, cell.counts, Lat::Values(&vals));
                    vals.clear();
                    self.pools.smalls.push(vals);
                }
                Some(Values::Big(mut h)) => {
                    b.push_histogram(route, cell.counts, &*h, &mut self.ser);
                    h.reset();
                    self.pools.hists.push(*h);
                }
            }
        }
        self.done_bytes += b.bytes();
        self.done.push(b);
        self.spare.push(m);
        if self.done_bytes > self.budget {
            self.merge_revisited();
        }
    }

    /// Merges the blocks of each (source, minute) finished more than once; doubles the bound
    /// when that did not free half of it.
    fn merge_revisited(&mut self) {
        let mut done = std::mem::take(&mut self.done);
        done.sort_by_key(|b| (b.source, b.minute));
        let mut h = histogram::<u64>(self.sigfig);
        let mut ser = V2Serializer::new();
        let mut merged = Vec::with_capacity(done.len());
        for same in done.chunk_by_mut(|a, b| (a.source, a.minute) == (b.source, b.minute)) {
            merged.push(match same {
                [one] => std::mem::take(one),
                many => Block::merge(many, &mut h, &mut ser),
            });
        }
        self.done_bytes = merged.iter().map(Block::bytes).sum();
        self.done = merged;
        if self.done_bytes > self.budget / 2 {
            self.budget = self.budget.saturating_mul(2);
        }
    }

    /// Everything recorded.
    pub fn finish(mut self) -> Recorded {
        for m in std::mem::take(&mut self.minutes) {
            self.finish_minute(m);
        }
        Recorded {
            names: self.routes.names,
            blocks: self.done,
        }
    }
}

/// Chooses the dataset's route groups: the `existing` ones stay; free places go to the routes
/// with the most requests in `volumes`.
pub fn choose_groups(
    existing: &[String],
    volumes: &HashMap<Arc<str>, u64>,
    max: usize,
) -> Vec<String> {
    let mut groups: Vec<String> = existing.to_vec();
    let have: HashSet<&str> = existing.iter().map(String::as_str).collect();
    let mut candidates: Vec<(&Arc<str>, u64)> = volumes
        .iter()
        .filter(|(r, _)| {
            let r: &str = r;
            r != ALL_ROUTES && r != OTHER_ROUTE && !have.contains(r)
        })
        .map(|(r, n)| (r, *n))
        .collect();
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    for (r, _) in candidates {
        if groups.len() >= max {
            break;
        }
        groups.push(r.to_string());
    }
    groups
}

/// Request volume per route in what the workers recorded (the `*` rows excluded).
pub fn route_volumes(recorded: &[Recorded]) -> HashMap<Arc<str>, u64> {
    let mut v: HashMap<Arc<str>, u64> = HashMap::new();
    for r in recorded {
        let mut by_id = vec![0u64; r.names.len()];
        for b in &r.blocks {
            for c in &b.cells {
                by_id[c.route as usize] += c.counts.requests;
            }
        }
        for (name, n) in r.names.iter().zip(by_id) {
            if n > 0 && &**name != ALL_ROUTES {
                *v.entry(Arc::clone(name)).or_default() += n;
            }
        }
    }
    v
}

/// Folds what the workers recorded into one part per (source, minute, group): routes outside
/// `groups` become `other`, and cells of the same key (the routes of `other`, and the halves of
/// a minute that a chunk boundary split between workers) are merged. The result is one list
/// per (source, minute), sorted by source, minute and route (not joined into one list: that
/// would copy every part once more).
///
/// It runs after the workers, with every core free: each worker's route ids are mapped to their
/// group once, the (source, minute) blocks are sorted, and each minute's cells are grouped,
/// merged, and a small cell's quantiles computed, in parallel.
pub fn fold(recorded: &[Recorded], groups: &HashSet<&str>, sigfig: u8) -> Result<Vec<Vec<Part>>> {
    use rayon::prelude::*;
    let mut names: Vec<&str> = groups
        .iter()
        .copied()
        .chain([ALL_ROUTES, OTHER_ROUTE])
        .collect();
    names.sort_unstable();
    names.dedup();
    let rank = |name: &str| {
        let group = if name == ALL_ROUTES || groups.contains(name) {
            name
        } else {
            OTHER_ROUTE
        };
        names.binary_search(&group).expect("every group is named") as u32
    };
    // The rank of each worker's route ids, so that the parts sort as the files store them.
    let ranks: Vec<Vec<u32>> = recorded
        .iter()
        .map(|r| r.names.iter().map(|n| rank(n)).collect())
        .collect();
    let routes: Vec<Arc<str>> = names.iter().map(|n| Arc::from(*n)).collect();
    let mut keyed: Vec<(u32, i64, u32, u32)> = recorded
        .iter()
        .enumerate()
        .flat_map(|(w, r)| {
            r.blocks
                .iter()
                .enumerate()
                .map(move |(i, b)| (b.source, b.minute, w as u32, i as u32))
        })
        .collect();
    keyed.sort_unstable();
    let runs: Vec<&[(u32, i64, u32, u32)]> =
        keyed.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)).collect();
    runs.par_iter()
        .with_min_len(16)
        .map_init(
            || MergeScratch {
                h: histogram::<u64>(sigfig),
                ser: V2Serializer::new(),
                values: Vec::with_capacity(SMALL_CELL),
                routes: routes.iter().map(|r| Arc::from(&**r)).collect(),
                cells: Vec::new(),
            },
            |scratch, run| {
                let (source, minute) = (run[0].0, run[0].1);
                scratch.cells.clear();
                for &(_, _, w, i) in run.iter() {
                    let ranks = &ranks[w as usize];
                    let b = &recorded[w as usize].blocks[i as usize];
                    scratch
                        .cells
                        .extend(b.cells.iter().map(|c| (ranks[c.route as usize], b, c)));
                }
                scratch.cells.sort_unstable_by_key(|(rank, _, _)| *rank);
                let cells = std::mem::take(&mut scratch.cells);
                let mut parts = Vec::new();
                fn view<'b>(&(_, b, c): &(u32, &'b Block, &'b Cell)) -> (Counts, Lat<'b>) {
                    (c.counts, b.latencies(c))
                }
                for same in cells.chunk_by(|a, b| a.0 == b.0) {
                    let (counts, quantiles, hist) = match same {
                        [one] => scratch.finish(view(one)),
                        many => scratch.merge(many.iter().map(view))?,
                    };
                    parts.push(Part {
                        source: source as usize,
                        minute,
                        route: Arc::clone(&scratch.routes[same[0].0 as usize]),
                        counts,
                        quantiles,
                        hist,
                    });
                }
                scratch.cells = cells;
                Ok(parts)
            },
        )
        .collect()
}

/// What one thread of [`fold`] reuses from minute to minute. The route names are the thread's
/// own copies: parts of every thread taking references to one `Arc` would contend for its
/// counter.
struct MergeScratch<'a> {
    h: Histogram<u64>,
    ser: V2Serializer,
    values: Vec<u32>,
    routes: Vec<Arc<str>>,
    /// The cells of a minute: group rank, block, cell.
    cells: Vec<(u32, &'a Block, &'a Cell)>,
}

impl MergeScratch<'_> {
    /// The counters, quantiles and stored latencies of a key with one cell.
    fn finish(&mut self, (counts, lat): (Counts, Lat<'_>)) -> (Counts, Option<[u64; 5]>, Vec<u8>) {
        match lat {
            Lat::Hist(bytes, quantiles) => (counts, Some(*quantiles), bytes.to_vec()),
            Lat::Values(v) => {
                self.values.clear();
                self.values.extend_from_slice(v);
                let (quantiles, hist) = small_cell(&mut self.values);
                (counts, quantiles, hist)
            }
        }
    }

    /// The counters, quantiles and stored latencies of the cells of one key ([`merge_cells`]).
    fn merge<'c>(
        &mut self,
        cells: impl Iterator<Item = (Counts, Lat<'c>)>,
    ) -> Result<(Counts, Option<[u64; 5]>, Vec<u8>)> {
        let MergeScratch { h, ser, values, .. } = self;
        let (total, small) = merge_cells(cells, h, values)?;
        let (quantiles, hist) = if small {
            small_cell(values)
        } else {
            (summarise(h), encode_with(ser, h))
        };
        Ok((total, quantiles, hist))
    }
}

/// The counters of `cells` added up, and their latencies joined: into `values` while they stay a
/// small cell (then `true`), else recorded into `h` with the histograms. `h` is only cleared when
/// it is used, as clearing touches every bucket and most keys need no histogram.
fn merge_cells<'c>(
    cells: impl Iterator<Item = (Counts, Lat<'c>)>,
    h: &mut Histogram<u64>,
    values: &mut Vec<u32>,
) -> Result<(Counts, bool)> {
    values.clear();
    let mut total = Counts::default();
    let mut small = true;
    for (counts, lat) in cells {
        total.add(&counts);
        if let Lat::Values(v) = lat
            && small
            && values.len() + v.len() <= SMALL_CELL
        {
            values.extend_from_slice(v);
            continue;
        }
        if small {
            small = false;
            h.reset();
            for x in values.iter() {
                h.saturating_record(*x as u64);
            }
        }
        match lat {
            Lat::Values(v) => {
                for x in v {
                    h.saturating_record(*x as u64);
                }
            }
            Lat::Hist(bytes, _) => merge_into(h, bytes)?,
        }
    }
    Ok((total, small))
}

/// A counter or quantile as stored (the columns are signed, as open table formats require).
fn stored(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored counter or quantile read back (never negative, since [`stored`] wrote it).
fn loaded(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// One batch of [`stats_schema`] from parts.
pub fn to_batch(parts: &[&Part]) -> Result<RecordBatch> {
    let n = parts.len();
    let mut minute = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut route = StringBuilder::with_capacity(n, n * 16);
    let mut counters: Vec<Int64Builder> = (0..7).map(|_| Int64Builder::with_capacity(n)).collect();
    let mut quantiles: Vec<Int64Builder> = (0..5).map(|_| Int64Builder::with_capacity(n)).collect();
    let mut hist = BinaryBuilder::with_capacity(n, n * 64);
    for p in parts {
        minute.append_value(p.minute);
        route.append_value(&p.route);
        let c = &p.counts;
        for (b, v) in counters.iter_mut().zip([
            c.requests, c.c2xx, c.c3xx, c.c4xx, c.c5xx, c.timed, c.sum_us,
        ]) {
            b.append_value(stored(v));
        }
        for (i, b) in quantiles.iter_mut().enumerate() {
            b.append_option(p.quantiles.map(|q| stored(q[i])));
        }
        hist.append_value(&p.hist);
    }
    let mut cols: Vec<ArrayRef> = vec![Arc::new(minute.finish()), Arc::new(route.finish())];
    cols.extend(
        counters
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef),
    );
    cols.extend(
        quantiles
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef),
    );
    cols.push(Arc::new(hist.finish()));
    RecordBatch::try_new(stats_schema(), cols).map_err(|source| Error::Arrow {
        format: STATS_TABLE.into(),
        source,
    })
}

/// The Parquet settings of stats files, from the dataset's.
pub fn file_properties(props: &WriterProperties) -> WriterProperties {
    // Counters and quantiles repeat (a route's traffic and latency vary within a narrow band), so
    // a dictionary makes them smaller and leaves zstd less to compress. Every histogram and sum
    // is different and minutes only grow: a dictionary for them would fill up and be dropped.
    props
        .clone()
        .into_builder()
        .set_dictionary_enabled(true)
        .set_column_dictionary_enabled(ColumnPath::from("hist"), false)
        .set_column_dictionary_enabled(ColumnPath::from("minute"), false)
        .set_column_dictionary_enabled(ColumnPath::from("sum_us"), false)
        .set_column_statistics_enabled(ColumnPath::from("hist"), EnabledStatistics::None)
        .set_column_encoding(ColumnPath::from("minute"), Encoding::DELTA_BINARY_PACKED)
        .build()
}

/// Rows of a stats row group: a file's row groups are encoded in parallel, and the stats of one
/// (source, day) are often a single file that would otherwise be encoded by one thread.
const STATS_GROUP_ROWS: usize = 16_384;

/// Writes the folded parts as one unpublished file per (source, day), sorted by minute and route.
///
/// The stats are written while the rest of the commit waits, so every row group of every file is
/// built and encoded in one parallel pass; the files are then assembled and synced in parallel.
pub fn write(
    dataset: &Path,
    run_id: &str,
    parts: &[Vec<Part>],
    props: &WriterProperties,
) -> Result<Vec<WrittenFile>> {
    use rayon::prelude::*;
    let mut by_file: BTreeMap<(usize, i32), Vec<&Part>> = BTreeMap::new();
    for p in parts.iter().flatten() {
        let day = p.minute.div_euclid(86_400 * 1_000_000) as i32;
        by_file.entry((p.source, day)).or_default().push(p);
    }
    let tmp_dir = dataset.join("logs");
    std::fs::create_dir_all(&tmp_dir).map_err(|e| Error::io("cannot create", &tmp_dir, e))?;
    let props = file_properties(props);
    let step = props
        .max_row_group_row_count()
        .unwrap_or(STATS_GROUP_ROWS)
        .clamp(1, STATS_GROUP_ROWS);

    struct Out<'a> {
        source: usize,
        day: i32,
        parts: Vec<&'a Part>,
        tmp: std::path::PathBuf,
        rel_path: String,
        writer: ParallelWriter,
        sync: File,
    }
    let perr = |tmp: &Path| {
        let tmp = tmp.to_path_buf();
        move |source| Error::Parquet { path: tmp, source }
    };
    let mut outs = Vec::with_capacity(by_file.len());
    for ((source, day), mut ps) in by_file {
        let order =
            |a: &&Part, b: &&Part| a.minute.cmp(&b.minute).then_with(|| a.route.cmp(&b.route));
        if !ps.is_sorted_by(|a, b| order(a, b).is_le()) {
            ps.sort_by(order);
        }
        let name = format!("part-{run_id}-s{source}.parquet");
        let tmp = tmp_dir.join(format!(".tmp-{STATS_TABLE}-{}-{name}", partition_name(day)));
        let file = File::create(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
        let sync = file
            .try_clone()
            .map_err(|e| Error::io("cannot open", &tmp, e))?;
        let writer = ParallelWriter::try_new(file, stats_schema(), &props).map_err(perr(&tmp))?;
        outs.push(Out {
            source,
            day,
            parts: ps,
            rel_path: format!("{STATS_TABLE}/{}/{name}", partition_name(day)),
            tmp,
            writer,
            sync,
        });
    }
    let groups: Vec<(usize, usize)> = outs
        .iter()
        .enumerate()
        .flat_map(|(f, o)| (0..o.parts.len().div_ceil(step)).map(move |g| (f, g)))
        .collect();
    let mut encoded = groups
        .par_iter()
        .map(|&(f, g)| {
            let o = &outs[f];
            let rows = &o.parts[g * step..((g + 1) * step).min(o.parts.len())];
            o.writer.encode(g, &to_batch(rows)?).map_err(perr(&o.tmp))
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter();
    let mut files = Vec::with_capacity(outs.len());
    for o in outs {
        let n = o.parts.len().div_ceil(step);
        files.push((o, encoded.by_ref().take(n).collect::<Vec<_>>()));
    }
    files
        .into_par_iter()
        .map(|(mut o, chunks)| {
            for c in chunks {
                o.writer.append(c).map_err(perr(&o.tmp))?;
            }
            o.writer.close().map_err(perr(&o.tmp))?;
            o.sync
                .sync_all()
                .map_err(|e| Error::io("cannot sync", &o.tmp, e))?;
            let bytes = o
                .sync
                .metadata()
                .map_err(|e| Error::io("cannot read", &o.tmp, e))?
                .len();
            Ok(WrittenFile {
                source: o.source,
                day: o.day,
                table: STATS_TABLE,
                rows: o.parts.len() as u64,
                tmp: o.tmp,
                rel_path: o.rel_path,
                bytes,
            })
        })
        .collect()
}

/// A stored row read back (one per file and key; [`StatsReader`] merges equal keys).
#[derive(Debug, Clone)]
pub struct Row {
    /// Bucket start, µs since the epoch.
    pub minute: i64,
    /// Route group.
    pub route: String,
    /// Counters.
    pub counts: Counts,
    /// Stored quantiles (p50, p90, p95, p99, max).
    pub quantiles: Option<[u64; 5]>,
    /// Serialised histogram, when asked for.
    pub hist: Option<Vec<u8>>,
}

/// A stored row as [`StatsReader::for_each_row`] lends it.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    /// Bucket start, µs since the epoch.
    pub minute: i64,
    /// Route group.
    pub route: &'a str,
    /// Counters.
    pub counts: Counts,
    /// Stored quantiles (p50, p90, p95, p99, max).
    pub quantiles: Option<[u64; 5]>,
    /// Serialised histogram, when asked for.
    pub hist: Option<&'a [u8]>,
}

/// What [`StatsReader::for_each_row`] reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Read {
    /// The histograms too.
    pub hist: bool,
    /// In route and minute order.
    pub ordered: bool,
    /// Only requests, timed, 4xx, 5xx and p50/p95/p99 (the other counters are 0).
    pub lean: bool,
}

#[cfg(feature = "duckdb")]
/// Reads stored statistics through the catalog's `stats` view.
pub struct StatsReader<'a> {
    catalog: &'a crate::catalog::Catalog,
}

/// Which stored rows to read.
#[derive(Debug, Clone, Default)]
pub struct Range {
    /// From (inclusive), µs since the epoch.
    pub since: Option<i64>,
    /// Until (exclusive), µs since the epoch.
    pub until: Option<i64>,
    /// Only these routes (`*` for all routes together); empty: every route.
    pub routes: Vec<String>,
}

impl Range {
    /// The SQL condition on `minute` and `route`.
    pub fn where_sql(&self) -> String {
        let mut conds = vec!["true".to_string()];
        if let Some(s) = self.since {
            conds.push(format!("minute >= make_timestamp({s})"));
        }
        if let Some(u) = self.until {
            conds.push(format!("minute < make_timestamp({u})"));
        }
        if !self.routes.is_empty() {
            let list: Vec<String> = self
                .routes
                .iter()
                .map(|r| crate::catalog::sql_string(r))
                .collect();
            conds.push(format!("route IN ({})", list.join(", ")));
        }
        conds.join(" AND ")
    }
}

/// Latency and traffic of one route over a range, from merged histograms.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Route group (`*`: every route).
    pub route: String,
    /// Counters.
    pub counts: Counts,
    /// The merged histogram.
    pub hist: Histogram<u64>,
    /// First and last minute seen, µs.
    pub first: i64,
    /// See `first`.
    pub last: i64,
}

impl Summary {
    /// The latency at quantile `q`, µs (`None` without timed requests).
    pub fn quantile(&self, q: f64) -> Option<u64> {
        (!self.hist.is_empty()).then(|| self.hist.value_at_quantile(q))
    }

    /// Share of responses with a 5xx status.
    pub fn error_rate(&self) -> f64 {
        ratio(self.counts.c5xx, self.counts.requests)
    }

    /// Share of responses with a 4xx status.
    pub fn client_error_rate(&self) -> f64 {
        ratio(self.counts.c4xx, self.counts.requests)
    }
}

/// `num / den`, 0 for an empty denominator.
pub fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

#[cfg(feature = "duckdb")]
impl<'a> StatsReader<'a> {
    /// A reader over `catalog`.
    pub fn new(catalog: &'a crate::catalog::Catalog) -> StatsReader<'a> {
        StatsReader { catalog }
    }

    /// Stored rows of `range`, ordered by route and minute; `hist` also returns the histograms.
    pub fn rows(&self, range: &Range, hist: bool) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        let read = Read {
            hist,
            ordered: true,
            lean: false,
        };
        self.for_each_row(&range.where_sql(), read, |r| {
            rows.push(Row {
                minute: r.minute,
                route: r.route.to_string(),
                counts: r.counts,
                quantiles: r.quantiles,
                hist: r.hist.map(<[u8]>::to_vec),
            });
            Ok(())
        })?;
        Ok(rows)
    }

    /// Calls `f` with each stored row that satisfies the SQL condition `cond`, without keeping
    /// them; see [`Read`] for what is read.
    pub fn for_each_row(
        &self,
        cond: &str,
        read: Read,
        mut f: impl FnMut(RowRef<'_>) -> Result<()>,
    ) -> Result<()> {
        // Lean reads leave out what series do not use (zero in the rows), which the scan then
        // does not decompress.
        let cols = if read.lean {
            "requests, 0::BIGINT, 0::BIGINT, c4xx, c5xx, timed, 0::BIGINT, p50_us, \
             0::BIGINT, p95_us, p99_us, 0::BIGINT"
        } else {
            "requests, c2xx, c3xx, c4xx, c5xx, timed, sum_us, p50_us, p90_us, p95_us, p99_us, max_us"
        };
        let hist = read.hist;
        let sql = format!(
            "SELECT epoch_us(minute) AS minute, route, {cols}{} FROM stats WHERE {cond}{}",
            if hist { ", hist" } else { "" },
            if read.ordered {
                " ORDER BY route, minute"
            } else {
                ""
            },
        );
        self.catalog.for_each_batch(&sql, |b| {
            let u = |i: usize| {
                b.column(i)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("BIGINT column")
                    .clone()
            };
            let minute = b
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .expect("epoch_us is BIGINT")
                .clone();
            let route = arrow::compute::cast(b.column(1), &DataType::Utf8).expect("route is text");
            let route = route.as_any().downcast_ref::<StringArray>().expect("Utf8");
            let cs: Vec<Int64Array> = (2..9).map(u).collect();
            let qs: Vec<Int64Array> = (9..14).map(u).collect();
            let hs = hist.then(|| {
                b.column(14)
                    .as_any()
                    .downcast_ref::<BinaryArray>()
                    .expect("BLOB column")
                    .clone()
            });
            for i in 0..b.num_rows() {
                f(RowRef {
                    minute: minute.value(i),
                    route: route.value(i),
                    counts: Counts {
                        requests: loaded(cs[0].value(i)),
                        c2xx: loaded(cs[1].value(i)),
                        c3xx: loaded(cs[2].value(i)),
                        c4xx: loaded(cs[3].value(i)),
                        c5xx: loaded(cs[4].value(i)),
                        timed: loaded(cs[5].value(i)),
                        sum_us: loaded(cs[6].value(i)),
                    },
                    quantiles: qs[0]
                        .is_valid(i)
                        .then(|| std::array::from_fn(|k| loaded(qs[k].value(i)))),
                    hist: hs.as_ref().map(|h| h.value(i)),
                })?;
            }
            Ok(())
        })
    }

    /// Per route (and `*`), the merged histogram and counters over `range`, busiest first.
    pub fn summaries(&self, range: &Range, sigfig: u8) -> Result<Vec<Summary>> {
        let mut out: BTreeMap<String, Summary> = BTreeMap::new();
        let read = Read {
            hist: true,
            ordered: false,
            lean: false,
        };
        self.for_each_row(&range.where_sql(), read, |r| {
            let s = match out.get_mut(r.route) {
                Some(s) => s,
                None => out.entry(r.route.to_string()).or_insert_with(|| Summary {
                    route: r.route.to_string(),
                    counts: Counts::default(),
                    hist: histogram(sigfig),
                    first: r.minute,
                    last: r.minute,
                }),
            };
            s.counts.add(&r.counts);
            s.first = s.first.min(r.minute);
            s.last = s.last.max(r.minute);
            if let Some(h) = r.hist {
                merge_into(&mut s.hist, h)?;
            }
            Ok(())
        })?;
        let mut v: Vec<Summary> = out.into_values().collect();
        v.sort_by(|a, b| {
            (b.route == ALL_ROUTES)
                .cmp(&(a.route == ALL_ROUTES))
                .then(b.counts.requests.cmp(&a.counts.requests))
                .then_with(|| a.route.cmp(&b.route))
        });
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::arrow_schema;
    use arrow::array::{
        Int16Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };

    fn batch(rows: &[(i64, &str, u16, u64)]) -> RecordBatch {
        let schema = arrow_schema(&[]);
        let cols: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                let n = rows.len();
                match f.name().as_str() {
                    "ts" => Arc::new(
                        TimestampMicrosecondArray::from(
                            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                        )
                        .with_timezone("UTC"),
                    ),
                    "route" => Arc::new(StringArray::from(
                        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                    )),
                    "status" => Arc::new(Int16Array::from(
                        rows.iter().map(|r| r.2 as i16).collect::<Vec<_>>(),
                    )),
                    "response_time_us" => Arc::new(Int64Array::from(
                        rows.iter().map(|r| r.3 as i64).collect::<Vec<_>>(),
                    )),
                    "bytes" | "upstream_response_time_us" | "offset" => {
                        Arc::new(Int64Array::from(vec![0i64; n]))
                    }
                    "threats" => Arc::new(Int32Array::from(vec![0i32; n])),
                    "source" => Arc::new(arrow::array::DictionaryArray::<
                        arrow::datatypes::Int32Type,
                    >::from_iter(std::iter::repeat_n(
                        "s", n,
                    ))),
                    _ => Arc::new(StringArray::from(vec![None::<&str>; n])),
                }
            })
            .collect();
        RecordBatch::try_new(schema, cols).unwrap()
    }

    #[test]
    fn records_per_minute_and_route_and_all() {
        let mut r = Recorder::new(2);
        r.record(
            0,
            &batch(&[
                (0, "/a", 200, 1000),
                (1, "/a", 500, 3000),
                (2, "/b", 404, 2000),
                (MINUTE_US + 5, "/a", 200, 1000),
            ]),
        );
        let rec = r.finish();
        assert_eq!(rec.cells(), 5);
        let b0 = rec.blocks.iter().find(|b| b.minute == 0).unwrap();
        let a0 = b0
            .cells
            .iter()
            .find(|c| &*rec.names[c.route as usize] == "/a")
            .unwrap();
        assert!(matches!(b0.latencies(a0), Lat::Values(v) if v.len() == 2));
        let parts = fold(&[rec], &HashSet::from(["/a", "/b"]), 2)
            .unwrap()
            .concat();
        let find = |m: i64, route: &str| {
            parts
                .iter()
                .find(|p| p.minute == m && &*p.route == route)
                .unwrap()
                .clone()
        };
        let all = find(0, ALL_ROUTES);
        assert_eq!(all.counts.requests, 3);
        assert_eq!(
            (all.counts.c2xx, all.counts.c4xx, all.counts.c5xx),
            (1, 1, 1)
        );
        assert_eq!(all.counts.sum_us, 6000);
        let a = find(0, "/a");
        assert_eq!(a.counts.requests, 2);
        assert_eq!(a.quantiles.unwrap(), [1000, 3000, 3000, 3000, 3000]);
        let mut h = histogram::<u64>(2);
        merge_into(&mut h, &a.hist).unwrap();
        assert_eq!((h.len(), h.max()), (2, h.highest_equivalent(3000)));
        assert_eq!(find(MINUTE_US, "/a").counts.requests, 1);
        assert_eq!(parts.len(), 5);
    }

    #[test]
    fn eviction_and_fold_keep_every_count() {
        let mut r = Recorder::new(2);
        let mut expect = 0;
        for m in 0..1500i64 {
            let rows: Vec<(i64, &str, u16, u64)> = (0..3)
                .map(|k| (m * MINUTE_US + k, "/x", 200, 100 + k as u64))
                .collect();
            expect += rows.len() as u64;
            r.record(0, &batch(&rows));
        }
        assert_eq!(
            r.live, MIN_LIVE_MINUTES,
            "rows in order keep the window narrow"
        );
        assert!(r.minutes.len() <= MIN_LIVE_MINUTES);
        let parts = r.finish();
        // A second worker saw the same minute.
        let mut r2 = Recorder::new(2);
        r2.record(0, &batch(&[(5, "/y", 200, 100_000)]));
        let parts = vec![parts, r2.finish()];
        let vols = route_volumes(&parts);
        let groups = choose_groups(&[], &vols, 1);
        assert_eq!(groups, vec!["/x".to_string()]);
        let set: HashSet<&str> = groups.iter().map(String::as_str).collect();
        let folded: Vec<Part> = fold(&parts, &set, 2).unwrap().concat();
        let all: u64 = folded
            .iter()
            .filter(|p| &*p.route == ALL_ROUTES)
            .map(|p| p.counts.requests)
            .sum();
        assert_eq!(all, expect + 1);
        let first = folded
            .iter()
            .find(|p| p.minute == 0 && &*p.route == ALL_ROUTES)
            .unwrap();
        assert_eq!(first.counts.requests, 4);
        let mut h = histogram::<u64>(2);
        merge_into(&mut h, &first.hist).unwrap();
        assert_eq!(h.max(), h.highest_equivalent(100_000));
        assert_eq!(h.len(), 4);
        assert!(folded.iter().any(|p| &*p.route == OTHER_ROUTE));
    }

    #[test]
    fn route_ids_tell_every_route_apart() {
        // Short routes, routes of 8 to 16 bytes, and long ones that share their first and last
        // eight bytes and differ only in the middle.
        let routes: Vec<String> = (0..MAX_ROUTES_PER_WORKER + 10)
            .map(|i| match i % 3 {
                0 => format!("/{i}"),
                1 => format!("/items/{i:08}"),
                _ => format!("/static/{i}/site.css"),
            })
            .collect();
        let mut ids = RouteIds::new();
        let first: Vec<u32> = routes.iter().map(|r| ids.get(r)).collect();
        let again: Vec<u32> = routes.iter().map(|r| ids.get(r)).collect();
        assert_eq!(first, again);
        let mut seen = HashMap::new();
        for (route, id) in routes.iter().zip(&first) {
            if *id != OTHER_ID {
                assert_eq!(&*ids.names[*id as usize], route);
                assert_eq!(*seen.entry(route).or_insert(*id), *id);
            }
        }
        // Ids 0 and 1 are `*` and `other`; the routes after the last free id go to `other`.
        assert_eq!(ids.names.len(), MAX_ROUTES_PER_WORKER);
        assert_eq!(seen.len(), MAX_ROUTES_PER_WORKER - 2);
        assert!(first[seen.len()..].iter().all(|id| *id == OTHER_ID));
    }

    #[test]
    fn window_widens_when_rows_come_back() {
        let mut r = Recorder::new(2);
        for m in [0, 1, 2, 0, 3, 4, 1] {
            r.record(0, &batch(&[(m * MINUTE_US, "/x", 200, 100)]));
        }
        assert_eq!(r.live, 2 * 2 * MIN_LIVE_MINUTES);
        let rec = r.finish();
        let minute_0 = rec.blocks.iter().filter(|b| b.minute == 0).count();
        assert_eq!(minute_0, 2, "minute 0 was finished and came back");
        assert_eq!(rec.cells(), 2 * 7);
    }

    #[test]
    fn revisited_minutes_merge_under_the_memory_bound() {
        // Forty days (more than the live window of minutes) come back twelve times, in chunks, as
        // an archive with cycling dates does.
        let rows = |round: i64| -> Vec<(i64, &str, u16, u64)> {
            (0..40)
                .flat_map(|day| {
                    (0..30).map(move |i| {
                        let route = ["/a", "/b", "/c"][(i % 3) as usize];
                        (
                            day * 1440 * MINUTE_US + round * 1000 + i,
                            route,
                            200 + (i % 4) as u16 * 100,
                            100 + (round * 31 + i) as u64 % 5000,
                        )
                    })
                })
                .collect()
        };
        let record = |budget: usize| {
            let mut r = Recorder::new(2);
            r.budget = budget;
            for round in 0..12 {
                r.record(0, &batch(&rows(round)));
            }
            r.finish()
        };
        let (bounded, unbounded) = (record(1), record(usize::MAX));
        assert!(
            unbounded.blocks.len() >= 40 * 6,
            "{} blocks: the rounds finish their days again",
            unbounded.blocks.len()
        );
        assert!(
            bounded.blocks.len() <= 40 * 3,
            "{} blocks for 40 minutes",
            bounded.blocks.len()
        );
        // The cells of /a hold more than a small cell's values: merged as histograms.
        let big = bounded
            .blocks
            .iter()
            .flat_map(|b| b.cells.iter().map(move |c| b.latencies(c)))
            .filter(|l| matches!(l, Lat::Hist(..)))
            .count();
        assert!(big > 0);
        let fold_of = |rec: Recorded| -> Vec<Decoded> {
            fold(&[rec], &HashSet::from(["/a", "/b"]), 2)
                .unwrap()
                .iter()
                .flatten()
                .map(decoded)
                .collect()
        };
        assert_eq!(fold_of(bounded), fold_of(unbounded));
    }

    /// A part's key, counters and quantiles, and every (value, count) of its stored latencies.
    type Decoded = (i64, String, Counts, Option<[u64; 5]>, Vec<(u64, u64)>);

    fn decoded(p: &Part) -> Decoded {
        let mut h = histogram::<u64>(2);
        merge_into(&mut h, &p.hist).unwrap();
        let values = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        (p.minute, p.route.to_string(), p.counts, p.quantiles, values)
    }

    /// Rows from (minute, route index, response time) triples: the i-th row a µs into its minute
    /// after the (i-1)-th, statuses of every class.
    fn spread(rows: &[(i64, usize, u64)]) -> Vec<(i64, &'static str, u16, u64)> {
        const ROUTES: [&str; 3] = ["/a", "/b", "/c"];
        rows.iter()
            .enumerate()
            .map(|(i, (m, r, us))| {
                let status = 200 + (*us % 4) as u16 * 100;
                (m * MINUTE_US + i as i64, ROUTES[*r], status, *us)
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// However the rows are split between two workers (a chunk boundary anywhere, cells small
        /// or big on either side), the folded parts are those of one worker seeing every row.
        #[test]
        fn fold_of_any_split_equals_one_worker(
            rows in proptest::collection::vec((0i64..3, 0usize..5, 1u64..50_000), 1..400),
            cut in 0usize..400,
        ) {
            const ROUTES: [&str; 5] = ["/a", "/b", "/c", "/d", "/e"];
            let mut rows: Vec<(i64, &str, u16, u64)> = rows
                .iter()
                .enumerate()
                .map(|(i, (m, r, us))| (m * MINUTE_US + i as i64, ROUTES[*r], 200 + (*us % 4) as u16 * 100, *us))
                .collect();
            rows.sort_by_key(|r| r.0);
            let cut = cut.min(rows.len());
            let groups = HashSet::from(["/a", "/c"]);
            let mut one = Recorder::new(2);
            one.record(0, &batch(&rows));
            let whole: Vec<_> = fold(&[one.finish()], &groups, 2).unwrap().iter().flatten().map(decoded).collect();
            let (mut w1, mut w2) = (Recorder::new(2), Recorder::new(2));
            w1.record(0, &batch(&rows[..cut]));
            w2.record(0, &batch(&rows[cut..]));
            let recorded = [w2.finish(), w1.finish()];
            let split: Vec<_> = fold(&recorded, &groups, 2).unwrap().iter().flatten().map(decoded).collect();
            proptest::prop_assert_eq!(split, whole);
        }

        /// Rows out of time order (minutes left and come back to, more of them than the widest
        /// window) fold to the parts of the same rows in order.
        #[test]
        fn fold_of_rows_in_any_order_equals_in_order(
            rows in proptest::collection::vec((0i64..40, 0usize..3, 1u64..50_000), 1..600),
        ) {
            let rows = spread(&rows);
            let mut in_order = rows.clone();
            in_order.sort_by_key(|r| r.0);
            let groups = HashSet::from(["/a"]);
            let fold_of = |rows: &[(i64, &str, u16, u64)]| {
                let mut r = Recorder::new(2);
                r.record(0, &batch(rows));
                fold(&[r.finish()], &groups, 2).unwrap().iter().flatten().map(decoded).collect::<Vec<_>>()
            };
            proptest::prop_assert_eq!(fold_of(&rows), fold_of(&in_order));
        }

        /// Merging the blocks of revisited minutes (under any memory bound) folds to the same parts.
        #[test]
        fn merging_revisited_minutes_changes_no_part(
            rows in proptest::collection::vec((0i64..80, 0usize..3, 1u64..50_000), 1..900),
            chunk in 1usize..200,
            budget in 1usize..4096,
        ) {
            let rows = spread(&rows);
            let groups = HashSet::from(["/a"]);
            let fold_of = |budget: usize| {
                let mut r = Recorder::new(2);
                r.budget = budget;
                for part in rows.chunks(chunk) {
                    r.record(0, &batch(part));
                }
                fold(&[r.finish()], &groups, 2).unwrap().iter().flatten().map(decoded).collect::<Vec<_>>()
            };
            proptest::prop_assert_eq!(fold_of(budget), fold_of(usize::MAX));
        }
    }

    #[test]
    fn groups_stay_and_fill_by_volume() {
        let mut v = HashMap::new();
        v.insert(Arc::from("/big"), 100);
        v.insert(Arc::from("/mid"), 50);
        v.insert(Arc::from("/small"), 1);
        let g = choose_groups(&["/old".to_string()], &v, 3);
        assert_eq!(g, vec!["/old", "/big", "/mid"]);
    }
}
