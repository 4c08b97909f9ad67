//! The plots of a report, as SVG files next to `report.json`: join-latency CDF, degree
//! histogram, unicast hop histogram, share of signaling carried by the server over time,
//! and memory over time.

use std::path::Path;

use plotters::prelude::*;

use crate::Report;

const SIZE: (u32, u32) = (720, 420);

/// Draws every plot of `report` into `dir`. Plots without data are skipped.
pub fn all(report: &Report, dir: &Path) -> anyhow::Result<()> {
    join_cdf(report, &dir.join("join_latency_cdf.svg"))?;
    histogram(
        &report.degrees.iter().map(|d| *d as u32).collect::<Vec<_>>(),
        "Degree at the end of the run",
        "degree",
        &dir.join("degree_histogram.svg"),
    )?;
    histogram(
        &report.hop_samples,
        "Unicast hops",
        "links crossed",
        &dir.join("hops_histogram.svg"),
    )?;
    signaling_share(report, &dir.join("signaling_share.svg"))?;
    memory(report, &dir.join("memory.svg"))?;
    Ok(())
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plotting failed: {e}")
}

fn join_cdf(report: &Report, path: &Path) -> anyhow::Result<()> {
    let mut v = report.join_samples_ms.clone();
    if v.is_empty() {
        return Ok(());
    }
    v.sort_by(f64::total_cmp);
    let xmax = v.last().copied().unwrap_or(1.0).max(1.0) * 1.05;
    let n = v.len() as f64;
    let points: Vec<(f64, f64)> = v
        .iter()
        .enumerate()
        .map(|(i, x)| (*x, (i + 1) as f64 / n))
        .collect();
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Join latency: node start → first link", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..xmax, 0f64..1f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("ms")
        .y_desc("share of nodes")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(points, &BLUE))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

fn histogram(values: &[u32], title: &str, x_desc: &str, path: &Path) -> anyhow::Result<()> {
    let Some(&max) = values.iter().max() else {
        return Ok(());
    };
    let mut counts = vec![0u32; max as usize + 1];
    for v in values {
        counts[*v as usize] += 1;
    }
    let ymax = counts.iter().copied().max().unwrap_or(1).max(1);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((0u32..max + 1).into_segmented(), 0u32..ymax + ymax / 10 + 1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("count")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(
            Histogram::vertical(&chart)
                .style(BLUE.filled())
                .margin(2)
                .data(values.iter().map(|v| (*v, 1u32))),
        )
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

fn signaling_share(report: &Report, path: &Path) -> anyhow::Result<()> {
    let points: Vec<(f64, f64)> = report
        .timeline
        .iter()
        .filter(|s| s.signals_via_server + s.signals_via_mesh > 0)
        .map(|s| {
            let total = (s.signals_via_server + s.signals_via_mesh) as f64;
            (s.t, s.signals_via_server as f64 / total)
        })
        .collect();
    line(
        &points,
        "Share of signaling messages carried by the server (cumulative)",
        "share",
        path,
        Some(1.0),
    )
}

fn memory(report: &Report, path: &Path) -> anyhow::Result<()> {
    let points: Vec<(f64, f64)> = report
        .timeline
        .iter()
        .filter(|s| s.rss_mb > 0.0)
        .map(|s| (s.t, s.rss_mb))
        .collect();
    line(&points, "Resident memory of the process", "MB", path, None)
}

fn line(
    points: &[(f64, f64)],
    title: &str,
    y_desc: &str,
    path: &Path,
    ymax: Option<f64>,
) -> anyhow::Result<()> {
    if points.len() < 2 {
        return Ok(());
    }
    let xmax = points.iter().map(|p| p.0).fold(0.0, f64::max).max(1.0);
    let ymax =
        ymax.unwrap_or_else(|| points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.1);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("s since the start")
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(points.iter().copied(), &BLUE))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Sample;

    #[test]
    fn every_plot_is_written_as_svg() {
        let dir = std::env::temp_dir().join(format!("mesh-sim-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let report = Report {
            degrees: vec![3, 4, 4, 5, 8],
            join_samples_ms: vec![5.0, 7.5, 9.0, 30.0],
            hop_samples: vec![1, 2, 2, 3],
            timeline: (0..5)
                .map(|i| Sample {
                    t: f64::from(i),
                    nodes_alive: 10,
                    signals_via_server: 10,
                    signals_via_mesh: 10 * u64::from(i as u8),
                    rss_mb: 100.0 + f64::from(i),
                })
                .collect(),
            ..Default::default()
        };
        all(&report, &dir).unwrap();
        for name in [
            "join_latency_cdf.svg",
            "degree_histogram.svg",
            "hops_histogram.svg",
            "signaling_share.svg",
            "memory.svg",
        ] {
            let svg = std::fs::read_to_string(dir.join(name)).unwrap();
            assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
