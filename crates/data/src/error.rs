//! Error type of the data crate.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// What can go wrong building a corpus or preparing a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An asset is not installed; the message names the script that installs it.
    #[error(
        "{what} not found at {path}: install it with scripts/fetch-assets.sh (or set MUSICDIFF_ASSETS)"
    )]
    MissingAsset { what: &'static str, path: PathBuf },
    /// Reading or writing a file failed.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        /// Carried in the message rather than as a `source()`, so that printing the error
        /// chain does not repeat it.
        cause: std::io::Error,
    },
    /// An external tool (mma, abc2midi) failed on one input.
    #[error("{tool} failed on {input}: {detail}")]
    Tool {
        tool: &'static str,
        input: String,
        detail: String,
    },
    /// A MIDI file could not be parsed or rendered.
    #[error("{source_id}: bad MIDI: {detail}")]
    Midi { source_id: String, detail: String },
    /// A clip came out too short to keep.
    #[error("{source_id}: only {seconds:.1} s of music (at least {min:.1} s are kept)")]
    TooShort {
        source_id: String,
        seconds: f64,
        min: f64,
    },
    /// A SoundFont could not be loaded.
    #[error("{path}: cannot load SoundFont: {detail}")]
    SoundFont { path: PathBuf, detail: String },
    /// An invalid option value.
    #[error("invalid {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    /// Audio processing failed.
    #[error(transparent)]
    Dsp(#[from] musicdiff_dsp::DspError),
    /// JSON encoding or decoding failed.
    #[error("{path}: {detail}")]
    Json { path: PathBuf, detail: String },
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause: source,
        }
    }
}
