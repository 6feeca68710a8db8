//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// `../shared/realdata` beside the project root; the tests that use it fail loudly without it.
pub fn realdata() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/realdata");
    assert!(
        p.is_dir(),
        "{} is missing: the real-data tests need ../shared/realdata beside the project root",
        p.display()
    );
    p
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `logcrunch` binary, run in `dir` with the repository's config files out of reach (so the
/// built-in copies are used, exactly as a user outside the repository gets them).
pub fn logcrunch(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("logcrunch").expect("the logcrunch binary is built");
    c.current_dir(dir).env_remove("LOGCRUNCH_LOG");
    c
}

/// Runs `logcrunch query --format json SQL` on `dataset` (relative to `dir`) and returns the rows.
pub fn query_json(dir: &Path, dataset: &str, sql: &str) -> Vec<serde_json::Value> {
    let out = logcrunch(dir)
        .args(["query", "--dataset", dataset, "--format", "json", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `logcrunch ingest --json ARGS` in `dir`, asserts the exit code and returns the summary.
pub fn ingest_json(dir: &Path, args: &[&str], code: i32) -> serde_json::Value {
    let out = logcrunch(dir)
        .arg("ingest")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "ingest {args:?}: stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "summary is JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
