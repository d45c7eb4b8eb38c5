//! Sampling with a trained model, shared by training (its preview samples), the CLI and the
//! later server: [`denoise::GuidedDenoiser`] wraps the DiT into the `x0` denoiser the samplers
//! of `musicdiff-diffusion` expect, with classifier-free guidance (Ho & Salimans, "Classifier-
//! Free Diffusion Guidance", 2022) and the in-painting constraint of JEN-1; [`audio`] turns a
//! generated normalised log-mel back into a waveform.

pub mod audio;
pub mod denoise;
