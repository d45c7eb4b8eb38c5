//! `musicdiff spec`: audio file -> log-mel spectrogram picture (PNG) and matrix (.npy).

use std::path::PathBuf;

use clap::Args;
use musicdiff_common::atomic::OutputSet;
use musicdiff_dsp::features::LogMelExtractor;
use musicdiff_dsp::image::{self, ImageOptions};
use musicdiff_dsp::npy;

use crate::args::{ColorMapArg, LOG_MEL_DEFINITION, SpectrogramArgs};
use crate::progress::Ui;

/// Compute a log-mel spectrogram: a PNG picture and, with --npy, the matrix itself.
#[derive(Debug, Args)]
#[command(after_long_help = LOG_MEL_DEFINITION)]
pub struct SpecCmd {
    /// Input audio: WAV, FLAC, MP3 or Ogg Vorbis, any sample rate and channel count.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Output picture (PNG): time runs right, frequency up; 80 dB of range below the peak.
    #[arg(short, long, value_name = "OUT.png")]
    pub output: PathBuf,
    /// Also write the log-mel matrix as float32 [n_mels, frames] in NumPy .npy format.
    #[arg(long, value_name = "OUT.npy")]
    pub npy: Option<PathBuf>,
    /// Colour map of the picture.
    #[arg(long, value_enum, default_value_t)]
    pub colormap: ColorMapArg,
    #[command(flatten)]
    pub spec: SpectrogramArgs,
}

pub fn run(cmd: SpecCmd, ui: &Ui) -> anyhow::Result<()> {
    // Parameters first: a bad flag should not wait for a long decode.
    let extractor = LogMelExtractor::new(cmd.spec.config())?;
    super::warn_empty_filters(&extractor, ui);
    let loaded = super::load(&cmd.input, extractor.config().sample_rate, ui)?;
    let log_mel = extractor.log_mel(&loaded.mono);
    let opts = ImageOptions {
        colormap: cmd.colormap.into(),
        ..Default::default()
    };
    // Picture and matrix appear together or not at all.
    let mut set = OutputSet::new();
    image::stage_png(&mut set, &cmd.output, &log_mel, &opts)?;
    if let Some(npy_path) = &cmd.npy {
        npy::stage_f32_matrix(&mut set, npy_path, &log_mel)?;
    }
    set.commit()?;
    ui.note(format!(
        "{}: {:.2} s -> log-mel {} x {} -> {}{}",
        cmd.input.display(),
        loaded.original.seconds(),
        log_mel.rows(),
        log_mel.cols(),
        cmd.output.display(),
        cmd.npy
            .as_ref()
            .map(|p| format!(", {}", p.display()))
            .unwrap_or_default()
    ));
    Ok(())
}
