//! The comparison chart (plotters, SVG): median round trip, 99th-percentile round trip and
//! throughput by message size, three log-log panels side by side with the legend beside them.
//!
//! Each transport has a colour of its own and a solid line; its raw baseline is dashed in the
//! same colour (a baseline shared by several transports, such as raw-shm, takes the first
//! one's), so pairs read at a glance. The palette is Okabe and Ito's colour-blind-safe one
//! without its yellow, then Paul Tol's darker colours. Each point is the median of the trials
//! with a whisker from the smallest to the largest; a point whose trials disagree by more
//! than `NOISY_SPREAD` is hollow. Axes are logarithmic with ticks in human units: the
//! measured sizes (8 B ... 1 MiB), ns/µs/ms, MB/s and GB/s.

use std::error::Error;
use std::path::Path;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;
use switchboard::measure::{Figure, Mechanism, NOISY_SPREAD, Report, Role, human_size};

const WIDTH: u32 = 1800;
const HEIGHT: u32 = 680;
const HEADER: u32 = 64;
const LEGEND: u32 = 230;
const FONT: &str = "sans-serif";

/// Okabe-Ito without yellow, then Tol's dark colours: each is readable on white.
const PALETTE: [RGBColor; 11] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xAA, 0x33, 0x77), // purple
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x33, 0x22, 0x88), // indigo
    RGBColor(0x88, 0x22, 0x55), // wine
    RGBColor(0x44, 0xAA, 0x99), // teal
    RGBColor(0x99, 0x99, 0x33), // olive
    RGBColor(0x00, 0x00, 0x00), // black
];

/// One line of the chart: a mechanism, its colour, whether it is a raw baseline (dashed),
/// and whether it is another mechanism's baseline (dotted, a triangle: mq, udp, eventfd-shm).
struct Series {
    name: String,
    colour: RGBColor,
    raw: bool,
    other: bool,
}

/// Colours of the other mechanisms' baselines: greys and browns, apart from the transports'.
const OTHER_PALETTE: [RGBColor; 4] = [
    RGBColor(0x66, 0x66, 0x66), // grey
    RGBColor(0x8C, 0x56, 0x3C), // brown
    RGBColor(0x99, 0x99, 0x33), // olive
    RGBColor(0x00, 0x00, 0x00), // black
];

/// Colours in report order: a transport takes the next colour, a raw baseline the colour of
/// the first transport it is the baseline of.
fn series(report: &Report) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    let (mut next, mut next_other) = (0, 0);
    for m in &report.measurements {
        if out.iter().any(|s| s.name == m.mechanism) {
            continue;
        }
        if m.mechanism.parse::<Mechanism>().is_ok_and(|t| t.role() == Role::Baseline) {
            let colour = OTHER_PALETTE[next_other % OTHER_PALETTE.len()];
            next_other += 1;
            out.push(Series { name: m.mechanism.clone(), colour, raw: false, other: true });
            continue;
        }
        let partner = m.raw.then(|| {
            out.iter().find(|s| !s.raw && s.name.parse::<Mechanism>().is_ok_and(|t| t.raw().to_string() == m.mechanism))
        });
        let colour = match partner.flatten() {
            Some(s) => s.colour,
            None => {
                next += 1;
                PALETTE[(next - 1) % PALETTE.len()]
            }
        };
        out.push(Series { name: m.mechanism.clone(), colour, raw: m.raw, other: false });
    }
    out
}

/// What a panel shows: a figure, its title, and how its values (ns or MB/s) read.
struct Panel {
    figure: Figure,
    title: &'static str,
    unit: fn(f64) -> String,
}

/// Draws the chart of `report` to `path` as SVG.
pub(crate) fn draw(report: &Report, path: &Path) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(HEADER);
    let (panels_area, legend) = body.split_horizontally(WIDTH - LEGEND);
    let series = series(report);
    let trials = report.trials();

    header.draw(&Text::new(
        format!("switchboard: every transport beside its raw mechanism, median of {trials} trials per point"),
        (20, 10),
        (FONT, 22).into_font().style(FontStyle::Bold),
    ))?;
    header.draw(&Text::new(
        format!("{}; runs {}", report.title(), report.placement_summary()),
        (20, 38),
        (FONT, 15),
    ))?;

    let panels = [
        Panel { figure: Figure::RttP50, title: "median round trip (lower is better)", unit: human_time },
        Panel { figure: Figure::RttP99, title: "99th-percentile round trip", unit: human_time },
        Panel { figure: Figure::MbPerS, title: "one-way throughput (higher is better)", unit: human_rate },
    ];
    for (area, panel) in panels_area.split_evenly((1, panels.len())).iter().zip(&panels) {
        draw_panel(area, report, &series, panel)?;
    }
    draw_legend(&legend, &series, trials)?;
    root.present()?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    report: &Report,
    series: &[Series],
    panel: &Panel,
) -> Result<(), Box<dyn Error>> {
    let mut sizes: Vec<usize> = report.measurements.iter().map(|m| m.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let xs: Vec<f64> = sizes.iter().map(|&s| (s as f64).log2()).collect();
    let (x0, x1) = (xs.first().copied().unwrap_or(0.0), xs.last().copied().unwrap_or(1.0));
    let pad = ((x1 - x0) * 0.08).max(0.6);
    let spreads: Vec<_> = report.measurements.iter().filter_map(|m| m.figure(panel.figure)).collect();
    let lo = spreads.iter().map(|s| s.min).filter(|v| *v > 0.0).fold(f64::MAX, f64::min);
    let hi = spreads.iter().map(|s| s.max).fold(0.0, f64::max);
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (1.0, 10.0) };
    let (y0, y1) = (lo.log10() - 0.15, hi.log10() + 0.15);
    let ticks = log_ticks(10f64.powf(y0), 10f64.powf(y1));

    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, (FONT, 17))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(72)
        .build_cartesian_2d(
            Axis { range: x0 - pad..x1 + pad, ticks: xs.clone() },
            Axis { range: y0..y1, ticks: ticks.iter().map(|t| t.log10()).collect() },
        )?;
    let unit = panel.unit;
    chart
        .configure_mesh()
        .bold_line_style(BLACK.mix(0.12))
        .x_desc("message size")
        .x_label_formatter(&|x| human_size(2f64.powf(*x).round() as usize))
        .y_label_formatter(&|y| unit(10f64.powf(*y)))
        .x_label_style((FONT, 13))
        .y_label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;

    // Mechanisms at one size sit a little apart so that their whiskers do not hide each other.
    let n = series.len().max(1) as f64;
    for (i, s) in series.iter().enumerate() {
        let dodge = (i as f64 - (n - 1.0) / 2.0) * (0.3 / n);
        let points: Vec<(f64, f64, switchboard::measure::Spread)> = report
            .measurements
            .iter()
            .filter(|m| m.mechanism == s.name)
            .filter_map(|m| {
                let spread = m.figure(panel.figure).filter(|sp| sp.median > 0.0)?;
                Some(((m.size as f64).log2() + dodge, spread.median.log10(), spread))
            })
            .collect();
        let line: Vec<(f64, f64)> = points.iter().map(|&(x, y, _)| (x, y)).collect();
        if s.other {
            chart.draw_series(DashedLineSeries::new(line, 2, 4, s.colour.stroke_width(2)))?;
        } else if s.raw {
            chart.draw_series(DashedLineSeries::new(line, 7, 5, s.colour.stroke_width(2)))?;
        } else {
            chart.draw_series(LineSeries::new(line, s.colour.stroke_width(2)))?;
        }
        for &(x, y, spread) in &points {
            let (a, b) = (spread.min.max(1e-12).log10(), spread.max.max(1e-12).log10());
            if b > a {
                let cap = 0.05;
                chart.draw_series([
                    PathElement::new(vec![(x, a), (x, b)], s.colour.stroke_width(1)),
                    PathElement::new(vec![(x - cap, a), (x + cap, a)], s.colour.stroke_width(1)),
                    PathElement::new(vec![(x - cap, b), (x + cap, b)], s.colour.stroke_width(1)),
                ])?;
            }
            // Hollow where the trials disagree; a baseline's point is a square.
            let fill = if spread.is_noisy() { WHITE.filled() } else { s.colour.filled() };
            let outline = s.colour.stroke_width(2);
            if s.other {
                let triangle = vec![(0, -5), (5, 4), (-5, 4)];
                chart.draw_series([EmptyElement::at((x, y))
                    + Polygon::new(triangle.clone(), fill)
                    + PathElement::new([triangle.clone(), vec![triangle[0]]].concat(), outline)])?;
            } else if s.raw {
                let square = [(-4, -4), (4, 4)];
                chart.draw_series([EmptyElement::at((x, y))
                    + Rectangle::new(square, fill)
                    + Rectangle::new(square, outline)])?;
            } else {
                chart.draw_series([EmptyElement::at((x, y))
                    + Circle::new((0, 0), 4, fill)
                    + Circle::new((0, 0), 4, outline)])?;
            }
        }
    }
    Ok(())
}

fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    series: &[Series],
    trials: usize,
) -> Result<(), Box<dyn Error>> {
    let row = 22;
    let mut y = 40;
    for s in series {
        let style = s.colour.stroke_width(2);
        if s.other {
            for x in (10..46).step_by(6) {
                area.draw(&PathElement::new(vec![(x, y), (x + 2, y)], style))?;
            }
            area.draw(&Polygon::new(vec![(28, y - 5), (33, y + 4), (23, y + 4)], s.colour.filled()))?;
        } else if s.raw {
            area.draw(&PathElement::new(vec![(10, y), (18, y)], style))?;
            area.draw(&PathElement::new(vec![(24, y), (32, y)], style))?;
            area.draw(&PathElement::new(vec![(38, y), (46, y)], style))?;
            area.draw(&Rectangle::new([(24, y - 4), (32, y + 4)], s.colour.filled()))?;
        } else {
            area.draw(&PathElement::new(vec![(10, y), (46, y)], style))?;
            area.draw(&Circle::new((28, y), 4, s.colour.filled()))?;
        }
        area.draw(&Text::new(s.name.clone(), (56, y - 8), (FONT, 15)))?;
        y += row;
    }
    y += 14;
    let notes = [
        "solid: transport".to_string(),
        "dashed: its raw baseline".to_string(),
        "dotted: another mechanism".to_string(),
        format!("whisker: min-max of {trials} trials"),
        format!("hollow: trials differ > {:.0}%", NOISY_SPREAD * 100.0),
        "   of the median".to_string(),
    ];
    for note in notes {
        area.draw(&Text::new(note, (10, y), (FONT, 13)))?;
        y += 18;
    }
    Ok(())
}

/// A linear axis over logarithms with ticks exactly where given: at the measured sizes, and
/// at 1-2-5 steps of the unit (plotters' own log axis puts them at powers of ten only, and its
/// key-point wrapper cannot take a label formatter).
#[derive(Clone)]
struct Axis {
    range: std::ops::Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = (value - self.range.start) / (self.range.end - self.range.start);
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() { Vec::new() } else { self.ticks.clone() }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.range.clone()
    }
}

/// 1-2-5 ticks between `lo` and `hi`, only powers of ten when that would be too many, every
/// digit when too few.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut all = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for c in [1.0, 2.0, 5.0] {
            let t = c * decade;
            if t >= lo && t <= hi {
                all.push(t);
            }
        }
        decade *= 10.0;
    }
    if all.len() > 9 {
        all.retain(|t| (t.log10() - t.log10().round()).abs() < 1e-9);
    }
    if all.len() < 2 {
        // A narrow range (one mechanism, one size) may hold no 1-2-5 step: use every digit.
        all.clear();
        let mut decade = 10f64.powf(lo.log10().floor());
        while decade <= hi {
            all.extend((1..10).map(|c| f64::from(c) * decade).filter(|t| *t >= lo && *t <= hi));
            decade *= 10.0;
        }
    }
    all
}

/// Nanoseconds as `500 ns`, `2 µs`, `20 ms`.
fn human_time(ns: f64) -> String {
    match ns {
        v if v >= 1e6 => format!("{} ms", trim(v / 1e6)),
        v if v >= 1e3 => format!("{} µs", trim(v / 1e3)),
        v => format!("{} ns", trim(v)),
    }
}

/// MB/s as `50 MB/s` or `2 GB/s`.
fn human_rate(mb_per_s: f64) -> String {
    if mb_per_s >= 1000.0 { format!("{} GB/s", trim(mb_per_s / 1000.0)) } else { format!("{} MB/s", trim(mb_per_s)) }
}

/// A tick value without trailing zeros: `2`, `0.5`, `0.02`.
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
