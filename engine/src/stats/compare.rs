//! Baseline comparison: per route latency quantiles, error rate and traffic of two periods, with
//! a significance test, and the regression gate of `logcrunch compare`.
//!
//! A period is a dataset, a time range of a dataset, or a snapshot file (`stats snapshot`). Both
//! sides are reduced to one merged histogram and counters per route group, so comparing a year
//! against a day costs the same as comparing two days. Latency shifts are tested with a one-sided
//! Mann-Whitney U test computed exactly on the histograms' buckets (ties corrected), error rates
//! with a two-proportion z-test. A route *regresses* when a limit of `--max-regression` is exceeded,
//! both sides have at least `min_requests` requests, and the change is significant at `alpha`:
//! a gate that does not fire on noise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[cfg(feature = "duckdb")]
use super::StatsReader;
use super::{Counts, Range, Summary, encode, histogram, merge_into};
#[cfg(feature = "duckdb")]
use crate::catalog::{Catalog, Table};
use crate::error::{Error, Result};
use crate::parse::value::format_rfc3339;

/// Layout version of snapshot files.
pub const SNAPSHOT_VERSION: u32 = 1;

/// A saved baseline: merged histograms and counters per route over a period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Layout version.
    pub version: u32,
    /// What it was taken from (the spec).
    pub taken_from: String,
    /// When it was taken, RFC 3339.
    pub created: String,
    /// Significant digits of the histograms.
    pub significant_digits: u8,
    /// Per route.
    pub routes: Vec<SnapshotRoute>,
}

/// One route of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotRoute {
    /// Route group (`*`: all routes).
    pub route: String,
    /// Counters.
    pub counts: Counts,
    /// First minute, RFC 3339.
    pub first: String,
    /// Last minute, RFC 3339.
    pub last: String,
    /// V2-encoded histogram, hex.
    pub hist: String,
}

/// One side of a comparison: where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// A dataset, whole or a time range (`DIR`, `DIR@SINCE..UNTIL`, `@SINCE..UNTIL`; `DIR` may be
    /// an `s3://` URL).
    Dataset {
        /// The dataset directory.
        dir: PathBuf,
        /// The range.
        since: Option<i64>,
        /// The range.
        until: Option<i64>,
    },
    /// A snapshot file.
    Snapshot(PathBuf),
}

impl Spec {
    /// Parses a spec; `@` ranges without a directory use `default_dataset`.
    pub fn parse(text: &str, default_dataset: &Path) -> Result<Spec> {
        let (dir, range) = match text.rsplit_once('@') {
            Some((d, r)) => (d, Some(r)),
            None => (text, None),
        };
        let dir = if dir.is_empty() {
            default_dataset.to_path_buf()
        } else {
            crate::catalog::remote::dataset_location(dir).map_err(Error::Usage)?
        };
        if range.is_none() && dir.is_file() {
            return Ok(Spec::Snapshot(dir));
        }
        let (mut since, mut until) = (None, None);
        if let Some(r) = range {
            let (s, u) = r.split_once("..").ok_or_else(|| {
                Error::Usage(format!(
                    "`{text}`: a range is written SINCE..UNTIL (either side may be empty), e.g. data@2024-01-01..2024-01-08"
                ))
            })?;
            let t = |x: &str| -> Result<Option<i64>> {
                if x.is_empty() {
                    return Ok(None);
                }
                crate::parse::value::parse_time_arg(x).map(Some).ok_or_else(|| {
                    Error::Usage(format!(
                        "`{x}` in `{text}` is not a time: use 2024-01-31, 2024-01-31T12:00:00Z or 24h"
                    ))
                })
            };
            since = t(s)?;
            until = t(u)?;
        }
        Ok(Spec::Dataset { dir, since, until })
    }

    #[cfg(feature = "duckdb")]
    /// Per route summaries of the period.
    pub fn load(&self, sigfig: u8) -> Result<Vec<Summary>> {
        match self {
            Spec::Dataset { dir, since, until } => {
                let dir = crate::catalog::remote::readable(
                    dir,
                    &crate::catalog::remote::Days::between(*since, *until),
                )?;
                let cat = Catalog::open(&dir)?;
                StatsReader::new(&cat).summaries(
                    &Range {
                        since: *since,
                        until: *until,
                        routes: Vec::new(),
                    },
                    sigfig,
                )
            }
            Spec::Snapshot(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
                let snap: Snapshot = serde_json::from_str(&text).map_err(|e| {
                    Error::Usage(format!(
                        "{} is not a logcrunch snapshot ({e}); make one with: logcrunch stats snapshot",
                        path.display()
                    ))
                })?;
                snap.routes
                    .iter()
                    .map(|r| {
                        let mut hist = histogram(snap.significant_digits);
                        let bytes = from_hex(&r.hist).ok_or_else(|| {
                            Error::Usage(format!(
                                "{}: the histogram of route {} is not hex",
                                path.display(),
                                r.route
                            ))
                        })?;
                        merge_into(&mut hist, &bytes)?;
                        let t =
                            |s: &str| crate::parse::value::parse_iso8601(s.as_bytes()).unwrap_or(0);
                        Ok(Summary {
                            route: r.route.clone(),
                            counts: r.counts,
                            hist,
                            first: t(&r.first),
                            last: t(&r.last),
                        })
                    })
                    .collect()
            }
        }
    }
}

/// A snapshot of `summaries`.
pub fn snapshot(summaries: &[Summary], taken_from: &str, sigfig: u8) -> Snapshot {
    Snapshot {
        version: SNAPSHOT_VERSION,
        taken_from: taken_from.to_string(),
        created: format_rfc3339(crate::parse::value::now_us()),
        significant_digits: sigfig,
        routes: summaries
            .iter()
            .map(|s| SnapshotRoute {
                route: s.route.clone(),
                counts: s.counts,
                first: format_rfc3339(s.first),
                last: format_rfc3339(s.last),
                hist: to_hex(&encode(&s.hist)),
            })
            .collect(),
    }
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    s.len()
        .is_multiple_of(2)
        .then(|| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .flatten()
}

/// A limit of `--max-regression`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// A latency quantile may grow by at most this fraction.
    Quantile(f64, f64),
    /// The 5xx (or 4xx) rate may grow by at most this many percentage points.
    Rate {
        /// 5xx (true) or 4xx.
        server: bool,
        /// Percentage points.
        points: f64,
    },
}

impl Limit {
    /// Parses `p95:+10%,p99:+20%,5xx_rate:+0.5pp`.
    pub fn parse_list(text: &str) -> Result<Vec<Limit>> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                let bad = || {
                    Error::Usage(format!(
                        "--max-regression `{item}`: write METRIC:+N% for p50/p90/p95/p99 and 5xx_rate:+Npp or 4xx_rate:+Npp"
                    ))
                };
                let (metric, amount) = item.split_once(':').ok_or_else(bad)?;
                let amount = amount.trim().trim_start_matches('+');
                match metric.trim() {
                    m @ ("p50" | "p90" | "p95" | "p99") => {
                        let pct: f64 = amount.strip_suffix('%').ok_or_else(bad)?.parse().map_err(|_| bad())?;
                        let q = m[1..].parse::<f64>().map_err(|_| bad())? / 100.0;
                        Ok(Limit::Quantile(q, pct / 100.0))
                    }
                    m @ ("5xx_rate" | "4xx_rate") => {
                        let points: f64 = amount.strip_suffix("pp").ok_or_else(bad)?.parse().map_err(|_| bad())?;
                        Ok(Limit::Rate {
                            server: m == "5xx_rate",
                            points,
                        })
                    }
                    _ => Err(bad()),
                }
            })
            .collect()
    }
}

/// Settings of a comparison.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Regression limits (empty: report only).
    pub limits: Vec<Limit>,
    /// Requests both sides need before a route is judged.
    pub min_requests: u64,
    /// Significance level.
    pub alpha: f64,
    /// Histogram precision.
    pub significant_digits: u8,
}

/// One route compared.
#[derive(Debug, Clone, Serialize)]
pub struct RouteDelta {
    /// Route group.
    pub route: String,
    /// Requests of the baseline and the current period.
    pub requests: (u64, u64),
    /// Share of traffic change of the current period against the baseline, by requests per
    /// minute of activity.
    pub traffic_change: Option<f64>,
    /// p50/p95/p99 in ms, baseline and current.
    pub quantiles_ms: Vec<(String, Option<f64>, Option<f64>)>,
    /// 5xx rates.
    pub error_rate: (f64, f64),
    /// One-sided p-value of "the current period is slower" (Mann-Whitney U).
    pub p_slower: Option<f64>,
    /// One-sided p-value of "the current period fails more" (two-proportion z-test).
    pub p_more_errors: Option<f64>,
    /// The limits this route exceeds significantly.
    pub regressions: Vec<String>,
}

/// The result of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Routes, all-routes first, then by baseline volume.
    pub routes: Vec<RouteDelta>,
}

impl Comparison {
    /// Compares per route.
    pub fn of(base: &[Summary], cur: &[Summary], opts: &CompareOptions) -> Comparison {
        let cur_by: BTreeMap<&str, &Summary> = cur.iter().map(|s| (s.route.as_str(), s)).collect();
        let mut routes = Vec::new();
        let empty = Summary {
            route: String::new(),
            counts: Counts::default(),
            hist: histogram(opts.significant_digits),
            first: 0,
            last: 0,
        };
        let mut names: Vec<&str> = base.iter().map(|s| s.route.as_str()).collect();
        names.extend(
            cur.iter()
                .map(|s| s.route.as_str())
                .filter(|r| !base.iter().any(|b| b.route == *r)),
        );
        for name in names {
            let b = base.iter().find(|s| s.route == name).unwrap_or(&empty);
            let c = cur_by.get(name).copied().unwrap_or(&empty);
            routes.push(delta(name, b, c, opts));
        }
        Comparison { routes }
    }

    /// Whether any route regressed.
    pub fn regressed(&self) -> bool {
        self.routes.iter().any(|r| !r.regressions.is_empty())
    }

    #[cfg(feature = "duckdb")]
    /// As a table (one row per route).
    pub fn table(&self) -> Table {
        let ms = |v: Option<f64>| v.map_or(Value::Null, |x| json!((x * 1000.0).round() / 1000.0));
        let pct = |v: Option<f64>| v.map_or(Value::Null, |x| json!((x * 10000.0).round() / 100.0));
        let mut columns: Vec<String> = [
            "route",
            "requests_base",
            "requests_cur",
            "traffic_change_pct",
        ]
        .map(String::from)
        .to_vec();
        for q in ["p50", "p95", "p99"] {
            columns.push(format!("{q}_base_ms"));
            columns.push(format!("{q}_cur_ms"));
            columns.push(format!("{q}_change_pct"));
        }
        columns.extend(
            [
                "5xx_base_pct",
                "5xx_cur_pct",
                "p_slower",
                "p_more_errors",
                "regressions",
            ]
            .map(String::from),
        );
        let rows = self
            .routes
            .iter()
            .map(|r| {
                let mut row = vec![
                    json!(r.route),
                    json!(r.requests.0),
                    json!(r.requests.1),
                    pct(r.traffic_change),
                ];
                for (_, b, c) in &r.quantiles_ms {
                    row.push(ms(*b));
                    row.push(ms(*c));
                    row.push(pct(match (b, c) {
                        (Some(b), Some(c)) if *b > 0.0 => Some(c / b - 1.0),
                        _ => None,
                    }));
                }
                row.push(pct(Some(r.error_rate.0)));
                row.push(pct(Some(r.error_rate.1)));
                row.push(r.p_slower.map_or(Value::Null, |p| json!(round_sig(p))));
                row.push(r.p_more_errors.map_or(Value::Null, |p| json!(round_sig(p))));
                row.push(json!(r.regressions.join("; ")));
                row
            })
            .collect();
        Table { columns, rows }
    }
}

fn round_sig(p: f64) -> f64 {
    if p == 0.0 {
        return 0.0;
    }
    let mag = 10f64.powi(3 - p.abs().log10().ceil() as i32);
    (p * mag).round() / mag
}

fn delta(route: &str, b: &Summary, c: &Summary, opts: &CompareOptions) -> RouteDelta {
    let minutes = |s: &Summary| ((s.last - s.first) / super::MINUTE_US + 1) as f64;
    let traffic_change = (b.counts.requests > 0 && c.counts.requests > 0).then(|| {
        (c.counts.requests as f64 / minutes(c)) / (b.counts.requests as f64 / minutes(b)) - 1.0
    });
    let q_ms = |s: &Summary, q: f64| s.quantile(q).map(|v| v as f64 / 1000.0);
    let quantiles_ms = [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)]
        .iter()
        .map(|(n, q)| (n.to_string(), q_ms(b, *q), q_ms(c, *q)))
        .collect();
    let p_slower = mann_whitney_greater(&b.hist, &c.hist);
    let p_more_errors = proportion_greater(
        b.counts.c5xx,
        b.counts.requests,
        c.counts.c5xx,
        c.counts.requests,
    );
    let judged = b.counts.requests >= opts.min_requests && c.counts.requests >= opts.min_requests;
    let mut regressions = Vec::new();
    if judged {
        for l in &opts.limits {
            match *l {
                Limit::Quantile(q, max) => {
                    if let (Some(x), Some(y)) = (b.quantile(q), c.quantile(q))
                        && x > 0
                        && y as f64 > x as f64 * (1.0 + max)
                        && p_slower.is_some_and(|p| p < opts.alpha)
                    {
                        regressions.push(format!(
                            "p{}: {:.1} ms -> {:.1} ms ({:+.1}% > +{:.1}%)",
                            (q * 100.0).round(),
                            x as f64 / 1000.0,
                            y as f64 / 1000.0,
                            (y as f64 / x as f64 - 1.0) * 100.0,
                            max * 100.0
                        ));
                    }
                }
                Limit::Rate { server, points } => {
                    let (x, y) = if server {
                        (b.error_rate(), c.error_rate())
                    } else {
                        (b.client_error_rate(), c.client_error_rate())
                    };
                    let p = if server {
                        p_more_errors
                    } else {
                        proportion_greater(
                            b.counts.c4xx,
                            b.counts.requests,
                            c.counts.c4xx,
                            c.counts.requests,
                        )
                    };
                    if (y - x) * 100.0 > points && p.is_some_and(|p| p < opts.alpha) {
                        regressions.push(format!(
                            "{}xx rate: {:.2}% -> {:.2}% (+{:.2}pp > +{points}pp)",
                            if server { 5 } else { 4 },
                            x * 100.0,
                            y * 100.0,
                            (y - x) * 100.0
                        ));
                    }
                }
            }
        }
    }
    RouteDelta {
        route: route.to_string(),
        requests: (b.counts.requests, c.counts.requests),
        traffic_change,
        quantiles_ms,
        error_rate: (b.error_rate(), c.error_rate()),
        p_slower,
        p_more_errors,
        regressions,
    }
}

/// One-sided p-value that values of `cur` tend to be larger than those of `base` (Mann-Whitney U
/// over the histograms' buckets, normal approximation with tie correction).
pub fn mann_whitney_greater(base: &Histogram<u64>, cur: &Histogram<u64>) -> Option<f64> {
    let (na, nb) = (base.len() as f64, cur.len() as f64);
    if na < 1.0 || nb < 1.0 {
        return None;
    }
    let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for v in base.iter_recorded() {
        buckets.entry(v.value_iterated_to()).or_default().0 += v.count_at_value() as f64;
    }
    for v in cur.iter_recorded() {
        buckets.entry(v.value_iterated_to()).or_default().1 += v.count_at_value() as f64;
    }
    let (mut below_a, mut u, mut ties) = (0.0, 0.0, 0.0);
    for (a, b) in buckets.values() {
        u += b * (below_a + 0.5 * a);
        below_a += a;
        let t = a + b;
        ties += t * t * t - t;
    }
    let n = na + nb;
    let var = na * nb / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)).max(1.0));
    if var <= 0.0 {
        return Some(0.5);
    }
    let z = (u - na * nb / 2.0) / var.sqrt();
    Some(upper_tail(z))
}

/// One-sided p-value that the rate `x2/n2` exceeds `x1/n1` (pooled two-proportion z-test).
pub fn proportion_greater(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<f64> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (n1, n2) = (n1 as f64, n2 as f64);
    let (p1, p2) = (x1 as f64 / n1, x2 as f64 / n2);
    let p = (x1 + x2) as f64 / (n1 + n2);
    let se = (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return Some(if p2 > p1 { 0.0 } else { 1.0 });
    }
    Some(upper_tail((p2 - p1) / se))
}

/// P(Z > z) for a standard normal Z.
pub fn upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: impl Iterator<Item = u64>) -> Histogram<u64> {
        let mut h = histogram(2);
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn normal_tail_is_accurate() {
        assert!((upper_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((upper_tail(1.96) - 0.025).abs() < 1e-4);
        assert!((upper_tail(-1.645) - 0.95).abs() < 1e-4);
    }

    #[test]
    fn mann_whitney_sees_a_shift_and_not_equal_samples() {
        let a = hist((0..2000).map(|i| 1000 + (i * 37) % 1000));
        let same = hist((0..2000).map(|i| 1000 + (i * 53) % 1000));
        let slower = hist((0..2000).map(|i| 1100 + (i * 37) % 1000));
        assert!(mann_whitney_greater(&a, &same).unwrap() > 0.05);
        assert!(mann_whitney_greater(&a, &slower).unwrap() < 1e-6);
        assert!(mann_whitney_greater(&slower, &a).unwrap() > 0.99);
    }

    #[test]
    fn limits_parse_and_reject() {
        let l = Limit::parse_list("p95:+10%, 5xx_rate:+0.5pp").unwrap();
        assert_eq!(
            l,
            vec![
                Limit::Quantile(0.95, 0.1),
                Limit::Rate {
                    server: true,
                    points: 0.5
                }
            ]
        );
        assert!(Limit::parse_list("p95:10").is_err());
        assert!(Limit::parse_list("latency:+10%").is_err());
    }

    #[test]
    fn hex_round_trip_and_specs() {
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 254, 255])).unwrap(),
            vec![0, 1, 254, 255]
        );
        assert!(from_hex("abc").is_none());
        let d = Path::new("data");
        assert_eq!(
            Spec::parse("@2024-01-01..2024-01-02", d).unwrap(),
            Spec::Dataset {
                dir: d.into(),
                since: Some(1_704_067_200_000_000),
                until: Some(1_704_153_600_000_000)
            }
        );
        assert!(Spec::parse("data@2024-01-01", d).is_err());
    }

    #[test]
    fn a_regression_needs_volume_and_significance() {
        let mk = |route: &str, h: Histogram<u64>, c5: u64| Summary {
            route: route.into(),
            counts: Counts {
                requests: h.len(),
                c5xx: c5,
                timed: h.len(),
                ..Counts::default()
            },
            hist: h,
            first: 0,
            last: 60 * super::super::MINUTE_US,
        };
        let opts = CompareOptions {
            limits: Limit::parse_list("p95:+10%,5xx_rate:+1pp").unwrap(),
            min_requests: 100,
            alpha: 0.01,
            significant_digits: 2,
        };
        let base = vec![mk("/a", hist((0..5000).map(|i| 1000 + i % 1000)), 10)];
        let slow = vec![mk("/a", hist((0..5000).map(|i| 1500 + i % 1000)), 10)];
        let c = Comparison::of(&base, &slow, &opts);
        assert!(c.regressed(), "{:?}", c.routes);
        let ok = Comparison::of(&base, &base, &opts);
        assert!(!ok.regressed());
        let few = vec![mk("/a", hist((0..50).map(|i| 3000 + i)), 0)];
        assert!(!Comparison::of(&base, &few, &opts).regressed());
        let failing = vec![mk("/a", hist((0..5000).map(|i| 1000 + i % 1000)), 200)];
        let c = Comparison::of(&base, &failing, &opts);
        assert!(
            c.routes[0].regressions[0].starts_with("5xx"),
            "{:?}",
            c.routes
        );
        assert_eq!(c.table().rows.len(), 1);
    }
}
