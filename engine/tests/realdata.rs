//! Parsing real logs and third-party test vectors from `../shared/realdata`.

mod common;

use std::path::Path;

use logcrunch::parse::{BUILTIN_PATTERNS, BadReason, Patterns};
use serde_json::Value;

fn parse(format: &str, line: &str, patterns: &Patterns) -> Result<Value, BadReason> {
    common::parse_with(patterns, format, line, b"")
}

fn builtin() -> Patterns {
    common::builtin()
}

fn get<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// Method, target and protocol joined back into a request line.
fn request_of(got: &Value) -> Option<String> {
    let target = match (get(got, "path"), get(got, "query")) {
        (Some(p), Some(q)) => format!("{p}?{q}"),
        (Some(p), None) => p.to_string(),
        _ => return None,
    };
    Some(match (get(got, "method"), get(got, "protocol")) {
        (Some(m), Some(pr)) => format!("{m} {target} {pr}"),
        (Some(m), None) => format!("{m} {target}"),
        _ => target,
    })
}

/// A logged `-` is null in logcrunch; an empty string stays empty.
fn same_text(expected: &Value, got: Option<&str>) -> bool {
    match (expected.as_str(), got) {
        (Some("-"), None) => true,
        (Some(e), Some(g)) => e == g,
        _ => false,
    }
}

#[test]
fn vrl_vectors_for_common_combined_and_nginx() {
    let path = common::vendored().join("vrl/vrl_parse_log_vectors.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let pats = builtin();
    let iso_common = Patterns::parse(
        &BUILTIN_PATTERNS.replace("formats:\n", "formats:\n  common_iso:\n    regex: '^(?P<client_ip>\\S+) (?P<ident>\\S+) (?P<user>\\S+) \\[(?P<ts>[^\\]]*)\\] \"(?P<request>(?:[^\"\\\\]|\\\\.)*)\" (?P<status>\\S+) (?P<bytes>\\S+)$'\n    fields:\n      ts: {type: timestamp, format: iso8601}\n"),
        Path::new("iso"),
    )
    .unwrap();
    let (mut checked, mut rejected, mut divergent) = (0, 0, Vec::new());
    for line in text.lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        let function = rec["function"].as_str().unwrap();
        let fmt = rec["format"].as_str().unwrap();
        let format = match (function, fmt) {
            ("parse_apache_log" | "parse_common_log", "common") => "common",
            ("parse_apache_log", "combined") => "combined",
            ("parse_nginx_log", "combined" | "main") => "nginx",
            _ => continue,
        };
        let log = rec["line"].as_str().unwrap();
        let (format, patterns) = match rec
            .pointer("/options/timestamp_format")
            .and_then(Value::as_str)
        {
            Some("%+") => ("common_iso", &iso_common),
            Some(other) => panic!("unmapped VRL timestamp option {other}"),
            None => (format, &pats),
        };
        let parsed = parse(format, log, patterns);
        if rec["expect_error"].as_bool().unwrap() {
            assert!(parsed.is_err(), "{log:?} must be rejected, got {parsed:?}");
            rejected += 1;
            continue;
        }
        let expected = rec["expected"].as_object().unwrap();
        if !expected.contains_key("timestamp") {
            // VRL accepts lines without a timestamp as all-null records; logcrunch requires a
            // timestamp (rows are partitioned and analysed by time) and quarantines them.
            let reason = parsed.expect_err("a line without timestamp is quarantined");
            assert!(
                matches!(reason, BadReason::NoMatch | BadReason::NoTimestamp),
                "{log:?}: {reason:?}"
            );
            divergent.push(log.to_string());
            continue;
        }
        let got = parsed.unwrap_or_else(|r| panic!("{log:?} ({format}) rejected: {r:?}"));
        for (key, want) in expected {
            let ok = match key.as_str() {
                "host" | "client" | "remote_addr" => same_text(want, get(&got, "client_ip")),
                "identity" => same_text(want, get(&got, "ident")),
                "user" | "remote_user" => same_text(want, get(&got, "user")),
                "timestamp" => want.as_str() == get(&got, "ts"),
                "message" | "request" => match want.as_str() {
                    Some("") | Some("-") => request_of(&got).is_none(),
                    Some(w) => request_of(&got).as_deref() == Some(w),
                    None => false,
                },
                "method" => same_text(want, get(&got, "method")),
                "path" => {
                    let target = match (get(&got, "path"), get(&got, "query")) {
                        (Some(p), Some(q)) => Some(format!("{p}?{q}")),
                        (p, _) => p.map(str::to_string),
                    };
                    same_text(want, target.as_deref())
                }
                "protocol" => same_text(want, get(&got, "protocol")),
                "status" => want.as_u64() == got.get("status").and_then(Value::as_u64),
                "size" | "body_bytes_size" => {
                    want.as_u64() == got.get("bytes").and_then(Value::as_u64)
                }
                "referrer" | "referer" | "http_referer" => same_text(want, get(&got, "referer")),
                "agent" | "http_user_agent" => same_text(want, get(&got, "user_agent")),
                // nginx's `main` format logs "$http_x_forwarded_for" last; VRL's combined parser
                // names that same trailing quoted field `compression` ($gzip_ratio).
                "http_x_forwarded_for" | "compression" => {
                    same_text(want, get(&got, "x_forwarded_for"))
                }
                other => panic!("unmapped VRL field {other}"),
            };
            assert!(ok, "{log:?}: field {key}: expected {want}, got {got}");
        }
        checked += 1;
    }
    println!(
        "VRL vectors: {checked} parsed field by field, {rejected} rejected as expected, {} without timestamp quarantined (documented divergence)",
        divergent.len()
    );
    assert!(checked >= 20, "{checked}");
    assert!(rejected >= 4);
    assert!(divergent.len() <= 4, "{divergent:?}");
}

#[test]
fn filebeat_access_vectors() {
    let path = common::vendored().join("beats_filebeat/beats_filebeat_vectors.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let pats = builtin();
    let mut checked = 0;
    for line in text.lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        let format = match rec["format"].as_str().unwrap() {
            "filebeat:apache_access" => "combined",
            "filebeat:nginx" => "nginx",
            _ => continue,
        };
        let log = rec["line"].as_str().unwrap();
        let got = parse(format, log, &pats)
            .unwrap_or_else(|r| panic!("{log:?} ({format}) rejected: {r:?}"));
        let exp = &rec["expected"];
        let ts = exp["@timestamp"].as_str().unwrap().replace(".000Z", "Z");
        assert_eq!(get(&got, "ts"), Some(ts.as_str()), "{log}");
        let xff_prefixed = log.starts_with('"');
        if xff_prefixed {
            // A leading quoted X-Forwarded-For: logcrunch keeps the connected peer as client_ip
            // and the forwarded chain in x_forwarded_for; Filebeat picks the chain's first public
            // address as source.ip. Both are present, in logcrunch's columns.
            let list: Vec<&str> = exp["nginx.access.remote_ip_list"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let (client, chain) = list.split_last().unwrap();
            assert_eq!(get(&got, "client_ip"), Some(*client), "{log}");
            assert_eq!(
                get(&got, "x_forwarded_for"),
                Some(chain.join(", ").as_str()),
                "{log}"
            );
            assert!(chain.contains(&exp["source.ip"].as_str().unwrap()));
        } else {
            assert_eq!(
                get(&got, "client_ip"),
                exp["source.address"].as_str(),
                "{log}"
            );
            if let Some(list) = exp["nginx.access.remote_ip_list"]
                .as_array()
                .filter(|l| l.len() > 1)
            {
                // x_forwarded_for keeps the list as logged (", " or " " between entries).
                let want: Vec<&str> = list.iter().map(|v| v.as_str().unwrap()).collect();
                let logged = get(&got, "x_forwarded_for").expect("the list is kept");
                let entries: Vec<&str> =
                    logged.split([',', ' ']).filter(|e| !e.is_empty()).collect();
                assert_eq!(entries, want, "{log}");
            }
        }
        if let Some(m) = exp["http.request.method"].as_str() {
            assert_eq!(
                get(&got, "method").map(str::to_ascii_lowercase),
                Some(m.to_ascii_lowercase()),
                "{log}"
            );
        } else {
            assert_eq!(get(&got, "method"), None, "{log}");
        }
        if let Some(u) = exp["url.original"].as_str() {
            assert_eq!(
                request_of(&got).map(|r| r.split(' ').nth(1).unwrap_or(&r).to_string()),
                Some(u.to_string()),
                "{log}"
            );
        }
        if let Some(v) = exp["http.version"].as_str() {
            assert_eq!(
                get(&got, "protocol"),
                Some(format!("HTTP/{v}").as_str()),
                "{log}"
            );
        }
        assert_eq!(
            got.get("status").and_then(Value::as_u64),
            exp["http.response.status_code"].as_u64(),
            "{log}"
        );
        assert_eq!(
            got.get("bytes").and_then(Value::as_u64),
            exp["http.response.body.bytes"].as_u64(),
            "{log}"
        );
        for (key, col) in [
            ("http.request.referrer", "referer"),
            ("user.name", "user"),
            ("user_agent.original", "user_agent"),
        ] {
            match exp.get(key) {
                Some(want) => assert!(
                    same_text(want, get(&got, col)),
                    "{log}: {key} {want} vs {got}"
                ),
                None => assert_eq!(get(&got, col), None, "{log}: {col}"),
            }
        }
        checked += 1;
    }
    println!("Filebeat access vectors: {checked} parsed field by field");
    assert_eq!(checked, 13);
}

#[test]
fn lnav_access_logs_and_the_deliberately_bad_line() {
    let pats = builtin();
    let dir = common::vendored().join("lnav");
    for name in ["logfile_access_log.0", "logfile_access_log.1"] {
        for line in std::fs::read_to_string(dir.join(name)).unwrap().lines() {
            parse("combined", line, &pats).unwrap_or_else(|r| panic!("{name}: {line:?}: {r:?}"));
        }
    }
    let bad: Vec<_> = std::fs::read_to_string(dir.join("logfile_bad_access_log.0"))
        .unwrap()
        .lines()
        .map(|l| parse("combined", l, &pats).is_ok())
        .collect();
    assert_eq!(
        bad,
        [true, false, true],
        "the line without ident and user is quarantined"
    );
    let empty_request = parse(
        "combined",
        std::fs::read_to_string(dir.join("logfile_access_log.1"))
            .unwrap()
            .trim_end(),
        &pats,
    )
    .unwrap();
    assert_eq!(get(&empty_request, "path"), None);
    assert_eq!(empty_request["status"], 400);
}

/// Line 8,899 of Elastic's sample ends inside its user agent (the quote never closes): it is read,
/// its unparsed tail kept in `trailing_text`, instead of being quarantined.
#[test]
fn elastic_apache_logs_ingest_into_10000_rows_the_cut_line_keeping_its_tail() {
    let Some(realdata) = common::realdata() else {
        return;
    };
    let src = realdata.join("elastic_examples/apache_logs");
    let work = tempfile::tempdir().unwrap();
    let summary = common::ingest_json(
        work.path(),
        &[
            "--dataset",
            "ds",
            "--format",
            "combined",
            src.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(summary["rows"], 10_000);
    assert_eq!(summary["bad_lines"], 0);
    assert_eq!(summary["lines"], 10_000);
    let raw = std::fs::read(&src).unwrap();
    let offset_8899: usize = raw
        .split_inclusive(|b| *b == b'\n')
        .take(8898)
        .map(<[u8]>::len)
        .sum();
    let cut = common::query_json(
        work.path(),
        "ds",
        "SELECT \"offset\", status, trailing_text FROM logs WHERE trailing_text IS NOT NULL",
    );
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0]["offset"], offset_8899);
    assert_eq!(cut[0]["status"], 200);
    assert!(
        cut[0]["trailing_text"]
            .as_str()
            .unwrap()
            .starts_with(r#""-" "Mozilla/5.0 (compatible; Googlebot/2.1"#)
    );
    let rows = common::query_json(
        work.path(),
        "ds",
        "SELECT count(*) AS n, count(DISTINCT client_ip) AS ips, sum(CASE WHEN status = 404 THEN 1 ELSE 0 END) AS not_found, \
         min(ts) AS first, max(ts) AS last FROM logs",
    );
    assert_eq!(rows[0]["n"], 10_000);
    assert_eq!(rows[0]["first"], "2015-05-17T10:05:00");
    assert_eq!(rows[0]["last"], "2015-05-20T21:05:59");
    assert!(rows[0]["not_found"].as_u64().unwrap() > 100);
}

/// Every access log of `wild/` (real files from many servers) is read at 90% of its non-blank lines
/// or more with `--format auto`, every error log whole: the figure the README's format table gives.
#[test]
fn wild_files_are_read_without_configuration() {
    let Some(realdata) = common::realdata() else {
        return;
    };
    let wild = realdata.join("wild");
    let manifest = std::fs::read_to_string(wild.join("manifest.jsonl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut below = Vec::new();
    for (i, line) in manifest.lines().enumerate() {
        let rec: Value = serde_json::from_str(line).unwrap();
        let (file, kind) = (rec["file"].as_str().unwrap(), rec["kind"].as_str().unwrap());
        let path = wild.join("files").join(file);
        let text = std::fs::read(&path).unwrap();
        let lines = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty())
            .count();
        let out = common::logcrunch(dir.path())
            .args(["ingest", "--json", "--dataset", &format!("ds{i}")])
            .arg(&path)
            .output()
            .unwrap();
        let (format, bad) = match serde_json::from_slice::<Value>(&out.stdout) {
            Ok(summary) => {
                let src = &summary["sources"][0];
                (
                    src["format"].as_str().unwrap_or("?").to_string(),
                    src["bad_lines"].as_u64().unwrap() as usize,
                )
            }
            Err(_) => ("(refused)".to_string(), lines),
        };
        let rate = 1.0 - bad as f64 / lines.max(1) as f64;
        eprintln!("{file:58} {kind:6} {format:24} {:6.1}%", rate * 100.0);
        let need = if kind == "error" { 1.0 } else { 0.9 };
        if rate < need {
            below.push(format!("{file} ({kind}, {format}): {:.1}%", rate * 100.0));
        }
    }
    assert!(below.is_empty(), "read below target: {below:#?}");
}

/// The real Tomcat logs of `wild/` are read by Tomcat's `common` pattern compiled from a pasted
/// `<Valve>` element exactly as by the built-in `common` format.
#[test]
fn tomcat_valve_pattern_reads_the_wild_tomcat_logs() {
    let Some(realdata) = common::realdata() else {
        return;
    };
    let mine = Patterns::parse(
        "formats:\n  valve:\n    tomcat: '<Valve className=\"org.apache.catalina.valves.AccessLogValve\" pattern=\"common\" />'\n",
        Path::new("valve.yaml"),
    )
    .unwrap();
    let pats = builtin();
    let wild = realdata.join("wild");
    let manifest = std::fs::read_to_string(wild.join("manifest.jsonl")).unwrap();
    let mut files = 0;
    for line in manifest.lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        if !rec["notes"].as_str().unwrap_or_default().contains("Tomcat") {
            continue;
        }
        files += 1;
        let path = wild.join("files").join(rec["file"].as_str().unwrap());
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        let (mut read, mut total) = (0, 0);
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            total += 1;
            let got = parse("valve", l, &mine).ok();
            let want = parse("common", l, &pats).ok();
            assert_eq!(got, want, "{}: {l}", path.display());
            read += usize::from(got.is_some());
        }
        assert!(read * 100 >= total * 99, "{read} of {total} lines");
    }
    assert!(files > 0, "wild/ has no Tomcat log");
}

/// Format inference on the real access logs of `wild/`: without looking at any format, each gets
/// a pattern (a JSON mapping for JSON lines) that reads 95% of its sampled lines or more and finds
/// its time and its status.
#[test]
fn formats_are_inferred_for_the_wild_access_logs() {
    let Some(realdata) = common::realdata() else {
        return;
    };
    let wild = realdata.join("wild");
    let manifest = std::fs::read_to_string(wild.join("manifest.jsonl")).unwrap();
    let mut failures = Vec::new();
    let mut tried = 0;
    for line in manifest.lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        if rec["kind"] != "access" {
            continue;
        }
        let file = rec["file"].as_str().unwrap();
        let raw = std::fs::read(wild.join("files").join(file)).unwrap();
        let lines: Vec<&[u8]> = raw
            .split(|b| *b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty())
            .take(1000)
            .collect();
        tried += 1;
        let Some(s) = logcrunch::parse::infer::suggest("x", &lines, 1 << 16) else {
            failures.push(format!("{file}: nothing inferred"));
            continue;
        };
        let named = |c: &str| s.columns.iter().any(|col| col.column == c);
        eprintln!("{file:58} {:5.1}%", s.rate() * 100.0);
        if s.rate() < 0.95 || !(named("ts") || s.time_from_header) || !named("status") {
            failures.push(format!("{file}: {:.1}% {:?}", s.rate() * 100.0, s.columns));
        }
    }
    assert!(tried >= 19, "{tried} access logs");
    assert!(failures.is_empty(), "{failures:#?}");
}
