//! Training for musicdiff: one diffusion transformer trained for generation, filling and
//! continuation at once with JEN-1's mixed masks (Li et al. 2023), v-prediction on the cosine
//! schedule with min-SNR weighting, AdamW with warmup and cosine decay, gradient clipping, EMA
//! weights, and checkpoints that resume exactly (same loss curve as an uninterrupted run).
//!
//! [`trainer::train`] runs it; the CLI's `musicdiff train` draws the progress bar and handles
//! Ctrl-C through the `stop` flag.

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod export;
pub mod lock;
pub mod optim;
pub mod plot;
pub mod samples;
pub mod trainer;

pub use config::TrainConfig;
pub use error::{Result, TrainError};
pub use trainer::{EvalLosses, Event, Options, Outcome, StopReason, train};
