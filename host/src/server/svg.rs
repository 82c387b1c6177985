//! A small SVG chart renderer for the dashboard (no script, no external service): bars
//! stacked over time, grouped bars, and lines over time. Every chart has a `<title>`,
//! a `<desc>`, axes with ticks, a legend and a `<title>` per bar or point with its exact
//! values; an empty chart says so. Text is escaped here; callers pass plain text.

use std::fmt::Write as _;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
/// Room below the plot for the time or group labels, then the legend.
const BOTTOM: f64 = 52.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

/// What every chart carries besides its data.
pub struct Frame<'a> {
    /// The `id` of the `<svg>` element.
    pub id: &'a str,
    /// The chart's title (shown to screen readers and as the tooltip of the chart).
    pub title: &'a str,
    /// A one-sentence description of what it shows.
    pub desc: &'a str,
    /// What the chart says when it has no data ("no deliveries in the last hour").
    pub empty: &'a str,
    /// How a value on the y axis and in tooltips is written.
    pub format: fn(f64) -> String,
    /// Whether values are whole numbers (counts): no tick falls between two.
    pub whole: bool,
}

/// One series: its name in the legend and tooltips, and its colour.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// A CSS colour.
    pub colour: &'static str,
}

/// Time buckets along the x axis (UTC).
#[derive(Debug, Clone, Copy)]
pub struct TimeAxis {
    /// The first bucket's start, Unix milliseconds.
    pub from_ms: i64,
    /// One bucket's length.
    pub bucket_ms: i64,
    /// How many buckets.
    pub buckets: usize,
}

impl TimeAxis {
    fn span(&self) -> f64 {
        (self.bucket_ms * self.buckets as i64) as f64
    }

    fn x(&self, at_ms: i64) -> f64 {
        LEFT + (at_ms - self.from_ms) as f64 / self.span() * PLOT_W
    }
}

/// Text made safe for XML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // XML 1.0 allows no other control characters.
            c if c.is_control() && !matches!(c, '\n' | '\r' | '\t') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A value written as a whole number.
pub fn count(value: f64) -> String {
    format!("{}", value.round() as i64)
}

/// A value written with at most two decimals (rates averaged over a bucket).
pub fn rate(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Milliseconds written for people: `850 ms`, `1.2 s`, `3.5 min`.
pub fn duration(ms: f64) -> String {
    if ms < 1_000.0 {
        format!("{} ms", ms.round() as i64)
    } else if ms < 60_000.0 {
        format!("{} s", rate(ms / 1_000.0))
    } else {
        format!("{} min", rate(ms / 60_000.0))
    }
}

/// The y axis's top and step: the smallest "nice" step (1, 2 or 5 times a power of ten,
/// at least 1 for `whole` numbers) that covers `max` in at most four steps.
pub fn nice_scale(max: f64, whole: bool) -> (f64, f64) {
    if max.is_nan() || max <= 0.0 || max.is_infinite() {
        return (4.0, 1.0);
    }
    let rough = if whole { (max / 4.0).max(1.0) } else { max / 4.0 };
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|step| *step >= rough).unwrap_or(10.0 * power);
    let top = (max / step).ceil() * step;
    (top, step)
}

/// `HH:MM` (UTC) of Unix milliseconds.
fn clock(ms: i64) -> String {
    let minutes = ms.div_euclid(60_000);
    format!("{:02}:{:02}", minutes.div_euclid(60).rem_euclid(24), minutes.rem_euclid(60))
}

/// `HH:MM–HH:MM UTC`, a bucket's span.
fn span(from: i64, to: i64) -> String {
    format!("{}–{} UTC", clock(from), clock(to))
}

fn open(out: &mut String, frame: &Frame, series: &[Series]) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"{id}\" class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" font-family=\"system-ui,sans-serif\" font-size=\"11\">\
         <title id=\"{id}-title\">{title}</title><desc id=\"{id}-desc\">{desc}</desc>",
        id = escape(frame.id),
        title = escape(frame.title),
        desc = escape(frame.desc),
    );
    let mut x = LEFT;
    let y = HEIGHT - 10.0;
    for one in series {
        let _ = write!(
            out,
            "<g class=\"legend\"><rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{y}\">{}</text></g>",
            y - 9.0,
            escape(one.colour),
            x + 14.0,
            escape(&one.name)
        );
        x += 24.0 + 6.5 * one.name.chars().count() as f64;
    }
}

/// The y axis with its ticks and grid lines, up to `top`.
fn y_axis(out: &mut String, frame: &Frame, top: f64, step: f64) {
    let mut value = 0.0;
    while value <= top + step / 2.0 {
        let y = y_of(value, top);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + PLOT_W,
            LEFT - 4.0,
            y + 4.0,
            escape(&(frame.format)(value))
        );
        value += step;
    }
    let _ = write!(out, "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"#888\"/>", TOP + PLOT_H);
}

fn y_of(value: f64, top: f64) -> f64 {
    TOP + PLOT_H - value / top * PLOT_H
}

/// Time labels under the plot: every ten minutes over an hour, every three hours over a day.
fn time_axis(out: &mut String, axis: &TimeAxis) {
    let span = axis.span() as i64;
    let every = [600_000, 1_800_000, 3_600_000, 10_800_000, 21_600_000]
        .into_iter()
        .find(|every| span / every <= 8)
        .unwrap_or(86_400_000);
    let end = axis.from_ms + span;
    let mut at = (axis.from_ms + every - 1).div_euclid(every) * every;
    while at <= end {
        let x = axis.x(at);
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#888\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            TOP + PLOT_H,
            TOP + PLOT_H + 4.0,
            TOP + PLOT_H + 16.0,
            clock(at)
        );
        at += every;
    }
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#888\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#57606a\">UTC</text>",
        LEFT + PLOT_W,
        LEFT + PLOT_W,
        TOP + PLOT_H + 28.0,
        y = TOP + PLOT_H,
    );
}

fn empty(out: &mut String, frame: &Frame) {
    let _ = write!(
        out,
        "<text class=\"empty\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#57606a\" font-size=\"14\">{}</text>",
        LEFT + PLOT_W / 2.0,
        TOP + PLOT_H / 2.0,
        escape(frame.empty)
    );
}

/// Bars over time, one per bucket, its series stacked: `values[bucket][series]`.
pub fn stacked_bars(frame: &Frame, axis: TimeAxis, series: &[Series], values: &[Vec<f64>]) -> String {
    let mut out = String::new();
    open(&mut out, frame, series);
    let max = values.iter().map(|bucket| bucket.iter().sum::<f64>()).fold(0.0, f64::max);
    let (top, step) = nice_scale(max, frame.whole);
    y_axis(&mut out, frame, top, step);
    time_axis(&mut out, &axis);
    if max <= 0.0 {
        empty(&mut out, frame);
    }
    let width = PLOT_W / axis.buckets as f64;
    for (bucket, row) in values.iter().enumerate().take(axis.buckets) {
        let start = axis.from_ms + bucket as i64 * axis.bucket_ms;
        let x = axis.x(start);
        let mut base = 0.0;
        for (value, one) in row.iter().zip(series) {
            if *value <= 0.0 {
                continue;
            }
            let (y0, y1) = (y_of(base, top), y_of(base + value, top));
            let _ = write!(
                out,
                "<rect class=\"bar\" data-series=\"{name}\" data-value=\"{value}\" x=\"{x:.2}\" y=\"{y1:.2}\" \
                 width=\"{w:.2}\" height=\"{h:.2}\" fill=\"{colour}\"><title>{when} · {name}: {shown}</title></rect>",
                name = escape(&one.name),
                w = (width - 1.0).max(0.5),
                h = y0 - y1,
                colour = escape(one.colour),
                when = span(start, start + axis.bucket_ms),
                shown = escape(&(frame.format)(*value)),
            );
            base += value;
        }
    }
    out.push_str("</svg>");
    out
}

/// Bars in groups (one group per label, one bar per series): `values[group][series]`.
pub fn grouped_bars(frame: &Frame, groups: &[String], series: &[Series], values: &[Vec<f64>]) -> String {
    let mut out = String::new();
    open(&mut out, frame, series);
    let max = values.iter().flatten().copied().fold(0.0, f64::max);
    let (top, step) = nice_scale(max, frame.whole);
    y_axis(&mut out, frame, top, step);
    let y = TOP + PLOT_H;
    let _ = write!(out, "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#888\"/>", LEFT + PLOT_W);
    if groups.is_empty() || max <= 0.0 {
        empty(&mut out, frame);
    }
    let slot = PLOT_W / groups.len().max(1) as f64;
    let bar = (slot * 0.8 / series.len().max(1) as f64).min(40.0);
    for (index, (group, row)) in groups.iter().zip(values).enumerate() {
        let left = LEFT + index as f64 * slot + (slot - bar * series.len() as f64) / 2.0;
        for (n, (value, one)) in row.iter().zip(series).enumerate() {
            let y1 = y_of(*value, top);
            let _ = write!(
                out,
                "<rect class=\"bar\" data-group=\"{group}\" data-series=\"{name}\" data-value=\"{value}\" \
                 x=\"{x:.2}\" y=\"{y1:.2}\" width=\"{w:.2}\" height=\"{h:.2}\" fill=\"{colour}\">\
                 <title>{group} · {name}: {shown}</title></rect>",
                group = escape(group),
                name = escape(&one.name),
                x = left + n as f64 * bar,
                w = (bar - 1.0).max(0.5),
                h = y - y1,
                colour = escape(one.colour),
                shown = escape(&(frame.format)(*value)),
            );
        }
        let label: String =
            if group.chars().count() > 18 { group.chars().take(17).chain(['…']).collect() } else { group.clone() };
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            LEFT + (index as f64 + 0.5) * slot,
            y + 16.0,
            escape(&label)
        );
    }
    out.push_str("</svg>");
    out
}

/// Lines over time through `points` (`(at_ms, values[series])`, in time order), each point
/// with a tooltip of every series' value.
pub fn lines(frame: &Frame, axis: TimeAxis, series: &[Series], points: &[(i64, Vec<f64>)]) -> String {
    let mut out = String::new();
    open(&mut out, frame, series);
    let max = points.iter().flat_map(|(_, values)| values.iter().copied()).fold(0.0, f64::max);
    let (top, step) = nice_scale(max, frame.whole);
    y_axis(&mut out, frame, top, step);
    time_axis(&mut out, &axis);
    if points.is_empty() {
        empty(&mut out, frame);
    }
    for (n, one) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|(at, values)| format!("{:.1},{:.1}", axis.x(*at), y_of(values.get(n).copied().unwrap_or(0.0), top)))
            .collect();
        let _ = write!(
            out,
            "<polyline class=\"line\" data-series=\"{}\" points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
            escape(&one.name),
            path.join(" "),
            escape(one.colour)
        );
    }
    for (at, values) in points {
        let shown: Vec<String> =
            series.iter().zip(values).map(|(one, value)| format!("{} {}", one.name, (frame.format)(*value))).collect();
        let x = axis.x(*at);
        for (one, value) in series.iter().zip(values) {
            let _ = write!(
                out,
                "<circle class=\"point\" data-series=\"{name}\" data-value=\"{value}\" cx=\"{x:.1}\" cy=\"{y:.1}\" \
                 r=\"3\" fill=\"{colour}\"><title>{when} UTC · {all}</title></circle>",
                name = escape(&one.name),
                y = y_of(*value, top),
                colour = escape(one.colour),
                when = clock(*at),
                all = escape(&shown.join(", ")),
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame<'static> {
        Frame {
            id: "c",
            title: "T <&>",
            desc: "d \"q\"",
            empty: "nothing in the last hour",
            format: count,
            whole: true,
        }
    }

    fn series(names: &[&str]) -> Vec<Series> {
        names.iter().map(|name| Series { name: (*name).to_owned(), colour: "#123456" }).collect()
    }

    const AXIS: TimeAxis = TimeAxis { from_ms: 1_800_000_000_000, bucket_ms: 60_000, buckets: 60 };

    /// Parses `svg` as XML (a real parser): the document's elements with a given name.
    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap_or_else(|err| panic!("not well-formed ({err}): {svg}"))
    }

    fn bars<'a>(doc: &'a roxmltree::Document<'a>) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants().filter(|node| node.has_tag_name("rect") && node.attribute("class") == Some("bar")).collect()
    }

    fn number(node: &roxmltree::Node, name: &str) -> f64 {
        node.attribute(name).unwrap().parse().unwrap()
    }

    #[test]
    fn nice_scales_cover_the_maximum_in_at_most_four_steps() {
        let cases = [
            (0.0, false, 4.0, 1.0),
            (1.0, false, 1.0, 0.5),
            (1.0, true, 1.0, 1.0),
            (30.0, false, 30.0, 10.0),
            (3.0, true, 3.0, 1.0),
            (7.0, true, 8.0, 2.0),
            (10.0, true, 10.0, 5.0),
        ];
        for (max, whole, top, step) in cases {
            assert_eq!(nice_scale(max, whole), (top, step), "max {max}");
        }
        for max in [0.3, 17.0, 99.0, 101.0, 1234.5, 86_400_000.0] {
            let (top, step) = nice_scale(max, false);
            assert!(top >= max && top / step <= 4.0 + 1e-9, "max {max}: top {top}, step {step}");
        }
    }

    #[test]
    fn stacked_bars_are_well_formed_with_heights_in_scale_and_exact_tooltips() {
        let mut values = vec![vec![0.0, 0.0]; 60];
        values[0] = vec![3.0, 1.0];
        values[59] = vec![0.0, 8.0];
        let svg = stacked_bars(&frame(), AXIS, &series(&["queued", "unmatched"]), &values);
        let doc = parse(&svg);
        let root = doc.root_element();
        assert_eq!((root.attribute("id"), root.tag_name().name()), (Some("c"), "svg"));
        assert_eq!(root.children().find(|n| n.has_tag_name("title")).unwrap().text(), Some("T <&>"));
        let bars = bars(&doc);
        assert_eq!(bars.len(), 3, "zero values draw nothing");
        // The scale tops at 8: a bar of 8 fills the plot's height, 3 and 1 stack to half.
        let heights: Vec<f64> = bars.iter().map(|bar| number(bar, "height")).collect();
        let full = PLOT_H;
        assert!((heights[0] - full * 3.0 / 8.0).abs() < 0.01 && (heights[2] - full).abs() < 0.01, "{heights:?}");
        assert!((number(&bars[1], "y") + heights[1] - number(&bars[0], "y")).abs() < 0.02, "stacked on the first");
        let tip = bars[2].children().find(|n| n.has_tag_name("title")).unwrap().text().unwrap();
        assert_eq!(tip, "08:59–09:00 UTC · unmatched: 8");
        assert!(!svg.contains("nothing in the last hour"));
    }

    #[test]
    fn time_labels_are_utc_clock_times() {
        let svg = stacked_bars(&frame(), AXIS, &series(&["a"]), &[vec![1.0]]);
        let doc = parse(&svg);
        let ticks: Vec<&str> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("tick") && n.attribute("text-anchor") == Some("middle"))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(ticks, ["08:00", "08:10", "08:20", "08:30", "08:40", "08:50", "09:00"]);
    }

    #[test]
    fn an_empty_chart_says_so_and_stays_well_formed() {
        let svg = stacked_bars(&frame(), AXIS, &series(&["a"]), &vec![vec![0.0]; 60]);
        let doc = parse(&svg);
        assert!(bars(&doc).is_empty());
        let text = doc.descendants().find(|n| n.attribute("class") == Some("empty")).unwrap();
        assert_eq!(text.text(), Some("nothing in the last hour"));
        let grouped = grouped_bars(&frame(), &[], &series(&["p50"]), &[]);
        assert!(parse(&grouped).descendants().any(|n| n.attribute("class") == Some("empty")));
        let line = lines(&frame(), AXIS, &series(&["queued"]), &[]);
        assert!(parse(&line).descendants().any(|n| n.attribute("class") == Some("empty")));
    }

    #[test]
    fn names_from_the_store_are_escaped() {
        let groups = vec!["<script>alert('x')</script> & \"more\"\u{1}".to_owned()];
        let svg = grouped_bars(&frame(), &groups, &series(&["p&50"]), &[vec![2.0]]);
        assert!(!svg.contains("<script>"));
        let doc = parse(&svg);
        let bar = &bars(&doc)[0];
        assert_eq!(bar.attribute("data-group"), Some("<script>alert('x')</script> & \"more\"\u{FFFD}"));
        assert_eq!(
            bar.children().find(|n| n.has_tag_name("title")).unwrap().text(),
            Some("<script>alert('x')</script> & \"more\"\u{FFFD} · p&50: 2")
        );
    }

    #[test]
    fn lines_pass_through_every_point_with_its_values() {
        let points = vec![(AXIS.from_ms, vec![0.0, 2.0]), (AXIS.from_ms + 1_800_000, vec![4.0, 1.0])];
        let svg = lines(&frame(), AXIS, &series(&["queued", "running"]), &points);
        let doc = parse(&svg);
        let line = doc.descendants().find(|n| n.attribute("data-series") == Some("queued")).unwrap();
        let expected = format!("{LEFT:.1},{:.1} {:.1},{TOP:.1}", TOP + PLOT_H, LEFT + PLOT_W / 2.0);
        assert_eq!(line.attribute("points"), Some(expected.as_str()));
        let tips: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("circle"))
            .filter_map(|n| n.children().find(|c| c.has_tag_name("title")).and_then(|t| t.text()))
            .collect();
        assert_eq!(tips[2], "08:30 UTC · queued 4, running 1");
    }

    #[test]
    fn durations_and_rates_read_as_people_write_them() {
        assert_eq!(duration(850.0), "850 ms");
        assert_eq!(duration(1_250.0), "1.25 s");
        assert_eq!(duration(90_000.0), "1.5 min");
        assert_eq!(rate(0.5), "0.5");
        assert_eq!(rate(2.0), "2");
        assert_eq!(rate(1.0 / 3.0), "0.33");
    }
}
