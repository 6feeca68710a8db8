//! Turns chunks of log text into typed rows.
//!
//! A format comes from `config/patterns.yaml` as a regex with named groups, an nginx `log_format` or
//! Apache `LogFormat` directive (compiled to such a regex by [`directive`]; HAProxy's by
//! [`haproxy`], Tomcat's and Jetty's by [`servlet`]), a W3C `#Fields:` header ([`w3c`], resolved
//! per file), or a JSON field mapping ([`json`]), or is inferred from a file's lines ([`infer`]);
//! each named field has a type. A
//! regex compiles once into an anchored regex-automata matcher (byte mode, so invalid UTF-8 never
//! stops a match) and, when the pattern is a byte-deterministic sequence of delimited fields, into a
//! [`splitter::Splitter`] that finds the same match with `memchr` jumps at a fraction of the cost;
//! the regex stays the authority for lines the splitter rejects. Each line becomes a [`Row`] of
//! spans and integers handed to a [`RowSink`]; a line that cannot become a row is reported to the
//! sink with a [`BadReason`], never as an error. Error-log formats may span several lines: lines
//! that do not start an entry are appended to the previous entry's message.

pub mod directive;
pub mod haproxy;
pub mod infer;
pub mod json;
pub mod prefix;
pub mod servlet;
pub mod sniff;
pub mod splitter;
pub mod value;
pub mod w3c;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use regex_automata::util::captures::Captures;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, PatternID, meta};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::{ERROR_COLUMNS, RESERVED, StrCol};
use prefix::{HeaderTime, Prefix};
use splitter::{ByteSet, Splitter};
use value::TimeFormat;

/// The shipped `config/patterns.yaml`, used when no patterns file is found.
pub const BUILTIN_PATTERNS: &str = include_str!("../../../config/patterns.yaml");
/// Where the patterns file is looked for when neither `--patterns` nor the config names one.
pub const DEFAULT_PATTERNS_PATH: &str = "config/patterns.yaml";
/// Most extra (non-canonical) columns a format may declare.
pub const MAX_EXTRAS: usize = 48;
/// Name that asks for auto-detection instead of a format.
pub const AUTO: &str = "auto";
/// Formats one input may be read with: the detected one and the runners-up its unread lines fall
/// back to.
pub const MAX_CHAIN: usize = 4;
/// The extra column that keeps fields a line has beyond those its format declares.
pub const TRAILING: &str = "trailing_text";

/// The patterns file: `formats: {NAME: {...}}`, in file order (which breaks detection ties).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patterns {
    /// Formats by name.
    pub formats: IndexMap<String, FormatSpec>,
    /// Where the file was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

/// What a format describes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Access logs: rows of the `logs` table.
    #[default]
    Access,
    /// Error logs: rows of the `errors` table (`ts, level, module, pid, tid, client, message`).
    Error,
}

impl Kind {
    /// The dataset table (and directory) its rows go to.
    pub fn table(self) -> &'static str {
        match self {
            Kind::Access => "logs",
            Kind::Error => "errors",
        }
    }
}

/// One format as written in the patterns file: exactly one of `regex`, `nginx`, `apache`,
/// `haproxy`, `tomcat`, `jetty`, `w3c`, `json`, plus field types.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatSpec {
    /// One line for `formats list`.
    #[serde(default)]
    pub description: String,
    /// Access or error log.
    #[serde(default)]
    pub kind: Kind,
    /// Regex with named groups; matched anchored at the line start, in byte mode (no Unicode).
    #[serde(default)]
    pub regex: Option<String>,
    /// An nginx `log_format` string.
    #[serde(default)]
    pub nginx: Option<String>,
    /// An Apache `LogFormat` string.
    #[serde(default)]
    pub apache: Option<String>,
    /// A HAProxy `log-format` string.
    #[serde(default)]
    pub haproxy: Option<String>,
    /// A Tomcat `AccessLogValve` pattern (or the whole `<Valve .../>` element).
    #[serde(default)]
    pub tomcat: Option<String>,
    /// Tomcat's major version, for `%D` (milliseconds before 10, microseconds since).
    #[serde(default)]
    pub tomcat_version: Option<u32>,
    /// A Jetty `CustomRequestLog` format string.
    #[serde(default)]
    pub jetty: Option<String>,
    /// W3C extended log (IIS): the columns come from each file's `#Fields:` header.
    #[serde(default)]
    pub w3c: bool,
    /// JSON lines: field name -> dotted path in the object (`request.headers.User-Agent`).
    #[serde(default)]
    pub json: Option<IndexMap<String, String>>,
    /// Type and target column of fields; fields not listed get the default of their name.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSpec>,
    /// The lines carry no time of their own: it comes from the syslog or logging-library header
    /// in front of each line, so the format is only read through one (`NAME+syslog`,
    /// `NAME+stampN`).
    #[serde(default)]
    pub time_from_header: bool,
}

/// The type of one named field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// How the text is converted.
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// For timestamps: `clf`, `iso8601`, `epoch`, `epoch_ms` or a strftime layout.
    #[serde(default)]
    pub format: Option<String>,
    /// Column to fill, when it differs from the field name.
    #[serde(default)]
    pub column: Option<String>,
    /// Also keep the text as logged in this extra column (e.g. multi-value upstream times).
    #[serde(default)]
    pub raw: Option<String>,
}

impl FieldSpec {
    /// A field of type `kind` filling `column`.
    pub fn to(kind: FieldKind, column: &str) -> FieldSpec {
        FieldSpec {
            kind,
            format: None,
            column: Some(column.to_string()),
            raw: None,
        }
    }
}

/// Field types of the patterns file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Text; `-` is null.
    String,
    /// Unsigned integer; `-` is null.
    Int,
    /// Decimal seconds (`0.123`), stored as exact integer µs.
    Seconds,
    /// Several decimal seconds (`0.012, 0.004 : 0.100`, nginx upstream times), stored as their
    /// total in µs; `-` entries count as nothing.
    SecondsSum,
    /// Integer or decimal milliseconds, stored as µs.
    Millis,
    /// Integer microseconds (Apache `%D`).
    Micros,
    /// Integer nanoseconds (Traefik's `Duration`), stored as µs.
    Nanos,
    /// A Go duration string (`1.5ms`, `2m3s`) or decimal seconds (Caddy's `duration`).
    Duration,
    /// A point in time; see `format`.
    Timestamp,
    /// `METHOD target PROTOCOL`, split into method, path, query, protocol.
    Request,
    /// A request target `path?query`, split into path and query.
    Uri,
    /// A remote address, possibly a proxy list; the first public entry is the client.
    Host,
    /// An address with its port (`1.2.3.4:5678`, `[::1]:80`, HAProxy's `::1:80`); the port is
    /// dropped.
    HostPort,
}

/// A format resolved to a matcher source and the full field table.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The regex, or `None` for JSON.
    pub regex: Option<String>,
    /// The JSON mapping.
    pub json: Option<IndexMap<String, String>>,
    /// Field types (directive defaults with the user's `fields` on top).
    pub fields: BTreeMap<String, FieldSpec>,
    /// Lines starting with this byte are comments (W3C headers).
    pub comment: Option<u8>,
    /// The time comes from a header in front of the line.
    pub time_from_header: bool,
}

impl FormatSpec {
    /// Resolves directives and headers into a regex (or JSON mapping) and field types. `head` is the
    /// start of the input, needed only by W3C formats (its `#Fields:` line).
    pub fn resolve(&self, head: &[u8]) -> std::result::Result<Resolved, String> {
        let given = [
            self.regex.is_some(),
            self.nginx.is_some(),
            self.apache.is_some(),
            self.haproxy.is_some(),
            self.tomcat.is_some(),
            self.jetty.is_some(),
            self.w3c,
            self.json.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(
                "give exactly one of regex, nginx, apache, haproxy, tomcat, jetty, w3c, json"
                    .into(),
            );
        }
        if self.tomcat_version.is_some() && self.tomcat.is_none() {
            return Err("tomcat_version is only for a `tomcat:` pattern".into());
        }
        let (regex, json, mut fields, comment) = if let Some(r) = &self.regex {
            (Some(r.clone()), None, BTreeMap::new(), None)
        } else if let Some(d) = &self.nginx {
            let (r, j, f) = directive::nginx(d)?;
            (r, j, f, None)
        } else if let Some(d) = &self.apache {
            let (r, j, f) = directive::apache(d)?;
            (r, j, f, None)
        } else if let Some(d) = &self.haproxy {
            let (r, j, f) = haproxy::haproxy(d)?;
            (r, j, f, None)
        } else if let Some(d) = &self.tomcat {
            let (r, j, f) = servlet::tomcat(d, self.tomcat_version)?;
            (r, j, f, None)
        } else if let Some(d) = &self.jetty {
            let (r, j, f) = servlet::jetty(d)?;
            (r, j, f, None)
        } else if self.w3c {
            let (r, f) = w3c::from_head(head)?;
            (Some(r), None, f, Some(b'#'))
        } else {
            (None, self.json.clone(), BTreeMap::new(), None)
        };
        fields.extend(self.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(Resolved {
            regex,
            json,
            fields,
            comment,
            time_from_header: self.time_from_header,
        })
    }
}

impl Patterns {
    /// Loads `path`, else `config/patterns.yaml`, else the built-in patterns.
    pub fn load(path: Option<&Path>) -> Result<Patterns> {
        let default = Path::new(DEFAULT_PATTERNS_PATH);
        let chosen = match path {
            Some(p) => Some(p),
            None if default.is_file() => Some(default),
            None => None,
        };
        match chosen {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| Error::io("cannot read", p, e))?;
                Patterns::parse(&text, p)
            }
            None => Patterns::parse(BUILTIN_PATTERNS, Path::new("<built-in patterns.yaml>")),
        }
    }

    /// Parses patterns text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Patterns> {
        let mut p: Patterns = serde_norway::from_str(text).map_err(|e| Error::Config {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        p.path = origin.to_path_buf();
        if p.formats.contains_key(AUTO) {
            return Err(Error::Config {
                path: origin.to_path_buf(),
                message: format!("`{AUTO}` is reserved for auto-detection; rename that format"),
            });
        }
        Ok(p)
    }

    /// The spec of format `name` (a `+syslog` or `+stampN` suffix names the header the lines
    /// are read through), or an error listing the known names.
    pub fn spec(&self, name: &str) -> Result<&FormatSpec> {
        let (base, _) = split_name(name);
        self.formats.get(base).ok_or_else(|| Error::UnknownFormat {
            name: name.to_string(),
            path: self.path.clone(),
            known: self.formats.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Compiles format `name` (W3C formats need [`Patterns::parser_for`]).
    pub fn parser(&self, name: &str, max_line_bytes: usize) -> Result<Parser> {
        self.parser_for(name, max_line_bytes, b"")
    }

    /// Compiles format `name` for an input starting with `head`.
    pub fn parser_for(&self, name: &str, max_line_bytes: usize, head: &[u8]) -> Result<Parser> {
        let spec = self.spec(name)?;
        let err = |message| Error::Pattern {
            path: self.path.clone(),
            format: name.to_string(),
            message,
        };
        let prefix = match split_name(name) {
            (_, Some(suffix)) => Some(Prefix::from_name(suffix).ok_or_else(|| {
                err(format!(
                    "`+{suffix}` is not a header; use +syslog or +stamp0 .. +stamp{}",
                    prefix::MAX_STAMP_TOKENS
                ))
            })?),
            (_, None) => None,
        };
        let resolved = spec.resolve(head).map_err(err)?;
        let parser = Parser::compile(name, spec.kind, &resolved, max_line_bytes).map_err(err)?;
        Ok(match prefix {
            Some(p) => parser.with_prefix(p),
            None => parser,
        })
    }
}

/// A format name and the header suffix after its `+`, if any.
pub fn split_name(name: &str) -> (&str, Option<&str>) {
    match name.split_once('+') {
        Some((base, suffix)) => (base, Some(suffix)),
        None => (name, None),
    }
}

/// Why a line did not become a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadReason {
    /// The format's pattern does not match the line.
    NoMatch,
    /// The line is longer than `ingest.max_line_bytes`.
    LineTooLong,
    /// The line contains NUL bytes (other than a leading run, which is stripped).
    NulByte,
    /// The timestamp is missing (`-`).
    NoTimestamp,
    /// The timestamp does not fit the format's layout.
    BadTimestamp,
    /// A typed field (named) holds text of the wrong type.
    BadField(&'static str),
    /// The input ended inside this line because the compressed stream is truncated or corrupt.
    TruncatedInput,
    /// The rest of a line whose start an earlier run ingested when the file ended without a newline.
    PartialLineContinued,
}

impl BadReason {
    /// Stable key used in summaries, the quarantine file and the manifest.
    pub fn key(&self) -> Cow<'static, str> {
        match self {
            BadReason::NoMatch => "no_match".into(),
            BadReason::LineTooLong => "line_too_long".into(),
            BadReason::NulByte => "nul_byte".into(),
            BadReason::NoTimestamp => "no_timestamp".into(),
            BadReason::BadTimestamp => "bad_timestamp".into(),
            BadReason::BadField(f) => format!("bad_{f}").into(),
            BadReason::TruncatedInput => "truncated_input".into(),
            BadReason::PartialLineContinued => "partial_line_continued".into(),
        }
    }
}

/// A byte range of a row's text.
pub type Span = (u32, u32);

/// One parsed line (or multi-line entry); its texts are spans of one buffer (the line, or the
/// decoded text of a JSON line).
#[derive(Debug, Clone)]
pub struct Row<'a> {
    /// Byte offset of the line in its source.
    pub offset: u64,
    /// Timestamp, µs since the epoch, UTC.
    pub ts_us: i64,
    /// HTTP status.
    pub status: Option<u16>,
    /// Response bytes.
    pub bytes: Option<u64>,
    /// Response time in µs.
    pub response_time_us: Option<u64>,
    /// Upstream response time in µs.
    pub upstream_response_time_us: Option<u64>,
    src: &'a [u8],
    strs: [Option<Span>; 11],
    extras: &'a [Option<Span>],
}

impl<'a> Row<'a> {
    fn text(&self, span: Option<Span>) -> Option<&'a [u8]> {
        span.map(|(s, e)| &self.src[s as usize..e as usize])
    }

    /// The value of string column `c`.
    pub fn str(&self, c: StrCol) -> Option<&'a [u8]> {
        self.text(self.strs[c as usize])
    }

    /// The value of extra column `i` (in the format's order).
    pub fn extra(&self, i: usize) -> Option<&'a [u8]> {
        self.text(self.extras.get(i).copied().flatten())
    }

    /// Number of extra columns.
    pub fn extras_len(&self) -> usize {
        self.extras.len()
    }
}

/// Receives what the parser makes of each line.
pub trait RowSink {
    /// A line that parsed.
    fn row(&mut self, row: &Row<'_>);
    /// A line that did not; `line_index` counts lines from the start of the chunk.
    fn bad(&mut self, offset: u64, line_index: u64, reason: BadReason, line: &[u8]);
}

/// Counts of one parsed chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStats {
    /// Lines seen, including blank, comment, continuation and bad ones.
    pub lines: u64,
    /// Rows produced.
    pub rows: u64,
    /// Bad lines.
    pub bad: u64,
    /// Empty, whitespace-only and comment lines (skipped, not bad).
    pub blank: u64,
    /// Rows read by each format of the chain (the format, then its fallbacks).
    pub by_format: [u64; MAX_CHAIN],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conv {
    Str,
    Int,
    Seconds,
    SecondsSum,
    Millis,
    Micros,
    Nanos,
    Duration,
    Timestamp,
    Request,
    Uri,
    Host,
    HostPort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Ts,
    Str(StrCol),
    Status,
    Bytes,
    ResponseTime,
    UpstreamTime,
    Request,
    Extra(usize),
}

#[derive(Debug, Clone)]
struct Slot {
    group: usize,
    name: String,
    conv: Conv,
    target: Target,
    raw: Option<usize>,
    time: Option<TimeFormat>,
}

/// Which matcher a format runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// The splitter, with the regex for lines it rejects.
    Splitter,
    /// The regex engine with a one-pass DFA.
    OnePass,
    /// The general regex engine (backtracking or PikeVM).
    Regex,
    /// A JSON decoder with a field mapping.
    Json,
}

#[derive(Debug, Clone)]
enum Matcher {
    Regex {
        regex: meta::Regex,
        splitter: Option<Splitter>,
        /// The regex without its `$`, then blanks and any text (one more group): a line with
        /// fields the format does not declare.
        tolerant: Option<meta::Regex>,
    },
    Json(json::Mapping),
}

/// The member of a chain that reads a line, the part of the line it reads, and the header's
/// time.
type Picked<'a> = (usize, &'a [u8], Option<HeaderTime<'a>>);

/// Which of a format's matchers to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The format as declared.
    Strict,
    /// The format followed by undeclared fields.
    Tolerant,
}

/// Another format tried on the lines a format does not read (a file that mixes layouts), with
/// the position of each of its extra columns among the chain's.
#[derive(Debug, Clone)]
struct Fallback {
    parser: Arc<Parser>,
    extras: Vec<usize>,
}

/// A compiled format, shared by all workers.
#[derive(Debug, Clone)]
pub struct Parser {
    name: String,
    kind: Kind,
    matcher: Matcher,
    engine: Engine,
    slots: Vec<Slot>,
    extras: Vec<String>,
    groups: usize,
    max_line_bytes: usize,
    comment: Option<u8>,
    multiline: Option<usize>,
    entry_start: Option<ByteSet>,
    regex_text: Option<String>,
    prefix: Option<Prefix>,
    time_from_header: bool,
    trailing: Option<usize>,
    fallbacks: Vec<Fallback>,
}

/// Per-worker mutable state of a [`Parser`].
#[derive(Debug)]
pub struct Scratch {
    cache: Option<meta::Cache>,
    caps: Option<Captures>,
    tolerant: Option<(meta::Cache, Captures)>,
    spans: Vec<Option<Span>>,
    trailing: Option<Span>,
    arena: Vec<u8>,
    extras: Vec<Option<Span>>,
    fallbacks: Vec<Scratch>,
    member: usize,
}

fn default_conv(column: &str) -> Conv {
    match column {
        "ts" => Conv::Timestamp,
        "client_ip" => Conv::Host,
        "request" => Conv::Request,
        "status" | "bytes" => Conv::Int,
        "response_time_us" | "upstream_response_time_us" => Conv::Micros,
        _ => Conv::Str,
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn conv_of(kind: FieldKind) -> Conv {
    match kind {
        FieldKind::String => Conv::Str,
        FieldKind::Int => Conv::Int,
        FieldKind::Seconds => Conv::Seconds,
        FieldKind::SecondsSum => Conv::SecondsSum,
        FieldKind::Millis => Conv::Millis,
        FieldKind::Micros => Conv::Micros,
        FieldKind::Nanos => Conv::Nanos,
        FieldKind::Duration => Conv::Duration,
        FieldKind::Timestamp => Conv::Timestamp,
        FieldKind::Request => Conv::Request,
        FieldKind::Uri => Conv::Uri,
        FieldKind::Host => Conv::Host,
        FieldKind::HostPort => Conv::HostPort,
    }
}

struct Columns {
    kind: Kind,
    extras: Vec<String>,
}

impl Columns {
    fn extra(&mut self, name: &str, field: &str) -> std::result::Result<usize, String> {
        if let Some(i) = self.extras.iter().position(|e| e == name) {
            return Ok(i);
        }
        if self.kind == Kind::Error {
            return Err(format!(
                "field `{field}`: an error-log format fills ts and {}, not `{name}`",
                ERROR_COLUMNS.join(", ")
            ));
        }
        if RESERVED.contains(&name) || StrCol::from_name(name).is_some() {
            return Err(format!(
                "field `{field}`: column `{name}` cannot hold the raw text"
            ));
        }
        if !is_identifier(name) {
            return Err(format!(
                "field `{field}`: column name `{name}` must be lowercase letters, digits and _"
            ));
        }
        self.extras.push(name.to_string());
        Ok(self.extras.len() - 1)
    }

    fn target(&mut self, column: &str, field: &str) -> std::result::Result<Target, String> {
        Ok(match column {
            "ts" => Target::Ts,
            "status" if self.kind == Kind::Access => Target::Status,
            "bytes" if self.kind == Kind::Access => Target::Bytes,
            "response_time_us" if self.kind == Kind::Access => Target::ResponseTime,
            "upstream_response_time_us" if self.kind == Kind::Access => Target::UpstreamTime,
            "request" if self.kind == Kind::Access => Target::Request,
            other => match StrCol::from_name(other) {
                Some(c) if self.kind == Kind::Access => Target::Str(c),
                _ if RESERVED.contains(&other) => {
                    return Err(format!(
                        "field `{field}`: column `{other}` is filled by logcrunch itself"
                    ));
                }
                _ => Target::Extra(self.extra(other, field)?),
            },
        })
    }
}

impl Parser {
    fn compile(
        name: &str,
        kind: Kind,
        spec: &Resolved,
        max_line_bytes: usize,
    ) -> std::result::Result<Parser, String> {
        let syntax_cfg = syntax::Config::new().unicode(false).utf8(false);
        let (matcher, names, engine, entry_start) = match (&spec.regex, &spec.json) {
            (Some(re), _) => {
                let regex = meta::Regex::builder()
                    .syntax(syntax_cfg)
                    .configure(meta::Config::new().utf8_empty(false))
                    .build(re)
                    .map_err(|e| format!("invalid regex: {e}"))?;
                let hir = regex_syntax::ParserBuilder::new()
                    .unicode(false)
                    .utf8(false)
                    .build()
                    .parse(re)
                    .map_err(|e| format!("invalid regex: {e}"))?;
                let names: Vec<Option<String>> = regex
                    .group_info()
                    .pattern_names(PatternID::ZERO)
                    .map(|n| n.map(str::to_string))
                    .collect();
                let splitter = Splitter::compile(&hir, names.len());
                let engine = if splitter.is_some() {
                    Engine::Splitter
                } else if regex_automata::dfa::onepass::DFA::builder()
                    .syntax(syntax_cfg)
                    .build(re)
                    .is_ok()
                {
                    Engine::OnePass
                } else {
                    Engine::Regex
                };
                let start = splitter::first_bytes(&hir);
                let tolerant = match (kind, strip_end_anchor(re)) {
                    (Kind::Access, Some(body)) => meta::Regex::builder()
                        .syntax(syntax_cfg)
                        .configure(meta::Config::new().utf8_empty(false))
                        .build(&format!("(?:{body})[ \t]+(.*)$"))
                        .ok(),
                    _ => None,
                };
                (
                    Matcher::Regex {
                        regex,
                        splitter,
                        tolerant,
                    },
                    names,
                    engine,
                    start,
                )
            }
            (None, Some(map)) => {
                let mapping = json::Mapping::new(map)?;
                let names = std::iter::once(None)
                    .chain(map.keys().map(|k| Some(k.clone())))
                    .collect();
                (Matcher::Json(mapping), names, Engine::Json, None)
            }
            (None, None) => return Err("no regex or JSON mapping".into()),
        };
        let groups = names.len();
        for field in spec.fields.keys() {
            if !names.iter().any(|g| g.as_deref() == Some(field)) {
                return Err(format!(
                    "`fields` lists `{field}` but the format has no such field (a regex needs (?P<{field}>...))"
                ));
            }
        }
        let mut cols = Columns {
            kind,
            extras: match kind {
                Kind::Access => Vec::new(),
                Kind::Error => ERROR_COLUMNS.iter().map(|c| c.to_string()).collect(),
            },
        };
        let mut slots = Vec::new();
        let mut has_ts = false;
        for (group, gname) in names.iter().enumerate() {
            let Some(gname) = gname else { continue };
            let fs = spec.fields.get(gname);
            let column = fs
                .and_then(|f| f.column.clone())
                .unwrap_or_else(|| gname.clone());
            let conv = fs.map_or_else(|| default_conv(&column), |f| conv_of(f.kind));
            let target = cols.target(&column, gname)?;
            let ok = matches!(
                (target, conv),
                (Target::Ts, Conv::Timestamp)
                    | (Target::Status | Target::Bytes, Conv::Int)
                    | (
                        Target::ResponseTime | Target::UpstreamTime,
                        Conv::Seconds
                            | Conv::SecondsSum
                            | Conv::Millis
                            | Conv::Micros
                            | Conv::Nanos
                            | Conv::Duration
                    )
                    | (Target::Request, Conv::Request | Conv::Uri)
                    | (
                        Target::Str(StrCol::ClientIp),
                        Conv::Host | Conv::HostPort | Conv::Str
                    )
                    | (Target::Str(_) | Target::Extra(_), Conv::Str)
            );
            if !ok {
                return Err(format!(
                    "field `{gname}`: type {conv:?} cannot fill column `{column}`"
                )
                .to_lowercase());
            }
            let time = if target == Target::Ts {
                has_ts = true;
                Some(TimeFormat::from_spec(
                    fs.and_then(|f| f.format.as_deref()).unwrap_or("clf"),
                )?)
            } else {
                None
            };
            let raw = match fs.and_then(|f| f.raw.as_deref()) {
                Some(r) => Some(cols.extra(r, gname)?),
                None => None,
            };
            slots.push(Slot {
                group,
                name: gname.clone(),
                conv,
                target,
                raw,
                time,
            });
        }
        if !has_ts && !spec.time_from_header {
            return Err(
                "the format has no timestamp; name a field `ts` ((?P<ts>...) in a regex)".into(),
            );
        }
        let trailing = match &matcher {
            Matcher::Regex {
                tolerant: Some(_), ..
            } => Some(cols.extra(TRAILING, TRAILING)?),
            _ => None,
        };
        if cols.extras.len() > MAX_EXTRAS {
            return Err(format!(
                "{} extra columns; at most {MAX_EXTRAS} are supported",
                cols.extras.len()
            ));
        }
        let multiline = match kind {
            Kind::Access => None,
            Kind::Error => slots
                .iter()
                .find(|s| s.target == Target::Extra(ERROR_COLUMNS.len() - 1))
                .map(|s| s.group),
        };
        Ok(Parser {
            name: name.to_string(),
            kind,
            matcher,
            engine,
            slots,
            extras: cols.extras,
            groups,
            max_line_bytes,
            comment: spec.comment,
            multiline,
            entry_start: if multiline.is_some() {
                entry_start
            } else {
                None
            },
            regex_text: spec.regex.clone(),
            prefix: None,
            time_from_header: spec.time_from_header,
            trailing,
            fallbacks: Vec::new(),
        })
    }

    /// This format with `others` tried, in order, on the lines it does not read (each first as
    /// declared, then with undeclared trailing fields). Formats of another table, multi-line
    /// formats and those that would take the chain past [`MAX_EXTRAS`] or [`MAX_CHAIN`] are left
    /// out.
    pub fn with_fallbacks(&self, others: &[Arc<Parser>]) -> Parser {
        let mut chained = self.clone();
        if self.multiline.is_some() {
            return chained;
        }
        for other in others {
            if chained.fallbacks.len() + 1 >= MAX_CHAIN
                || other.kind != self.kind
                || other.multiline.is_some()
                || other.name == self.name
            {
                continue;
            }
            let mut extras = chained.extras.clone();
            let map: Vec<usize> = other
                .extras
                .iter()
                .map(|name| match extras.iter().position(|e| e == name) {
                    Some(i) => i,
                    None => {
                        extras.push(name.clone());
                        extras.len() - 1
                    }
                })
                .collect();
            if extras.len() > MAX_EXTRAS {
                continue;
            }
            chained.extras = extras;
            chained.fallbacks.push(Fallback {
                parser: Arc::clone(other),
                extras: map,
            });
        }
        chained
    }

    /// The names of the formats that read lines, in the order they are tried: this one, then its
    /// fallbacks (indexes of [`ChunkStats::by_format`]).
    pub fn chain(&self) -> Vec<&str> {
        std::iter::once(self.name.as_str())
            .chain(self.fallbacks.iter().map(|f| f.parser.name()))
            .collect()
    }

    /// Whether this format reads `line` as declared (no undeclared trailing fields, no
    /// fallback), as auto-detection asks when it chooses fallbacks.
    pub fn reads_as_declared(&self, scratch: &mut Scratch, line: &[u8]) -> bool {
        let line = trim_cr(line);
        if self.comment.is_some_and(|c| line.first() == Some(&c)) {
            return true;
        }
        line.len() <= self.max_line_bytes && self.reads(line, scratch, Mode::Strict).is_some()
    }

    /// A cheap first look for auto-detection: whether `line` reads as declared, trusting the
    /// splitter's refusal (the regex is not asked again). Blank and comment lines say nothing.
    pub fn may_read(&self, scratch: &mut Scratch, line: &[u8]) -> bool {
        let line = trim_cr(line);
        if line.len() > self.max_line_bytes
            || self.comment.is_some_and(|c| line.first() == Some(&c))
        {
            return false;
        }
        let Some((body, _)) = self.body(line) else {
            return false;
        };
        match &self.matcher {
            Matcher::Regex {
                splitter: Some(sp), ..
            } => sp.split(body, &mut scratch.spans),
            _ => self.find(body, scratch, Mode::Strict),
        }
    }

    /// The extra column that keeps undeclared trailing fields, if the format has one.
    pub fn trailing_extra(&self) -> Option<usize> {
        self.trailing
    }

    /// This format read through a header in front of each line; named `NAME+HEADER`.
    pub fn with_prefix(&self, prefix: Prefix) -> Parser {
        let base = split_name(&self.name).0;
        Parser {
            name: format!("{base}+{}", prefix.name()),
            prefix: Some(prefix),
            ..self.clone()
        }
    }

    /// The header each line is read through, if any.
    pub fn prefix(&self) -> Option<Prefix> {
        self.prefix
    }

    /// Whether the time comes only from a header in front of each line.
    pub fn time_from_header(&self) -> bool {
        self.time_from_header
    }

    /// The part of `line` the format reads, with the header's time: the whole line, or what
    /// follows the header; `None` when the header is missing. Access lines may be indented and
    /// carry trailing blanks.
    fn body<'a>(&self, line: &'a [u8]) -> Option<(&'a [u8], Option<HeaderTime<'a>>)> {
        let (body, ts) = match self.prefix {
            Some(p) => {
                let s = p.strip(line)?;
                (s.body, s.time)
            }
            None => (line, None),
        };
        Some(match self.kind {
            Kind::Access => (body.trim_ascii(), ts),
            Kind::Error => (body, ts),
        })
    }

    /// The format's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Access or error log.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The matcher this format runs on.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The regex the format compiled to (`None` for JSON formats).
    pub fn regex(&self) -> Option<&str> {
        self.regex_text.as_deref()
    }

    /// Names of the extra columns, in order.
    pub fn extras(&self) -> &[String] {
        &self.extras
    }

    /// Field names and the columns they fill, in order.
    pub fn fields(&self) -> Vec<(String, String)> {
        self.slots
            .iter()
            .map(|s| {
                let col = match s.target {
                    Target::Ts => "ts".to_string(),
                    Target::Str(c) => c.name().to_string(),
                    Target::Status => "status".into(),
                    Target::Bytes => "bytes".into(),
                    Target::ResponseTime => "response_time_us".into(),
                    Target::UpstreamTime => "upstream_response_time_us".into(),
                    Target::Request => "method, path, query, protocol".into(),
                    Target::Extra(i) => self.extras[i].clone(),
                };
                let col = match s.raw {
                    Some(r) => format!("{col} (text as logged: {})", self.extras[r]),
                    None => col,
                };
                (
                    s.name.clone(),
                    format!("{col} [{}]", format!("{:?}", s.conv).to_lowercase()),
                )
            })
            .collect()
    }

    /// For multi-line formats, the bytes an entry's first line starts with: input is only cut
    /// into chunks before such a line.
    pub fn entry_start(&self) -> Option<ByteSet> {
        self.entry_start
    }

    /// Whether `line` continues a multi-line entry: the format is multi-line and the line does
    /// not start like an entry.
    pub fn is_continuation(&self, line: &[u8]) -> bool {
        match (self.multiline, self.entry_start) {
            (Some(_), Some(set)) => line.first().is_some_and(|b| !set.contains(*b)),
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// Fresh per-worker state.
    pub fn scratch(&self) -> Scratch {
        let (cache, caps, tolerant) = match &self.matcher {
            Matcher::Regex {
                regex, tolerant, ..
            } => (
                Some(regex.create_cache()),
                Some(regex.create_captures()),
                tolerant
                    .as_ref()
                    .map(|t| (t.create_cache(), t.create_captures())),
            ),
            Matcher::Json(_) => (None, None, None),
        };
        Scratch {
            cache,
            caps,
            tolerant,
            spans: vec![None; self.groups],
            trailing: None,
            arena: Vec::new(),
            extras: vec![None; self.extras.len()],
            fallbacks: self.fallbacks.iter().map(|f| f.parser.scratch()).collect(),
            member: 0,
        }
    }

    /// Finds the field spans of `line` into `scratch.spans` (and, in tolerant mode, the
    /// undeclared rest into `scratch.trailing`); `false` when it does not match. For JSON formats
    /// the spans point into `scratch.arena`.
    fn find(&self, line: &[u8], scratch: &mut Scratch, mode: Mode) -> bool {
        scratch.trailing = None;
        match (&self.matcher, mode) {
            (
                Matcher::Regex {
                    regex, splitter, ..
                },
                Mode::Strict,
            ) => {
                if let Some(sp) = splitter
                    && sp.split(line, &mut scratch.spans)
                {
                    return true;
                }
                let (Some(cache), Some(caps)) = (scratch.cache.as_mut(), scratch.caps.as_mut())
                else {
                    return false;
                };
                capture(regex, cache, caps, line, &mut scratch.spans)
            }
            (
                Matcher::Regex {
                    tolerant: Some(tolerant),
                    ..
                },
                Mode::Tolerant,
            ) => {
                let Some((cache, caps)) = scratch.tolerant.as_mut() else {
                    return false;
                };
                if !capture(tolerant, cache, caps, line, &mut scratch.spans) {
                    return false;
                }
                scratch.trailing = caps
                    .get_group(self.groups)
                    .map(|sp| (sp.start as u32, sp.end as u32));
                true
            }
            (Matcher::Json(m), Mode::Strict) => {
                m.extract(line, &mut scratch.arena, &mut scratch.spans[1..])
            }
            _ => false,
        }
    }

    /// The part of `line` this format reads and its header's time, when the format reads it in
    /// `mode` (the spans are left in `scratch`).
    fn reads<'a>(
        &self,
        line: &'a [u8],
        scratch: &mut Scratch,
        mode: Mode,
    ) -> Option<(&'a [u8], Option<HeaderTime<'a>>)> {
        self.body(line)
            .filter(|(body, _)| self.find(body, scratch, mode))
    }

    /// The member of the chain that reads `line` (each format as declared, then each with
    /// undeclared trailing fields), with what [`Parser::reads`] gives. Its spans are left in
    /// its scratch.
    fn pick<'a>(&self, line: &'a [u8], scratch: &mut Scratch) -> Option<Picked<'a>> {
        for mode in [Mode::Strict, Mode::Tolerant] {
            if let Some((body, time)) = self.reads(line, scratch, mode) {
                return Some((0, body, time));
            }
            for (k, f) in self.fallbacks.iter().enumerate() {
                if let Some((body, time)) = f.parser.reads(line, &mut scratch.fallbacks[k], mode) {
                    return Some((k + 1, body, time));
                }
            }
        }
        None
    }

    /// Parses every line of `data` (whose first byte is at `base_offset` in its source) into `sink`.
    /// A final line without `\n` is parsed too.
    pub fn parse_chunk(
        &self,
        scratch: &mut Scratch,
        data: &[u8],
        base_offset: u64,
        sink: &mut impl RowSink,
    ) -> ChunkStats {
        let mut stats = ChunkStats::default();
        // A multi-line entry waiting for its continuation lines: (start, first line end, end,
        // offset, line index).
        let mut pending: Option<(usize, usize, usize, u64, u64)> = None;
        let mut pos = 0;
        while pos < data.len() {
            let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
            // Offsets point at the line's first byte that is not a NUL of a leading run.
            let lead = data[pos..end].iter().take_while(|b| **b == 0).count();
            let start = pos + lead;
            let raw = &data[start..end];
            let offset = base_offset + start as u64;
            let index = stats.lines;
            stats.lines += 1;
            pos = end + 1;
            if self.multiline.is_some() {
                let starts_entry = !raw.trim_ascii().is_empty()
                    && self
                        .body(trim_cr(raw))
                        .is_some_and(|(body, _)| self.find(body, scratch, Mode::Strict));
                if !starts_entry
                    && self.is_continuation(raw)
                    && let Some(p) = pending.as_mut()
                {
                    p.2 = end;
                    continue;
                }
                if let Some((s, first_end, e, off, idx)) = pending.take() {
                    self.emit(
                        scratch,
                        &data[s..first_end],
                        &data[s..e],
                        off,
                        idx,
                        &mut stats,
                        sink,
                    );
                }
                if starts_entry {
                    pending = Some((start, end, end, offset, index));
                    continue;
                }
            }
            self.emit(scratch, raw, raw, offset, index, &mut stats, sink);
        }
        if let Some((s, first_end, e, off, idx)) = pending {
            self.emit(
                scratch,
                &data[s..first_end],
                &data[s..e],
                off,
                idx,
                &mut stats,
                sink,
            );
        }
        stats
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        scratch: &mut Scratch,
        line: &[u8],
        entry: &[u8],
        offset: u64,
        index: u64,
        stats: &mut ChunkStats,
        sink: &mut impl RowSink,
    ) {
        match self.parse_entry(scratch, line, entry, offset) {
            Ok(Some(row)) => {
                stats.rows += 1;
                sink.row(&row);
                stats.by_format[scratch.member] += 1;
            }
            Ok(None) => stats.blank += 1,
            Err(reason) => {
                stats.bad += 1;
                sink.bad(offset, index, reason, line);
            }
        }
    }

    /// Parses one line (without its `\n`). `Ok(None)` for a blank or comment line.
    pub fn parse_line<'a>(
        &self,
        scratch: &'a mut Scratch,
        raw: &'a [u8],
        offset: u64,
    ) -> std::result::Result<Option<Row<'a>>, BadReason> {
        self.parse_entry(scratch, raw, raw, offset)
    }

    /// Parses `line`; for a multi-line format, `entry` is `line` followed by its continuation
    /// lines, which extend the message.
    fn parse_entry<'a>(
        &self,
        scratch: &'a mut Scratch,
        raw: &'a [u8],
        entry: &'a [u8],
        offset: u64,
    ) -> std::result::Result<Option<Row<'a>>, BadReason> {
        let lead_nul = raw.iter().take_while(|b| **b == 0).count();
        let line = trim_cr(&raw[lead_nul..]);
        if line.len() > self.max_line_bytes {
            return Err(BadReason::LineTooLong);
        }
        if line.iter().all(u8::is_ascii_whitespace)
            || self.comment.is_some_and(|c| line.first() == Some(&c))
        {
            return Ok(None);
        }
        if memchr::memchr(0, line).is_some() {
            return Err(BadReason::NulByte);
        }
        let (member, body, header_ts) = self.pick(line, scratch).ok_or(BadReason::NoMatch)?;
        scratch.member = member;
        if member == 0 {
            return self
                .convert(scratch, raw, entry, body, header_ts, offset)
                .map(Some);
        }
        // A fallback read it: its extra columns move to their places among the chain's.
        let fallback = &self.fallbacks[member - 1];
        let Scratch {
            extras, fallbacks, ..
        } = scratch;
        let row = fallback.parser.convert(
            &mut fallbacks[member - 1],
            raw,
            entry,
            body,
            header_ts,
            offset,
        )?;
        extras.iter_mut().for_each(|e| *e = None);
        for (i, to) in fallback.extras.iter().enumerate() {
            extras[*to] = row.extras.get(i).copied().flatten();
        }
        let extras: &'a [Option<Span>] = extras;
        Ok(Some(Row { extras, ..row }))
    }

    /// Converts the fields [`Parser::pick`] found in `line` (the part after the header, whose
    /// time is `header_ts`) into a row.
    fn convert<'a>(
        &self,
        scratch: &'a mut Scratch,
        raw: &'a [u8],
        entry: &'a [u8],
        line: &'a [u8],
        header_ts: Option<HeaderTime<'a>>,
        offset: u64,
    ) -> std::result::Result<Row<'a>, BadReason> {
        let src: &'a [u8] = match self.matcher {
            Matcher::Json(_) => &scratch.arena,
            Matcher::Regex { .. } => match self.multiline {
                // The entry starts where the line does, so the line's spans hold for it; the
                // message (the last field) runs on to the end of the continuation lines.
                Some(g) if entry.len() > raw.len() => {
                    let skip = line.as_ptr() as usize - raw.as_ptr() as usize;
                    let whole = trim_cr(entry[skip..].trim_ascii_end());
                    if let Some((s, _)) = scratch.spans[g] {
                        scratch.spans[g] = Some((s, whole.len() as u32));
                    }
                    whole
                }
                _ => line,
            },
        };
        let span_of = |part: &[u8]| -> Span {
            let s = (part.as_ptr() as usize - src.as_ptr() as usize) as u32;
            (s, s + part.len() as u32)
        };
        let mut strs: [Option<Span>; 11] = [None; 11];
        let mut ts_us = None;
        let mut nums: [Option<u64>; 4] = [None; 4];
        scratch.extras.iter_mut().for_each(|e| *e = None);
        if let (Some(i), Some(span)) = (self.trailing, scratch.trailing) {
            scratch.extras[i] = Some(span);
        }
        for slot in &self.slots {
            let Some((s, e)) = scratch.spans[slot.group] else {
                continue;
            };
            let text: &[u8] = &src[s as usize..e as usize];
            if let Some(r) = slot.raw
                && text != b"-"
            {
                scratch.extras[r] = scratch.extras[r].or(Some((s, e)));
            }
            let numeric = matches!(
                slot.target,
                Target::Status | Target::Bytes | Target::ResponseTime | Target::UpstreamTime
            );
            if text == b"-" || (numeric && text.is_empty()) {
                continue;
            }
            match slot.target {
                Target::Ts => {
                    if !text.is_empty() && ts_us.is_none() {
                        let tf = slot.time.as_ref().expect("timestamp fields have a layout");
                        ts_us = Some(tf.parse(text).ok_or(BadReason::BadTimestamp)?);
                    }
                }
                Target::Request => {
                    let r = if slot.conv == Conv::Uri {
                        value::split_target(text)
                    } else {
                        value::split_request(text)
                    };
                    for (c, v) in [
                        (StrCol::Method, r.method),
                        (StrCol::Path, r.path),
                        (StrCol::Query, r.query),
                        (StrCol::Protocol, r.protocol),
                    ] {
                        strs[c as usize] = strs[c as usize].or(v.map(span_of));
                    }
                }
                Target::Str(c) => {
                    if strs[c as usize].is_none() {
                        let v = match slot.conv {
                            Conv::Host => value::pick_client(text),
                            Conv::HostPort => value::strip_port(text),
                            _ => text,
                        };
                        strs[c as usize] = Some(span_of(v));
                        if slot.conv == Conv::Host && v.len() != text.len() {
                            let xff = &mut strs[StrCol::XForwardedFor as usize];
                            *xff = xff.or(Some((s, e)));
                        }
                    }
                }
                Target::Extra(i) => {
                    scratch.extras[i] = scratch.extras[i].or(Some((s, e)));
                }
                Target::Status => {
                    let v = value::parse_u64(text).filter(|v| *v <= 999);
                    nums[0] = nums[0].or(Some(v.ok_or(BadReason::BadField("status"))?));
                }
                Target::Bytes => {
                    let v = value::parse_u64(text).ok_or(BadReason::BadField("bytes"))?;
                    nums[1] = nums[1].or(Some(v));
                }
                Target::ResponseTime => {
                    let v = duration_us(slot.conv, text)
                        .ok_or(BadReason::BadField("response_time_us"))?;
                    nums[2] = nums[2].or(v);
                }
                Target::UpstreamTime => {
                    let v = duration_us(slot.conv, text)
                        .ok_or(BadReason::BadField("upstream_response_time_us"))?;
                    nums[3] = nums[3].or(v);
                }
            }
        }
        let ts_us = ts_us
            .or_else(|| header_ts.and_then(HeaderTime::us))
            .ok_or(BadReason::NoTimestamp)?;
        if self.kind == Kind::Error {
            derive_client(src, &mut scratch.extras);
        }
        Ok(Row {
            offset,
            ts_us,
            status: nums[0].map(|v| v as u16),
            bytes: nums[1],
            response_time_us: nums[2],
            upstream_response_time_us: nums[3],
            src,
            strs,
            extras: &scratch.extras,
        })
    }
}

/// nginx names the client inside the message (`..., client: 1.2.3.4, server: ...`): when the format
/// captured no client, take it from there.
fn derive_client(src: &[u8], extras: &mut [Option<Span>]) {
    let (client, message) = (ERROR_COLUMNS.len() - 2, ERROR_COLUMNS.len() - 1);
    let (None, Some((ms, me))) = (extras[client], extras[message]) else {
        return;
    };
    let text = &src[ms as usize..me as usize];
    if let Some(at) = memchr::memmem::find(text, b"client: ") {
        let start = at + b"client: ".len();
        let len = text[start..]
            .iter()
            .position(|b| matches!(b, b',' | b'\n'))
            .unwrap_or(text.len() - start);
        let s = ms + start as u32;
        extras[client] = Some((s, s + len as u32));
    }
}

/// Runs `regex` anchored on `line` and copies its groups into `spans` (as many as `spans` has);
/// `false` when it does not match.
fn capture(
    regex: &meta::Regex,
    cache: &mut meta::Cache,
    caps: &mut Captures,
    line: &[u8],
    spans: &mut [Option<Span>],
) -> bool {
    regex.search_captures_with(cache, &Input::new(line).anchored(Anchored::Yes), caps);
    if !caps.is_match() {
        return false;
    }
    for (g, s) in spans.iter_mut().enumerate() {
        *s = caps.get_group(g).map(|sp| (sp.start as u32, sp.end as u32));
    }
    true
}

/// `re` without the `$` that ends it, when it ends with one (not an escaped `\$`).
fn strip_end_anchor(re: &str) -> Option<&str> {
    let body = re.strip_suffix('$')?;
    let escapes = body.bytes().rev().take_while(|b| *b == b'\\').count();
    (escapes % 2 == 0).then_some(body)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    match line {
        [head @ .., b'\r'] => head,
        _ => line,
    }
}

/// A duration in µs; `Some(None)` for a multi-value field whose entries are all `-`.
fn duration_us(conv: Conv, text: &[u8]) -> Option<Option<u64>> {
    // A negative duration (AWS ALB logs -1) means "not measured".
    if text.first() == Some(&b'-')
        && text.len() > 1
        && text[1..].iter().all(|b| b.is_ascii_digit() || *b == b'.')
    {
        return Some(None);
    }
    match conv {
        Conv::Seconds => value::parse_decimal_scaled(text, 6).map(Some),
        Conv::SecondsSum => value::sum_seconds_us(text),
        Conv::Millis => value::parse_decimal_scaled(text, 3).map(Some),
        Conv::Nanos => value::parse_u64(text).map(|ns| Some(ns / 1_000)),
        Conv::Duration => value::parse_go_duration_us(text).map(Some),
        _ => value::parse_u64(text).map(Some),
    }
}

#[cfg(test)]
mod tests;
