//! The DiT's weights on disk, through `musicdiff_weights` (the one owner of weights files:
//! safetensors with a fixed header order, written atomically). Loading checks that every
//! parameter of the configured architecture is present with its shape and that the file holds
//! nothing else, so a checkpoint is never read into a model it does not belong to;
//! [`first_non_finite`] finds NaN or infinite values for those who must refuse them.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;

use crate::config::DitConfig;
use crate::dit::Dit;
use crate::error::{ModelError, Result};

/// The `format` metadata of DiT weights files.
const FORMAT: &str = "musicdiff-dit";

impl From<musicdiff_weights::WeightsError> for ModelError {
    fn from(e: musicdiff_weights::WeightsError) -> Self {
        ModelError::Weights {
            path: e.path,
            detail: e.detail,
        }
    }
}

/// Writes `model`'s parameters to `path` (safetensors), replacing it atomically.
pub fn save(model: &Dit, path: &Path) -> Result<()> {
    Ok(musicdiff_weights::save(model, FORMAT, path)?)
}

/// Checks `cfg`, then reads the weights file `path` (a missing file is [`ModelError::Missing`]).
fn read_file(cfg: &DitConfig, path: &Path) -> Result<Vec<u8>> {
    cfg.validate()?;
    if !path.exists() {
        return Err(ModelError::Missing {
            path: path.to_path_buf(),
        });
    }
    std::fs::read(path).map_err(|e| ModelError::Weights {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Builds the architecture of `cfg` and reads its parameters from `path`.
pub fn load(cfg: &DitConfig, path: &Path, device: &Device) -> Result<Dit> {
    load_bytes(cfg, read_file(cfg, path)?, path, device)
}

/// Builds the architecture of `cfg` and reads its parameters from safetensors `bytes` (f32);
/// `path` names their origin in errors.
pub fn load_bytes(cfg: &DitConfig, bytes: Vec<u8>, path: &Path, device: &Device) -> Result<Dit> {
    let (model, fresh) = read_into(cfg, bytes, path, device, false)?;
    debug_assert!(fresh.is_empty());
    Ok(model)
}

/// Builds the architecture of `cfg` (seed the device first: the parameters the file lacks
/// keep their initial values) and reads every parameter `path` holds. Returns the model and
/// the names of the parameters left at their initial values. Anything in the file the model
/// has no place for, or of another shape, is an error: this continues a model with a part
/// added (the output head's branch, `DitConfig::head_hidden`), not one of another size.
pub fn load_partial(cfg: &DitConfig, path: &Path, device: &Device) -> Result<(Dit, Vec<String>)> {
    read_into(cfg, read_file(cfg, path)?, path, device, true)
}

/// [`load_partial`] from safetensors `bytes` (f32) read from `path`.
pub fn load_partial_bytes(
    cfg: &DitConfig,
    bytes: Vec<u8>,
    path: &Path,
    device: &Device,
) -> Result<(Dit, Vec<String>)> {
    read_into(cfg, bytes, path, device, true)
}

fn read_into(
    cfg: &DitConfig,
    bytes: Vec<u8>,
    path: &Path,
    device: &Device,
    partial: bool,
) -> Result<(Dit, Vec<String>)> {
    cfg.validate()?;
    let describe = format!("{} blocks, d_model {}", cfg.depth, cfg.d_model);
    let (model, loaded) =
        musicdiff_weights::load_into(cfg.init(device), bytes, path, partial, &describe)?;
    Ok((model, loaded.missing))
}

/// Every parameter of `model` by its name in a weights file, with its shape (what
/// `bench/dit_params.json` records for the PyTorch benchmark peer).
pub fn parameter_table(model: &Dit) -> Result<BTreeMap<String, Vec<usize>>> {
    Ok(musicdiff_weights::parameter_table(model)?)
}

/// The first tensor (in name order) of safetensors `bytes` that holds a NaN or infinite value,
/// with that value.
pub fn first_non_finite(bytes: &[u8], path: &Path) -> Result<Option<(String, f32)>> {
    Ok(musicdiff_weights::first_non_finite(bytes, path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::tiny;

    /// The model's output for a fixed input with empty conditioning, flattened.
    fn probe(model: &Dit, cfg: &DitConfig, device: &Device) -> Vec<f32> {
        let (n, pd) = (cfg.tokens(), cfg.patch_dim());
        let noisy: Vec<f32> = (0..n * pd).map(|i| (i % 7) as f32 / 3.0 - 1.0).collect();
        let input = crate::DitInput {
            noisy: Tensor::from_data(TensorData::new(noisy, [1, n, pd]), device),
            known: Tensor::zeros([1, n, pd], device),
            mask: Tensor::zeros([1, n, 1], device),
            t: Tensor::from_floats([0.3], device),
        };
        let cond = crate::Conditioning::from_examples(
            &[crate::CondExample {
                tokens: vec![0.1; cfg.text_dim],
                n_tokens: 1,
                sentence: vec![0.2; cfg.text_dim],
                genre: None,
                artist: None,
                seconds_start: 0.0,
                seconds_total: 4.0,
                controls: Default::default(),
                keep: crate::Keep::ALL,
            }],
            cfg,
            device,
        )
        .unwrap();
        model
            .forward(input, &cond)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    /// A tiny model saved to a temporary `w.safetensors`.
    fn saved_tiny() -> (tempfile::TempDir, std::path::PathBuf, DitConfig, Dit) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let cfg = tiny();
        // Zero-initialised layers moved off zero (dit's test jitter), so outputs differ.
        let device = Device::flex();
        device.seed(3);
        let model = cfg.init(&device).map(&mut crate::dit::tests::Jitter);
        save(&model, &path).unwrap();
        (dir, path, cfg, model)
    }

    #[test]
    fn save_then_load_gives_the_same_model_and_a_foreign_file_is_refused() {
        let (dir, path, cfg, model) = saved_tiny();
        let device = Device::flex();
        let back = load(&cfg, &path, &device).unwrap();
        assert_eq!(probe(&model, &cfg, &device), probe(&back, &cfg, &device));
        let other = DitConfig { depth: 1, ..tiny() };
        let e = load(&other, &path, &device).unwrap_err().to_string();
        assert!(
            e.contains("w.safetensors") && e.contains("unexpected"),
            "{e}"
        );
        let e = load(&cfg, &dir.path().join("none"), &device).unwrap_err();
        assert!(matches!(e, ModelError::Missing { .. }), "{e}");
    }

    #[test]
    fn a_model_continues_with_an_added_head_branch_unchanged() {
        let (_dir, path, cfg, model) = saved_tiny();
        let device = Device::flex();
        let wider = DitConfig {
            head_hidden: Some(24),
            ..tiny()
        };
        // A full load refuses the file: the branch is missing from it.
        let e = load(&wider, &path, &device).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains("branch"), "{e}");
        device.seed(9);
        let (grown, fresh) = load_partial(&wider, &path, &device).unwrap();
        let mut fresh = fresh;
        fresh.sort();
        assert_eq!(
            fresh,
            [
                "last.branch.fc1.bias",
                "last.branch.fc1.weight",
                "last.branch.fc2.bias",
                "last.branch.fc2.weight"
            ]
        );
        // The branch's output layer starts at zero, so the function is the saved one.
        let (a, b) = (probe(&model, &cfg, &device), probe(&grown, &wider, &device));
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5));
        // Extra parameters in the file are still refused.
        save(&grown, &path).unwrap();
        let e = load_partial(&cfg, &path, &device).unwrap_err().to_string();
        assert!(e.contains("unexpected"), "{e}");
    }

    #[test]
    fn a_model_continues_with_frequency_convolutions_added_unchanged() {
        let (_dir, path, cfg, model) = saved_tiny();
        let device = Device::flex();
        let grown_cfg = DitConfig {
            freq_stem: Some(4),
            freq_tail: Some(3),
            ..tiny()
        };
        device.seed(5);
        let (grown, fresh) = load_partial(&grown_cfg, &path, &device).unwrap();
        assert!(
            fresh
                .iter()
                .all(|n| n.starts_with("stem.") || n.starts_with("tail.")),
            "{fresh:?}"
        );
        assert_eq!(fresh.len(), 10, "{fresh:?}");
        // The stem's projection and the tail's last convolution start at zero: same function.
        let (a, b) = (
            probe(&model, &cfg, &device),
            probe(&grown, &grown_cfg, &device),
        );
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5));
    }

    #[test]
    fn a_depth_mismatch_is_reported_in_one_line() {
        let (_dir, path, _, _) = saved_tiny();
        let device = Device::flex();
        let deeper = DitConfig { depth: 3, ..tiny() };
        let e = load(&deeper, &path, &device).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.contains("w.safetensors") && e.contains("tensors missing (first: blocks.2."),
            "{e}"
        );
        let shallower = DitConfig { depth: 1, ..tiny() };
        let e = load(&shallower, &path, &device).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("unexpected (first: blocks.1."), "{e}");
    }

    #[test]
    fn saving_the_same_weights_twice_gives_the_same_bytes() {
        let (dir, path, _, model) = saved_tiny();
        let first = std::fs::read(&path).unwrap();
        // burn-store's metadata map has three keys in a random order per save: several saves
        // all agree only if the header's order is fixed.
        for i in 0..4 {
            let again = dir.path().join(format!("again{i}.safetensors"));
            save(&model, &again).unwrap();
            assert!(std::fs::read(&again).unwrap() == first, "save {i} differs");
        }
        // Still a valid file holding the same tensors.
        assert!(first_non_finite(&first, &path).unwrap().is_none());
    }

    #[test]
    fn non_finite_values_are_found_by_tensor() {
        let (_dir, path, _, _) = saved_tiny();
        let mut bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let view = st.tensor("blocks.1.mlp.fc2.weight").unwrap();
        let at = view.data().as_ptr() as usize - bytes.as_ptr() as usize + 8;
        bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        let (name, v) = first_non_finite(&bytes, &path).unwrap().unwrap();
        assert_eq!(name, "blocks.1.mlp.fc2.weight");
        assert!(v.is_nan());
    }
}
