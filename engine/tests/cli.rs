//! The `logcrunch` command line end to end: ingest, query, generate, bad input, idempotence.

mod common;

use std::io::Write;
use std::path::Path;

use common::{ingest_json, logcrunch, query_json, stdout_of};
use predicates::str::contains;
use serde_json::Value;

const LINE: &str =
    r#"10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /a?x=1 HTTP/1.1" 200 100 "-" "ua""#;

fn line(i: usize) -> String {
    format!(
        r#"10.0.0.{} - - [10/Oct/2023:13:55:{:02} +0000] "GET /p/{i} HTTP/1.1" 200 {i} "-" "ua/{i}""#,
        i % 250,
        i % 60
    )
}

fn lines(range: std::ops::Range<usize>) -> String {
    range.map(|i| line(i) + "\n").collect()
}

fn count(dir: &Path) -> u64 {
    query_json(dir, "ds", "SELECT count(*) AS n FROM logs")[0]["n"]
        .as_u64()
        .unwrap()
}

/// Generated input read back through `query`: row count and the sums of status and bytes match an
/// independent reading of the generated text.
#[test]
fn generated_logs_round_trip_through_parquet_and_sql() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["nginx_timed", "combined", "common", "combined_us", "nginx"] {
        let file = format!("{format}.log");
        logcrunch(dir.path())
            .args([
                "generate", "--format", format, "--lines", "5000", "--seed", "42", "-o", &file,
            ])
            .assert()
            .success();
        let text = std::fs::read_to_string(dir.path().join(&file)).unwrap();
        let (mut status_sum, mut bytes_sum, mut n) = (0u64, 0u64, 0u64);
        for l in text.lines() {
            let after_request = l.split('"').nth(2).unwrap();
            let mut f = after_request.split_whitespace();
            status_sum += f.next().unwrap().parse::<u64>().unwrap();
            bytes_sum += f.next().unwrap().parse::<u64>().unwrap_or(0);
            n += 1;
        }
        let ds = format!("ds_{format}");
        let s = ingest_json(
            dir.path(),
            &["--dataset", &ds, "--format", format, &file],
            0,
        );
        assert_eq!(s["rows"], n, "{format}");
        assert_eq!(s["bad_lines"], 0, "{format}");
        let r = query_json(
            dir.path(),
            &ds,
            "SELECT count(*) AS n, sum(status) AS s, sum(coalesce(bytes, 0)) AS b, count(response_time_us) AS timed FROM logs",
        );
        assert_eq!(r[0]["n"], n, "{format}");
        assert_eq!(r[0]["s"], status_sum, "{format}");
        assert_eq!(r[0]["b"], bytes_sum, "{format}");
        let timed = if format.ends_with("timed") || format.ends_with("_us") {
            n
        } else {
            0
        };
        assert_eq!(r[0]["timed"], timed, "{format}");
    }
}

#[test]
fn generate_is_deterministic_and_validates_its_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: &str| {
        logcrunch(dir.path())
            .args([
                "generate",
                "--format",
                "nginx_timed",
                "--lines",
                "200",
                "--seed",
                seed,
            ])
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(run("5"), run("5"));
    assert_ne!(run("5"), run("6"));
    logcrunch(dir.path())
        .args(["generate", "--format", "w3c", "--lines", "1"])
        .assert()
        .code(2)
        .stderr(contains("nginx_timed"));
}

#[test]
fn ingest_is_idempotent_and_resumes_grown_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, lines(0..100)).unwrap();
    let first = ingest_json(dir.path(), &["--dataset", "ds", "access.log"], 0);
    assert_eq!(first["rows"], 100);
    assert_eq!(first["sources"][0]["status"], "new");
    let again = ingest_json(dir.path(), &["--dataset", "ds", "access.log"], 0);
    assert_eq!(again["rows"], 0);
    assert_eq!(again["sources"][0]["status"], "unchanged");
    assert_eq!(count(dir.path()), 100);

    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(lines(100..130).as_bytes())
        .unwrap();
    let grown = ingest_json(dir.path(), &["--dataset", "ds", "access.log"], 0);
    assert_eq!(grown["sources"][0]["status"], "grown");
    assert_eq!(grown["rows"], 30);
    assert_eq!(count(dir.path()), 130);
    let offsets = query_json(
        dir.path(),
        "ds",
        "SELECT count(DISTINCT \"offset\") AS n, max(\"offset\") AS last FROM logs",
    );
    assert_eq!(offsets[0]["n"], 130);
    assert_eq!(offsets[0]["last"], lines(0..129).len());

    // logrotate: the file is renamed, then compressed; neither copy adds rows.
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    let rotated = ingest_json(dir.path(), &["--dataset", "ds", "access.log.1"], 0);
    assert_eq!(rotated["sources"][0]["status"], "unchanged");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(lines(0..130).as_bytes()).unwrap();
    std::fs::write(dir.path().join("access.log.1.gz"), gz.finish().unwrap()).unwrap();
    let compressed = ingest_json(dir.path(), &["--dataset", "ds", "access.log.1.gz"], 0);
    assert_eq!(compressed["rows"], 0);
    assert_eq!(count(dir.path()), 130);

    // --force replaces the source's rows instead of adding to them.
    let forced = ingest_json(
        dir.path(),
        &["--dataset", "ds", "--force", "access.log.1"],
        0,
    );
    assert_eq!(forced["sources"][0]["status"], "replaced");
    assert_eq!(forced["rows"], 130);
    assert_eq!(count(dir.path()), 130);
    let parts =
        walk_parquet(&dir.path().join("ds/logs")) + walk_parquet(&dir.path().join("ds/stats"));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ds/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(
        parts,
        manifest["files"].as_array().unwrap().len(),
        "replaced files are deleted"
    );
}

fn walk_parquet(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            n += walk_parquet(&p);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            n += 1;
        }
    }
    n
}

#[test]
fn bad_input_has_defined_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Invalid UTF-8 in a field: the row is kept, the bytes become U+FFFD.
    let mut utf8 = LINE.replace("\"ua\"", "\"ua\u{0}\"").into_bytes();
    let nul = utf8.iter().position(|b| *b == 0).unwrap();
    utf8[nul] = 0xff;
    utf8.push(b'\n');
    std::fs::write(d.join("utf8.log"), &utf8).unwrap();
    let s = ingest_json(d, &["--dataset", "u", "utf8.log"], 0);
    assert_eq!(s["rows"], 1);
    let ua = query_json(d, "u", "SELECT user_agent FROM logs");
    assert_eq!(ua[0]["user_agent"], "ua\u{fffd}");

    // NUL bytes: a leading run (copytruncate) is stripped, a NUL inside a line quarantines it.
    let text = format!("\0\0\0{LINE}\n{}\n", LINE.replace("/a", "/\0a"));
    std::fs::write(d.join("nul.log"), text).unwrap();
    let s = ingest_json(d, &["--dataset", "n", "--format", "combined", "nul.log"], 0);
    assert_eq!(
        (s["rows"].as_u64(), s["bad_by_reason"]["nul_byte"].as_u64()),
        (Some(1), Some(1))
    );

    // CRLF endings: parsed, and no \r ends up in the last field.
    std::fs::write(d.join("crlf.log"), format!("{LINE}\r\n{LINE}\r\n")).unwrap();
    let s = ingest_json(d, &["--dataset", "c", "crlf.log"], 0);
    assert_eq!(s["rows"], 2);
    assert_eq!(
        query_json(d, "c", "SELECT DISTINCT user_agent FROM logs")[0]["user_agent"],
        "ua"
    );

    // A 1 MiB line: quarantined as line_too_long with its offset; its neighbours are fine.
    let long = format!(
        "{LINE}\n{}\n{LINE}\n",
        LINE.replace("/a", &format!("/{}", "a".repeat(1 << 20)))
    );
    std::fs::write(d.join("long.log"), long).unwrap();
    let s = ingest_json(d, &["--dataset", "l", "long.log"], 0);
    assert_eq!(s["rows"], 2);
    assert_eq!(s["bad_by_reason"]["line_too_long"], 1);
    let q =
        std::fs::read_to_string(s["quarantine_file"].as_str().map(|p| d.join(p)).unwrap()).unwrap();
    let entry: Value = serde_json::from_str(q.lines().next().unwrap()).unwrap();
    assert_eq!(
        (entry["line"].as_u64(), entry["offset"].as_u64()),
        (Some(2), Some(LINE.len() as u64 + 1))
    );
    assert!(entry["text"].as_str().unwrap().len() <= 1024);

    // No final newline: the last line is a row.
    std::fs::write(d.join("nofinal.log"), format!("{LINE}\n{LINE}")).unwrap();
    assert_eq!(
        ingest_json(d, &["--dataset", "f", "nofinal.log"], 0)["rows"],
        2
    );

    // An empty file: nothing to do, not an error; querying the empty dataset works.
    std::fs::write(d.join("empty.log"), "").unwrap();
    let s = ingest_json(d, &["--dataset", "e", "empty.log"], 0);
    assert_eq!(
        (s["rows"].as_u64(), s["lines"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(count_in(d, "e"), 0);

    // A truncated .gz: whole lines before the damage are kept, the broken line is quarantined as
    // truncated_input, and the summary warns.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(lines(0..3000).as_bytes()).unwrap();
    let full = gz.finish().unwrap();
    std::fs::write(d.join("cut.log.gz"), &full[..full.len() / 2]).unwrap();
    let s = ingest_json(d, &["--dataset", "t", "cut.log.gz"], 0);
    let rows = s["rows"].as_u64().unwrap();
    assert!(rows > 100 && rows < 3000, "{rows}");
    assert_eq!(s["bad_by_reason"]["truncated_input"], 1);
    assert!(
        s["sources"][0]["warning"]
            .as_str()
            .unwrap()
            .contains("ends early")
    );
    assert_eq!(count_in(d, "t"), rows);

    // A nonexistent path and a directory without logs: usage errors (exit 2) that say what to do.
    logcrunch(d)
        .args(["ingest", "--dataset", "x", "missing.log"])
        .assert()
        .code(2)
        .stderr(contains("no such file or directory: missing.log"));
    std::fs::create_dir(d.join("nologs")).unwrap();
    std::fs::write(d.join("nologs/readme.md"), "hi").unwrap();
    logcrunch(d)
        .args(["ingest", "--dataset", "x", "nologs"])
        .assert()
        .code(2)
        .stderr(contains("no log files in nologs"));
}

fn count_in(dir: &Path, ds: &str) -> u64 {
    query_json(dir, ds, "SELECT count(*) AS n FROM logs")[0]["n"]
        .as_u64()
        .unwrap()
}

#[test]
fn max_bad_ratio_sets_exit_code_4_but_keeps_the_good_rows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mixed.log"),
        format!("{}garbage\ngarbage\n", lines(0..8)),
    )
    .unwrap();
    let s = ingest_json(
        dir.path(),
        &[
            "--dataset",
            "ds",
            "--format",
            "combined",
            "--max-bad-ratio",
            "0.1",
            "mixed.log",
        ],
        4,
    );
    assert_eq!(
        (s["rows"].as_u64(), s["bad_lines"].as_u64()),
        (Some(8), Some(2))
    );
    assert_eq!(count(dir.path()), 8);
    std::fs::write(dir.path().join("ok.log"), lines(0..8)).unwrap();
    ingest_json(
        dir.path(),
        &["--dataset", "ds", "--max-bad-ratio", "0.1", "ok.log"],
        0,
    );
    logcrunch(dir.path())
        .args([
            "ingest",
            "--dataset",
            "ds",
            "--max-bad-ratio",
            "3",
            "ok.log",
        ])
        .assert()
        .code(2);
}

#[test]
fn stdin_globs_and_directories_are_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("logs/old")).unwrap();
    std::fs::write(d.join("logs/a.log"), lines(0..10)).unwrap();
    std::fs::write(d.join("logs/old/b.log"), lines(10..15)).unwrap();
    std::fs::write(d.join("logs/c.log"), lines(15..18)).unwrap();
    assert_eq!(ingest_json(d, &["--dataset", "dir", "logs"], 0)["rows"], 18);
    assert_eq!(
        ingest_json(d, &["--dataset", "glob", "logs/*.log"], 0)["rows"],
        13
    );
    let out = logcrunch(d)
        .args(["ingest", "--json", "--dataset", "stdin", "-"])
        .write_stdin(lines(0..7))
        .output()
        .unwrap();
    assert!(out.status.success());
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["rows"], 7);
    let src = query_json(d, "stdin", "SELECT DISTINCT source FROM logs");
    assert_eq!(src[0]["source"], "-");
}

#[test]
fn threads_do_not_change_the_result() {
    let dir = tempfile::tempdir().unwrap();
    logcrunch(dir.path())
        .args([
            "generate", "--format", "combined", "--lines", "20000", "--seed", "9", "-o", "g.log",
        ])
        .assert()
        .success();
    let mut digests = Vec::new();
    for threads in ["1", "2", "4"] {
        let ds = format!("t{threads}");
        ingest_json(
            dir.path(),
            &["--dataset", &ds, "--threads", threads, "g.log"],
            0,
        );
        let r = query_json(
            dir.path(),
            &ds,
            "SELECT count(*) AS n, sum(hash(\"offset\", ts, client_ip, path, status, bytes, user_agent)) AS h FROM logs",
        );
        digests.push(r[0].clone());
    }
    assert_eq!(digests[0], digests[1]);
    assert_eq!(digests[0], digests[2]);
}

#[test]
fn query_formats_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), lines(0..5)).unwrap();
    ingest_json(dir.path(), &["--dataset", "ds", "a.log"], 0);
    let sql = "SELECT status, count(*) AS n, sum(bytes) AS bytes, min(ts) AS first FROM logs GROUP BY status";
    let table = logcrunch(dir.path())
        .args(["query", "--dataset", "ds", sql])
        .output()
        .unwrap();
    insta::assert_snapshot!("query_table", String::from_utf8(table.stdout).unwrap());
    let csv = logcrunch(dir.path())
        .args(["query", "--dataset", "ds", "--format", "csv", sql])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(csv.stdout).unwrap(),
        "status,n,bytes,first\n200,5,10,2023-10-10T13:55:00\n"
    );
    let json = query_json(dir.path(), "ds", sql);
    assert_eq!(
        json,
        vec![
            serde_json::json!({"status": 200, "n": 5, "bytes": 10, "first": "2023-10-10T13:55:00"})
        ]
    );
    logcrunch(dir.path())
        .args(["query", "--dataset", "ds", "SELECT nope FROM logs"])
        .assert()
        .code(1)
        .stderr(contains("DESCRIBE logs"));
    logcrunch(dir.path())
        .args(["query", "--dataset", "missing", "SELECT 1"])
        .assert()
        .code(1)
        .stderr(contains("logcrunch ingest --dataset"));
    let desc = query_json(dir.path(), "ds", "DESCRIBE logs");
    let cols: Vec<&str> = desc
        .iter()
        .map(|r| r["column_name"].as_str().unwrap())
        .collect();
    assert!(
        cols.starts_with(&["ts", "client_ip"])
            && cols.contains(&"date")
            && cols.contains(&"offset"),
        "{cols:?}"
    );
}

#[test]
fn unknown_format_and_bad_config_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), lines(0..1)).unwrap();
    logcrunch(dir.path())
        .args(["ingest", "--format", "nope", "a.log"])
        .assert()
        .code(2)
        .stderr(contains("unknown log format `nope`"))
        .stderr(contains("nginx_timed"));
    std::fs::write(dir.path().join("bad.yaml"), "ingest:\n  chunk_sise: 1\n").unwrap();
    logcrunch(dir.path())
        .args(["--config", "bad.yaml", "ingest", "a.log"])
        .assert()
        .code(2)
        .stderr(contains("chunk_sise"));
}

#[test]
fn run_ingests_the_configured_source_dir_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("in")).unwrap();
    std::fs::write(d.join("in/access.log"), lines(0..12)).unwrap();
    std::fs::write(
        d.join("cfg.yaml"),
        "logs:\n  source_dir: in\n  format: combined\nstorage:\n  dataset: out\n",
    )
    .unwrap();
    let run = || {
        let out = stdout_of(d, &["--config", "cfg.yaml", "run", "--json"]);
        serde_json::from_slice::<Value>(&out).unwrap()
    };
    assert_eq!(run()["ingest"]["rows"], 12);
    assert_eq!(run()["ingest"]["rows"], 0);
    assert_eq!(
        query_json(d, "out", "SELECT count(*) AS n FROM logs")[0]["n"],
        12
    );
}

#[test]
fn a_dataset_being_written_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), lines(0..3)).unwrap();
    ingest_json(dir.path(), &["--dataset", "ds", "a.log"], 0);
    let _writer = logcrunch::catalog::WriterLock::acquire(&dir.path().join("ds"), "test").unwrap();
    for args in [
        &["ingest", "--dataset", "ds", "a.log"][..],
        &["archive", "--dataset", "ds"][..],
    ] {
        logcrunch(dir.path())
            .args(args)
            .timeout(std::time::Duration::from_secs(20))
            .assert()
            .code(1)
            .stderr(contains("being written by another logcrunch process"))
            .stderr(contains("logcrunch test"));
    }
    // Readers are served beside a writer that is not committing.
    logcrunch(dir.path())
        .args(["query", "--dataset", "ds", "SELECT count(*) FROM logs"])
        .assert()
        .success();
}

#[test]
fn a_reader_waits_for_a_commit_and_gives_up_after_its_wait() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), lines(0..3)).unwrap();
    ingest_json(dir.path(), &["--dataset", "ds", "a.log"], 0);
    let ds = dir.path().join("ds");
    let committing = logcrunch::catalog::Dataset::open_for_write(&ds).unwrap();
    let released = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        drop(committing);
    });
    let start = std::time::Instant::now();
    logcrunch(dir.path())
        .args(["query", "--dataset", "ds", "SELECT count(*) FROM logs"])
        .assert()
        .success();
    assert!(
        start.elapsed().as_secs_f64() > 1.0,
        "the reader waited for the commit"
    );
    released.join().unwrap();
    let _stuck = logcrunch::catalog::Dataset::open_for_write(&ds).unwrap();
    logcrunch(dir.path())
        .env("LOGCRUNCH_LOCK_WAIT", "0.3")
        .args(["report", "traffic", "--dataset", "ds"])
        .assert()
        .code(1)
        .stderr(contains("longer than a reader waits"));
}

/// `--dataset` takes a directory, the `file://` URL of one (the same dataset), or `s3://`; any
/// other scheme is a usage error (exit 2) that names it.
#[test]
fn file_urls_name_the_dataset_directory_and_other_schemes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("a.log"), lines(0..40)).unwrap();
    let url = format!("file://{}", d.join("ds").display());
    ingest_json(d, &["--dataset", &url, "a.log"], 0);
    assert_eq!(count(d), 40);
    assert_eq!(count_in(d, &url), 40);
    let out = logcrunch(d)
        .args(["query", "--dataset", "gs://bucket/logs", "SELECT 1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gs://"));
}
