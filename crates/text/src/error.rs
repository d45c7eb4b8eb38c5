//! Error type of the text crate.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = TextError> = std::result::Result<T, E>;

/// What can go wrong loading or running the text encoder.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A model file is missing; the message says how to install it.
    #[error(
        "{path}: missing; install the MiniLM text encoder with scripts/fetch-assets.sh (or set MUSICDIFF_ASSETS)"
    )]
    MissingFile { path: PathBuf },
    /// A model file exists but could not be read or parsed.
    #[error("{path}: {detail}")]
    BadFile { path: PathBuf, detail: String },
    /// The weights do not fit the architecture in `config.json`.
    #[error("{path}: weights do not match the model: {detail}")]
    Weights { path: PathBuf, detail: String },
    /// Tokenisation failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

impl TextError {
    /// True when the user can fix the cause: a missing or damaged encoder file (reinstall it
    /// with `scripts/fetch-assets.sh`). A tokenizer failure on valid files is the program's.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Tokenizer(_))
    }
}
