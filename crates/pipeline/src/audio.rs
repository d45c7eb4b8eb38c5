//! The per-band normalisation training applied to log-mels (the statistics of `data
//! prepare`'s manifest), undone on generated log-mels and applied to input audio. The way back
//! to a waveform (NNLS and anchored fast Griffin-Lim) is in [`crate::generator`].

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
