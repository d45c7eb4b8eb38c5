//! From a loader batch to what one training step needs, with every random choice drawn from
//! the run's own seeded generator (so a resumed run draws the same numbers):
//!
//! 1. crop each window to the model's `frames` (at a random offset inside its audio) and cut
//!    it into tokens of `P` frames;
//! 2. draw the diffusion time per example, stratified over the batch (one uniform shifted by
//!    `i / B`, as Kingma et al.'s VDM does, for a lower-variance loss);
//! 3. draw a JEN-1 mask per example from the configured mix (full / spans / prefix);
//! 4. noise: `x_t = alpha x0 + sigma eps` and the target the model predicts (`v` or `x0`),
//!    both from the run's [`Objective`];
//! 5. drop conditioning parts for classifier-free guidance;
//! 6. the loss: MSE over generated tokens only, per example weighted by noise level
//!    ([`Objective::weight`]: min-SNR-gamma, or the clamped v weight that keeps pure noise in
//!    play).

use std::collections::HashMap;

use burn::prelude::*;
use musicdiff_common::Rng;
use musicdiff_dataset::Batch;
use musicdiff_diffusion::Objective;
use musicdiff_diffusion::masks::{self, MaskKind};
use musicdiff_model::patch::patchify;
use musicdiff_model::{CondExample, Conditioning, DitInput, Keep};
use musicdiff_text::TextEncoder;

use crate::config::TrainConfig;
use crate::error::Result;

/// MiniLM sentence vectors of genre and artist strings, encoded once each.
#[derive(Default)]
pub struct FieldVectors(HashMap<String, Vec<f32>>);

impl FieldVectors {
    /// Encodes the fields of `batch` not seen before.
    pub fn add(&mut self, batch: &Batch, encoder: &TextEncoder) -> Result<()> {
        let mut new: Vec<&str> = batch
            .genres
            .iter()
            .chain(&batch.artists)
            .flatten()
            .map(String::as_str)
            .filter(|s| !self.0.contains_key(*s))
            .collect();
        new.sort_unstable();
        new.dedup();
        if new.is_empty() {
            return Ok(());
        }
        let enc = encoder.encode(&new)?;
        let v: Vec<f32> = enc
            .sentence
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 data");
        let d = encoder.dim();
        for (i, s) in new.iter().enumerate() {
            self.0.insert(s.to_string(), v[i * d..(i + 1) * d].to_vec());
        }
        Ok(())
    }

    pub fn get(&self, s: &Option<String>) -> Option<Vec<f32>> {
        s.as_ref().and_then(|s| self.0.get(s).cloned())
    }
}

/// One training (or evaluation) step's tensors.
pub struct StepBatch {
    pub input: DitInput,
    pub cond: Conditioning,
    /// The target `[B, N, P M]`: `v`, or `x0` for an x0-predicting model.
    pub target: Tensor<3>,
    /// `[B, N]`: 1 where the token is generated (and so counts in the loss).
    pub generate: Tensor<2>,
    /// Per-example loss weight `[B]`.
    pub weight: Tensor<1>,
    /// The task each example trains.
    pub kinds: Vec<MaskKind>,
    /// Each example's diffusion time and the frame of its window the crop starts at.
    pub times: Vec<f32>,
    pub crop_offsets: Vec<usize>,
}

/// What a batch draws besides its random choices: training draws everything; evaluation fixes
/// the task; the vocoder's predicted-mel pairs (`crate::predicted`) also confine the times.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Draw {
    /// Every example trains this task (else each draws one from the mix).
    pub task: Option<MaskKind>,
    /// Diffusion times stratified over `[lo, hi)` instead of `[0, 1)`.
    pub times: Option<(f64, f64)>,
}

impl Draw {
    /// Training: tasks from the mix, times over `[0, 1)`.
    pub const ANY: Draw = Draw {
        task: None,
        times: None,
    };

    /// Every example trains `kind`.
    pub fn task(kind: MaskKind) -> Self {
        Self {
            task: Some(kind),
            times: None,
        }
    }
}

/// Builds a step batch as `draw` says. `hop_seconds` is the duration of one frame.
pub fn make(
    batch: &Batch,
    cfg: &TrainConfig,
    rng: &mut Rng,
    fields: &FieldVectors,
    hop_seconds: f64,
    draw: Draw,
    device: &Device,
) -> Result<StepBatch> {
    let m = &cfg.model;
    let (b, f, p, n_mels) = (batch.size, m.frames, m.patch_frames, m.n_mels);
    let (n, d) = (m.tokens(), m.patch_dim());
    let objective: Objective = cfg.objective();
    let mix = cfg.masks.mix();
    let drop = &cfg.dropout;
    let stratum = rng.uniform();
    let (mut noisy, mut known, mut target) = (
        Vec::with_capacity(b * n * d),
        Vec::with_capacity(b * n * d),
        Vec::with_capacity(b * n * d),
    );
    let (mut mask, mut generate) = (Vec::with_capacity(b * n), Vec::with_capacity(b * n));
    let (mut ts, mut weights, mut kinds, mut conds) = (vec![], vec![], vec![], vec![]);
    let mut offsets = Vec::with_capacity(b);
    for i in 0..b {
        // 1. Crop [n_mels, frames] out of the window and patchify.
        let frames = batch.frames;
        let usable = batch.valid_frames[i].clamp(f.min(frames), frames);
        let offset = rng.range(0, (usable - f.min(usable)) as u64 + 1) as usize;
        let mut crop = vec![0.0f32; n_mels * f];
        let src = &batch.mel[i * n_mels * frames..(i + 1) * n_mels * frames];
        let take = f.min(frames - offset);
        for band in 0..n_mels {
            crop[band * f..band * f + take]
                .copy_from_slice(&src[band * frames + offset..band * frames + offset + take]);
        }
        let x0 = patchify(&crop, n_mels, p);
        offsets.push(offset);
        // 2. Time, stratified over the batch.
        let t = (stratum + i as f64 / b as f64).fract();
        let t = draw.times.map_or(t, |(lo, hi)| lo + (hi - lo) * t);
        let w = objective.weight(t);
        // 3. The task and its mask.
        let kind = draw.task.unwrap_or_else(|| mix.pick(rng.uniform()));
        let keep = masks::sample(kind, n, &mut || rng.uniform());
        // 4. Noise and target.
        let eps: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
        noisy.extend(objective.noisy(&x0, &eps, t));
        target.extend(objective.target(&x0, &eps, t));
        for (tok, &k) in keep.iter().enumerate() {
            let kf = if k { 1.0 } else { 0.0 };
            mask.push(kf);
            generate.push(1.0 - kf);
            known.extend(x0[tok * d..(tok + 1) * d].iter().map(|v| v * kf));
        }
        // 5. Conditioning, with dropout for classifier-free guidance.
        let all = rng.chance(drop.all);
        let mut keep_parts = Keep {
            text: !rng.chance(drop.text),
            genre: !rng.chance(drop.genre),
            artist: !rng.chance(drop.artist),
            timing: !rng.chance(drop.timing),
            ..Keep::ALL
        };
        // The controls draw only in models that read them (older runs keep their draws).
        if m.controls {
            keep_parts.bpm = !rng.chance(drop.bpm);
            keep_parts.key = !rng.chance(drop.key);
            keep_parts.meter = !rng.chance(drop.meter);
        }
        if all {
            keep_parts = Keep::NONE;
        }
        let dim = batch.dim;
        let nt = batch.token_mask[i * batch.max_tokens..(i + 1) * batch.max_tokens]
            .iter()
            .filter(|&&v| v)
            .count();
        let at = i * batch.max_tokens * dim;
        conds.push(CondExample {
            tokens: batch.tokens[at..at + nt * dim].to_vec(),
            n_tokens: nt,
            sentence: batch.sentence[i * dim..(i + 1) * dim].to_vec(),
            genre: fields.get(&batch.genres[i]),
            artist: fields.get(&batch.artists[i]),
            seconds_start: batch.seconds_start[i] + (offset as f64 * hop_seconds) as f32,
            seconds_total: batch.seconds_total[i],
            controls: batch.controls[i],
            keep: keep_parts,
        });
        ts.push(t as f32);
        weights.push(w as f32);
        kinds.push(kind);
    }
    let t3 =
        |v: Vec<f32>, last: usize| Tensor::<3>::from_data(TensorData::new(v, [b, n, last]), device);
    Ok(StepBatch {
        input: DitInput {
            noisy: t3(noisy, d),
            known: t3(known, d),
            mask: t3(mask, 1),
            t: Tensor::from_floats(ts.as_slice(), device),
        },
        times: ts,
        crop_offsets: offsets,
        cond: Conditioning::from_examples(&conds, m, device)?,
        target: t3(target, d),
        generate: Tensor::from_data(TensorData::new(generate, [b, n]), device),
        weight: Tensor::from_floats(weights.as_slice(), device),
        kinds,
    })
}

/// Per-example loss `[B]`: mean squared error of the network's output (`v` or `x0`) over
/// generated tokens, times the weight.
pub fn per_example_loss(pred: Tensor<3>, batch: &StepBatch) -> Tensor<1> {
    let [b, n, d] = pred.dims();
    // [B, N, D] -> [B, N]
    let se = (pred - batch.target.clone())
        .powi_scalar(2)
        .sum_dim(2)
        .reshape([b, n]);
    let generated = batch.generate.clone();
    let count = generated
        .clone()
        .sum_dim(1)
        .reshape([b])
        .mul_scalar(d as f64);
    let per = (se * generated).sum_dim(1).reshape([b]) / count;
    per * batch.weight.clone()
}

/// The training objective: the mean of [`per_example_loss`].
pub fn loss(pred: Tensor<3>, batch: &StepBatch) -> Tensor<1> {
    per_example_loss(pred, batch).mean()
}
