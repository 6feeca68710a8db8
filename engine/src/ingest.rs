//! `ingest`: runs the pipeline scan -> parse -> batch -> sink -> manifest for a set of inputs.
//!
//! Planning decides, per input, from the manifest and a content fingerprint, whether it is new,
//! grown (resume at the recorded offset), unchanged (skip), a copy of a source already read (a
//! rotated or compressed log: skip or resume it under the existing source), or to be replaced
//! (`--force`). Then one producer thread cuts the inputs into chunks and `threads` rayon workers
//! parse them into per-day Parquet files, each worker with its own parser state, builders and
//! writers. Nothing is visible until the commit: files are renamed into place and the manifest is
//! replaced in one atomic step; a crash before that leaves the previous dataset intact, and the next
//! writer deletes the leftovers.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::ScopedJoinHandle;
use std::time::Instant;

use serde::Serialize;

use crate::batch::{BadLine, ChunkBatcher, Enrich, SAMPLE_BYTES};
use crate::catalog::manifest::{FileRecord, Manifest, RunRecord, SourceRecord};
use crate::catalog::{Catalog, Dataset, QUARANTINE_DIR};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::parse::infer::{self, INFERRED, MIN_INFERRED_RATE};
use crate::parse::sniff::{Candidate, FormatCache, MIN_RATE, sample_lines};
use crate::parse::value::{format_rfc3339, now_us};
use crate::parse::{AUTO, BadReason, ChunkStats, Kind, MAX_CHAIN, Parser, Patterns};
use crate::route::{Router, RoutesConfig};
use crate::scan::{
    self, Encoding, FINGERPRINT_BYTES, Input, Progress, ScanEnd, ScanRequest, Scanner,
};
use crate::schema::{arrow_schema, error_schema};
use crate::security::{SecurityConfig, SignatureFile, TagScratch, Tagger};
use crate::sink::{self, Sink, WrittenFile};
use crate::stats::{self, Recorder, StatsConfig};
use arrow::datatypes::SchemaRef;

/// Settings of one ingest run.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Dataset directory.
    pub dataset: PathBuf,
    /// Log format name.
    pub format: String,
    /// Worker threads.
    pub threads: usize,
    /// Target chunk size in bytes.
    pub chunk_size: usize,
    /// Longest line accepted.
    pub max_line_bytes: usize,
    /// Bad-line samples kept per source.
    pub quarantine_samples: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// zstd level of the Parquet files.
    pub zstd_level: i32,
    /// Re-ingest sources already in the manifest, replacing their rows.
    pub force: bool,
    /// Route normalisation rules.
    pub routes: RoutesConfig,
    /// Threat signatures and paranoia level.
    pub security: SecurityConfig,
    /// Latency histogram precision and route groups.
    pub stats: StatsConfig,
    /// Following logs as they are written (`watch`): the session's id. The unterminated last
    /// line of a file is left for the next ingest, which reads it whole, and the ingests of a
    /// session make one run record of the manifest, not one each.
    pub follow: Option<String>,
}

impl IngestOptions {
    /// Options from the configuration, for `format`.
    pub fn from_config(cfg: &Config, format: &str) -> IngestOptions {
        IngestOptions {
            dataset: cfg.storage.dataset.clone(),
            format: format.to_string(),
            threads: cfg.threads(),
            chunk_size: cfg.ingest.chunk_size,
            max_line_bytes: cfg.ingest.max_line_bytes,
            quarantine_samples: cfg.ingest.quarantine_samples,
            row_group_rows: cfg.ingest.row_group_rows,
            zstd_level: cfg.ingest.zstd_level,
            force: false,
            routes: cfg.routes.clone(),
            security: cfg.security.clone(),
            stats: cfg.stats.clone(),
            follow: None,
        }
    }
}

/// What happened to one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceStatus {
    /// First time seen: read from the start.
    New,
    /// Seen before and longer now: read from where the last run stopped.
    Grown,
    /// Seen before, nothing new.
    Unchanged,
    /// Re-read from the start with `--force`; its earlier rows were replaced.
    Replaced,
    /// Same content as another input of this run.
    Duplicate,
    /// Shorter than what was read of it before, with the same first bytes: it was truncated in
    /// place. Nothing is read; reading resumes at its new end when it grows.
    Truncated,
    /// It was truncated or rewritten while it was read: nothing of it was committed, and the next
    /// run reads it again (a `copytruncate`d log's rotated copy continues it where the last
    /// committed run stopped).
    Changed,
    /// Reading it failed; nothing of it was committed.
    Failed,
}

impl SourceStatus {
    /// Whether the input is read in this run (new, grown or replaced).
    pub fn is_read(self) -> bool {
        matches!(
            self,
            SourceStatus::New | SourceStatus::Grown | SourceStatus::Replaced
        )
    }
}

/// Per-input part of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct SourceSummary {
    /// The input path.
    pub path: String,
    /// What was done.
    pub status: SourceStatus,
    /// The manifest source it belongs to (another path when it is a rotated/compressed copy).
    pub source: String,
    /// The format it was read with (empty when it was not read).
    pub format: String,
    /// Auto-detection's match rate on the sampled lines, when the format was detected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected_rate: Option<f64>,
    /// When no known format read it: the format inferred from its lines (a `patterns.yaml`
    /// entry), which read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inferred_format: Option<String>,
    /// The table its rows went to (`logs` or `errors`).
    pub table: String,
    /// Content offset reading started at.
    pub start_offset: u64,
    /// Content offset reading ended at.
    pub end_offset: u64,
    /// Lines read.
    pub lines: u64,
    /// Rows written.
    pub rows: u64,
    /// Rows by the format that read them, when lines fell back from the detected format to
    /// another one (a file that mixes layouts).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rows_by_format: BTreeMap<String, u64>,
    /// Bad lines.
    pub bad_lines: u64,
    /// Problem worth knowing (truncated stream, read error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// The outcome of a run (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct IngestSummary {
    /// Run id (empty when nothing was read).
    pub run_id: String,
    /// Dataset directory.
    pub dataset: String,
    /// Log format asked for (`auto`: detected per input, see `sources`).
    pub format: String,
    /// Inputs given.
    pub files: usize,
    /// Inputs read (new, grown or replaced).
    pub files_read: usize,
    /// Bytes read from disk.
    pub bytes: u64,
    /// Lines read.
    pub lines: u64,
    /// Rows written.
    pub rows: u64,
    /// Bad lines.
    pub bad_lines: u64,
    /// Bad lines by reason.
    pub bad_by_reason: BTreeMap<String, u64>,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Parquet files written.
    pub parquet_files: usize,
    /// Wall-clock seconds.
    pub elapsed_s: f64,
    /// Throughput in MB/s (10^6 bytes of input per second).
    pub mb_per_s: f64,
    /// Lines per second.
    pub lines_per_s: f64,
    /// The quarantine file of this run, when there were bad lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_file: Option<String>,
    /// Days (`YYYY-MM-DD`, UTC) this run added access-log rows to, in order.
    pub days: Vec<String>,
    /// Per input.
    pub sources: Vec<SourceSummary>,
}

impl IngestSummary {
    /// Bad lines / (rows + bad lines); 0 when nothing was read.
    pub fn bad_ratio(&self) -> f64 {
        let denom = self.rows + self.bad_lines;
        if denom == 0 {
            0.0
        } else {
            self.bad_lines as f64 / denom as f64
        }
    }

    /// Whether any input failed to read.
    pub fn failed(&self) -> Vec<&SourceSummary> {
        self.sources
            .iter()
            .filter(|s| s.status == SourceStatus::Failed)
            .collect()
    }
}

/// How one input will be read.
struct Plan {
    input: Input,
    label: Arc<str>,
    /// The format it is read with (set for inputs that are read).
    parser: Option<Arc<Parser>>,
    /// Rows' schema for that format.
    schema: Option<SchemaRef>,
    /// Auto-detection's match rate, when the format was detected.
    detected_rate: Option<f64>,
    /// The inferred format (as a `patterns.yaml` entry), when no known format read the input.
    inferred: Option<String>,
    status: SourceStatus,
    /// Index into `manifest.sources` of the record it continues or replaces.
    record: Option<usize>,
    /// Hash and length of the first bytes of the record it continues, checked again when read.
    expect_head: Option<(u64, u64)>,
    /// Set by a worker that found a chunk of it changed under the parser (the file was truncated).
    changed: AtomicBool,
    /// Why it could not be planned (it could not be opened or read).
    error: Option<String>,
    /// Source this input duplicates (its label).
    duplicate_of: Option<String>,
    start: u64,
    skip_partial: bool,
    samples: AtomicUsize,
}

impl Plan {
    /// A plan to read `input` as new; planning then decides.
    fn new(input: &Input) -> Plan {
        Plan {
            input: input.clone(),
            label: Arc::from(input.label()),
            parser: None,
            schema: None,
            detected_rate: None,
            inferred: None,
            status: SourceStatus::New,
            record: None,
            expect_head: None,
            changed: AtomicBool::new(false),
            error: None,
            duplicate_of: None,
            start: 0,
            skip_partial: false,
            samples: AtomicUsize::new(0),
        }
    }
}

#[derive(Default)]
struct WorkerOut {
    files: Vec<WrittenFile>,
    chunks: Vec<(usize, u64, ChunkStats)>,
    bad: Vec<(usize, BadLine)>,
    bad_counts: HashMap<(usize, BadReason), u64>,
    stats: Option<stats::Recorded>,
    error: Option<Error>,
}

/// The ingest stage; see the module docs.
pub struct Ingest {
    opts: IngestOptions,
    patterns: Patterns,
    enrich: Arc<Enrich>,
}

fn run_id() -> String {
    let t = format_rfc3339(now_us());
    let compact: String = t
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    let salt = (now_us() as u64 ^ (std::process::id() as u64) << 20) & 0xffff;
    format!("{compact}-{salt:04x}")
}

impl Ingest {
    /// Checks the options and, unless it is `auto` or read from each file's header, compiles the
    /// format so that a broken pattern is reported before anything is read.
    pub fn new(opts: IngestOptions, patterns: &Patterns) -> Result<Ingest> {
        if opts.threads == 0 {
            return Err(Error::Usage("--threads must be at least 1".into()));
        }
        if opts.format != AUTO && !patterns.spec(&opts.format)?.w3c {
            let parser = patterns.parser(&opts.format, opts.max_line_bytes)?;
            if parser.time_from_header() && parser.prefix().is_none() {
                return Err(Error::Usage(format!(
                    "format `{0}` takes each line's time from the header in front of it: use `{0}+syslog` or `{0}+stampN` (N words after the header's timestamp), or --format auto",
                    opts.format
                )));
            }
        }
        let signatures = SignatureFile::load(opts.security.signatures.as_deref())?;
        let enrich = Enrich {
            router: Arc::new(Router::new(&opts.routes)?),
            tagger: Arc::new(Tagger::new(&signatures, opts.security.paranoia)?),
        };
        Ok(Ingest {
            enrich: Arc::new(enrich),
            opts,
            patterns: patterns.clone(),
        })
    }

    /// Ingests `inputs` into the dataset and commits them; see the module docs.
    pub fn run(&self, inputs: &[Input], progress: &Progress) -> Result<IngestSummary> {
        let started = Instant::now();
        let started_at = format_rfc3339(now_us());
        let dataset = Dataset::open_for_write(&self.opts.dataset)?;
        let mut manifest = Manifest::load(dataset.dir())?;
        let mut cache = FormatCache::default();
        let plans = self.plan(inputs, &manifest, &mut cache)?;
        let total: u64 = plans
            .iter()
            .filter(|p| p.status.is_read())
            .map(|p| match p.input.encoding {
                Encoding::Plain => p.input.size.saturating_sub(p.start),
                _ => p.input.size,
            })
            .sum();
        progress.total_bytes.store(total, Ordering::Relaxed);
        let run_id = run_id();
        let (outs, ends) = self
            .execute(&plans, dataset.dir(), &run_id, progress)
            .map_err(Error::not_committed)?;
        let mut saved = false;
        std::thread::scope(|scope| {
            // DuckDB starts while the commit folds and writes the statistics.
            let reads = plans.iter().any(|p| p.status.is_read());
            let catalog = reads.then(|| scope.spawn(|| Catalog::connect(&dataset)));
            self.commit(
                &dataset,
                &mut manifest,
                &plans,
                (outs, ends),
                &run_id,
                &started_at,
                started,
                catalog,
                progress,
                &mut saved,
            )
        })
        .map_err(|e| if saved { e } else { e.not_committed() })
    }

    /// Decides how each input is read (see [`SourceStatus`]). An input that cannot be opened or
    /// read (permission denied, an I/O error) is planned as failed and the others go on.
    fn plan(
        &self,
        inputs: &[Input],
        manifest: &Manifest,
        cache: &mut FormatCache,
    ) -> Result<Vec<Plan>> {
        let mut plans = Vec::with_capacity(inputs.len());
        let mut seen_fp: HashMap<(u64, u64), String> = HashMap::new();
        for input in inputs {
            let mut plan = Plan::new(input);
            match self.plan_one(&mut plan, manifest, cache, &mut seen_fp) {
                Ok(()) => {}
                Err(e @ Error::Io { .. }) => {
                    plan.status = SourceStatus::Failed;
                    plan.error = Some(e.to_string());
                }
                Err(e) => return Err(e),
            }
            plans.push(plan);
        }
        Ok(plans)
    }

    fn plan_one(
        &self,
        plan: &mut Plan,
        manifest: &Manifest,
        cache: &mut FormatCache,
        seen_fp: &mut HashMap<(u64, u64), String>,
    ) -> Result<()> {
        let input = &plan.input.clone();
        let label = Arc::clone(&plan.label);
        if input.encoding == Encoding::Stdin {
            return self.choose_format(plan, None, cache);
        }
        if self.opts.follow.is_some() && input.encoding != Encoding::Plain && being_written(input) {
            // A compressed file still being written (logrotate compressing a rotated log): read
            // once it is whole.
            plan.status = SourceStatus::Unchanged;
            return Ok(());
        }
        let mut fps: HashMap<u64, u64> = HashMap::new();
        let mut fp_at = |len: u64| -> Result<u64> {
            if let Some(h) = fps.get(&len) {
                return Ok(*h);
            }
            let (h, got) = scan::fingerprint(input, len)?;
            let h = if got == len { h } else { !h };
            fps.insert(len, h);
            Ok(h)
        };
        let same_path =
            |r: &SourceRecord| r.path == *label || r.aliases.iter().any(|a| *a == *label);
        // A plain file of the same path truncated below the fingerprinted head: the longest of
        // the shorter heads it still holds.
        let kept_prefix = |r: &SourceRecord| {
            (input.encoding == Encoding::Plain && r.encoding == Encoding::Plain)
                .then(|| r.prefixes.iter().rev().find(|(n, _)| *n <= input.size))
                .flatten()
                .copied()
        };
        // Prefer a record of the same path, then any record whose content this input starts with.
        let mut found = None;
        for pass in 0..2 {
            for (i, r) in manifest.sources.iter().enumerate().rev() {
                if (pass == 0) != same_path(r) || r.encoding == Encoding::Stdin {
                    continue;
                }
                let same_head = (r.fingerprint_len > 0 || pass == 0)
                    && fp_at(r.fingerprint_len)? == r.fingerprint;
                let truncated_head = pass == 0
                    && input.size < r.fingerprint_len
                    && match kept_prefix(r) {
                        Some((n, hash)) => fp_at(n)? == hash,
                        None => false,
                    };
                if same_head || truncated_head {
                    found = Some((i, !same_head));
                    break;
                }
            }
            if found.is_some() {
                break;
            }
        }
        match found {
            Some((i, below_head)) => {
                let r = &manifest.sources[i];
                plan.record = Some(i);
                if self.opts.force {
                    plan.status = SourceStatus::Replaced;
                } else {
                    let unchanged = match input.encoding {
                        Encoding::Plain => input.size <= r.offset,
                        _ => input.size == r.size && input.encoding == r.encoding,
                    };
                    let shorter = match (input.encoding, r.encoding) {
                        (Encoding::Plain, Encoding::Plain) => input.size < r.offset,
                        (a, b) => a == b && input.size < r.size,
                    };
                    if below_head || (shorter && r.path == *label) {
                        // The source's own path, shorter than what was read of it, same head.
                        plan.status = SourceStatus::Truncated;
                    } else if unchanged {
                        plan.status = SourceStatus::Unchanged;
                    } else {
                        plan.status = SourceStatus::Grown;
                        plan.start = r.offset;
                        plan.skip_partial = !r.ends_with_newline && r.offset > 0;
                        plan.expect_head = Some((r.fingerprint, r.fingerprint_len));
                    }
                }
            }
            None => {
                let key = (fp_at(FINGERPRINT_BYTES)?, input.size);
                if let Some(first) = seen_fp.get(&key) {
                    plan.status = SourceStatus::Duplicate;
                    plan.duplicate_of = Some(first.clone());
                } else {
                    seen_fp.insert(key, label.to_string());
                }
            }
        }
        if plan.status.is_read() {
            let previous = found.map(|(i, _)| &manifest.sources[i]);
            self.choose_format(plan, previous, cache)?;
        }
        Ok(())
    }

    /// Picks the format of an input that will be read: the one asked for, the one a grown source
    /// was read with before, the best match of auto-detection, or, when no format reads it, one
    /// inferred from its lines (only if that reads [`MIN_INFERRED_RATE`] of them).
    fn choose_format(
        &self,
        plan: &mut Plan,
        previous: Option<&SourceRecord>,
        cache: &mut FormatCache,
    ) -> Result<()> {
        let max = self.opts.max_line_bytes;
        let mut name = self.opts.format.clone();
        // A grown source goes on with the format it was read with, an inferred one included.
        let grown = previous.filter(|_| name == AUTO && plan.status == SourceStatus::Grown);
        let kept = grown
            .and_then(|r| r.inferred_format.as_deref())
            .and_then(|yaml| {
                Patterns::parse(&format!("formats:\n{yaml}"), Path::new("<inferred>")).ok()
            });
        let patterns = kept.as_ref().unwrap_or(&self.patterns);
        if let Some(prev) = grown.filter(|r| patterns.spec(&r.format).is_ok()) {
            name = prev.format.clone();
            plan.inferred = prev.inferred_format.clone();
        }
        let needs_head = name == AUTO || patterns.spec(&name)?.w3c;
        let (head, complete) = if needs_head {
            scan::head(&plan.input, scan::FINGERPRINT_BYTES)?
        } else {
            (Vec::new(), false)
        };
        let mut runners_up = Vec::new();
        let mut inferred = None;
        if name == AUTO {
            let candidates = patterns.sniff(&head, complete, max, cache);
            match candidates.first() {
                Some(best) if best.rate >= MIN_RATE => {
                    name = best.format.clone();
                    plan.detected_rate = Some(best.rate);
                    runners_up = candidates[1..]
                        .iter()
                        .filter(|c| c.matched > 0)
                        .map(|c| c.format.clone())
                        .collect();
                    tracing::info!(input = %plan.label, format = %name, rate = best.rate, "detected format");
                }
                Some(_) if candidates.iter().all(|c| c.sampled == 0) => {
                    // Nothing to judge by (an empty file): any format reads it as nothing.
                    name = patterns.formats.keys().next().cloned().unwrap_or_default();
                }
                _ => {
                    let lines = sample_lines(&head, complete);
                    let Some(found) = infer::suggest(INFERRED, &lines, max)
                        .filter(|s| s.rate() >= MIN_INFERRED_RATE)
                    else {
                        return Err(no_format(&plan.label, &candidates));
                    };
                    tracing::info!(input = %plan.label, rate = found.rate(), format = %found.name, "inferred a format");
                    plan.detected_rate = Some(found.rate());
                    plan.inferred = Some(found.yaml(&format!(
                        "inferred from {} (no known format read it)",
                        plan.label
                    )));
                    inferred = Some(Arc::new(found.parser(max)?));
                }
            }
        }
        let parser = match (inferred, &kept) {
            (Some(p), _) => p,
            (None, Some(k)) => Arc::new(k.parser_for(&name, max, &head)?),
            (None, None) => self.compiled(&name, &head, cache)?,
        };
        let others = self.fallbacks(&parser, &runners_up, &head, complete, cache)?;
        let parser = if others.is_empty() {
            parser
        } else {
            Arc::new(parser.with_fallbacks(&others))
        };
        plan.schema = Some(match parser.kind() {
            Kind::Access => arrow_schema(parser.extras()),
            Kind::Error => error_schema(),
        });
        plan.parser = Some(parser);
        Ok(())
    }

    /// The formats that lines of a file which mixes layouts fall back to: among auto-detection's
    /// `runners_up` (best first), each that reads, as declared, sampled lines that neither the
    /// detected format nor an earlier fallback reads.
    fn fallbacks(
        &self,
        detected: &Arc<Parser>,
        runners_up: &[String],
        head: &[u8],
        complete: bool,
        cache: &mut FormatCache,
    ) -> Result<Vec<Arc<Parser>>> {
        let mut unread: Vec<&[u8]> = sample_lines(head, complete);
        cache.with_scratch(detected, |scratch| {
            unread.retain(|l| !detected.reads_as_declared(scratch, l));
        });
        if unread.is_empty() {
            return Ok(Vec::new());
        }
        let mut chosen = Vec::new();
        for name in runners_up {
            if unread.is_empty() || chosen.len() + 1 >= MAX_CHAIN {
                break;
            }
            let other = self.compiled(name, head, cache)?;
            let before = unread.len();
            cache.with_scratch(&other, |scratch| {
                unread.retain(|l| !other.reads_as_declared(scratch, l));
            });
            if unread.len() < before {
                chosen.push(other);
            }
        }
        Ok(chosen)
    }

    /// Format `name` compiled for an input starting with `head`, from `cache` unless it depends
    /// on the input (W3C).
    fn compiled(&self, name: &str, head: &[u8], cache: &mut FormatCache) -> Result<Arc<Parser>> {
        let w3c = self.patterns.spec(name)?.w3c;
        if let Some(p) = cache.get(name).filter(|_| !w3c) {
            return Ok(Arc::clone(p));
        }
        let p = Arc::new(
            self.patterns
                .parser_for(name, self.opts.max_line_bytes, head)?,
        );
        if !w3c {
            cache.insert(name.to_string(), Arc::clone(&p));
        }
        Ok(p)
    }

    fn execute(
        &self,
        plans: &[Plan],
        dataset: &Path,
        run_id: &str,
        progress: &Progress,
    ) -> Result<(Vec<WorkerOut>, Vec<Result<ScanEnd>>)> {
        let threads = self.opts.threads;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("logcrunch-worker-{i}"))
            .build()
            .map_err(|e| Error::Usage(format!("cannot start {threads} worker threads: {e}")))?;
        let (tx, rx) = crossbeam_channel::bounded::<scan::Chunk>(threads * 2);
        let abort = AtomicBool::new(false);
        let scanner = Scanner {
            chunk_size: self.opts.chunk_size,
            max_line_bytes: self.opts.max_line_bytes,
        };
        let props = sink::writer_properties(self.opts.zstd_level, self.opts.row_group_rows)?;
        let budget = self.opts.quarantine_samples;
        std::thread::scope(|scope| {
            let producer = scope.spawn(|| {
                let mut ends = Vec::with_capacity(plans.len());
                for (i, plan) in plans.iter().enumerate() {
                    if !plan.status.is_read() || abort.load(Ordering::Relaxed) {
                        ends.push(Ok(ScanEnd::default()));
                        continue;
                    }
                    let mut emit = |chunk| {
                        !abort.load(Ordering::Relaxed)
                            && !plan.changed.load(Ordering::Relaxed)
                            && tx.send(chunk).is_ok()
                    };
                    let req = ScanRequest {
                        source: i,
                        input: &plan.input,
                        start: plan.start,
                        skip_partial: plan.skip_partial,
                        cut_before: plan.parser.as_ref().and_then(|p| p.entry_start()),
                        expect_head: plan.expect_head,
                        follow: self.opts.follow.is_some(),
                    };
                    ends.push(scanner.scan(&req, &progress.bytes, &mut emit));
                }
                drop(tx);
                ends
            });
            let outs = pool.broadcast(|ctx| {
                let mut out = WorkerOut::default();
                let mut sink = Sink::new(dataset, run_id, ctx.index(), props.clone());
                let mut scratches: HashMap<usize, crate::parse::Scratch> = HashMap::new();
                let mut tags = TagScratch::default();
                let mut recorder = Recorder::new(self.opts.stats.significant_digits);
                for chunk in rx.iter() {
                    if out.error.is_some() {
                        continue;
                    }
                    let plan = &plans[chunk.source];
                    let (Some(parser), Some(schema)) = (plan.parser.as_ref(), plan.schema.as_ref())
                    else {
                        continue;
                    };
                    let scratch = scratches
                        .entry(Arc::as_ptr(parser) as usize)
                        .or_insert_with(|| parser.scratch());
                    let left = budget.saturating_sub(plan.samples.load(Ordering::Relaxed));
                    let mut batcher = ChunkBatcher::new(
                        parser.kind(),
                        Arc::clone(schema),
                        Arc::clone(&plan.label),
                        Arc::clone(&self.enrich),
                        parser.extras().len(),
                        chunk.seq,
                        left,
                        &mut tags,
                    );
                    let stats =
                        parser.parse_chunk(scratch, &chunk.data, chunk.offset, &mut batcher);
                    progress.lines.fetch_add(stats.lines, Ordering::Relaxed);
                    if !chunk.intact() {
                        // The file shrank under the parser: these rows may be zeros, not lines,
                        // and the source is dropped at the commit.
                        plan.changed.store(true, Ordering::Relaxed);
                        continue;
                    }
                    out.chunks.push((chunk.source, chunk.seq, stats));
                    plan.samples.fetch_add(batcher.bad.len(), Ordering::Relaxed);
                    for (reason, n) in std::mem::take(&mut batcher.bad_counts) {
                        *out.bad_counts.entry((chunk.source, reason)).or_default() += n;
                    }
                    out.bad.extend(
                        std::mem::take(&mut batcher.bad)
                            .into_iter()
                            .map(|b| (chunk.source, b)),
                    );
                    let table = parser.kind().table();
                    let written = batcher.finish(parser.name()).and_then(|days| {
                        days.iter().try_for_each(|(day, batch)| {
                            if table == "logs" && self.opts.stats.enabled {
                                recorder.record(chunk.source, batch);
                            }
                            sink.write(chunk.source, *day, table, schema, batch)
                        })
                    });
                    if let Err(e) = written {
                        abort.store(true, Ordering::Relaxed);
                        out.error = Some(e);
                    }
                }
                out.stats = Some(recorder.finish());
                if out.error.is_some() {
                    sink.abandon();
                    return out;
                }
                match sink.finish() {
                    Ok(files) => out.files = files,
                    Err(e) => {
                        abort.store(true, Ordering::Relaxed);
                        out.error = Some(e);
                    }
                }
                out
            });
            let ends = producer.join().expect("the scanner thread does not panic");
            Ok((outs, ends))
        })
    }

    /// Commits a run: the workers' output is gathered, each source summarised, the files and
    /// statistics of the sources that were read whole are published, the manifest records them
    /// and is saved, and the catalog is refreshed. Until the manifest is saved nothing is part of
    /// the dataset (`saved` tells the caller whether it was).
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        dataset: &Dataset,
        manifest: &mut Manifest,
        plans: &[Plan],
        (outs, ends): (Vec<WorkerOut>, Vec<Result<ScanEnd>>),
        run_id: &str,
        started_at: &str,
        started: Instant,
        catalog: Option<ScopedJoinHandle<'_, Result<Catalog>>>,
        progress: &Progress,
        saved: &mut bool,
    ) -> Result<IngestSummary> {
        let mut gathered = Gathered::from_workers(outs, plans.len())?;
        let sources = self.summarise_sources(plans, ends, &mut gathered, manifest);
        let read_any = plans.iter().enumerate().any(|(i, p)| {
            !sources.dropped[i] && (p.status.is_read() || p.status == SourceStatus::Truncated)
        });
        let quarantine_file = if sources.quarantine.is_empty() || !read_any {
            None
        } else {
            Some(write_quarantine(
                dataset.dir(),
                run_id,
                &sources.quarantine,
            )?)
        };
        let (keep, groups) =
            self.write_files(dataset, manifest, run_id, &mut gathered, &sources)?;
        let superseded = if read_any {
            record_sources(
                manifest,
                plans,
                &sources,
                &gathered.bad_counts,
                &keep,
                run_id,
            )?
        } else {
            Vec::new()
        };
        let summary = self.summary(
            dataset,
            manifest,
            plans,
            &gathered,
            sources.summaries,
            (run_id, read_any, keep.len(), quarantine_file),
            started,
            progress,
        );
        if read_any {
            manifest.route_groups = groups;
            let record = RunRecord {
                id: run_id.to_string(),
                started: started_at.to_string(),
                elapsed_s: summary.elapsed_s,
                sources: summary.files_read as u64,
                lines: summary.lines,
                rows: summary.rows,
                bad_lines: summary.bad_lines,
            };
            match (&self.opts.follow, manifest.runs.last_mut()) {
                (Some(session), Some(last)) if last.id == *session => last.fold(&record),
                (Some(session), _) => manifest.runs.push(RunRecord {
                    id: session.clone(),
                    ..record
                }),
                (None, _) => manifest.runs.push(record),
            }
            save_and_refresh(dataset, manifest, &keep, catalog, &self.enrich, saved)?;
            remove_superseded(dataset, superseded);
        }
        Ok(summary)
    }

    /// Summarises each source (status, offsets, lines, rows, bad lines by reason, warning) and
    /// collects the quarantine samples with their line numbers. A source that failed or changed
    /// while it was read is dropped whole: nothing of it is committed.
    fn summarise_sources(
        &self,
        plans: &[Plan],
        ends: Vec<Result<ScanEnd>>,
        g: &mut Gathered,
        manifest: &Manifest,
    ) -> SourceOutcomes {
        let mut out = SourceOutcomes {
            summaries: Vec::with_capacity(plans.len()),
            quarantine: Vec::new(),
            dropped: vec![false; plans.len()],
            scan_ends: Vec::with_capacity(plans.len()),
        };
        for (i, (plan, end)) in plans.iter().zip(ends).enumerate() {
            let end = match &plan.error {
                Some(e) => Err(e.clone()),
                None => end.map_err(|e| e.to_string()),
            };
            let mut failed = false;
            let (end, warning) = match end {
                Ok(e) => match changed_while_read(plan, &e) {
                    Some(how) => {
                        out.dropped[i] = true;
                        g.chunks[i].clear();
                        g.bad[i].clear();
                        g.bad_counts[i].clear();
                        let w = format!(
                            "{how}; nothing of it was committed, the next run reads it again"
                        );
                        tracing::warn!(input = %plan.label, "{w}");
                        (ScanEnd::default(), Some(w))
                    }
                    None => {
                        let w = read_warning(plan, &e, manifest);
                        (e, w)
                    }
                },
                Err(e) => {
                    failed = true;
                    out.dropped[i] = true;
                    (ScanEnd::default(), Some(e))
                }
            };
            let st = &mut g.chunks[i];
            st.sort_by_key(|(seq, _)| *seq);
            let prior_lines = match (plan.status, plan.record) {
                (SourceStatus::Grown, Some(r)) => manifest.sources[r].lines,
                _ => 0,
            };
            let (lines_read, extra_lines) = self.quarantine_source(
                plan,
                &end,
                prior_lines,
                st,
                std::mem::take(&mut g.bad[i]),
                &mut g.bad_counts[i],
                &mut out.quarantine,
            );
            let status = if failed {
                SourceStatus::Failed
            } else if out.dropped[i] {
                SourceStatus::Changed
            } else {
                plan.status
            };
            out.summaries.push(SourceSummary {
                path: plan.label.to_string(),
                status,
                source: plan
                    .duplicate_of
                    .clone()
                    .or_else(|| plan.record.map(|r| manifest.sources[r].path.clone()))
                    .unwrap_or_else(|| plan.label.to_string()),
                format: plan
                    .parser
                    .as_ref()
                    .map_or_else(String::new, |p| p.name().to_string()),
                detected_rate: plan.detected_rate,
                inferred_format: plan.inferred.clone(),
                table: plan
                    .parser
                    .as_ref()
                    .map_or("logs", |p| p.kind().table())
                    .to_string(),
                start_offset: plan.start,
                end_offset: if end.chunks == 0 && end.end == 0 {
                    plan.start
                } else {
                    end.end
                },
                lines: lines_read + extra_lines,
                rows: st.iter().map(|(_, s)| s.rows).sum(),
                rows_by_format: rows_by_format(plan.parser.as_deref(), st),
                bad_lines: g.bad_counts[i].values().sum(),
                warning,
            });
            out.scan_ends.push(end);
        }
        out
    }

    /// Adds a source's bad-line samples to `quarantine` with their line numbers (lines before
    /// their chunk plus their index in it), and the partial first line and truncated last line
    /// the scanner reported; returns the lines read and the extra (truncated) line.
    #[allow(clippy::too_many_arguments)]
    fn quarantine_source(
        &self,
        plan: &Plan,
        end: &ScanEnd,
        prior_lines: u64,
        chunks: &[(u64, ChunkStats)],
        mut samples: Vec<BadLine>,
        bad_counts: &mut BTreeMap<BadReason, u64>,
        quarantine: &mut Vec<(String, u64, BadLine)>,
    ) -> (u64, u64) {
        let mut before = HashMap::with_capacity(chunks.len());
        let mut acc = prior_lines;
        for (seq, s) in chunks {
            before.insert(*seq, acc);
            acc += s.lines;
        }
        samples.sort_by_key(|b| (b.seq, b.line_index));
        samples.truncate(self.opts.quarantine_samples);
        for b in samples {
            let line_no = before.get(&b.seq).copied().unwrap_or(prior_lines) + b.line_index + 1;
            quarantine.push((plan.label.to_string(), line_no, b));
        }
        let mut extra_lines = 0;
        if let Some((at, len)) = end.skipped_partial {
            *bad_counts
                .entry(BadReason::PartialLineContinued)
                .or_default() += 1;
            quarantine.push((
                plan.label.to_string(),
                prior_lines,
                BadLine {
                    seq: 0,
                    line_index: 0,
                    offset: at,
                    reason: BadReason::PartialLineContinued,
                    sample: format!("({len} bytes)").into_bytes(),
                },
            ));
        }
        if let Some((_, at, line)) = &end.truncated
            && !line.is_empty()
        {
            *bad_counts.entry(BadReason::TruncatedInput).or_default() += 1;
            extra_lines += 1;
            quarantine.push((
                plan.label.to_string(),
                acc + 1,
                BadLine {
                    seq: u64::MAX,
                    line_index: 0,
                    offset: *at,
                    reason: BadReason::TruncatedInput,
                    sample: line[..line.len().min(SAMPLE_BYTES)].to_vec(),
                },
            ));
        }
        (acc - prior_lines, extra_lines)
    }

    /// Removes the files of dropped sources, folds the statistics into the dataset's route
    /// groups and writes them, and publishes every file that is kept (still outside the dataset
    /// until the manifest names them). Returns the kept files and the route groups.
    fn write_files(
        &self,
        dataset: &Dataset,
        manifest: &Manifest,
        run_id: &str,
        g: &mut Gathered,
        sources: &SourceOutcomes,
    ) -> Result<(Vec<WrittenFile>, Vec<String>)> {
        let dropped = &sources.dropped;
        let (mut keep, drop): (Vec<_>, Vec<_>) = std::mem::take(&mut g.files)
            .into_iter()
            .partition(|f| !dropped[f.source]);
        for f in &drop {
            let _ = std::fs::remove_file(&f.tmp);
        }
        let mut parts = std::mem::take(&mut g.parts);
        for worker in &mut parts {
            worker.drop_sources(|s| dropped[s]);
        }
        let fold_started = Instant::now();
        let groups = stats::choose_groups(
            &manifest.route_groups,
            &stats::route_volumes(&parts),
            self.opts.stats.route_groups,
        );
        let group_set = groups.iter().map(String::as_str).collect();
        let recorded: usize = parts.iter().map(stats::Recorded::cells).sum();
        let folded = stats::fold(&parts, &group_set, self.opts.stats.significant_digits)?;
        std::mem::drop(parts);
        let write_started = Instant::now();
        let props = sink::writer_properties(self.opts.zstd_level, self.opts.row_group_rows)?;
        keep.extend(stats::write(dataset.dir(), run_id, &folded, &props)?);
        tracing::debug!(
            recorded,
            rows = folded.iter().map(Vec::len).sum::<usize>(),
            fold_ms = (write_started - fold_started).as_millis() as u64,
            write_ms = write_started.elapsed().as_millis() as u64,
            "stats folded and written"
        );
        sink::publish(dataset.dir(), &keep)?;
        Ok((keep, groups))
    }

    /// The run's summary.
    #[allow(clippy::too_many_arguments)]
    fn summary(
        &self,
        dataset: &Dataset,
        manifest: &Manifest,
        plans: &[Plan],
        g: &Gathered,
        summaries: Vec<SourceSummary>,
        (run_id, read_any, parquet_files, quarantine_file): (&str, bool, usize, Option<String>),
        started: Instant,
        progress: &Progress,
    ) -> IngestSummary {
        let elapsed = started.elapsed().as_secs_f64();
        let bytes = progress.bytes.load(Ordering::Relaxed);
        let lines: u64 = summaries.iter().map(|s| s.lines).sum();
        let mut all_reasons = BTreeMap::new();
        for counts in &g.bad_counts {
            for (r, n) in counts {
                *all_reasons.entry(r.key().into_owned()).or_default() += *n;
            }
        }
        let per_s = |n: f64| if elapsed > 0.0 { n / elapsed } else { 0.0 };
        IngestSummary {
            run_id: if read_any {
                run_id.to_string()
            } else {
                String::new()
            },
            dataset: dataset.dir().display().to_string(),
            format: self.opts.format.clone(),
            files: plans.len(),
            files_read: summaries.iter().filter(|s| s.status.is_read()).count(),
            bytes,
            lines,
            rows: summaries.iter().map(|s| s.rows).sum(),
            bad_lines: summaries.iter().map(|s| s.bad_lines).sum(),
            bad_by_reason: all_reasons,
            blank_lines: g.chunks.iter().flatten().map(|(_, s)| s.blank).sum(),
            parquet_files,
            elapsed_s: elapsed,
            mb_per_s: per_s(bytes as f64 / 1e6),
            lines_per_s: per_s(lines as f64),
            quarantine_file,
            days: manifest
                .files
                .iter()
                .filter(|f| f.run == run_id && f.table == "logs")
                .map(|f| f.date.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            sources: summaries,
        }
    }
}

/// The workers' output, per source.
struct Gathered {
    files: Vec<WrittenFile>,
    parts: Vec<stats::Recorded>,
    chunks: Vec<Vec<(u64, ChunkStats)>>,
    bad: Vec<Vec<BadLine>>,
    bad_counts: Vec<BTreeMap<BadReason, u64>>,
}

impl Gathered {
    /// Merges the workers' output; on a worker's error, removes every file the run wrote and
    /// returns the error.
    fn from_workers(outs: Vec<WorkerOut>, sources: usize) -> Result<Gathered> {
        let mut g = Gathered {
            files: Vec::new(),
            parts: Vec::new(),
            chunks: vec![Vec::new(); sources],
            bad: vec![Vec::new(); sources],
            bad_counts: vec![BTreeMap::new(); sources],
        };
        let mut worker_error = None;
        for out in outs {
            g.files.extend(out.files);
            g.parts.extend(out.stats);
            for (s, seq, st) in out.chunks {
                g.chunks[s].push((seq, st));
            }
            for (s, b) in out.bad {
                g.bad[s].push(b);
            }
            for ((s, r), n) in out.bad_counts {
                *g.bad_counts[s].entry(r).or_default() += n;
            }
            if let Some(e) = out.error {
                worker_error.get_or_insert(e);
            }
        }
        match worker_error {
            Some(e) => {
                for f in &g.files {
                    let _ = std::fs::remove_file(&f.tmp);
                }
                Err(e)
            }
            None => Ok(g),
        }
    }
}

/// What became of each source at the commit.
struct SourceOutcomes {
    summaries: Vec<SourceSummary>,
    quarantine: Vec<(String, u64, BadLine)>,
    /// Failed or changed while read: nothing of the source is committed.
    dropped: Vec<bool>,
    scan_ends: Vec<ScanEnd>,
}

/// The warning of a source read whole: its input ended early, or it was truncated in place.
fn read_warning(plan: &Plan, end: &ScanEnd, manifest: &Manifest) -> Option<String> {
    end.truncated
        .as_ref()
        .map(|(msg, at, _)| {
            format!("input ends early at content offset {at} ({msg}); the rows before it were kept")
        })
        .or_else(|| {
            (plan.status == SourceStatus::Truncated).then(|| {
                let read = plan.record.map_or(0, |r| match plan.input.encoding {
                    Encoding::Plain => manifest.sources[r].offset,
                    _ => manifest.sources[r].size,
                });
                format!(
                    "it is shorter than when it was read ({read} -> {} bytes): it was truncated in place; the rows read before are kept and reading resumes at its new end",
                    plan.input.size
                )
            })
        })
}

/// Records the run in the manifest: each source read (offsets, fingerprint, counts, format),
/// truncated sources at their new end, and the kept files. Returns the files of replaced sources,
/// to remove once the manifest no longer names them.
fn record_sources(
    manifest: &mut Manifest,
    plans: &[Plan],
    sources: &SourceOutcomes,
    bad_counts: &[BTreeMap<BadReason, u64>],
    keep: &[WrittenFile],
    run_id: &str,
) -> Result<Vec<String>> {
    let mut superseded = Vec::new();
    let mut id_of = vec![None; plans.len()];
    for (i, plan) in plans.iter().enumerate() {
        if let (SourceStatus::Truncated, Some(r)) = (plan.status, plan.record) {
            record_truncated(&mut manifest.sources[r], plan)?;
            continue;
        }
        if sources.dropped[i] || !plan.status.is_read() {
            continue;
        }
        let idx = source_record(manifest, plan, &mut superseded);
        let rec = &mut manifest.sources[idx];
        record_read(rec, plan, &sources.scan_ends[i], &sources.summaries[i]);
        for (r, n) in &bad_counts[i] {
            *rec.bad_by_reason.entry(r.key().into_owned()).or_default() += n;
        }
        rec.last_run = run_id.to_string();
        id_of[i] = Some(rec.id);
    }
    for f in keep {
        let Some(id) = id_of[f.source] else { continue };
        manifest.files.push(FileRecord {
            table: f.table.to_string(),
            path: f.rel_path.clone(),
            source: id,
            run: run_id.to_string(),
            date: sink::partition_name(f.day)
                .trim_start_matches("date=")
                .to_string(),
            rows: f.rows,
            bytes: f.bytes,
            compacted: false,
        });
    }
    Ok(superseded)
}

/// A source truncated in place: reading resumes at its new end, and its head is what is left of
/// the old one.
fn record_truncated(rec: &mut SourceRecord, plan: &Plan) -> Result<()> {
    rec.size = plan.input.size;
    if plan.input.encoding == Encoding::Plain {
        let end = scan::end_of(&plan.input)?;
        let (fp, fp_len) = end.fingerprint.unwrap_or_default();
        rec.offset = end.end;
        rec.ends_with_newline = end.ends_with_newline;
        rec.fingerprint = fp;
        rec.fingerprint_len = fp_len;
        rec.prefixes = end.prefixes;
    }
    Ok(())
}

/// The index of `plan`'s source record: its own (emptied, with its files listed in `superseded`,
/// when the file was replaced) or a new one.
fn source_record(manifest: &mut Manifest, plan: &Plan, superseded: &mut Vec<String>) -> usize {
    match plan.record {
        Some(r) => {
            if plan.status == SourceStatus::Replaced {
                let id = manifest.sources[r].id;
                superseded.extend(
                    manifest
                        .files
                        .iter()
                        .filter(|f| f.source == id)
                        .map(|f| f.path.clone()),
                );
                manifest.files.retain(|f| f.source != id);
                let rec = &mut manifest.sources[r];
                rec.lines = 0;
                rec.rows = 0;
                rec.bad_lines = 0;
                rec.bad_by_reason.clear();
            }
            r
        }
        None => {
            manifest.sources.push(SourceRecord {
                id: manifest.next_source_id(),
                path: plan.label.to_string(),
                aliases: Vec::new(),
                encoding: plan.input.encoding,
                size: 0,
                fingerprint: 0,
                fingerprint_len: 0,
                prefixes: Vec::new(),
                offset: 0,
                ends_with_newline: true,
                lines: 0,
                rows: 0,
                bad_lines: 0,
                bad_by_reason: BTreeMap::new(),
                format: String::new(),
                inferred_format: None,
                last_run: String::new(),
            });
            manifest.sources.len() - 1
        }
    }
}

/// Whether `input` was modified in the last two seconds (a writer may still be at it).
fn being_written(input: &Input) -> bool {
    std::fs::metadata(&input.path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| {
            t.elapsed()
                .is_ok_and(|age| age < std::time::Duration::from_secs(2))
        })
}

/// Updates a source record with what this run read of it.
fn record_read(rec: &mut SourceRecord, plan: &Plan, end: &ScanEnd, s: &SourceSummary) {
    if rec.path != *plan.label && !rec.aliases.iter().any(|a| *a == *plan.label) {
        rec.aliases.push(plan.label.to_string());
    }
    rec.encoding = plan.input.encoding;
    rec.size = plan.input.size;
    let (fp, fp_len) = end.fingerprint.unwrap_or((0, 0));
    if fp_len >= rec.fingerprint_len {
        rec.fingerprint = fp;
        rec.fingerprint_len = fp_len;
        rec.prefixes = end.prefixes.clone();
    }
    if end.chunks > 0 || end.truncated.is_some() || end.skipped_partial.is_some() {
        // A grown source never goes back: a copy that broke off before the offset already read
        // (a compressed file cut short) adds nothing, and must not make the next run read again.
        if plan.status != SourceStatus::Grown || end.end >= rec.offset {
            rec.offset = end.end;
            rec.ends_with_newline = end.ends_with_newline;
        }
    }
    rec.lines += s.lines;
    rec.rows += s.rows;
    rec.bad_lines += s.bad_lines;
    rec.format = plan
        .parser
        .as_ref()
        .map_or_else(String::new, |p| p.name().to_string());
    rec.inferred_format = plan.inferred.clone();
}

/// Saves the manifest (removing the published files if it cannot be saved: they would belong to
/// nothing) and refreshes the catalog's views and threat categories.
fn save_and_refresh(
    dataset: &Dataset,
    manifest: &Manifest,
    keep: &[WrittenFile],
    catalog: Option<ScopedJoinHandle<'_, Result<Catalog>>>,
    enrich: &Enrich,
    saved: &mut bool,
) -> Result<()> {
    if let Err(e) = manifest.save(dataset.dir()) {
        for f in keep {
            let _ = std::fs::remove_file(dataset.dir().join(&f.rel_path));
        }
        return Err(e);
    }
    *saved = true;
    let catalog = match catalog {
        Some(opening) => opening
            .join()
            .expect("opening the catalog does not panic")?,
        None => Catalog::connect(dataset)?,
    };
    catalog.refresh(dataset, manifest)?.set_threat_categories(
        enrich
            .tagger
            .categories()
            .iter()
            .map(|c| (c.bit, c.name.as_str(), c.description.as_str())),
    )?;
    Ok(())
}

/// Removes the files of replaced sources, now that the saved manifest no longer names them.
fn remove_superseded(dataset: &Dataset, superseded: Vec<String>) {
    for p in superseded {
        let path = dataset.dir().join(&p);
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a replaced file; the next ingest will");
        }
    }
}

/// How `plan`'s input changed while it was read, if it did: seen by the scanner (`end.changed`) or
/// by a worker whose chunk lost its pages.
fn changed_while_read(plan: &Plan, end: &ScanEnd) -> Option<String> {
    end.changed.clone().or_else(|| {
        plan.changed
            .load(Ordering::Relaxed)
            .then(|| "it was truncated while it was read".to_string())
    })
}

fn write_quarantine(
    dataset: &Path,
    run_id: &str,
    lines: &[(String, u64, BadLine)],
) -> Result<String> {
    #[derive(Serialize)]
    struct Entry<'a> {
        source: &'a str,
        line: u64,
        offset: u64,
        reason: String,
        text: String,
    }
    let dir = dataset.join(QUARANTINE_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let rel = format!("{QUARANTINE_DIR}/{run_id}.jsonl");
    let path = dataset.join(&rel);
    let write = || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for (source, line, b) in lines {
            let e = Entry {
                source,
                line: *line,
                offset: b.offset,
                reason: b.reason.key().into_owned(),
                text: String::from_utf8_lossy(&b.sample).into_owned(),
            };
            serde_json::to_writer(&mut w, &e)?;
            w.write_all(b"\n")?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    write().map_err(|e| Error::io("cannot write", &path, e))?;
    Ok(path.display().to_string())
}

/// Rows per format of `parser`'s chain over a source's chunks; empty when only the detected
/// format read rows.
fn rows_by_format(parser: Option<&Parser>, chunks: &[(u64, ChunkStats)]) -> BTreeMap<String, u64> {
    let Some(parser) = parser else {
        return BTreeMap::new();
    };
    let mut by = [0u64; MAX_CHAIN];
    for (_, s) in chunks {
        for (total, n) in by.iter_mut().zip(s.by_format) {
            *total += n;
        }
    }
    if by[1..].iter().all(|n| *n == 0) {
        return BTreeMap::new();
    }
    parser
        .chain()
        .into_iter()
        .zip(by)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| (name.to_string(), n))
        .collect()
}

fn no_format(label: &str, candidates: &[Candidate]) -> Error {
    let top: Vec<String> = candidates
        .iter()
        .take(3)
        .map(|c| {
            format!(
                "{} {:.0}% ({}/{})",
                c.format,
                c.rate * 100.0,
                c.matched,
                c.sampled
            )
        })
        .collect();
    Error::NoFormat {
        path: label.into(),
        candidates: top.join(", "),
        min_rate: MIN_RATE,
    }
}
