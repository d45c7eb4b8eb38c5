//! Error type of the pipeline crate: every variant names the file or the request field at
//! fault, so that the CLI (and later the server) can report it as is.

use std::path::PathBuf;

use musicdiff_common::io_is_bad_input;
use musicdiff_dsp::DspError;
use musicdiff_model::ModelError;
use musicdiff_text::TextError;

/// Result alias for this crate.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// What can go wrong loading a model directory or serving a request.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A file a model directory must hold is not there.
    #[error("{path}: missing {what}")]
    Missing { path: PathBuf, what: String },
    /// A model directory file that cannot be used (unreadable, malformed, wrong hash, weights
    /// that do not fit the config).
    #[error("{path}: {detail}")]
    ModelFile { path: PathBuf, detail: String },
    /// A request the model cannot serve (a span outside the input, an absurd duration, ...).
    #[error("invalid {field}: {reason}")]
    Request { field: &'static str, reason: String },
    /// The text encoder (or another asset) is not installed.
    #[error(transparent)]
    NotFound(#[from] musicdiff_common::NotFound),
    /// Generation produced NaN or infinite samples: the model (weights or config) is broken.
    #[error(
        "{dir}: the model generated {count} non-finite (NaN or infinite) samples of {total}; its weights are broken, nothing was written"
    )]
    NonFiniteOutput {
        dir: PathBuf,
        count: usize,
        total: usize,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Text(#[from] TextError),
    #[error(transparent)]
    Dsp(#[from] DspError),
    #[error(transparent)]
    Vocoder(#[from] musicdiff_vocoder::VocoderError),
    /// A file or directory that could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        /// Carried in the message rather than as a `source()`, so that printing the error
        /// chain does not repeat it.
        cause: std::io::Error,
    },
}

impl From<musicdiff_weights::dir::DirError> for PipelineError {
    fn from(e: musicdiff_weights::dir::DirError) -> Self {
        use musicdiff_weights::dir::DirError;
        match e {
            DirError::Missing { path, what } => Self::Missing { path, what },
            DirError::File(e) => Self::ModelFile {
                path: e.path,
                detail: e.detail,
            },
            DirError::Io { path, cause } => Self::Io { path, cause },
        }
    }
}

impl PipelineError {
    pub(crate) fn request(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Request {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, detail: impl ToString) -> Self {
        Self::ModelFile {
            path: path.into(),
            detail: detail.to_string(),
        }
    }

    /// True when the user can fix the cause (the request, the model directory or an input
    /// file); false for failures of the machine (see `musicdiff_common::error`).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Missing { .. }
            | Self::ModelFile { .. }
            | Self::Request { .. }
            | Self::NotFound(_) => true,
            Self::Model(e) => e.is_bad_input(),
            Self::Text(e) => e.is_bad_input(),
            Self::Dsp(e) => e.is_bad_input(),
            Self::Vocoder(e) => e.is_bad_input(),
            Self::Io { cause, .. } => io_is_bad_input(cause.kind()),
            // A defect of the model, not of the request.
            Self::NonFiniteOutput { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PipelineError;

    #[test]
    fn an_io_error_prints_the_os_message_once() {
        let e = PipelineError::Io {
            path: "/models/x/model.json".into(),
            cause: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no entry"),
        };
        // The message carries the OS error; the error chain must not carry it a second time
        // (anyhow's `{:#}` prints the message, then every `source()`).
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(e.to_string(), "/models/x/model.json: no entry");
        assert!(e.is_bad_input());
    }
}
