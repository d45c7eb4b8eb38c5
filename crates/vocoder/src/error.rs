//! Error type of the vocoder crate, classified by `is_bad_input()` like every library error of
//! the workspace (`musicdiff_common::error`).

use std::path::PathBuf;

use musicdiff_dsp::DspError;

pub type Result<T, E = VocoderError> = std::result::Result<T, E>;

/// What can go wrong loading, saving or running a vocoder.
#[derive(Debug, thiserror::Error)]
pub enum VocoderError {
    /// A file of the vocoder directory is not there.
    #[error("{path}: missing {what}")]
    Missing { path: PathBuf, what: String },
    /// A file exists but cannot be read or used (damaged, another format, wrong shapes).
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    /// A configuration that cannot describe a vocoder.
    #[error("invalid vocoder config: {0}")]
    Config(String),
    /// A spectrogram the vocoder cannot convert (another mel count, too short, not finite).
    #[error("vocoder input: {0}")]
    BadInput(String),
    #[error(transparent)]
    Dsp(#[from] DspError),
    /// The disk failed while writing.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
}

impl VocoderError {
    pub(crate) fn file(path: impl Into<PathBuf>, detail: impl ToString) -> Self {
        Self::File {
            path: path.into(),
            detail: detail.to_string(),
        }
    }

    /// True when the user can fix the cause (install the vocoder, pass another directory or
    /// input); a failing disk is not.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Io { cause, .. } => musicdiff_common::io_is_bad_input(cause.kind()),
            Self::Dsp(e) => e.is_bad_input(),
            _ => true,
        }
    }
}

impl From<musicdiff_weights::WeightsError> for VocoderError {
    fn from(e: musicdiff_weights::WeightsError) -> Self {
        Self::File {
            path: e.path,
            detail: e.detail,
        }
    }
}

impl From<musicdiff_weights::dir::DirError> for VocoderError {
    fn from(e: musicdiff_weights::dir::DirError) -> Self {
        use musicdiff_weights::dir::DirError;
        match e {
            DirError::Missing { path, what } => Self::Missing { path, what },
            DirError::File(e) => e.into(),
            DirError::Io { path, cause } => Self::Io { path, cause },
        }
    }
}
