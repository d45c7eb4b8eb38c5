//! The MTT musicnn tagger as musicdiff's evaluation uses it (Pons & Serra, "musicnn:
//! Pre-trained convolutional neural networks for music audio tagging", ISMIR 2019 LBD): audio at
//! any sample rate in, per-patch tag probabilities and embeddings out, averaged over patches as
//! musicnn's `tagger.top_tags` does. Equivalent to `musicnn.extractor.extractor(file,
//! model='MTT_musicnn', extract_features=True)` (docs/musicnn-port.md), except that every
//! patch's penultimate vector is its own (the package repeats patch 0's, §5.7) and that a clip
//! shorter than one patch is zero-padded instead of crashing.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use musicdiff_common::NotFound;
use musicdiff_dsp::audio::resample;

use crate::error::{JudgeError, Result};
use crate::mel::{self, MIN_SAMPLES, MusicnnMel, N_MELS};
use crate::network::{MusicnnNet, NetOutput, PENULTIMATE, POOLED, TAGS};

pub use crate::mel::{PATCH_FRAMES, SAMPLE_RATE};

/// The weights file inside the musicnn asset directory.
pub const WEIGHTS_FILE: &str = "mtt_musicnn.safetensors";
/// Patches per forward pass: bounds memory (~40 MB of activations per patch) while keeping
/// the convolutions batched.
const MAX_BATCH: usize = 16;

/// The 50 MagnaTagATune tags (musicnn `configuration.MTT_LABELS`); index = output unit.
pub const MTT_TAGS: [&str; TAGS] = [
    "guitar",
    "classical",
    "slow",
    "techno",
    "strings",
    "drums",
    "electronic",
    "rock",
    "fast",
    "piano",
    "ambient",
    "beat",
    "violin",
    "vocal",
    "synth",
    "female",
    "indian",
    "opera",
    "male",
    "singing",
    "vocals",
    "no vocals",
    "harpsichord",
    "loud",
    "quiet",
    "flute",
    "woman",
    "male vocal",
    "no vocal",
    "pop",
    "soft",
    "sitar",
    "solo",
    "man",
    "classic",
    "choir",
    "voice",
    "new age",
    "dance",
    "male voice",
    "female vocal",
    "beats",
    "harp",
    "cello",
    "no voice",
    "weird",
    "country",
    "metal",
    "female voice",
    "choral",
];

/// The network's outputs for one 187-frame patch.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOutput {
    /// Sigmoid probabilities of [`MTT_TAGS`] (50).
    pub taggram: Vec<f32>,
    /// The 200-unit dense layer after ReLU and batch norm (musicnn's `penultimate`).
    pub penultimate: Vec<f32>,
    /// Mean over time of the 753 front-end and mid-end features (musicnn's `mean_pool`).
    pub mean_pool: Vec<f32>,
    /// Max over time of the same 753 features (musicnn's `max_pool`).
    pub max_pool: Vec<f32>,
}

/// Every patch of one clip, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub patches: Vec<PatchOutput>,
}

impl Analysis {
    /// Tag probabilities averaged over patches (musicnn's `top_tags` ranks these); 50 values.
    /// Empty when there are no patches ([`Musicnn::analyse`] always gives at least one).
    pub fn tags(&self) -> Vec<f32> {
        self.mean_of(|p| &p.taggram)
    }

    /// The penultimate layer averaged over patches: the clip's 200-dimensional embedding.
    /// Empty when there are no patches.
    pub fn embedding(&self) -> Vec<f32> {
        self.mean_of(|p| &p.penultimate)
    }

    fn mean_of(&self, field: impl Fn(&PatchOutput) -> &Vec<f32>) -> Vec<f32> {
        let Some(first) = self.patches.first() else {
            return Vec::new();
        };
        let mut sum = vec![0f64; field(first).len()];
        for p in &self.patches {
            for (s, &v) in sum.iter_mut().zip(field(p)) {
                *s += v as f64;
            }
        }
        let n = self.patches.len() as f64;
        sum.into_iter().map(|s| (s / n) as f32).collect()
    }
}

/// MTT musicnn, loaded once: the mel front end and the network on the CPU backend.
pub struct Musicnn {
    net: MusicnnNet,
    mel: MusicnnMel,
    device: Device,
}

impl Musicnn {
    /// Loads `dir/mtt_musicnn.safetensors` (the installed asset directory, e.g.
    /// `assets/musicnn`, as [`Musicnn::locate`] finds it).
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(WEIGHTS_FILE);
        if !path.is_file() {
            return Err(missing(vec![path]).into());
        }
        let device = Device::flex();
        Ok(Self {
            net: MusicnnNet::load(&path, &device)?,
            mel: MusicnnMel::new()?,
            device,
        })
    }

    /// The musicnn asset directory: `explicit` when given (taken at its word), else
    /// `musicnn/` in the assets directory found as every asset is (`$MUSICDIFF_ASSETS`, then
    /// beside the binary or an ancestor, then the working directory). The error lists where it
    /// looked and says to run `scripts/fetch-assets.sh`.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
        match explicit {
            Some(dir) => {
                let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
                if dir.join(WEIGHTS_FILE).is_file() {
                    Ok(dir)
                } else {
                    Err(missing(vec![dir.join(WEIGHTS_FILE)]).into())
                }
            }
            None => Ok(musicdiff_common::assets::musicnn()?),
        }
    }

    /// Analyses mono `audio` at `sample_rate`: resampled to 16 kHz (rubato, as every resample
    /// in musicdiff; musicnn used resampy's kaiser_best, so non-16 kHz input differs slightly
    /// in its top octave), musicnn's log-mel (`crate::mel`), 187-frame patches every
    /// `patch_hop` frames (187: musicnn's default, non-overlapping; the remainder shorter than a
    /// patch is dropped), one batched forward pass.
    ///
    /// Audio shorter than one patch (47,616 samples at 16 kHz, 2.98 s) is zero-padded at the end
    /// to exactly one patch, where musicnn itself would fail; its tags then describe the clip
    /// followed by silence. Empty or non-finite audio and a zero hop are errors.
    pub fn analyse(&self, audio: &[f32], sample_rate: u32, patch_hop: usize) -> Result<Analysis> {
        if audio.is_empty() {
            return Err(JudgeError::BadInput("no audio samples".into()));
        }
        if patch_hop == 0 {
            return Err(JudgeError::BadInput(
                "patch hop must be at least one frame".into(),
            ));
        }
        if let Some(i) = audio.iter().position(|v| !v.is_finite()) {
            return Err(JudgeError::BadInput(format!(
                "sample {i} is not a finite number"
            )));
        }
        let mut y = resample(audio, sample_rate, SAMPLE_RATE)?;
        if y.len() < MIN_SAMPLES {
            y.resize(MIN_SAMPLES, 0.0);
        }
        let log_mel = self.mel.log_mel(&y); // [T, 96]
        let starts = mel::patch_starts(mel::n_frames(y.len()), patch_hop);
        let patch = PATCH_FRAMES * N_MELS;
        let mut x = Vec::with_capacity(starts.len() * patch);
        for &s in &starts {
            x.extend_from_slice(&log_mel[s * N_MELS..s * N_MELS + patch]);
        }
        let patches = self.forward_patches(x, starts.len())?;
        Ok(Analysis { patches })
    }

    /// The network alone on `patches` log-mel patches `x: [P, 187, 96]` (row-major, as
    /// musicnn's `batch_data` makes them from 16 kHz audio), in batches of up to 16.
    pub fn forward_patches(&self, x: Vec<f32>, patches: usize) -> Result<Vec<PatchOutput>> {
        let patch = PATCH_FRAMES * N_MELS;
        if patches == 0 || x.len() != patches * patch {
            return Err(JudgeError::BadInput(format!(
                "{} values are not {patches} patches of [{PATCH_FRAMES}, {N_MELS}]",
                x.len()
            )));
        }
        let mut out = Vec::with_capacity(patches);
        for chunk in x.chunks(MAX_BATCH * patch) {
            let b = chunk.len() / patch;
            let input = Tensor::<3>::from_data(
                TensorData::new(chunk.to_vec(), [b, PATCH_FRAMES, N_MELS]),
                &self.device,
            );
            let NetOutput {
                taggram,
                penultimate,
                mean_pool,
                max_pool,
            } = self.net.forward(input);
            let (t, p, mean, max) = (
                rows(taggram, TAGS),
                rows(penultimate, PENULTIMATE),
                rows(mean_pool, POOLED),
                rows(max_pool, POOLED),
            );
            for i in 0..b {
                out.push(PatchOutput {
                    taggram: t[i].to_vec(),
                    penultimate: p[i].to_vec(),
                    mean_pool: mean[i].to_vec(),
                    max_pool: max[i].to_vec(),
                });
            }
        }
        Ok(out)
    }
}

/// A `[B, width]` tensor's rows.
fn rows(t: Tensor<2>, width: usize) -> Vec<Vec<f32>> {
    let v: Vec<f32> = t
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 after conversion");
    v.chunks(width).map(<[f32]>::to_vec).collect()
}

fn missing(looked: Vec<PathBuf>) -> NotFound {
    NotFound {
        what: "the MTT musicnn weights".into(),
        looked,
        hint: "install them with scripts/fetch-assets.sh (or set MUSICDIFF_ASSETS)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(tags: &[[f32; 2]]) -> Analysis {
        Analysis {
            patches: tags
                .iter()
                .map(|t| PatchOutput {
                    taggram: t.to_vec(),
                    penultimate: t.iter().map(|v| v * 2.0).collect(),
                    mean_pool: vec![],
                    max_pool: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn tags_and_embedding_average_over_patches() {
        let a = analysis(&[[0.2, 0.4], [0.6, 1.0]]);
        assert_eq!(a.tags(), [0.4, 0.7]);
        assert_eq!(a.embedding(), [0.8, 1.4]);
        assert!(analysis(&[]).tags().is_empty());
    }

    #[test]
    fn the_tag_list_is_musicnns() {
        assert_eq!(MTT_TAGS.len(), 50);
        assert_eq!(MTT_TAGS[0], "guitar");
        assert_eq!(MTT_TAGS[21], "no vocals");
        assert_eq!(MTT_TAGS[37], "new age");
        assert_eq!(MTT_TAGS[49], "choral");
    }

    #[test]
    fn a_missing_weights_file_names_where_it_looked_and_the_fix() {
        let dir = std::env::temp_dir().join("musicdiff-judge-no-such-dir");
        let Err(e) = Musicnn::load(&dir) else {
            panic!("loaded from nowhere")
        };
        let msg = e.to_string();
        assert!(e.is_bad_input());
        assert!(
            msg.contains(&dir.join(WEIGHTS_FILE).display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("scripts/fetch-assets.sh"), "{msg}");
        let e = Musicnn::locate(Some(&dir)).unwrap_err();
        assert!(e.to_string().contains("mtt_musicnn.safetensors"), "{e}");
    }

    #[test]
    fn one_loaded_model_can_serve_several_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Musicnn>();
    }
}
