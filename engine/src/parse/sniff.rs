//! Format auto-detection: try every format on a sample of an input's first lines and keep the one
//! that matches best.
//!
//! A format's rate is the share of sampled lines (blank and comment lines aside) that parse into
//! rows; ties go to the format that fills more columns, then to the one listed first in the
//! patterns file. Below [`MIN_RATE`] nothing is chosen and the caller reports the candidates.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::{Parser, Patterns};
use crate::schema::StrCol;

/// Lines sampled per input.
pub const SAMPLE_LINES: usize = 200;
/// Lowest match rate accepted.
pub const MIN_RATE: f64 = 0.9;

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

fn score(parser: &Parser, lines: &[&[u8]]) -> (usize, usize, f64) {
    let mut scratch = parser.scratch();
    let (mut matched, mut sampled, mut filled) = (0usize, 0usize, 0usize);
    let mut in_entry = false;
    for line in lines {
        let result = parser.parse_line(&mut scratch, line, 0);
        // In a multi-line format, a line that does not start an entry continues the last one.
        if result.is_err() && in_entry && parser.is_continuation(line) {
            continue;
        }
        in_entry = matches!(result, Ok(Some(_)));
        match result {
            Ok(Some(row)) => {
                matched += 1;
                sampled += 1;
                filled += StrCol::ALL
                    .iter()
                    .filter(|c| row.str(**c).is_some())
                    .count()
                    + (0..row.extras_len())
                        .filter(|i| row.extra(*i).is_some())
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
    /// input), best first. `cache` holds compiled formats between inputs (W3C formats, which
    /// depend on the input's header, are compiled per input and not cached).
    pub fn sniff(
        &self,
        head: &[u8],
        complete: bool,
        max_line_bytes: usize,
        cache: &mut HashMap<String, Arc<Parser>>,
    ) -> Vec<Candidate> {
        let lines = sample_lines(head, complete);
        let mut out = Vec::new();
        for (name, spec) in &self.formats {
            let parser = match cache.get(name) {
                Some(p) => Arc::clone(p),
                None => match self.parser_for(name, max_line_bytes, head) {
                    Ok(p) => {
                        let p = Arc::new(p);
                        if !spec.w3c {
                            cache.insert(name.clone(), Arc::clone(&p));
                        }
                        p
                    }
                    Err(_) => continue,
                },
            };
            let (matched, sampled, filled) = score(&parser, &lines);
            out.push(Candidate {
                format: name.clone(),
                matched,
                sampled,
                rate: if sampled == 0 {
                    0.0
                } else {
                    matched as f64 / sampled as f64
                },
                filled,
            });
        }
        // Stable sort: equal scores keep file order.
        out.sort_by(|a, b| {
            b.rate
                .total_cmp(&a.rate)
                .then(b.filled.total_cmp(&a.filled))
        });
        out
    }
}
