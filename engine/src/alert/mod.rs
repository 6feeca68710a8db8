//! `alert`: turns what a run found into email, at most once per cooldown, and never loses it.
//!
//! Rules (`alerting.rules` in config.yaml) are evaluated against the findings that earlier stages
//! stored in the catalog for a run: anomalies (`anomalies`), behavioural findings (`findings`),
//! tagged requests and the 5xx rate (`logs`), and slow routes (`stats`). Each firing rule yields
//! alerts keyed by what they are about (a metric and route, a route, a category); an alert whose
//! rule and key were already sent within the rule's cooldown is dropped. What remains becomes one
//! digest per recipient (text and HTML, with the evidence and the commands to dig in) that is
//! first written to the catalog's outbox (`alert_outbox`) and only then sent. A message stays in
//! the outbox until the SMTP server accepted it: a failed delivery is retried with backoff, and
//! what still fails is retried by the next run, so a mail server that is down loses nothing and a
//! server that comes back receives each message once. Delivery ([`smtp`]) uses lettre's SMTP
//! transport; the password is read from the environment or a file and never printed.

pub mod smtp;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(feature = "duckdb")]
use crate::catalog::{Catalog, Table, sql_string};
use crate::error::Result;
use crate::parse::value::parse_duration;
#[cfg(feature = "duckdb")]
use crate::report::display;
#[cfg(feature = "duckdb")]
use crate::stats::{ALL_ROUTES, OTHER_ROUTE, Range, StatsReader};

/// `alerting:` section of the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Whether `run` evaluates the rules and sends alerts.
    pub enabled: bool,
    /// Anomaly rules fire only when the run found at least this many matching events.
    pub min_anomalies_for_alert: u64,
    /// Cooldown of rules that set none (`30m`, `6h`, `1d`).
    pub cooldown: String,
    /// Delivery attempts per message and run before it waits for the next run.
    pub attempts: u32,
    /// Wait before the second attempt; it doubles for each further one (`2s`, `500ms`).
    pub backoff: String,
    /// How long `watch` holds a new alert so that those of the next cycles (the other routes and
    /// metrics of the same incident) go out in the same email (`30s`; `0s` sends at once).
    pub group_wait: String,
    /// The rules.
    pub rules: Vec<Rule>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            enabled: false,
            min_anomalies_for_alert: 1,
            cooldown: "6h".into(),
            attempts: 3,
            backoff: "2s".into(),
            group_wait: "30s".into(),
            rules: vec![
                Rule::new(
                    "anomalies",
                    RuleKind::Anomaly {
                        min_severity: Level::Medium,
                    },
                ),
                Rule::new(
                    "server-errors",
                    RuleKind::ErrorRate {
                        threshold: 0.05,
                        min_requests: 100,
                    },
                ),
                Rule::new(
                    "slow-routes",
                    RuleKind::SlowRoute {
                        p95_ms: 2000.0,
                        min_requests: 100,
                    },
                ),
                Rule::new(
                    "regressions",
                    RuleKind::Regression {
                        max_regression: "p95:+50%,5xx_rate:+2pp".into(),
                        baseline_days: 7,
                        min_requests: 200,
                    },
                ),
                Rule::new(
                    "attacks",
                    RuleKind::Security {
                        category: "any".into(),
                        min_count: 1,
                    },
                ),
            ],
        }
    }
}

impl AlertingConfig {
    /// Checks durations and rules; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        parse_duration(&self.cooldown).map_err(|e| format!("alerting.cooldown: {e}"))?;
        parse_duration(&self.backoff).map_err(|e| format!("alerting.backoff: {e}"))?;
        parse_duration(&self.group_wait).map_err(|e| format!("alerting.group_wait: {e}"))?;
        if self.attempts == 0 {
            return Err("alerting.attempts must be at least 1".into());
        }
        let mut names = std::collections::HashSet::new();
        for r in &self.rules {
            if !names.insert(r.name.as_str()) {
                return Err(format!(
                    "alerting.rules: the name {:?} is used twice",
                    r.name
                ));
            }
            if let RuleKind::Regression { max_regression, .. } = &r.kind {
                crate::stats::compare::Limit::parse_list(max_regression)
                    .map_err(|e| format!("alerting.rules.{}.max_regression: {e}", r.name))?;
            }
            if let Some(c) = &r.cooldown {
                parse_duration(c)
                    .map_err(|e| format!("alerting.rules.{}.cooldown: {e}", r.name))?;
            }
        }
        Ok(())
    }

    fn cooldown_of(&self, rule: &Rule) -> Duration {
        parse_duration(rule.cooldown.as_deref().unwrap_or(&self.cooldown))
            .unwrap_or(Duration::from_secs(6 * 3600))
    }
}

/// One alert rule. (Unknown fields are caught by [`RuleKind`]: serde cannot deny them on a struct
/// with a flattened field.)
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Rule {
    /// Name, unique; part of the dedupe key.
    pub name: String,
    /// What makes it fire.
    #[serde(flatten)]
    pub kind: RuleKind,
    /// Severity shown in the message.
    #[serde(default = "default_severity")]
    pub severity: Level,
    /// Recipients; empty: `email.to`.
    #[serde(default)]
    pub to: Vec<String>,
    /// Cooldown; default `alerting.cooldown`.
    #[serde(default)]
    pub cooldown: Option<String>,
}

fn default_severity() -> Level {
    Level::Medium
}

impl Rule {
    fn new(name: &str, kind: RuleKind) -> Rule {
        Rule {
            name: name.into(),
            kind,
            severity: Level::Medium,
            to: Vec::new(),
            cooldown: None,
        }
    }
}

/// The condition of a rule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleKind {
    /// Anomaly events of at least this severity detected by the run.
    Anomaly {
        /// Lowest severity that counts.
        min_severity: Level,
    },
    /// The 5xx share of the run's days above `threshold` (0.05 = 5%).
    ErrorRate {
        /// Share of responses.
        threshold: f64,
        /// Fewer requests never fire.
        min_requests: u64,
    },
    /// Routes whose p95 over the run's days is above `p95_ms`.
    SlowRoute {
        /// Milliseconds.
        p95_ms: f64,
        /// Routes with fewer requests never fire.
        min_requests: u64,
    },
    /// Routes of the run's days that regressed significantly against the `baseline_days`
    /// before them, beyond `max_regression` (`p95:+20%,5xx_rate:+1pp`, as for `compare`).
    Regression {
        /// Limits.
        max_regression: String,
        /// Days before the run's first day that form the baseline.
        baseline_days: u32,
        /// Requests both periods need before a route is judged.
        min_requests: u64,
    },
    /// Requests tagged with a threat category, or clients found by a behavioural rule.
    Security {
        /// A threat category (`sqli`, `xss`...), a behavioural rule (`brute_force`...) or `any`.
        category: String,
        /// Tagged requests (or flagged clients) needed to fire.
        min_count: u64,
    },
}

/// Severity of an alert or an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Worth a look.
    Low,
    /// Needs attention.
    Medium,
    /// Needs attention now.
    High,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
        }
    }
}

/// `email:` section of the configuration.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// SMTP server.
    pub host: String,
    /// Its port (25, 587 for STARTTLS, 465 for TLS).
    pub port: u16,
    /// `none` (a local relay only), `starttls` or `tls`.
    pub security: Security,
    /// Login; none: no authentication.
    pub username: Option<String>,
    /// Environment variable that holds the password.
    pub password_env: Option<String>,
    /// File that holds the password (its first line).
    pub password_file: Option<PathBuf>,
    /// Sender address.
    pub from: String,
    /// Default recipients.
    pub to: Vec<String>,
    /// PEM file of a CA (or self-signed certificate) to trust besides the usual roots.
    pub ca_file: Option<PathBuf>,
    /// Connect and command timeout (`10s`).
    pub timeout: String,
}

/// The password never appears in debug output: only where it comes from.
impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            host: "localhost".into(),
            port: 25,
            security: Security::None,
            username: None,
            password_env: None,
            password_file: None,
            from: "logcrunch@localhost".into(),
            to: Vec::new(),
            ca_file: None,
            timeout: "10s".into(),
        }
    }
}

impl EmailConfig {
    /// Checks the section; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        parse_duration(&self.timeout).map_err(|e| format!("email.timeout: {e}"))?;
        if self.password_env.is_some() && self.password_file.is_some() {
            return Err("email: set password_env or password_file, not both".into());
        }
        if self.username.is_some() && self.password_env.is_none() && self.password_file.is_none() {
            return Err(
                "email.username is set but no password source: set email.password_env (the name \
                 of an environment variable) or email.password_file"
                    .into(),
            );
        }
        Ok(())
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// Plain text: only for a relay on the same host.
    None,
    /// Plain connection upgraded with STARTTLS (required, never skipped).
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

/// One reason to alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Rule name.
    pub rule: String,
    /// What it is about (dedupe key within the rule).
    pub key: String,
    /// Severity of the rule.
    pub severity: Level,
    /// One line.
    pub title: String,
    /// Evidence: routes, clients, sample lines as `source:offset`.
    pub evidence: Vec<String>,
    /// Commands that show more.
    pub commands: Vec<String>,
    /// Recipients.
    pub to: Vec<String>,
}

/// A digest as stored in the outbox and sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Outbox id.
    pub id: i64,
    /// When it was queued, µs since the epoch.
    pub created_us: i64,
    /// The run that queued it.
    pub run: String,
    /// Recipient.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
    /// `pending` or `sent`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// The run's days, `[from, until)` in µs, and its id.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Run id (anomalies and findings it detected).
    pub run: String,
    /// Start of the first day.
    pub from_us: i64,
    /// End of the last day.
    pub until_us: i64,
}

const OUTBOX: &str =
    "CREATE TABLE IF NOT EXISTS alert_outbox (id BIGINT, created TIMESTAMP, run VARCHAR, \
     recipient VARCHAR, subject VARCHAR, text VARCHAR, html VARCHAR, status VARCHAR, \
     attempts BIGINT, last_error VARCHAR, sent TIMESTAMP);
     CREATE TABLE IF NOT EXISTS alert_sent (rule VARCHAR, key VARCHAR, last_sent TIMESTAMP, \
     severity VARCHAR, title VARCHAR);";

#[cfg(feature = "duckdb")]
/// The alert stage; see the module docs.
pub struct Alerter<'a> {
    config: &'a AlertingConfig,
    email: &'a EmailConfig,
    categories: &'a [crate::security::Category],
}

#[cfg(feature = "duckdb")]
impl<'a> Alerter<'a> {
    /// An alerter with the rules of `config`, the recipients of `email`, and the threat
    /// categories the dataset was tagged with.
    pub fn new(
        config: &'a AlertingConfig,
        email: &'a EmailConfig,
        categories: &'a [crate::security::Category],
    ) -> Alerter<'a> {
        Alerter {
            config,
            email,
            categories,
        }
    }

    /// Evaluates every rule over `scope`, leaving out alerts still in their cooldown at `now_us`.
    pub fn evaluate(&self, catalog: &Catalog, scope: &Scope, now_us: i64) -> Result<Vec<Alert>> {
        catalog.execute(OUTBOX)?;
        let sent: std::collections::HashMap<(String, String), i64> = rows(
            catalog,
            "SELECT rule, key, epoch_us(last_sent) FROM alert_sent",
        )?
        .into_iter()
        .map(|r| ((r[0].clone(), r[1].clone()), num(&r[2]) as i64))
        .collect();
        let mut out = Vec::new();
        for rule in &self.config.rules {
            let cooldown = self.config.cooldown_of(rule).as_micros() as i64;
            for alert in self.fire(catalog, scope, rule)? {
                let last = sent.get(&(alert.rule.clone(), alert.key.clone()));
                if last.is_none_or(|t| *t <= now_us - cooldown) {
                    out.push(alert);
                }
            }
        }
        Ok(out)
    }

    fn recipients(&self, rule: &Rule) -> Vec<String> {
        if rule.to.is_empty() {
            self.email.to.clone()
        } else {
            rule.to.clone()
        }
    }

    fn alert(&self, rule: &Rule, key: String, title: String) -> Alert {
        Alert {
            rule: rule.name.clone(),
            key,
            severity: rule.severity,
            title,
            evidence: Vec::new(),
            commands: Vec::new(),
            to: self.recipients(rule),
        }
    }

    fn fire(&self, catalog: &Catalog, scope: &Scope, rule: &Rule) -> Result<Vec<Alert>> {
        let days = format!(
            "ts >= make_timestamp({}) AND ts < make_timestamp({})",
            scope.from_us, scope.until_us
        );
        let since = crate::parse::value::format_rfc3339(scope.from_us);
        let until = crate::parse::value::format_rfc3339(scope.until_us);
        let window = format!("--since {since} --until {until}");
        match &rule.kind {
            RuleKind::Anomaly { min_severity } => {
                let levels: Vec<String> = [Level::Low, Level::Medium, Level::High]
                    .into_iter()
                    .filter(|l| l >= min_severity)
                    .map(|l| sql_string(l.name()))
                    .collect();
                if !catalog.has_table("anomalies")? {
                    return Ok(Vec::new());
                }
                let events = rows(
                    catalog,
                    &format!(
                        "SELECT metric, route, strftime(start, '%Y-%m-%dT%H:%M:%SZ'), \
                         strftime(\"end\", '%Y-%m-%dT%H:%M:%SZ'), round(expected, 3), \
                         round(observed, 3), round(score, 1), severity, method \
                         FROM anomalies WHERE detected_run = {} AND severity IN ({}) \
                         ORDER BY score DESC",
                        sql_string(&scope.run),
                        levels.join(", ")
                    ),
                )?;
                if (events.len() as u64) < self.config.min_anomalies_for_alert {
                    return Ok(Vec::new());
                }
                // One alert per route and family of metrics (a latency spike moves p50, p95
                // and p99 together, in one run or in the cycles of `watch` that follow each
                // other within the cooldown).
                let mut by_key: BTreeMap<String, (Alert, Vec<String>)> = BTreeMap::new();
                for e in events {
                    let family = crate::detect::Metric::parse(&e[0])
                        .map_or("value", crate::detect::Metric::family);
                    let key = format!("{family} {}", e[1]);
                    let (a, metrics) = by_key.entry(key.clone()).or_insert_with(|| {
                        let mut a = self.alert(rule, key.clone(), String::new());
                        a.commands
                            .push(format!("logcrunch stats show --route '{}' {window}", e[1]));
                        (a, Vec::new())
                    });
                    if !metrics.contains(&e[0]) {
                        a.commands.insert(
                            metrics.len(),
                            format!(
                                "logcrunch detect --metric {} --route '{}' {window}",
                                e[0], e[1]
                            ),
                        );
                        metrics.push(e[0].clone());
                    }
                    let value = |v: &str| {
                        let x = num(v);
                        match e[0].as_str() {
                            "p50" | "p95" | "p99" => format!("{:.1} ms", x / 1000.0),
                            "4xx_rate" | "5xx_rate" => format!("{:.2}%", x * 100.0),
                            _ => format!("{x:.0}"),
                        }
                    };
                    let level = match e[7].as_str() {
                        "high" => Level::High,
                        "medium" => Level::Medium,
                        _ => Level::Low,
                    };
                    a.severity = a.severity.max(level);
                    a.evidence.push(format!(
                        "{} {} .. {}: observed {} vs expected {} (score {:.1}, {} by {})",
                        e[0],
                        e[2],
                        e[3],
                        value(&e[5]),
                        value(&e[4]),
                        num(&e[6]),
                        e[7],
                        e[8]
                    ));
                }
                Ok(by_key
                    .into_iter()
                    .map(|(key, (mut a, metrics))| {
                        let (family, route) = key.split_once(' ').unwrap_or((&key, ""));
                        a.title =
                            format!("{family} anomaly on route {route} ({})", metrics.join(", "));
                        a
                    })
                    .collect())
            }
            RuleKind::ErrorRate {
                threshold,
                min_requests,
            } => {
                let r = rows(
                    catalog,
                    &format!(
                        "SELECT count(*), count(*) FILTER (WHERE status >= 500) FROM logs WHERE {days}"
                    ),
                )?;
                let (n, e) = r
                    .first()
                    .map(|r| (num(&r[0]), num(&r[1])))
                    .unwrap_or((0.0, 0.0));
                let rate = if n > 0.0 { e / n } else { 0.0 };
                if n < *min_requests as f64 || rate <= *threshold {
                    return Ok(Vec::new());
                }
                let mut a = self.alert(
                    rule,
                    ALL_ROUTES.into(),
                    format!(
                        "5xx rate {:.2}% ({} of {} requests), above {:.2}%",
                        rate * 100.0,
                        e,
                        n,
                        threshold * 100.0
                    ),
                );
                for r in rows(
                    catalog,
                    &format!(
                        "SELECT route, count(*) AS n, any_value(source || ':' || \"offset\") \
                         FROM logs WHERE {days} AND status >= 500 GROUP BY route \
                         ORDER BY n DESC, route LIMIT 5"
                    ),
                )? {
                    a.evidence
                        .push(format!("{}: {} 5xx responses, e.g. {}", r[0], r[1], r[2]));
                }
                a.commands.push(format!("logcrunch report errors {window}"));
                Ok(vec![a])
            }
            RuleKind::SlowRoute {
                p95_ms,
                min_requests,
            } => {
                let range = Range {
                    since: Some(scope.from_us),
                    until: Some(scope.until_us),
                    routes: Vec::new(),
                };
                let mut out = Vec::new();
                for s in StatsReader::new(catalog).summaries(&range, 2)? {
                    if s.route == ALL_ROUTES || s.route == OTHER_ROUTE {
                        continue;
                    }
                    let Some(p95) = s.quantile(0.95) else {
                        continue;
                    };
                    let ms = p95 as f64 / 1000.0;
                    if s.counts.requests < *min_requests || ms <= *p95_ms {
                        continue;
                    }
                    let mut a = self.alert(
                        rule,
                        s.route.clone(),
                        format!(
                            "slow route {}: p95 {ms:.0} ms, above {p95_ms:.0} ms",
                            s.route
                        ),
                    );
                    a.evidence.push(format!(
                        "{} requests, p50 {} ms, p99 {} ms",
                        s.counts.requests,
                        s.quantile(0.5).unwrap_or(0) / 1000,
                        s.quantile(0.99).unwrap_or(0) / 1000
                    ));
                    for r in rows(
                        catalog,
                        &format!(
                            "SELECT source || ':' || \"offset\", response_time_us // 1000 FROM logs \
                             WHERE {days} AND route = {} ORDER BY response_time_us DESC NULLS LAST \
                             LIMIT 3",
                            sql_string(&s.route)
                        ),
                    )? {
                        a.evidence.push(format!("slowest: {} ({} ms)", r[0], r[1]));
                    }
                    a.commands.push(format!(
                        "logcrunch stats show --route '{}' {window}",
                        s.route
                    ));
                    out.push(a);
                }
                Ok(out)
            }
            RuleKind::Regression {
                max_regression,
                baseline_days,
                min_requests,
            } => {
                use crate::stats::compare::{CompareOptions, Comparison, Limit};
                let base_from = scope.from_us - i64::from(*baseline_days) * 86_400_000_000;
                let range = |since, until| Range {
                    since: Some(since),
                    until: Some(until),
                    routes: Vec::new(),
                };
                let reader = StatsReader::new(catalog);
                let base = reader.summaries(&range(base_from, scope.from_us), 2)?;
                let cur = reader.summaries(&range(scope.from_us, scope.until_us), 2)?;
                if base.is_empty() || cur.is_empty() {
                    return Ok(Vec::new());
                }
                let opts = CompareOptions {
                    limits: Limit::parse_list(max_regression)?,
                    min_requests: *min_requests,
                    alpha: 0.01,
                    significant_digits: 2,
                };
                let base_window = format!(
                    "@{}..{}",
                    crate::parse::value::format_rfc3339(base_from),
                    since
                );
                let mut out = Vec::new();
                for r in Comparison::of(&base, &cur, &opts).routes {
                    if r.regressions.is_empty() {
                        continue;
                    }
                    let mut a = self.alert(
                        rule,
                        r.route.clone(),
                        format!(
                            "route {} regressed against the {baseline_days} days before: {}",
                            r.route,
                            r.regressions.join(", ")
                        ),
                    );
                    for (q, b, c) in &r.quantiles_ms {
                        if let (Some(b), Some(c)) = (b, c) {
                            a.evidence.push(format!("{q}: {b:.1} ms -> {c:.1} ms"));
                        }
                    }
                    a.evidence.push(format!(
                        "5xx rate: {:.2}% -> {:.2}%; requests {} -> {}",
                        r.error_rate.0 * 100.0,
                        r.error_rate.1 * 100.0,
                        r.requests.0,
                        r.requests.1
                    ));
                    a.commands.push(format!(
                        "logcrunch compare --baseline {base_window} --current @{since}..{until} \
                         --max-regression {max_regression}"
                    ));
                    out.push(a);
                }
                Ok(out)
            }
            RuleKind::Security {
                category,
                min_count,
            } => {
                let any = category == "any";
                let mut out = Vec::new();
                for c in self
                    .categories
                    .iter()
                    .filter(|c| any || c.name == *category)
                {
                    let mask = 1u64 << c.bit;
                    let r = rows(
                        catalog,
                        &format!(
                            "SELECT count(*), count(DISTINCT client_ip) FROM logs \
                             WHERE {days} AND threats & {mask} <> 0"
                        ),
                    )?;
                    let n = r.first().map(|r| num(&r[0])).unwrap_or(0.0);
                    if n < (*min_count).max(1) as f64 {
                        continue;
                    }
                    let mut a = self.alert(
                        rule,
                        c.name.clone(),
                        format!("{n} requests tagged {} from {} clients", c.name, r[0][1]),
                    );
                    for e in rows(
                        catalog,
                        &format!(
                            "SELECT client_ip, count(*) AS n, any_value(source || ':' || \"offset\"), \
                             any_value(method || ' ' || path) FROM logs \
                             WHERE {days} AND threats & {mask} <> 0 GROUP BY client_ip \
                             ORDER BY n DESC, client_ip LIMIT 5"
                        ),
                    )? {
                        a.evidence.push(format!(
                            "{}: {} requests, e.g. {} {}",
                            e[0], e[1], e[2], e[3]
                        ));
                    }
                    a.commands
                        .push(format!("logcrunch report security {window}"));
                    out.push(a);
                }
                if catalog.has_table("findings")? {
                    let found = rows(
                        catalog,
                        &format!(
                            "SELECT rule, client_ip, events, array_to_string(samples, ' | ') \
                             FROM findings WHERE detected_run = {} {} ORDER BY rule, events DESC",
                            sql_string(&scope.run),
                            if any {
                                String::new()
                            } else {
                                format!("AND rule = {}", sql_string(category))
                            }
                        ),
                    )?;
                    let mut by_rule: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
                    for f in found {
                        by_rule.entry(f[0].clone()).or_default().push(f);
                    }
                    for (name, fs) in by_rule {
                        if (fs.len() as u64) < (*min_count).max(1) {
                            continue;
                        }
                        let mut a = self.alert(
                            rule,
                            name.clone(),
                            format!("{} clients flagged by {name}", fs.len()),
                        );
                        for f in fs.iter().take(5) {
                            a.evidence
                                .push(format!("{}: {} events, e.g. {}", f[1], f[2], f[3]));
                        }
                        a.commands
                            .push(format!("logcrunch report security {window}"));
                        out.push(a);
                    }
                }
                Ok(out)
            }
        }
    }

    /// Writes one digest per recipient of `alerts` to the outbox and starts their cooldowns;
    /// returns the queued messages.
    pub fn queue(
        &self,
        catalog: &Catalog,
        alerts: &[Alert],
        run: &str,
        now_us: i64,
    ) -> Result<Vec<Message>> {
        catalog.execute(OUTBOX)?;
        let messages = digests(alerts, run, now_us);
        let next = rows(catalog, "SELECT coalesce(max(id), 0) FROM alert_outbox")?;
        let mut id = next.first().map(|r| num(&r[0]) as i64).unwrap_or(0);
        let mut sql = String::from("BEGIN TRANSACTION;\n");
        let mut queued = Vec::new();
        for mut m in messages {
            id += 1;
            m.id = id;
            let _ = writeln!(
                sql,
                "INSERT INTO alert_outbox VALUES ({id}, make_timestamp({now_us}), {}, {}, {}, {}, \
                 {}, 'pending', 0, NULL, NULL);",
                sql_string(run),
                sql_string(&m.to),
                sql_string(&m.subject),
                sql_string(&m.text),
                sql_string(&m.html)
            );
            queued.push(m);
        }
        for a in alerts {
            let _ = writeln!(
                sql,
                "DELETE FROM alert_sent WHERE rule = {r} AND key = {k};
                 INSERT INTO alert_sent VALUES ({r}, {k}, make_timestamp({now_us}), {}, {});",
                sql_string(a.severity.name()),
                sql_string(&a.title),
                r = sql_string(&a.rule),
                k = sql_string(&a.key),
            );
        }
        sql.push_str("COMMIT;");
        catalog.execute(&sql)?;
        Ok(queued)
    }
}

#[cfg(feature = "duckdb")]
/// The outbox: pending messages first, then the latest sent ones (`limit` of those).
pub fn outbox(catalog: &Catalog, pending_only: bool, limit: usize) -> Result<Vec<Message>> {
    if !catalog.has_table("alert_outbox")? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, epoch_us(created), run, recipient, subject, text, html, status, attempts, \
         last_error FROM alert_outbox {} ORDER BY status = 'pending' DESC, id DESC LIMIT {}",
        if pending_only {
            "WHERE status = 'pending'"
        } else {
            ""
        },
        if pending_only {
            i64::MAX as u64
        } else {
            limit as u64
        }
    );
    Ok(rows(catalog, &sql)?
        .into_iter()
        .map(|r| Message {
            id: num(&r[0]) as i64,
            created_us: num(&r[1]) as i64,
            run: r[2].clone(),
            to: r[3].clone(),
            subject: r[4].clone(),
            text: r[5].clone(),
            html: r[6].clone(),
            status: r[7].clone(),
            attempts: num(&r[8]) as i64,
            last_error: (!r[9].is_empty()).then(|| r[9].clone()),
        })
        .collect())
}

#[cfg(feature = "duckdb")]
/// Records the outcome of `tries` delivery attempts of message `id`.
pub fn mark(
    catalog: &Catalog,
    id: i64,
    tries: u32,
    outcome: std::result::Result<(), String>,
    now_us: i64,
) -> Result<()> {
    let sql = match outcome {
        Ok(()) => format!(
            "UPDATE alert_outbox SET status = 'sent', attempts = attempts + {tries}, \
             last_error = NULL, sent = make_timestamp({now_us}) WHERE id = {id}"
        ),
        Err(e) => format!(
            "UPDATE alert_outbox SET attempts = attempts + {tries}, last_error = {} WHERE id = {id}",
            sql_string(&e)
        ),
    };
    catalog.execute(&sql)
}

/// Alerts of a digest shown with their evidence; the others are listed by title.
const DIGEST_DETAILED: usize = 10;

#[cfg(feature = "duckdb")]
/// One message per recipient with every alert addressed to them, most severe first.
pub fn digests(alerts: &[Alert], run: &str, now_us: i64) -> Vec<Message> {
    let mut by_to: BTreeMap<&str, Vec<&Alert>> = BTreeMap::new();
    for a in alerts {
        for to in &a.to {
            by_to.entry(to.as_str()).or_default().push(a);
        }
    }
    by_to
        .into_iter()
        .map(|(to, mut list)| {
            // Most severe first; within a severity, every rule's first alert before any rule's
            // second, so that one noisy rule does not push the others out of the detailed part.
            list.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule.cmp(&b.rule)));
            let mut seen: BTreeMap<(Level, &str), usize> = BTreeMap::new();
            let mut ranked: Vec<(usize, &Alert)> = list
                .iter()
                .map(|a| {
                    let n = seen.entry((a.severity, a.rule.as_str())).or_default();
                    *n += 1;
                    (*n, *a)
                })
                .collect();
            ranked.sort_by(|(n, a), (m, b)| b.severity.cmp(&a.severity).then(n.cmp(m)));
            let list: Vec<&Alert> = ranked.into_iter().map(|(_, a)| a).collect();
            let top = list[0].severity;
            let subject = format!(
                "[logcrunch] {} alert{} ({}): {}",
                list.len(),
                if list.len() == 1 { "" } else { "s" },
                top.name(),
                list[0].title
            );
            let mut text = format!("logcrunch run {run}: {} alert(s)\n", list.len());
            let mut html = format!(
                "<html><body><h2>logcrunch run {}: {} alert(s)</h2>\n",
                escape(run),
                list.len()
            );
            let (full, rest) = list.split_at(list.len().min(DIGEST_DETAILED));
            for a in full {
                let _ = write!(text, "\n[{}] {} ({})\n", a.severity.name(), a.title, a.rule);
                let _ = write!(
                    html,
                    "<h3>[{}] {} <small>({})</small></h3>\n<ul>\n",
                    a.severity.name(),
                    escape(&a.title),
                    escape(&a.rule)
                );
                for e in &a.evidence {
                    let _ = writeln!(text, "  - {e}");
                    let _ = writeln!(html, "<li>{}</li>", escape(e));
                }
                html.push_str("</ul>\n");
                if !a.commands.is_empty() {
                    text.push_str("  dig in:\n");
                    html.push_str("<p>Dig in:</p>\n<pre>");
                    for c in &a.commands {
                        let _ = writeln!(text, "    {c}");
                        let _ = writeln!(html, "{}", escape(c));
                    }
                    html.push_str("</pre>\n");
                }
            }
            if !rest.is_empty() {
                let _ = writeln!(text, "\nand {} more:", rest.len());
                let _ = writeln!(html, "<h3>and {} more</h3>\n<ul>", rest.len());
                for a in rest {
                    let _ = writeln!(text, "  [{}] {} ({})", a.severity.name(), a.title, a.rule);
                    let _ = writeln!(
                        html,
                        "<li>[{}] {} ({})</li>",
                        a.severity.name(),
                        escape(&a.title),
                        escape(&a.rule)
                    );
                }
                html.push_str("</ul>\n");
            }
            html.push_str("</body></html>\n");
            Message {
                id: 0,
                created_us: now_us,
                run: run.to_string(),
                to: to.to_string(),
                subject,
                text,
                html,
                status: "pending".into(),
                attempts: 0,
                last_error: None,
            }
        })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or(0.0)
}

#[cfg(feature = "duckdb")]
/// Every row of `sql` with its values as text (NULL as empty).
fn rows(catalog: &Catalog, sql: &str) -> Result<Vec<Vec<String>>> {
    let table = Table::from_result(&catalog.query(sql)?)?;
    Ok(table
        .rows
        .iter()
        .map(|r| r.iter().map(|v| display(v, "")).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_group_by_recipient_and_escape_html() {
        let a = |rule: &str, sev, to: &[&str]| Alert {
            rule: rule.into(),
            key: "k".into(),
            severity: sev,
            title: format!("{rule} <fired>"),
            evidence: vec!["/login: 3 5xx, e.g. access.log:1234".into()],
            commands: vec!["logcrunch report errors".into()],
            to: to.iter().map(|s| s.to_string()).collect(),
        };
        let ms = digests(
            &[
                a("errors", Level::Medium, &["a@x", "b@x"]),
                a("attacks", Level::High, &["a@x"]),
            ],
            "r1",
            0,
        );
        assert_eq!(ms.len(), 2);
        let first = &ms[0];
        assert_eq!(first.to, "a@x");
        assert!(
            first
                .subject
                .starts_with("[logcrunch] 2 alerts (high): attacks")
        );
        assert!(first.text.find("attacks").unwrap() < first.text.find("errors").unwrap());
        assert!(first.html.contains("attacks &lt;fired&gt;"));
        assert!(first.text.contains("access.log:1234"));
        assert_eq!(
            ms[1].subject,
            "[logcrunch] 1 alert (medium): errors <fired>"
        );
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let e = EmailConfig {
            password_env: Some("SMTP_PASSWORD".into()),
            ..EmailConfig::default()
        };
        assert!(format!("{e:?}").contains("SMTP_PASSWORD"));
        assert!(e.validate().is_ok());
        let bad = EmailConfig {
            username: Some("u".into()),
            ..EmailConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("password_env"));
    }
}
