//! Weights on disk: safetensors serialised by burn-store and written atomically by the DSP
//! crate's `write_atomic` (a temporary file in the same directory, then a rename), so an
//! interrupted save never leaves a half-written file where a good one was. Loading checks that every parameter of the configured architecture is
//! present with its shape and that the file holds nothing else, so a checkpoint is never read
//! into a model it does not belong to.

use std::io::Write;
use std::path::Path;

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use musicdiff_dsp::atomic::write_atomic;

use crate::config::DitConfig;
use crate::dit::Dit;
use crate::error::{ModelError, Result};

fn weights_err(path: &Path, detail: impl ToString) -> ModelError {
    ModelError::Weights {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Writes `model`'s parameters to `path` (safetensors), replacing it atomically through
/// `musicdiff_dsp::atomic::write_atomic`.
pub fn save(model: &Dit, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_bytes(None).metadata("format", "musicdiff-dit");
    model
        .save_into(&mut store)
        .map_err(|e| weights_err(path, e))?;
    let bytes = store.get_bytes().map_err(|e| weights_err(path, e))?;
    write_atomic(path, |w| {
        w.write_all(&bytes)
            .map_err(|e| musicdiff_dsp::DspError::output(path, &e))
    })
    .map_err(|e| weights_err(path, e))
}

/// Builds the architecture of `cfg` and reads its parameters from `path`.
pub fn load(cfg: &DitConfig, path: &Path, device: &Device) -> Result<Dit> {
    cfg.validate()?;
    if !path.exists() {
        return Err(ModelError::Missing {
            path: path.to_path_buf(),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| weights_err(path, e))?;
    load_bytes(cfg, bytes, path, device)
}

/// Builds the architecture of `cfg` and reads its parameters from safetensors `bytes` (f32);
/// `path` names their origin in errors.
pub fn load_bytes(cfg: &DitConfig, bytes: Vec<u8>, path: &Path, device: &Device) -> Result<Dit> {
    cfg.validate()?;
    let mut model = cfg.init(device);
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = model
        .load_from(&mut store)
        .map_err(|e| weights_err(path, format!("does not fit the model config: {e}")))?;
    if !result.missing.is_empty() || !result.errors.is_empty() || !result.unused.is_empty() {
        let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        return Err(weights_err(
            path,
            format!(
                "does not fit the model config: missing [{}], unexpected [{}], errors {:?}",
                missing.join(", "),
                result.unused.join(", "),
                result.errors
            ),
        ));
    }
    Ok(model)
}
