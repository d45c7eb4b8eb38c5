//! The training configuration (`configs/train/*.toml`): the model architecture, the optimiser
//! and its schedule, the JEN-1 mask mix, conditioning dropout for classifier-free guidance,
//! and how often to log, evaluate, checkpoint and render samples. Every checkpoint stores the
//! whole configuration; resuming checks that it has not changed.

use std::path::Path;

use musicdiff_diffusion::Objective;
pub use musicdiff_diffusion::Weighting;
use musicdiff_diffusion::masks::MaskMix;
use musicdiff_model::DitConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// AdamW (Loshchilov & Hutter 2019) with linear warmup and cosine decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub batch_size: usize,
    /// Length of the learning-rate schedule in optimiser steps (training may stop earlier with
    /// `--max-steps` or `--time-budget` and resume later on the same schedule).
    pub steps: u64,
    pub lr: f64,
    pub warmup_steps: u64,
    /// The cosine decays to `lr * min_lr_ratio`.
    pub min_lr_ratio: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clipping threshold (0 disables).
    pub grad_clip: f64,
    /// EMA decay; the effective decay warms up as `min(decay, (1 + s) / (10 + s))`.
    pub ema_decay: f64,
}

/// Shares of each training task in a batch (JEN-1's multi-task masks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    pub full: f64,
    pub spans: f64,
    pub prefix: f64,
    /// Many short gaps (`MaskKind::Scattered`); absent in older configs: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scattered: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl MaskConfig {
    pub fn mix(&self) -> MaskMix {
        MaskMix {
            full: self.full,
            spans: self.spans,
            prefix: self.prefix,
            scattered: self.scattered,
        }
    }
}

/// Probability of replacing each conditioning part by its learned null during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropoutConfig {
    /// All parts at once (the unconditional model of classifier-free guidance).
    pub all: f64,
    pub text: f64,
    pub genre: f64,
    pub artist: f64,
    pub timing: f64,
    /// Each musical control (models with `controls`), dropped independently.
    #[serde(default = "control_dropout")]
    pub bpm: f64,
    #[serde(default = "control_dropout")]
    pub key: f64,
    #[serde(default = "control_dropout")]
    pub meter: f64,
}

/// Dropout of each musical control when a config does not say.
impl DropoutConfig {
    /// No random dropout: every part kept, or (`drop_all`) every example unconditioned.
    pub fn fixed(drop_all: bool) -> Self {
        Self {
            all: if drop_all { 1.0 } else { 0.0 },
            text: 0.0,
            genre: 0.0,
            artist: 0.0,
            timing: 0.0,
            bpm: 0.0,
            key: 0.0,
            meter: 0.0,
        }
    }
}

fn control_dropout() -> f64 {
    0.2
}

/// Diffusion-specific training choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffusionConfig {
    /// The clamp `gamma` of the loss weighting; 0 turns weighting off (plain MSE of what the
    /// model predicts, `v` or `x0`).
    pub min_snr_gamma: f64,
    /// The loss weighting over noise levels (older runs: `min-snr`).
    #[serde(default)]
    pub weighting: Weighting,
}

/// Logging, evaluation, checkpoints and samples, in optimiser steps (0 = never).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub seed: u64,
    pub log_every: u64,
    pub eval_every: u64,
    /// Held-out batches per task at each evaluation.
    pub eval_batches: usize,
    pub checkpoint_every: u64,
    /// Checkpoints kept on disk (the oldest are removed).
    pub keep_checkpoints: usize,
    pub sample_every: u64,
    pub sample_steps: usize,
    pub sample_guidance: f32,
    /// Prompts rendered at each sampling step.
    pub sample_prompts: Vec<String>,
    /// Shards decoded at once by the loader.
    pub resident_shards: usize,
}

/// Everything one training run needs besides the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Free text: what the configuration is for and its parameter count.
    #[serde(default)]
    pub description: String,
    pub model: DitConfig,
    pub optim: OptimConfig,
    pub masks: MaskConfig,
    pub dropout: DropoutConfig,
    pub diffusion: DiffusionConfig,
    pub run: RunConfig,
    /// The conversion term through the frozen vocoder (off unless `weight` > 0).
    #[serde(default)]
    pub conversion: crate::conversion::ConversionConfig,
}

impl TrainConfig {
    /// The objective this run trains: the model's schedule and prediction with the
    /// `[diffusion]` loss weighting.
    pub fn objective(&self) -> Objective {
        self.model
            .objective()
            .weighted(self.diffusion.weighting, self.diffusion.min_snr_gamma)
    }

    /// A config that only makes batches for `model` without training it (the vocoder's
    /// predicted-mel pairs): the full-generation task, no conditioning dropout, the default
    /// loss weighting; its optimiser and run settings are inert zeros and it does not validate.
    pub fn for_inference(model: DitConfig) -> Self {
        Self {
            description: "batches for inference".into(),
            model,
            optim: OptimConfig {
                batch_size: 1,
                steps: 0,
                lr: 0.0,
                warmup_steps: 0,
                min_lr_ratio: 0.0,
                beta1: 0.0,
                beta2: 0.0,
                eps: 0.0,
                weight_decay: 0.0,
                grad_clip: 0.0,
                ema_decay: 0.0,
            },
            masks: MaskConfig {
                full: 1.0,
                spans: 0.0,
                prefix: 0.0,
                scattered: 0.0,
            },
            dropout: DropoutConfig::fixed(false),
            diffusion: DiffusionConfig {
                min_snr_gamma: 0.0,
                weighting: Weighting::default(),
            },
            run: RunConfig {
                seed: 0,
                log_every: 0,
                eval_every: 0,
                eval_batches: 0,
                checkpoint_every: 0,
                keep_checkpoints: 0,
                sample_every: 0,
                sample_steps: 0,
                sample_guidance: 0.0,
                sample_prompts: Vec::new(),
                resident_shards: 4,
            },
            conversion: Default::default(),
        }
    }

    /// This config with conditioning dropout fixed for evaluation: every part kept
    /// (`conditioned`), or every example unconditioned. Either way the batch draws its
    /// dropout chances, so both see the same crops, times and noise from the same generator.
    pub fn for_evaluation(&self, conditioned: bool) -> Self {
        let mut cfg = self.clone();
        cfg.dropout = DropoutConfig::fixed(!conditioned);
        cfg
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let cfg: Self = toml::from_str(&text).map_err(|e| TrainError::Config {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        cfg.validate().map_err(|detail| TrainError::Config {
            path: path.to_path_buf(),
            detail,
        })?;
        Ok(cfg)
    }

    /// Checks the values; the error names the offending key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.model.validate().map_err(|e| e.to_string())?;
        self.conversion.validate()?;
        self.optim.validate()?;
        for (name, v) in [
            ("dropout.all", self.dropout.all),
            ("dropout.text", self.dropout.text),
            ("dropout.genre", self.dropout.genre),
            ("dropout.artist", self.dropout.artist),
            ("dropout.timing", self.dropout.timing),
            ("dropout.bpm", self.dropout.bpm),
            ("dropout.key", self.dropout.key),
            ("dropout.meter", self.dropout.meter),
        ] {
            unit(name, v)?;
        }
        let m = &self.masks;
        if m.full < 0.0
            || m.spans < 0.0
            || m.prefix < 0.0
            || m.scattered < 0.0
            || m.full + m.spans + m.prefix + m.scattered <= 0.0
        {
            return Err("masks: shares must be non-negative with a positive sum".into());
        }
        if self.diffusion.min_snr_gamma < 0.0 {
            return Err("diffusion.min_snr_gamma must not be negative".into());
        }
        if self.run.sample_every > 0
            && (self.run.sample_steps == 0 || self.run.sample_prompts.is_empty())
        {
            return Err("run: sampling needs sample_steps >= 1 and at least one prompt".into());
        }
        if self.run.keep_checkpoints == 0 {
            return Err("run.keep_checkpoints must be at least 1".into());
        }
        Ok(())
    }

    /// Learning rate at optimiser step `step` (0-based): linear warmup from `lr / warmup` to
    /// `lr`, then a half cosine down to `lr * min_lr_ratio` at `steps`.
    pub fn lr_at(&self, step: u64) -> f64 {
        self.optim.lr_at(step)
    }
}

/// `Err` naming `name` unless `v` is in [0, 1].
fn unit(name: &str, v: f64) -> std::result::Result<(), String> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(format!("{name} = {v} must be in [0, 1]"))
    }
}

impl OptimConfig {
    /// Checks the values; the error names the offending key (`optim.*`).
    pub fn validate(&self) -> std::result::Result<(), String> {
        let o = self;
        if o.batch_size == 0 {
            return Err("optim.batch_size must be at least 1".into());
        }
        if o.steps == 0 {
            return Err("optim.steps must be at least 1".into());
        }
        if !(o.lr > 0.0 && o.lr < 1.0) {
            return Err(format!("optim.lr = {} must be in (0, 1)", o.lr));
        }
        if o.eps.is_nan() || o.eps <= 0.0 || o.grad_clip < 0.0 || o.weight_decay < 0.0 {
            return Err(
                "optim.eps must be positive; grad_clip and weight_decay not negative".into(),
            );
        }
        for (name, v) in [
            ("optim.min_lr_ratio", o.min_lr_ratio),
            ("optim.beta1", o.beta1),
            ("optim.beta2", o.beta2),
            ("optim.ema_decay", o.ema_decay),
        ] {
            unit(name, v)?;
        }
        Ok(())
    }

    /// Learning rate of optimiser step `step` (0-based): linear warm-up over `warmup_steps`,
    /// then a cosine from `lr` down to `lr * min_lr_ratio` at `steps`.
    pub fn lr_at(&self, step: u64) -> f64 {
        let o = self;
        if step < o.warmup_steps {
            return o.lr * (step + 1) as f64 / o.warmup_steps as f64;
        }
        let span = o.steps.saturating_sub(o.warmup_steps).max(1) as f64;
        let p = ((step - o.warmup_steps) as f64 / span).min(1.0);
        let min = o.lr * o.min_lr_ratio;
        min + (o.lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> TrainConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs/train")
            .join(format!("{name}.toml"));
        TrainConfig::load(&path).unwrap()
    }

    #[test]
    fn evaluation_configs_keep_or_drop_all_conditioning_and_nothing_else() {
        let cfg = shipped("small");
        let (keep, drop) = (cfg.for_evaluation(true), cfg.for_evaluation(false));
        let d = &keep.dropout;
        assert_eq!([d.all, d.text, d.genre, d.artist, d.timing], [0.0; 5]);
        assert_eq!(drop.dropout.all, 1.0);
        assert_eq!(drop.dropout.text, 0.0);
        for c in [keep, drop] {
            assert_eq!(
                (&c.model, &c.optim, &c.masks),
                (&cfg.model, &cfg.optim, &cfg.masks)
            );
            assert_eq!((&c.diffusion, &c.run), (&cfg.diffusion, &cfg.run));
        }
    }

    /// Every config under configs/train, by file stem.
    fn shipped_names() -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/train");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let p = e.unwrap().path();
                (p.extension()? == "toml").then(|| p.file_stem().unwrap().to_string_lossy().into())
            })
            .collect();
        names.sort();
        assert!(names.len() >= 4, "{names:?}");
        names
    }

    #[test]
    fn shipped_configs_load_and_state_their_parameter_counts() {
        use burn::prelude::*;
        let device = Device::flex();
        for name in shipped_names() {
            let cfg = shipped(&name);
            let params = cfg.model.init(&device).num_params();
            // The description states the count in millions (M) or thousands (k).
            let stated = if params >= 1_000_000 {
                format!("{:.1} M parameters", params as f64 / 1e6)
            } else {
                format!("{:.1} k parameters", params as f64 / 1e3)
            };
            assert!(
                cfg.description.contains(&stated),
                "{name}: description must say \"{stated}\": {}",
                cfg.description
            );
        }
    }

    #[test]
    fn learning_rate_warms_up_then_decays() {
        let mut cfg = shipped("tiny");
        cfg.optim.warmup_steps = 10;
        cfg.optim.steps = 110;
        cfg.optim.lr = 1e-3;
        cfg.optim.min_lr_ratio = 0.1;
        assert!((cfg.lr_at(0) - 1e-4).abs() < 1e-12);
        assert!((cfg.lr_at(9) - 1e-3).abs() < 1e-12);
        assert!((cfg.lr_at(10) - 1e-3).abs() < 1e-12);
        assert!((cfg.lr_at(60) - 0.55e-3).abs() < 1e-9);
        assert!((cfg.lr_at(110) - 1e-4).abs() < 1e-12);
        assert!((cfg.lr_at(500) - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn bad_values_are_named() {
        let mut cfg = shipped("tiny");
        cfg.dropout.text = 1.5;
        assert!(cfg.validate().unwrap_err().contains("dropout.text"));
        let mut cfg = shipped("tiny");
        cfg.optim.batch_size = 0;
        assert!(cfg.validate().unwrap_err().contains("batch_size"));
    }
}
