//! Typed conversion of captured field bytes: timestamps, integers, durations, request lines, hosts.
//!
//! These run once per field of every line, so they work on bytes, allocate nothing and avoid a
//! general-purpose strptime: the common timestamp layouts have hand-written parsers, and the
//! user-defined ones run a small pre-compiled strftime program.

use std::net::IpAddr;

/// Microseconds per second.
pub const US_PER_SEC: i64 = 1_000_000;

/// How a timestamp field is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// `10/Oct/2000:13:55:36 -0700` (Apache `%t`, nginx `$time_local`), optional `.fraction`.
    Clf,
    /// `2000-10-10T13:55:36-07:00`, `...Z`, space instead of `T`, optional fraction and offset.
    Iso8601,
    /// Seconds since the epoch with optional fraction (nginx `$msec`).
    Epoch,
    /// Milliseconds since the epoch.
    EpochMillis,
    /// Whatever a JSON logger wrote: epoch seconds, milliseconds, microseconds or nanoseconds
    /// (told apart by magnitude), or an ISO 8601 / CLF string (Caddy's `time_format`, Traefik).
    Auto,
    /// A strftime layout such as `%Y/%m/%d %H:%M:%S`.
    Strftime(Vec<TimeItem>),
}

/// One element of a compiled strftime layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeItem {
    /// Bytes that must appear as written.
    Literal(u8),
    /// `%Y`
    Year,
    /// `%m`
    Month,
    /// `%b` / `%h`: English month abbreviation.
    MonthName,
    /// `%d` / `%e`
    Day,
    /// `%H`
    Hour,
    /// `%M`
    Minute,
    /// `%S`
    Second,
    /// `%f`: an optional fraction of a second, `.` or `,` and any number of digits.
    Fraction,
    /// `%z`: `+hhmm`, `+hh:mm` or `Z`.
    Offset,
    /// `%a`: weekday name, skipped.
    Weekday,
    /// `%s`: seconds since the epoch.
    EpochSeconds,
}

impl TimeFormat {
    /// Parses a `format:` value of the patterns file.
    pub fn from_spec(spec: &str) -> Result<TimeFormat, String> {
        match spec {
            "clf" => Ok(TimeFormat::Clf),
            "iso8601" | "rfc3339" => Ok(TimeFormat::Iso8601),
            "epoch" => Ok(TimeFormat::Epoch),
            "epoch_ms" => Ok(TimeFormat::EpochMillis),
            "auto" => Ok(TimeFormat::Auto),
            layout => compile_strftime(layout).map(TimeFormat::Strftime),
        }
    }

    /// Parses `text` into microseconds since the epoch (UTC), or `None` when it does not fit.
    pub fn parse(&self, text: &[u8]) -> Option<i64> {
        match self {
            TimeFormat::Clf => parse_clf(text),
            TimeFormat::Iso8601 => parse_iso8601(text),
            TimeFormat::Epoch => parse_decimal_scaled(text, 6).and_then(|v| i64::try_from(v).ok()),
            TimeFormat::EpochMillis => {
                parse_decimal_scaled(text, 3).and_then(|v| i64::try_from(v).ok())
            }
            TimeFormat::Strftime(items) => parse_strftime(items, text),
            TimeFormat::Auto => parse_any_time(text),
        }
    }
}

/// Epoch time in any common unit (by magnitude: below 1e11 seconds, then ms, µs, ns), else ISO
/// 8601, else CLF.
fn parse_any_time(text: &[u8]) -> Option<i64> {
    if text.first().is_some_and(u8::is_ascii_digit)
        && text.iter().all(|b| b.is_ascii_digit() || *b == b'.')
    {
        let int_digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
        let scale: i32 = match int_digits {
            0..=11 => 6,
            12..=14 => 3,
            15..=17 => 0,
            _ => -3,
        };
        if scale >= 0 {
            return parse_decimal_scaled(text, scale as u32).and_then(|v| i64::try_from(v).ok());
        }
        return parse_decimal_scaled(text, 0).and_then(|v| i64::try_from(v / 1000).ok());
    }
    parse_iso8601(text).or_else(|| parse_clf(text))
}

fn compile_strftime(layout: &str) -> Result<Vec<TimeItem>, String> {
    let mut items = Vec::new();
    let mut bytes = layout.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            items.push(TimeItem::Literal(b));
            continue;
        }
        let item = match bytes.next() {
            Some(b'Y') => TimeItem::Year,
            Some(b'm') => TimeItem::Month,
            Some(b'b' | b'h') => TimeItem::MonthName,
            Some(b'd' | b'e') => TimeItem::Day,
            Some(b'H') => TimeItem::Hour,
            Some(b'M') => TimeItem::Minute,
            Some(b'S') => TimeItem::Second,
            Some(b'f') => TimeItem::Fraction,
            Some(b'z') => TimeItem::Offset,
            Some(b'a') => TimeItem::Weekday,
            Some(b's') => TimeItem::EpochSeconds,
            Some(b'T') => {
                items.extend([
                    TimeItem::Hour,
                    TimeItem::Literal(b':'),
                    TimeItem::Minute,
                    TimeItem::Literal(b':'),
                ]);
                TimeItem::Second
            }
            Some(b'%') => TimeItem::Literal(b'%'),
            Some(other) => {
                return Err(format!(
                    "timestamp layout `{layout}`: %{} is not supported (use %Y %m %d %e %b %H %M %S %T %f %z %a %s, or clf, iso8601, epoch, epoch_ms)",
                    other as char
                ));
            }
            None => return Err(format!("timestamp layout `{layout}` ends with a lone %")),
        };
        items.push(item);
    }
    if !items
        .iter()
        .any(|i| matches!(i, TimeItem::Year | TimeItem::EpochSeconds))
    {
        return Err(format!(
            "timestamp layout `{layout}` has no year (%Y) or epoch (%s)"
        ));
    }
    Ok(items)
}

/// Day number since the epoch of a `YYYY-MM-DD` date (partition names, `--as-of`, `--date`).
pub fn parse_date(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.len() != 10 {
        return None;
    }
    parse_iso8601(format!("{t}T00:00:00Z").as_bytes()).map(|us| us.div_euclid(86_400_000_000))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats µs since the epoch as RFC 3339 UTC with second precision (`2024-01-01T00:00:00Z`).
pub fn format_rfc3339(us: i64) -> String {
    let secs = us.div_euclid(US_PER_SEC);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let r = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        r / 3600,
        r / 60 % 60,
        r % 60
    )
}

/// The current time in µs since the epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Builds µs since the epoch from calendar fields, validating ranges.
fn to_micros(
    (y, mo, d): (i64, u32, u32),
    (h, mi, s): (u32, u32, u32),
    frac_us: i64,
    offset_s: i64,
) -> Option<i64> {
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + (h * 3600 + mi * 60 + s) as i64 - offset_s;
    secs.checked_mul(US_PER_SEC)?.checked_add(frac_us)
}

fn digits(t: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = t.get(at..at + n)?;
    let mut v = 0u32;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (b - b'0') as u32;
    }
    Some(v)
}

fn month_from_name(t: &[u8]) -> Option<u32> {
    const NAMES: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let key = [
        t.first()?.to_ascii_lowercase(),
        t.get(1)?.to_ascii_lowercase(),
        t.get(2)?.to_ascii_lowercase(),
    ];
    NAMES.iter().position(|n| **n == key).map(|i| i as u32 + 1)
}

/// Parses a fraction of a second starting after the dot: returns (µs, bytes consumed).
fn fraction(t: &[u8]) -> (i64, usize) {
    let n = t.iter().take_while(|b| b.is_ascii_digit()).count();
    let us = (0..6).fold(0i64, |us, i| {
        us * 10 + t.get(i).filter(|_| i < n).map_or(0, |b| (b - b'0') as i64)
    });
    (us, n)
}

/// Parses `+hhmm`, `+hh:mm`, `+hh`, `Z` or `UTC`: returns (offset seconds east, bytes consumed).
fn offset(t: &[u8]) -> Option<(i64, usize)> {
    match t.first()? {
        b'Z' | b'z' => Some((0, 1)),
        b'U' if t.starts_with(b"UTC") => Some((0, 3)),
        b'G' if t.starts_with(b"GMT") => Some((0, 3)),
        sign @ (b'+' | b'-') => {
            let h = digits(t, 1, 2)? as i64;
            let (m, used) = if t.get(3) == Some(&b':') {
                (digits(t, 4, 2)? as i64, 6)
            } else if let Some(m) = digits(t, 3, 2) {
                (m as i64, 5)
            } else {
                (0, 3)
            };
            if h > 23 || m > 59 {
                return None;
            }
            let s = h * 3600 + m * 60;
            Some((if *sign == b'-' { -s } else { s }, used))
        }
        _ => None,
    }
}

/// `10/Oct/2000:13:55:36 -0700`, also with `.123` after the seconds and without the offset (UTC).
pub fn parse_clf(t: &[u8]) -> Option<i64> {
    if t.len() < 20
        || t[2] != b'/'
        || t[6] != b'/'
        || t[11] != b':'
        || t[14] != b':'
        || t[17] != b':'
    {
        return None;
    }
    let d = digits(t, 0, 2)?;
    let mo = month_from_name(&t[3..6])?;
    let y = digits(t, 7, 4)? as i64;
    let h = digits(t, 12, 2)?;
    let mi = digits(t, 15, 2)?;
    let s = digits(t, 18, 2)?;
    let mut rest = &t[20..];
    let mut frac = 0;
    if let Some(after) = rest.strip_prefix(b".") {
        let (us, n) = fraction(after);
        if n == 0 {
            return None;
        }
        frac = us;
        rest = &after[n..];
    }
    let off = match rest {
        [] => 0,
        [b' ', tail @ ..] => match offset(tail)? {
            (o, n) if n == tail.len() => o,
            _ => return None,
        },
        _ => return None,
    };
    to_micros((y, mo, d), (h, mi, s), frac, off)
}

/// ISO 8601 / RFC 3339 date-times.
pub fn parse_iso8601(t: &[u8]) -> Option<i64> {
    if t.len() < 19
        || t[4] != b'-'
        || t[7] != b'-'
        || !matches!(t[10], b'T' | b't' | b' ')
        || t[13] != b':'
        || t[16] != b':'
    {
        return None;
    }
    let y = digits(t, 0, 4)? as i64;
    let mo = digits(t, 5, 2)?;
    let d = digits(t, 8, 2)?;
    let h = digits(t, 11, 2)?;
    let mi = digits(t, 14, 2)?;
    let s = digits(t, 17, 2)?;
    let mut rest = &t[19..];
    let mut frac = 0;
    if let Some(after) = rest.strip_prefix(b".").or_else(|| rest.strip_prefix(b",")) {
        let (us, n) = fraction(after);
        if n == 0 {
            return None;
        }
        frac = us;
        rest = &after[n..];
    }
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let off = if rest.is_empty() {
        0
    } else {
        match offset(rest)? {
            (o, n) if n == rest.len() => o,
            _ => return None,
        }
    };
    to_micros((y, mo, d), (h, mi, s), frac, off)
}

fn parse_strftime(items: &[TimeItem], t: &[u8]) -> Option<i64> {
    let (mut y, mut mo, mut d, mut h, mut mi, mut s) = (1970i64, 1u32, 1u32, 0u32, 0u32, 0u32);
    let (mut frac, mut off, mut epoch) = (0i64, 0i64, None);
    let mut i = 0;
    let num = |t: &[u8], i: &mut usize, max: usize| -> Option<u32> {
        while *i < t.len() && t[*i] == b' ' && max == 2 {
            *i += 1;
        }
        let n = t[*i..]
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        let v = digits(t, *i, n)?;
        if n == 0 {
            return None;
        }
        *i += n;
        Some(v)
    };
    for item in items {
        match item {
            TimeItem::Literal(b) => {
                if t.get(i) != Some(b) {
                    return None;
                }
                i += 1;
            }
            TimeItem::Year => y = num(t, &mut i, 4)? as i64,
            TimeItem::Month => mo = num(t, &mut i, 2)?,
            TimeItem::MonthName => {
                mo = month_from_name(t.get(i..)?)?;
                i += 3;
            }
            TimeItem::Day => d = num(t, &mut i, 2)?,
            TimeItem::Hour => h = num(t, &mut i, 2)?,
            TimeItem::Minute => mi = num(t, &mut i, 2)?,
            TimeItem::Second => s = num(t, &mut i, 2)?,
            TimeItem::Fraction => {
                // Optional: `.123456` (`,123` in Java and Python layouts) or nothing.
                if matches!(t.get(i), Some(b'.' | b',')) {
                    let (us, n) = fraction(t.get(i + 1..)?);
                    frac = us;
                    i += 1 + n;
                }
            }
            TimeItem::Offset => {
                let (o, n) = offset(t.get(i..)?)?;
                off = o;
                i += n;
            }
            TimeItem::Weekday => {
                let n = t[i..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphabetic())
                    .count();
                if n == 0 {
                    return None;
                }
                i += n;
            }
            TimeItem::EpochSeconds => {
                let n = t[i..].iter().take_while(|b| b.is_ascii_digit()).count();
                epoch = Some(parse_u64(&t[i..i + n])? as i64);
                i += n;
            }
        }
    }
    if i != t.len() {
        return None;
    }
    match epoch {
        Some(e) => e.checked_mul(US_PER_SEC)?.checked_add(frac),
        None => to_micros((y, mo, d), (h, mi, s), frac, off),
    }
}

/// Parses an unsigned decimal integer; `None` on anything else (including empty and overflow).
pub fn parse_u64(t: &[u8]) -> Option<u64> {
    if t.is_empty() || t.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in t {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    Some(v)
}

/// Parses a non-negative decimal such as `0.123` exactly, scaled by 10^`scale` (excess digits are
/// truncated): `parse_decimal_scaled(b"1.5", 6) == Some(1_500_000)`.
pub fn parse_decimal_scaled(t: &[u8], scale: u32) -> Option<u64> {
    let (int, frac) = match memchr::memchr(b'.', t) {
        Some(p) => (&t[..p], &t[p + 1..]),
        None => (t, &[][..]),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let int_v = if int.is_empty() { 0 } else { parse_u64(int)? };
    let mut frac_v: u64 = 0;
    for i in 0..scale as usize {
        let digit = match frac.get(i) {
            Some(b) if b.is_ascii_digit() => (b - b'0') as u64,
            Some(_) => return None,
            None => 0,
        };
        frac_v = frac_v * 10 + digit;
    }
    if frac
        .iter()
        .skip(scale as usize)
        .any(|b| !b.is_ascii_digit())
    {
        return None;
    }
    int_v.checked_mul(10u64.pow(scale))?.checked_add(frac_v)
}

/// µs of a Go duration string (`1.5ms`, `2m3.5s`, `350µs`, `12ns`, as Caddy's `duration_format:
/// string` and Traefik write them), or of plain decimal seconds.
pub fn parse_go_duration_us(t: &[u8]) -> Option<u64> {
    if t.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        return parse_decimal_scaled(t, 6);
    }
    let mut total_ns: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let n = rest
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .count();
        if n == 0 {
            return None;
        }
        let (num, tail) = rest.split_at(n);
        let unit = tail
            .iter()
            .take_while(|b| !b.is_ascii_digit() && **b != b'.')
            .count();
        let ns_per: u64 = match &tail[..unit] {
            b"ns" => 1,
            b"us" | b"\xC2\xB5s" | b"\xCE\xBCs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => return None,
        };
        // num * ns_per, exact to the nanosecond: scale the decimal by 9 digits, then divide.
        let v = parse_decimal_scaled(num, 9)?.checked_mul(ns_per)? / 1_000_000_000;
        total_ns = total_ns.checked_add(v)?;
        rest = &tail[unit..];
    }
    Some(total_ns / 1_000)
}

/// Total µs of a multi-value seconds field as nginx logs upstream times (`0.012, 0.004 : 0.100`):
/// entries separated by `,` (several servers) or `:` (internal redirects); `-` entries count as
/// nothing, and `Some(None)` means every entry was `-`. `None` on anything else.
pub fn sum_seconds_us(t: &[u8]) -> Option<Option<u64>> {
    let mut total: Option<u64> = None;
    for part in t.split(|b| *b == b',' || *b == b':') {
        let part = part.trim_ascii();
        if part == b"-" {
            continue;
        }
        let v = parse_decimal_scaled(part, 6)?;
        total = Some(total.unwrap_or(0).checked_add(v)?);
    }
    Some(total)
}

/// A request line split into its parts; all `None` for `-` or an empty request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: Option<&'a [u8]>,
    /// The target without its query string (the whole text when the line is not a request).
    pub path: Option<&'a [u8]>,
    /// The query string after `?` (empty when the target ends in `?`).
    pub query: Option<&'a [u8]>,
    /// `HTTP/1.1`, ...
    pub protocol: Option<&'a [u8]>,
}

/// Splits a request target `path?query` (method and protocol stay `None`).
pub fn split_target(t: &[u8]) -> Request<'_> {
    if t.is_empty() {
        return Request::default();
    }
    let (path, query) = match memchr::memchr(b'?', t) {
        Some(q) => (&t[..q], Some(&t[q + 1..])),
        None => (t, None),
    };
    Request {
        path: Some(path),
        query,
        ..Request::default()
    }
}

/// Splits `METHOD target PROTOCOL`. A line that is not shaped like a request (binary garbage, a TLS
/// handshake) keeps its whole text in `path` with no method, so nothing is lost. `-` and HAProxy's
/// `<BADREQ>` (what it logs for a request it could not parse) are no request at all.
pub fn split_request(t: &[u8]) -> Request<'_> {
    if t.is_empty() || t == b"-" || t == b"<BADREQ>" {
        return Request::default();
    }
    let Some(sp1) = memchr::memchr(b' ', t) else {
        return Request {
            path: Some(t),
            ..Request::default()
        };
    };
    let method = &t[..sp1];
    let method_ok = method.len() <= 32
        && !method.is_empty()
        && method
            .iter()
            .all(|b| b.is_ascii_alphabetic() || *b == b'_' || *b == b'-');
    if !method_ok {
        return Request {
            path: Some(t),
            ..Request::default()
        };
    }
    let rest = &t[sp1 + 1..];
    let (target, protocol) = match memchr::memrchr(b' ', rest) {
        Some(sp2) if rest[sp2 + 1..].starts_with(b"HTTP/") => {
            (&rest[..sp2], Some(&rest[sp2 + 1..]))
        }
        _ => (rest, None),
    };
    let (path, query) = match memchr::memchr(b'?', target) {
        Some(q) => (&target[..q], Some(&target[q + 1..])),
        None => (target, None),
    };
    Request {
        method: Some(method),
        path: Some(path),
        query,
        protocol,
    }
}

/// The address of an `address:port` field: `1.2.3.4:80` and `[::1]:80` and HAProxy's `::1:80` lose
/// the port; a field without one is returned unchanged.
pub fn strip_port(t: &[u8]) -> &[u8] {
    if let Some(inner) = t.strip_prefix(b"[") {
        return inner.split(|b| *b == b']').next().unwrap_or(inner);
    }
    match memchr::memrchr(b':', t) {
        Some(p) if p > 0 && p + 1 < t.len() && t[p + 1..].iter().all(u8::is_ascii_digit) => &t[..p],
        _ => t,
    }
}

/// The client of a remote-address field that may hold a proxy list (`10.0.0.2, 10.0.0.1 85.1.2.3`):
/// the first public address, else the first entry. Returns the field unchanged when it is one entry.
pub fn pick_client(t: &[u8]) -> &[u8] {
    if memchr::memchr2(b',', b' ', t).is_none() {
        return t;
    }
    let mut first = None;
    for part in t.split(|b| *b == b',' || *b == b' ') {
        let part = part.trim_ascii();
        if part.is_empty() {
            continue;
        }
        first.get_or_insert(part);
        if is_public(part) {
            return part;
        }
    }
    first.unwrap_or(t)
}

fn is_public(addr: &[u8]) -> bool {
    let Some(ip) = std::str::from_utf8(addr)
        .ok()
        .and_then(|s| s.parse::<IpAddr>().ok())
    else {
        return false;
    };
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (o[0] == 100 && (64..128).contains(&o[1])))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Parses `--since`/`--until`: RFC 3339, `YYYY-MM-DD`, or a span before now (`90m`, `24h`, `7d`).
pub fn parse_time_arg(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Some(us) = parse_iso8601(t.as_bytes()) {
        return Some(us);
    }
    if let Some(day) = parse_date(t) {
        return Some(day * 86_400_000_000);
    }
    now_us().checked_sub(parse_span(t)?)
}

/// `500ms`, `30s`, `10m`, `6h`, `1d` as a [`Duration`] ([`parse_span`]), with a message that says
/// what was wrong.
pub fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    match parse_span(s) {
        Some(us) if us >= 0 => Ok(std::time::Duration::from_micros(us as u64)),
        _ if s.trim().starts_with(|c: char| c.is_ascii_digit()) => Err(format!(
            "{s:?}: unknown unit (use ms, s, m, h, d or w, like 30s or 6h)"
        )),
        _ => Err(format!("{s:?} is not a duration like 30s, 10m, 6h or 1d")),
    }
}

/// Parses a span (`500ms`, `30s`, `5m`, `24h`, `7d`, `2w`) into µs.
pub fn parse_span(text: &str) -> Option<i64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let us: i64 = match unit {
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        "w" => 604_800_000_000,
        _ => return None,
    };
    n.checked_mul(us)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(us: i64) -> String {
        format_rfc3339(us)
    }

    #[test]
    fn durations_parse_and_name_their_unit() {
        assert_eq!(
            parse_duration("90s").unwrap(),
            std::time::Duration::from_secs(90)
        );
        assert_eq!(
            parse_duration("6h").unwrap(),
            std::time::Duration::from_secs(6 * 3600)
        );
        assert_eq!(
            parse_duration("500ms").unwrap(),
            std::time::Duration::from_millis(500)
        );
        assert!(
            parse_duration("6 weeks")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn clf_applies_the_offset() {
        let us = parse_clf(b"10/Oct/2000:13:55:36 -0700").unwrap();
        assert_eq!(iso(us), "2000-10-10T20:55:36Z");
        let us = parse_clf(b"07/Dec/2016:11:05:07 +0100").unwrap();
        assert_eq!(iso(us), "2016-12-07T10:05:07Z");
        assert_eq!(
            parse_clf(b"17/May/2015:10:05:03.250 +0000").unwrap() % US_PER_SEC,
            250_000
        );
    }

    #[test]
    fn clf_rejects_garbage_and_impossible_dates() {
        for bad in [
            &b"1234"[..],
            b"-",
            b"31/Feb/2020:00:00:00 +0000",
            b"10/Foo/2000:13:55:36 -0700",
            b"10/Oct/2000:25:55:36 -0700",
            b"10/Oct/2000:13:55:36 07:00",
        ] {
            assert_eq!(parse_clf(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert!(parse_clf(b"29/Feb/2020:00:00:00 +0000").is_some());
    }

    #[test]
    fn iso8601_variants() {
        for (t, want) in [
            ("2021-02-25T12:44:08+00:00", "2021-02-25T12:44:08Z"),
            ("2021-02-25T12:44:08Z", "2021-02-25T12:44:08Z"),
            ("2021-02-25 13:44:08.5+01:00", "2021-02-25T12:44:08Z"),
            ("2021-02-25T12:44:08", "2021-02-25T12:44:08Z"),
        ] {
            assert_eq!(iso(parse_iso8601(t.as_bytes()).unwrap()), want, "{t}");
        }
        assert_eq!(
            parse_iso8601(b"2021-02-25T12:44:08.5Z").unwrap() % US_PER_SEC,
            500_000
        );
    }

    #[test]
    fn strftime_layouts() {
        let f = TimeFormat::from_spec("%Y/%m/%d %H:%M:%S").unwrap();
        assert_eq!(
            iso(f.parse(b"2016/10/25 14:49:34").unwrap()),
            "2016-10-25T14:49:34Z"
        );
        let f = TimeFormat::from_spec("%a %b %e %T %Y").unwrap();
        assert_eq!(
            iso(f.parse(b"Mon Dec 26 16:22:08 2016").unwrap()),
            "2016-12-26T16:22:08Z"
        );
        assert!(TimeFormat::from_spec("%Q").is_err());
        assert!(TimeFormat::from_spec("%H:%M").is_err());
    }

    #[test]
    fn epoch_is_exact_to_the_microsecond() {
        assert_eq!(
            TimeFormat::Epoch.parse(b"1700000000.123"),
            Some(1_700_000_000_123_000)
        );
        assert_eq!(
            TimeFormat::EpochMillis.parse(b"1700000000123"),
            Some(1_700_000_000_123_000)
        );
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 11_016, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn decimals_scale_exactly() {
        assert_eq!(parse_decimal_scaled(b"0.123", 6), Some(123_000));
        assert_eq!(parse_decimal_scaled(b"2", 6), Some(2_000_000));
        assert_eq!(parse_decimal_scaled(b".5", 6), Some(500_000));
        assert_eq!(parse_decimal_scaled(b"1.0000009", 6), Some(1_000_000));
        assert_eq!(parse_decimal_scaled(b"1.2.3", 6), None);
        assert_eq!(parse_decimal_scaled(b"-", 6), None);
        assert_eq!(parse_u64(b"18446744073709551616"), None);
    }

    #[test]
    fn upstream_lists_sum() {
        assert_eq!(sum_seconds_us(b"0.012, 0.004 : 0.100"), Some(Some(116_000)));
        assert_eq!(sum_seconds_us(b"0.5"), Some(Some(500_000)));
        assert_eq!(sum_seconds_us(b"-, 0.001"), Some(Some(1_000)));
        assert_eq!(sum_seconds_us(b"- : -"), Some(None));
        assert_eq!(sum_seconds_us(b"0.1, x"), None);
    }

    #[test]
    fn request_lines() {
        let r = split_request(b"GET /a/b?x=1&y HTTP/1.1");
        assert_eq!(r.method, Some(&b"GET"[..]));
        assert_eq!(r.path, Some(&b"/a/b"[..]));
        assert_eq!(r.query, Some(&b"x=1&y"[..]));
        assert_eq!(r.protocol, Some(&b"HTTP/1.1"[..]));
        assert_eq!(split_request(b"-"), Request::default());
        assert_eq!(split_request(b"<BADREQ>"), Request::default());
        assert_eq!(split_request(b""), Request::default());
        let r = split_request(b"GET /with space HTTP/1.0");
        assert_eq!(r.path, Some(&b"/with space"[..]));
        let r = split_request(b"GET /");
        assert_eq!((r.path, r.protocol), (Some(&b"/"[..]), None));
        let garbage = b"\\x16\\x03\\x01\\x02\\x00\\x01";
        let r = split_request(garbage);
        assert_eq!((r.method, r.path), (None, Some(&garbage[..])));
    }

    #[test]
    fn client_lists_pick_the_first_public_address() {
        assert_eq!(
            pick_client(b"10.0.0.2, 10.0.0.1, 85.181.35.98"),
            b"85.181.35.98"
        );
        assert_eq!(pick_client(b"10.0.0.2, 10.0.0.1, 127.0.0.1"), b"10.0.0.2");
        assert_eq!(
            pick_client(b"2a03:0000:10ff:f00f:0000:0000:0:8000, 10.225.192.17"),
            b"2a03:0000:10ff:f00f:0000:0000:0:8000"
        );
        assert_eq!(pick_client(b"monitoring-server"), b"monitoring-server");
        assert_eq!(pick_client(b"10.225.192.17 10.2.2.121"), b"10.225.192.17");
    }
}
