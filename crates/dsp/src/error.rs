//! Error type of the DSP crate. Every variant that concerns a file names it, so that the
//! command-line tool can print one line that says which file is wrong and how.

use std::path::PathBuf;

use musicdiff_common::{WriteError, io_is_bad_input};

/// Result alias for this crate.
pub type Result<T, E = DspError> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, analysing or writing audio.
#[derive(Debug, thiserror::Error)]
pub enum DspError {
    /// The file could not be opened, read or written.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        /// Carried in the message rather than as a `source()`, so that printing the error
        /// chain does not repeat it.
        cause: std::io::Error,
    },
    /// An output file could not be created or written.
    #[error(transparent)]
    Output(#[from] WriteError),
    /// The file exists but holds no bytes at all.
    #[error("{path}: file is empty (0 bytes)")]
    EmptyFile { path: PathBuf },
    /// No demuxer recognised the container (for example a text file named `.wav`).
    #[error("{path}: not a recognised audio file ({detail})")]
    UnrecognisedFormat { path: PathBuf, detail: String },
    /// The container was recognised but its codec is not one we decode.
    #[error("{path}: unsupported codec {codec}")]
    UnsupportedCodec { path: PathBuf, codec: String },
    /// The stream is damaged: a packet failed to decode or the stream ended early.
    #[error("{path}: corrupt or truncated audio stream: {detail}")]
    CorruptStream { path: PathBuf, detail: String },
    /// The file decoded to zero samples.
    #[error("{path}: the audio stream holds no samples")]
    NoSamples { path: PathBuf },
    /// A parameter is outside its valid range; `name` is the parameter, `reason` says why.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// Resampling failed inside rubato.
    #[error("resampling from {from} Hz to {to} Hz failed: {detail}")]
    Resample { from: u32, to: u32, detail: String },
    /// Writing a WAV file failed.
    #[error("{path}: cannot write WAV: {detail}")]
    WavWrite { path: PathBuf, detail: String },
    /// Encoding or writing an image failed.
    #[error("{path}: cannot write image: {detail}")]
    ImageWrite { path: PathBuf, detail: String },
    /// A `.npy` file is malformed or holds a type we do not read.
    #[error("{path}: bad .npy file: {detail}")]
    Npy { path: PathBuf, detail: String },
    /// The audio cannot be analysed for `what` (tempo, key): too short, silent, or without
    /// the structure the estimator needs; `reason` says which.
    #[error("cannot estimate the {what}: {reason}")]
    NotAnalysable { what: &'static str, reason: String },
}

impl DspError {
    /// True when the user can fix the cause (the file, the parameter, the output path); false
    /// for failures of the machine or of a library (see `musicdiff_common::error`).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Io { cause, .. } => io_is_bad_input(cause.kind()),
            Self::Output(e) => e.is_bad_input(),
            Self::EmptyFile { .. }
            | Self::UnrecognisedFormat { .. }
            | Self::UnsupportedCodec { .. }
            | Self::CorruptStream { .. }
            | Self::NoSamples { .. }
            | Self::InvalidParameter { .. }
            | Self::Npy { .. }
            | Self::NotAnalysable { .. } => true,
            Self::Resample { .. } | Self::WavWrite { .. } | Self::ImageWrite { .. } => false,
        }
    }

    /// Shorthand for [`DspError::InvalidParameter`].
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }

    /// [`DspError::Output`] from an I/O error, described without temporary-file noise.
    pub fn output(path: impl Into<PathBuf>, err: &std::io::Error) -> Self {
        Self::Output(WriteError::new(path, err))
    }

    /// Shorthand for [`DspError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause: source,
        }
    }
}
