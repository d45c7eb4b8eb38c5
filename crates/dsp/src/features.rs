//! Log-mel spectrogram features, as `librosa.feature.melspectrogram` followed by a natural log
//! with a floor: `logmel = ln(max(mel_filterbank @ |STFT(x)|^power, floor))`.
//!
//! The STFT (in `f32`, as librosa computes for `float32` audio) and the mel projection (in
//! `f64`) run frame by frame in one parallel pass, so the complex spectrogram is never stored;
//! the result matches librosa's float64 reference to better than 1e-4 relative.

use crate::error::{DspError, Result};
use crate::matrix::Matrix;
use crate::mel::{MelConfig, MelFilterbank, MelNorm, MelScale};
use crate::stft::{Stft, StftConfig};

/// Everything that defines a (log-)mel spectrogram. Defaults: 22050 Hz, `n_fft` 1024,
/// hop 256, 80 Slaney mels over 0 Hz..Nyquist, power 2 (mel power), floor 1e-5.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpectrogramConfig {
    pub sample_rate: u32,
    pub n_fft: usize,
    pub hop_length: usize,
    /// Window length; `None` means `n_fft`.
    pub win_length: Option<usize>,
    pub n_mels: usize,
    pub fmin: f64,
    /// `None` means `sample_rate / 2`.
    pub fmax: Option<f64>,
    /// Exponent on the STFT magnitude before the mel projection: 1 (magnitude) or 2 (power).
    pub power: f64,
    pub mel_scale: MelScale,
    pub mel_norm: MelNorm,
    /// Values below this are clamped before the logarithm.
    pub log_floor: f64,
}

impl Default for SpectrogramConfig {
    fn default() -> Self {
        Self {
            sample_rate: 22050,
            n_fft: 1024,
            hop_length: 256,
            win_length: None,
            n_mels: 80,
            fmin: 0.0,
            fmax: None,
            power: 2.0,
            mel_scale: MelScale::Slaney,
            mel_norm: MelNorm::Slaney,
            log_floor: 1e-5,
        }
    }
}

impl SpectrogramConfig {
    /// The log-mel of musicdiff's data and models: these four numbers, the rest at their
    /// defaults (Slaney mels, power 2, ln floored at 1e-5).
    pub fn new(sample_rate: u32, n_fft: usize, hop_length: usize, n_mels: usize) -> Self {
        Self {
            sample_rate,
            n_fft,
            hop_length,
            n_mels,
            ..Default::default()
        }
    }

    /// Highest sample rate accepted (far above any audio format in use).
    pub const MAX_SAMPLE_RATE: u32 = 384_000;

    /// The STFT part.
    pub fn stft(&self) -> StftConfig {
        StftConfig {
            n_fft: self.n_fft,
            hop_length: self.hop_length,
            win_length: self.win_length.unwrap_or(self.n_fft),
            center: true,
        }
    }

    /// The filterbank part.
    pub fn mel(&self) -> MelConfig {
        MelConfig {
            sample_rate: self.sample_rate,
            n_fft: self.n_fft,
            n_mels: self.n_mels,
            fmin: self.fmin,
            fmax: self.fmax,
            scale: self.mel_scale,
            norm: self.mel_norm,
        }
    }

    /// Checks every parameter; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.sample_rate == 0 || self.sample_rate > Self::MAX_SAMPLE_RATE {
            return Err(DspError::invalid(
                "sr",
                format!(
                    "{} Hz is outside 1..={} Hz",
                    self.sample_rate,
                    Self::MAX_SAMPLE_RATE
                ),
            ));
        }
        self.stft().validate()?;
        self.mel().validate()?;
        if !(self.power == 1.0 || self.power == 2.0) {
            return Err(DspError::invalid(
                "power",
                format!("{} must be 1 (magnitude) or 2 (power)", self.power),
            ));
        }
        if !(self.log_floor.is_finite() && self.log_floor > 0.0) {
            return Err(DspError::invalid(
                "log_floor",
                format!("{} must be a positive number", self.log_floor),
            ));
        }
        Ok(())
    }

    /// Duration in seconds of one frame step.
    pub fn frame_seconds(&self) -> f64 {
        self.hop_length as f64 / self.sample_rate as f64
    }
}

/// Computes mel and log-mel spectrograms for one [`SpectrogramConfig`]; plans once.
pub struct LogMelExtractor {
    cfg: SpectrogramConfig,
    stft: Stft<f32>,
    filterbank: MelFilterbank,
}

impl LogMelExtractor {
    pub fn new(cfg: SpectrogramConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            stft: Stft::new(cfg.stft())?,
            filterbank: MelFilterbank::new(cfg.mel())?,
        })
    }

    pub fn config(&self) -> &SpectrogramConfig {
        &self.cfg
    }

    pub fn filterbank(&self) -> &MelFilterbank {
        &self.filterbank
    }

    pub fn stft(&self) -> &Stft<f32> {
        &self.stft
    }

    /// Mel projection of every frame, mapped through `f`, as `[n_mels, frames]`.
    fn project<O, F>(&self, audio: &[f32], f: F) -> Matrix<O>
    where
        O: Copy + Default + Send,
        F: Fn(f64) -> O + Sync,
    {
        let n_mels = self.cfg.n_mels;
        let frames = self.stft.config().n_frames(audio.len());
        let power = self.cfg.power;
        let fb = &self.filterbank;
        let mut out = Matrix::zeros(frames, n_mels);
        self.stft.for_each_frame(
            audio,
            out.as_mut_slice(),
            n_mels,
            || (Vec::new(), vec![0.0; n_mels]),
            |(scratch, mel), bins, o| {
                fb.apply_complex_frame(bins, power, scratch, mel);
                for (v, &m) in o.iter_mut().zip(mel.iter()) {
                    *v = f(m);
                }
            },
        );
        out.transpose()
    }

    /// Mel spectrogram `[n_mels, frames]` (librosa `melspectrogram`).
    pub fn mel(&self, audio: &[f32]) -> Matrix<f64> {
        self.project(audio, |v| v)
    }

    /// Log-mel `[n_mels, frames]`: `ln(max(mel, log_floor))`, as `f32`.
    pub fn log_mel(&self, audio: &[f32]) -> Matrix<f32> {
        let floor = self.cfg.log_floor;
        self.project(audio, |v| v.max(floor).ln() as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_shapes_follow() {
        let ex = LogMelExtractor::new(SpectrogramConfig::default()).unwrap();
        let audio = vec![0.0f32; 22050];
        let lm = ex.log_mel(&audio);
        assert_eq!(lm.shape(), (80, 1 + 22050 / 256));
        // Silence sits at the floor.
        assert!(
            lm.as_slice()
                .iter()
                .all(|&v| (v - 1e-5f32.ln()).abs() < 1e-6)
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        for (cfg, name) in [
            (
                SpectrogramConfig {
                    hop_length: 0,
                    ..Default::default()
                },
                "hop",
            ),
            (
                SpectrogramConfig {
                    n_mels: 600,
                    ..Default::default()
                },
                "n_mels",
            ),
            (
                SpectrogramConfig {
                    power: 3.0,
                    ..Default::default()
                },
                "power",
            ),
            (
                SpectrogramConfig {
                    sample_rate: 0,
                    ..Default::default()
                },
                "sr",
            ),
        ] {
            let err = LogMelExtractor::new(cfg)
                .err()
                .expect("must fail")
                .to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
