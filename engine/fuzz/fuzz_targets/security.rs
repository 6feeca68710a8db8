//! The security normaliser and the signature tagger on arbitrary request fields (path, query,
//! referer, user agent, separated by NUL bytes), at paranoia 1 and 2. The tagger's per-value
//! cache must never change an answer: a warm scratch and a fresh one tag alike.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logcrunch::security::normalize::{Field, normalize};
use logcrunch::security::{BUILTIN_SIGNATURES, SignatureFile, TagScratch, Tagger};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

fn taggers() -> &'static [(Tagger, Mutex<TagScratch>); 2] {
    static T: OnceLock<[(Tagger, Mutex<TagScratch>); 2]> = OnceLock::new();
    T.get_or_init(|| {
        let file = SignatureFile::parse(BUILTIN_SIGNATURES, Path::new("builtin")).unwrap();
        [1, 2].map(|p| {
            (
                Tagger::new(&file, p).unwrap(),
                Mutex::new(TagScratch::default()),
            )
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == 0);
    let fields: Vec<&[u8]> = (0..4).map(|_| parts.next().unwrap_or(b"")).collect();
    let (mut out, mut tmp) = (Vec::new(), Vec::new());
    for (value, field) in
        fields
            .iter()
            .zip([Field::Path, Field::Query, Field::Header, Field::Header])
    {
        normalize(value, field, &mut out, &mut tmp);
        assert!(
            out.len() <= 4 * value.len().max(1) + 16,
            "normalising does not blow up"
        );
    }
    for (tagger, warm) in taggers() {
        let mut warm = warm.lock().unwrap();
        let args = (
            Some(fields[0]),
            Some(fields[1]),
            Some(fields[2]),
            Some(fields[3]),
        );
        let a = tagger.tag(args.0, args.1, args.2, args.3, &mut warm);
        let b = tagger.tag(args.0, args.1, args.2, args.3, &mut warm);
        let c = tagger.tag(args.0, args.1, args.2, args.3, &mut TagScratch::default());
        assert_eq!((a, b), (c, c), "cached and fresh tags agree");
    }
});
