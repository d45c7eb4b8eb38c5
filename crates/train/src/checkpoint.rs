//! Checkpoints that survive a crash at any moment. One checkpoint is a directory
//! `RUN/checkpoints/step-NNNNNNNN/` holding the model weights, the EMA weights, the optimiser
//! moments (all safetensors) and `state.json` (step, data position, RNG state, the full
//! configuration and the data normalisation). It is written under a temporary name, every file
//! synced, then renamed into place; only after that does `RUN/checkpoints/latest` (written
//! atomically) point at it. A crash leaves either the old or the new checkpoint as `latest`,
//! never a half-written one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};

pub const MODEL: &str = "model.safetensors";
pub const EMA: &str = "ema.safetensors";
pub const OPTIM: &str = "optim.safetensors";
pub const STATE: &str = "state.json";

/// What the model needs to know about its data (defined with the model directory format).
pub use musicdiff_pipeline::DataInfo;

/// Everything besides the weights that an exact resume needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps done.
    pub step: u64,
    /// Data position: the epoch and the batches of it already consumed.
    pub epoch: u64,
    pub batch_in_epoch: u64,
    /// State of the run's random generator.
    pub rng: u64,
    pub samples_seen: u64,
    /// Training wall time so far (all sessions).
    pub elapsed_seconds: f64,
    pub config: TrainConfig,
    pub data: DataInfo,
    /// SHA-256 of the prepared data's `manifest.json` (absent in older checkpoints): a resume
    /// must read the same data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_sha256: Option<String>,
    /// The checkpoint whose weights this run started from (`train --init-from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitInfo>,
}

/// Where a run's starting weights came from, when not from a fresh initialisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitInfo {
    /// The checkpoint directory read.
    pub checkpoint: PathBuf,
    /// Its training so far: optimiser steps, windows seen and wall time.
    pub step: u64,
    pub samples_seen: u64,
    pub train_seconds: f64,
    /// Parameters the checkpoint did not have, which started from their initial values.
    pub fresh: Vec<String>,
}

/// Writes `bytes` to `path` atomically (temporary file, sync, rename).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    musicdiff_common::atomic::write_bytes(path, bytes).map_err(musicdiff_dsp::DspError::from)?;
    Ok(())
}

pub fn dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// The checkpoints directory of a run.
pub fn root(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// The checkpoint `latest` points at, if any.
pub fn latest(run: &Path) -> Result<Option<PathBuf>> {
    let pointer = root(run).join("latest");
    match std::fs::read_to_string(&pointer) {
        Ok(name) => {
            let dir = root(run).join(name.trim());
            if dir.join(STATE).exists() {
                Ok(Some(dir))
            } else {
                Err(TrainError::Checkpoint {
                    path: dir,
                    detail: "named by `latest` but incomplete".into(),
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TrainError::io(&pointer, e)),
    }
}

/// Writes a checkpoint for `step`: `fill(dir)` writes the weight files into a temporary
/// directory, then `state` (a [`TrainState`], or the vocoder trainer's) is added as
/// `state.json`, the directory renamed into place, `latest` moved, and all but the newest
/// `keep` checkpoints removed.
pub fn save<S: Serialize>(
    run: &Path,
    step: u64,
    state: &S,
    keep: usize,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let root = root(run);
    std::fs::create_dir_all(&root).map_err(|e| TrainError::io(&root, e))?;
    let name = dir_name(step);
    let tmp = root.join(format!(".{name}.part"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    fill(&tmp)?;
    let json = serde_json::to_string_pretty(state).expect("state serialises") + "\n";
    write_file(&tmp.join(STATE), json.as_bytes())?;
    let dest = root.join(&name);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| TrainError::io(&dest, e))?;
    }
    std::fs::rename(&tmp, &dest).map_err(|e| TrainError::io(&dest, e))?;
    write_file(&root.join("latest"), format!("{name}\n").as_bytes())?;
    prune(run, keep, &dest)?;
    Ok(dest)
}

/// Removes all but the newest `keep` checkpoints of `run`, never `current`. Saving prunes, and
/// so does resuming: a run killed between writing a checkpoint and pruning leaves one too many.
pub fn prune(run: &Path, keep: usize, current: &Path) -> Result<()> {
    let root = root(run);
    let mut steps: Vec<PathBuf> = std::fs::read_dir(&root)
        .map_err(|e| TrainError::io(&root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
        })
        .collect();
    steps.sort();
    if steps.len() > keep {
        for old in &steps[..steps.len() - keep] {
            if old != current {
                let _ = std::fs::remove_dir_all(old);
            }
        }
    }
    Ok(())
}

/// Reads `state.json` of a DiT checkpoint directory.
pub fn read_state(dir: &Path) -> Result<TrainState> {
    read_json(dir)
}

/// Reads `state.json` of a checkpoint directory as `S`.
pub fn read_json<S: serde::de::DeserializeOwned>(dir: &Path) -> Result<S> {
    let path = dir.join(STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
        path,
        detail: e.to_string(),
    })
}
