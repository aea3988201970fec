//! The plot of `bench/data-size.sh`'s section A: SET throughput and
//! latency against the number of keys already stored.
//!
//! Why it reads the markdown report instead of its own JSON: the report is
//! what the script writes and what BENCHMARKS.md and docs/perf-log link, so the chart is
//! always drawn from the committed numbers, and it can be redrawn for any
//! earlier report (`strata-compare --plot-data-size <report.md>`). A report
//! is a file on disk, so the parser refuses anything malformed with a
//! message instead of panicking (see the property test).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use plotters::prelude::*;

/// The heading of section A, as `bench/data-size.sh` writes it.
const SECTION_A_PREFIX: &str = "## A.";
/// Rows of section A read at most; the script writes one per `--sizes`.
pub const ROWS_MAX: usize = 64;
/// Largest ops/s or ms value accepted (10^12).
const VALUE_MAX: f64 = 1e12;

const WIDTH_PX: u32 = 1280;
const HEIGHT_PX: u32 = 520;
const THROUGHPUT_COLOR: RGBColor = RGBColor(31, 119, 180);
const P50_COLOR: RGBColor = RGBColor(44, 160, 44);
const P99_COLOR: RGBColor = RGBColor(214, 39, 40);

/// One measurement of section A.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeRow {
    pub keys_stored: u64,
    pub set_ops_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Reads section A's table from a `data-size-<ts>.md` report: the rows
/// after the `## A.` heading up to the next heading, in the column order
/// `keys stored | load time s | data on disk | SET ops/s | p50 ms | p99 ms`.
pub fn parse_section_a(report: &str) -> Result<Vec<SizeRow>> {
    let mut lines = report
        .lines()
        .skip_while(|l| !l.starts_with(SECTION_A_PREFIX));
    if lines.next().is_none() {
        return Err(anyhow!(
            "no section A (a line starting with {SECTION_A_PREFIX:?})"
        ));
    }
    let mut rows = Vec::new();
    for (i, line) in lines
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.trim_start().starts_with('|'))
        .enumerate()
    {
        // The first two table lines are the header and the separator.
        if i < 2 {
            continue;
        }
        if rows.len() == ROWS_MAX {
            return Err(anyhow!("section A has more than {ROWS_MAX} rows"));
        }
        rows.push(parse_row(line).map_err(|e| anyhow!("section A, row {:?}: {e}", line.trim()))?);
    }
    if rows.is_empty() {
        return Err(anyhow!("section A has no measurements"));
    }
    Ok(rows)
}

fn parse_row(line: &str) -> Result<SizeRow> {
    let cells: Vec<&str> = line
        .trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect();
    if cells.len() != 6 {
        return Err(anyhow!("expected 6 columns, found {}", cells.len()));
    }
    let number = |i: usize, what: &str| -> Result<f64> {
        let v: f64 = cells[i]
            .parse()
            .map_err(|_| anyhow!("{what} is not a number: {:?}", cells[i]))?;
        // Bounded far above any real measurement, so that the chart's
        // axis arithmetic (max × 1.2) stays finite: plotters loops forever
        // on an infinite range.
        if !v.is_finite() || !(0.0..=VALUE_MAX).contains(&v) {
            return Err(anyhow!("{what} out of range: {v}"));
        }
        Ok(v)
    };
    let keys_stored = cells[0]
        .parse()
        .map_err(|_| anyhow!("keys stored is not a whole number: {:?}", cells[0]))?;
    Ok(SizeRow {
        keys_stored,
        set_ops_per_s: number(3, "SET ops/s")?,
        p50_ms: number(4, "p50 ms")?,
        p99_ms: number(5, "p99 ms")?,
    })
}

/// "0", "1M", "10M", "2.5k", ...: the x labels.
fn keys_label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Draws section A as one SVG with two panels (SET ops/s; p50 and p99
/// latency), one point per size, in report order, at evenly spaced x
/// positions: the sizes span 0 to tens of millions, which neither a linear
/// nor a log axis shows well.
pub fn plot_section_a(rows: &[SizeRow], title: &str, path: &Path) -> Result<()> {
    if rows.is_empty() {
        return Err(anyhow!("nothing to plot"));
    }
    let n = rows.len() as i32;
    let labels: Vec<String> = rows.iter().map(|r| keys_label(r.keys_stored)).collect();
    let ops_max = rows.iter().map(|r| r.set_ops_per_s).fold(0.0, f64::max);
    let ms_max = rows
        .iter()
        .map(|r| r.p99_ms.max(r.p50_ms))
        .fold(0.0, f64::max);
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 18))?;
        let (left, right) = root.split_horizontally(WIDTH_PX / 2);
        let x_label = |x: &i32| labels.get(*x as usize).cloned().unwrap_or_default();
        let x_points: Vec<i32> = (0..n).collect();

        let mut ops = ChartBuilder::on(&left)
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (-1..n).with_key_points(x_points.clone()),
                0.0..(ops_max * 1.15).max(1.0),
            )?;
        ops.configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&x_label)
            .x_desc("keys stored")
            .y_desc("SET ops/s (higher is better)")
            .y_label_formatter(&|y: &f64| format!("{:.0}k", y / 1000.0))
            .label_style(("sans-serif", 14))
            .draw()?;
        let points: Vec<(i32, f64)> = (0..n).zip(rows.iter().map(|r| r.set_ops_per_s)).collect();
        ops.draw_series(LineSeries::new(
            points.clone(),
            THROUGHPUT_COLOR.stroke_width(3),
        ))?;
        ops.draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 5, THROUGHPUT_COLOR.filled())),
        )?;
        ops.draw_series(points.iter().map(|&(x, y)| {
            Text::new(
                format!("{:.1}k", y / 1000.0),
                (x, y + ops_max * 0.04),
                ("sans-serif", 13),
            )
        }))?;

        let mut lat = ChartBuilder::on(&right)
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (-1..n).with_key_points(x_points),
                0.0..(ms_max * 1.2).max(0.1),
            )?;
        lat.configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&x_label)
            .x_desc("keys stored")
            .y_desc("SET latency, ms (lower is better)")
            .label_style(("sans-serif", 14))
            .draw()?;
        for (name, color, pick) in [
            (
                "p99",
                P99_COLOR,
                (|r: &SizeRow| r.p99_ms) as fn(&SizeRow) -> f64,
            ),
            ("p50", P50_COLOR, |r: &SizeRow| r.p50_ms),
        ] {
            let points: Vec<(i32, f64)> = (0..n).zip(rows.iter().map(pick)).collect();
            lat.draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(3))
                });
            lat.draw_series(points.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
        }
        crate::plot::draw_legend(&mut lat, SeriesLabelPosition::UpperLeft)?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow!("drawing {}: {e}", path.display()))
}

/// Reads `report` and writes `<report stem>-A.svg` next to it; returns the
/// path written.
pub fn plot_report(report: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(report)
        .map_err(|e| anyhow!("reading {}: {e}", report.display()))?;
    let rows = parse_section_a(&text).map_err(|e| anyhow!("{}: {e}", report.display()))?;
    let stem = report
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| anyhow!("{}: no file name", report.display()))?;
    let path = report.with_file_name(format!("{stem}-A.svg"));
    // The report's settings line says what was measured (fsync mode,
    // clients, value kind); the title repeats it rather than assume it.
    let settings = text
        .lines()
        .find_map(|l| l.strip_prefix("Machine: "))
        .map(|l| format!(" ({})", l.trim_end_matches('.')))
        .unwrap_or_default();
    let title = format!("SET against keys already stored, {stem}{settings}");
    plot_section_a(&rows, &title, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REPORT: &str = "# Strata: data size (20261123T091806Z)

Machine: 2 cores, 23 GiB RAM. strata --fsync always. strata-bench -c 50.

## A. SET throughput against the number of keys already stored (100 B values)

| keys stored | load time s | data on disk | SET ops/s | p50 ms | p99 ms |
|---|---|---|---|---|---|
| 0 | 0.0 | 63M | 30062 | 1.519 | 3.557 |
| 1000000 | 6.4 | 159M | 23028 | 1.970 | 4.371 |
| 50000000 | 828.5 | 5.3G | 12629 | 3.473 | 7.415 |

## C. Recovery after kill -9

| keys stored | data on disk | recovery s |
|---|---|---|
| 0 | 63M | 0.970 |
";

    #[test]
    fn reads_section_a_and_stops_at_the_next_section() {
        let rows = parse_section_a(REPORT).unwrap();
        assert_eq!(
            rows,
            [
                SizeRow {
                    keys_stored: 0,
                    set_ops_per_s: 30062.0,
                    p50_ms: 1.519,
                    p99_ms: 3.557
                },
                SizeRow {
                    keys_stored: 1_000_000,
                    set_ops_per_s: 23028.0,
                    p50_ms: 1.970,
                    p99_ms: 4.371
                },
                SizeRow {
                    keys_stored: 50_000_000,
                    set_ops_per_s: 12629.0,
                    p50_ms: 3.473,
                    p99_ms: 7.415
                },
            ]
        );
    }

    #[test]
    fn refuses_malformed_reports_with_a_reason() {
        let err = |text: &str| parse_section_a(text).unwrap_err().to_string();
        assert!(err("# nothing here\n").contains("no section A"));
        assert!(err("## A. x\n\n| a | b |\n|---|\n\n## B.\n").contains("no measurements"));
        let bad_number = REPORT.replace("| 23028 |", "| fast |");
        assert!(
            err(&bad_number).contains("SET ops/s is not a number"),
            "{}",
            err(&bad_number)
        );
        let bad_keys = REPORT.replace("| 1000000 | 6.4", "| 1e6 | 6.4");
        assert!(err(&bad_keys).contains("keys stored"));
        let short = REPORT.replace("| 0 | 0.0 | 63M | 30062 | 1.519 | 3.557 |", "| 0 | 0.0 |");
        assert!(err(&short).contains("expected 6 columns"));
        let negative = REPORT.replace("| 3.557 |", "| -3.5 |");
        assert!(err(&negative).contains("out of range"));
        // Finite, but the axis (max × 1.15) would overflow to infinity.
        let huge = REPORT.replace("| 23028 |", "| 1.7e308 |");
        assert!(err(&huge).contains("out of range"));
    }

    #[test]
    fn labels_the_sizes_readably() {
        let labels: Vec<String> = [0, 999, 2_000, 1_000_000, 10_000_000, 2_500_000]
            .into_iter()
            .map(keys_label)
            .collect();
        assert_eq!(labels, ["0", "999", "2k", "1M", "10M", "2.5M"]);
    }

    #[test]
    fn writes_an_svg_next_to_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("data-size-20261123T091806Z.md");
        std::fs::write(&report, REPORT).unwrap();
        let svg = plot_report(&report).unwrap();
        assert_eq!(svg, dir.path().join("data-size-20261123T091806Z-A.svg"));
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg"), "{}", &text[..text.len().min(80)]);
        for label in [
            "50M",
            "1M",
            "30.1k",
            "12.6k",
            "p99",
            "keys stored",
            "--fsync always",
        ] {
            assert!(text.contains(label), "{label} missing from the chart");
        }
        assert!(plot_report(&dir.path().join("missing.md")).is_err());
    }

    proptest! {
        /// Any text: an answer or an error, never a panic.
        #[test]
        fn never_panics_on_arbitrary_reports(
            head in "[ -~\n]{0,200}",
            rows in proptest::collection::vec("[|0-9a-z. -]{0,40}", 0..8),
        ) {
            let text = format!("{head}\n## A. x\n{}\n", rows.join("\n"));
            let _ = parse_section_a(&text);
        }
    }
}
