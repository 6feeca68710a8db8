//! Behavioural detection: what one client does over time, found with windowed SQL over the rows.
//!
//! Each rule selects the requests that count as its events (a POST to a login route, a 404 on a
//! page, a request tagged as an attack...), optionally keeps only the first request per distinct
//! path, and counts events per client IP in a sliding time window; a client whose count reaches the
//! rule's threshold within the window is a finding. This is CrowdSec's leaky bucket in batch form:
//! a bucket of capacity C leaking one event per L seconds overflows on C + 1 events within about
//! C x L seconds. Findings carry their evidence: first and last seen, event count, the peak count in
//! a window, and sample requests with their source and byte offset.

use serde::{Deserialize, Serialize};

use super::Category;
use crate::catalog::sql_string;

/// A request as evidence: `source:offset METHOD target status`, the target cut at 200 bytes.
pub const SAMPLE: &str = "concat(source, ':', \"offset\", ' ', coalesce(method, ''), ' ', \
     left(coalesce(path, '') || CASE WHEN query IS NULL THEN '' ELSE '?' || query END, 200), ' ', \
     coalesce(CAST(status AS VARCHAR), ''))";

/// A windowed threshold.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Events needed within the window.
    pub threshold: u64,
    /// Window length in seconds.
    pub window_s: u64,
}

const fn w(threshold: u64, window_s: u64) -> Window {
    Window {
        threshold,
        window_s,
    }
}

/// `security.behaviour:` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BehaviourConfig {
    /// Routes that authenticate (regex, case-insensitive).
    pub login_routes: String,
    /// Paths of static files, which probing and crawling ignore (regex, case-insensitive).
    pub static_paths: String,
    /// POSTs to login routes, or 401 responses (and failed logins in error logs).
    pub brute_force: Window,
    /// 400/403/404 responses on distinct non-static paths.
    pub probing: Window,
    /// Distinct non-static pages.
    pub crawling: Window,
    /// Requests of any kind.
    pub flood: Window,
    /// Distinct sensitive-file paths.
    pub sensitive_files: Window,
    /// Requests tagged with an attack category (injection, traversal, RFI, exploit).
    pub attacks: Window,
    /// Requests from a scanner or attack tool's user agent.
    pub bad_user_agent: Window,
    /// Distinct user agents from one address.
    pub user_agent_switching: Window,
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        BehaviourConfig {
            login_routes: r"(login|signin|sign-in|logon|wp-login|xmlrpc\.php|/auth|/session|/token|/oauth|/admin)".into(),
            static_paths: r"\.(css|js|mjs|map|png|jpe?g|gif|ico|svg|webp|avif|bmp|woff2?|ttf|otf|eot|mp4|webm|mp3|pdf)$".into(),
            brute_force: w(6, 60),
            probing: w(11, 100),
            crawling: w(41, 20),
            flood: w(600, 60),
            sensitive_files: w(5, 25),
            attacks: w(1, 600),
            bad_user_agent: w(1, 60),
            user_agent_switching: w(10, 120),
        }
    }
}

/// One rule: its name, what counts as an event, and whether only the first request per path counts.
struct Rule {
    name: &'static str,
    description: &'static str,
    events: String,
    distinct_path: bool,
    window: Window,
}

/// The rules and the SQL that finds them.
pub struct Detector {
    rules: Vec<Rule>,
}

impl Detector {
    /// Rules over `logs` (filtered by `filter`) and `errors` (by `error_filter`), for the
    /// `threats` bits of `categories`: `scanner` feeds the bad-user-agent rule, `sensitive_file`
    /// the sensitive-files rule, and every other category counts as an attack.
    pub fn new(
        cfg: &BehaviourConfig,
        filter: &str,
        error_filter: &str,
        categories: &[Category],
    ) -> Detector {
        let mask = |pick: &dyn Fn(&str) -> bool| -> u32 {
            categories
                .iter()
                .filter(|c| pick(&c.name))
                .fold(0, |m, c| m | 1 << c.bit)
        };
        let scanner_bit = mask(&|n| n == "scanner");
        let sensitive_bit = mask(&|n| n == "sensitive_file");
        let attack_bits = mask(&|n| n != "scanner" && n != "sensitive_file");
        let login = sql_string(&format!("(?i){}", cfg.login_routes));
        let statics = sql_string(&format!("(?i){}", cfg.static_paths));
        let base = "client_ip AS ip, ts, source, \"offset\", method, path, query, status, threats, user_agent";
        let logs = |cond: &str| format!("SELECT {base} FROM logs WHERE ({filter}) AND ({cond})");
        let rules = vec![
            Rule {
                name: "brute_force",
                description: "POSTs to login routes or 401 responses (or failed logins in error logs)",
                events: format!(
                    "{} UNION ALL SELECT client AS ip, ts, source, \"offset\", NULL, NULL, NULL, NULL, 0, NULL FROM errors \
                     WHERE ({error_filter}) AND client IS NOT NULL AND regexp_matches(message, \
                     '(was not found in|password mismatch|authentication failure|AH01617|AH01618|AH01790|user .* not found)')",
                    logs(&format!(
                        "(method = 'POST' AND regexp_matches(coalesce(path, ''), {login})) OR status = 401"
                    ))
                ),
                distinct_path: false,
                window: cfg.brute_force,
            },
            Rule {
                name: "probing",
                description: "400/403/404 on many distinct non-static paths",
                events: logs(&format!(
                    "status IN (400, 403, 404) AND NOT regexp_matches(coalesce(path, ''), {statics})"
                )),
                distinct_path: true,
                window: cfg.probing,
            },
            Rule {
                name: "crawling",
                description: "many distinct non-static pages in a short time",
                events: logs(&format!(
                    "NOT regexp_matches(coalesce(path, ''), {statics})"
                )),
                distinct_path: true,
                window: cfg.crawling,
            },
            Rule {
                name: "flood",
                description: "request flood",
                events: logs("true"),
                distinct_path: false,
                window: cfg.flood,
            },
            Rule {
                name: "sensitive_files",
                description: "probes for configuration, credential, backup or VCS files",
                events: logs(&format!("threats & {sensitive_bit} <> 0")),
                distinct_path: true,
                window: cfg.sensitive_files,
            },
            Rule {
                name: "attacks",
                description: "requests carrying an attack payload (injection, traversal, RFI, exploits)",
                events: logs(&format!("threats & {attack_bits} <> 0")),
                distinct_path: false,
                window: cfg.attacks,
            },
            Rule {
                name: "bad_user_agent",
                description: "requests from a scanner or attack tool",
                events: logs(&format!("threats & {scanner_bit} <> 0")),
                distinct_path: false,
                window: cfg.bad_user_agent,
            },
            Rule {
                name: "user_agent_switching",
                description: "one address presenting many user agents",
                events: format!(
                    "SELECT ip, min(ts) AS ts, any_value(source) AS source, any_value(\"offset\") AS \"offset\", \
                     any_value(method) AS method, any_value(path) AS path, any_value(query) AS query, \
                     any_value(status) AS status, 0 AS threats, \
                     user_agent FROM ({}) GROUP BY ip, user_agent",
                    logs("user_agent IS NOT NULL")
                ),
                distinct_path: false,
                window: cfg.user_agent_switching,
            },
        ];
        Detector { rules }
    }

    /// The filter (on `logs` and `errors`) of the days `first..=last` (`YYYY-MM-DD`).
    pub fn days_filter(first: &str, last: &str) -> String {
        format!(
            "date BETWEEN CAST({} AS DATE) AND CAST({} AS DATE)",
            sql_string(first),
            sql_string(last)
        )
    }

    /// One SELECT returning every finding: rule, description, client_ip, first_seen, last_seen,
    /// events, peak (most events in one window), samples (up to three `source:offset METHOD path
    /// status` of the first events). The windows see only (ip, ts) of the events; the samples are
    /// built for the offending clients alone, so the cost follows the events, not their text.
    pub fn findings_sql(&self) -> String {
        let parts: Vec<String> = self
            .rules
            .iter()
            .map(|r| {
                let (times, first_per_path) = if r.distinct_path {
                    (
                        "SELECT ip, min(ts) AS ts FROM ev WHERE ip IS NOT NULL GROUP BY ip, path",
                        "QUALIFY row_number() OVER (PARTITION BY ip, path ORDER BY ts, source, \"offset\") = 1",
                    )
                } else {
                    ("SELECT ip, ts FROM ev WHERE ip IS NOT NULL", "")
                };
                format!(
                    "SELECT * FROM (
                     WITH ev AS ({events}),
                     t AS ({times}),
                     b AS (SELECT ip, epoch_us(ts) // {win_us} AS k, count(*) AS c FROM t GROUP BY ALL),
                     cand AS (SELECT b1.ip, b1.k FROM b b1 LEFT JOIN b b2 ON b2.ip = b1.ip AND b2.k = b1.k + 1
                              WHERE b1.c + coalesce(b2.c, 0) >= {t}),
                     keep AS (SELECT ip, k FROM cand UNION SELECT ip, k + 1 FROM cand),
                     peaks AS (SELECT ip, max(n) AS peak
                               FROM (SELECT t.ip, count(*) OVER (PARTITION BY t.ip ORDER BY t.ts
                                            RANGE BETWEEN INTERVAL {win} SECOND PRECEDING AND CURRENT ROW) AS n
                                     FROM t SEMI JOIN keep ON t.ip = keep.ip AND epoch_us(t.ts) // {win_us} = keep.k)
                               GROUP BY ip HAVING max(n) >= {t}),
                     hit AS (SELECT ip, min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS events,
                                    any_value(peak) AS peak
                             FROM t JOIN peaks USING (ip) GROUP BY ip),
                     samples AS (SELECT ip, list({SAMPLE} ORDER BY ts, {SAMPLE})[1:3] AS samples
                                 FROM (SELECT * FROM ev WHERE ip IN (SELECT ip FROM hit) {first_per_path})
                                 GROUP BY ip)
                     SELECT '{name}' AS rule, '{desc}' AS description, hit.ip AS client_ip, first_seen, last_seen,
                            events, peak, samples
                     FROM hit JOIN samples USING (ip))",
                    win_us = r.window.window_s.max(1) * 1_000_000,
                    events = r.events,
                    name = r.name,
                    desc = r.description,
                    win = r.window.window_s,
                    t = r.window.threshold,
                )
            })
            .collect();
        format!(
            "{} ORDER BY rule, first_seen, client_ip",
            parts.join("\nUNION ALL\n")
        )
    }
}
