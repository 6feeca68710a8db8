//! A field splitter compiled from a format's regex, used instead of the regex engine when it is
//! provably equivalent.
//!
//! Access-log patterns are sequences of literals and delimited fields (`"([^"]*)"`, `(\S+) `). When
//! the pattern's syntax tree is such a sequence and every choice in it is decided by the next byte
//! (an LL(1) grammar: each field's byte class is disjoint from what may follow it, each optional or
//! repeated part starts with a byte that cannot follow it), the pattern has exactly one way to match
//! a line, and a predictive scan that jumps between delimiters with `memchr` finds it. The compiler
//! checks that condition and refuses (returns `None`) otherwise, so the splitter either finds the
//! regex's match or none; the caller still asks the regex when the splitter finds none, so the regex
//! stays the single source of truth. The property tests in `parse` compare both on random lines.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// A set of bytes (256 bits).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert(&mut self, b: u8) {
        self.0[(b >> 6) as usize] |= 1 << (b & 63);
    }

    /// Whether `b` is in the set.
    #[inline(always)]
    pub fn contains(&self, b: u8) -> bool {
        self.0[(b >> 6) as usize] & (1 << (b & 63)) != 0
    }

    fn union(&self, o: &ByteSet) -> ByteSet {
        ByteSet([
            self.0[0] | o.0[0],
            self.0[1] | o.0[1],
            self.0[2] | o.0[2],
            self.0[3] | o.0[3],
        ])
    }

    fn intersects(&self, o: &ByteSet) -> bool {
        (0..4).any(|i| self.0[i] & o.0[i] != 0)
    }

    fn single(b: u8) -> ByteSet {
        let mut s = ByteSet::default();
        s.insert(b);
        s
    }

    fn complement_bytes(&self) -> Vec<u8> {
        (0..=255u8).filter(|b| !self.contains(*b)).collect()
    }
}

impl std::fmt::Debug for ByteSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ByteSet({} bytes)",
            (0..=255u8).filter(|b| self.contains(*b)).count()
        )
    }
}

/// How to find the end of a run of class bytes quickly.
#[derive(Debug, Clone)]
enum RunEnd {
    /// The class is "anything but these 1-3 bytes": memchr for them.
    Memchr(Vec<u8>),
    /// Check bytes one by one against the set.
    Scan,
}

#[derive(Debug, Clone)]
enum Step {
    /// Bytes that must appear here.
    Literal(Box<[u8]>),
    /// A maximal run of class bytes whose length must be within min..=max; or, when `fixed`
    /// (min == max and the class may also follow), exactly `min` class bytes.
    Run {
        class: ByteSet,
        end: RunEnd,
        min: u32,
        max: Option<u32>,
        fixed: bool,
    },
    /// `(?:[^"\\]|\\.)*`: runs of `plain` bytes where `escape` makes the next byte (any in `escaped`) plain.
    Escaped {
        plain: ByteSet,
        escape: u8,
        escaped: ByteSet,
        stops: Vec<u8>,
    },
    /// Optional part, taken when `decide` says so.
    Opt { decide: Decide, steps: Vec<Step> },
    /// Repeated part, iterated while `decide` says so.
    Repeat {
        decide: Decide,
        steps: Vec<Step>,
        min: u32,
        max: Option<u32>,
    },
    /// One of several parts, picked by the next byte.
    Alt(Vec<(ByteSet, Vec<Step>)>),
    /// Start (`true`) or end of capture group `usize`.
    Mark(usize, bool),
    /// End of the line (`$`).
    End,
}

/// How an optional or repeated part decides to go on.
#[derive(Debug, Clone)]
enum Decide {
    /// Take the part when the next byte is in the set (LL(1)).
    First(ByteSet),
    /// Take the part when the byte `.0` positions ahead is in the set: the part and what follows
    /// it may start alike (a separator such as `, ` or ` ` before ` - `) but provably differ there.
    At(usize, ByteSet),
}

impl Decide {
    #[inline(always)]
    fn take(&self, line: &[u8], pos: usize) -> bool {
        match self {
            Decide::First(set) => line.get(pos).is_some_and(|b| set.contains(*b)),
            Decide::At(i, set) => line.get(pos + i).is_some_and(|b| set.contains(*b)),
        }
    }
}

/// The bytes that may come next, and whether the line may end here.
#[derive(Clone, Copy, Default, Debug)]
struct First {
    bytes: ByteSet,
    eol: bool,
}

impl First {
    fn union(self, o: First) -> First {
        First {
            bytes: self.bytes.union(&o.bytes),
            eol: self.eol || o.eol,
        }
    }
}

/// A compiled splitter; see the module documentation.
#[derive(Debug, Clone)]
pub struct Splitter {
    steps: Vec<Step>,
    groups: usize,
}

impl Splitter {
    /// Compiles `hir` (parsed with Unicode off, bytes mode) into a splitter, or `None` when the
    /// pattern is not a byte-deterministic sequence. `groups` is the number of capture groups
    /// including group 0.
    pub fn compile(hir: &Hir, groups: usize) -> Option<Splitter> {
        let mut steps = Vec::new();
        lower(hir, &mut steps, true, 0)?;
        // A pattern without `$` may stop anywhere: what follows the match is unconstrained, and
        // greedy runs take the maximal run, which is what the predictive scan does.
        let follow = First {
            bytes: ByteSet::default(),
            eol: true,
        };
        check(&mut steps, follow, &[])?;
        Some(Splitter { steps, groups })
    }

    /// Matches `line` from its start; fills `slots` (2 per group, start and end) and returns whether
    /// it matched. Slots of groups that did not participate are `None`.
    #[inline]
    pub fn split(&self, line: &[u8], slots: &mut [Option<(u32, u32)>]) -> bool {
        debug_assert!(slots.len() >= self.groups);
        slots.iter_mut().for_each(|s| *s = None);
        let mut starts = [0u32; 64];
        match run(&self.steps, line, 0, slots, &mut starts) {
            Some(end) => {
                slots[0] = Some((0, end as u32));
                true
            }
            None => false,
        }
    }
}

/// The bytes a match of `hir` can start with, when the pattern is simple enough to tell (used to
/// find where a multi-line entry starts).
pub fn first_bytes(hir: &Hir) -> Option<ByteSet> {
    let mut steps = Vec::new();
    lower(hir, &mut steps, true, 0)?;
    let f = first(
        &steps,
        First {
            bytes: ByteSet::default(),
            eol: true,
        },
    );
    (!f.eol).then_some(f.bytes)
}

fn lower(hir: &Hir, out: &mut Vec<Step>, top: bool, nesting: usize) -> Option<()> {
    if nesting > MAX_NESTING {
        return None;
    }
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(lit) => out.push(Step::Literal(lit.0.clone())),
        HirKind::Class(Class::Bytes(cls)) => {
            let set = class_set(cls);
            out.push(run_step(set, 1, Some(1)));
        }
        HirKind::Class(Class::Unicode(_)) => return None,
        HirKind::Look(Look::Start) if top && out.is_empty() => {}
        HirKind::Look(Look::End) => out.push(Step::End),
        HirKind::Look(_) => return None,
        HirKind::Capture(cap) => {
            let g = cap.index as usize;
            if g >= 64 {
                return None;
            }
            out.push(Step::Mark(g, true));
            lower(&cap.sub, out, false, nesting)?;
            out.push(Step::Mark(g, false));
        }
        HirKind::Concat(items) => {
            for (i, item) in items.iter().enumerate() {
                lower(item, out, top && i == 0, nesting)?;
            }
        }
        HirKind::Repetition(rep) => {
            if let HirKind::Class(Class::Bytes(cls)) = rep.sub.kind() {
                out.push(run_step(class_set(cls), rep.min, rep.max));
            } else if let Some(step) = escaped_idiom(rep) {
                out.push(step);
            } else {
                let mut steps = Vec::new();
                lower(&rep.sub, &mut steps, false, nesting + 1)?;
                let decide = Decide::First(ByteSet::default());
                if rep.min == 0 && rep.max == Some(1) {
                    out.push(Step::Opt { decide, steps });
                } else {
                    out.push(Step::Repeat {
                        decide,
                        steps,
                        min: rep.min,
                        max: rep.max,
                    });
                }
            }
        }
        HirKind::Alternation(alts) => {
            let mut lowered = Vec::new();
            for alt in alts {
                let mut steps = Vec::new();
                lower(alt, &mut steps, false, nesting + 1)?;
                lowered.push((ByteSet::default(), steps));
            }
            out.push(Step::Alt(lowered));
        }
    }
    Some(())
}

fn class_set(cls: &regex_syntax::hir::ClassBytes) -> ByteSet {
    let mut set = ByteSet::default();
    for r in cls.iter() {
        for b in r.start()..=r.end() {
            set.insert(b);
        }
    }
    set
}

fn run_step(class: ByteSet, min: u32, max: Option<u32>) -> Step {
    let outside = class.complement_bytes();
    let end = if (1..=3).contains(&outside.len()) {
        RunEnd::Memchr(outside)
    } else {
        RunEnd::Scan
    };
    Step::Run {
        class,
        end,
        min,
        max,
        fixed: false,
    }
}

/// Recognises `(?:[^"\\]|\\.)*` (in either alternative order).
fn escaped_idiom(rep: &regex_syntax::hir::Repetition) -> Option<Step> {
    if rep.min != 0 || rep.max.is_some() {
        return None;
    }
    let HirKind::Alternation(alts) = rep.sub.kind() else {
        return None;
    };
    if alts.len() != 2 {
        return None;
    }
    let pick = |a: &Hir, b: &Hir| -> Option<(ByteSet, u8, ByteSet)> {
        let HirKind::Class(Class::Bytes(plain)) = a.kind() else {
            return None;
        };
        let HirKind::Concat(parts) = b.kind() else {
            return None;
        };
        let [esc, any] = parts.as_slice() else {
            return None;
        };
        let (HirKind::Literal(lit), HirKind::Class(Class::Bytes(after))) = (esc.kind(), any.kind())
        else {
            return None;
        };
        let [e] = *lit.0 else {
            return None;
        };
        let plain = class_set(plain);
        (!plain.contains(e)).then(|| (plain, e, class_set(after)))
    };
    let (plain, escape, escaped) = pick(&alts[0], &alts[1]).or_else(|| pick(&alts[1], &alts[0]))?;
    let stops: Vec<u8> = plain.complement_bytes();
    Some(Step::Escaped {
        plain,
        escape,
        escaped,
        stops,
    })
}

/// FIRST set of `steps` followed by `follow`; `None` if a sub-part is nullable where the
/// splitter needs it not to be.
fn first(steps: &[Step], follow: First) -> First {
    let Some((head, rest)) = steps.split_first() else {
        return follow;
    };
    match head {
        Step::Literal(l) => First {
            bytes: ByteSet::single(l[0]),
            eol: false,
        },
        Step::Run { class, min, .. } => {
            let own = First {
                bytes: *class,
                eol: false,
            };
            if *min > 0 {
                own
            } else {
                own.union(first(rest, follow))
            }
        }
        Step::Escaped { plain, escape, .. } => First {
            bytes: plain.union(&ByteSet::single(*escape)),
            eol: false,
        }
        .union(first(rest, follow)),
        Step::Opt { steps, .. } => {
            let after = first(rest, follow);
            first(steps, after).union(after)
        }
        Step::Repeat { steps, min, .. } => {
            let after = first(rest, follow);
            let own = first(steps, after);
            if *min > 0 { own } else { own.union(after) }
        }
        Step::Alt(alts) => {
            let after = first(rest, follow);
            alts.iter()
                .fold(First::default(), |acc, (_, s)| acc.union(first(s, after)))
        }
        Step::Mark(..) => first(rest, follow),
        Step::End => First {
            bytes: ByteSet::default(),
            eol: true,
        },
    }
}

fn nullable(steps: &[Step]) -> bool {
    let probe = First {
        bytes: ByteSet::default(),
        eol: true,
    };
    first(steps, probe).eol && !steps.iter().any(|s| matches!(s, Step::End))
}

/// Verifies the LL(1) condition and fills in the FIRST sets the scan uses to decide. `outer` is
/// what follows `steps` in the enclosing sequence (empty when unknown, as inside a repetition,
/// where a part may be followed by itself): a look-ahead decision must see past the end of a
/// nested part.
fn check(steps: &mut [Step], follow: First, outer: &[Step]) -> Option<()> {
    for i in 0..steps.len() {
        let (head, rest) = steps[i..].split_first_mut()?;
        let after = first(rest, follow);
        let then = || -> Vec<Step> { rest.iter().chain(outer).cloned().collect() };
        let repeats = matches!(head, Step::Repeat { .. });
        match head {
            Step::Literal(l) if l.is_empty() => return None,
            Step::Literal(_) | Step::Mark(..) => {}
            Step::Run {
                class,
                min,
                max,
                fixed,
                ..
            } => {
                if class.intersects(&after.bytes) {
                    if *max != Some(*min) {
                        return None;
                    }
                    *fixed = true;
                }
            }
            Step::Escaped { plain, escape, .. } => {
                if plain
                    .union(&ByteSet::single(*escape))
                    .intersects(&after.bytes)
                {
                    return None;
                }
            }
            Step::Opt { decide, steps: sub }
            | Step::Repeat {
                decide, steps: sub, ..
            } => {
                if nullable(sub) {
                    return None;
                }
                let own = first(sub, after);
                let continuation = then();
                *decide = if !own.bytes.intersects(&after.bytes) && !own.eol {
                    Decide::First(own.bytes)
                } else {
                    lookahead(sub, &continuation)?
                };
                // Inside a repetition, the part may be followed by itself.
                let inner = if repeats {
                    First {
                        bytes: own.bytes.union(&after.bytes),
                        eol: after.eol,
                    }
                } else {
                    after
                };
                check(sub, inner, if repeats { &[] } else { &continuation })?;
            }
            Step::Alt(alts) => {
                let mut seen = ByteSet::default();
                for (f, sub) in alts.iter_mut() {
                    if nullable(sub) {
                        return None;
                    }
                    let own = first(sub, after);
                    if own.bytes.intersects(&seen) || own.eol {
                        return None;
                    }
                    seen = seen.union(&own.bytes);
                    *f = own.bytes;
                    check(sub, after, &then())?;
                }
            }
            Step::End => {
                if rest
                    .iter()
                    .any(|s| !matches!(s, Step::Mark(..) | Step::End))
                {
                    return None;
                }
            }
        }
    }
    Some(())
}

/// Furthest position a decision may look ahead.
const MAX_LOOKAHEAD: usize = 8;

/// Steps [`prefixes`] may visit for one decision, and how deep it may unroll. Unrolling nested
/// repetitions branches at every level and deepens the parts it copies, so a pattern like
/// `((a)*)*...` would take exponential time, memory and stack; past these bounds nothing is
/// proven and the format runs on the regex engine instead.
const PREFIX_BUDGET: usize = 20_000;
const PREFIX_DEPTH: usize = 64;

/// Repetitions, options and alternations nested deeper than this get no splitter.
const MAX_NESTING: usize = 16;

/// For an optional/repeated `sub` followed by `rest`, a position `i` at which every match of `sub`
/// and every match of `rest` have disjoint bytes (both being longer than `i`): the byte there
/// decides, see [`Decide::At`].
fn lookahead(sub: &[Step], rest: &[Step]) -> Option<Decide> {
    let mut budget = PREFIX_BUDGET;
    (1..MAX_LOOKAHEAD).find_map(|i| {
        let own = prefixes(sub, i + 1, &mut budget, 0)?;
        let other = prefixes(rest, i + 1, &mut budget, 0)?;
        (0..=i)
            .find(|&j| !own[j].intersects(&other[j]))
            .map(|j| Decide::At(j, own[j]))
    })
}

fn union_sets(a: Vec<ByteSet>, b: Vec<ByteSet>) -> Vec<ByteSet> {
    a.iter().zip(b.iter()).map(|(x, y)| x.union(y)).collect()
}

/// Per position, the bytes the first `k` bytes of any match of `steps` can hold; `None` when a
/// match may be shorter than `k`, the parts are not supported, or the search went past `budget`
/// steps or [`PREFIX_DEPTH`] levels (then nothing is proven).
fn prefixes(steps: &[Step], k: usize, budget: &mut usize, depth: usize) -> Option<Vec<ByteSet>> {
    if k == 0 {
        return Some(Vec::new());
    }
    *budget = budget.checked_sub(1)?;
    if depth > PREFIX_DEPTH {
        return None;
    }
    let depth = depth + 1;
    let (head, rest) = steps.split_first()?;
    let then =
        |head: Vec<Step>| -> Vec<Step> { head.into_iter().chain(rest.iter().cloned()).collect() };
    match head {
        Step::Mark(..) => prefixes(rest, k, budget, depth),
        Step::Literal(l) => {
            let n = l.len().min(k);
            let mut v: Vec<ByteSet> = l[..n].iter().map(|b| ByteSet::single(*b)).collect();
            if n < k {
                v.extend(prefixes(rest, k - n, budget, depth)?);
            }
            Some(v)
        }
        Step::Run {
            class,
            end,
            min,
            max,
            fixed,
        } => {
            let mut take = None;
            if *max != Some(0) {
                let shorter = Step::Run {
                    class: *class,
                    end: end.clone(),
                    min: min.saturating_sub(1),
                    max: max.map(|m| m - 1),
                    fixed: *fixed,
                };
                let mut v = vec![*class];
                v.extend(prefixes(&then(vec![shorter]), k - 1, budget, depth)?);
                take = Some(v);
            }
            let skip = if *min == 0 {
                Some(prefixes(rest, k, budget, depth)?)
            } else {
                None
            };
            match (take, skip) {
                (Some(a), Some(b)) => Some(union_sets(a, b)),
                (a, b) => a.or(b),
            }
        }
        Step::Opt { steps: sub, .. } => Some(union_sets(
            prefixes(&then(sub.clone()), k, budget, depth)?,
            prefixes(rest, k, budget, depth)?,
        )),
        Step::Repeat {
            decide,
            steps: sub,
            min,
            max,
        } => {
            if *max == Some(0) {
                return prefixes(rest, k, budget, depth);
            }
            let again = Step::Repeat {
                decide: decide.clone(),
                steps: sub.clone(),
                min: min.saturating_sub(1),
                max: max.map(|m| m - 1),
            };
            let mut once = sub.clone();
            once.push(again);
            let take = prefixes(&then(once), k, budget, depth)?;
            if *min == 0 {
                Some(union_sets(take, prefixes(rest, k, budget, depth)?))
            } else {
                Some(take)
            }
        }
        Step::Alt(alts) => {
            let mut acc: Option<Vec<ByteSet>> = None;
            for (_, alt) in alts {
                let p = prefixes(&then(alt.clone()), k, budget, depth)?;
                acc = Some(match acc {
                    Some(a) => union_sets(a, p),
                    None => p,
                });
            }
            acc
        }
        Step::Escaped { .. } | Step::End => None,
    }
}

#[inline(always)]
fn run_end(class: &ByteSet, end: &RunEnd, line: &[u8], pos: usize) -> usize {
    let hay = &line[pos..];
    let n = match end {
        RunEnd::Memchr(stops) => match stops.as_slice() {
            [a] => memchr::memchr(*a, hay),
            [a, b] => memchr::memchr2(*a, *b, hay),
            [a, b, c] => memchr::memchr3(*a, *b, *c, hay),
            _ => unreachable!("RunEnd::Memchr holds 1 to 3 bytes"),
        }
        .unwrap_or(hay.len()),
        RunEnd::Scan => hay
            .iter()
            .position(|b| !class.contains(*b))
            .unwrap_or(hay.len()),
    };
    pos + n
}

fn run(
    steps: &[Step],
    line: &[u8],
    mut pos: usize,
    slots: &mut [Option<(u32, u32)>],
    starts: &mut [u32; 64],
) -> Option<usize> {
    for step in steps {
        match step {
            Step::Literal(l) => {
                let end = pos + l.len();
                // Literals are a few bytes: compare inline rather than through memcmp.
                if end > line.len() || !line[pos..end].iter().zip(l.iter()).all(|(a, b)| a == b) {
                    return None;
                }
                pos = end;
            }
            Step::Run {
                class,
                min,
                fixed: true,
                ..
            } => {
                let e = pos + *min as usize;
                if e > line.len() || !line[pos..e].iter().all(|b| class.contains(*b)) {
                    return None;
                }
                pos = e;
            }
            Step::Run {
                class,
                end,
                min,
                max,
                ..
            } => {
                let e = run_end(class, end, line, pos);
                let len = (e - pos) as u32;
                if len < *min || max.is_some_and(|m| len > m) {
                    return None;
                }
                pos = e;
            }
            Step::Escaped {
                plain,
                escape,
                escaped,
                stops,
            } => loop {
                let hay = &line[pos..];
                let n = match stops.as_slice() {
                    [a] => memchr::memchr(*a, hay),
                    [a, b] => memchr::memchr2(*a, *b, hay),
                    [a, b, c] => memchr::memchr3(*a, *b, *c, hay),
                    _ => hay.iter().position(|b| !plain.contains(*b)),
                }
                .unwrap_or(hay.len());
                pos += n;
                if line.get(pos) == Some(escape)
                    && line.get(pos + 1).is_some_and(|b| escaped.contains(*b))
                {
                    pos += 2;
                } else {
                    break;
                }
            },
            Step::Opt { decide, steps } => {
                if decide.take(line, pos) {
                    pos = run(steps, line, pos, slots, starts)?;
                }
            }
            Step::Repeat {
                decide,
                steps,
                min,
                max,
            } => {
                let mut count = 0u32;
                while max.is_none_or(|m| count < m) && decide.take(line, pos) {
                    pos = run(steps, line, pos, slots, starts)?;
                    count += 1;
                }
                if count < *min {
                    return None;
                }
            }
            Step::Alt(alts) => {
                let b = *line.get(pos)?;
                let (_, sub) = alts.iter().find(|(f, _)| f.contains(b))?;
                pos = run(sub, line, pos, slots, starts)?;
            }
            Step::Mark(g, true) => starts[*g] = pos as u32,
            Step::Mark(g, false) => slots[*g] = Some((starts[*g], pos as u32)),
            Step::End => {
                if pos != line.len() {
                    return None;
                }
            }
        }
    }
    Some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hir(p: &str) -> Hir {
        regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(p)
            .unwrap()
    }

    fn split(p: &str, line: &str) -> Option<Vec<Option<String>>> {
        let h = hir(p);
        let s = Splitter::compile(&h, 16).expect("splittable");
        let mut slots = vec![None; 16];
        s.split(line.as_bytes(), &mut slots).then(|| {
            slots
                .iter()
                .map(|s| s.map(|(a, b)| line[a as usize..b as usize].to_string()))
                .collect()
        })
    }

    #[test]
    fn delimited_fields() {
        let got = split(
            r#"^(\S+) \[([^\]]*)\] "([^"]*)" (\d{3})$"#,
            r#"1.2.3.4 [x y] "GET / HTTP/1.1" 200"#,
        )
        .unwrap();
        assert_eq!(got[1].as_deref(), Some("1.2.3.4"));
        assert_eq!(got[2].as_deref(), Some("x y"));
        assert_eq!(got[3].as_deref(), Some("GET / HTTP/1.1"));
        assert_eq!(got[4].as_deref(), Some("200"));
        assert!(split(r#"^(\S+) (\d{3})$"#, "a 2000").is_none());
        assert!(split(r#"^(\S+) (\d{3})$"#, "a 200 ").is_none());
    }

    #[test]
    fn optional_tail_and_escapes() {
        let p = r#"^(\S+)(?: "((?:[^"\\]|\\.)*)")?$"#;
        assert_eq!(split(p, "a").unwrap()[2], None);
        assert_eq!(
            split(p, r#"a "x\"y""#).unwrap()[2].as_deref(),
            Some(r#"x\"y"#)
        );
        assert!(split(p, r#"a "unterminated"#).is_none());
    }

    #[test]
    fn lists_and_alternatives() {
        let p = r#"^([^ ,"]+(?:, [^ ,"]+)*) (\d+|-)$"#;
        assert_eq!(
            split(p, "10.0.0.1, 1.2.3.4 -").unwrap()[1].as_deref(),
            Some("10.0.0.1, 1.2.3.4")
        );
        assert_eq!(split(p, "h 12").unwrap()[2].as_deref(), Some("12"));
        assert!(split(p, "h x").is_none());
    }

    #[test]
    fn a_literal_lookahead_separates_lists_from_what_follows() {
        let p = r#"^([^ ,"]+(?:(?:, | )[0-9a-f:.][^ ,"]*)*) - (\S+)$"#;
        assert_eq!(
            split(p, "1.2.3.4, 10.0.0.1 10.0.0.2 - bob").unwrap()[1].as_deref(),
            Some("1.2.3.4, 10.0.0.1 10.0.0.2")
        );
        assert_eq!(
            split(p, "1.2.3.4 - bob").unwrap()[2].as_deref(),
            Some("bob")
        );
        assert!(split(p, "1.2.3.4 x - bob").is_none());
    }

    #[test]
    fn a_nested_optional_looks_past_its_enclosing_part() {
        // HAProxy's captures: `{req}` then `{resp}`, each optional, before ` "request"`.
        let p = r#"^(\d+)(?: \{([^}]*)\}(?: \{([^}]*)\})?)? "([^"]*)"$"#;
        let both = split(p, r#"7 {a} {b} "GET /""#).unwrap();
        assert_eq!(
            (both[2].as_deref(), both[3].as_deref()),
            (Some("a"), Some("b"))
        );
        let one = split(p, r#"7 {a} "GET /""#).unwrap();
        assert_eq!((one[2].as_deref(), one[3].as_deref()), (Some("a"), None));
        let none = split(p, r#"7 "GET /""#).unwrap();
        assert_eq!(
            (none[2].as_deref(), none[4].as_deref()),
            (None, Some("GET /"))
        );
        assert!(split(p, r#"7 {a} {b} {c} "GET /""#).is_none());
    }

    #[test]
    fn ambiguous_patterns_are_refused() {
        for p in [
            r#"^(\S+) (.*) (\S+)$"#,
            r#"^(\S+)(\S+)$"#,
            r#"^(?:"([^"]*)" )?(\S+)$"#,
            r#"^(a|ab)c$"#,
            r#"^(\w+)\b"#,
        ] {
            assert!(Splitter::compile(&hir(p), 8).is_none(), "{p}");
        }
    }
}
