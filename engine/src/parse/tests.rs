use super::*;
use proptest::prelude::*;
use std::sync::Arc;

fn builtin() -> Patterns {
    Patterns::parse(BUILTIN_PATTERNS, Path::new("builtin")).unwrap()
}

#[derive(Default)]
struct Collect {
    rows: Vec<String>,
    bad: Vec<(u64, u64, BadReason)>,
}

impl RowSink for Collect {
    fn row(&mut self, row: &Row<'_>) {
        let s = |v: Option<&[u8]>| v.map(|b| String::from_utf8_lossy(b).into_owned());
        self.rows.push(format!(
            "{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            row.offset,
            row.ts_us,
            s(row.str(StrCol::ClientIp)),
            s(row.str(StrCol::User)),
            s(row.str(StrCol::Method)),
            s(row.str(StrCol::Path)),
            s(row.str(StrCol::Query)),
            s(row.str(StrCol::Protocol)),
            row.status,
            row.bytes,
            s(row.str(StrCol::Referer)),
            s(row.str(StrCol::UserAgent)),
            s(row.str(StrCol::XForwardedFor)),
            row.response_time_us,
            row.upstream_response_time_us,
        ));
    }

    fn bad(&mut self, offset: u64, line_index: u64, reason: BadReason, _line: &[u8]) {
        self.bad.push((offset, line_index, reason));
    }
}

fn parse_all(format: &str, text: &[u8]) -> Collect {
    let p = builtin().parser(format, 64 << 10).unwrap();
    let mut scratch = p.scratch();
    let mut sink = Collect::default();
    p.parse_chunk(&mut scratch, text, 0, &mut sink);
    sink
}

#[test]
fn shipped_text_formats_compile_to_the_splitter() {
    let pats = builtin();
    for (name, spec) in &pats.formats {
        if spec.w3c {
            continue;
        }
        let p = pats.parser(name, 1024).unwrap();
        let want = match (
            spec.kind,
            name.as_str(),
            spec.json.is_some() || p.regex().is_none(),
        ) {
            (_, _, true) => Engine::Json,
            // The client is `ip:port` with a lazy split, and error logs have optional parts
            // that only the regex engine can decide; both are small or rare.
            (Kind::Error, _, _) | (_, "aws_alb", _) => Engine::Regex,
            _ => Engine::Splitter,
        };
        assert_eq!(p.engine(), want, "{name}");
    }
}

#[test]
fn combined_line_fields() {
    let line = br#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png?x=1 HTTP/1.1" 200 203023 "http://semicomplete.com/" "Mozilla/5.0 (Macintosh)""#;
    let c = parse_all("combined", line);
    assert!(c.bad.is_empty());
    assert_eq!(
        c.rows[0],
        r#"0|1431857103000000|Some("83.149.9.216")|None|Some("GET")|Some("/presentations/logstash-monitorama-2013/images/kibana-search.png")|Some("x=1")|Some("HTTP/1.1")|Some(200)|Some(203023)|Some("http://semicomplete.com/")|Some("Mozilla/5.0 (Macintosh)")|None|None|None"#
    );
}

#[test]
fn escaped_quotes_stay_inside_apache_fields() {
    let line = br#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /q?a=\"x\" HTTP/1.1" 200 1 "-" "agent \"quoted\"""#;
    let c = parse_all("combined", line);
    assert!(c.bad.is_empty(), "{:?}", c.bad);
    assert!(
        c.rows[0].contains(r#"Some("a=\\\"x\\\"")"#),
        "{}",
        c.rows[0]
    );
}

#[test]
fn nginx_timed_durations_are_exact_microseconds() {
    let line = br#"10.1.2.3 - - [01/Jan/2024:00:00:01 +0000] "POST /api/v1/orders HTTP/2.0" 201 512 "-" "curl/8.0" 0.123 0.120"#;
    let c = parse_all("nginx_timed", line);
    assert!(
        c.rows[0].ends_with("|None|Some(123000)|Some(120000)"),
        "{}",
        c.rows[0]
    );
    let with_xff = br#"10.1.2.3 - - [01/Jan/2024:00:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "ua" "203.0.113.9" 1.5"#;
    let c = parse_all("nginx_timed", with_xff);
    assert!(
        c.rows[0].ends_with(r#"|Some("203.0.113.9")|Some(1500000)|None"#),
        "{}",
        c.rows[0]
    );
}

#[test]
fn bad_lines_are_classified_not_fatal() {
    let text = b"garbage\n\n1.2.3.4 - - [99/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 1\n1.2.3.4 - - [-] \"GET / HTTP/1.0\" 200 1\n1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" abc 1\n1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET /\0 HTTP/1.0\" 200 1\n";
    let c = parse_all("common", text);
    let reasons: Vec<_> = c.bad.iter().map(|b| b.2).collect();
    assert_eq!(
        reasons,
        vec![
            BadReason::NoMatch,
            BadReason::BadTimestamp,
            BadReason::NoTimestamp,
            BadReason::BadField("status"),
            BadReason::NulByte
        ]
    );
    assert_eq!(c.bad[1].1, 2, "line index counts the blank line");
    assert!(c.rows.is_empty());
}

#[test]
fn crlf_leading_nuls_and_missing_final_newline() {
    let text = b"\x00\x00\x001.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 1\r\n1.2.3.4 - - [10/Oct/2000:13:55:37 -0700] \"GET / HTTP/1.0\" 200 2";
    let c = parse_all("common", text);
    assert!(c.bad.is_empty(), "{:?}", c.bad);
    assert_eq!(c.rows.len(), 2);
    assert!(c.rows[1].contains("Some(2)"));
}

#[test]
fn long_lines_are_quarantined() {
    let p = builtin().parser("common", 100).unwrap();
    let mut line = b"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET /".to_vec();
    line.extend(std::iter::repeat_n(b'a', 200));
    line.extend(b" HTTP/1.0\" 200 1\n");
    let mut sink = Collect::default();
    p.parse_chunk(&mut p.scratch(), &line, 7, &mut sink);
    assert_eq!(sink.bad, vec![(7, 0, BadReason::LineTooLong)]);
}

#[test]
fn invalid_patterns_name_the_problem() {
    let bad = |yaml: &str| {
        let pats = Patterns::parse(yaml, Path::new("p.yaml")).unwrap();
        pats.parser("f", 1024).unwrap_err().to_string()
    };
    assert!(bad("formats:\n  f:\n    regex: '(?P<ts>'\n").contains("invalid regex"));
    assert!(bad("formats:\n  f:\n    regex: '(?P<x>\\S+)'\n").contains("no timestamp"));
    assert!(
        bad("formats:\n  f:\n    regex: '(?P<ts>\\S+)'\n    fields:\n      y: {type: int}\n")
            .contains("`y`")
    );
    assert!(bad("formats:\n  f:\n    regex: '(?P<ts>\\S+) (?P<status>\\S+)'\n    fields:\n      status: {type: seconds}\n").contains("status"));
    assert!(bad("formats:\n  f:\n    regex: '(?P<ts>\\S+) (?P<offset>\\S+)'\n").contains("offset"));
    let unknown = builtin().parser("nope", 10).unwrap_err().to_string();
    assert!(unknown.contains("combined") && unknown.contains("nope"));
}

#[test]
fn custom_formats_with_extras_and_layouts() {
    let yaml = r#"
formats:
  app:
    regex: '^(?P<ts>\S+ \S+) (?P<vhost>\S+) (?P<status>\d+) (?P<req_id>\S+) (?P<latency>\S+)ms$'
    fields:
      ts: {type: timestamp, format: '%Y/%m/%d %H:%M:%S'}
      latency: {type: millis, column: response_time_us}
"#;
    let pats = Patterns::parse(yaml, Path::new("p.yaml")).unwrap();
    let p = pats.parser("app", 1024).unwrap();
    assert_eq!(p.extras(), ["req_id", "trailing_text"]);
    let mut sink = Collect::default();
    let stats = p.parse_chunk(
        &mut p.scratch(),
        b"2024/01/02 03:04:05 shop 200 abc 12.5ms\n",
        0,
        &mut sink,
    );
    assert_eq!(stats.rows, 1);
    assert!(
        sink.rows[0].ends_with("Some(12500)|None"),
        "{}",
        sink.rows[0]
    );
}

#[test]
fn undeclared_trailing_fields_are_kept_and_fallbacks_read_other_layouts() {
    let pats = builtin();
    let combined = Arc::new(pats.parser("combined", 1024).unwrap());
    let traefik = Arc::new(pats.parser("traefik", 1024).unwrap());
    let chain = combined.with_fallbacks(&[Arc::clone(&traefik)]);
    assert_eq!(chain.chain(), ["combined", "traefik"]);
    let trailing = chain.trailing_extra().unwrap();
    let router = chain.extras().iter().position(|e| e == "router").unwrap();
    let base = r#"1.2.3.4 - - [01/Mar/2024:00:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "ua""#;
    let text = format!(
        "{base}\n{base} 7 \"web@docker\" \"http://10.0.0.2:80\" 3ms\n{base}  tenant=7 \"a b\"\n"
    );
    let mut scratch = chain.scratch();
    let lines: Vec<&str> = text.lines().collect();
    let row = chain
        .parse_line(&mut scratch, lines[0].as_bytes(), 0)
        .unwrap()
        .unwrap();
    assert_eq!((row.extra(trailing), row.extra(router)), (None, None));
    // A strict fallback goes before undeclared trailing fields of the detected format.
    let row = chain
        .parse_line(&mut scratch, lines[1].as_bytes(), 0)
        .unwrap()
        .unwrap();
    assert_eq!(row.extra(router), Some(&b"web@docker"[..]));
    assert_eq!(row.response_time_us, Some(3_000));
    assert_eq!(row.extra(trailing), None);
    let row = chain
        .parse_line(&mut scratch, lines[2].as_bytes(), 0)
        .unwrap()
        .unwrap();
    assert_eq!(row.extra(trailing), Some(&br#"tenant=7 "a b""#[..]));
    assert_eq!(row.str(crate::schema::StrCol::UserAgent), Some(&b"ua"[..]));
    let mut sink = Collect::default();
    let stats = chain.parse_chunk(&mut chain.scratch(), text.as_bytes(), 0, &mut sink);
    assert_eq!(stats.by_format[..2], [2, 1]);
    assert!(
        combined
            .parse_line(&mut combined.scratch(), b"not a log line", 0)
            .is_err()
    );
}

fn line_strategy() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just(b"-".to_vec()),
        Just(b"".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\\"".to_vec()),
        Just(b" ".to_vec()),
        Just(b", ".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b"10.0.0.1".to_vec()),
        Just(b"10.0.0.1 10.0.0.2".to_vec()),
        Just(b"2a03::1, 10.0.0.1 10.0.0.2".to_vec()),
        Just(b" - ".to_vec()),
        Just(b"10/Oct/2000:13:55:36 -0700".to_vec()),
        Just(b"GET /a?b=c HTTP/1.1".to_vec()),
        Just(b"200".to_vec()),
        Just(b"0.25".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"+30".to_vec()),
        Just(b"bck/srv1".to_vec()),
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"\xff\xfe".to_vec()),
        "[ -~]{0,6}".prop_map(String::into_bytes),
    ];
    let template = prop_oneof![
        Just(vec![
            "", " - ", " [", "] \"", "\" ", " ", " \"", "\" \"", "\""
        ]),
        Just(vec![
            "", " - ", " [", "] \"", "\" ", " ", " \"", "\" \"", "\" "
        ]),
        Just(vec!["\"", "\" ", " - ", " [", "] \"", "\" ", " ", ""]),
        Just(vec!["", " ", " ", " [", "] \"", "\" ", " ", ""]),
        // HAProxy's httplog and tcplog
        Just(vec![
            "", " [", "] ", " ", "/", " ", "/", "/", "/", "/", " ", " ", " ", " ", " ", " ", "/",
            "/", "/", "/", " ", "/", " {", "} {", "} \""
        ]),
        Just(vec![
            "", " [", "] ", " ", "/", " ", "/", "/", " ", " ", " ", "/", "/", "/", "/", " ", "/"
        ]),
    ];
    (template, proptest::collection::vec(field, 25)).prop_map(|(t, fields)| {
        let mut out = Vec::new();
        for (i, sep) in t.iter().enumerate() {
            out.extend_from_slice(sep.as_bytes());
            out.extend_from_slice(&fields[i]);
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The splitter and the regex engine agree on every line, matching or not.
    #[test]
    fn splitter_agrees_with_regex(line in line_strategy()) {
        let pats = builtin();
        for (name, spec) in &pats.formats {
            if spec.w3c {
                continue;
            }
            let p = pats.parser(name, 1 << 20).unwrap();
            let Matcher::Regex { regex, splitter: Some(sp), .. } = &p.matcher else {
                continue;
            };
            let mut by_splitter = vec![None; p.groups];
            let split = sp.split(&line, &mut by_splitter);
            let mut cache = regex.create_cache();
            let mut caps = regex.create_captures();
            let input = Input::new(&line[..]).anchored(Anchored::Yes);
            regex.search_captures_with(&mut cache, &input, &mut caps);
            prop_assert_eq!(split, caps.is_match(), "{} on {:?}", name, String::from_utf8_lossy(&line));
            if split {
                for (g, got) in by_splitter.iter().enumerate() {
                    let want = caps.get_group(g).map(|s| (s.start as u32, s.end as u32));
                    prop_assert_eq!(*got, want, "{} group {} on {:?}", name, g, String::from_utf8_lossy(&line));
                }
            }
        }
    }
}

/// Fuzz finds (`patterns` target): nested repetitions made the splitter's lookahead proof branch
/// at every level (exponential time and memory), and a run of optional groups made its FIRST sets
/// take 2^n steps. Both now compile at once; what the splitter cannot prove runs on the regex.
#[test]
fn nested_repetitions_and_optional_runs_compile_at_once() {
    let stars = "*".repeat(110);
    let optionals = "(?: a)?".repeat(60);
    for re in [
        format!(
            r"^(?P<ts> \d{{2}}:\d{{2}}:\d{{2}}) \[(?P<level>[a-z]+)\] (?P<pid>\d+)#(?P<tid>proxy_a?:\*\d+ )?(?P<message>.*){stars}$]"
        ),
        format!(r"^(?P<ts>\S+){optionals} (?P<message>.*)$"),
    ] {
        let yaml = format!("formats:\n  x:\n    kind: error\n    regex: '{re}'\n");
        let pats = Patterns::parse(&yaml, Path::new("p.yaml")).unwrap();
        let started = std::time::Instant::now();
        let parser = pats.parser("x", 4096).unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{re}"
        );
        let mut scratch = parser.scratch();
        parser.parse_chunk(&mut scratch, b"x 12 y\n", 0, &mut Collect::default());
    }
}
