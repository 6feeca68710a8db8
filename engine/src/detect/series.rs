//! Where series come from: a dataset's `stats` table (per bucket and route group), or a
//! `timestamp,value` file; and where events go: the catalog's `anomalies` table.

use std::collections::HashMap;
use std::path::Path;

use arrow::array::Array;
use rayon::prelude::*;

use super::{Detector, Event, Method, Metric, Series};
#[cfg(feature = "duckdb")]
use crate::catalog::{Catalog, sql_string};
use crate::error::{Error, Result};
use crate::parse::value::parse_iso8601;
#[cfg(feature = "duckdb")]
use crate::stats::StatsReader;
use crate::stats::{
    ALL_ROUTES, Counts, FastMap, MINUTE_US, Range, Read, RowRef, histogram, merge_into, summarise,
};

/// One bucket of one route, aggregated from stored rows. Kept small: a month of minutes for 50
/// route groups is millions of buckets.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    requests: u64,
    timed: u64,
    c4xx: u64,
    c5xx: u64,
    rows: u32,
    /// p50, p95 and p99, µs (at most an hour, so they fit).
    quantiles: Option<[u32; 3]>,
}

impl Bucket {
    fn set_quantiles(&mut self, q: Option<[u64; 5]>) {
        let narrow = |v: u64| v.min(u32::MAX as u64) as u32;
        self.quantiles = q.map(|q| [narrow(q[0]), narrow(q[2]), narrow(q[3])]);
    }
}

/// The buckets of one route, and the histograms of those that several rows share.
struct RouteBuckets {
    buckets: Vec<Bucket>,
    hists: HashMap<u32, Vec<Vec<u8>>>,
}

#[cfg(feature = "duckdb")]
/// The first and last stored minute that satisfy `cond`.
fn catalog_bounds(catalog: &Catalog, cond: &str) -> Result<(Option<i64>, Option<i64>)> {
    let mut bounds = (None, None);
    catalog.for_each_batch(
        &format!("SELECT epoch_us(min(minute)), epoch_us(max(minute)) FROM stats WHERE {cond}"),
        |b| {
            let col = |i: usize| {
                b.column(i)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .filter(|c| c.is_valid(0))
                    .map(|c| c.value(0))
            };
            if b.num_rows() > 0 {
                bounds = (col(0), col(1));
            }
            Ok(())
        },
    )?;
    Ok(bounds)
}

/// A stored row with what series use, its route as an index into its file's route names.
struct LeanRow {
    minute: i64,
    route: u32,
    requests: u64,
    timed: u64,
    c4xx: u64,
    c5xx: u64,
    /// p50, p95 and p99, µs (at most an hour, so they fit).
    quantiles: Option<[u32; 3]>,
}

/// The rows of the stats file `path` inside `range` (the columns series use), with the route
/// names they refer to.
fn read_lean(path: &std::path::PathBuf, range: &Range) -> Result<(Vec<String>, Vec<LeanRow>)> {
    use arrow::array::{StringArray, TimestampMicrosecondArray, UInt64Array};
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    const COLUMNS: [&str; 9] = [
        "minute", "route", "requests", "timed", "c4xx", "c5xx", "p50_us", "p95_us", "p99_us",
    ];
    let damaged = |e: String| Error::Dataset {
        path: path.clone(),
        message: format!("cannot read statistics ({e}); re-ingest its source with --force"),
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| damaged(e.to_string()))?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), COLUMNS);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(16 * 1024)
        .build()
        .map_err(|e| damaged(e.to_string()))?;
    let mut names: Vec<String> = Vec::new();
    let mut ids: FastMap<String, u32> = FastMap::default();
    let mut rows = Vec::new();
    for batch in reader {
        let b = batch.map_err(|e| damaged(e.to_string()))?;
        let col = |name: &str| {
            b.column_by_name(name)
                .ok_or_else(|| damaged(format!("no column {name}")))
        };
        // Counters are signed since the open-table-format change and unsigned in older files.
        let u = |name: &str| -> Result<UInt64Array> {
            arrow::compute::cast(col(name)?, &arrow::datatypes::DataType::UInt64)
                .ok()
                .and_then(|a| a.as_any().downcast_ref::<UInt64Array>().cloned())
                .ok_or_else(|| damaged(format!("{name} is not a count")))
        };
        let minute = col("minute")?
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .cloned()
            .ok_or_else(|| damaged("minute is not a timestamp".into()))?;
        let route = col("route")?
            .as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .ok_or_else(|| damaged("route is not text".into()))?;
        let (req, timed, c4, c5) = (u("requests")?, u("timed")?, u("c4xx")?, u("c5xx")?);
        let (p50, p95, p99) = (u("p50_us")?, u("p95_us")?, u("p99_us")?);
        for i in 0..b.num_rows() {
            let m = minute.value(i);
            if range.since.is_some_and(|s| m < s) || range.until.is_some_and(|u| m >= u) {
                continue;
            }
            let name = route.value(i);
            if !range.routes.is_empty() && !range.routes.iter().any(|r| r == name) {
                continue;
            }
            let id = match ids.get(name) {
                Some(id) => *id,
                None => {
                    let id = names.len() as u32;
                    names.push(name.to_string());
                    ids.insert(name.to_string(), id);
                    id
                }
            };
            rows.push(LeanRow {
                minute: m,
                route: id,
                requests: req.value(i),
                timed: timed.value(i),
                c4xx: c4.value(i),
                c5xx: c5.value(i),
                quantiles: p50.is_valid(i).then(|| {
                    let narrow = |v: u64| v.min(u32::MAX as u64) as u32;
                    [
                        narrow(p50.value(i)),
                        narrow(p95.value(i)),
                        narrow(p99.value(i)),
                    ]
                }),
            });
        }
    }
    Ok((names, rows))
}

/// The buckets of a series: `n` of width `step` from `first`.
struct Grid {
    first: i64,
    step: i64,
    n: usize,
}

impl Grid {
    /// Adds a stored row to its route's bucket: the counters and quantiles with `counts`, and
    /// the histogram when the row has one.
    fn add(
        &self,
        by_route: &mut FastMap<String, RouteBuckets>,
        r: RowRef<'_>,
        counts: bool,
    ) -> Result<()> {
        let i = (r.minute.div_euclid(self.step) * self.step - self.first) / self.step;
        if i < 0 || i as usize >= self.n {
            return Ok(());
        }
        let buckets = match by_route.get_mut(r.route) {
            Some(b) => b,
            None => by_route
                .entry(r.route.to_string())
                .or_insert_with(|| RouteBuckets {
                    buckets: vec![Bucket::default(); self.n],
                    hists: HashMap::new(),
                }),
        };
        if counts {
            let b = &mut buckets.buckets[i as usize];
            b.requests += r.counts.requests;
            b.timed += r.counts.timed;
            b.c4xx += r.counts.c4xx;
            b.c5xx += r.counts.c5xx;
            b.rows += 1;
            b.set_quantiles(r.quantiles);
        }
        if let Some(h) = r.hist {
            buckets.hists.entry(i as u32).or_default().push(h.to_vec());
        }
        Ok(())
    }
}

#[cfg(feature = "duckdb")]
/// What to detect over a dataset: metrics per route group (and `*`) over `range`, in buckets of
/// `bucket_us`, with the given methods.
pub struct DatasetScan<'a> {
    /// Stored rows to read.
    pub range: &'a Range,
    /// Bucket width, µs.
    pub bucket_us: i64,
    /// Metrics to build series of.
    pub metrics: &'a [Metric],
    /// Methods to run on each series.
    pub methods: &'a [Method],
    /// Significant digits of merged histograms.
    pub sigfig: u8,
    /// The dataset's stats files (from its manifest): per-minute series read them directly, in
    /// parallel; empty: through the catalog.
    pub files: &'a [std::path::PathBuf],
}

#[cfg(feature = "duckdb")]
/// Events of every metric series of the dataset, ordered as [`detect_all`] orders them. The series
/// of one route are built, scored and dropped together, so memory holds one route's series per
/// thread rather than all of them.
pub fn dataset_events(
    catalog: &Catalog,
    detector: &Detector,
    scan: &DatasetScan<'_>,
) -> Result<Vec<Event>> {
    let DatasetScan {
        range,
        bucket_us,
        metrics,
        methods,
        sigfig,
        files,
    } = *scan;
    let min_requests = detector.config().min_requests;
    let reader = StatsReader::new(catalog);
    let cond = range.where_sql();
    let key = |minute: i64| minute.div_euclid(bucket_us) * bucket_us;
    let minutes = bucket_us == MINUTE_US;
    // Per-minute buckets use the stored quantiles, so the files are read directly (a few columns,
    // in parallel) and histograms only for buckets that several rows share; wider buckets merge
    // histograms throughout and read through the catalog.
    let bounds = catalog_bounds(catalog, &cond)?;
    let (Some(lo), Some(hi)) = bounds else {
        return Ok(Vec::new());
    };
    // The series start at the first stored minute, not at `since`: before it there is no
    // traffic because there are no logs, not because no one came (zeros there made the start of
    // a dataset look like a surge).
    let first = key(lo);
    let last = key(hi);
    let end = range
        .until
        .map_or(last + bucket_us, |u| u.min(last + bucket_us));
    let n = ((end - first).max(0) / bucket_us) as usize;
    let mut by_route: FastMap<String, RouteBuckets> = FastMap::default();
    let grid = Grid {
        first,
        step: bucket_us,
        n,
    };
    if minutes && !files.is_empty() {
        // A few files at a time, so that only their rows wait in memory.
        for chunk in files.chunks(2 * rayon::current_num_threads()) {
            let per_file = chunk
                .par_iter()
                .map(|path| read_lean(path, range))
                .collect::<Result<Vec<_>>>()?;
            for (names, rows) in per_file {
                for r in rows {
                    let row = RowRef {
                        minute: r.minute,
                        route: &names[r.route as usize],
                        counts: Counts {
                            requests: r.requests,
                            timed: r.timed,
                            c4xx: r.c4xx,
                            c5xx: r.c5xx,
                            ..Counts::default()
                        },
                        quantiles: r
                            .quantiles
                            .map(|[a, b, c]| [a.into(), 0, b.into(), c.into(), 0]),
                        hist: None,
                    };
                    grid.add(&mut by_route, row, true)?;
                }
            }
        }
    } else {
        let read = Read {
            hist: !minutes,
            ordered: false,
            lean: true,
        };
        reader.for_each_row(&cond, read, |r| grid.add(&mut by_route, r, true))?;
    }
    let shared = by_route
        .values()
        .any(|r| r.buckets.iter().any(|b| b.rows > 1));
    if minutes && shared {
        let cond = format!(
            "{cond} AND (route, minute) IN (SELECT route, minute FROM stats WHERE {cond} \
             GROUP BY ALL HAVING count(*) > 1)"
        );
        let read = Read {
            hist: true,
            ordered: false,
            lean: true,
        };
        reader.for_each_row(&cond, read, |r| grid.add(&mut by_route, r, false))?;
    }
    let mut routes: Vec<(String, RouteBuckets)> = by_route.into_iter().collect();
    routes.sort_by(|a, b| a.0.cmp(&b.0));
    let per_route: Vec<Vec<Event>> = routes
        .into_par_iter()
        .map(|(route, buckets)| {
            let RouteBuckets { mut buckets, hists } = buckets;
            for (i, hs) in hists {
                let b = &mut buckets[i as usize];
                if b.rows > 1 {
                    let mut h = histogram::<u64>(sigfig);
                    for bytes in &hs {
                        merge_into(&mut h, bytes)?;
                    }
                    b.set_quantiles(summarise(&h));
                }
            }
            let series: Vec<Series> = metrics
                .iter()
                .map(|m| metric_series(*m, &route, first, bucket_us, &buckets, min_requests))
                .collect();
            drop(buckets);
            Ok(detect_all(detector, &series, methods))
        })
        .collect::<Result<_>>()?;
    let mut events: Vec<Event> = per_route.into_iter().flatten().collect();
    sort_events(&mut events);
    Ok(events)
}

fn metric_series(
    metric: Metric,
    route: &str,
    start: i64,
    step: i64,
    buckets: &[Bucket],
    min_requests: u64,
) -> Series {
    let edges = (
        buckets.iter().position(|b| b.rows > 0),
        buckets.iter().rposition(|b| b.rows > 0),
    );
    let (values, samples) = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let c = b;
            let q = |i: usize, p: f64| {
                let enough = c.timed as f64 * (1.0 - p) >= 5.0;
                (
                    b.quantiles.filter(|_| enough).map(|q| q[i] as f64),
                    c.timed as f64,
                )
            };
            let rate = |num: u64| {
                (
                    (c.requests >= min_requests.max(1)).then(|| num as f64 / c.requests as f64),
                    c.requests as f64,
                )
            };
            match metric {
                Metric::P50 => q(0, 0.5),
                Metric::P95 => q(1, 0.95),
                Metric::P99 => q(2, 0.99),
                // The first and last buckets of the data are cut by where the logs start and end.
                Metric::Requests if Some(i) == edges.0 || Some(i) == edges.1 => (None, 1.0),
                Metric::Requests => (Some(c.requests as f64), 1.0),
                Metric::ClientErrors => rate(c.c4xx),
                Metric::ServerErrors => rate(c.c5xx),
                Metric::Value => (None, 0.0),
            }
        })
        .unzip();
    Series {
        metric,
        route: route.to_string(),
        start,
        step,
        values,
        samples,
    }
}

/// Longest grid [`parse_series`] lays out: a series whose points span more steps than this (its
/// timestamps years apart at a one-second step, say) is refused instead of filling memory.
pub const MAX_SERIES_POINTS: u64 = 10_000_000;

/// Grid slots laid out per point read at most: a series that would be more than 99.9% gaps is
/// refused, so a few bytes of input never make a grid of megabytes.
pub const MAX_SLOTS_PER_POINT: u64 = 1_000;

/// Reads a `timestamp,value` file; see [`parse_series`].
pub fn read_series(path: &Path) -> Result<Series> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
    let name = path
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    parse_series(&text, &path.display().to_string(), name)
}

/// Parses `timestamp,value` lines (a header line is skipped; timestamps ISO 8601, `YYYY-MM-DD
/// HH:MM:SS` or epoch seconds) onto a regular grid whose step is the most common spacing. `origin`
/// names the text in errors; the series is called `name`.
pub fn parse_series(text: &str, origin: &str, name: String) -> Result<Series> {
    let mut points = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut f = line.splitn(2, ',');
        let (t, v) = (f.next().unwrap_or("").trim(), f.next().unwrap_or("").trim());
        let t = t.trim_matches('"');
        let ts = parse_iso8601(t.as_bytes()).or_else(|| {
            t.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && s.abs() < 1e12)
                .map(|s| (s * 1e6) as i64)
        });
        match (ts, v.trim_matches('"').parse::<f64>()) {
            (Some(ts), Ok(v)) if v.is_finite() => points.push((ts, v)),
            _ if n == 0 => {}
            _ => {
                return Err(Error::Usage(format!(
                    "{origin}:{}: expected `timestamp,value`, got `{line}`",
                    n + 1
                )));
            }
        }
    }
    if points.len() < 2 {
        return Err(Error::Usage(format!(
            "{origin}: a series needs at least two `timestamp,value` lines"
        )));
    }
    points.sort_by_key(|p| p.0);
    let mut gaps: Vec<i64> = points
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|g| *g > 0)
        .collect();
    gaps.sort_unstable();
    // The most common spacing (the smaller one on a tie).
    let step = gaps
        .chunk_by(|a, b| a == b)
        .max_by(|a, b| a.len().cmp(&b.len()).then(b[0].cmp(&a[0])))
        .map(|run| run[0])
        .ok_or_else(|| Error::Usage(format!("{origin}: every timestamp is the same")))?;
    let start = points[0].0;
    let steps = (points[points.len() - 1].0 - start) / step;
    let limit = MAX_SERIES_POINTS.min(MAX_SLOTS_PER_POINT * points.len() as u64);
    if steps as u64 >= limit {
        return Err(Error::Usage(format!(
            "{origin}: its {} points span {steps} steps of {step} µs (the most common spacing), more than the {limit} it may lay out: split it where it has long gaps, or resample it to a coarser step",
            points.len()
        )));
    }
    let n = steps as usize + 1;
    let mut values = vec![None; n];
    for (ts, v) in points {
        let i = ((ts - start) as f64 / step as f64).round() as usize;
        if i < n {
            values[i] = Some(v);
        }
    }
    Ok(Series {
        metric: Metric::Value,
        route: name,
        start,
        step,
        samples: vec![1.0; n],
        values,
    })
}

/// The events of every series and method, ordered by start, metric and route.
pub fn detect_all(detector: &Detector, series: &[Series], methods: &[Method]) -> Vec<Event> {
    let mut events: Vec<Event> = series
        .par_iter()
        .flat_map_iter(|s| methods.iter().flat_map(move |m| detector.detect(s, *m)))
        .collect();
    sort_events(&mut events);
    events
}

/// Orders events by start, metric, route (`*` first) and method.
fn sort_events(events: &mut [Event]) {
    events.sort_by(|a, b| {
        a.start_us
            .cmp(&b.start_us)
            .then_with(|| a.metric.cmp(&b.metric))
            .then_with(|| (a.route != ALL_ROUTES).cmp(&(b.route != ALL_ROUTES)))
            .then_with(|| a.route.cmp(&b.route))
            .then_with(|| a.method.cmp(&b.method))
    });
}

/// Columns of the catalog's `anomalies` table.
pub const ANOMALY_COLUMNS: &str = "start TIMESTAMP, \"end\" TIMESTAMP, metric VARCHAR, route VARCHAR, \
     method VARCHAR, expected DOUBLE, observed DOUBLE, score DOUBLE, severity VARCHAR, \
     buckets INTEGER, detected_run VARCHAR";

#[cfg(feature = "duckdb")]
/// Stores `events` in the catalog's `anomalies` table, replacing those stored earlier for the
/// same time range, metrics and methods. An event stored before with the same start, metric,
/// route and method keeps the run that first detected it; the others get `run`. Returns how many
/// events are new in this run.
pub fn store(
    catalog: &Catalog,
    events: &[Event],
    run: &str,
    range: (i64, i64),
    metrics: &[Metric],
    methods: &[Method],
) -> Result<u64> {
    let list = |names: Vec<&str>| {
        names
            .into_iter()
            .map(sql_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let metrics = list(metrics.iter().map(|m| m.name()).collect());
    let methods = list(methods.iter().map(|m| m.name()).collect());
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS anomalies ({ANOMALY_COLUMNS});
         CREATE OR REPLACE TEMP TABLE fresh_anomalies ({ANOMALY_COLUMNS});\n"
    );
    for chunk in events.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|e| {
                format!(
                    "(make_timestamp({}), make_timestamp({}), {}, {}, {}, {}, {}, {}, {}, {}, {})",
                    e.start_us,
                    e.end_us,
                    sql_string(&e.metric),
                    sql_string(&e.route),
                    sql_string(&e.method),
                    finite(e.expected),
                    finite(e.observed),
                    finite(e.score),
                    sql_string(e.severity.name()),
                    e.buckets,
                    sql_string(run)
                )
            })
            .collect();
        sql.push_str(&format!(
            "INSERT INTO fresh_anomalies VALUES {};\n",
            values.join(", ")
        ));
    }
    sql.push_str(&format!(
        "UPDATE fresh_anomalies f SET detected_run = o.detected_run FROM anomalies o
             WHERE f.start = o.start AND f.metric = o.metric AND f.route = o.route
               AND f.method = o.method;
         DELETE FROM anomalies WHERE start >= make_timestamp({}) AND start < make_timestamp({})
             AND metric IN ({metrics}) AND method IN ({methods});
         INSERT INTO anomalies SELECT * FROM fresh_anomalies;",
        range.0, range.1
    ));
    catalog.execute(&sql)?;
    let fresh = catalog.query(&format!(
        "SELECT count(*)::UBIGINT FROM fresh_anomalies WHERE detected_run = {}",
        sql_string(run)
    ))?;
    catalog.execute("DROP TABLE fresh_anomalies")?;
    Ok(fresh
        .batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::UInt64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0))
}

fn finite(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "NULL".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_series_with_header_gaps_and_formats() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(
            &p,
            "timestamp,value\n2014-04-10 00:00:00,1.5\n2014-04-10 00:05:00,2\n2014-04-10 00:15:00,3\n",
        )
        .unwrap();
        let s = read_series(&p).unwrap();
        assert_eq!(s.step, 300_000_000);
        assert_eq!(s.values, vec![Some(1.5), Some(2.0), None, Some(3.0)]);
        std::fs::write(&p, "1,1\n61,2\n121,x\n").unwrap();
        let e = read_series(&p).unwrap_err().to_string();
        assert!(e.contains(":3:"), "{e}");
    }

    #[test]
    fn a_series_whose_grid_would_not_fit_is_refused() {
        // One microsecond apart twice, then a point 31,000 years away: a grid of 10^18 slots.
        let text = "0.000001,1\n0.000002,2\n0.000003,3\n999999999999,4\n";
        let e = parse_series(text, "far.csv", "far".into())
            .unwrap_err()
            .to_string();
        assert!(e.contains("far.csv") && e.contains("steps"), "{e}");
        // Epoch seconds beyond what µs can hold are not timestamps.
        let e = parse_series("1e300,1\n2e300,2\n", "huge.csv", "huge".into()).unwrap_err();
        assert!(e.to_string().contains("huge.csv:2:"), "{e}");
        let ok = parse_series("1,1\n2,2\n", "ok.csv", "ok".into()).unwrap();
        assert_eq!((ok.step, ok.values.len()), (1_000_000, 2));
    }
}
