//! Generation with a trained model, shared by training (its preview samples), the CLI and the
//! later server: [`model_dir`] reads and writes model directories (config, f16/f32 weights with
//! their hash, model card); [`generator::Generator`] serves generate / fill / continue requests
//! by windowed sampling ([`denoise::GuidedDenoiser`] wraps the DiT into the `x0` denoiser the
//! samplers of `musicdiff-diffusion` expect, with classifier-free guidance (Ho & Salimans,
//! "Classifier-Free Diffusion Guidance", 2022) and the in-painting constraint of JEN-1). The
//! log-mel normalisation of training is `musicdiff_dsp::normalise::Normaliser`, shared with the
//! shard loader.

pub mod denoise;
pub mod error;
pub mod generator;
pub mod model_dir;

pub use denoise::Guidance;
pub use error::{PipelineError, Result};
pub use generator::{Generator, Output, Progress, Request, Task, Timings};
pub use model_dir::{DataInfo, ModelMeta};
