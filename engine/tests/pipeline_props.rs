//! Property: the whole pipeline gives the same rows and bad-line counts for any chunk size and any
//! number of worker threads as a single-threaded, single-chunk reference run.

use std::path::Path;

use logcrunch::catalog::Catalog;
use logcrunch::ingest::{Ingest, IngestOptions};
use logcrunch::parse::{BUILTIN_PATTERNS, Patterns};
use logcrunch::report::to_json_rows;
use logcrunch::scan;
use logcrunch::scan::Progress;
use proptest::prelude::*;

/// Options of a combined-log ingest into `dataset` with small row groups.
fn options(dataset: &Path, threads: usize, chunk_size: usize) -> IngestOptions {
    IngestOptions {
        dataset: dataset.to_path_buf(),
        format: "combined".into(),
        threads,
        chunk_size,
        max_line_bytes: 200,
        quarantine_samples: 1000,
        row_group_rows: 64,
        zstd_level: 1,
        force: false,
        routes: Default::default(),
        security: Default::default(),
        stats: Default::default(),
        follow: None,
    }
}

fn ingest(dir: &Path, file: &Path, threads: usize, chunk_size: usize) -> serde_json::Value {
    let patterns = Patterns::parse(BUILTIN_PATTERNS, Path::new("builtin")).unwrap();
    let dataset = dir.join(format!("ds-{threads}-{chunk_size}"));
    let opts = options(&dataset, threads, chunk_size);
    let inputs = scan::resolve(&[file.display().to_string()]).unwrap();
    let summary = Ingest::new(opts, &patterns)
        .unwrap()
        .run(&inputs, &Progress::default())
        .unwrap();
    let cat = Catalog::open(&dataset).unwrap();
    // Per-minute statistics do not depend on how the input was cut either.
    let stats = cat
        .query("SELECT minute, route, sum(requests)::BIGINT, sum(c4xx)::BIGINT, sum(c5xx)::BIGINT FROM stats GROUP BY ALL ORDER BY ALL")
        .unwrap();
    let rows = cat
        .query("SELECT \"offset\", ts, client_ip, method, path, query, status, bytes, referer, user_agent, date FROM logs ORDER BY \"offset\"")
        .unwrap();
    serde_json::json!({
        "rows": to_json_rows(&rows).unwrap(),
        "stats": to_json_rows(&stats).unwrap(),
        "bad": summary.bad_by_reason,
        "lines": summary.lines,
    })
}

fn text_strategy() -> impl Strategy<Value = Vec<u8>> {
    let good = (0u32..500, 0u32..86_400 * 3).prop_map(|(n, t)| {
        format!(
            "10.0.{}.{} - - [{:02}/Oct/2023:{:02}:{:02}:{:02} +0000] \"GET /p/{n}?q={n} HTTP/1.1\" {} {n} \"-\" \"ua {n}\"",
            n % 7,
            n % 200,
            10 + t / 86_400,
            t / 3600 % 24,
            t / 60 % 60,
            t % 60,
            [200, 404, 500][n as usize % 3]
        )
        .into_bytes()
    });
    let line = prop_oneof![
        8 => good,
        1 => Just(b"garbage".to_vec()),
        1 => Just(Vec::new()),
        1 => (200usize..400).prop_map(|n| vec![b'y'; n]),
        1 => proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..30),
    ];
    (proptest::collection::vec(line, 1..120), any::<bool>()).prop_map(|(lines, nl)| {
        let mut out = lines.join(&b"\n"[..]);
        if nl {
            out.push(b'\n');
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_chunk_size_and_thread_count_matches_the_reference(
        text in text_strategy(),
        chunk_seed in 0usize..1_000_000,
        threads in 1usize..=4,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.log");
        std::fs::write(&file, &text).unwrap();
        let chunk = 1 + chunk_seed % text.len().max(1);
        let reference = ingest(dir.path(), &file, 1, text.len().max(1));
        let got = ingest(dir.path(), &file, threads, chunk);
        prop_assert_eq!(got, reference, "threads {} chunk {}", threads, chunk);
    }
}

fn dated_line(day: u32, n: u32) -> String {
    format!(
        "10.1.{}.{} - - [{:02}/Nov/2023:{:02}:{:02}:{:02} +0000] \"GET /item/{n}?v={} HTTP/1.1\" {} {n} \"-\" \"agent {}\"\n",
        n % 13,
        n % 250,
        1 + day,
        n / 3600 % 24,
        n / 60 % 60,
        n % 60,
        n % 97,
        [200, 301, 404, 503][n as usize % 4],
        n % 31
    )
}

/// Parquet files per date partition under `dataset/logs`.
fn files_per_date(dataset: &Path) -> std::collections::BTreeMap<String, usize> {
    std::fs::read_dir(dataset.join("logs"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("date="))
        .map(|e| {
            let files = std::fs::read_dir(e.path())
                .unwrap()
                .flatten()
                .filter(|f| f.path().extension().is_some_and(|x| x == "parquet"))
                .count();
            (e.file_name().to_string_lossy().into_owned(), files)
        })
        .collect()
}

/// A log whose dates cycle (day 1, 2, 3, ..., 1, 2, 3, ...) across many chunks, over more days than
/// a worker keeps files open for, gives one file per date and worker and the rows of the same
/// lines in chronological order.
#[test]
fn interleaved_dates_make_one_file_per_date_and_worker() {
    const DAYS: u32 = 28;
    const ROUNDS: u32 = 30;
    const PER_VISIT: u32 = 25;
    let dir = tempfile::tempdir().unwrap();
    let visit = |round: u32, day: u32| {
        (0..PER_VISIT)
            .map(|i| dated_line(day, round * PER_VISIT + i))
            .collect::<String>()
    };
    let cycling: String = (0..ROUNDS)
        .flat_map(|r| (0..DAYS).map(move |d| (r, d)))
        .map(|(r, d)| visit(r, d))
        .collect();
    let chronological: String = (0..DAYS)
        .flat_map(|d| (0..ROUNDS).map(move |r| (r, d)))
        .map(|(r, d)| visit(r, d))
        .collect();
    let threads = 2;
    let rows = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let dataset = dir.path().join(format!("ds-{name}"));
        let patterns = Patterns::parse(BUILTIN_PATTERNS, Path::new("builtin")).unwrap();
        let opts = options(&dataset, threads, 4096);
        let inputs = scan::resolve(&[file.display().to_string()]).unwrap();
        Ingest::new(opts, &patterns)
            .unwrap()
            .run(&inputs, &Progress::default())
            .unwrap();
        let got = Catalog::open(&dataset)
            .unwrap()
            .query("SELECT ts, client_ip, path, query, status, bytes, user_agent, date FROM logs ORDER BY ALL")
            .unwrap();
        (to_json_rows(&got).unwrap(), files_per_date(&dataset))
    };
    let (cycled, cycled_files) = rows("cycling.log", &cycling);
    let (ordered, _) = rows("chronological.log", &chronological);
    assert_eq!(cycled.len(), (DAYS * ROUNDS * PER_VISIT) as usize);
    assert_eq!(cycled, ordered);
    assert_eq!(cycled_files.len(), DAYS as usize);
    for (date, files) in &cycled_files {
        assert!(
            (1..=threads).contains(files),
            "{date} has {files} files for {threads} workers"
        );
    }
}
