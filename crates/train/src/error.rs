//! Error type of the training crate.

use std::path::PathBuf;

use musicdiff_common::io_is_bad_input;

/// Result alias for this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// What can go wrong configuring, running or resuming training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration file or value that cannot be used.
    #[error("{path}: {detail}")]
    Config { path: PathBuf, detail: String },
    /// A checkpoint that is missing, damaged or does not belong to this run.
    #[error("checkpoint {path}: {detail}")]
    Checkpoint { path: PathBuf, detail: String },
    /// The prepared data cannot feed this model.
    #[error("data {path}: {detail}")]
    Data { path: PathBuf, detail: String },
    /// Another training process holds the run directory's lock.
    #[error(
        "run directory {path} is in use by another `musicdiff train` (pid {pid}, lock file {path}/lock); wait for it to finish or stop it"
    )]
    RunInUse { path: PathBuf, pid: String },
    /// An output that exists and would be replaced without `--force`.
    #[error("{path} already exists; pass --force to replace it")]
    Exists { path: PathBuf },
    #[error(transparent)]
    Model(#[from] musicdiff_model::ModelError),
    #[error(transparent)]
    Dataset(#[from] musicdiff_dataset::DataError),
    #[error(transparent)]
    Text(#[from] musicdiff_text::TextError),
    #[error(transparent)]
    Dsp(#[from] musicdiff_dsp::DspError),
    #[error(transparent)]
    Pipeline(#[from] musicdiff_pipeline::PipelineError),
    #[error(transparent)]
    Vocoder(#[from] musicdiff_vocoder::VocoderError),
    /// The loss stopped being a finite number: the run diverged (a failure of training, not
    /// of the user's input).
    #[error(
        "training diverged: the loss became {loss} at step {step}; lower optim.lr or clip gradients harder (optim.grad_clip)"
    )]
    Diverged { step: u64, loss: f64 },
    /// Stopped (Ctrl-C) before an output was complete; nothing was written to `path`.
    #[error("interrupted; nothing was written to {path}")]
    Interrupted { path: PathBuf },
    /// A file or directory that could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        /// Carried in the message rather than as a `source()`, so that printing the error
        /// chain does not repeat it.
        cause: std::io::Error,
    },
}

impl TrainError {
    /// True when the user can fix the cause (a config, a checkpoint, the data, a model or an
    /// input file); false for a diverged run and for failures of the machine.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Config { .. }
            | Self::Checkpoint { .. }
            | Self::Data { .. }
            | Self::RunInUse { .. }
            | Self::Exists { .. } => true,
            Self::Diverged { .. } | Self::Interrupted { .. } => false,
            Self::Model(e) => e.is_bad_input(),
            Self::Dataset(e) => e.is_bad_input(),
            Self::Text(e) => e.is_bad_input(),
            Self::Dsp(e) => e.is_bad_input(),
            Self::Pipeline(e) => e.is_bad_input(),
            Self::Vocoder(e) => e.is_bad_input(),
            Self::Io { cause, .. } => io_is_bad_input(cause.kind()),
        }
    }

    pub fn io(path: &std::path::Path, cause: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TrainError;

    #[test]
    fn an_io_error_prints_the_os_message_once() {
        let cause = std::io::Error::new(std::io::ErrorKind::NotFound, "no such widget");
        let e = TrainError::io(std::path::Path::new("/runs/a/metrics.jsonl"), cause);
        // The message carries the OS error; the error chain must not carry it a second time
        // (anyhow's `{:#}` prints the message, then every `source()`).
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(
            e.to_string(),
            "/runs/a/metrics.jsonl: no such widget",
            "{e}"
        );
    }
}
