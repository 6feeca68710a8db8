//! W3C extended log files (IIS, AWS CloudFront standard logs): the columns are declared by a
//! `#Fields:` header in the file.
//!
//! The header is read from the start of each input and compiled into an ordinary regex with typed
//! fields (`date time` together form the timestamp, UTC by the format's definition). IIS separates
//! fields by spaces and logs `time-taken` in milliseconds; CloudFront separates them by tabs (a
//! field may then be empty) and logs it in seconds, so the separator of the first data line and
//! CloudFront's `x-edge-*` fields decide both. Lines starting with `#` are directives, skipped as
//! comments.

use std::collections::BTreeMap;

use super::{FieldKind, FieldSpec};

fn column_of(field: &str, seconds: bool) -> (Option<FieldKind>, String) {
    use FieldKind::*;
    let lower = field.to_ascii_lowercase();
    match lower.as_str() {
        "time-taken" if seconds => (Some(Seconds), "response_time_us".into()),
        "cs-protocol-version" => (None, "protocol".into()),
        "c-ip" => (Some(Host), "client_ip".into()),
        "cs-username" => (None, "user".into()),
        "cs-method" => (None, "method".into()),
        "cs-uri-stem" => (None, "path".into()),
        "cs-uri-query" => (None, "query".into()),
        "cs-uri" => (Some(Uri), "request".into()),
        "sc-status" => (Some(Int), "status".into()),
        "sc-bytes" => (Some(Int), "bytes".into()),
        "time-taken" => (Some(Millis), "response_time_us".into()),
        "cs(user-agent)" => (None, "user_agent".into()),
        "cs(referer)" | "cs(referrer)" => (None, "referer".into()),
        "cs-host" | "cs(host)" => (None, "vhost".into()),
        "cs-version" => (None, "protocol".into()),
        "cs(x-forwarded-for)" | "x-forwarded-for" => (None, "x_forwarded_for".into()),
        _ => {
            let mut name: std::string::String = lower
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            name = name.trim_matches('_').replace("__", "_");
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                name = format!("w3c_{name}");
            }
            (None, name)
        }
    }
}

/// Builds the regex and fields of the `#Fields:` line found in `head`.
pub fn from_head(head: &[u8]) -> Result<(String, BTreeMap<String, FieldSpec>), String> {
    let text = String::from_utf8_lossy(head);
    let line = text
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("#Fields:"))
        .ok_or(
            "no `#Fields:` header at the start of the file; a W3C log declares its columns there",
        )?;
    let names: Vec<&str> = line.split_whitespace().collect();
    let tabs = text
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .is_some_and(|l| l.contains('\t'));
    let seconds = tabs || names.iter().any(|n| n.starts_with("x-edge-"));
    let (sep, field, ts_re, ts_format) = if tabs {
        (
            r"\t",
            r"[^\t]*",
            r"\d{4}-\d{2}-\d{2}\t\d{2}:\d{2}:\d{2}",
            "%Y-%m-%d\t%H:%M:%S",
        )
    } else {
        (
            " ",
            r"\S+",
            r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?",
            "iso8601",
        )
    };
    let mut regex = String::from("^");
    let mut fields = BTreeMap::new();
    let mut i = 0;
    while i < names.len() {
        if i > 0 {
            regex.push_str(sep);
        }
        let name = names[i].to_ascii_lowercase();
        if name == "date"
            && names
                .get(i + 1)
                .is_some_and(|n| n.eq_ignore_ascii_case("time"))
        {
            regex.push_str(&format!("(?P<ts>{ts_re})"));
            fields.insert(
                "ts".to_string(),
                FieldSpec {
                    kind: FieldKind::Timestamp,
                    format: Some(ts_format.into()),
                    column: None,
                    raw: None,
                },
            );
            i += 2;
            continue;
        }
        if name == "date" || name == "time" {
            return Err("`date` and `time` must be adjacent in #Fields (date first)".into());
        }
        let (kind, column) = column_of(names[i], seconds);
        let group = format!("f{i}");
        regex.push_str(&format!(r"(?P<{group}>{field})"));
        fields.insert(
            group,
            FieldSpec::to(kind.unwrap_or(FieldKind::String), &column),
        );
        i += 1;
    }
    regex.push('$');
    Ok((regex, fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iis_header() {
        let head = b"#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n#Date: 2024-01-01 00:00:00\r\n#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken\r\n";
        let (re, fields) = from_head(head).unwrap();
        assert!(re.starts_with(r"^(?P<ts>\d{4}"), "{re}");
        assert_eq!(fields["f2"].column.as_deref(), Some("s_ip"));
        assert_eq!(fields["f14"].kind, FieldKind::Millis);
        assert!(from_head(b"no header").is_err());
        assert!(from_head(b"#Fields: time date c-ip").is_err());
    }

    #[test]
    fn cloudfront_header_with_tabs() {
        let head = b"#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status time-taken cs-protocol-version\n2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\td111111abcdef8.cloudfront.net\t/index.html\t200\t0.001\tHTTP/1.1\n";
        let (re, fields) = from_head(head).unwrap();
        assert!(re.contains(r"\t"), "{re}");
        assert!(!re.contains(' '), "{re}");
        assert_eq!(fields["f9"].kind, FieldKind::Seconds);
        assert_eq!(fields["f10"].column.as_deref(), Some("protocol"));
        assert_eq!(fields["ts"].format.as_deref(), Some("%Y-%m-%d\t%H:%M:%S"));
    }
}
