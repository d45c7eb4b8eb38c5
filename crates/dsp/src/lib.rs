//! Digital signal processing for musicdiff: audio in and out, short-time Fourier transforms,
//! librosa-compatible mel filterbanks and log-mel features, mel inversion with fast Griffin-Lim,
//! spectrogram images and the NumPy `.npy` format.
//!
//! This crate holds no tensors and knows nothing of models; everything above it (data
//! preparation, training, generation) turns audio into spectrograms and back through here.
//! Numerical definitions follow librosa 0.11 (McFee et al., "librosa: Audio and Music Signal
//! Analysis in Python", SciPy 2015) and are checked against golden values it produced
//! (`tests/fixtures/make_golden.py`).
//!
//! Data flow: [`audio::load_mono`] -> [`features::LogMelExtractor`] -> log-mel [`Matrix`]
//! -> [`griffin_lim::log_mel_to_audio`] -> [`audio::write_wav`].
//!
//! ```
//! use musicdiff_dsp::features::{LogMelExtractor, SpectrogramConfig};
//! use musicdiff_dsp::griffin_lim::{GriffinLimConfig, log_mel_to_audio};
//!
//! // One second of A440 at 22.05 kHz -> log-mel [80 mels, 1 + 22050/256 frames].
//! let cfg = SpectrogramConfig::default();
//! let extractor = LogMelExtractor::new(cfg)?;
//! let tone: Vec<f32> = (0..22050)
//!     .map(|i| (std::f32::consts::TAU * 440.0 * i as f32 / 22050.0).sin() * 0.5)
//!     .collect();
//! let log_mel = extractor.log_mel(&tone);
//! assert_eq!(log_mel.shape(), (80, 87));
//!
//! // And back to a waveform of the same length.
//! let audio = log_mel_to_audio(
//!     &cfg,
//!     extractor.filterbank(),
//!     &log_mel,
//!     Some(tone.len()),
//!     &GriffinLimConfig::default(),
//!     &mut |_| {},
//! )?;
//! assert_eq!(audio.len(), tone.len());
//! # Ok::<(), musicdiff_dsp::DspError>(())
//! ```

pub mod audio;
pub mod controls;
pub mod error;
pub mod features;
pub mod griffin_lim;
pub mod image;
pub mod key;
pub mod matrix;
pub mod mel;
pub mod metrics;
pub mod normalise;
pub mod npy;
pub mod pghi;
pub mod stft;
pub mod tempo;

pub use error::{DspError, Result};
pub use matrix::Matrix;
