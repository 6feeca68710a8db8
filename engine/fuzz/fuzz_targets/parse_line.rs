//! Every built-in format's line parser on arbitrary bytes. The input's first line names the format
//! (any other first line picks one by its hash), the rest is a chunk of log text. Beyond "never
//! panics": parsing the chunk whole and parsing it cut at any line boundary give the same rows
//! at the same offsets (the chunking property the scanner relies on).
#![no_main]

use libfuzzer_sys::fuzz_target;
use logcrunch::parse::{BUILTIN_PATTERNS, BadReason, Parser, Patterns, Row, RowSink};
use logcrunch::schema::StrCol;
use std::path::Path;
use std::sync::OnceLock;

#[derive(Default, PartialEq, Debug)]
struct Collect(Vec<(u64, String)>);

impl RowSink for Collect {
    fn row(&mut self, row: &Row<'_>) {
        let mut text = format!(
            "{} {:?} {:?} {:?} {:?}",
            row.ts_us, row.status, row.bytes, row.response_time_us, row.upstream_response_time_us
        );
        for c in StrCol::ALL {
            text.push_str(&format!(" {:?}", row.str(c)));
        }
        for i in 0..row.extras_len() {
            text.push_str(&format!(" {:?}", row.extra(i)));
        }
        self.0.push((row.offset, text));
    }

    fn bad(&mut self, offset: u64, _line_index: u64, reason: BadReason, _line: &[u8]) {
        self.0.push((offset, format!("bad {}", reason.key())));
    }
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns::parse(BUILTIN_PATTERNS, Path::new("builtin")).unwrap())
}

/// The built-in formats compiled once (W3C ones are compiled per input, from its header).
fn parsers() -> &'static Vec<(String, Option<Parser>)> {
    static P: OnceLock<Vec<(String, Option<Parser>)>> = OnceLock::new();
    P.get_or_init(|| {
        let pats = patterns();
        pats.formats
            .iter()
            .map(|(name, spec)| {
                (
                    name.clone(),
                    (!spec.w3c).then(|| pats.parser(name, 2048).unwrap()),
                )
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let (first, text) = match memchr_nl(data) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let all = parsers();
    let (name, compiled) = match all.iter().find(|(n, _)| n.as_bytes() == first) {
        Some(p) => p,
        None => {
            let h = first
                .iter()
                .fold(0usize, |h, b| h.wrapping_mul(31) ^ *b as usize);
            &all[h % all.len()]
        }
    };
    let from_header;
    let parser = match compiled {
        Some(p) => p,
        // W3C formats take their columns from the text's `#Fields:` line; without one they refuse.
        None => match patterns().parser_for(name, 2048, text) {
            Ok(p) => {
                from_header = p;
                &from_header
            }
            Err(_) => return,
        },
    };
    let mut scratch = parser.scratch();
    let mut whole = Collect::default();
    let stats = parser.parse_chunk(&mut scratch, text, 0, &mut whole);
    assert!(stats.rows + stats.bad <= stats.lines);
    if parser.entry_start().is_some() {
        // Multi-line formats are only cut before an entry's first line: not every cut is valid.
        return;
    }
    let cuts: Vec<usize> = text
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    if cuts.is_empty() {
        return;
    }
    let cut = cuts[first.len() % cuts.len()];
    let mut split = Collect::default();
    parser.parse_chunk(&mut scratch, &text[..cut], 0, &mut split);
    parser.parse_chunk(&mut scratch, &text[cut..], cut as u64, &mut split);
    assert_eq!(whole, split, "format {name}, cut at {cut}");
});

fn memchr_nl(data: &[u8]) -> Option<usize> {
    data.iter().position(|b| *b == b'\n')
}
