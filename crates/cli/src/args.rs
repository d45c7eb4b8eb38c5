//! Command-line arguments shared by several subcommands.

use clap::{Args, ValueEnum};
use musicdiff_dsp::features::SpectrogramConfig;
use musicdiff_dsp::image::ColorMap;
use musicdiff_dsp::mel::{MelNorm, MelScale};

/// The exact definition of the log-mel matrix, shown in `--help` of every command that
/// computes one.
pub const LOG_MEL_DEFINITION: &str = "\
The log-mel matrix has shape [n_mels, frames] and is defined, as in librosa 0.11, by
    log_mel[m, t] = ln( max( sum_k W[m, k] * |X[k, t]|^power , log_floor ) )
where X is the STFT of the mono audio resampled to --sr: a periodic Hann window of
--win-length samples (zero-padded to --n-fft), hop --hop, the signal padded with n_fft/2
zeros at both ends so that frame t is centred on sample t*hop (frames = 1 + samples/hop,
rounded down); k runs over the n_fft/2+1 frequency bins; and W is the mel filterbank of
librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk, norm). Stereo and multichannel
input is mixed to mono by averaging channels before resampling.";

/// Parameters of the (log-)mel spectrogram.
#[derive(Debug, Clone, Args)]
pub struct SpectrogramArgs {
    /// Sample rate in Hz the audio is resampled to before analysis.
    #[arg(long, value_name = "HZ", default_value_t = 22050)]
    pub sr: u32,
    /// FFT size in samples; frames have n_fft/2+1 frequency bins.
    #[arg(long = "n-fft", value_name = "N", default_value_t = 1024)]
    pub n_fft: usize,
    /// Hop between successive frames, in samples.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub hop: usize,
    /// Hann window length in samples (at most n_fft) [default: n_fft].
    #[arg(long = "win-length", value_name = "N")]
    pub win_length: Option<usize>,
    /// Number of mel bands (at most n_fft/2+1).
    #[arg(long = "n-mels", value_name = "N", default_value_t = 80)]
    pub n_mels: usize,
    /// Lowest mel filter edge in Hz.
    #[arg(long, value_name = "HZ", default_value_t = 0.0)]
    pub fmin: f64,
    /// Highest mel filter edge in Hz [default: sr/2].
    #[arg(long, value_name = "HZ")]
    pub fmax: Option<f64>,
    /// Exponent of the STFT magnitude before the mel projection: 2 = power, 1 = magnitude.
    #[arg(long, value_name = "P", default_value_t = 2.0)]
    pub power: f64,
    /// Mel scale: slaney (librosa's default) or htk.
    #[arg(long = "mel-scale", value_enum, default_value_t = MelScaleArg::Slaney)]
    pub mel_scale: MelScaleArg,
    /// Filter normalisation: slaney (constant area, librosa's default) or none (peak 1).
    #[arg(long = "mel-norm", value_enum, default_value_t = MelNormArg::Slaney)]
    pub mel_norm: MelNormArg,
    /// Mel values below this are clamped before the natural logarithm.
    #[arg(long = "log-floor", value_name = "X", default_value_t = 1e-5)]
    pub log_floor: f64,
}

impl SpectrogramArgs {
    /// The library configuration these flags describe (validated by the library).
    pub fn config(&self) -> SpectrogramConfig {
        SpectrogramConfig {
            sample_rate: self.sr,
            n_fft: self.n_fft,
            hop_length: self.hop,
            win_length: self.win_length,
            n_mels: self.n_mels,
            fmin: self.fmin,
            fmax: self.fmax,
            power: self.power,
            mel_scale: match self.mel_scale {
                MelScaleArg::Slaney => MelScale::Slaney,
                MelScaleArg::Htk => MelScale::Htk,
            },
            mel_norm: match self.mel_norm {
                MelNormArg::Slaney => MelNorm::Slaney,
                MelNormArg::None => MelNorm::None,
            },
            log_floor: self.log_floor,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MelScaleArg {
    Slaney,
    Htk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MelNormArg {
    Slaney,
    None,
}

/// Colour map of spectrogram pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ColorMapArg {
    #[default]
    Magma,
    Viridis,
}

impl From<ColorMapArg> for ColorMap {
    fn from(c: ColorMapArg) -> Self {
        match c {
            ColorMapArg::Magma => ColorMap::Magma,
            ColorMapArg::Viridis => ColorMap::Viridis,
        }
    }
}
