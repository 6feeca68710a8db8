//! Endpoint normalisation: `/users/12345/orders/987` becomes `/users/{id}/orders/{id}`.
//!
//! Reports group requests by route, so ids must not split one endpoint into a million. Each path
//! segment that is a number, a UUID, a hex id or hash, or a long opaque token becomes `{id}`
//! (`1234.jpg` becomes `{id}.jpg`); then the configured rules (`routes.rules` in config.yaml: a
//! regex and its replacement, applied in order) rewrite the result. The route is computed once, at
//! ingest, and stored in the `route` column, so reports never pay for it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One configured rewrite.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Regex matched against the normalised route.
    pub pattern: String,
    /// Replacement (`$1`, `${name}` refer to groups).
    pub replace: String,
}

/// `routes:` section of the configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RoutesConfig {
    /// Rewrites applied after the built-in normalisation, in order.
    pub rules: Vec<RouteRule>,
}

/// Computes routes; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Router {
    rules: Vec<(regex::bytes::Regex, Vec<u8>)>,
}

fn is_hex(s: &[u8]) -> bool {
    s.iter().all(u8::is_ascii_hexdigit)
}

fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Whether a path segment is an identifier rather than a name.
fn is_id(seg: &[u8]) -> bool {
    if seg.is_empty() {
        return false;
    }
    let digits = seg.iter().filter(|b| b.is_ascii_digit()).count();
    if digits == seg.len() || is_uuid(seg) {
        return true;
    }
    if digits > 0 && seg.len() >= 8 && is_hex(seg) {
        return true;
    }
    let letters = seg.iter().filter(|b| b.is_ascii_alphabetic()).count();
    seg.len() >= 16
        && digits > 0
        && letters > 0
        && seg
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

impl Router {
    /// Compiles the configured rules.
    pub fn new(config: &RoutesConfig) -> Result<Router> {
        let rules = config
            .rules
            .iter()
            .map(|r| {
                regex::bytes::Regex::new(&r.pattern)
                    .map(|re| (re, r.replace.clone().into_bytes()))
                    .map_err(|e| {
                        Error::Usage(format!(
                            "routes.rules: invalid pattern `{}`: {e}",
                            r.pattern
                        ))
                    })
            })
            .collect::<Result<_>>()?;
        Ok(Router { rules })
    }

    /// Appends the route of `path` to `out`.
    pub fn route_into(&self, path: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.reserve(path.len());
        let mut rest = path;
        loop {
            let end = memchr::memchr(b'/', rest).unwrap_or(rest.len());
            let seg = &rest[..end];
            // Every id has a digit: most segments are names and are copied at once.
            if !seg.iter().any(u8::is_ascii_digit) {
                out.extend_from_slice(seg);
            } else if is_id(seg) {
                out.extend_from_slice(b"{id}");
            } else {
                // `1234.jpg` -> `{id}.jpg`
                match memchr::memrchr(b'.', seg) {
                    Some(dot)
                        if dot > 0
                            && is_id(&seg[..dot])
                            && seg[dot + 1..].iter().all(u8::is_ascii_alphanumeric) =>
                    {
                        out.extend_from_slice(b"{id}");
                        out.extend_from_slice(&seg[dot..]);
                    }
                    _ => out.extend_from_slice(seg),
                }
            }
            if end == rest.len() {
                break;
            }
            out.push(b'/');
            rest = &rest[end + 1..];
        }
        // Rules run on bytes and allocate only when one matches.
        let mut rewritten: Option<Vec<u8>> = None;
        for (re, rep) in &self.rules {
            let current = rewritten.as_deref().unwrap_or(&out[start..]);
            if let std::borrow::Cow::Owned(s) = re.replace_all(current, rep.as_slice()) {
                rewritten = Some(s);
            }
        }
        if let Some(r) = rewritten {
            out.truncate(start);
            out.extend_from_slice(&r);
        }
    }

    /// The route of `path` as a string.
    pub fn route(&self, path: &str) -> String {
        let mut out = Vec::new();
        self.route_into(path.as_bytes(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_placeholders() {
        let r = Router::default();
        assert_eq!(
            r.route("/users/12345/orders/987"),
            "/users/{id}/orders/{id}"
        );
        assert_eq!(
            r.route("/api/v1/inventory/3f2b9c1e-8a7d-4e6f-9b0a-1c2d3e4f5a6b"),
            "/api/v1/inventory/{id}"
        );
        assert_eq!(
            r.route("/Items/4851eba90426dea053284919c7a53e40/Images/thumb"),
            "/Items/{id}/Images/thumb"
        );
        assert_eq!(r.route("/commit/deadbeef01"), "/commit/{id}");
        assert_eq!(r.route("/s/qdrXrZMw2mH2Gzk9AB"), "/s/{id}");
        assert_eq!(r.route("/images/1042.jpg"), "/images/{id}.jpg");
        assert_eq!(r.route("/"), "/");
        assert_eq!(r.route("/blog/hello-world"), "/blog/hello-world");
        assert_eq!(r.route("/static/app.css"), "/static/app.css");
        assert_eq!(
            r.route("/deadbeef"),
            "/deadbeef",
            "hex words without digits are names"
        );
        assert_eq!(r.route("/v2/cafe"), "/v2/cafe");
    }

    #[test]
    fn configured_rules_apply_after() {
        let r = Router::new(&RoutesConfig {
            rules: vec![
                RouteRule {
                    pattern: "^/static/.*$".into(),
                    replace: "/static/*".into(),
                },
                RouteRule {
                    pattern: "^/api/v[0-9]+/".into(),
                    replace: "/api/{version}/".into(),
                },
            ],
        })
        .unwrap();
        assert_eq!(r.route("/static/js/app.1a2b3c4d.js"), "/static/*");
        assert_eq!(r.route("/api/v2/users/7"), "/api/{version}/users/{id}");
        let bad = Router::new(&RoutesConfig {
            rules: vec![RouteRule {
                pattern: "(".into(),
                replace: String::new(),
            }],
        });
        assert!(bad.unwrap_err().to_string().contains("routes.rules"));
    }
}
