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

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::optim::GradientsParams;
use burn::prelude::*;
use musicdiff_common::Rng;
use musicdiff_dataset::{Loader, Split};
use musicdiff_diffusion::masks::MaskKind;
use musicdiff_model::{Dit, io as weights};
use musicdiff_text::TextEncoder;
use serde::Serialize;

use crate::batch::{self, FieldVectors};
use crate::checkpoint::{self, DataInfo, TrainState};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
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

fn data_info(loader: &Loader) -> DataInfo {
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
    if m.shards.iter().all(|s| s.train_windows == 0) {
        return Err(bad("no training windows".into()));
    }
    Ok(())
}

fn append_json(path: &Path, value: &impl Serialize) -> Result<()> {
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
fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
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
#[derive(Debug, Default)]
pub(crate) struct Curves {
    /// `(step, training loss)`.
    pub train: Vec<(u64, f64)>,
    /// `(step, held-out loss per task)`.
    pub eval: Vec<plot::EvalPoint>,
    /// `(step, held-out full-task loss without conditioning)`; absent in older runs.
    pub uncond: Vec<(u64, f64)>,
}

/// Reads `metrics.jsonl` for the loss-curve picture and the model card.
pub(crate) fn read_curves(path: &Path) -> Curves {
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
        let dir = checkpoint::save(out, &self.state, self.cfg.run.keep_checkpoints, |tmp| {
            weights::save(&self.model, &tmp.join(checkpoint::MODEL))?;
            weights::save(&self.ema, &tmp.join(checkpoint::EMA))?;
            self.opt.save(&tmp.join(checkpoint::OPTIM))
        })?;
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
            let sb = batch::make(&b, cfg, &mut rng, fields, hop_seconds, Some(kind), device)?;
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
    let dir = if from.join(checkpoint::STATE).exists() {
        from.to_path_buf()
    } else {
        checkpoint::latest(from)?.ok_or_else(|| TrainError::Checkpoint {
            path: from.to_path_buf(),
            detail: "is neither a checkpoint (no state.json) nor a run directory with one".into(),
        })?
    };
    let state = checkpoint::read_state(&dir)?;
    let ours = loader.manifest();
    if state.data.n_mels != ours.config.n_mels
        || state.data.hop_length != ours.config.hop_length
        || state.data.sample_rate != ours.config.sample_rate
    {
        return Err(TrainError::Checkpoint {
            path: dir,
            detail: format!(
                "was trained on {} mel bands with hop {} at {} Hz; the shards have {}, {} and {}",
                state.data.n_mels,
                state.data.hop_length,
                state.data.sample_rate,
                ours.config.n_mels,
                ours.config.hop_length,
                ours.config.sample_rate
            ),
        });
    }
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

/// Trains as `opts` says, reporting through `on_event`.
pub fn train(
    opts: &Options,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> Result<Outcome> {
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
    let encoder = TextEncoder::load(&opts.text_model, &plain)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| TrainError::io(&opts.out, e))?;
    let metrics = opts.out.join("metrics.jsonl");

    // Open the run: fresh or from the latest checkpoint.
    let mut run = match (checkpoint::latest(&opts.out)?, opts.resume) {
        (Some(dir), true) => {
            let state = checkpoint::read_state(&dir)?;
            let same = |a: &TrainConfig, b: &TrainConfig| {
                a.model == b.model
                    && a.optim == b.optim
                    && a.masks == b.masks
                    && a.dropout == b.dropout
                    && a.diffusion == b.diffusion
                    && a.run.seed == b.run.seed
            };
            if !same(&state.config, cfg) {
                return Err(TrainError::Checkpoint {
                    path: dir,
                    detail: "was trained with another model, optimiser, mask, dropout, diffusion or seed setting; resume with the run's own config (its state.json holds it) or start a new run".into(),
                });
            }
            let model = weights::load(&cfg.model, &dir.join(checkpoint::MODEL), &device)?;
            let ema = weights::load(&cfg.model, &dir.join(checkpoint::EMA), &plain)?;
            let opt = AdamW::load(&cfg.optim, &dir.join(checkpoint::OPTIM), &plain)?;
            truncate_metrics(&metrics, state.step)?;
            on_event(Event::Note(format!(
                "resuming {} at step {}",
                dir.display(),
                state.step
            )));
            let mut state = state;
            state.config = cfg.clone();
            Run {
                cfg: cfg.clone(),
                model,
                ema,
                opt,
                state,
            }
        }
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
            device.seed(cfg.run.seed);
            let (model, init) = match &opts.init_from {
                None => (cfg.model.init(&device), None),
                Some(from) => {
                    let (model, init) = init_from(cfg, from, &loader, &device)?;
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
            let ema = optim::detached_copy(&model, &plain);
            let _ = std::fs::remove_file(&metrics);
            let toml = toml::to_string(cfg).expect("config serialises");
            checkpoint::write_file(&opts.out.join("config.toml"), toml.as_bytes())?;
            Run {
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
                    data: data_info(&loader),
                    init,
                },
            }
        }
    };
    let train_windows = loader
        .manifest()
        .shards
        .iter()
        .map(|s| s.train_windows)
        .sum();
    on_event(Event::Started {
        step: run.state.step,
        total: cfg.optim.steps,
        parameters: run.model.num_params(),
        train_windows,
    });

    let hop_seconds = run.state.data.hop_length as f64 / run.state.data.sample_rate as f64;
    let mut rng = Rng::from_state(run.state.rng);
    let mut fields = FieldVectors::default();
    let session = Instant::now();
    let elapsed_before = run.state.elapsed_seconds;
    let (mut log_loss, mut log_norm, mut log_n, mut log_samples) = (0.0, 0.0, 0u64, 0u64);
    let mut log_clock = Instant::now();
    let mut last_loss = f64::NAN;
    let mut last_saved: Option<(u64, PathBuf)> = None;
    let reason = 'outer: loop {
        let mut epoch = loader.epoch(run.state.epoch);
        for _ in 0..run.state.batch_in_epoch {
            if let Some(b) = epoch.next() {
                b?;
            }
        }
        for b in epoch {
            // Stop conditions, checked before each step.
            if run.state.step >= cfg.optim.steps {
                break 'outer StopReason::ScheduleDone;
            }
            if opts.max_steps.is_some_and(|m| run.state.step >= m) {
                break 'outer StopReason::MaxSteps;
            }
            if opts.time_budget.is_some_and(|t| session.elapsed() >= t) {
                break 'outer StopReason::TimeBudget;
            }
            if stop.load(Ordering::SeqCst) {
                break 'outer StopReason::Interrupted;
            }
            // 1-2. Batch.
            let b = b?;
            fields.add(&b, &encoder)?;
            let sb = batch::make(&b, cfg, &mut rng, &fields, hop_seconds, None, &device)?;
            // 3. Forward, loss, backward.
            let pred = run.model.forward(sb.input.clone(), &sb.cond);
            let loss = batch::loss(pred, &sb);
            let loss_value = loss.clone().into_scalar::<f64>();
            if !loss_value.is_finite() {
                return Err(TrainError::Diverged {
                    step: run.state.step + 1,
                    loss: loss_value,
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
            run.state.rng = rng.state();
            run.state.elapsed_seconds = elapsed_before + session.elapsed().as_secs_f64();
            log_loss += loss_value;
            log_norm += norm;
            log_n += 1;
            log_samples += b.size as u64;
            let step = run.state.step;
            // 5. Logging, evaluation, checkpoints, samples.
            if cfg.run.log_every > 0 && step % cfg.run.log_every == 0 {
                let sps = log_samples as f64 / log_clock.elapsed().as_secs_f64().max(1e-9);
                last_loss = log_loss / log_n as f64;
                append_json(
                    &metrics,
                    &TrainLine {
                        step,
                        loss: last_loss,
                        lr,
                        grad_norm: log_norm / log_n as f64,
                        samples_per_second: sps,
                        elapsed_seconds: run.state.elapsed_seconds,
                    },
                )?;
                on_event(Event::Step {
                    step,
                    loss: last_loss,
                    lr,
                    samples_per_second: sps,
                });
                (log_loss, log_norm, log_n, log_samples) = (0.0, 0.0, 0, 0);
                log_clock = Instant::now();
            }
            if cfg.run.eval_every > 0 && step % cfg.run.eval_every == 0 {
                match evaluate(&run, &test, &mut fields, &encoder, &plain)? {
                    Some(losses) => {
                        append_json(
                            &metrics,
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
                    None if step == cfg.run.eval_every => on_event(Event::Note(
                        "no test windows: held-out loss is skipped".into(),
                    )),
                    None => {}
                }
            }
            if cfg.run.checkpoint_every > 0 && step % cfg.run.checkpoint_every == 0 {
                let path = run.save(&opts.out)?;
                on_event(Event::Checkpoint {
                    step,
                    path: path.clone(),
                });
                last_saved = Some((step, path));
            }
            if cfg.run.sample_every > 0 && step % cfg.run.sample_every == 0 {
                let dir = opts.out.join("samples").join(format!("step-{step:08}"));
                samples::render(&run.ema, &run.state, &encoder, &dir, &plain)?;
                on_event(Event::Samples { step, dir });
            }
            log_clock = if log_n == 0 {
                Instant::now()
            } else {
                log_clock
            };
        }
        run.state.epoch += 1;
        run.state.batch_in_epoch = 0;
    };
    let checkpoint = match last_saved {
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
        last_loss,
        checkpoint,
    })
}
