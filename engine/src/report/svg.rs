//! SVG charts of the HTML report, drawn by the engine.
//!
//! The report must open offline and stay small, so no charting library is fetched or embedded:
//! each chart is a few SVG elements written here (a polyline per series, a rectangle per bar).
//! Colours are CSS classes that the page's stylesheet maps to variables, so charts follow the
//! light or dark theme and print in black on white; hovering shows values through SVG `<title>`
//! elements (one hover strip per time bucket), which every browser shows without script.

use std::fmt::Write;

use super::html::escape;

/// Width of the drawing, in user units (the element scales to its container).
const WIDTH: f64 = 960.0;
/// Margins: left (y labels), right, top, bottom (x labels).
const MARGIN: (f64, f64, f64, f64) = (64.0, 12.0, 12.0, 28.0);

/// One series of a chart: its name, the CSS class that colours it, and a value per x position.
pub struct Series<'a> {
    /// Shown in the legend and the hover text.
    pub name: &'a str,
    /// CSS class (`c0`..`c7`, `ok`, `redirect`, `client`, `server`).
    pub class: &'a str,
    /// One value per x position; `None` where there is none (a gap in a line).
    pub values: Vec<Option<f64>>,
}

/// A span of x positions to mark (an anomaly), with its hover text.
pub struct Band {
    /// First x position covered.
    pub from: usize,
    /// Last x position covered.
    pub to: usize,
    /// What the band is.
    pub label: String,
    /// CSS class (`high`, `medium`, `low`).
    pub class: &'static str,
}

/// A chart's frame: size, y scale (gridlines every `step` up to `max`) and x positions.
struct Frame {
    height: f64,
    n: usize,
    step: f64,
    max: f64,
}

impl Frame {
    fn new(height: f64, n: usize, max: f64) -> Frame {
        let step = nice_ceiling(max / 4.0);
        let lines = (max / step - 1e-9).ceil().max(1.0);
        Frame {
            height,
            n,
            step,
            max: step * lines,
        }
    }

    /// The values of the y gridlines.
    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let n = (self.max / self.step).round() as u32;
        (0..=n).map(|k| self.step * f64::from(k))
    }

    fn plot_width(&self) -> f64 {
        WIDTH - MARGIN.0 - MARGIN.1
    }

    fn plot_height(&self) -> f64 {
        self.height - MARGIN.2 - MARGIN.3
    }

    /// Width of one x position's slot.
    fn slot(&self) -> f64 {
        self.plot_width() / self.n.max(1) as f64
    }

    /// Centre of x position `i`.
    fn x(&self, i: usize) -> f64 {
        MARGIN.0 + self.slot() * (i as f64 + 0.5)
    }

    fn y(&self, v: f64) -> f64 {
        MARGIN.2 + self.plot_height() * (1.0 - (v / self.max).clamp(0.0, 1.0))
    }

    /// The opening tag, the y grid with its labels and the x labels.
    fn open(&self, out: &mut String, id: &str, title: &str, labels: &[String], unit: &str) {
        self.start(out, id, title, unit);
        let step = labels.len().div_ceil(6).max(1);
        for (i, label) in labels.iter().enumerate().step_by(step) {
            let _ = write!(
                out,
                r#"<text class="tick" x="{x:.1}" y="{y}" text-anchor="middle">{l}</text>"#,
                x = self.x(i),
                y = self.height - 8.0,
                l = escape(&short_time(label)),
            );
        }
    }

    /// The opening tag and the y grid with its labels (in `unit`).
    fn start(&self, out: &mut String, id: &str, title: &str, unit: &str) {
        let _ = write!(
            out,
            r#"<svg id="{id}" class="chart" viewBox="0 0 {WIDTH} {h}" role="img" aria-label="{t}" preserveAspectRatio="xMidYMid meet">"#,
            h = self.height,
            t = escape(title),
        );
        for v in self.ticks() {
            let y = self.y(v);
            let _ = write!(
                out,
                r#"<line class="grid" x1="{x0}" x2="{x1}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
                x0 = MARGIN.0,
                x1 = WIDTH - MARGIN.1,
                tx = MARGIN.0 - 6.0,
                ty = y + 4.0,
                label = escape(&format!("{}{unit}", short_number(v))),
            );
        }
    }

    /// The hover strips of a chart over time (each bucket's label and its values), then the
    /// closing tag.
    fn close(&self, out: &mut String, labels: &[String], series: &[Series], unit: &str) {
        self.hover_strips(
            out,
            labels
                .iter()
                .enumerate()
                .map(|(i, l)| hover_text(l, series, i, unit)),
        );
        out.push_str("</svg>");
    }

    /// One transparent strip per x position, whose `<title>` is the hover text.
    fn hover_strips(&self, out: &mut String, texts: impl Iterator<Item = String>) {
        out.push_str(r#"<g class="hover">"#);
        for (i, text) in texts.enumerate() {
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{y}" width="{w:.2}" height="{h}"><title>{t}</title></rect>"#,
                x = self.x(i) - self.slot() / 2.0,
                y = MARGIN.2,
                w = self.slot(),
                h = self.plot_height(),
                t = escape(&text),
            );
        }
        out.push_str("</g>");
    }
}

/// Lines over time, with `bands` shaded behind them.
pub fn lines(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[Series],
    unit: &str,
    bands: &[Band],
) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, b| a.max(*b));
    let frame = Frame::new(240.0, labels.len(), max);
    let mut out = String::new();
    frame.open(&mut out, id, title, labels, unit);
    for b in bands {
        let x = frame.x(b.from) - frame.slot() / 2.0;
        let _ = write!(
            out,
            r#"<rect class="band {c}" x="{x:.1}" y="{y}" width="{w:.2}" height="{h}"><title>{t}</title></rect>"#,
            c = b.class,
            y = MARGIN.2,
            w = frame.slot() * (b.to.saturating_sub(b.from) + 1) as f64,
            h = frame.plot_height(),
            t = escape(&b.label),
        );
    }
    for s in series {
        // A run of consecutive values is one polyline; a single value, a dot.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64)>, out: &mut String| {
            if run.len() == 1 {
                let _ = write!(
                    out,
                    r#"<circle class="line {c}" cx="{x:.1}" cy="{y:.1}" r="2"/>"#,
                    c = s.class,
                    x = run[0].0,
                    y = run[0].1
                );
            } else if run.len() > 1 {
                let _ = write!(
                    out,
                    r#"<polyline class="line {c}" data-series="{n}" points=""#,
                    c = s.class,
                    n = escape(s.name)
                );
                for (x, y) in run.iter() {
                    let _ = write!(out, "{x:.1},{y:.1} ");
                }
                out.push_str(r#""/>"#);
            }
            run.clear();
        };
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => run.push((frame.x(i), frame.y(*v))),
                None => flush(&mut run, &mut out),
            }
        }
        flush(&mut run, &mut out);
    }
    frame.close(&mut out, labels, series, unit);
    out
}

/// Bars over time, the series stacked in order.
pub fn stacked(id: &str, title: &str, labels: &[String], series: &[Series], unit: &str) -> String {
    let total = |i: usize| -> f64 {
        series
            .iter()
            .filter_map(|s| s.values.get(i).copied().flatten())
            .sum()
    };
    let max = (0..labels.len()).map(total).fold(0.0f64, f64::max);
    let frame = Frame::new(240.0, labels.len(), max);
    let mut out = String::new();
    frame.open(&mut out, id, title, labels, unit);
    let width = (frame.slot() * 0.8).max(0.5);
    for i in 0..labels.len() {
        let mut base = 0.0;
        for s in series {
            let v = s.values.get(i).copied().flatten().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let (top, bottom) = (frame.y(base + v), frame.y(base));
            let _ = write!(
                out,
                r#"<rect class="bar {c}" x="{x:.1}" y="{top:.1}" width="{width:.2}" height="{h:.1}"/>"#,
                c = s.class,
                x = frame.x(i) - width / 2.0,
                h = bottom - top,
            );
            base += v;
        }
    }
    frame.close(&mut out, labels, series, unit);
    out
}

/// One bar of a distribution: its axis label, what hovering it says before its value, its value
/// and its CSS class.
pub struct Bar<'a> {
    /// Under the bar (short).
    pub tick: String,
    /// In the hover text.
    pub label: String,
    /// Height.
    pub value: f64,
    /// CSS class.
    pub class: &'a str,
}

/// One bar per label (a distribution).
pub fn bars(id: &str, title: &str, bars: &[Bar], unit: &str) -> String {
    let max = bars.iter().map(|b| b.value).fold(0.0f64, f64::max);
    let frame = Frame::new(220.0, bars.len(), max);
    let mut out = String::new();
    frame.start(&mut out, id, title, "");
    let width = (frame.slot() * 0.8).max(0.5);
    let step = bars.len().div_ceil(16).max(1);
    for (i, bar) in bars.iter().enumerate() {
        let top = frame.y(bar.value);
        let _ = write!(
            out,
            r#"<rect class="bar {c}" x="{x:.1}" y="{top:.1}" width="{width:.2}" height="{h:.1}"><title>{t}</title></rect>"#,
            c = bar.class,
            x = frame.x(i) - width / 2.0,
            h = frame.y(0.0) - top,
            t = escape(&format!("{}: {}{unit}", bar.label, long_number(bar.value))),
        );
        if i % step == 0 {
            let _ = write!(
                out,
                r#"<text class="tick" x="{x:.1}" y="{y}" text-anchor="middle">{l}</text>"#,
                x = frame.x(i),
                y = frame.height - 8.0,
                l = escape(&bar.tick),
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// A small line of `values` for a table cell (no axes; its hover text gives the range).
pub fn sparkline(values: &[Option<f64>], unit: &str) -> String {
    let (w, h) = (120.0, 24.0);
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let max = present.iter().copied().fold(0.0f64, f64::max);
    let min = present.iter().copied().fold(f64::INFINITY, f64::min);
    let mut out = format!(r#"<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}">"#);
    let n = values.len().max(2) - 1;
    let mut points = String::new();
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let y = h - 2.0 - (h - 4.0) * (v / max.max(f64::MIN_POSITIVE));
            let _ = write!(points, "{:.1},{y:.1} ", w * i as f64 / n as f64);
        }
    }
    let _ = write!(
        out,
        r#"<polyline class="line c1" points="{points}"/><title>{t}</title></svg>"#,
        t = if present.is_empty() {
            "no timed requests".to_string()
        } else {
            format!(
                "{} to {}{unit} over {} buckets",
                long_number(min),
                long_number(max),
                values.len()
            )
        },
    );
    out
}

/// The hover text of x position `i`: its label and each series' value there.
fn hover_text(label: &str, series: &[Series], i: usize, unit: &str) -> String {
    let mut text = label.replace('T', " ");
    for s in series {
        if let Some(Some(v)) = s.values.get(i) {
            let _ = write!(text, "\n{}: {}{unit}", s.name, long_number(*v));
        }
    }
    text
}

/// The smallest 1, 2 or 5 times a power of ten at or above `v` (at least 1).
fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * p)
}

/// An axis label: `1.5k`, `20M`, `0.25`.
fn short_number(v: f64) -> String {
    let (v, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e4 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let s = format!("{v:.2}");
    format!("{}{suffix}", s.trim_end_matches('0').trim_end_matches('.'))
}

/// A value as hover text shows it: at most three decimals, thousands separated.
pub fn long_number(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    let (int, frac) = s.split_once('.').map_or((s, ""), |(i, f)| (i, f));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

/// A bucket's timestamp as an axis label (`2024-05-01 08:00`, `2024-05-01` at midnight).
fn short_time(t: &str) -> String {
    match t.split_once('T') {
        Some((day, "00:00:00")) => day.to_string(),
        Some((day, time)) => format!(
            "{} {}",
            &day[day.len().min(5)..],
            &time[..time.len().min(5)]
        ),
        None => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_and_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(500.0), 500.0);
        let ticks: Vec<f64> = Frame::new(100.0, 1, 2482.0).ticks().collect();
        assert_eq!(ticks, [0.0, 1000.0, 2000.0, 3000.0]);
        let ticks: Vec<f64> = Frame::new(100.0, 1, 0.0).ticks().collect();
        assert_eq!(ticks, [0.0, 1.0]);
        assert_eq!(long_number(1325.0134), "1,325.013");
        assert_eq!(long_number(1_000_000.0), "1,000,000");
        assert_eq!(long_number(-12.5), "-12.5");
        assert_eq!(short_number(15_000.0), "15k");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_time("2024-05-01T08:00:00"), "05-01 08:00");
        assert_eq!(short_time("2024-05-01T00:00:00"), "2024-05-01");
    }

    #[test]
    fn lines_break_at_gaps_and_carry_hover_text() {
        let labels: Vec<String> = (0..4).map(|h| format!("2024-05-01T0{h}:00:00")).collect();
        let svg = lines(
            "t",
            "test",
            &labels,
            &[Series {
                name: "p95",
                class: "c1",
                values: vec![Some(1.0), Some(2.0), None, Some(4.0)],
            }],
            " ms",
            &[],
        );
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert_eq!(svg.matches("<title>").count(), 4);
        assert!(svg.contains("p95: 4 ms"));
    }
}
