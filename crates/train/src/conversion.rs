//! The conversion term of the DiT's training loss. The design asks that "the loss from
//! conversion between spectrograms and waveforms is also considered during training": the
//! network's clean log-mel estimate goes through the frozen vocoder and the waveform is compared
//! with the target audio, so the model is pushed toward spectrograms the vocoder turns into the
//! right sound, not only toward the right spectrogram values. Per step:
//! 1. choose the examples whose diffusion time is at most `t_max` (where the clean estimate is
//!    meaningful), at most `max_crops` of them;
//! 2. per example, a crop of `crop_frames` frames inside its real audio, with the vocoder's
//!    receptive field of context on each side (vocoded, not scored);
//! 3. the clean estimate `x0_hat` of those frames (the known frames of a fill or continuation
//!    taken from the input, as generation does), de-normalised and floored as the features
//!    are;
//! 4. the frozen vocoder (no weight gradients; gradients flow to `x0_hat`) and the scored
//!    samples of its output;
//! 5. the target audio of the same samples, decoded from the dataset's source file;
//! 6. the vocoder's reconstruction loss (multi-resolution STFT + mel L1,
//!    `musicdiff_vocoder::loss`), averaged over the crops. A vocoder that synthesises with
//!    phases integrated from its magnitude (`SynthesisPhase::Pghi`) is scored on that
//!    magnitude instead (spectral convergence + log-magnitude L1 against the target's STFT):
//!    its waveform is a deterministic function of it, and its phase head is untrained.
//!
//! Every random choice comes from a generator seeded by (run seed, step), so a resumed run
//! makes the same crops.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use musicdiff_common::Rng;
use musicdiff_dataset::Batch;
use musicdiff_vocoder::spectral::spectrum_distance;
use musicdiff_vocoder::{ReconstructionLoss, SpectralOp, SynthesisPhase, Vocos};
use serde::{Deserialize, Serialize};

use crate::batch::StepBatch;
use crate::checkpoint::DataInfo;
use crate::error::{Result, TrainError};

/// `[conversion]` of a training config; off (`weight = 0`) unless set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConversionConfig {
    /// Weight of the term beside the diffusion loss; 0 turns it off.
    pub weight: f64,
    /// The frozen vocoder's directory (`musicdiff vocoder export`).
    pub vocoder: PathBuf,
    /// Largest diffusion time (of the shifted schedule) whose examples are scored.
    pub t_max: f64,
    /// Most examples scored per step.
    pub max_crops: usize,
    /// Frames scored per example.
    pub crop_frames: usize,
}

impl Default for ConversionConfig {
    fn default() -> Self {
        Self {
            weight: 0.0,
            vocoder: PathBuf::from("models/vocoder"),
            t_max: 0.15,
            max_crops: 4,
            crop_frames: 64,
        }
    }
}

impl ConversionConfig {
    pub fn enabled(&self) -> bool {
        self.weight > 0.0
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.weight >= 0.0 && self.weight.is_finite()) {
            return Err(format!(
                "conversion.weight = {} must be 0 (off) or positive",
                self.weight
            ));
        }
        if self.enabled() {
            if !(self.t_max > 0.0 && self.t_max <= 1.0) {
                return Err(format!(
                    "conversion.t_max = {} must be in (0, 1]",
                    self.t_max
                ));
            }
            if self.max_crops == 0 || self.crop_frames < 16 {
                return Err(
                    "conversion.max_crops must be at least 1 and crop_frames at least 16".into(),
                );
            }
        }
        Ok(())
    }
}

/// The term, ready to score batches: the frozen vocoder and what it needs.
pub struct ConversionTerm {
    cfg: ConversionConfig,
    vocoder: Vocos,
    op: SpectralOp,
    loss: ReconstructionLoss,
    /// The network's output to log-mel frames.
    mels: CleanMels,
    /// Where the shards' audio files are.
    source: PathBuf,
    sample_rate: u32,
    hop: usize,
    patch: usize,
    seed: u64,
}

/// Turns the network's output into the clean estimate's log-mel frames, as generation does:
/// shared by the conversion term and the vocoder's predicted-mel pairs (`crate::predicted`).
pub struct CleanMels {
    /// Per-band statistics the loader normalised with, `[1, n_mels]`.
    mean: Tensor<2>,
    std: Tensor<2>,
    /// `ln` of the features' floor.
    floor: f64,
    patch: usize,
}

impl CleanMels {
    pub fn new(data: &DataInfo, patch: usize, device: &Device) -> Self {
        let row = |v: &[f32]| Tensor::<1>::from_floats(v, device).reshape([1, v.len()]);
        Self {
            mean: row(&data.mel_mean),
            std: row(&data.mel_std),
            floor: data.spectrogram().log_floor.ln(),
            patch,
        }
    }

    /// Example `i`'s clean estimate `[frames, M]` in log-mel units (de-normalised, floored):
    /// `x0_hat` from its noisy input and the network's output `pred` `[B, N, P M]` at its
    /// time, with the known tokens of a fill or continuation taken from the input.
    pub fn clean_estimate(
        &self,
        pred: &Tensor<3>,
        sb: &StepBatch,
        i: usize,
        objective: &musicdiff_diffusion::Objective,
    ) -> Tensor<2> {
        let [_, n, d] = pred.dims();
        let m = d / self.patch;
        let (cx, co) = objective.x0_coefficients(f64::from(sb.times[i]));
        let one = |t: &Tensor<3>| t.clone().narrow(0, i, 1).reshape([n, d]);
        // [N, P M]
        let x0_hat = one(&sb.input.noisy).mul_scalar(cx) + one(pred).mul_scalar(co);
        let keep = sb.input.mask.clone().narrow(0, i, 1).reshape([n, 1]);
        let x0_hat = one(&sb.input.known) + x0_hat * (keep.neg().add_scalar(1.0));
        // [N, P M] -> [N, M, P] -> [N, P, M] -> [frames, M]: band-major tokens to frames.
        let frames_m = x0_hat
            .reshape([n, m, self.patch])
            .swap_dims(1, 2)
            .reshape([n * self.patch, m]);
        (frames_m * self.std.clone() + self.mean.clone()).clamp_min(self.floor)
    }
}

/// Scores of one step's term.
pub struct ConversionLoss {
    /// Mean reconstruction loss over the crops (in the autodiff graph).
    pub loss: Tensor<1>,
    pub crops: usize,
}

impl ConversionTerm {
    /// Loads the vocoder (frozen) onto `device` and checks that it reads the model's log-mel
    /// and that the shards' `source` audio is there.
    pub fn open(
        cfg: &ConversionConfig,
        data: &DataInfo,
        patch: usize,
        source: &Path,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let vocoder = musicdiff_vocoder::Vocoder::load(&cfg.vocoder)?;
        musicdiff_pipeline::generator::check_vocoder(&vocoder, data)?;
        if !source.is_dir() {
            return Err(TrainError::Data {
                path: source.to_path_buf(),
                detail: "the conversion loss compares with the source audio the shards were prepared from, and it is not there".into(),
            });
        }
        let vc = vocoder.config().clone();
        let meta = vocoder.meta().expect("loaded from a directory");
        let net = musicdiff_vocoder::dir::load_weights(&cfg.vocoder, meta, device)?.no_grad();
        let spec = data.spectrogram();
        Ok(Self {
            cfg: cfg.clone(),
            op: SpectralOp::new(vc.n_fft, vc.hop_length, device),
            loss: ReconstructionLoss::new(&musicdiff_vocoder::LossConfig::default(), &spec, device),
            vocoder: net,
            mels: CleanMels::new(data, patch, device),
            source: source.to_path_buf(),
            sample_rate: data.sample_rate,
            hop: data.hop_length,
            patch,
            seed,
        })
    }

    /// Frames of context vocoded on each side of a scored crop.
    fn margin(&self) -> usize {
        self.vocoder.config.receptive_frames()
    }

    /// The term for one step: `pred` is the network's output `[B, N, P M]` for `sb`, made from
    /// loader batch `b`, at optimiser step `step`. `None` when no example qualifies.
    pub fn loss(
        &self,
        pred: &Tensor<3>,
        sb: &StepBatch,
        b: &Batch,
        objective: &musicdiff_diffusion::Objective,
        step: u64,
    ) -> Result<Option<ConversionLoss>> {
        let [_, n, d] = pred.dims();
        let m = d / self.patch;
        let frames = n * self.patch;
        let (f, margin) = (self.cfg.crop_frames, self.margin());
        let span = f + 2 * margin;
        let mut rng = Rng::for_item(self.seed ^ 0xC0_4E_12, step);
        // 1. The examples scored.
        let chosen: Vec<usize> = (0..sb.times.len())
            .filter(|&i| f64::from(sb.times[i]) <= self.cfg.t_max)
            .filter(|&i| real_frames(b, sb, i, frames) >= span)
            .take(self.cfg.max_crops)
            .collect();
        if chosen.is_empty() {
            return Ok(None);
        }
        let device = pred.device();
        let (mut inputs, mut targets) = (Vec::new(), Vec::new());
        for &i in &chosen {
            // 2. The crop inside the example's real audio.
            let real = real_frames(b, sb, i, frames);
            let start = rng.range(0, (real - span) as u64 + 1) as usize;
            // 3. The clean estimate, known tokens from the input: [span, M].
            let log_mel = self
                .mels
                .clean_estimate(pred, sb, i, objective)
                .narrow(0, start, span);
            inputs.push(log_mel.reshape([1, span, m]));
            // 5. The target samples: the scored frames of the window's source audio.
            let first = (f64::from(b.seconds_start[i]) * f64::from(self.sample_rate)).round()
                as usize
                + (sb.crop_offsets[i] + start + margin) * self.hop;
            targets.push(self.target_audio(&b.audio[i], first, f * self.hop)?);
        }
        // 4. The frozen vocoder, and 6. the reconstruction loss of the scored part.
        let k = chosen.len();
        let inputs = Tensor::cat(inputs, 0);
        let target = Tensor::<2>::from_data(
            TensorData::new(targets.concat(), [k, f * self.hop]),
            &device,
        );
        let loss = match self.vocoder.config.synthesis_phase {
            SynthesisPhase::Network => {
                let audio = self.vocoder.waveform(inputs, &self.op).narrow(
                    1,
                    margin * self.hop,
                    f * self.hop,
                );
                self.loss.forward(audio, target, None).total
            }
            SynthesisPhase::Pghi => {
                // The vocoder's output is its magnitude (the phase follows from it), so the
                // conversion error is that magnitude's distance to the target's STFT, on the
                // scored frames whose analysis window lies inside the target samples:
                // vocoder frame margin + j is target frame j (both centred on the same
                // sample); the first and last EDGE frames see the target's zero padding.
                const EDGE: usize = 2;
                let (mag, _) = self.vocoder.head_outputs(inputs);
                let scored = f - 2 * EDGE;
                let pred = mag.narrow(1, margin + EDGE, scored);
                let power = self.op.power(target).narrow(1, EDGE, scored);
                let d = spectrum_distance(pred, power);
                d.sc + d.log_mag
            }
        };
        Ok(Some(ConversionLoss { loss, crops: k }))
    }

    /// `len` samples of `file` (relative to the source directory) from sample `first`, mono at
    /// the model's rate; zeros past its end.
    fn target_audio(&self, file: &str, first: usize, len: usize) -> Result<Vec<f32>> {
        let path = self.source.join(file);
        let audio = musicdiff_dsp::audio::load_mono(&path, self.sample_rate)?;
        let mut out = vec![0.0f32; len];
        if first < audio.len() {
            let take = len.min(audio.len() - first);
            out[..take].copy_from_slice(&audio[first..first + take]);
        }
        Ok(out)
    }
}

/// Frames of example `i`'s crop that hold real audio (the rest pads a short window).
fn real_frames(b: &Batch, sb: &StepBatch, i: usize, frames: usize) -> usize {
    b.valid_frames[i]
        .saturating_sub(sb.crop_offsets[i])
        .min(frames)
}
