//! `archive` and `restore` end to end: byte-identical round trips, compaction that changes no
//! answer, retention with a dry run, damaged archives, and SIGKILL at every checkpoint followed by
//! a rerun that leaves every row and every source byte exactly once.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{logcrunch, query_json, stdout_of};
use serde_json::Value;

const CONFIG: &str = "archive:
  min_idle: 0s
  delete_source: true
  zstd_level: 3
  compact_after_days: 2
  compact_zstd_level: 6
  compact_row_group_rows: 50000
";

/// A day well after the generated logs, so every partition is old.
const AS_OF: &str = "2024-01-20";

fn generate(dir: &Path, name: &str, lines: u64, seed: u64, rps: f64) -> Vec<u8> {
    logcrunch(dir)
        .args([
            "generate",
            "--lines",
            &lines.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(["--rps", &rps.to_string(), "-o", name])
        .assert()
        .success();
    std::fs::read(dir.join(name)).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A dataset of two sources over three days, each (source, day) in several files: a plain log
/// ingested in two steps as it grew, and a gzip log. Returns the originals' bytes by path.
fn setup(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::write(dir.join("config.yaml"), CONFIG).unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let a = generate(dir, "a-full.log", 150_000, 1, 1.0);
    std::fs::remove_file(dir.join("a-full.log")).unwrap();
    let half = a.len() / 2 + a[a.len() / 2..].iter().position(|b| *b == b'\n').unwrap() + 1;
    std::fs::write(dir.join("src/a.log"), &a[..half]).unwrap();
    ingest(dir, &["src/a.log"]);
    std::fs::write(dir.join("src/a.log"), &a).unwrap();
    let b = gzip(&generate(dir, "b.log", 40_000, 2, 0.5));
    std::fs::remove_file(dir.join("b.log")).unwrap();
    std::fs::write(dir.join("src/b.log.gz"), &b).unwrap();
    ingest(dir, &["src/a.log", "src/b.log.gz"]);
    vec![("src/a.log".into(), a), ("src/b.log.gz".into(), b)]
}

fn ingest(dir: &Path, paths: &[&str]) {
    logcrunch(dir)
        .args([
            "--config",
            "config.yaml",
            "ingest",
            "--dataset",
            "ds",
            "--threads",
            "2",
            "-q",
        ])
        .args(paths)
        .assert()
        .success();
}

/// `archive --json` of `ds` as of [`AS_OF`], with `global` flags before the command.
fn archive_with(dir: &Path, global: &[&str], extra: &[&str]) -> Value {
    let mut args = vec!["--config", "config.yaml"];
    args.extend(global);
    args.extend(["archive", "--dataset", "ds", "--as-of", AS_OF, "--json"]);
    args.extend(extra);
    serde_json::from_slice(&stdout_of(dir, &args)).unwrap()
}

fn archive(dir: &Path, extra: &[&str]) -> Value {
    archive_with(dir, &[], extra)
}

/// What queries see: totals, an order-independent hash of every row, per-day counts and the stats.
fn answers(dir: &Path) -> Vec<Value> {
    let mut out = query_json(
        dir,
        "ds",
        "SELECT count(*) AS n, count(DISTINCT (source, \"offset\")) AS distinct_rows, \
         sum(\"offset\") AS offsets, sum(response_time_us) AS rt, min(ts) AS first, max(ts) AS last, \
         bit_xor(hash(ts, client_ip, path, status, bytes, user_agent, route, \"offset\")) AS h \
         FROM logs",
    );
    out.extend(query_json(
        dir,
        "ds",
        "SELECT date, status // 100 AS class, count(*) AS n, quantile_cont(response_time_us, 0.95) AS p95 \
         FROM logs GROUP BY ALL ORDER BY ALL",
    ));
    out.extend(query_json(
        dir,
        "ds",
        "SELECT count(*) AS n, sum(requests) AS requests, bit_xor(hash(minute, route, hist)) AS h FROM stats",
    ));
    out
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("ds/manifest.json")).unwrap()).unwrap()
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("ds")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("archive") {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every listed file exists, nothing else is in the dataset, and each source is archived once
/// and restores to its original bytes.
fn assert_intact(dir: &Path, originals: &[(String, Vec<u8>)], reference: &[Value]) {
    assert_eq!(answers(dir), reference, "query answers changed");
    let m = manifest(dir);
    let mut listed: Vec<PathBuf> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| dir.join("ds").join(f["path"].as_str().unwrap()))
        .collect();
    listed.sort();
    assert_eq!(
        parquet_files(dir),
        listed,
        "Parquet files on disk vs manifest"
    );
    let raw: Vec<_> = std::fs::read_dir(dir.join("ds/archive/raw"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        raw.len(),
        originals.len(),
        "one archive per source: {raw:?}"
    );
    let back = dir.join("restored");
    std::fs::create_dir_all(&back).unwrap();
    for (path, bytes) in originals {
        assert!(
            !dir.join(path).exists(),
            "{path} should be deleted after archiving"
        );
        logcrunch(dir)
            .args(["restore", "--dataset", "ds", path, "--to"])
            .arg(&back)
            .assert()
            .success();
        let name = Path::new(path).file_name().unwrap();
        assert!(
            std::fs::read(back.join(name)).unwrap() == *bytes,
            "{path} restored differs"
        );
    }
    std::fs::remove_dir_all(&back).unwrap();
}

#[test]
fn archive_restore_round_trip_is_byte_identical_and_the_archive_can_be_ingested() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let originals = setup(dir);
    let reference = answers(dir);

    let manifest_before = std::fs::read(dir.join("ds/manifest.json")).unwrap();
    let dry = archive_with(dir, &["--dry-run"], &[]);
    assert_eq!(dry["dry_run"], true);
    let would: Vec<_> = dry["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].clone())
        .collect();
    assert_eq!(would, ["archived", "archived"], "{dry}");
    assert_eq!(
        std::fs::read(dir.join("ds/manifest.json")).unwrap(),
        manifest_before
    );
    assert!(!dir.join("ds/archive").exists());

    let s = archive(dir, &[]);
    assert!(s["raw"]["ratio"].as_f64().unwrap() > 1.0, "{s}");
    assert_intact(dir, &originals, &reference);
    let m = manifest(dir);
    let arch = m["archives"].as_array().unwrap();
    let plain = arch
        .iter()
        .find(|a| a["original"].as_str().unwrap().ends_with("/src/a.log"))
        .unwrap();
    assert_eq!(plain["codec"], "zstd");
    let ratio = plain["size"].as_f64().unwrap() / plain["archived_bytes"].as_f64().unwrap();
    println!("raw archive ratio (zstd 3): {ratio:.1}x");
    assert!(ratio > 5.0, "a log compresses well: {ratio}");
    assert!(arch.iter().all(|a| a["source_deleted"] == true));
    let listed = query_json(
        dir,
        "ds",
        "SELECT count(*) AS n, sum(size) AS size, count(*) FILTER (WHERE source_deleted) AS deleted FROM archives",
    );
    let total: u64 = originals.iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(
        (
            listed[0]["n"].clone(),
            listed[0]["size"].clone(),
            listed[0]["deleted"].clone()
        ),
        (2.into(), total.into(), 2.into()),
        "the catalog's archives table"
    );

    // Restoring to the original path, then again (already there), then over a changed file.
    logcrunch(dir)
        .args(["restore", "--dataset", "ds", "src/a.log"])
        .assert()
        .success();
    assert!(std::fs::read(dir.join("src/a.log")).unwrap() == originals[0].1);
    // A restored original is left alone by the next archive run.
    let next = archive(dir, &[]);
    assert!(
        next["sources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == "kept"),
        "{next}"
    );
    assert!(dir.join("src/a.log").exists());
    let again = logcrunch(dir)
        .args(["restore", "--dataset", "ds", "src/a.log", "--json"])
        .output()
        .unwrap();
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again[0]["action"], "present");
    std::fs::write(dir.join("src/a.log"), "changed\n").unwrap();
    logcrunch(dir)
        .args(["restore", "--dataset", "ds", "a.log"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--force"));
    logcrunch(dir)
        .args(["restore", "--dataset", "ds", "a.log", "--force"])
        .assert()
        .success();
    assert!(std::fs::read(dir.join("src/a.log")).unwrap() == originals[0].1);
    // A dry run says what it would write and writes nothing.
    let by_date_args = [
        "restore",
        "--dataset",
        "ds",
        "--date",
        "2024-01-01",
        "--to",
        "bydate",
        "--json",
    ];
    let dry = stdout_of(dir, &[&["--dry-run"][..], &by_date_args].concat());
    let dry: Value = serde_json::from_slice(&dry).unwrap();
    assert_eq!(dry[0]["action"], "would_restore", "{dry}");
    assert!(!dir.join("bydate").exists());
    // By date: both sources have rows on 2024-01-01.
    let by_date: Value = serde_json::from_slice(&stdout_of(dir, &by_date_args)).unwrap();
    assert_eq!(by_date.as_array().unwrap().len(), 2, "{by_date}");
    assert!(std::fs::read(dir.join("bydate/b.log.gz")).unwrap() == originals[1].1);

    // The archive is read directly: a fresh dataset from it answers the same, and feeding it back
    // to the original dataset adds nothing.
    let raw: Vec<String> = std::fs::read_dir(dir.join("ds/archive/raw"))
        .unwrap()
        .flatten()
        .map(|e| e.path().display().to_string())
        .collect();
    let mut cmd = logcrunch(dir);
    cmd.args(["ingest", "--dataset", "fresh", "-q"])
        .args(&raw)
        .assert()
        .success();
    let mut cmd = logcrunch(dir);
    let s = cmd
        .args(["ingest", "--dataset", "ds", "--json"])
        .args(&raw)
        .output()
        .unwrap();
    let s: Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(
        s["rows"], 0,
        "the archive is recognised as what was ingested: {s}"
    );
    let count = |ds: &str| {
        query_json(
            dir,
            ds,
            "SELECT count(*) AS n, sum(response_time_us) AS rt FROM logs",
        )
    };
    assert_eq!(count("fresh"), count("ds"));
}

#[test]
fn compaction_keeps_every_answer_and_retention_dry_run_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let originals = setup(dir);
    let reference = answers(dir);
    let files_before = parquet_files(dir).len();
    let detect = |dir: &Path| stdout_of(dir, &["detect", "--dataset", "ds", "--format", "json"]);
    let percentiles = |dir: &Path| {
        stdout_of(
            dir,
            &["stats", "show", "--dataset", "ds", "--format", "json"],
        )
    };
    let detect_before = detect(dir);
    let pct_before = percentiles(dir);

    let s = archive(dir, &[]);
    let compactions = s["compactions"].as_array().unwrap();
    assert!(!compactions.is_empty());
    let before: u64 = compactions
        .iter()
        .map(|c| c["bytes_before"].as_u64().unwrap())
        .sum();
    let after: u64 = compactions
        .iter()
        .map(|c| c["bytes_after"].as_u64().unwrap())
        .sum();
    println!(
        "compaction: {files_before} files -> {}, {before} -> {after} bytes",
        parquet_files(dir).len()
    );
    assert!(parquet_files(dir).len() < files_before);
    assert_intact(dir, &originals, &reference);
    assert_eq!(detect(dir), detect_before, "detect answers the same");
    assert_eq!(
        percentiles(dir),
        pct_before,
        "histogram percentiles are the same"
    );
    // Sorted by time within each compacted logs file.
    let unsorted = query_json(
        dir,
        "ds",
        "SELECT count(*) AS n FROM (SELECT ts < lag(ts) OVER (PARTITION BY filename ORDER BY file_row_number) AS back \
         FROM read_parquet('ds/logs/*/*.parquet', filename = true, file_row_number = true)) WHERE back",
    );
    assert_eq!(unsorted[0]["n"], 0);
    // A second run has nothing left to compact.
    assert!(
        archive(dir, &[])["compactions"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Retention: the dry run lists partitions with sizes and changes nothing.
    std::fs::write(
        dir.join("config.yaml"),
        format!("{CONFIG}  retention_days: 18\n"),
    )
    .unwrap();
    let manifest_before = std::fs::read(dir.join("ds/manifest.json")).unwrap();
    let dry = archive_with(dir, &["--dry-run"], &[]);
    let retired = dry["retired"].as_array().unwrap();
    assert_eq!(retired.len(), 1, "{dry}");
    assert_eq!(retired[0]["date"], "2024-01-01");
    assert!(retired[0]["bytes"].as_u64().unwrap() > 0 && retired[0]["rows"].as_u64().unwrap() > 0);
    assert_eq!(
        std::fs::read(dir.join("ds/manifest.json")).unwrap(),
        manifest_before
    );
    let text = logcrunch(dir)
        .args([
            "--config",
            "config.yaml",
            "--dry-run",
            "archive",
            "--dataset",
            "ds",
            "--as-of",
            AS_OF,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("would remove partition 2024-01-01"), "{text}");

    let real = archive(dir, &[]);
    assert_eq!(real["retired"][0]["date"], "2024-01-01");
    let days = query_json(dir, "ds", "SELECT DISTINCT date FROM logs ORDER BY ALL");
    assert!(days.iter().all(|d| d["date"] != "2024-01-01"), "{days:?}");
    let exported = manifest(dir)["exports"].as_array().unwrap().len();
    assert!(exported >= 2, "logs and stats files of the day exported");
    logcrunch(dir)
        .args(["archive", "--dataset", "ds", "--verify"])
        .assert()
        .success()
        .stdout(predicates::str::contains("matches its checksum"));
}

#[test]
fn a_damaged_archive_is_caught_on_restore_and_on_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let originals = setup(dir);
    archive(dir, &[]);
    let m = manifest(dir);
    let a = m["archives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["original"].as_str().unwrap().ends_with("/src/a.log"))
        .unwrap();
    let file = dir.join("ds").join(a["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    logcrunch(dir)
        .args(["archive", "--dataset", "ds", "--verify"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("is damaged"));
    logcrunch(dir)
        .args(["restore", "--dataset", "ds", "src/a.log"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("is damaged"));
    assert!(
        !dir.join("src/a.log").exists(),
        "nothing is written from a damaged archive"
    );
    assert!(
        std::fs::read_dir(dir.join("src")).unwrap().count() == 0,
        "no temporary file is left"
    );
    // The gzip source's archive is untouched and still restores.
    logcrunch(dir)
        .args(["restore", "--dataset", "ds", "src/b.log.gz"])
        .assert()
        .success();
    assert!(std::fs::read(dir.join("src/b.log.gz")).unwrap() == originals[1].1);
}

/// Starts `archive` paused at `point`; returns the child once it waits there, with the rest of
/// its stderr.
fn paused_at(
    dir: &Path,
    point: &str,
) -> (std::process::Child, BufReader<std::process::ChildStderr>) {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("logcrunch"))
        .current_dir(dir)
        .args([
            "--config",
            "config.yaml",
            "archive",
            "--dataset",
            "ds",
            "--as-of",
            AS_OF,
        ])
        .env(logcrunch::archive::PAUSE_ENV, point)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = err.read_line(&mut line).unwrap();
        assert!(n > 0, "archive finished without reaching {point}");
        if line.trim() == format!("paused at {point}") {
            break;
        }
    }
    (child, err)
}

#[test]
fn the_archive_step_refuses_a_copy_damaged_before_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let originals = setup(dir);
    let (mut child, mut err) = paused_at(dir, "archive-verify");
    let tmpfile = std::fs::read_dir(dir.join("ds/archive/raw"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .expect("the compressed copy awaits verification");
    let mut bytes = std::fs::read(&tmpfile).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x10;
    std::fs::write(&tmpfile, &bytes).unwrap();
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut err, &mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is damaged") && stderr.contains("original was kept"),
        "{stderr}"
    );
    assert!(
        std::fs::read(dir.join("src/a.log")).unwrap() == originals[0].1,
        "original kept"
    );
    // The other source went on and was archived; the damaged one left nothing behind.
    let m = manifest(dir);
    let archived: Vec<&str> = m["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["original"].as_str().unwrap())
        .collect();
    assert!(
        archived.len() == 1 && archived[0].ends_with("/src/b.log.gz"),
        "{archived:?}"
    );
    assert_eq!(
        std::fs::read_dir(dir.join("ds/archive/raw"))
            .unwrap()
            .count(),
        1
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

#[test]
fn sigkill_at_any_point_then_a_rerun_leaves_every_row_and_byte_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let template = tmp.path().join("template");
    std::fs::create_dir_all(&template).unwrap();
    let originals = setup(&template);
    let reference = answers(&template);
    for point in [
        "archive-compress",
        "archive-verify",
        "archive-commit",
        "archive-delete",
        "compact-verify",
        "compact-swap",
        "compact-delete",
    ] {
        let dir = tmp.path().join(point);
        copy_dir(&template, &dir);
        let (mut child, _err) = paused_at(&dir, point);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "{point}: killed");
        let s = archive(&dir, &[]);
        println!(
            "killed at {point}: rerun archived {} sources, compacted {} groups",
            s["sources"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["action"] == "archived")
                .count(),
            s["compactions"].as_array().unwrap().len()
        );
        assert_intact(&dir, &originals, &reference);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn run_ends_with_the_archive_step() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let bytes = generate(dir, "in/access.log", 5_000, 3, 5.0);
    std::fs::write(
        dir.join("cfg.yaml"),
        "logs:\n  source_dir: in\nstorage:\n  dataset: ds\nreports:\n  dir: reports\n\
         archive:\n  min_idle: 0s\n  compact_after_days: 1\n",
    )
    .unwrap();
    let run = |extra: &[&str]| -> Value {
        let args = [&["--config", "cfg.yaml"], extra, &["run", "--json"]].concat();
        serde_json::from_slice(&stdout_of(dir, &args)).unwrap()
    };
    let dry = run(&["--dry-run"]);
    assert_eq!(dry["archive"]["dry_run"], true);
    assert_eq!(dry["archive"]["sources"][0]["action"], "archived");
    assert!(manifest(dir)["archives"].as_array().unwrap().is_empty());
    let first = run(&[]);
    let archive = &first["archive"];
    assert_eq!(archive["sources"][0]["action"], "archived", "{archive}");
    assert!(
        !archive["compactions"].as_array().unwrap().is_empty(),
        "2024 is old: {archive}"
    );
    assert!(
        std::fs::read(dir.join("in/access.log")).unwrap() == bytes,
        "delete_source is off"
    );
    let second = run(&[]);
    assert_eq!(second["archive"]["sources"][0]["action"], "kept");
    assert!(
        second["archive"]["compactions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Each run (the dry one too) is in `runs`, with what its archive step did.
    let runs = query_json(
        dir,
        "ds",
        "SELECT count(*) AS n, count(*) FILTER (WHERE contains(summary, '\"dry_run\":true')) AS dry \
         FROM runs WHERE command = 'run'",
    );
    assert_eq!(
        (runs[0]["n"].clone(), runs[0]["dry"].clone()),
        (3.into(), 1.into())
    );
}

#[test]
fn a_file_that_replaced_an_ingested_source_is_not_archived_as_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("config.yaml"), CONFIG).unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let mut bytes = generate(dir, "src/a.log", 2_000, 4, 1.0);
    ingest(dir, &["src/a.log"]);
    // Same size, different first line: what logrotate's `create` could leave behind.
    let i = bytes.iter().position(|b| b.is_ascii_digit()).unwrap();
    bytes[i] = if bytes[i] == b'9' { b'8' } else { bytes[i] + 1 };
    std::fs::write(dir.join("src/a.log"), &bytes).unwrap();
    let s = archive(dir, &[]);
    assert_eq!(s["sources"][0]["action"], "skipped", "{s}");
    let reason = s["sources"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("another file has taken its path"),
        "{reason}"
    );
    assert!(manifest(dir)["archives"].as_array().unwrap().is_empty());
    assert!(dir.join("src/a.log").exists());
}

#[test]
fn a_group_that_cannot_be_compacted_keeps_its_files_and_the_others_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    let m = manifest(dir);
    let victim = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["table"] == "logs" && f["date"] == "2024-01-02")
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    let path = dir.join("ds").join(&victim);
    let mut bytes = std::fs::read(&path).unwrap();
    // Inside the column data: the footer (which views read) stays valid.
    let mid = bytes.len() / 3;
    bytes[mid..mid + 64].fill(0xa5);
    std::fs::write(&path, &bytes).unwrap();
    let out = logcrunch(dir)
        .args([
            "--config",
            "config.yaml",
            "archive",
            "--dataset",
            "ds",
            "--as-of",
            AS_OF,
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let compactions = s["compactions"].as_array().unwrap();
    let failed: Vec<_> = compactions
        .iter()
        .filter(|c| c["error"].is_string())
        .collect();
    assert_eq!(failed.len(), 1, "{s}");
    assert!(compactions.iter().filter(|c| c["error"].is_null()).count() >= 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&victim));
    let listed = manifest(dir)["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == victim.as_str());
    assert!(listed && path.exists(), "the damaged group keeps its files");
}
