//! Threat tagging scored on real corpora: OWASP CRS regression payloads (recall per category and
//! paranoia level), real benign traffic (false positives), CrowdSec hub scenario tests (per-IP
//! verdicts of the behavioural rules).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{builtin, category_mask, ingest_json, query_json, report, tagger};
use logcrunch::security::{TagScratch, Tagger};
use serde_json::Value;

/// The bits a CRS category counts as detected by.
fn bits_for(t: &Tagger, category: &str) -> Option<u32> {
    let names: &[&str] = match category {
        "sqli" => &["sqli"],
        "xss" => &["xss"],
        "lfi-path-traversal" => &["traversal", "sensitive_file"],
        "rce-command-injection" => &["cmdi"],
        "rfi" => &["rfi"],
        "php-injection" => &["php"],
        "java-attack" => &["java"],
        "scanner-detection" => &["scanner"],
        _ => return None,
    };
    Some(category_mask(t, names))
}

const VISIBLE: [&str; 5] = [
    "path",
    "query",
    "header:User-Agent",
    "header:Referer",
    "method",
];

#[test]
fn crs_recall_per_category_and_paranoia_level() {
    let Some(realdata) = common::realdata() else {
        return;
    };
    let text =
        std::fs::read_to_string(realdata.join("crs/crs_access_log_visible_subset.jsonl")).unwrap();
    let recs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pats = builtin();
    let parser = pats.parser("nginx", 1 << 16).unwrap();
    let mut table = Vec::new();
    let mut missed: BTreeMap<(String, u8), Vec<String>> = BTreeMap::new();
    for pl in [1u8, 2] {
        let t = tagger(pl);
        let mut by_cat: BTreeMap<String, [u32; 4]> = BTreeMap::new();
        for r in &recs {
            let cat = r["category"].as_str().unwrap();
            let Some(want) = bits_for(&t, cat) else {
                continue;
            };
            if !r["expect_detect"].as_bool().unwrap()
                || r["paranoia_level"].as_u64() != Some(pl as u64)
            {
                continue;
            }
            let method = r["method"].as_str().unwrap_or("GET");
            let uri = r["uri"].as_str().unwrap_or("/");
            let ua = r["user_agent"].as_str().unwrap_or("-");
            let referer = r["referer"].as_str().unwrap_or("-");
            let line = format!(
                "203.0.113.7 - - [01/Jan/2024:00:00:00 +0000] \"{} {} HTTP/1.1\" 200 0 \"{}\" \"{}\"",
                common::nginx_escape(method),
                common::nginx_escape(uri),
                common::nginx_escape(referer),
                common::nginx_escape(ua)
            );
            let mut scratch = parser.scratch();
            let row = parser
                .parse_line(&mut scratch, line.as_bytes(), 0)
                .unwrap()
                .unwrap();
            let mut s = TagScratch::default();
            use logcrunch::schema::StrCol;
            let bits = t.tag(
                row.str(StrCol::Path),
                row.str(StrCol::Query),
                row.str(StrCol::Referer),
                row.str(StrCol::UserAgent),
                &mut s,
            );
            // The payload is in the log line only when every place it was sent to is logged.
            let visible = r["payload_locations"].as_array().unwrap().iter().all(|l| {
                VISIBLE
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case(l.as_str().unwrap()))
            });
            let e = by_cat.entry(cat.to_string()).or_default();
            e[0] += 1;
            e[1] += u32::from(bits & want != 0);
            if visible {
                e[2] += 1;
                e[3] += u32::from(bits & want != 0);
                if bits & want == 0 {
                    missed
                        .entry((cat.to_string(), pl))
                        .or_default()
                        .push(format!("{method} {uri} | {ua} | {referer}"));
                }
            }
        }
        for (cat, [n, hit, vn, vhit]) in by_cat {
            table.push((cat, pl, n, hit, vn, vhit));
        }
    }
    println!("CRS recall (detected with the category's own bit):");
    println!(
        "  {:<24} PL  all            payload in the logged fields",
        "category"
    );
    for (cat, pl, n, hit, vn, vhit) in &table {
        println!(
            "  {cat:<24} {pl}   {hit:>3}/{n:<3} {:5.1}%   {vhit:>3}/{vn:<3} {:5.1}%",
            100.0 * *hit as f64 / (*n).max(1) as f64,
            100.0 * *vhit as f64 / (*vn).max(1) as f64
        );
    }
    for ((cat, pl), m) in &missed {
        println!("  missed {cat} PL{pl}: {}", m.len());
        for x in m.iter().take(40) {
            println!("    {x:.160}");
        }
    }
    let recall = |cat: &str, pl: u8| {
        let (_, _, _, _, vn, vhit) = table.iter().find(|r| r.0 == cat && r.1 == pl).unwrap();
        *vhit as f64 / *vn as f64
    };
    for cat in ["sqli", "xss", "lfi-path-traversal", "rce-command-injection"] {
        assert!(
            recall(cat, 1) >= 0.95,
            "{cat} PL1 recall {:.3}",
            recall(cat, 1)
        );
    }
    for cat in ["sqli", "lfi-path-traversal", "rce-command-injection"] {
        assert!(
            recall(cat, 2) >= 0.85,
            "{cat} PL2 recall {:.3}",
            recall(cat, 2)
        );
    }
}

#[test]
fn false_positives_on_real_traffic_are_few_and_listed() {
    let Some(realdata) = common::realdata() else {
        return;
    };
    let src = realdata.join("elastic_examples/apache_logs");
    let text = std::fs::read_to_string(&src)
        .unwrap_or_else(|_| String::from_utf8_lossy(&std::fs::read(&src).unwrap()).into_owned());
    let pats = builtin();
    let parser = pats.parser("combined", 1 << 16).unwrap();
    let (t, t2) = (tagger(1), tagger(2));
    let mut flagged = Vec::new();
    let (mut total, mut flagged2) = (0, 0);
    for (i, line) in text.lines().enumerate() {
        let mut scratch = parser.scratch();
        let Ok(Some(row)) = parser.parse_line(&mut scratch, line.as_bytes(), 0) else {
            continue;
        };
        total += 1;
        use logcrunch::schema::StrCol;
        let mut s = TagScratch::default();
        let fields = (
            row.str(StrCol::Path),
            row.str(StrCol::Query),
            row.str(StrCol::Referer),
            row.str(StrCol::UserAgent),
        );
        let bits = t.tag(fields.0, fields.1, fields.2, fields.3, &mut s);
        flagged2 += u32::from(t2.tag(fields.0, fields.1, fields.2, fields.3, &mut s) != 0);
        if bits != 0 {
            let req = line.split('"').nth(1).unwrap_or_default();
            let ua = line.rsplit('"').nth(1).unwrap_or_default();
            flagged.push(format!(
                "{} {} {req} | {ua}",
                i + 1,
                t.names(bits).join(",")
            ));
        }
    }
    let listed =
        std::fs::read_to_string(common::repo().join("testdata/security/apache_logs_flagged.txt"))
            .unwrap();
    let listed: Vec<&str> = listed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    println!(
        "apache_logs: {} of {total} lines flagged ({:.2}%)",
        flagged.len(),
        100.0 * flagged.len() as f64 / total as f64
    );
    for f in &flagged {
        println!("  {f}");
    }
    println!(
        "apache_logs at paranoia 2: {flagged2} lines flagged ({:.2}%)",
        100.0 * flagged2 as f64 / total as f64
    );
    assert!(
        flagged2 as f64 <= 0.01 * total as f64,
        "{flagged2} flagged at paranoia 2"
    );
    assert!(
        flagged.len() as f64 <= 0.005 * total as f64,
        "{} flagged",
        flagged.len()
    );
    assert_eq!(
        flagged, listed,
        "every flagged line is reviewed in testdata/security/apache_logs_flagged.txt"
    );
}

/// Every line of the access logs of `wild/` (real files from many servers, some of them attacked)
/// that paranoia 1 tags is listed in `testdata/security/wild_flagged.txt` with a verdict: `A` (an
/// attack or a probe) or `F` (a false positive). The test fails when the flagged lines change, so
/// each is reviewed there, and when the false positives of a category pass 0.5% of the lines.
#[test]
fn flagged_lines_of_the_wild_access_logs_are_reviewed() {
    let Some(realdata) = common::realdata() else {
        return;
    };
    let wild = realdata.join("wild");
    let manifest = std::fs::read_to_string(wild.join("manifest.jsonl")).unwrap();
    let files: Vec<std::path::PathBuf> = manifest
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "access")
        .map(|r| wild.join("files").join(r["file"].as_str().unwrap()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    common::logcrunch(dir.path())
        .args(["ingest", "--dataset", "ds"])
        .args(&files)
        .output()
        .unwrap();
    let total = query_json(dir.path(), "ds", "SELECT count(*) AS n FROM logs")[0]["n"]
        .as_u64()
        .unwrap();
    let rows = query_json(
        dir.path(),
        "ds",
        "SELECT regexp_extract(source, '[^/]+$') AS file, \"offset\" AS pos,
                string_agg(c.name, ',' ORDER BY c.bit) AS cats,
                concat_ws(' ', any_value(method), any_value(path) || coalesce('?' || any_value(query), ''),
                          '|', any_value(user_agent)) AS request
         FROM logs, threat_categories AS c WHERE threats & c.mask <> 0
         GROUP BY file, pos ORDER BY file, pos",
    );
    let flagged: Vec<String> = rows
        .iter()
        .map(|r| {
            let line = format!(
                "{}:{} {} {}",
                r["file"].as_str().unwrap(),
                r["pos"],
                r["cats"].as_str().unwrap(),
                r["request"].as_str().unwrap_or_default()
            );
            line.chars().take(200).collect()
        })
        .collect();
    let listed =
        std::fs::read_to_string(common::repo().join("testdata/security/wild_flagged.txt")).unwrap();
    let listed: Vec<(&str, &str)> = listed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split_once(' ').unwrap())
        .collect();
    let mut false_by_category: BTreeMap<&str, u64> = BTreeMap::new();
    for (verdict, line) in &listed {
        assert!(matches!(*verdict, "A" | "F"), "verdict {verdict}: {line}");
        if *verdict == "F" {
            for c in line.split(' ').nth(1).unwrap().split(',') {
                *false_by_category.entry(c).or_default() += 1;
            }
        }
    }
    println!(
        "wild access logs: {} of {total} lines flagged; false positives by category:",
        flagged.len()
    );
    for (c, n) in &false_by_category {
        println!(
            "  {c:<16} {n:>5} ({:.3}%)",
            100.0 * *n as f64 / total as f64
        );
        assert!(
            *n as f64 <= 0.005 * total as f64,
            "{c}: {n} false positives"
        );
    }
    let reviewed: Vec<&str> = listed.iter().map(|(_, l)| *l).collect();
    if flagged != reviewed {
        for f in &flagged {
            println!("  {f}");
        }
    }
    assert_eq!(
        flagged, reviewed,
        "every flagged line is reviewed in testdata/security/wild_flagged.txt"
    );
}

/// CrowdSec scenarios that have a logcrunch counterpart, and that counterpart.
fn counterpart(scenario: &str) -> Option<&'static [&'static str]> {
    Some(match scenario {
        "http-probing" => &["probing"],
        "http-bf-wordpress_bf" | "http-generic-bf" | "http-generic-401-bf" => &["brute_force"],
        "http-sensitive-files" => &["sensitive_files"],
        "http-bad-user-agent" => &["bad_user_agent"],
        "http-sqli-probbing-detection" | "http-xss-probbing" | "http-path-traversal-probing" => {
            &["attacks"]
        }
        "http-dos-swithcing-ua" => &["user_agent_switching"],
        "http-crawl-non_statics" => &["crawling"],
        "http-w00tw00t" => &["bad_user_agent"],
        "http-backdoors-attempts" => &["attacks"],
        s if s.contains("cve")
            || s.starts_with("CVE")
            || s.starts_with("spring4shell")
            || s.starts_with("vmware")
            || s.starts_with("fortinet") =>
        {
            &["attacks", "sensitive_files"]
        }
        _ => return None,
    })
}

/// A syslog envelope (`Sep 15 16:13:46 host prog[pid]: `), which CrowdSec's syslog parser strips.
fn strip_syslog(line: &str) -> &str {
    let b = line.as_bytes();
    if b.len() > 16 && b[3] == b' ' && b[6] == b' ' && b[9] == b':' && b[12] == b':' {
        let rest = &line[16..];
        if let Some(colon) = rest.find(": ") {
            return &rest[colon + 2..];
        }
    }
    line
}

#[test]
fn crowdsec_scenarios_agree_per_ip() {
    let Some(realdata) = common::realdata() else {
        return;
    };
    let hub = realdata.join("crowdsec_hub");
    let text = std::fs::read_to_string(hub.join("crowdsec_scenario_expectations.jsonl")).unwrap();
    let (mut agree, mut total) = (0, 0);
    let mut unsupported = Vec::new();
    let mut disagreements = Vec::new();
    for line in text.lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        let test = rec["test"].as_str().unwrap();
        let alerts = rec["expected_alerts"].as_array().unwrap();
        let scenarios: BTreeSet<String> = alerts
            .iter()
            .map(|a| {
                a["scenario"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let rules: BTreeSet<&str> = scenarios
            .iter()
            .filter_map(|s| counterpart(s))
            .flatten()
            .copied()
            .collect();
        let whitelist = alerts.is_empty();
        if !whitelist && (rules.is_empty() || scenarios.iter().any(|s| counterpart(s).is_none())) {
            unsupported.push(format!(
                "{test} ({})",
                scenarios.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let log: String = std::fs::read_to_string(hub.join(rec["log_file"].as_str().unwrap()))
            .unwrap()
            .lines()
            .map(|l| format!("{}\n", strip_syslog(l)))
            .collect();
        std::fs::write(dir.path().join("in.log"), log).unwrap();
        let out = common::logcrunch(dir.path())
            .args(["ingest", "--json", "--dataset", "ds", "in.log"])
            .output()
            .unwrap();
        if !out.status.success() {
            unsupported.push(format!("{test} (log format not supported)"));
            continue;
        }
        let rep = report(dir.path(), "ds", "security", &[]);
        let got: BTreeSet<String> = rep["security"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| whitelist || rules.contains(f["rule"].as_str().unwrap()))
            .map(|f| f["client_ip"].as_str().unwrap().to_string())
            .collect();
        let want: BTreeSet<String> = alerts
            .iter()
            .flat_map(|a| {
                a["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
            })
            .collect();
        total += 1;
        if got == want {
            agree += 1;
        } else {
            disagreements.push(format!("{test}: expected {want:?}, logcrunch {got:?}"));
        }
    }
    println!("CrowdSec scenario tests: {agree}/{total} agree on the flagged IPs");
    for d in &disagreements {
        println!("  disagree: {d}");
    }
    println!("  unsupported: {unsupported:#?}");
    assert!(agree as f64 >= 0.9 * total as f64, "{agree}/{total}");
}

#[test]
fn threats_are_stored_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut log = String::new();
    for i in 0..20 {
        log.push_str(&format!("10.0.0.1 - - [10/Oct/2023:13:55:{i:02} +0000] \"GET /page{i} HTTP/1.1\" 200 10 \"-\" \"Mozilla/5.0\"\n"));
    }
    log.push_str("198.51.100.9 - - [10/Oct/2023:13:56:00 +0000] \"GET /item?id=1%27%20or%20%271%27=%271 HTTP/1.1\" 200 10 \"-\" \"sqlmap/1.7\"\n");
    log.push_str("198.51.100.9 - - [10/Oct/2023:13:56:01 +0000] \"GET /.env HTTP/1.1\" 404 10 \"-\" \"sqlmap/1.7\"\n");
    std::fs::write(d.join("a.log"), log).unwrap();
    ingest_json(d, &["--dataset", "ds", "a.log"], 0);
    let rows = query_json(
        d,
        "ds",
        "SELECT c.name, count(*) AS n FROM logs, threat_categories c WHERE threats & c.mask <> 0 GROUP BY 1 ORDER BY 1",
    );
    let got: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("scanner".into(), 2),
            ("sensitive_file".into(), 1),
            ("sqli".into(), 1)
        ]
    );
    let rep = report(d, "ds", "security", &[]);
    let s = &rep["security"];
    assert_eq!(s["overall"]["tagged_requests"], 2);
    assert_eq!(s["top_offenders"][0]["client_ip"], "198.51.100.9");
    assert!(
        s["top_offenders"][0]["samples"][0]
            .as_str()
            .unwrap()
            .starts_with("a.log:")
    );
    let rules: BTreeSet<&str> = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains("attacks") && rules.contains("bad_user_agent"),
        "{rules:?}"
    );
    assert!(
        s["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["client_ip"] == "198.51.100.9")
    );
}

/// `run` judges the days it added rows to and stores the findings in the catalog for alerting, with
/// the run that found them; a later run on another day leaves them as they were and adds its own.
#[test]
fn run_stores_findings_with_the_run_that_found_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("in")).unwrap();
    std::fs::copy(
        common::repo().join("testdata/security/scenario.log"),
        d.join("in/a.log"),
    )
    .unwrap();
    std::fs::write(
        d.join("cfg.yaml"),
        "logs:\n  source_dir: in\nstorage:\n  dataset: ds\nreports:\n  dir: reports\nlogging:\n  file: null\n",
    )
    .unwrap();
    let run = || -> Value {
        let out = common::stdout_of(d, &["--config", "cfg.yaml", "run", "--json"]);
        serde_json::from_slice(&out).unwrap()
    };
    let stored = || -> Vec<(String, String, String)> {
        query_json(
            d,
            "ds",
            "SELECT rule, client_ip, detected_run FROM findings ORDER BY ALL",
        )
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().into(),
                r["client_ip"].as_str().unwrap().into(),
                r["detected_run"].as_str().unwrap().into(),
            )
        })
        .collect()
    };
    let first = run();
    let run1 = first["ingest"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(first["highlights"]["new_findings"], 7);
    let before = stored();
    let expected: Vec<(String, String)> =
        std::fs::read_to_string(common::repo().join("testdata/security/scenario.expected"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f[0].to_string(), f[1].to_string())
            })
            .collect();
    assert_eq!(
        before
            .iter()
            .map(|(r, ip, _)| (r.clone(), ip.clone()))
            .collect::<Vec<_>>(),
        expected
    );
    assert!(before.iter().all(|(_, _, run)| *run == run1));
    std::fs::write(
        d.join("in/b.log"),
        "203.0.113.50 - - [11/Oct/2024:08:00:00 +0000] \"GET /cgi-bin/.%2e/.%2e/etc/passwd HTTP/1.1\" 400 10 \"-\" \"curl/8\"\n",
    )
    .unwrap();
    let second = run();
    let run2 = second["ingest"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(second["highlights"]["new_findings"], 1);
    let after = stored();
    assert!(before.iter().all(|r| after.contains(r)), "{after:?}");
    assert!(
        after.contains(&("attacks".into(), "203.0.113.50".into(), run2)),
        "{after:?}"
    );
}

#[test]
fn scenario_findings_and_report_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let scenario = common::repo().join("testdata/security");
    std::fs::copy(scenario.join("scenario.log"), d.join("scenario.log")).unwrap();
    ingest_json(d, &["--dataset", "ds", "scenario.log"], 0);
    let mut rep = report(d, "ds", "security", &[]);
    let got: Vec<String> = rep["security"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {} {}",
                f["rule"].as_str().unwrap(),
                f["client_ip"].as_str().unwrap(),
                f["events"]
            )
        })
        .collect();
    let want = std::fs::read_to_string(scenario.join("scenario.expected")).unwrap();
    let want: Vec<&str> = want
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert_eq!(got, want);
    rep.as_object_mut().unwrap().remove("generated_at");
    insta::assert_json_snapshot!("report_security_json", rep);
    let table = common::logcrunch(d)
        .args(["report", "security", "--dataset", "ds", "--top", "5"])
        .output()
        .unwrap();
    assert!(table.status.success());
    insta::assert_snapshot!(
        "report_security_table",
        String::from_utf8(table.stdout).unwrap()
    );
}
