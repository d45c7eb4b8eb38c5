//! Text conditioning for musicdiff: the all-MiniLM-L6-v2 sentence encoder (Wang et al.,
//! "MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of Pre-Trained
//! Transformers", 2020; trained for sentence embeddings by the sentence-transformers project)
//! as a 6-layer BERT (Devlin et al. 2019) in burn, with its WordPiece tokenizer.
//!
//! [`TextEncoder::load`] reads the model directory that `scripts/fetch-assets.sh` installs
//! (`config.json`, `model.safetensors`, `tokenizer.json`); [`TextEncoder::encode`] turns
//! captions into token states `[B, L, 384]` with their attention mask (the cross-attention
//! memory of the diffusion model) and mean-pooled, L2-normalised sentence vectors `[B, 384]`.
//!
//! ```no_run
//! use burn::prelude::*;
//! use musicdiff_text::TextEncoder;
//!
//! let device = Device::flex();
//! let encoder = TextEncoder::load("assets/minilm".as_ref(), &device)?;
//! let out = encoder.encode(&["slow bossa nova on nylon guitar", ""])?;
//! assert_eq!(out.sentence.dims(), [2, 384]);
//! # Ok::<(), musicdiff_text::TextError>(())
//! ```

pub mod bert;
pub mod encoder;
pub mod error;
pub mod tokenize;

pub use encoder::{Encoded, TextEncoder};
pub use error::{Result, TextError};
