//! The patterns loader (`patterns.yaml`) on arbitrary YAML; every format it accepts is compiled,
//! and a compiled format parses a sample line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logcrunch::parse::{BadReason, Patterns, Row, RowSink};
use std::path::Path;

struct Count(usize);

impl RowSink for Count {
    fn row(&mut self, _row: &Row<'_>) {
        self.0 += 1;
    }
    fn bad(&mut self, _offset: u64, _line_index: u64, _reason: BadReason, _line: &[u8]) {}
}

const SAMPLE: &[u8] = b"#Fields: date time c-ip cs-method cs-uri-stem sc-status\n\
10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET /a?b=1 HTTP/1.1\" 200 2326 \"-\" \"ua\" 0.012\n\
2024-01-01 00:00:00 10.0.0.1 GET / 200\n\
{\"time\":\"2024-01-01T00:00:00Z\",\"remote_addr\":\"10.0.0.1\",\"request\":\"GET / HTTP/1.1\",\"status\":200}\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pats) = Patterns::parse(text, Path::new("fuzz.yaml")) else {
        return;
    };
    for name in pats.formats.keys() {
        if let Ok(parser) = pats.parser_for(name, 4096, SAMPLE) {
            let mut scratch = parser.scratch();
            parser.parse_chunk(&mut scratch, SAMPLE, 0, &mut Count(0));
        }
    }
});
