//! A model directory: everything generation needs besides the text encoder, in three files.
//!
//! - `model.json` ([`ModelMeta`]): the DiT config, the audio/normalisation facts of its data,
//!   provenance (steps, data hours, losses), default sampling settings, and the weights' dtype
//!   and SHA-256.
//! - `model.safetensors`: the (EMA) weights, in f16 or f32. f16 halves the file (the bundled
//!   model is committed to git, where every version stays forever); weights are widened back to
//!   f32 on load, so inference runs in f32 either way.
//! - `README.md`: the model card (written by `musicdiff export`, free text).
//!
//! Loading checks the hash before anything else, so a truncated or swapped weights file is
//! reported as such rather than as a shape mismatch; then NaN or infinite values are refused,
//! and the DiT loader refuses weights that do not fit the config, naming the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use musicdiff_common::atomic::write_bytes;
use musicdiff_diffusion::sampler::SamplerKind;
use musicdiff_dsp::features::SpectrogramConfig;
use musicdiff_model::{Dit, DitConfig};
pub use musicdiff_weights::{WeightDtype, convert_dtype, sha256_hex};
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use musicdiff_dsp::normalise::Normaliser;

pub const META_FILE: &str = "model.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CARD_FILE: &str = "README.md";
/// Version tag of the directory layout, checked on load.
/// File of a model directory (and of a run directory) listing the content hashes
/// (`musicdiff_dsp::audio::Audio::content_hash`) of every clip the weights were trained on, one
/// per line, sorted; absent when they are not known. The evaluation refuses to trust a
/// reference set that overlaps it.
pub const TRAINING_CLIPS: &str = "training-clips.txt";

/// The hashes of `dir/`[`TRAINING_CLIPS`], one per line (blank lines and `#` comments
/// ignored), or `None` when the file is absent: the one reader of the format, for runs, model
/// directories and the evaluation.
pub fn read_training_clips(dir: &Path) -> Result<Option<Vec<String>>> {
    let path = dir.join(TRAINING_CLIPS);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(cause) => Err(PipelineError::Io { path, cause }),
    }
}

/// Writes `hashes`, sorted and distinct, to `dir/`[`TRAINING_CLIPS`] atomically, or removes the
/// file when they are not known (`None`: a stale or incomplete list must not survive).
/// Returns how many were written.
pub fn write_training_clips(dir: &Path, hashes: Option<Vec<String>>) -> Result<Option<usize>> {
    let path = dir.join(TRAINING_CLIPS);
    let Some(mut hashes) = hashes else {
        return match std::fs::remove_file(&path) {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(cause) => Err(PipelineError::Io { path, cause }),
        };
    };
    hashes.retain(|h| !h.is_empty());
    hashes.sort();
    hashes.dedup();
    let text: String = hashes.iter().map(|h| format!("{h}\n")).collect();
    write_bytes(&path, text.as_bytes()).map_err(musicdiff_dsp::DspError::from)?;
    Ok(Some(hashes.len()))
}

pub const FORMAT: &str = "musicdiff-model-1";

/// What the model needs to know about its data to turn generated tokens back into audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    pub sample_rate: u32,
    pub n_fft: usize,
    pub hop_length: usize,
    pub n_mels: usize,
    /// Per-band statistics the loader normalised with.
    pub mel_mean: Vec<f32>,
    pub mel_std: Vec<f32>,
    pub text_model: String,
    /// Where the shards came from and how much audio they held.
    pub source: String,
    pub hours: f64,
}

impl DataInfo {
    /// The log-mel definition the model was trained on.
    pub fn spectrogram(&self) -> SpectrogramConfig {
        SpectrogramConfig::new(self.sample_rate, self.n_fft, self.hop_length, self.n_mels)
    }

    pub fn normaliser(&self) -> Normaliser {
        Normaliser {
            mean: self.mel_mean.clone(),
            std: self.mel_std.clone(),
        }
    }

    /// Seconds per spectrogram frame.
    pub fn frame_seconds(&self) -> f64 {
        self.hop_length as f64 / self.sample_rate as f64
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsInfo {
    pub dtype: WeightDtype,
    /// Lower-case hex SHA-256 of `model.safetensors`.
    pub sha256: String,
    pub parameters: usize,
}

/// Where the weights came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingInfo {
    /// The training config's description.
    pub config: String,
    pub step: u64,
    pub samples_seen: u64,
    pub train_seconds: f64,
    /// Mean training loss over the last logged steps, if the run's metrics were found.
    pub train_loss: Option<f64>,
    /// Held-out loss per task at the last evaluation (EMA weights), and that evaluation's step.
    pub eval_loss: BTreeMap<String, f64>,
    #[serde(default)]
    pub eval_step: Option<u64>,
}

/// Sampling settings the model was tuned for; command-line flags override them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingDefaults {
    /// Stored by name (`dpm++2m`, ...); an unknown name fails when `model.json` is read.
    #[serde(with = "sampler_name")]
    pub sampler: SamplerKind,
    pub steps: usize,
    pub cfg: f32,
    /// Context carried from one window into the next in long generation, seconds.
    pub overlap_seconds: f32,
    pub griffin_lim_iters: usize,
}

impl Default for SamplingDefaults {
    fn default() -> Self {
        Self {
            sampler: SamplerKind::DpmSolver2M,
            steps: 20,
            cfg: 3.0,
            overlap_seconds: 1.5,
            griffin_lim_iters: 32,
        }
    }
}

/// [`SamplerKind`] as its command-line name in JSON.
mod sampler_name {
    use musicdiff_diffusion::sampler::SamplerKind;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(kind: &SamplerKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SamplerKind, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The contents of `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    pub format: String,
    /// A short name, shown in sidecars and logs.
    pub id: String,
    pub model: DitConfig,
    pub data: DataInfo,
    pub weights: WeightsInfo,
    pub training: TrainingInfo,
    #[serde(default)]
    pub sampling: SamplingDefaults,
}

/// Reads and checks `DIR/model.json`.
pub fn read_meta(dir: &Path) -> Result<ModelMeta> {
    let meta: ModelMeta = musicdiff_weights::dir::read_meta(
        dir,
        META_FILE,
        "model directory (it should hold model.json and model.safetensors)",
        |m: &ModelMeta| &m.format,
        FORMAT,
    )?;
    let path = dir.join(META_FILE);
    meta.model
        .validate()
        .map_err(|e| PipelineError::file(&path, e))?;
    let d = &meta.data;
    if d.n_mels != meta.model.n_mels || d.mel_mean.len() != d.n_mels || d.mel_std.len() != d.n_mels
    {
        return Err(PipelineError::file(
            &path,
            format!(
                "data has {} mels ({} means, {} stds) but the model takes {}",
                d.n_mels,
                d.mel_mean.len(),
                d.mel_std.len(),
                meta.model.n_mels
            ),
        ));
    }
    Ok(meta)
}

/// Reads `DIR/model.safetensors`, checks its hash against `meta`, refuses non-finite values and
/// loads it into the DiT.
pub fn load_weights(dir: &Path, meta: &ModelMeta, device: &Device) -> Result<Dit> {
    let path = dir.join(WEIGHTS_FILE);
    let f32_bytes = musicdiff_weights::dir::read_weights(
        dir,
        WEIGHTS_FILE,
        meta.weights.dtype,
        &meta.weights.sha256,
        META_FILE,
    )?;
    Ok(musicdiff_model::io::load_bytes(
        &meta.model,
        f32_bytes,
        &path,
        device,
    )?)
}

/// Writes a model directory: `weights_f32` (safetensors as `musicdiff_model::io::save`
/// writes them) stored as `meta.weights.dtype`, `model.json` with the hash filled in, and the
/// card. Every file is written atomically; `model.json` last, so a directory whose metadata
/// exists is complete.
pub fn write(dir: &Path, meta: &ModelMeta, weights_f32: &[u8], card: &str) -> Result<PathBuf> {
    Ok(musicdiff_weights::dir::write(
        dir,
        WEIGHTS_FILE,
        weights_f32,
        meta.weights.dtype,
        (CARD_FILE, card),
        META_FILE,
        |sha256| {
            let mut meta = meta.clone();
            meta.weights.sha256 = sha256;
            meta.format = FORMAT.into();
            meta
        },
    )?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn training_clips_round_trip_sorted_and_distinct_and_none_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(super::read_training_clips(dir.path()).unwrap(), None);
        let hashes = vec!["cc".to_string(), "aa".into(), "cc".into(), String::new()];
        let n = super::write_training_clips(dir.path(), Some(hashes)).unwrap();
        assert_eq!(n, Some(2));
        assert_eq!(
            super::read_training_clips(dir.path()).unwrap(),
            Some(vec!["aa".to_string(), "cc".into()])
        );
        assert_eq!(super::write_training_clips(dir.path(), None).unwrap(), None);
        assert!(!dir.path().join(super::TRAINING_CLIPS).exists());
        assert_eq!(super::write_training_clips(dir.path(), None).unwrap(), None);
    }

    use super::*;
    use musicdiff_model::config::{AbsoluteKind, PositionEncoding};
    use safetensors::SafeTensors;
    use safetensors::tensor::Dtype;

    fn cfg() -> DitConfig {
        DitConfig {
            n_mels: 8,
            patch_frames: 2,
            frames: 16,
            d_model: 16,
            depth: 1,
            heads: 2,
            mlp_ratio: 2.0,
            text_dim: 6,
            max_text_tokens: 5,
            position: PositionEncoding::Both,
            absolute: AbsoluteKind::Sinusoidal,
            rope_theta: 10000.0,
            max_seconds: 60.0,
            pooled_text: true,
            head_hidden: Some(8),
            prediction: musicdiff_model::Prediction::X0,
            schedule_shift: 1.0,
            controls: false,
            freq_stem: None,
            freq_tail: None,
        }
    }

    fn meta(dtype: WeightDtype) -> ModelMeta {
        ModelMeta {
            format: FORMAT.into(),
            id: "test".into(),
            model: cfg(),
            data: DataInfo {
                sample_rate: 22050,
                n_fft: 1024,
                hop_length: 256,
                n_mels: 8,
                mel_mean: vec![0.0; 8],
                mel_std: vec![1.0; 8],
                text_model: "all-MiniLM-L6-v2".into(),
                source: "test".into(),
                hours: 0.0,
            },
            weights: WeightsInfo {
                dtype,
                sha256: String::new(),
                parameters: 0,
            },
            training: TrainingInfo {
                config: "test".into(),
                step: 1,
                samples_seen: 1,
                train_seconds: 0.0,
                train_loss: None,
                eval_loss: BTreeMap::new(),
                eval_step: None,
            },
            sampling: SamplingDefaults::default(),
        }
    }

    /// All parameters of a safetensors file, by name.
    fn values(bytes: &[u8]) -> BTreeMap<String, Vec<f32>> {
        let st = SafeTensors::deserialize(bytes).unwrap();
        st.tensors()
            .into_iter()
            .map(|(n, v)| {
                assert_eq!(v.dtype(), Dtype::F32);
                let vals = v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                (n, vals)
            })
            .collect()
    }

    #[test]
    fn f16_directories_round_trip_within_half_precision() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let model = cfg().init(&device);
        let path = dir.path().join("orig.safetensors");
        musicdiff_model::io::save(&model, &path).unwrap();
        let orig = std::fs::read(&path).unwrap();

        let out = dir.path().join("model");
        write(&out, &meta(WeightDtype::F16), &orig, "card").unwrap();
        let m = read_meta(&out).unwrap();
        let stored = std::fs::read(out.join(WEIGHTS_FILE)).unwrap();
        assert_eq!(m.weights.sha256, sha256_hex(&stored));
        assert!(
            stored.len() < orig.len() * 6 / 10,
            "f16 should halve the file"
        );
        let loaded = load_weights(&out, &m, &device).unwrap();
        musicdiff_model::io::save(&loaded, &path).unwrap();
        let (a, b) = (values(&orig), values(&std::fs::read(&path).unwrap()));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (name, x) in &a {
            for (u, v) in x.iter().zip(&b[name]) {
                assert!(
                    (u - v).abs() <= 1e-3 * u.abs().max(1e-2),
                    "{name}: {u} vs {v}"
                );
            }
        }
        // f32 storage is exact.
        let out32 = dir.path().join("model32");
        write(&out32, &meta(WeightDtype::F32), &orig, "card").unwrap();
        let m32 = read_meta(&out32).unwrap();
        let back = load_weights(&out32, &m32, &device).unwrap();
        musicdiff_model::io::save(&back, &path).unwrap();
        assert_eq!(values(&orig), values(&std::fs::read(&path).unwrap()));
    }

    /// A fresh model written as an f16 model directory `DIR/model`.
    fn f16_directory(dir: &Path, device: &Device) -> PathBuf {
        let path = dir.join("orig.safetensors");
        musicdiff_model::io::save(&cfg().init(device), &path).unwrap();
        let out = dir.join("model");
        write(
            &out,
            &meta(WeightDtype::F16),
            &std::fs::read(&path).unwrap(),
            "",
        )
        .unwrap();
        out
    }

    #[test]
    fn damaged_or_foreign_directories_are_refused_with_the_file_named() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let out = f16_directory(dir.path(), &device);
        let m = read_meta(&out).unwrap();

        // A flipped byte in the weights: the hash catches it.
        let weights = out.join(WEIGHTS_FILE);
        let mut bytes = std::fs::read(&weights).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&weights, &bytes).unwrap();
        let err = load_weights(&out, &m, &device).err().unwrap().to_string();
        assert!(
            err.contains("SHA-256") && err.contains(WEIGHTS_FILE),
            "{err}"
        );

        // An unknown default sampler, another layout version, a directory that is not there.
        let json = out.join(META_FILE);
        let text = std::fs::read_to_string(&json).unwrap();
        std::fs::write(&json, text.replace("\"dpm++2m\"", "\"plms\"")).unwrap();
        let err = read_meta(&out).err().unwrap().to_string();
        assert!(err.contains("model.json") && err.contains("plms"), "{err}");
        std::fs::write(&json, text.replace(FORMAT, "musicdiff-model-0")).unwrap();
        let err = read_meta(&out).err().unwrap().to_string();
        assert!(
            err.contains("model.json") && err.contains("musicdiff-model-0"),
            "{err}"
        );
        let err = read_meta(&dir.path().join("nope")).err().unwrap();
        assert!(matches!(err, PipelineError::Missing { .. }), "{err}");
    }

    #[test]
    fn a_model_directory_with_nan_weights_is_refused() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let out = f16_directory(dir.path(), &device);
        // A NaN poked into one tensor, and the hash in model.json made to match, so that only
        // a check of the values can catch it.
        let weights = out.join(WEIGHTS_FILE);
        let mut bytes = std::fs::read(&weights).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let view = st.tensor("blocks.0.mlp.fc1.weight").unwrap();
        let at = view.data().as_ptr() as usize - bytes.as_ptr() as usize + 2;
        bytes[at..at + 2].copy_from_slice(&half::f16::NAN.to_le_bytes());
        std::fs::write(&weights, &bytes).unwrap();
        let mut m = read_meta(&out).unwrap();
        m.weights.sha256 = sha256_hex(&bytes);
        std::fs::write(out.join(META_FILE), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        let m = read_meta(&out).unwrap();
        let err = load_weights(&out, &m, &device).err().unwrap();
        assert!(err.is_bad_input(), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(WEIGHTS_FILE)
                && msg.contains("blocks.0.mlp.fc1.weight")
                && msg.contains("NaN"),
            "{msg}"
        );
    }

    #[test]
    fn writing_the_same_weights_twice_gives_the_same_bytes() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orig.safetensors");
        musicdiff_model::io::save(&cfg().init(&device), &path).unwrap();
        let orig = std::fs::read(&path).unwrap();
        let hashes: Vec<String> = (0..4)
            .map(|i| {
                let out = dir.path().join(format!("m{i}"));
                write(&out, &meta(WeightDtype::F16), &orig, "").unwrap();
                read_meta(&out).unwrap().weights.sha256
            })
            .collect();
        assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    }
}
