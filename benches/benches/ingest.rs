//! Micro-benchmarks of the hot path: cutting input into chunks, and parsing one format with the
//! splitter, with the regex engine, and into Arrow builders. Throughput is in input bytes. Also
//! threat tagging of realistic traffic (in rows), the parse and the Parquet write of the same
//! generated and realistic lines (in input bytes: together they bound what ingest can reach), and format
//! auto-detection over a directory's worth of small files, with the shipped catalogue and one four
//! times as large.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow::record_batch::RecordBatch;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use logcrunch::batch::{ChunkBatcher, Enrich};
use logcrunch::generate::{GenerateOptions, Generator};
use logcrunch::parse::{BUILTIN_PATTERNS, BadReason, Kind, Parser, Patterns, Row, RowSink};
use logcrunch::scan::{self, ScanRequest, Scanner};
use logcrunch::schema::arrow_schema;
use logcrunch::security::TagScratch;
use logcrunch::stats::{self, Recorder};

fn generated(format: &str, lines: u64) -> Vec<u8> {
    generate(GenerateOptions {
        format: format.into(),
        lines,
        ..GenerateOptions::default()
    })
}

/// The log `opts` describe.
fn generate(opts: GenerateOptions) -> Vec<u8> {
    let mut out = Vec::new();
    Generator::new(opts).unwrap().write(&mut out).unwrap();
    out
}

struct Count(u64);

impl RowSink for Count {
    fn row(&mut self, row: &Row<'_>) {
        self.0 += row.status.unwrap_or(0) as u64;
    }
    fn bad(&mut self, _: u64, _: u64, _: BadReason, _: &[u8]) {}
}

fn chunking(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let text = generated("nginx_timed", 300_000);
    let plain = dir.path().join("bench.log");
    std::fs::write(&plain, &text).unwrap();
    let gz = dir.path().join("bench.log.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &text).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let mut g = c.benchmark_group("scan");
    // Bytes of content, so that the mapped and the streamed paths compare directly.
    g.throughput(Throughput::Bytes(text.len() as u64));
    for (name, path, chunk) in [
        ("mmap_256KiB", &plain, 256 << 10),
        ("mmap_4MiB", &plain, 4 << 20),
        ("gzip_stream_4MiB", &gz, 4 << 20),
    ] {
        let input = scan::resolve(&[path.display().to_string()])
            .unwrap()
            .remove(0);
        let scanner = Scanner {
            chunk_size: chunk,
            max_line_bytes: 64 << 10,
        };
        // Each chunk's lines are counted, as the cheapest consumer would: this touches every byte.
        g.bench_function(format!("{name}_count_lines"), |b| {
            b.iter(|| {
                let progress = Arc::new(AtomicU64::new(0));
                let mut lines = 0usize;
                let req = ScanRequest {
                    source: 0,
                    input: &input,
                    start: 0,
                    skip_partial: false,
                    cut_before: None,
                    expect_head: None,
                    follow: false,
                };
                scanner
                    .scan(&req, &progress, &mut |c| {
                        lines += memchr::memchr_iter(b'\n', &c.data).count();
                        true
                    })
                    .unwrap();
                black_box(lines)
            })
        });
    }
    g.finish();
}

fn parsing(c: &mut Criterion) {
    let text = generated("nginx_timed", 100_000);
    let patterns = Patterns::parse(BUILTIN_PATTERNS, Path::new("builtin")).unwrap();
    // The same format written ambiguously, as a regex engine must run it (DESIGN.md's example).
    let ambiguous = Patterns::parse(
        r#"formats:
  nginx_timed_regex:
    regex: '^(?P<client_ip>\S+) - (?P<user>\S+) \[(?P<ts>[^\]]*)\] "(?P<method>\S+) (?P<path>[^"]*) (?P<protocol>\S+)" (?P<status>\S+) (?P<bytes>\S+) "(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)" (?P<request_time>\S+)$'
    fields:
      request_time: {type: seconds, column: response_time_us}
  nginx_timed_directive:
    nginx: '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time'
"#,
        Path::new("bench"),
    )
    .unwrap();
    let mut g = c.benchmark_group("parse_nginx_timed");
    g.throughput(Throughput::Bytes(text.len() as u64));
    let splitter = patterns.parser("nginx_timed", 64 << 10).unwrap();
    let regex = ambiguous.parser("nginx_timed_regex", 64 << 10).unwrap();
    // The same format compiled from its nginx log_format directive.
    let directive = ambiguous.parser("nginx_timed_directive", 64 << 10).unwrap();
    for (name, p) in [
        ("splitter_typed", &splitter),
        ("directive_typed", &directive),
        ("regex_typed", &regex),
    ] {
        let mut scratch = p.scratch();
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut sink = Count(0);
                p.parse_chunk(&mut scratch, &text, 0, &mut sink);
                black_box(sink.0)
            })
        });
    }
    let mut to_arrow = to_arrow(&splitter, &text);
    g.bench_function("splitter_to_arrow", |b| {
        b.iter(|| black_box(to_arrow().len()))
    });
    g.finish();
}

/// A parse of `text` into Arrow batches per day, as an ingest worker makes them (enriched and
/// tagged), with its scratch space kept from call to call.
fn to_arrow<'a>(
    parser: &'a Parser,
    text: &'a [u8],
) -> impl FnMut() -> Vec<(i32, RecordBatch)> + 'a {
    let schema = arrow_schema(parser.extras());
    let enrich = Arc::new(Enrich::builtin());
    let mut scratch = parser.scratch();
    let mut tags = TagScratch::default();
    move || {
        let mut batcher = ChunkBatcher::new(
            Kind::Access,
            Arc::clone(&schema),
            Arc::from("bench.log"),
            Arc::clone(&enrich),
            parser.extras().len(),
            0,
            100,
            &mut tags,
        );
        parser.parse_chunk(&mut scratch, text, 0, &mut batcher);
        batcher.finish("nginx_timed").unwrap()
    }
}

/// Histogram recording against the parse-to-Arrow step it rides on (same 100,000 lines): the
/// recorder's share of ingest shows as the ratio of the two.
fn recording(c: &mut Criterion) {
    let text = generated("nginx_timed", 100_000);
    let patterns = Patterns::parse(BUILTIN_PATTERNS, Path::new("builtin")).unwrap();
    let parser = patterns.parser("nginx_timed", 64 << 10).unwrap();
    let schema = arrow_schema(parser.extras());
    let enrich = Arc::new(Enrich::builtin());
    let mut scratch = parser.scratch();
    let mut tags = TagScratch::default();
    let mut batcher = ChunkBatcher::new(
        Kind::Access,
        Arc::clone(&schema),
        Arc::from("bench.log"),
        enrich,
        parser.extras().len(),
        0,
        100,
        &mut tags,
    );
    parser.parse_chunk(&mut scratch, &text, 0, &mut batcher);
    let batches = batcher.finish("nginx_timed").unwrap();
    let mut g = c.benchmark_group("stats");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("record_and_finish", |b| {
        b.iter(|| {
            let mut r = Recorder::new(2);
            for (_, batch) in &batches {
                r.record(0, batch);
            }
            black_box(r.finish().cells())
        })
    });
    // Two workers' cells of the same rows (alternate chunks of 2,000 rows), folded into the
    // route groups the dataset would choose.
    let mut workers = [Recorder::new(2), Recorder::new(2)];
    for (_, batch) in &batches {
        for (k, offset) in (0..batch.num_rows()).step_by(2_000).enumerate() {
            let len = 2_000.min(batch.num_rows() - offset);
            workers[k % 2].record(0, &batch.slice(offset, len));
        }
    }
    let recorded: Vec<_> = workers.into_iter().map(Recorder::finish).collect();
    let groups = stats::choose_groups(&[], &stats::route_volumes(&recorded), 50);
    let group_set = groups.iter().map(String::as_str).collect();
    g.bench_function("fold", |b| {
        b.iter(|| black_box(stats::fold(&recorded, &group_set, 2).unwrap().len()))
    });
    g.finish();
}

/// The fields threat tagging looks at, owned.
#[derive(Default)]
struct Fields(Vec<[Option<Vec<u8>>; 4]>);

impl RowSink for Fields {
    fn row(&mut self, row: &Row<'_>) {
        use logcrunch::schema::StrCol;
        let f = |c| row.str(c).map(<[u8]>::to_vec);
        self.0.push([
            f(StrCol::Path),
            f(StrCol::Query),
            f(StrCol::Referer),
            f(StrCol::UserAgent),
        ]);
    }
    fn bad(&mut self, _: u64, _: u64, _: BadReason, _: &[u8]) {}
}

/// Threat tagging of 100,000 rows of realistic traffic (distinct paths with ids, query strings,
/// a long tail of user agents and referers; 0.2% attacks), from an empty cache: one cache for all
/// the rows (a worker's, kept from chunk to chunk), and a fresh cache per 2,000-row chunk (as
/// when the scratch lived with a chunk's builders). Throughput is in rows.
fn tagging(c: &mut Criterion) {
    let text = generate(GenerateOptions {
        format: "nginx_timed".into(),
        profile: logcrunch::generate::Profile::Realistic,
        lines: 100_000,
        attack_rate: 0.002,
        ..GenerateOptions::default()
    });
    let patterns = Patterns::parse(BUILTIN_PATTERNS, Path::new("builtin")).unwrap();
    let parser = patterns.parser("nginx_timed", 64 << 10).unwrap();
    let mut rows = Fields::default();
    parser.parse_chunk(&mut parser.scratch(), &text, 0, &mut rows);
    let enrich = Enrich::builtin();
    let tagger = &enrich.tagger;
    let tag_all = |rows: &[[Option<Vec<u8>>; 4]], s: &mut TagScratch| {
        rows.iter()
            .map(|[p, q, r, u]| {
                tagger
                    .tag(p.as_deref(), q.as_deref(), r.as_deref(), u.as_deref(), s)
                    .count_ones()
            })
            .sum::<u32>()
    };
    let mut g = c.benchmark_group("tagging");
    g.throughput(Throughput::Elements(rows.0.len() as u64));
    g.bench_function("realistic_worker_cache", |b| {
        b.iter(|| black_box(tag_all(&rows.0, &mut TagScratch::default())))
    });
    g.bench_function("realistic_cache_per_chunk", |b| {
        b.iter(|| {
            let tagged: u32 = rows
                .0
                .chunks(2_000)
                .map(|chunk| tag_all(chunk, &mut TagScratch::default()))
                .sum();
            black_box(tagged)
        })
    });
    g.finish();
}

/// The two stages every ingested line goes through, on the same 100,000 lines of the generated
/// and of the realistic profile: the parse into Arrow batches (tagging and all), and the write of
/// those batches as the dataset's zstd Parquet (one file per day, as a worker writes them).
/// Throughput is in input bytes, so the two compare directly: ingest on N threads cannot beat
/// N x 1 / (1 / parse + 1 / write).
fn stages(c: &mut Criterion) {
    for (name, profile) in [
        ("generated_stages", logcrunch::generate::Profile::Shop),
        ("realistic_stages", logcrunch::generate::Profile::Realistic),
    ] {
        stages_of(c, name, profile);
    }
}

fn stages_of(c: &mut Criterion, name: &str, profile: logcrunch::generate::Profile) {
    let text = generate(GenerateOptions {
        format: "nginx_timed".into(),
        profile,
        lines: 100_000,
        ..GenerateOptions::default()
    });
    let patterns = Patterns::parse(BUILTIN_PATTERNS, Path::new("builtin")).unwrap();
    let parser = patterns.parser("nginx_timed", 64 << 10).unwrap();
    let mut parse = to_arrow(&parser, &text);
    let days = parse();
    let props = logcrunch::sink::writer_properties(1, 262_144).unwrap();
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse_to_arrow", |b| b.iter(|| black_box(parse().len())));
    g.bench_function("parquet_write", |b| {
        b.iter(|| {
            let bytes: usize = days
                .iter()
                .map(|(_, batch)| {
                    let mut w = parquet::arrow::ArrowWriter::try_new(
                        Vec::new(),
                        batch.schema(),
                        Some(props.clone()),
                    )
                    .unwrap();
                    w.write(batch).unwrap();
                    w.into_inner().unwrap().len()
                })
                .sum();
            black_box(bytes)
        })
    });
    g.finish();
}

/// Auto-detection of 1,000 small inputs (20 lines each, cycling through the documented samples
/// of every shipped format), with the compiled-format cache shared across inputs as ingest does;
/// then the same with every format present four times (a catalogue of ~140 formats).
fn detection(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/formats");
    let mut samples: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| {
            let text = std::fs::read(p).unwrap();
            let lines: Vec<&[u8]> = text
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            let (header, body): (Vec<&[u8]>, Vec<&[u8]>) =
                lines.into_iter().partition(|l| l.starts_with(b"#"));
            let mut out = Vec::new();
            for l in header.iter().chain(body.iter().cycle().take(20)) {
                out.extend_from_slice(l);
                out.push(b'\n');
            }
            out
        })
        .collect();
    samples.sort();
    let inputs: Vec<&[u8]> = samples
        .iter()
        .map(Vec::as_slice)
        .cycle()
        .take(1_000)
        .collect();
    let shipped = Patterns::parse(BUILTIN_PATTERNS, Path::new("builtin")).unwrap();
    let mut large = shipped.clone();
    for copy in 1..4 {
        for (name, spec) in &shipped.formats {
            large
                .formats
                .insert(format!("x{copy}_{name}"), spec.clone());
        }
    }
    let mut g = c.benchmark_group("detect_1000_files");
    g.sample_size(10);
    for (name, pats) in [("shipped_catalogue", &shipped), ("catalogue_x4", &large)] {
        g.bench_function(format!("{name}_{}_formats", pats.formats.len()), |b| {
            b.iter(|| {
                let mut cache = logcrunch::parse::sniff::FormatCache::default();
                let mut found = 0;
                for head in &inputs {
                    let best = pats.sniff(head, true, 64 << 10, &mut cache);
                    found += usize::from(best.first().is_some_and(|c| c.rate >= 0.9));
                }
                black_box(found)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = chunking, parsing, recording, tagging, stages, detection
}
criterion_main!(benches);
