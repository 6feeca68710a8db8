//! The format catalogue, directives, auto-detection and error logs, on real and sample logs.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{builtin, ingest_json, logcrunch, parse_with, query_json};
use logcrunch::parse::{BadReason, Patterns};
use predicates::str::contains;
use serde_json::Value;

fn testdata(name: &str) -> std::path::PathBuf {
    common::repo().join("testdata/formats").join(name)
}

fn get<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// A logged `-` is null in logcrunch; numbers compare as their text.
fn same(want: &Value, got: Option<&str>) -> bool {
    match want {
        Value::String(w) if w == "-" => got.is_none(),
        Value::String(w) => got == Some(w.as_str()),
        Value::Number(n) => got == Some(n.to_string().as_str()),
        _ => false,
    }
}

fn num(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

/// The format auto-detection picks for `text` (whole input).
fn detect(patterns: &Patterns, text: &str) -> Option<String> {
    let mut cache = logcrunch::parse::sniff::FormatCache::default();
    let c = patterns.sniff(text.as_bytes(), true, 1 << 16, &mut cache);
    c.first()
        .filter(|c| c.rate >= 0.9)
        .map(|c| c.format.clone())
}

fn parse_file(format: &str, file: &str) -> Vec<Value> {
    let pats = builtin();
    let text = std::fs::read_to_string(testdata(file)).unwrap();
    assert_eq!(
        detect(&pats, &text).as_deref(),
        Some(format),
        "{file} is detected as {format}"
    );
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            parse_with(&pats, format, l, text.as_bytes())
                .unwrap_or_else(|r| panic!("{file}: {l}: {r:?}"))
        })
        .collect()
}

#[test]
fn w3c_iis_with_fields_header() {
    let rows = parse_file("w3c", "iis.log");
    assert_eq!(rows.len(), 3);
    assert_eq!(get(&rows[0], "ts"), Some("2024-03-01T00:00:01Z"));
    assert_eq!(get(&rows[0], "client_ip"), Some("203.0.113.9"));
    assert_eq!(get(&rows[0], "path"), Some("/default.htm"));
    assert_eq!(get(&rows[0], "query"), None);
    assert_eq!(get(&rows[1], "query"), Some("id=7&x=1"));
    assert_eq!(get(&rows[1], "user"), Some("alice"));
    assert_eq!(get(&rows[1], "referer"), Some("https://example.com/"));
    assert_eq!(num(&rows[1], "status"), Some(404));
    assert_eq!(get(&rows[1], "sc_win32_status"), Some("2"));
    assert_eq!(num(&rows[2], "response_time_us"), Some(120_000));
    assert_eq!(get(&rows[2], "method"), Some("POST"));
}

#[test]
fn caddy_json() {
    let rows = parse_file("caddy", "caddy.log");
    assert_eq!(get(&rows[0], "ts"), Some("2024-03-01T00:00:01.524102Z"));
    assert_eq!(get(&rows[0], "client_ip"), Some("203.0.113.9"));
    assert_eq!(
        (get(&rows[0], "path"), get(&rows[0], "query")),
        (Some("/cart"), Some("item=7"))
    );
    assert_eq!(get(&rows[0], "user_agent"), Some("curl/8.4.0"));
    assert_eq!(get(&rows[0], "vhost"), Some("shop.example.com"));
    assert_eq!(num(&rows[0], "response_time_us"), Some(929));
    assert_eq!(
        (num(&rows[0], "status"), num(&rows[0], "bytes")),
        (Some(200), Some(10_900))
    );
    assert_eq!(get(&rows[1], "referer"), Some("https://shop.example.com/"));
    assert_eq!(num(&rows[1], "response_time_us"), Some(1_250_000));
    assert_eq!(get(&rows[1], "user"), Some("bob"));
}

#[test]
fn nginx_escape_json() {
    let rows = parse_file("nginx_json", "nginx_json.log");
    assert_eq!(get(&rows[0], "ts"), Some("2024-03-01T00:00:01Z"));
    assert_eq!(get(&rows[0], "method"), Some("GET"));
    assert_eq!(num(&rows[0], "response_time_us"), Some(4_000));
    assert_eq!(get(&rows[1], "user_agent"), Some(r#"Mozilla/5.0 "quoted""#));
    assert_eq!(get(&rows[1], "x_forwarded_for"), Some("10.1.1.1"));
    assert_eq!(num(&rows[1], "status"), Some(401));
}

#[test]
fn aws_alb() {
    let rows = parse_file("aws_alb", "alb.log");
    assert_eq!(get(&rows[0], "ts"), Some("2018-07-02T22:23:00.186641Z"));
    assert_eq!(get(&rows[0], "client_ip"), Some("192.168.131.39"));
    assert_eq!(get(&rows[0], "client_port"), Some("2817"));
    assert_eq!(get(&rows[0], "path"), Some("http://www.example.com:80/"));
    assert_eq!(num(&rows[0], "response_time_us"), Some(1_000));
    assert_eq!(num(&rows[1], "status"), Some(503));
    assert_eq!(
        num(&rows[1], "response_time_us"),
        None,
        "-1 means not measured"
    );
    assert_eq!(get(&rows[1], "target_processing_time"), Some("-1"));
    assert_eq!(get(&rows[1], "vhost"), Some("www.example.com"));
}

#[test]
fn traefik_clf() {
    let rows = parse_file("traefik", "traefik.log");
    assert_eq!(get(&rows[0], "router"), Some("test@docker"));
    assert_eq!(get(&rows[0], "backend_url"), Some("http://172.17.0.3:80"));
    assert_eq!(num(&rows[0], "response_time_us"), Some(0));
    assert_eq!(num(&rows[1], "status"), None, "no status from the backend");
    assert_eq!(get(&rows[1], "request_count"), Some("45640"));
}

#[test]
fn haproxy_http_log_behind_syslog_headers() {
    let rows = parse_file("haproxy_http+syslog", "haproxy_http.log");
    assert_eq!(get(&rows[0], "ts"), Some("2009-02-06T12:14:14.655000Z"));
    assert_eq!(get(&rows[0], "client_ip"), Some("10.0.1.2"));
    assert_eq!(get(&rows[0], "x_forwarded_for"), None);
    assert_eq!(
        [0, 1, 2].map(|i| get(&rows[0], ["frontend", "backend", "server"][i])),
        [Some("http-in"), Some("static"), Some("srv1")]
    );
    assert_eq!(num(&rows[0], "response_time_us"), Some(109_000), "Ta/Tt");
    assert_eq!(
        num(&rows[0], "upstream_response_time_us"),
        Some(69_000),
        "Tr"
    );
    assert_eq!(get(&rows[0], "time_connect_ms"), Some("30"));
    assert_eq!(get(&rows[0], "termination_state"), Some("----"));
    assert_eq!(get(&rows[0], "captured_request_headers"), Some("1wt.eu"));
    assert_eq!(get(&rows[0], "captured_response_headers"), Some(""));
    assert_eq!(get(&rows[0], "path"), Some("/index.html"));
    assert_eq!(
        (num(&rows[1], "response_time_us"), num(&rows[1], "bytes")),
        (Some(30_000), Some(243)),
        "logasap's + marks"
    );
    assert_eq!(get(&rows[1], "srv_queue"), Some("1"));
    assert_eq!(get(&rows[2], "server"), Some("<NOSRV>"));
    assert_eq!(
        num(&rows[2], "upstream_response_time_us"),
        None,
        "-1: no server"
    );
    assert_eq!(get(&rows[2], "termination_state"), Some("CR--"));
    assert_eq!(num(&rows[3], "status"), None, "-1: no response");
    assert_eq!(get(&rows[4], "frontend"), Some("https~"));
    assert_eq!(
        get(&rows[4], "captured_request_headers"),
        Some("www.example.com|Mozilla/5.0")
    );
    assert_eq!(get(&rows[4], "query"), Some("id=1"));
}

#[test]
fn haproxy_tcp_and_clf_logs() {
    let tcp = parse_file("haproxy_tcp+syslog", "haproxy_tcp.log");
    assert_eq!(get(&tcp[0], "client_ip"), Some("10.0.1.2"));
    assert_eq!(num(&tcp[0], "response_time_us"), Some(5_007_000));
    assert_eq!(num(&tcp[0], "bytes"), Some(212));
    assert_eq!(get(&tcp[0], "retries"), Some("3"));
    assert_eq!(get(&tcp[1], "server"), Some("<NOSRV>"));
    assert_eq!(num(&tcp[1], "status"), None);
    let clf = parse_file("haproxy_clf", "haproxy_clf.log");
    assert_eq!(get(&clf[0], "client_ip"), Some("10.0.1.2"));
    assert_eq!(get(&clf[0], "client_port"), Some("33317"));
    assert_eq!(get(&clf[0], "backend"), Some("static"));
    assert_eq!(num(&clf[0], "response_time_us"), Some(109_000));
    assert_eq!(num(&clf[0], "upstream_response_time_us"), Some(69_000));
    assert_eq!(
        get(&clf[0], "captured_headers"),
        Some(r#""1wt.eu" "Mozilla/5.0""#)
    );
    assert_eq!(get(&clf[1], "server"), Some("<NOSRV>"));
    assert_eq!(num(&clf[1], "status"), Some(503));
    assert_eq!(get(&clf[1], "captured_headers"), None);
}

#[test]
fn traefik_json_durations_in_nanoseconds() {
    let rows = parse_file("traefik_json", "traefik.json.log");
    assert_eq!(get(&rows[0], "ts"), Some("2024-03-01T00:00:01.123456Z"));
    assert_eq!(get(&rows[0], "client_ip"), Some("192.0.2.10"));
    assert_eq!(
        (get(&rows[0], "path"), get(&rows[0], "query")),
        (Some("/api/items"), Some("page=2"))
    );
    assert_eq!(num(&rows[0], "response_time_us"), Some(1_843));
    assert_eq!(num(&rows[0], "upstream_response_time_us"), Some(1_650));
    assert_eq!(get(&rows[0], "router"), Some("app@docker"));
    assert_eq!(get(&rows[0], "user"), None);
    assert_eq!(get(&rows[0], "referer"), Some("https://app.example.com/"));
    assert_eq!(
        get(&rows[1], "ts"),
        Some("2024-03-01T00:00:02Z"),
        "from `time`"
    );
    assert_eq!(num(&rows[1], "status"), Some(404));
}

#[test]
fn log4js_takes_its_time_from_the_stamp() {
    let rows = parse_file("log4js+stamp3", "log4js.log");
    assert_eq!(get(&rows[0], "ts"), Some("2024-03-01T00:00:01.555000Z"));
    assert_eq!(get(&rows[0], "client_ip"), Some("203.0.113.9"));
    assert_eq!(num(&rows[0], "bytes"), Some(1543));
    assert_eq!(get(&rows[1], "client_ip"), Some("::ffff:198.51.100.7"));
    assert_eq!(num(&rows[1], "bytes"), None);
    let pats = builtin();
    assert_eq!(
        parse_with(
            &pats,
            "log4js",
            r#"1.2.3.4 - - "GET / HTTP/1.1" 200 1 "" """#,
            b""
        )
        .err(),
        Some(BadReason::NoTimestamp),
        "without its header the line has no time"
    );
}

#[test]
fn headers_in_front_of_any_format() {
    let pats = builtin();
    let combined =
        r#"203.0.113.9 - - [01/Mar/2024:00:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8""#;
    for (header, name) in [
        ("Mar  1 00:00:01 web1 apache2[812]: ", "combined+syslog"),
        ("<13>Mar  1 00:00:01 nginx: ", "combined+syslog"),
        (
            "<165>1 2024-03-01T00:00:01.003Z web1 nginx 812 - - ",
            "combined+syslog",
        ),
        ("2024-03-01T00:00:01.123456789Z ", "combined+stamp0"),
        (
            "2024-03-01 00:00:01,123 - gunicorn.access - INFO - ",
            "combined+stamp5",
        ),
        ("   ", "combined"),
    ] {
        let text = format!("{header}{combined}\n").repeat(3);
        assert_eq!(detect(&pats, &text).as_deref(), Some(name), "{header}");
        let row = parse_with(&pats, name, &format!("{header}{combined}"), b"").unwrap();
        assert_eq!(get(&row, "client_ip"), Some("203.0.113.9"), "{header}");
        assert_eq!(get(&row, "ts"), Some("2024-03-01T00:00:01Z"), "{header}");
    }
    assert_eq!(
        parse_with(&pats, "combined+syslog", combined, b"").err(),
        Some(BadReason::NoMatch),
        "a line without the file's header"
    );
}

/// The manual's `log-format` strings of `option httplog`, `option tcplog` and `option httplog clf`,
/// compiled, read the documented lines as the built-in formats do.
#[test]
fn haproxy_log_format_directives_match_the_built_in_formats() {
    let yaml = r#"formats:
  hx_http:
    haproxy: '%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r'
  hx_tcp:
    haproxy: 'log-format "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq"'
  hx_clf:
    haproxy: 'log-format "%{+Q}o %{-Q}ci - - [%trg] %r %ST %B \"\" \"\" %cp %ms %ft %b %s %TR %Tw %Tc %Tr %Ta %tsc %ac %fc %bc %sc %rc %sq %bq %CC %CS %hrl %hsl"'
"#;
    let mine = Patterns::parse(yaml, Path::new("haproxy.yaml")).unwrap();
    let pats = builtin();
    let keys = [
        "ts",
        "client_ip",
        "method",
        "path",
        "query",
        "status",
        "bytes",
        "response_time_us",
        "upstream_response_time_us",
        "frontend",
        "backend",
        "server",
        "termination_state",
        "time_queue_ms",
        "time_connect_ms",
        "retries",
        "srv_queue",
        "captured_request_headers",
    ];
    for (compiled, builtin_name, file) in [
        ("hx_http+syslog", "haproxy_http+syslog", "haproxy_http.log"),
        ("hx_tcp+syslog", "haproxy_tcp+syslog", "haproxy_tcp.log"),
        ("hx_clf", "haproxy_clf", "haproxy_clf.log"),
    ] {
        let text = std::fs::read_to_string(testdata(file)).unwrap();
        for line in text.lines() {
            let got = parse_with(&mine, compiled, line, b"")
                .unwrap_or_else(|r| panic!("{compiled}: {r:?}: {line}"));
            let want = parse_with(&pats, builtin_name, line, b"").unwrap();
            for k in keys {
                if k == "captured_request_headers" && compiled == "hx_clf" {
                    // The built-in keeps the whole list; the directive knows where it starts.
                    continue;
                }
                assert_eq!(got.get(k), want.get(k), "{compiled} {k}: {line}");
            }
        }
    }
    let clf = parse_with(
        &mine,
        "hx_clf",
        text_line("haproxy_clf.log", 0).as_str(),
        b"",
    )
    .unwrap();
    assert_eq!(
        get(&clf, "captured_request_headers"),
        Some(r#""1wt.eu" "Mozilla/5.0""#)
    );
    assert_eq!(get(&clf, "captured_response_headers"), None);
}

#[test]
fn tomcat_valve_patterns_and_jetty_request_logs() {
    // Lines as the servers' documentation describes them for each pattern.
    let yaml = r#"formats:
  spring:
    tomcat: '%t %a %r %s (%D microseconds)'
  valve9:
    tomcat: |
      <Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs"
             prefix="localhost_access_log" suffix=".txt"
             pattern="%h %l %u %t &quot;%r&quot; %s %b %D %S %I" />
    tomcat_version: 9
  valve7:
    tomcat: '%a %{yyyy-MM-dd HH:mm:ss.SSS Z}t "%r" %s %B %T "%{User-Agent}i" %{JSESSIONID}c'
  jetty_ext:
    jetty: EXTENDED_NCSA_FORMAT
  jetty_custom:
    jetty: '%{client}a %{yyyy-MM-dd HH:mm:ss.SSS|UTC}t "%r" %s %O %{ms}T "%{User-Agent}i"'
"#;
    let pats = Patterns::parse(yaml, Path::new("servlet.yaml")).unwrap();
    let row = |format: &str, line: &str| {
        parse_with(&pats, format, line, b"").unwrap_or_else(|r| panic!("{format}: {r:?}: {line}"))
    };

    let r = row(
        "spring",
        "[06/Dec/2026:10:00:01 +0100] 10.0.0.1 GET /api/items?page=2 HTTP/1.1 200 (1532 microseconds)",
    );
    assert_eq!(get(&r, "ts"), Some("2026-12-06T09:00:01Z"));
    assert_eq!(get(&r, "path"), Some("/api/items"));
    assert_eq!(get(&r, "query"), Some("page=2"));
    assert_eq!(num(&r, "response_time_us"), Some(1532));

    let r = row(
        "valve9",
        r#"192.168.1.20 - alice [06/Dec/2026:10:00:02 +0000] "POST /login HTTP/1.1" 302 - 47 9F2C1A0B3D4E5F60718293A4B5C6D7E8 http-nio-8080-exec-7"#,
    );
    assert_eq!(get(&r, "user"), Some("alice"));
    assert_eq!(num(&r, "status"), Some(302));
    assert_eq!(get(&r, "bytes"), None);
    assert_eq!(num(&r, "response_time_us"), Some(47_000));
    assert_eq!(
        get(&r, "session_id"),
        Some("9F2C1A0B3D4E5F60718293A4B5C6D7E8")
    );
    assert_eq!(get(&r, "thread"), Some("http-nio-8080-exec-7"));

    let r = row(
        "valve7",
        r#"2001:db8::7 2026-12-06 10:00:03.250 +0000 "GET /static/app.js HTTP/1.1" 200 5120 0.004 "Mozilla/5.0 (X11; Linux x86_64) \"quoted\"" 6A1B"#,
    );
    assert_eq!(get(&r, "ts"), Some("2026-12-06T10:00:03.250000Z"));
    assert_eq!(get(&r, "client_ip"), Some("2001:db8::7"));
    assert_eq!(num(&r, "response_time_us"), Some(4_000));
    assert_eq!(get(&r, "cookie_jsessionid"), Some("6A1B"));
    assert!(get(&r, "user_agent").unwrap().ends_with(r#"\"quoted\""#));

    let r = row(
        "jetty_ext",
        r#"123.4.5.6 - - [27/Aug/2004:10:16:17 +0000] "GET /jetty/tut/XmlConfiguration.html HTTP/1.1" 200 76793 "http://localhost:8080/jetty/tut/logging.html" "Mozilla/5.0 (X11; U; Linux i686; en-US; rv:1.6) Gecko/20040614 Firefox/0.8""#,
    );
    assert_eq!(num(&r, "bytes"), Some(76793));
    assert_eq!(
        get(&r, "referer"),
        Some("http://localhost:8080/jetty/tut/logging.html")
    );

    let r = row(
        "jetty_custom",
        r#"10.1.2.3 [2026-12-06 10:00:04.007] "GET /health HTTP/2.0" 200 2 12 "kube-probe/1.29""#,
    );
    assert_eq!(get(&r, "ts"), Some("2026-12-06T10:00:04.007000Z"));
    assert_eq!(num(&r, "response_time_us"), Some(12_000));
    assert_eq!(get(&r, "user_agent"), Some("kube-probe/1.29"));

    for (bad, why) in [
        (
            "formats:\n  x:\n    tomcat: common\n    jetty: NCSA_FORMAT\n",
            "two definitions",
        ),
        (
            "formats:\n  x:\n    jetty: NCSA_FORMAT\n    tomcat_version: 9\n",
            "tomcat_version without tomcat",
        ),
    ] {
        let p = Patterns::parse(bad, Path::new("bad.yaml")).unwrap();
        assert!(p.parser("x", 1 << 16).is_err(), "{why} must be refused");
    }
}

fn text_line(file: &str, n: usize) -> String {
    std::fs::read_to_string(testdata(file))
        .unwrap()
        .lines()
        .nth(n)
        .unwrap()
        .to_string()
}

#[test]
fn aws_classic_load_balancer_and_s3() {
    let elb = parse_file("aws_elb", "aws_elb.log");
    assert_eq!(get(&elb[0], "ts"), Some("2015-05-13T23:39:43.945958Z"));
    assert_eq!(get(&elb[0], "client_ip"), Some("192.168.131.39"));
    assert_eq!(num(&elb[0], "response_time_us"), Some(1_048));
    assert_eq!(get(&elb[0], "backend_processing_time"), Some("0.001048"));
    assert_eq!(get(&elb[1], "ssl_protocol"), Some("TLSv1.2"));
    assert_eq!(num(&elb[2], "status"), Some(503));
    assert_eq!(num(&elb[2], "response_time_us"), None, "-1: no backend");
    let s3 = parse_file("aws_s3", "aws_s3.log");
    assert_eq!(get(&s3[0], "ts"), Some("2019-02-06T00:00:38Z"));
    assert_eq!(get(&s3[0], "client_ip"), Some("192.0.2.3"));
    assert_eq!(get(&s3[0], "operation"), Some("REST.GET.VERSIONING"));
    assert_eq!(get(&s3[0], "query"), Some("versioning"));
    assert_eq!(num(&s3[0], "response_time_us"), Some(7_000));
    assert_eq!(
        get(&s3[0], "vhost"),
        Some("amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com")
    );
    assert_eq!(get(&s3[0], "source_region"), Some("us-east-1"));
    assert_eq!(get(&s3[1], "access_point_arn"), None);
    assert_eq!(
        (num(&s3[2], "status"), get(&s3[2], "error_code")),
        (Some(404), Some("NoSuchKey"))
    );
    assert_eq!(get(&s3[2], "user"), None);
    assert_eq!(
        get(&s3[2], "host_id"),
        None,
        "an older record ends at version_id"
    );
}

#[test]
fn cloudfront_standard_logs_are_tab_separated_w3c() {
    let rows = parse_file("w3c", "cloudfront.log");
    assert_eq!(get(&rows[0], "ts"), Some("2019-12-04T21:02:31Z"));
    assert_eq!(get(&rows[0], "client_ip"), Some("192.0.2.100"));
    assert_eq!(
        get(&rows[0], "vhost"),
        Some("d111111abcdef8.cloudfront.net")
    );
    assert_eq!(get(&rows[0], "path"), Some("/index.html"));
    assert_eq!(get(&rows[0], "protocol"), Some("HTTP/2.0"));
    assert_eq!(
        num(&rows[0], "response_time_us"),
        Some(1_000),
        "time-taken in seconds"
    );
    assert_eq!(get(&rows[0], "x_edge_location"), Some("LAX1"));
    assert_eq!(get(&rows[1], "query"), Some("id=7"));
    assert_eq!(get(&rows[1], "x_forwarded_for"), Some("203.0.113.5"));
    assert_eq!(num(&rows[1], "response_time_us"), Some(250_000));
}

#[test]
fn squid_lighttpd_and_nginx_proxy_manager() {
    let squid = parse_file("squid", "squid.log");
    assert_eq!(get(&squid[0], "ts"), Some("2010-10-08T11:11:48.779000Z"));
    assert_eq!(num(&squid[0], "response_time_us"), Some(180_000));
    assert_eq!(get(&squid[0], "result_code"), Some("TCP_MISS"));
    assert_eq!(get(&squid[0], "path"), Some("http://www.google.com/"));
    assert_eq!(get(&squid[1], "method"), Some("CONNECT"));
    assert_eq!(get(&squid[1], "user"), Some("bob"));
    assert_eq!(get(&squid[2], "peer"), None);
    let lighttpd = parse_file("lighttpd", "lighttpd.log");
    assert_eq!(get(&lighttpd[0], "vhost"), Some("www.example.com"));
    assert_eq!(get(&lighttpd[0], "ts"), Some("2023-10-10T11:55:36Z"));
    assert_eq!(get(&lighttpd[1], "user"), Some("alice"));
    let proxy = parse_file("npm_proxy", "npm_proxy.log");
    assert_eq!(get(&proxy[0], "client_ip"), Some("203.0.113.9"));
    assert_eq!(get(&proxy[0], "vhost"), Some("app.example.com"));
    assert_eq!(
        (get(&proxy[0], "path"), get(&proxy[0], "query")),
        (Some("/api/items"), Some("page=2"))
    );
    assert_eq!(num(&proxy[0], "bytes"), Some(1543));
    assert_eq!(get(&proxy[0], "gzip_ratio"), Some("3.21"));
    assert_eq!(get(&proxy[1], "upstream_cache_status"), Some("HIT"));
    assert_eq!(num(&proxy[1], "status"), Some(304));
    assert_eq!(get(&proxy[1], "referer"), Some("https://app.example.com/"));
    let standard = parse_file("npm_standard", "npm_standard.log");
    assert_eq!(num(&standard[0], "status"), Some(444));
    assert_eq!(get(&standard[0], "path"), Some("/.env"));
    assert_eq!(get(&standard[1], "user_agent"), Some("Mozilla/5.0"));
}

#[test]
fn node_python_and_uwsgi_servers() {
    let morgan = parse_file("morgan_default", "morgan.log");
    assert_eq!(get(&morgan[0], "ts"), Some("2023-10-10T13:55:36Z"));
    assert_eq!(get(&morgan[0], "client_ip"), Some("::ffff:127.0.0.1"));
    assert_eq!(get(&morgan[1], "user"), Some("bob"));
    assert_eq!(num(&morgan[1], "bytes"), None);
    let tiny = parse_file("morgan_tiny+stamp0", "morgan_tiny.log");
    assert_eq!(get(&tiny[0], "ts"), Some("2024-03-01T00:00:01.123456Z"));
    assert_eq!(get(&tiny[0], "query"), Some("x=1"));
    assert_eq!(num(&tiny[0], "response_time_us"), Some(3_456));
    assert_eq!(num(&tiny[1], "status"), Some(401));
    let dev = parse_file("morgan_dev+stamp0", "morgan_dev.log");
    assert_eq!(num(&dev[0], "status"), Some(200));
    assert_eq!(num(&dev[0], "bytes"), Some(12));
    assert_eq!(get(&dev[1], "path"), Some("/missing"));
    assert_eq!(num(&dev[1], "response_time_us"), Some(512));
    let short = parse_file("morgan_short+syslog", "morgan_short.log");
    assert!(
        get(&short[0], "ts").unwrap().contains("-03-01T00:00:01"),
        "RFC 3164 has no year"
    );
    assert_eq!(get(&short[1], "user"), Some("bob"));
    assert_eq!(num(&short[1], "response_time_us"), Some(12_001));
    let gunicorn = parse_file("combined+stamp2", "gunicorn.log");
    assert_eq!(get(&gunicorn[0], "user_agent"), Some("kube-probe/1.29"));
    let uwsgi = parse_file("uwsgi", "uwsgi.log");
    assert_eq!(get(&uwsgi[0], "ts"), Some("2015-01-01T00:00:00Z"));
    assert_eq!(num(&uwsgi[0], "response_time_us"), Some(3_000));
    assert_eq!(get(&uwsgi[0], "user"), Some(""));
    assert_eq!(get(&uwsgi[1], "user"), Some("alice"));
    assert_eq!(
        (num(&uwsgi[1], "status"), get(&uwsgi[1], "protocol")),
        (Some(204), Some("HTTP/1.0"))
    );
    assert_eq!(get(&uwsgi[1], "query"), Some("x=1"));
    let pats = builtin();
    for (format, line) in [
        // Express morgan `combined` and `common`, gunicorn's default, Tomcat's `combined` and
        // `common` aliases and Jetty's NCSA log are Apache's layouts.
        (
            "combined",
            r#"::ffff:127.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8""#,
        ),
        // (combined takes common lines too)
        (
            "combined",
            r#"::ffff:127.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 12"#,
        ),
        (
            "combined",
            r#"192.168.0.1 - - [10/Oct/2023:13:55:36 +0200] "GET /app/ HTTP/1.1" 200 1024 "-" "Mozilla/5.0""#,
        ),
    ] {
        assert_eq!(
            detect(&pats, &format!("{line}\n")).as_deref(),
            Some(format),
            "{line}"
        );
    }
}

#[test]
fn nginx_upstream_times_keep_the_text_and_sum_to_microseconds() {
    let rows = parse_file("nginx_upstream", "upstream.log");
    assert_eq!(num(&rows[0], "response_time_us"), Some(130_000));
    assert_eq!(num(&rows[0], "upstream_response_time_us"), Some(125_000));
    assert_eq!(
        get(&rows[1], "upstream_response_time"),
        Some("0.500, 1.000 : 0.004")
    );
    assert_eq!(num(&rows[1], "upstream_response_time_us"), Some(1_504_000));
    assert_eq!(get(&rows[1], "upstream_connect_time"), Some("0.001, -"));
    assert_eq!(num(&rows[2], "upstream_response_time_us"), None);
}

#[test]
fn nginx_main_and_combined_with_seconds() {
    let pats = builtin();
    let main = r#"172.24.0.3 - alice [31/Dec/2024:17:32:06 +0000] "GET /x?y=1 HTTP/1.1" 200 615 "-" "curl/8.11.1" "1.2.3.4, 10.10.1.1""#;
    assert_eq!(
        detect(&pats, &format!("{main}\n")).as_deref(),
        Some("combined"),
        "a tie goes to the first listed"
    );
    let row = parse_with(&pats, "nginx_main", main, b"").unwrap();
    assert_eq!(get(&row, "user"), Some("alice"));
    assert_eq!(get(&row, "x_forwarded_for"), Some("1.2.3.4, 10.10.1.1"));
    assert_eq!(get(&row, "query"), Some("y=1"));
    let t = r#"10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 1024 "-" "Mozilla/5.0" 3"#;
    // A trailing integer may be %D (µs) or %T (s): the text cannot tell, detection takes the
    // first listed (%D) and a %T log needs --format combined_t.
    assert_eq!(
        detect(&pats, &format!("{t}\n")).as_deref(),
        Some("combined_us")
    );
    let row = parse_with(&pats, "combined_t", t, b"").unwrap();
    assert_eq!(num(&row, "response_time_us"), Some(3_000_000));
}

#[test]
fn goaccess_vcombined_sample() {
    let path = common::vendored().join("goaccess/vcombined_ci_sample.log");
    let text = std::fs::read_to_string(path).unwrap();
    let pats = builtin();
    assert_eq!(detect(&pats, &text).as_deref(), Some("vcombined"));
    for line in text.lines() {
        let row =
            parse_with(&pats, "vcombined", line, b"").unwrap_or_else(|r| panic!("{line}: {r:?}"));
        assert!(
            get(&row, "vhost").is_some() && get(&row, "port").is_some(),
            "{row}"
        );
    }
}

#[test]
fn lnav_custom_format_from_an_apache_directive() {
    let path = common::vendored().join("lnav/logfile_regexp_access_log.0");
    let text = std::fs::read_to_string(path).unwrap();
    let pats = Patterns::parse(
        "formats:\n  jira:\n    apache: '%v:%p %h %{X-AUSERNAME}i %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\" %D'\n",
        Path::new("custom.yaml"),
    )
    .unwrap();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row = parse_with(&pats, "jira", line, b"").unwrap_or_else(|r| panic!("{line}: {r:?}"));
        assert_eq!(get(&row, "vhost"), Some("localhost"));
        assert!(num(&row, "response_time_us").is_some(), "{row}");
        n += 1;
    }
    let first = parse_with(&pats, "jira", text.lines().next().unwrap(), b"").unwrap();
    assert_eq!(get(&first, "header_x_ausername"), Some("1j0vhgd"));
    assert_eq!(get(&first, "user"), Some("jsmith"));
    assert_eq!(num(&first, "response_time_us"), Some(116_075));
    assert_eq!(get(&first, "ts"), Some("2023-07-26T07:01:26Z"));
    println!("lnav custom format: {n} lines parsed");
    assert!(n >= 2);
}

/// Row values of every line of `text`, rendered for comparison.
fn rows_of(pats: &Patterns, format: &str, text: &str) -> Vec<Result<Value, BadReason>> {
    text.lines()
        .map(|l| parse_with(pats, format, l, b""))
        .collect()
}

#[test]
fn directive_formats_match_their_hand_written_twins() {
    let yaml = r#"
formats:
  nginx_timed_directive:
    nginx: '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time'
  combined_directive:
    apache: 'LogFormat "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"" combined'
  combined_us_directive:
    apache: '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'
"#;
    let mut pats = builtin();
    pats.formats.extend(
        Patterns::parse(yaml, Path::new("twins.yaml"))
            .unwrap()
            .formats,
    );
    for (generated, hand, directive) in [
        ("nginx_timed", "nginx_timed", "nginx_timed_directive"),
        ("combined", "combined", "combined_directive"),
        ("combined_us", "combined_us", "combined_us_directive"),
    ] {
        let g = logcrunch::generate::Generator::new(logcrunch::generate::GenerateOptions {
            format: generated.into(),
            lines: 3000,
            seed: 11,
            ..Default::default()
        })
        .unwrap();
        let mut out = Vec::new();
        g.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let a = rows_of(&pats, hand, &text);
        let b = rows_of(&pats, directive, &text);
        assert!(
            a.iter().all(Result::is_ok),
            "{hand} parses its own generated log"
        );
        assert_eq!(a, b, "{hand} and {directive} give the same rows");
    }
}

/// VRL vectors of the formats beyond common/combined/nginx (those are in realdata.rs).
#[test]
fn vrl_ingress_and_error_log_vectors() {
    let text = std::fs::read_to_string(common::vendored().join("vrl/vrl_parse_log_vectors.jsonl"))
        .unwrap();
    let pats = builtin();
    let (mut passed, mut deviations) = (0, Vec::new());
    for line in text.lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        let format = match (
            rec["function"].as_str().unwrap(),
            rec["format"].as_str().unwrap(),
        ) {
            ("parse_nginx_log", "ingress_upstreaminfo") => "ingress_nginx",
            ("parse_nginx_log", "error") => "nginx_error",
            ("parse_apache_log", "error") => "apache_error",
            _ => continue,
        };
        let Some(log) = rec["line"].as_str() else {
            deviations
                .push("a line computed by Rust code at test time (not a literal)".to_string());
            continue;
        };
        let got = match parse_with(&pats, format, log, b"") {
            Ok(g) => g,
            Err(reason) => {
                // VRL accepts `[2021/06/03 09:30:50] - - - -`: a timestamp and nothing else,
                // which no real Apache error log line looks like.
                assert!(log.ends_with("- - - -"), "{log}: {reason:?}");
                deviations.push(format!("{log}: not an error-log line ({reason:?})"));
                continue;
            }
        };
        let exp = rec["expected"].as_object().unwrap();
        for (k, want) in exp {
            let ok = match k.as_str() {
                "timestamp" => {
                    // To the second: VRL's `%f` reads `.138633` as nanoseconds (0.000138633 s),
                    // logcrunch as the fraction it is (0.138633 s).
                    let w = want.as_str().unwrap();
                    get(&got, "ts").is_some_and(|g| g[..19] == w[..19])
                }
                "remote_addr" => want.as_str() == get(&got, "client_ip"),
                "remote_user" => want.as_str() == get(&got, "user"),
                "request" if format == "nginx_error" => {
                    log.contains(&format!("request: \"{}\"", want.as_str().unwrap()))
                }
                "request" if format == "ingress_nginx" => {
                    let r = format!(
                        "{} {} {}",
                        get(&got, "method").unwrap_or_default(),
                        get(&got, "path").unwrap_or_default(),
                        get(&got, "protocol").unwrap_or_default()
                    );
                    want.as_str() == Some(r.as_str())
                }
                "status" => want.as_u64() == num(&got, "status"),
                "body_bytes_size" => want.as_u64() == num(&got, "bytes"),
                "http_referer" => same(want, get(&got, "referer")),
                "http_user_agent" => want.as_str() == get(&got, "user_agent"),
                "request_length"
                | "proxy_upstream_name"
                | "proxy_alternative_upstream_name"
                | "upstream_addr"
                | "req_id"
                | "upstream_response_length"
                | "upstream_status" => same(want, get(&got, k)),
                "request_time" => {
                    want.as_f64().map(|f| (f * 1e6).round() as u64) == num(&got, "response_time_us")
                }
                "upstream_response_time" => {
                    want.as_f64().map(|f| (f * 1e6).round() as u64)
                        == num(&got, "upstream_response_time_us")
                }
                "severity" => want.as_str() == get(&got, "level"),
                "module" => want.as_str() == get(&got, "module"),
                "pid" => want.as_u64().map(|n| n.to_string()).as_deref() == get(&got, "pid"),
                "tid" => want.as_u64().map(|n| n.to_string()).as_deref() == get(&got, "tid"),
                "thread" => want.as_str() == get(&got, "tid"),
                "client" => want.as_str() == get(&got, "client"),
                // logcrunch keeps the whole message; VRL cuts nginx's trailing
                // ", client: ..., server: ..." (and Apache's error-code prefix) into fields.
                "message" => {
                    get(&got, "message").is_some_and(|m| m.starts_with(want.as_str().unwrap()))
                }
                "message1" => {
                    get(&got, "message").is_some_and(|m| m.starts_with(want.as_str().unwrap()))
                }
                "message2" => {
                    get(&got, "message").is_some_and(|m| m.ends_with(want.as_str().unwrap()))
                }
                // Fields VRL cuts out of the message: present in it.
                "port" | "cid" | "server" | "host" | "upstream" | "excess" | "zone" | "referer" => {
                    let m = format!("{} {}", get(&got, "message").unwrap_or_default(), log);
                    let w = want
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| want.to_string());
                    m.contains(&w)
                }
                other => panic!("unmapped VRL field {other}"),
            };
            assert!(
                ok,
                "{format}: {log}\n  field {k}: expected {want}, got {got}"
            );
        }
        passed += 1;
    }
    println!(
        "VRL ingress/error vectors: {passed} parsed field by field; deviations: {deviations:#?}"
    );
    assert!(passed >= 20, "{passed}");
    assert!(deviations.len() <= 3);
}

#[test]
fn filebeat_error_vectors_and_the_ingress_controller_log() {
    let pats = builtin();
    let text = std::fs::read_to_string(
        common::vendored().join("beats_filebeat/beats_filebeat_vectors.jsonl"),
    )
    .unwrap();
    let mut checked = 0;
    for line in text.lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        let format = match rec["format"].as_str().unwrap() {
            "filebeat:nginx_error" => "nginx_error",
            "filebeat:apache_error" => "apache_error",
            _ => continue,
        };
        let log = rec["line"].as_str().unwrap();
        // The multi-line entry is one vector: its first line starts the entry.
        let first = log.lines().next().unwrap();
        let got = parse_with(&pats, format, first, b"").unwrap_or_else(|r| panic!("{log}: {r:?}"));
        let exp = &rec["expected"];
        // Filebeat's test ran with event.timezone -02:00 and shifts local times by it; the wall
        // time is the same.
        let ts = exp["@timestamp"].as_str().unwrap();
        assert_eq!(get(&got, "ts").map(|t| &t[..19]), Some(&ts[..19]), "{log}");
        assert_eq!(get(&got, "level"), exp["log.level"].as_str(), "{log}");
        if let Some(pid) = exp["process.pid"].as_u64() {
            assert_eq!(get(&got, "pid"), Some(pid.to_string().as_str()), "{log}");
        }
        if let Some(m) = exp["apache.error.module"].as_str() {
            assert_eq!(get(&got, "module"), Some(m));
        }
        if let Some(ip) = exp["source.address"].as_str() {
            assert_eq!(get(&got, "client"), Some(ip), "{log}");
        }
        let msg = exp["message"].as_str().unwrap();
        assert!(
            msg.starts_with(get(&got, "message").unwrap().lines().next().unwrap()),
            "{log}"
        );
        checked += 1;
    }
    assert_eq!(checked, 8);
    let ingress = std::fs::read_to_string(
        common::vendored().join("beats_filebeat/nginx_ingress_controller_test.log"),
    )
    .unwrap();
    assert_eq!(detect(&pats, &ingress).as_deref(), Some("ingress_nginx"));
    for line in ingress.lines() {
        parse_with(&pats, "ingress_nginx", line, b"").unwrap_or_else(|r| panic!("{line}: {r:?}"));
    }
    println!(
        "Filebeat error vectors: {checked}; ingress-nginx controller log: {} lines",
        ingress.lines().count()
    );
}

#[test]
fn crowdsec_parser_vectors_with_auto_detection() {
    let text = std::fs::read_to_string(
        common::vendored().join("crowdsec_hub/crowdsec_parser_vectors.jsonl"),
    )
    .unwrap();
    let pats = builtin();
    let (mut passed, mut total, mut inferred) = (0, 0, 0);
    let mut deviations: Vec<String> = Vec::new();
    for line in text.lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        if !rec["expect_success"].as_bool().unwrap_or(false) {
            continue;
        }
        total += 1;
        let log = rec["line"].as_str().unwrap();
        let Some(format) = detect(&pats, &format!("{log}\n")) else {
            // A whole line of a layout no format knows is read by an inferred format, as
            // `ingest --format auto` reads it.
            if let Some(s) = logcrunch::parse::infer::suggest("x", &[log.as_bytes()], 1 << 16)
                && s.rate() == 1.0
            {
                let row = parse_with(&s.patterns(), &s.name, log, b"").unwrap();
                let client = rec["expected"]["remote_addr"]
                    .as_str()
                    .or(rec["expected"]["clientip"].as_str());
                assert_eq!(get(&row, "client_ip"), client, "{log}");
                inferred += 1;
                continue;
            }
            // CrowdSec's vectors hold what reaches each parser of its chain.
            let reason = if log.starts_with('[') {
                "a site's own layout (time first, then `_`), not a standard format"
            } else if log.contains(" - [") && !log.contains(" - - [") {
                "the ident field is missing: no standard server layout writes this"
            } else {
                "only the message: CrowdSec's syslog/file stage stripped the line's prefix"
            };
            deviations.push(format!("{reason}: {log:.60}"));
            continue;
        };
        let got = parse_with(&pats, &format, log, b"").unwrap();
        let exp = rec["expected"].as_object().unwrap();
        let mut bad = Vec::new();
        for (k, want) in exp {
            let w = want.as_str().unwrap_or_default();
            let ok = match k.as_str() {
                "remote_addr" | "clientip" => {
                    get(&got, "client_ip").or(get(&got, "client")) == Some(w) || log.contains(w)
                }
                "loglevel" => get(&got, "level") == Some(w),
                "pid" | "tid" => get(&got, k) == Some(w),
                "time" => {
                    get(&got, "ts").map(|t| t[..19].replace('-', "/").replace('T', " "))
                        == Some(w.to_string())
                }
                // Parts of an error message that CrowdSec cuts into fields: present in it.
                "cid" | "dest_ip" | "dest_port" | "remote_port" | "clientport" | "errorcode"
                | "module" | "username" | "target_uri" | "proxy_errorcode"
                | "proxy_errormessage" | "client" => log.contains(w),
                "remote_user" | "auth" => {
                    w == "-" && get(&got, "user").is_none() || get(&got, "user") == Some(w)
                }
                "ident" => {
                    w == "-" && get(&got, "ident").is_none() || get(&got, "ident") == Some(w)
                }
                "verb" => get(&got, "method") == Some(w),
                "request" => {
                    let target = match (get(&got, "path"), get(&got, "query")) {
                        (Some(p), Some(q)) => format!("{p}?{q}"),
                        (Some(p), None) => p.to_string(),
                        _ => String::new(),
                    };
                    target == w
                }
                "rawrequest" => get(&got, "path") == Some(w),
                "http_version" | "httpversion" => {
                    get(&got, "protocol").map(|p| p.trim_start_matches("HTTP/")) == Some(w)
                }
                "status" | "response" => {
                    num(&got, "status").map(|s| s.to_string()).as_deref() == Some(w)
                        || (w == "-" && num(&got, "status").is_none())
                }
                "body_bytes_sent" | "bytes" => {
                    num(&got, "bytes").map(|s| s.to_string()).as_deref() == Some(w)
                        || (w == "-" && num(&got, "bytes").is_none())
                }
                "http_referer" | "referrer" => {
                    w == "-" && get(&got, "referer").is_none() || get(&got, "referer") == Some(w)
                }
                "http_user_agent" => {
                    w == "-" && get(&got, "user_agent").is_none()
                        || get(&got, "user_agent") == Some(w)
                }
                "time_local" | "timestamp" => get(&got, "ts").is_some(),
                "target_fqdn" => get(&got, "vhost") == Some(w),
                "request_duration_in_ms" => {
                    num(&got, "response_time_us") == w.parse::<u64>().ok().map(|ms| ms * 1000)
                }
                "number_of_requests_received_since_traefik_started" => {
                    get(&got, "request_count") == Some(w)
                }
                "traefik_router_name" => same(want, get(&got, "router")),
                "traefik_server_url" => same(want, get(&got, "backend_url")),
                // Derived or pipeline fields, not in the log line's own columns.
                "program"
                | "traefik_router_name_root"
                | "traefik_router_intermediate"
                | "traefik_router_leaf" => true,
                other => panic!("unmapped CrowdSec field {other} ({format})"),
            };
            if !ok {
                bad.push(format!("{k}: expected {want}, got {got}"));
            }
        }
        assert!(bad.is_empty(), "{format}: {log}\n{}", bad.join("\n"));
        passed += 1;
    }
    println!(
        "CrowdSec parser vectors: {passed}/{total} parsed and matched, {inferred} read by an inferred format; deviations ({}):",
        deviations.len()
    );
    for d in &deviations {
        println!("  {d}");
    }
    assert!(passed >= 40, "{passed}/{total}");
    assert!(
        inferred >= 1,
        "an access line of its own layout is inferred"
    );
    assert!(deviations.len() <= 10, "{deviations:#?}");
}

#[test]
fn one_run_detects_each_file_and_routes_error_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("in")).unwrap();
    for f in [
        "iis.log",
        "caddy.log",
        "traefik.log",
        "upstream.log",
        "nginx_json.log",
    ] {
        std::fs::copy(testdata(f), d.join("in").join(f)).unwrap();
    }
    std::fs::copy(
        common::vendored().join("beats_filebeat/nginx_error_error.log"),
        d.join("in/nginx_error.log"),
    )
    .unwrap();
    std::fs::copy(
        common::vendored().join("beats_filebeat/apache_error_test.log"),
        d.join("in/apache_error.log"),
    )
    .unwrap();
    let s = ingest_json(d, &["--dataset", "ds", "in"], 0);
    let formats: HashMap<String, String> = s["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["path"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("in/")
                    .to_string(),
                x["format"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(formats["iis.log"], "w3c");
    assert_eq!(formats["caddy.log"], "caddy");
    assert_eq!(formats["traefik.log"], "traefik");
    assert_eq!(formats["upstream.log"], "nginx_upstream");
    assert_eq!(formats["nginx_json.log"], "nginx_json");
    assert_eq!(formats["nginx_error.log"], "nginx_error");
    assert_eq!(formats["apache_error.log"], "apache_error");
    assert_eq!(s["bad_lines"], 0, "{s}");
    let logs = query_json(d, "ds", "SELECT count(*) AS n FROM logs");
    assert_eq!(logs[0]["n"], 3 + 2 + 2 + 3 + 2);
    let errors = query_json(
        d,
        "ds",
        "SELECT level, client, message FROM errors ORDER BY ts",
    );
    assert_eq!(
        errors.len(),
        4 + 4,
        "the three-line FastCGI entry is one row"
    );
    let fastcgi = errors
        .iter()
        .find(|e| get(e, "message").unwrap().starts_with("FastCGI"))
        .unwrap();
    assert_eq!(get(fastcgi, "message").unwrap().lines().count(), 3);
    assert!(
        errors.iter().any(|e| get(e, "client") == Some("127.0.0.1")),
        "nginx's client: is extracted"
    );
    let extra = query_json(
        d,
        "ds",
        "SELECT upstream_response_time FROM logs WHERE upstream_response_time_us = 1504000",
    );
    assert_eq!(extra[0]["upstream_response_time"], "0.500, 1.000 : 0.004");
}

#[test]
fn detection_refuses_what_nothing_matches_and_names_the_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&format!(
            "{i} some application message that is no access log\n"
        ));
    }
    text.push_str(
        "10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"ua\"\n",
    );
    std::fs::write(dir.path().join("app.log"), text).unwrap();
    logcrunch(dir.path())
        .args(["ingest", "--dataset", "ds", "app.log"])
        .assert()
        .code(2)
        .stderr(contains("cannot tell the log format of app.log"))
        .stderr(contains("combined 2% (1/51)"))
        .stderr(contains("--format NAME"));
}

#[test]
fn python_http_server_log() {
    let rows = parse_file("python_http", "python_http.log");
    assert_eq!(rows.len(), 5);
    assert_eq!(get(&rows[0], "ts"), Some("2026-12-06T10:00:01Z"));
    assert_eq!(get(&rows[2], "path"), Some("/api/upload"));
    assert_eq!(num(&rows[2], "status"), Some(201));
    assert_eq!(get(&rows[2], "bytes"), None);
    assert_eq!(get(&rows[3], "client_ip"), Some("::1"));
    assert_eq!(num(&rows[4], "bytes"), Some(48213));
    assert_eq!(
        detect(
            &builtin(),
            &std::fs::read_to_string(testdata("python_http.log")).unwrap()
        )
        .as_deref(),
        Some("python_http")
    );
}

/// A layout no built-in format reads (go-chi's request logger): `formats suggest` prints a
/// pattern for it, and `ingest --format auto` reads it with that pattern, saying so.
#[test]
fn a_format_is_inferred_for_a_layout_nothing_reads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(testdata("chi.log"), dir.path().join("chi.log")).unwrap();
    logcrunch(dir.path())
        .args(["formats", "suggest", "chi.log"])
        .assert()
        .success()
        .stdout(contains("the pattern reads 6 of them (100.0%)"))
        .stdout(contains(
            r#""(?P<request>(?:[^"\\]|\\.)*)" from (?P<client_ip>\S+)"#,
        ))
        .stdout(contains("response_time_us: {type: duration}"));
    let out = logcrunch(dir.path())
        .args(["formats", "suggest", "--json", "--name", "chi", "chi.log"])
        .output()
        .unwrap();
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["known_format"], Value::Null);
    assert_eq!(j["suggestion"]["name"], "chi");
    assert_eq!(j["suggestion"]["rate"], 1.0);
    // The printed entry is a working patterns file.
    let yaml = format!("formats:\n{}", j["suggestion"]["yaml"].as_str().unwrap());
    let pats = Patterns::parse(&yaml, Path::new("chi.yaml")).unwrap();
    let row = parse_with(&pats, "chi", &text_line("chi.log", 1), b"").unwrap();
    assert_eq!(get(&row, "client_ip"), Some("127.0.0.1"));
    assert_eq!(num(&row, "response_time_us"), Some(1208));

    let summary = ingest_json(dir.path(), &["--dataset", "ds", "chi.log"], 0);
    let src = &summary["sources"][0];
    assert_eq!(src["format"], "inferred");
    assert_eq!(src["rows"], 6);
    assert!(
        src["inferred_format"]
            .as_str()
            .unwrap()
            .contains("regex: '^(?P<ts>")
    );
    let rows = query_json(
        dir.path(),
        "ds",
        "SELECT status, method, response_time_us FROM logs ORDER BY ts, response_time_us",
    );
    assert_eq!(rows[0]["status"], 200);
    assert_eq!(rows[0]["response_time_us"], 34);
    assert_eq!(rows.last().unwrap()["status"], 500);
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("ds/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["sources"][0]["inferred_format"],
        src["inferred_format"]
    );
    logcrunch(dir.path())
        .args(["ingest", "--dataset", "ds2", "chi.log"])
        .assert()
        .success()
        .stdout(contains("formats: inferred (from the lines, reads 100%)"))
        .stdout(contains("no known format reads it"));
    logcrunch(dir.path())
        .args(["formats", "suggest", "--json", "missing.log"])
        .assert()
        .code(predicates::ord::ne(0));
}

#[test]
fn formats_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = logcrunch(dir.path())
        .args(["formats", "list", "--json"])
        .output()
        .unwrap();
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    for name in [
        "common",
        "combined",
        "vcombined",
        "combined_t",
        "nginx_main",
        "nginx_upstream",
        "ingress_nginx",
        "traefik",
        "aws_alb",
        "w3c",
        "nginx_json",
        "caddy",
        "apache_error",
        "nginx_error",
    ] {
        assert!(
            list.iter().any(|f| f["name"] == name),
            "{name} is in the catalogue"
        );
    }
    logcrunch(dir.path())
        .args(["formats", "show", "nginx_main"])
        .assert()
        .success()
        .stdout(contains("engine: splitter"))
        .stdout(contains("http_x_forwarded_for"));
    std::fs::copy(testdata("traefik.log"), dir.path().join("t.log")).unwrap();
    logcrunch(dir.path())
        .args(["formats", "test", "t.log"])
        .assert()
        .success()
        .stdout(contains("traefik"))
        .stdout(contains("backend_url"))
        .stdout(contains("match rate: 100.0% (2/2 lines)"));
    logcrunch(dir.path())
        .args(["formats", "test", "--format", "common", "t.log"])
        .assert()
        .success()
        .stdout(contains("match rate: 100.0% (2/2 lines)"))
        .stdout(contains(
            "2 of them with fields the format does not declare, kept in trailing_text",
        ));
    logcrunch(dir.path())
        .args(["formats", "test", "--format", "caddy", "t.log"])
        .assert()
        .code(1)
        .stdout(contains("no_match"))
        .stdout(contains("match rate: 0.0%"));
    std::fs::write(
        dir.path().join("p.yaml"),
        "formats:\n  mine:\n    nginx: '$remote_addr [$time_local] $status'\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("m.log"),
        "1.2.3.4 [10/Oct/2023:13:55:36 +0000] 200\n",
    )
    .unwrap();
    logcrunch(dir.path())
        .args([
            "--patterns",
            "p.yaml",
            "formats",
            "test",
            "--format",
            "mine",
            "m.log",
        ])
        .assert()
        .success()
        .stdout(contains("client_ip                  1.2.3.4"));
}
