//! Compiles nginx `log_format` and Apache `LogFormat` directives into a format.
//!
//! Users paste the directive from their server's configuration (with or without the
//! `log_format NAME` / `LogFormat ... nickname` wrapper). Each variable becomes a named group with a
//! regex shaped for it (digits for a status, the CLF layout for `$time_local`, proxy lists for
//! remote addresses, multi-value lists for upstream times) or, for free text, "anything up to the
//! next literal byte"; quoted text follows the server's escaping (nginx writes `"` as `\x22`, Apache
//! as `\"`). The result is an ordinary regex plus field types, so it runs on the same splitter or
//! DFA as a hand-written pattern. An nginx `escape=json` template compiles to a JSON mapping.

use std::collections::BTreeMap;

use indexmap::IndexMap;

use super::{FieldKind, FieldSpec};

/// A compiled directive: a regex or a JSON mapping, and the field types.
pub type Compiled = (
    Option<String>,
    Option<IndexMap<String, String>>,
    BTreeMap<String, FieldSpec>,
);

/// An element of a directive.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    Literal(String),
    /// A variable: its name and, for Apache, the `{argument}`.
    Var(String, Option<String>),
}

/// What a variable becomes: its regex (empty: "up to the next literal byte"), and the field it
/// fills.
pub(crate) struct Field {
    pub(crate) regex: String,
    pub(crate) spec: Option<FieldSpec>,
    pub(crate) column: String,
}

impl Field {
    /// A field of `regex` filling `column`, typed when `kind` is given.
    pub(crate) fn new(regex: &str, kind: Option<FieldKind>, column: &str) -> Field {
        Field {
            regex: regex.to_string(),
            spec: kind.map(|k| FieldSpec::to(k, column)),
            column: column.to_string(),
        }
    }
}

const REMOTE_LIST: &str = r#"[^ ,"]+(?:(?:, | )[0-9A-Fa-f:.][^ ,"]*)*"#;
const UPSTREAM_TIMES: &str = r"(?:[0-9.]+|-)(?:(?:, | : )(?:[0-9.]+|-))*";
const UPSTREAM_LIST: &str = r"[^ ,]+(?:(?:, | : )[^ ,]+)*";
const STATUS_LIST: &str = r"(?:\d{3}|-)(?:(?:, | : )(?:\d{3}|-))*";
const CLF_TIME: &str = r"\d{1,2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2}(?:\.\d+)? [+-]\d{4}";
const UNQUOTED_REQUEST: &str = r"[A-Za-z]+ \S+(?: HTTP/[0-9.]+)?";
const ISO_TIME: &str = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})";

pub(crate) fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        format!("f_{out}")
    } else {
        out
    }
}

/// Strips `log_format NAME [escape=...]` and joins the quoted parts, as nginx reads them.
fn nginx_body(text: &str) -> (String, bool) {
    let t = text.trim().trim_end_matches(';').trim();
    let Some(rest) = t.strip_prefix("log_format") else {
        return (t.to_string(), false);
    };
    let mut json = false;
    let mut body = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                while let Some(d) = chars.next() {
                    if d == c {
                        break;
                    }
                    if d == '\\' {
                        if let Some(e) = chars.next() {
                            body.push(e);
                        }
                    } else {
                        body.push(d);
                    }
                }
            }
            c if c.is_whitespace() => {}
            _ => {
                let mut word = String::from(c);
                while let Some(d) = chars.peek().copied().filter(|d| !d.is_whitespace()) {
                    word.push(d);
                    chars.next();
                }
                if word == "escape=json" {
                    json = true;
                }
            }
        }
    }
    (body, json)
}

fn nginx_tokens(body: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let b = body.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let (name, next) = if b.get(i + 1) == Some(&b'{') {
                match body[i + 2..].find('}') {
                    Some(end) => (&body[i + 2..i + 2 + end], i + 3 + end),
                    None => ("", i + 1),
                }
            } else {
                let n = b[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .count();
                (&body[i + 1..i + 1 + n], i + 1 + n)
            };
            if !name.is_empty() {
                if !lit.is_empty() {
                    out.push(Token::Literal(std::mem::take(&mut lit)));
                }
                out.push(Token::Var(name.to_string(), None));
                i = next;
                continue;
            }
        }
        let ch = body[i..].chars().next().expect("inside the string");
        lit.push(ch);
        i += ch.len_utf8();
    }
    if !lit.is_empty() {
        out.push(Token::Literal(lit));
    }
    out
}

fn nginx_field(name: &str) -> Field {
    let f = Field::new;
    use FieldKind::*;
    match name {
        "remote_addr" | "realip_remote_addr" | "binary_remote_addr" => {
            f(REMOTE_LIST, Some(Host), "client_ip")
        }
        "remote_user" => f("", None, "user"),
        "time_local" => f(CLF_TIME, Some(Timestamp), "ts"),
        "time_iso8601" => {
            let mut x = f(ISO_TIME, Some(Timestamp), "ts");
            x.spec = x.spec.map(|mut s| {
                s.format = Some("iso8601".into());
                s
            });
            x
        }
        "msec" => {
            let mut x = f(r"\d+(?:\.\d+)?", Some(Timestamp), "ts");
            x.spec = x.spec.map(|mut s| {
                s.format = Some("epoch".into());
                s
            });
            x
        }
        "request" => f("", Some(Request), "request"),
        "request_method" => f("", None, "method"),
        "request_uri" => f("", Some(Uri), "request"),
        "uri" | "document_uri" => f("", None, "path"),
        "args" | "query_string" => f("", None, "query"),
        "server_protocol" => f("", None, "protocol"),
        "status" => f(r"\d{3}", Some(Int), "status"),
        "body_bytes_sent" => f(r"\d+", Some(Int), "bytes"),
        "http_referer" => f("", None, "referer"),
        "http_user_agent" => f("", None, "user_agent"),
        "http_x_forwarded_for" => f("", None, "x_forwarded_for"),
        "host" | "http_host" | "server_name" => f("", None, "vhost"),
        "request_time" => f(r"[0-9.]+", Some(Seconds), "response_time_us"),
        "upstream_response_time" => Field {
            regex: UPSTREAM_TIMES.into(),
            spec: Some(FieldSpec {
                kind: SecondsSum,
                format: None,
                column: Some("upstream_response_time_us".into()),
                raw: Some("upstream_response_time".into()),
            }),
            column: "upstream_response_time_us".into(),
        },
        "upstream_connect_time"
        | "upstream_header_time"
        | "upstream_response_length"
        | "upstream_bytes_received"
        | "upstream_bytes_sent" => f(UPSTREAM_TIMES, None, name),
        "upstream_addr" | "upstream_cache_status" => f(UPSTREAM_LIST, None, name),
        "upstream_status" => f(STATUS_LIST, None, name),
        "request_id" | "req_id" => f(r"[0-9A-Fa-f-]+", None, name),
        "bytes_sent" | "request_length" | "connection" | "connection_requests" | "pid" => {
            f(r"\d+", None, name)
        }
        other => f("", None, &snake(other)),
    }
}

/// Compiles an nginx `log_format` (see the module docs).
pub fn nginx(text: &str) -> Result<Compiled, String> {
    let (body, json) = nginx_body(text);
    if json || body.trim_start().starts_with('{') {
        return nginx_json(&body);
    }
    let tokens = nginx_tokens(&body);
    compile(&tokens, |name, _| nginx_field(name), Quoting::Nginx)
}

/// An `escape=json` template: `{"key":"$var", "n":$var, ...}` becomes a JSON mapping.
fn nginx_json(body: &str) -> Result<Compiled, String> {
    let mut map = IndexMap::new();
    let mut fields = BTreeMap::new();
    let mut rest = body.trim();
    rest = rest
        .strip_prefix('{')
        .ok_or("a JSON log_format must start with {")?;
    while let Some(kstart) = rest.find('"') {
        let kend = rest[kstart + 1..]
            .find('"')
            .ok_or("unterminated JSON key")?
            + kstart
            + 1;
        let key = &rest[kstart + 1..kend];
        let after = rest[kend + 1..]
            .trim_start()
            .strip_prefix(':')
            .ok_or("a JSON key must be followed by :")?;
        let after = after.trim_start();
        let (value, next) = match after.strip_prefix('"') {
            Some(v) => {
                let end = v.find('"').ok_or("unterminated JSON value")?;
                (&v[..end], &v[end + 1..])
            }
            None => {
                let end = after.find([',', '}']).unwrap_or(after.len());
                (after[..end].trim(), &after[end..])
            }
        };
        if let [Token::Var(var, _)] = nginx_tokens(value).as_slice() {
            let field = nginx_field(var);
            let group = snake(var);
            map.insert(group.clone(), key.to_string());
            let spec = field
                .spec
                .unwrap_or_else(|| FieldSpec::to(FieldKind::String, &field.column));
            fields.insert(
                group,
                FieldSpec {
                    column: Some(field.column),
                    ..spec
                },
            );
        }
        rest = next;
    }
    if map.is_empty() {
        return Err("the JSON log_format has no \"key\":\"$variable\" pairs".into());
    }
    Ok((None, Some(map), fields))
}

/// How quoted text is escaped by the server.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Quoting {
    /// `"` is written as `\x22`.
    Nginx,
    /// `"` is written as `\"`, `\` as `\\`.
    Apache,
}

/// `[^X\n]*`: anything up to byte `b`.
pub(crate) fn class_until(b: u8) -> String {
    match b {
        b'\\' | b']' | b'^' | b'-' | b'[' => format!(r"[^\{}\n]*", b as char),
        0x20..=0x7e => format!(r"[^{}\n]*", b as char),
        _ => format!(r"[^\x{{{b:02X}}}\n]*"),
    }
}

pub(crate) fn compile(
    tokens: &[Token],
    field_of: impl Fn(&str, Option<&str>) -> Field,
    quoting: Quoting,
) -> Result<Compiled, String> {
    if !tokens.iter().any(|t| matches!(t, Token::Var(..))) {
        return Err("the directive has no variables".into());
    }
    let mut regex = String::from("^");
    let mut fields = BTreeMap::new();
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    for (i, tok) in tokens.iter().enumerate() {
        match tok {
            Token::Literal(l) => regex.push_str(&regex_syntax::escape(l)),
            Token::Var(name, arg) => {
                let field = field_of(name, arg.as_deref());
                let next = match tokens.get(i + 1) {
                    Some(Token::Literal(l)) => l.as_bytes().first().copied(),
                    _ => None,
                };
                let quoted = matches!(i.checked_sub(1).map(|p| &tokens[p]), Some(Token::Literal(l)) if l.ends_with('"'))
                    && next == Some(b'"');
                // $time_local in brackets (as almost always): "up to ]" is cheaper than its shape,
                // and the timestamp parser checks the shape anyway.
                let bracketed_time = name == "time_local" && next == Some(b']');
                let body = if field.regex == REMOTE_LIST {
                    remote_list_until(next)
                } else if !field.regex.is_empty() && !bracketed_time {
                    field.regex.clone()
                } else if quoted && quoting == Quoting::Apache {
                    r#"(?:[^"\\]|\\.)*"#.to_string()
                } else if !quoted && field.column == "request" {
                    // An unquoted request line has its own spaces (`%t %a %r %s`).
                    UNQUOTED_REQUEST.to_string()
                } else {
                    match next {
                        Some(b) => class_until(b),
                        None if i + 1 == tokens.len() => r"[^\n]*".to_string(),
                        None => r"\S*".to_string(),
                    }
                };
                // A field may appear twice (e.g. %h twice): later ones get numbered groups.
                let base = snake(&field.column);
                let n = used.entry(base.clone()).or_insert(0);
                *n += 1;
                let group = if *n == 1 { base } else { format!("{base}_{n}") };
                if field.spec.is_some() || group != field.column {
                    let spec = field
                        .spec
                        .unwrap_or_else(|| FieldSpec::to(FieldKind::String, &field.column));
                    fields.insert(group.clone(), spec);
                }
                regex.push_str(&format!("(?P<{group}>{body})"));
            }
        }
    }
    regex.push('$');
    Ok((Some(regex), None, fields))
}

/// [`REMOTE_LIST`], its entries also ending at `next` (`[Client $remote_addr]`), so that the list
/// stops where the format goes on.
fn remote_list_until(next: Option<u8>) -> String {
    match next {
        Some(b) if !matches!(b, b' ' | b',' | b'"') && b.is_ascii() => {
            let stop = regex_syntax::escape(&char::from(b).to_string());
            format!(r#"[^ ,"{stop}]+(?:(?:, | )[0-9A-Fa-f:.][^ ,"{stop}]*)*"#)
        }
        _ => REMOTE_LIST.to_string(),
    }
}

/// Strips `LogFormat "..." nickname` and undoes the configuration file's escapes.
fn apache_body(text: &str) -> String {
    let t = text.trim();
    let inner = match t.strip_prefix("LogFormat") {
        Some(rest) => {
            let rest = rest.trim_start();
            match rest.strip_prefix('"') {
                Some(r) => {
                    let mut out = String::new();
                    let mut chars = r.chars();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some(e) = chars.next() {
                                    out.push('\\');
                                    out.push(e);
                                }
                            }
                            '"' => break,
                            _ => out.push(c),
                        }
                    }
                    out
                }
                None => rest.to_string(),
            }
        }
        None => t.to_string(),
    };
    inner.replace("\\\"", "\"").replace("\\t", "\t")
}

pub(crate) fn apache_tokens(body: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            lit.push('%');
            continue;
        }
        // Modifiers: status conditions (!400,501), < and > (original or final request).
        while chars
            .peek()
            .is_some_and(|m| matches!(m, '!' | ',' | '<' | '>') || m.is_ascii_digit())
        {
            chars.next();
        }
        let mut arg = None;
        if chars.peek() == Some(&'{') {
            chars.next();
            let mut a = String::new();
            for d in chars.by_ref() {
                if d == '}' {
                    break;
                }
                a.push(d);
            }
            arg = Some(a);
        }
        let Some(letter) = chars.next() else {
            return Err("the directive ends with a lone %".into());
        };
        if !lit.is_empty() {
            out.push(Token::Literal(std::mem::take(&mut lit)));
        }
        out.push(Token::Var(letter.to_string(), arg));
    }
    if !lit.is_empty() {
        out.push(Token::Literal(lit));
    }
    Ok(out)
}

/// A regex for an Apache `%{...}t` strftime layout, and the layout for the timestamp parser.
fn strftime_regex(layout: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = layout.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push_str(&regex_syntax::escape(&c.to_string()));
            continue;
        }
        out.push_str(match chars.next()? {
            'Y' => r"\d{4}",
            'm' | 'd' | 'H' | 'M' | 'S' => r"\d{2}",
            'e' => r" ?\d{1,2}",
            'b' | 'h' | 'a' => r"[A-Za-z]{3}",
            'T' => r"\d{2}:\d{2}:\d{2}",
            'z' => r"[+-]\d{4}",
            'f' => r"\d+",
            '%' => "%",
            _ => return None,
        });
    }
    Some(out)
}

pub(crate) fn apache_field(letter: &str, arg: Option<&str>) -> Field {
    let f = Field::new;
    use FieldKind::*;
    let header = arg.map(|a| a.to_ascii_lowercase());
    match (letter, header.as_deref()) {
        ("h" | "a", _) => f(r"\S+", Some(Host), "client_ip"),
        ("l", _) => f(r"\S+", None, "ident"),
        ("u", _) => f(r"\S+", None, "user"),
        ("t", None) => f(r"\[[^\]]*\]", Some(Timestamp), "ts"),
        ("t", Some(_)) => {
            let layout = arg
                .unwrap_or_default()
                .trim_start_matches("begin:")
                .trim_start_matches("end:");
            let (regex, format) = match layout {
                "sec" => (r"\d+".to_string(), "epoch".to_string()),
                "msec" => (r"\d+".to_string(), "epoch_ms".to_string()),
                "usec" | "msec_frac" | "usec_frac" => {
                    return f(r"\d+", None, &snake(&format!("time_{layout}")));
                }
                _ => match strftime_regex(layout) {
                    Some(r) => (r, layout.to_string()),
                    None => {
                        return f(
                            "",
                            None,
                            &snake(&format!("time_{}", header.unwrap_or_default())),
                        );
                    }
                },
            };
            Field {
                regex,
                spec: Some(FieldSpec {
                    kind: Timestamp,
                    format: Some(format),
                    column: Some("ts".into()),
                    raw: None,
                }),
                column: "ts".into(),
            }
        }
        ("r", _) => f("", Some(Request), "request"),
        ("m", _) => f(r"\S+", None, "method"),
        ("U", _) => f("", None, "path"),
        ("q", _) => f(r#"(?:\?[^ "]*)?"#, None, "query"),
        ("H", _) => f(r"\S+", None, "protocol"),
        ("s", _) => f(r"\d{3}|-", Some(Int), "status"),
        ("b", _) => f(r"\d+|-", Some(Int), "bytes"),
        ("B", _) => f(r"\d+", Some(Int), "bytes"),
        ("O", _) => f(r"\d+|-", None, "bytes_sent"),
        ("I", _) => f(r"\d+|-", None, "bytes_received"),
        ("S", _) => f(r"\d+|-", None, "bytes_transferred"),
        ("D", _) => f(r"\d+", Some(Micros), "response_time_us"),
        ("T", None | Some("s")) => f(r"\d+", Some(Seconds), "response_time_us"),
        ("T", Some("ms")) => f(r"\d+", Some(Millis), "response_time_us"),
        ("T", Some("us")) => f(r"\d+", Some(Micros), "response_time_us"),
        ("v" | "V", _) => f("", None, "vhost"),
        ("p", None | Some("canonical") | Some("local")) => f(r"\d+", None, "port"),
        ("p", Some("remote")) => f(r"\d+", None, "remote_port"),
        ("i", Some("referer")) => f("", None, "referer"),
        ("i", Some("user-agent")) => f("", None, "user_agent"),
        ("i", Some("x-forwarded-for")) => f("", None, "x_forwarded_for"),
        ("i", Some("host")) => f("", None, "vhost"),
        ("i", Some(h)) => f("", None, &snake(&format!("header_{h}"))),
        ("o", Some(h)) => f("", None, &snake(&format!("resp_{h}"))),
        ("e", Some(v)) => f("", None, &snake(&format!("env_{v}"))),
        ("n", Some(v)) => f("", None, &snake(&format!("note_{v}"))),
        ("C", Some(v)) => f("", None, &snake(&format!("cookie_{v}"))),
        ("X", _) => f(r"[X+-]", None, "conn_status"),
        ("k", _) => f(r"\d+", None, "keepalive_requests"),
        ("L", _) => f(r"\S+", None, "log_id"),
        ("P", None | Some("pid")) => f(r"\d+", None, "pid"),
        ("P", Some(_)) => f(r"\S+", None, "tid"),
        ("A", _) => f(r"\S+", None, "server_ip"),
        ("f", _) => f("", None, "filename"),
        ("R", _) => f("", None, "handler"),
        (other, _) => f("", None, &snake(&format!("apache_{other}"))),
    }
}

/// Compiles an Apache `LogFormat` (see the module docs).
pub fn apache(text: &str) -> Result<Compiled, String> {
    let body = apache_body(text);
    let tokens = apache_tokens(&body)?;
    apache_like(&tokens, apache_field)
}

/// Compiles the tokens of an Apache-style directive (Apache, Tomcat, Jetty) whose `%t` includes
/// its brackets and whose `%q` includes its `?`.
pub(crate) fn apache_like(
    tokens: &[Token],
    field_of: impl Fn(&str, Option<&str>) -> Field,
) -> Result<Compiled, String> {
    let (regex, json, mut fields) = compile(tokens, field_of, Quoting::Apache)?;
    let mut regex = regex.expect("a regex directive");
    // %t includes its brackets: capture inside them.
    regex = regex.replace(r"(?P<ts>\[[^\]]*\])", r"\[(?P<ts>[^\]]*)\]");
    // %q includes its `?`: capture after it.
    regex = regex.replace(r#"(?P<query>(?:\?[^ "]*)?)"#, r#"(?:\?(?P<query>[^ "]*))?"#);
    if let Some(ts) = fields.get_mut("ts")
        && ts.format.is_none()
    {
        ts.format = Some("clf".into());
    }
    Ok((Some(regex), json, fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_combined_directive() {
        let (re, _, fields) = nginx(
            r#"log_format combined '$remote_addr - $remote_user [$time_local] '
                    '"$request" $status $body_bytes_sent '
                    '"$http_referer" "$http_user_agent"';"#,
        )
        .unwrap();
        let re = re.unwrap();
        assert!(re.starts_with(r"^(?P<client_ip>"), "{re}");
        assert!(re.contains(r#""(?P<request>[^"\n]*)""#), "{re}");
        assert!(re.ends_with(r#""(?P<user_agent>[^"\n]*)"$"#), "{re}");
        assert_eq!(fields["ts"].kind, FieldKind::Timestamp);
        assert_eq!(fields["bytes"].kind, FieldKind::Int);
    }

    #[test]
    fn nginx_json_template() {
        let (re, map, fields) = nginx(
            r#"log_format j escape=json '{"time":"$time_iso8601","ip":"$remote_addr","st":$status,"rt":"$request_time","ua":"$http_user_agent"}';"#,
        )
        .unwrap();
        assert!(re.is_none());
        let map = map.unwrap();
        assert_eq!(map["time_iso8601"], "time");
        assert_eq!(map["status"], "st");
        assert_eq!(fields["time_iso8601"].column.as_deref(), Some("ts"));
        assert_eq!(fields["request_time"].kind, FieldKind::Seconds);
    }

    #[test]
    fn apache_directives() {
        let (re, _, fields) = apache(r#"LogFormat "%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"" vhost_combined"#).unwrap();
        let re = re.unwrap();
        assert!(
            re.starts_with(r"^(?P<vhost>[^:\n]*):(?P<port>\d+) (?P<client_ip>\S+)"),
            "{re}"
        );
        assert!(re.contains(r"\[(?P<ts>[^\]]*)\]"), "{re}");
        assert!(re.contains(r#""(?P<request>(?:[^"\\]|\\.)*)""#), "{re}");
        assert_eq!(fields["ts"].format.as_deref(), Some("clf"));
        let (re, _, fields) =
            apache(r#"%h %{%Y-%m-%d %H:%M:%S}t %U%q %D %{X-Request-Id}i"#).unwrap();
        let re = re.unwrap();
        assert!(
            re.contains(r"(?P<ts>\d{4}\-\d{2}\-\d{2} \d{2}:\d{2}:\d{2})"),
            "{re}"
        );
        assert!(re.contains(r"(?:\?(?P<query>"), "{re}");
        assert!(re.contains("(?P<header_x_request_id>"), "{re}");
        assert_eq!(fields["ts"].format.as_deref(), Some("%Y-%m-%d %H:%M:%S"));
        assert_eq!(fields["response_time_us"].kind, FieldKind::Micros);
    }

    #[test]
    fn directives_without_variables_are_refused() {
        assert!(nginx("just text").is_err());
        assert!(apache("%").is_err());
    }
}
