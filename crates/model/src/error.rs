//! Error type of the model crate.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// What can go wrong building, saving or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration value that cannot describe a model.
    #[error("invalid model config `{field}`: {reason}")]
    Config { field: &'static str, reason: String },
    /// A weights file is missing.
    #[error("{path}: missing")]
    Missing { path: PathBuf },
    /// A weights file could not be read, or does not fit the configured architecture.
    #[error("{path}: {detail}")]
    Weights { path: PathBuf, detail: String },
    /// Inputs of the wrong shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
}

impl ModelError {
    /// True when the user can fix the cause (a config value, a missing or mismatched weights
    /// file); a shape mismatch inside the program is not.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Shape(_))
    }
}
