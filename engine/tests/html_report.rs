//! The HTML report: its structure (an insta snapshot of its outline, with the time it was made
//! left out), its size on a month of real-cardinality traffic, the comparison page, and, in
//! headless Chromium, that it loads with no console message and no network request, draws its
//! charts, and shows the numbers of the JSON report for the same dataset.
//!
//! The browser test drives Debian's Chromium through its ChromeDriver (WebDriver, over HTTP) when
//! both are found: `LOGCRUNCH_CHROMIUM` names the browser (CI installs `chromium` and
//! `chromium-driver` and sets it; set, the test must run), else `/usr/bin/chromium` when present;
//! the driver is `chromedriver` beside it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{ingest_json, logcrunch, report};
use serde_json::{Value, json};

/// The Chromium and ChromeDriver to test with, if any.
fn chromium() -> Option<(PathBuf, PathBuf)> {
    let required = std::env::var_os("LOGCRUNCH_CHROMIUM").map(PathBuf::from);
    let browser = required
        .clone()
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let driver = browser.with_file_name("chromedriver");
    let found = browser.is_file() && driver.is_file();
    assert!(
        found || required.is_none(),
        "LOGCRUNCH_CHROMIUM={}: it and chromedriver beside it must exist",
        browser.display()
    );
    found.then_some((browser, driver))
}

/// Twelve hours of generated traffic (2 requests/s, 0.5% attacks) with a latency spike and an
/// error burst, ingested into `ds` and run through `detect`, so every part of the report has
/// content.
fn eventful_dataset(d: &Path) {
    logcrunch(d)
        .args(["generate", "--format", "nginx_timed", "--lines", "86400"])
        .args(["--rps", "2", "--seed", "3", "--attack-rate", "0.005"])
        .args([
            "--inject",
            "latency-spike@5h,error-burst@8h+20m",
            "-o",
            "in.log",
        ])
        .assert()
        .success();
    ingest_json(d, &["--dataset", "ds", "in.log"], 0);
    logcrunch(d)
        .args(["detect", "--dataset", "ds"])
        .assert()
        .success();
}

fn html_report(d: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "report",
        "all",
        "--dataset",
        "ds",
        "--format",
        "html",
        "-o",
        "r.html",
    ];
    args.extend_from_slice(extra);
    logcrunch(d).args(&args).assert().success();
    std::fs::read_to_string(d.join("r.html")).unwrap()
}

/// The page's outline: containers, headings, cards, each chart's elements counted by kind, each
/// table's header and row count; not the time the report was made, nor chart coordinates.
fn outline(html: &str) -> String {
    let body = &html[html.find("<body>").expect("a body")..];
    let tag = regex::Regex::new(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)([^>]*)>").unwrap();
    let markup = regex::Regex::new("<[^>]*>").unwrap();
    let attr = |attrs: &str, name: &str| -> Option<String> {
        let re = regex::Regex::new(&format!(r#"\b{name}="([^"]*)""#)).unwrap();
        re.captures(attrs).map(|c| c[1].to_string())
    };
    let mut out = String::new();
    let mut depth = 0usize;
    let mut open: Vec<bool> = Vec::new();
    let mut chart: Option<(String, BTreeMap<String, usize>)> = None;
    let mut table: Option<(Vec<String>, usize, usize)> = None;
    for m in tag.captures_iter(body) {
        let (close, name, attrs) = (&m[1] == "/", m[2].to_ascii_lowercase(), &m[3]);
        let after = &body[m.get(0).unwrap().end()..];
        let text = after[..after.find('<').unwrap_or(after.len())].trim();
        let pad = "  ".repeat(depth);
        if let Some((id, counts)) = chart.as_mut() {
            if close && name == "svg" {
                out.push_str(&format!("{pad}svg#{id} {counts:?}\n"));
                chart = None;
            } else if !close && name != "title" {
                let class = attr(attrs, "class").unwrap_or_default();
                let kind = class.split(' ').next().unwrap_or_default();
                *counts
                    .entry(format!("{name}.{kind}").trim_end_matches('.').to_string())
                    .or_default() += 1;
            }
            continue;
        }
        if let Some((columns, rows, sparks)) = table.as_mut() {
            match (close, name.as_str()) {
                (false, "th") => columns.push(text.to_string()),
                (false, "tr") => *rows += 1,
                (false, "svg") => *sparks += 1,
                (true, "table") => {
                    out.push_str(&format!(
                        "{pad}table [{}] {} rows, {} sparklines\n",
                        columns.join(", "),
                        *rows - 1,
                        sparks
                    ));
                    table = None;
                }
                _ => {}
            }
            continue;
        }
        let self_closing = attrs.ends_with('/') || matches!(name.as_str(), "br" | "meta" | "img");
        if close {
            if open.pop() == Some(true) {
                depth -= 1;
            }
            continue;
        }
        let class = attr(attrs, "class").unwrap_or_default();
        let id = attr(attrs, "id")
            .map(|i| format!("#{i}"))
            .unwrap_or_default();
        let mut container = false;
        match name.as_str() {
            "svg" => chart = Some((attr(attrs, "id").unwrap_or_default(), BTreeMap::new())),
            "table" => table = Some((Vec::new(), 0, 0)),
            "header" | "nav" | "main" | "section" | "figure" | "dl" | "footer" | "ul" => {
                out.push_str(&format!("{pad}{name}{id}\n"));
                container = true;
            }
            "li" => {
                let item = &after[..after.find("</li>").unwrap_or(0)];
                let item = markup.replace_all(item, "");
                out.push_str(&format!("{pad}li: {item}\n"));
            }
            "h1" | "h2" | "h3" | "figcaption" | "dt" | "a" | "p" => {
                out.push_str(&format!("{pad}{name}: {text}\n"));
            }
            "dd" if attrs.contains("data-filter") => {
                let value = &after[after.find("<code>").unwrap() + 6..];
                out.push_str(&format!(
                    "{pad}filter: {}\n",
                    &value[..value.find('<').unwrap()]
                ));
            }
            "div" if class == "label" || class == "value" => {
                out.push_str(&format!("{pad}{class}: {text}\n"));
            }
            "div" if class.starts_with("card") => {
                out.push_str(&format!(
                    "{pad}card {}\n",
                    attr(attrs, "data-key").unwrap_or_default()
                ));
                container = true;
            }
            _ => {}
        }
        if !self_closing && name != "svg" && name != "table" {
            open.push(container);
            if container {
                depth += 1;
            }
        }
    }
    out
}

#[test]
fn html_report_outline_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for f in ["small.log", "error.log"] {
        std::fs::copy(common::repo().join("testdata/reports").join(f), d.join(f)).unwrap();
    }
    ingest_json(d, &["--dataset", "ds", "small.log", "error.log"], 0);
    let html = html_report(d, &["--top", "5"]);
    assert!(html.starts_with("<!DOCTYPE html>"));
    insta::assert_snapshot!("html_report_outline", outline(&html));
}

/// Nothing on the page is fetched: no URL with a scheme or a protocol-relative one in an
/// attribute or a stylesheet, and a policy that forbids any load.
fn assert_self_contained(html: &str) {
    let link =
        regex::Regex::new(r#"(?i)\b(src|href|action|poster|data)\s*=\s*"([a-z]+:|//)"#).unwrap();
    assert!(!link.is_match(html), "a link out: {:?}", link.find(html));
    assert!(!html.contains("url("), "a stylesheet URL");
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
}

#[test]
fn fifty_routes_over_thirty_days_hourly_stay_under_two_megabytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The realistic profile's long tail of pages, one request per 12.5 s on average: 31 days.
    logcrunch(d)
        .args([
            "generate",
            "--profile",
            "realistic",
            "--format",
            "nginx_timed",
        ])
        .args(["--lines", "220000", "--rps", "0.08", "-o", "month.log"])
        .assert()
        .success();
    ingest_json(d, &["--dataset", "ds", "month.log"], 0);
    let html = html_report(d, &["--top", "50", "--bucket", "hour"]);
    let json = report(d, "ds", "performance", &["--top", "50", "--bucket", "hour"]);
    let buckets = json["performance"]["over_time"].as_array().unwrap().len();
    let trend = json["performance"]["route_trend"].as_array().unwrap();
    assert!(buckets >= 30 * 24, "{buckets} hourly buckets");
    assert_eq!(trend.len(), 50);
    assert_eq!(html.matches("class=\"spark\"").count(), 50);
    println!(
        "HTML report, 50 routes over {buckets} hourly buckets: {} bytes",
        html.len()
    );
    assert!(html.len() < 2 << 20, "{} bytes", html.len());
    assert_self_contained(&html);
}

#[test]
fn comparison_page_highlights_the_regressed_routes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A day of traffic, then a day slowed down from its start.
    for (start, inject, out) in [
        ("2024-01-01T00:00:00Z", None, "a.log"),
        (
            "2024-01-02T00:00:00Z",
            Some("latency-spike@0h+24h"),
            "b.log",
        ),
    ] {
        let mut cmd = logcrunch(d);
        cmd.args(["generate", "--format", "nginx_timed", "--lines", "86400"])
            .args(["--rps", "1", "--start", start, "-o", out]);
        if let Some(i) = inject {
            cmd.args(["--inject", i]);
        }
        cmd.assert().success();
    }
    ingest_json(d, &["--dataset", "ds", "a.log", "b.log"], 0);
    logcrunch(d)
        .args(["compare", "--baseline", "ds@2024-01-01..2024-01-02"])
        .args(["--current", "ds@2024-01-02..2024-01-03"])
        .args([
            "--max-regression",
            "p95:+20%",
            "--format",
            "html",
            "-o",
            "c.html",
        ])
        .assert()
        .code(3);
    let html = std::fs::read_to_string(d.join("c.html")).unwrap();
    assert_self_contained(&html);
    let regressed = html.matches("<tr class=\"bad\">").count();
    assert!(regressed > 0, "no regressed row highlighted");
    let card = regex::Regex::new(r#"data-key="regressed"><div class="label">Regressed routes</div><div class="value" data-v="(\d+)""#).unwrap();
    let shown: usize = card.captures(&html).expect("the regressed card")[1]
        .parse()
        .unwrap();
    assert_eq!(shown, regressed);
}

/// A WebDriver session with a headless Chromium, through a ChromeDriver of its own.
struct Browser {
    driver: std::process::Child,
    session: String,
}

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path, profile: &Path) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = std::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut browser = Browser {
            driver,
            session: format!("http://127.0.0.1:{port}"),
        };
        let ready = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            ureq::get(&format!("{}/status", browser.session))
                .call()
                .is_ok_and(|mut r| {
                    r.body_mut()
                        .read_json::<Value>()
                        .is_ok_and(|v| v["value"]["ready"] == true)
                })
        });
        assert!(ready, "chromedriver did not start");
        let flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ];
        let mut args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let created = browser.post(
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "goog:chromeOptions": {"binary": chromium, "args": args},
                "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"}
            }}}),
        );
        let id = created["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        browser.session = format!("{}/session/{id}", browser.session);
        browser
    }

    /// POSTs `body` to `path` (of the driver, or of the session when `path` does not start with
    /// `/session`) and returns the answer's `value`.
    fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let mut answer = ureq::post(&url)
            .send_json(&body)
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        let v: Value = answer.body_mut().read_json().unwrap();
        v["value"].clone()
    }

    fn open(&self, url: &str) {
        self.post("/url", json!({"url": url}));
    }

    fn script(&self, js: &str) -> Value {
        self.post("/execute/sync", json!({"script": js, "args": []}))
    }

    fn click(&self, css: &str) {
        let found = self.post("/element", json!({"using": "css selector", "value": css}));
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string();
        self.post(&format!("/element/{id}/click"), json!({}));
    }

    /// The entries of a log (`browser`: the console; `performance`: DevTools events).
    fn log(&self, kind: &str) -> Vec<Value> {
        self.post("/se/log", json!({"type": kind}))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.session).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The number a card shows, as its text reads (thousands separators, a unit or a percent sign).
fn card_number(dom: &str, key: &str) -> f64 {
    let re = regex::Regex::new(&format!(
        r#"data-key="{key}"><div class="label">[^<]*</div><div class="value"[^>]*>([^<]*)<"#
    ))
    .unwrap();
    let text = re.captures(dom).unwrap_or_else(|| panic!("no card {key}"))[1].to_string();
    let number: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    let v: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("card {key}: {text}"));
    if text.ends_with('%') { v / 100.0 } else { v }
}

#[test]
fn report_in_headless_chromium() {
    let Some((chromium, chromedriver)) = chromium() else {
        println!(
            "skipped: no Chromium and ChromeDriver (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    eventful_dataset(d);
    let html = html_report(d, &[]);
    assert_self_contained(&html);
    let json = report(d, "ds", "all", &[]);
    let page = format!("file://{}", d.join("r.html").display());
    let browser = Browser::start(&chromium, &chromedriver, &d.join("profile"));
    browser.open(&page);

    // The page said nothing on the console (errors, warnings, policy violations).
    let console = browser.log("browser");
    assert!(console.is_empty(), "console messages: {console:#?}");

    // The page requested nothing but itself (the DevTools events of its document; the browser
    // opened its own new-tab page first).
    let events: Vec<Value> = browser
        .log("performance")
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
        .map(|m| m["message"].clone())
        .filter(|m| m["method"] == "Network.requestWillBeSent")
        .filter(|m| m["params"]["documentURL"] == page.as_str())
        .collect();
    let requested: Vec<&str> = events
        .iter()
        .filter_map(|m| m["params"]["request"]["url"].as_str())
        .collect();
    assert_eq!(requested, [page.as_str()], "what the page requested");

    // The charts were parsed as SVG with their data (lines, stacked bars, bands, hover texts)
    // and laid out at the page's width.
    let dom = browser
        .script("return document.documentElement.outerHTML")
        .as_str()
        .unwrap()
        .to_string();
    let count = |needle: &str| dom.matches(needle).count();
    assert!(
        count("<svg id=\"chart-") >= 5,
        "charts: {}",
        count("<svg id=\"chart-")
    );
    assert!(count("<polyline class=\"line") >= 3);
    assert!(count("<rect class=\"bar") > 50);
    assert!(count("<rect class=\"band") >= 1, "the anomalies are marked");
    assert!(dom.contains("id=\"chart-security-over_time\""));
    let widths = browser.script(
        "return Array.from(document.querySelectorAll('svg.chart')).map(s => s.getBoundingClientRect().width)",
    );
    let widths: Vec<f64> = widths
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert!(widths.iter().all(|w| *w > 600.0), "chart widths {widths:?}");
    let hover = browser.script(
        "return document.querySelector('#chart-performance-over_time .hover title').textContent",
    );
    assert!(hover.as_str().unwrap().contains("p95: "), "{hover}");

    // The figures shown are the JSON report's.
    let p = &json["performance"]["overall"];
    for (key, want) in [
        ("requests", &json["traffic"]["overall"]["requests"]),
        ("p50_ms", &p["p50_ms"]),
        ("p95_ms", &p["p95_ms"]),
        ("p99_ms", &p["p99_ms"]),
        ("rate_5xx", &json["errors"]["overall"]["rate_5xx"]),
        ("rate_4xx", &json["errors"]["overall"]["rate_4xx"]),
        (
            "tagged_requests",
            &json["security"]["overall"]["tagged_requests"],
        ),
    ] {
        let shown = card_number(&dom, key);
        let want = want.as_f64().unwrap();
        assert!(
            (shown - want).abs() < 1e-9,
            "{key}: shown {shown}, JSON {want}"
        );
    }
    let anomalies = json["anomalies"]["events"].as_array().unwrap().len();
    assert!(anomalies > 0);
    assert_eq!(card_number(&dom, "anomalies"), anomalies as f64);

    // A click on a column sorts the table by it, a second click the other way.
    let column = "return Array.from(document.querySelectorAll('#performance-routes tbody tr')).map(r => parseFloat(r.cells[1].dataset.v))";
    let read = |v: Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    browser.click("#performance-routes th:nth-child(2)");
    let up = read(browser.script(column));
    assert!(
        up.len() > 3 && up.windows(2).all(|w| w[0] <= w[1]),
        "{up:?}"
    );
    browser.click("#performance-routes th:nth-child(2)");
    let down = read(browser.script(column));
    assert!(down.windows(2).all(|w| w[0] >= w[1]), "{down:?}");
    assert!(browser.log("browser").is_empty());
    println!(
        "Chromium (WebDriver): {} charts, no console message, no request, numbers equal to the JSON report, sorting works",
        count("<svg id=\"chart-")
    );
}
