//! The `realistic` traffic profile: what a benchmark must survive, not what a test can count.
//!
//! Real access logs are sessions, not independent draws: a visitor arrives (from a search engine,
//! another site or nowhere), views a few pages and fetches each page's assets, with one client
//! address and one user agent throughout; crawlers walk pages only. Pages, clients, user agents and
//! external referers are drawn from Zipf laws over large populations, so the distinct values keep
//! growing with the length of the log as they do in real archives (hundreds of thousands of paths
//! and clients in a few million lines), while a small set of shared assets stays hot. Each drawn
//! index is turned into a value by hashing it into parts (a slug from words, a browser build, a
//! host name), so no table of values is stored. The constants were fitted on the real logs in
//! `realdata/` (the public Apache log of `elastic_examples` and the access logs of `wild/`):
//! `scripts/calibrate.py` prints the profile beside them.

use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Zipf};

use super::client_ip;

/// Sessions in progress at once; their requests interleave in the log.
const CONCURRENT: usize = 24;
/// Share of sessions that are crawlers and tools.
const BOT_SHARE: f64 = 0.25;
/// Share of page views that carry a query string.
const QUERY_SHARE: f64 = 0.14;

const WORDS: [&str; 64] = [
    "about", "account", "admin", "apache", "archive", "backup", "blog", "book", "cache", "cart",
    "city", "cloud", "code", "config", "data", "debian", "design", "docker", "docs", "event",
    "feed", "file", "forum", "game", "guide", "help", "home", "image", "index", "java", "kernel",
    "linux", "local", "mail", "map", "media", "music", "news", "nginx", "note", "open", "page",
    "photo", "post", "press", "python", "release", "rust", "search", "server", "shop", "sport",
    "store", "style", "team", "tech", "travel", "update", "user", "video", "web", "wiki", "work",
    "year",
];

const SEARCH_ENGINES: [&str; 8] = [
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://www.google.de/",
    "https://yandex.ru/",
    "https://www.baidu.com/",
    "https://www.google.co.uk/",
    "https://search.yahoo.com/",
];

const BOT_FAMILIES: [&str; 16] = [
    "Mozilla/5.0 (compatible; Googlebot/2.{v}; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.{v}; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.{v}; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.{v}; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl{v}; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 (compatible; DotBot/1.{v}; http://www.opensiteexplorer.org/dotbot)",
    "Mozilla/5.0 (compatible; MJ12bot/v1.4.{v}; http://mj12bot.com/)",
    "Mozilla/5.0 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot) v{v}",
    "Mozilla/5.0 (compatible; Baiduspider/2.{v}; +http://www.baidu.com/search/spider.html)",
    "facebookexternalhit/1.{v} (+http://www.facebook.com/externalhit_uatext.php)",
    "curl/7.{v}.0",
    "python-requests/2.{v}.0",
    "Go-http-client/1.{v}",
    "Wget/1.{v}.2 (linux-gnu)",
    "okhttp/4.{v}.0",
    "Apache-HttpClient/4.5.{v} (Java/1.8.0_{v})",
];

/// A request as drawn: the fields the line shows.
#[derive(Debug, Default)]
pub(super) struct Drawn {
    /// Client address.
    pub(super) ip: String,
    /// Authenticated user or `-`.
    pub(super) user: String,
    /// Method.
    pub(super) method: &'static str,
    /// Path and query string.
    pub(super) target: String,
    /// Status code.
    pub(super) status: u16,
    /// Response size.
    pub(super) bytes: u64,
    /// Referer or `-`.
    pub(super) referer: String,
    /// User agent.
    pub(super) agent: String,
    /// Response time.
    pub(super) rt_us: u64,
}

struct Session {
    ip: String,
    user: String,
    agent: String,
    bot: bool,
    left: u32,
    /// The page being viewed (its assets follow it), and the referer of the next page view.
    page: String,
    referer: String,
}

/// The site and its visitors; see the module docs.
pub(super) struct Site {
    clients: Zipf<f64>,
    human_agents: Zipf<f64>,
    bot_agents: Zipf<f64>,
    pages: Zipf<f64>,
    assets: Zipf<f64>,
    externals: Zipf<f64>,
    page_time: LogNormal<f64>,
    asset_time: LogNormal<f64>,
    api_time: LogNormal<f64>,
    page_size: LogNormal<f64>,
    asset_size: LogNormal<f64>,
    api_size: LogNormal<f64>,
    sessions: Vec<Session>,
}

impl Site {
    /// The site's populations; sessions start as they are needed.
    pub(super) fn new() -> Site {
        let zipf = |n: f64, s: f64| Zipf::new(n, s).expect("valid Zipf");
        let lognormal =
            |median: f64, sigma: f64| LogNormal::new(median.ln(), sigma).expect("valid lognormal");
        Site {
            clients: zipf(5_000_000.0, 1.0),
            human_agents: zipf(200_000.0, 1.1),
            bot_agents: zipf(4_000.0, 1.1),
            pages: zipf(2_000_000.0, 1.15),
            assets: zipf(40.0, 1.3),
            externals: zipf(500_000.0, 1.0),
            page_time: lognormal(60_000.0, 0.9),
            asset_time: lognormal(1_500.0, 0.8),
            api_time: lognormal(30_000.0, 1.1),
            page_size: lognormal(25_000.0, 0.8),
            asset_size: lognormal(15_000.0, 1.5),
            api_size: lognormal(1_500.0, 1.0),
            sessions: Vec::with_capacity(CONCURRENT),
        }
    }

    /// Draws the next request into `out`.
    pub(super) fn next(&mut self, rng: &mut StdRng, out: &mut Drawn) {
        if self.sessions.len() < CONCURRENT {
            let s = self.start_session(rng);
            self.sessions.push(s);
        }
        let i = rng.random_range(0..self.sessions.len());
        let roll: f64 = rng.random();
        let bot = self.sessions[i].bot;
        out.target.clear();
        out.referer.clear();
        if bot || roll < 0.3 || self.sessions[i].page.is_empty() {
            self.page_view(rng, i, out);
        } else if roll < 0.92 {
            self.asset(rng, i, out);
        } else {
            self.api_call(rng, i, out);
        }
        let s = &mut self.sessions[i];
        out.ip.clone_from(&s.ip);
        out.user.clone_from(&s.user);
        out.agent.clone_from(&s.agent);
        s.left -= 1;
        if s.left == 0 {
            self.sessions.swap_remove(i);
        }
    }

    fn start_session(&self, rng: &mut StdRng) -> Session {
        let client = self.clients.sample(rng) as u64;
        // A client keeps its user agent and kind across sessions.
        let mut own = StdRng::seed_from_u64(client ^ 0x9e37_79b9_7f4a_7c15);
        let bot = own.random::<f64>() < BOT_SHARE;
        let agent = if bot {
            bot_agent(self.bot_agents.sample(&mut own) as u64)
        } else {
            human_agent(self.human_agents.sample(&mut own) as u64)
        };
        let ip = if own.random::<f64>() < 0.06 {
            let h = mix(client);
            format!(
                "2a02:{:x}:{:x}:{:x}::{:x}",
                h >> 48,
                (h >> 32) & 0xffff,
                (h >> 16) & 0xffff,
                h & 0xfff
            )
        } else {
            client_ip(client as u32 ^ (client >> 32) as u32)
        };
        let user = if !bot && own.random::<f64>() < 0.01 {
            format!("{}{}", WORDS[(client % 64) as usize], client % 1000)
        } else {
            "-".to_string()
        };
        let referer = if bot {
            "-".to_string()
        } else {
            self.entry_referer(rng)
        };
        let mean = if bot { 4.0 } else { 3.5 };
        let left = 1 + (-(1.0 - rng.random::<f64>()).ln() * mean) as u32;
        Session {
            ip,
            user,
            agent,
            bot,
            left,
            page: String::new(),
            referer,
        }
    }

    fn entry_referer(&self, rng: &mut StdRng) -> String {
        let r: f64 = rng.random();
        if r < 0.6 {
            "-".into()
        } else if r < 0.80 {
            let k = (-(1.0 - rng.random::<f64>()).ln() * 1.5) as usize;
            SEARCH_ENGINES[k.min(SEARCH_ENGINES.len() - 1)].into()
        } else {
            let h = mix(self.externals.sample(rng) as u64);
            let tld = ["com", "org", "net", "io", "de", "fr", "co.uk", "ru"][(h % 8) as usize];
            format!(
                "https://{}{}.{tld}/{}/{}",
                word(h >> 3),
                (h >> 9) % 1000,
                word(h >> 19),
                (h >> 25) % 100_000
            )
        }
    }

    fn page_view(&mut self, rng: &mut StdRng, i: usize, out: &mut Drawn) {
        let s = &self.sessions[i];
        let k = self.pages.sample(rng) as u64;
        let page = page_path(k);
        out.method = if s.bot && rng.random::<f64>() < 0.03 {
            "HEAD"
        } else {
            "GET"
        };
        out.target.push_str(&page);
        if rng.random::<f64>() < QUERY_SHARE {
            out.target.push('?');
            query(rng, &mut out.target);
        }
        out.referer.push_str(&s.referer);
        let r: f64 = rng.random();
        (out.status, out.bytes) = match r {
            r if r < 0.02 => (404, 400 + rng.random_range(0..800)),
            r if r < 0.05 => (301, 150 + rng.random_range(0..200)),
            r if r < 0.053 => ([500, 502, 503][rng.random_range(0..3)], 0),
            _ => (200, self.page_size.sample(rng) as u64),
        };
        out.rt_us = self.page_time.sample(rng) as u64;
        let s = &mut self.sessions[i];
        s.referer = if s.bot || rng.random::<f64>() < 0.4 {
            "-".into()
        } else {
            format!("https://www.example.org{page}")
        };
        s.page = page;
    }

    fn asset(&self, rng: &mut StdRng, i: usize, out: &mut Drawn) {
        let s = &self.sessions[i];
        out.method = "GET";
        if rng.random::<f64>() < 0.75 {
            let k = self.assets.sample(rng) as u64;
            let h = mix(k);
            let ext = ["css", "js", "png", "svg", "woff2", "ico"][(k % 6) as usize];
            let _ = write!(
                out.target,
                "/static/{}/{}.{:08x}.{ext}",
                ["css", "js", "img", "img", "fonts", "img"][(k % 6) as usize],
                word(h),
                (h >> 8) as u32
            );
            if k.is_multiple_of(7) {
                let _ = write!(out.target, "?v={}", (h >> 40) % 100);
            }
        } else {
            // The page's own images: the same few for every view of it.
            let h = mix(s.page.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
            }));
            let n = rng.random_range(0..4);
            let _ = write!(
                out.target,
                "/uploads/{}/{:02}/{}-{}-{n}.jpg",
                2015 + h % 10,
                1 + (h >> 4) % 12,
                word(h >> 8),
                (h >> 16) % 100_000
            );
        }
        if rng.random::<f64>() < 0.8 {
            let _ = write!(out.referer, "https://www.example.org{}", s.page);
        } else {
            out.referer.push('-');
        }
        let r: f64 = rng.random();
        (out.status, out.bytes) = match r {
            r if r < 0.22 => (304, 0),
            r if r < 0.235 => (404, 300 + rng.random_range(0..300)),
            r if r < 0.24 => (206, self.asset_size.sample(rng) as u64 / 2),
            _ => (200, self.asset_size.sample(rng) as u64),
        };
        out.rt_us = self.asset_time.sample(rng) as u64;
    }

    fn api_call(&self, rng: &mut StdRng, i: usize, out: &mut Drawn) {
        let s = &self.sessions[i];
        let post = rng.random::<f64>() < 0.25;
        out.method = if post { "POST" } else { "GET" };
        let resource =
            ["comments", "likes", "items", "search", "session", "events"][rng.random_range(0..6)];
        let _ = write!(out.target, "/api/v2/{resource}");
        if !post {
            let _ = write!(
                out.target,
                "/{}?fields={}&_={}",
                rng.random_range(1..1_000_000),
                word(rng.random()),
                1_600_000_000_000u64 + rng.random_range(0..200_000_000_000)
            );
        }
        let _ = write!(out.referer, "https://www.example.org{}", s.page);
        let r: f64 = rng.random();
        (out.status, out.bytes) = match r {
            r if r < 0.03 => (401, 60),
            r if r < 0.05 => (422, 120),
            r if r < 0.055 => (500, 0),
            _ if post => (201, self.api_size.sample(rng) as u64),
            _ => (200, self.api_size.sample(rng) as u64),
        };
        out.rt_us = self.api_time.sample(rng) as u64;
    }
}

/// Requests-per-second factor at `ts` (µs since the epoch): a daily cycle with its low at 03:00
/// and its high at 15:00 UTC, half to one and a half times the mean.
pub(super) fn diurnal(ts: i64) -> f64 {
    let hour = ts.rem_euclid(86_400 * 1_000_000) as f64 / 3_600e6;
    1.0 - 0.5 * ((hour - 3.0) / 24.0 * std::f64::consts::TAU).cos()
}

/// splitmix64: spreads an index's bits so that its parts look independent.
fn mix(k: u64) -> u64 {
    let mut z = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn word(h: u64) -> &'static str {
    WORDS[(h % WORDS.len() as u64) as usize]
}

/// The path of page `k`: a section and a slug or id, all from `k`'s hash.
fn page_path(k: u64) -> String {
    let h = mix(k);
    let (a, b, c) = (word(h >> 8), word(h >> 14), word(h >> 20));
    let id = k + 1000;
    match h % 8 {
        0 if k < 4 => ["/", "/index.html", "/about/", "/feed/"][k as usize].to_string(),
        0 | 1 => format!(
            "/blog/{}/{:02}/{a}-{b}-{c}-{id}/",
            2008 + (h >> 26) % 17,
            1 + (h >> 31) % 12
        ),
        2 => format!("/products/{a}-{b}-{id}"),
        3 => format!("/tag/{a}-{b}/"),
        4 => format!("/docs/{a}/{b}-{c}-{id}.html"),
        5 => format!("/wiki/{}_{}_{id}", capital(a), capital(b)),
        6 => format!("/forum/topic/{id}/{a}-{b}/page/{}", 1 + (h >> 36) % 9),
        _ => format!("/{a}/{b}/{id}.php"),
    }
}

fn capital(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// A query string: paging, campaign tags, searches, ids, click ids.
fn query(rng: &mut StdRng, out: &mut String) {
    match rng.random_range(0..6) {
        0 => {
            let _ = write!(out, "page={}", 2 + rng.random_range(0..40));
        }
        1 => {
            let _ = write!(
                out,
                "utm_source={}&utm_medium={}&utm_campaign={}{}",
                ["newsletter", "twitter", "facebook", "reddit"][rng.random_range(0..4)],
                ["email", "social", "cpc"][rng.random_range(0..3)],
                word(rng.random()),
                rng.random_range(1..500)
            );
        }
        2 => {
            let _ = write!(
                out,
                "q={}+{}&lang={}",
                word(rng.random()),
                word(rng.random()),
                ["en", "de", "fr", "es"][rng.random_range(0..4)]
            );
        }
        3 => {
            let _ = write!(
                out,
                "id={}&sort={}",
                rng.random_range(1..2_000_000),
                word(rng.random())
            );
        }
        4 => {
            out.push_str("fbclid=IwAR");
            for _ in 0..2 {
                let _ = write!(out, "{:016x}", rng.random::<u64>());
            }
        }
        _ => {
            let _ = write!(out, "replytocom={}", rng.random_range(1..100_000));
        }
    }
}

/// A browser user agent: family, platform and build from `k`'s hash.
fn human_agent(k: u64) -> String {
    let h = mix(k ^ 0x5555);
    let platform = [
        "Windows NT 10.0; Win64; x64",
        "Windows NT 6.1; Win64; x64",
        "Macintosh; Intel Mac OS X 10_15_7",
        "X11; Linux x86_64",
        "X11; Ubuntu; Linux x86_64",
        "Windows NT 10.0; WOW64",
    ];
    let chrome = 70 + (h >> 8) % 62;
    let build = (h >> 16) % 6000;
    let patch = (h >> 29) % 250;
    match h % 10 {
        0..=4 => format!(
            "Mozilla/5.0 ({}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{chrome}.0.{build}.{patch} Safari/537.36",
            platform[((h >> 40) % 6) as usize]
        ),
        5 => {
            let ff = 60 + (h >> 8) % 72;
            format!(
                "Mozilla/5.0 ({}; rv:{ff}.0) Gecko/20100101 Firefox/{ff}.0",
                platform[((h >> 40) % 6) as usize]
            )
        }
        6 => format!(
            "Mozilla/5.0 (iPhone; CPU iPhone OS {}_{} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{}.{} Mobile/15E148 Safari/604.1",
            12 + (h >> 8) % 7,
            (h >> 12) % 7,
            12 + (h >> 8) % 7,
            (h >> 16) % 3
        ),
        7 => format!(
            "Mozilla/5.0 (Linux; Android {}; {}-{}{}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{chrome}.0.{build}.{patch} Mobile Safari/537.36",
            8 + (h >> 40) % 7,
            ["SM", "Pixel", "Redmi", "moto", "CPH", "M2101"][((h >> 44) % 6) as usize],
            ["G", "A", "N", "K"][((h >> 48) % 4) as usize],
            (h >> 50) % 1000
        ),
        8 => format!(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_{}_{}) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{}.{} Safari/605.1.15",
            12 + (h >> 8) % 4,
            (h >> 12) % 7,
            12 + (h >> 16) % 6,
            (h >> 20) % 3
        ),
        _ => format!(
            "Mozilla/5.0 ({}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{chrome}.0.{build}.{patch} Safari/537.36 Edg/{chrome}.0.{}.{}",
            platform[((h >> 40) % 6) as usize],
            (h >> 44) % 2000,
            (h >> 52) % 100
        ),
    }
}

/// A crawler or tool user agent: family and version from `k`'s hash.
fn bot_agent(k: u64) -> String {
    let h = mix(k ^ 0xaaaa);
    let family = BOT_FAMILIES[(k as usize * 7 + (h % 3) as usize) % BOT_FAMILIES.len()];
    family.replace("{v}", &((h >> 8) % 90).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn draw(n: usize, seed: u64) -> Vec<Drawn> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut site = Site::new();
        (0..n)
            .map(|_| {
                let mut d = Drawn::default();
                site.next(&mut rng, &mut d);
                d
            })
            .collect()
    }

    #[test]
    fn distinct_values_keep_growing_like_real_logs() {
        let small = draw(10_000, 1);
        let big = draw(200_000, 1);
        let distinct =
            |d: &[Drawn], f: fn(&Drawn) -> &str| d.iter().map(f).collect::<HashSet<_>>().len();
        fn path(d: &Drawn) -> &str {
            d.target.split('?').next().unwrap_or("")
        }
        let (p_small, p_big) = (distinct(&small, path), distinct(&big, path));
        assert!(
            (800..4_000).contains(&p_small),
            "{p_small} paths in 10k lines"
        );
        assert!(p_big > 8 * p_small, "paths grow: {p_small} -> {p_big}");
        let ips = distinct(&big, |d| &d.ip);
        let agents = distinct(&big, |d| &d.agent);
        assert!(ips > 10_000, "{ips} clients in 200k lines");
        assert!(agents > 2_000, "{agents} user agents in 200k lines");
        let with_query = big.iter().filter(|d| d.target.contains('?')).count();
        assert!(
            (8_000..40_000).contains(&with_query),
            "{with_query} queries"
        );
    }

    #[test]
    fn the_daily_cycle_peaks_in_the_afternoon() {
        let at = |h: i64| diurnal(h * 3_600_000_000);
        assert!((at(3) - 0.5).abs() < 1e-9);
        assert!((at(15) - 1.5).abs() < 1e-9);
        assert!(at(9) > at(3) && at(9) < at(15));
    }
}
