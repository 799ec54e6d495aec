//! Draws the scaling figures of issue 12 as PNG files.
//!
//! - `docs/scaling.png` from `workers.json` (written by `scripts/scale.sh`):
//!   tasks/s against the number of worker processes, measured next to the
//!   ideal (N × 1000 / mean mock latency), and the task latency p50/p99;
//! - `docs/cluster.png` from `cluster.json` (written by
//!   `scripts/bench-cluster.sh`), when that file exists: findings/s against
//!   the number of namespaces, one node against a Cluster of three masters,
//!   for `put_finding` and for `put_findings` batches.
//!
//! ```text
//! cargo run --release -p swarm-examples --bin plot_scaling -- \
//!     [--workers target/scaling/workers.json] [--cluster target/scaling/cluster.json] \
//!     [--out-dir docs] [--font /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf]
//! ```
//!
//! Text is drawn with `ab_glyph` from a TrueType file read at run time (no
//! system font library at build time): `--font`, else DejaVu Sans from the
//! usual Debian paths (`apt-get install fonts-dejavu-core`).

use std::error::Error;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use serde::Deserialize;

type AnyError = Box<dyn Error + Send + Sync>;

/// Where DejaVu Sans is found on Debian and Ubuntu (fonts-dejavu-core).
const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// One row of `workers.json`.
#[derive(Debug, Deserialize)]
struct WorkersRow {
    workers: u32,
    tasks_per_s_busy: f64,
    ideal_tasks_per_s: f64,
    task_latency_p50_ms: f64,
    task_latency_p99_ms: f64,
}

/// `workers.json`.
#[derive(Debug, Deserialize)]
struct Workers {
    date_utc: String,
    machine_cores: u32,
    mock_mean_latency_ms: f64,
    rows: Vec<WorkersRow>,
}

/// One row of `cluster.json`.
#[derive(Debug, Deserialize)]
struct ClusterRow {
    topology: String,
    mode: String,
    namespaces: u32,
    findings_per_s: f64,
}

/// `cluster.json`.
#[derive(Debug, Deserialize)]
struct Cluster {
    date_utc: String,
    machine_cores: u32,
    rows: Vec<ClusterRow>,
}

#[derive(Debug)]
struct Args {
    workers: PathBuf,
    cluster: PathBuf,
    out_dir: PathBuf,
    font: Option<PathBuf>,
}

fn parse_args() -> Result<Args, AnyError> {
    let mut a = Args {
        workers: PathBuf::from("target/scaling/workers.json"),
        cluster: PathBuf::from("target/scaling/cluster.json"),
        out_dir: PathBuf::from("docs"),
        font: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .map(PathBuf::from)
            .ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--workers" => a.workers = value,
            "--cluster" => a.cluster = value,
            "--out-dir" => a.out_dir = value,
            "--font" => a.font = Some(value),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

/// Registers the font as "sans-serif" for plotters (normal and bold).
fn load_font(path: Option<&Path>) -> Result<(), AnyError> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => FONT_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or("no DejaVuSans.ttf found: apt-get install fonts-dejavu-core, or pass --font")?,
    };
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // plotters keeps fonts for the life of the program.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    for style in [FontStyle::Normal, FontStyle::Bold] {
        register_font("sans-serif", style, bytes)
            .map_err(|_| format!("{}: not a usable font", path.display()))?;
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, AnyError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// Tick labels of a log2 axis: `2^x` at whole x, nothing in between.
fn pow2_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{}", 2f64.powi(x.round() as i32))
    } else {
        String::new()
    }
}

/// The x range of a log2 axis over `values`, with a margin.
fn log2_range(values: impl Iterator<Item = u32>) -> std::ops::Range<f64> {
    let max = values.max().unwrap_or(1).max(2);
    -0.25..f64::from(max).log2() + 0.25
}

fn draw_workers(w: &Workers, out: &Path) -> Result<(), AnyError> {
    let root = BitMapBackend::new(out, (1400, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!(
            "swarm workers scaling: soak --saturate, mock model 5-59 ms, {} cores, {}",
            w.machine_cores, w.date_utc
        ),
        ("sans-serif", 24).into_font().style(FontStyle::Bold),
    )?;
    let (left, right) = root.split_horizontally(760);
    let x_range = log2_range(w.rows.iter().map(|r| r.workers));
    let lx = |r: &WorkersRow| f64::from(r.workers).log2();

    // Tasks/s, measured against the ideal.
    let y_max = w
        .rows
        .iter()
        .map(|r| r.ideal_tasks_per_s.max(r.tasks_per_s_busy))
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption("tasks/s against worker processes", ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.clone(), 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("worker processes (log2 scale)")
        .y_desc("tasks/s (first push to last finding)")
        .x_label_formatter(&pow2_label)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_labels(12)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    let ideal: Vec<(f64, f64)> = w
        .rows
        .iter()
        .map(|r| (lx(r), r.ideal_tasks_per_s))
        .collect();
    let measured: Vec<(f64, f64)> = w.rows.iter().map(|r| (lx(r), r.tasks_per_s_busy)).collect();
    let grey = RGBColor(120, 120, 120);
    chart
        .draw_series(LineSeries::new(ideal.clone(), grey.stroke_width(2)))?
        .label(format!(
            "ideal: N x 1000 / {} ms (mean mock latency)",
            w.mock_mean_latency_ms
        ))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2)));
    chart.draw_series(ideal.iter().map(|p| Circle::new(*p, 4, grey.filled())))?;
    chart
        .draw_series(LineSeries::new(measured.clone(), BLUE.stroke_width(3)))?
        .label("measured")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(3)));
    chart.draw_series(measured.iter().map(|p| Circle::new(*p, 5, BLUE.filled())))?;
    chart.draw_series(measured.iter().map(|(x, y)| {
        Text::new(
            format!("{y:.0}"),
            (*x - 0.12, *y + y_max * 0.045),
            ("sans-serif", 15).into_font().color(&BLUE),
        )
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;

    // Latency p50 / p99.
    let l_max = w
        .rows
        .iter()
        .map(|r| r.task_latency_p99_ms)
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&right)
        .caption("task latency, push to finding", ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, 0.0..l_max)?;
    chart
        .configure_mesh()
        .x_desc("worker processes (log2 scale)")
        .y_desc("ms")
        .x_label_formatter(&pow2_label)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_labels(12)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    for (name, color, pick) in [
        (
            "p50",
            BLUE,
            (|r: &WorkersRow| r.task_latency_p50_ms) as fn(&WorkersRow) -> f64,
        ),
        ("p99", RED, |r: &WorkersRow| r.task_latency_p99_ms),
    ] {
        let points: Vec<(f64, f64)> = w.rows.iter().map(|r| (lx(r), pick(r))).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 5, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn draw_cluster(c: &Cluster, out: &Path) -> Result<(), AnyError> {
    let root = BitMapBackend::new(out, (1400, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!(
            "RedisBus findings/s: one redis-server against a 3-master Cluster, {} cores, {}",
            c.machine_cores, c.date_utc
        ),
        ("sans-serif", 24).into_font().style(FontStyle::Bold),
    )?;
    let (left, right) = root.split_horizontally(700);
    for (area, mode, title) in [
        (&left, "put_finding", "put_finding, concurrent tasks"),
        (&right, "put_findings", "put_findings, batches"),
    ] {
        let rows: Vec<&ClusterRow> = c.rows.iter().filter(|r| r.mode == mode).collect();
        let x_range = log2_range(rows.iter().map(|r| r.namespaces));
        let y_max = rows.iter().map(|r| r.findings_per_s).fold(1.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(x_range, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("namespaces written at once (log2 scale)")
            .y_desc("findings/s")
            .x_label_formatter(&pow2_label)
            .x_labels(12)
            .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .draw()?;
        // A value's label goes above its point when it is the higher of
        // the two at that x, else below, so that close values stay readable.
        let value_at = |topology: &str, k: u32| {
            rows.iter()
                .find(|r| r.topology == topology && r.namespaces == k)
                .map_or(0.0, |r| r.findings_per_s)
        };
        for (topology, other, label, color) in [
            (
                "single",
                "cluster",
                "one redis-server",
                RGBColor(120, 120, 120),
            ),
            ("cluster", "single", "Cluster, 3 masters", BLUE),
        ] {
            // (x, findings/s, label above the point), in x order.
            let mut marks: Vec<(f64, f64, bool)> = rows
                .iter()
                .filter(|r| r.topology == topology)
                .map(|r| {
                    (
                        f64::from(r.namespaces).log2(),
                        r.findings_per_s,
                        r.findings_per_s >= value_at(other, r.namespaces),
                    )
                })
                .collect();
            marks.sort_by(|a, b| a.0.total_cmp(&b.0));
            let points: Vec<(f64, f64)> = marks.iter().map(|(x, y, _)| (*x, *y)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 5, color.filled())))?;
            chart.draw_series(marks.iter().map(|(x, y, up)| {
                let dy = if *up { 0.045 } else { -0.03 };
                Text::new(
                    format!("{:.1}k", y / 1000.0),
                    (*x - 0.1, *y + y_max * dy),
                    ("sans-serif", 14).into_font().color(&color),
                )
            }))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn run() -> Result<(), AnyError> {
    let args = parse_args()?;
    load_font(args.font.as_deref())?;
    std::fs::create_dir_all(&args.out_dir)?;
    let mut drew = false;
    if args.workers.is_file() {
        let out = args.out_dir.join("scaling.png");
        draw_workers(&read_json(&args.workers)?, &out)?;
        eprintln!("plot_scaling: wrote {}", out.display());
        drew = true;
    }
    if args.cluster.is_file() {
        let out = args.out_dir.join("cluster.png");
        draw_cluster(&read_json(&args.cluster)?, &out)?;
        eprintln!("plot_scaling: wrote {}", out.display());
        drew = true;
    }
    if !drew {
        return Err(format!(
            "neither {} nor {} exists: run scripts/scale.sh or scripts/bench-cluster.sh",
            args.workers.display(),
            args.cluster.display()
        )
        .into());
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("plot_scaling: {e}");
        std::process::exit(1);
    }
}
