//! SQL injection by token fingerprint, for what a list of keywords cannot read.
//!
//! libinjection's idea (through `libinjectionrs`, a pure-Rust port): a value is tokenised as SQL
//! would read it after an injection point (as a bare value and inside single or double quotes),
//! the first tokens are folded into a short fingerprint (`s&1c`: a string, a logical operator, a
//! number, a comment) and the fingerprint is looked up among those of known injections. Values are
//! the parameters of a query string (what follows each `=`), or the whole text of another field.
//! Its own recall on the payload corpus is lower than the signatures' (it leaves fragments such as
//! `' or "` to context), so it runs beside them: a query value that reaches it (one of its
//! signature's literals was found) and whose fingerprint is an injection's is tagged.

/// Whether a value of `text` tokenises to an injection's fingerprint.
pub fn injected(text: &[u8]) -> bool {
    values(text).any(|v| !v.is_empty() && libinjectionrs::detect_sqli(v).is_injection())
}

/// The values of a query string (`?a=1&b=2`: `1` and `2`; a parameter without `=` whole), or the
/// whole of any other text.
fn values(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let query = text.first() == Some(&b'?');
    let body = if query { &text[1..] } else { text };
    body.split(move |&b| query && b == b'&').map(move |kv| {
        match kv.iter().position(|&b| b == b'=') {
            Some(eq) if query => &kv[eq + 1..],
            _ => kv,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_judged_one_by_one() {
        assert!(injected(b"?id=1' or '1'='1"));
        assert!(injected(
            b"?q=shoes&id=1 union select password from users--"
        ));
        assert!(injected(b"?id=-1; drop table users--"));
        assert!(!injected(b"?q=o'neil&page=2"));
        assert!(!injected(b"?q=rock 'n' roll&sort=price-asc"));
        assert!(!injected(b"?a=1&b=2"));
        let parts: Vec<&[u8]> = values(b"?a=1&b&c=x=y").collect();
        assert_eq!(parts, [&b"1"[..], b"b", b"x=y"]);
        assert_eq!(values(b"/a=b&c").collect::<Vec<_>>(), [&b"/a=b&c"[..]]);
    }
}
