//! `musicdiff vocoder train|export`: trains the Vocos-style vocoder on captioned audio (the
//! captions are not used: a vocoder needs sound only) and turns a run into a vocoder directory
//! for `--vocoder` on generate, fill, continue and roundtrip.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use musicdiff_train::vocoder::{VocoderEvent, VocoderOptions, VocoderTrainConfig};
use musicdiff_vocoder::SynthesisPhase;
use musicdiff_weights::WeightDtype;

use super::train::{parse_duration, stop_on_ctrl_c, stop_words};
use crate::progress::Ui;

#[derive(Debug, Args)]
pub struct VocoderCmd {
    #[command(subcommand)]
    pub command: VocoderSub,
}

#[derive(Debug, Subcommand)]
pub enum VocoderSub {
    /// Train a vocoder on audio (checkpoints, metrics, loss curve; exact resume).
    Train(TrainArgs),
    /// Write a vocoder directory (vocoder.json, vocoder.safetensors, README.md) from a run.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
The data is an audio directory: with train/ and test/ inside (as `musicdiff corpus build`
writes them) those are the training and held-out files; otherwise every audio file below it,
one in twenty held out by name. Prepared shards (a directory with manifest.json) are followed
to the audio directory they were prepared from.

The run directory holds:
  config.toml            the configuration the run started with
  metrics.jsonl          per logged step: loss, mel_l1, sc (spectral convergence), log_mag,
                         magnitude (SC + log-magnitude L1 of the predicted magnitude), lr,
                         grad_norm, audio_per_second; per evaluation the EMA weights' eval_*
                         on fixed held-out crops
  loss.png               training loss; held-out mel L1 (orange), spectral convergence (green)
                         and log-magnitude distance (purple)
  checkpoints/step-N/    weights, EMA weights, optimiser state, state.json

Examples:
  musicdiff vocoder train --data data/corpus --config configs/vocoder/small.toml --out runs/vocoder
  musicdiff vocoder train --data data/corpus --config configs/vocoder/small.toml --out runs/vocoder \\
      --resume --time-budget 2h
  musicdiff vocoder export runs/vocoder --out models/vocoder")]
pub struct TrainArgs {
    /// Audio directory (or prepared shards, followed to their audio).
    #[arg(long, value_name = "AUDIO|SHARDS")]
    pub data: PathBuf,
    /// Vocoder configuration (TOML; see configs/vocoder/tiny.toml and small.toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Run directory for checkpoints and metrics.
    #[arg(long, value_name = "RUN")]
    pub out: PathBuf,
    /// Continue from the run's latest checkpoint (same configuration and data required).
    #[arg(long)]
    pub resume: bool,
    /// Stop once this many optimiser steps are done in total (the schedule keeps its length).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<u64>,
    /// Stop after this much wall time, e.g. 90s, 45m, 2h, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub time_budget: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A vocoder run directory (its latest checkpoint) or one checkpoint directory.
    #[arg(value_name = "RUN_OR_CHECKPOINT")]
    pub from: PathBuf,
    /// The vocoder directory to write.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A short name recorded in vocoder.json and shown in generation sidecars.
    #[arg(long, default_value = "vocos-small")]
    pub id: String,
    /// Store the weights as f32 instead of f16 (twice the size; f16 is what ships).
    #[arg(long)]
    pub f32: bool,
    /// Fast Griffin-Lim iterations that refine the network's spectrum at synthesis (0: the plain
    /// iSTFT; at most 64; each costs an STFT and an iSTFT). Default: the run's configuration.
    #[arg(long, value_name = "N")]
    pub refine_iters: Option<usize>,
    /// Where synthesis takes the phase from: the network's phase head, or phases integrated
    /// from the predicted magnitude (PGHI). Default: the run's configuration.
    #[arg(long, value_name = "network|pghi", value_parser = parse_phase)]
    pub phase: Option<SynthesisPhase>,
    /// Multiplicative updates fitting the predicted power to the input's mel energies before
    /// the phase (0: none; at most 64). Default: the run's configuration.
    #[arg(long, value_name = "N")]
    pub mel_fit: Option<usize>,
    /// Replace an existing vocoder directory.
    #[arg(long)]
    pub force: bool,
}

pub fn run(cmd: VocoderCmd, ui: &Ui) -> anyhow::Result<()> {
    match cmd.command {
        VocoderSub::Train(a) => train(a, ui),
        VocoderSub::Export(a) => export(a, ui),
    }
}

fn train(a: TrainArgs, ui: &Ui) -> anyhow::Result<()> {
    let config = VocoderTrainConfig::load(&a.config)?;
    let opts = VocoderOptions {
        data: a.data,
        out: a.out,
        config,
        resume: a.resume,
        max_steps: a.max_steps,
        time_budget: a.time_budget,
    };
    let stop = stop_on_ctrl_c()?;
    let end = opts
        .max_steps
        .unwrap_or(opts.config.optim.steps)
        .min(opts.config.optim.steps);
    let bar = ui.bar(end, "training vocoder");
    let (mut last_step, mut last_eval) = (String::new(), String::new());
    let outcome = musicdiff_train::vocoder::train(&opts, &stop, &mut |event| match event {
        VocoderEvent::Started {
            step,
            total,
            parameters,
            train_files,
            held_out_files,
            hours,
        } => {
            bar.set_position(step);
            ui.note(format!(
                "vocoder: {:.2} M parameters; data: {train_files} training files ({hours:.2} h), {held_out_files} held out; schedule: {total} steps; starting at step {step}",
                parameters as f64 / 1e6
            ));
        }
        VocoderEvent::Step {
            step,
            loss,
            lr,
            audio_per_second,
        } => {
            bar.set_position(step);
            last_step = format!("loss {loss:.4} lr {lr:.2e} {audio_per_second:.1} audio-s/s");
            bar.set_message(format!("{last_step}{last_eval}"));
        }
        VocoderEvent::Eval { held_out: h, .. } => {
            last_eval = format!(
                " | held-out mel L1 {:.4} SC {:.4} log-mag {:.4} predicted-magnitude {:.4}",
                h.mel_l1, h.sc, h.log_mag, h.magnitude
            );
            bar.set_message(format!("{last_step}{last_eval}"));
        }
        VocoderEvent::Checkpoint { step, path } => bar.suspend(|| {
            ui.note(format!(
                "step {step}: checkpoint {} ({last_step}{last_eval})",
                path.display()
            ))
        }),
        VocoderEvent::Note(msg) => bar.suspend(|| ui.note(msg)),
    })?;
    bar.finish_and_clear();
    let loss = if outcome.last_loss.is_finite() {
        format!("{:.4}", outcome.last_loss)
    } else {
        "none yet".to_string()
    };
    println!(
        "stopped at step {} ({}); last logged loss {loss}; checkpoint {}",
        outcome.step,
        stop_words(outcome.reason),
        outcome.checkpoint.display()
    );
    Ok(())
}

fn export(a: ExportArgs, ui: &Ui) -> anyhow::Result<()> {
    let meta = a.out.join(musicdiff_vocoder::dir::META_FILE);
    if meta.exists() && !a.force {
        return Err(musicdiff_train::TrainError::Exists { path: a.out }.into());
    }
    let dtype = if a.f32 {
        WeightDtype::F32
    } else {
        WeightDtype::F16
    };
    let sp = ui.spinner("exporting the vocoder");
    let dir = musicdiff_train::vocoder::export(
        &a.from,
        &a.out,
        &a.id,
        dtype,
        musicdiff_train::vocoder::SynthesisChoice {
            refine_iters: a.refine_iters,
            phase: a.phase,
            mel_fit_iters: a.mel_fit,
        },
    )?;
    sp.finish_and_clear();
    let meta = musicdiff_vocoder::dir::read_meta(&dir)?;
    println!(
        "wrote {} ({} parameters, {} steps, SHA-256 {})",
        dir.display(),
        meta.weights.parameters,
        meta.training.steps,
        &meta.weights.sha256[..12]
    );
    Ok(())
}

fn parse_phase(s: &str) -> Result<SynthesisPhase, String> {
    match s {
        "network" => Ok(SynthesisPhase::Network),
        "pghi" => Ok(SynthesisPhase::Pghi),
        other => Err(format!("`{other}` is neither `network` nor `pghi`")),
    }
}
