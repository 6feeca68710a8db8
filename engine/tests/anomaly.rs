//! Latency statistics and anomaly detection, scored: HDR percentiles against DuckDB's exact
//! quantiles, injected incidents in generated traffic, and the labelled NAB series. The tests
//! print their scores.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{logcrunch, query_json, realdata, stdout_of};
use logcrunch::detect::series::read_series;
use logcrunch::detect::{DetectConfig, Detector, Method, WindowScore};
use logcrunch::parse::value::parse_iso8601;

#[test]
fn hdr_percentiles_agree_with_duckdb_exact_quantiles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    logcrunch(d)
        .args([
            "generate",
            "--format",
            "nginx_timed",
            "--lines",
            "60000",
            "--rps",
            "50",
        ])
        .args(["--seed", "11", "-o", "in.log"])
        .assert()
        .success();
    logcrunch(d)
        .args(["ingest", "--dataset", "ds", "in.log"])
        .assert()
        .success();
    let out = stdout_of(d, &["stats", "show", "--dataset", "ds", "--format", "json"]);
    let hdr: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    let exact = query_json(
        d,
        "ds",
        "SELECT '*' AS route, count(*) AS n, quantile_disc(response_time_us, [0.5, 0.9, 0.95, 0.99]) AS q FROM logs
         UNION ALL
         SELECT route, count(*), quantile_disc(response_time_us, [0.5, 0.9, 0.95, 0.99]) FROM logs
         WHERE route IN ('/', '/api/v1/search', '/static/*') GROUP BY route",
    );
    // Two significant digits: a recorded value lies within 1% of its bucket's top.
    let precision = 10f64.powi(-2);
    let mut worst: f64 = 0.0;
    for e in &exact {
        let route = e["route"].as_str().unwrap();
        let h = hdr.iter().find(|r| r["route"] == route).unwrap();
        assert_eq!(h["requests"], e["n"], "{route}");
        for (i, key) in ["p50_ms", "p90_ms", "p95_ms", "p99_ms"].iter().enumerate() {
            let want = e["q"][i].as_f64().unwrap();
            let got = h[key].as_f64().unwrap() * 1000.0;
            let err = (got - want).abs() / want;
            worst = worst.max(err);
            println!(
                "{route:16} {key}: hdr {got:>10.0} µs, exact {want:>10.0} µs, error {:.3}%",
                err * 100.0
            );
            assert!(err <= precision, "{route} {key}: {got} vs {want}");
        }
    }
    println!(
        "largest relative error {:.3}% (allowed {:.1}%)",
        worst * 100.0,
        precision * 100.0
    );
}

#[test]
fn injected_incidents_are_found_with_few_false_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two days at 5 requests/s, three incidents on the first day.
    logcrunch(d)
        .args([
            "generate",
            "--format",
            "nginx_timed",
            "--lines",
            "864000",
            "--rps",
            "5",
        ])
        .args(["--seed", "7", "-o", "in.log"])
        .args([
            "--inject",
            "latency-spike@6h,error-burst@12h+15m,traffic-surge@18h",
        ])
        .assert()
        .success();
    let truth: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(d.join("in.log.truth.json")).unwrap())
            .unwrap();
    assert_eq!(truth.len(), 3);
    logcrunch(d)
        .args(["ingest", "--dataset", "ds", "in.log"])
        .assert()
        .success();
    let out = stdout_of(d, &["detect", "--dataset", "ds", "--format", "json"]);
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    same_events_from_files_and_catalog(&d.join("ds"));
    let us = |v: &serde_json::Value| parse_iso8601(v.as_str().unwrap().as_bytes()).unwrap();
    let windows: Vec<(i64, i64)> = truth
        .iter()
        .map(|t| (us(&t["start_us"]), us(&t["end_us"])))
        .collect();
    let spans: Vec<(i64, i64)> = events
        .iter()
        .map(|e| (us(&e["start"]), us(&e["end"])))
        .collect();
    let score = WindowScore::of(&spans, &windows);
    let false_events = score.events - score.true_events;
    let hours = 48.0;
    println!(
        "generated traffic: {} incidents, {} found (recall {:.2}); {} events, {} true (precision {:.2}); {} false events in {hours} h",
        score.windows,
        score.found,
        score.recall(),
        score.events,
        score.true_events,
        score.precision(),
        false_events
    );
    for (t, w) in truth.iter().zip(&windows) {
        let kinds: std::collections::BTreeSet<String> = events
            .iter()
            .filter(|e| us(&e["start"]) <= w.1 && us(&e["end"]) >= w.0)
            .map(|e| {
                format!(
                    "{} {}",
                    e["metric"].as_str().unwrap(),
                    e["route"].as_str().unwrap()
                )
            })
            .collect();
        println!("  {}: {:?}", t["kind"], kinds);
    }
    assert_eq!(score.found, 3, "every injected incident is found");
    assert!(
        false_events as f64 <= hours / 24.0,
        "at most one false event per 24 h"
    );
    // Each incident shows on the metric it disturbs, for all routes together.
    let on = |metric: &str, w: (i64, i64)| {
        events.iter().any(|e| {
            e["metric"] == metric
                && e["route"] == "*"
                && us(&e["start"]) <= w.1
                && us(&e["end"]) >= w.0
        })
    };
    assert!(on("p50", windows[0]) || on("p95", windows[0]));
    assert!(on("5xx_rate", windows[1]));
    assert!(on("requests", windows[2]));
    // They are stored for alerting and reported.
    let stored = query_json(d, "ds", "SELECT count(*) AS n FROM anomalies");
    assert_eq!(stored[0]["n"].as_u64().unwrap(), events.len() as u64);
    let report = logcrunch(d)
        .args(["report", "anomalies", "--dataset", "ds", "--format", "json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert!(!report["anomalies"]["events"].as_array().unwrap().is_empty());
}

fn nab_windows(realdata: &Path) -> BTreeMap<String, Vec<(i64, i64)>> {
    let text = std::fs::read_to_string(realdata.join("nab/labels/combined_windows.json")).unwrap();
    let raw: BTreeMap<String, Vec<(String, String)>> = serde_json::from_str(&text).unwrap();
    raw.into_iter()
        .map(|(k, ws)| {
            let t = |s: &str| parse_iso8601(s.as_bytes()).unwrap();
            (k, ws.iter().map(|(a, b)| (t(a), t(b))).collect())
        })
        .collect()
}

#[test]
fn nab_window_scores_per_method() {
    let Some(realdata) = realdata() else {
        return;
    };
    let windows = nab_windows(&realdata);
    let root = realdata.join("nab/data");
    let detector = Detector::new(DetectConfig::default()).unwrap();
    let mut totals: BTreeMap<&str, WindowScore> = BTreeMap::new();
    let mut files = 0;
    for (name, labelled) in &windows {
        let path = root.join(name);
        if !path.is_file() {
            continue;
        }
        files += 1;
        let series = read_series(Path::new(&path)).unwrap();
        for m in Method::ALL {
            let spans: Vec<(i64, i64)> = detector
                .detect(&series, m)
                .iter()
                .map(|e| (e.start_us, e.end_us))
                .collect();
            totals
                .entry(m.name())
                .or_default()
                .add(WindowScore::of(&spans, labelled));
        }
    }
    assert!(files >= 20, "NAB series found: {files}");
    println!("NAB ({files} series), window-level scores:");
    println!(
        "{:10} {:>9} {:>7} {:>6} {:>7} {:>7}",
        "method", "precision", "recall", "F1", "events", "windows"
    );
    for (m, s) in &totals {
        println!(
            "{m:10} {:>9.3} {:>7.3} {:>6.3} {:>7} {:>7}",
            s.precision(),
            s.recall(),
            s.f1(),
            s.events,
            s.windows
        );
    }
    let z = &totals["zscore"];
    let (best, score) = totals
        .iter()
        .max_by(|a, b| a.1.f1().total_cmp(&b.1.f1()))
        .unwrap();
    println!("best: {best} F1 {:.3}; zscore F1 {:.3}", score.f1(), z.f1());
    // The best method, and the default one, beat the plain z-score on window-level F1.
    let auto = &totals["auto"];
    assert!(
        *best != "zscore" && score.f1() > z.f1(),
        "best {best} F1 {:.3} vs zscore {:.3}",
        score.f1(),
        z.f1()
    );
    assert!(
        auto.f1() > z.f1(),
        "auto F1 {:.3} vs zscore {:.3}",
        auto.f1(),
        z.f1()
    );
}

/// Per-minute series read straight from the stats files give the events the catalog path gives,
/// for every method, with and without a time range and route filter.
fn same_events_from_files_and_catalog(ds: &Path) {
    use logcrunch::detect::Metric;
    use logcrunch::detect::series::{DatasetScan, dataset_events};
    let manifest = logcrunch::catalog::manifest::Manifest::load(ds).unwrap();
    let files: Vec<std::path::PathBuf> = manifest
        .files
        .iter()
        .filter(|f| f.table == logcrunch::stats::STATS_TABLE)
        .map(|f| ds.join(&f.path))
        .collect();
    assert!(!files.is_empty());
    let cat = logcrunch::catalog::Catalog::open(ds).unwrap();
    let detector = Detector::new(DetectConfig {
        novelty_window: 0,
        ..DetectConfig::default()
    })
    .unwrap();
    let methods = [
        Method::Zscore,
        Method::Robust,
        Method::Ewma,
        Method::Seasonal,
        Method::Auto,
    ];
    let day = 86_400_000_000;
    let start = parse_iso8601(b"2024-01-01T00:00:00Z").unwrap();
    for range in [
        logcrunch::stats::Range::default(),
        logcrunch::stats::Range {
            since: Some(start + day / 4),
            until: Some(start + day),
            routes: vec!["*".into(), "/login".into()],
        },
    ] {
        let scan = |files| DatasetScan {
            range: &range,
            bucket_us: 60_000_000,
            metrics: &Metric::DATASET,
            methods: &methods,
            sigfig: 2,
            files,
        };
        let direct = dataset_events(&cat, &detector, &scan(&files)).unwrap();
        let through = dataset_events(&cat, &detector, &scan(&[])).unwrap();
        assert!(!direct.is_empty());
        assert_eq!(
            serde_json::to_string(&direct).unwrap(),
            serde_json::to_string(&through).unwrap()
        );
    }
}
