//! Reports checked against an independent computation over the same rows, snapshots, filters.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use common::{ingest_json, logcrunch, query_json, report, stdout_of};
use predicates::str::contains;
use serde_json::Value;

/// One request as read back from the dataset.
#[derive(Debug, Clone)]
struct Req {
    ts: String,
    route: String,
    status: u64,
    rt: Option<f64>,
    bytes: u64,
    client: String,
    ua: Option<String>,
}

fn rows(dir: &Path, ds: &str) -> Vec<Req> {
    query_json(
        dir,
        ds,
        "SELECT ts, route, status, response_time_us, bytes, client_ip, user_agent FROM logs",
    )
    .into_iter()
    .map(|r| Req {
        ts: r["ts"].as_str().unwrap().to_string(),
        route: r["route"].as_str().unwrap_or_default().to_string(),
        status: r["status"].as_u64().unwrap(),
        rt: r["response_time_us"].as_f64(),
        bytes: r["bytes"].as_u64().unwrap_or(0),
        client: r["client_ip"].as_str().unwrap().to_string(),
        ua: r["user_agent"].as_str().map(str::to_string),
    })
    .collect()
}

/// Linear interpolation between closest ranks, as DuckDB's quantile_cont.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn close(a: &Value, b: f64, what: &str) {
    let a = a.as_f64().unwrap_or_else(|| panic!("{what}: {a}"));
    assert!(
        (a - b).abs() <= 0.0015 + b.abs() * 1e-9,
        "{what}: report {a}, independent {b}"
    );
}

fn check_performance(rep: &Value, reqs: &[Req]) {
    let p = &rep["performance"];
    let mut all: Vec<f64> = reqs.iter().filter_map(|r| r.rt).collect();
    all.sort_by(f64::total_cmp);
    assert_eq!(p["overall"]["requests"], reqs.len());
    assert_eq!(p["overall"]["timed_requests"], all.len());
    if all.is_empty() {
        assert!(p["overall"]["p95_ms"].is_null());
        return;
    }
    close(
        &p["overall"]["mean_ms"],
        all.iter().sum::<f64>() / all.len() as f64 / 1000.0,
        "mean",
    );
    for (k, q) in [
        ("p50_ms", 0.5),
        ("p90_ms", 0.9),
        ("p95_ms", 0.95),
        ("p99_ms", 0.99),
    ] {
        close(&p["overall"][k], quantile(&all, q) / 1000.0, k);
    }
    close(&p["overall"]["max_ms"], all[all.len() - 1] / 1000.0, "max");
    // Per route, ordered by total time.
    let mut by_route: HashMap<&str, Vec<f64>> = HashMap::new();
    for r in reqs {
        by_route.entry(&r.route).or_default().extend(r.rt);
    }
    let mut totals: Vec<(&str, f64)> = by_route.iter().map(|(k, v)| (*k, v.iter().sum())).collect();
    totals.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let routes = p["routes"].as_array().unwrap();
    let grand: f64 = totals.iter().map(|t| t.1).sum();
    for (i, r) in routes.iter().enumerate() {
        let (name, total) = totals[i];
        assert_eq!(r["route"], name, "route #{i}");
        let mut v = by_route[name].clone();
        v.sort_by(f64::total_cmp);
        close(&r["p95_ms"], quantile(&v, 0.95) / 1000.0, name);
        close(&r["time_share"], total / grand, name);
    }
    // The histogram's bins hold every timed request once, each in the bin of its time.
    let bins = p["latency_histogram"].as_array().unwrap();
    let mut binned = 0;
    for b in bins {
        let (lo, hi) = (
            b["from_ms"].as_f64().unwrap() * 1000.0,
            b["to_ms"].as_f64().unwrap() * 1000.0,
        );
        let n = all
            .iter()
            .filter(|v| (lo - 1e-6..hi - 1e-6).contains(&v.max(1.0)))
            .count();
        assert_eq!(b["requests"], n, "bin from {lo} us");
        binned += n;
    }
    assert_eq!(binned, all.len());
    // Each route of the routes section has a p95 per bucket of over_time.
    let trend = p["route_trend"].as_array().unwrap();
    let buckets = p["over_time"].as_array().unwrap().len();
    assert_eq!(trend.len(), routes.len());
    for (t, r) in trend.iter().zip(routes) {
        assert_eq!(t["route"], r["route"]);
        assert_eq!(t["p95_ms"].as_array().unwrap().len(), buckets);
    }
    // Slow routes by the default thresholds (mean > 500 ms or p95 > 1000 ms, >= 20 timed).
    let mut slow: Vec<&str> = by_route
        .iter()
        .filter(|(_, v)| v.len() >= 20)
        .filter(|(_, v)| {
            let mut s = (*v).clone();
            s.sort_by(f64::total_cmp);
            s.iter().sum::<f64>() / s.len() as f64 > 500_000.0 || quantile(&s, 0.95) > 1_000_000.0
        })
        .map(|(k, _)| *k)
        .collect();
    slow.sort();
    let mut got: Vec<&str> = p["slow_routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["route"].as_str().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, slow);
    let slowest: Vec<f64> = p["slowest_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["response_time_ms"].as_f64().unwrap())
        .collect();
    let want: Vec<f64> = all
        .iter()
        .rev()
        .take(slowest.len())
        .map(|v| (v / 1000.0 * 1000.0).round() / 1000.0)
        .collect();
    assert_eq!(slowest, want);
}

fn check_errors(rep: &Value, reqs: &[Req]) {
    let e = &rep["errors"];
    let c4 = reqs
        .iter()
        .filter(|r| (400..500).contains(&r.status))
        .count();
    let c5 = reqs.iter().filter(|r| r.status >= 500).count();
    assert_eq!(e["overall"]["errors_4xx"], c4);
    assert_eq!(e["overall"]["errors_5xx"], c5);
    close(
        &e["overall"]["rate_5xx"],
        ((c5 as f64 / reqs.len() as f64) * 10_000.0).round() / 10_000.0,
        "rate_5xx",
    );
    let mut per: HashMap<&str, (u64, u64)> = HashMap::new();
    for r in reqs {
        let x = per.entry(&r.route).or_default();
        if (400..500).contains(&r.status) {
            x.0 += 1;
        } else if r.status >= 500 {
            x.1 += 1;
        }
    }
    let mut order: Vec<(&str, (u64, u64))> =
        per.into_iter().filter(|(_, v)| v.0 + v.1 > 0).collect();
    order.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(b.1.0.cmp(&a.1.0)).then(a.0.cmp(b.0)));
    for (got, want) in e["routes"].as_array().unwrap().iter().zip(&order) {
        assert_eq!(got["route"], want.0);
        assert_eq!(
            (got["errors_4xx"].as_u64(), got["errors_5xx"].as_u64()),
            (Some(want.1.0), Some(want.1.1))
        );
    }
}

fn check_traffic(rep: &Value, reqs: &[Req], bucket_len: usize) {
    let t = &rep["traffic"];
    assert_eq!(t["overall"]["requests"], reqs.len());
    assert_eq!(
        t["overall"]["bytes"],
        reqs.iter().map(|r| r.bytes).sum::<u64>()
    );
    let clients: std::collections::HashSet<&str> = reqs.iter().map(|r| r.client.as_str()).collect();
    assert_eq!(t["overall"]["clients"], clients.len());
    // The status classes of the buckets add up to the requests of each class.
    for (key, class) in [
        ("status_2xx", 2),
        ("status_3xx", 3),
        ("status_4xx", 4),
        ("status_5xx", 5),
    ] {
        let per_bucket: u64 = t["over_time"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b[key].as_u64().unwrap())
            .sum();
        let want = reqs.iter().filter(|r| r.status / 100 == class).count() as u64;
        assert_eq!(per_bucket, want, "{key}");
    }
    let bot = regex::Regex::new(logcrunch::report::BOT_PATTERN).unwrap();
    let bots = reqs
        .iter()
        .filter(|r| r.ua.as_deref().is_some_and(|u| bot.is_match(u)))
        .count();
    assert_eq!(t["overall"]["bot_requests"], bots);
    let mut status: BTreeMap<u64, u64> = BTreeMap::new();
    for r in reqs {
        *status.entry(r.status).or_default() += 1;
    }
    for s in t["status"].as_array().unwrap() {
        assert_eq!(
            s["requests"].as_u64(),
            status.get(&s["status"].as_u64().unwrap()).copied()
        );
    }
    let mut per_client: HashMap<&str, u64> = HashMap::new();
    for r in reqs {
        *per_client.entry(&r.client).or_default() += 1;
    }
    let mut top: Vec<(&str, u64)> = per_client.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (got, want) in t["top_clients"].as_array().unwrap().iter().zip(&top) {
        assert_eq!(
            (got["client_ip"].as_str(), got["requests"].as_u64()),
            (Some(want.0), Some(want.1))
        );
    }
    let mut per_bucket: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in reqs {
        let x = per_bucket.entry(&r.ts[..bucket_len]).or_default();
        x.0 += 1;
        x.1 += r.bytes;
    }
    let got: Vec<(u64, u64)> = t["over_time"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["requests"].as_u64().unwrap(),
                b["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, per_bucket.values().copied().collect::<Vec<_>>());
}

#[test]
fn reports_match_an_independent_computation_on_generated_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    logcrunch(d)
        .args([
            "generate",
            "--format",
            "combined_us",
            "--lines",
            "20000",
            "--seed",
            "3",
            "--rps",
            "0.2",
            "-o",
            "g.log",
        ])
        .assert()
        .success();
    ingest_json(d, &["--dataset", "ds", "g.log"], 0);
    let reqs = rows(d, "ds");
    let rep = report(d, "ds", "all", &["--top", "15"]);
    assert_eq!(
        rep["filters"]["bucket"], "hour",
        "20,000 requests at 0.2/s span 28 hours"
    );
    check_performance(&rep, &reqs);
    check_errors(&rep, &reqs);
    check_traffic(&rep, &reqs, 13);
    assert!(
        !rep["performance"]["slow_routes"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the generator's export route is slow"
    );
}

#[test]
fn reports_match_an_independent_computation_on_real_apache_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(realdata) = common::realdata() else {
        return;
    };
    let src = realdata.join("elastic_examples/apache_logs");
    ingest_json(d, &["--dataset", "ds", src.to_str().unwrap()], 0);
    let reqs = rows(d, "ds");
    assert_eq!(
        reqs.len(),
        10_000,
        "line 8,899, cut inside its user agent, is read too"
    );
    let rep = report(d, "ds", "all", &["--bucket", "day"]);
    check_performance(&rep, &reqs);
    check_errors(&rep, &reqs);
    check_traffic(&rep, &reqs, 10);
    println!(
        "apache_logs: {} requests, {} clients, bot share {}, 404s {}",
        rep["traffic"]["overall"]["requests"],
        rep["traffic"]["overall"]["clients"],
        rep["traffic"]["overall"]["bot_share"],
        rep["traffic"]["status"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["status"] == 404)
            .unwrap()["requests"]
    );
}

fn snapshot_dataset() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for f in ["small.log", "error.log"] {
        std::fs::copy(common::repo().join("testdata/reports").join(f), d.join(f)).unwrap();
    }
    ingest_json(d, &["--dataset", "ds", "small.log", "error.log"], 0);
    dir
}

#[test]
fn report_snapshots() {
    let dir = snapshot_dataset();
    for kind in ["performance", "errors", "traffic"] {
        let table = logcrunch(dir.path())
            .args(["report", kind, "--dataset", "ds", "--top", "5"])
            .output()
            .unwrap();
        assert!(table.status.success());
        insta::assert_snapshot!(
            format!("report_{kind}_table"),
            String::from_utf8(table.stdout).unwrap()
        );
        let mut json = report(dir.path(), "ds", kind, &["--top", "5"]);
        json.as_object_mut().unwrap().remove("generated_at");
        insta::assert_json_snapshot!(format!("report_{kind}_json"), json);
    }
    let md = logcrunch(dir.path())
        .args([
            "report",
            "errors",
            "--dataset",
            "ds",
            "--top",
            "3",
            "--format",
            "markdown",
        ])
        .output()
        .unwrap();
    insta::assert_snapshot!(
        "report_errors_markdown",
        String::from_utf8(md.stdout).unwrap()
    );
}

/// The behavioural scan of a report runs on a forked catalog beside the other statements: a fork
/// reads the same views and catalog tables as its parent, and `report all` finds what `report
/// security` finds.
#[test]
fn a_forked_catalog_reads_what_its_parent_reads() {
    let dir = snapshot_dataset();
    let cat = logcrunch::catalog::Catalog::open(&dir.path().join("ds")).unwrap();
    let fork = cat.fork().unwrap();
    let sql =
        "SELECT 'logs' AS t, count(*) AS n, sum(hash(client_ip, ts, \"offset\")) AS h FROM logs
               UNION ALL SELECT 'errors', count(*), sum(hash(message)) FROM errors
               UNION ALL SELECT 'runs', count(*), sum(hash(id)) FROM runs ORDER BY t";
    let rows = |c: &logcrunch::catalog::Catalog| {
        logcrunch::report::to_json_rows(&c.query(sql).unwrap()).unwrap()
    };
    let (parent, forked) = (rows(&cat), rows(&fork));
    assert_eq!(parent, forked);
    assert!(
        parent.iter().all(|r| r["n"].as_u64().unwrap() > 0),
        "{parent:?}"
    );
    drop(fork);
    assert_eq!(rows(&cat), parent);
    let all = report(dir.path(), "ds", "all", &[]);
    let security = report(dir.path(), "ds", "security", &[]);
    assert_eq!(
        all["security"]["findings"],
        security["security"]["findings"]
    );
    assert!(all["security"]["findings"].is_array());
}

#[test]
fn filters_since_until_source_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, seed, start) in [
        ("a.log", "1", "2024-01-01T00:00:00Z"),
        ("b.log", "2", "2024-01-01T12:00:00Z"),
    ] {
        logcrunch(d)
            .args([
                "generate",
                "--format",
                "combined_us",
                "--lines",
                "3000",
                "--seed",
                seed,
                "--start",
                start,
                "--rps",
                "0.05",
                "-o",
                name,
            ])
            .assert()
            .success();
    }
    ingest_json(d, &["--dataset", "ds", "a.log", "b.log"], 0);
    let count = |sql: &str| {
        query_json(
            d,
            "ds",
            &format!("SELECT count(*) AS n FROM logs WHERE {sql}"),
        )[0]["n"]
            .as_u64()
            .unwrap()
    };
    let requests = |args: &[&str]| {
        report(d, "ds", "traffic", args)["traffic"]["overall"]["requests"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        requests(&["--since", "2024-01-01T06:00:00Z"]),
        count("ts >= TIMESTAMP '2024-01-01 06:00:00'")
    );
    assert_eq!(
        requests(&["--until", "2024-01-01T06:00:00Z"]),
        count("ts < TIMESTAMP '2024-01-01 06:00:00'")
    );
    assert_eq!(
        requests(&["--since", "2024-01-01T06:00:00Z", "--until", "2024-01-02"]),
        count("ts >= TIMESTAMP '2024-01-01 06:00:00' AND ts < TIMESTAMP '2024-01-02 00:00:00'")
    );
    assert_eq!(requests(&["--source", "*b.log"]), 3000);
    assert_eq!(requests(&["--source", "a.log"]), 3000);
    assert_eq!(
        requests(&["--where", "status >= 500"]),
        count("status >= 500")
    );
    let e = report(d, "ds", "errors", &["--where", "method = 'POST'"]);
    assert_eq!(
        e["errors"]["overall"]["requests"].as_u64(),
        Some(count("method = 'POST'"))
    );
    logcrunch(d)
        .args([
            "report",
            "traffic",
            "--dataset",
            "ds",
            "--where",
            "status >>> 5",
        ])
        .assert()
        .code(2)
        .stderr(contains(
            "--where `status >>> 5` is not a valid SQL condition",
        ));
    logcrunch(d)
        .args([
            "report",
            "traffic",
            "--dataset",
            "ds",
            "--where",
            "no_such_column = 1",
        ])
        .assert()
        .code(2)
        .stderr(contains("no_such_column"));
    logcrunch(d)
        .args([
            "report",
            "traffic",
            "--dataset",
            "ds",
            "--since",
            "last tuesday",
        ])
        .assert()
        .code(2)
        .stderr(contains("--since `last tuesday` is not a time"));
}

#[test]
fn run_writes_reports_and_records_itself() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("in")).unwrap();
    for f in ["small.log", "error.log"] {
        std::fs::copy(
            common::repo().join("testdata/reports").join(f),
            d.join("in").join(f),
        )
        .unwrap();
    }
    std::fs::write(
        d.join("cfg.yaml"),
        "logs:\n  source_dir: in\nstorage:\n  dataset: out\nreports:\n  dir: rep\nlogging:\n  file: app/logcrunch.log\n  level: debug\n",
    )
    .unwrap();
    let out = stdout_of(d, &["--config", "cfg.yaml", "run"]);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("response time p50") && text.contains("rep/latest.md"),
        "{text}"
    );
    let json: Value =
        serde_json::from_slice(&std::fs::read(d.join("rep/latest.json")).unwrap()).unwrap();
    assert_eq!(json["traffic"]["overall"]["requests"], 200);
    assert!(
        std::fs::read_to_string(d.join("rep/latest.md"))
            .unwrap()
            .starts_with("# Performance report")
    );
    let html = std::fs::read_to_string(d.join("rep/latest.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<code>out</code>"));
    let stamped: Vec<_> = std::fs::read_dir(d.join("rep"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("report-") && n.ends_with(".html"))
        .collect();
    assert_eq!(stamped.len(), 1, "{stamped:?}");
    let runs = query_json(
        d,
        "out",
        "SELECT command, config FROM runs ORDER BY started",
    );
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["command"], "run");
    assert!(
        runs[0]["config"]
            .as_str()
            .unwrap()
            .contains("\"source_dir\":\"in\"")
    );
    let log = std::fs::read_to_string(d.join("app/logcrunch.log")).unwrap();
    assert!(log.contains("recorded run"), "{log}");
    let again = logcrunch(d)
        .args(["--config", "cfg.yaml", "run", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["ingest"]["rows"], 0);
    assert_eq!(v["highlights"]["requests"], 200);
    let sources = query_json(d, "out", "SELECT count(*) AS n FROM sources");
    assert_eq!(sources[0]["n"], 2);
}
