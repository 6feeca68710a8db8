//! Alert email against a real SMTP server: a Python aiosmtpd process on 127.0.0.1
//! (testdata/alert/smtp_server.py) that stores each message it accepts with its envelope and
//! decoded MIME parts. The harness creates a venv with aiosmtpd under ~/.cache on first use
//! (`LOGCRUNCH_TEST_PYTHON` points at another interpreter that has it).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{logcrunch, stdout_of};
use serde_json::Value;

fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        if let Ok(p) = std::env::var("LOGCRUNCH_TEST_PYTHON") {
            return PathBuf::from(p);
        }
        let venv = PathBuf::from(std::env::var("HOME").expect("HOME is set"))
            .join(".cache/logcrunch-test-venv");
        let py = venv.join("bin/python");
        let has = |py: &Path| {
            Command::new(py)
                .args(["-c", "import aiosmtpd"])
                .status()
                .is_ok_and(|s| s.success())
        };
        if !has(&py) {
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success())
                && Command::new(venv.join("bin/pip"))
                    .args(["install", "-q", "aiosmtpd"])
                    .status()
                    .is_ok_and(|s| s.success());
            assert!(
                ok && has(&py),
                "cannot set up a Python venv with aiosmtpd at {} (python3 -m venv, pip install \
                 aiosmtpd); set LOGCRUNCH_TEST_PYTHON to an interpreter that has it",
                venv.display()
            );
        }
        py
    })
}

/// A running SMTP server; killed on drop.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start(dir: &Path, port: u16, extra: &[&str]) -> Server {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/alert/smtp_server.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(dir)
            .args(["--port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the SMTP server did not start: {line:?}"));
        Server {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// The messages received so far (envelope, subject, parts), in order.
    fn received(&self) -> Vec<Value> {
        let mut out: Vec<(u64, Value)> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| {
                let p = e.unwrap().path();
                let n: u64 = p.file_stem()?.to_str()?.parse().ok()?;
                (p.extension()? == "json").then(|| {
                    (
                        n,
                        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap(),
                    )
                })
            })
            .collect();
        out.sort_by_key(|(n, _)| *n);
        out.into_iter().map(|(_, v)| v).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on and the OS does not hand out to `bind(0)` (below Linux's ephemeral
/// range), so that a server another test starts meanwhile cannot take it.
fn closed_port() -> u16 {
    let start = 20_000 + (std::process::id() % 5_000) as u16;
    (start..30_000)
        .chain(20_000..start)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below the ephemeral range")
}

/// Writes a generated `nginx_timed` log with the `inject`ed incidents to `out` (relative to `d`).
fn generate(d: &Path, lines: u64, seed: u64, inject: &str, out: &str) {
    logcrunch(d)
        .args([
            "generate",
            "--format",
            "nginx_timed",
            "--inject",
            inject,
            "-o",
            out,
        ])
        .args(["--lines", &lines.to_string(), "--seed", &seed.to_string()])
        .assert()
        .success();
}

/// A project directory with a generated log that has a burst of 5xx, and a config whose only
/// rule fires on it and sends to two recipients through 127.0.0.1:`port`.
fn project(d: &Path, port: u16, email_extra: &str) {
    std::fs::create_dir_all(d.join("in")).unwrap();
    generate(d, 20_000, 1, "error-burst@30m+20m", "in/a.log");
    std::fs::write(
        d.join("cfg.yaml"),
        format!(
            "logs:\n  source_dir: in\n  format: nginx_timed\nstorage:\n  dataset: data\n\
             reports:\n  dir: reports\n\
             alerting:\n  enabled: true\n  attempts: 2\n  backoff: 50ms\n  cooldown: 1h\n  rules:\n    \
             - {{name: server-errors, kind: error_rate, threshold: 0.01, min_requests: 100}}\n\
             email:\n  host: 127.0.0.1\n  port: {port}\n  from: logcrunch@example.com\n  \
             to: [ops@example.com, dev@example.com]\n  timeout: 30s\n{email_extra}"
        ),
    )
    .unwrap();
}

fn run(d: &Path, extra: &[&str]) -> (Value, String) {
    let out = logcrunch(d)
        .args(["--config", "cfg.yaml", "run", "--json"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "run failed: {stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

fn status(d: &Path) -> Vec<Value> {
    let out = stdout_of(
        d,
        &[
            "--config", "cfg.yaml", "alert", "status", "--format", "json",
        ],
    );
    serde_json::from_slice::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn wait_for(server: &Server, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let got = server.received();
        if got.len() >= n || start.elapsed() > Duration::from_secs(10) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_sends_one_digest_per_recipient_with_evidence_and_respects_the_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mail = d.join("mail");
    let server = Server::start(&mail, 0, &[]);
    project(d, server.port, "");
    let (out, _) = run(d, &[]);
    assert_eq!(out["alerts"]["alerts"], 1, "{out}");
    assert_eq!(out["alerts"]["sent"], 2);
    let got = wait_for(&server, 2);
    assert_eq!(got.len(), 2);
    let mut rcpts: Vec<&str> = got
        .iter()
        .map(|m| m["rcpt_tos"][0].as_str().unwrap())
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["dev@example.com", "ops@example.com"]);
    for m in &got {
        assert_eq!(m["rcpt_tos"].as_array().unwrap().len(), 1);
        assert_eq!(m["mail_from"], "logcrunch@example.com");
        assert_eq!(m["content_type"], "multipart/alternative");
        let subject = m["subject"].as_str().unwrap();
        assert!(
            subject.starts_with("[logcrunch] 1 alert (medium): 5xx rate"),
            "{subject}"
        );
        let parts = m["parts"].as_array().unwrap();
        let part = |t: &str| {
            parts
                .iter()
                .find(|p| p["type"] == t)
                .unwrap_or_else(|| panic!("no {t} part in {m}"))["body"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let (text, html) = (part("text/plain"), part("text/html"));
        for body in [&text, &html] {
            assert!(body.contains("5xx responses, e.g. "), "{body}");
            assert!(body.contains("logcrunch report errors --since"), "{body}");
        }
        // Sample lines are named by source and byte offset.
        let sample = text
            .lines()
            .find(|l| l.contains("5xx responses, e.g. "))
            .unwrap();
        let at = sample.rsplit("e.g. ").next().unwrap();
        let (source, offset) = at.rsplit_once(':').unwrap();
        assert!(
            source.ends_with("a.log") && offset.parse::<u64>().is_ok(),
            "{sample}"
        );
        assert!(html.contains("<li>") && html.contains("</html>"));
    }
    // The same condition again (more logs of the same day): within the cooldown, nothing is sent.
    generate(d, 5_000, 9, "error-burst@10m+20m", "in/b.log");
    let (out, _) = run(d, &[]);
    assert!(out["ingest"]["rows"].as_u64().unwrap() > 0);
    assert_eq!(out["alerts"]["alerts"], 0, "{out}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.received().len(), 2);
    let st = status(d);
    assert_eq!(st.len(), 2);
    assert!(
        st.iter()
            .all(|m| m["status"] == "sent" && m["attempts"] == 1)
    );
}

#[test]
fn a_server_that_is_down_loses_nothing_and_gets_each_message_once_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = closed_port();
    project(d, port, "");
    let (out, stderr) = run(d, &[]);
    assert_eq!(out["alerts"]["alerts"], 1);
    assert_eq!(out["alerts"]["sent"], 0);
    assert_eq!(out["alerts"]["pending"], 2);
    assert!(stderr.contains("kept for the next run"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    let st = status(d);
    assert_eq!(st.len(), 2);
    assert!(
        st.iter()
            .all(|m| m["status"] == "pending" && m["attempts"] == 2)
    );
    assert!(
        st[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("is it running")
    );

    let server = Server::start(&d.join("mail"), port, &[]);
    let (out, _) = run(d, &[]);
    assert_eq!(out["alerts"]["sent"], 2, "{out}");
    assert_eq!(out["alerts"]["pending"], 0);
    let (out, _) = run(d, &[]);
    assert_eq!(out["alerts"]["sent"], 0);
    std::thread::sleep(Duration::from_millis(300));
    let got = server.received();
    assert_eq!(got.len(), 2, "each message exactly once");
    assert!(status(d).iter().all(|m| m["status"] == "sent"));
}

#[test]
fn dry_run_prints_the_digest_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("mail"), 0, &[]);
    project(d, server.port, "");
    let out = logcrunch(d)
        .args(["--config", "cfg.yaml", "--dry-run", "run"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("dry run: not sent"), "{stdout}");
    assert!(stdout.contains("To: ops@example.com") && stdout.contains("To: dev@example.com"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.received().is_empty());
    assert!(status(d).is_empty());
}

/// A certificate for localhost and 127.0.0.1 (`ca`: a CA certificate, else a leaf marked
/// CA:FALSE), with a new key.
fn localhost_params(ca: bool) -> rcgen::CertificateParams {
    let mut p =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    p.is_ca = if ca {
        rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained)
    } else {
        rcgen::IsCa::ExplicitNoCa
    };
    p
}

/// Writes `cert` and `key` as `NAME.pem` and `NAME-key.pem` in `d`.
fn write_pem(
    d: &Path,
    name: &str,
    cert: &rcgen::Certificate,
    key: &rcgen::KeyPair,
) -> (PathBuf, PathBuf) {
    let (c, k) = (
        d.join(format!("{name}.pem")),
        d.join(format!("{name}-key.pem")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

/// A private CA (the file the config trusts) and a server certificate for localhost signed by it.
fn certificates(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let (ca, _) = write_pem(d, "ca", &ca_cert, &ca_key);
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = localhost_params(false).signed_by(&key, &issuer).unwrap();
    let (cert, key) = write_pem(d, "cert", &leaf, &key);
    (ca, cert, key)
}

#[test]
fn starttls_with_a_private_ca_login_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, cert, key) = certificates(d);
    let server = Server::start(
        &d.join("mail"),
        0,
        &[
            "--starttls",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--auth",
            "alerts:s3cret-pw",
            "--reject-rcpt",
            "nobody",
        ],
    );
    let email = format!(
        "  security: starttls\n  ca_file: {}\n  username: alerts\n  password_env: LC_TEST_SMTP_PW\n",
        ca.display()
    );
    project(d, server.port, &email);
    let cfg = std::fs::read_to_string(d.join("cfg.yaml"))
        .unwrap()
        .replace("host: 127.0.0.1", "host: localhost");
    std::fs::write(d.join("cfg.yaml"), cfg).unwrap();
    let test = |pw: &str, to: &str| {
        logcrunch(d)
            .env("LC_TEST_SMTP_PW", pw)
            .args(["--config", "cfg.yaml", "alert", "test", "--to", to])
            .output()
            .unwrap()
    };
    let ok = test("s3cret-pw", "ops@example.com");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let got = wait_for(&server, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["tls"], true);
    assert_eq!(got[0]["subject"], "[logcrunch] test message");

    let wrong = test("wrong-pw", "ops@example.com");
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("refused the login of \"alerts\""), "{err}");
    assert!(
        !err.contains("wrong-pw") && !err.contains("s3cret"),
        "{err}"
    );

    let bad_rcpt = test("s3cret-pw", "nobody@example.com");
    assert!(!bad_rcpt.status.success());
    let err = String::from_utf8_lossy(&bad_rcpt.stderr);
    assert!(
        err.contains("refused recipient nobody@example.com"),
        "{err}"
    );

    // Without the certificate the server is not trusted.
    let cfg = std::fs::read_to_string(d.join("cfg.yaml")).unwrap();
    let untrusted = cfg.replace(&format!("  ca_file: {}\n", ca.display()), "");
    std::fs::write(d.join("cfg.yaml"), untrusted).unwrap();
    let no_ca = test("s3cret-pw", "ops@example.com");
    assert!(!no_ca.status.success());
    let err = String::from_utf8_lossy(&no_ca.stderr);
    assert!(err.contains("TLS") || err.contains("certificate"), "{err}");
    assert_eq!(server.received().len(), 1);
}

#[test]
fn an_unreachable_host_and_a_missing_password_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    project(d, closed_port(), "");
    let out = logcrunch(d)
        .args(["--config", "cfg.yaml", "alert", "test"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot talk to the SMTP server 127.0.0.1:"),
        "{err}"
    );
    std::fs::write(
        d.join("cfg.yaml"),
        std::fs::read_to_string(d.join("cfg.yaml")).unwrap()
            + "  username: alerts\n  password_env: LC_TEST_UNSET_PW\n",
    )
    .unwrap();
    let out = logcrunch(d)
        .env_remove("LC_TEST_UNSET_PW")
        .args(["--config", "cfg.yaml", "alert", "test"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("LC_TEST_UNSET_PW") && err.contains("not set"),
        "{err}"
    );
}

#[test]
fn a_regression_against_the_days_before_is_alerted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("mail"), 0, &[]);
    std::fs::create_dir_all(d.join("in")).unwrap();
    // One quiet day, then a day whose latency is five times higher throughout.
    let day = |start: &str, inject: &str, out: &str| {
        logcrunch(d)
            .args([
                "generate",
                "--format",
                "nginx_timed",
                "--lines",
                "17280",
                "--rps",
                "0.2",
            ])
            .args(["--start", start, "--seed", "4", "-o", out])
            .args(if inject.is_empty() {
                vec![]
            } else {
                vec!["--inject", inject]
            })
            .assert()
            .success();
    };
    day("2024-03-01T00:00:00Z", "", "in/day1.log");
    std::fs::write(
        d.join("cfg.yaml"),
        format!(
            "logs:\n  source_dir: in\n  format: nginx_timed\nstorage:\n  dataset: data\n\
             reports:\n  dir: reports\nalerting:\n  enabled: true\n  rules:\n    \
             - {{name: regressions, kind: regression, max_regression: \"p95:+50%\", baseline_days: 7, min_requests: 200, severity: high}}\n\
             email:\n  host: 127.0.0.1\n  port: {}\n  to: [ops@example.com]\n  timeout: 30s\n",
            server.port
        ),
    )
    .unwrap();
    let (out, _) = run(d, &[]);
    assert_eq!(out["alerts"]["alerts"], 0, "{out}");
    day(
        "2024-03-02T00:00:00Z",
        "latency-spike@1m+23h",
        "in/day2.log",
    );
    let (out, _) = run(d, &[]);
    assert!(out["alerts"]["alerts"].as_u64().unwrap() >= 1, "{out}");
    let got = wait_for(&server, 1);
    assert_eq!(got.len(), 1);
    let subject = got[0]["subject"].as_str().unwrap();
    assert!(
        subject.contains("(high)") && subject.contains("regressed"),
        "{subject}"
    );
    let text = got[0]["parts"][0]["body"].as_str().unwrap();
    assert!(
        text.contains("p95:")
            && text.contains("logcrunch compare --baseline @2024-02-24T00:00:00Z..2024-03-02"),
        "{text}"
    );
}

#[test]
fn starttls_with_a_self_signed_certificate_trusted_through_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let make = |name: &str, ca: bool| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = localhost_params(ca).self_signed(&key).unwrap();
        write_pem(d, name, &cert, &key)
    };
    for (name, ca, works) in [("leaf", false, true), ("ca", true, false)] {
        let (cert, key) = make(name, ca);
        let args = ["--starttls", cert.to_str().unwrap(), key.to_str().unwrap()];
        let server = Server::start(&d.join(format!("mail-{name}")), 0, &args);
        std::fs::write(
            d.join("cfg.yaml"),
            format!(
                "email:\n  host: localhost\n  port: {}\n  security: starttls\n  ca_file: {}\n  \
                 to: [ops@example.com]\n  timeout: 30s\n",
                server.port,
                cert.display()
            ),
        )
        .unwrap();
        let out = logcrunch(d)
            .args(["--config", "cfg.yaml", "alert", "test"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), works, "{name}: {err}");
        if works {
            let got = wait_for(&server, 1);
            assert_eq!(got[0]["tls"], true);
        } else {
            assert!(
                err.contains("is a CA certificate") && err.contains("CA:FALSE"),
                "{err}"
            );
        }
    }
}

#[test]
fn anomaly_and_security_rules_fire_on_what_the_run_found() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("in")).unwrap();
    logcrunch(d)
        .args([
            "generate",
            "--format",
            "nginx_timed",
            "--lines",
            "200000",
            "--rps",
            "4",
        ])
        .args([
            "--attack-rate",
            "0.002",
            "--inject",
            "latency-spike@10h+20m",
            "-o",
            "in/a.log",
        ])
        .assert()
        .success();
    std::fs::write(
        d.join("cfg.yaml"),
        "logs:\n  source_dir: in\n  format: nginx_timed\nstorage:\n  dataset: data\n\
         reports:\n  dir: reports\nalerting:\n  enabled: true\n  rules:\n    \
         - {name: anomalies, kind: anomaly, min_severity: medium}\n    \
         - {name: attacks, kind: security, category: any, min_count: 5, severity: high}\n\
         email:\n  to: [sec@example.com]\n",
    )
    .unwrap();
    let out = logcrunch(d)
        .args(["--config", "cfg.yaml", "--dry-run", "run"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = &stdout[stdout.find("--- dry run").expect("a digest")..];
    assert!(digest.contains("To: sec@example.com"), "{digest}");
    // The spike is an anomaly of high severity, whatever the rule's; tagged requests come with
    // their clients and sample lines.
    // p50, p95 and p99 of one route make one alert.
    let title = digest
        .lines()
        .find(|l| l.contains("[high] latency anomaly on route * ("))
        .unwrap_or_else(|| panic!("no latency alert: {digest}"));
    assert!(title.contains("p50"), "{title}");
    assert_eq!(
        digest.matches("] latency anomaly on route * (").count(),
        1,
        "{digest}"
    );
    assert!(digest.contains("ms vs expected"), "{digest}");
    assert!(digest.contains("requests tagged"), "{digest}");
    assert!(
        digest.contains("logcrunch report security --since"),
        "{digest}"
    );
    assert!(digest.contains("logcrunch detect --metric"), "{digest}");
    assert!(
        digest.contains("observed") && digest.contains("expected"),
        "{digest}"
    );
}

/// `watch` follows a log that a writer keeps appending to: a latency spike in the written traffic
/// is one email on the SMTP server, within a few intervals of the spike being written, and only
/// one: the routes and quantiles that cross their thresholds a cycle or two later join it within
/// `group_wait`, and what later cycles see again is in its cooldown.
#[test]
fn watch_mails_a_spike_in_the_written_traffic_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(&d.join("mail"), 0, &[]);
    std::fs::create_dir_all(d.join("in")).unwrap();
    // 3 h 40 min at 4 requests a second; the last 40 minutes are written while `watch` runs, with
    // a latency spike from their 10th to their 20th minute.
    logcrunch(d)
        .args(["generate", "--format", "nginx_timed", "--rps", "4"])
        .args(["--lines", "52800", "--seed", "3", "-o", "all.log"])
        .args(["--inject", "latency-spike@2024-01-01T03:10:00Z+10m"])
        .assert()
        .success();
    let text = std::fs::read_to_string(d.join("all.log")).unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let at = |stamp: &str| lines.iter().position(|l| l.contains(stamp)).unwrap();
    let (history, spike_end) = (at("01/Jan/2024:03:00:"), at("01/Jan/2024:03:20:"));
    std::fs::write(d.join("in/a.log"), lines[..history].concat()).unwrap();
    std::fs::write(
        d.join("cfg.yaml"),
        format!(
            "logs:\n  source_dir: in\n  format: nginx_timed\nstorage:\n  dataset: data\n\
             alerting:\n  enabled: true\n  group_wait: 3s\n  rules:\n    \
             - {{name: anomalies, kind: anomaly, min_severity: medium}}\n\
             email:\n  host: 127.0.0.1\n  port: {}\n  from: logcrunch@example.com\n  \
             to: [ops@example.com]\n",
            server.port
        ),
    )
    .unwrap();
    let mut watch = common::start_watch(d, "1s");
    let said = || std::fs::read_to_string(d.join("watch.out")).unwrap_or_default();
    let rows = || -> u64 {
        said()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|e| e["rows"].as_u64().unwrap_or(0))
            .sum()
    };
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{what}: {}",
                said()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    until("the history is ingested", &|| rows() == history as u64);
    let early = server.received();
    assert!(
        early.is_empty(),
        "steady traffic raised an alert: {early:?}"
    );
    // The writer: 2,000 lines a second, in blocks every 100 ms.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(d.join("in/a.log"))
        .unwrap();
    let mut spike_written = None;
    for (i, block) in lines[history..].chunks(200).enumerate() {
        use std::io::Write;
        log.write_all(block.concat().as_bytes()).unwrap();
        log.flush().unwrap();
        if spike_written.is_none() && history + (i + 1) * 200 >= spike_end {
            spike_written = Some(std::time::SystemTime::now());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    until("every line is ingested", &|| rows() == lines.len() as u64);
    let first_mail = wait_for(&server, 1);
    let mailed = std::fs::read_dir(d.join("mail"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json").then(|| p.metadata().unwrap().modified().unwrap())
        })
        .min();
    let latency = mailed.map_or(Duration::MAX, |t| {
        t.duration_since(spike_written.unwrap()).unwrap_or_default()
    });
    // Later cycles, with the whole spike and the traffic after it, send nothing more.
    std::thread::sleep(Duration::from_secs(4));
    Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status()
        .unwrap();
    assert!(watch.wait().unwrap().success(), "{}", said());
    let got = server.received();
    eprintln!(
        "spike written; the email came within {:.1} s (1 s interval, 3 s group_wait)",
        latency.as_secs_f64()
    );
    let subjects: Vec<&str> = got.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert!(!first_mail.is_empty(), "no email for the spike: {}", said());
    assert_eq!(got.len(), 1, "{subjects:?}\n{got:?}");
    let subject = got[0]["subject"].as_str().unwrap();
    assert!(subject.contains("latency anomaly on route"), "{subject}");
    assert!(latency < Duration::from_secs(20), "{latency:?}");
}
