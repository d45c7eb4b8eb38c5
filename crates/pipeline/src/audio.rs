//! A generated log-mel back to audio: undo the per-band normalisation that training applied
//! (the statistics of `data prepare`'s manifest), then mel -> linear magnitude by NNLS and fast
//! Griffin-Lim (Perraudin, Balazs & Sondergaard 2013) from `musicdiff-dsp`.

use musicdiff_dsp::features::{LogMelExtractor, SpectrogramConfig};
use musicdiff_dsp::griffin_lim::{self, GriffinLimConfig, PhaseInit};
use musicdiff_dsp::matrix::Matrix;

/// Per-mel-band mean and standard deviation of the training log-mels.
#[derive(Debug, Clone, PartialEq)]
pub struct Normaliser {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normaliser {
    /// `[n_mels, frames]` normalised -> log-mel.
    pub fn denormalise(&self, mel: &[f32]) -> Matrix<f32> {
        let n_mels = self.mean.len();
        let frames = mel.len() / n_mels;
        let mut out = mel.to_vec();
        for (b, row) in out.chunks_mut(frames).enumerate() {
            row.iter_mut()
                .for_each(|x| *x = *x * self.std[b] + self.mean[b]);
        }
        Matrix::from_vec(n_mels, frames, out)
    }

    /// `[n_mels, frames]` log-mel -> normalised, in place.
    pub fn normalise(&self, mel: &mut [f32]) {
        let frames = mel.len() / self.mean.len();
        for (b, row) in mel.chunks_mut(frames).enumerate() {
            row.iter_mut()
                .for_each(|x| *x = (*x - self.mean[b]) / self.std[b]);
        }
    }
}

/// Log-mel `[n_mels, frames]` -> waveform of `hop * (frames - 1)` samples.
pub fn log_mel_to_audio(
    spec: &SpectrogramConfig,
    log_mel: &Matrix<f32>,
    gl_iters: usize,
    seed: u64,
) -> musicdiff_dsp::Result<Vec<f32>> {
    let extractor = LogMelExtractor::new(*spec)?;
    let gl = GriffinLimConfig {
        n_iter: gl_iters,
        momentum: 0.99,
        init: PhaseInit::Random { seed },
    };
    griffin_lim::log_mel_to_audio(
        spec,
        extractor.filterbank(),
        log_mel,
        None,
        &gl,
        &mut |_| {},
    )
}
