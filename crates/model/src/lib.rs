//! The musicdiff network: a diffusion transformer (DiT; Peebles & Xie 2023) over log-mel
//! patches with adaLN-zero noise-level modulation, cross-attention to a conditioning sequence
//! (START, caption tokens, genre, artist, timing; as Jukebox and Stable Audio build theirs),
//! and absolute, rotary or both position encodings ([`config::PositionEncoding`]).
//!
//! The network predicts, for every token, either `v` (Salimans & Ho 2022) or the clean tokens
//! `x0` ([`config::Prediction`]); what these mean and how the noise is scheduled live in
//! `musicdiff-diffusion`'s `Objective`, which [`DitConfig::objective`] builds for the model.
//!
//! ```
//! use burn::prelude::*;
//! use musicdiff_model::*;
//!
//! let device = Device::flex();
//! let cfg = DitConfig {
//!     n_mels: 80, patch_frames: 4, frames: 64, d_model: 32, depth: 2, heads: 2,
//!     mlp_ratio: 2.0, text_dim: 384, max_text_tokens: 32,
//!     position: PositionEncoding::Both, absolute: AbsoluteKind::Sinusoidal,
//!     rope_theta: 10000.0, max_seconds: 60.0, pooled_text: true, head_hidden: Some(64),
//!     prediction: Prediction::X0, schedule_shift: 4.0, controls: false,
//!     freq_stem: None, freq_tail: None,
//! };
//! let model = cfg.init(&device);
//! let (n, pd) = (cfg.tokens(), cfg.patch_dim());
//! let input = DitInput {
//!     noisy: Tensor::zeros([1, n, pd], &device),
//!     known: Tensor::zeros([1, n, pd], &device),
//!     mask: Tensor::zeros([1, n, 1], &device),
//!     t: Tensor::from_floats([0.5], &device),
//! };
//! let cond = Conditioning::from_examples(&[CondExample {
//!     tokens: vec![0.0; 3 * cfg.text_dim], n_tokens: 3, sentence: vec![0.0; cfg.text_dim],
//!     genre: None, artist: None, seconds_start: 0.0, seconds_total: 10.0,
//!     controls: Default::default(), keep: Keep::ALL,
//! }], &cfg, &device).unwrap();
//! assert_eq!(model.forward(input, &cond).dims(), [1, n, pd]);
//! ```

pub mod cond;
pub mod config;
pub mod dit;
pub mod error;
pub mod freq;
pub mod io;
pub mod patch;
pub mod position;

pub use cond::{CondExample, Conditioning, Keep};
pub use config::{AbsoluteKind, DitConfig, PositionEncoding, Prediction};
pub use dit::{Dit, DitInput};
pub use error::{ModelError, Result};
