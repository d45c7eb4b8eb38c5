//! Diffusion maths for musicdiff, independent of audio, text and tensors: the cosine noise
//! schedule (Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021)
//! in continuous and discrete time (with Hoogeboom et al.'s SNR shift), the training
//! objective ([`objective::Objective`]: v or x0 prediction after Salimans & Ho, "Progressive
//! Distillation for Fast Sampling of Diffusion Models", ICLR 2022, with min-SNR loss weights
//! after Hang et al., "Efficient Diffusion Training via Min-SNR Weighting Strategy", ICCV
//! 2023), and the masks that let one model generate, fill and continue (JEN-1; Li et al.,
//! "JEN-1: Text-Guided Universal Music Generation with Omnidirectional Diffusion Models", 2023).
//!
//! Training and sampling both go through one [`objective::Objective`], so the two cannot
//! drift apart. [`sampler`] holds the samplers, free functions over a denoiser.

pub mod masks;
pub mod objective;
pub mod sampler;
pub mod schedule;

pub use objective::{Objective, Prediction, Weighting};
pub use schedule::CosineSchedule;
