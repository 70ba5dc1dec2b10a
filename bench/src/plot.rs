//! SVG line charts (plotters, SVG backend only: no fonts, no C dependencies).

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
    /// Bounds are dashed, measurements solid with markers.
    pub dashed: bool,
    /// Draw a marker at each point (off for dense time series).
    pub markers: bool,
}

/// How the x axis is laid out: values are plotted on a log scale and labelled as numbers.
#[derive(Clone, Copy)]
pub enum XAxis {
    /// Powers of two (concurrency).
    Log2,
    /// Powers of ten (room size).
    Log10,
    /// Plain numbers (time).
    Linear,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub x_axis: XAxis,
    pub series: Vec<Series>,
}

pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(90, 90, 90),
];

/// Writes the charts side by side into one SVG.
pub fn render(path: &Path, charts: &[Chart]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let width = 720 * charts.len().max(1) as u32;
    let root = SVGBackend::new(path, (width, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((1, charts.len().max(1)));
    for (area, chart) in areas.iter().zip(charts) {
        draw(area, chart).map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

fn to_x(axis: XAxis, x: f64) -> f64 {
    match axis {
        XAxis::Log2 => x.log2(),
        XAxis::Log10 => x.log10(),
        XAxis::Linear => x,
    }
}

fn label_x(axis: XAxis, x: f64) -> String {
    let value = match axis {
        XAxis::Log2 => 2f64.powf(x),
        XAxis::Log10 => 10f64.powf(x),
        XAxis::Linear => return format!("{x}"),
    };
    if (x - x.round()).abs() > 0.01 {
        return String::new();
    }
    let value = value.round();
    if value >= 1e6 {
        format!("{}M", value / 1e6)
    } else if value >= 1e3 && matches!(axis, XAxis::Log10) {
        format!("{}k", value / 1e3)
    } else {
        format!("{value}")
    }
}

fn draw(
    area: &DrawingArea<SVGBackend, Shift>,
    chart: &Chart,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let xs = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| to_x(chart.x_axis, p.0)));
    let (x_min, x_max) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let pad = match chart.x_axis {
        XAxis::Linear => 0.0,
        _ => 0.25,
    };
    let (x_min, x_max) = if x_min.is_finite() {
        (x_min - pad, x_max + pad)
    } else {
        (0.0, 1.0)
    };
    // Scaled to the measurements: a bound far above them runs off the top.
    let measured_max = chart
        .series
        .iter()
        .filter(|s| !s.dashed)
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let all_max = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let y_max = if measured_max > 0.0 {
        all_max.min(measured_max * 1.6) * 1.1
    } else {
        all_max * 1.1
    };
    let y_max = if y_max > 0.0 { y_max } else { 1.0 };
    let mut ctx = ChartBuilder::on(area)
        .caption(chart.title, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x_min..x_max, 0.0..y_max)?;
    let axis = chart.x_axis;
    ctx.configure_mesh()
        .x_desc(chart.x_desc)
        .y_desc(chart.y_desc)
        .x_labels(match axis {
            XAxis::Linear => 10,
            _ => ((x_max - x_min).ceil() as usize + 1).max(2),
        })
        .x_label_formatter(&move |x| label_x(axis, *x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for series in &chart.series {
        let points = clip_top(
            series
                .points
                .iter()
                .map(|&(x, y)| (to_x(axis, x), y))
                .collect(),
            y_max,
        );
        let color = series.color;
        if series.dashed {
            ctx.draw_series(DashedLineSeries::new(points, 6, 4, color.stroke_width(2)))?
                .label(series.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        } else {
            ctx.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(series.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            if series.markers {
                ctx.draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )?;
            }
        }
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

/// The line up to where it leaves the chart through the top.
fn clip_top(points: Vec<(f64, f64)>, y_max: f64) -> Vec<(f64, f64)> {
    let mut clipped: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for (x, y) in points {
        if y <= y_max {
            clipped.push((x, y));
            continue;
        }
        if let Some(&(px, py)) = clipped.last() {
            let t = (y_max - py) / (y - py);
            clipped.push((px + t * (x - px), y_max));
        }
        break;
    }
    clipped
}
