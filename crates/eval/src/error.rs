//! Error type of the evaluation crate: every variant names the file, directory or setting at
//! fault, and says through `is_bad_input()` whether the user can fix it (exit code 2) or the
//! machine or program failed (exit code 1), as every library error of the workspace does.

use std::path::PathBuf;

use musicdiff_common::{PathError, WriteError};
use musicdiff_dataset::DataError;
use musicdiff_dsp::DspError;
use musicdiff_judge::JudgeError;
use musicdiff_pipeline::PipelineError;

/// Result alias for this crate.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;

/// What can go wrong in an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A setting that cannot be used (`--n 0`, an unknown task, clips too short, ...).
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The reference set cannot serve as one (no clips, no captions).
    #[error("{path}: {detail}")]
    Reference { path: PathBuf, detail: String },
    /// The report directory holds an evaluation made with other settings.
    #[error("{path}: {detail}")]
    ReportDir { path: PathBuf, detail: String },
    /// A metric that cannot be computed from what was given (too few clips, ...).
    #[error("{metric}: {detail}")]
    Metric {
        metric: &'static str,
        detail: String,
    },
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Dsp(#[from] DspError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Judge(#[from] JudgeError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Vocoder(#[from] musicdiff_vocoder::VocoderError),
    /// A cache or report file that is not valid JSON.
    #[error("{path}: {detail}")]
    Json { path: PathBuf, detail: String },
}

impl EvalError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self::Path(PathError::new(path, cause))
    }

    /// True when the user can fix the cause (a flag, an input, a model or report directory).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Invalid { .. } | Self::Reference { .. } | Self::ReportDir { .. } => true,
            Self::Metric { .. } => true,
            Self::Json { .. } => false,
            Self::Path(e) => e.is_bad_input(),
            Self::Write(e) => e.is_bad_input(),
            Self::Dsp(e) => e.is_bad_input(),
            Self::Data(e) => e.is_bad_input(),
            Self::Judge(e) => e.is_bad_input(),
            Self::Pipeline(e) => e.is_bad_input(),
            Self::Vocoder(e) => e.is_bad_input(),
        }
    }
}
