//! Frame time of the plots with 10 series × 1 M samples each:
//! `cargo bench -p idict-inspector`. A frame is what the UI thread does:
//! laying out the plot panel (choosing points from the min/max pyramid) and
//! tessellating it into triangles. Target (DESIGN.md): ≤ 8 ms.

use idict_inspector::model::RunModel;
use idict_inspector::views::plots::{PlotConfig, PlotsPanel};
use std::time::Instant;

const SERIES: usize = 10;
const SAMPLES: usize = 1_000_000;

fn model() -> RunModel {
    let mut m = RunModel::new("bench");
    for s in 0..SERIES {
        let series = m.series.entry(format!("series_{s}")).or_default();
        let mut y = 0.0f64;
        for i in 0..SAMPLES {
            // A noisy random walk: the worst case for decimation.
            let noise = (((i * 2654435761 + s * 97) % 1000) as f64 / 1000.0) - 0.5;
            y += noise;
            series.push(i as f64 + 1.0, i as f64 * 1e-3, y);
        }
    }
    m
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let t = Instant::now();
    let m = model();
    println!(
        "built {SERIES} series x {SAMPLES} samples in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let mut panel = PlotsPanel::default();
    panel.plots = vec![PlotConfig::of(
        (0..SERIES).map(|s| format!("series_{s}")).collect(),
    )];
    let ctx = egui::Context::default();
    let input = || egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1400.0, 860.0),
        )),
        ..Default::default()
    };
    let frame = |panel: &mut PlotsPanel| {
        let out = ctx.run_ui(input(), |ui| {
            egui::CentralPanel::default().show(ui, |ui| panel.ui(ui, &m, &[]));
        });
        let prims = ctx.tessellate(out.shapes, out.pixels_per_point);
        std::hint::black_box(prims);
    };
    for _ in 0..5 {
        frame(&mut panel);
    }
    let frames = if quick { 20 } else { 100 };
    let measure = |panel: &mut PlotsPanel| {
        let mut ms: Vec<f64> = (0..frames)
            .map(|_| {
                let t = Instant::now();
                frame(panel);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        (percentile(&ms, 0.5), percentile(&ms, 0.99))
    };
    let (p50, p99) = measure(&mut panel);
    println!(
        "frame with {SERIES} series x {SAMPLES} samples: p50 {p50:.2} ms, p99 {p99:.2} ms (target <= 8 ms)"
    );
    // The follow-latest view and a zoomed window use the same path.
    panel.plots[0].follow = true;
    panel.plots[0].window = 10_000.0;
    let (p50, p99) = measure(&mut panel);
    println!("frame following the latest 10,000 of them: p50 {p50:.2} ms, p99 {p99:.2} ms");
}
