//! The per-band normalisation of log-mels: the statistics of the training split (computed by
//! `data prepare`, kept in its manifest and in every model directory) applied by the shard
//! loader to training windows and by generation to input audio, and undone on generated
//! log-mels. One type for both, so training and inference cannot normalise differently.

use crate::matrix::Matrix;

/// Per-mel-band mean and standard deviation of the training log-mels.
#[derive(Debug, Clone, PartialEq)]
pub struct Normaliser {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normaliser {
    /// From statistics stored as f64 (the manifest's and the model directory's).
    pub fn from_f64(mean: &[f64], std: &[f64]) -> Self {
        Self {
            mean: mean.iter().map(|&v| v as f32).collect(),
            std: std.iter().map(|&v| v as f32).collect(),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_and_back_is_the_identity() {
        let n = Normaliser::from_f64(&[-4.0, 1.5], &[2.0, 0.5]);
        let mel = vec![-4.0f32, -2.0, 0.0, 1.5, 2.0, 1.0];
        let mut z = mel.clone();
        n.normalise(&mut z);
        assert_eq!(z, [0.0, 1.0, 2.0, 0.0, 1.0, -1.0]);
        assert_eq!(n.denormalise(&z).as_slice(), mel.as_slice());
    }
}
