//! The field splitter against the regex it was compiled from. For every built-in format that runs
//! on a splitter, and any line: when the splitter accepts the line, the anchored regex matches it
//! too with exactly the same capture spans (the splitter is only ever a faster way to the regex's
//! answer; on lines it rejects the regex decides).
#![no_main]

use libfuzzer_sys::fuzz_target;
use logcrunch::parse::splitter::Splitter;
use logcrunch::parse::{BUILTIN_PATTERNS, Patterns};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, PatternID, meta};
use std::path::Path;
use std::sync::OnceLock;

struct Pair {
    name: String,
    regex: meta::Regex,
    splitter: Splitter,
}

fn pairs() -> &'static Vec<Pair> {
    static P: OnceLock<Vec<Pair>> = OnceLock::new();
    P.get_or_init(|| {
        let pats = Patterns::parse(BUILTIN_PATTERNS, Path::new("builtin")).unwrap();
        let syntax_cfg = syntax::Config::new().unicode(false).utf8(false);
        let mut out = Vec::new();
        for name in pats.formats.keys() {
            let Ok(parser) = pats.parser(name, 1 << 16) else {
                continue;
            };
            let Some(re) = parser.regex() else { continue };
            let regex = meta::Regex::builder()
                .syntax(syntax_cfg)
                .configure(meta::Config::new().utf8_empty(false))
                .build(re)
                .unwrap();
            let hir = regex_syntax::ParserBuilder::new()
                .unicode(false)
                .utf8(false)
                .build()
                .parse(re)
                .unwrap();
            let groups = regex.group_info().group_len(PatternID::ZERO);
            if let Some(splitter) = Splitter::compile(&hir, groups) {
                out.push(Pair {
                    name: name.clone(),
                    regex,
                    splitter,
                });
            }
        }
        assert!(!out.is_empty(), "some built-in formats run on a splitter");
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let line = data.split(|b| *b == b'\n').next().unwrap_or(data);
    for p in pairs() {
        let groups = p.regex.group_info().group_len(PatternID::ZERO);
        let mut slots = vec![None; groups];
        if !p.splitter.split(line, &mut slots) {
            continue;
        }
        let mut caps = p.regex.create_captures();
        p.regex
            .search_captures(&Input::new(line).anchored(Anchored::Yes), &mut caps);
        assert!(
            caps.is_match(),
            "{}: the splitter accepts a line the regex rejects",
            p.name
        );
        for (g, slot) in slots.iter().enumerate() {
            let want = caps.get_group(g).map(|s| (s.start as u32, s.end as u32));
            assert_eq!(*slot, want, "{}: group {g}", p.name);
        }
    }
});
