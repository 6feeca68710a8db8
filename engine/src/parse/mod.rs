//! Turns chunks of log text into typed rows.
//!
//! A format is a regex with named groups plus a type per group, read from `config/patterns.yaml`.
//! It compiles once into an anchored regex-automata matcher (byte mode, so invalid UTF-8 never stops
//! a match) and, when the pattern is a byte-deterministic sequence of delimited fields, into a
//! [`splitter::Splitter`] that finds the same match with `memchr` jumps at a fraction of the cost.
//! The regex remains the authority: a line the splitter rejects is retried on the regex. Each
//! matched line becomes a [`Row`] of borrowed slices and integers handed to a [`RowSink`]; a line
//! that cannot become a row is reported to the sink with a [`BadReason`], never as an error.

pub mod splitter;
pub mod value;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex_automata::util::captures::Captures;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, PatternID, meta};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::schema::{RESERVED, StrCol};
use splitter::Splitter;
use value::TimeFormat;

/// The shipped `config/patterns.yaml`, used when no patterns file is found.
pub const BUILTIN_PATTERNS: &str = include_str!("../../../config/patterns.yaml");
/// Where the patterns file is looked for when neither `--patterns` nor the config names one.
pub const DEFAULT_PATTERNS_PATH: &str = "config/patterns.yaml";
/// Most extra (non-canonical) columns a format may declare.
pub const MAX_EXTRAS: usize = 32;

/// The patterns file: `formats: {NAME: {...}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patterns {
    /// Formats by name.
    pub formats: BTreeMap<String, FormatSpec>,
    /// Where the file was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

/// One format as written in the patterns file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatSpec {
    /// One line for `formats list`.
    #[serde(default)]
    pub description: String,
    /// Regex with named groups; matched anchored at the line start, in byte mode (no Unicode).
    pub regex: String,
    /// Type and target column of groups; groups not listed get the default of their name.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSpec>,
}

/// The type of one named group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// How the text is converted.
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// For timestamps: `clf`, `iso8601`, `epoch`, `epoch_ms` or a strftime layout.
    #[serde(default)]
    pub format: Option<String>,
    /// Column to fill, when it differs from the group name.
    #[serde(default)]
    pub column: Option<String>,
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
    /// Integer or decimal milliseconds, stored as µs.
    Millis,
    /// Integer microseconds (Apache `%D`).
    Micros,
    /// A point in time; see `format`.
    Timestamp,
    /// `METHOD target PROTOCOL`, split into method, path, query, protocol.
    Request,
    /// A remote address, possibly a proxy list; the first public entry is the client.
    Host,
}

impl Patterns {
    /// Loads `path`, else the config's patterns file, else `config/patterns.yaml`, else built-in.
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
        Ok(p)
    }

    /// Compiles the format called `name`.
    pub fn parser(&self, name: &str, max_line_bytes: usize) -> Result<Parser> {
        let spec = self.formats.get(name).ok_or_else(|| Error::UnknownFormat {
            name: name.to_string(),
            path: self.path.clone(),
            known: self.formats.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
        Parser::compile(name, spec, max_line_bytes).map_err(|message| Error::Pattern {
            path: self.path.clone(),
            format: name.to_string(),
            message,
        })
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

/// One parsed line, borrowing from the chunk.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    /// Byte offset of the line in its source.
    pub offset: u64,
    /// Timestamp, µs since the epoch, UTC.
    pub ts_us: i64,
    /// String columns indexed by `StrCol as usize`; `None` is null.
    pub strs: [Option<&'a [u8]>; 11],
    /// HTTP status.
    pub status: Option<u16>,
    /// Response bytes.
    pub bytes: Option<u64>,
    /// Response time in µs.
    pub response_time_us: Option<u64>,
    /// Upstream response time in µs.
    pub upstream_response_time_us: Option<u64>,
    /// Extra columns in the format's order.
    pub extras: &'a [Option<&'a [u8]>],
}

impl<'a> Row<'a> {
    /// The value of string column `c`.
    pub fn str(&self, c: StrCol) -> Option<&'a [u8]> {
        self.strs[c as usize]
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
    /// Lines seen, including blank and bad ones.
    pub lines: u64,
    /// Rows produced.
    pub rows: u64,
    /// Bad lines.
    pub bad: u64,
    /// Empty or whitespace-only lines (skipped, not bad).
    pub blank: u64,
}

#[derive(Debug, Clone, Copy)]
enum Conv {
    Str,
    Int,
    Seconds,
    Millis,
    Micros,
    Timestamp,
    Request,
    Host,
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
    conv: Conv,
    target: Target,
}

/// Which matcher a format runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The splitter, with the regex for lines it rejects.
    Splitter,
    /// The regex engine with a one-pass DFA.
    OnePass,
    /// The general regex engine (backtracking or PikeVM).
    Regex,
}

/// A compiled format, shared by all workers.
#[derive(Debug)]
pub struct Parser {
    name: String,
    regex: meta::Regex,
    splitter: Option<Splitter>,
    engine: Engine,
    slots: Vec<Slot>,
    time_format: TimeFormat,
    extras: Vec<String>,
    groups: usize,
    max_line_bytes: usize,
}

/// Per-worker mutable state of a [`Parser`].
#[derive(Debug)]
pub struct Scratch {
    cache: meta::Cache,
    caps: Captures,
    spans: Vec<Option<(u32, u32)>>,
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

impl Parser {
    fn compile(
        name: &str,
        spec: &FormatSpec,
        max_line_bytes: usize,
    ) -> std::result::Result<Parser, String> {
        let syntax_cfg = syntax::Config::new().unicode(false).utf8(false);
        let regex = meta::Regex::builder()
            .syntax(syntax_cfg)
            .configure(meta::Config::new().utf8_empty(false))
            .build(&spec.regex)
            .map_err(|e| format!("invalid regex: {e}"))?;
        let hir = regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(&spec.regex)
            .map_err(|e| format!("invalid regex: {e}"))?;
        let group_names: Vec<Option<String>> = regex
            .group_info()
            .pattern_names(PatternID::ZERO)
            .map(|n| n.map(str::to_string))
            .collect();
        let groups = group_names.len();
        for field in spec.fields.keys() {
            if !group_names.iter().any(|g| g.as_deref() == Some(field)) {
                return Err(format!(
                    "`fields` lists `{field}` but the regex has no group (?P<{field}>...)"
                ));
            }
        }
        let mut slots = Vec::new();
        let mut extras: Vec<String> = Vec::new();
        let mut time_format = None;
        for (group, gname) in group_names.iter().enumerate() {
            let Some(gname) = gname else { continue };
            let fs = spec.fields.get(gname);
            let column = fs
                .and_then(|f| f.column.clone())
                .unwrap_or_else(|| gname.clone());
            let conv = match fs.map(|f| f.kind) {
                None => default_conv(&column),
                Some(FieldKind::String) => Conv::Str,
                Some(FieldKind::Int) => Conv::Int,
                Some(FieldKind::Seconds) => Conv::Seconds,
                Some(FieldKind::Millis) => Conv::Millis,
                Some(FieldKind::Micros) => Conv::Micros,
                Some(FieldKind::Timestamp) => Conv::Timestamp,
                Some(FieldKind::Request) => Conv::Request,
                Some(FieldKind::Host) => Conv::Host,
            };
            let target = match column.as_str() {
                "ts" => Target::Ts,
                "status" => Target::Status,
                "bytes" => Target::Bytes,
                "response_time_us" => Target::ResponseTime,
                "upstream_response_time_us" => Target::UpstreamTime,
                "request" => Target::Request,
                other => match StrCol::from_name(other) {
                    Some(c) => Target::Str(c),
                    None if RESERVED.contains(&other) => {
                        return Err(format!(
                            "group `{gname}`: column `{other}` is filled by logcrunch itself"
                        ));
                    }
                    None if !is_identifier(other) => {
                        return Err(format!(
                            "group `{gname}`: column name `{other}` must be lowercase letters, digits and _"
                        ));
                    }
                    None => {
                        let i = match extras.iter().position(|e| e == other) {
                            Some(i) => i,
                            None => {
                                extras.push(other.to_string());
                                extras.len() - 1
                            }
                        };
                        Target::Extra(i)
                    }
                },
            };
            let ok = matches!(
                (target, conv),
                (Target::Ts, Conv::Timestamp)
                    | (Target::Status | Target::Bytes, Conv::Int)
                    | (
                        Target::ResponseTime | Target::UpstreamTime,
                        Conv::Seconds | Conv::Millis | Conv::Micros
                    )
                    | (Target::Request, Conv::Request)
                    | (Target::Str(StrCol::ClientIp), Conv::Host | Conv::Str)
                    | (Target::Str(_) | Target::Extra(_), Conv::Str)
            );
            if !ok {
                return Err(format!(
                    "group `{gname}`: type {conv:?} cannot fill column `{column}`"
                )
                .to_lowercase());
            }
            if let (Target::Ts, Some(f)) = (target, fs) {
                let tf = TimeFormat::from_spec(f.format.as_deref().unwrap_or("clf"))?;
                if time_format.replace(tf).is_some() {
                    return Err("more than one group fills `ts`".into());
                }
            } else if target == Target::Ts {
                time_format.get_or_insert(TimeFormat::Clf);
            }
            slots.push(Slot {
                group,
                conv,
                target,
            });
        }
        let Some(time_format) = time_format else {
            return Err("the regex has no timestamp group; name one (?P<ts>...)".into());
        };
        if extras.len() > MAX_EXTRAS {
            return Err(format!(
                "{} extra columns; at most {MAX_EXTRAS} are supported",
                extras.len()
            ));
        }
        let splitter = Splitter::compile(&hir, groups);
        let engine = if splitter.is_some() {
            Engine::Splitter
        } else if regex_automata::dfa::onepass::DFA::builder()
            .syntax(syntax_cfg)
            .build(&spec.regex)
            .is_ok()
        {
            Engine::OnePass
        } else {
            Engine::Regex
        };
        Ok(Parser {
            name: name.to_string(),
            regex,
            splitter,
            engine,
            slots,
            time_format,
            extras,
            groups,
            max_line_bytes,
        })
    }

    /// The format's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matcher this format runs on.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Names of the extra columns, in order.
    pub fn extras(&self) -> &[String] {
        &self.extras
    }

    /// Fresh per-worker state.
    pub fn scratch(&self) -> Scratch {
        Scratch {
            cache: self.regex.create_cache(),
            caps: self.regex.create_captures(),
            spans: vec![None; self.groups],
        }
    }

    /// Finds the group spans of `line` into `scratch.spans`; `false` when the pattern does not match.
    fn find(&self, line: &[u8], scratch: &mut Scratch) -> bool {
        if let Some(sp) = &self.splitter
            && sp.split(line, &mut scratch.spans)
        {
            return true;
        }
        let input = Input::new(line).anchored(Anchored::Yes);
        self.regex
            .search_captures_with(&mut scratch.cache, &input, &mut scratch.caps);
        if !scratch.caps.is_match() {
            return false;
        }
        for (g, s) in scratch.spans.iter_mut().enumerate() {
            *s = scratch
                .caps
                .get_group(g)
                .map(|sp| (sp.start as u32, sp.end as u32));
        }
        true
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
        let mut extras: Vec<Option<&[u8]>> = vec![None; self.extras.len()];
        let mut pos = 0;
        while pos < data.len() {
            let end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
            // Offsets point at the line's first byte that is not a NUL of a leading run.
            let lead = data[pos..end].iter().take_while(|b| **b == 0).count();
            let raw = &data[pos + lead..end];
            let offset = base_offset + (pos + lead) as u64;
            let index = stats.lines;
            stats.lines += 1;
            pos = end + 1;
            match self.parse_line(scratch, raw, offset, &mut extras) {
                Ok(Some(row)) => {
                    stats.rows += 1;
                    sink.row(&row);
                }
                Ok(None) => stats.blank += 1,
                Err(reason) => {
                    stats.bad += 1;
                    sink.bad(offset, index, reason, raw);
                }
            }
        }
        stats
    }

    /// Parses one line (without its `\n`). `Ok(None)` for a blank line. `extras` must have one
    /// entry per extra column; the row borrows it.
    pub fn parse_line<'a: 'b, 'b>(
        &self,
        scratch: &mut Scratch,
        raw: &'a [u8],
        offset: u64,
        extras: &'b mut [Option<&'a [u8]>],
    ) -> std::result::Result<Option<Row<'b>>, BadReason> {
        let lead_nul = raw.iter().take_while(|b| **b == 0).count();
        let mut line = &raw[lead_nul..];
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        if line.len() > self.max_line_bytes {
            return Err(BadReason::LineTooLong);
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if memchr::memchr(0, line).is_some() {
            return Err(BadReason::NulByte);
        }
        if !self.find(line, scratch) {
            return Err(BadReason::NoMatch);
        }
        let mut strs: [Option<&'a [u8]>; 11] = [None; 11];
        let mut ts_us = None;
        let mut nums: [Option<u64>; 4] = [None; 4];
        extras.iter_mut().for_each(|e| *e = None);
        for slot in &self.slots {
            let Some((s, e)) = scratch.spans[slot.group] else {
                continue;
            };
            let text: &'a [u8] = &line[s as usize..e as usize];
            if text == b"-" {
                continue;
            }
            match slot.target {
                Target::Ts => {
                    if !text.is_empty() {
                        ts_us = Some(
                            self.time_format
                                .parse(text)
                                .ok_or(BadReason::BadTimestamp)?,
                        );
                    }
                }
                Target::Request => {
                    let r = value::split_request(text);
                    for (c, v) in [
                        (StrCol::Method, r.method),
                        (StrCol::Path, r.path),
                        (StrCol::Query, r.query),
                        (StrCol::Protocol, r.protocol),
                    ] {
                        strs[c as usize] = strs[c as usize].or(v);
                    }
                }
                Target::Str(c) => {
                    if strs[c as usize].is_none() {
                        let v = if matches!(slot.conv, Conv::Host) {
                            value::pick_client(text)
                        } else {
                            text
                        };
                        strs[c as usize] = Some(v);
                        if v.len() != text.len() {
                            let xff = &mut strs[StrCol::XForwardedFor as usize];
                            *xff = xff.or(Some(text));
                        }
                    }
                }
                Target::Extra(i) => {
                    extras[i] = extras[i].or(Some(text));
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
                    nums[2] = nums[2].or(Some(v));
                }
                Target::UpstreamTime => {
                    let v = duration_us(slot.conv, text)
                        .ok_or(BadReason::BadField("upstream_response_time_us"))?;
                    nums[3] = nums[3].or(Some(v));
                }
            }
        }
        let ts_us = ts_us.ok_or(BadReason::NoTimestamp)?;
        Ok(Some(Row {
            offset,
            ts_us,
            strs,
            status: nums[0].map(|v| v as u16),
            bytes: nums[1],
            response_time_us: nums[2],
            upstream_response_time_us: nums[3],
            extras,
        }))
    }
}

fn duration_us(conv: Conv, text: &[u8]) -> Option<u64> {
    match conv {
        Conv::Seconds => value::parse_decimal_scaled(text, 6),
        Conv::Millis => value::parse_decimal_scaled(text, 3),
        _ => value::parse_u64(text),
    }
}

#[cfg(test)]
mod tests;
