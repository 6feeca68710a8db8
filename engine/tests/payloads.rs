//! Threat tagging scored on the payload corpus of `../shared/realdata/payloads`
//! (PayloadsAllTheThings, by category), each payload placed where a log shows it: as a query
//! parameter and as a path segment (percent-encoded as an attack tool sends it), and as the
//! User-Agent and the Referer (escaped as nginx logs them).
//!
//! Recall is measured by fold, a fold being one payload list (source file), never by line: the
//! lists of each category are split, by name, into development lists and held-out lists. Misses
//! are printed for development lists only, so that detectors are built from the grammar of an
//! attack class and from what the development lists teach, and the held-out figure says how that
//! generalises. A category with one list has nothing to develop on: all of it is held out.

mod common;

use std::collections::BTreeMap;

use logcrunch::schema::StrCol;
use logcrunch::security::TagScratch;
use serde_json::Value;

/// Where a payload is placed in the request.
const PLACES: [&str; 4] = ["query", "path", "user_agent", "referer"];

/// The tagger's categories that count as detecting a corpus category (the payload lists mix
/// neighbouring classes: LFI lists hold PHP wrappers, command lists hold code-evaluation strings).
fn wanted(category: &str) -> Option<&'static [&'static str]> {
    Some(match category {
        "sqli" => &["sqli"],
        "xss" => &["xss"],
        "traversal" => &["traversal", "sensitive_file", "rfi", "php"],
        "cmdi" => &["cmdi", "php", "injection", "ssti"],
        "ssrf" => &["ssrf"],
        "ssti" => &["ssti"],
        "open_redirect" => &["open_redirect"],
        _ => return None,
    })
}

/// `s` percent-encoded as an attack tool encodes a value: bytes that cannot appear raw in a
/// request target, and `also`; `%` is left alone, so pre-encoded payloads (`%2e%2e/`) stay as
/// their authors wrote them.
fn encode(s: &str, also: &[u8]) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let raw = (0x21..=0x7e).contains(&b) && !b"\"#<>`{}|\\^".contains(&b) && !also.contains(&b);
        if raw {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The parameter a payload of `category` is sent in (the classes that abuse a parameter's meaning
/// need a parameter with that meaning), and the places where the class can act: a URL that the
/// server fetches or redirects to is an attack in the request target, not in a header.
fn placement(category: &str) -> (&'static str, &'static [&'static str]) {
    match category {
        "ssrf" => ("url", &PLACES[..2]),
        "open_redirect" => ("next", &PLACES[..1]),
        _ => ("q", &PLACES),
    }
}

/// The combined-format log line of a request carrying `payload` at `place` (in parameter `param`
/// when in the query).
fn line(payload: &str, place: &str, param: &str) -> String {
    let (mut target, mut referer, mut agent) = (
        "/search?q=shoes".to_string(),
        "-".to_string(),
        "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0".to_string(),
    );
    match place {
        "query" => target = format!("/search?{param}={}", encode(payload, b"&+")),
        "path" => target = format!("/files/{}", encode(payload, b"?")),
        "user_agent" => agent = payload.to_string(),
        _ => referer = payload.to_string(),
    }
    format!(
        "203.0.113.7 - - [01/Jan/2024:00:00:00 +0000] \"GET {} HTTP/1.1\" 200 0 \"{}\" \"{}\"",
        common::nginx_escape(&target),
        common::nginx_escape(&referer),
        common::nginx_escape(&agent)
    )
}

/// Per category: its lists in name order, each with its payloads.
fn corpus(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut by: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let source = v["source"].as_str().unwrap();
        let file = source.rsplit_once('#').map_or(source, |(f, _)| f);
        let file = file.rsplit_once(':').map_or(file, |(_, f)| f);
        by.entry(v["category"].as_str().unwrap().to_string())
            .or_default()
            .entry(file.to_string())
            .or_default()
            .push(v["payload"].as_str().unwrap().to_string());
    }
    by
}

/// Hits and trials per place, and the trials any category was found in (the measure,
/// `threats <> 0`: a command list's `/etc/passwd` read tagged as traversal counts there).
#[derive(Default, Clone, Copy)]
struct Score([(u32, u32); 4], u32);

impl Score {
    fn add(&mut self, other: &Score) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            a.0 += b.0;
            a.1 += b.1;
        }
        self.1 += other.1;
    }

    /// Recall counting any category, as a table cell.
    fn any_cell(&self) -> String {
        match self.trials() {
            0 => "-".into(),
            _ => format!("{:.1}%", 100.0 * self.1 as f64 / self.trials() as f64),
        }
    }

    fn trials(&self) -> u32 {
        self.0.iter().map(|s| s.1).sum()
    }

    /// Recall as a table cell: `-` when nothing was tried.
    fn cell(&self) -> String {
        match self.trials() {
            0 => "-".into(),
            _ => format!("{:.1}%", 100.0 * self.recall()),
        }
    }

    fn recall(&self) -> f64 {
        let (hit, n) = self.0.iter().fold((0, 0), |(h, n), s| (h + s.0, n + s.1));
        hit as f64 / n.max(1) as f64
    }

    fn row(&self) -> String {
        let cells: Vec<String> = self
            .0
            .iter()
            .map(|(h, n)| match n {
                0 => format!("{:>7}", "-"),
                _ => format!("{:6.1}%", 100.0 * *h as f64 / *n as f64),
            })
            .collect();
        format!("{:6.1}%  {}", 100.0 * self.recall(), cells.join(" "))
    }
}

#[test]
fn payload_recall_on_held_out_lists() {
    let Some(realdata) = common::realdata() else {
        return;
    };
    let text = std::fs::read_to_string(realdata.join("payloads/payloads.jsonl")).unwrap();
    let tagger = common::tagger(1);
    let pats = common::builtin();
    let parser = pats.parser("nginx", 1 << 16).unwrap();
    let mut scratch = parser.scratch();
    let mut tags = TagScratch::default();
    let mut summary = Vec::new();
    println!("payload recall at paranoia 1, by list (D: development, H: held out)");
    println!(
        "  {:<58} {:>6}  {:>7}  {}",
        "category / list",
        "n",
        "all",
        PLACES.map(|p| format!("{p:>7}")).join(" ")
    );
    for (category, lists) in corpus(&text) {
        let Some(names) = wanted(&category) else {
            continue;
        };
        let want = common::category_mask(&tagger, names);
        let (param, places) = placement(&category);
        let (mut dev, mut held) = (Score::default(), Score::default());
        for (i, (list, payloads)) in lists.iter().enumerate() {
            let held_out = lists.len() == 1 || i % 2 == 1;
            let mut score = Score::default();
            let mut missed = Vec::new();
            for p in payloads {
                for (k, place) in places.iter().enumerate() {
                    let l = line(p, place, param);
                    let Ok(Some(row)) = parser.parse_line(&mut scratch, l.as_bytes(), 0) else {
                        panic!("the rendered line does not parse: {l}");
                    };
                    let bits = tagger.tag(
                        row.str(StrCol::Path),
                        row.str(StrCol::Query),
                        row.str(StrCol::Referer),
                        row.str(StrCol::UserAgent),
                        &mut tags,
                    );
                    let hit = bits & want != 0;
                    score.0[k].0 += u32::from(hit);
                    score.1 += u32::from(bits != 0);
                    score.0[k].1 += 1;
                    if !hit && !held_out && k == 0 {
                        missed.push(p.clone());
                    }
                }
            }
            println!(
                "  {} {:<56} {:>6}  {}",
                if held_out { 'H' } else { 'D' },
                format!("{category} / {list}"),
                payloads.len(),
                score.row()
            );
            for m in missed.iter().take(15) {
                println!("      missed in the query: {m:.120}");
            }
            if held_out { &mut held } else { &mut dev }.add(&score);
        }
        summary.push((category, dev, held));
    }
    println!(
        "summary (all places):            development  held out  target  floor  held out, any category"
    );
    for (category, dev, held) in &summary {
        let (target, floor) = goal(category);
        println!(
            "  {category:<30} {:>11}  {:>9}  {:5.0}%  {:4.0}%  {:>9}",
            dev.cell(),
            held.cell(),
            100.0 * target,
            100.0 * floor,
            held.any_cell()
        );
    }
    for (category, _, held) in &summary {
        let (_, floor) = goal(category);
        assert!(
            held.recall() >= floor,
            "{category}: held-out recall {:.3} fell below {floor}",
            held.recall()
        );
    }
}

/// The held-out recall a category should reach (the target), and the floor it must not
/// fall below (what it reached when last measured, less two points of slack): a change that loses
/// detection fails here even where the target is not met yet.
fn goal(category: &str) -> (f64, f64) {
    match category {
        "sqli" => (0.95, 0.94),
        "xss" => (0.95, 0.97),
        "traversal" => (0.95, 0.90),
        "cmdi" => (0.95, 0.84),
        "ssrf" => (0.80, 0.95),
        "ssti" => (0.80, 0.95),
        "open_redirect" => (0.80, 0.85),
        _ => (0.0, 0.0),
    }
}

/// CRS's list of files a client has no business asking for (`crs/restricted-files.data`), in
/// sections (`# Apache`, `# Generic config filenames`...), each entry requested at the root and
/// under a directory. Sections alternate between development and held out, in file order.
fn restricted_files(text: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_header = false;
    for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let header = l.strip_prefix("# ").filter(|h| !h.starts_with(['.', '/']));
        match header {
            Some(h) if !in_header => sections.push((h.to_string(), Vec::new())),
            Some(_) => {}
            None if l.starts_with('#') => {}
            None => match sections.last_mut() {
                Some(s) => s.1.push(l.to_string()),
                None => sections.push((String::new(), vec![l.to_string()])),
            },
        }
        in_header = header.is_some();
    }
    sections
}

#[test]
fn exposure_recall_on_held_out_sections_of_crs_restricted_files() {
    let Some(realdata) = common::realdata() else {
        return;
    };
    let text = std::fs::read_to_string(realdata.join("crs/restricted-files.data")).unwrap();
    let tagger = common::tagger(1);
    let want = common::category_mask(&tagger, &["sensitive_file", "traversal", "exploit"]);
    let mut tags = TagScratch::default();
    let (mut dev, mut held) = ((0u32, 0u32), (0u32, 0u32));
    println!("restricted files at paranoia 1, by section (D: development, H: held out)");
    for (i, (section, entries)) in restricted_files(&text).iter().enumerate() {
        let held_out = i % 2 == 1;
        let (mut hit, mut missed) = (0u32, Vec::new());
        for entry in entries {
            for dir in ["/", "/app/"] {
                let path = format!("{dir}{}", encode(entry.trim_start_matches('/'), b"?"));
                let found = tagger.tag(Some(path.as_bytes()), None, None, None, &mut tags) & want;
                hit += u32::from(found != 0);
                if found == 0 && !held_out {
                    missed.push(path);
                }
            }
        }
        let n = 2 * entries.len() as u32;
        let total = if held_out { &mut held } else { &mut dev };
        total.0 += hit;
        total.1 += n;
        println!(
            "  {} {:<50} {:>4}  {:6.1}%",
            if held_out { 'H' } else { 'D' },
            section,
            n,
            100.0 * hit as f64 / n as f64
        );
        for m in missed.iter().take(25) {
            println!("      missed: {m}");
        }
    }
    let recall = |(h, n): (u32, u32)| h as f64 / n.max(1) as f64;
    println!(
        "summary: development {:.1}%, held out {:.1}% (floor {:.0}%)",
        100.0 * recall(dev),
        100.0 * recall(held),
        100.0 * EXPOSURE_FLOOR
    );
    assert!(
        recall(held) >= EXPOSURE_FLOOR,
        "exposure: held-out recall {:.3} fell below {EXPOSURE_FLOOR}",
        recall(held)
    );
}

/// Held-out recall of the restricted files when last measured (89.0%), less about two points.
const EXPOSURE_FLOOR: f64 = 0.87;

/// CRS's list of operating-system and application files that an inclusion reads
/// (`crs/lfi-os-files.data`: dotfiles, configuration names, server and system paths, compiled
/// from Panoptic and SecLists), as families: entries grouped by their first path component
/// without its version digits and leading dot (`apache2/conf` and `apache22/logs` are one family,
/// `etc/...` another), each family development or held out by a hash of its name.
fn os_file_families(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut families: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in text.lines().map(str::trim) {
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let entry = l.trim_start_matches('/');
        let first = entry
            .split('/')
            .next()
            .unwrap_or(entry)
            .to_ascii_lowercase();
        let family = first
            .trim_start_matches('.')
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '_' || c == '-');
        families
            .entry(family.to_string())
            .or_default()
            .push(entry.to_string());
    }
    families
}

/// Whether a family is held out: FNV-1a of its name, odd.
fn family_held_out(family: &str) -> bool {
    let hash = family.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % 2 == 1
}

#[test]
fn inclusion_recall_on_held_out_families_of_crs_os_files() {
    let Some(realdata) = common::realdata() else {
        return;
    };
    let text = std::fs::read_to_string(realdata.join("crs/lfi-os-files.data")).unwrap();
    let tagger = common::tagger(1);
    let want = common::category_mask(&tagger, &["traversal", "sensitive_file", "exploit"]);
    let mut tags = TagScratch::default();
    let (mut dev, mut held) = ([(0u32, 0u32); 2], [(0u32, 0u32); 2]);
    let mut missed = Vec::new();
    for (family, entries) in os_file_families(&text) {
        let held_out = family_held_out(&family);
        let score = if held_out { &mut held } else { &mut dev };
        for entry in &entries {
            // A parameter given the file's absolute path, and a request for it at the root.
            let query = format!("q={}", encode(&format!("/{entry}"), b"&+"));
            let path = format!("/{}", encode(entry, b"?"));
            let places = [
                (None, Some(query.as_bytes())),
                (Some(path.as_bytes()), None),
            ];
            for (k, (p, q)) in places.into_iter().enumerate() {
                let found = tagger.tag(p.or(Some(b"/")), q, None, None, &mut tags) & want != 0;
                score[k].0 += u32::from(found);
                score[k].1 += 1;
                if !found && !held_out && k == 0 {
                    missed.push(entry.clone());
                }
            }
        }
    }
    let pct = |(h, n): (u32, u32)| 100.0 * h as f64 / n.max(1) as f64;
    for m in missed.iter().take(60) {
        println!("      missed in the query (development): {m}");
    }
    let sum = |s: [(u32, u32); 2]| (s[0].0 + s[1].0, s[0].1 + s[1].1);
    println!(
        "summary: development {:.1}% (query {:.1}%, path {:.1}%), held out {:.1}% (query {:.1}%, path {:.1}%)",
        pct(sum(dev)),
        pct(dev[0]),
        pct(dev[1]),
        pct(sum(held)),
        pct(held[0]),
        pct(held[1])
    );
    assert!(
        pct(sum(held)) >= INCLUSION_FLOOR,
        "inclusion: held-out recall {:.1}% fell below {INCLUSION_FLOOR}%",
        pct(sum(held))
    );
}

/// Held-out recall of the OS files when last measured (92.1%), less about two points.
const INCLUSION_FLOOR: f64 = 90.0;
