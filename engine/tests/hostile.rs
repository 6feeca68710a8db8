//! Hostile input end to end: logs truncated, rewritten or shrunk while and between reads, unreadable
//! files, sparse files of NULs, compressed streams that declare huge sizes, and a full file system.
//! Each has the outcome the README's bad-input table documents; none may kill the process.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ingest_json, logcrunch, query_json};
use serde_json::Value;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("logcrunch")
}

fn count(dir: &Path, ds: &str) -> u64 {
    query_json(dir, ds, "SELECT count(*) AS n FROM logs")[0]["n"]
        .as_u64()
        .unwrap()
}

/// Runs the command to its end, sampling its peak resident memory (VmHWM) as it goes.
fn run_measured(cmd: &mut Command) -> (Output, u64, Duration) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    while child.try_wait().unwrap().is_none() {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    (out, peak_kb << 10, started.elapsed())
}

fn generate(dir: &Path, lines: usize, name: &str) {
    logcrunch(dir)
        .args([
            "generate",
            "--format",
            "nginx_timed",
            "--lines",
            &lines.to_string(),
            "--seed",
            "7",
            "-o",
            name,
        ])
        .assert()
        .success();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Rows an ingest of `file`'s current content gives in a dataset of its own.
fn reference_rows(dir: &Path, file: &str, ds: &str) -> u64 {
    let copy = format!("{file}.reference");
    std::fs::copy(dir.join(file), dir.join(&copy)).unwrap();
    ingest_json(dir, &["--dataset", ds, "--format", "nginx_timed", &copy], 0);
    count(dir, ds)
}

/// Ingests `file` with two threads while this thread truncates it to `to` bytes after `delay`.
fn ingest_while_truncating(dir: &Path, file: &str, delay: Duration, to: u64) -> Value {
    let child = Command::new(bin())
        .current_dir(dir)
        .args([
            "--config",
            "cfg.yaml",
            "ingest",
            "--json",
            "--threads",
            "2",
            "--dataset",
            "ds",
            "--format",
            "nginx_timed",
            file,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(file))
        .unwrap()
        .set_len(to)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "ingest must end normally ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The truncation scenario of the README: ingest while the file is truncated at a random moment
/// to a random length; then ingest it again. A source read whole before the cut keeps its rows
/// (and the rerun finds it truncated in place); a source cut under the reader commits nothing and
/// the rerun reads what is left. Either way the dataset ends with exactly the rows it should.
fn truncation_while_ingesting(compress: bool) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("cfg.yaml"), "ingest:\n  chunk_size: 256KiB\n").unwrap();
    generate(d, 300_000, "full.log");
    let original = std::fs::read(d.join("full.log")).unwrap();
    let content = if compress { gzip(&original) } else { original };
    let name = if compress {
        "access.log.gz"
    } else {
        "access.log"
    };
    let full_rows = 300_000;

    // How long a whole ingest takes here, so that the cuts fall while it reads.
    std::fs::write(d.join(name), &content).unwrap();
    let started = Instant::now();
    ingest_json(
        d,
        &["--dataset", "timing", "--format", "nginx_timed", name],
        0,
    );
    let whole = started.elapsed();

    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut outcomes = Vec::new();
    for case in 0..8 {
        let case_dir = d.join(format!("case{case}"));
        std::fs::create_dir(&case_dir).unwrap();
        std::fs::copy(d.join("cfg.yaml"), case_dir.join("cfg.yaml")).unwrap();
        std::fs::write(case_dir.join(name), &content).unwrap();
        let to = match case % 4 {
            0 => 0,
            1 => 1024 + next(60_000),
            _ => 1024 + next(content.len() as u64 - 1024),
        };
        let delay = whole.mul_f64((10 + next(80)) as f64 / 100.0);
        let first = ingest_while_truncating(&case_dir, name, delay, to);
        let status = first["sources"][0]["status"].as_str().unwrap().to_string();
        let committed = count(&case_dir, "ds");
        let expected_after_rerun = match status.as_str() {
            "new" => {
                assert_eq!(committed, full_rows, "read whole before the cut");
                full_rows
            }
            "changed" => {
                assert_eq!(committed, 0, "nothing of a changed source is committed");
                let warning = first["sources"][0]["warning"].as_str().unwrap();
                assert!(warning.contains("next run reads it again"), "{warning}");
                reference_rows(&case_dir, name, "reference")
            }
            other => panic!("unexpected status {other}: {first}"),
        };
        let rerun = ingest_json(
            &case_dir,
            &["--dataset", "ds", "--format", "nginx_timed", name],
            0,
        );
        let rerun_status = rerun["sources"][0]["status"].as_str().unwrap();
        assert_eq!(
            count(&case_dir, "ds"),
            expected_after_rerun,
            "case {case}: cut to {to} bytes after {delay:?}: first {status}, rerun {rerun_status}"
        );
        outcomes.push(status);
    }
    eprintln!("cuts while reading ({name}): {outcomes:?}");
    assert!(
        outcomes.iter().any(|s| s == "changed"),
        "at least one cut fell while the file was read: {outcomes:?}"
    );
}

#[test]
fn a_log_truncated_while_it_is_mapped_never_kills_the_process() {
    truncation_while_ingesting(false);
}

#[test]
fn a_compressed_log_truncated_while_it_is_streamed_never_kills_the_process() {
    truncation_while_ingesting(true);
}

#[test]
fn a_log_truncated_between_runs_resumes_at_its_new_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(d, 3_000, "gen.log");
    let text = std::fs::read(d.join("gen.log")).unwrap();
    let line_end = |at: usize| at + text[at..].iter().position(|b| *b == b'\n').unwrap() + 1;
    for keep in [200 << 10, 20 << 10] {
        let ds = format!("ds{keep}");
        std::fs::write(d.join("access.log"), &text).unwrap();
        ingest_json(d, &["--dataset", &ds, "access.log"], 0);
        // Truncated in place to a line boundary (above and below the fingerprinted head), then
        // written to again: only the new lines are read.
        let cut = line_end(keep);
        std::fs::OpenOptions::new()
            .write(true)
            .open(d.join("access.log"))
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        let truncated = ingest_json(d, &["--dataset", &ds, "access.log"], 0);
        assert_eq!(
            truncated["sources"][0]["status"], "truncated",
            "{truncated}"
        );
        assert_eq!(truncated["rows"], 0);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.join("access.log"))
            .unwrap();
        let ten_lines = (0..10).fold(0, |at, _| line_end(at));
        f.write_all(&text[..ten_lines]).unwrap();
        let grown = ingest_json(d, &["--dataset", &ds, "access.log"], 0);
        assert_eq!(grown["sources"][0]["status"], "grown", "{grown}");
        assert_eq!(grown["bad_lines"], 0);
        assert_eq!(count(d, &ds), 3_010);
        assert_eq!(grown["rows"], 10);
    }
}

#[test]
fn an_unreadable_input_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(d, 500, "good.log");
    std::fs::write(d.join("secret.log"), b"x\n").unwrap();
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join("secret.log"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = if as_root {
        // Root reads anything: run as nobody, from a copy of the binary nobody may execute.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::copy(bin(), d.join("logcrunch")).unwrap();
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "./logcrunch",
        ]);
        c
    } else {
        Command::new(bin())
    };
    let out = cmd
        .current_dir(d)
        .env("HOME", d)
        .args([
            "ingest",
            "--json",
            "--dataset",
            "ds",
            "good.log",
            "secret.log",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let status = |i: usize| {
        summary["sources"][i]["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!((status(0), status(1)), ("new".into(), "failed".into()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("secret.log") && stderr.contains("ermission denied"),
        "{stderr}"
    );
    assert_eq!(summary["rows"], 500);
    std::fs::set_permissions(d.join("secret.log"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(count(d, "ds"), 500, "the readable input was committed");
}

#[test]
fn a_sparse_10_gb_file_of_nuls_costs_neither_time_nor_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = std::fs::File::create(d.join("sparse.log")).unwrap();
    f.set_len(10 << 30).unwrap();
    let tail =
        b"10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"ua\" 0.001\n";
    let g = std::fs::File::create(d.join("holes.log")).unwrap();
    g.set_len(10 << 30).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&g, tail, 10 << 30).unwrap();
    let (out, peak, took) = run_measured(Command::new(bin()).current_dir(d).args([
        "ingest",
        "--json",
        "--dataset",
        "ds",
        "--format",
        "nginx_timed",
        "sparse.log",
        "holes.log",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rows"], 1, "{summary}");
    assert_eq!(summary["bad_lines"], 0);
    assert!(peak < 400 << 20, "peak RSS {} MiB", peak >> 20);
    // A hang guard, not a speed target: reading the 20 GB would take minutes.
    assert!(took < Duration::from_secs(60), "{took:?}");
}

/// A zstd frame of raw (stored) blocks, declaring a window of 2^(10 + `exponent`) bytes.
fn zstd_raw_frame(exponent: u8, content: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, exponent << 3];
    let blocks: Vec<&[u8]> = content.chunks(64 << 10).collect();
    for (i, block) in blocks.iter().enumerate() {
        let last = u32::from(i + 1 == blocks.len());
        let header = ((block.len() as u32) << 3) | last;
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.extend_from_slice(block);
    }
    frame
}

#[test]
fn compressed_streams_that_declare_huge_sizes_are_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(d, 2_000, "gen.log");
    let text = std::fs::read(d.join("gen.log")).unwrap();
    let half = text.len() / 2
        + text[text.len() / 2..]
            .iter()
            .position(|b| *b == b'\n')
            .unwrap()
        + 1;
    let (first, second) = text.split_at(half);
    let first_rows = first.iter().filter(|b| **b == b'\n').count() as u64;

    // zstd: a frame with a 1 MiB window, then one that declares 2 GiB.
    let mut zst = zstd_raw_frame(10, first);
    zst.extend(zstd_raw_frame(21, second));
    std::fs::write(d.join("window.log.zst"), zst).unwrap();
    // gzip: a member whose trailer claims 4 GiB, then one whose file name never ends.
    let mut lying = gzip(first);
    let n = lying.len();
    lying[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(d.join("size.log.gz"), &lying).unwrap();
    let mut named = gzip(first);
    named.extend_from_slice(&[0x1f, 0x8b, 8, 0x08, 0, 0, 0, 0, 0, 3]);
    named.extend(std::iter::repeat_n(b'n', 1 << 20));
    std::fs::write(d.join("name.log.gz"), named).unwrap();

    for (file, rows, says) in [
        ("window.log.zst", first_rows, "zstd -d --long=31"),
        ("size.log.gz", 0, "ends early"),
        ("name.log.gz", first_rows, "ends early"),
    ] {
        let ds = format!("ds-{file}");
        let (out, peak, _) = run_measured(Command::new(bin()).current_dir(d).args([
            "ingest",
            "--json",
            "--dataset",
            &ds,
            "--format",
            "nginx_timed",
            file,
        ]));
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        let warning = summary["sources"][0]["warning"].as_str().unwrap_or("");
        assert!(warning.contains(says), "{file}: {warning}");
        assert!(
            summary["rows"].as_u64().unwrap() >= rows,
            "{file}: rows before the damage are kept: {summary}"
        );
        assert!(peak < 400 << 20, "{file}: peak RSS {} MiB", peak >> 20);
    }
}

/// Runs `script` as root of a user and mount namespace of its own, where it may mount a tmpfs.
fn in_namespace(dir: &Path, script: &str) -> Option<Output> {
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot create a user and mount namespace here (unshare)");
        return None;
    }
    Some(
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
            .current_dir(dir)
            .output()
            .unwrap(),
    )
}

#[test]
fn a_full_file_system_commits_nothing_and_keeps_the_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(d, 2_000, "small.log");
    generate(d, 600_000, "big.log");
    std::fs::create_dir(d.join("mnt")).unwrap();
    let script = format!(
        "set -u
         mount -t tmpfs -o size=4m tmpfs mnt || exit 97
         {bin} ingest --json --dataset mnt/ds small.log > first.json 2> first.err
         echo $? > first.code
         cp mnt/ds/manifest.json manifest.before
         {bin} ingest --json --dataset mnt/ds big.log > second.json 2> second.err
         echo $? > second.code
         cp mnt/ds/manifest.json manifest.after
         {bin} query --dataset mnt/ds --format json 'SELECT count(*) AS n FROM logs' > count.json 2> count.err
         find mnt/ds > listing.txt",
        bin = bin().display()
    );
    let Some(out) = in_namespace(d, &script) else {
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_default();
    assert_eq!(read("first.code").trim(), "0", "{}", read("first.err"));
    assert_eq!(read("second.code").trim(), "1", "{}", read("second.err"));
    let err = read("second.err");
    assert!(
        err.contains("No space left on device")
            && err.contains("nothing of this run was committed"),
        "{err}"
    );
    assert_eq!(
        read("manifest.before"),
        read("manifest.after"),
        "the manifest is untouched"
    );
    let rows: Value = serde_json::from_str(&read("count.json")).unwrap_or(Value::Null);
    assert_eq!(rows[0]["n"], 2_000, "{}", read("count.err"));
    let listing = read("listing.txt");
    assert!(
        !listing.contains(".tmp"),
        "no temporary files are left behind: {listing}"
    );
}
