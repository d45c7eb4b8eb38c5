//! Error type of the training crate.

use std::path::PathBuf;

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
    Dataset(#[from] musicdiff_data::DataError),
    #[error(transparent)]
    Text(#[from] musicdiff_text::TextError),
    #[error(transparent)]
    Dsp(#[from] musicdiff_dsp::DspError),
    #[error(transparent)]
    Pipeline(#[from] musicdiff_pipeline::PipelineError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl TrainError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
