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
    /// Write (predicted log-mel, real audio) pairs from a diffusion model, to fine-tune a
    /// vocoder on the model's own spectrograms.
    Pairs(PairsArgs),
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
    /// Start a new run from this vocoder directory's weights (fine-tuning) instead of a random
    /// initialisation; the config's network must have its shape and read the same log-mel.
    #[arg(long, value_name = "DIR")]
    pub init_from: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
Each pair is a training window of the shards, noised to a diffusion time in [t-min, t-max) and
denoised once by the model (every conditioning part kept): the model's clean estimate of that
window, which lines up with the recording, beside the audio it was computed from. The output
holds train/ and test/ (NNNNNN.wav, 32-bit float, beside NNNNNN.mel.safetensors) and
pairs.json (the model, the times, and the mean distance between predicted and real log-mel);
`musicdiff vocoder train --data OUT` reads each file's predicted mel instead of the log-mel of
its audio. The set is built in OUT.partial/ and renamed when complete.

Example (fine-tune the bundled vocoder on the bundled model's spectrograms):
  musicdiff vocoder pairs --model models/default --data data/shards --out data/pairs
  musicdiff vocoder train --data data/pairs --config configs/vocoder/finetune-predicted.toml \\
      --init-from models/vocoder --out runs/vocoder-ft")]
pub struct PairsArgs {
    /// The diffusion model directory whose predictions the vocoder will read.
    #[arg(long, value_name = "DIR", default_value = "models/default")]
    pub model: PathBuf,
    /// Prepared shards of the data the model was trained on (their source audio must exist).
    #[arg(long, value_name = "SHARDS")]
    pub data: PathBuf,
    /// The pair directory to write (must not exist).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Windows from the shards' training split.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub train_windows: usize,
    /// Windows for the test pairs (the vocoder run's held-out crops): from the shards' test
    /// split, topped up with training windows not among the training pairs when it has too few.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub test_windows: usize,
    /// Smallest diffusion time of a window.
    #[arg(long, value_name = "T", default_value_t = 0.0)]
    pub t_min: f64,
    /// Largest diffusion time of a window (where the clean estimate is still the recording).
    #[arg(long, value_name = "T", default_value_t = 0.15)]
    pub t_max: f64,
    /// Seed of the window order, times and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Windows per forward pass.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub batch_size: usize,
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
        VocoderSub::Pairs(a) => pairs(a, ui),
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
        init_from: a.init_from,
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

fn pairs(a: PairsArgs, ui: &Ui) -> anyhow::Result<()> {
    use musicdiff_train::predicted::{PairsEvent, PairsOptions};
    let opts = PairsOptions {
        model: a.model,
        data: a.data,
        out: a.out,
        text_model: musicdiff_common::assets::minilm()?,
        train_windows: a.train_windows,
        test_windows: a.test_windows,
        times: (a.t_min, a.t_max),
        seed: a.seed,
        batch_size: a.batch_size,
    };
    let stop = stop_on_ctrl_c()?;
    let bar = ui.bar(
        (opts.train_windows + opts.test_windows) as u64,
        "predicting mels",
    );
    let record = musicdiff_train::predicted::write_pairs(&opts, &stop, &mut |event| match event {
        PairsEvent::Started { total, model } => {
            bar.suspend(|| ui.note(format!("{total} windows through {model}")));
        }
        PairsEvent::Wrote { done } => bar.set_position(done as u64),
    })?;
    bar.finish_and_clear();
    let errors: Vec<String> = record
        .mean_abs_error
        .iter()
        .map(|(split, e)| format!("{split} {e:.3}"))
        .collect();
    println!(
        "wrote {} ({} train + {} test pairs at t in [{}, {}); mean |predicted - real| log-mel: {})",
        opts.out.display(),
        record.train,
        record.test,
        record.times.0,
        record.times.1,
        errors.join(", ")
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
