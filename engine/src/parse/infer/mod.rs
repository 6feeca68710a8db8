//! Format inference: a pattern for a log that no known format reads, found from its lines.
//!
//! Each sampled line is cut into tokens: a quoted string, a bracketed group, a timestamp (also
//! one that holds spaces), a bare word, each possibly after a `key=`. The token layout most lines
//! share is taken as the file's (the longest start of it that 95% of the lines share, the rest
//! optional), and each of its columns is named by what its values look like across all lines:
//! a timestamp of a common layout (CLF, ISO 8601, `YYYY/MM/DD`, RFC 1123, epoch seconds or
//! milliseconds), an address (with or without port), a request line (quoted, or as method,
//! target and protocol), a status (three digits in 100..=599), a byte count, durations (decimal
//! seconds, or with a unit), a URL (the referer), a product token (the user agent), a host name.
//! Nothing is tied to a server, only to the grammar of the values. The result is an ordinary
//! regex format, so it runs on the splitter like a hand-written one, and, where every column has
//! one, the equivalent nginx `log_format` and Apache `LogFormat`. JSON lines get a JSON mapping
//! the same way ([`json`]), their keys' names breaking the ties their values leave.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::LazyLock;

use indexmap::IndexMap;
use regex::bytes::Regex;
use serde::Serialize;

use super::directive::snake;
use super::prefix::Prefix;
use super::{FieldKind, FieldSpec, FormatSpec, Parser, Patterns};

mod json;

/// Share of the sampled lines the inferred layout must cover (and that `ingest --format auto`
/// requires before it uses an inferred format on its own).
pub const MIN_INFERRED_RATE: f64 = 0.95;
/// The name `ingest --format auto` gives a format it inferred.
pub const INFERRED: &str = "inferred";
/// Tokens of a line looked at; a longer line is cut there.
const MAX_TOKENS: usize = 48;

/// How a token is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Lex {
    Bare,
    Quoted,
    Bracketed,
    /// A bare timestamp that may hold spaces.
    Time(Shape),
}

/// Timestamp layouts found by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Shape {
    Clf,
    /// CLF without an offset (HAProxy's `%tr`).
    ClfLocal,
    /// CLF's date, a space, the time, no offset (Python's `http.server`).
    DmySpaced,
    Iso,
    Slashed,
    Rfc1123,
}

impl Shape {
    const ALL: [Shape; 6] = [
        Shape::Clf,
        Shape::ClfLocal,
        Shape::DmySpaced,
        Shape::Iso,
        Shape::Slashed,
        Shape::Rfc1123,
    ];

    /// The regex of the layout (unanchored).
    fn regex(self) -> &'static str {
        match self {
            Shape::Clf => r"\d{1,2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2}(?:\.\d+)? [+-]\d{4}",
            Shape::ClfLocal => r"\d{1,2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2}(?:\.\d+)?",
            Shape::DmySpaced => r"\d{1,2}/[A-Za-z]{3}/\d{4} \d{2}:\d{2}:\d{2}(?:[.,]\d+)?",
            Shape::Iso => {
                r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2}| [+-]\d{4})?"
            }
            Shape::Slashed => r"\d{4}/\d{2}/\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?",
            Shape::Rfc1123 => r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT",
        }
    }

    /// The `format:` of the timestamp field; `sample` tells `T` from a space where it matters.
    fn format(self, sample: &[u8]) -> String {
        match self {
            Shape::Clf => "clf".into(),
            Shape::ClfLocal => "%d/%b/%Y:%H:%M:%S%f".into(),
            Shape::DmySpaced => "%d/%b/%Y %H:%M:%S%f".into(),
            Shape::Iso => "iso8601".into(),
            Shape::Slashed if sample.get(10) == Some(&b'T') => "%Y/%m/%dT%H:%M:%S%f".into(),
            Shape::Slashed => "%Y/%m/%d %H:%M:%S%f".into(),
            Shape::Rfc1123 => "%a, %d %b %Y %H:%M:%S GMT".into(),
        }
    }
}

static SHAPES: LazyLock<Vec<(Shape, Regex)>> = LazyLock::new(|| {
    Shape::ALL
        .iter()
        .map(|s| {
            let re = Regex::new(&format!("^(?-u:{})", s.regex())).expect("a valid time regex");
            (*s, re)
        })
        .collect()
});
static KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,31}=").expect("a valid regex"));
static REQUEST_START: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Z]{3,12} \S").expect("a valid regex"));
static PROTOCOL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^HTTP/\d(?:\.\d)?$").expect("a valid regex"));
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|μs|ms|s|m|h))+$").expect("a valid regex")
});
static HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?::\d{1,5})?$")
        .expect("a valid regex")
});
static AGENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9._+-]*/\S").expect("a valid regex"));

/// Request methods of HTTP and WebDAV.
const METHODS: &[&str] = &[
    "GET",
    "POST",
    "HEAD",
    "PUT",
    "DELETE",
    "OPTIONS",
    "PATCH",
    "CONNECT",
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "SEARCH",
    "REPORT",
];

/// One token of a line.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    lex: Lex,
    key: Option<&'a [u8]>,
    /// The text inside the quotes or brackets.
    value: &'a [u8],
    /// The blanks before it.
    sep: &'a [u8],
}

/// A timestamp layout that starts `text` and ends where a token may end.
fn time_at(text: &[u8]) -> Option<(Shape, usize)> {
    SHAPES.iter().find_map(|(shape, re)| {
        let len = re.find(text)?.end();
        matches!(text.get(len), None | Some(b' ' | b'\t' | b'"' | b']')).then_some((*shape, len))
    })
}

/// Cuts a line into tokens (at most [`MAX_TOKENS`]).
fn lex(line: &[u8]) -> Vec<Token<'_>> {
    let blank = |b: u8| b == b' ' || b == b'\t';
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() && out.len() < MAX_TOKENS {
        let sep_start = i;
        while i < line.len() && blank(line[i]) {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let sep = &line[sep_start..i];
        let key = KEY.find(&line[i..]).map(|m| &line[i..i + m.end() - 1]);
        if let Some(k) = key {
            i += k.len() + 1;
        }
        let rest = &line[i..];
        let (lex, value, len) = if let Some((shape, len)) = time_at(rest) {
            (Lex::Time(shape), &rest[..len], len)
        } else if rest.first() == Some(&b'"')
            && let Some(end) = closing_quote(rest).filter(|e| ends(rest, e + 1))
        {
            (Lex::Quoted, &rest[1..end], end + 1)
        } else if rest.first() == Some(&b'[')
            && let Some(end) = rest
                .iter()
                .position(|b| *b == b']')
                .filter(|e| ends(rest, e + 1))
        {
            (Lex::Bracketed, &rest[1..end], end + 1)
        } else {
            let len = rest.iter().position(|b| blank(*b)).unwrap_or(rest.len());
            (Lex::Bare, &rest[..len], len)
        };
        out.push(Token {
            lex,
            key,
            value,
            sep,
        });
        i += len;
    }
    out
}

/// Whether a token may end at `i` of `text` (a blank or the end follows; `[::1]:80` is one word).
fn ends(text: &[u8], i: usize) -> bool {
    matches!(text.get(i), None | Some(b' ' | b'\t'))
}

/// The index of the quote that closes the string `text` opens (`\"` escapes).
fn closing_quote(text: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// What a column's values look like.
#[derive(Debug, Clone, PartialEq)]
enum Class {
    Time(String),
    Request,
    Method,
    Target,
    Protocol,
    Ip,
    IpPort,
    Status,
    Int,
    Seconds,
    Duration,
    Url,
    Agent,
    Host,
    Dash,
    /// The same short lowercase word in every line (`from`, `in`): written into the pattern, not
    /// captured. A name that happens to repeat in the sample (a frontend) stays a field.
    Word(String),
    Text,
}

impl Class {
    fn label(&self) -> &'static str {
        match self {
            Class::Time(_) => "timestamp",
            Class::Request => "request line",
            Class::Method => "method",
            Class::Target => "request target",
            Class::Protocol => "protocol",
            Class::Ip => "address",
            Class::IpPort => "address:port",
            Class::Status => "status",
            Class::Int => "integer",
            Class::Seconds => "decimal seconds",
            Class::Duration => "duration",
            Class::Url => "URL",
            Class::Agent => "user agent",
            Class::Host => "host name",
            Class::Dash => "always -",
            Class::Word(_) => "the same word",
            Class::Text => "text",
        }
    }
}

fn is_ip(v: &[u8]) -> bool {
    std::str::from_utf8(v).is_ok_and(|s| s.parse::<IpAddr>().is_ok())
}

fn is_ip_port(v: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    s.parse::<std::net::SocketAddr>().is_ok()
}

fn digits(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(u8::is_ascii_digit)
}

fn decimal(v: &[u8]) -> bool {
    match v.iter().position(|b| *b == b'.') {
        Some(dot) => digits(&v[..dot]) && digits(&v[dot + 1..]),
        None => digits(v),
    }
}

/// Seconds since the epoch between 2000 and 2100 (10 integer digits).
fn epoch_seconds(v: &[u8]) -> bool {
    let int = v.split(|b| *b == b'.').next().unwrap_or_default();
    decimal(v)
        && int.len() == 10
        && std::str::from_utf8(int)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|n| (946_684_800..4_102_444_800).contains(&n))
}

/// Classifies a column from its token kind and its values.
fn classify(lex: Lex, all: &[&[u8]]) -> Class {
    let vals: Vec<&[u8]> = all
        .iter()
        .copied()
        .filter(|v| !v.is_empty() && *v != b"-")
        .collect();
    if let Lex::Time(shape) = lex {
        return Class::Time(shape.format(all[0]));
    }
    if vals.is_empty() {
        return Class::Dash;
    }
    let share =
        |f: &dyn Fn(&[u8]) -> bool| vals.iter().filter(|v| f(v)).count() as f64 / vals.len() as f64;
    let every = |f: &dyn Fn(&[u8]) -> bool| vals.iter().all(|v| f(v));
    let agent = |v: &[u8]| AGENT.is_match(v) && v.contains(&b'(');
    let url = |v: &[u8]| v.starts_with(b"http://") || v.starts_with(b"https://");
    if lex != Lex::Bare {
        let whole_time = |v: &[u8]| time_at(v).is_some_and(|(_, n)| n == v.len());
        if every(&whole_time) {
            let (shape, _) = time_at(vals[0]).expect("checked");
            return Class::Time(shape.format(vals[0]));
        }
    }
    if lex == Lex::Bracketed {
        return Class::Text;
    }
    if lex == Lex::Bare
        && vals.len() == all.len()
        && vals.len() >= 3
        && vals.iter().all(|v| *v == vals[0])
        && vals[0].len() <= 4
        && vals[0].iter().all(u8::is_ascii_lowercase)
    {
        return Class::Word(String::from_utf8_lossy(vals[0]).into_owned());
    }
    if lex == Lex::Quoted {
        // Scanners send junk request lines (TLS handshakes); most lines carry a real one.
        return if share(&|v| REQUEST_START.is_match(v)) >= 0.5 {
            Class::Request
        } else if share(&url) >= 0.8 {
            Class::Url
        } else if share(&|v| AGENT.is_match(v)) >= 0.5 {
            Class::Agent
        } else {
            Class::Text
        };
    }
    if every(&is_ip) {
        Class::Ip
    } else if every(&is_ip_port) {
        Class::IpPort
    } else if share(&|v| METHODS.iter().any(|m| m.as_bytes() == v)) >= 0.9 {
        Class::Method
    } else if every(&|v| PROTOCOL.is_match(v)) {
        Class::Protocol
    } else if share(&|v| v.starts_with(b"/") || v == b"*") >= 0.9 {
        Class::Target
    } else if every(&epoch_seconds) {
        Class::Time("epoch".into())
    } else if every(&|v| digits(v) && v.len() == 13 && v.starts_with(b"1")) {
        Class::Time("epoch_ms".into())
    } else if every(&|v| v.len() == 3 && digits(v) && (b'1'..=b'5').contains(&v[0])) {
        Class::Status
    } else if every(&digits) {
        Class::Int
    } else if every(&decimal) {
        Class::Seconds
    } else if every(&|v| DURATION.is_match(v)) {
        Class::Duration
    } else if every(&|v| HOST.is_match(v)) {
        Class::Host
    } else if share(&url) >= 0.8 {
        Class::Url
    } else if share(&agent) >= 0.5 {
        // A bare user agent: IIS writes its spaces as `+`.
        Class::Agent
    } else {
        Class::Text
    }
}

/// One column of a suggested format.
#[derive(Debug, Clone, Serialize)]
pub struct SuggestedColumn {
    /// The regex group (empty for a word written into the pattern).
    pub field: String,
    /// The data-model column it fills (the field name for an extra column).
    pub column: String,
    /// What its values look like.
    pub looks_like: String,
    /// A value from the file.
    pub example: String,
    /// Only in some lines (the optional end of the layout).
    pub optional: bool,
}

/// A format inferred from a file's lines.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    /// Format name (`NAME` or `NAME+syslog`).
    pub name: String,
    /// The pattern (text lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Field name -> path in each line's object (JSON lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<IndexMap<String, String>>,
    /// Field types.
    #[serde(skip)]
    pub fields: BTreeMap<String, FieldSpec>,
    /// Whether each line's time is the syslog header's.
    pub time_from_header: bool,
    /// The columns, in line order.
    pub columns: Vec<SuggestedColumn>,
    /// The equivalent nginx `log_format`, when every column has an nginx variable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nginx: Option<String>,
    /// The equivalent Apache `LogFormat`, when every column has an Apache directive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apache: Option<String>,
    /// Sampled lines the pattern reads.
    pub matched: usize,
    /// Sampled lines (blank ones aside).
    pub sampled: usize,
}

/// One column of the chosen layout while it is named.
struct Col<'a> {
    lex: Lex,
    key: Option<&'a [u8]>,
    sep: Option<&'a [u8]>,
    class: Class,
    /// Distinct values other than `-`.
    distinct: usize,
    /// Some value is a 2xx status.
    success: bool,
    example: &'a [u8],
    optional: bool,
    group: String,
    spec: Option<FieldSpec>,
    /// (nginx, Apache) text of the column, when the servers have it.
    directive: (Option<String>, Option<String>),
}

impl Suggestion {
    /// Matched / sampled.
    pub fn rate(&self) -> f64 {
        if self.sampled == 0 {
            0.0
        } else {
            self.matched as f64 / self.sampled as f64
        }
    }

    /// The format as a `patterns.yaml` entry (under `formats:`).
    pub fn yaml(&self, description: &str) -> String {
        let base = self.base_name();
        let mut out = format!("  {base}:\n    description: {}\n", yaml_quote(description));
        if let Some(regex) = &self.regex {
            out.push_str(&format!("    regex: {}\n", yaml_quote(regex)));
        }
        if let Some(map) = &self.json {
            out.push_str("    json:\n");
            for (field, path) in map {
                out.push_str(&format!("      {field}: {}\n", yaml_quote(path)));
            }
        }
        if self.time_from_header {
            out.push_str("    time_from_header: true\n");
        }
        if !self.fields.is_empty() {
            out.push_str("    fields:\n");
        }
        for (name, f) in &self.fields {
            let mut parts = vec![format!("type: {}", kind_name(f.kind))];
            if let Some(fmt) = &f.format {
                parts.push(format!("format: '{}'", fmt.replace('\'', "''")));
            }
            if let Some(c) = f.column.as_ref().filter(|c| *c != name) {
                parts.push(format!("column: {c}"));
            }
            out.push_str(&format!("      {name}: {{{}}}\n", parts.join(", ")));
        }
        out
    }

    /// The name without its header suffix.
    pub fn base_name(&self) -> &str {
        super::split_name(&self.name).0
    }

    /// The format as a patterns file of its own.
    pub fn patterns(&self) -> Patterns {
        let spec = FormatSpec {
            description: "inferred by logcrunch".into(),
            regex: self.regex.clone(),
            json: self.json.clone(),
            fields: self.fields.clone(),
            time_from_header: self.time_from_header,
            ..FormatSpec::default()
        };
        single(self.base_name(), spec)
    }

    /// The compiled format.
    pub fn parser(&self, max_line_bytes: usize) -> crate::error::Result<Parser> {
        self.patterns().parser(&self.name, max_line_bytes)
    }
}

/// A patterns file holding the one format `spec` named `name`.
fn single(name: &str, spec: FormatSpec) -> Patterns {
    let mut formats = IndexMap::new();
    formats.insert(name.to_string(), spec);
    Patterns {
        formats,
        path: PathBuf::from("<inferred>"),
    }
}

fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn kind_name(k: FieldKind) -> &'static str {
    match k {
        FieldKind::String => "string",
        FieldKind::Int => "int",
        FieldKind::Seconds => "seconds",
        FieldKind::SecondsSum => "seconds_sum",
        FieldKind::Millis => "millis",
        FieldKind::Micros => "micros",
        FieldKind::Nanos => "nanos",
        FieldKind::Duration => "duration",
        FieldKind::Timestamp => "timestamp",
        FieldKind::Request => "request",
        FieldKind::Uri => "uri",
        FieldKind::Host => "host",
        FieldKind::HostPort => "host_port",
    }
}

/// Infers a format named `name` from `lines` (a file's sampled lines); `None` when the lines
/// share no layout that 95% of them follow, or it has no time.
pub fn suggest(name: &str, lines: &[&[u8]], max_line_bytes: usize) -> Option<Suggestion> {
    if json::is_json(lines) {
        let mut s = json::suggest(name, lines)?;
        (s.matched, s.sampled) = measure(&s.parser(max_line_bytes).ok()?, lines);
        return Some(s);
    }
    let (bodies, header) = take_headers(lines);
    let tokens: Vec<Vec<Token>> = bodies.iter().map(|l| lex(l)).collect();
    let (layout, required) = choose_layout(&tokens)?;
    let mut cols = columns(&tokens, &layout, required);
    let has_time = name_columns(&mut cols);
    if !has_time && header.is_none() {
        return None;
    }
    let (regex, fields) = pattern(&cols);
    let full_name = match header {
        Some(p) => format!("{name}+{}", p.name()),
        None => name.to_string(),
    };
    let mut s = Suggestion {
        name: full_name,
        regex: Some(regex),
        json: None,
        fields,
        time_from_header: !has_time,
        columns: cols
            .iter()
            .map(|c| SuggestedColumn {
                field: match c.class {
                    Class::Word(_) => String::new(),
                    _ => c.group.clone(),
                },
                column: match (&c.class, &c.spec) {
                    (Class::Word(_), _) => "(in the pattern)".into(),
                    (
                        _,
                        Some(FieldSpec {
                            column: Some(col), ..
                        }),
                    ) => col.clone(),
                    _ => c.group.clone(),
                },
                looks_like: c.class.label().into(),
                example: String::from_utf8_lossy(c.example).into_owned(),
                optional: c.optional,
            })
            .collect(),
        nginx: None,
        apache: None,
        matched: 0,
        sampled: 0,
    };
    (s.matched, s.sampled) = measure(&s.parser(max_line_bytes).ok()?, lines);
    let (nginx, apache) = directives(&cols, name);
    s.nginx = nginx.filter(|d| reads_as_well(&s, "nginx", d, lines, max_line_bytes));
    s.apache = apache.filter(|d| reads_as_well(&s, "apache", d, lines, max_line_bytes));
    Some(s)
}

/// The lines without the syslog header most of them carry, and that header.
fn take_headers<'a>(lines: &[&'a [u8]]) -> (Vec<&'a [u8]>, Option<Prefix>) {
    let trimmed: Vec<&[u8]> = lines.iter().map(|l| l.trim_ascii()).collect();
    if Prefix::detect(&trimmed).first() == Some(&Prefix::Syslog) {
        let bodies = trimmed
            .iter()
            .filter_map(|l| Prefix::Syslog.strip(l).map(|s| s.body.trim_ascii()))
            .collect();
        return (bodies, Some(Prefix::Syslog));
    }
    (trimmed, None)
}

type Layout<'a> = Vec<(Lex, Option<&'a [u8]>)>;

/// The most common token layout and how many of its columns 95% of the lines share (the others
/// become optional).
fn choose_layout<'a>(tokens: &[Vec<Token<'a>>]) -> Option<(Layout<'a>, usize)> {
    let mut counts: HashMap<Layout, usize> = HashMap::new();
    for t in tokens {
        *counts
            .entry(t.iter().map(|k| (k.lex, k.key)).collect())
            .or_default() += 1;
    }
    let (layout, _) = counts
        .into_iter()
        .max_by(|(a, na), (b, nb)| na.cmp(nb).then(a.len().cmp(&b.len())).then(b.cmp(a)))?;
    let need = (tokens.len() as f64 * MIN_INFERRED_RATE).ceil() as usize;
    let sharing = |k: usize| {
        tokens
            .iter()
            .filter(|t| {
                t.len() >= k
                    && t.iter()
                        .zip(&layout)
                        .take(k)
                        .all(|(a, b)| (a.lex, a.key) == *b)
            })
            .count()
    };
    let required = (1..=layout.len()).rev().find(|k| sharing(*k) >= need)?;
    Some((layout, required))
}

/// The columns of `layout` with their classes, from the lines that have them.
fn columns<'a>(tokens: &[Vec<Token<'a>>], layout: &Layout<'a>, required: usize) -> Vec<Col<'a>> {
    let mut out = Vec::with_capacity(layout.len());
    for (c, (lex, key)) in layout.iter().enumerate() {
        // Values come from the lines that follow the layout: all its required columns, and this
        // one when it is optional.
        let through = (c + 1).max(required);
        let having: Vec<&Token> = tokens
            .iter()
            .filter(|t| {
                t.len() >= through
                    && t.iter()
                        .zip(layout)
                        .take(through)
                        .all(|(a, b)| (a.lex, a.key) == *b)
            })
            .map(|t| &t[c])
            .collect();
        let values: Vec<&[u8]> = having.iter().map(|t| t.value).collect();
        let seps: HashSet<&[u8]> = having.iter().map(|t| t.sep).collect();
        let example = values
            .iter()
            .find(|v| !v.is_empty() && **v != b"-")
            .or(values.first())
            .copied()
            .unwrap_or_default();
        out.push(Col {
            lex: *lex,
            key: *key,
            sep: (seps.len() == 1).then(|| having[0].sep),
            class: classify(*lex, &values),
            distinct: values
                .iter()
                .filter(|v| !v.is_empty() && **v != b"-")
                .collect::<HashSet<_>>()
                .len(),
            success: values.iter().any(|v| v.len() == 3 && v[0] == b'2'),
            example,
            optional: c >= required,
            group: String::new(),
            spec: None,
            directive: (None, None),
        });
    }
    out
}

/// Names each column and gives it a type and its directive equivalents; whether a column is the
/// time.
fn name_columns(cols: &mut [Col]) -> bool {
    let (roles, time) = roles(cols);
    assign(cols, roles);
    time.is_some()
}

/// A column's role: the data-model column, its type, and a timestamp's format.
type Role = (&'static str, Option<FieldKind>, Option<String>);

/// The role of each column (none for the extra ones), and the time column.
fn roles(cols: &[Col]) -> (Vec<Option<Role>>, Option<usize>) {
    use FieldKind::{Duration, Host, HostPort, Int, Request, Seconds, Timestamp, Uri};
    let (client, status, bytes) = key_columns(cols);
    let mut taken: HashSet<&str> = HashSet::new();
    let mut roles: Vec<Option<Role>> = Vec::new();
    let mut time = None;
    for (i, c) in cols.iter().enumerate() {
        let role = match &c.class {
            Class::Time(f) if taken.insert("ts") => {
                time = Some(i);
                Some(("ts", Some(Timestamp), Some(f.clone())))
            }
            Class::Ip if client == Some(i) => Some(("client_ip", Some(Host), None)),
            Class::IpPort if client == Some(i) => Some(("client_ip", Some(HostPort), None)),
            Class::Request if taken.insert("request") => Some(("request", Some(Request), None)),
            Class::Method if taken.insert("method") => Some(("method", None, None)),
            Class::Target if taken.insert("target") => Some(("request", Some(Uri), None)),
            Class::Protocol if taken.insert("protocol") => Some(("protocol", None, None)),
            _ if status == Some(i) => Some(("status", Some(Int), None)),
            _ if bytes == Some(i) => Some(("bytes", Some(Int), None)),
            Class::Seconds | Class::Duration => {
                let kind = if c.class == Class::Seconds {
                    Seconds
                } else {
                    Duration
                };
                if taken.insert("response_time_us") {
                    Some(("response_time_us", Some(kind), None))
                } else if taken.insert("upstream_response_time_us") {
                    Some(("upstream_response_time_us", Some(kind), None))
                } else {
                    None
                }
            }
            Class::Url if taken.insert("referer") => Some(("referer", None, None)),
            Class::Agent if taken.insert("user_agent") => Some(("user_agent", None, None)),
            Class::Host if taken.insert("vhost") => Some(("vhost", None, None)),
            _ => None,
        };
        roles.push(role);
    }
    // Between the client and the time, CLF's identity and user.
    if let (Some(cl), Some(t)) = (client, time)
        && cl < t
    {
        let between: Vec<usize> = (cl + 1..t)
            .filter(|i| roles[*i].is_none() && cols[*i].lex == Lex::Bare)
            .collect();
        let names: &[&str] = match between.len() {
            1 => &["user"],
            2 => &["ident", "user"],
            _ => &[],
        };
        for (i, n) in between.iter().zip(names) {
            roles[*i] = Some((*n, None, None));
        }
    }
    (roles, time)
}

/// Names the regex group of each column and sets its type and directive equivalents.
fn assign(cols: &mut [Col], roles: Vec<Option<Role>>) {
    let mut groups: HashSet<String> = HashSet::new();
    for (i, (c, role)) in cols.iter_mut().zip(roles).enumerate() {
        let (column, kind, format) = match role {
            Some((col, kind, format)) => (Some(col.to_string()), kind, format),
            None => (None, None, None),
        };
        let base = match (&column, c.key) {
            (Some(col), None) if col == "request" && kind == Some(FieldKind::Uri) => {
                "target".to_string()
            }
            (Some(col), None) => col.clone(),
            (_, Some(k)) => snake(&String::from_utf8_lossy(k)),
            (None, None) => match c.lex {
                Lex::Quoted => format!("quoted_{}", i + 1),
                Lex::Bracketed => format!("bracketed_{}", i + 1),
                _ => format!("field_{}", i + 1),
            },
        };
        let mut group = base.clone();
        let mut n = 2;
        while !groups.insert(group.clone()) || (column.is_none() && is_canonical(&group)) {
            group = format!("{base}_{n}");
            n += 1;
        }
        c.spec = column.as_ref().map(|col| FieldSpec {
            kind: kind.unwrap_or(FieldKind::String),
            format,
            column: Some(col.clone()),
            raw: None,
        });
        c.directive = directive_of(c, column.as_deref());
        c.group = group;
    }
}

/// The client, status and byte-count columns: the address with the most distinct values (a
/// server's own address repeats), the first status-like column after the request that varies
/// (a port such as 443 does not) or has a 2xx, and the integer column right after the status.
fn key_columns(cols: &[Col]) -> (Option<usize>, Option<usize>, Option<usize>) {
    let client = cols
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.class, Class::Ip | Class::IpPort))
        .max_by(|(i, a), (j, b)| a.distinct.cmp(&b.distinct).then(j.cmp(i)))
        .map(|(i, _)| i);
    let request = cols
        .iter()
        .position(|c| matches!(c.class, Class::Request | Class::Target));
    let statuses: Vec<usize> = (0..cols.len())
        .filter(|i| cols[*i].class == Class::Status)
        .collect();
    let after: Vec<usize> = statuses
        .iter()
        .copied()
        .filter(|i| request.is_none_or(|r| *i > r))
        .collect();
    let pool = if after.is_empty() { &statuses } else { &after };
    let status = pool
        .iter()
        .copied()
        .find(|i| cols[*i].distinct > 1)
        .or_else(|| pool.iter().copied().find(|i| cols[*i].success))
        .or(pool.first().copied());
    let bytes = status.map(|s| s + 1).filter(|b| {
        cols.get(*b)
            .is_some_and(|c| matches!(c.class, Class::Int | Class::Status) && c.distinct > 1)
    });
    (client, status, bytes)
}

fn is_canonical(name: &str) -> bool {
    matches!(
        name,
        "ts" | "client_ip"
            | "ident"
            | "user"
            | "request"
            | "method"
            | "path"
            | "query"
            | "protocol"
            | "status"
            | "bytes"
            | "referer"
            | "user_agent"
            | "response_time_us"
            | "upstream_response_time_us"
            | "vhost"
            | "x_forwarded_for"
    )
}

/// The nginx variable and Apache directive that write a column, as far as they exist.
fn directive_of(c: &Col, column: Option<&str>) -> (Option<String>, Option<String>) {
    let (nginx, apache): (Option<&str>, Option<&str>) = match (column, &c.class) {
        (Some("ts"), Class::Time(f)) if f == "clf" && c.lex == Lex::Bracketed => {
            (Some("$time_local"), Some("%t"))
        }
        (Some("ts"), Class::Time(f)) if f == "epoch" => (Some("$msec"), None),
        (Some("ts"), Class::Time(f)) if f == "iso8601" && c.lex == Lex::Time(Shape::Iso) => {
            (Some("$time_iso8601"), None)
        }
        (Some("client_ip"), Class::Ip) => (Some("$remote_addr"), Some("%h")),
        (Some("ident"), Class::Dash) => (Some("-"), Some("%l")),
        (Some("user"), _) => (Some("$remote_user"), Some("%u")),
        (Some("request"), Class::Request) => (Some("$request"), Some("%r")),
        (Some("request"), Class::Target) => (Some("$request_uri"), Some("%U%q")),
        (Some("method"), _) => (Some("$request_method"), Some("%m")),
        (Some("protocol"), _) => (Some("$server_protocol"), Some("%H")),
        (Some("status"), _) => (Some("$status"), Some("%>s")),
        (Some("bytes"), _) => (Some("$body_bytes_sent"), Some("%b")),
        (Some("referer"), _) => (Some("$http_referer"), Some("%{Referer}i")),
        (Some("user_agent"), _) => (Some("$http_user_agent"), Some("%{User-Agent}i")),
        (Some("response_time_us"), Class::Seconds) => (Some("$request_time"), None),
        (Some("upstream_response_time_us"), Class::Seconds) => {
            (Some("$upstream_response_time"), None)
        }
        (Some("vhost"), _) => (Some("$host"), Some("%v")),
        (_, Class::Word(w)) => return (Some(w.clone()), Some(w.replace('%', "%%"))),
        _ => (None, None),
    };
    (nginx.map(String::from), apache.map(String::from))
}

/// The regex and field types of the named columns.
fn pattern(cols: &[Col]) -> (String, BTreeMap<String, FieldSpec>) {
    let mut regex = String::from("^");
    let mut fields = BTreeMap::new();
    let mut open = false;
    for (i, c) in cols.iter().enumerate() {
        if c.optional && !open {
            regex.push_str("(?:");
            open = true;
        }
        if i > 0 {
            match c.sep {
                Some(s) if !s.is_empty() => {
                    regex.push_str(&regex_syntax::escape(&String::from_utf8_lossy(s)))
                }
                Some(_) => {}
                None => regex.push_str(r"[ \t]+"),
            }
        }
        if let Some(k) = c.key {
            regex.push_str(&regex_syntax::escape(&String::from_utf8_lossy(k)));
            regex.push('=');
        }
        let g = &c.group;
        if let Class::Word(w) = &c.class {
            regex.push_str(&regex_syntax::escape(w));
            continue;
        }
        regex.push_str(&match c.lex {
            Lex::Bare => format!(r"(?P<{g}>\S+)"),
            Lex::Quoted => format!(r#""(?P<{g}>(?:[^"\\]|\\.)*)""#),
            Lex::Bracketed => format!(r"\[(?P<{g}>[^\]]*)\]"),
            Lex::Time(shape) => format!("(?P<{g}>{})", shape.regex()),
        });
        if let Some(spec) = &c.spec {
            fields.insert(g.clone(), spec.clone());
        }
    }
    if open {
        regex.push_str(")?");
    }
    regex.push('$');
    (regex, fields)
}

/// The nginx `log_format` and Apache `LogFormat` that write the columns, when each has one
/// and the columns are separated by single spaces.
fn directives(cols: &[Col], name: &str) -> (Option<String>, Option<String>) {
    let spaced = cols
        .iter()
        .skip(1)
        .all(|c| c.sep == Some(b" ".as_slice()) && !c.optional);
    if !spaced {
        return (None, None);
    }
    let build = |pick: &dyn Fn(&Col) -> Option<String>, quote: &str| -> Option<String> {
        let mut parts = Vec::new();
        for c in cols {
            let v = pick(c)?;
            let key = c
                .key
                .map(|k| format!("{}=", String::from_utf8_lossy(k)))
                .unwrap_or_default();
            parts.push(match c.lex {
                Lex::Quoted => format!("{key}{quote}{v}{quote}"),
                // Apache's %t writes its own brackets.
                Lex::Bracketed if v == "%t" => format!("{key}{v}"),
                Lex::Bracketed => format!("{key}[{v}]"),
                _ => format!("{key}{v}"),
            });
        }
        Some(parts.join(" "))
    };
    let nginx =
        build(&|c| c.directive.0.clone(), "\"").map(|body| format!("log_format {name} '{body}';"));
    let apache = build(&|c| c.directive.1.clone(), "\\\"")
        .map(|body| format!("LogFormat \"{body}\" {name}"));
    (nginx, apache)
}

/// (lines read, lines tried) of `parser` on `lines`.
fn measure(parser: &Parser, lines: &[&[u8]]) -> (usize, usize) {
    let mut scratch = parser.scratch();
    let (mut matched, mut sampled) = (0, 0);
    for l in lines {
        match parser.parse_line(&mut scratch, l, 0) {
            Ok(Some(_)) => {
                matched += 1;
                sampled += 1;
            }
            Ok(None) => {}
            Err(_) => sampled += 1,
        }
    }
    (matched, sampled)
}

/// Whether the directive `text` (`nginx` or `apache`) reads the lines as well as the pattern.
fn reads_as_well(s: &Suggestion, server: &str, text: &str, lines: &[&[u8]], max: usize) -> bool {
    let spec = FormatSpec {
        nginx: (server == "nginx").then(|| text.to_string()),
        apache: (server == "apache").then(|| text.to_string()),
        time_from_header: s.time_from_header,
        ..FormatSpec::default()
    };
    single(s.base_name(), spec)
        .parser(&s.name, max)
        .is_ok_and(|p| measure(&p, lines).0 >= s.matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<&[u8]> {
        text.lines().map(str::as_bytes).collect()
    }

    #[test]
    fn lexer_keeps_quoted_bracketed_and_spaced_times_whole() {
        let t = lex(br#"2024-03-01 10:00:00,123 [a b] "x \" y" k="v w" plain"#);
        let kinds: Vec<Lex> = t.iter().map(|t| t.lex).collect();
        assert_eq!(
            kinds,
            [
                Lex::Time(Shape::Iso),
                Lex::Bracketed,
                Lex::Quoted,
                Lex::Quoted,
                Lex::Bare
            ]
        );
        assert_eq!(t[2].value, br#"x \" y"#);
        assert_eq!(t[3].key, Some(b"k".as_slice()));
        assert_eq!(t[3].value, b"v w");
    }

    #[test]
    fn combined_lines_give_the_combined_directives() {
        let text = r#"10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /a HTTP/1.1" 200 512 "-" "curl/8.0"
10.0.0.2 - bob [10/Oct/2023:13:55:37 +0000] "POST /b?x=1 HTTP/1.1" 404 0 "https://e.com/" "Mozilla/5.0 (X11)"
2001:db8::1 - - [10/Oct/2023:13:55:38 +0000] "HEAD / HTTP/2.0" 304 0 "-" "Go-http-client/2.0""#;
        let s = suggest("x", &lines(text), 1 << 16).unwrap();
        assert_eq!((s.matched, s.sampled), (3, 3));
        assert_eq!(
            s.nginx.as_deref(),
            Some(
                r#"log_format x '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"';"#
            )
        );
        assert_eq!(
            s.apache.as_deref(),
            Some(r#"LogFormat "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"" x"#)
        );
    }

    #[test]
    fn columns_are_named_by_their_values_not_their_place() {
        // IIS-like: the server's own address first, a port that looks like a status, a bare
        // user agent with `+` for spaces, the status after the request target.
        let text = "\
2024-01-02 03:04:05 10.0.0.9 GET /a - 443 198.51.100.7 Mozilla/5.0+(X11;+Linux) 200 512 15
2024-01-02 03:04:06 10.0.0.9 GET /b x=1 443 198.51.100.8 Mozilla/5.0+(Windows+NT) 404 0 3
2024-01-02 03:04:07 10.0.0.9 POST /c - 443 203.0.113.9 curl/8.1.2+(x86_64) 200 88 41";
        let s = suggest("x", &lines(text), 1 << 16).unwrap();
        let col = |name: &str| {
            s.columns
                .iter()
                .position(|c| c.column == name)
                .unwrap_or_else(|| panic!("{name}: {:#?}", s.columns))
        };
        assert_eq!(col("ts"), 0);
        assert_eq!(col("client_ip"), 6);
        assert_eq!(col("status"), 8);
        assert_eq!(col("bytes"), 9);
        assert_eq!(col("user_agent"), 7);
        assert_eq!(s.rate(), 1.0);
    }

    #[test]
    fn keys_words_headers_and_optional_ends() {
        let text = "\
<134>Mar  1 10:00:00 web app[7]: 10.0.0.1:5000 took 12ms status=200 path=/a extra=1
<134>Mar  1 10:00:01 web app[7]: 10.0.0.2:5001 took 1.5s status=500 path=/b
<134>Mar  1 10:00:02 web app[7]: 10.0.0.3:5002 took 800us status=200 path=/c extra=2";
        let s = suggest("x", &lines(text), 1 << 16).unwrap();
        let regex = s.regex.as_deref().unwrap();
        assert_eq!(s.name, "x+syslog");
        assert!(s.time_from_header);
        assert!(
            regex.starts_with(r"^(?P<client_ip>\S+) took (?P<response_time_us>\S+) status="),
            "{regex}"
        );
        assert!(regex.ends_with(r"(?: extra=(?P<extra>\S+))?$"), "{regex}");
        assert_eq!(s.fields["response_time_us"].kind, FieldKind::Duration);
        assert_eq!((s.matched, s.sampled), (3, 3));
    }

    #[test]
    fn nothing_without_a_shared_layout_or_a_time() {
        assert!(suggest("x", &lines("a b c\nd e f\ng h i"), 1 << 16).is_none());
        assert!(suggest("x", &lines("one\ntwo three four\n\"five\" [six]"), 1 << 16).is_none());
    }
}
