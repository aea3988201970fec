//! SVG charts: grouped bars, strata next to each peer (redis, valkey, a
//! baseline strata), one chart per level; single-key rows get charts of
//! their own, titled so.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::model::{Level, SINGLE_KEY_LABEL, Server};
use crate::table::{Cell, RatioRow, peers_of_rows};

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
/// x units per bar, and free on either side of a test's group of bars.
const BAR_WIDTH: i32 = 4;
const BAR_GAP: i32 = 1;

fn color(server: Server) -> RGBColor {
    match server {
        Server::Strata => RGBColor(31, 119, 180),
        Server::Redis => RGBColor(214, 39, 40),
        Server::Valkey => RGBColor(44, 160, 44),
        Server::Baseline => RGBColor(127, 127, 127),
    }
}

/// Draws one grouped bar chart of `metric` for the rows of `level` into
/// `path`: per test, strata's bar and then each peer's, side by side; a
/// missing value leaves a gap labelled "n/a".
pub fn plot_level(rows: &[RatioRow], level: Level, metric: Metric, path: &Path) -> Result<()> {
    let rows: Vec<&RatioRow> = rows.iter().filter(|r| r.level == level).collect();
    let peers: Vec<Server> = rows
        .first()
        .map(|r| r.peers.iter().map(|p| p.server).collect())
        .unwrap_or_default();
    plot_rows(&rows, &level.pairing(&peers), metric, path)
        .map_err(|e| e.context(format!("level {}", level.name())))
}

/// [`plot_level`] for any rows, with `title` after the metric's name.
fn plot_rows(rows: &[&RatioRow], title: &str, metric: Metric, path: &Path) -> Result<()> {
    if rows.is_empty() {
        return Err(anyhow!("no results to plot"));
    }
    let servers: Vec<Server> = rows[0].cells().map(|(s, _)| s).collect();
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.cells().map(|(_, c)| metric.value(c)).collect::<Vec<_>>())
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
    let slot = servers.len() as i32 * BAR_WIDTH + 2 * BAR_GAP;
    // Integer x: plotters can only attach custom tick positions to a
    // coordinate with default formatting, which f64 lacks. Each test gets
    // `slot` units; its tick (and name) sits in the middle.
    let slots = n_tests as i32 * slot;
    let centers: Vec<i32> = (0..n_tests as i32).map(|i| i * slot + slot / 2).collect();
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
            title
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
                .get((x / slot).max(0) as usize)
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

        for (side, &server) in servers.iter().enumerate() {
            let color = color(server);
            let left = |i: usize| i as i32 * slot + BAR_GAP + BAR_WIDTH * side as i32;
            let bars: Vec<(usize, Option<f64>)> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| (i, r.cells().nth(side).and_then(|(_, c)| metric.value(c))))
                .collect();
            chart
                .draw_series(bars.iter().filter_map(|&(i, v)| {
                    v.map(|v| {
                        Rectangle::new([(left(i), y_low), (left(i) + BAR_WIDTH, v)], color.filled())
                    })
                }))?
                .label(server.name())
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
/// as `<stem>-<level>-<metric>.svg` in `dir`, and those of the level's
/// single-key rows, if any, as `<stem>-<level>-single-key-<metric>.svg`;
/// returns the paths written.
pub fn plot_all(rows: &[RatioRow], dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    let peers = peers_of_rows(rows);
    let mut written = Vec::new();
    for level in Level::ALL {
        let (single, other): (Vec<&RatioRow>, Vec<&RatioRow>) = rows
            .iter()
            .filter(|r| r.level == level)
            .partition(|r| r.test.ends_with(SINGLE_KEY_LABEL));
        let single_title = format!("{}, redis-benchmark on a single key", level.pairing(&peers));
        for (chart_rows, infix, title) in [
            (other, "", level.pairing(&peers)),
            (single, "-single-key", single_title),
        ] {
            if chart_rows.is_empty() {
                continue;
            }
            for metric in [Metric::Throughput, Metric::P99Latency] {
                let path = dir.join(format!(
                    "{stem}-{}{infix}-{}.svg",
                    level.name(),
                    metric.file_suffix()
                ));
                plot_rows(&chart_rows, &title, metric, &path)?;
                written.push(path);
            }
        }
    }
    Ok(written)
}
