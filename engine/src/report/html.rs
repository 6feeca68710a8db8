//! The HTML report: one self-contained page with cards, charts and tables.
//!
//! People look at a report before they read it, so this renders the same [`Report`] the JSON
//! format serialises (no query of its own: every number on the page is a value of a section)
//! as a page that opens anywhere: no network access (a Content-Security-Policy forbids any, and
//! nothing is linked), the stylesheet and the one small script (table sorting) inline, system
//! fonts, light and dark themes from the system setting, and print rules. Charts are SVG drawn
//! by [`super::svg`]; numbers in cards and tables carry their raw value in `data-v`, so sorting and
//! tests read what the JSON report holds.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;

use serde_json::Value;

use super::svg::{self, Band, Bar, Series, long_number};
use super::{Report, ReportKind, Section, capitalise};
use crate::catalog::Table;
use crate::error::{Error, Result};

/// `s` with the characters HTML gives a meaning escaped (for text and attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// A page being written: the head is fixed, the body grows.
struct Page {
    title: String,
    body: String,
}

impl Page {
    fn new(title: &str) -> Page {
        Page {
            title: title.to_string(),
            body: String::new(),
        }
    }

    fn write(self, out: &mut dyn Write) -> Result<()> {
        let io = |e: std::io::Error| Error::io("cannot write", "<output>", e);
        write!(
            out,
            r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="logcrunch {version}">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
{body}<footer>Made by logcrunch {version}. This page loads nothing from the network.</footer>
<script>{SCRIPT}</script>
</body>
</html>
"#,
            version = env!("CARGO_PKG_VERSION"),
            title = escape(&self.title),
            body = self.body,
        )
        .map_err(io)
    }
}

/// Writes `report` as one HTML page.
pub fn write_report(report: &Report, out: &mut dyn Write) -> Result<()> {
    let view = View { report };
    let mut page = Page::new(&match &report.dataset {
        Some(d) => format!("logcrunch report: {d}"),
        None => "logcrunch report".to_string(),
    });
    view.header(&mut page.body);
    view.cards(&mut page.body);
    for (kind, sections) in &report.parts {
        view.part(&mut page.body, *kind, sections);
    }
    page.write(out)
}

/// Writes a query result as one HTML page with a sortable table.
pub fn write_table_page(table: &Table, out: &mut dyn Write) -> Result<()> {
    let mut page = Page::new("logcrunch query");
    page.body
        .push_str("<header><h1>logcrunch query</h1></header>\n<main>");
    page.body
        .push_str(&table_html(table, &TableOptions::default()));
    page.body.push_str("</main>\n");
    page.write(out)
}

/// Writes a comparison of a period with a baseline: what was compared, whether it regressed, and
/// one row per route, the regressed ones highlighted.
pub fn write_comparison(
    about: &[(&str, String)],
    regressed: bool,
    table: &Table,
    out: &mut dyn Write,
) -> Result<()> {
    let mut page = Page::new("logcrunch compare");
    let b = &mut page.body;
    b.push_str("<header><h1>Current period against baseline</h1><dl class=\"meta\">");
    for (k, v) in about {
        let _ = write!(b, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(v));
    }
    b.push_str("</dl></header>\n<main>");
    let flagged = column(table, "regressions").map_or(0, |i| {
        table
            .rows
            .iter()
            .filter(|r| r[i].as_str().is_some_and(|s| !s.is_empty()))
            .count()
    });
    let _ = write!(
        b,
        r#"<div class="cards"><div class="card{cls}" data-key="regressed"><div class="label">Regressed routes</div><div class="value" data-v="{flagged}">{flagged}</div></div><div class="card" data-key="routes"><div class="label">Routes compared</div><div class="value" data-v="{n}">{n}</div></div></div>"#,
        cls = if regressed { " bad" } else { "" },
        n = table.rows.len(),
    );
    b.push_str(&table_html(
        table,
        &TableOptions {
            highlight: Some("regressions"),
            ..TableOptions::default()
        },
    ));
    b.push_str("</main>\n");
    page.write(out)
}

/// A report and the lookups its rendering needs.
struct View<'a> {
    report: &'a Report,
}

impl View<'_> {
    fn section(&self, kind: ReportKind, name: &str) -> Option<&Section> {
        self.report
            .parts
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, s)| s.iter().find(|s| s.name == name))
    }

    /// The value of `column` in the single-row section `kind.name`.
    fn single(&self, kind: ReportKind, name: &str, column_name: &str) -> Option<&Value> {
        let s = self.section(kind, name)?;
        let i = column(&s.table, column_name)?;
        s.table.rows.first().map(|r| &r[i]).filter(|v| !v.is_null())
    }

    fn header(&self, b: &mut String) {
        let r = self.report;
        b.push_str("<header><h1>logcrunch report</h1><dl class=\"meta\">");
        if let Some(d) = &r.dataset {
            let _ = write!(b, "<dt>Dataset</dt><dd><code>{}</code></dd>", escape(d));
        }
        let _ = write!(
            b,
            r#"<dt>Made</dt><dd><time datetime="{t}">{t}</time></dd>"#,
            t = escape(&r.generated_at)
        );
        for (k, v) in &r.filters {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = write!(
                b,
                r#"<dt>{}</dt><dd class="filter" data-filter="{k}"><code>{}</code></dd>"#,
                escape(&capitalise(k)),
                escape(&v),
                k = escape(k),
            );
        }
        b.push_str("</dl>");
        b.push_str("<nav>");
        for (kind, _) in &r.parts {
            let name = kind_name(*kind);
            let _ = write!(b, "<a href=\"#{name}\">{}</a>", capitalise(name));
        }
        b.push_str("</nav></header>\n");
    }

    /// The overview cards: each figure from the section that holds it, when the report has it.
    fn cards(&self, b: &mut String) {
        use ReportKind::{Anomalies, Errors, Performance, Security, Traffic};
        let mut cards: Vec<(&str, &str, String, Option<f64>)> = Vec::new();
        let requests = [Performance, Errors, Traffic, Security]
            .into_iter()
            .find_map(|k| self.single(k, "overall", "requests"));
        if let Some(v) = requests {
            cards.push(("requests", "Requests", number(v), v.as_f64()));
        }
        if let (Some(first), Some(last)) = (
            self.single(Traffic, "overall", "first"),
            self.single(Traffic, "overall", "last"),
        ) {
            let t = |v: &Value| v.as_str().unwrap_or_default().replace('T', " ");
            cards.push((
                "time_range",
                "Time range",
                format!("{} to {}", t(first), t(last)),
                None,
            ));
        }
        for (key, label) in [("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")] {
            if let Some(v) = self.single(Performance, "overall", key) {
                cards.push((key, label, format!("{} ms", number(v)), v.as_f64()));
            }
        }
        for (kind, key, label) in [
            (Errors, "rate_4xx", "4xx rate"),
            (Errors, "rate_5xx", "5xx rate"),
            (Traffic, "bot_share", "Bot share"),
        ] {
            if let Some(v) = self.single(kind, "overall", key) {
                cards.push((key, label, percent(v), v.as_f64()));
            }
        }
        if let Some(v) = self.single(Security, "overall", "tagged_requests") {
            cards.push(("tagged_requests", "Tagged requests", number(v), v.as_f64()));
        }
        for (kind, name, key, label) in [
            (Security, "findings", "findings", "Behavioural findings"),
            (Anomalies, "events", "anomalies", "Anomalies"),
        ] {
            if let Some(s) = self.section(kind, name) {
                let n = s.table.rows.len();
                cards.push((key, label, n.to_string(), Some(n as f64)));
            }
        }
        b.push_str(r#"<section id="overview" class="cards">"#);
        for (key, label, text, raw) in cards {
            let v = raw.map(|r| format!(r#" data-v="{r}""#)).unwrap_or_default();
            let _ = write!(
                b,
                r#"<div class="card" data-key="{key}"><div class="label">{label}</div><div class="value"{v}>{}</div></div>"#,
                escape(&text)
            );
        }
        b.push_str("</section>\n");
    }

    fn part(&self, b: &mut String, kind: ReportKind, sections: &[Section]) {
        let name = kind_name(kind);
        let _ = write!(
            b,
            "<section class=\"part\" id=\"{name}\"><h2>{}</h2>",
            capitalise(name)
        );
        // Charts first: they are what a reader looks at before reading the tables.
        for s in sections {
            if let Some((caption, chart)) = self.chart(kind, s) {
                let _ = write!(
                    b,
                    "<figure id=\"{name}-{s}-figure\"><figcaption>{t}</figcaption>{chart}</figure>",
                    s = s.name,
                    t = escape(&caption)
                );
            }
        }
        for s in sections {
            if s.chart_data || charted_only(kind, s.name) {
                continue;
            }
            let _ = write!(
                b,
                "<section class=\"table\" id=\"{name}-{s}\"><h3>{t}</h3>",
                s = s.name,
                t = escape(&s.title)
            );
            if s.table.rows.is_empty() {
                b.push_str("<p class=\"none\">None.</p>");
            } else {
                let trend = (kind == ReportKind::Performance && s.name == "routes")
                    .then(|| self.route_trend())
                    .flatten();
                b.push_str(&table_html(
                    &s.table,
                    &TableOptions {
                        trend,
                        ..TableOptions::default()
                    },
                ));
            }
            b.push_str("</section>");
        }
        b.push_str("</section>\n");
    }

    /// The caption and chart of section `s`, when it has one.
    fn chart(&self, kind: ReportKind, s: &Section) -> Option<(String, String)> {
        let t = &s.table;
        if t.rows.is_empty() {
            return None;
        }
        let id = format!("chart-{}-{}", kind_name(kind), s.name);
        match (kind, s.name) {
            (ReportKind::Performance, "over_time")
                if numbers(t, "p99_ms").iter().all(Option::is_none) =>
            {
                // No timed request: nothing to draw.
                None
            }
            (ReportKind::Performance, "over_time") => Some(svg::lines(
                &id,
                &s.title,
                &strings(t, "bucket"),
                &[
                    series(t, "p50_ms", "p50", "c0"),
                    series(t, "p95_ms", "p95", "c1"),
                    series(t, "p99_ms", "p99", "c2"),
                ],
                " ms",
                &self.anomaly_bands(&strings(t, "bucket")),
            )),
            (ReportKind::Performance, "latency_histogram") => {
                let (from, to, n) = (
                    numbers(t, "from_ms"),
                    numbers(t, "to_ms"),
                    numbers(t, "requests"),
                );
                let bars: Vec<Bar> = (0..t.rows.len())
                    .map(|i| {
                        let from = long_number(from[i].unwrap_or(0.0));
                        Bar {
                            label: format!("{from} to {} ms", long_number(to[i].unwrap_or(0.0))),
                            tick: from,
                            value: n[i].unwrap_or(0.0),
                            class: "c0",
                        }
                    })
                    .collect();
                Some(svg::bars(&id, &s.title, &bars, " requests"))
            }
            (ReportKind::Traffic, "over_time") => {
                let total = numbers(t, "requests");
                let classes = ["status_2xx", "status_3xx", "status_4xx", "status_5xx"];
                let by_class: Vec<Vec<Option<f64>>> =
                    classes.iter().map(|c| numbers(t, c)).collect();
                let other = (0..t.rows.len())
                    .map(|i| {
                        let known: f64 = by_class.iter().filter_map(|c| c[i]).sum();
                        total[i].map(|n| n - known)
                    })
                    .collect();
                Some(svg::stacked(
                    &id,
                    "Requests by status class",
                    &strings(t, "bucket"),
                    &[
                        series(t, "status_2xx", "2xx", "ok"),
                        series(t, "status_3xx", "3xx", "redirect"),
                        series(t, "status_4xx", "4xx", "client"),
                        series(t, "status_5xx", "5xx", "server"),
                        Series {
                            name: "other",
                            class: "other",
                            values: other,
                        },
                    ],
                    "",
                ))
            }
            (ReportKind::Errors, "over_time")
                if self.section(ReportKind::Traffic, "over_time").is_none() =>
            {
                let (total, e4, e5) = (
                    numbers(t, "requests"),
                    numbers(t, "errors_4xx"),
                    numbers(t, "errors_5xx"),
                );
                let rest = (0..t.rows.len())
                    .map(|i| total[i].map(|n| n - e4[i].unwrap_or(0.0) - e5[i].unwrap_or(0.0)))
                    .collect();
                Some(svg::stacked(
                    &id,
                    "Requests by status class",
                    &strings(t, "bucket"),
                    &[
                        Series {
                            name: "1xx-3xx",
                            class: "ok",
                            values: rest,
                        },
                        series(t, "errors_4xx", "4xx", "client"),
                        series(t, "errors_5xx", "5xx", "server"),
                    ],
                    "",
                ))
            }
            (ReportKind::Traffic, "status") => {
                let codes = numbers(t, "status");
                let n = numbers(t, "requests");
                let mut bars: Vec<Bar> = (0..t.rows.len())
                    .map(|i| {
                        let code = codes[i].unwrap_or(0.0) as u16;
                        Bar {
                            tick: code.to_string(),
                            label: format!("status {code}"),
                            value: n[i].unwrap_or(0.0),
                            class: status_class(code),
                        }
                    })
                    .collect();
                bars.sort_by(|a, b| a.tick.cmp(&b.tick));
                Some(svg::bars(&id, &s.title, &bars, " requests"))
            }
            (ReportKind::Security, "over_time") => {
                let buckets = strings(t, "bucket");
                let mut labels: Vec<String> = buckets.clone();
                labels.dedup();
                let categories = strings(t, "category");
                let mut names: Vec<String> = categories.clone();
                names.sort();
                names.dedup();
                let at: HashMap<&str, usize> = labels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.as_str(), i))
                    .collect();
                let n = numbers(t, "requests");
                let mut values = vec![vec![None; labels.len()]; names.len()];
                for i in 0..t.rows.len() {
                    let c = names.binary_search(&categories[i]).unwrap_or(0);
                    values[c][at[buckets[i].as_str()]] = n[i];
                }
                let classes = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"];
                let series: Vec<Series> = names
                    .iter()
                    .zip(values)
                    .enumerate()
                    .map(|(k, (name, values))| Series {
                        name,
                        class: classes[k % classes.len()],
                        values,
                    })
                    .collect();
                Some(svg::stacked(&id, &s.title, &labels, &series, "") + &legend(&series))
            }
            _ => None,
        }
        .map(|chart| match (kind, s.name) {
            (ReportKind::Security, "over_time") => (s.title.clone(), chart),
            (ReportKind::Performance, "over_time") => {
                let marked = self
                    .section(ReportKind::Anomalies, "events")
                    .is_some_and(|e| !e.table.rows.is_empty());
                let bands = if marked { ", anomalies shaded" } else { "" };
                (
                    format!("{}: p50, p95 and p99{bands}", s.title),
                    chart + &legend(&[named("p50", "c0"), named("p95", "c1"), named("p99", "c2")]),
                )
            }
            (_, "over_time") => {
                let keys: &[Series] = if kind == ReportKind::Traffic {
                    &[
                        named("2xx", "ok"),
                        named("3xx", "redirect"),
                        named("4xx", "client"),
                        named("5xx", "server"),
                        named("other", "other"),
                    ]
                } else {
                    &[
                        named("1xx-3xx", "ok"),
                        named("4xx", "client"),
                        named("5xx", "server"),
                    ]
                };
                (
                    format!(
                        "Requests per {} by status class",
                        plain(self.report.filters.get("bucket").unwrap_or(&Value::Null))
                    ),
                    chart + &legend(keys),
                )
            }
            (ReportKind::Performance, _) => (
                "Response time distribution (requests per bin; bins from the value shown)".into(),
                chart,
            ),
            _ => ("Status mix".into(), chart),
        })
    }

    /// The anomaly events as bands over `buckets` (the positions of the latency chart), events
    /// over the same buckets as one band of the highest severity, listing them all.
    fn anomaly_bands(&self, buckets: &[String]) -> Vec<Band> {
        let mut bands: Vec<Band> = Vec::new();
        for band in self.anomaly_events(buckets) {
            match bands
                .iter_mut()
                .find(|b| (b.from, b.to) == (band.from, band.to))
            {
                Some(b) => {
                    b.label = format!("{}\n{}", b.label, band.label);
                    if severity_rank(band.class) < severity_rank(b.class) {
                        b.class = band.class;
                    }
                }
                None => bands.push(band),
            }
        }
        bands
    }

    /// Each anomaly event as a band over `buckets`.
    fn anomaly_events(&self, buckets: &[String]) -> Vec<Band> {
        let Some(s) = self.section(ReportKind::Anomalies, "events") else {
            return Vec::new();
        };
        let t = &s.table;
        let text = |i: usize, c: &str| {
            column(t, c)
                .map(|k| plain(&t.rows[i][k]).trim_end_matches('Z').to_string())
                .unwrap_or_default()
        };
        let index = |time: &str| buckets.iter().rposition(|b| b.as_str() <= time);
        (0..t.rows.len())
            .filter_map(|i| {
                let (start, end) = (text(i, "start"), text(i, "end"));
                let from = index(&start).unwrap_or(0);
                let to = buckets
                    .iter()
                    .rposition(|b| b.as_str() < end.as_str())
                    .unwrap_or(from)
                    .max(from);
                let severity = text(i, "severity");
                (!buckets.is_empty() && end.as_str() > buckets[0].as_str()).then(|| Band {
                    from,
                    to,
                    label: format!(
                        "{severity} {} anomaly on {}: observed {}, expected {} ({} to {})",
                        text(i, "metric"),
                        text(i, "route"),
                        text(i, "observed"),
                        text(i, "expected"),
                        start.replace('T', " "),
                        end.replace('T', " ")
                    ),
                    class: match severity.as_str() {
                        "high" => "high",
                        "medium" => "medium",
                        _ => "low",
                    },
                })
            })
            .collect()
    }

    /// Each route's p95 over time (the `route_trend` section), by route.
    fn route_trend(&self) -> Option<HashMap<String, Vec<Option<f64>>>> {
        let s = self.section(ReportKind::Performance, "route_trend")?;
        let (r, p) = (column(&s.table, "route")?, column(&s.table, "p95_ms")?);
        Some(
            s.table
                .rows
                .iter()
                .map(|row| {
                    let values = row[p]
                        .as_array()
                        .map(|a| a.iter().map(Value::as_f64).collect())
                        .unwrap_or_default();
                    (plain(&row[r]), values)
                })
                .collect(),
        )
    }
}

fn severity_rank(class: &str) -> u8 {
    match class {
        "high" => 0,
        "medium" => 1,
        _ => 2,
    }
}

/// Sections shown as a chart only (their rows are the chart's points, many of them).
fn charted_only(kind: ReportKind, name: &str) -> bool {
    matches!(
        (kind, name),
        (_, "over_time") | (ReportKind::Performance, "latency_histogram")
    )
}

/// How a table is rendered.
#[derive(Default)]
struct TableOptions<'a> {
    /// A sparkline column of each route's p95 over time.
    trend: Option<HashMap<String, Vec<Option<f64>>>>,
    /// Rows whose value in this column is not empty are highlighted.
    highlight: Option<&'a str>,
}

/// A sortable table of `t`: numbers right-aligned with their raw value in `data-v`, shares and
/// rates as percentages, `source` and `offset` joined as `source:offset`, lists one per line.
fn table_html(t: &Table, opts: &TableOptions) -> String {
    let (source, offset) = (column(t, "source"), column(t, "offset"));
    let joined = source.zip(offset);
    let shown: Vec<usize> = (0..t.columns.len())
        .filter(|i| joined.is_none_or(|(_, o)| *i != o))
        .collect();
    let highlight = opts.highlight.and_then(|c| column(t, c));
    let route = column(t, "route");
    let mut b = String::from("<div class=\"scroll\"><table class=\"sortable\"><thead><tr>");
    for &i in &shown {
        let name = if Some(i) == source && joined.is_some() {
            "source:offset"
        } else {
            t.columns[i].as_str()
        };
        let _ = write!(b, "<th scope=\"col\">{}</th>", escape(name));
    }
    if opts.trend.is_some() {
        b.push_str("<th scope=\"col\">p95 over time</th>");
    }
    b.push_str("</tr></thead><tbody>");
    for row in &t.rows {
        let hot = highlight.is_some_and(|h| row[h].as_str().is_some_and(|s| !s.is_empty()));
        b.push_str(if hot { "<tr class=\"bad\">" } else { "<tr>" });
        for &i in &shown {
            if let Some((s, o)) = joined.filter(|(s, _)| *s == i) {
                let _ = write!(
                    b,
                    "<td class=\"where\">{}:{}</td>",
                    escape(&plain(&row[s])),
                    escape(&plain(&row[o]))
                );
                continue;
            }
            b.push_str(&cell(&t.columns[i], &row[i]));
        }
        if let Some(trend) = &opts.trend {
            let values = route
                .and_then(|r| trend.get(&plain(&row[r])))
                .map(|v| svg::sparkline(v, " ms"))
                .unwrap_or_default();
            let _ = write!(b, "<td class=\"trend\">{values}</td>");
        }
        b.push_str("</tr>");
    }
    b.push_str("</tbody></table></div>");
    b
}

/// One cell: see [`table_html`].
fn cell(column_name: &str, v: &Value) -> String {
    match v {
        Value::Null => "<td class=\"null\">-</td>".to_string(),
        Value::Number(n) => {
            let raw = n.as_f64().unwrap_or(0.0);
            let text = if is_fraction(column_name) {
                percent(v)
            } else {
                number(v)
            };
            format!("<td class=\"num\" data-v=\"{raw}\">{text}</td>")
        }
        Value::Bool(b) => format!("<td>{}</td>", if *b { "yes" } else { "no" }),
        Value::Array(items) => {
            let lines: Vec<String> = items.iter().map(|i| escape(&plain(i))).collect();
            format!("<td class=\"list\">{}</td>", lines.join("<br>"))
        }
        other => format!("<td>{}</td>", escape(&plain(other))),
    }
}

/// Whether a column holds a fraction shown as a percentage.
fn is_fraction(column_name: &str) -> bool {
    column_name.ends_with("share") || column_name.starts_with("rate_")
}

/// The index of the column named `name`.
fn column(t: &Table, name: &str) -> Option<usize> {
    t.columns.iter().position(|c| c == name)
}

/// The values of a column as text.
fn strings(t: &Table, name: &str) -> Vec<String> {
    column(t, name).map_or_else(
        || vec![String::new(); t.rows.len()],
        |i| t.rows.iter().map(|r| plain(&r[i])).collect(),
    )
}

/// The values of a numeric column.
fn numbers(t: &Table, name: &str) -> Vec<Option<f64>> {
    column(t, name).map_or_else(
        || vec![None; t.rows.len()],
        |i| t.rows.iter().map(|r| r[i].as_f64()).collect(),
    )
}

fn series<'a>(t: &Table, column_name: &str, name: &'a str, class: &'a str) -> Series<'a> {
    Series {
        name,
        class,
        values: numbers(t, column_name),
    }
}

/// A series with no values, for a legend.
fn named<'a>(name: &'a str, class: &'a str) -> Series<'a> {
    Series {
        name,
        class,
        values: Vec::new(),
    }
}

fn legend(series: &[Series]) -> String {
    let mut b = String::from("<ul class=\"legend\">");
    for s in series {
        let _ = write!(
            b,
            "<li><span class=\"key {}\"></span>{}</li>",
            s.class,
            escape(s.name)
        );
    }
    b.push_str("</ul>");
    b
}

/// A value as text (strings without quotes, lists joined).
fn plain(v: &Value) -> String {
    super::render::display(v, "")
}

/// A number with thousands separated and at most three decimals.
fn number(v: &Value) -> String {
    v.as_f64().map_or_else(|| plain(v), long_number)
}

/// A fraction as a percentage with two decimals.
fn percent(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| plain(v), |f| format!("{:.2}%", f * 100.0))
}

fn status_class(code: u16) -> &'static str {
    match code {
        200..=299 => "ok",
        300..=399 => "redirect",
        400..=499 => "client",
        500..=599 => "server",
        _ => "other",
    }
}

fn kind_name(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::Performance => "performance",
        ReportKind::Errors => "errors",
        ReportKind::Traffic => "traffic",
        ReportKind::Security => "security",
        ReportKind::Anomalies => "anomalies",
        ReportKind::All => "all",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_and_cells() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            cell("rate_5xx", &json!(0.0123)),
            "<td class=\"num\" data-v=\"0.0123\">1.23%</td>"
        );
        assert_eq!(
            cell("requests", &json!(12345)),
            "<td class=\"num\" data-v=\"12345\">12,345</td>"
        );
        assert_eq!(cell("path", &json!("/a<b")), "<td>/a&lt;b</td>");
        assert_eq!(
            cell("samples", &json!(["a", "b"])),
            "<td class=\"list\">a<br>b</td>"
        );
    }

    #[test]
    fn source_and_offset_are_one_column() {
        let t = Table {
            columns: vec!["path".into(), "source".into(), "offset".into()],
            rows: vec![vec![json!("/x"), json!("a.log"), json!(120)]],
        };
        let html = table_html(&t, &TableOptions::default());
        assert!(html.contains("<th scope=\"col\">source:offset</th>"));
        assert!(html.contains("<td class=\"where\">a.log:120</td>"));
        assert_eq!(html.matches("<th ").count(), 2);
    }
}
