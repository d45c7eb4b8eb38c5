//! Error type of the experiment runner: every variant names the file or directory at fault and
//! says through `is_bad_input()` whether the user can fix it (exit code 2) or the machine or
//! program failed (exit code 1), as every library error of the workspace does. Errors of the
//! trainer and the evaluation suite pass through unchanged, prefixed by the arm they hit.

use std::path::PathBuf;

use musicdiff_common::{PathError, WriteError};

/// Result alias for this crate.
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;

/// What can go wrong in an experiment.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The experiment config cannot be read or used.
    #[error("{path}: {detail}")]
    Config { path: PathBuf, detail: String },
    /// The output directory holds another experiment's arms.
    #[error("{path}: {detail}")]
    Output { path: PathBuf, detail: String },
    /// A stored result that is not what this runner wrote.
    #[error("{path}: {detail}")]
    Json { path: PathBuf, detail: String },
    /// Stopped on request (Ctrl-C); the arm resumes from its last checkpoint.
    #[error("stopped during arm `{arm}`; run the same command again to resume")]
    Interrupted { arm: String },
    #[error("arm `{arm}`: {source}")]
    Train {
        arm: String,
        #[source]
        source: Box<musicdiff_train::TrainError>,
    },
    #[error("arm `{arm}`, evaluation `{set}`: {source}")]
    Eval {
        arm: String,
        set: String,
        #[source]
        source: Box<musicdiff_eval::EvalError>,
    },
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl ExperimentError {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self::Path(PathError::new(path, cause))
    }

    /// True when the user can fix the cause (the config, the data, an output directory).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Config { .. } | Self::Output { .. } => true,
            Self::Json { .. } | Self::Interrupted { .. } => false,
            Self::Train { source, .. } => source.is_bad_input(),
            Self::Eval { source, .. } => source.is_bad_input(),
            Self::Path(e) => e.is_bad_input(),
            Self::Write(e) => e.is_bad_input(),
        }
    }
}
