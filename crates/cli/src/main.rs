//! `musicdiff`: the command-line front end. A thin layer over the library crates: it parses
//! arguments, shows progress and prints errors; the work happens in the library crates
//! (`musicdiff-dsp`, `-corpus`, `-dataset`, `-train`, `-pipeline`, `-eval`, `-experiment`; see docs/architecture.md).
//!
//! Exit codes, one rule for every subcommand: 0 success; 2 bad input or usage, anything the
//! user can fix in the command or its files (unreadable or damaged audio, invalid parameters,
//! unknown flags, a missing input or output directory, a damaged model directory); 1 any other
//! failure (a full disk, a diverged training run, an internal error). Each library error says
//! which through `is_bad_input()`.

mod args;
mod commands;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use musicdiff_dsp::DspError;

/// Text-to-music generation with a diffusion transformer over mel-spectrograms, built to train
/// and run on an ordinary CPU.
#[derive(Debug, Parser)]
#[command(name = "musicdiff", version, propagate_version = true)]
struct Cli {
    /// Hide progress bars and informational messages (results and errors are still printed).
    #[arg(long, short, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compute a log-mel spectrogram: a PNG picture and, with --npy, the matrix itself.
    Spec(commands::spec::SpecCmd),
    /// Audio -> log-mel -> audio (Griffin-Lim), reporting how close the result is.
    Roundtrip(commands::roundtrip::RoundtripCmd),
    /// Build the captioned music corpus from MMA grooves, folk tunes and SoundFonts.
    Corpus(commands::corpus::CorpusCmd),
    /// Inspect datasets and prepare them for training.
    Data(commands::data::DataCmd),
    /// Generate music from a text prompt (WAV + spectrogram PNG + JSON sidecar).
    Generate(commands::generate::GenerateCmd),
    /// Regenerate a span of an audio file so that it joins both sides.
    Fill(commands::generate::FillCmd),
    /// Extend an audio file with new music that follows from its end.
    Continue(commands::generate::ContinueCmd),
    /// Train the diffusion transformer on prepared shards (checkpoints, metrics, samples).
    Train(commands::train::TrainCmd),
    /// Turn a training checkpoint into a model directory for generate, fill and continue.
    Export(commands::export::ExportCmd),
    /// Measure a model against held-out clips beside baselines (FAD, KL, tag adherence, ...).
    Eval(commands::eval::EvalCmd),
    /// Run an experiment: arms of a base config trained, evaluated and reported side by side.
    Experiment(commands::experiment::ExperimentCmd),
    /// Train and export the neural vocoder (log-mel -> waveform).
    Vocoder(commands::vocoder::VocoderCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = progress::Ui::new(cli.quiet);
    let result = match cli.command {
        Command::Spec(cmd) => commands::spec::run(cmd, &ui),
        Command::Roundtrip(cmd) => commands::roundtrip::run(cmd, &ui),
        Command::Corpus(cmd) => commands::corpus::run(cmd, &ui),
        Command::Data(cmd) => commands::data::run(cmd, &ui),
        Command::Generate(cmd) => commands::generate::run_generate(cmd, &ui),
        Command::Fill(cmd) => commands::generate::run_fill(cmd, &ui),
        Command::Continue(cmd) => commands::generate::run_continue(cmd, &ui),
        Command::Train(cmd) => commands::train::run(cmd, &ui),
        Command::Export(cmd) => commands::export::run(cmd, &ui),
        Command::Eval(cmd) => commands::eval::run(cmd, &ui),
        Command::Experiment(cmd) => commands::experiment::run(cmd, &ui),
        Command::Vocoder(cmd) => commands::vocoder::run(cmd, &ui),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            ExitCode::from(exit_code(&err))
        }
    }
}

/// One line: the error and its causes, parameters spelled as the command-line flags.
fn describe(err: &anyhow::Error) -> String {
    match err.downcast_ref::<DspError>() {
        Some(DspError::InvalidParameter { name, reason }) => {
            format!("invalid --{}: {reason}", name.replace('_', "-"))
        }
        _ => format!("{err:#}"),
    }
}

/// 2 for bad input (the user can fix the command or a file), 1 otherwise: the outermost error
/// of ours in the chain decides, through its `is_bad_input()`; a bare I/O error by its kind.
fn exit_code(err: &anyhow::Error) -> u8 {
    let bad = err.chain().find_map(|e| {
        macro_rules! classify {
            ($($t:ty),*) => {$(
                if let Some(e) = e.downcast_ref::<$t>() {
                    return Some(e.is_bad_input());
                }
            )*};
        }
        classify!(
            musicdiff_experiment::ExperimentError,
            musicdiff_eval::EvalError,
            musicdiff_train::TrainError,
            musicdiff_pipeline::PipelineError,
            musicdiff_vocoder::VocoderError,
            musicdiff_dataset::DataError,
            musicdiff_corpus::CorpusError,
            musicdiff_model::ModelError,
            musicdiff_text::TextError,
            DspError,
            musicdiff_common::NotFound,
            musicdiff_common::WriteError,
            musicdiff_common::PathError
        );
        e.downcast_ref::<std::io::Error>()
            .map(|e| musicdiff_common::io_is_bad_input(e.kind()))
    });
    if bad.unwrap_or(false) { 2 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
