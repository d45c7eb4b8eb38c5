//! `musicdiff corpus build`: renders the captioned training corpus (MMA grooves over random
//! keys, tempos and progressions, and folk tunes from the music21 corpus, with several
//! SoundFonts) into a Hugging Face AudioFolder.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use musicdiff_common::assets;
use musicdiff_corpus::corpus;

use crate::progress::Ui;

/// Build the captioned music corpus.
#[derive(Debug, Args)]
pub struct CorpusCmd {
    #[command(subcommand)]
    pub action: CorpusAction,
}

#[derive(Debug, Subcommand)]
pub enum CorpusAction {
    /// Render captioned clips into DIR/{train,test}/*.wav with metadata.jsonl (resumable:
    /// finished clips are kept when the same command runs again).
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Output directory (created if needed).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Hours of audio to produce.
    #[arg(long, value_name = "H", default_value_t = 20.0)]
    pub hours: f64,
    /// Length of one clip in seconds (whole bars, so clips vary a little around it).
    #[arg(long, value_name = "S", default_value_t = 12.0)]
    pub clip_seconds: f64,
    /// SoundFont to render with, by file name in the assets directory or by path; repeat for
    /// variety [default: FluidR3_GM.sf2 and TimGM6mb.sf2, whichever are installed].
    #[arg(long = "soundfont", value_name = "F")]
    pub soundfonts: Vec<String>,
    /// Seed: the same seed and options give the same corpus.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Sample rate of the audio in Hz.
    #[arg(long, value_name = "HZ", default_value_t = 22050)]
    pub sr: u32,
    /// Share of styles held out, whole, for the test split.
    #[arg(long, value_name = "X", default_value_t = 0.05)]
    pub test_fraction: f64,
    /// Chance that an instrument is swapped for another of its General MIDI family.
    #[arg(long, value_name = "P", default_value_t = 0.3)]
    pub remap: f64,
    /// Use only MMA grooves (no folk tunes from the music21 corpus).
    #[arg(long)]
    pub no_folk: bool,
    /// Render only this split (train or test) and write only its metadata: for instance the
    /// held-out test clips of the corpus a model was trained on, to evaluate it, without
    /// rendering the training clips (the same options give the same clips).
    #[arg(long, value_name = "SPLIT")]
    pub only_split: Option<String>,
}

pub fn run(cmd: CorpusCmd, ui: &Ui) -> anyhow::Result<()> {
    match cmd.action {
        CorpusAction::Build(args) => build(args, ui),
    }
}

fn build(args: BuildArgs, ui: &Ui) -> anyhow::Result<()> {
    let soundfonts = if args.soundfonts.is_empty() {
        let found: Vec<PathBuf> = ["FluidR3_GM.sf2", "TimGM6mb.sf2"]
            .iter()
            .filter_map(|n| assets::soundfont(n).ok())
            .collect();
        if found.is_empty() {
            // Report the main one as missing, with the install hint.
            assets::soundfont("FluidR3_GM.sf2")?;
        }
        found
    } else {
        args.soundfonts
            .iter()
            .map(|s| assets::soundfont(s))
            .collect::<Result<_, _>>()?
    };
    let cfg = corpus::CorpusConfig {
        out: args.out,
        hours: args.hours,
        clip_seconds: args.clip_seconds,
        soundfonts,
        seed: args.seed,
        sample_rate: args.sr,
        test_fraction: args.test_fraction,
        remap_probability: args.remap,
        only_split: args.only_split,
    };
    let sources = corpus::Sources {
        mma_home: assets::mma_home()?,
        music21: if args.no_folk {
            None
        } else {
            Some((assets::music21_corpus()?, assets::abc2midi()?))
        },
    };
    let bar = ui.bar(cfg.n_clips() as u64, "rendering");
    let report = corpus::build(&cfg, &sources, &|done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    // Each reason names its clip already.
    for (_, why) in report.failed.iter().take(10) {
        ui.note(format!("skipped: {why}"));
    }
    if report.failed.len() > 10 {
        ui.note(format!("... and {} more skipped", report.failed.len() - 10));
    }
    println!(
        "corpus {}: {} train + {} test clips, {:.2} h of audio ({} rendered now, {} kept from an earlier run, {} failed)",
        cfg.out.display(),
        report.train_clips,
        report.test_clips,
        report.hours,
        report.rendered,
        report.resumed,
        report.failed.len()
    );
    println!(
        "sources: {} clips from {} MMA grooves, {} clips from {} folk tunes (music21 ABC); not used: {} MusicXML and {} kern scores (no converter here)",
        report.mma_clips,
        report.grooves,
        report.tune_clips,
        report.tunes,
        report.skipped_scores.musicxml,
        report.skipped_scores.kern
    );
    println!(
        "test split: whole tunes and the styles {}",
        report.test_styles.join(", ")
    );
    println!(
        "time: {:.1} s ({:.0}x real time)",
        report.seconds_elapsed,
        report.hours * 3600.0 / report.seconds_elapsed.max(1e-9)
    );
    Ok(())
}
