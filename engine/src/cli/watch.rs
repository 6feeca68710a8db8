//! `watch`: follows the logs under `logs.source_dir` as they are written.
//!
//! A long-running writer built from the same steps as `run`: each cycle ingests what was appended
//! (the ingest's planning already tells grown, rotated, compressed, truncated and replaced files
//! apart by their content, so rotation in any form neither loses nor repeats rows), then judges
//! the span of time of the new rows (behaviour rules, anomaly detection of complete buckets) and
//! runs the alert rules through the same outbox as `run`; judging minutes rather than days keeps
//! a cycle's cost flat as the day fills. A cycle starts when `--interval` has passed since the
//! last one, or sooner when `--batch-bytes` were appended; file-system notifications (inotify through `notify`) say when to
//! look, and a poll every second stands in when they are not available. The process holds the
//! dataset's writer's lock for as long as it runs (so `run` and `ingest` are refused with a clear
//! message) and its commit lock only while a cycle commits, so readers wait at most that long.
//! The small files each cycle writes are compacted as they pile up (per source, table and day),
//! so the file count and the memory stay bounded over days.
//! SIGTERM and SIGINT end it after the current cycle (exit 0); SIGHUP reloads the configuration.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use arrow::array::{Array, AsArray};
use clap::Args;
use logcrunch::alert::Alert;
use logcrunch::catalog::WriterLock;
use logcrunch::config::Config;
use logcrunch::error::Error;
use logcrunch::ingest::{Ingest, IngestOptions, IngestSummary};
use logcrunch::parse::Patterns;
use logcrunch::parse::value::{format_rfc3339, now_us, parse_duration};
use logcrunch::scan::{self, Progress};
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Longest time between two ingests of what was appended (`10s`, `500ms`, `1m`).
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    interval: Duration,
    /// Ingest sooner once this many bytes were appended.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    batch_bytes: u64,
    /// One JSON object per cycle on stdout (rows, lag, anomalies, alerts) instead of the status
    /// line on stderr.
    #[arg(long)]
    json: bool,
    /// Stop after this long (`1h`), as SIGTERM would (default: run until a signal).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    stop_after: Option<Duration>,
}

/// Files of one source, table and day that a cycle's compaction lets pile up (each cycle
/// writes one or two): they are then rewritten as one, which keeps the dataset's file count, the
/// manifest and the readers' views bounded however long `watch` runs.
const COMPACT_AFTER_FILES: usize = 16;

/// The signals the loop reacts to between cycles.
struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> anyhow::Result<Signals> {
        let (stop, reload) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, Arc::clone(&stop)).context("cannot handle signals")?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
            .context("cannot handle SIGHUP")?;
        Ok(Signals { stop, reload })
    }
}

/// What tells the loop to look at the files: notifications, or a poll when there are none.
struct Wakeups {
    rx: std::sync::mpsc::Receiver<()>,
    /// Kept alive while it sends; `None` when polling.
    watcher: Option<notify::RecommendedWatcher>,
}

impl Wakeups {
    fn new(dir: &Path) -> Wakeups {
        use notify::Watcher;
        let (tx, rx) = std::sync::mpsc::channel();
        // Opening, reading or listing (watch's own reads and directory listings included) is not
        // news, only a change is: woken by its own accesses, the loop would list the directory
        // again and again, each listing an access.
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        })
        .and_then(|mut w| w.watch(dir, notify::RecursiveMode::Recursive).map(|()| w));
        match watcher {
            Ok(w) => Wakeups {
                rx,
                watcher: Some(w),
            },
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "no file-system notifications; polling every second");
                Wakeups { rx, watcher: None }
            }
        }
    }

    /// Waits up to `timeout` for a notification (or, when polling, for a second at most);
    /// whether the files should be looked at.
    fn wait(&self, timeout: Duration) -> bool {
        if self.watcher.is_none() {
            std::thread::sleep(timeout.min(Duration::from_secs(1)));
            return true;
        }
        let got = self.rx.recv_timeout(timeout).is_ok();
        while self.rx.try_recv().is_ok() {}
        got
    }
}

/// The sizes of the log files, to tell how much was appended since the last cycle.
fn sizes(inputs: &[scan::Input]) -> HashMap<PathBuf, u64> {
    inputs.iter().map(|i| (i.path.clone(), i.size)).collect()
}

/// The configuration and what the cycles build from it once (the ingest, with its compiled
/// formats and signatures).
struct Follower {
    config: Config,
    engine: Ingest,
    own_log: Vec<PathBuf>,
}

impl Follower {
    fn new(config: Config, session: &str) -> anyhow::Result<Follower> {
        let patterns = Patterns::load(config.patterns.as_deref())?;
        let mut opts = IngestOptions::from_config(&config, &config.logs.format);
        opts.follow = Some(session.to_string());
        let engine = Ingest::new(opts, &patterns)?;
        let own_log = config.logging.file.iter().cloned().collect();
        Ok(Follower {
            config,
            engine,
            own_log,
        })
    }

    fn inputs(&self) -> anyhow::Result<Vec<scan::Input>> {
        let dir = &self.config.logs.source_dir;
        match scan::resolve_excluding(&[dir.display().to_string()], &self.own_log) {
            Ok(inputs) => Ok(inputs),
            Err(Error::NoLogFiles(_)) => Ok(Vec::new()),
            Err(e) => Err(e).context("logs.source_dir of the configuration"),
        }
    }

    /// Bytes appended since `before` (a new file counts whole).
    fn appended(&self, before: &HashMap<PathBuf, u64>) -> anyhow::Result<u64> {
        Ok(self
            .inputs()?
            .iter()
            .map(|i| {
                i.size
                    .saturating_sub(before.get(&i.path).copied().unwrap_or(0))
            })
            .sum())
    }

    /// Ingests what was appended, judges the new rows and evaluates the alert rules.
    fn cycle(&self) -> anyhow::Result<Cycle> {
        let started = Instant::now();
        let inputs = self.inputs()?;
        let seen = sizes(&inputs);
        if inputs.is_empty() {
            return Ok(Cycle {
                event: json!({"rows": 0}),
                seen,
                alerts: Vec::new(),
                run: String::new(),
            });
        }
        let summary = self.engine.run(&inputs, &Progress::default())?;
        let mut phases = Phases::started(started);
        phases.lap("ingest_s");
        let dataset = &self.config.storage.dataset;
        let (mut findings, mut anomalies, mut alerts) = (0, 0, Vec::new());
        if let Some((first_us, last_us)) = new_rows_span(dataset, &summary)? {
            let new = super::NewRows::Span {
                run: &summary.run_id,
                first_us,
                last_us,
            };
            let (new_findings, detection) = super::judge_new_rows(&self.config, dataset, &new)?;
            findings = new_findings;
            anomalies = detection.map_or(0, |d| d.new);
            phases.lap("judge_s");
            if let Some(scope) = new.alert_scope().filter(|_| self.config.alerting.enabled) {
                alerts = super::alerting::evaluate(&self.config, dataset, &scope)?;
                phases.lap("alerts_s");
            }
        }
        if summary.rows > 0 {
            logcrunch::archive::Archiver::new(&self.config.archive, dataset, now_us())
                .compact_recent(&summary.days, COMPACT_AFTER_FILES, &summary.run_id)?;
            phases.lap("compact_s");
        }
        let mut event = event(&summary, findings, anomalies, started.elapsed());
        event["phases"] = phases.laps;
        Ok(Cycle {
            event,
            seen,
            alerts,
            run: summary.run_id,
        })
    }
}

/// The time each phase of a cycle took, in seconds, for the cycle's event.
struct Phases {
    last: Instant,
    laps: Value,
}

impl Phases {
    fn started(at: Instant) -> Self {
        Self {
            last: at,
            laps: json!({}),
        }
    }

    /// Records the time since the previous lap under `name`.
    fn lap(&mut self, name: &str) {
        let now = Instant::now();
        let took = now.duration_since(self.last).as_secs_f64();
        self.laps[name] = json!((took * 1000.0).round() / 1000.0);
        self.last = now;
    }
}

/// What a cycle did: its event, the sizes of the files it saw, the alerts it raised and its run.
struct Cycle {
    event: Value,
    seen: HashMap<PathBuf, u64>,
    alerts: Vec<Alert>,
    run: String,
}

/// Alerts held for `alerting.group_wait` after the first of them, so that those of the next
/// cycles (the other routes and metrics of one incident, which cross their thresholds a cycle or
/// two apart) go out in the same digest; one alert per rule and key.
#[derive(Default)]
struct Held {
    run: String,
    since: Option<Instant>,
    alerts: Vec<Alert>,
}

impl Held {
    fn add(&mut self, run: &str, alerts: Vec<Alert>) {
        for a in alerts {
            if self
                .alerts
                .iter()
                .any(|h| h.rule == a.rule && h.key == a.key)
            {
                continue;
            }
            if self.alerts.is_empty() {
                self.since = Some(Instant::now());
                self.run = run.to_string();
            }
            self.alerts.push(a);
        }
    }

    /// Sends the held alerts once they have waited `wait` (at once with `now`); otherwise, after
    /// a cycle with rows, retries what the outbox still holds. What happened, for the event.
    /// They stay held when this fails (the next cycle tries again).
    fn flush(
        &mut self,
        config: &Config,
        now: bool,
        had_rows: bool,
        dry_run: bool,
    ) -> anyhow::Result<Value> {
        if !config.alerting.enabled || !config.storage.dataset.is_dir() {
            return Ok(Value::Null);
        }
        let wait = parse_duration(&config.alerting.group_wait).map_err(anyhow::Error::msg)?;
        let due = self.since.is_some_and(|t| now || t.elapsed() >= wait);
        let retry = had_rows && self.alerts.is_empty();
        if !(due || retry) {
            return Ok(json!({"held": self.alerts.len()}));
        }
        let alerts = if due { &self.alerts[..] } else { &[] };
        let out =
            super::alerting::deliver(config, &config.storage.dataset, alerts, &self.run, dry_run)?;
        if due {
            self.alerts.clear();
            self.since = None;
        }
        Ok(out)
    }
}

/// Bytes appended since `seen`; 0 when the directory cannot be listed now (a log renamed by
/// rotation between the listing and its `stat`): the next interval's cycle looks again, and a
/// cycle that fails is retried, so a rotation never ends `watch`.
fn appended_or_zero(follower: &Follower, seen: &HashMap<PathBuf, u64>) -> u64 {
    follower.appended(seen).unwrap_or_else(|e| {
        tracing::debug!(error = %format!("{e:#}"), "cannot list the logs now; looking again later");
        0
    })
}

/// The first and last time (µs) of the access-log rows an ingest wrote (`None` when it wrote
/// none with a time), from its files' Parquet statistics.
fn new_rows_span(dataset: &Path, s: &IngestSummary) -> anyhow::Result<Option<(i64, i64)>> {
    if s.rows == 0 {
        return Ok(None);
    }
    let manifest = logcrunch::catalog::manifest::Manifest::load(dataset)?;
    let files: Vec<String> = manifest
        .files
        .iter()
        .filter(|f| f.run == s.run_id && f.table == "logs")
        .map(|f| logcrunch::catalog::sql_string(&dataset.join(&f.path).display().to_string()))
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    let catalog = logcrunch::catalog::Catalog::open(dataset)?;
    let result = catalog.query(&format!(
        "SELECT epoch_us(min(ts)), epoch_us(max(ts)) FROM read_parquet([{}])",
        files.join(", ")
    ))?;
    let span = result.batches.first().and_then(|b| {
        let col = |i: usize| b.column(i).as_primitive::<arrow::datatypes::Int64Type>();
        (b.num_rows() == 1 && col(0).is_valid(0) && col(1).is_valid(0))
            .then(|| (col(0).value(0), col(1).value(0)))
    });
    Ok(span)
}

/// The JSON event of a cycle.
fn event(s: &IngestSummary, findings: u64, anomalies: u64, took: Duration) -> Value {
    json!({
        "time": format_rfc3339(now_us()),
        "rows": s.rows,
        "bad_lines": s.bad_lines,
        "bytes": s.bytes,
        "files_read": s.files_read,
        "cycle_s": (took.as_secs_f64() * 1000.0).round() / 1000.0,
        "new_findings": findings,
        "new_anomalies": anomalies,
        "sources": s.sources.iter().filter(|x| x.rows > 0 || x.bad_lines > 0).map(|x| json!({
            "path": x.path, "status": x.status, "rows": x.rows, "bad_lines": x.bad_lines,
        })).collect::<Vec<_>>(),
    })
}

/// Runs `watch`; `reload` loads the configuration again (SIGHUP).
pub fn watch(
    config: Config,
    a: WatchArgs,
    dry_run: bool,
    reload: impl Fn() -> anyhow::Result<Config>,
) -> anyhow::Result<i32> {
    if a.interval.is_zero() {
        return Err(Error::Usage("--interval must be longer than 0".into()).into());
    }
    let dataset = config.storage.dataset.clone();
    logcrunch::catalog::remote::local_only(&dataset, "watch")?;
    let _writer = WriterLock::acquire(&dataset, "watch")?;
    let signals = Signals::register()?;
    let session = format!("w{}", format_rfc3339(now_us()).replace([':', '-'], ""));
    let mut follower = Follower::new(config, &session)?;
    let wakeups = Wakeups::new(&follower.config.logs.source_dir);
    let began = Instant::now();
    let mut last = None::<Instant>;
    let mut seen = HashMap::new();
    let mut totals = (0u64, 0u64);
    let mut held = Held::default();
    status(
        &a,
        &format!(
            "watching {} into {} (interval {:?})",
            follower.config.logs.source_dir.display(),
            dataset.display(),
            a.interval
        ),
    );
    loop {
        if signals.stop.load(Ordering::Relaxed)
            || a.stop_after.is_some_and(|d| began.elapsed() >= d)
        {
            break;
        }
        if signals.reload.swap(false, Ordering::Relaxed) {
            match reload().and_then(|c| Follower::new(c, &session)) {
                Ok(f) if f.config.storage.dataset == dataset => {
                    follower = f;
                    status(&a, "configuration reloaded");
                }
                Ok(_) => status(
                    &a,
                    "configuration not reloaded: storage.dataset cannot change while watching",
                ),
                Err(e) => status(&a, &format!("configuration not reloaded: {e:#}")),
            }
        }
        let due = last.map_or(Duration::ZERO, |l: Instant| {
            a.interval.saturating_sub(l.elapsed())
        });
        let go = due.is_zero()
            || (wakeups.wait(due.min(Duration::from_millis(250)))
                && appended_or_zero(&follower, &seen) >= a.batch_bytes);
        if !go {
            continue;
        }
        last = Some(Instant::now());
        // A cycle that fails (a file that vanished while it was read, a full disk) commits
        // nothing; the next one tries again.
        let mut ev = match follower.cycle() {
            Ok(c) => {
                seen = c.seen;
                held.add(&c.run, c.alerts);
                c.event
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::warn!(error = %message, "cycle failed; trying again next interval");
                if !a.json {
                    eprintln!(
                        "logcrunch watch: cycle failed, trying again next interval: {message}"
                    );
                }
                json!({"time": format_rfc3339(now_us()), "rows": 0, "bad_lines": 0, "error": message})
            }
        };
        let had_rows = ev["rows"].as_u64().unwrap_or(0) > 0;
        ev["alerts"] = held
            .flush(&follower.config, false, had_rows, dry_run)
            .unwrap_or_else(|e| {
                let message = format!("{e:#}");
                tracing::warn!(error = %message, "alerts not sent; trying again next cycle");
                json!({"error": message, "held": held.alerts.len()})
            });
        totals.0 += 1;
        totals.1 += ev["rows"].as_u64().unwrap_or(0);
        if a.json {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, &ev)?;
            writeln!(out)?;
            out.flush()?;
        } else if ev["rows"].as_u64().unwrap_or(0) > 0 {
            status(
                &a,
                &format!(
                    "{}: +{} rows ({} in {} cycles), {} new anomalies, {} new findings",
                    ev["time"].as_str().unwrap_or_default(),
                    ev["rows"],
                    totals.1,
                    totals.0,
                    ev["new_anomalies"],
                    ev["new_findings"]
                ),
            );
        }
    }
    let last = held.flush(&follower.config, true, false, dry_run)?;
    if a.json && !last.is_null() {
        println!(
            "{}",
            json!({"time": format_rfc3339(now_us()), "rows": 0, "alerts": last})
        );
    }
    status(
        &a,
        &format!("stopped after {} cycles, {} rows", totals.0, totals.1),
    );
    Ok(0)
}

/// A line on stderr (the status of a `watch` that prints events as JSON goes to its log).
fn status(a: &WatchArgs, line: &str) {
    tracing::info!("{line}");
    if !a.json {
        eprintln!("logcrunch watch: {line}");
    }
}
