//! One rule for exit codes, shared by every library error type: each says through
//! `is_bad_input()` whether the user can fix the cause (a file, a flag, a request, a model
//! directory: exit code 2) or the machine or the program failed (exit code 1). I/O errors are
//! classified by their kind here, once. The errors of this crate's own pieces (a file that
//! could not be written, something that was not found where it was looked for) live here too.

use std::io::ErrorKind;
use std::path::PathBuf;

/// True when an I/O error of this kind is the user's to fix: a path that does not exist or is
/// not what the command needs (a folder where a file should be, or the reverse), no
/// permission, or data that is not valid. Anything else (a full disk, an interrupted device)
/// is a failure of the machine.
pub fn io_is_bad_input(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NotFound
            | ErrorKind::PermissionDenied
            | ErrorKind::NotADirectory
            | ErrorKind::IsADirectory
            | ErrorKind::AlreadyExists
            | ErrorKind::InvalidInput
            | ErrorKind::InvalidData
            | ErrorKind::InvalidFilename
            | ErrorKind::ReadOnlyFilesystem
    )
}

/// An output file could not be created or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {detail}")]
pub struct WriteError {
    pub path: PathBuf,
    pub detail: String,
    /// What kind of failure it was (a missing directory is the user's to fix; a full disk is
    /// not).
    pub kind: ErrorKind,
}

impl WriteError {
    /// From an I/O error, described without temporary-file noise.
    pub fn new(path: impl Into<PathBuf>, err: &std::io::Error) -> Self {
        let detail = match err.kind() {
            ErrorKind::NotFound => "its directory does not exist".to_string(),
            ErrorKind::PermissionDenied => "permission denied".to_string(),
            kind => std::io::Error::from(kind).to_string(),
        };
        Self {
            path: path.into(),
            detail,
            kind: err.kind(),
        }
    }

    pub fn is_bad_input(&self) -> bool {
        io_is_bad_input(self.kind)
    }

    /// Checks before any work is done that `path` could be created: its directory exists
    /// (the same error the write itself would give later, but before minutes of work).
    pub fn check_parent(path: &std::path::Path) -> Result<(), Self> {
        match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) if !dir.is_dir() => Err(Self::new(
                path,
                &std::io::Error::from(if dir.exists() {
                    ErrorKind::NotADirectory
                } else {
                    ErrorKind::NotFound
                }),
            )),
            _ => Ok(()),
        }
    }
}

/// An I/O error on a named path (reading a folder, a file).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {cause}")]
pub struct PathError {
    pub path: PathBuf,
    /// Carried in the message rather than as a `source()`, so that printing the error chain
    /// does not repeat it.
    pub cause: std::io::Error,
}

impl PathError {
    pub fn new(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self {
            path: path.into(),
            cause,
        }
    }

    pub fn is_bad_input(&self) -> bool {
        io_is_bad_input(self.cause.kind())
    }
}

/// Something the program needs was not found: an asset, a model directory. The message says
/// where it looked and how to put it there.
#[derive(Debug, thiserror::Error)]
#[error("{what} not found at {}; {hint}", list(looked))]
pub struct NotFound {
    pub what: String,
    /// Every place looked at, in order.
    pub looked: Vec<PathBuf>,
    pub hint: String,
}

impl NotFound {
    /// Always the user's to fix: install the thing or say where it is.
    pub fn is_bad_input(&self) -> bool {
        true
    }
}

fn list(paths: &[PathBuf]) -> String {
    match paths {
        [] => "no candidate location".into(),
        [one] => one.display().to_string(),
        many => {
            let all: Vec<String> = many.iter().map(|p| p.display().to_string()).collect();
            format!("any of {}", all.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_paths_are_bad_input_and_full_disks_are_not() {
        assert!(io_is_bad_input(ErrorKind::NotFound));
        assert!(io_is_bad_input(ErrorKind::PermissionDenied));
        assert!(io_is_bad_input(ErrorKind::IsADirectory));
        assert!(!io_is_bad_input(ErrorKind::StorageFull));
        assert!(!io_is_bad_input(ErrorKind::Interrupted));
        assert!(!io_is_bad_input(ErrorKind::Other));
    }

    #[test]
    fn write_errors_say_why_in_words() {
        let e = WriteError::new("/x/y.wav", &std::io::Error::from(ErrorKind::NotFound));
        assert_eq!(
            e.to_string(),
            "cannot write /x/y.wav: its directory does not exist"
        );
        assert!(e.is_bad_input());
        let full = WriteError::new("/x/y.wav", &std::io::Error::from(ErrorKind::StorageFull));
        assert!(!full.is_bad_input());
    }

    #[test]
    fn an_output_in_a_missing_directory_is_refused_before_any_work() {
        let e = WriteError::check_parent(std::path::Path::new("/nonexistent-dir/x.wav"));
        assert_eq!(
            e.unwrap_err().to_string(),
            "cannot write /nonexistent-dir/x.wav: its directory does not exist"
        );
        assert!(WriteError::check_parent(std::path::Path::new("x.wav")).is_ok());
        assert!(WriteError::check_parent(&std::env::temp_dir().join("x.wav")).is_ok());
    }
}
