//! Diffusion maths for musicdiff, independent of audio, text and tensors: the cosine noise
//! schedule (Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021)
//! in continuous and discrete time, the v-prediction parameterisation (Salimans & Ho,
//! "Progressive Distillation for Fast Sampling of Diffusion Models", ICLR 2022) with min-SNR
//! loss weighting (Hang et al., "Efficient Diffusion Training via Min-SNR Weighting Strategy",
//! ICCV 2023), and the masks that let one model generate, fill and continue (JEN-1; Li et al.,
//! "JEN-1: Text-Guided Universal Music Generation with Omnidirectional Diffusion Models", 2023).
//!
//! Training and sampling both go through [`schedule::CosineSchedule`] and [`vpred`], so the
//! two cannot drift apart. [`sampler`] holds the samplers, free functions over a denoiser.

pub mod masks;
pub mod sampler;
pub mod schedule;
pub mod vpred;
