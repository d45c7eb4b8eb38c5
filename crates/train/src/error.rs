//! Error type of the training crate.

use std::path::PathBuf;

use musicdiff_common::io_is_bad_input;

/// Result alias for this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// What can go wrong configuring, running or resuming training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration file or value that cannot be used.
    #[error("{path}: {detail}")]
    Config { path: PathBuf, detail: String },
    /// A checkpoint that is missing, damaged or does not belong to this run.
    #[error("checkpoint {path}: {detail}")]
    Checkpoint { path: PathBuf, detail: String },
    /// The prepared data cannot feed this model.
    #[error("data {path}: {detail}")]
    Data { path: PathBuf, detail: String },
    #[error(transparent)]
    Model(#[from] musicdiff_model::ModelError),
    #[error(transparent)]
    Dataset(#[from] musicdiff_dataset::DataError),
    #[error(transparent)]
    Text(#[from] musicdiff_text::TextError),
    #[error(transparent)]
    Dsp(#[from] musicdiff_dsp::DspError),
    #[error(transparent)]
    Pipeline(#[from] musicdiff_pipeline::PipelineError),
    /// The loss stopped being a finite number: the run diverged (a failure of training, not
    /// of the user's input).
    #[error(
        "training diverged: the loss became {loss} at step {step}; lower optim.lr or clip gradients harder (optim.grad_clip)"
    )]
    Diverged { step: u64, loss: f64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl TrainError {
    /// True when the user can fix the cause (a config, a checkpoint, the data, a model or an
    /// input file); false for a diverged run and for failures of the machine.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Config { .. } | Self::Checkpoint { .. } | Self::Data { .. } => true,
            Self::Diverged { .. } => false,
            Self::Model(e) => e.is_bad_input(),
            Self::Dataset(e) => e.is_bad_input(),
            Self::Text(e) => e.is_bad_input(),
            Self::Dsp(e) => e.is_bad_input(),
            Self::Pipeline(e) => e.is_bad_input(),
            Self::Io { source, .. } => io_is_bad_input(source.kind()),
        }
    }

    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
