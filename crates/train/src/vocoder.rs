//! Training the vocoder (`musicdiff vocoder train`): a Vocos generator (`musicdiff_vocoder`)
//! fitted to audio with the reconstruction loss (multi-resolution STFT + mel L1), as Vocos'
//! recipe does before its GAN terms (Siuzdak 2023, section 4; `docs/vocoder-design.md`
//! explains why the discriminators do not pay for their CPU time here). Per optimiser step:
//! 1. the step's batch, a pure function of (seed, step): `batch_size` random crops of
//!    `segment_samples` from random training files, each scaled to a random peak level
//!    (Vocos' gain augmentation), with musicdiff's log-mel of each crop as the input;
//!    a background thread prepares the next batches while the network trains;
//! 2. forward on the autodiff device: log-mel -> STFT frames -> iSTFT -> audio;
//! 3. the loss against the crop, backward; AdamW with global-norm clipping at the scheduled
//!    rate; the EMA update;
//! 4. every `log_every` steps a line in `metrics.jsonl`; every `eval_every` the EMA weights'
//!    losses on fixed held-out crops; every `checkpoint_every` a checkpoint and `loss.png`
//!    (training loss; held-out mel L1 in orange, spectral convergence in green, log-magnitude
//!    distance in purple).
//!
//! Because a batch depends on the step alone, a resumed run sees exactly the batches an
//! uninterrupted one would. The run stops at the end of the schedule, at `max_steps`, when the
//! time budget is spent or on `stop` (Ctrl-C), each time with a checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use burn::optim::GradientsParams;
use burn::prelude::*;
use musicdiff_common::Rng;
use musicdiff_dsp::features::LogMelExtractor;
use musicdiff_vocoder::dir::{TrainingInfo, VocoderMeta, WeightsInfo};
use musicdiff_vocoder::{LossConfig, ReconstructionLoss, SpectralOp, VocoderConfig, Vocos};
use musicdiff_weights::WeightDtype;
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::config::OptimConfig;
use crate::error::{Result, TrainError};
use crate::lock::{RunLock, Taken};
use crate::optim::{self, AdamW};
use crate::plot;

/// The `format` metadata of vocoder checkpoint weights.
const FORMAT: &str = musicdiff_vocoder::dir::WEIGHTS_FORMAT;

/// What the crops are made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropConfig {
    /// Samples per training crop (a multiple of the hop).
    pub segment_samples: usize,
    /// Each crop is scaled to a peak drawn uniformly in this range of dBFS.
    pub peak_db: (f64, f64),
    /// Fixed held-out crops scored at each evaluation.
    pub held_out_crops: usize,
}

/// Bookkeeping of a vocoder run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocoderRunConfig {
    pub seed: u64,
    pub log_every: u64,
    pub eval_every: u64,
    pub checkpoint_every: u64,
    pub keep_checkpoints: usize,
}

/// Everything a vocoder run needs besides the audio (`configs/vocoder/*.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocoderTrainConfig {
    #[serde(default)]
    pub description: String,
    pub model: VocoderConfig,
    pub loss: LossConfig,
    pub optim: OptimConfig,
    pub data: CropConfig,
    pub run: VocoderRunConfig,
}

impl VocoderTrainConfig {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let bad = |detail: String| TrainError::Config {
            path: path.to_path_buf(),
            detail,
        };
        let cfg: Self = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        cfg.validate().map_err(bad)?;
        Ok(cfg)
    }

    /// Checks the values; the error names the offending key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.model.validate().map_err(|e| format!("model: {e}"))?;
        self.loss.validate().map_err(|e| format!("loss: {e}"))?;
        self.optim.validate()?;
        let d = &self.data;
        let hop = self.model.hop_length;
        if d.segment_samples < self.model.n_fft || !d.segment_samples.is_multiple_of(hop) {
            return Err(format!(
                "data.segment_samples = {} must be a multiple of the hop ({hop}) and at least n_fft ({})",
                d.segment_samples, self.model.n_fft
            ));
        }
        let (lo, hi) = d.peak_db;
        if !(lo <= hi && hi <= 0.0 && lo > -60.0) {
            return Err(format!(
                "data.peak_db = [{lo}, {hi}] must be an increasing pair of levels in (-60, 0] dBFS"
            ));
        }
        if self.run.keep_checkpoints == 0 {
            return Err("run.keep_checkpoints must be at least 1".into());
        }
        Ok(())
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct VocoderOptions {
    /// An audio directory (with `train/` and `test/` inside, as `musicdiff corpus build`
    /// writes, or files to split), or prepared shards whose manifest names their audio.
    pub data: PathBuf,
    pub out: PathBuf,
    pub config: VocoderTrainConfig,
    pub resume: bool,
    pub max_steps: Option<u64>,
    pub time_budget: Option<Duration>,
    /// A vocoder directory whose weights a new run starts from (fine-tuning) instead of a
    /// random initialisation.
    pub init_from: Option<PathBuf>,
}

/// What the loop reports as it goes.
#[derive(Debug, Clone)]
pub enum VocoderEvent {
    Started {
        step: u64,
        total: u64,
        parameters: usize,
        train_files: usize,
        held_out_files: usize,
        hours: f64,
    },
    Step {
        step: u64,
        loss: f64,
        lr: f64,
        /// Seconds of audio trained on per second of wall time.
        audio_per_second: f64,
    },
    Eval {
        step: u64,
        held_out: HeldOut,
    },
    Checkpoint {
        step: u64,
        path: PathBuf,
    },
    Note(String),
}

/// Held-out losses of one evaluation (means over the fixed crops).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    pub loss: f64,
    pub mel_l1: f64,
    pub sc: f64,
    pub log_mag: f64,
    /// SC + log-magnitude L1 of the predicted magnitude itself (absent in older runs).
    #[serde(default)]
    pub magnitude: f64,
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct VocoderOutcome {
    pub step: u64,
    pub reason: crate::StopReason,
    pub last_loss: f64,
    pub checkpoint: PathBuf,
}

/// Everything besides the weights that an exact resume needs (`state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocoderState {
    pub step: u64,
    pub elapsed_seconds: f64,
    pub audio_seconds_seen: f64,
    pub config: VocoderTrainConfig,
    /// The training audio directory, its file count and hours.
    pub data: PathBuf,
    pub train_files: usize,
    pub hours: f64,
    /// The last held-out evaluation.
    #[serde(default)]
    pub held_out: Option<HeldOut>,
    /// The vocoder directory the run started from, if it was fine-tuned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
}

#[derive(Serialize)]
struct TrainLine {
    step: u64,
    loss: f64,
    mel_l1: f64,
    sc: f64,
    log_mag: f64,
    magnitude: f64,
    lr: f64,
    grad_norm: f64,
    audio_per_second: f64,
    elapsed_seconds: f64,
}

#[derive(Serialize)]
struct EvalLine {
    step: u64,
    eval_loss: f64,
    eval_mel_l1: f64,
    eval_sc: f64,
    eval_log_mag: f64,
    eval_magnitude: f64,
}

impl EvalLine {
    fn new(step: u64, h: &HeldOut) -> Self {
        Self {
            step,
            eval_loss: h.loss,
            eval_mel_l1: h.mel_l1,
            eval_sc: h.sc,
            eval_log_mag: h.log_mag,
            eval_magnitude: h.magnitude,
        }
    }
}

/// The audio files of one split.
#[derive(Debug, Clone)]
struct AudioSet {
    files: Vec<PathBuf>,
}

/// The training and held-out files of `data` and the directory they were read from: `train/`
/// and `test/` when both exist; else every audio file, one in twenty held out by a hash of its
/// name; prepared shards are followed to the audio their manifest names.
fn open_audio(data: &Path) -> Result<(PathBuf, AudioSet, AudioSet)> {
    let bad = |detail: String| TrainError::Data {
        path: data.to_path_buf(),
        detail,
    };
    let manifest = data.join("manifest.json");
    if manifest.is_file() {
        let text = std::fs::read_to_string(&manifest).map_err(|e| TrainError::io(&manifest, e))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("manifest.json: {e}")))?;
        let source = v["source"].as_str().ok_or_else(|| {
            bad("manifest.json names no source audio directory (`source`)".into())
        })?;
        let source = PathBuf::from(source);
        if !source.is_dir() {
            return Err(bad(format!(
                "the shards hold no audio and their source {} is not a directory; pass the audio directory itself",
                source.display()
            )));
        }
        return open_audio(&source);
    }
    let audio_files =
        |dir: &Path| -> Result<Vec<PathBuf>> { Ok(musicdiff_dsp::audio::audio_files(dir)?) };
    let (train, held) = if data.join("train").is_dir() && data.join("test").is_dir() {
        (
            audio_files(&data.join("train"))?,
            audio_files(&data.join("test"))?,
        )
    } else {
        let all = audio_files(data)?;
        let held_out = |p: &PathBuf| {
            musicdiff_common::rng::stable_hash(&p.file_name().unwrap_or_default().to_string_lossy())
                .is_multiple_of(20)
        };
        let (held, train): (Vec<PathBuf>, Vec<PathBuf>) = all.into_iter().partition(held_out);
        (train, held)
    };
    if train.is_empty() {
        return Err(bad("holds no audio files to train on".into()));
    }
    if held.is_empty() {
        return Err(bad(
            "leaves no audio for held-out evaluation (give it train/ and test/ directories, or more files)".into(),
        ));
    }
    Ok((
        data.to_path_buf(),
        AudioSet { files: train },
        AudioSet { files: held },
    ))
}

/// One batch: crops `[B, S]` and their log-mels `[B, T, M]`, flattened.
struct CropBatch {
    audio: Vec<f32>,
    mel: Vec<f32>,
    size: usize,
}

/// Cuts and prepares crops; shared by the training batches and the held-out set.
struct Cropper {
    cfg: VocoderTrainConfig,
    extractor: LogMelExtractor,
}

impl Cropper {
    fn new(cfg: &VocoderTrainConfig) -> Result<Self> {
        Ok(Self {
            cfg: cfg.clone(),
            extractor: LogMelExtractor::new(cfg.model.spectrogram())?,
        })
    }

    /// One crop drawn with `rng`: a random file, a random offset, scaled to a random peak, and
    /// its log-mel `[T, M]`. Near-silent crops are drawn again (a few times) since they teach
    /// nothing. A file with a predicted log-mel beside it (`crate::predicted`) is cropped on
    /// frame boundaries and gives that mel's frames instead, shifted by the gain.
    fn crop(&self, set: &AudioSet, rng: &mut Rng) -> Result<(Vec<f32>, Vec<f32>)> {
        let seg = self.cfg.data.segment_samples;
        let sr = self.cfg.model.sample_rate;
        let hop = self.cfg.model.hop_length;
        let spec = self.cfg.model.spectrogram();
        let mut crop = vec![0.0f32; seg];
        let mut predicted = None;
        for attempt in 0..8 {
            let path = rng.choose(&set.files);
            let audio = musicdiff_dsp::audio::load_mono(path, sr)?;
            crop.iter_mut().for_each(|v| *v = 0.0);
            predicted = None;
            if let Some((mel, frames, bands)) = crate::predicted::read_mel(path)? {
                // Frame k of the pair is centred on sample k * hop; a crop of `seg` samples
                // from frame j reads frames j ..= j + seg / hop.
                let span = seg / hop + 1;
                if bands != self.cfg.model.n_mels || frames < span || audio.len() < seg {
                    return Err(TrainError::Data {
                        path: path.clone(),
                        detail: format!(
                            "its predicted mel has {frames} frames of {bands} bands for {} samples; the vocoder needs {} bands and at least {span} frames ({seg} samples)",
                            audio.len(),
                            self.cfg.model.n_mels
                        ),
                    });
                }
                let last = (frames - span).min((audio.len() - seg) / hop);
                let j = rng.range(0, last as u64 + 1) as usize;
                crop.copy_from_slice(&audio[j * hop..j * hop + seg]);
                predicted = Some(mel[j * bands..(j + span) * bands].to_vec());
            } else if audio.len() <= seg {
                crop[..audio.len()].copy_from_slice(&audio);
            } else {
                let off = rng.range(0, (audio.len() - seg + 1) as u64) as usize;
                crop.copy_from_slice(&audio[off..off + seg]);
            }
            let peak = crop.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let (lo, hi) = self.cfg.data.peak_db;
            let db = lo + (hi - lo) * rng.uniform();
            if peak >= 1e-3 || attempt == 7 {
                if peak > 0.0 {
                    let gain = 10f64.powf(db / 20.0) / peak as f64;
                    crop.iter_mut().for_each(|v| *v *= gain as f32);
                    // ln(mel) moves by power * ln(gain), floored as the features are.
                    let shift = (spec.power * gain.ln()) as f32;
                    let floor = spec.log_floor.ln() as f32;
                    if let Some(mel) = predicted.as_mut() {
                        mel.iter_mut().for_each(|v| *v = (*v + shift).max(floor));
                    }
                }
                break;
            }
        }
        // [n_mels, T] -> [T, n_mels]
        let mel = predicted.unwrap_or_else(|| self.extractor.log_mel(&crop).transpose().into_vec());
        Ok((crop, mel))
    }

    /// `rngs.len()` crops and their log-mels.
    fn batch(&self, set: &AudioSet, rngs: &mut [Rng]) -> Result<CropBatch> {
        let mut audio = Vec::new();
        let mut mel = Vec::new();
        for rng in rngs.iter_mut() {
            let (crop, log_mel) = self.crop(set, rng)?;
            mel.extend(log_mel);
            audio.extend(crop);
        }
        Ok(CropBatch {
            audio,
            mel,
            size: rngs.len(),
        })
    }

    /// The batch of optimiser step `step` (0-based) of a run seeded `seed`.
    fn step_batch(&self, set: &AudioSet, step: u64) -> Result<CropBatch> {
        let b = self.cfg.optim.batch_size;
        let mut rngs: Vec<Rng> = (0..b as u64)
            .map(|i| Rng::for_item(self.cfg.run.seed, step * b as u64 + i))
            .collect();
        self.batch(set, &mut rngs)
    }

    /// Tensors `(log_mel [B, T, M], audio [B, S])` of a batch on `device`.
    fn tensors(&self, b: &CropBatch, device: &Device) -> (Tensor<3>, Tensor<2>) {
        let s = self.cfg.data.segment_samples;
        let m = self.cfg.model.n_mels;
        let t = b.mel.len() / (b.size * m);
        (
            Tensor::from_data(TensorData::new(b.mel.clone(), [b.size, t, m]), device),
            Tensor::from_data(TensorData::new(b.audio.clone(), [b.size, s]), device),
        )
    }
}

/// Batches for steps `from..` made on a background thread, two ahead of the trainer. The
/// thread ends when the receiver is dropped (the run ended) or after sending a failure.
fn prefetch(cropper: Cropper, set: AudioSet, from: u64) -> Receiver<Result<CropBatch>> {
    let (tx, rx) = sync_channel(2);
    std::thread::spawn(move || {
        for step in from.. {
            let b = cropper.step_batch(&set, step);
            let failed = b.is_err();
            if tx.send(b).is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// The open run.
struct Run {
    model: Vocos,
    ema: Vocos,
    opt: AdamW,
    state: VocoderState,
}

impl Run {
    fn save(&self, out: &Path) -> Result<PathBuf> {
        let keep = self.state.config.run.keep_checkpoints;
        let dir = checkpoint::save(out, self.state.step, &self.state, keep, |tmp| {
            musicdiff_weights::save(&self.model, FORMAT, &tmp.join(checkpoint::MODEL))
                .map_err(musicdiff_vocoder::VocoderError::from)?;
            musicdiff_weights::save(&self.ema, FORMAT, &tmp.join(checkpoint::EMA))
                .map_err(musicdiff_vocoder::VocoderError::from)?;
            self.opt.save(&tmp.join(checkpoint::OPTIM))
        })?;
        let (train, eval) = read_curves(&out.join("metrics.jsonl"));
        plot::write(&out.join("loss.png"), &train, &eval)?;
        Ok(dir)
    }
}

/// `(step, loss)` and `(step, [mel L1, SC, log-magnitude])` of a run's `metrics.jsonl`.
fn read_curves(path: &Path) -> (Vec<(u64, f64)>, Vec<plot::EvalPoint>) {
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for l in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        let step = v["step"].as_u64().unwrap_or(0);
        if let Some(loss) = v["loss"].as_f64() {
            train.push((step, loss));
        } else if let (Some(a), Some(b), Some(c)) = (
            v["eval_mel_l1"].as_f64(),
            v["eval_sc"].as_f64(),
            v["eval_log_mag"].as_f64(),
        ) {
            eval.push((step, [a, b, c]));
        }
    }
    (train, eval)
}

/// Trains as `opts` says, reporting through `on_event`.
pub fn train(
    opts: &VocoderOptions,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(VocoderEvent),
) -> Result<VocoderOutcome> {
    let cfg = &opts.config;
    cfg.validate().map_err(|detail| TrainError::Config {
        path: opts.out.clone(),
        detail,
    })?;
    // 1. The audio, the run directory (locked), the devices.
    let (data, train_set, held_set) = open_audio(&opts.data)?;
    let plain = Device::flex();
    let device = Device::flex().autodiff();
    std::fs::create_dir_all(&opts.out).map_err(|e| TrainError::io(&opts.out, e))?;
    let (_lock, taken) = RunLock::take(&opts.out)?;
    if let Taken::Stale(pid) = taken {
        on_event(VocoderEvent::Note(format!(
            "taking over the lock of pid {pid}, which no longer holds it (that run was killed or crashed)"
        )));
    }
    let metrics = opts.out.join("metrics.jsonl");
    // 2. Resume or start.
    let mut run = match (checkpoint::latest(&opts.out)?, opts.resume) {
        (Some(dir), true) => resume(opts, &dir, &data, &device, &plain, &metrics, on_event)?,
        (None, true) => {
            return Err(TrainError::Checkpoint {
                path: checkpoint::root(&opts.out),
                detail: "no checkpoint to resume from".into(),
            });
        }
        (Some(dir), false) => {
            return Err(TrainError::Checkpoint {
                path: dir,
                detail: "the run directory already has a checkpoint; pass --resume to continue it or choose a new --out".into(),
            });
        }
        (None, false) => {
            let hours = train_set
                .files
                .iter()
                .filter_map(|p| musicdiff_dsp::audio::probe_seconds(p).ok().flatten())
                .sum::<f64>()
                / 3600.0;
            device.seed(cfg.run.seed);
            let model = match &opts.init_from {
                Some(dir) => init_from(cfg, dir, &device)?,
                None => Vocos::new(&cfg.model, &device),
            };
            let ema = optim::detached_copy(&model, &plain);
            let _ = std::fs::remove_file(&metrics);
            let toml = toml::to_string(cfg).expect("config serialises");
            checkpoint::write_file(&opts.out.join("config.toml"), toml.as_bytes())?;
            Run {
                model,
                ema,
                opt: AdamW::new(&cfg.optim),
                state: VocoderState {
                    step: 0,
                    elapsed_seconds: 0.0,
                    audio_seconds_seen: 0.0,
                    config: cfg.clone(),
                    data: data.clone(),
                    train_files: train_set.files.len(),
                    hours,
                    held_out: None,
                    init_from: opts.init_from.clone(),
                },
            }
        }
    };
    on_event(VocoderEvent::Started {
        step: run.state.step,
        total: cfg.optim.steps,
        parameters: run.model.num_params(),
        train_files: train_set.files.len(),
        held_out_files: held_set.files.len(),
        hours: run.state.hours,
    });
    // 3. The fixed held-out crops, the loss, the batch thread.
    let cropper = Cropper::new(cfg)?;
    let mut held_rngs: Vec<Rng> = (0..cfg.data.held_out_crops as u64)
        .map(|i| Rng::for_item(cfg.run.seed ^ 0xE7A1, i))
        .collect();
    let held = cropper.batch(&held_set, &mut held_rngs)?;
    let spec = cfg.model.spectrogram();
    let loss_fn = ReconstructionLoss::new(&cfg.loss, &spec, &device);
    let eval_loss = ReconstructionLoss::new(&cfg.loss, &spec, &plain);
    let op = SpectralOp::new(cfg.model.n_fft, cfg.model.hop_length, &device);
    let eval_op = SpectralOp::new(cfg.model.n_fft, cfg.model.hop_length, &plain);
    let batches = prefetch(Cropper::new(cfg)?, train_set, run.state.step);
    let crop_seconds = cfg.data.segment_samples as f64 / cfg.model.sample_rate as f64;

    // A fine-tune is first scored as it starts (step 0), the baseline its evaluations improve on.
    if run.state.step == 0 && run.state.init_from.is_some() {
        let h = evaluate(&run.ema, &cropper, &held, &eval_loss, &eval_op, &plain);
        crate::trainer::append_json(&metrics, &EvalLine::new(0, &h))?;
        on_event(VocoderEvent::Eval {
            step: 0,
            held_out: h,
        });
    }
    // 4. Steps until a stop condition holds.
    let session = Instant::now();
    let elapsed_before = run.state.elapsed_seconds;
    let mut interval = ([0.0f64; 5], 0.0f64, 0u64, Instant::now());
    let mut last_loss = f64::NAN;
    let mut last_saved: Option<(u64, PathBuf)> = None;
    let reason = loop {
        let s = run.state.step;
        let reason = if s >= cfg.optim.steps {
            Some(crate::StopReason::ScheduleDone)
        } else if opts.max_steps.is_some_and(|m| s >= m) {
            Some(crate::StopReason::MaxSteps)
        } else if opts.time_budget.is_some_and(|t| session.elapsed() >= t) {
            Some(crate::StopReason::TimeBudget)
        } else if stop.load(Ordering::SeqCst) {
            Some(crate::StopReason::Interrupted)
        } else {
            None
        };
        if let Some(r) = reason {
            break r;
        }
        // 4.1 The batch.
        let b = batches.recv().map_err(|_| TrainError::Data {
            path: data.clone(),
            detail: "the batch thread stopped".into(),
        })?;
        let b = b?;
        let (mel, audio) = cropper.tensors(&b, &device);
        // 4.2 Forward, loss, backward.
        let parts = loss_fn.forward_net(&run.model, &op, mel, audio, false);
        let values = parts.values();
        if !values[0].is_finite() {
            return Err(TrainError::Diverged {
                step: s + 1,
                loss: values[0],
            });
        }
        let grads = GradientsParams::from_grads(parts.total.backward(), &run.model);
        // 4.3 Optimiser and EMA.
        let lr = cfg.optim.lr_at(s);
        let (model, norm) = run.opt.step(run.model, grads, lr);
        run.model = model;
        run.state.step += 1;
        let step = run.state.step;
        run.ema = optim::ema_update(
            run.ema,
            &run.model,
            optim::ema_decay(cfg.optim.ema_decay, step),
        );
        run.state.audio_seconds_seen += b.size as f64 * crop_seconds;
        run.state.elapsed_seconds = elapsed_before + session.elapsed().as_secs_f64();
        for (acc, v) in interval.0.iter_mut().zip(values) {
            *acc += v;
        }
        interval.1 += norm;
        interval.2 += 1;
        // 4.4 Logging, evaluation, checkpoints.
        let due = |every: u64| every > 0 && step.is_multiple_of(every);
        if due(cfg.run.log_every) {
            let n = interval.2 as f64;
            let aps = n * b.size as f64 * crop_seconds / interval.3.elapsed().as_secs_f64();
            let [loss, mel_l1, sc, log_mag, magnitude] = interval.0.map(|v| v / n);
            last_loss = loss;
            crate::trainer::append_json(
                &metrics,
                &TrainLine {
                    step,
                    loss,
                    mel_l1,
                    sc,
                    log_mag,
                    magnitude,
                    lr,
                    grad_norm: interval.1 / n,
                    audio_per_second: aps,
                    elapsed_seconds: run.state.elapsed_seconds,
                },
            )?;
            on_event(VocoderEvent::Step {
                step,
                loss,
                lr,
                audio_per_second: aps,
            });
            interval = ([0.0; 5], 0.0, 0, Instant::now());
        }
        if due(cfg.run.eval_every) {
            let h = evaluate(&run.ema, &cropper, &held, &eval_loss, &eval_op, &plain);
            crate::trainer::append_json(&metrics, &EvalLine::new(step, &h))?;
            run.state.held_out = Some(h);
            on_event(VocoderEvent::Eval { step, held_out: h });
        }
        if due(cfg.run.checkpoint_every) {
            let path = run.save(&opts.out)?;
            on_event(VocoderEvent::Checkpoint {
                step,
                path: path.clone(),
            });
            last_saved = Some((step, path));
        }
        if interval.2 == 0 {
            interval.3 = Instant::now();
        }
    };
    // 5. A final checkpoint, unless the last step wrote one.
    let checkpoint = match last_saved {
        Some((s, p)) if s == run.state.step => p,
        _ => {
            let path = run.save(&opts.out)?;
            on_event(VocoderEvent::Checkpoint {
                step: run.state.step,
                path: path.clone(),
            });
            path
        }
    };
    Ok(VocoderOutcome {
        step: run.state.step,
        reason,
        last_loss,
        checkpoint,
    })
}

/// The losses of `net` on the held-out crops, in batches of 8.
fn evaluate(
    net: &Vocos,
    cropper: &Cropper,
    held: &CropBatch,
    loss: &ReconstructionLoss,
    op: &SpectralOp,
    device: &Device,
) -> HeldOut {
    let (mel, audio) = cropper.tensors(held, device);
    let mut sums = [0.0f64; 5];
    let mut start = 0;
    while start < held.size {
        let n = 8.min(held.size - start);
        let m = mel.clone().narrow(0, start, n);
        let a = audio.clone().narrow(0, start, n);
        let parts = loss.forward_net(net, op, m, a, true);
        for (s, v) in sums.iter_mut().zip(parts.values()) {
            *s += v * n as f64;
        }
        start += n;
    }
    let [loss, mel_l1, sc, log_mag, magnitude] = sums.map(|v| v / held.size.max(1) as f64);
    HeldOut {
        loss,
        mel_l1,
        sc,
        log_mag,
        magnitude,
    }
}

/// Continues the run from checkpoint `dir`: same config and audio directory required.
/// The weights of the vocoder directory `dir` in the architecture of `cfg` (which must read
/// the same log-mel), for fine-tuning.
fn init_from(cfg: &VocoderTrainConfig, dir: &Path, device: &Device) -> Result<Vocos> {
    use musicdiff_vocoder::dir;
    let meta = dir::read_meta(dir)?;
    if meta.config.spectrogram() != cfg.model.spectrogram() {
        return Err(TrainError::Checkpoint {
            path: dir.to_path_buf(),
            detail: "reads another log-mel (sample rate, FFT, hop, bands or floor) than this config's model".into(),
        });
    }
    let bytes = musicdiff_weights::dir::read_weights(
        dir,
        dir::WEIGHTS_FILE,
        meta.weights.dtype,
        &meta.weights.sha256,
        dir::META_FILE,
    )
    .map_err(musicdiff_vocoder::VocoderError::from)?;
    Ok(dir::load_bytes(
        &cfg.model,
        bytes,
        &dir.join(dir::WEIGHTS_FILE),
        device,
    )?)
}

fn resume(
    opts: &VocoderOptions,
    dir: &Path,
    data: &Path,
    device: &Device,
    plain: &Device,
    metrics: &Path,
    on_event: &mut dyn FnMut(VocoderEvent),
) -> Result<Run> {
    let cfg = &opts.config;
    let state: VocoderState = checkpoint::read_json(dir)?;
    let c = &state.config;
    if c.model != cfg.model
        || c.loss != cfg.loss
        || c.optim != cfg.optim
        || c.data != cfg.data
        || c.run.seed != cfg.run.seed
    {
        return Err(TrainError::Checkpoint {
            path: dir.to_path_buf(),
            detail: "was trained with another model, loss, optimiser, data or seed setting; resume with the run's own config (its config.toml) or start a new run".into(),
        });
    }
    if state.data != data {
        return Err(TrainError::Checkpoint {
            path: dir.to_path_buf(),
            detail: format!(
                "was trained on {}, not {}: a resumed run must read the audio its batches come from",
                state.data.display(),
                data.display()
            ),
        });
    }
    checkpoint::prune(&opts.out, cfg.run.keep_checkpoints, dir)?;
    let load = |file: &str, device: &Device| -> Result<Vocos> {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
        Ok(musicdiff_vocoder::dir::load_bytes(
            &cfg.model, bytes, &path, device,
        )?)
    };
    let model = load(checkpoint::MODEL, device)?;
    let ema = load(checkpoint::EMA, plain)?;
    let opt = AdamW::load(&cfg.optim, &dir.join(checkpoint::OPTIM), plain)?;
    crate::trainer::truncate_metrics(metrics, state.step)?;
    on_event(VocoderEvent::Note(format!(
        "resuming {} at step {}",
        dir.display(),
        state.step
    )));
    Ok(Run {
        model,
        ema,
        opt,
        state,
    })
}

/// Writes a vocoder directory from a run's latest checkpoint (or the checkpoint given): its EMA
/// weights as `dtype`, the metadata and a card with the held-out losses.
/// Synthesis settings an export may set over the run's configuration (`None`: keep).
#[derive(Debug, Clone, Copy, Default)]
pub struct SynthesisChoice {
    pub refine_iters: Option<usize>,
    pub phase: Option<musicdiff_vocoder::SynthesisPhase>,
    pub mel_fit_iters: Option<usize>,
}

pub fn export(
    from: &Path,
    out: &Path,
    id: &str,
    dtype: WeightDtype,
    synthesis: SynthesisChoice,
) -> Result<PathBuf> {
    let dir = if from.join(checkpoint::STATE).exists() {
        from.to_path_buf()
    } else {
        checkpoint::latest(from)?.ok_or_else(|| TrainError::Checkpoint {
            path: from.to_path_buf(),
            detail: "is neither a checkpoint (no state.json) nor a run directory with one".into(),
        })?
    };
    let mut state: VocoderState = checkpoint::read_json(&dir)?;
    // Synthesis settings (no weights depend on them) can be chosen at export.
    let model = &mut state.config.model;
    if let Some(iters) = synthesis.refine_iters {
        model.refine_iters = iters;
    }
    if let Some(phase) = synthesis.phase {
        model.synthesis_phase = phase;
    }
    if let Some(iters) = synthesis.mel_fit_iters {
        model.mel_fit_iters = iters;
    }
    model.validate().map_err(|detail| TrainError::Config {
        path: dir.join(checkpoint::STATE),
        detail,
    })?;
    let device = Device::flex();
    let ema_path = dir.join(checkpoint::EMA);
    let bytes = std::fs::read(&ema_path).map_err(|e| TrainError::io(&ema_path, e))?;
    if let Some((tensor, v)) = musicdiff_weights::first_non_finite(&bytes, &ema_path)
        .map_err(musicdiff_vocoder::VocoderError::from)?
    {
        return Err(TrainError::Checkpoint {
            path: ema_path,
            detail: format!(
                "tensor {tensor} holds {v}: the run diverged; export an earlier checkpoint"
            ),
        });
    }
    let net = musicdiff_vocoder::dir::load_bytes(&state.config.model, bytes, &ema_path, &device)?;
    let mut held_out = std::collections::BTreeMap::new();
    if let Some(h) = state.held_out {
        held_out.insert("loss".to_string(), h.loss);
        held_out.insert("mel_l1".to_string(), h.mel_l1);
        held_out.insert("spectral_convergence".to_string(), h.sc);
        held_out.insert("log_magnitude_l1".to_string(), h.log_mag);
        held_out.insert("predicted_magnitude_distance".to_string(), h.magnitude);
    }
    let meta = VocoderMeta {
        format: String::new(),
        id: id.to_string(),
        config: state.config.model.clone(),
        weights: WeightsInfo {
            dtype,
            sha256: String::new(),
            parameters: 0,
        },
        training: TrainingInfo {
            steps: state.step,
            train_seconds: state.elapsed_seconds,
            audio_seconds_seen: state.audio_seconds_seen,
            data: state.data.display().to_string(),
            data_hours: state.hours,
            held_out,
        },
    };
    let card = card(&meta, &state);
    Ok(musicdiff_vocoder::dir::write(out, &meta, &net, &card)?)
}

/// The vocoder card: what it is, how it was trained, how it scores.
fn card(meta: &VocoderMeta, state: &VocoderState) -> String {
    let c = &meta.config;
    let t = &meta.training;
    let mut s = format!(
        "# Vocoder `{}`\n\nA Vocos-style vocoder (Siuzdak 2023) for musicdiff's log-mel: a ConvNeXt backbone \
         ({} blocks, width {}, MLP {}, kernel {}) predicts one {}-point STFT frame per mel frame (hop {}, \
         {} Hz, {} Slaney mels), inverted by the iSTFT. {:.2} M MAC per frame.\n\n",
        meta.id,
        c.layers,
        c.dim,
        c.intermediate,
        c.kernel,
        c.n_fft,
        c.hop_length,
        c.sample_rate,
        c.n_mels,
        c.macs_per_frame() as f64 / 1e6
    );
    if c.mel_fit_iters > 0 {
        s += &format!(
            "Synthesis first fits each frame's predicted power to the input's mel energies ({} \
             multiplicative least-squares updates).\n\n",
            c.mel_fit_iters
        );
    }
    if c.synthesis_phase == musicdiff_vocoder::SynthesisPhase::Pghi {
        s += "Synthesis takes the predicted magnitudes only; their phases are integrated from the \
              magnitudes' gradients (PGHI, Průša et al. 2017).\n\n";
    }
    if c.refine_iters > 0 {
        s += &format!(
            "Synthesis refines that spectrum with {} fast Griffin-Lim iterations started from it \
             (its magnitudes the target, its phases the start).\n\n",
            c.refine_iters
        );
    }
    if let Some(from) = &state.init_from {
        s += &format!(
            "Fine-tuned from the vocoder `{}` (its weights were the run's start).\n\n",
            from.display()
        );
    }
    s += &format!(
        "## Training\n\n- data: `{}` ({} files, {:.2} h)\n- {} steps of {} crops x {} samples, {:.1} h of audio seen, {:.2} h of training on the CPU\n\
         - loss: {} x mel L1 + {} x multi-resolution STFT (spectral convergence + log-magnitude L1) at {:?}; no discriminators\n\
         - AdamW lr {} (warm-up {}, cosine to x{}), betas ({}, {}), weight decay {}, clip {}; EMA {}; exported: EMA weights\n\n",
        t.data,
        state.train_files,
        t.data_hours,
        t.steps,
        state.config.optim.batch_size,
        state.config.data.segment_samples,
        t.audio_seconds_seen / 3600.0,
        t.train_seconds / 3600.0,
        state.config.loss.mel_weight,
        state.config.loss.stft_weight,
        state.config.loss.resolutions,
        state.config.optim.lr,
        state.config.optim.warmup_steps,
        state.config.optim.min_lr_ratio,
        state.config.optim.beta1,
        state.config.optim.beta2,
        state.config.optim.weight_decay,
        state.config.optim.grad_clip,
        state.config.optim.ema_decay,
    );
    if !t.held_out.is_empty() {
        s += &format!(
            "## Held-out crops ({} crops of the test split)\n\n| measure | value |\n|---|---|\n",
            state.config.data.held_out_crops
        );
        for (k, v) in &t.held_out {
            s += &format!("| {k} | {v:.4} |\n");
        }
        s += "\nThe roundtrip comparison with Griffin-Lim is in the README's vocoder table (`scripts/bench-vocoder.sh`).\n";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tiny_config() -> VocoderTrainConfig {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/vocoder/tiny.toml"),
        )
        .unwrap();
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn shipped_configs_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/vocoder");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                VocoderTrainConfig::load(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 3, "found {n} vocoder configs in {}", dir.display());
    }

    #[test]
    fn bad_crop_settings_are_named() {
        let mut c = tiny_config();
        c.data.segment_samples = 1000;
        assert!(c.validate().unwrap_err().contains("data.segment_samples"));
        let mut c = tiny_config();
        c.data.peak_db = (-1.0, -6.0);
        assert!(c.validate().unwrap_err().contains("data.peak_db"));
    }
}

#[cfg(test)]
mod pair_tests {
    use super::*;

    /// A pair set's file gives its predicted mel, frame-aligned with the audio crop and moved by
    /// the crop's gain as the log-mel of the scaled audio would move; a plain file gives the
    /// log-mel of its crop, with as many frames.
    #[test]
    fn a_pair_file_gives_its_predicted_mel_aligned_and_shifted_by_the_gain() {
        let cfg = super::tests::tiny_config();
        let (hop, m, seg) = (
            cfg.model.hop_length,
            cfg.model.n_mels,
            cfg.data.segment_samples,
        );
        let span = seg / hop + 1;
        let frames = span + 7;
        let len = frames * hop;
        let dir = tempfile::tempdir().unwrap();
        // A rising ramp: the crop's first samples tell where it starts.
        let audio: Vec<f32> = (0..len)
            .map(|k| 0.1 + 0.5 * k as f32 / len as f32)
            .collect();
        let wav = dir.path().join("000000.wav");
        musicdiff_dsp::audio::write_wav(
            &wav,
            &audio,
            cfg.model.sample_rate,
            musicdiff_dsp::audio::WavFormat::Float32,
        )
        .unwrap();
        // Frame f, band b: a value that names both.
        let mel: Vec<f32> = (0..frames * m)
            .map(|i| (i / m) as f32 * 0.25 - 4.0 + (i % m) as f32 * 0.01)
            .collect();
        let mel_path = wav.with_extension(crate::predicted::MEL_EXTENSION);
        let bytes: Vec<u8> = mel.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(
            safetensors::tensor::Dtype::F32,
            vec![frames, m],
            &bytes,
        )
        .unwrap();
        std::fs::write(
            &mel_path,
            safetensors::serialize([(crate::predicted::MEL_TENSOR, view)], None).unwrap(),
        )
        .unwrap();
        let cropper = Cropper::new(&cfg).unwrap();
        let set = AudioSet {
            files: vec![wav.clone()],
        };
        let power = cfg.model.spectrogram().power;
        let mut starts = std::collections::BTreeSet::new();
        for seed in 0..12 {
            let (crop, got) = cropper.crop(&set, &mut Rng::for_item(7, seed)).unwrap();
            assert_eq!(crop.len(), seg);
            assert_eq!(got.len(), span * m);
            // The frame the crop starts on, and its gain.
            let j = (0..=frames - span)
                .find(|&j| {
                    let g = crop[0] / audio[j * hop];
                    crop.iter()
                        .zip(&audio[j * hop..])
                        .all(|(c, a)| (c - a * g).abs() < 1e-5)
                })
                .expect("the crop is a scaled, frame-aligned piece of the audio");
            starts.insert(j);
            let gain = f64::from(crop[0] / audio[j * hop]);
            let shift = (power * gain.ln()) as f32;
            for (i, v) in got.iter().enumerate() {
                let want = mel[j * m + i] + shift;
                assert!(
                    (v - want).abs() < 1e-4,
                    "seed {seed} value {i}: {v} != {want}"
                );
            }
        }
        assert!(starts.len() > 1, "the crops all start at frame {starts:?}");
        // A plain file: the log-mel of its crop, the same number of frames.
        std::fs::remove_file(&mel_path).unwrap();
        let (crop, got) = cropper.crop(&set, &mut Rng::for_item(7, 0)).unwrap();
        let want = cropper.extractor.log_mel(&crop).transpose().into_vec();
        assert_eq!(got, want);
        assert_eq!(got.len(), span * m);
    }
}
