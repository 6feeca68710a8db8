//! The nginx `log_format`, Apache `LogFormat`, HAProxy `log-format`, Tomcat `AccessLogValve` and
//! Jetty `CustomRequestLog` compilers on arbitrary directives. The input's first byte picks the server, the text up to the first NUL is the
//! directive, the rest is a log line; a directive that compiles becomes a format that compiles or
//! is refused with an error, and parses the line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logcrunch::parse::{BadReason, FormatSpec, Patterns, Row, RowSink};
use logcrunch::parse::{directive, haproxy, servlet};

struct Count(usize);

impl RowSink for Count {
    fn row(&mut self, _row: &Row<'_>) {
        self.0 += 1;
    }
    fn bad(&mut self, _offset: u64, _line_index: u64, _reason: BadReason, _line: &[u8]) {}
}

fuzz_target!(|data: &[u8]| {
    let Some((&server, rest)) = data.split_first() else {
        return;
    };
    let (text, line) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[..0]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let (key, compiled) = match server % 5 {
        0 => ("nginx", directive::nginx(text)),
        1 => ("apache", directive::apache(text)),
        2 => ("haproxy", haproxy::haproxy(text)),
        3 => ("tomcat", servlet::tomcat(text, None)),
        _ => ("jetty", servlet::jetty(text)),
    };
    if compiled.is_err() {
        return;
    }
    // The same directive as a format of a patterns file.
    let spec = FormatSpec {
        nginx: (key == "nginx").then(|| text.to_string()),
        apache: (key == "apache").then(|| text.to_string()),
        haproxy: (key == "haproxy").then(|| text.to_string()),
        tomcat: (key == "tomcat").then(|| text.to_string()),
        jetty: (key == "jetty").then(|| text.to_string()),
        ..FormatSpec::default()
    };
    let pats = Patterns {
        formats: [("fuzzed".to_string(), spec)].into_iter().collect(),
        path: "fuzz.yaml".into(),
    };
    // A directive may still map fields to columns that conflict; that is a clean error.
    let Ok(parser) = pats.parser("fuzzed", 4096) else {
        return;
    };
    let mut scratch = parser.scratch();
    let mut n = Count(0);
    parser.parse_chunk(&mut scratch, line, 0, &mut n);
});
