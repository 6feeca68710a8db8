//! `watch` against a writer that appends at a steady rate and rotates its log in every way
//! logrotate does: afterwards the dataset holds each written line exactly once (count, sum and
//! distinct ids of a per-line sequence number). Also: a line appended is queryable within two
//! intervals, readers are served while `watch` runs, other writers are refused with the holder
//! named, SIGTERM ends it with exit code 0, and an attack written across cycles is one finding.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{query_json, start_watch};

fn line(seq: u64) -> String {
    format!(
        "10.0.{}.{} - - [01/Mar/2024:10:{:02}:{:02} +0000] \"GET /item/{seq} HTTP/1.1\" 200 {seq} \"-\" \"tester\"\n",
        seq / 250 % 250,
        seq % 250,
        seq / 60 % 60,
        seq % 60
    )
}

fn config(d: &Path) {
    std::fs::create_dir_all(d.join("logs")).unwrap();
    std::fs::write(
        d.join("cfg.yaml"),
        "logs:\n  source_dir: logs\n  format: combined\nstorage:\n  dataset: ds\nlogging:\n  file: app/logcrunch.log\n",
    )
    .unwrap();
}

/// What `watch` said so far (its events and its stderr), for failure messages.
fn said(d: &Path) -> String {
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_default();
    format!(
        "events:\n{}\nstderr:\n{}",
        read("watch.out"),
        read("watch.err")
    )
}

fn count(d: &Path) -> (u64, u64, u64) {
    let r = query_json(
        d,
        "ds",
        "SELECT count(*) AS n, coalesce(sum(bytes), 0) AS s, count(DISTINCT bytes) AS k FROM logs",
    );
    let v = |k: &str| r[0][k].as_u64().unwrap_or(0);
    (v("n"), v("s"), v("k"))
}

/// The sequence numbers below `n` that the dataset does not hold, as ranges (for messages).
fn missing(d: &Path, n: u64) -> String {
    let rows = query_json(d, "ds", "SELECT DISTINCT bytes AS b FROM logs ORDER BY 1");
    let have: std::collections::BTreeSet<u64> =
        rows.iter().filter_map(|r| r["b"].as_u64()).collect();
    let mut out = Vec::new();
    let mut run: Option<(u64, u64)> = None;
    for seq in (0..n).filter(|s| !have.contains(s)) {
        run = match run {
            Some((a, b)) if b + 1 == seq => Some((a, seq)),
            Some((a, b)) => {
                out.push(format!("{a}..={b}"));
                Some((seq, seq))
            }
            None => Some((seq, seq)),
        };
    }
    out.extend(run.map(|(a, b)| format!("{a}..={b}")));
    format!("missing: [{}]", out.join(", "))
}

/// Waits until the dataset holds the lines `0..n`, or fails saying which are missing and what
/// `watch` said.
fn assert_caught_up(d: &Path, n: u64) {
    let got = caught_up(d, n, Duration::from_secs(60)).0;
    assert_eq!(got, n, "{}\n{}", missing(d, n), said(d));
}

/// Waits until the dataset holds `n` rows (or `limit` passes); the rows then.
fn caught_up(d: &Path, n: u64, limit: Duration) -> (u64, u64, u64) {
    let start = Instant::now();
    loop {
        if d.join("ds/manifest.json").is_file() {
            let got = count(d);
            if got.0 >= n || start.elapsed() > limit {
                return got;
            }
        } else if start.elapsed() > limit {
            return (0, 0, 0);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(d: &Path, mut watch: Child) -> (i32, String, String) {
    Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    while watch.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "watch did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = watch.wait().unwrap();
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(d.join("watch.out")).unwrap(),
        std::fs::read_to_string(d.join("watch.err")).unwrap(),
    )
}

/// Appends lines `from..to` to `path` at about `per_s` lines a second, every seventh one in two
/// writes with a pause between them (a line being written when a cycle cuts the batch).
fn append(path: &Path, from: u64, to: u64, per_s: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for seq in from..to {
        let l = line(seq);
        if seq % 7 == 0 {
            let (a, b) = l.split_at(l.len() / 2);
            f.write_all(a.as_bytes()).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(30));
            f.write_all(b.as_bytes()).unwrap();
        } else {
            f.write_all(l.as_bytes()).unwrap();
        }
        if seq % 10 == 0 {
            std::thread::sleep(Duration::from_millis(1000 * 10 / per_s));
        }
    }
}

fn sum_of(n: u64) -> u64 {
    n * (n - 1) / 2
}

#[test]
fn every_line_once_through_every_kind_of_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d);
    let logs = d.join("logs");
    let log = logs.join("access.log");
    let watch = start_watch(d, "300ms");
    let rate = 400;
    // 1. Plain appends.
    append(&log, 0, 400, rate);
    // 2. Rename and create (logrotate `create`).
    std::fs::rename(&log, logs.join("access.log.1")).unwrap();
    append(&log, 400, 800, rate);
    // 3. Compression of the rotated file (`.1` -> `.1.gz`, as `compress` does a cycle later).
    let gz = Command::new("gzip")
        .arg(logs.join("access.log.1"))
        .status()
        .unwrap();
    assert!(gz.success());
    append(&log, 800, 1200, rate);
    // 4. Copy and truncate (logrotate `copytruncate`; the writer keeps its file open).
    std::fs::copy(&log, logs.join("access.log.2")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, 1200, 1600, rate);
    // 5. Deletion of old rotated files, once read.
    assert_caught_up(d, 1600);
    std::fs::remove_file(logs.join("access.log.1.gz")).unwrap();
    std::fs::remove_file(logs.join("access.log.2")).unwrap();
    append(&log, 1600, 2000, rate);
    // 6. The file replaced by another of the same name (written aside, renamed over it).
    assert_caught_up(d, 2000);
    let mut next = String::new();
    for seq in 2000..2200 {
        next.push_str(&line(seq));
    }
    std::fs::write(logs.join("new.tmp"), next).unwrap();
    std::fs::rename(logs.join("new.tmp"), &log).unwrap();
    append(&log, 2200, 2400, rate);
    let got = caught_up(d, 2400, Duration::from_secs(60));
    let (code, events, stderr) = stop(d, watch);
    let failed: Vec<&str> = events.lines().filter(|l| l.contains("\"error\"")).collect();
    println!("cycles that failed and were tried again: {failed:?}");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        got,
        (2400, sum_of(2400), 2400),
        "rows, their sum, distinct ids\n{stderr}"
    );
    assert_eq!(count(d), got);
    let cycles: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows: u64 = cycles.iter().map(|e| e["rows"].as_u64().unwrap()).sum();
    assert_eq!(rows, 2400, "the events count every row once");
    for e in cycles.iter().filter(|e| e["rows"].as_u64() > Some(0)) {
        let phases = e["phases"]
            .as_object()
            .expect("a cycle with rows times its phases");
        let sum: f64 = phases.values().map(|v| v.as_f64().unwrap()).sum();
        assert!(
            phases.contains_key("ingest_s") && sum <= e["cycle_s"].as_f64().unwrap() + 0.01,
            "{e}"
        );
    }
    assert_eq!(
        cycles
            .iter()
            .map(|e| e["bad_lines"].as_u64().unwrap())
            .sum::<u64>(),
        0
    );
    // The small files of the cycles were compacted as they piled up.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("ds/manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap().len();
    println!(
        "2,400 lines through 5 rotations: {} cycles, {files} Parquet files",
        cycles.len()
    );
    // Per table (logs, stats): a rotated-away source is compacted to one file, the live one
    // holds fewer than 16 before its are (70 files here before rotated sources were compacted).
    assert!(files < 2 * (5 + 16), "{files} files");
}

#[test]
fn an_appended_line_is_queryable_within_two_intervals_and_readers_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d);
    let log = d.join("logs/access.log");
    append(&log, 0, 100, 10_000);
    let watch = start_watch(d, "1s");
    assert_eq!(caught_up(d, 100, Duration::from_secs(30)).0, 100);
    // Another writer is refused at once, with the holder named.
    let refused = Command::new(assert_cmd::cargo::cargo_bin("logcrunch"))
        .current_dir(d)
        .args(["--config", "cfg.yaml", "run"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("logcrunch watch"), "{text}");
    // Appends, each timed from its write to the first query that sees it.
    let mut waits = Vec::new();
    for k in 0..5u64 {
        std::thread::sleep(Duration::from_millis(370));
        let written = Instant::now();
        append(&log, 100 + k, 101 + k, 10_000);
        caught_up(d, 101 + k, Duration::from_secs(30));
        waits.push(written.elapsed().as_secs_f64());
    }
    let (code, _, stderr) = stop(d, watch);
    assert_eq!(code, 0, "{stderr}");
    waits.sort_by(f64::total_cmp);
    println!("seconds from append to query, interval 1 s: {waits:?}");
    // Two intervals, plus the time one query process takes to start and read.
    assert!(waits[waits.len() - 1] < 2.0 + 1.0, "{waits:?}");
}

/// A client that keeps attacking across cycles is one finding, its events counted once: each
/// cycle judges its new rows with the longest rule window before them and extends the findings
/// stored that day.
#[test]
fn an_attack_written_across_cycles_is_one_finding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d);
    let log = d.join("logs/access.log");
    let attempts = |minute: u64, second: u64| -> String {
        (0..10)
            .map(|k| {
                format!(
                    "10.9.9.9 - - [01/Mar/2024:10:{minute:02}:{:02} +0000] \"POST /login HTTP/1.1\" 401 12 \"-\" \"curl/8.0\"\n\
                     10.1.1.{k} - - [01/Mar/2024:10:{minute:02}:{:02} +0000] \"GET /page/{k} HTTP/1.1\" 200 512 \"-\" \"browser\"\n",
                    second + k,
                    second + k
                )
            })
            .collect()
    };
    let watch = start_watch(d, "1s");
    // Three bursts of ten failed logins, each ingested by a cycle of its own: the second within
    // the rule's window of the first, the third a quarter of an hour later, beyond the longest
    // window a cycle looks back over (ten minutes).
    for (n, (minute, second)) in [(0, 0), (0, 30), (15, 0)].into_iter().enumerate() {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        f.write_all(attempts(minute, second).as_bytes()).unwrap();
        drop(f);
        let rows = 20 * (n as u64 + 1);
        assert_eq!(
            caught_up(d, rows, Duration::from_secs(30)).0,
            rows,
            "{}",
            said(d)
        );
        std::thread::sleep(Duration::from_millis(1500));
    }
    let (code, _, stderr) = stop(d, watch);
    assert_eq!(code, 0, "{stderr}");
    let found = query_json(
        d,
        "ds",
        "SELECT client_ip, events, strftime(first_seen, '%H:%M:%S') AS first, \
         strftime(last_seen, '%H:%M:%S') AS last FROM findings WHERE rule = 'brute_force'",
    );
    assert_eq!(found.len(), 1, "{found:?}\n{}", said(d));
    assert_eq!(found[0]["client_ip"], "10.9.9.9");
    assert_eq!(found[0]["events"], 30, "{found:?}");
    assert_eq!(found[0]["first"], "10:00:00");
    assert_eq!(found[0]["last"], "10:15:09");
}

/// CPU seconds (user and system) a running process has used, from `/proc`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold blanks.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let per_s = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    ticks
        / String::from_utf8_lossy(&per_s.stdout)
            .trim()
            .parse::<f64>()
            .unwrap()
}

/// Between cycles `watch` sleeps until a log changes: its own reads and directory listings are
/// not changes (once they were, and each look at the directory woke it to look again, a core
/// busy between cycles).
#[test]
fn between_cycles_watch_waits_without_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d);
    let log = d.join("logs/access.log");
    append(&log, 0, 100, 10_000);
    let watch = start_watch(d, "60s");
    assert_eq!(caught_up(d, 100, Duration::from_secs(30)).0, 100);
    let before = cpu_seconds(watch.id());
    // Four seconds of a writer appending ten times a second, below the batch that starts a
    // cycle early: each append wakes watch to look at the sizes, nothing more.
    append(&log, 100, 400, 75);
    let used = cpu_seconds(watch.id()) - before;
    let (code, _, stderr) = stop(d, watch);
    assert_eq!(code, 0, "{stderr}");
    println!("CPU seconds used by watch in 4 s of appends between cycles: {used:.2}");
    assert!(used < 1.0, "watch used {used:.2} s of CPU between cycles");
}
