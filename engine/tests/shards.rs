//! Sharded ingest with no coordinator: N processes started at once with `ingest --shard K/N` and
//! the same arguments ingest an archive once between them, in whatever order they commit; a shard
//! killed mid-run (`kill -9`) and run again leaves every line stored exactly once.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{logcrunch, query_json};

/// Writes an archive of logs into `d/archive`: `files` generated logs of `lines` lines each, over
/// different days, plus a copy of the first under a rotated name (the same content, which must be
/// stored once: it goes to the shard of the original). Returns the number of distinct lines.
fn archive(d: &Path, files: u64, lines: u64) -> u64 {
    std::fs::create_dir_all(d.join("archive")).unwrap();
    for i in 1..=files {
        logcrunch(d)
            .args(["generate", "--format", "nginx_timed", "--rps", "1"])
            .args(["--lines", &lines.to_string(), "--seed", &i.to_string()])
            .args(["--start", &format!("2024-03-{i:02}T00:00:00Z")])
            .args(["-o", &format!("archive/web-{i}.log")])
            .assert()
            .success();
    }
    std::fs::copy(d.join("archive/web-1.log"), d.join("archive/web-1.log.1")).unwrap();
    files * lines
}

/// The ingest of the archive's format into `ds`.
const INGEST: [&str; 5] = ["ingest", "--dataset", "ds", "--format", "nginx_timed"];

/// Starts `ingest --shard SHARD` of the archive into `ds`.
fn start_shard(d: &Path, shard: &str) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("logcrunch"))
        .current_dir(d)
        .args(INGEST)
        .args(["--json", "--threads", "1", "--shard", shard, "archive"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Rows, the sum of `bytes` and the distinct (source line) pairs in `ds`.
fn stored(d: &Path) -> (u64, u64, u64) {
    let r = &query_json(
        d,
        "ds",
        "SELECT count(*) AS n, sum(bytes)::UBIGINT AS b, \
         count(DISTINCT (regexp_replace(source, '\\.1$', ''), \"offset\")) AS u FROM logs",
    )[0];
    let get = |k: &str| r[k].as_u64().unwrap();
    (get("n"), get("b"), get("u"))
}

/// What one process ingesting the whole archive stores.
fn unsharded(d: &Path) -> (u64, u64, u64) {
    logcrunch(d).args(INGEST).arg("archive").assert().success();
    stored(d)
}

#[test]
fn concurrent_shards_ingest_an_archive_once() {
    for n in [2, 4] {
        let (one, many) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let lines = archive(one.path(), 6, 3000);
        archive(many.path(), 6, 3000);
        let expected = unsharded(one.path());
        assert_eq!(expected.0, lines);
        let shards: Vec<Child> = (1..=n)
            .map(|k| start_shard(many.path(), &format!("{k}/{n}")))
            .collect();
        let mut read = 0;
        for shard in shards {
            let out = shard.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            read += summary["files_read"].as_u64().unwrap();
        }
        assert_eq!(stored(many.path()), expected, "{n} shards");
        assert!(read <= 7, "each file is read by one shard at most: {read}");
    }
}

#[test]
fn a_killed_shard_run_again_stores_its_lines_once() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let lines = archive(d, 6, 100_000);
    // Killed while it reads (about 300,000 lines on one thread), before its commit.
    let mut victim = start_shard(d, "1/2");
    std::thread::sleep(std::time::Duration::from_millis(400));
    victim.kill().unwrap();
    let status = victim.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the shard ended before it was killed: {status}"
    );
    for shard in ["2/2", "1/2", "2/2", "1/2"] {
        let out = start_shard(d, shard).wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (rows, _, distinct) = stored(d);
    assert_eq!((rows, distinct), (lines, lines));
}

#[test]
fn standard_input_is_not_shared_out() {
    let tmp = tempfile::tempdir().unwrap();
    logcrunch(tmp.path())
        .args(["ingest", "--dataset", "ds", "--shard", "1/2", "-"])
        .write_stdin("x\n")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--shard splits files"));
    logcrunch(tmp.path())
        .args(["ingest", "--dataset", "ds", "--shard", "3/2", "x.log"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("1 <= K <= N"));
}
