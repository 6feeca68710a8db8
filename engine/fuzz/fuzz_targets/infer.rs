//! Format inference on arbitrary lines: it never panics, and a format it infers compiles and
//! reads at least as many of the lines as it reports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logcrunch::parse::infer;

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .take(200)
        .collect();
    let Some(s) = infer::suggest("fuzzed", &lines, 4096) else {
        return;
    };
    assert!(s.matched <= s.sampled);
    let parser = s.parser(4096).expect("an inferred format compiles");
    let mut scratch = parser.scratch();
    let read = lines
        .iter()
        .filter(|l| matches!(parser.parse_line(&mut scratch, l, 0), Ok(Some(_))))
        .count();
    assert_eq!(read, s.matched);
    let yaml = format!("formats:\n{}", s.yaml("fuzzed"));
    let reparsed = logcrunch::parse::Patterns::parse(&yaml, std::path::Path::new("fuzz.yaml"))
        .expect("the printed entry is a patterns file");
    reparsed
        .parser(&s.name, 4096)
        .expect("the printed entry compiles");
});
