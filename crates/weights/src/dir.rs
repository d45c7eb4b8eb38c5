//! The directory layout shared by every network musicdiff ships (the DiT's model directory,
//! the vocoder directory): a JSON metadata file carrying a format tag and the weights file's
//! dtype and SHA-256, the weights, and a card. This module reads and writes such a directory;
//! each format owns its metadata type and the checks on it.
//!
//! Reading names what is missing (`what`) rather than failing on a bare path; writing puts
//! every file atomically and the metadata last, so a directory whose metadata exists is
//! complete.

use std::path::{Path, PathBuf};

use musicdiff_common::atomic::write_bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{WeightDtype, WeightsError, convert_dtype, sha256_hex};

/// What went wrong reading or writing a directory.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// A file (or the directory itself) is not there; `what` says what it should be.
    #[error("{path}: missing {what}")]
    Missing { path: PathBuf, what: String },
    /// A file exists but cannot be used (malformed, another format, wrong hash).
    #[error(transparent)]
    File(#[from] WeightsError),
    /// The disk failed.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// The bytes of `path`, or [`DirError::Missing`] naming `what` it should be.
pub fn read(path: &Path, what: &str) -> Result<Vec<u8>, DirError> {
    std::fs::read(path).map_err(|cause| {
        if cause.kind() == std::io::ErrorKind::NotFound {
            DirError::Missing {
                path: path.to_path_buf(),
                what: what.to_string(),
            }
        } else {
            DirError::Io {
                path: path.to_path_buf(),
                cause,
            }
        }
    })
}

/// Reads `dir/meta_file` as `M` after checking that `dir` is a directory (else missing, as
/// `what_dir`); `format` of the parsed metadata must be `expected`.
pub fn read_meta<M: DeserializeOwned>(
    dir: &Path,
    meta_file: &str,
    what_dir: &str,
    format: impl Fn(&M) -> &str,
    expected: &str,
) -> Result<M, DirError> {
    if !dir.is_dir() {
        return Err(DirError::Missing {
            path: dir.to_path_buf(),
            what: what_dir.to_string(),
        });
    }
    let path = dir.join(meta_file);
    let text = read(&path, &format!("metadata ({meta_file})"))?;
    let meta: M = serde_json::from_slice(&text).map_err(|e| WeightsError::new(&path, e))?;
    let found = format(&meta);
    if found != expected {
        return Err(WeightsError::new(
            &path,
            format!("format {found:?} is not {expected:?}; this musicdiff cannot read it"),
        )
        .into());
    }
    Ok(meta)
}

/// Reads `dir/weights_file` and checks it against the dtype and SHA-256 its metadata
/// (`meta_file`) records ([`crate::checked`]): f32 safetensors bytes.
pub fn read_weights(
    dir: &Path,
    weights_file: &str,
    dtype: WeightDtype,
    sha256: &str,
    meta_file: &str,
) -> Result<Vec<u8>, DirError> {
    let path = dir.join(weights_file);
    let bytes = read(&path, &format!("weights ({weights_file})"))?;
    Ok(crate::checked(bytes, &path, dtype, sha256, meta_file)?)
}

/// Writes a directory: `weights_f32` stored as `dtype` in `weights_file`, the card, and last
/// the metadata `meta(sha256)` (given the stored weights' hash) in `meta_file`.
pub fn write<M: Serialize>(
    dir: &Path,
    weights_file: &str,
    weights_f32: &[u8],
    dtype: WeightDtype,
    card: (&str, &str),
    meta_file: &str,
    meta: impl FnOnce(String) -> M,
) -> Result<PathBuf, DirError> {
    std::fs::create_dir_all(dir).map_err(|cause| DirError::Io {
        path: dir.to_path_buf(),
        cause,
    })?;
    // A failed write keeps its I/O kind: a full disk is the machine's, not the user's.
    let put = |path: &Path, bytes: &[u8]| -> Result<(), DirError> {
        write_bytes(path, bytes).map_err(|e| DirError::Io {
            path: e.path.clone(),
            cause: std::io::Error::new(e.kind, e.detail),
        })
    };
    let weights_path = dir.join(weights_file);
    let weights = convert_dtype(weights_f32, dtype, &weights_path)?;
    put(&weights_path, &weights)?;
    put(&dir.join(card.0), card.1.as_bytes())?;
    let json = serde_json::to_vec_pretty(&meta(sha256_hex(&weights)))
        .map_err(|e| WeightsError::new(dir, e))?;
    put(&dir.join(meta_file), &json)?;
    Ok(dir.to_path_buf())
}
