//! Format auto-detection: try every format on a sample of an input's first lines and keep the one
//! that matches best.
//!
//! A format's rate is the share of sampled lines (blank and comment lines aside) that parse into
//! rows; ties go to the format that fills more columns, then to the one listed first in the
//! patterns file. Below [`MIN_RATE`] nothing is chosen and the caller reports the candidates.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::prefix::Prefix;
use super::{Parser, Patterns, Scratch};
use crate::schema::StrCol;

/// Lines sampled per input.
pub const SAMPLE_LINES: usize = 200;
/// Lowest match rate accepted.
pub const MIN_RATE: f64 = 0.9;
/// Lines every format is tried on before the whole sample is.
pub const QUICK_LINES: usize = 10;

/// How well one format matches a sample.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// Format name.
    pub format: String,
    /// Lines that parsed.
    pub matched: usize,
    /// Lines tried (blank and comment lines excluded).
    pub sampled: usize,
    /// matched / sampled.
    pub rate: f64,
    /// Average number of non-null columns per parsed line.
    #[serde(skip)]
    pub filled: f64,
}

/// The whole lines at the start of `head` (the last one only when `complete`), at most
/// [`SAMPLE_LINES`] that are not blank.
pub fn sample_lines(head: &[u8], complete: bool) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = head.split(|b| *b == b'\n').collect();
    if !complete || head.ends_with(b"\n") {
        lines.pop();
    }
    lines
        .into_iter()
        .filter(|l| !l.trim_ascii().is_empty())
        .take(SAMPLE_LINES)
        .collect()
}

/// Compiled formats and their matching state, kept across the inputs of a run: compiling a
/// format and warming its regex caches cost more than trying it on a small file.
#[derive(Debug, Default)]
pub struct FormatCache {
    parsers: HashMap<String, Arc<Parser>>,
    scratches: HashMap<String, Scratch>,
}

impl FormatCache {
    /// The compiled format `name`, if it was cached.
    pub fn get(&self, name: &str) -> Option<&Arc<Parser>> {
        self.parsers.get(name)
    }

    /// Caches `parser` as format `name` (not for formats compiled per input, such as W3C).
    pub fn insert(&mut self, name: String, parser: Arc<Parser>) {
        self.scratches.remove(&name);
        self.parsers.insert(name, parser);
    }

    /// Runs `f` with matching state for `parser`: the cached one when `parser` is the cached
    /// format of its name, else a fresh one.
    pub fn with_scratch<R>(
        &mut self,
        parser: &Arc<Parser>,
        f: impl FnOnce(&mut Scratch) -> R,
    ) -> R {
        let cached = self
            .parsers
            .get(parser.name())
            .is_some_and(|p| Arc::ptr_eq(p, parser));
        if !cached {
            return f(&mut parser.scratch());
        }
        let scratch = self
            .scratches
            .entry(parser.name().to_string())
            .or_insert_with(|| parser.scratch());
        f(scratch)
    }
}

/// (lines read, lines tried, average columns filled) of `parser` on `lines`, with the matching
/// state kept in `cache` (fresh for a format compiled for this input alone).
fn score(parser: &Arc<Parser>, cache: &mut FormatCache, lines: &[&[u8]]) -> (usize, usize, f64) {
    cache.with_scratch(parser, |scratch| score_with(parser, scratch, lines))
}

fn score_with(parser: &Parser, scratch: &mut Scratch, lines: &[&[u8]]) -> (usize, usize, f64) {
    let (mut matched, mut sampled, mut filled) = (0usize, 0usize, 0usize);
    let mut in_entry = false;
    // Undeclared trailing fields are read but prove nothing about the format.
    let trailing = parser.trailing_extra();
    for line in lines {
        let result = parser.parse_line(scratch, line, 0);
        // In a multi-line format, a line that does not start an entry continues the last one.
        if result.is_err() && in_entry && parser.is_continuation(line) {
            continue;
        }
        in_entry = matches!(result, Ok(Some(_)));
        match result {
            Ok(Some(row)) => {
                matched += 1;
                sampled += 1;
                // `ident` (RFC 1413) is `-` in practice: a value there is more likely a field of
                // another format (lighttpd's virtual host) than an identity.
                filled += StrCol::ALL
                    .iter()
                    .filter(|c| **c != StrCol::Ident && row.str(**c).is_some())
                    .count()
                    + (0..row.extras_len())
                        .filter(|i| Some(*i) != trailing && row.extra(*i).is_some())
                        .count()
                    + [
                        row.status.is_some(),
                        row.bytes.is_some(),
                        row.response_time_us.is_some(),
                        row.upstream_response_time_us.is_some(),
                    ]
                    .iter()
                    .filter(|b| **b)
                    .count();
            }
            Ok(None) => {}
            Err(_) => sampled += 1,
        }
    }
    let avg = if matched == 0 {
        0.0
    } else {
        filled as f64 / matched as f64
    };
    (matched, sampled, avg)
}

impl Patterns {
    /// Rates every format on the start of an input (`head`; `complete` when it is the whole
    /// input), best first; each format also through the header most sample lines carry (see
    /// [`Prefix::detect`]), named `FORMAT+HEADER`. `cache` holds compiled formats between inputs
    /// (W3C formats, which depend on the input's header, are compiled per input and not cached).
    pub fn sniff(
        &self,
        head: &[u8],
        complete: bool,
        max_line_bytes: usize,
        cache: &mut FormatCache,
    ) -> Vec<Candidate> {
        let lines = sample_lines(head, complete);
        let variants = self.variants(&lines, head, max_line_bytes, cache);
        // Stage one: a quick look (as declared, the splitter trusted) of every variant at the
        // first lines. Stage two: those that read any of them, scored on the whole sample; the
        // others only when none of those reaches MIN_RATE (a file that opens with lines of
        // another kind, or whose lines all carry undeclared fields), so that detection time
        // grows with the formats that fit more than with the catalogue.
        let first = &lines[..lines.len().min(QUICK_LINES)];
        let quick: Vec<bool> = variants
            .iter()
            .map(|v| cache.with_scratch(v, |scratch| first.iter().any(|l| v.may_read(scratch, l))))
            .collect();
        let mut out: Vec<Option<Candidate>> = vec![None; variants.len()];
        for (k, v) in variants.iter().enumerate().filter(|(k, _)| quick[*k]) {
            out[k] = Some(candidate(v, score(v, cache, &lines)));
        }
        let found = out.iter().flatten().any(|c| c.rate >= MIN_RATE);
        for (k, v) in variants.iter().enumerate() {
            if out[k].is_none() {
                out[k] = Some(if found {
                    candidate(v, (0, first.len(), 0.0))
                } else {
                    candidate(v, score(v, cache, &lines))
                });
            }
        }
        let mut out: Vec<Candidate> = out.into_iter().flatten().collect();
        // Stable sort: equal scores keep file order, and a format read whole before the same
        // format read through a header.
        out.sort_by(|a, b| {
            b.rate
                .total_cmp(&a.rate)
                .then(b.filled.total_cmp(&a.filled))
        });
        out
    }

    /// Every format compiled for this input, each also through the header most sample lines
    /// carry (see [`Prefix::detect`]), in file order.
    fn variants(
        &self,
        lines: &[&[u8]],
        head: &[u8],
        max_line_bytes: usize,
        cache: &mut FormatCache,
    ) -> Vec<Arc<Parser>> {
        let prefixes = Prefix::detect(lines);
        let mut out = Vec::new();
        for (name, spec) in &self.formats {
            let Some(base) = compiled(self, name, spec.w3c, head, max_line_bytes, cache) else {
                continue;
            };
            if !spec.time_from_header {
                out.push(Arc::clone(&base));
            }
            for p in &prefixes {
                let full = format!("{name}+{}", p.name());
                out.push(match cache.get(&full) {
                    Some(hit) => Arc::clone(hit),
                    None => {
                        let parser = Arc::new(base.with_prefix(*p));
                        if !spec.w3c {
                            cache.insert(full, Arc::clone(&parser));
                        }
                        parser
                    }
                });
            }
        }
        out
    }
}

/// The candidate a variant makes with its (matched, sampled, filled) score.
fn candidate(parser: &Parser, (matched, sampled, mut filled): (usize, usize, f64)) -> Candidate {
    // The header is read too: its time counts as a field filled, so that a format read through
    // the header the lines carry beats one that swallows the header as a field of its own (a
    // timestamp taken for a virtual host).
    if parser.prefix().is_some() {
        filled += 1.0;
    }
    Candidate {
        format: parser.name().to_string(),
        matched,
        sampled,
        rate: if sampled == 0 {
            0.0
        } else {
            matched as f64 / sampled as f64
        },
        filled,
    }
}

/// Format `name` compiled for this input, from `cache` when it does not depend on the input.
fn compiled(
    patterns: &Patterns,
    name: &str,
    w3c: bool,
    head: &[u8],
    max_line_bytes: usize,
    cache: &mut FormatCache,
) -> Option<Arc<Parser>> {
    if let Some(p) = cache.get(name) {
        return Some(Arc::clone(p));
    }
    let p = Arc::new(patterns.parser_for(name, max_line_bytes, head).ok()?);
    if !w3c {
        cache.insert(name.to_string(), Arc::clone(&p));
    }
    Some(p)
}
