//! Experiments for musicdiff: the design's comparisons (masking strategies as JEN-1, Li et al.
//! 2023; absolute against relative positions as Music Transformer, Huang et al. 2018; hop
//! lengths as Jukebox, Dhariwal et al. 2020) run the same way every time. A config names a base
//! training config and arms that override parts of it ([`config`]); the runner trains every arm
//! under one budget on the same data and seed, exports it and scores it with the evaluation
//! suite on the same held-out clips, resuming arm by arm ([`runner`]); the report puts the
//! arms side by side with their intervals and overlaid loss curves ([`report`]).
//!
//! The CLI's `musicdiff experiment` draws the progress and handles Ctrl-C.

pub mod config;
pub mod error;
pub mod report;
pub mod runner;

pub use config::{ExperimentConfig, ResolvedArm};
pub use error::{ExperimentError, Result};
pub use runner::{ArmResult, Event, Options, Stage, run};
