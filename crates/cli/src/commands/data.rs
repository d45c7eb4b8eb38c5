//! `musicdiff data`: inspect datasets (and, in the next step, prepare them for training).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use musicdiff_data::stats;

use crate::progress::Ui;

/// Inspect and prepare datasets.
#[derive(Debug, Args)]
pub struct DataCmd {
    #[command(subcommand)]
    pub action: DataAction,
}

#[derive(Debug, Subcommand)]
pub enum DataAction {
    /// Summarise an AudioFolder dataset: clips, hours, durations, genres, instruments and
    /// example captions.
    Stats(StatsArgs),
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Dataset root (AudioFolder: audio plus metadata.jsonl or metadata.csv).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Metadata column holding the caption.
    #[arg(long, value_name = "NAME", default_value = "caption")]
    pub caption_column: String,
    /// Number of example captions to show.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub examples: usize,
}

pub fn run(cmd: DataCmd, ui: &Ui) -> anyhow::Result<()> {
    match cmd.action {
        DataAction::Stats(args) => show_stats(args, ui),
    }
}

fn show_stats(args: StatsArgs, ui: &Ui) -> anyhow::Result<()> {
    let sp = ui.spinner(&format!("reading {}", args.path.display()));
    let s = stats::of_audiofolder(&args.path, &args.caption_column, args.examples)?;
    sp.finish_and_clear();
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
