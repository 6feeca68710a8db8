//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use logcrunch::parse::value::format_rfc3339;
use logcrunch::parse::{BUILTIN_PATTERNS, BadReason, Patterns};
use logcrunch::schema::StrCol;
use logcrunch::security::{SignatureFile, Tagger};
use serde_json::Value;

/// The environment variable that points the real-data tests at the full `realdata` folder.
pub const REALDATA_VAR: &str = "LOGCRUNCH_REALDATA";

/// The full third-party real-data folder (`../shared/realdata` in CI), when `LOGCRUNCH_REALDATA`
/// points at it. Unset (a fresh clone), the tests over it are skipped with a note on stderr; set
/// to something that is not a directory, they fail, so CI (which sets it) can never skip them.
pub fn realdata() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os(REALDATA_VAR) else {
        eprintln!("skipped: set {REALDATA_VAR} to the realdata folder to run this test");
        return None;
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.is_dir(),
        "{REALDATA_VAR}={} is not a directory: point it at the realdata folder (../shared/realdata)",
        dir.display()
    );
    Some(dir)
}

/// The small real-data files copied into `testdata/realdata` (with their licences and sources),
/// which the default tests read.
pub fn vendored() -> PathBuf {
    repo().join("testdata/realdata")
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

/// Runs logcrunch with `args` in `dir`, asserts that it succeeds and returns its stdout.
pub fn stdout_of(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = logcrunch(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `logcrunch query --format json SQL` on `dataset` (relative to `dir`) and returns the rows.
pub fn query_json(dir: &Path, dataset: &str, sql: &str) -> Vec<serde_json::Value> {
    let out = stdout_of(
        dir,
        &["query", "--dataset", dataset, "--format", "json", sql],
    );
    serde_json::from_slice(&out).unwrap()
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

/// The built-in patterns.
pub fn builtin() -> Patterns {
    Patterns::parse(BUILTIN_PATTERNS, Path::new("builtin")).unwrap()
}

/// The fields of `line` parsed with `format` (compiled for an input starting with `head`), under
/// logcrunch's column names (`ts` as RFC 3339 with microseconds when not whole); `Err` when bad.
pub fn parse_with(
    patterns: &Patterns,
    format: &str,
    line: &str,
    head: &[u8],
) -> Result<Value, BadReason> {
    let p = patterns.parser_for(format, 1 << 16, head).unwrap();
    let names: Vec<String> = p.extras().to_vec();
    let mut scratch = p.scratch();
    let row = p
        .parse_line(&mut scratch, line.as_bytes(), 0)?
        .expect("not a blank line");
    let text = |b: &[u8]| Value::from(String::from_utf8_lossy(b).into_owned());
    let mut obj = serde_json::Map::new();
    let frac = row.ts_us.rem_euclid(1_000_000);
    let ts = format_rfc3339(row.ts_us);
    obj.insert(
        "ts".into(),
        Value::from(if frac == 0 {
            ts
        } else {
            ts.replace('Z', &format!(".{frac:06}Z"))
        }),
    );
    for c in StrCol::ALL {
        if let Some(v) = row.str(c) {
            obj.insert(c.name().into(), text(v));
        }
    }
    for (k, v) in [
        ("status", row.status.map(u64::from)),
        ("bytes", row.bytes),
        ("response_time_us", row.response_time_us),
        ("upstream_response_time_us", row.upstream_response_time_us),
    ] {
        if let Some(v) = v {
            obj.insert(k.into(), v.into());
        }
    }
    for (i, name) in names.iter().enumerate() {
        if let Some(v) = row.extra(i) {
            obj.insert(name.clone(), text(v));
        }
    }
    Ok(Value::Object(obj))
}

/// Runs `logcrunch report KIND --format json EXTRA...` on `ds` and returns the report.
pub fn report(dir: &Path, ds: &str, kind: &str, extra: &[&str]) -> serde_json::Value {
    let out = logcrunch(dir)
        .args(["report", kind, "--dataset", ds, "--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// nginx's escaping of a logged string: `"`, `\` and bytes outside 0x20-0x7e as `\xHH`.
pub fn nginx_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'"' | b'\\' | 0..=0x1f | 0x7f..=0xff => out.push_str(&format!("\\x{b:02X}")),
            _ => out.push(b as char),
        }
    }
    out
}

/// The tagger of the repository's `config/signatures.yaml` at `paranoia`.
pub fn tagger(paranoia: u8) -> Tagger {
    let file = SignatureFile::load(Some(&repo().join("config/signatures.yaml"))).unwrap();
    Tagger::new(&file, paranoia).unwrap()
}

/// The threat bits of the categories named `names`.
pub fn category_mask(t: &Tagger, names: &[&str]) -> u32 {
    t.categories()
        .iter()
        .filter(|c| names.contains(&c.name.as_str()))
        .map(|c| 1 << c.bit)
        .sum()
}

/// Starts `logcrunch --config cfg.yaml watch --interval INTERVAL --json` in `d`, its events going
/// to `watch.out` and its stderr to `watch.err`.
pub fn start_watch(d: &Path, interval: &str) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("logcrunch"))
        .current_dir(d)
        .args([
            "--config",
            "cfg.yaml",
            "watch",
            "--interval",
            interval,
            "--json",
        ])
        .stdout(std::fs::File::create(d.join("watch.out")).unwrap())
        .stderr(std::fs::File::create(d.join("watch.err")).unwrap())
        .spawn()
        .unwrap()
}
