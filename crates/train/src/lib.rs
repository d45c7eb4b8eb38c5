//! Training for musicdiff: one diffusion transformer trained for generation, filling and
//! continuation at once with JEN-1's mixed masks (Li et al. 2023), under the run's
//! `musicdiff_diffusion::Objective` (x0 or v prediction on the shifted cosine schedule with
//! min-SNR or min-SNR-plus-one weighting; `TrainConfig::objective`), AdamW with warmup and cosine decay, gradient clipping, EMA
//! weights, and checkpoints that resume exactly (same loss curve as an uninterrupted run).
//!
//! [`trainer::train`] runs it; the CLI's `musicdiff train` draws the progress bar and handles
//! Ctrl-C through the `stop` flag.

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod conversion;
pub mod error;
pub mod export;
pub mod lock;
pub mod optim;
pub mod plot;
pub mod predicted;
pub mod samples;
pub mod trainer;
pub mod vocoder;

pub use config::TrainConfig;
pub use error::{Result, TrainError};
pub use trainer::{Curves, EvalLosses, Event, Options, Outcome, StopReason, read_curves, train};
