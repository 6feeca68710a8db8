//! The dataset read by an engine that is not logcrunch: PySpark in local mode reads the `logs`
//! table of a local dataset as plain Hive-partitioned Parquet (testdata/engines/spark_summary.py)
//! and must find the request count, status codes, bytes and exact p95 that `logcrunch report`
//! gives. It needs Java and a Python with `pyspark` (`LOGCRUNCH_TEST_PYTHON`, else the test venv
//! under ~/.cache); without them it is skipped, unless `LOGCRUNCH_PYSPARK=required` (CI) makes
//! their absence a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{logcrunch, report};
use serde_json::Value;

/// A Python interpreter that has PySpark, with Java beside it; `None` when there is none here.
fn pyspark_python() -> Option<PathBuf> {
    let python = std::env::var("LOGCRUNCH_TEST_PYTHON").map_or_else(
        |_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/logcrunch-test-venv/bin/python")
        },
        PathBuf::from,
    );
    let works = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    let ready = works(Command::new(&python).args(["-c", "import pyspark"]))
        && works(Command::new("java").arg("-version"));
    let required = std::env::var("LOGCRUNCH_PYSPARK").is_ok_and(|v| v == "required");
    assert!(
        ready || !required,
        "LOGCRUNCH_PYSPARK=required, but {} cannot import pyspark or java is missing: \
         `{} -m pip install pyspark` and install a Java runtime (17 or later)",
        python.display(),
        python.display()
    );
    if !ready {
        eprintln!("skipped: no pyspark in {} or no java", python.display());
    }
    ready.then_some(python)
}

/// What Spark finds in the dataset at `ds`.
fn spark_summary(python: &Path, ds: &Path) -> Value {
    let script = common::repo().join("testdata/engines/spark_summary.py");
    let out = Command::new(python).arg(script).arg(ds).output().unwrap();
    assert!(
        out.status.success(),
        "spark_summary.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout
        .lines()
        .last()
        .expect("spark_summary.py printed its figures");
    serde_json::from_str(last).unwrap()
}

#[test]
fn pyspark_reads_the_dataset_and_agrees_with_the_report() {
    let Some(python) = pyspark_python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A week of timed traffic (several date partitions), then the same week's last day again
    // from a second file, so that a partition holds files of two runs.
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
    logcrunch(d)
        .args([
            "ingest",
            "--dataset",
            "ds",
            "--format",
            "nginx_timed",
            "a.log",
            "b.log",
        ])
        .assert()
        .success();

    let spark = spark_summary(&python, &d.join("ds"));
    let performance = report(d, "ds", "performance", &[]);
    let traffic = report(d, "ds", "traffic", &[]);
    let overall = &traffic["traffic"]["overall"];
    assert_eq!(spark["requests"], overall["requests"]);
    assert_eq!(spark["requests"], 40_000);
    assert_eq!(spark["bytes"], overall["bytes"]);
    assert_eq!(
        spark["p95_ms"],
        performance["performance"]["overall"]["p95_ms"]
    );
    let by_status = traffic["traffic"]["status"].as_array().unwrap();
    let status_sum: u64 = by_status
        .iter()
        .map(|s| s["status"].as_u64().unwrap() * s["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(spark["status_sum"], status_sum);
    for s in by_status {
        assert_eq!(
            spark["status"][s["status"].to_string()],
            s["requests"],
            "{s}"
        );
    }
    let days = spark["days"].as_array().unwrap();
    assert!(days.len() >= 7, "a week of partitions: {days:?}");
}
