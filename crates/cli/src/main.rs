//! `musicdiff`: the command-line front end. A thin layer over the library crates: it parses
//! arguments, shows progress and prints errors; the work happens in `musicdiff-dsp` (and, as
//! they arrive, the model and pipeline crates).
//!
//! Exit codes: 0 success, 2 bad input or usage (unreadable or damaged audio, invalid
//! parameters, unknown flags), 1 any other failure (for example an output directory that
//! cannot be written).

mod args;
mod commands;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use musicdiff_data::DataError;
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

/// 2 for bad input (the user can fix the command or the file), 1 otherwise.
fn exit_code(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<DspError>() {
        Some(
            DspError::EmptyFile { .. }
            | DspError::UnrecognisedFormat { .. }
            | DspError::UnsupportedCodec { .. }
            | DspError::CorruptStream { .. }
            | DspError::NoSamples { .. }
            | DspError::InvalidParameter { .. },
        ) => 2,
        Some(DspError::Io { cause, .. })
            if matches!(
                cause.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            2
        }
        Some(_) => 1,
        None if err.is::<musicdiff_text::TextError>() => 2,
        None if err.is::<musicdiff_pipeline::PipelineError>() => {
            match err.downcast_ref::<musicdiff_pipeline::PipelineError>() {
                Some(e) if e.is_bad_input() => 2,
                _ => 1,
            }
        }
        None if err.is::<musicdiff_train::TrainError>() => match err.downcast_ref() {
            Some(
                musicdiff_train::TrainError::Config { .. }
                | musicdiff_train::TrainError::Checkpoint { .. }
                | musicdiff_train::TrainError::Data { .. }
                | musicdiff_train::TrainError::RunInUse { .. }
                | musicdiff_train::TrainError::Exists { .. }
                | musicdiff_train::TrainError::Model(_)
                | musicdiff_train::TrainError::Dataset(_)
                | musicdiff_train::TrainError::Text(_),
            ) => 2,
            Some(musicdiff_train::TrainError::Pipeline(e)) if e.is_bad_input() => 2,
            Some(musicdiff_train::TrainError::Io { cause, .. })
                if cause.kind() == std::io::ErrorKind::NotFound =>
            {
                2
            }
            _ => 1,
        },
        None => match err.downcast_ref::<DataError>() {
            Some(
                DataError::MissingAsset { .. }
                | DataError::Invalid { .. }
                | DataError::Json { .. }
                | DataError::Io { .. },
            ) => 2,
            _ => 1,
        },
    }
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
