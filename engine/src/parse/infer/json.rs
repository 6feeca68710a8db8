//! Inference for JSON lines: each key's values are judged as a text column's are (a time, an
//! address, a request line, a status...), and the key's name decides between keys whose values
//! look alike (a `status` and a `size` are both small integers) and gives the unit of an integer
//! duration (`duration_ms`, `latency_us`).

use std::collections::HashSet;

use indexmap::IndexMap;
use serde_json::Value;

use super::{
    Class, Lex, MIN_INFERRED_RATE, SuggestedColumn, Suggestion, classify, digits, epoch_seconds,
    is_canonical, time_at,
};
use crate::parse::directive::snake;
use crate::parse::{FieldKind, FieldSpec};

/// Keys in fewer of the lines are left out.
const MIN_KEY_SHARE: f64 = 0.2;
/// Objects nested deeper are not looked into.
const MAX_DEPTH: usize = 4;

/// Whether 95% of the lines are JSON objects.
pub(super) fn is_json(lines: &[&[u8]]) -> bool {
    let objects = lines
        .iter()
        .filter(|l| l.trim_ascii().starts_with(b"{"))
        .count();
    !lines.is_empty() && objects as f64 >= lines.len() as f64 * MIN_INFERRED_RATE
}

/// The leaves of `v` by dotted path (`request.remote_ip`); a one-element array counts as its
/// element, `null` as no value; keys holding a dot cannot be addressed and are skipped.
fn flatten(prefix: &str, v: &Value, depth: usize, out: &mut Vec<(String, Option<Vec<u8>>)>) {
    match v {
        Value::Object(m) if depth < MAX_DEPTH => {
            for (k, x) in m {
                if k.is_empty() || k.contains('.') {
                    continue;
                }
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, x, depth + 1, out);
            }
        }
        Value::Array(a) if a.len() == 1 => flatten(prefix, &a[0], depth, out),
        Value::String(s) => out.push((prefix.to_string(), Some(s.as_bytes().to_vec()))),
        // Plain decimal (serde_json writes 5.6e-5 for small floats).
        Value::Number(n) => {
            let text = match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => u.to_string(),
                (_, Some(i), _) => i.to_string(),
                (_, _, Some(f)) => f.to_string(),
                _ => n.to_string(),
            };
            out.push((prefix.to_string(), Some(text.into_bytes())));
        }
        Value::Null => out.push((prefix.to_string(), None)),
        _ => {}
    }
}

/// A key's class from its values (`None`: absent or null).
fn class_of(values: &[Option<Vec<u8>>]) -> Class {
    let vals: Vec<&[u8]> = values
        .iter()
        .map(|v| v.as_deref().unwrap_or(b"-"))
        .collect();
    let given: Vec<&[u8]> = vals.iter().copied().filter(|v| *v != b"-").collect();
    let whole_time = |v: &[u8]| time_at(v).is_some_and(|(_, n)| n == v.len());
    let epoch = |v: &[u8]| epoch_seconds(v) || (v.len() == 13 && digits(v));
    if let Some(first) = given.first() {
        if given.iter().all(|v| whole_time(v)) {
            let (shape, _) = time_at(first).expect("checked");
            return Class::Time(shape.format(first));
        }
        // A logger whose time format was changed mid-file (epoch, then ISO 8601).
        if given.iter().all(|v| whole_time(v) || epoch(v)) && given.iter().any(|v| whole_time(v)) {
            return Class::Time("auto".into());
        }
    }
    let lex = if given.iter().any(|v| v.contains(&b' ')) {
        Lex::Quoted
    } else {
        Lex::Bare
    };
    let status_like = |v: &&[u8]| v.len() == 3 && digits(v) && (b'1'..=b'5').contains(&v[0]);
    match classify(lex, &vals) {
        Class::Word(_) => Class::Text,
        // Servers log 0 for a request that got no response.
        Class::Int if given.iter().filter(|v| status_like(v)).count() * 10 >= given.len() * 9 => {
            Class::Status
        }
        c => c,
    }
}

/// One key of the objects.
struct Key {
    path: String,
    class: Class,
    share: f64,
    distinct: usize,
    example: String,
    role: Option<(&'static str, FieldKind)>,
}

impl Key {
    /// Whether the last part of the path, lowercased, contains one of `words`.
    fn named(&self, words: &[&str]) -> bool {
        let last = self
            .path
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        words.iter().any(|w| last.contains(w))
    }
}

/// Infers a JSON mapping named `name` from `lines`; `None` without a time.
pub(super) fn suggest(name: &str, lines: &[&[u8]]) -> Option<Suggestion> {
    let mut keys = keys_of(lines)?;
    assign_roles(&mut keys);
    keys.iter()
        .find(|k| k.role.is_some_and(|(c, _)| c == "ts"))?;
    let mut map = IndexMap::new();
    let mut fields = std::collections::BTreeMap::new();
    let mut columns = Vec::new();
    let mut used = HashSet::new();
    for k in &keys {
        let field = match k.role {
            Some((column, _)) => column.to_string(),
            None => {
                let base = snake(&k.path);
                let mut f = base.clone();
                let mut n = 2;
                while is_canonical(&f) || used.contains(&f) {
                    f = format!("{base}_{n}");
                    n += 1;
                }
                f
            }
        };
        used.insert(field.clone());
        if let Some((column, kind)) = k.role {
            fields.insert(
                field.clone(),
                FieldSpec {
                    kind,
                    format: match &k.class {
                        // JSON loggers switch between these with a setting: take any of them.
                        Class::Time(f)
                            if ["epoch", "epoch_ms", "iso8601", "clf"].contains(&f.as_str()) =>
                        {
                            Some("auto".into())
                        }
                        Class::Time(f) => Some(f.clone()),
                        _ => None,
                    },
                    column: Some(column.to_string()),
                    raw: None,
                },
            );
        }
        map.insert(field.clone(), k.path.clone());
        columns.push(SuggestedColumn {
            column: field.clone(),
            field: k.path.clone(),
            looks_like: k.class.label().into(),
            example: k.example.clone(),
            optional: k.share < MIN_INFERRED_RATE,
        });
    }
    Some(Suggestion {
        name: name.to_string(),
        regex: None,
        json: Some(map),
        fields,
        time_from_header: false,
        columns,
        nginx: None,
        apache: None,
        matched: 0,
        sampled: 0,
    })
}

/// The keys found in at least [`MIN_KEY_SHARE`] of the objects, in first-seen order.
fn keys_of(lines: &[&[u8]]) -> Option<Vec<Key>> {
    let mut values: IndexMap<String, Vec<Option<Vec<u8>>>> = IndexMap::new();
    let mut objects = 0usize;
    for line in lines {
        let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(line.trim_ascii()) else {
            continue;
        };
        objects += 1;
        let mut leaves = Vec::new();
        flatten("", &v, 0, &mut leaves);
        for (path, value) in leaves {
            values.entry(path).or_default().push(value);
        }
    }
    if objects == 0 {
        return None;
    }
    let keys = values
        .into_iter()
        .filter(|(_, vals)| vals.len() as f64 >= objects as f64 * MIN_KEY_SHARE)
        .map(|(path, vals)| {
            let given: Vec<&Vec<u8>> = vals.iter().flatten().collect();
            Key {
                class: class_of(&vals),
                share: vals.len() as f64 / objects as f64,
                distinct: given.iter().collect::<HashSet<_>>().len(),
                example: given
                    .first()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default(),
                path,
                role: None,
            }
        })
        .collect();
    Some(keys)
}

/// A data-model column and the keys that may fill it.
struct Rule {
    column: &'static str,
    kind: FieldKind,
    fits: fn(&Key) -> bool,
    /// Words of the key names that fit it best, the best first.
    words: &'static [&'static str],
    /// Only a key so named will do (a size is an integer like any other).
    named_only: bool,
}

const RULES: &[Rule] = &[
    Rule {
        column: "ts",
        kind: FieldKind::Timestamp,
        fits: |k| matches!(k.class, Class::Time(_)),
        words: &["time", "ts", "date"],
        named_only: false,
    },
    Rule {
        column: "client_ip",
        kind: FieldKind::Host,
        fits: |k| k.class == Class::Ip,
        words: &["client", "remote", "ip", "addr"],
        named_only: false,
    },
    Rule {
        column: "client_ip",
        kind: FieldKind::HostPort,
        fits: |k| k.class == Class::IpPort,
        words: &["client", "remote", "addr"],
        named_only: false,
    },
    Rule {
        column: "status",
        kind: FieldKind::Int,
        fits: |k| k.class == Class::Status || (k.class == Class::Int && k.named(&["status"])),
        words: &["status", "code"],
        named_only: false,
    },
    Rule {
        column: "bytes",
        kind: FieldKind::Int,
        fits: |k| matches!(k.class, Class::Int | Class::Status),
        words: &["size", "bytes_sent", "bytes", "length", "sent"],
        named_only: true,
    },
    Rule {
        column: "request",
        kind: FieldKind::Request,
        fits: |k| k.class == Class::Request,
        words: &["request"],
        named_only: false,
    },
    Rule {
        column: "method",
        kind: FieldKind::String,
        fits: |k| k.class == Class::Method,
        words: &["method", "verb"],
        named_only: false,
    },
    Rule {
        column: "request",
        kind: FieldKind::Uri,
        fits: |k| k.class == Class::Target,
        words: &["uri", "path", "url"],
        named_only: false,
    },
    Rule {
        column: "protocol",
        kind: FieldKind::String,
        fits: |k| k.class == Class::Protocol,
        words: &["proto"],
        named_only: false,
    },
    Rule {
        column: "referer",
        kind: FieldKind::String,
        fits: |k| k.class == Class::Url,
        words: &["refer"],
        named_only: false,
    },
    // By name only: a content type looks like a product token too.
    Rule {
        column: "user_agent",
        kind: FieldKind::String,
        fits: |k| matches!(k.class, Class::Agent | Class::Text),
        words: &["agent"],
        named_only: true,
    },
    Rule {
        column: "vhost",
        kind: FieldKind::String,
        fits: |k| k.class == Class::Host || (k.class == Class::Text && k.named(&["host"])),
        words: &["host", "server"],
        named_only: false,
    },
];

/// Gives each data-model column to the key that fits it best: by class, then by name (a status
/// key is never one named as a size).
fn assign_roles(keys: &mut [Key]) {
    let time_words = ["duration", "latency", "elapsed", "took", "time", "rt"];
    for rule in RULES {
        if keys
            .iter()
            .any(|k| k.role.is_some_and(|(c, _)| c == rule.column))
        {
            continue;
        }
        let candidates: Vec<usize> = (0..keys.len())
            .filter(|i| {
                let k = &keys[*i];
                k.role.is_none()
                    && (rule.fits)(k)
                    && !(rule.column == "status" && k.named(&["size", "byte", "length"]))
                    && !(rule.column == "bytes"
                        && k.named(&["read", "receiv", "request", "origin"]))
            })
            .collect();
        // The words in their order: `size` before a `bytes_read`.
        let by_name = rule
            .words
            .iter()
            .find_map(|w| candidates.iter().copied().find(|i| keys[*i].named(&[w])));
        let by_values = candidates
            .iter()
            .copied()
            .max_by(|a, b| keys[*a].distinct.cmp(&keys[*b].distinct).then(b.cmp(a)));
        let chosen = if rule.named_only {
            by_name
        } else {
            by_name.or(by_values)
        };
        if let Some(i) = chosen {
            keys[i].role = Some((rule.column, rule.kind));
        }
    }
    for column in ["response_time_us", "upstream_response_time_us"] {
        let upstream = column.starts_with("upstream");
        let found = keys.iter().position(|k| {
            k.role.is_none()
                && k.named(&time_words)
                && k.named(&["upstream", "origin", "backend"]) == upstream
                && duration_kind(k).is_some()
        });
        if let Some(i) = found {
            let kind = duration_kind(&keys[i]).expect("checked");
            keys[i].role = Some((column, kind));
        }
    }
}

/// How a duration key's values convert to µs: decimal seconds or a Go duration by their text, an
/// integer only when the key names its unit.
fn duration_kind(k: &Key) -> Option<FieldKind> {
    match k.class {
        Class::Seconds => Some(FieldKind::Seconds),
        Class::Duration => Some(FieldKind::Duration),
        Class::Int | Class::Status => {
            let last = k.path.rsplit('.').next().unwrap_or_default();
            let lower = last.to_ascii_lowercase();
            if lower.ends_with("ms") || lower.contains("milli") {
                Some(FieldKind::Millis)
            } else if lower.ends_with("us") || lower.contains("micro") {
                Some(FieldKind::Micros)
            } else if lower.ends_with("ns") || lower.contains("nano") {
                Some(FieldKind::Nanos)
            } else {
                None
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_by_their_values_and_names() {
        let text = [
            r#"{"at":"2024-03-01T10:00:00.120Z","peer":{"addr":"10.0.0.1"},"req":"GET /a?x=1 HTTP/1.1","code":200,"size":512,"latency_ms":12,"agent":"curl/8.0","tags":["x"],"ok":true}"#,
            r#"{"at":"2024-03-01T10:00:01.500Z","peer":{"addr":"10.0.0.2"},"req":"POST /b HTTP/1.1","code":404,"size":0,"latency_ms":3,"agent":"Mozilla/5.0 (X11)","tags":["y"],"ok":false}"#,
            r#"{"at":"2024-03-01T10:00:02.000Z","peer":{"addr":"10.0.0.3"},"req":"GET / HTTP/2.0","code":200,"size":4096,"latency_ms":40,"agent":"Go-http-client/2.0","tags":["z"],"ok":true}"#,
        ];
        let lines: Vec<&[u8]> = text.iter().map(|l| l.as_bytes()).collect();
        assert!(is_json(&lines));
        let s = suggest("j", &lines).unwrap();
        let map = s.json.as_ref().unwrap();
        assert_eq!(map["ts"], "at");
        assert_eq!(map["client_ip"], "peer.addr");
        assert_eq!(map["request"], "req");
        assert_eq!(map["status"], "code");
        assert_eq!(map["bytes"], "size");
        assert_eq!(map["response_time_us"], "latency_ms");
        assert_eq!(map["user_agent"], "agent");
        assert_eq!(map["tags"], "tags");
        assert_eq!(s.fields["response_time_us"].kind, FieldKind::Millis);
        assert!(!map.contains_key("ok"), "booleans are not columns");
    }
}
