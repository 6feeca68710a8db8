//! Command-line interface: clap definitions and one function per command.
//!
//! Commands print data on stdout and everything else (progress, logs, warnings, errors) on stderr,
//! so output can be piped. Errors carry their exit code (see `EXIT CODES` in `--help`); anyhow is
//! used only here, at the edge, to add context.

mod alerting;
mod analyse;
mod archiving;
mod formats;
mod progress;
mod watch;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use logcrunch::catalog::{RunEntry, WriterLock};
use logcrunch::config::{Config, LoggingConfig};
use logcrunch::error::{EXIT_BAD_RATIO, EXIT_FAILURE};
use logcrunch::generate::{GenerateOptions, Generator, Profile};
use logcrunch::ingest::{Ingest, IngestOptions, IngestSummary, SourceStatus};
use logcrunch::parse::Patterns;
use logcrunch::parse::value::{format_rfc3339, now_us};
use logcrunch::report::{Bucket, ReportKind, ReportOptions, Reporter};
use logcrunch::report::{OutputFormat, write_result};
use logcrunch::security::behaviour::Detector;
use logcrunch::{Error, catalog, scan};

/// Tracing target of events meant for the log file only.
const AUDIT: &str = "logcrunch_audit";

const EXIT_CODES: &str = "EXIT CODES:
  0  success
  1  the command failed (I/O error, unreadable input, corrupt dataset, query error,
     object storage error)
  2  invalid invocation (arguments, configuration, patterns, missing input path)
  3  compare: a route regressed beyond --max-regression
  4  more bad lines than --max-bad-ratio allows (the good rows were still committed)";

#[derive(Parser, Debug)]
#[command(name = "logcrunch", version, about = "Crunch web-server logs into answers: parse to Parquet, query with SQL.", after_help = EXIT_CODES)]
struct Cli {
    /// Configuration file (default: config/config.yaml if present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Patterns file with the log formats (default: `patterns` of the config, else
    /// config/patterns.yaml, else built-in).
    #[arg(long, global = true, value_name = "FILE")]
    patterns: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Change nothing: print alert messages instead of sending them, and show what `archive`
    /// would archive, compact and remove (with sizes) and what `restore` would write.
    #[arg(long, global = true)]
    dry_run: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse log files into the Parquet dataset (new and grown files only).
    Ingest(IngestArgs),
    /// Run SQL over the dataset (table `logs`).
    Query(QueryArgs),
    /// Write a deterministic synthetic access log.
    Generate(GenerateArgs),
    /// The main job: ingest every new or grown file under `logs.source_dir` of the config.
    Run(RunArgs),
    /// Follow the logs under `logs.source_dir` as they are written: ingest what is appended every
    /// interval (rotation of any kind included), judge it and alert on it, until SIGTERM/SIGINT.
    Watch(watch::WatchArgs),
    /// Performance, error, traffic, security and anomaly reports over the dataset.
    Report(ReportArgs),
    /// Find latency, traffic and error-rate anomalies (stored in the catalog's `anomalies`).
    Detect(analyse::DetectArgs),
    /// Compare a period with a baseline per route; exit 3 on a regression beyond the limits.
    Compare(analyse::CompareArgs),
    /// Latency percentiles from the stored histograms, and baseline snapshots.
    #[command(subcommand)]
    Stats(analyse::StatsCommand),
    /// List, show and test log formats.
    #[command(subcommand)]
    Formats(FormatsCommand),
    /// Alert email: send a test message, show pending and sent alerts.
    #[command(subcommand)]
    Alert(alerting::AlertCommand),
    /// Compress ingested logs into the archive (verified before any original is removed),
    /// compact old partitions and remove those past retention (`archive:` of the config).
    Archive(archiving::ArchiveArgs),
    /// Write archived logs back, byte for byte, after checking them against their checksum.
    Restore(archiving::RestoreArgs),
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Which report.
    #[arg(value_enum)]
    kind: ReportKind,
    /// Dataset directory, or s3://BUCKET/PREFIX on object storage (default: storage.dataset of
    /// the config).
    #[arg(long, value_name = "DIR|URL", value_parser = logcrunch::catalog::remote::dataset_location)]
    dataset: Option<PathBuf>,
    /// Only requests at or after T (2024-01-31, 2024-01-31T12:00:00Z, or 24h / 7d ago).
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Only requests before T.
    #[arg(long, value_name = "T")]
    until: Option<String>,
    /// Only requests of this source file (`*` wildcards).
    #[arg(long, value_name = "S")]
    source: Option<String>,
    /// An extra SQL condition on the logs columns, e.g. "status >= 500 AND method = 'POST'".
    #[arg(long = "where", value_name = "SQL")]
    where_sql: Option<String>,
    /// Time bucket of the over-time sections (default: by the time range).
    #[arg(long, value_enum)]
    bucket: Option<Bucket>,
    /// Rows of top-N sections (default: reports.top of the config).
    #[arg(long, value_name = "N")]
    top: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Print the SQL statements the report runs instead of running them.
    #[arg(long)]
    sql: bool,
}

#[derive(Subcommand, Debug)]
enum FormatsCommand {
    /// The formats of the patterns file.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// A format's definition, compiled regex and fields.
    Show {
        /// Format name.
        name: String,
    },
    /// Parse the first lines of FILE and print each field and the match rate; exit 0 when at
    /// least 90% of the lines match, 1 otherwise.
    Test {
        /// Format name (default: detect).
        #[arg(long, value_name = "NAME", default_value = "auto")]
        format: String,
        /// The log file.
        file: String,
    },
    /// Infer a format from the lines of FILE (for a log no format reads) and print it for
    /// patterns.yaml, with the nginx/Apache directive that writes it when there is one and its
    /// match rate; exit 0 when it reads at least 95% of the sampled lines, 1 otherwise.
    Suggest {
        /// Name of the suggested format.
        #[arg(long, value_name = "NAME", default_value = "suggested")]
        name: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
        /// The log file.
        file: String,
    },
}

#[derive(Args, Debug)]
struct IngestArgs {
    /// Files, directories (searched recursively for log files), globs, or - for stdin.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Dataset directory, or s3://BUCKET/PREFIX on object storage (default: storage.dataset of
    /// the config).
    #[arg(long, value_name = "DIR|URL", value_parser = logcrunch::catalog::remote::dataset_location)]
    dataset: Option<PathBuf>,
    /// Log format, a name from the patterns file, or `auto` to detect it per file (default:
    /// logs.format of the config, `auto` unless changed).
    #[arg(long, value_name = "NAME")]
    format: Option<String>,
    /// Worker threads (default: ingest.threads of the config; 0 there means one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Re-read sources already ingested, replacing their rows.
    #[arg(long)]
    force: bool,
    /// Exit with code 4 when bad lines / (rows + bad lines) exceeds R.
    #[arg(long, value_name = "R")]
    max_bad_ratio: Option<f64>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Ingest share K of N of the inputs (by content fingerprint), so that N processes started
    /// with the same arguments ingest them once between them; shards of one dataset wait for
    /// each other's commits.
    #[arg(long, value_name = "K/N")]
    shard: Option<scan::Shard>,
}

#[derive(Args, Debug)]
struct QueryArgs {
    /// The SQL statement; the dataset is the view `logs`.
    #[arg(value_name = "SQL")]
    sql: String,
    /// Dataset directory, or s3://BUCKET/PREFIX on object storage (default: storage.dataset of
    /// the config).
    #[arg(long, value_name = "DIR|URL", value_parser = logcrunch::catalog::remote::dataset_location)]
    dataset: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ProfileArg {
    Shop,
    Realistic,
}

#[derive(Args, Debug)]
struct GenerateArgs {
    /// Log format to write.
    #[arg(long, value_name = "NAME", default_value = "combined")]
    format: String,
    /// Traffic: `shop` (two dozen routes, for tests) or `realistic` (the cardinalities of real
    /// logs: long tails of pages, query strings, clients, user agents and referers; a daily cycle).
    #[arg(long, value_enum, default_value_t = ProfileArg::Shop)]
    profile: ProfileArg,
    /// Number of lines.
    #[arg(long, value_name = "N")]
    lines: u64,
    /// RNG seed; the same seed gives the same bytes.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Timestamp of the first line (RFC 3339).
    #[arg(long, value_name = "T", default_value = "2024-01-01T00:00:00Z")]
    start: String,
    /// Mean requests per second.
    #[arg(long, value_name = "R", default_value_t = 20.0)]
    rps: f64,
    /// Share of requests that carry an attack (0.002 = 0.2%).
    #[arg(long, value_name = "R", default_value_t = 0.0)]
    attack_rate: f64,
    /// Incidents to write, e.g. latency-spike@6h,error-burst@2024-01-01T10:00:00Z+15m
    /// (kinds: latency-spike, error-burst, traffic-surge; default duration 10m).
    #[arg(long, value_name = "LIST")]
    inject: Option<String>,
    /// Where to write the injected incidents as JSON (default: OUTPUT.truth.json with --inject).
    #[arg(long, value_name = "FILE")]
    truth: Option<PathBuf>,
    /// Output file (default: stdout).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = Config::load(cli.config.as_deref())
        .map_err(anyhow::Error::from)
        .and_then(|mut config| {
            if cli.patterns.is_some() {
                config.patterns = cli.patterns.clone();
            }
            init_tracing(cli.verbose, cli.quiet, &config.logging);
            tracing::debug!(command = ?cli.command, "start");
            dispatch(cli, config)
        });
    match result {
        Ok(code) => code,
        // A reader that went away (`logcrunch ... | head`) is not a failure, as for any Unix tool.
        Err(err) if is_broken_pipe(&err) => 0,
        Err(err) => {
            let code = err
                .downcast_ref::<Error>()
                .map_or(EXIT_FAILURE, Error::exit_code);
            let message = describe(&err);
            tracing::error!(target: AUDIT, error = %message, "command failed");
            eprintln!("logcrunch: error: {message}");
            code
        }
    }
}

/// `err` with its causes, each said once: library errors already include the error they wrap in
/// their message, so a cause whose text is there is not repeated.
/// `name 1,234, other 56` from a map of counts.
fn counts(by: &std::collections::BTreeMap<String, u64>) -> String {
    by.iter()
        .map(|(name, n)| format!("{name} {}", thousands(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn describe(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// Logs go to stderr (level from -v/-q or `LOGCRUNCH_LOG`) and, when configured, to the log file
/// (level from `logging.level`).
fn init_tracing(verbose: u8, quiet: bool, logging: &LoggingConfig) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    // Events of the audit target go to the log file only (stderr already shows the error).
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOGCRUNCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level))
        .add_directive(format!("{AUDIT}=off").parse().expect("a valid directive"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
    let file = logging.file.as_ref().and_then(|path| {
        let open = || -> std::io::Result<std::fs::File> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        };
        match open() {
            Ok(f) => Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::sync::Mutex::new(f))
                    .with_ansi(false)
                    .with_filter(tracing_subscriber::EnvFilter::new(&logging.level)),
            ),
            Err(e) => {
                eprintln!(
                    "logcrunch: warning: cannot open log file {}: {e}",
                    path.display()
                );
                None
            }
        }
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

fn dispatch(cli: Cli, config: Config) -> anyhow::Result<i32> {
    let max_line = config.ingest.max_line_bytes;
    let (config_path, patterns_path) = (cli.config.clone(), cli.patterns.clone());
    let reload = move || -> anyhow::Result<Config> {
        let mut c = Config::load(config_path.as_deref())?;
        if patterns_path.is_some() {
            c.patterns = patterns_path.clone();
        }
        Ok(c)
    };
    match cli.command {
        Command::Watch(a) => watch::watch(config, a, cli.dry_run, reload),
        Command::Ingest(a) => ingest(&config, a),
        Command::Query(a) => query(&config, a),
        Command::Generate(a) => generate(a),
        Command::Run(a) => run(&config, a, cli.dry_run),
        Command::Alert(c) => alerting::alert(&config, c, cli.dry_run),
        Command::Archive(a) => archiving::archive(&config, a, cli.dry_run),
        Command::Restore(a) => archiving::restore(&config, a, cli.dry_run),
        Command::Report(a) => report(&config, a),
        Command::Detect(a) => analyse::detect(&config, a),
        Command::Compare(a) => analyse::compare(&config, a),
        Command::Stats(c) => analyse::stats(&config, c),
        Command::Formats(f) => {
            let patterns = Patterns::load(config.patterns.as_deref())?;
            match f {
                FormatsCommand::List { json } => formats::list(&patterns, max_line, json),
                FormatsCommand::Show { name } => formats::show(&patterns, &name, max_line),
                FormatsCommand::Test { format, file } => {
                    formats::test(&patterns, &format, &file, max_line)
                }
                FormatsCommand::Suggest { name, json, file } => {
                    formats::suggest(&patterns, &name, &file, json, max_line)
                }
            }
        }
    }
}

fn ingest(config: &Config, a: IngestArgs) -> anyhow::Result<i32> {
    let patterns = Patterns::load(config.patterns.as_deref())?;
    let format = a.format.unwrap_or_else(|| config.logs.format.clone());
    let mut opts = IngestOptions::from_config(config, &format);
    if let Some(d) = a.dataset {
        opts.dataset = d;
    }
    if let Some(t) = a.threads {
        opts.threads = t;
    }
    opts.force = a.force;
    let max_bad = a.max_bad_ratio.or(config.ingest.max_bad_ratio);
    if let Some(r) = max_bad
        && !(0.0..=1.0).contains(&r)
    {
        return Err(
            Error::Usage(format!("--max-bad-ratio must be between 0 and 1, got {r}")).into(),
        );
    }
    let own_log: Vec<PathBuf> = config.logging.file.iter().cloned().collect();
    let mut inputs = scan::resolve_excluding(&a.paths, &own_log)?;
    if let Some(shard) = a.shard {
        inputs = shard.select(inputs)?;
        tracing::info!(%shard, inputs = inputs.len(), "shard of the inputs");
    }
    if catalog::remote::is_remote(&opts.dataset) {
        return ingest_remote(opts, &patterns, &inputs, a.json, max_bad);
    }
    let dataset = opts.dataset.clone();
    let _writer = match a.shard {
        Some(shard) => Some(WriterLock::wait(
            &dataset,
            &format!("ingest --shard {shard}"),
        )?),
        None => None,
    };
    let engine = Ingest::new(opts, &patterns)?;
    let started = now_us();
    let summary = progress::with_progress(|p| engine.run(&inputs, p))?;
    record(
        config,
        &dataset,
        "ingest",
        started,
        serde_json::to_value(&summary)?,
    )?;
    finish_ingest(&summary, None, a.json, max_bad)
}

/// Ingest into a dataset on object storage: the run writes into a private staging directory,
/// whose files are then uploaded and committed ([`catalog::remote`]). Shards need no lock: each
/// commits on its own.
fn ingest_remote(
    mut opts: IngestOptions,
    patterns: &Patterns,
    inputs: &[scan::Input],
    json: bool,
    max_bad: Option<f64>,
) -> anyhow::Result<i32> {
    if opts.force {
        return Err(Error::Usage(
            "--force replaces a source's rows in a local dataset only; on object storage, write the source into a new dataset prefix".into(),
        )
        .into());
    }
    let remote = std::sync::Arc::new(catalog::remote::Remote::open(&opts.dataset)?);
    let staged = remote.stage()?;
    opts.dataset = staged.dir().to_path_buf();
    let engine = Ingest::new(opts, patterns)?;
    let mut summary = progress::with_progress(|p| engine.run(inputs, p))?;
    summary.dataset = remote.url().to_string();
    let pushed = remote.push(&staged)?;
    tracing::info!(dataset = remote.url(), files = pushed.files, bytes = pushed.bytes, versions = ?pushed.versions, "committed");
    finish_ingest(&summary, Some(&pushed), json, max_bad)
}

/// Adds a command to the catalog's `runs` table.
fn record(
    config: &Config,
    dataset: &Path,
    command: &str,
    started_us: i64,
    summary: serde_json::Value,
) -> anyhow::Result<()> {
    let elapsed = (now_us() - started_us) as f64 / 1e6;
    let entry = RunEntry {
        id: summary["run_id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map_or_else(|| format!("{command}-{started_us}"), str::to_string),
        command: command.to_string(),
        started: format_rfc3339(started_us),
        elapsed_s: elapsed,
        config: serde_json::to_string(config)?,
        summary: summary.to_string(),
    };
    catalog::record_run(dataset, &entry)?;
    tracing::info!(command, elapsed_s = elapsed, "recorded run");
    Ok(())
}

/// Prints the run's summary (with what an ingest into object storage committed) and picks the
/// exit code.
fn finish_ingest(
    summary: &IngestSummary,
    pushed: Option<&catalog::remote::Pushed>,
    json: bool,
    max_bad: Option<f64>,
) -> anyhow::Result<i32> {
    let mut out = std::io::stdout().lock();
    if json {
        let mut value = serde_json::to_value(summary)?;
        if let Some(p) = pushed {
            value["committed"] = serde_json::to_value(p)?;
        }
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        print_summary(summary)?;
        if let Some(p) = pushed {
            writeln!(
                out,
                "committed {} file{} ({:.1} MB) to {}",
                p.files,
                if p.files == 1 { "" } else { "s" },
                p.bytes as f64 / 1e6,
                summary.dataset
            )?;
        }
    }
    exit_code_of(summary, max_bad)
}

/// 1 when an input failed, 4 when the bad-line ratio is exceeded, else 0.
fn exit_code_of(summary: &IngestSummary, max_bad: Option<f64>) -> anyhow::Result<i32> {
    let failed = summary.failed();
    if !failed.is_empty() {
        for f in &failed {
            eprintln!(
                "logcrunch: error: {}: {}",
                f.path,
                f.warning.as_deref().unwrap_or("failed")
            );
        }
        return Ok(EXIT_FAILURE);
    }
    if let Some(limit) = max_bad
        && summary.bad_ratio() > limit
    {
        eprintln!(
            "logcrunch: {} of {} lines were bad ({:.4} > --max-bad-ratio {limit}); see {}",
            summary.bad_lines,
            summary.rows + summary.bad_lines,
            summary.bad_ratio(),
            summary
                .quarantine_file
                .as_deref()
                .unwrap_or("the quarantine directory")
        );
        return Ok(EXIT_BAD_RATIO);
    }
    Ok(0)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_summary(s: &IngestSummary) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let count = |st: SourceStatus| s.sources.iter().filter(|x| x.status == st).count();
    // The unusual outcomes are named only when they happened.
    let unusual: String = [
        (SourceStatus::Truncated, "truncated"),
        (SourceStatus::Changed, "changed while read"),
        (SourceStatus::Failed, "failed"),
    ]
    .into_iter()
    .filter(|(st, _)| count(*st) > 0)
    .map(|(st, name)| format!(", {} {name}", count(st)))
    .collect();
    writeln!(
        out,
        "ingested {} of {} file{} into {} (format {}; {} new, {} grown, {} replaced, {} unchanged, {} duplicate{unusual})",
        s.files_read,
        s.files,
        if s.files == 1 { "" } else { "s" },
        s.dataset,
        s.format,
        count(SourceStatus::New),
        count(SourceStatus::Grown),
        count(SourceStatus::Replaced),
        count(SourceStatus::Unchanged),
        count(SourceStatus::Duplicate)
    )?;
    let reasons = counts(&s.bad_by_reason);
    writeln!(
        out,
        "  lines {}  rows {}  bad {}{}  blank {}  parquet files {}",
        thousands(s.lines),
        thousands(s.rows),
        thousands(s.bad_lines),
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({reasons})")
        },
        thousands(s.blank_lines),
        s.parquet_files
    )?;
    writeln!(
        out,
        "  {:.1} MB in {:.2} s: {:.1} MB/s, {} lines/s",
        s.bytes as f64 / 1e6,
        s.elapsed_s,
        s.mb_per_s,
        thousands(s.lines_per_s as u64)
    )?;
    if let Some(q) = &s.quarantine_file {
        writeln!(out, "  bad lines: {q}")?;
    }
    let mut formats: Vec<String> = Vec::new();
    for src in s.sources.iter().filter(|x| !x.format.is_empty()) {
        let f = match src.detected_rate {
            Some(r) if src.inferred_format.is_some() => {
                format!("{} (from the lines, reads {:.0}%)", src.format, r * 100.0)
            }
            Some(r) => format!(
                "{} ({} {:.0}%)",
                src.format,
                if src.table == "errors" {
                    "error log, detected"
                } else {
                    "detected"
                },
                r * 100.0
            ),
            None => src.format.clone(),
        };
        if !formats.contains(&f) {
            formats.push(f);
        }
    }
    if !formats.is_empty() && (s.format == "auto" || formats.len() > 1) {
        writeln!(out, "  formats: {}", formats.join(", "))?;
    }
    for src in s.sources.iter().filter(|x| x.inferred_format.is_some()) {
        writeln!(
            out,
            "  {}: no known format reads it; read with a format inferred from its lines \
             (`logcrunch formats suggest {}` prints it for patterns.yaml)",
            src.path, src.path
        )?;
    }
    for src in s.sources.iter().filter(|x| !x.rows_by_format.is_empty()) {
        writeln!(
            out,
            "  {}: layouts mixed, rows by format: {}",
            src.path,
            counts(&src.rows_by_format)
        )?;
    }
    for src in &s.sources {
        if let Some(w) = &src.warning {
            writeln!(out, "  warning: {}: {w}", src.path)?;
        }
        if src.status == SourceStatus::Duplicate {
            writeln!(
                out,
                "  skipped {}: same content as {}",
                src.path, src.source
            )?;
        }
    }
    Ok(())
}

fn query(config: &Config, a: QueryArgs) -> anyhow::Result<i32> {
    let dataset = catalog::remote::readable(
        &a.dataset.unwrap_or_else(|| config.storage.dataset.clone()),
        &catalog::remote::Days::all(),
    )?;
    let cat = catalog::Catalog::open(&dataset)?;
    let result = cat.query(&a.sql)?;
    let mut out = std::io::stdout().lock();
    write_result(&result, a.format, &mut out)?;
    Ok(0)
}

fn generate(a: GenerateArgs) -> anyhow::Result<i32> {
    let start_us = logcrunch::parse::value::parse_iso8601(a.start.as_bytes()).ok_or_else(|| {
        Error::Usage(format!(
            "--start `{}` is not an RFC 3339 time such as 2024-01-01T00:00:00Z",
            a.start
        ))
    })?;
    let injections = match &a.inject {
        Some(list) => logcrunch::generate::Injection::parse_list(list, start_us)?,
        None => Vec::new(),
    };
    let truth = a.truth.clone().or_else(|| {
        a.output
            .as_ref()
            .filter(|_| !injections.is_empty())
            .map(|o| PathBuf::from(format!("{}.truth.json", o.display())))
    });
    if let Some(path) = &truth {
        std::fs::write(path, serde_json::to_string_pretty(&injections)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let g = Generator::new(GenerateOptions {
        format: a.format,
        profile: match a.profile {
            ProfileArg::Shop => Profile::Shop,
            ProfileArg::Realistic => Profile::Realistic,
        },
        lines: a.lines,
        seed: a.seed,
        start_us,
        rps: a.rps,
        attack_rate: a.attack_rate,
        injections,
    })?;
    match a.output {
        Some(path) => {
            let file = std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            g.write(&mut w)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            if let Err(e) = g.write(&mut w)
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(e).context("cannot write to stdout");
            }
        }
    }
    Ok(0)
}

fn report_options(config: &Config) -> anyhow::Result<ReportOptions> {
    let signatures =
        logcrunch::security::SignatureFile::load(config.security.signatures.as_deref())?;
    Ok(ReportOptions {
        top: config.reports.top,
        performance: config.performance_thresholds.clone(),
        errors: config.error_thresholds.clone(),
        categories: signatures.categories,
        behaviour: config.security.behaviour.clone(),
        ..ReportOptions::default()
    })
}

fn report(config: &Config, a: ReportArgs) -> anyhow::Result<i32> {
    // A bad --since or --until is reported by the reporter; here it only widens what is read.
    let time = |t: &Option<String>| {
        t.as_deref()
            .and_then(logcrunch::parse::value::parse_time_arg)
    };
    let dataset = catalog::remote::readable(
        &a.dataset.unwrap_or_else(|| config.storage.dataset.clone()),
        &catalog::remote::Days::between(time(&a.since), time(&a.until)),
    )?;
    let cat = catalog::Catalog::open(&dataset)?;
    let opts = ReportOptions {
        since: a.since,
        until: a.until,
        source: a.source,
        where_sql: a.where_sql,
        bucket: a.bucket,
        top: a.top.unwrap_or(config.reports.top),
        dataset: Some(dataset.display().to_string()),
        ..report_options(config)?
    };
    if a.sql {
        let mut out = std::io::stdout().lock();
        for stmt in Reporter::new(&cat, opts)?.statements(a.kind)? {
            writeln!(out, "{stmt}\n")?;
        }
        return Ok(0);
    }
    let report =
        progress::with_progress(|_| Reporter::new(&cat, opts).and_then(|r| r.build(a.kind)))?;
    match a.output {
        Some(path) => {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            );
            report.write(a.format, &mut f)?;
            f.flush()?;
        }
        None => report.write(a.format, &mut std::io::stdout().lock())?,
    }
    Ok(0)
}

fn run(config: &Config, a: RunArgs, dry_run: bool) -> anyhow::Result<i32> {
    let started = now_us();
    let patterns = Patterns::load(config.patterns.as_deref())?;
    let dir = &config.logs.source_dir;
    let dataset = config.storage.dataset.clone();
    catalog::remote::local_only(&dataset, "run")?;
    let own_log: Vec<PathBuf> = config.logging.file.iter().cloned().collect();
    let summary = match scan::resolve_excluding(&[dir.display().to_string()], &own_log) {
        Ok(inputs) => {
            let engine = Ingest::new(
                IngestOptions::from_config(config, &config.logs.format),
                &patterns,
            )?;
            Some(progress::with_progress(|p| engine.run(&inputs, p))?)
        }
        Err(Error::NoLogFiles(_)) => {
            eprintln!(
                "logcrunch: no log files in {}; reporting on the dataset as it is",
                dir.display()
            );
            None
        }
        Err(e) => return Err(e).context("logs.source_dir of the configuration"),
    };
    if !a.json
        && let Some(s) = &summary
    {
        print_summary(s)?;
    }
    // Behaviour is judged again on the days this run added rows to, and the findings are stored
    // in the catalog (table `findings`) for alerting.
    let (new_findings, detection) = match &summary {
        Some(s) => judge_new_rows(config, &dataset, &NewRows::Days(s))?,
        None => (0, None),
    };
    let mut written = Vec::new();
    let mut highlights = serde_json::Value::Null;
    if dataset.is_dir() {
        let cat = catalog::Catalog::open(&dataset)?;
        let opts = ReportOptions {
            dataset: Some(dataset.display().to_string()),
            ..report_options(config)?
        };
        let report = Reporter::new(&cat, opts)?.build(ReportKind::All)?;
        std::fs::create_dir_all(&config.reports.dir).with_context(|| {
            format!("cannot create reports.dir {}", config.reports.dir.display())
        })?;
        let stamp: String = format_rfc3339(started)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        for (ext, format) in [
            ("json", OutputFormat::Json),
            ("md", OutputFormat::Markdown),
            ("html", OutputFormat::Html),
        ] {
            for name in [format!("report-{stamp}.{ext}"), format!("latest.{ext}")] {
                let path = config.reports.dir.join(name);
                let mut f = std::io::BufWriter::new(
                    std::fs::File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                );
                report.write(format, &mut f)?;
                f.flush()?;
                written.push(path.display().to_string());
            }
        }
        drop(cat);
        highlights = highlights_of(&report.to_json());
        highlights["new_findings"] = new_findings.into();
        if let Some(d) = &detection {
            let of_run: Vec<_> = d
                .events
                .iter()
                .filter(|e| s_days_contain(summary.as_ref(), &e.start))
                .collect();
            highlights["anomalies"] = of_run.len().into();
            highlights["high_anomalies"] = of_run
                .iter()
                .filter(|e| e.severity == logcrunch::detect::Severity::High)
                .count()
                .into();
            highlights["new_anomalies"] = d.new.into();
        }
        if !a.json {
            print_highlights(&highlights, &written)?;
        }
    }
    let alerts = alert_new_rows(
        config,
        &dataset,
        summary.as_ref().map(NewRows::Days).as_ref(),
        dry_run,
    )?;
    if !alerts.is_null() && !a.json && !dry_run {
        println!(
            "alerts: {} new, {} sent, {} pending",
            alerts["alerts"], alerts["sent"], alerts["pending"]
        );
    }
    // Archive last: the raw logs read by this run, old partitions, retention.
    let mut archived = serde_json::Value::Null;
    let mut archive_failed = 0;
    if config.archive.enabled && dataset.join(catalog::manifest::MANIFEST_FILE).is_file() {
        let s = archiving::run_step(config, &dataset, dry_run)?;
        if !a.json {
            archiving::print_summary(&s)?;
        }
        archive_failed = archiving::report_errors(&s);
        archived = serde_json::to_value(&s)?;
    }
    let out = serde_json::json!({"ingest": summary, "highlights": highlights, "reports": written, "alerts": alerts, "archive": archived});
    if a.json {
        let mut o = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut o, &out)?;
        writeln!(o)?;
    }
    if dataset.is_dir() {
        record(config, &dataset, "run", started, out)?;
    }
    match &summary {
        Some(s) => exit_code_of(s, config.ingest.max_bad_ratio)
            .map(|code| if code == 0 { archive_failed } else { code }),
        None => Ok(archive_failed),
    }
}

/// The rows a writer judges after an ingest.
enum NewRows<'a> {
    /// `run`: the days (`YYYY-MM-DD`) the ingest added rows to, judged whole.
    Days(&'a IngestSummary),
    /// `watch`: the times (µs, inclusive) of the rows a cycle added, and its run.
    Span {
        run: &'a str,
        first_us: i64,
        last_us: i64,
    },
}

const DAY_US: i64 = 86_400_000_000;
const HOUR_US: i64 = 3_600_000_000;

impl NewRows<'_> {
    fn run(&self) -> &str {
        match self {
            NewRows::Days(s) => &s.run_id,
            NewRows::Span { run, .. } => run,
        }
    }

    /// The first and last day's times (µs, `[from, until)`), for `Days`.
    fn days_us(s: &IngestSummary) -> Option<(i64, i64)> {
        let from = logcrunch::parse::value::parse_time_arg(s.days.first()?)?;
        let to = logcrunch::parse::value::parse_time_arg(s.days.last()?)?;
        Some((from, to + DAY_US))
    }

    /// The alert rules' scope: the days of `run`; for `watch`, the new rows and at least the
    /// hour before the last (so that rates are over enough requests).
    fn alert_scope(&self) -> Option<logcrunch::alert::Scope> {
        let (from_us, until_us) = match self {
            NewRows::Days(s) => Self::days_us(s)?,
            NewRows::Span {
                first_us, last_us, ..
            } => ((*first_us).min(last_us - HOUR_US), last_us + 1),
        };
        Some(logcrunch::alert::Scope {
            run: self.run().to_string(),
            from_us,
            until_us,
        })
    }
}

/// What `run` and `watch` judge after an ingest: the behaviour of the clients (findings stored in
/// the catalog) and anomalies with up to `seasonal_days` of history (events stored). `run`
/// judges the days it added rows to whole; `watch` the span of its new rows after the longest
/// behaviour window, and the anomalies of complete buckets (the bucket of the last row is still
/// filling, and its traffic would look like a drop) starting up to an hour before its new rows.
/// Returns the number of new findings and the detection.
fn judge_new_rows(
    config: &Config,
    dataset: &std::path::Path,
    new: &NewRows,
) -> anyhow::Result<(u64, Option<analyse::Detection>)> {
    let opts = report_options(config)?;
    let history = (config.anomaly_detection.seasonal_days as i64 + 1) * DAY_US;
    let (new_findings, detect_range, store_range) =
        match new {
            NewRows::Days(s) => {
                let (Some(first), Some(last)) = (s.days.first(), s.days.last()) else {
                    return Ok((0, None));
                };
                let days = Detector::days_filter(first, last);
                let found = Detector::new(&opts.behaviour, &days, &days, &opts.categories)
                    .store(dataset, &s.run_id, first, last)?;
                let Some((from, until)) = NewRows::days_us(s) else {
                    return Ok((found, None));
                };
                (found, (from - history, until), (from, until))
            }
            NewRows::Span {
                run,
                first_us,
                last_us,
            } => {
                let from = first_us - opts.behaviour.longest_window_us();
                let span = Detector::span_filter(from, *last_us);
                let found = Detector::new(&opts.behaviour, &span, &span, &opts.categories)
                    .store_span(dataset, run, from - from.rem_euclid(DAY_US))?;
                let bucket = config.anomaly_detection.bucket_us().map_err(Error::Usage)?;
                let until = last_us - last_us.rem_euclid(bucket);
                let store_from = first_us - first_us.rem_euclid(bucket) - HOUR_US;
                if until <= store_from {
                    return Ok((found, None));
                }
                (found, (until - history, until), (store_from, until))
            }
        };
    let detection = analyse::detect_dataset(
        config,
        dataset,
        Some(detect_range.0),
        Some(detect_range.1),
        &logcrunch::detect::Metric::DATASET,
        &config.anomaly_detection.methods,
        Vec::new(),
        None,
        Some((new.run(), store_range)),
    )?;
    Ok((new_findings, Some(detection)))
}

/// The alert rules over the new rows (see [`NewRows::alert_scope`]), then delivery of everything
/// pending (`null` when alerting is off or there is no dataset).
fn alert_new_rows(
    config: &Config,
    dataset: &std::path::Path,
    new: Option<&NewRows>,
    dry_run: bool,
) -> anyhow::Result<serde_json::Value> {
    if !config.alerting.enabled || !dataset.is_dir() {
        return Ok(serde_json::Value::Null);
    }
    let scope = new.and_then(NewRows::alert_scope);
    alerting::run_step(config, dataset, scope.as_ref(), dry_run)
}

/// Whether an ISO 8601 time falls on one of the days the run added rows to.
fn s_days_contain(summary: Option<&IngestSummary>, start: &str) -> bool {
    summary.is_some_and(|s| s.days.iter().any(|d| start.starts_with(d.as_str())))
}

/// The figures `run` prints: volume, latency, errors, the worst routes.
fn highlights_of(report: &serde_json::Value) -> serde_json::Value {
    let p = &report["performance"]["overall"];
    let e = &report["errors"]["overall"];
    let t = &report["traffic"]["overall"];
    serde_json::json!({
        "requests": t["requests"],
        "first": t["first"],
        "last": t["last"],
        "p50_ms": p["p50_ms"],
        "p95_ms": p["p95_ms"],
        "p99_ms": p["p99_ms"],
        "rate_4xx": e["rate_4xx"],
        "rate_5xx": e["rate_5xx"],
        "error_bursts": report["errors"]["bursts"].as_array().map_or(0, Vec::len),
        "slow_routes": report["performance"]["slow_routes"].as_array().map(|r| r.iter().take(5).map(|x| x["route"].clone()).collect::<Vec<_>>()),
        "bot_share": t["bot_share"],
        "tagged_requests": report["security"]["overall"]["tagged_requests"],
        "security_findings": report["security"]["findings"].as_array().map_or(0, Vec::len),
    })
}

fn print_highlights(h: &serde_json::Value, written: &[String]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let show = |v: &serde_json::Value| logcrunch::report::display(v, "-");
    writeln!(
        out,
        "dataset: {} requests from {} to {}",
        show(&h["requests"]),
        show(&h["first"]),
        show(&h["last"])
    )?;
    writeln!(
        out,
        "  response time p50 {} ms, p95 {} ms, p99 {} ms",
        show(&h["p50_ms"]),
        show(&h["p95_ms"]),
        show(&h["p99_ms"])
    )?;
    writeln!(
        out,
        "  errors 4xx {}, 5xx {} of requests; {} error burst(s); bots {}",
        show(&h["rate_4xx"]),
        show(&h["rate_5xx"]),
        show(&h["error_bursts"]),
        show(&h["bot_share"])
    )?;
    if let Some(slow) = h["slow_routes"].as_array().filter(|s| !s.is_empty()) {
        let names: Vec<String> = slow.iter().map(&show).collect();
        writeln!(out, "  slow routes: {}", names.join(", "))?;
    }
    writeln!(
        out,
        "  security: {} tagged request(s), {} behavioural finding(s), {} new in this run",
        show(&h["tagged_requests"]),
        show(&h["security_findings"]),
        show(&h["new_findings"])
    )?;
    if !h["anomalies"].is_null() {
        writeln!(
            out,
            "  anomalies: {} event(s) in the days of this run ({} high), {} new; details: logcrunch report anomalies",
            show(&h["anomalies"]),
            show(&h["high_anomalies"]),
            show(&h["new_anomalies"])
        )?;
    }
    writeln!(out, "  reports: {}", written.join(", "))?;
    Ok(())
}
