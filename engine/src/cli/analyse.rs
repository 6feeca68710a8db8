//! `detect`, `compare` and `stats`: the commands over the dataset's latency statistics.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use logcrunch::Error;
use logcrunch::catalog::Table;
use logcrunch::catalog::{self, Catalog};
use logcrunch::config::Config;
use logcrunch::detect::series::{DatasetScan, dataset_events, detect_all, read_series, store};
use logcrunch::detect::{Detector, Event, Method, Metric};
use logcrunch::parse::value::parse_time_arg;
use logcrunch::report::{OutputFormat, write_table};
use logcrunch::stats::compare::{CompareOptions, Comparison, Limit, Spec, snapshot};
use logcrunch::stats::{Range, StatsReader, ratio};

/// Exit code of `compare` when a route regressed beyond `--max-regression`.
pub const EXIT_REGRESSION: i32 = 3;

#[derive(Args, Debug)]
pub struct DetectArgs {
    /// Dataset directory, or s3://BUCKET/PREFIX on object storage (default: storage.dataset of
    /// the config).
    #[arg(long, value_name = "DIR|URL", value_parser = logcrunch::catalog::remote::dataset_location)]
    dataset: Option<PathBuf>,
    /// Only buckets at or after T (2024-01-31, 2024-01-31T12:00:00Z, or 24h / 7d ago).
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Only buckets before T.
    #[arg(long, value_name = "T")]
    until: Option<String>,
    /// Metrics (default: all): p50, p95, p99, requests, 4xx_rate, 5xx_rate.
    #[arg(long, value_name = "M", value_delimiter = ',')]
    metric: Vec<String>,
    /// Methods (default: anomaly_detection.methods): zscore, robust, ewma, seasonal, auto, all.
    #[arg(long, value_name = "M", value_delimiter = ',')]
    method: Vec<String>,
    /// Only these route groups (`*` for all routes together; default: all routes and every group).
    #[arg(long, value_name = "R")]
    route: Vec<String>,
    /// Bucket width (default: anomaly_detection.bucket), whole minutes: 1m, 5m, 1h.
    #[arg(long, value_name = "D")]
    bucket: Option<String>,
    /// Score a `timestamp,value` CSV file instead of a dataset (nothing is stored).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dataset", "metric", "route", "bucket"])]
    series: Option<PathBuf>,
    /// Do not store the events in the catalog.
    #[arg(long)]
    no_store: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The baseline: DIR, DIR@SINCE..UNTIL, @SINCE..UNTIL (the default dataset) or a snapshot file;
    /// DIR may be an s3:// URL.
    #[arg(long, value_name = "SPEC")]
    baseline: String,
    /// The period to judge, in the same forms.
    #[arg(long, value_name = "SPEC")]
    current: String,
    /// Limits that make the command exit 3, e.g. p95:+10%,p99:+20%,5xx_rate:+0.5pp.
    #[arg(long, value_name = "LIMITS")]
    max_regression: Option<String>,
    /// Requests both periods need before a route is judged.
    #[arg(long, value_name = "N", default_value_t = 100)]
    min_requests: u64,
    /// Significance level of the tests.
    #[arg(long, value_name = "P", default_value_t = 0.01)]
    alpha: f64,
    /// Dataset of `@` specs, a directory or s3://BUCKET/PREFIX (default: storage.dataset of the
    /// config).
    #[arg(long, value_name = "DIR|URL", value_parser = logcrunch::catalog::remote::dataset_location)]
    dataset: Option<PathBuf>,
    /// Output format (`html`: one page, the regressed routes highlighted).
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum StatsCommand {
    /// Latency percentiles, traffic and error rates per route group, from the histograms.
    Show(StatsRangeArgs),
    /// Save the histograms of a period as a baseline file for `compare`.
    Snapshot {
        #[command(flatten)]
        range: StatsRangeArgs,
        /// The snapshot file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct StatsRangeArgs {
    /// Dataset directory, or s3://BUCKET/PREFIX on object storage (default: storage.dataset of
    /// the config).
    #[arg(long, value_name = "DIR|URL", value_parser = logcrunch::catalog::remote::dataset_location)]
    dataset: Option<PathBuf>,
    /// From T (2024-01-31, 2024-01-31T12:00:00Z, or 24h / 7d ago).
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Until T.
    #[arg(long, value_name = "T")]
    until: Option<String>,
    /// Only these route groups (`*`: all routes together).
    #[arg(long, value_name = "R")]
    route: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

fn time(flag: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    v.as_deref()
        .map(|t| {
            parse_time_arg(t).ok_or_else(|| {
                Error::Usage(format!(
                    "--{flag} `{t}` is not a time: use 2024-01-31, 2024-01-31T12:00:00Z or 24h"
                ))
                .into()
            })
        })
        .transpose()
}

fn methods_of(names: &[String], config: &Config) -> anyhow::Result<Vec<Method>> {
    if names.is_empty() {
        return Ok(config.anomaly_detection.methods.clone());
    }
    if names.iter().any(|n| n == "all") {
        return Ok(Method::ALL.to_vec());
    }
    Ok(names
        .iter()
        .map(|n| Method::parse(n))
        .collect::<Result<_, _>>()?)
}

/// Events as a table: the JSON form is a list of objects with ISO 8601 `start` and `end`.
pub fn events_table(events: &[Event]) -> Table {
    let columns = [
        "start", "end", "metric", "route", "method", "expected", "observed", "score", "severity",
        "buckets",
    ]
    .map(String::from)
    .to_vec();
    let round = |x: f64, d: i32| {
        let m = 10f64.powi(d);
        json!((x * m).round() / m)
    };
    let rows = events
        .iter()
        .map(|e| {
            vec![
                json!(e.start),
                json!(e.end),
                json!(e.metric),
                json!(e.route),
                json!(e.method),
                round(e.expected, 4),
                round(e.observed, 4),
                round(e.score, 2),
                json!(e.severity.name()),
                json!(e.buckets),
            ]
        })
        .collect();
    Table { columns, rows }
}

/// What detection on a dataset found and stored.
pub struct Detection {
    /// The events.
    pub events: Vec<Event>,
    /// How many were first detected now.
    pub new: u64,
}

/// Detects over `since..until` of `dataset` and stores the events that start in
/// `store_range` (none when `None`).
#[allow(clippy::too_many_arguments)]
pub fn detect_dataset(
    config: &Config,
    dataset: &Path,
    since: Option<i64>,
    until: Option<i64>,
    metrics: &[Metric],
    methods: &[Method],
    routes: Vec<String>,
    bucket: Option<&str>,
    store_as: Option<(&str, (i64, i64))>,
) -> anyhow::Result<Detection> {
    let mut cfg = config.anomaly_detection.clone();
    if let Some(b) = bucket {
        cfg.bucket = b.to_string();
    }
    let detector = Detector::new(cfg)?;
    let bucket_us = detector.config().bucket_us().map_err(Error::Usage)?;
    let range = Range {
        since,
        until,
        routes,
    };
    let cat = Catalog::open(dataset)?;
    let manifest = catalog::manifest::Manifest::load(dataset)?;
    let files: Vec<PathBuf> = manifest
        .files
        .iter()
        .filter(|f| f.table == logcrunch::stats::STATS_TABLE)
        .map(|f| dataset.join(&f.path))
        .collect();
    let events = dataset_events(
        &cat,
        &detector,
        &DatasetScan {
            range: &range,
            bucket_us,
            metrics,
            methods,
            sigfig: config.stats.significant_digits,
            files: &files,
        },
    )?;
    drop(cat);
    let mut new = 0;
    if let Some((run, (from, to))) = store_as {
        let stored: Vec<Event> = events
            .iter()
            .filter(|e| e.start_us >= from && e.start_us < to)
            .cloned()
            .collect();
        let (_lock, cat) = catalog::open_writer(dataset)?;
        new = store(&cat, &stored, run, (from, to), metrics, methods)?;
    }
    Ok(Detection { events, new })
}

pub fn detect(config: &Config, a: DetectArgs) -> anyhow::Result<i32> {
    let methods = methods_of(&a.method, config)?;
    let events = if let Some(path) = &a.series {
        let detector = Detector::new(config.anomaly_detection.clone())?;
        let s = read_series(path)?;
        detect_all(&detector, &[s], &methods)
    } else {
        let since = time("since", &a.since)?;
        let until = time("until", &a.until)?;
        let dataset = catalog::remote::readable(
            &a.dataset.unwrap_or_else(|| config.storage.dataset.clone()),
            &catalog::remote::Days::between(since, until),
        )?;
        let metrics: Vec<Metric> = if a.metric.is_empty() {
            Metric::DATASET.to_vec()
        } else {
            a.metric
                .iter()
                .map(|m| Metric::parse(m))
                .collect::<Result<_, _>>()?
        };
        let run = format!("detect-{}", logcrunch::parse::value::now_us());
        let range = (since.unwrap_or(i64::MIN / 2), until.unwrap_or(i64::MAX / 2));
        let d = detect_dataset(
            config,
            &dataset,
            since,
            until,
            &metrics,
            &methods,
            a.route,
            a.bucket.as_deref(),
            (!a.no_store).then_some((run.as_str(), range)),
        )?;
        d.events
    };
    let mut out = std::io::stdout().lock();
    write_table(&events_table(&events), a.format, &mut out)?;
    Ok(0)
}

pub fn compare(config: &Config, a: CompareArgs) -> anyhow::Result<i32> {
    let default = a.dataset.unwrap_or_else(|| config.storage.dataset.clone());
    let sigfig = config.stats.significant_digits;
    let base = Spec::parse(&a.baseline, &default)?
        .load(sigfig)
        .context("--baseline")?;
    let cur = Spec::parse(&a.current, &default)?
        .load(sigfig)
        .context("--current")?;
    if base.is_empty() || cur.is_empty() {
        return Err(Error::Usage(format!(
            "the {} period has no statistics; check its time range, or re-ingest logs written before stats were recorded with --force",
            if base.is_empty() { "baseline" } else { "current" }
        ))
        .into());
    }
    if !(a.alpha > 0.0 && a.alpha < 1.0) {
        return Err(Error::Usage("--alpha must be between 0 and 1".into()).into());
    }
    let opts = CompareOptions {
        limits: a
            .max_regression
            .as_deref()
            .map(Limit::parse_list)
            .transpose()?
            .unwrap_or_default(),
        min_requests: a.min_requests,
        alpha: a.alpha,
        significant_digits: sigfig,
    };
    let c = Comparison::of(&base, &cur, &opts);
    let mut out: Box<dyn Write> = match &a.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    if a.format == OutputFormat::Json {
        let v = json!({
            "baseline": a.baseline,
            "current": a.current,
            "limits": a.max_regression,
            "regressed": c.regressed(),
            "routes": c.table().to_objects(),
        });
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else if a.format == OutputFormat::Html {
        let about = [
            ("Baseline", a.baseline.clone()),
            ("Current", a.current.clone()),
            (
                "Limits",
                a.max_regression.clone().unwrap_or_else(|| "none".into()),
            ),
            ("Significance level", a.alpha.to_string()),
            ("Minimum requests", a.min_requests.to_string()),
        ];
        logcrunch::report::html::write_comparison(&about, c.regressed(), &c.table(), &mut out)?;
    } else {
        write_table(&c.table(), a.format, &mut out)?;
    }
    out.flush()?;
    if c.regressed() {
        let names: Vec<&str> = c
            .routes
            .iter()
            .filter(|r| !r.regressions.is_empty())
            .map(|r| r.route.as_str())
            .collect();
        eprintln!(
            "logcrunch: {} route(s) regressed beyond --max-regression: {}",
            names.len(),
            names.join(", ")
        );
        return Ok(EXIT_REGRESSION);
    }
    Ok(0)
}

pub fn stats(config: &Config, cmd: StatsCommand) -> anyhow::Result<i32> {
    let sigfig = config.stats.significant_digits;
    let (a, output) = match cmd {
        StatsCommand::Show(a) => (a, None),
        StatsCommand::Snapshot { range, output } => (range, Some(output)),
    };
    let range = Range {
        since: time("since", &a.since)?,
        until: time("until", &a.until)?,
        routes: a.route,
    };
    let dataset = catalog::remote::readable(
        &a.dataset.unwrap_or_else(|| config.storage.dataset.clone()),
        &catalog::remote::Days::between(range.since, range.until),
    )?;
    let cat = Catalog::open(&dataset)?;
    let summaries = StatsReader::new(&cat).summaries(&range, sigfig)?;
    if let Some(path) = output {
        let from = format!(
            "{}@{}..{}",
            dataset.display(),
            a.since.unwrap_or_default(),
            a.until.unwrap_or_default()
        );
        let snap = snapshot(&summaries, &from, sigfig);
        let text = serde_json::to_string(&snap)?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "logcrunch: saved {} route group(s) to {}; compare with: logcrunch compare --baseline {} --current @24h..",
            snap.routes.len(),
            path.display(),
            path.display()
        );
        return Ok(0);
    }
    let ms = |v: Option<u64>| v.map_or(Value::Null, |x| json!(x as f64 / 1000.0));
    let columns = [
        "route", "requests", "first", "last", "timed", "mean_ms", "p50_ms", "p90_ms", "p95_ms",
        "p99_ms", "max_ms", "rate_4xx", "rate_5xx",
    ]
    .map(String::from)
    .to_vec();
    let rows = summaries
        .iter()
        .map(|s| {
            vec![
                json!(s.route),
                json!(s.counts.requests),
                json!(logcrunch::parse::value::format_rfc3339(s.first)),
                json!(logcrunch::parse::value::format_rfc3339(
                    s.last + logcrunch::stats::MINUTE_US
                )),
                json!(s.counts.timed),
                json!((ratio(s.counts.sum_us, s.counts.timed) / 1000.0 * 1000.0).round() / 1000.0),
                ms(s.quantile(0.5)),
                ms(s.quantile(0.9)),
                ms(s.quantile(0.95)),
                ms(s.quantile(0.99)),
                ms((!s.hist.is_empty()).then(|| s.hist.max())),
                json!((s.client_error_rate() * 1e4).round() / 1e4),
                json!((s.error_rate() * 1e4).round() / 1e4),
            ]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    write_table(&Table { columns, rows }, a.format, &mut out)?;
    Ok(0)
}
