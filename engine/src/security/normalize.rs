//! Normalisation of attacker-controlled text before signatures look at it.
//!
//! Attackers hide payloads behind encodings; the same payload must look the same however it was
//! written. Steps, each bounded (the output never exceeds [`MAX_BYTES`]): nginx/Apache log escapes
//! (`\xHH`, `\"`), `+` as space in queries, percent-decoding repeated until stable (at most
//! [`MAX_ROUNDS`], so `%252e` is `.`), IIS `%uHHHH` and encoded digits (`%%35%63`), the dot
//! and slashes written out as `0x2e`, overlong UTF-8 forms of ASCII of any length (`%c0%ae` is
//! `.`, as lax decoders read it) and the look-alikes of `.`, `/` and `\` that Windows' best-fit
//! mapping turns into them (fullwidth `．／＼`, `∕`, `∖`), HTML entities (`&lt;`, `&#x3c;`),
//! lower case, and for paths backslashes as `/`, `/./` folded and runs of slashes cut to two (an
//! empty segment is kept: a path join reads `//etc` as the root). Text that contains none of
//! the characters those steps act on (the common case) is not copied at all.

/// Most bytes of a field that are normalised and matched.
pub const MAX_BYTES: usize = 8 << 10;
/// Rounds of percent-decoding.
pub const MAX_ROUNDS: usize = 3;

/// What a field is, which decides the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The path of the request target.
    Path,
    /// The query string.
    Query,
    /// A header (Referer, User-Agent).
    Header,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// What a byte asks of [`needs_work`]: a normalisation step (`%`, `\`, `&`, `+`, a UTF-8 lead
/// byte), or a look at the byte after it (`0` before `x`, `/` before `/` or `.` in a path).
const STEP: u8 = 1;
const ZERO: u8 = 2;
const SLASH: u8 = 4;
const BYTE_CLASS: [u8; 256] = byte_table(
    &[
        (b'%', STEP),
        (b'\\', STEP),
        (b'&', STEP),
        (b'+', STEP),
        (b'0', ZERO),
        (b'/', SLASH),
    ],
    STEP,
);
/// Which looks of [`BYTE_CLASS`] a byte completes: `x` after `0`, `/` or `.` after `/`.
const FOLLOWS: [u8; 256] = byte_table(
    &[(b'x', ZERO), (b'X', ZERO), (b'/', SLASH), (b'.', SLASH)],
    0,
);

/// A table of bytes: `entries`, and `lead` for the lead bytes of UTF-8 sequences (0xc0 up).
const fn byte_table(entries: &[(u8, u8)], lead: u8) -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0xc0;
    while b < 256 {
        table[b] = lead;
        b += 1;
    }
    let mut i = 0;
    while i < entries.len() {
        table[entries[i].0 as usize] = entries[i].1;
        i += 1;
    }
    table
}

/// Whether `text` needs any step beyond lower-casing (which matching does itself), in one pass
/// over its bytes with no branch per byte: the values are short, and each is looked at on a miss
/// of the tagger's cache. It may say yes to text that normalises to itself (`/.well-known/`),
/// never no to text that does not.
pub fn needs_work(text: &[u8], field: Field) -> bool {
    let looks = if field == Field::Path {
        ZERO | SLASH
    } else {
        ZERO
    };
    let (mut found, mut pending) = (0u8, 0u8);
    for &b in text {
        let class = BYTE_CLASS[usize::from(b)];
        found |= class & STEP | pending & FOLLOWS[usize::from(b)];
        pending = class & looks;
    }
    found != 0
}

fn unescape_log(input: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'\\' && i + 1 < input.len() {
            match input[i + 1] {
                b'x' | b'X' if i + 3 < input.len() => {
                    if let (Some(h), Some(l)) = (hex(input[i + 2]), hex(input[i + 3])) {
                        out.push(h << 4 | l);
                        i += 4;
                        continue;
                    }
                }
                b'"' | b'\\' => {
                    out.push(input[i + 1]);
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(b);
        i += 1;
    }
}

/// One round of percent-decoding (and `%uHHHH`); returns whether anything changed.
fn percent_round(input: &[u8], out: &mut Vec<u8>) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'\\'
            && matches!(input.get(i + 1), Some(b'u' | b'U'))
            && let Some(c) = code_point(input.get(i + 2..i + 6))
        {
            // A JavaScript or JSON escape (`\u002e`), which the application decodes.
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            i += 6;
            changed = true;
            continue;
        }
        if input[i] == b'%' {
            if let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(|b| hex(*b)),
                input.get(i + 2).and_then(|b| hex(*b)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                changed = true;
                continue;
            }
            if matches!(input.get(i + 1), Some(b'u' | b'U'))
                && let Some(c) = code_point(input.get(i + 2..i + 6))
            {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 6;
                changed = true;
                continue;
            }
            if let Some((byte, n)) = nested_percent(&input[i + 1..]) {
                out.push(byte);
                i += 1 + n;
                changed = true;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    changed
}

/// The character that four hex digits name (`None` unless `digits` is four hex digits; a
/// surrogate is U+FFFD).
fn code_point(digits: Option<&[u8]>) -> Option<char> {
    let cp = digits?
        .iter()
        .try_fold(0u32, |acc, b| hex(*b).map(|v| acc << 4 | u32::from(v)))?;
    Some(char::from_u32(cp).unwrap_or('\u{fffd}'))
}

/// One hex digit of a percent sequence: the digit itself, or the digit percent-encoded (`%32`
/// for `2`), possibly behind a stray `%` (`%%32`); its value and length.
fn nibble(b: &[u8]) -> Option<(u8, usize)> {
    if let Some(v) = b.first().and_then(|c| hex(*c)) {
        return Some((v, 1));
    }
    let encoded = |at: usize| {
        let (h, l) = (hex(*b.get(at + 1)?)?, hex(*b.get(at + 2)?)?);
        hex(h << 4 | l)
    };
    match b {
        [b'%', b'%', ..] => encoded(1).map(|v| (v, 4)),
        [b'%', ..] => encoded(0).map(|v| (v, 3)),
        _ => None,
    }
}

/// The byte that a percent sequence with percent-encoded digits stands for, `b` starting after
/// its `%`, and the bytes it takes: IIS decodes the digits first (`%%35%63` and `%%35c` are
/// `%5c`, then `\`), and attack tools also write each digit behind its own `%` (`%%32%%66`).
/// At least one digit must be encoded, or it was an ordinary sequence.
fn nested_percent(b: &[u8]) -> Option<(u8, usize)> {
    let (h, n1) = nibble(b)?;
    let (l, n2) = nibble(&b[n1..])?;
    (n1 + n2 > 2).then_some((h << 4 | l, n1 + n2))
}

/// `0x2e`, `0x2f` and `0x5c` written out as text where they stand for a character (the run of
/// hex digits that starts there is two long or odd, so not an SQL hex literal `0x2f6574`), read as `.`,
/// `/` and `\`: traversal tools send `0x2e0x2e0x2f`.
fn hex_literals(input: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < input.len() {
        let rest = &input[i..];
        if let [b'0', b'x' | b'X', h, l, after @ ..] = rest {
            let c = match (hex(*h), hex(*l)) {
                (Some(2), Some(0xe)) => Some(b'.'),
                (Some(2), Some(0xf)) => Some(b'/'),
                (Some(5), Some(0xc)) => Some(b'\\'),
                _ => None,
            };
            let run = 2 + after.iter().take_while(|b| hex(**b).is_some()).count();
            let ends = run == 2 || run % 2 == 1;
            if let Some(c) = c.filter(|_| ends) {
                out.push(c);
                i += 4;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
}

/// The ASCII character that an overlong UTF-8 sequence at the start of `b` encodes, and its length.
fn overlong(b: &[u8]) -> Option<(u8, usize)> {
    let cont = |i: usize| {
        b.get(i)
            .filter(|c| (0x80..0xc0).contains(*c))
            .map(|c| c & 0x3f)
    };
    let cp = match b.first()? {
        // Decoders that accept these never-valid leads differ on the lead's low bit: the reading
        // that ignores it (`%c1%af` as `/`) is taken when it gives `.` or `/`.
        0xc0 | 0xc1 if matches!(cont(1), Some(0x2e | 0x2f)) => (u32::from(cont(1)?), 2),
        0xc0 | 0xc1 => (u32::from(b[0] & 0x1f) << 6 | u32::from(cont(1)?), 2),
        0xe0 => (u32::from(cont(1)?) << 6 | u32::from(cont(2)?), 3),
        0xf0 | 0xf8 | 0xfc => {
            // Four, five and six bytes (the last two from before UTF-8 was cut to four): the
            // lead carries no bits of an overlong ASCII character.
            let n = match b[0] {
                0xf0 => 4,
                0xf8 => 5,
                _ => 6,
            };
            let cp = (1..n).try_fold(0u32, |acc, i| Some(acc << 6 | u32::from(cont(i)?)))?;
            (cp, n)
        }
        _ => return None,
    };
    (cp.0 < 0x80).then_some((cp.0 as u8, cp.1))
}

/// The ASCII `.`, `/` or `\` that a look-alike at the start of `b` stands for, and its length.
fn best_fit(b: &[u8]) -> Option<(u8, usize)> {
    const LOOK_ALIKES: [(&[u8], u8); 7] = [
        ("\u{ff0e}".as_bytes(), b'.'),
        ("\u{2024}".as_bytes(), b'.'),
        ("\u{fe52}".as_bytes(), b'.'),
        ("\u{ff0f}".as_bytes(), b'/'),
        ("\u{2215}".as_bytes(), b'/'),
        ("\u{ff3c}".as_bytes(), b'\\'),
        ("\u{2216}".as_bytes(), b'\\'),
    ];
    LOOK_ALIKES
        .iter()
        .find(|(seq, _)| b.starts_with(seq))
        .map(|(seq, c)| (*c, seq.len()))
}

/// Overlong and look-alike forms of ASCII replaced by the ASCII they stand for; a stray `0xc0` or
/// `0xc1` (a lead byte that never starts valid UTF-8, not followed by a continuation byte) dropped,
/// as lax decoders drop it (`..%c0/` is `../`).
fn fold_unicode(input: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < input.len() {
        if input[i] >= 0xc0
            && let Some((c, n)) = overlong(&input[i..]).or_else(|| best_fit(&input[i..]))
        {
            out.push(c);
            i += n;
            continue;
        }
        if matches!(input[i], 0xc0 | 0xc1)
            && !input.get(i + 1).is_some_and(|c| (0x80..0xc0).contains(c))
        {
            // The lax reading that takes the second byte's low bits whatever its high ones
            // (IIS read `%c1%1c` as `\`); where it gives no separator, the lead is dropped.
            let lax = input
                .get(i + 1)
                .map(|c| (input[i] & 1) << 6 | (c & 0x3f))
                .filter(|c| matches!(c, b'.' | b'/' | b'\\'));
            match lax {
                Some(c) => {
                    out.push(c);
                    i += 2;
                }
                None => i += 1,
            }
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
}

fn html_entities(input: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'&' {
            let rest = &input[i + 1..];
            let end = rest.iter().take(10).position(|b| *b == b';');
            if let Some(e) = end {
                let name = &rest[..e];
                let decoded = match name {
                    b"lt" => Some('<' as u32),
                    b"gt" => Some('>' as u32),
                    b"quot" => Some('"' as u32),
                    b"apos" => Some('\'' as u32),
                    b"amp" => Some('&' as u32),
                    b"colon" => Some(':' as u32),
                    b"lpar" => Some('(' as u32),
                    b"rpar" => Some(')' as u32),
                    [b'#', b'x' | b'X', digits @ ..] if !digits.is_empty() => {
                        digits.iter().try_fold(0u32, |acc, b| {
                            hex(*b).map(|v| acc.saturating_mul(16) + v as u32)
                        })
                    }
                    [b'#', digits @ ..] if !digits.is_empty() => {
                        digits.iter().try_fold(0u32, |acc, b| {
                            b.is_ascii_digit()
                                .then(|| acc.saturating_mul(10) + (b - b'0') as u32)
                        })
                    }
                    _ => None,
                };
                if let Some(c) = decoded.and_then(char::from_u32) {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += e + 2;
                    continue;
                }
            }
        }
        out.push(input[i]);
        i += 1;
    }
}

fn fold_path(input: &[u8], out: &mut Vec<u8>) {
    for &b in input {
        let b = if b == b'\\' { b'/' } else { b };
        if b == b'/' && out.ends_with(b"//") {
            continue;
        }
        out.push(b);
        if out.ends_with(b"/./") {
            out.truncate(out.len() - 2);
        }
    }
}

/// Normalises `input` (a `field`) into `out` (cleared first); see the module docs.
pub fn normalize(input: &[u8], field: Field, out: &mut Vec<u8>, tmp: &mut Vec<u8>) {
    let input = &input[..input.len().min(MAX_BYTES)];
    out.clear();
    unescape_log(input, out);
    if field == Field::Query {
        for b in out.iter_mut() {
            if *b == b'+' {
                *b = b' ';
            }
        }
    }
    for _ in 0..MAX_ROUNDS {
        tmp.clear();
        if !percent_round(out, tmp) {
            break;
        }
        std::mem::swap(out, tmp);
    }
    if memchr::memmem::find(out, b"0x").is_some() || memchr::memmem::find(out, b"0X").is_some() {
        tmp.clear();
        hex_literals(out, tmp);
        std::mem::swap(out, tmp);
    }
    if out.iter().any(|b| *b >= 0xc0) {
        tmp.clear();
        fold_unicode(out, tmp);
        std::mem::swap(out, tmp);
    }
    if memchr::memchr(b'&', out).is_some() {
        tmp.clear();
        html_entities(out, tmp);
        std::mem::swap(out, tmp);
    }
    if field == Field::Path {
        tmp.clear();
        fold_path(out, tmp);
        std::mem::swap(out, tmp);
    }
    out.make_ascii_lowercase();
    out.truncate(MAX_BYTES);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str, f: Field) -> String {
        let (mut out, mut tmp) = (Vec::new(), Vec::new());
        normalize(s.as_bytes(), f, &mut out, &mut tmp);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn decodes_layers_and_folds_paths() {
        assert_eq!(
            norm("/a/%252e%252e/etc/passwd", Field::Path),
            "/a/../etc/passwd"
        );
        assert_eq!(norm("x=1+UNION+SELECT", Field::Query), "x=1 union select");
        assert_eq!(norm("x=1%2B1", Field::Query), "x=1+1");
        assert_eq!(norm(r"/a\x22b\\c", Field::Path), "/a\"b/c");
        assert_eq!(norm("///a/./b//c", Field::Path), "//a/b//c");
        assert_eq!(
            norm("..\\..\\windows\\win.ini", Field::Path),
            "../../windows/win.ini"
        );
        assert_eq!(
            norm("q=&lt;script&gt;&#x61;&#108;ert(1)", Field::Query),
            "q=<script>alert(1)"
        );
        assert_eq!(norm("%u003cscript%u003e", Field::Query), "<script>");
        assert_eq!(norm("%25%32%35%32%65", Field::Query), ".");
        assert_eq!(
            norm("%2525252e", Field::Query),
            "%2e",
            "at most three rounds"
        );
        assert_eq!(
            norm("/%c0%ae%c0%ae%c0%afetc/passwd", Field::Path),
            "/../etc/passwd",
            "overlong UTF-8"
        );
        assert_eq!(norm("%e0%80%ae%f0%80%80%ae/", Field::Query), "../");
        assert_eq!(
            norm("..%c1%af%c0%2e%c0%2e%c0%2fx", Field::Query),
            "../../x",
            "lax readings of never-valid leads"
        );
        assert_eq!(
            norm("%ef%bc%8e%ef%bc%8e%e2%88%95x%ef%bc%bcy", Field::Query),
            "../x\\y",
            "best-fit look-alikes"
        );
        assert_eq!(
            norm("caf%c3%a9", Field::Query),
            "café",
            "valid UTF-8 is kept"
        );
        assert_eq!(
            norm("..%%35%63..%%35c..%2%66..%%32%%66x", Field::Query),
            "..\\..\\../../x",
            "percent sequences with encoded digits"
        );
        assert_eq!(norm("100%%20off", Field::Query), "100% off");
        assert_eq!(
            norm("%f8%80%80%80%ae%fc%80%80%80%80%ae/", Field::Query),
            "../",
            "five- and six-byte overlong forms"
        );
        assert_eq!(
            norm("0x2e0x2e0x2fetc0x2fpasswd", Field::Query),
            "../etc/passwd"
        );
        assert_eq!(
            norm("id=0x2f6574632f706173737764", Field::Query),
            "id=0x2f6574632f706173737764",
            "an SQL hex literal stays"
        );
        assert_eq!(
            norm("..%c1%1c..%c1%1cx", Field::Query),
            "..\\..\\x",
            "IIS's lax reading of a lead and a byte that does not continue it"
        );
        assert_eq!(
            norm("%5cu002e%5Cu002e\\u002fx&q=\\u00e9\\user", Field::Query),
            "../x&q=é\\user",
            "JavaScript escapes, decoded once their backslash is"
        );
        assert_eq!(norm("\u{ff0e}\u{ff0e}\u{ff0f}x", Field::Header), "../x");
        assert!(!needs_work(b"/index.html", Field::Path));
        assert!(needs_work("/\u{ff0e}\u{ff0e}/".as_bytes(), Field::Path));
        assert!(needs_work(b"/0x2e0x2e/", Field::Path));
        assert!(needs_work(b"/a%20b", Field::Path));
        assert!(needs_work(b"/a//b", Field::Path));
        assert!(needs_work(b"/a/./b", Field::Path));
        assert!(!needs_work(b"/a//b", Field::Header));
        assert!(needs_work(b"x=0X2f", Field::Query));
        assert!(!needs_work(b"/a0b/x0", Field::Path));
    }

    #[test]
    fn text_that_needs_no_work_normalises_to_itself() {
        // Every text of up to four bytes from an alphabet of what the steps act on.
        let alphabet = b"aX0x/.%2e\\&+; \xc0";
        let mut text = Vec::new();
        let (mut out, mut tmp) = (Vec::new(), Vec::new());
        for n in 0..=4u32 {
            for mut k in 0..alphabet.len().pow(n) {
                text.clear();
                for _ in 0..n {
                    text.push(alphabet[k % alphabet.len()]);
                    k /= alphabet.len();
                }
                // A query is always normalised.
                for field in [Field::Path, Field::Header] {
                    if !needs_work(&text, field) {
                        normalize(&text, field, &mut out, &mut tmp);
                        assert_eq!(out, text.to_ascii_lowercase(), "{text:?} in {field:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn work_is_bounded() {
        let long = "%41".repeat(100_000);
        let out = norm(&long, Field::Query);
        assert!(out.len() <= MAX_BYTES);
    }
}
