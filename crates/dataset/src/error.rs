//! Error type of the dataset crate.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// What can go wrong reading, preparing or loading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An asset is not installed; the message says where it looked and how to install it.
    #[error(transparent)]
    NotFound(#[from] musicdiff_common::NotFound),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] musicdiff_common::PathError),
    /// A tool (the text encoder) failed on one input.
    #[error("{tool} failed on {input}: {detail}")]
    Tool {
        tool: &'static str,
        input: String,
        detail: String,
    },
    /// An invalid option value.
    #[error("invalid {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    /// Audio processing failed.
    #[error(transparent)]
    Dsp(#[from] musicdiff_dsp::DspError),
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] musicdiff_common::WriteError),
    /// JSON encoding or decoding failed.
    #[error("{path}: {detail}")]
    Json { path: PathBuf, detail: String },
}

impl DataError {
    /// True when the user can fix the cause (an option, a metadata or asset file, an input
    /// path); false for a tool failing on valid input, or the machine failing.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::NotFound(_) | Self::Invalid { .. } | Self::Json { .. } => true,
            Self::Io(e) => e.is_bad_input(),
            Self::Dsp(e) => e.is_bad_input(),
            Self::Write(e) => e.is_bad_input(),
            Self::Tool { .. } => false,
        }
    }

    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self::Io(musicdiff_common::PathError::new(path, cause))
    }
}
