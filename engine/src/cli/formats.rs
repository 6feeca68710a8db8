//! `logcrunch formats list | show NAME | test [--format NAME] FILE | suggest FILE`: inspect the
//! formats, debug a custom one against real lines, and infer one for a log no format reads.

use std::io::Write;

use logcrunch::Error;
use logcrunch::parse::infer::{self, MIN_INFERRED_RATE};
use logcrunch::parse::sniff::{FormatCache, MIN_RATE, sample_lines};
use logcrunch::parse::value::format_rfc3339;
use logcrunch::parse::{AUTO, Patterns, Row};
use logcrunch::scan;
use logcrunch::schema::{ERROR_COLUMNS, StrCol};

/// Lines shown field by field by `formats test`.
const SHOWN: usize = 5;

/// `formats list`.
pub fn list(patterns: &Patterns, max_line: usize, json: bool) -> anyhow::Result<i32> {
    let mut rows = Vec::new();
    for (name, spec) in &patterns.formats {
        let engine = if spec.w3c {
            "per file".to_string()
        } else {
            match patterns.parser(name, max_line) {
                Ok(p) => serde_json::to_value(p.engine())?
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                Err(e) => format!("error: {e}"),
            }
        };
        let source = if spec.nginx.is_some() {
            "nginx"
        } else if spec.apache.is_some() {
            "apache"
        } else if spec.haproxy.is_some() {
            "haproxy"
        } else if spec.tomcat.is_some() {
            "tomcat"
        } else if spec.jetty.is_some() {
            "jetty"
        } else if spec.w3c {
            "w3c"
        } else if spec.json.is_some() {
            "json"
        } else {
            "regex"
        };
        rows.push(serde_json::json!({
            "name": name,
            "kind": spec.kind.table(),
            "defined_by": source,
            "engine": engine,
            "description": spec.description,
        }));
    }
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(0);
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(["name", "table", "defined by", "engine", "description"]);
    for r in &rows {
        table.add_row(
            ["name", "kind", "defined_by", "engine", "description"]
                .map(|k| r[k].as_str().unwrap_or_default().to_string()),
        );
    }
    writeln!(out, "{table}")?;
    writeln!(out, "patterns file: {}", patterns.path.display())?;
    Ok(0)
}

/// `formats show NAME`.
pub fn show(patterns: &Patterns, name: &str, max_line: usize) -> anyhow::Result<i32> {
    let spec = patterns.spec(name)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{name}: {}", spec.description)?;
    writeln!(out, "  table: {}", spec.kind.table())?;
    for (what, d) in [
        ("nginx log_format", &spec.nginx),
        ("apache LogFormat", &spec.apache),
        ("haproxy log-format", &spec.haproxy),
        ("tomcat pattern", &spec.tomcat),
        ("jetty format", &spec.jetty),
    ] {
        if let Some(d) = d {
            writeln!(out, "  {what}: {}", d.trim())?;
        }
    }
    if spec.w3c {
        writeln!(
            out,
            "  W3C extended: the regex is built from each file's #Fields header"
        )?;
        return Ok(0);
    }
    let p = patterns.parser(name, max_line)?;
    writeln!(
        out,
        "  engine: {}",
        serde_json::to_value(p.engine())?
            .as_str()
            .unwrap_or_default()
    )?;
    if let Some(re) = p.regex() {
        writeln!(out, "  regex: {re}")?;
    }
    writeln!(out, "  fields:")?;
    for (field, column) in p.fields() {
        writeln!(out, "    {field:<28} -> {column}")?;
    }
    Ok(0)
}

fn describe(row: &Row<'_>, error_log: bool, extras: &[String]) -> Vec<(String, String)> {
    let text = |b: Option<&[u8]>| b.map(|v| String::from_utf8_lossy(v).into_owned());
    let mut out = vec![("ts".to_string(), format_rfc3339(row.ts_us))];
    if error_log {
        for (i, c) in ERROR_COLUMNS.iter().enumerate() {
            if let Some(v) = text(row.extra(i)) {
                out.push((c.to_string(), v));
            }
        }
        return out;
    }
    for c in StrCol::ALL {
        if let Some(v) = text(row.str(c)) {
            out.push((c.name().to_string(), v));
        }
    }
    for (name, v) in [
        ("status", row.status.map(u64::from)),
        ("bytes", row.bytes),
        ("response_time_us", row.response_time_us),
        ("upstream_response_time_us", row.upstream_response_time_us),
    ] {
        if let Some(v) = v {
            out.push((name.to_string(), v.to_string()));
        }
    }
    for (i, name) in extras.iter().enumerate() {
        if let Some(v) = text(row.extra(i)) {
            out.push((name.clone(), v));
        }
    }
    out
}

/// `formats test [--format NAME] FILE`: exit 0 when the match rate reaches 90%, 1 otherwise.
pub fn test(patterns: &Patterns, format: &str, file: &str, max_line: usize) -> anyhow::Result<i32> {
    let input = scan::resolve(&[file.to_string()])?
        .into_iter()
        .next()
        .ok_or_else(|| Error::NoLogFiles(file.into()))?;
    let (head, complete) = scan::head(&input, 1 << 20)?;
    let mut out = std::io::stdout().lock();
    let name = if format == AUTO {
        let mut cache = FormatCache::default();
        let candidates = patterns.sniff(&head, complete, max_line, &mut cache);
        writeln!(out, "format detection on the first lines of {file}:")?;
        for c in candidates.iter().take(5) {
            writeln!(
                out,
                "  {:<16} {:5.1}%  ({}/{})",
                c.format,
                c.rate * 100.0,
                c.matched,
                c.sampled
            )?;
        }
        match candidates.first() {
            Some(c) if c.sampled > 0 => c.format.clone(),
            _ => {
                writeln!(out, "no lines to test")?;
                return Ok(1);
            }
        }
    } else {
        format.to_string()
    };
    let parser = patterns.parser_for(&name, max_line, &head)?;
    let error_log = parser.kind() == logcrunch::parse::Kind::Error;
    let mut scratch = parser.scratch();
    let (mut matched, mut sampled, mut shown) = (0usize, 0usize, 0usize);
    let mut undeclared = 0usize;
    let trailing = parser.trailing_extra();
    writeln!(out, "\n{name} on {file}:")?;
    let lines = sample_lines(&head, complete);
    for (i, line) in lines.iter().enumerate() {
        let extras = parser.extras();
        let result = parser.parse_line(&mut scratch, line, 0).map(|r| {
            r.map(|row| {
                undeclared += usize::from(trailing.is_some_and(|t| row.extra(t).is_some()));
                describe(&row, error_log, extras)
            })
        });
        match result {
            Ok(None) => continue,
            Ok(Some(fields)) => {
                matched += 1;
                sampled += 1;
                if shown < SHOWN {
                    shown += 1;
                    writeln!(out, "line {}: ok", i + 1)?;
                    for (k, v) in fields {
                        writeln!(out, "    {k:<26} {v}")?;
                    }
                }
            }
            Err(reason) => {
                sampled += 1;
                if shown < SHOWN {
                    shown += 1;
                    let text = String::from_utf8_lossy(&line[..line.len().min(160)]).into_owned();
                    writeln!(out, "line {}: {}  {text}", i + 1, reason.key())?;
                }
            }
        }
    }
    let rate = if sampled == 0 {
        0.0
    } else {
        matched as f64 / sampled as f64
    };
    writeln!(
        out,
        "\nmatch rate: {:.1}% ({matched}/{sampled} lines)",
        rate * 100.0
    )?;
    if undeclared > 0 {
        writeln!(
            out,
            "{undeclared} of them with fields the format does not declare, kept in {}",
            logcrunch::parse::TRAILING
        )?;
    }
    Ok(if sampled > 0 && rate >= MIN_RATE {
        0
    } else {
        1
    })
}

/// Lines `formats suggest` infers from.
const SUGGEST_LINES: usize = 1000;

/// `formats suggest [--name NAME] FILE`: exit 0 when the inferred format reads 95% of the sampled
/// lines, 1 otherwise.
pub fn suggest(
    patterns: &Patterns,
    name: &str,
    file: &str,
    json: bool,
    max_line: usize,
) -> anyhow::Result<i32> {
    let input = scan::resolve(&[file.to_string()])?
        .into_iter()
        .next()
        .ok_or_else(|| Error::NoLogFiles(file.into()))?;
    let (head, complete) = scan::head(&input, 1 << 20)?;
    let mut lines: Vec<&[u8]> = head.split(|b| *b == b'\n').collect();
    if !complete || head.ends_with(b"\n") {
        lines.pop();
    }
    lines.retain(|l| !l.trim_ascii().is_empty());
    lines.truncate(SUGGEST_LINES);
    let known = patterns
        .sniff(&head, complete, max_line, &mut FormatCache::default())
        .into_iter()
        .next()
        .filter(|c| c.rate >= MIN_RATE);
    let suggestion = infer::suggest(name, &lines, max_line);
    let ok = suggestion
        .as_ref()
        .is_some_and(|s| s.rate() >= MIN_INFERRED_RATE);
    let mut out = std::io::stdout().lock();
    if json {
        let value = serde_json::json!({
            "file": file,
            "lines": lines.len(),
            "known_format": known.as_ref().map(|c| serde_json::json!({"name": c.format, "rate": c.rate})),
            "suggestion": suggestion.as_ref().map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["rate"] = serde_json::json!(s.rate());
                v["yaml"] = serde_json::json!(s.yaml(&description(file)));
                v
            }),
        });
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
        return Ok(if ok { 0 } else { 1 });
    }
    if let Some(c) = &known {
        writeln!(
            out,
            "note: the format `{}` already reads {:.1}% of these lines (`logcrunch formats test {file}`)\n",
            c.format,
            c.rate * 100.0
        )?;
    }
    let Some(s) = suggestion else {
        writeln!(
            out,
            "no layout is shared by {:.0}% of the {} sampled lines of {file}, or none has a time: \
             write a regex format (see `logcrunch formats show combined` for one)",
            MIN_INFERRED_RATE * 100.0,
            lines.len()
        )?;
        return Ok(1);
    };
    writeln!(
        out,
        "inferred from {} lines of {file}: the pattern reads {} of them ({:.1}%)\n",
        lines.len(),
        s.matched,
        s.rate() * 100.0
    )?;
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(["field", "column", "looks like", "example"]);
    for c in &s.columns {
        let column = if c.optional {
            format!("{} (optional)", c.column)
        } else {
            c.column.clone()
        };
        let example: String = c.example.chars().take(48).collect();
        table.add_row([c.field.clone(), column, c.looks_like.clone(), example]);
    }
    writeln!(out, "{table}\n")?;
    writeln!(out, "for patterns.yaml (under `formats:`):\n")?;
    write!(out, "{}", s.yaml(&description(file)))?;
    if s.name != s.base_name() {
        writeln!(
            out,
            "\n(the lines carry a syslog header: the format reads them as `{}`)",
            s.name
        )?;
    }
    if let Some(d) = &s.nginx {
        writeln!(out, "\nthe same layout as an nginx log_format:\n  {d}")?;
    }
    if let Some(d) = &s.apache {
        writeln!(out, "\nthe same layout as an Apache LogFormat:\n  {d}")?;
    }
    if !ok {
        writeln!(
            out,
            "\nit reads fewer than {:.0}% of the lines: check the columns before you use it",
            MIN_INFERRED_RATE * 100.0
        )?;
    }
    Ok(if ok { 0 } else { 1 })
}

fn description(file: &str) -> String {
    let base = std::path::Path::new(file)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.to_string());
    format!("inferred from {base} by logcrunch formats suggest")
}
