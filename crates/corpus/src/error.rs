//! Error type of the corpus crate.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = CorpusError> = std::result::Result<T, E>;

/// What can go wrong building the corpus.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// An asset is not installed (or holds nothing usable); the message says where it looked
    /// and which script installs it.
    #[error(transparent)]
    NotFound(#[from] musicdiff_common::NotFound),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] musicdiff_common::PathError),
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
    /// Audio processing or writing failed.
    #[error(transparent)]
    Dsp(#[from] musicdiff_dsp::DspError),
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] musicdiff_common::WriteError),
}

impl CorpusError {
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self::Io(musicdiff_common::PathError::new(path, cause))
    }

    /// True when the user can fix the cause (an option, an asset, a SoundFont, an input
    /// path); false for a tool or renderer failing on valid input, or the machine failing.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::NotFound(_)
            | Self::Invalid { .. }
            | Self::SoundFont { .. }
            | Self::TooShort { .. } => true,
            Self::Io(e) => e.is_bad_input(),
            Self::Dsp(e) => e.is_bad_input(),
            Self::Write(e) => e.is_bad_input(),
            Self::Tool { .. } | Self::Midi { .. } => false,
        }
    }
}
