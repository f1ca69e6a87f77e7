//! `loss.png`: train loss (and its moving average) and val loss against the step, and, for a run
//! with `probe_data`, the zero-shot probe's top-1 accuracy on a right-hand axis.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Result, TrainerError};
use crate::metrics::MetricsRecord;

fn perr(path: &Path, e: impl std::fmt::Display) -> TrainerError {
    TrainerError::model(path, format!("plotting: {e}"))
}

/// DejaVu Sans (Basic Latin and a few symbols; licence in trainer/assets/LICENSE-DejaVu), built
/// in so that plots need no system fonts (GPU images and containers often have none).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

fn register_font() -> Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(TrainerError::Invalid("the built-in plot font did not load".into()))
    }
}

/// `loss_name` labels the y axis ("BCE loss", "softmax loss"); `probe_start` is the probe's
/// accuracy before the first step (the untrained model), drawn as the curve's first point.
pub fn plot_losses(
    records: &[MetricsRecord],
    path: &Path,
    title: &str,
    loss_name: &str,
    probe_start: Option<(usize, f64)>,
) -> Result<()> {
    let train: Vec<(f64, f64)> = records.iter().filter(|r| r.loss.is_finite()).map(|r| (r.step as f64, r.loss)).collect();
    let val: Vec<(f64, f64)> =
        records.iter().filter_map(|r| r.val_loss.filter(|v| v.is_finite()).map(|v| (r.step as f64, v))).collect();
    if train.is_empty() {
        return Err(TrainerError::model(path, "no losses to plot"));
    }
    // a trailing moving average makes the trend readable through the batch noise
    let window = (train.len() / 20).clamp(1, 50);
    let smooth: Vec<(f64, f64)> = (0..train.len())
        .map(|i| {
            let lo = i.saturating_sub(window - 1);
            let s = &train[lo..=i];
            (train[i].0, s.iter().map(|p| p.1).sum::<f64>() / s.len() as f64)
        })
        .collect();
    let x_max = train.iter().chain(&val).map(|p| p.0).fold(1.0, f64::max);
    let x_min = train.iter().chain(&val).map(|p| p.0).fold(x_max, f64::min).min(x_max - 1.0).max(0.0);
    let y_max = train.iter().chain(&val).map(|p| p.1).fold(0.0, f64::max) * 1.05;
    let y_min = train.iter().chain(&val).map(|p| p.1).fold(f64::INFINITY, f64::min).min(y_max) * 0.95;

    let probe: Vec<(f64, f64)> = probe_start
        .map(|(s, v)| (s as f64, v))
        .into_iter()
        .chain(records.iter().filter_map(|r| r.probe_top1.map(|v| (r.step as f64, v))))
        .filter(|p| p.1.is_finite())
        .collect();
    let x_min = probe.iter().map(|p| p.0).fold(x_min, f64::min);

    register_font()?;
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title}: loss"), ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .right_y_label_area_size(if probe.is_empty() { 0 } else { 64 })
        .build_cartesian_2d(x_min..x_max, y_min..y_max.max(y_min + 1e-6))
        .map_err(|e| perr(path, e))?
        .set_secondary_coord(x_min..x_max, 0.0..1.0);
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(loss_name)
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| perr(path, e))?;
    let light = RGBColor(150, 180, 230);
    chart
        .draw_series(LineSeries::new(train.iter().copied(), light.stroke_width(1)))
        .map_err(|e| perr(path, e))?
        .label("train loss")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], light.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(smooth, BLUE.stroke_width(2)))
        .map_err(|e| perr(path, e))?
        .label(format!("train loss (mean of {window})"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    if !val.is_empty() {
        chart
            .draw_series(LineSeries::new(val.iter().copied(), RED.stroke_width(2)))
            .map_err(|e| perr(path, e))?
            .label("val loss")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        chart.draw_series(val.iter().map(|&(x, y)| Circle::new((x, y), 4, RED.filled()))).map_err(|e| perr(path, e))?;
    }
    if !probe.is_empty() {
        chart
            .configure_secondary_axes()
            .y_desc("zero-shot probe top-1")
            .label_style(("sans-serif", 16))
            .draw()
            .map_err(|e| perr(path, e))?;
        let green = RGBColor(0, 140, 60);
        chart
            .draw_secondary_series(LineSeries::new(probe.iter().copied(), green.stroke_width(2)))
            .map_err(|e| perr(path, e))?
            .label("zero-shot probe top-1 (right axis)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green.stroke_width(2)));
        chart
            .draw_secondary_series(probe.iter().map(|&(x, y)| TriangleMarker::new((x, y), 5, green.filled())))
            .map_err(|e| perr(path, e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(|e| perr(path, e))?;
    root.present().map_err(|e| perr(path, e))?;
    Ok(())
}
