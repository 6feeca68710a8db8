//! Where series come from: a dataset's `stats` table (per bucket and route group), or a
//! `timestamp,value` file; and where events go: the catalog's `anomalies` table.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use super::{Detector, Event, Method, Metric, Series};
use crate::catalog::{Catalog, sql_string};
use crate::error::{Error, Result};
use crate::parse::value::parse_iso8601;
use crate::stats::{
    ALL_ROUTES, Counts, MINUTE_US, Range, StatsReader, histogram, merge_into, summarise,
};

/// One bucket of one route, aggregated from stored rows.
#[derive(Debug, Clone, Default)]
struct Bucket {
    counts: Counts,
    rows: usize,
    quantiles: Option<[u64; 5]>,
    hists: Vec<Vec<u8>>,
}

/// Per route group (and `*`), one series per metric over `range`, in buckets of `bucket_us`.
pub fn dataset_series(
    catalog: &Catalog,
    range: &Range,
    bucket_us: i64,
    metrics: &[Metric],
    min_requests: u64,
    sigfig: u8,
) -> Result<Vec<Series>> {
    let reader = StatsReader::new(catalog);
    let mut rows = reader.rows(range, false)?;
    let key = |minute: i64| minute.div_euclid(bucket_us) * bucket_us;
    let merged = bucket_us != MINUTE_US
        || rows
            .windows(2)
            .any(|w| w[0].route == w[1].route && w[0].minute == w[1].minute);
    if merged {
        rows = reader.rows(range, true)?;
    }
    let Some(first) = range
        .since
        .map(key)
        .or_else(|| rows.iter().map(|r| key(r.minute)).min())
    else {
        return Ok(Vec::new());
    };
    let last = rows.iter().map(|r| key(r.minute)).max().unwrap_or(first);
    let end = range
        .until
        .map_or(last + bucket_us, |u| u.min(last + bucket_us));
    let n = ((end - first).max(0) / bucket_us) as usize;
    let mut by_route: BTreeMap<String, Vec<Bucket>> = BTreeMap::new();
    for r in rows {
        let i = (key(r.minute) - first) / bucket_us;
        if i < 0 || i as usize >= n {
            continue;
        }
        let buckets = by_route
            .entry(r.route.clone())
            .or_insert_with(|| vec![Bucket::default(); n]);
        let b = &mut buckets[i as usize];
        b.counts.add(&r.counts);
        b.rows += 1;
        b.quantiles = r.quantiles;
        if let Some(h) = r.hist {
            b.hists.push(h);
        }
    }
    let routes: Vec<(String, Vec<Bucket>)> = by_route.into_iter().collect();
    let per_route: Vec<Vec<Series>> = routes
        .into_par_iter()
        .map(|(route, mut buckets)| {
            for b in buckets.iter_mut().filter(|b| b.rows > 1) {
                let mut h = histogram::<u64>(sigfig);
                for bytes in &b.hists {
                    merge_into(&mut h, bytes)?;
                }
                b.quantiles = summarise(&h);
            }
            Ok(metrics
                .iter()
                .map(|m| metric_series(*m, &route, first, bucket_us, &buckets, min_requests))
                .collect())
        })
        .collect::<Result<_>>()?;
    Ok(per_route.into_iter().flatten().collect())
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
            let c = &b.counts;
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
                Metric::P95 => q(2, 0.95),
                Metric::P99 => q(3, 0.99),
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

/// Reads a `timestamp,value` file (a header line is skipped; timestamps ISO 8601, `YYYY-MM-DD
/// HH:MM:SS` or epoch seconds) onto a regular grid whose step is the most common spacing.
pub fn read_series(path: &Path) -> Result<Series> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mut points = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut f = line.splitn(2, ',');
        let (t, v) = (f.next().unwrap_or("").trim(), f.next().unwrap_or("").trim());
        let t = t.trim_matches('"');
        let ts =
            parse_iso8601(t.as_bytes()).or_else(|| t.parse::<f64>().ok().map(|s| (s * 1e6) as i64));
        match (ts, v.trim_matches('"').parse::<f64>()) {
            (Some(ts), Ok(v)) if v.is_finite() => points.push((ts, v)),
            _ if n == 0 => {}
            _ => {
                return Err(Error::Usage(format!(
                    "{}:{}: expected `timestamp,value`, got `{line}`",
                    path.display(),
                    n + 1
                )));
            }
        }
    }
    if points.len() < 2 {
        return Err(Error::Usage(format!(
            "{}: a series needs at least two `timestamp,value` lines",
            path.display()
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
        .ok_or_else(|| Error::Usage(format!("{}: every timestamp is the same", path.display())))?;
    let start = points[0].0;
    let n = ((points[points.len() - 1].0 - start) / step) as usize + 1;
    let mut values = vec![None; n];
    for (ts, v) in points {
        let i = ((ts - start) as f64 / step as f64).round() as usize;
        if i < n {
            values[i] = Some(v);
        }
    }
    Ok(Series {
        metric: Metric::Value,
        route: path
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
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
    events.sort_by(|a, b| {
        a.start_us
            .cmp(&b.start_us)
            .then_with(|| a.metric.cmp(&b.metric))
            .then_with(|| (a.route != ALL_ROUTES).cmp(&(b.route != ALL_ROUTES)))
            .then_with(|| a.route.cmp(&b.route))
            .then_with(|| a.method.cmp(&b.method))
    });
    events
}

/// Columns of the catalog's `anomalies` table.
pub const ANOMALY_COLUMNS: &str = "start TIMESTAMP, \"end\" TIMESTAMP, metric VARCHAR, route VARCHAR, \
     method VARCHAR, expected DOUBLE, observed DOUBLE, score DOUBLE, severity VARCHAR, \
     buckets INTEGER, detected_run VARCHAR";

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
}
