use super::*;
use crate::parse::{BadReason, Patterns, Row, RowSink};
use proptest::prelude::*;
use std::io::Write as _;

#[derive(Default)]
struct Collect {
    rows: Vec<(u64, String)>,
    bad: Vec<(u64, BadReason)>,
}

impl RowSink for Collect {
    fn row(&mut self, row: &Row<'_>) {
        self.rows.push((row.offset, format!("{:?}", row)));
    }
    fn bad(&mut self, offset: u64, _line_index: u64, reason: BadReason, _line: &[u8]) {
        self.bad.push((offset, reason));
    }
}

const MAX_LINE: usize = 300;

fn parse_via_scanner(input: &Input, chunk_size: usize) -> (Collect, ScanEnd) {
    let pats = Patterns::parse(crate::parse::BUILTIN_PATTERNS, Path::new("b")).unwrap();
    let p = pats.parser("combined", MAX_LINE).unwrap();
    let mut scratch = p.scratch();
    let mut sink = Collect::default();
    let scanner = Scanner {
        chunk_size,
        max_line_bytes: MAX_LINE,
    };
    let progress = Arc::new(AtomicU64::new(0));
    let mut seqs = Vec::new();
    let req = plain_request(input);
    let end = scanner
        .scan(&req, &progress, &mut |c: Chunk| {
            seqs.push(c.seq);
            p.parse_chunk(&mut scratch, &c.data, c.offset, &mut sink);
            true
        })
        .unwrap();
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "chunks come in order"
    );
    sink.rows.sort();
    sink.bad.sort();
    (sink, end)
}

fn reference(text: &[u8]) -> Collect {
    let pats = Patterns::parse(crate::parse::BUILTIN_PATTERNS, Path::new("b")).unwrap();
    let p = pats.parser("combined", MAX_LINE).unwrap();
    let mut sink = Collect::default();
    p.parse_chunk(&mut p.scratch(), text, 0, &mut sink);
    sink
}

fn write_input(dir: &Path, name: &str, bytes: &[u8], encoding: Encoding) -> Input {
    let path = dir.join(name);
    let mut f = File::create(&path).unwrap();
    match encoding {
        Encoding::Gzip => {
            // Two members, split mid-file, as logrotate's delaycompress + cat would make.
            let mid = bytes.len() / 2;
            for part in [&bytes[..mid], &bytes[mid..]] {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(part).unwrap();
                f.write_all(&gz.finish().unwrap()).unwrap();
            }
        }
        Encoding::Zstd => f.write_all(&zstd::encode_all(bytes, 1).unwrap()).unwrap(),
        _ => f.write_all(bytes).unwrap(),
    }
    drop(f);
    let input = resolve(&[path.display().to_string()]).unwrap().remove(0);
    assert_eq!(input.encoding, encoding);
    input
}

fn text_strategy() -> impl Strategy<Value = Vec<u8>> {
    let good = "[0-9]{1,3}".prop_map(|n| {
        format!("10.0.0.{n} - - [10/Oct/2000:13:55:{:02} -0700] \"GET /p/{n} HTTP/1.1\" 200 {n} \"-\" \"ua\"", n.len() * 7)
            .into_bytes()
    });
    let line = prop_oneof![
        6 => good.clone(),
        1 => good.clone().prop_map(|mut l| { l.push(b'\r'); l }),
        1 => good.prop_map(|mut l| { let mut v = vec![0u8; 5]; v.append(&mut l); v }),
        1 => Just(Vec::new()),
        1 => proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40),
        1 => (MAX_LINE..MAX_LINE * 3).prop_map(|n| vec![b'x'; n]),
    ];
    (proptest::collection::vec(line, 0..40), any::<bool>()).prop_map(|(lines, final_nl)| {
        let mut out = lines.join(&b"\n"[..]);
        if final_nl && !out.is_empty() {
            out.push(b'\n');
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any chunk size, mapped or streamed (gzip, zstd), gives the rows and bad lines of one
    /// whole-buffer parse.
    #[test]
    fn any_chunking_gives_the_same_rows(text in text_strategy(), chunk_seed in 1usize..10_000) {
        let dir = tempfile::tempdir().unwrap();
        let want = reference(&text);
        let chunk_size = 1 + chunk_seed % (text.len() + 1);
        for (i, enc) in [Encoding::Plain, Encoding::Gzip, Encoding::Zstd].into_iter().enumerate() {
            if enc == Encoding::Gzip && text.len() < 2 {
                continue;
            }
            let input = write_input(dir.path(), &format!("in{i}.log"), &text, enc);
            let (got, end) = parse_via_scanner(&input, chunk_size);
            prop_assert_eq!(&got.rows, &{ let mut r = want.rows.clone(); r.sort(); r }, "{:?} chunk {}", enc, chunk_size);
            prop_assert_eq!(&got.bad, &{ let mut b = want.bad.clone(); b.sort(); b }, "{:?} chunk {}", enc, chunk_size);
            prop_assert_eq!(end.end, text.len() as u64);
            prop_assert!(end.truncated.is_none());
        }
    }
}

#[test]
fn directories_globs_and_missing_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    for name in [
        "access.log",
        "sub/access.log.1",
        "error_log",
        "notes.md",
        ".hidden.log",
        "app.log.2.gz",
    ] {
        std::fs::write(dir.path().join(name), b"x\n").unwrap();
    }
    let got = resolve(&[dir.path().display().to_string()]).unwrap();
    let names: Vec<String> = got
        .iter()
        .map(|i| {
            i.path
                .strip_prefix(dir.path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "access.log",
            "app.log.2.gz",
            "error_log",
            "sub/access.log.1"
        ]
    );
    let glob = format!("{}/*.log", dir.path().display());
    assert_eq!(resolve(&[glob]).unwrap().len(), 1);
    let missing = dir.path().join("nope.log");
    assert!(matches!(
        resolve(&[missing.display().to_string()]),
        Err(Error::InputNotFound(_))
    ));
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        resolve(&[empty.path().display().to_string()]),
        Err(Error::NoLogFiles(_))
    ));
    let dup = resolve(&[
        dir.path().join("access.log").display().to_string(),
        dir.path().join("access.log").display().to_string(),
    ])
    .unwrap();
    assert_eq!(dup.len(), 1, "the same file twice is read once");
}

#[test]
fn a_truncated_gzip_keeps_whole_lines_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = Vec::new();
    for i in 0..2000 {
        text.extend(format!("10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET /{i} HTTP/1.1\" 200 {i} \"-\" \"ua\"\n").bytes());
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&text).unwrap();
    let full = gz.finish().unwrap();
    let path = dir.path().join("cut.log.gz");
    std::fs::write(&path, &full[..full.len() * 2 / 3]).unwrap();
    let input = resolve(&[path.display().to_string()]).unwrap().remove(0);
    let (got, end) = parse_via_scanner(&input, 4096);
    let (msg, at, partial) = end.truncated.clone().expect("truncation is reported");
    assert!(!msg.is_empty());
    assert!(
        got.rows.len() > 100 && got.rows.len() < 2000,
        "{}",
        got.rows.len()
    );
    assert!(got.bad.is_empty(), "whole lines only: {:?}", got.bad);
    assert_eq!(
        &text[at as usize..at as usize + partial.len()],
        &partial[..]
    );
    assert_eq!(
        text[at as usize - 1],
        b'\n',
        "the partial line starts after a newline"
    );
}

#[test]
fn resuming_skips_what_was_read_and_the_rest_of_a_partial_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"aaaa\nbbbb\ncc";
    let input = write_input(dir.path(), "r.log", text, Encoding::Plain);
    let scanner = Scanner {
        chunk_size: 1 << 20,
        max_line_bytes: 100,
    };
    let progress = Arc::new(AtomicU64::new(0));
    let mut chunks = Vec::new();
    let req = ScanRequest {
        source: 0,
        input: &input,
        start: 7,
        skip_partial: true,
        cut_before: None,
        expect_head: None,
        follow: false,
    };
    let end = scanner
        .scan(&req, &progress, &mut |c: Chunk| {
            chunks.push((c.offset, c.data.to_vec()));
            true
        })
        .unwrap();
    assert_eq!(end.skipped_partial, Some((7, 3)));
    assert_eq!(chunks, vec![(10, b"cc".to_vec())]);
    assert!(!end.ends_with_newline);
    assert_eq!(end.end, 12);
}

#[test]
fn empty_inputs_yield_no_chunks() {
    let dir = tempfile::tempdir().unwrap();
    for (i, enc) in [Encoding::Plain, Encoding::Zstd].into_iter().enumerate() {
        let input = write_input(dir.path(), &format!("e{i}.log"), b"", enc);
        let (got, end) = parse_via_scanner(&input, 10);
        assert!(got.rows.is_empty() && got.bad.is_empty());
        assert_eq!((end.end, end.chunks), (0, 0));
    }
}

fn numbered_lines(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            format!("10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET /{i} HTTP/1.1\" 200 {i} \"-\" \"ua\"\n")
                .into_bytes()
        })
        .collect()
}

fn plain_request(input: &Input) -> ScanRequest<'_> {
    ScanRequest {
        source: 0,
        input,
        start: 0,
        skip_partial: false,
        cut_before: None,
        expect_head: None,
        follow: false,
    }
}

/// Scans all of `input` in 64 KiB chunks, handing each chunk to `on_chunk`.
fn scan_64k(input: &Input, mut on_chunk: impl FnMut(Chunk)) -> ScanEnd {
    let scanner = Scanner {
        chunk_size: 64 << 10,
        max_line_bytes: 1000,
    };
    let progress = Arc::new(AtomicU64::new(0));
    scanner
        .scan(&plain_request(input), &progress, &mut |c: Chunk| {
            on_chunk(c);
            true
        })
        .unwrap()
}

#[test]
fn a_file_truncated_under_its_maps_reads_zeros_and_is_reported_changed() {
    let dir = tempfile::tempdir().unwrap();
    let text = numbered_lines(20_000);
    let input = write_input(dir.path(), "t.log", &text, Encoding::Plain);
    let mut seen = Vec::new();
    let end = scan_64k(&input, |c| {
        if c.seq == 1 {
            File::options()
                .write(true)
                .open(&input.path)
                .unwrap()
                .set_len(5000)
                .unwrap();
        }
        // Every byte is touched, as a parser would: the vanished pages must not kill us.
        let nuls = c.data.iter().filter(|b| **b == 0).count();
        seen.push((c.seq, c.intact(), nuls));
    });
    assert!(end.changed.is_some(), "{end:?}");
    assert_eq!(
        seen[0],
        (0, true, 0),
        "the first chunk was read before the cut"
    );
    assert!(
        seen[1..].iter().all(|(_, intact, _)| !intact),
        "chunks after the cut are not trusted: {seen:?}"
    );
    assert!(seen[1..].iter().any(|(_, _, nuls)| *nuls > 0));
}

#[test]
fn a_file_rewritten_while_scanned_is_reported_changed() {
    let dir = tempfile::tempdir().unwrap();
    let text = numbered_lines(5_000);
    let input = write_input(dir.path(), "w.log", &text, Encoding::Plain);
    let end = scan_64k(&input, |c| {
        if c.seq == 0 {
            // copytruncate, then the writer goes on: the file is as long again, with new lines.
            let mut other = numbered_lines(6_000);
            other.drain(..100);
            std::fs::write(&input.path, &other).unwrap();
        }
    });
    assert!(
        end.changed
            .as_deref()
            .is_some_and(|c| c.contains("first bytes")),
        "{end:?}"
    );
}

#[test]
fn a_growing_files_unfinished_last_line_is_left_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = numbered_lines(3_000);
    let whole = text.len() as u64;
    text.extend_from_slice(b"10.0.0.2 - - [10/Oct/2000:13:55:36 -0700] \"GET /half");
    let input = write_input(dir.path(), "g.log", &text, Encoding::Plain);
    let mut last_end = 0;
    let end = scan_64k(&input, |c| {
        if c.seq == 0 {
            let mut f = File::options().append(true).open(&input.path).unwrap();
            f.write_all(b" HTTP/1.1\" 200 1 \"-\" \"ua\"\n").unwrap();
        }
        last_end = c.offset + c.data.len() as u64;
    });
    assert_eq!((end.end, last_end), (whole, whole));
    assert!(end.ends_with_newline && end.changed.is_none());

    // At rest, the same unterminated line is a row of its own.
    let rest = write_input(dir.path(), "r.log", &text, Encoding::Plain);
    let (got, end) = parse_via_scanner(&rest, 64 << 10);
    assert_eq!(end.end, text.len() as u64);
    assert!(!end.ends_with_newline);
    assert_eq!(got.rows.len() + got.bad.len(), 3_001);
}

#[test]
fn holes_and_long_lines_cost_neither_memory_nor_a_pass_over_the_hole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.log");
    let f = File::create(&path).unwrap();
    let hole = 8u64 << 30;
    f.set_len(hole).unwrap();
    let mut tail = b"0000\n".to_vec();
    tail.extend(vec![b'y'; 3 * MAX_LINE]);
    tail.push(b'\n');
    tail.extend(numbered_lines(3));
    std::os::unix::fs::FileExt::write_all_at(&f, &tail, hole).unwrap();
    drop(f);
    let input = resolve(&[path.display().to_string()]).unwrap().remove(0);
    let scanner = Scanner {
        chunk_size: 1 << 20,
        max_line_bytes: MAX_LINE,
    };
    let progress = Arc::new(AtomicU64::new(0));
    let mut chunks = Vec::new();
    let end = scanner
        .scan(&plain_request(&input), &progress, &mut |c: Chunk| {
            chunks.push((c.offset, c.data.len()));
            true
        })
        .unwrap();
    assert_eq!(end.end, hole + tail.len() as u64);
    assert_eq!(chunks[0].0, hole, "the hole is passed over: {chunks:?}");
    assert!(
        chunks
            .iter()
            .all(|(_, len)| *len <= (1 << 20) + MAX_LINE + 2)
    );
    let (got, _) = parse_via_scanner(&input, 100);
    assert_eq!(got.rows.len(), 3, "{:?} {:?}", got.rows, got.bad);
    assert_eq!(
        got.bad.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
        [BadReason::NoMatch, BadReason::LineTooLong]
    );
}
