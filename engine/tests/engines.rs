//! The dataset read by engines that are not logcrunch, which must find the request count, status
//! codes, bytes and exact p95 that `logcrunch report` gives: PySpark in local mode reads the `logs`
//! table as plain Hive-partitioned Parquet (testdata/engines/spark_summary.py), and the
//! `deltalake` package (delta-rs) reads it as a Delta table through its transaction log
//! (testdata/engines/delta_summary.py), across appends, a checkpoint and compaction. They need a
//! Python with `pyspark`, `deltalake` and `pyarrow` (`LOGCRUNCH_TEST_PYTHON`, else the test venv
//! under ~/.cache) and Java; without them they are skipped, unless `LOGCRUNCH_ENGINES=required`
//! (CI) makes their absence a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{logcrunch, report};
use serde_json::Value;

/// A Python interpreter that can import `module` (and, for PySpark, Java beside it); `None` when
/// there is none here.
fn python_with(module: &str) -> Option<PathBuf> {
    let python = std::env::var("LOGCRUNCH_TEST_PYTHON").map_or_else(
        |_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/logcrunch-test-venv/bin/python")
        },
        PathBuf::from,
    );
    let works = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    let ready = works(Command::new(&python).args(["-c", &format!("import {module}")]))
        && (module != "pyspark" || works(Command::new("java").arg("-version")));
    let required = std::env::var("LOGCRUNCH_ENGINES").is_ok_and(|v| v == "required");
    assert!(
        ready || !required,
        "LOGCRUNCH_ENGINES=required, but {} cannot import {module} (or java is missing): \
         `{} -m pip install pyspark deltalake pyarrow` and install a Java runtime (17 or later)",
        python.display(),
        python.display()
    );
    if !ready {
        eprintln!("skipped: no {module} in {} (or no java)", python.display());
    }
    ready.then_some(python)
}

/// What the script `testdata/engines/<script>` run with `args` finds (its last line, JSON).
fn summary(python: &Path, script: &str, args: &[&str]) -> Value {
    let script = common::repo().join("testdata/engines").join(script);
    let out = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout
        .lines()
        .last()
        .expect("the script printed its figures");
    serde_json::from_str(last).unwrap()
}

/// Writes a week of timed traffic (several date partitions) as `a.log`, and the same week's last
/// day again as `b.log`, so that a partition holds files of two runs.
fn a_week_of_traffic(d: &Path) {
    for (name, seed, start) in [
        ("a.log", "7", "2024-01-01T00:00:00Z"),
        ("b.log", "8", "2024-01-07T00:00:00Z"),
    ] {
        logcrunch(d)
            .args(["generate", "--format", "nginx_timed", "--lines", "20000"])
            .args([
                "--rps", "0.04", "--seed", seed, "--start", start, "-o", name,
            ])
            .assert()
            .success();
    }
}

fn ingest(d: &Path, files: &[&str]) {
    logcrunch(d)
        .args(["ingest", "-q", "--dataset", "ds", "--format", "nginx_timed"])
        .args(files)
        .assert()
        .success();
}

/// Asserts that an engine's `found` figures equal `logcrunch report`'s over `ds` in `d`.
fn agrees_with_the_report(d: &Path, found: &Value, requests: u64) {
    let performance = report(d, "ds", "performance", &[]);
    let traffic = report(d, "ds", "traffic", &[]);
    let overall = &traffic["traffic"]["overall"];
    assert_eq!(found["requests"], overall["requests"]);
    assert_eq!(found["requests"], requests);
    assert_eq!(found["bytes"], overall["bytes"]);
    assert_eq!(
        found["p95_ms"],
        performance["performance"]["overall"]["p95_ms"]
    );
    let by_status = traffic["traffic"]["status"].as_array().unwrap();
    let status_sum: u64 = by_status
        .iter()
        .map(|s| s["status"].as_u64().unwrap() * s["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(found["status_sum"], status_sum);
    for s in by_status {
        assert_eq!(
            found["status"][s["status"].to_string()],
            s["requests"],
            "{s}"
        );
    }
    let days = found["days"].as_array().unwrap();
    assert!(days.len() >= 7, "a week of partitions: {days:?}");
}

#[test]
fn pyspark_reads_the_dataset_and_agrees_with_the_report() {
    let Some(python) = python_with("pyspark") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    a_week_of_traffic(d);
    ingest(d, &["a.log", "b.log"]);
    let ds = d.join("ds");
    let spark = summary(&python, "spark_summary.py", &[ds.to_str().unwrap()]);
    agrees_with_the_report(d, &spark, 40_000);
}

#[test]
fn deltalake_reads_the_tables_delta_log_through_appends_checkpoints_and_compaction() {
    let Some(python) = python_with("deltalake") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    a_week_of_traffic(d);
    ingest(d, &["a.log", "b.log"]);
    // b.log grows twelve times, each growth its own ingest and so its own Delta commit: the log
    // passes a checkpoint.
    let grown = std::fs::read(d.join("b.log")).unwrap();
    logcrunch(d)
        .args(["generate", "--format", "nginx_timed", "--lines", "1200"])
        .args([
            "--rps",
            "0.04",
            "--seed",
            "9",
            "--start",
            "2024-01-08T00:00:00Z",
        ])
        .args(["-o", "c.log"])
        .assert()
        .success();
    let extra = std::fs::read(d.join("c.log")).unwrap();
    let lines: Vec<&[u8]> = extra.split_inclusive(|b| *b == b'\n').collect();
    let mut body = grown;
    for step in lines.chunks(100) {
        body.extend(step.concat());
        std::fs::write(d.join("b.log"), &body).unwrap();
        ingest(d, &["b.log"]);
    }
    let uri = d.join("ds/logs");
    let uri = uri.to_str().unwrap();
    let log = d.join("ds/logs/_delta_log");
    assert!(
        log.join("_last_checkpoint").is_file(),
        "a checkpoint was written"
    );

    let sources: Value =
        serde_json::from_slice(&std::fs::read(d.join("ds/manifest.json")).unwrap()).unwrap();
    let b = sources["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"].as_str().unwrap().ends_with("b.log"))
        .unwrap();
    let app = format!(
        "logcrunch-source-{:016x}",
        b["fingerprint"].as_u64().unwrap()
    );
    let before = summary(&python, "delta_summary.py", &[uri, &app]);
    agrees_with_the_report(d, &before, 41_200);
    assert_eq!(
        before["txn"], b["offset"],
        "the source's progress is in the log"
    );
    assert_eq!(before["txn"], body.len() as u64);

    // Compaction rewrites every partition: the table's content stays.
    logcrunch(d)
        .args(["archive", "-q", "--dataset", "ds"])
        .assert()
        .success();
    let after = summary(&python, "delta_summary.py", &[uri, &app]);
    assert!(after["version"].as_u64() > before["version"].as_u64());
    agrees_with_the_report(d, &after, 41_200);
    for key in [
        "requests",
        "bytes",
        "status_sum",
        "p95_ms",
        "status",
        "days",
        "txn",
    ] {
        assert_eq!(after[key], before[key], "{key}");
    }
}
