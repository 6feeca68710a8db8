//! JSON-lines access logs (nginx `escape=json`, Caddy, Traefik JSON): a mapping from field names to
//! dotted paths in each line's object.
//!
//! Each line is decoded with serde_json; the value at each path is written as text into a per-worker
//! arena (strings unescaped, numbers in plain decimal, a one-element array such as Caddy's
//! `headers.User-Agent` taken as its element), and the fields are then typed exactly like the
//! groups of a regex, so JSON and text formats share one conversion path.

use indexmap::IndexMap;
use serde_json::Value;

use super::Span;

/// A compiled mapping: one path per field, in field order.
#[derive(Debug, Clone)]
pub struct Mapping {
    paths: Vec<Vec<String>>,
}

impl Mapping {
    /// Compiles `fields` (field name -> `a.b.c`).
    pub fn new(fields: &IndexMap<String, String>) -> Result<Mapping, String> {
        let mut paths = Vec::with_capacity(fields.len());
        for (name, path) in fields {
            let parts: Vec<String> = path.split('.').map(str::to_string).collect();
            if parts.iter().any(String::is_empty) {
                return Err(format!(
                    "field `{name}`: `{path}` is not a dotted path such as request.remote_ip"
                ));
            }
            paths.push(parts);
        }
        Ok(Mapping { paths })
    }

    /// Decodes `line` and writes each field's text into `arena`, its span into `spans` (one per
    /// field). `false` when the line is not a JSON object.
    pub fn extract(&self, line: &[u8], arena: &mut Vec<u8>, spans: &mut [Option<Span>]) -> bool {
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(line) else {
            return false;
        };
        arena.clear();
        for (path, span) in self.paths.iter().zip(spans.iter_mut()) {
            let mut v = obj.get(&path[0]);
            for part in &path[1..] {
                v = v.and_then(|x| match x {
                    Value::Object(m) => m.get(part),
                    Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => None,
                });
            }
            if let Some(Value::Array(a)) = v
                && a.len() == 1
            {
                v = a.first();
            }
            *span = v.and_then(|v| write_text(v, arena));
        }
        true
    }
}

fn write_text(v: &Value, arena: &mut Vec<u8>) -> Option<Span> {
    let start = arena.len() as u32;
    match v {
        Value::Null => return None,
        Value::String(s) => arena.extend_from_slice(s.as_bytes()),
        Value::Bool(b) => arena.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                arena.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(i) = n.as_i64() {
                arena.extend_from_slice(i.to_string().as_bytes());
            } else {
                // Plain decimal (never exponent notation), precise to the nanosecond.
                let f = n.as_f64().unwrap_or(0.0);
                arena.extend_from_slice(format!("{f:.9}").as_bytes());
            }
        }
        other => arena.extend_from_slice(other.to_string().as_bytes()),
    }
    Some((start, arena.len() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_arrays_and_numbers() {
        let mut fields = IndexMap::new();
        fields.insert("ts".to_string(), "ts".to_string());
        fields.insert("ua".to_string(), "request.headers.User-Agent".to_string());
        fields.insert("missing".to_string(), "request.nope".to_string());
        fields.insert("d".to_string(), "duration".to_string());
        let m = Mapping::new(&fields).unwrap();
        let line = br#"{"ts":1646861401.5241024,"request":{"headers":{"User-Agent":["curl/7.82.0"]}},"duration":0.000000929}"#;
        let mut arena = Vec::new();
        let mut spans = vec![None; 4];
        assert!(m.extract(line, &mut arena, &mut spans));
        let text = |i: usize| {
            spans[i]
                .map(|(s, e)| String::from_utf8(arena[s as usize..e as usize].to_vec()).unwrap())
        };
        assert_eq!(text(0).as_deref(), Some("1646861401.524102449"));
        assert_eq!(text(1).as_deref(), Some("curl/7.82.0"));
        assert_eq!(text(2), None);
        assert_eq!(text(3).as_deref(), Some("0.000000929"));
        assert!(!m.extract(b"not json", &mut arena, &mut spans));
        assert!(!m.extract(b"[1,2]", &mut arena, &mut spans));
    }
}
