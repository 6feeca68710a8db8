//! Tomcat `AccessLogValve` patterns and Jetty `CustomRequestLog` formats, compiled like Apache's
//! `LogFormat` (whose syntax both borrow) in [`super::directive`].
//!
//! Both servers take Apache's `%h %l %u %t "%r" %s %b` and `%{Header}i`, and differ from it
//! elsewhere: Tomcat's `%S` is the session id, `%I` the thread name, `%F` the time to commit the
//! response, `%{x}c` a cookie, `%{x}r` / `%{x}s` request and session attributes; Jetty's
//! `%{client}a` is the client, `%O` the response size, and its `%t` is always in brackets. Their
//! `%{...}t` layouts are Java date patterns (`yyyy-MM-dd HH:mm:ss.SSS`), translated here to the
//! strftime layout the timestamp parser reads. A pattern may be pasted as it stands in the server's
//! XML configuration (`<Valve ... pattern="%h &quot;%r&quot;"/>`), and the aliases (Tomcat's
//! `common` and `combined`, Jetty's `NCSA_FORMAT` and `EXTENDED_NCSA_FORMAT`) are expanded.
//! Tomcat 10.0 changed `%D` from milliseconds to microseconds, so the Tomcat version picks its
//! unit.

use regex_syntax::escape;

use super::FieldKind;
use super::directive::{Compiled, Field, Token, apache_field, apache_like, apache_tokens, snake};

const TOMCAT_COMMON: &str = r#"%h %l %u %t "%r" %s %b"#;
const TOMCAT_COMBINED: &str = r#"%h %l %u %t "%r" %s %b "%{Referer}i" "%{User-Agent}i""#;
const JETTY_NCSA: &str = r#"%{client}a - %u %t "%r" %s %O"#;
const JETTY_EXTENDED_NCSA: &str = r#"%{client}a - %u %t "%r" %s %O "%{Referer}i" "%{User-Agent}i""#;

/// The first Tomcat major version that logs `%D` in microseconds (earlier ones: milliseconds).
pub const TOMCAT_MICROS_D: u32 = 10;

/// Compiles a Tomcat `AccessLogValve` pattern; `version` is Tomcat's major version (the current
/// one when `None`).
pub fn tomcat(text: &str, version: Option<u32>) -> Result<Compiled, String> {
    let pattern = xml_unescape(valve_pattern(text.trim()));
    let pattern = match pattern.trim() {
        "common" => TOMCAT_COMMON,
        "combined" => TOMCAT_COMBINED,
        p => p,
    };
    let micros = version.is_none_or(|v| v >= TOMCAT_MICROS_D);
    let tokens = apache_tokens(pattern)?;
    apache_like(&tokens, |letter, arg| tomcat_field(letter, arg, micros))
}

/// Compiles a Jetty `CustomRequestLog` format string.
pub fn jetty(text: &str) -> Result<Compiled, String> {
    let text = text.trim();
    let text = text
        .strip_prefix("jetty.requestlog.formatString=")
        .unwrap_or(text);
    let pattern = xml_unescape(text);
    let pattern = match pattern.trim() {
        "NCSA_FORMAT" => JETTY_NCSA,
        "EXTENDED_NCSA_FORMAT" => JETTY_EXTENDED_NCSA,
        p => p,
    };
    let tokens = bracket_times(apache_tokens(pattern)?);
    apache_like(&tokens, jetty_field)
}

/// The `pattern` attribute of a pasted `<Valve .../>` element, or the text itself.
fn valve_pattern(text: &str) -> &str {
    if !text.starts_with('<') {
        return text;
    }
    let attr = text.match_indices("pattern=").find(|(i, _)| {
        text[..*i]
            .chars()
            .next_back()
            .is_some_and(char::is_whitespace)
    });
    let Some((i, key)) = attr else {
        return text;
    };
    let value = &text[i + key.len()..];
    match value.chars().next() {
        Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or_default(),
        _ => value.split_whitespace().next().unwrap_or_default(),
    }
}

/// Decodes the XML entities a pattern carries inside an XML attribute or element.
fn xml_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    text.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Jetty writes `[` and `]` around every `%t`, with or without a layout.
fn bracket_times(tokens: Vec<Token>) -> Vec<Token> {
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        match t {
            Token::Var(ref name, Some(_)) if name == "t" => {
                out.push(Token::Literal("[".into()));
                out.push(t);
                out.push(Token::Literal("]".into()));
            }
            t => out.push(t),
        }
    }
    out
}

fn tomcat_field(letter: &str, arg: Option<&str>, micros_d: bool) -> Field {
    use FieldKind::*;
    let f = Field::new;
    match (letter, arg) {
        ("a", None | Some("remote")) => f(r"\S+", Some(Host), "client_ip"),
        ("a", Some(_)) => f(r"\S+", None, "peer_ip"),
        ("p", Some("remote")) => f(r"\d+", None, "remote_port"),
        ("p", _) => f(r"\d+", None, "port"),
        ("S", _) => f(r"\S+", None, "session_id"),
        ("I", _) => f("", None, "thread"),
        ("F", _) => f(r"\d+", None, "commit_time_ms"),
        ("D", _) if micros_d => f(r"\d+", Some(Micros), "response_time_us"),
        ("D", _) => f(r"\d+", Some(Millis), "response_time_us"),
        ("T", None | Some("s" | "fractional")) => f(SECONDS, Some(Seconds), "response_time_us"),
        ("c", Some(name)) => f("", None, &snake(&format!("cookie_{name}"))),
        ("r", Some(name)) => f("", None, &snake(&format!("attr_{name}"))),
        ("s", Some(name)) => f("", None, &snake(&format!("session_{name}"))),
        ("t", Some(layout)) => java_time(layout),
        _ => apache_field(letter, arg),
    }
}

fn jetty_field(letter: &str, arg: Option<&str>) -> Field {
    use FieldKind::*;
    let f = Field::new;
    match (letter, arg) {
        ("a", Some("client" | "remote")) => f(r"\S+", Some(Host), "client_ip"),
        ("a", _) => f(r"\S+", None, "server_ip"),
        ("p", Some("client" | "remote")) => f(r"\d+", None, "remote_port"),
        ("p", _) => f(r"\d+", None, "port"),
        ("O", _) => f(r"\d+|-", Some(Int), "bytes"),
        ("T", None | Some("s")) => f(SECONDS, Some(Seconds), "response_time_us"),
        ("t", Some(layout)) => java_time(layout),
        _ => apache_field(letter, arg),
    }
}

/// Whole or decimal seconds (Tomcat 7 writes `%T` as `0.004`).
const SECONDS: &str = r"\d+(?:\.\d+)?";

/// A `%{...}t` field: Tomcat's `sec`, `msec`, `msec_frac` and `begin:` / `end:` prefixes, Jetty's
/// `layout|timezone|locale`, otherwise a Java date layout.
fn java_time(arg: &str) -> Field {
    let layout = arg.trim_start_matches("begin:").trim_start_matches("end:");
    let layout = layout.split('|').next().unwrap_or_default();
    let (regex, format) = match layout {
        "sec" => (r"\d+".to_string(), "epoch".to_string()),
        "msec" => (r"\d+".to_string(), "epoch_ms".to_string()),
        _ => match java_layout(layout) {
            Some(translated) => translated,
            None => return Field::new("", None, &snake(&format!("time_{layout}"))),
        },
    };
    let mut field = Field::new(&regex, Some(FieldKind::Timestamp), "ts");
    if let Some(spec) = field.spec.as_mut() {
        spec.format = Some(format);
    }
    field
}

/// A regex and a strftime layout for a Java `SimpleDateFormat` / `DateTimeFormatter` layout, or
/// `None` when it uses something the timestamp parser cannot read back (12-hour clock, zone
/// names, two-digit years) or has no year.
fn java_layout(layout: &str) -> Option<(String, String)> {
    let mut pieces: Vec<(String, String)> = Vec::new();
    let chars: Vec<char> = layout.chars().collect();
    let mut year = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted text; `''` is a quote, inside quotes or out.
            i += 1;
            let mut text = String::new();
            if chars.get(i) == Some(&'\'') {
                text.push('\'');
                i += 1;
            } else {
                loop {
                    match chars.get(i) {
                        None => return None,
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
            }
            pieces.push(literal(&text));
            continue;
        }
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        i += run;
        let piece = |regex: &str, spec: &str| (regex.to_string(), spec.to_string());
        let next = match (c, run) {
            ('y' | 'u', 4) => {
                year = true;
                piece(r"\d{4}", "%Y")
            }
            ('M', 1 | 2) => piece(r"\d{1,2}", "%m"),
            ('M', 3) => piece("[A-Za-z]{3}", "%b"),
            ('d', 1 | 2) => piece(r"\d{1,2}", "%d"),
            ('H', 1 | 2) => piece(r"\d{1,2}", "%H"),
            ('m', 1 | 2) => piece(r"\d{1,2}", "%M"),
            ('s', 1 | 2) => piece(r"\d{1,2}", "%S"),
            ('S', _) => {
                // Milliseconds come after `.` or `,`, which %f reads with them.
                pieces.pop().filter(|(_, s)| s == "." || s == ",")?;
                piece(r"[.,]\d+", "%f")
            }
            ('Z' | 'X' | 'x', 1..=3) => piece(r"Z|[+-]\d{2}:?\d{2}", "%z"),
            ('E', 1..=3) => piece("[A-Za-z]{3}", "%a"),
            (c, _) if c.is_ascii_alphabetic() => return None,
            (c, n) => literal(&c.to_string().repeat(n)),
        };
        pieces.push(next);
    }
    if !year {
        return None;
    }
    let regex = pieces
        .iter()
        .map(|(r, _)| format!("(?:{r})"))
        .collect::<String>();
    Some((regex, pieces.into_iter().map(|(_, s)| s).collect()))
}

/// Literal text of a date layout: escaped for the regex, `%` doubled for strftime.
fn literal(text: &str) -> (String, String) {
    (escape(text), text.replace('%', "%%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regex(c: &Compiled) -> &str {
        c.0.as_deref().unwrap()
    }

    #[test]
    fn valve_elements_and_aliases_are_unwrapped() {
        let element = r#"<Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs"
               prefix="localhost_access_log" suffix=".txt"
               pattern="%h %l %u %t &quot;%r&quot; %s %b" />"#;
        let from_element = tomcat(element, None).unwrap();
        assert_eq!(
            regex(&from_element),
            regex(&tomcat("common", None).unwrap())
        );
        assert_eq!(
            regex(&from_element),
            regex(&tomcat(r#"%h %l %u %t "%r" %s %b"#, None).unwrap())
        );
        let combined = tomcat("combined", Some(9)).unwrap();
        assert!(regex(&combined).contains("(?P<user_agent>"));
        assert_eq!(
            regex(&jetty("EXTENDED_NCSA_FORMAT").unwrap()),
            regex(&jetty(&JETTY_EXTENDED_NCSA.replace('"', "&quot;")).unwrap())
        );
    }

    #[test]
    fn tomcat_d_unit_follows_the_version() {
        let kind = |v| tomcat("%h %t %D", v).unwrap().2["response_time_us"].kind;
        assert_eq!(kind(None), FieldKind::Micros);
        assert_eq!(kind(Some(11)), FieldKind::Micros);
        assert_eq!(kind(Some(9)), FieldKind::Millis);
        assert_eq!(kind(Some(8)), FieldKind::Millis);
    }

    #[test]
    fn tomcat_letters_differ_from_apache() {
        let (re, _, fields) = tomcat(
            r#"%a %{yyyy-MM-dd HH:mm:ss.SSS}t %S %I %F %{JSESSIONID}c %{user}s %{org.x}r %T"#,
            None,
        )
        .unwrap();
        let re = re.unwrap();
        for group in [
            "session_id",
            "thread",
            "commit_time_ms",
            "cookie_jsessionid",
            "session_user",
            "attr_org_x",
        ] {
            assert!(re.contains(&format!("(?P<{group}>")), "{group}: {re}");
        }
        assert_eq!(fields["ts"].format.as_deref(), Some("%Y-%m-%d %H:%M:%S%f"));
        assert_eq!(fields["response_time_us"].kind, FieldKind::Seconds);
    }

    #[test]
    fn java_layouts() {
        let l = |s| java_layout(s).map(|(_, f)| f);
        assert_eq!(
            l("dd/MMM/yyyy:HH:mm:ss ZZZ").as_deref(),
            Some("%d/%b/%Y:%H:%M:%S %z")
        );
        assert_eq!(
            l("yyyy-MM-dd'T'HH:mm:ss,SSSXXX").as_deref(),
            Some("%Y-%m-%dT%H:%M:%S%f%z")
        );
        assert_eq!(
            l("EEE MMM d HH:mm:ss yyyy").as_deref(),
            Some("%a %b %d %H:%M:%S %Y")
        );
        assert_eq!(l("yy-MM-dd"), None);
        assert_eq!(l("hh:mm a yyyy"), None);
        assert_eq!(l("HH:mm:ss"), None);
        assert_eq!(l("ss SSS yyyy"), None);
        assert_eq!(l("'it''s' yyyy''").as_deref(), Some("it's %Y'"));
    }
}
