//! `archive` and `restore`, and the archive step of `run`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::HumanBytes;
use logcrunch::Error;
use logcrunch::archive::{ArchiveSummary, Archiver, RestoreTarget, Restored, parse_as_of};
use logcrunch::config::Config;
use logcrunch::parse::value::now_us;

use super::progress::with_progress;

#[derive(Args, Debug)]
pub struct ArchiveArgs {
    /// Dataset directory (default: storage.dataset of the config).
    #[arg(long, value_name = "DIR", value_parser = logcrunch::catalog::remote::dataset_location)]
    dataset: Option<PathBuf>,
    /// Judge partition ages against this day (YYYY-MM-DD) instead of today.
    #[arg(long, value_name = "DATE")]
    as_of: Option<String>,
    /// Check every archived file against its checksum instead of archiving; exit 1 if one is
    /// damaged.
    #[arg(long)]
    verify: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["source", "date"])))]
pub struct RestoreArgs {
    /// The archived source: its original path, its file name, or its archive file.
    #[arg(value_name = "SOURCE")]
    source: Option<String>,
    /// Every archived source with rows on this day (YYYY-MM-DD).
    #[arg(long, value_name = "D")]
    date: Option<String>,
    /// Write here (a directory, or a file name for one source) instead of the original path.
    #[arg(long, value_name = "PATH")]
    to: Option<PathBuf>,
    /// Replace an existing file that differs from the archived one.
    #[arg(long)]
    force: bool,
    /// Dataset directory (default: storage.dataset of the config).
    #[arg(long, value_name = "DIR", value_parser = logcrunch::catalog::remote::dataset_location)]
    dataset: Option<PathBuf>,
    /// Print what was restored as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn archiver(config: &Config, dataset: &Path, as_of: Option<&str>) -> anyhow::Result<Archiver> {
    let now = match as_of {
        Some(d) => parse_as_of(d)
            .ok_or_else(|| Error::Usage(format!("--as-of {d}: expected YYYY-MM-DD")))?,
        None => now_us(),
    };
    if !dataset
        .join(logcrunch::catalog::manifest::MANIFEST_FILE)
        .is_file()
    {
        return Err(Error::Dataset {
            path: dataset.to_path_buf(),
            message: "no such dataset; create it with: logcrunch ingest --dataset DIR FILE..."
                .into(),
        }
        .into());
    }
    Ok(Archiver::new(&config.archive, dataset, now))
}

fn ratio(before: u64, after: u64) -> String {
    if after == 0 {
        "-".into()
    } else {
        format!("{:.1}x", before as f64 / after as f64)
    }
}

pub fn archive(config: &Config, a: ArchiveArgs, dry_run: bool) -> anyhow::Result<i32> {
    let dataset = a.dataset.unwrap_or_else(|| config.storage.dataset.clone());
    logcrunch::catalog::remote::local_only(&dataset, "archive")?;
    let archiver = archiver(config, &dataset, a.as_of.as_deref())?;
    if a.verify {
        let problems = with_progress(|p| archiver.verify_all(p))?;
        if a.json {
            let out = serde_json::json!({"ok": problems.is_empty(), "problems": problems});
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else if problems.is_empty() {
            println!("every archived file matches its checksum");
        }
        for p in &problems {
            eprintln!("logcrunch: error: {p}");
        }
        return Ok(if problems.is_empty() { 0 } else { 1 });
    }
    let started = now_us();
    let summary = with_progress(|p| archiver.archive(dry_run, p))?;
    if a.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        print_summary(&summary)?;
    }
    if !dry_run {
        super::record(
            config,
            &dataset,
            "archive",
            started,
            serde_json::to_value(&summary)?,
        )?;
    }
    Ok(report_errors(&summary))
}

/// Prints what failed on stderr; the exit code (1 when something failed).
pub fn report_errors(s: &ArchiveSummary) -> i32 {
    for e in &s.errors {
        eprintln!("logcrunch: error: {e}");
    }
    if s.errors.is_empty() {
        0
    } else {
        logcrunch::error::EXIT_FAILURE
    }
}

/// The archive step of `run` (with `dry_run`, what it would do).
pub fn run_step(config: &Config, dataset: &Path, dry_run: bool) -> anyhow::Result<ArchiveSummary> {
    let archiver = Archiver::new(&config.archive, dataset, now_us());
    Ok(with_progress(|p| archiver.archive(dry_run, p))?)
}

pub fn print_summary(s: &ArchiveSummary) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let verb = |done: &'static str, would: &'static str| if s.dry_run { would } else { done };
    for src in &s.sources {
        match src.action.as_str() {
            "archived" => writeln!(
                out,
                "{} {}: {} -> {} ({}, {})",
                verb("archived", "would archive"),
                src.path,
                HumanBytes(src.bytes_before),
                if s.dry_run {
                    "?".to_string()
                } else {
                    HumanBytes(src.bytes_after).to_string()
                },
                ratio(src.bytes_before, src.bytes_after),
                src.codec.as_deref().unwrap_or("zstd"),
            )?,
            "deleted" => writeln!(
                out,
                "{} {} (archived in {})",
                verb("removed", "would remove"),
                src.path,
                src.archive.as_deref().unwrap_or("?")
            )?,
            "skipped" => writeln!(
                out,
                "skipped {}: {}",
                src.path,
                src.reason.as_deref().unwrap_or("")
            )?,
            "failed" => writeln!(out, "failed {} (see the error below)", src.path)?,
            _ => {}
        }
    }
    if s.raw.bytes_before > 0 && !s.dry_run {
        writeln!(
            out,
            "raw logs: {} -> {} ({})",
            HumanBytes(s.raw.bytes_before),
            HumanBytes(s.raw.bytes_after),
            ratio(s.raw.bytes_before, s.raw.bytes_after)
        )?;
    }
    let kept = s.sources.iter().filter(|x| x.action == "kept").count();
    if kept > 0 {
        writeln!(out, "{kept} source(s) already archived")?;
    }
    if !s.compactions.is_empty() {
        let files: usize = s.compactions.iter().map(|c| c.files).sum();
        let rows: u64 = s.compactions.iter().map(|c| c.rows).sum();
        writeln!(
            out,
            "{} {files} Parquet files into {} ({rows} rows): {} -> {} ({})",
            verb("compacted", "would compact"),
            s.compactions.len(),
            HumanBytes(s.compacted.bytes_before),
            if s.dry_run {
                "?".to_string()
            } else {
                HumanBytes(s.compacted.bytes_after).to_string()
            },
            ratio(s.compacted.bytes_before, s.compacted.bytes_after)
        )?;
    }
    for r in &s.retired {
        writeln!(
            out,
            "{} partition {}: {} files, {} rows, {}{}",
            verb("removed", "would remove"),
            r.date,
            r.files,
            r.rows,
            HumanBytes(r.bytes),
            r.exported_to
                .as_deref()
                .map_or_else(String::new, |d| format!(", exported to {d}"))
        )?;
    }
    if s.sources.iter().all(|x| x.action == "kept")
        && s.compactions.is_empty()
        && s.retired.is_empty()
    {
        writeln!(out, "nothing to archive (as of {})", s.as_of)?;
    }
    Ok(())
}

pub fn restore(config: &Config, a: RestoreArgs, dry_run: bool) -> anyhow::Result<i32> {
    let dataset = a.dataset.unwrap_or_else(|| config.storage.dataset.clone());
    logcrunch::catalog::remote::local_only(&dataset, "restore")?;
    let archiver = archiver(config, &dataset, None)?;
    let target = match (a.source, a.date) {
        (Some(s), _) => RestoreTarget::Source(s),
        (None, Some(d)) => RestoreTarget::Date(d),
        (None, None) => unreachable!("clap requires SOURCE or --date"),
    };
    let restored: Vec<Restored> =
        with_progress(|p| archiver.restore(&target, a.to.as_deref(), a.force, dry_run, p))?;
    if a.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &restored)?;
        writeln!(out)?;
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    for r in &restored {
        let what = match r.action.as_str() {
            "present" => "already present",
            "would_restore" => "would restore",
            _ => "restored",
        };
        writeln!(
            out,
            "{what} {}: {} -> {} ({:.1}x), checksum {}{}",
            r.path,
            HumanBytes(r.bytes_before),
            HumanBytes(r.bytes_after),
            r.ratio,
            &r.checksum[..16],
            if r.action == "would_restore" {
                ""
            } else {
                " verified"
            }
        )?;
    }
    Ok(0)
}
