//! `musicdiff data`: inspect datasets and prepare them for training.

use std::path::PathBuf;

use burn::prelude::Device;
use clap::{Args, Subcommand};
use musicdiff_common::assets;
use musicdiff_dataset::prepare::{self, PrepareConfig};
use musicdiff_dataset::{DataError, stats};
use musicdiff_text::TextEncoder;

use crate::progress::Ui;

/// Inspect and prepare datasets.
#[derive(Debug, Args)]
pub struct DataCmd {
    #[command(subcommand)]
    pub action: DataAction,
}

#[derive(Debug, Subcommand)]
pub enum DataAction {
    /// Summarise a dataset (AudioFolder or Hugging Face parquet): clips, hours, durations,
    /// genres, instruments and example captions.
    Stats(StatsArgs),
    /// Cut a dataset (AudioFolder or Hugging Face parquet) into windows, compute log-mels and MiniLM caption
    /// embeddings, and write safetensors shards with a manifest and normalisation statistics
    /// (resumable: finished shards are kept).
    Prepare(PrepareArgs),
}

#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// Dataset: an AudioFolder root (audio plus metadata.jsonl or metadata.csv), or a parquet
    /// file or a directory of parquet files as Hugging Face datasets are stored.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    /// Output directory for shards and manifest.json.
    #[arg(long, value_name = "SHARDS")]
    pub out: PathBuf,
    /// Preparation options (TOML; see configs/data/default.toml) [default: built-in defaults].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Metadata column holding the caption (overrides the config).
    #[arg(long, value_name = "NAME")]
    pub caption_column: Option<String>,
    /// Parquet column holding {bytes, path} audio structs (overrides the config).
    #[arg(long, value_name = "NAME")]
    pub audio_column: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Dataset: an AudioFolder root (audio plus metadata.jsonl or metadata.csv), or a parquet
    /// file or a directory of parquet files.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Metadata column holding the caption.
    #[arg(long, value_name = "NAME", default_value = "caption")]
    pub caption_column: String,
    /// Parquet column holding {bytes, path} audio structs.
    #[arg(long, value_name = "NAME", default_value = "audio")]
    pub audio_column: String,
    /// Number of example captions to show.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub examples: usize,
}

pub fn run(cmd: DataCmd, ui: &Ui) -> anyhow::Result<()> {
    match cmd.action {
        DataAction::Stats(args) => show_stats(args, ui),
        DataAction::Prepare(args) => run_prepare(args, ui),
    }
}

fn run_prepare(args: PrepareArgs, ui: &Ui) -> anyhow::Result<()> {
    let mut cfg = match &args.config {
        Some(path) => {
            let bad = |reason: String| DataError::Invalid {
                name: "config",
                reason: format!("{}: {reason}", path.display()),
            };
            let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
            toml::from_str::<PrepareConfig>(&text).map_err(|e| bad(e.message().to_string()))?
        }
        None => PrepareConfig::default(),
    };
    if let Some(c) = args.caption_column {
        cfg.caption_column = c;
    }
    if let Some(c) = args.audio_column {
        cfg.audio_column = c;
    }
    let device = Device::flex();
    let encoder = TextEncoder::load(&assets::minilm()?, &device)?;
    let bar = ui.bar(0, "preparing");
    let report = prepare::prepare(&args.data, &args.out, &cfg, &encoder, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let m = &report.manifest;
    for line in &report.notes {
        ui.note(line.clone());
    }
    for (what, why) in m.skipped.iter().take(20) {
        ui.note(format!("skipped {what}: {why}"));
    }
    if m.skipped.len() > 20 {
        ui.note(format!(
            "... and {} more skipped (see manifest.json)",
            m.skipped.len() - 20
        ));
    }
    let truncated: usize = m.shards.iter().map(|s| s.truncated_captions).sum();
    if truncated > 0 {
        ui.note(format!(
            "warning: {truncated} captions were longer than MiniLM's 256 tokens and were truncated"
        ));
    }
    println!(
        "{} -> {}: {} windows ({:.2} h) in {} shards ({} written now, {} kept); {} inputs skipped",
        args.data.display(),
        args.out.display(),
        m.windows,
        m.hours,
        m.shards.len(),
        report.shards_written,
        report.shards_kept,
        m.skipped.len()
    );
    Ok(())
}

fn show_stats(args: StatsArgs, ui: &Ui) -> anyhow::Result<()> {
    let sp = ui.spinner(&format!("reading {}", args.path.display()));
    let s = stats::of_dataset(
        &args.path,
        &args.caption_column,
        &args.audio_column,
        args.examples,
    )?;
    sp.finish_and_clear();
    for p in s.skipped.iter().take(20) {
        ui.note(format!("skipped {}: {}", p.location, p.reason));
    }
    if s.skipped.len() > 20 {
        ui.note(format!("... and {} more skipped", s.skipped.len() - 20));
    }
    let splits: Vec<String> = s
        .per_split
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "{}: {} clips ({}), {:.2} h; {} rows skipped",
        args.path.display(),
        s.clips,
        splits.join(", "),
        s.hours,
        s.problems
    );
    if s.unknown_duration > 0 {
        println!(
            "{} clips of unknown duration (not in the hours)",
            s.unknown_duration
        );
    }
    println!(
        "duration: min {:.1} s, median {:.1} s, max {:.1} s",
        s.min_seconds, s.median_seconds, s.max_seconds
    );
    let widest = s
        .histogram
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(1)
        .max(1);
    for (label, n) in &s.histogram {
        println!("  {label:>8} {:<40} {n}", "#".repeat(n * 40 / widest));
    }
    let list = |items: &[(String, usize)]| {
        items
            .iter()
            .map(|(k, v)| format!("{k} ({v})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !s.top_genres.is_empty() {
        println!("top genres: {}", list(&s.top_genres));
    }
    if !s.top_instruments.is_empty() {
        println!("top instruments: {}", list(&s.top_instruments));
    }
    println!("example captions:");
    for c in &s.examples {
        println!("  - {c}");
    }
    Ok(())
}
