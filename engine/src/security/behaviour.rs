//! Behavioural detection: what one client does over time.
//!
//! Each rule selects the requests that count as its events (a POST to a login route, a 404 on a
//! page, a request tagged as an attack...), optionally keeps only the first request per distinct
//! path or user agent, and counts events per client IP in a sliding time window; a client whose
//! count reaches the rule's threshold within the window is a finding. This is CrowdSec's leaky
//! bucket in batch form: a bucket of capacity C leaking one event per L seconds overflows on C + 1
//! events within about C x L seconds.
//!
//! DuckDB evaluates every rule's condition in one scan and streams, per event, only the client, the
//! time, a bit per rule and hashes of the path and user agent. A thread of its own files them per
//! client (for the rules that count a path or user agent once, as (hash, time) pairs cut to the
//! first time per hash as they grow); the clients are then judged in parallel, with two pointers
//! over their sorted times. (The same windows as SQL window functions sort and materialise every row
//! per rule: on 21 million rows, 20 s and 7 GB against about 3 s and a few hundred MB this way.)
//! Only the offending clients go back to SQL, for their evidence: first and last seen, event count,
//! the peak count in a window, and sample requests with their source and byte offset.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, UInt32Type, UInt64Type};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Category;
use crate::catalog::sql_string;
#[cfg(feature = "duckdb")]
use crate::catalog::{Catalog, Table};
use crate::error::{Error, Result};
use crate::parse::value::format_rfc3339;

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

impl BehaviourConfig {
    /// The longest window of any rule, in µs: what a judge of new rows must look back over.
    pub fn longest_window_us(&self) -> i64 {
        [
            self.brute_force,
            self.probing,
            self.crawling,
            self.flood,
            self.sensitive_files,
            self.attacks,
            self.bad_user_agent,
            self.user_agent_switching,
        ]
        .iter()
        .map(|w| w.window_s as i64 * 1_000_000)
        .max()
        .unwrap_or(0)
    }
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

/// What makes events of one rule count once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Distinct {
    /// Every event counts.
    No,
    /// Only a client's first request for each path.
    Path,
    /// Only a client's first request with each user agent.
    UserAgent,
}

/// One rule: its name, what counts as an event (a condition on `logs`, and on `errors` for failed
/// logins), what counts once, and its window.
struct Rule {
    name: &'static str,
    description: &'static str,
    cond: String,
    error_cond: Option<String>,
    distinct: Distinct,
    window: Window,
}

/// One finding: a client that reached a rule's threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Rule name.
    pub rule: &'static str,
    /// What the rule detects.
    pub description: &'static str,
    /// The client.
    pub client_ip: String,
    /// Its first event, µs since the epoch.
    pub first_seen_us: i64,
    /// Its last event.
    pub last_seen_us: i64,
    /// Its events (after de-duplication by path or user agent).
    pub events: u64,
    /// The most events within one window.
    pub peak: u64,
    /// Up to three of its first events as `source:offset METHOD target status`.
    pub samples: Vec<String>,
}

/// The columns of a findings table, in order.
pub const FINDING_COLUMNS: [&str; 8] = [
    "rule",
    "description",
    "client_ip",
    "first_seen",
    "last_seen",
    "events",
    "peak",
    "samples",
];

/// Hashes that are already well mixed, used as they are.
#[derive(Default)]
struct Premixed(u64);

impl Hasher for Premixed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type PremixedMap<V> = HashMap<u64, V, BuildHasherDefault<Premixed>>;

/// One client's events for a rule that counts each path or user agent once: (hash, time) pairs,
/// sorted and cut to the first time per hash whenever they have doubled since the last cut, so
/// that they hold at most about twice the client's distinct hashes.
#[derive(Clone, Default)]
struct Keyed {
    pairs: Vec<(u64, i64)>,
    cut_at: usize,
}

impl Keyed {
    /// Pairs held before the first cut.
    const FIRST_CUT: usize = 256;

    fn push(&mut self, hash: u64, t: i64) {
        self.pairs.push((hash, t));
        if self.pairs.len() >= self.cut_at.max(Self::FIRST_CUT) {
            self.cut();
            self.cut_at = 2 * self.pairs.len();
        }
    }

    /// Keeps the first time of each hash.
    fn cut(&mut self) {
        self.pairs.sort_unstable();
        self.pairs.dedup_by_key(|p| p.0);
    }

    /// The first time of each hash, when there are at least `threshold` hashes.
    fn first_times(&mut self, threshold: u64) -> Option<Vec<i64>> {
        if (self.pairs.len() as u64) < threshold {
            return None;
        }
        self.cut();
        ((self.pairs.len() as u64) >= threshold).then(|| self.pairs.iter().map(|p| p.1).collect())
    }
}

/// One rule's events so far, indexed by client id.
enum RuleEvents {
    /// The time of every event.
    Times(Vec<Vec<i64>>),
    /// (path or user agent hash, time) of every event, kept to the first time per hash.
    Keyed(Vec<Keyed>),
}

/// `per[client]`, growing `per` with empty entries as new clients come.
fn slot<T: Clone + Default>(per: &mut Vec<T>, client: u32) -> &mut T {
    let i = client as usize;
    if per.len() <= i {
        per.resize(i + 1, T::default());
    }
    &mut per[i]
}

/// Text of a string-like column (DuckDB may hand out views or dictionaries).
fn utf8(array: &dyn Array) -> Result<arrow::array::ArrayRef> {
    arrow::compute::cast(array, &DataType::Utf8).map_err(|source| Error::Arrow {
        format: "behaviour events".into(),
        source,
    })
}

/// The valid strings of a string-like array, in order.
fn texts(array: &dyn Array) -> Result<Vec<String>> {
    let items = utf8(array)?;
    let items = items.as_string::<i32>();
    Ok((0..items.len())
        .filter(|&k| items.is_valid(k))
        .map(|k| items.value(k).to_string())
        .collect())
}

/// The most events within `window_us` (inclusive) of sorted `times`.
fn peak(times: &[i64], window_us: i64) -> u64 {
    let mut lo = 0;
    let mut best = 0;
    for (hi, &t) in times.iter().enumerate() {
        while t - times[lo] > window_us {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best as u64
}

/// Event batches that may wait for the consumer: about 16 MB of 2,048-row batches.
#[cfg(feature = "duckdb")]
const EVENT_BATCHES_IN_FLIGHT: usize = 256;

/// The events of every rule, per client, as the events query streams them.
struct Events<'r> {
    rules: &'r [Rule],
    /// The hash of each client, in order of appearance: a client's id is its index.
    hashes: Vec<u64>,
    ids: PremixedMap<u32>,
    per_rule: Vec<RuleEvents>,
}

impl<'r> Events<'r> {
    fn new(rules: &'r [Rule]) -> Events<'r> {
        Events {
            rules,
            hashes: Vec::new(),
            ids: PremixedMap::default(),
            per_rule: rules
                .iter()
                .map(|r| match r.distinct {
                    Distinct::No => RuleEvents::Times(Vec::new()),
                    _ => RuleEvents::Keyed(Vec::new()),
                })
                .collect(),
        }
    }

    /// Adds a batch of the events query ([`Detector::events_sql`]).
    fn add(&mut self, batch: &RecordBatch) {
        let ih = batch.column(0).as_primitive::<UInt64Type>();
        let t = batch.column(1).as_primitive::<Int64Type>();
        let m = batch.column(2).as_primitive::<UInt32Type>();
        let ph = batch.column(3).as_primitive::<UInt64Type>();
        let uh = batch.column(4).as_primitive::<UInt64Type>();
        for row in 0..batch.num_rows() {
            let key = ih.value(row);
            let hashes = &mut self.hashes;
            let client = *self.ids.entry(key).or_insert_with(|| {
                hashes.push(key);
                (hashes.len() - 1) as u32
            });
            let (t, mut m) = (t.value(row), m.value(row));
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                match &mut self.per_rule[i] {
                    RuleEvents::Times(per) => slot(per, client).push(t),
                    RuleEvents::Keyed(per) => {
                        let h = if self.rules[i].distinct == Distinct::Path {
                            ph.value(row)
                        } else {
                            uh.value(row)
                        };
                        slot(per, client).push(h, t);
                    }
                }
            }
        }
    }
}

/// The rules and how they are found.
pub struct Detector {
    rules: Vec<Rule>,
    filter: String,
    error_filter: String,
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
        let page = format!("NOT regexp_matches(coalesce(path, ''), {statics})");
        let rule = |name, description, cond: String, distinct, window| Rule {
            name,
            description,
            cond,
            error_cond: None,
            distinct,
            window,
        };
        let rules = vec![
            Rule {
                error_cond: Some(
                    "regexp_matches(message, '(was not found in|password mismatch|authentication failure|\
                     AH01617|AH01618|AH01790|user .* not found)')"
                        .into(),
                ),
                ..rule(
                    "brute_force",
                    "POSTs to login routes or 401 responses (or failed logins in error logs)",
                    format!("(method = 'POST' AND regexp_matches(coalesce(path, ''), {login})) OR status = 401"),
                    Distinct::No,
                    cfg.brute_force,
                )
            },
            rule(
                "probing",
                "400/403/404 on many distinct non-static paths",
                format!("status IN (400, 403, 404) AND {page}"),
                Distinct::Path,
                cfg.probing,
            ),
            rule(
                "crawling",
                "many distinct non-static pages in a short time",
                page.clone(),
                Distinct::Path,
                cfg.crawling,
            ),
            rule("flood", "request flood", "true".into(), Distinct::No, cfg.flood),
            rule(
                "sensitive_files",
                "probes for configuration, credential, backup or VCS files",
                format!("threats & {sensitive_bit} <> 0"),
                Distinct::Path,
                cfg.sensitive_files,
            ),
            rule(
                "attacks",
                "requests carrying an attack payload (injection, traversal, RFI, exploits)",
                format!("threats & {attack_bits} <> 0"),
                Distinct::No,
                cfg.attacks,
            ),
            rule(
                "bad_user_agent",
                "requests from a scanner or attack tool",
                format!("threats & {scanner_bit} <> 0"),
                Distinct::No,
                cfg.bad_user_agent,
            ),
            rule(
                "user_agent_switching",
                "one address presenting many user agents",
                "user_agent IS NOT NULL".into(),
                Distinct::UserAgent,
                cfg.user_agent_switching,
            ),
        ];
        Detector {
            rules,
            filter: filter.to_string(),
            error_filter: error_filter.to_string(),
        }
    }

    /// The filter (on `logs` and `errors`) of the days `first..=last` (`YYYY-MM-DD`).
    pub fn days_filter(first: &str, last: &str) -> String {
        format!(
            "date BETWEEN CAST({} AS DATE) AND CAST({} AS DATE)",
            sql_string(first),
            sql_string(last)
        )
    }

    /// The filter of the times `from_us..=until_us` (µs since the epoch), with the days they
    /// fall on for the partitions.
    pub fn span_filter(from_us: i64, until_us: i64) -> String {
        let day = |us: i64| format_rfc3339(us)[..10].to_string();
        format!(
            "{} AND ts >= make_timestamp({from_us}) AND ts <= make_timestamp({until_us})",
            Self::days_filter(&day(from_us), &day(until_us))
        )
    }

    /// The one scan that finds every rule's events: a hash of the client, the time (µs), a bit per
    /// rule (bit i for rule i), and hashes of the path and the user agent. Only numbers cross over:
    /// the clients' addresses are looked up for the offenders alone.
    ///
    /// The events stream to Rust in chunks: memory stays that of a chunk and of the per-client
    /// times, whatever the rows (folding them in DuckDB first, by client or by client and time,
    /// held every event in memory and cost more than it saved).
    pub fn events_sql(&self) -> String {
        let bits: Vec<String> = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| format!("(CASE WHEN {} THEN {} ELSE 0 END)", r.cond, 1u32 << i))
            .collect();
        let mut sql = format!(
            "SELECT ih, t, m, ph, uh FROM (
                 SELECT hash(client_ip) AS ih, epoch_us(ts) AS t, CAST({} AS UINTEGER) AS m,
                        hash(path) AS ph, hash(user_agent) AS uh
                 FROM logs WHERE ({}) AND client_ip IS NOT NULL AND ts IS NOT NULL)
             WHERE m <> 0",
            bits.join(" | "),
            self.filter
        );
        for (i, r) in self.rules.iter().enumerate() {
            if let Some(cond) = &r.error_cond {
                sql.push_str(&format!(
                    "\nUNION ALL SELECT hash(client) AS ih, epoch_us(ts) AS t, CAST({} AS UINTEGER) AS m,
                            CAST(0 AS UBIGINT) AS ph, CAST(0 AS UBIGINT) AS uh
                     FROM errors WHERE ({}) AND client IS NOT NULL AND ts IS NOT NULL AND ({cond})",
                    1u32 << i,
                    self.error_filter
                ));
            }
        }
        sql
    }

    /// The query of the address and sample requests of the clients hashed to `clients`, for `rule`.
    fn samples_sql(&self, rule: &Rule, clients: &[u64]) -> String {
        let list: Vec<String> = clients.iter().map(u64::to_string).collect();
        let list = list.join(", ");
        let mut events = format!(
            "SELECT client_ip AS ip, ts, source, \"offset\", method, path, query, status, user_agent
             FROM logs WHERE ({}) AND hash(client_ip) IN ({list}) AND ({})",
            self.filter, rule.cond
        );
        if let Some(cond) = &rule.error_cond {
            events.push_str(&format!(
                "\nUNION ALL SELECT client, ts, source, \"offset\", NULL, NULL, NULL, NULL, NULL
                 FROM errors WHERE ({}) AND hash(client) IN ({list}) AND ({cond})",
                self.error_filter
            ));
        }
        let first = match rule.distinct {
            Distinct::No => "",
            Distinct::Path => {
                "QUALIFY row_number() OVER (PARTITION BY ip, path ORDER BY ts, source, \"offset\") = 1"
            }
            Distinct::UserAgent => {
                "QUALIFY row_number() OVER (PARTITION BY ip, user_agent ORDER BY ts, source, \"offset\") = 1"
            }
        };
        format!(
            "SELECT hash(ip) AS ih, ip, list({SAMPLE} ORDER BY ts, source, \"offset\")[1:3] AS samples
             FROM (SELECT * FROM ({events}) {first}) GROUP BY ip"
        )
    }

    #[cfg(feature = "duckdb")]
    /// Judges the days `first..=last` of `dataset` again and stores the findings in its catalog
    /// (table `findings`, see [`Catalog::store_findings`]), taking the writer's lock for the
    /// moment; returns how many findings `run` detected first. The detector's filters should
    /// select those days ([`Detector::days_filter`]).
    pub fn store(&self, dataset: &Path, run: &str, first: &str, last: &str) -> Result<u64> {
        let (_lock, catalog) = crate::catalog::open_writer(dataset)?;
        let findings = self.find(&catalog)?;
        catalog.store_findings(&findings_values_sql(&findings), run, first, last)?;
        catalog.findings_of_run(run)
    }

    #[cfg(feature = "duckdb")]
    /// Judges a span of time in `dataset` (the detector's filters select it, see
    /// [`Detector::span_filter`]: new rows and the longest window before them) and merges the
    /// findings into its catalog; returns how many findings `run` detected first. A client with
    /// a finding stored whose first event is at or after `since_us` has that finding extended
    /// by its events after the finding's last one (whatever their count in this span); other
    /// clients are judged against the thresholds. So a finding of `watch` covers a client's
    /// events from the window that first crossed the threshold on, as the spans go by.
    pub fn store_span(&self, dataset: &Path, run: &str, since_us: i64) -> Result<u64> {
        let (_lock, catalog) = crate::catalog::open_writer(dataset)?;
        let prior = self.stored_findings(&catalog, since_us)?;
        let findings = self.find_extending(&catalog, &prior)?;
        catalog.merge_findings(&findings_values_sql(&findings), run)?;
        catalog.findings_of_run(run)
    }

    #[cfg(feature = "duckdb")]
    /// The findings stored with a first event at or after `since_us`, per rule and client hash
    /// (the latest when a client has several).
    fn stored_findings(
        &self,
        catalog: &Catalog,
        since_us: i64,
    ) -> Result<Vec<PremixedMap<Finding>>> {
        let mut per_rule = self.no_findings();
        if !catalog.has_table("findings")? {
            return Ok(per_rule);
        }
        let result = catalog.query(&format!(
            "SELECT rule, hash(client_ip), client_ip, epoch_us(first_seen), epoch_us(last_seen),
                    events, peak, samples
             FROM findings WHERE epoch_us(first_seen) >= {since_us} ORDER BY last_seen"
        ))?;
        for batch in &result.batches {
            let name = utf8(batch.column(0))?;
            let name = name.as_string::<i32>();
            let ih = batch.column(1).as_primitive::<UInt64Type>();
            let ip = utf8(batch.column(2))?;
            let ip = ip.as_string::<i32>();
            let int = |c: usize| batch.column(c).as_primitive::<Int64Type>();
            let (first, last, events, peak) = (int(3), int(4), int(5), int(6));
            let samples = batch.column(7).as_list::<i32>();
            for row in 0..batch.num_rows() {
                let Some(i) = self.rules.iter().position(|r| r.name == name.value(row)) else {
                    continue;
                };
                let finding = Finding {
                    rule: self.rules[i].name,
                    description: self.rules[i].description,
                    client_ip: ip.value(row).to_string(),
                    first_seen_us: first.value(row),
                    last_seen_us: last.value(row),
                    events: events.value(row) as u64,
                    peak: peak.value(row) as u64,
                    samples: texts(&samples.value(row))?,
                };
                per_rule[i].insert(ih.value(row), finding);
            }
        }
        Ok(per_rule)
    }

    #[cfg(feature = "duckdb")]
    /// Finds every rule's offending clients, ordered by rule, first event and client.
    pub fn find(&self, catalog: &Catalog) -> Result<Vec<Finding>> {
        self.find_extending(catalog, &self.no_findings())
    }

    /// No stored findings, per rule.
    fn no_findings(&self) -> Vec<PremixedMap<Finding>> {
        self.rules.iter().map(|_| PremixedMap::default()).collect()
    }

    #[cfg(feature = "duckdb")]
    /// [`Detector::find`], extending the findings of `prior` (per rule, by client hash) instead
    /// of judging those clients again.
    fn find_extending(
        &self,
        catalog: &Catalog,
        prior: &[PremixedMap<Finding>],
    ) -> Result<Vec<Finding>> {
        let started = std::time::Instant::now();
        let events = self.collect(catalog)?;
        tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            "behaviour events"
        );
        let mut found = Vec::new();
        for ((rule, per), prior) in self.rules.iter().zip(events.per_rule).zip(prior) {
            let started = std::time::Instant::now();
            let mut hits = offenders(rule, per, &events.hashes, prior);
            let judged = started.elapsed();
            // Extended findings come with their address and samples.
            hits.sort_by_key(|(_, f)| !f.client_ip.is_empty());
            let new = hits
                .iter()
                .take_while(|(_, f)| f.client_ip.is_empty())
                .count();
            for chunk in hits[..new].chunks_mut(1000) {
                self.add_evidence(catalog, rule, chunk)?;
            }
            tracing::debug!(
                rule = rule.name,
                offenders = hits.len(),
                judge_ms = judged.as_millis() as u64,
                evidence_ms = (started.elapsed() - judged).as_millis() as u64,
                "behaviour rule"
            );
            found.extend(hits.into_iter().map(|(_, f)| f));
        }
        found.sort_by(|a, b| {
            (a.rule, a.first_seen_us, &a.client_ip).cmp(&(b.rule, b.first_seen_us, &b.client_ip))
        });
        Ok(found)
    }

    #[cfg(feature = "duckdb")]
    /// Every rule's events per client, from one run of [`Detector::events_sql`]. The batches go
    /// to a thread of their own: waiting on a slow consumer, DuckDB's workers spin on the
    /// stream's buffer and take the CPU the consumer needs (on 21 M rows, 25.9 s against 21.5 s
    /// for `report security`).
    fn collect(&self, catalog: &Catalog) -> Result<Events<'_>> {
        let (send, receive) = std::sync::mpsc::sync_channel::<RecordBatch>(EVENT_BATCHES_IN_FLIGHT);
        std::thread::scope(|scope| {
            let consumer = scope.spawn(|| {
                let mut events = Events::new(&self.rules);
                for batch in receive {
                    events.add(&batch);
                }
                events
            });
            let streamed = catalog.for_each_batch(&self.events_sql(), |batch| {
                // A closed channel means the consumer panicked, which `join` reports.
                let _ = send.send(batch.clone());
                Ok(())
            });
            drop(send);
            let events = consumer.join().expect("the events consumer does not panic");
            streamed.map(|()| events)
        })
    }

    #[cfg(feature = "duckdb")]
    /// Fills in the address and sample requests of `hits` (client hash, finding) of `rule`.
    fn add_evidence(
        &self,
        catalog: &Catalog,
        rule: &Rule,
        hits: &mut [(u64, Finding)],
    ) -> Result<()> {
        let clients: Vec<u64> = hits.iter().map(|(h, _)| *h).collect();
        let result = catalog.query(&self.samples_sql(rule, &clients))?;
        let mut evidence: HashMap<u64, (String, Vec<String>)> = HashMap::new();
        for batch in &result.batches {
            let ih = batch.column(0).as_primitive::<UInt64Type>();
            let ip = utf8(batch.column(1))?;
            let ip = ip.as_string::<i32>();
            let list = batch.column(2).as_list::<i32>();
            for row in 0..batch.num_rows() {
                let samples = texts(&list.value(row))?;
                evidence.insert(ih.value(row), (ip.value(row).to_string(), samples));
            }
        }
        for (h, f) in hits.iter_mut() {
            if let Some((ip, samples)) = evidence.remove(h) {
                f.client_ip = ip;
                f.samples = samples;
            }
        }
        Ok(())
    }
}

/// The clients whose events reach `rule`'s threshold within its window, as (client hash,
/// finding without its address and samples), in order of client id. Clients are judged in
/// parallel: the events query is done by then.
fn offenders(
    rule: &Rule,
    per: RuleEvents,
    hashes: &[u64],
    prior: &PremixedMap<Finding>,
) -> Vec<(u64, Finding)> {
    use rayon::prelude::*;
    let threshold = rule.window.threshold.max(1);
    let window_us = rule.window.window_s as i64 * 1_000_000;
    // Events a client needs before it is judged: one when it has a finding to extend.
    let needs = |client: usize| {
        if prior.contains_key(&hashes[client]) {
            1
        } else {
            threshold
        }
    };
    // `ts` sorted, at least `needs(client)` long.
    let judge = |client: usize, ts: Vec<i64>| -> Option<(u64, Finding)> {
        let hash = hashes[client];
        let peak = peak(&ts, window_us);
        let last = *ts.last()?;
        if let Some(p) = prior.get(&hash) {
            let new = ts.iter().filter(|&&t| t > p.last_seen_us).count() as u64;
            return (new > 0).then(|| {
                let finding = Finding {
                    last_seen_us: p.last_seen_us.max(last),
                    events: p.events + new,
                    peak: p.peak.max(peak),
                    ..p.clone()
                };
                (hash, finding)
            });
        }
        (peak >= threshold).then(|| {
            let finding = Finding {
                rule: rule.name,
                description: rule.description,
                client_ip: String::new(),
                first_seen_us: ts[0],
                last_seen_us: last,
                events: ts.len() as u64,
                peak,
                samples: Vec::new(),
            };
            (hash, finding)
        })
    };
    match per {
        // A client's times come as runs in arrival order, which a merging sort takes as they are
        // (the flood rule on 21 M rows: 0.4 s against 0.7 s unstably sorted).
        RuleEvents::Times(per) => per
            .into_par_iter()
            .enumerate()
            .filter(|(client, ts)| ts.len() as u64 >= needs(*client))
            .filter_map(|(client, mut ts)| {
                ts.sort();
                judge(client, ts)
            })
            .collect(),
        // First times come in order of hash.
        RuleEvents::Keyed(per) => per
            .into_par_iter()
            .enumerate()
            .filter_map(|(client, mut k)| {
                let mut ts = k.first_times(needs(client))?;
                ts.sort_unstable();
                judge(client, ts)
            })
            .collect(),
    }
}

#[cfg(feature = "duckdb")]
/// `findings` as a report table (times as ISO 8601 UTC, like other report times).
pub fn findings_table(findings: &[Finding]) -> Table {
    let time = |us: i64| Value::from(format_rfc3339(us).trim_end_matches('Z').to_string());
    Table {
        columns: FINDING_COLUMNS.iter().map(|c| c.to_string()).collect(),
        rows: findings
            .iter()
            .map(|f| {
                vec![
                    Value::from(f.rule),
                    Value::from(f.description),
                    Value::from(f.client_ip.clone()),
                    time(f.first_seen_us),
                    time(f.last_seen_us),
                    Value::from(f.events),
                    Value::from(f.peak),
                    Value::from(f.samples.clone()),
                ]
            })
            .collect(),
    }
}

/// A SELECT of `findings` with the columns of [`FINDING_COLUMNS`] (times as TIMESTAMP), to store
/// them in a table.
pub fn findings_values_sql(findings: &[Finding]) -> String {
    let mut rows: Vec<String> = findings
        .iter()
        .map(|f| {
            let samples: Vec<String> = f.samples.iter().map(|s| sql_string(s)).collect();
            format!(
                "({}, {}, {}, make_timestamp(CAST({} AS BIGINT)), make_timestamp(CAST({} AS BIGINT)), CAST({} AS BIGINT), CAST({} AS BIGINT), CAST([{}] AS VARCHAR[]))",
                sql_string(f.rule),
                sql_string(f.description),
                sql_string(&f.client_ip),
                f.first_seen_us,
                f.last_seen_us,
                f.events,
                f.peak,
                samples.join(", ")
            )
        })
        .collect();
    if rows.is_empty() {
        rows.push("(NULL, NULL, NULL, NULL::TIMESTAMP, NULL::TIMESTAMP, NULL::BIGINT, NULL::BIGINT, NULL::VARCHAR[])".into());
        return format!(
            "SELECT * FROM (VALUES {}) AS f({}) WHERE false",
            rows[0],
            FINDING_COLUMNS.join(", ")
        );
    }
    format!(
        "SELECT * FROM (VALUES {}) AS f({})",
        rows.join(",\n"),
        FINDING_COLUMNS.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_extends_stored_findings_and_judges_new_clients() {
        let rule = Rule {
            name: "flood",
            description: "request flood",
            cond: "true".into(),
            error_cond: None,
            distinct: Distinct::No,
            window: w(3, 10),
        };
        let s = 1_000_000;
        let stored = Finding {
            rule: "flood",
            description: "request flood",
            client_ip: "10.0.0.2".into(),
            first_seen_us: 5 * s,
            last_seen_us: 100 * s,
            events: 10,
            peak: 5,
            samples: vec!["a.log:1 GET / 200".into()],
        };
        let mut prior = PremixedMap::default();
        prior.insert(0xb, stored.clone());
        prior.insert(0xc, stored.clone());
        // a: a new offender; b: stored, two events after its last (one before it is the
        // lookback, already counted); c: stored, nothing new; d: one event, below the threshold.
        let per = RuleEvents::Times(vec![
            vec![200 * s, 201 * s, 202 * s],
            vec![130 * s, 90 * s, 120 * s],
            vec![95 * s],
            vec![300 * s],
        ]);
        let mut hits = offenders(&rule, per, &[0xa, 0xb, 0xc, 0xd], &prior);
        hits.sort_by_key(|(h, _)| *h);
        assert_eq!(hits.len(), 2, "{hits:?}");
        let (a, b) = (&hits[0], &hits[1]);
        assert_eq!(a.0, 0xa);
        assert_eq!(
            (a.1.first_seen_us, a.1.last_seen_us, a.1.events, a.1.peak),
            (200 * s, 202 * s, 3, 3)
        );
        assert!(
            a.1.client_ip.is_empty(),
            "a new finding gets its evidence later"
        );
        assert_eq!(b.0, 0xb);
        assert_eq!(
            b.1,
            Finding {
                last_seen_us: 130 * s,
                events: 12,
                ..stored
            }
        );
    }

    #[test]
    fn peak_counts_events_within_the_window_inclusive() {
        assert_eq!(peak(&[0, 10, 20, 30], 10), 2);
        assert_eq!(peak(&[0, 10, 20, 30], 30), 4);
        assert_eq!(peak(&[5, 5, 5, 100], 0), 3);
        assert_eq!(peak(&[], 10), 0);
    }

    proptest::proptest! {
        /// Whatever the order and repeats of the pairs, and however often they are cut, a
        /// client's keyed events give the earliest time of each hash.
        #[test]
        fn keyed_events_equal_the_first_time_per_hash(
            pairs in proptest::collection::vec((0u64..40, -50i64..50), 0..2000),
            threshold in 1u64..45,
        ) {
            let mut k = Keyed::default();
            let mut first: HashMap<u64, i64> = HashMap::new();
            for &(h, t) in &pairs {
                k.push(h, t);
                let e = first.entry(h).or_insert(t);
                *e = (*e).min(t);
            }
            let mut want: Vec<i64> = first.into_values().collect();
            want.sort_unstable();
            let got = k.first_times(threshold).map(|mut v| {
                v.sort_unstable();
                v
            });
            proptest::prop_assert_eq!(got, (want.len() as u64 >= threshold).then_some(want));
        }
    }

    #[test]
    fn keyed_events_keep_the_first_time_of_each_hash() {
        let mut k = Keyed::default();
        // Many repeats of three hashes pass the first cut; the earliest time of each survives.
        for round in 0..200i64 {
            for h in [3u64, 1, 2] {
                k.push(h, 1_000 - round * 3 - h as i64);
            }
        }
        assert!(k.pairs.len() < Keyed::FIRST_CUT);
        assert_eq!(k.first_times(4), None);
        let mut firsts = k.first_times(3).unwrap();
        firsts.sort_unstable();
        assert_eq!(firsts, [1_000 - 597 - 3, 1_000 - 597 - 2, 1_000 - 597 - 1]);
    }
}
