//! A vocoder directory, with the conventions of the DiT's model directory
//! (`musicdiff_pipeline::model_dir`): three files, written atomically, metadata last.
//!
//! - `vocoder.json` ([`VocoderMeta`]): the architecture and the log-mel it reads, provenance
//!   (steps, data, held-out losses), and the weights' dtype and SHA-256;
//! - `vocoder.safetensors`: the weights, f16 or f32 (widened to f32 on load);
//! - `README.md`: the card.
//!
//! Loading checks the hash first, refuses non-finite values and weights that do not fit the
//! architecture, naming the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use musicdiff_weights::WeightDtype;
use serde::{Deserialize, Serialize};

use crate::config::VocoderConfig;
use crate::error::{Result, VocoderError};
use crate::network::Vocos;

pub const FORMAT: &str = "musicdiff-vocoder-1";
pub const META_FILE: &str = "vocoder.json";
pub const WEIGHTS_FILE: &str = "vocoder.safetensors";
pub const CARD_FILE: &str = "README.md";
/// The `format` metadata inside the weights file.
pub const WEIGHTS_FORMAT: &str = "musicdiff-vocos";

/// The weights file's storage and identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsInfo {
    pub dtype: WeightDtype,
    /// Lower-case hex SHA-256 of `vocoder.safetensors`.
    pub sha256: String,
    pub parameters: usize,
}

/// Where the weights came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingInfo {
    /// Optimiser steps and wall time.
    pub steps: u64,
    pub train_seconds: f64,
    /// Seconds of audio seen (crops times steps).
    pub audio_seconds_seen: f64,
    /// The training audio: its directory and hours.
    pub data: String,
    pub data_hours: f64,
    /// The losses, by name, on the held-out crops at the end of training.
    pub held_out: BTreeMap<String, f64>,
}

/// The contents of `vocoder.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocoderMeta {
    pub format: String,
    /// A short name, shown in sidecars and logs.
    pub id: String,
    pub config: VocoderConfig,
    pub weights: WeightsInfo,
    pub training: TrainingInfo,
}

/// Reads and checks `DIR/vocoder.json`.
pub fn read_meta(dir: &Path) -> Result<VocoderMeta> {
    let meta: VocoderMeta = musicdiff_weights::dir::read_meta(
        dir,
        META_FILE,
        "vocoder directory (it should hold vocoder.json and vocoder.safetensors)",
        |m: &VocoderMeta| &m.format,
        FORMAT,
    )?;
    meta.config
        .validate()
        .map_err(|e| VocoderError::file(dir.join(META_FILE), e))?;
    Ok(meta)
}

/// Builds the architecture of `cfg` and reads f32 safetensors `bytes` into it (`path` names
/// their origin in errors).
pub fn load_bytes(
    cfg: &VocoderConfig,
    bytes: Vec<u8>,
    path: &Path,
    device: &Device,
) -> Result<Vocos> {
    cfg.validate().map_err(VocoderError::Config)?;
    let describe = format!(
        "{} blocks, dim {}, {} mels",
        cfg.layers, cfg.dim, cfg.n_mels
    );
    let (net, _) =
        musicdiff_weights::load_into(Vocos::new(cfg, device), bytes, path, false, &describe)?;
    Ok(net)
}

/// Reads `DIR/vocoder.safetensors`, checks it against `meta` and loads it.
pub fn load_weights(dir: &Path, meta: &VocoderMeta, device: &Device) -> Result<Vocos> {
    let f32_bytes = musicdiff_weights::dir::read_weights(
        dir,
        WEIGHTS_FILE,
        meta.weights.dtype,
        &meta.weights.sha256,
        META_FILE,
    )?;
    load_bytes(&meta.config, f32_bytes, &dir.join(WEIGHTS_FILE), device)
}

/// Writes a vocoder directory from `net`: weights stored as `meta.weights.dtype`,
/// `vocoder.json` with the hash and parameter count filled in, and the card; each file
/// atomically, the metadata last, so a directory whose metadata exists is complete.
pub fn write(dir: &Path, meta: &VocoderMeta, net: &Vocos, card: &str) -> Result<PathBuf> {
    let weights_path = dir.join(WEIGHTS_FILE);
    let f32_bytes = musicdiff_weights::to_bytes(net, WEIGHTS_FORMAT, &weights_path)?;
    Ok(musicdiff_weights::dir::write(
        dir,
        WEIGHTS_FILE,
        &f32_bytes,
        meta.weights.dtype,
        (CARD_FILE, card),
        META_FILE,
        |sha256| {
            let mut meta = meta.clone();
            meta.weights.sha256 = sha256;
            meta.weights.parameters = net.num_params();
            meta.config = net.config.clone();
            meta.format = FORMAT.into();
            meta
        },
    )?)
}
