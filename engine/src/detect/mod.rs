//! `detect`: anomaly detectors over regular time series, and the series a dataset's statistics give.
//!
//! A [`Series`] is a regular grid of buckets, each with an optional value (a bucket without enough
//! samples has none) and the sample count behind it. Four detectors score each bucket against what
//! was expected: `zscore` (mean and standard deviation of the whole series: the seed's method),
//! `robust` (median and MAD of a trailing window), `ewma` (exponentially weighted mean and variance
//! that adapt slowly, and barely at all to anomalous points), and `seasonal` (the median of the same
//! bucket on previous days, with the residual scored robustly; it needs two days of history).
//! `auto` is `seasonal` where the history allows and `robust` elsewhere. Every score is divided by a
//! noise floor that depends on the metric (Poisson for counts, binomial for rates, a relative floor
//! for latencies), so a perfectly flat baseline cannot make a tiny change look enormous.
//! Anomalous buckets that are adjacent (gaps up to `max_gap`) merge into one [`Event`]; an event
//! needs `min_buckets` buckets unless its peak score is `spike_factor` times the threshold.
//! Detection on a dataset ([`Detector::detect_dataset`]) builds per-bucket p50/p95/p99 latency,
//! request count, and 4xx/5xx rates, for all routes and per route group, from the `stats` table.

pub mod series;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::parse::value::format_rfc3339;

/// `anomaly_detection:` section of the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Score above which a bucket is anomalous (every method's score is z-like).
    pub z_score_threshold: f64,
    /// Width of a bucket (`1m`, `5m`, `1h`; whole minutes).
    pub bucket: String,
    /// Methods `detect` and `run` use.
    pub methods: Vec<Method>,
    /// Buckets of history the trailing methods look at.
    pub window: usize,
    /// Smoothing factor of `ewma` (0-1).
    pub ewma_alpha: f64,
    /// Previous days `seasonal` takes the median of.
    pub seasonal_days: usize,
    /// Requests a bucket needs before its rates are judged (quantile p also needs 5/(1-p) timed
    /// requests: 10 for p50, 100 for p95, 500 for p99).
    pub min_requests: u64,
    /// Anomalous buckets an event needs...
    pub min_buckets: usize,
    /// ...unless its peak score reaches this multiple of the threshold.
    pub spike_factor: f64,
    /// Normal buckets allowed inside one event.
    pub max_gap: usize,
    /// Buckets a trailing method's event is compared with: it must score `novelty_ratio` times
    /// higher than any of them, since an excursion that keeps recurring is the series' normal
    /// behaviour, not news (0: off; the plain z-score is never filtered).
    pub novelty_window: usize,
    /// See `novelty_window`.
    pub novelty_ratio: f64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            z_score_threshold: 3.0,
            bucket: "1m".into(),
            methods: vec![Method::Auto],
            window: 60,
            ewma_alpha: 0.1,
            seasonal_days: 7,
            min_requests: 20,
            min_buckets: 2,
            spike_factor: 3.0,
            max_gap: 1,
            novelty_window: 1000,
            novelty_ratio: 1.5,
        }
    }
}

impl DetectConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.z_score_threshold.is_nan() || self.z_score_threshold <= 0.0 {
            return Err("anomaly_detection.z_score_threshold must be positive".into());
        }
        self.bucket_us()?;
        if self.novelty_ratio.is_nan() || self.novelty_ratio < 1.0 {
            return Err("anomaly_detection.novelty_ratio must be at least 1".into());
        }
        if self.window < 4 {
            return Err("anomaly_detection.window must be at least 4 buckets".into());
        }
        if self.ewma_alpha.is_nan() || self.ewma_alpha <= 0.0 || self.ewma_alpha >= 1.0 {
            return Err("anomaly_detection.ewma_alpha must be between 0 and 1".into());
        }
        if self.min_buckets == 0 || self.seasonal_days == 0 {
            return Err(
                "anomaly_detection.min_buckets and seasonal_days must be at least 1".into(),
            );
        }
        if self.methods.is_empty() {
            return Err("anomaly_detection.methods must name at least one method".into());
        }
        Ok(())
    }

    /// The bucket width in µs.
    pub fn bucket_us(&self) -> std::result::Result<i64, String> {
        match crate::parse::value::parse_span(&self.bucket) {
            Some(us) if us > 0 && us % crate::stats::MINUTE_US == 0 => Ok(us),
            _ => Err(format!(
                "anomaly_detection.bucket `{}` must be whole minutes, like 1m, 5m or 1h",
                self.bucket
            )),
        }
    }
}

/// A detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Mean and standard deviation of the whole series.
    Zscore,
    /// Median and MAD of a trailing window.
    Robust,
    /// Exponentially weighted mean and variance.
    Ewma,
    /// Same bucket on previous days; needs two days of history.
    Seasonal,
    /// `seasonal` where the history allows, `robust` elsewhere.
    Auto,
}

impl Method {
    /// Every concrete method (what `--method all` runs).
    pub const ALL: [Method; 5] = [
        Method::Zscore,
        Method::Robust,
        Method::Ewma,
        Method::Seasonal,
        Method::Auto,
    ];

    /// The method's name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Zscore => "zscore",
            Method::Robust => "robust",
            Method::Ewma => "ewma",
            Method::Seasonal => "seasonal",
            Method::Auto => "auto",
        }
    }

    /// Parses a method name.
    pub fn parse(s: &str) -> Result<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "unknown detection method `{s}`; methods: zscore, robust, ewma, seasonal, auto, all"
                ))
            })
    }
}

/// What a series measures; decides the noise floor and which direction is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Metric {
    /// Median latency, µs.
    P50,
    /// 95th percentile latency, µs.
    P95,
    /// 99th percentile latency, µs.
    P99,
    /// Requests per bucket.
    Requests,
    /// Share of 4xx responses.
    ClientErrors,
    /// Share of 5xx responses.
    ServerErrors,
    /// A series read from a file: both directions, relative floor.
    Value,
}

impl Metric {
    /// The metrics detection runs on a dataset.
    pub const DATASET: [Metric; 6] = [
        Metric::P50,
        Metric::P95,
        Metric::P99,
        Metric::Requests,
        Metric::ClientErrors,
        Metric::ServerErrors,
    ];

    /// The metric's name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::P50 => "p50",
            Metric::P95 => "p95",
            Metric::P99 => "p99",
            Metric::Requests => "requests",
            Metric::ClientErrors => "4xx_rate",
            Metric::ServerErrors => "5xx_rate",
            Metric::Value => "value",
        }
    }

    /// What the metric measures, which alerts group by: `latency` (the quantiles), `traffic`,
    /// `errors` (the rates) or `value`.
    pub fn family(self) -> &'static str {
        match self {
            Metric::P50 | Metric::P95 | Metric::P99 => "latency",
            Metric::Requests => "traffic",
            Metric::ClientErrors | Metric::ServerErrors => "errors",
            Metric::Value => "value",
        }
    }

    /// Parses a metric name.
    pub fn parse(s: &str) -> Result<Metric> {
        Metric::DATASET
            .into_iter()
            .chain([Metric::Value])
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "unknown metric `{s}`; metrics: p50, p95, p99, requests, 4xx_rate, 5xx_rate"
                ))
            })
    }

    /// Whether a drop is as anomalous as a rise (traffic and generic series) or only a rise is.
    fn both_ways(self) -> bool {
        matches!(self, Metric::Requests | Metric::Value)
    }

    /// The score of `x` against `expected`, given the baseline's spread (`scale`: 1.4826 MAD or
    /// a standard deviation), its mean, and the samples behind `x`. The spread is never trusted
    /// below the sampling noise of the statistic itself: for latency quantiles the standard error
    /// of a quantile of `n` lognormal samples (sigma 1: 1.25, 2.1 and 3.7 times the value over
    /// the square root of `n` for p50, p95 and p99) and at least 1 ms (logs often have millisecond
    /// resolution); for counts and rates the Freeman-Tukey deviate of a Poisson count, which stays
    /// honest for the small counts where a normal approximation makes two errors look alarming
    /// (a rate whose median is 0 is judged against its mean).
    fn score(self, x: f64, expected: f64, mean: f64, scale: f64, n: f64) -> f64 {
        let n = n.max(1.0);
        let quantile =
            |k: f64| (x - expected) / scale.max(expected.abs() * k / n.sqrt()).max(1000.0);
        let counts = |x: f64, lambda: f64, scale: f64| {
            let ft = x.max(0.0).sqrt() + (x.max(0.0) + 1.0).sqrt()
                - (4.0 * lambda.max(0.0) + 1.0).sqrt();
            let z = (x - lambda) / scale;
            if scale > 0.0 && z.abs() < ft.abs() {
                z
            } else {
                ft
            }
        };
        match self {
            Metric::P50 => quantile(1.25),
            Metric::P95 => quantile(2.1),
            Metric::P99 => quantile(3.7),
            Metric::Requests => counts(x, expected, scale),
            Metric::ClientErrors | Metric::ServerErrors => {
                // A rare status has a median rate of 0; its mean says how rare it is.
                let p = if expected > 0.0 { expected } else { mean };
                counts(x * n, p * n, scale * n)
            }
            Metric::Value => (x - expected) / scale.max(1e-3 * expected.abs()).max(1e-9),
        }
    }
}

/// A regular series of buckets.
#[derive(Debug, Clone)]
pub struct Series {
    /// What it measures.
    pub metric: Metric,
    /// Route group (`*`: every route; the file name for `--series`).
    pub route: String,
    /// Start of the first bucket, µs since the epoch.
    pub start: i64,
    /// Bucket width, µs.
    pub step: i64,
    /// Value per bucket (`None`: no data or too few samples).
    pub values: Vec<Option<f64>>,
    /// Samples behind each value.
    pub samples: Vec<f64>,
}

/// How bad an event is, from its peak score against the threshold `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Peak score below 2t.
    Low,
    /// Peak score from 2t.
    Medium,
    /// Peak score from 4t.
    High,
}

impl Severity {
    /// The severity's name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// An anomaly: adjacent anomalous buckets of one series and method.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Start of the first anomalous bucket, µs.
    #[serde(skip)]
    pub start_us: i64,
    /// End of the last anomalous bucket, µs.
    #[serde(skip)]
    pub end_us: i64,
    /// `start_us` as ISO 8601.
    pub start: String,
    /// `end_us` as ISO 8601.
    pub end: String,
    /// The metric's name.
    pub metric: String,
    /// The route group.
    pub route: String,
    /// The method that found it.
    pub method: String,
    /// Expected value at the peak.
    pub expected: f64,
    /// Observed value at the peak.
    pub observed: f64,
    /// Peak score (negative: a drop).
    pub score: f64,
    /// Severity of the peak.
    pub severity: Severity,
    /// Anomalous buckets in it.
    pub buckets: usize,
}

/// Scores series and merges anomalous buckets into events; see the module docs.
pub struct Detector {
    cfg: DetectConfig,
}

/// Expected value and score of one bucket.
type Scored = Option<(f64, f64)>;

impl Detector {
    /// A detector with these settings.
    pub fn new(cfg: DetectConfig) -> Result<Detector> {
        cfg.validate().map_err(Error::Usage)?;
        Ok(Detector { cfg })
    }

    /// The settings.
    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }

    /// The events `method` finds in `series`, oldest first.
    pub fn detect(&self, series: &Series, method: Method) -> Vec<Event> {
        let scores = self.score(series, method);
        self.events(series, method, &scores)
    }

    /// Expected value and score of every bucket.
    pub fn score(&self, s: &Series, method: Method) -> Vec<Scored> {
        match method {
            Method::Zscore => self.zscore(s),
            Method::Robust => self.robust(s, None, None),
            Method::Ewma => self.ewma(s),
            Method::Seasonal => self
                .seasonal(s)
                .unwrap_or_else(|| vec![None; s.values.len()]),
            // The seasonal score where history allows, the robust one elsewhere.
            Method::Auto => match self.seasonal(s) {
                Some(seasonal) => {
                    let robust = self.robust(s, None, Some(&seasonal));
                    seasonal
                        .into_iter()
                        .zip(robust)
                        .map(|(a, b)| a.or(b))
                        .collect()
                }
                None => self.robust(s, None, None),
            },
        }
    }

    fn zscore(&self, s: &Series) -> Vec<Scored> {
        let vals: Vec<f64> = s.values.iter().flatten().copied().collect();
        if vals.len() < 2 {
            return vec![None; s.values.len()];
        }
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        s.values
            .iter()
            .zip(&s.samples)
            .map(|(v, n)| v.map(|v| (mean, s.metric.score(v, mean, mean, sd, *n))))
            .collect()
    }

    /// Trailing median/MAD; with `base`, scores the residual `value - base` instead.
    /// Buckets that `known` already scores are only added to the window.
    fn robust(
        &self,
        s: &Series,
        base: Option<&[Option<f64>]>,
        known: Option<&[Scored]>,
    ) -> Vec<Scored> {
        let w = self.cfg.window;
        let min_hist = (w / 2).max(4);
        let floor = global_floor(s, base);
        let mut window = Window::new(w);
        let mut out = Vec::with_capacity(s.values.len());
        // Past the last bucket `known` leaves open, nothing is left to score.
        let end = known.map_or(s.values.len(), |k| {
            k.iter().rposition(Option::is_none).map_or(0, |i| i + 1)
        });
        for (i, v) in s.values.iter().enumerate().take(end) {
            let b = base.map(|b| b[i]);
            let x = match (v, b) {
                (Some(v), None) => Some(*v),
                (Some(v), Some(Some(b))) => Some(v - b),
                _ => None,
            };
            let Some(x) = x else {
                out.push(None);
                continue;
            };
            let todo = known.is_none_or(|k| k[i].is_none());
            let scored = (todo && window.len() >= min_hist).then(|| {
                let (med, mad) = window.median_mad();
                let level = b.flatten().unwrap_or(0.0);
                let expected = level + med;
                let mean = level + window.mean();
                // Latency and counts are skewed: a rise is judged by the spread above the median
                // (its distance to the 90th percentile), a drop by the spread below it.
                let tail = window.tail_scale(x >= med);
                let score = s.metric.score(
                    level + x,
                    expected,
                    mean,
                    (1.4826 * mad).max(tail).max(floor),
                    s.samples[i],
                );
                (expected, score)
            });
            out.push(scored);
            window.push(x);
        }
        out.resize(s.values.len(), None);
        out
    }

    fn ewma(&self, s: &Series) -> Vec<Scored> {
        let a = self.cfg.ewma_alpha;
        let warm = (self.cfg.window / 2).max(4);
        let floor = global_floor(s, None);
        let t = self.cfg.z_score_threshold;
        let mut seen: Vec<f64> = Vec::with_capacity(warm);
        let (mut mean, mut var) = (0.0, 0.0);
        let mut out = Vec::with_capacity(s.values.len());
        for (v, n) in s.values.iter().zip(&s.samples) {
            let Some(x) = *v else {
                out.push(None);
                continue;
            };
            if seen.len() < warm {
                seen.push(x);
                if seen.len() == warm {
                    mean = seen.iter().sum::<f64>() / warm as f64;
                    var = seen.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / warm as f64;
                }
                out.push(None);
                continue;
            }
            let z = s.metric.score(x, mean, mean, var.sqrt().max(floor), *n);
            out.push(Some((mean, z)));
            // Anomalous points barely move the baseline, so an event does not hide itself.
            let a = if z.abs() >= t { a / 10.0 } else { a };
            let d = x - mean;
            mean += a * d;
            var = (1.0 - a) * (var + a * d * d);
        }
        out
    }

    /// Median of the same bucket on up to `seasonal_days` previous days, residual scored robustly.
    fn seasonal(&self, s: &Series) -> Option<Vec<Scored>> {
        let period = (86_400_000_000 / s.step) as usize;
        if period == 0 || s.values.len() < 2 * period + self.cfg.window {
            return None;
        }
        let mut base = vec![None; s.values.len()];
        let mut prev = Vec::with_capacity(self.cfg.seasonal_days);
        for (i, b) in base.iter_mut().enumerate() {
            prev.clear();
            prev.extend(
                (1..=self.cfg.seasonal_days)
                    .filter_map(|k| i.checked_sub(k * period))
                    .filter_map(|j| s.values[j]),
            );
            if prev.len() >= 2 {
                prev.sort_by(f64::total_cmp);
                *b = Some(median_sorted(&prev));
            }
        }
        Some(self.robust(s, Some(&base), None))
    }

    fn events(&self, s: &Series, method: Method, scores: &[Scored]) -> Vec<Event> {
        let t = self.cfg.z_score_threshold;
        let both = s.metric.both_ways();
        let hit = |score: f64| if both { score.abs() >= t } else { score >= t };
        let mut events = Vec::new();
        let mut current: Option<(usize, usize, usize, usize)> = None; // first, last, count, peak
        let close = |c: (usize, usize, usize, usize), events: &mut Vec<Event>| {
            let (first, last, count, peak) = c;
            let (expected, score) = scores[peak].expect("peak was scored");
            if count < self.cfg.min_buckets && score.abs() < self.cfg.spike_factor * t {
                return;
            }
            let start_us = s.start + first as i64 * s.step;
            let end_us = s.start + (last as i64 + 1) * s.step;
            let severity = match score.abs() / t {
                r if r >= 4.0 => Severity::High,
                r if r >= 2.0 => Severity::Medium,
                _ => Severity::Low,
            };
            events.push(Event {
                start_us,
                end_us,
                start: format_rfc3339(start_us),
                end: format_rfc3339(end_us),
                metric: s.metric.name().to_string(),
                route: s.route.clone(),
                method: method.name().to_string(),
                expected,
                observed: s.values[peak].expect("peak has a value"),
                score,
                severity,
                buckets: count,
            });
        };
        // The largest |score| of the last `novelty_window` buckets, as a decreasing deque.
        let window = if method == Method::Zscore {
            0
        } else {
            self.cfg.novelty_window
        };
        let mut recent: std::collections::VecDeque<(usize, f64)> = Default::default();
        for (i, sc) in scores.iter().enumerate() {
            let Some((_, score)) = sc else { continue };
            let size = score.abs();
            while recent.front().is_some_and(|(j, _)| i - j > window) {
                recent.pop_front();
            }
            let before = recent.front().map_or(0.0, |(_, m)| *m);
            let novel = window == 0 || current.is_some() || size >= self.cfg.novelty_ratio * before;
            while recent.back().is_some_and(|(_, m)| *m <= size) {
                recent.pop_back();
            }
            recent.push_back((i, size));
            if !hit(*score) || !novel {
                if let Some(c) = current
                    && i - c.1 > self.cfg.max_gap
                {
                    close(c, &mut events);
                    current = None;
                }
                continue;
            }
            current = Some(match current {
                Some(c) if i - c.1 <= self.cfg.max_gap + 1 => {
                    let peak = if score.abs() > scores[c.3].expect("scored").1.abs() {
                        i
                    } else {
                        c.3
                    };
                    (c.0, i, c.2 + 1, peak)
                }
                Some(c) => {
                    close(c, &mut events);
                    (i, i, 1, i)
                }
                None => (i, i, 1, i),
            });
        }
        if let Some(c) = current {
            close(c, &mut events);
        }
        events
    }
}

/// For a series of unknown kind, a trailing window can be flat (a quantised or idle metric) and
/// make any change look infinite: its spread is never taken below half the robust spread of the
/// whole series (of the residuals, with a seasonal base). Metrics with a known noise model need
/// no such floor.
fn global_floor(s: &Series, base: Option<&[Option<f64>]>) -> f64 {
    if s.metric != Metric::Value {
        return 0.0;
    }
    let mut v: Vec<f64> = s
        .values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match base {
            Some(b) => Some((*v)? - b[i]?),
            None => *v,
        })
        .collect();
    if v.len() < 2 {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let med = median_sorted(&v);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = 1.4826 * median_sorted(&dev);
    let spread = if mad > 0.0 {
        mad
    } else {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    };
    GLOBAL_FLOOR * spread
}

/// Share of a whole series' spread below which a window's spread is not trusted.
const GLOBAL_FLOOR: f64 = 0.5;

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A trailing window kept sorted, for O(window) median and MAD.
struct Window {
    cap: usize,
    order: std::collections::VecDeque<f64>,
    sorted: Vec<f64>,
    sum: f64,
}

impl Window {
    fn new(cap: usize) -> Window {
        Window {
            cap,
            order: std::collections::VecDeque::with_capacity(cap + 1),
            sorted: Vec::with_capacity(cap + 1),
            sum: 0.0,
        }
    }

    fn len(&self) -> usize {
        self.sorted.len()
    }

    fn mean(&self) -> f64 {
        self.sum / self.sorted.len().max(1) as f64
    }

    /// The spread on one side of the median: the distance to the 90th (or 10th) percentile, in
    /// standard deviations of a normal distribution.
    fn tail_scale(&self, upper: bool) -> f64 {
        let v = &self.sorted;
        let n = v.len();
        if n < 2 {
            return 0.0;
        }
        let med = median_sorted(v);
        let at = |q: f64| v[((q * (n - 1) as f64).round() as usize).min(n - 1)];
        let d = if upper { at(0.9) - med } else { med - at(0.1) };
        d / 1.2816
    }

    fn push(&mut self, x: f64) {
        if self.order.len() == self.cap {
            let old = self.order.pop_front().expect("full window");
            self.sum -= old;
            let at = self.sorted.partition_point(|v| v.total_cmp(&old).is_lt());
            self.sorted.remove(at);
        }
        self.order.push_back(x);
        self.sum += x;
        let at = self.sorted.partition_point(|v| v.total_cmp(&x).is_lt());
        self.sorted.insert(at, x);
    }

    /// Median, and the median absolute deviation from it (walking outwards from the median).
    fn median_mad(&self) -> (f64, f64) {
        let v = &self.sorted;
        let n = v.len();
        let med = median_sorted(v);
        // The k smallest deviations lie in a contiguous run around the median.
        let k = n / 2 + 1;
        let lo = v.partition_point(|x| *x < med);
        // The deviations below the median, read outwards, and those above it are two sorted
        // runs: the k-th smallest of both is found by bisection instead of a walk.
        let below = |j: usize| med - v[lo - 1 - j];
        let above = |j: usize| v[lo + j] - med;
        let kth = |k: usize| kth_of_two(&below, lo, &above, n - lo, k);
        let mad = match n {
            0 => 0.0,
            _ if n % 2 == 1 => kth(k),
            _ => (kth(k - 1) + kth(k)) / 2.0,
        };
        (med, mad)
    }
}

/// The `k`-th smallest (from 1) of two ascending runs `a` (`na` long) and `b` (`nb` long).
fn kth_of_two(
    a: &impl Fn(usize) -> f64,
    na: usize,
    b: &impl Fn(usize) -> f64,
    nb: usize,
    k: usize,
) -> f64 {
    debug_assert!(k >= 1 && k <= na + nb);
    // i elements come from `a`, k - i from `b`.
    let (mut lo, mut hi) = (k.saturating_sub(nb), k.min(na));
    while lo < hi {
        let i = (lo + hi) / 2;
        if a(i) < b(k - i - 1) {
            lo = i + 1;
        } else {
            hi = i;
        }
    }
    let from_a = (lo > 0).then(|| a(lo - 1));
    let from_b = (k > lo).then(|| b(k - lo - 1));
    match (from_a, from_b) {
        (Some(x), Some(y)) => x.max(y),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => 0.0,
    }
}

/// Window-level precision and recall of events against labelled windows (`[start, end]`, µs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WindowScore {
    /// Labelled windows.
    pub windows: usize,
    /// Windows that at least one event overlaps.
    pub found: usize,
    /// Events.
    pub events: usize,
    /// Events that overlap a window.
    pub true_events: usize,
}

impl WindowScore {
    /// Scores `events` (start, end) against `windows`.
    pub fn of(events: &[(i64, i64)], windows: &[(i64, i64)]) -> WindowScore {
        let overlaps = |e: &(i64, i64), w: &(i64, i64)| e.0 <= w.1 && w.0 <= e.1;
        WindowScore {
            windows: windows.len(),
            found: windows
                .iter()
                .filter(|w| events.iter().any(|e| overlaps(e, w)))
                .count(),
            events: events.len(),
            true_events: events
                .iter()
                .filter(|e| windows.iter().any(|w| overlaps(e, w)))
                .count(),
        }
    }

    /// Adds another score.
    pub fn add(&mut self, o: WindowScore) {
        self.windows += o.windows;
        self.found += o.found;
        self.events += o.events;
        self.true_events += o.true_events;
    }

    /// Share of events that overlap a window (1 without events).
    pub fn precision(&self) -> f64 {
        if self.events == 0 {
            1.0
        } else {
            self.true_events as f64 / self.events as f64
        }
    }

    /// Share of windows found (1 without windows).
    pub fn recall(&self) -> f64 {
        if self.windows == 0 {
            1.0
        } else {
            self.found as f64 / self.windows as f64
        }
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: Vec<f64>, metric: Metric) -> Series {
        let n = values.len();
        Series {
            metric,
            route: "*".into(),
            start: 0,
            step: 60_000_000,
            values: values.into_iter().map(Some).collect(),
            samples: vec![1000.0; n],
        }
    }

    fn noisy(n: usize, level: f64, seed: u64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                level * (1.0 + ((x >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.1)
            })
            .collect()
    }

    #[test]
    fn window_median_and_mad_match_a_sort() {
        let mut w = Window::new(7);
        for x in [5.0, 1.0, 9.0, 3.0, 3.0, 8.0, 2.0, 7.0, 4.0] {
            w.push(x);
        }
        // Holds the last seven: 9 3 3 8 2 7 4 -> sorted 2 3 3 4 7 8 9, median 4.
        let (med, mad) = w.median_mad();
        assert_eq!(med, 4.0);
        // Deviations 2 1 1 0 3 4 5 -> sorted 0 1 1 2 3 4 5, median 2.
        assert_eq!(mad, 2.0);
    }

    #[test]
    fn window_mad_matches_sorting_the_deviations() {
        fn median(v: &mut [f64]) -> f64 {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        }
        for cap in 1..40 {
            let mut w = Window::new(cap);
            // Few distinct values, so that ties around the median are common.
            for (i, x) in noisy(120, 10.0, cap as u64).into_iter().enumerate() {
                w.push(if i % 3 == 0 { x.round() } else { x });
                let mut vals = w.sorted.clone();
                let med = median(&mut vals);
                let mut devs: Vec<f64> = vals.iter().map(|v| (v - med).abs()).collect();
                assert_eq!(
                    w.median_mad(),
                    (med, median(&mut devs)),
                    "window {cap}, step {i}"
                );
            }
        }
    }

    #[test]
    fn every_method_finds_a_level_shift_and_not_noise() {
        let mut v = noisy(600, 100_000.0, 7);
        for x in &mut v[400..410] {
            *x *= 3.0;
        }
        let s = series(v, Metric::P95);
        let d = Detector::new(DetectConfig::default()).unwrap();
        for m in [Method::Zscore, Method::Robust, Method::Ewma, Method::Auto] {
            let ev = d.detect(&s, m);
            assert_eq!(ev.len(), 1, "{m:?}: {ev:?}");
            assert_eq!(ev[0].start_us, 400 * 60_000_000, "{m:?}");
            // A trailing window absorbs a long shift into its upper tail: the event may end early.
            assert!(
                (405 * 60_000_000..=410 * 60_000_000).contains(&ev[0].end_us),
                "{m:?}: {ev:?}"
            );
            assert!(ev[0].score > 3.0);
        }
    }

    #[test]
    fn latency_drops_are_not_anomalies_but_traffic_drops_are() {
        let mut v = noisy(300, 1000.0, 3);
        for x in &mut v[200..205] {
            *x *= 0.2;
        }
        let d = Detector::new(DetectConfig::default()).unwrap();
        assert!(
            d.detect(&series(v.clone(), Metric::P50), Method::Robust)
                .is_empty()
        );
        let ev = d.detect(&series(v, Metric::Requests), Method::Robust);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].score < 0.0);
    }

    #[test]
    fn seasonal_needs_two_days_and_learns_the_daily_shape() {
        let day = 1440;
        let v: Vec<f64> = (0..4 * day)
            .map(|i| {
                let peak = (i % day) >= 600 && (i % day) < 660;
                if peak {
                    5000.0
                } else {
                    1000.0 + (i % 7) as f64
                }
            })
            .collect();
        let d = Detector::new(DetectConfig::default()).unwrap();
        let s = series(v, Metric::Requests);
        assert!(d.detect(&s, Method::Seasonal).is_empty());
        // The robust window sees the daily peak as new every day.
        assert!(!d.detect(&s, Method::Robust).is_empty());
        let short = series(
            s.values[..day].iter().flatten().copied().collect(),
            Metric::Requests,
        );
        assert!(d.seasonal(&short).is_none());
    }

    #[test]
    fn a_single_bucket_needs_a_spike_and_flat_series_do_not_explode() {
        let mut v = vec![10.0; 200];
        v[150] = 10.5;
        let d = Detector::new(DetectConfig::default()).unwrap();
        assert!(
            d.detect(&series(v.clone(), Metric::Requests), Method::Robust)
                .is_empty()
        );
        v[150] = 100.0;
        let ev = d.detect(&series(v, Metric::Requests), Method::Robust);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].buckets, 1);
        assert_eq!(ev[0].severity, Severity::High);
    }

    #[test]
    fn window_scores() {
        let s = WindowScore::of(&[(0, 10), (100, 110), (500, 510)], &[(5, 20), (200, 300)]);
        assert_eq!((s.found, s.true_events), (1, 1));
        assert!((s.precision() - 1.0 / 3.0).abs() < 1e-9);
        assert!((s.recall() - 0.5).abs() < 1e-9);
    }
}
