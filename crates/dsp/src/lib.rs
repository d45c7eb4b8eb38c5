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
//! -> [`griffin_lim::mel_to_audio`] -> [`audio::write_wav`].

pub mod atomic;
pub mod audio;
pub mod error;
pub mod features;
pub mod griffin_lim;
pub mod image;
pub mod matrix;
pub mod mel;
pub mod metrics;
pub mod npy;
pub mod stft;

pub use error::{DspError, Result};
pub use matrix::Matrix;
