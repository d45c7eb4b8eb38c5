//! Error type of the judge crate, classified by `is_bad_input()` like every library error of the
//! workspace (`musicdiff_common::error`): a missing or damaged weights file and unusable audio are
//! the user's to fix; a failing disk is not.

use std::path::PathBuf;

use musicdiff_common::{NotFound, io_is_bad_input};
use musicdiff_dsp::DspError;

/// Result alias for this crate.
pub type Result<T, E = JudgeError> = std::result::Result<T, E>;

/// What can go wrong loading or running the musicnn judge.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The weights are not installed where they were looked for; the message lists every place
    /// looked at and says to run `scripts/fetch-assets.sh`.
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// The weights file exists but could not be read.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The weights file is not MTT musicnn's (damaged, or another model's).
    #[error(
        "{path}: not the MTT musicnn weights ({detail}); reinstall them with scripts/fetch-assets.sh"
    )]
    Weights { path: PathBuf, detail: String },
    /// The audio or the patches given cannot be analysed (empty, not finite, wrong size).
    #[error("musicnn input: {0}")]
    BadInput(String),
    /// Resampling or spectrogram set-up failed.
    #[error(transparent)]
    Dsp(#[from] DspError),
}

impl JudgeError {
    /// True when the user can fix the cause (install or reinstall the weights, pass other
    /// audio); false for a failure of the machine (an I/O error such as a full disk) or of the
    /// program.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::NotFound(e) => e.is_bad_input(),
            Self::Io { cause, .. } => io_is_bad_input(cause.kind()),
            Self::Weights { .. } | Self::BadInput(_) => true,
            Self::Dsp(e) => e.is_bad_input(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    #[test]
    fn missing_weights_and_bad_audio_are_the_users_and_a_full_disk_is_not() {
        let missing = JudgeError::NotFound(NotFound {
            what: "the MTT musicnn weights".into(),
            looked: vec!["/a/musicnn/mtt_musicnn.safetensors".into()],
            hint: "install the assets with scripts/fetch-assets.sh".into(),
        });
        assert!(missing.is_bad_input());
        assert!(missing.to_string().contains("scripts/fetch-assets.sh"));
        assert!(JudgeError::BadInput("no samples".into()).is_bad_input());
        let io = |kind| JudgeError::Io {
            path: "/w".into(),
            cause: std::io::Error::from(kind),
        };
        assert!(io(ErrorKind::PermissionDenied).is_bad_input());
        assert!(!io(ErrorKind::StorageFull).is_bad_input());
    }
}
