//! The training loop (`musicdiff train`). Per optimiser step:
//! 1. the next loader batch (seeded epochs; a resumed run skips what the checkpoint consumed);
//! 2. [`batch::make`]: crop, patchify, time, mask, noise, conditioning dropout;
//! 3. forward on the autodiff device, masked loss weighted by noise level, backward;
//! 4. AdamW with global-norm clipping at the scheduled learning rate; EMA update;
//! 5. every `log_every` steps a line in `metrics.jsonl`; every `eval_every` held-out loss per
//!    task with the EMA weights, and the full task once more without any conditioning (the gap
//!    between the two is how much the model uses its prompt); every `checkpoint_every` a
//!    checkpoint and the loss-curve PNG; every `sample_every` the sample prompts rendered to
//!    WAV + PNG.
//!
//! The run stops at the end of the schedule, at `max_steps`, when the time budget is spent,
//! or when `stop` is raised (Ctrl-C); each way ends with a checkpoint.
//!
//! [`train`] itself runs in stages, one function each: 1. the session (config checked, data
//! and text encoder opened, the run directory locked: one process per run, [`crate::lock`]);
//! 2. the run (resumed from its latest checkpoint, which must match the config and the data,
//! or started anew); 3. the start reported; 4. the steps above until a stop; 5. the final
//! checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::optim::GradientsParams;
use burn::prelude::*;
use musicdiff_common::Rng;
use musicdiff_dataset::{Batch, Loader, Split};
use musicdiff_diffusion::masks::MaskKind;
use musicdiff_model::{Dit, io as weights};
use musicdiff_pipeline::model_dir::sha256_hex;
use musicdiff_text::TextEncoder;
use serde::Serialize;

use crate::batch::{self, FieldVectors};
use crate::checkpoint::{self, DataInfo, TrainState};
use crate::config::TrainConfig;
use crate::conversion::ConversionTerm;
use crate::error::{Result, TrainError};
use crate::lock::{RunLock, Taken};
use crate::optim::{self, AdamW};
use crate::{plot, samples};

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Prepared shards (`musicdiff data prepare`).
    pub data: PathBuf,
    /// The run directory.
    pub out: PathBuf,
    pub config: TrainConfig,
    /// Continue from the run's latest checkpoint.
    pub resume: bool,
    /// Start a new run from the EMA weights of this checkpoint (or a run directory's latest
    /// one) instead of a fresh initialisation; the optimiser and schedule start anew.
    pub init_from: Option<PathBuf>,
    /// Stop after this many optimiser steps in total (the schedule keeps its length).
    pub max_steps: Option<u64>,
    /// Stop after this much wall time in this session.
    pub time_budget: Option<Duration>,
    /// The MiniLM model directory (for field vectors and sample prompts).
    pub text_model: PathBuf,
}

/// What the loop reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        step: u64,
        total: u64,
        parameters: usize,
        train_windows: usize,
    },
    Step {
        step: u64,
        loss: f64,
        lr: f64,
        samples_per_second: f64,
    },
    Eval {
        step: u64,
        losses: EvalLosses,
    },
    Checkpoint {
        step: u64,
        path: PathBuf,
    },
    Samples {
        step: u64,
        dir: PathBuf,
    },
    Note(String),
}

/// Why the run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    ScheduleDone,
    MaxSteps,
    TimeBudget,
    Interrupted,
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub step: u64,
    pub reason: StopReason,
    /// Mean training loss over the last logging interval.
    pub last_loss: f64,
    pub checkpoint: Option<PathBuf>,
}

#[derive(Serialize)]
struct TrainLine {
    step: u64,
    loss: f64,
    lr: f64,
    grad_norm: f64,
    samples_per_second: f64,
    elapsed_seconds: f64,
    /// The conversion term over the interval (when on): its mean over the steps it scored,
    /// those steps, the crops, and the share of wall time its forward took.
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion_steps: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion_crops: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion_time_share: Option<f64>,
}

/// Held-out losses of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalLosses {
    /// Per task with every conditioning part kept: full, spans (fill), prefix (continue).
    pub tasks: [f64; 3],
    /// The full task on the same examples and noise with all conditioning dropped.
    pub full_uncond: f64,
}

impl EvalLosses {
    /// `full_uncond / full`: 1 when the prompt does not help at all; above 1 as it does.
    pub fn conditioning_gain(&self) -> f64 {
        self.full_uncond / self.tasks[0].max(1e-12)
    }
}

#[derive(Serialize)]
struct EvalLine {
    step: u64,
    eval_full: f64,
    eval_spans: f64,
    eval_prefix: f64,
    eval_full_uncond: f64,
}

/// The open run: model, EMA, optimiser and position.
struct Run {
    cfg: TrainConfig,
    model: Dit,
    ema: Dit,
    opt: AdamW,
    state: TrainState,
}

pub(crate) fn data_info(loader: &Loader) -> DataInfo {
    let m = loader.manifest();
    DataInfo {
        sample_rate: m.config.sample_rate,
        n_fft: m.config.n_fft,
        hop_length: m.config.hop_length,
        n_mels: m.config.n_mels,
        mel_mean: m.mel_mean.iter().map(|&v| v as f32).collect(),
        mel_std: m.mel_std.iter().map(|&v| v as f32).collect(),
        text_model: m.text_model.clone(),
        source: m.source.clone(),
        hours: m.hours,
    }
}

fn check_data(cfg: &TrainConfig, loader: &Loader, data: &Path) -> Result<()> {
    let m = loader.manifest();
    let bad = |detail: String| TrainError::Data {
        path: data.to_path_buf(),
        detail,
    };
    if m.config.n_mels != cfg.model.n_mels {
        return Err(bad(format!(
            "shards have {} mel bands, the model expects {}",
            m.config.n_mels, cfg.model.n_mels
        )));
    }
    if m.config.window_frames() < cfg.model.frames {
        return Err(bad(format!(
            "shard windows have {} frames, fewer than the model's {} (prepare with a longer window_seconds)",
            m.config.window_frames(),
            cfg.model.frames
        )));
    }
    let windows: usize = m.shards.iter().map(|s| s.train_windows).sum();
    if windows == 0 {
        return Err(bad("no training windows".into()));
    }
    if windows < cfg.optim.batch_size {
        return Err(bad(format!(
            "holds {windows} training windows, fewer than optim.batch_size {}: no batch could be filled; lower batch_size to at most {windows} or prepare more data",
            cfg.optim.batch_size
        )));
    }
    Ok(())
}

pub(crate) fn append_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| TrainError::io(path, e))?;
    writeln!(f, "{}", serde_json::to_string(value).expect("serialisable"))
        .map_err(|e| TrainError::io(path, e))
}

/// Drops `metrics.jsonl` lines past `step` (what an interrupted run logged after its last
/// checkpoint), so a resumed run's log reads as one uninterrupted run.
pub(crate) fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    checkpoint::write_file(path, kept.as_bytes())
}

/// The curves of `metrics.jsonl`.
#[derive(Debug, Clone, Default)]
pub struct Curves {
    /// `(step, training loss)`.
    pub train: Vec<(u64, f64)>,
    /// `(step, held-out loss per task)`.
    pub eval: Vec<plot::EvalPoint>,
    /// `(step, held-out full-task loss without conditioning)`; absent in older runs.
    pub uncond: Vec<(u64, f64)>,
}

/// Reads `metrics.jsonl` for the loss-curve picture and the model card.
pub fn read_curves(path: &Path) -> Curves {
    let mut c = Curves::default();
    for l in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        let step = v["step"].as_u64().unwrap_or(0);
        if let Some(loss) = v["loss"].as_f64() {
            c.train.push((step, loss));
        } else if let (Some(a), Some(b), Some(p)) = (
            v["eval_full"].as_f64(),
            v["eval_spans"].as_f64(),
            v["eval_prefix"].as_f64(),
        ) {
            c.eval.push((step, [a, b, p]));
            if let Some(u) = v["eval_full_uncond"].as_f64() {
                c.uncond.push((step, u));
            }
        }
    }
    c
}

impl Run {
    fn save(&self, out: &Path) -> Result<PathBuf> {
        let dir = checkpoint::save(
            out,
            self.state.step,
            &self.state,
            self.cfg.run.keep_checkpoints,
            |tmp| {
                weights::save(&self.model, &tmp.join(checkpoint::MODEL))?;
                weights::save(&self.ema, &tmp.join(checkpoint::EMA))?;
                self.opt.save(&tmp.join(checkpoint::OPTIM))
            },
        )?;
        let curves = read_curves(&out.join("metrics.jsonl"));
        plot::write(&out.join("loss.png"), &curves.train, &curves.eval)?;
        Ok(dir)
    }
}

/// Held-out loss of the EMA weights per task (full, spans, prefix), on the first
/// `eval_batches` test batches with fixed noise, so evaluations are comparable across steps;
/// then the full task again on the same examples, noise and times with every conditioning part
/// dropped, which measures how much the conditioning lowers the loss.
fn evaluate(
    run: &Run,
    test: &Loader,
    fields: &mut FieldVectors,
    encoder: &TextEncoder,
    device: &Device,
) -> Result<Option<EvalLosses>> {
    let hop_seconds = run.state.data.hop_length as f64 / run.state.data.sample_rate as f64;
    // Evaluation keeps every conditioning part, except in the unconditioned pass.
    let (keep_all, drop_all) = (run.cfg.for_evaluation(true), run.cfg.for_evaluation(false));
    let passes = [
        (MaskKind::Full, &keep_all),
        (MaskKind::Spans, &keep_all),
        (MaskKind::Prefix, &keep_all),
        (MaskKind::Full, &drop_all),
    ];
    let mut out = [0.0; 4];
    for (k, (kind, cfg)) in passes.into_iter().enumerate() {
        // The unconditioned pass reuses the full task's generator: the same draws, so the
        // same noise, times and crops.
        let mut rng = Rng::for_item(run.cfg.run.seed ^ 0xE7A1, (k % 3) as u64);
        let (mut sum, mut count) = (0.0, 0usize);
        for b in test.epoch(0).take(run.cfg.run.eval_batches) {
            let b = b?;
            fields.add(&b, encoder)?;
            let sb = batch::make(
                &b,
                cfg,
                &mut rng,
                fields,
                hop_seconds,
                batch::Draw::task(kind),
                device,
            )?;
            let pred = run.ema.forward(sb.input.clone(), &sb.cond);
            let l: f64 = batch::per_example_loss(pred, &sb)
                .sum()
                .into_scalar::<f64>();
            sum += l;
            count += b.size;
        }
        if count == 0 {
            return Ok(None);
        }
        out[k] = sum / count as f64;
    }
    Ok(Some(EvalLosses {
        tasks: [out[0], out[1], out[2]],
        full_uncond: out[3],
    }))
}

/// Reads the EMA weights of the checkpoint `from` (a checkpoint directory, or a run directory
/// meaning its latest checkpoint) into the architecture of `cfg`. The checkpoint may lack
/// parameters `cfg` adds (they keep the initial values `device`'s seed gives); everything it
/// has must fit, and its data must have the same mel bands.
fn init_from(
    cfg: &TrainConfig,
    from: &Path,
    loader: &Loader,
    device: &Device,
) -> Result<(Dit, checkpoint::InitInfo)> {
    use musicdiff_pipeline::model_dir;
    // A model directory (`musicdiff export`, e.g. the bundled model): its weights, hash-checked.
    if from.join(model_dir::META_FILE).exists() {
        let meta = model_dir::read_meta(from)?;
        check_init_data(from, &meta.data, loader)?;
        let path = from.join(model_dir::WEIGHTS_FILE);
        let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
        let bytes = musicdiff_weights::checked(
            bytes,
            &path,
            meta.weights.dtype,
            &meta.weights.sha256,
            model_dir::META_FILE,
        )
        .map_err(musicdiff_model::ModelError::from)?;
        let (model, fresh) = weights::load_partial_bytes(&cfg.model, bytes, &path, device)?;
        let init = checkpoint::InitInfo {
            checkpoint: from.to_path_buf(),
            step: meta.training.step,
            samples_seen: meta.training.samples_seen,
            train_seconds: meta.training.train_seconds,
            fresh,
        };
        return Ok((model, init));
    }
    let dir = if from.join(checkpoint::STATE).exists() {
        from.to_path_buf()
    } else {
        checkpoint::latest(from)?.ok_or_else(|| TrainError::Checkpoint {
            path: from.to_path_buf(),
            detail: "is neither a checkpoint (no state.json), a run directory with one, nor a model directory (no model.json)".into(),
        })?
    };
    let state = checkpoint::read_state(&dir)?;
    check_init_data(&dir, &state.data, loader)?;
    let (model, fresh) = weights::load_partial(&cfg.model, &dir.join(checkpoint::EMA), device)?;
    let init = checkpoint::InitInfo {
        checkpoint: dir,
        step: state.step,
        samples_seen: state.samples_seen,
        train_seconds: state.elapsed_seconds,
        fresh,
    };
    Ok((model, init))
}

/// Weights from `from` (trained on `data`) can continue on the loader's shards only with the
/// same mel bands, hop and sample rate.
pub(crate) fn check_init_data(from: &Path, data: &DataInfo, loader: &Loader) -> Result<()> {
    let ours = loader.manifest();
    if data.n_mels != ours.config.n_mels
        || data.hop_length != ours.config.hop_length
        || data.sample_rate != ours.config.sample_rate
    {
        return Err(TrainError::Checkpoint {
            path: from.to_path_buf(),
            detail: format!(
                "was trained on {} mel bands with hop {} at {} Hz; the shards have {}, {} and {}",
                data.n_mels,
                data.hop_length,
                data.sample_rate,
                ours.config.n_mels,
                ours.config.hop_length,
                ours.config.sample_rate
            ),
        });
    }
    Ok(())
}

/// What a training session holds besides the run: devices, data, the text encoder and the
/// run directory's lock.
struct Session {
    /// Inference device (EMA, evaluation, samples) and the autodiff device (training).
    plain: Device,
    device: Device,
    loader: Loader,
    test: Loader,
    encoder: TextEncoder,
    /// SHA-256 of the data's `manifest.json`: which prepared data this is.
    data_sha256: String,
    metrics: PathBuf,
    /// The conversion term, when the config turns it on.
    conversion: Option<ConversionTerm>,
    /// Held until the session ends.
    _lock: RunLock,
}

/// The loop's bookkeeping besides the run's state.
struct Progress {
    rng: Rng,
    fields: FieldVectors,
    session: Instant,
    elapsed_before: f64,
    hop_seconds: f64,
    /// Sums over the current logging interval: loss, gradient norm, steps, samples.
    interval: (f64, f64, u64, u64),
    /// Over the interval: conversion loss sum, steps scored, crops, seconds spent on the term's
    /// forward (its backward is inside the step's).
    conversion: (f64, u64, u64, f64),
    interval_clock: Instant,
    last_loss: f64,
    last_saved: Option<(u64, PathBuf)>,
}

/// Trains as `opts` says, reporting through `on_event`.
pub fn train(
    opts: &Options,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> Result<Outcome> {
    // 1. Check the config; open the data, the text encoder and the run directory (locked).
    let session = open_session(opts, on_event)?;
    // 2. Open the run: the latest checkpoint (--resume), or a new start.
    let run = open_run(opts, &session, on_event)?;
    // 3. Report the start.
    let train_windows = session
        .loader
        .manifest()
        .shards
        .iter()
        .map(|s| s.train_windows)
        .sum();
    on_event(Event::Started {
        step: run.state.step,
        total: opts.config.optim.steps,
        parameters: run.model.num_params(),
        train_windows,
    });
    // 4. Optimiser steps until a stop condition holds (each as the module header lists).
    let (run, reason, progress) = optimise(run, opts, &session, stop, on_event)?;
    // 5. A final checkpoint, unless the last step wrote one.
    let checkpoint = match progress.last_saved {
        Some((s, p)) if s == run.state.step => Some(p),
        _ => {
            let path = run.save(&opts.out)?;
            on_event(Event::Checkpoint {
                step: run.state.step,
                path: path.clone(),
            });
            Some(path)
        }
    };
    Ok(Outcome {
        step: run.state.step,
        reason,
        last_loss: progress.last_loss,
        checkpoint,
    })
}

/// Stage 1: checks the config, opens the train and test splits (which must fit the model and
/// fill a batch), loads the text encoder, creates the run directory and takes its lock.
fn open_session(opts: &Options, on_event: &mut dyn FnMut(Event)) -> Result<Session> {
    let cfg = &opts.config;
    cfg.validate().map_err(|detail| TrainError::Config {
        path: opts.out.clone(),
        detail,
    })?;
    let plain = Device::flex();
    let device = Device::flex().autodiff();
    let loader = Loader::open(&opts.data, Split::Train, cfg.optim.batch_size, cfg.run.seed)?
        .with_resident_shards(cfg.run.resident_shards);
    check_data(cfg, &loader, &opts.data)?;
    let test = Loader::open(&opts.data, Split::Test, cfg.optim.batch_size, cfg.run.seed)?
        .with_resident_shards(cfg.run.resident_shards);
    let manifest = opts.data.join("manifest.json");
    let data_sha256 =
        sha256_hex(&std::fs::read(&manifest).map_err(|e| TrainError::io(&manifest, e))?);
    let encoder = TextEncoder::load(&opts.text_model, &plain)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| TrainError::io(&opts.out, e))?;
    let (lock, taken) = RunLock::take(&opts.out)?;
    if let Taken::Stale(pid) = taken {
        on_event(Event::Note(format!(
            "{}: taking over the lock of pid {pid}, which no longer holds it (that run was killed or crashed)",
            lock.path().display()
        )));
    }
    record_training_clips(opts, &loader, on_event)?;
    let conversion = if cfg.conversion.enabled() {
        let m = loader.manifest();
        let term = ConversionTerm::open(
            &cfg.conversion,
            &data_info(&loader),
            cfg.model.patch_frames,
            Path::new(&m.source),
            cfg.run.seed,
            &device,
        )?;
        on_event(Event::Note(format!(
            "conversion term: weight {} through the vocoder {}, examples at t <= {}, up to {} crops of {} frames per step, against the audio in {}",
            cfg.conversion.weight,
            cfg.conversion.vocoder.display(),
            cfg.conversion.t_max,
            cfg.conversion.max_crops,
            cfg.conversion.crop_frames,
            m.source
        )));
        Some(term)
    } else {
        None
    };
    Ok(Session {
        plain,
        device,
        loader,
        test,
        encoder,
        data_sha256,
        metrics: opts.out.join("metrics.jsonl"),
        conversion,
        _lock: lock,
    })
}

/// Writes `RUN/training-clips.txt`: the content hashes of the training clips of this data,
/// of the data the run read before (a resumed run) and of the run it started from
/// (`--init-from`), so that the exported model names everything its weights have seen. When
/// any of them is unknown (data prepared before hashes were recorded) the list would be
/// incomplete, so none is kept and a note says so.
fn record_training_clips(
    opts: &Options,
    loader: &Loader,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    use musicdiff_pipeline::model_dir::{
        TRAINING_CLIPS, read_training_clips, write_training_clips,
    };
    let mut sources = vec![loader.manifest().training_clips()];
    if opts.resume && checkpoint::latest(&opts.out)?.is_some() {
        sources.push(read_training_clips(&opts.out)?);
    }
    if let Some(from) = &opts.init_from {
        // A checkpoint directory is RUN/checkpoints/step-N; a run directory is itself.
        let run = if from.join(checkpoint::STATE).exists() {
            from.parent().and_then(Path::parent).unwrap_or(from)
        } else {
            from.as_path()
        };
        sources.push(read_training_clips(run)?);
    }
    let all = sources
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .map(|lists| lists.concat());
    if write_training_clips(&opts.out, all)?.is_none() {
        on_event(Event::Note(format!(
            "the training clips are not all known (data prepared before clip hashes were recorded, or an --init-from run without {TRAINING_CLIPS}): the exported model will not name them; run `musicdiff data prepare` again to record them"
        )));
    }
    Ok(())
}

/// Stage 2: the run continued from its latest checkpoint (`resume`), or a new one; a run
/// directory with a checkpoint is not started over, nor is one without resumed.
fn open_run(opts: &Options, s: &Session, on_event: &mut dyn FnMut(Event)) -> Result<Run> {
    match (checkpoint::latest(&opts.out)?, opts.resume) {
        (Some(dir), true) => resume(opts, s, &dir, on_event),
        (None, true) => Err(TrainError::Checkpoint {
            path: checkpoint::root(&opts.out),
            detail: "no checkpoint to resume from".into(),
        }),
        (Some(dir), false) => Err(TrainError::Checkpoint {
            path: dir,
            detail: "the run directory already has a checkpoint; pass --resume to continue it or choose a new --out".into(),
        }),
        (None, false) => start(opts, s, on_event),
    }
}

/// Stage 2, resuming: the checkpoint must have the same settings and data; checkpoints beyond
/// `keep_checkpoints` (left by a run killed between writing one and pruning) go; the metrics
/// logged after the checkpoint are dropped.
fn resume(opts: &Options, s: &Session, dir: &Path, on_event: &mut dyn FnMut(Event)) -> Result<Run> {
    let cfg = &opts.config;
    let mut state = checkpoint::read_state(dir)?;
    let same = |a: &TrainConfig, b: &TrainConfig| {
        a.model == b.model
            && a.optim == b.optim
            && a.masks == b.masks
            && a.dropout == b.dropout
            && a.diffusion == b.diffusion
            && a.conversion == b.conversion
            && a.run.seed == b.run.seed
    };
    if !same(&state.config, cfg) {
        return Err(TrainError::Checkpoint {
            path: dir.to_path_buf(),
            detail: "was trained with another model, optimiser, mask, dropout, diffusion, conversion or seed setting; resume with the run's own config (its state.json holds it) or start a new run".into(),
        });
    }
    check_same_data(dir, &state, s, &opts.data)?;
    checkpoint::prune(&opts.out, cfg.run.keep_checkpoints, dir)?;
    let model = weights::load(&cfg.model, &dir.join(checkpoint::MODEL), &s.device)?;
    let ema = weights::load(&cfg.model, &dir.join(checkpoint::EMA), &s.plain)?;
    let opt = AdamW::load(&cfg.optim, &dir.join(checkpoint::OPTIM), &s.plain)?;
    truncate_metrics(&s.metrics, state.step)?;
    on_event(Event::Note(format!(
        "resuming {} at step {}",
        dir.display(),
        state.step
    )));
    state.config = cfg.clone();
    state
        .data_sha256
        .get_or_insert_with(|| s.data_sha256.clone());
    Ok(Run {
        cfg: cfg.clone(),
        model,
        ema,
        opt,
        state,
    })
}

/// A resumed run reads the data it was trained on: the same manifest (where the checkpoint
/// records its hash) and the same normalisation statistics and audio settings.
fn check_same_data(dir: &Path, state: &TrainState, s: &Session, data: &Path) -> Result<()> {
    let ours = data_info(&s.loader);
    let same_manifest = state
        .data_sha256
        .as_deref()
        .is_none_or(|h| h == s.data_sha256);
    if same_manifest && state.data == ours {
        return Ok(());
    }
    let short = |h: &str| h.chars().take(12).collect::<String>();
    Err(TrainError::Checkpoint {
        path: dir.to_path_buf(),
        detail: format!(
            "was trained on other data than --data {} (manifest SHA-256 {} vs {}, source {} vs {}, {:.2} h vs {:.2} h, normalisation statistics {}); a resumed run must read the data its epoch position and normalisation belong to: resume with the run's own --data, or start a new run from it with --init-from",
            data.display(),
            state
                .data_sha256
                .as_deref()
                .map_or("unrecorded".into(), short),
            short(&s.data_sha256),
            state.data.source,
            ours.source,
            state.data.hours,
            ours.hours,
            if state.data.mel_mean == ours.mel_mean && state.data.mel_std == ours.mel_std {
                "equal"
            } else {
                "differ"
            }
        ),
    })
}

/// Stage 2, a new run: fresh weights (seeded) or another run's EMA weights (`init_from`); the
/// config is written beside the metrics, which start empty.
fn start(opts: &Options, s: &Session, on_event: &mut dyn FnMut(Event)) -> Result<Run> {
    let cfg = &opts.config;
    s.device.seed(cfg.run.seed);
    let (model, init) = match &opts.init_from {
        None => (cfg.model.init(&s.device), None),
        Some(from) => {
            let (model, init) = init_from(cfg, from, &s.loader, &s.device)?;
            on_event(Event::Note(format!(
                "starting from {} (EMA weights after {} steps){}",
                init.checkpoint.display(),
                init.step,
                if init.fresh.is_empty() {
                    String::new()
                } else {
                    format!("; new: {}", init.fresh.join(", "))
                }
            )));
            (model, Some(init))
        }
    };
    let ema = optim::detached_copy(&model, &s.plain);
    let _ = std::fs::remove_file(&s.metrics);
    let toml = toml::to_string(cfg).expect("config serialises");
    checkpoint::write_file(&opts.out.join("config.toml"), toml.as_bytes())?;
    Ok(Run {
        cfg: cfg.clone(),
        model,
        ema,
        opt: AdamW::new(&cfg.optim),
        state: TrainState {
            step: 0,
            epoch: 0,
            batch_in_epoch: 0,
            rng: Rng::for_item(cfg.run.seed, 0x7EA1).state(),
            samples_seen: 0,
            elapsed_seconds: 0.0,
            config: cfg.clone(),
            data: data_info(&s.loader),
            data_sha256: Some(s.data_sha256.clone()),
            init,
        },
    })
}

/// Stage 4: optimiser steps over seeded epochs, from the position the run holds, until the
/// schedule ends, `max_steps`, the time budget or `stop`.
fn optimise(
    mut run: Run,
    opts: &Options,
    s: &Session,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> Result<(Run, StopReason, Progress)> {
    let mut p = Progress {
        rng: Rng::from_state(run.state.rng),
        fields: FieldVectors::default(),
        session: Instant::now(),
        elapsed_before: run.state.elapsed_seconds,
        hop_seconds: run.state.data.hop_length as f64 / run.state.data.sample_rate as f64,
        interval: (0.0, 0.0, 0, 0),
        conversion: (0.0, 0, 0, 0.0),
        interval_clock: Instant::now(),
        last_loss: f64::NAN,
        last_saved: None,
    };
    let reason = 'outer: loop {
        // 4.0 The epoch's batches, past those a resumed run already consumed.
        let mut epoch = s.loader.epoch(run.state.epoch);
        for _ in 0..run.state.batch_in_epoch {
            if let Some(b) = epoch.next() {
                b?;
            }
        }
        for b in epoch {
            if let Some(reason) = stop_reason(&run, opts, &p, stop) {
                break 'outer reason;
            }
            run = step(run, &b?, opts, s, &mut p)?;
            periodic(&run, opts, s, &mut p, on_event)?;
        }
        run.state.epoch += 1;
        run.state.batch_in_epoch = 0;
    };
    Ok((run, reason, p))
}

/// Why the run stops before its next step, if it does.
fn stop_reason(run: &Run, opts: &Options, p: &Progress, stop: &AtomicBool) -> Option<StopReason> {
    if run.state.step >= opts.config.optim.steps {
        Some(StopReason::ScheduleDone)
    } else if opts.max_steps.is_some_and(|m| run.state.step >= m) {
        Some(StopReason::MaxSteps)
    } else if opts.time_budget.is_some_and(|t| p.session.elapsed() >= t) {
        Some(StopReason::TimeBudget)
    } else if stop.load(Ordering::SeqCst) {
        Some(StopReason::Interrupted)
    } else {
        None
    }
}

/// Steps 1-4 of the module header for the loader batch `b`: the step batch; forward, loss,
/// backward; AdamW at the scheduled rate and the EMA update; the run's position advanced.
fn step(mut run: Run, b: &Batch, opts: &Options, s: &Session, p: &mut Progress) -> Result<Run> {
    let cfg = &opts.config;
    // 2. Crop, patchify, time, mask, noise, conditioning dropout.
    p.fields.add(b, &s.encoder)?;
    let sb = batch::make(
        b,
        cfg,
        &mut p.rng,
        &p.fields,
        p.hop_seconds,
        batch::Draw::ANY,
        &s.device,
    )?;
    // 3. Forward, loss (with the conversion term when on), backward.
    let pred = run.model.forward(sb.input.clone(), &sb.cond);
    // The logged loss is the diffusion loss alone, comparable with runs without the term.
    let mut loss = batch::loss(pred.clone(), &sb);
    let loss_value = loss.clone().into_scalar::<f64>();
    let mut total = loss_value;
    if let Some(term) = &s.conversion {
        let started = Instant::now();
        if let Some(c) = term.loss(&pred, &sb, b, &cfg.objective(), run.state.step)? {
            let value = c.loss.clone().into_scalar::<f64>();
            loss = loss + c.loss.mul_scalar(cfg.conversion.weight);
            total += cfg.conversion.weight * value;
            p.conversion.0 += value;
            p.conversion.1 += 1;
            p.conversion.2 += c.crops as u64;
        }
        p.conversion.3 += started.elapsed().as_secs_f64();
    }
    if !total.is_finite() {
        return Err(TrainError::Diverged {
            step: run.state.step + 1,
            loss: total,
        });
    }
    let grads = GradientsParams::from_grads(loss.backward(), &run.model);
    // 4. Optimiser and EMA.
    let lr = cfg.lr_at(run.state.step);
    let (model, norm) = run.opt.step(run.model, grads, lr);
    run.model = model;
    run.state.step += 1;
    run.state.batch_in_epoch += 1;
    run.state.samples_seen += b.size as u64;
    let decay = optim::ema_decay(cfg.optim.ema_decay, run.state.step);
    run.ema = optim::ema_update(run.ema, &run.model, decay);
    run.state.rng = p.rng.state();
    run.state.elapsed_seconds = p.elapsed_before + p.session.elapsed().as_secs_f64();
    let i = &mut p.interval;
    *i = (i.0 + loss_value, i.1 + norm, i.2 + 1, i.3 + b.size as u64);
    Ok(run)
}

/// Step 5 of the module header: the metrics line, evaluation, checkpoint and samples that are
/// due after the step just taken.
fn periodic(
    run: &Run,
    opts: &Options,
    s: &Session,
    p: &mut Progress,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let r = &opts.config.run;
    let step = run.state.step;
    let due = |every: u64| every > 0 && step.is_multiple_of(every);
    if due(r.log_every) {
        let (loss, norm, n, samples) = p.interval;
        let wall = p.interval_clock.elapsed().as_secs_f64().max(1e-9);
        let sps = samples as f64 / wall;
        p.last_loss = loss / n as f64;
        let lr = opts.config.lr_at(step - 1);
        let (c_sum, c_steps, c_crops, c_secs) = p.conversion;
        let on = s.conversion.is_some();
        p.conversion = (0.0, 0, 0, 0.0);
        append_json(
            &s.metrics,
            &TrainLine {
                step,
                loss: p.last_loss,
                lr,
                grad_norm: norm / n as f64,
                samples_per_second: sps,
                elapsed_seconds: run.state.elapsed_seconds,
                conversion: (on && c_steps > 0).then(|| c_sum / c_steps as f64),
                conversion_steps: on.then_some(c_steps),
                conversion_crops: on.then_some(c_crops),
                conversion_time_share: on.then_some(c_secs / wall),
            },
        )?;
        on_event(Event::Step {
            step,
            loss: p.last_loss,
            lr,
            samples_per_second: sps,
        });
        p.interval = (0.0, 0.0, 0, 0);
    }
    if due(r.eval_every) {
        match evaluate(run, &s.test, &mut p.fields, &s.encoder, &s.plain)? {
            Some(losses) => {
                append_json(
                    &s.metrics,
                    &EvalLine {
                        step,
                        eval_full: losses.tasks[0],
                        eval_spans: losses.tasks[1],
                        eval_prefix: losses.tasks[2],
                        eval_full_uncond: losses.full_uncond,
                    },
                )?;
                on_event(Event::Eval { step, losses });
            }
            None if step == r.eval_every => on_event(Event::Note(
                "no test windows: held-out loss is skipped".into(),
            )),
            None => {}
        }
    }
    if due(r.checkpoint_every) {
        let path = run.save(&opts.out)?;
        on_event(Event::Checkpoint {
            step,
            path: path.clone(),
        });
        p.last_saved = Some((step, path));
    }
    if due(r.sample_every) {
        let dir = opts.out.join("samples").join(format!("step-{step:08}"));
        samples::render(&run.ema, &run.state, &s.encoder, &dir, &s.plain)?;
        on_event(Event::Samples { step, dir });
    }
    // Throughput counts training time only: a new interval starts after the work above.
    if p.interval.2 == 0 {
        p.interval_clock = Instant::now();
    }
    Ok(())
}
