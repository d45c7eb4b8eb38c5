//! The model configuration: a serde struct read from the `[model]` table of
//! `configs/train/*.toml` and stored in every checkpoint, so that weights are never read
//! without the architecture they belong to.

pub use musicdiff_diffusion::Prediction;
use musicdiff_diffusion::{CosineSchedule, Objective};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Which position information the audio tokens get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionEncoding {
    /// Added to the token embeddings (sinusoidal or learned, see [`AbsoluteKind`]).
    Absolute,
    /// Rotary embeddings on the self-attention queries and keys (Su et al., RoFormer, 2021).
    Relative,
    /// Both of the above.
    Both,
}

impl PositionEncoding {
    pub fn absolute(self) -> bool {
        matches!(self, Self::Absolute | Self::Both)
    }
    pub fn relative(self) -> bool {
        matches!(self, Self::Relative | Self::Both)
    }
}

/// How absolute positions are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AbsoluteKind {
    /// Fixed sines and cosines (Vaswani et al. 2017).
    Sinusoidal,
    /// A learned table of `tokens` rows.
    Learned,
}

/// Architecture of the diffusion transformer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DitConfig {
    /// Mel bands of the log-mel input (must match the prepared data).
    pub n_mels: usize,
    /// Consecutive frames in one token (P).
    pub patch_frames: usize,
    /// Frames in one window the model sees; a multiple of `patch_frames`.
    pub frames: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of DiT blocks.
    pub depth: usize,
    /// Attention heads (self and cross); `d_model / heads` must be even for RoPE.
    pub heads: usize,
    /// Hidden width of the MLP as a multiple of `d_model`.
    pub mlp_ratio: f64,
    /// Width of the text encoder's token states and sentence vectors (384 for MiniLM).
    pub text_dim: usize,
    /// Caption tokens kept for cross-attention (longer captions are cut).
    pub max_text_tokens: usize,
    pub position: PositionEncoding,
    pub absolute: AbsoluteKind,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// Timing conditioning divides seconds by this (Stable Audio's `max` of its
    /// NumberConditioner); values above it are clamped.
    pub max_seconds: f64,
    /// Add the projected sentence vector to the noise-level embedding that drives adaLN
    /// (pooled text in the global conditioning, as SD3 and Stable Audio do).
    pub pooled_text: bool,
    /// Hidden width of an MLP branch in the output head (`d -> head_hidden -> P M`, GELU, its
    /// output layer zero-initialised), added to the linear projection. A linear head from
    /// `d_model` reaches only a `d_model`-dimensional subspace of the `P M` values of a token,
    /// so with `d_model < P M` part of every output is left as the sampler's noise; the branch
    /// reaches all of it. Absent (as in models made before it existed): the linear head alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_hidden: Option<usize>,
    /// What the network predicts; `v` when absent.
    #[serde(default)]
    pub prediction: Prediction,
    /// SNR shift of the cosine noise schedule the model is trained and sampled with (the SNR at
    /// each time divided by its square; Hoogeboom et al. 2023). 1 (the default, and models
    /// made before it existed) is the plain cosine schedule.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub schedule_shift: f64,
    /// Musical controls (`musicdiff_dsp::controls`): tempo, key and meter as conditioning of
    /// their own, three tokens of the memory and a term of the global conditioning, each with a
    /// learned null for when it is unknown or dropped. Absent (models made before them): off.
    #[serde(default, skip_serializing_if = "is_false")]
    pub controls: bool,
    /// Channels of a convolutional stem along the mel axis inside each token (`freq::FreqStem`),
    /// added to the patch embedding; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freq_stem: Option<usize>,
    /// Channels of a convolutional refinement of the predicted patches along the mel axis
    /// (`freq::FreqTail`); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freq_tail: Option<usize>,
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn one() -> f64 {
    1.0
}

fn is_one(v: &f64) -> bool {
    *v == 1.0
}

impl DitConfig {
    /// The noise schedule the model is trained and sampled on.
    pub fn schedule(&self) -> CosineSchedule {
        CosineSchedule::shifted(self.schedule_shift)
    }

    /// Schedule and prediction: how the network's output is read at sampling time (training
    /// adds its loss weighting, `TrainConfig::objective`).
    pub fn objective(&self) -> Objective {
        Objective::new(self.schedule(), self.prediction)
    }

    /// Tokens in one window.
    pub fn tokens(&self) -> usize {
        self.frames / self.patch_frames
    }

    /// Values in one token (`patch_frames * n_mels`).
    pub fn patch_dim(&self) -> usize {
        self.patch_frames * self.n_mels
    }

    /// Hidden width of the MLP.
    pub fn mlp_hidden(&self) -> usize {
        ((self.d_model as f64) * self.mlp_ratio).round() as usize
    }

    /// Dimension of the space of token values the output head can produce:
    /// `min(P M, d_model + head_hidden)`. Below [`patch_dim`](Self::patch_dim) the model cannot
    /// remove the noise outside that space (see `head_hidden`).
    pub fn output_rank(&self) -> usize {
        (self.d_model + self.head_hidden.unwrap_or(0)).min(self.patch_dim())
    }

    /// Checks that the numbers describe a model that can be built.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: String| Err(ModelError::Config { field, reason });
        if self.n_mels == 0 || self.patch_frames == 0 || self.d_model == 0 || self.depth == 0 {
            return bad(
                "n_mels/patch_frames/d_model/depth",
                "must all be at least 1".into(),
            );
        }
        if self.frames == 0 || !self.frames.is_multiple_of(self.patch_frames) {
            return bad(
                "frames",
                format!(
                    "{} must be a positive multiple of patch_frames ({})",
                    self.frames, self.patch_frames
                ),
            );
        }
        if self.heads == 0 || !self.d_model.is_multiple_of(self.heads) {
            return bad(
                "heads",
                format!("{} must divide d_model ({})", self.heads, self.d_model),
            );
        }
        if self.position.relative() && !(self.d_model / self.heads).is_multiple_of(2) {
            return bad(
                "heads",
                format!(
                    "RoPE needs an even head width; d_model / heads = {}",
                    self.d_model / self.heads
                ),
            );
        }
        if !(self.mlp_ratio > 0.0 && self.mlp_ratio <= 16.0) {
            return bad(
                "mlp_ratio",
                format!("{} must be in (0, 16]", self.mlp_ratio),
            );
        }
        if self.freq_stem == Some(0) || self.freq_tail == Some(0) {
            return bad(
                "freq_stem/freq_tail",
                "channels must be at least 1 (leave the key out for none)".into(),
            );
        }
        if self.head_hidden == Some(0) {
            return bad(
                "head_hidden",
                "must be at least 1 (leave it out for a linear head)".into(),
            );
        }
        if self.text_dim == 0 || self.max_text_tokens == 0 {
            return bad("text_dim/max_text_tokens", "must be at least 1".into());
        }
        if !(self.schedule_shift.is_finite() && self.schedule_shift > 0.0) {
            return bad(
                "schedule_shift",
                format!("must be a positive number, got {}", self.schedule_shift),
            );
        }
        if !(self.max_seconds > 0.0 && self.rope_theta > 1.0) {
            return bad(
                "max_seconds/rope_theta",
                "max_seconds must be positive and rope_theta above 1".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A model small enough for unit tests.
    pub fn tiny() -> DitConfig {
        DitConfig {
            n_mels: 8,
            patch_frames: 2,
            frames: 16,
            d_model: 16,
            depth: 2,
            heads: 2,
            mlp_ratio: 2.0,
            text_dim: 6,
            max_text_tokens: 5,
            position: PositionEncoding::Both,
            absolute: AbsoluteKind::Learned,
            rope_theta: 10000.0,
            max_seconds: 60.0,
            pooled_text: true,
            head_hidden: None,
            prediction: Prediction::V,
            schedule_shift: 1.0,
            controls: false,
            freq_stem: None,
            freq_tail: None,
        }
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = tiny();
        assert!(c.validate().is_ok());
        c.frames = 15;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("frames"), "{e}");
        let mut c = tiny();
        c.heads = 3;
        assert!(c.validate().unwrap_err().to_string().contains("heads"));
        let mut c = tiny();
        c.d_model = 6;
        c.heads = 2; // head width 3 is odd
        assert!(c.validate().unwrap_err().to_string().contains("RoPE"));
        c.position = PositionEncoding::Absolute;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn output_rank_counts_the_head_branch() {
        let mut c = tiny(); // d 16 < P M = 16
        assert_eq!(c.patch_dim(), 16);
        assert_eq!(c.output_rank(), 16);
        c.d_model = 8;
        c.heads = 2;
        assert_eq!(c.output_rank(), 8);
        c.head_hidden = Some(32);
        assert_eq!(c.output_rank(), 16);
        c.head_hidden = Some(0);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("head_hidden")
        );
    }

    #[test]
    fn head_hidden_is_optional_in_files() {
        // A config written before the field existed still reads, with a linear head.
        let mut v = serde_json::to_value(tiny()).unwrap();
        assert!(v.get("head_hidden").is_none(), "None is not written");
        let c: DitConfig = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(c.head_hidden, None);
        v["head_hidden"] = 24.into();
        let c: DitConfig = serde_json::from_value(v).unwrap();
        assert_eq!(c.head_hidden, Some(24));
    }
}
