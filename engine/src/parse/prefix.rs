//! Headers that a transport or a logging library puts in front of a server's own line: a syslog
//! header (RFC 3164 or RFC 5424, with or without `<PRI>`, host, program and pid, as rsyslog,
//! journald and HAProxy write them) or a logging library's stamp (a timestamp, then a fixed number
//! of words such as `[INFO]`, a logger name and a `-`, as log4js, Python `logging`, Go's `log`,
//! `docker --timestamps` and pm2 write them).
//!
//! A prefix is a property of a file, not of a format: auto-detection tries every format with and
//! without the prefix the sample lines carry, and a format read through one is named `FORMAT+syslog`
//! or `FORMAT+stampN`. Both grammars are parsed by hand (no regex) so that stripping costs a few
//! dozen byte comparisons per line. The header's time is kept: formats whose lines carry no time of
//! their own (`time_from_header`) take it from there.

use super::value;

/// Most words after a stamp's timestamp.
pub const MAX_STAMP_TOKENS: u8 = 6;
/// Longest bracketed word of a stamp (`[main-thread-7]`).
const MAX_BRACKET: usize = 96;

/// A header in front of each line of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prefix {
    /// A syslog header: `[<PRI>]` then RFC 5424 (`1 TIMESTAMP HOST APP PROCID MSGID SD`) or
    /// RFC 3164 / rsyslog (`Mmm dd hh:mm:ss` or RFC 3339 time, optional host, `prog[pid]:`).
    Syslog,
    /// A timestamp (ISO 8601 with `-` or `/`, optionally in brackets), then `tokens` words
    /// (a bracketed word may hold spaces), then the line.
    Stamp {
        /// Words between the timestamp and the line.
        tokens: u8,
    },
}

/// A line with its header taken off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stripped<'a> {
    /// What follows the header.
    pub body: &'a [u8],
    /// The header's time, converted only when the format has no time of its own.
    pub time: Option<HeaderTime<'a>>,
}

/// The time text of a header and its layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderTime<'a> {
    /// ISO 8601 / RFC 3339 (syslog RFC 5424 and rsyslog's high-precision template).
    Iso(&'a [u8]),
    /// RFC 3164's `Mmm dd hh:mm:ss`, which has no year.
    Rfc3164(&'a [u8]),
    /// A stamp's time, already converted.
    Us(i64),
}

impl HeaderTime<'_> {
    /// µs since the epoch. An RFC 3164 time has no year: it is taken in the current year, or the
    /// previous one when that would put it more than a day in the future (as syslog readers do).
    pub fn us(self) -> Option<i64> {
        match self {
            HeaderTime::Iso(t) => value::parse_iso8601(t),
            HeaderTime::Us(us) => Some(us),
            HeaderTime::Rfc3164(t) => {
                let now = value::now_us();
                let (year, _, _) =
                    value::civil_from_days(now.div_euclid(86_400 * value::US_PER_SEC));
                let at = |y: i64| {
                    let mut text = format!("{y:04} ").into_bytes();
                    text.extend_from_slice(t);
                    value::TimeFormat::from_spec("%Y %b %e %H:%M:%S")
                        .ok()
                        .and_then(|f| f.parse(&text))
                };
                let this = at(year)?;
                if this > now + 86_400 * value::US_PER_SEC {
                    at(year - 1)
                } else {
                    Some(this)
                }
            }
        }
    }
}

impl Prefix {
    /// The suffix of a format name read through this prefix (`syslog`, `stamp3`).
    pub fn name(self) -> String {
        match self {
            Prefix::Syslog => "syslog".into(),
            Prefix::Stamp { tokens } => format!("stamp{tokens}"),
        }
    }

    /// The prefix named by [`Prefix::name`].
    pub fn from_name(name: &str) -> Option<Prefix> {
        if name == "syslog" {
            return Some(Prefix::Syslog);
        }
        let tokens: u8 = name.strip_prefix("stamp")?.parse().ok()?;
        (tokens <= MAX_STAMP_TOKENS).then_some(Prefix::Stamp { tokens })
    }

    /// Takes the header off `line`; `None` when the line does not start with one.
    pub fn strip(self, line: &[u8]) -> Option<Stripped<'_>> {
        match self {
            Prefix::Syslog => strip_syslog(line),
            Prefix::Stamp { tokens } => strip_stamp(line, tokens),
        }
    }

    /// The prefixes worth trying on a file: those that at least half of `lines` start with (for a
    /// stamp, every word count).
    pub fn detect(lines: &[&[u8]]) -> Vec<Prefix> {
        if lines.is_empty() {
            return Vec::new();
        }
        let most = |has: &dyn Fn(&[u8]) -> bool| {
            lines.iter().filter(|l| has(l)).count() * 2 >= lines.len()
        };
        if most(&|l| strip_syslog(l).is_some()) {
            return vec![Prefix::Syslog];
        }
        if most(&|l| stamp_time(l).is_some()) {
            return (0..=MAX_STAMP_TOKENS)
                .map(|tokens| Prefix::Stamp { tokens })
                .collect();
        }
        Vec::new()
    }
}

/// The byte after a run of spaces that starts at `i` (at least one space), or `None`.
fn after_spaces(line: &[u8], i: usize) -> Option<usize> {
    let n = line.get(i..)?.iter().take_while(|b| **b == b' ').count();
    (n > 0).then_some(i + n)
}

/// The end of the word at `i`: up to the next space, or the whole `[...]` when it opens one.
fn word_end(line: &[u8], i: usize) -> Option<usize> {
    let rest = line.get(i..)?;
    if rest.first() == Some(&b'[') {
        let close = rest.iter().take(MAX_BRACKET).position(|b| *b == b']')?;
        return Some(i + close + 1);
    }
    let n = rest.iter().take_while(|b| **b != b' ').count();
    (n > 0).then_some(i + n)
}

fn strip_syslog(line: &[u8]) -> Option<Stripped<'_>> {
    let mut i = 0;
    if line.first() == Some(&b'<') {
        let n = line[1..]
            .iter()
            .take(4)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if n == 0 || line.get(1 + n) != Some(&b'>') {
            return None;
        }
        i = n + 2;
    }
    if line.get(i..i + 2) == Some(b"1 ") {
        return strip_rfc5424(line, i + 2);
    }
    let (ts_end, time) = if let Some(end) = rfc3164_time(line, i) {
        (end, HeaderTime::Rfc3164(&line[i..end]))
    } else {
        let end = word_end(line, i)?;
        value::parse_iso8601(&line[i..end])?;
        (end, HeaderTime::Iso(&line[i..end]))
    };
    let first = after_spaces(line, ts_end)?;
    let first_end = word_end(line, first)?;
    let tag_end = if is_tag(&line[first..first_end]) {
        first_end
    } else {
        let second = after_spaces(line, first_end)?;
        let second_end = word_end(line, second)?;
        if !is_tag(&line[second..second_end]) {
            return None;
        }
        second_end
    };
    let body = after_spaces(line, tag_end).unwrap_or(tag_end);
    Some(Stripped {
        body: &line[body..],
        time: Some(time),
    })
}

/// `Mmm dd hh:mm:ss` (day space-padded or not) at `i`; the end of it.
fn rfc3164_time(line: &[u8], i: usize) -> Option<usize> {
    let t = line.get(i..i + 15)?;
    let month_ok = t[0].is_ascii_uppercase() && t[1..3].iter().all(u8::is_ascii_lowercase);
    let day_ok = (t[4] == b' ' || t[4].is_ascii_digit()) && t[5].is_ascii_digit();
    let time_ok = t[7..].iter().enumerate().all(|(k, b)| match k {
        2 | 5 => *b == b':',
        _ => b.is_ascii_digit(),
    });
    (month_ok && t[3] == b' ' && day_ok && t[6] == b' ' && time_ok).then_some(i + 15)
}

/// A syslog tag: `prog:` or `prog[pid]:`.
fn is_tag(word: &[u8]) -> bool {
    let Some(name) = word.strip_suffix(b":") else {
        return false;
    };
    let name = match name.strip_suffix(b"]") {
        Some(with_pid) => match with_pid.iter().rposition(|b| *b == b'[') {
            Some(open) if with_pid[open + 1..].iter().all(u8::is_ascii_digit) => &with_pid[..open],
            _ => return false,
        },
        None => name,
    };
    !name.is_empty()
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'@'))
}

/// RFC 5424 after `<PRI>1 `: TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG].
fn strip_rfc5424(line: &[u8], mut i: usize) -> Option<Stripped<'_>> {
    let ts_end = word_end(line, i)?;
    let text = &line[i..ts_end];
    let time = if text == b"-" {
        None
    } else {
        value::parse_iso8601(text)?;
        Some(HeaderTime::Iso(text))
    };
    i = ts_end;
    // HOSTNAME APP-NAME PROCID MSGID
    for _ in 0..4 {
        i = after_spaces(line, i)?;
        i = word_end(line, i)?;
    }
    i = after_spaces(line, i)?;
    if line.get(i) == Some(&b'-') {
        i += 1;
    } else {
        // One or more [id param="value" ...] elements; `]` inside a value is escaped as `\]`.
        while line.get(i) == Some(&b'[') {
            let mut j = i + 1;
            loop {
                match line.get(j)? {
                    b'\\' => j += 2,
                    b']' => break,
                    _ => j += 1,
                }
            }
            i = j + 1;
        }
    }
    let body = after_spaces(line, i).unwrap_or(i);
    // A UTF-8 byte order mark may open the message.
    let body = if line[body..].starts_with(b"\xEF\xBB\xBF") {
        body + 3
    } else {
        body
    };
    Some(Stripped {
        body: &line[body..],
        time,
    })
}

/// A stamp's timestamp at the start of `line`: `[`? `YYYY-MM-DD` or `YYYY/MM/DD`, `T` or space,
/// `hh:mm:ss`, optional `.`/`,` fraction, optional zone (`Z`, `+hh:mm`, `+hhmm`, ` +hhmm`), `]` if
/// opened, and an optional `:`. Returns its end and time.
fn stamp_time(line: &[u8]) -> Option<(usize, i64)> {
    let open = usize::from(line.first() == Some(&b'['));
    let t = line.get(open..)?;
    let date_sep = *t.get(4)?;
    if !matches!(date_sep, b'-' | b'/') || t.get(7) != Some(&date_sep) {
        return None;
    }
    let mut len = 19;
    if t.len() < len {
        return None;
    }
    if matches!(t.get(len), Some(b'.' | b',')) {
        len += 1 + t[len + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    }
    let zone = |at: usize| -> usize {
        match t.get(at) {
            Some(b'Z') => 1,
            Some(b'+' | b'-') => {
                let d = t[at + 1..]
                    .iter()
                    .take(5)
                    .take_while(|b| b.is_ascii_digit() || **b == b':')
                    .count();
                if d >= 4 { 1 + d } else { 0 }
            }
            _ => 0,
        }
    };
    len += match zone(len) {
        0 if t.get(len) == Some(&b' ') => match zone(len + 1) {
            0 => 0,
            n => 1 + n,
        },
        n => n,
    };
    let mut text = [0u8; 48];
    let n = len.min(text.len());
    text[..n].copy_from_slice(&t[..n]);
    text[4] = b'-';
    text[7] = b'-';
    let ts = value::parse_iso8601(&text[..n])?;
    let mut end = open + len;
    if open == 1 {
        if line.get(end) != Some(&b']') {
            return None;
        }
        end += 1;
    }
    if line.get(end) == Some(&b':') {
        end += 1;
    }
    Some((end, ts))
}

/// Log levels of the common logging libraries (syslog, log4j, Python, Go, Node, Java util).
const LEVELS: [&[u8]; 16] = [
    b"trace",
    b"debug",
    b"info",
    b"notice",
    b"warn",
    b"warning",
    b"error",
    b"err",
    b"crit",
    b"critical",
    b"fatal",
    b"alert",
    b"emerg",
    b"severe",
    b"fine",
    b"verbose",
];

/// Whether `text` opens with a log level, bare or in brackets, as a word of its own.
fn starts_with_level(text: &[u8]) -> bool {
    let word = text.strip_prefix(b"[").unwrap_or(text);
    let n = word.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    let ends_word = matches!(word.get(n), None | Some(b' ' | b']' | b':'));
    ends_word && LEVELS.iter().any(|l| word[..n].eq_ignore_ascii_case(l))
}

fn strip_stamp(line: &[u8], tokens: u8) -> Option<Stripped<'_>> {
    let (mut i, ts) = stamp_time(line)?;
    for _ in 0..tokens {
        i = after_spaces(line, i)?;
        i = word_end(line, i)?;
    }
    let body = after_spaces(line, i)?;
    // A ` - ` separator and a log level belong to the header: a body that starts with one was
    // cut too early.
    if line[body..].starts_with(b"- ") || starts_with_level(&line[body..]) {
        return None;
    }
    Some(Stripped {
        body: &line[body..],
        time: Some(HeaderTime::Us(ts)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(p: Prefix, line: &str) -> Option<String> {
        p.strip(line.as_bytes())
            .map(|s| String::from_utf8_lossy(s.body).into_owned())
    }

    #[test]
    fn syslog_headers() {
        let cases = [
            // RFC 3164 with host and pid, space-padded day (HAProxy through rsyslog).
            (
                "Feb  2 04:05:24 127.0.0.1 haproxy[9883]: 127.0.0.1:42617 [02/Feb",
                "127.0.0.1:42617 [02/Feb",
            ),
            // Without host, with <PRI> (HAProxy logging straight to a socket).
            (
                "<134>Oct 11 22:14:15 haproxy[61]: 10.0.1.2:33317 [06/Feb",
                "10.0.1.2:33317 [06/Feb",
            ),
            // Program without pid.
            (
                "Nov 17 10:00:00 web1 nginx: 1.2.3.4 - - [17/Nov",
                "1.2.3.4 - - [17/Nov",
            ),
            // rsyslog's RFC 3339 template.
            (
                "2024-03-01T10:00:00.123456+01:00 lb1 haproxy[7]: 1.2.3.4:5 [01/Mar",
                "1.2.3.4:5 [01/Mar",
            ),
            // RFC 5424 with structured data and without.
            (
                "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"App\\]lication\"] An application event",
                "An application event",
            ),
            (
                "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed",
                "'su root' failed",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(body(Prefix::Syslog, line).as_deref(), Some(want), "{line}");
        }
        let ts = Prefix::Syslog
            .strip(b"<34>1 2003-10-11T22:14:15.003Z host su - ID47 - x")
            .and_then(|s| s.time?.us());
        assert_eq!(ts, value::parse_iso8601(b"2003-10-11T22:14:15.003Z"));
        for line in [
            "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326",
            "Feb  2 04:05:24 just some words here",
            "<999999>Oct 11 22:14:15 haproxy[61]: x",
            "",
        ] {
            assert_eq!(body(Prefix::Syslog, line), None, "{line}");
        }
    }

    #[test]
    fn stamps() {
        let cases = [
            // log4js connect-logger: [time] [LEVEL] category - line
            (
                3,
                "[2016-09-15 19:53:32.555] [TRACE] normal - 127.0.0.1 - -",
                "127.0.0.1 - -",
            ),
            // Python logging `%(asctime)s - %(name)s - %(levelname)s - %(message)s`
            (
                5,
                "2023-01-01 12:00:00,123 - gunicorn.access - INFO - 10.0.0.1 - -",
                "10.0.0.1 - -",
            ),
            // gunicorn's own `[%(asctime)s] [%(process)d] [%(levelname)s]`
            (
                2,
                "[2023-01-01 12:00:00 +0000] [7] [INFO] 10.0.0.1 - -",
                "10.0.0.1 - -",
            ),
            // docker --timestamps, Go's log package, pm2 --time
            (0, "2024-01-01T00:00:00.123456789Z GET / 200", "GET / 200"),
            (0, "2009/11/10 23:00:00 GET / 200", "GET / 200"),
            (0, "2024-01-01T00:00:00: GET / 200", "GET / 200"),
            // log4j `%d %-5p [%t] %c - %m`: padded level, thread with a space
            (
                4,
                "2024-01-01 10:00:00,001 INFO  [main thread] access - 1.2.3.4 x",
                "1.2.3.4 x",
            ),
        ];
        for (tokens, line, want) in cases {
            assert_eq!(
                body(Prefix::Stamp { tokens }, line).as_deref(),
                Some(want),
                "{line}"
            );
        }
        let ts = Prefix::Stamp { tokens: 2 }
            .strip(b"[2023-01-01 12:00:00 +0100] [7] [INFO] x")
            .and_then(|s| s.time?.us());
        assert_eq!(ts, value::parse_iso8601(b"2023-01-01T11:00:00Z"));
        assert_eq!(
            body(Prefix::Stamp { tokens: 0 }, "10/Oct/2000:13:55:36 x"),
            None
        );
        assert_eq!(
            body(Prefix::Stamp { tokens: 3 }, "2024-01-01 10:00:00 a b"),
            None
        );
        assert_eq!(
            body(
                Prefix::Stamp { tokens: 2 },
                "[2016-09-15 19:53:32.555] [TRACE] normal - 1.2.3.4"
            ),
            None,
            "the separator is part of the header"
        );
    }

    #[test]
    fn names_round_trip_and_detection_needs_most_lines() {
        for p in [
            Prefix::Syslog,
            Prefix::Stamp { tokens: 0 },
            Prefix::Stamp { tokens: 6 },
        ] {
            assert_eq!(Prefix::from_name(&p.name()), Some(p));
        }
        assert_eq!(Prefix::from_name("stamp7"), None);
        assert_eq!(Prefix::from_name("nope"), None);
        let sys: &[u8] = b"Feb  2 04:05:24 host prog[1]: x";
        let plain: &[u8] = b"1.2.3.4 - - [x]";
        assert_eq!(Prefix::detect(&[sys, sys, plain]), vec![Prefix::Syslog]);
        assert!(Prefix::detect(&[sys, plain, plain]).is_empty());
        let stamped: &[u8] = b"2024-01-01 00:00:00 INFO x";
        assert_eq!(
            Prefix::detect(&[stamped]).len(),
            usize::from(MAX_STAMP_TOKENS) + 1
        );
    }
}
