//! Command-line interface: clap definitions and one function per command.
//!
//! Commands print data on stdout and everything else (progress, logs, warnings, errors) on stderr,
//! so output can be piped. Errors carry their exit code (see `EXIT CODES` in `--help`); anyhow is
//! used only here, at the edge, to add context.

mod formats;
mod progress;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use logcrunch::config::Config;
use logcrunch::error::{EXIT_BAD_RATIO, EXIT_FAILURE};
use logcrunch::generate::{GenerateOptions, Generator};
use logcrunch::ingest::{Ingest, IngestOptions, IngestSummary, SourceStatus};
use logcrunch::parse::Patterns;
use logcrunch::report::{OutputFormat, write_result};
use logcrunch::{Error, catalog, scan};

const EXIT_CODES: &str = "EXIT CODES:
  0  success
  1  the command failed (I/O error, unreadable input, corrupt dataset, query error)
  2  invalid invocation (arguments, configuration, patterns, missing input path)
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
    /// List, show and test log formats.
    #[command(subcommand)]
    Formats(FormatsCommand),
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
}

#[derive(Args, Debug)]
struct IngestArgs {
    /// Files, directories (searched recursively for log files), globs, or - for stdin.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Dataset directory (default: storage.dataset of the config).
    #[arg(long, value_name = "DIR")]
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
}

#[derive(Args, Debug)]
struct QueryArgs {
    /// The SQL statement; the dataset is the view `logs`.
    #[arg(value_name = "SQL")]
    sql: String,
    /// Dataset directory (default: storage.dataset of the config).
    #[arg(long, value_name = "DIR")]
    dataset: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

#[derive(Args, Debug)]
struct GenerateArgs {
    /// Log format to write.
    #[arg(long, value_name = "NAME", default_value = "combined")]
    format: String,
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
    init_tracing(cli.verbose, cli.quiet);
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            let code = err
                .downcast_ref::<Error>()
                .map_or(EXIT_FAILURE, Error::exit_code);
            eprintln!("logcrunch: error: {err:#}");
            code
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOGCRUNCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let mut config = Config::load(cli.config.as_deref())?;
    if cli.patterns.is_some() {
        config.patterns = cli.patterns;
    }
    let max_line = config.ingest.max_line_bytes;
    match cli.command {
        Command::Ingest(a) => ingest(&config, a),
        Command::Query(a) => query(&config, a),
        Command::Generate(a) => generate(a),
        Command::Run(a) => run(&config, a),
        Command::Formats(f) => {
            let patterns = Patterns::load(config.patterns.as_deref())?;
            match f {
                FormatsCommand::List { json } => formats::list(&patterns, max_line, json),
                FormatsCommand::Show { name } => formats::show(&patterns, &name, max_line),
                FormatsCommand::Test { format, file } => {
                    formats::test(&patterns, &format, &file, max_line)
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
    let inputs = scan::resolve(&a.paths)?;
    let engine = Ingest::new(opts, &patterns)?;
    let summary = progress::with_progress(|p| engine.run(&inputs, p))?;
    finish_ingest(&summary, a.json, max_bad)
}

fn finish_ingest(summary: &IngestSummary, json: bool, max_bad: Option<f64>) -> anyhow::Result<i32> {
    if json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, summary)?;
        writeln!(out)?;
    } else {
        print_summary(summary)?;
    }
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
    writeln!(
        out,
        "ingested {} of {} file{} into {} (format {}; {} new, {} grown, {} replaced, {} unchanged, {} duplicate)",
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
    let reasons: Vec<String> = s
        .bad_by_reason
        .iter()
        .map(|(r, n)| format!("{r} {}", thousands(*n)))
        .collect();
    writeln!(
        out,
        "  lines {}  rows {}  bad {}{}  blank {}  parquet files {}",
        thousands(s.lines),
        thousands(s.rows),
        thousands(s.bad_lines),
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
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
    let dataset = a.dataset.unwrap_or_else(|| config.storage.dataset.clone());
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
    let g = Generator::new(GenerateOptions {
        format: a.format,
        lines: a.lines,
        seed: a.seed,
        start_us,
        rps: a.rps,
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

fn run(config: &Config, a: RunArgs) -> anyhow::Result<i32> {
    let patterns = Patterns::load(config.patterns.as_deref())?;
    let dir = &config.logs.source_dir;
    let inputs = match scan::resolve(&[dir.display().to_string()]) {
        Ok(i) => i,
        Err(Error::NoLogFiles(_)) => {
            eprintln!(
                "logcrunch: no log files in {}; nothing to do",
                dir.display()
            );
            return Ok(0);
        }
        Err(e) => return Err(e).context("logs.source_dir of the configuration"),
    };
    let engine = Ingest::new(
        IngestOptions::from_config(config, &config.logs.format),
        &patterns,
    )?;
    let summary = progress::with_progress(|p| engine.run(&inputs, p))?;
    finish_ingest(&summary, a.json, config.ingest.max_bad_ratio)
}
