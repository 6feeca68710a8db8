//! HAProxy `log-format` strings compiled to a pattern, as [`super::directive`] does for nginx
//! `log_format` and Apache `LogFormat`.
//!
//! A log-format is text with variables: `%ci` (two or more letters), `%{+Q}r` (with options),
//! `%[src]` (a sample expression). `%{+Q}o` turns quoting on for the string variables that follow,
//! `%{+Q}` / `%{-Q}` on one variable. HAProxy writes nothing for an empty capture list and then
//! no second space, so `%hr`, `%hs`, `%hrl` and `%hsl` are optional together with the space after
//! them. Timers may be `-1` (not measured: null), the status `-1` (no response: null), and, with
//! `option logasap`, `%B`, `%Ta`, `%Tt` and `%rc` carry a leading `+`.

use std::collections::BTreeMap;

use super::directive::{Compiled, class_until, snake};
use super::{FieldKind, FieldSpec};

/// What one variable becomes.
struct Var {
    /// Regex of the value inside its group.
    body: &'static str,
    /// Column (or extra column name) and type.
    column: &'static str,
    kind: FieldKind,
    /// Text, such as quotes or `{`, that HAProxy writes around the value.
    text: bool,
    /// A leading `+` may precede the value (`option logasap`).
    plus: bool,
    /// `-1` means "none" and is not captured.
    minus_one: bool,
    /// A capture list: optional, with the space that follows it.
    capture: Option<(&'static str, &'static str)>,
}

const NUM: &str = r"\d+";
const TIMER: &str = r"-?\d+";
const CLF_TS: &str = r"[^\]]*";

fn var(name: &str) -> Option<Var> {
    use FieldKind::*;
    let v = |body, column, kind| Var {
        body,
        column,
        kind,
        text: false,
        plus: false,
        minus_one: false,
        capture: None,
    };
    let text = |column| Var {
        text: true,
        ..v(r"\S+", column, String)
    };
    Some(match name {
        "ci" => v(r"\S+", "client_ip", Host),
        "cp" => v(NUM, "client_port", String),
        "tr" | "trg" | "trl" | "t" | "T" | "Tl" => v(CLF_TS, "ts", Timestamp),
        "Ts" => v(NUM, "ts", Timestamp),
        "ms" => v(NUM, "accept_ms", String),
        "ft" => text("frontend"),
        "f" => text("frontend"),
        "fi" => text("frontend_ip"),
        "fp" => v(NUM, "frontend_port", String),
        "b" => text("backend"),
        "bi" => text("backend_source_ip"),
        "bp" => v(NUM, "backend_source_port", String),
        "s" => text("server"),
        "si" => text("server_ip"),
        "sp" => v(NUM, "server_port", String),
        "TR" | "Tq" => v(TIMER, "time_request_ms", String),
        "Tw" => v(TIMER, "time_queue_ms", String),
        "Tc" => v(TIMER, "time_connect_ms", String),
        "Th" => v(TIMER, "time_handshake_ms", String),
        "Ti" => v(TIMER, "time_idle_ms", String),
        "Tu" => v(TIMER, "time_user_ms", String),
        "Tr" => v(TIMER, "upstream_response_time_us", Millis),
        "Ta" | "Tt" => Var {
            plus: true,
            ..v(TIMER, "response_time_us", Millis)
        },
        "ST" => Var {
            minus_one: true,
            ..v(NUM, "status", Int)
        },
        "B" => Var {
            plus: true,
            ..v(NUM, "bytes", Int)
        },
        "U" => v(NUM, "bytes_uploaded", String),
        "CC" => text("captured_request_cookie"),
        "CS" => text("captured_response_cookie"),
        // Written as is even under +Q.
        "ts" | "tsc" => v(r"\S+", "termination_state", String),
        "ac" => v(NUM, "actconn", String),
        "fc" => v(NUM, "feconn", String),
        "bc" => v(NUM, "beconn", String),
        "sc" => v(NUM, "srv_conn", String),
        "rc" => Var {
            plus: true,
            ..v(NUM, "retries", String)
        },
        "sq" => v(NUM, "srv_queue", String),
        "bq" => v(NUM, "backend_queue", String),
        "hr" => Var {
            capture: Some((r"\{", r"\}")),
            ..v(r"[^}]*", "captured_request_headers", String)
        },
        "hs" => Var {
            capture: Some((r"\{", r"\}")),
            ..v(r"[^}]*", "captured_response_headers", String)
        },
        "hrl" => Var {
            capture: Some(("", "")),
            ..text("captured_request_headers")
        },
        "hsl" => Var {
            capture: Some(("", "")),
            ..text("captured_response_headers")
        },
        "r" => Var {
            text: true,
            ..v(r"\S+ \S+ \S+", "request", Request)
        },
        "HM" => text("method"),
        "HU" | "HP" => Var {
            text: true,
            ..v(r"\S+", "request", Uri)
        },
        "HPO" => text("path"),
        "HQ" => text("query_with_mark"),
        "HV" => text("protocol"),
        "ID" => text("request_id"),
        "pid" => v(NUM, "haproxy_pid", String),
        "H" => text("log_host"),
        "rt" => v(NUM, "request_counter", String),
        "lc" => v(NUM, "log_counter", String),
        "sslc" => text("ssl_cipher"),
        "sslv" => text("ssl_version"),
        _ => return None,
    })
}

fn typed(column: &str, kind: FieldKind, ts_format: Option<&str>) -> FieldSpec {
    FieldSpec {
        format: ts_format.map(str::to_string),
        ..FieldSpec::to(kind, column)
    }
}

/// Strips `log-format` and the quotes of a configuration line, and undoes its escapes
/// (`\"`, and the `\ ` of older versions).
fn body(text: &str) -> String {
    let t = text.trim();
    let t = t.strip_prefix("log-format").map_or(t, str::trim);
    let t = t
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(t);
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(n @ ('"' | ' ' | '\\' | '#'))) => {
                out.push(n);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

enum Token {
    Literal(String),
    /// A variable: its name (or `[expr]`) and whether it is quoted.
    Var(String, bool),
}

fn tokens(body: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut quote_all = false;
    let mut rest = body;
    while let Some(at) = rest.find('%') {
        lit.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let mut quoted = None;
        if let Some(opts) = rest.strip_prefix('{') {
            let end = opts.find('}').ok_or("a `%{` without its `}`")?;
            for opt in opts[..end].split(',') {
                match opt.trim() {
                    "+Q" => quoted = Some(true),
                    "-Q" => quoted = Some(false),
                    _ => {}
                }
            }
            rest = &opts[end + 1..];
        }
        let name = if let Some(expr) = rest.strip_prefix('[') {
            let end = expr.find(']').ok_or("a `%[` without its `]`")?;
            rest = &expr[end + 1..];
            format!("[{}]", &expr[..end])
        } else {
            let n = rest
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            let name = rest[..n].to_string();
            rest = &rest[n..];
            name
        };
        if name.is_empty() {
            lit.push('%');
            continue;
        }
        if name == "o" {
            // It writes nothing, nor the separator after it.
            quote_all = quoted.unwrap_or(quote_all);
            rest = rest.strip_prefix(' ').unwrap_or(rest);
            continue;
        }
        if !lit.is_empty() {
            out.push(Token::Literal(std::mem::take(&mut lit)));
        }
        out.push(Token::Var(name, quoted.unwrap_or(quote_all)));
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        out.push(Token::Literal(lit));
    }
    Ok(out)
}

fn is_capture(name: &str) -> bool {
    matches!(name, "hr" | "hs" | "hrl" | "hsl")
}

/// Compiles a HAProxy `log-format` (the string, or the whole `log-format "..."` line).
pub fn haproxy(text: &str) -> Result<Compiled, String> {
    let toks = tokens(&body(text))?;
    if !toks.iter().any(|t| matches!(t, Token::Var(..))) {
        return Err("the log-format has no variables".into());
    }
    let mut regex = String::from("^");
    let mut fields = BTreeMap::new();
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..toks.len() {
        let (name, quoted) = match &toks[i] {
            // A capture list that is empty is not written, nor is the space before it: that
            // space goes into the list's optional group.
            Token::Literal(l) => {
                let before_capture =
                    matches!(toks.get(i + 1), Some(Token::Var(n, _)) if is_capture(n));
                let l = if before_capture {
                    l.strip_suffix(' ').unwrap_or(l)
                } else {
                    l
                };
                regex.push_str(&regex_syntax::escape(l));
                continue;
            }
            Token::Var(name, quoted) => (name.clone(), *quoted),
        };
        let next = match toks.get(i + 1) {
            Some(Token::Literal(l)) => l.bytes().next(),
            _ => None,
        };
        let v = match var(&name) {
            Some(v) => v,
            None if name.starts_with('[') => Var {
                body: "",
                column: "",
                kind: FieldKind::String,
                text: true,
                plus: false,
                minus_one: false,
                capture: None,
            },
            None => return Err(format!("%{name} is not a HAProxy log-format variable")),
        };
        let column = if v.column.is_empty() {
            snake(&name)
        } else {
            v.column.to_string()
        };
        let quote = quoted && v.text;
        let value = if quote {
            r#"[^"]*"#.to_string()
        } else if !v.body.is_empty() && v.body != r"\S+" {
            v.body.to_string()
        } else {
            match next {
                Some(b) => class_until(b),
                None if i + 1 == toks.len() => r"[^\n]*".to_string(),
                None => r"\S*".to_string(),
            }
        };
        let base = snake(&column);
        let n = used.entry(base.clone()).or_insert(0);
        *n += 1;
        let group = if *n == 1 { base } else { format!("{base}_{n}") };
        let ts_format =
            (v.kind == FieldKind::Timestamp).then(|| if name == "Ts" { "epoch" } else { "clf" });
        fields.insert(group.clone(), typed(&column, v.kind, ts_format));
        let q = if quote { "\"" } else { "" };
        let mut piece = format!(
            "{q}{}(?P<{group}>{value}){q}",
            if v.plus { r"\+?" } else { "" }
        );
        if v.minus_one {
            piece = format!("(?:-1|{piece})");
        }
        if let Some((open, close)) = v.capture {
            let list = if quote {
                r#""[^"]*"(?: "[^"]*")*"#
            } else {
                value.as_str()
            };
            let space = match i.checked_sub(1).map(|p| &toks[p]) {
                Some(Token::Literal(l)) if l.ends_with(' ') => " ",
                _ => "",
            };
            piece = format!("(?:{space}{open}(?P<{group}>{list}){close})?");
        }
        regex.push_str(&piece);
    }
    regex.push('$');
    Ok((Some(regex), None, fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_quotes_and_expressions_tokenize() {
        let t = tokens(r#"%{+Q}o %{-Q}ci %ft %{+Q}r %[capture.req.hdr(0)] 100%"#).unwrap();
        let vars: Vec<(String, bool)> = t
            .iter()
            .filter_map(|t| match t {
                Token::Var(n, q) => Some((n.clone(), *q)),
                Token::Literal(_) => None,
            })
            .collect();
        assert_eq!(
            vars,
            [
                ("ci".to_string(), false),
                ("ft".to_string(), true),
                ("r".to_string(), true),
                ("[capture.req.hdr(0)]".to_string(), true)
            ]
        );
        assert!(haproxy("%zz").unwrap_err().contains("%zz"));
        assert!(haproxy("no variables").is_err());
        assert_eq!(body(r#"log-format "%ci\ [%t]""#), "%ci [%t]");
    }
}
