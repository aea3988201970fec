//! SVG charts: grouped bars, strata next to redis, one chart per level.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::model::Level;
use crate::table::{Cell, RatioRow};

/// What a chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Throughput,
    P99Latency,
}

impl Metric {
    pub fn file_suffix(self) -> &'static str {
        match self {
            Metric::Throughput => "throughput",
            Metric::P99Latency => "p99",
        }
    }

    /// The value drawn, in the chart's unit (ops/s, or ms for latency).
    fn value(self, c: &Cell) -> Option<f64> {
        match self {
            Metric::Throughput => c.ops_per_s,
            Metric::P99Latency => c.p99_latency_us.map(|us| us / 1000.0),
        }
        .filter(|v| v.is_finite() && *v > 0.0)
    }

    fn axis(self) -> &'static str {
        match self {
            Metric::Throughput => "ops/s (log scale, higher is better)",
            Metric::P99Latency => "p99 latency, ms (log scale, lower is better)",
        }
    }

    fn label(self, v: f64) -> String {
        match self {
            Metric::Throughput if v >= 1_000_000.0 => format!("{:.2}M", v / 1e6),
            Metric::Throughput if v >= 10_000.0 => format!("{:.0}k", v / 1000.0),
            Metric::Throughput => format!("{v:.0}"),
            Metric::P99Latency if v >= 10.0 => format!("{v:.0}"),
            Metric::P99Latency => format!("{v:.2}"),
        }
    }
}

const WIDTH_PX: u32 = 1280;
const HEIGHT_PX: u32 = 640;
/// x units per test; two bars of BAR_WIDTH with BAR_GAP on either side.
const SLOT: i32 = 10;
const BAR_WIDTH: i32 = 4;
const BAR_GAP: i32 = (SLOT - 2 * BAR_WIDTH) / 2;
const STRATA_COLOR: RGBColor = RGBColor(31, 119, 180);
const REDIS_COLOR: RGBColor = RGBColor(214, 39, 40);

/// Draws one grouped bar chart of `metric` for the rows of `level` into
/// `path`. Both bars of a group share an x slot of width 1: strata on the
/// left, redis on the right; a missing value leaves a gap labelled "n/a".
pub fn plot_level(rows: &[RatioRow], level: Level, metric: Metric, path: &Path) -> Result<()> {
    let rows: Vec<&RatioRow> = rows.iter().filter(|r| r.level == level).collect();
    if rows.is_empty() {
        return Err(anyhow!("no results for level {}", level.name()));
    }
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|r| [metric.value(&r.strata), metric.value(&r.redis)])
        .flatten()
        .collect();
    // Log scale: the tests span orders of magnitude (an fsync-bound SET vs
    // a pipelined GET), and a linear axis would flatten the slow ones.
    // Bars start one decade below the smallest value so every bar shows.
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    let (y_low, y_high) = if values.is_empty() {
        (1.0, 10.0)
    } else {
        (
            10f64.powf(min.log10().floor() - 0.3).max(1e-3),
            // Headroom above the tallest bar for its label and the legend.
            10f64.powf(max.log10() + 0.35),
        )
    };
    let n_tests = rows.len();
    // Integer x: plotters can only attach custom tick positions to a
    // coordinate with default formatting, which f64 lacks. Each test gets
    // SLOT units; its tick (and name) sits in the middle.
    let slots = n_tests as i32 * SLOT;
    let centers: Vec<i32> = (0..n_tests as i32).map(|i| i * SLOT + SLOT / 2).collect();
    let names: Vec<String> = rows.iter().map(|r| r.test.clone()).collect();

    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
        root.fill(&WHITE)?;
        let caption = format!(
            "{} — {}",
            match metric {
                Metric::Throughput => "throughput",
                Metric::P99Latency => "p99 latency",
            },
            level.pairing()
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(
                (0..slots).with_key_points(centers.clone()),
                (y_low..y_high).log_scale(),
            )?;
        let x_label = |x: &i32| {
            names
                .get((x / SLOT).max(0) as usize)
                .cloned()
                .unwrap_or_default()
        };
        let y_label = |y: &f64| metric.label(*y);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .y_desc(metric.axis())
            .label_style(("sans-serif", 14))
            .draw()?;

        for (side, color, name) in [
            (0usize, STRATA_COLOR, "strata"),
            (1usize, REDIS_COLOR, "redis"),
        ] {
            let left = |i: usize| i as i32 * SLOT + BAR_GAP + BAR_WIDTH * side as i32;
            let bars: Vec<(usize, Option<f64>)> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let cell = if side == 0 { &r.strata } else { &r.redis };
                    (i, metric.value(cell))
                })
                .collect();
            chart
                .draw_series(bars.iter().filter_map(|&(i, v)| {
                    v.map(|v| {
                        Rectangle::new([(left(i), y_low), (left(i) + BAR_WIDTH, v)], color.filled())
                    })
                }))?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                });
            // The number on top of each bar; "n/a" where there is none.
            chart.draw_series(bars.iter().map(|&(i, v)| {
                let (text, y) = match v {
                    Some(v) => (metric.label(v), v),
                    None => ("n/a".to_string(), y_low),
                };
                // Anchored at its bottom centre, so it sits on the bar.
                let style = ("sans-serif", 11)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom));
                Text::new(text, (left(i) + BAR_WIDTH / 2, y), style)
            }))?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow!("drawing {}: {e}", path.display()))
}

/// The legend of the series drawn so far, in the one style all our charts
/// share.
pub(crate) fn draw_legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
}

/// Writes the throughput and p99 charts of every level present in `rows`
/// as `<stem>-<level>-<metric>.svg` in `dir`; returns the paths written.
pub fn plot_all(rows: &[RatioRow], dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for level in Level::ALL {
        if !rows.iter().any(|r| r.level == level) {
            continue;
        }
        for metric in [Metric::Throughput, Metric::P99Latency] {
            let path = dir.join(format!(
                "{stem}-{}-{}.svg",
                level.name(),
                metric.file_suffix()
            ));
            plot_level(rows, level, metric, &path)?;
            written.push(path);
        }
    }
    Ok(written)
}
