//! `musicdiff train`: trains the diffusion transformer on prepared shards, with a progress bar,
//! `RUN/metrics.jsonl`, a loss-curve PNG, preview samples and crash-safe checkpoints. Ctrl-C
//! stops after the current step with a checkpoint; `--resume` continues exactly.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use musicdiff_common::assets;
use musicdiff_train::{Event, Options, StopReason, TrainConfig};

use crate::progress::Ui;

#[derive(Debug, Args)]
#[command(after_long_help = "\
The run directory holds:
  config.toml            the configuration the run started with
  metrics.jsonl          one JSON object per logged step (loss, lr, grad_norm, samples/s) and per
                         evaluation (held-out loss per task: eval_full, eval_spans, eval_prefix;
                         and eval_full_uncond, the full task with the conditioning dropped: the
                         'gain' full_uncond / full in the log is 1 if the prompt is ignored)
  loss.png               the loss curves, refreshed at every checkpoint
  checkpoints/latest     the name of the newest complete checkpoint
  checkpoints/step-N/    model + EMA weights and optimiser state (safetensors), state.json
  samples/step-N/        the configured prompts rendered with the EMA weights (WAV + PNG)

Examples:
  musicdiff train --data data/shards --config configs/train/small.toml --out runs/small
  musicdiff train --data data/shards --config configs/train/small.toml --out runs/small \\
      --resume --time-budget 2h
  musicdiff train --data my/shards --config configs/train/small.toml --out runs/mine \
      --init-from runs/small")]
pub struct TrainCmd {
    /// Prepared shards (the output of `musicdiff data prepare`).
    #[arg(long, value_name = "SHARDS")]
    pub data: PathBuf,
    /// Training configuration (TOML; see configs/train/tiny.toml, small.toml, base.toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Run directory for checkpoints, metrics and samples.
    #[arg(long, value_name = "RUN")]
    pub out: PathBuf,
    /// Continue from the run's latest checkpoint (same configuration required).
    #[arg(long, conflicts_with = "init_from")]
    pub resume: bool,
    /// Start a new run from another run's weights (its latest checkpoint, the checkpoint
    /// directory given, or a model directory such as models/default) instead of a fresh
    /// initialisation: fine-tuning. The config must
    /// describe the same model, or that model with parts added (e.g. `head_hidden`, which
    /// starts at zero) or another `prediction`; the optimiser and learning-rate schedule start
    /// anew.
    #[arg(long, value_name = "RUN|CHECKPOINT|MODEL")]
    pub init_from: Option<PathBuf>,
    /// Stop once this many optimiser steps are done in total (the learning-rate schedule keeps
    /// the length the config gives it, so a later --resume carries on smoothly).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<u64>,
    /// Stop after this much wall time, e.g. 90s, 45m, 2h, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub time_budget: Option<Duration>,
}

/// The training progress bar: position, the latest loss and held-out losses as its message,
/// a line per checkpoint (so a log file, where indicatif hides the bar, still shows how
/// training goes) and the trainer's notes. Shared by `train` and `experiment`.
pub struct TrainView {
    pub bar: indicatif::ProgressBar,
    last_step: String,
    last_eval: String,
}

impl TrainView {
    pub fn new(bar: indicatif::ProgressBar) -> Self {
        Self {
            bar,
            last_step: String::new(),
            last_eval: String::new(),
        }
    }

    pub fn show(&mut self, ui: &Ui, event: Event) {
        let bar = &self.bar;
        match event {
            Event::Started {
                step,
                total,
                parameters,
                train_windows,
            } => {
                bar.set_position(step);
                bar.suspend(|| {
                    ui.note(format!(
                        "model: {:.2} M parameters; data: {train_windows} training windows; schedule: {total} steps; starting at step {step}",
                        parameters as f64 / 1e6
                    ))
                });
            }
            Event::Step {
                step,
                loss,
                lr,
                samples_per_second,
            } => {
                bar.set_position(step);
                self.last_step =
                    format!("loss {loss:.4} lr {lr:.2e} {samples_per_second:.1} samples/s");
                bar.set_message(format!("{}{}", self.last_step, self.last_eval));
            }
            Event::Eval { losses, .. } => {
                let [full, fill, cont] = losses.tasks;
                self.last_eval = format!(
                    " | held-out full {full:.4} fill {fill:.4} cont {cont:.4} uncond {:.4} (gain {:.3})",
                    losses.full_uncond,
                    losses.conditioning_gain()
                );
                bar.set_message(format!("{}{}", self.last_step, self.last_eval));
            }
            Event::Checkpoint { step, path } => {
                bar.suspend(|| {
                    ui.note(format!(
                        "step {step}: checkpoint {} ({}{})",
                        path.display(),
                        self.last_step,
                        self.last_eval
                    ))
                });
            }
            Event::Samples { step, dir } => {
                bar.suspend(|| ui.note(format!("step {step}: samples in {}", dir.display())));
            }
            Event::Note(msg) => bar.suspend(|| ui.note(msg)),
        }
    }
}

/// `90s`, `45m`, `2h`, `1h30m`, `1.5h` -> a duration (`musicdiff_common::duration`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    musicdiff_common::duration::parse(s)
}

/// A flag raised by the first Ctrl-C (the run stops after its current step, with a
/// checkpoint); a second Ctrl-C exits at once.
pub fn stop_on_ctrl_c() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: the user really wants out.
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (a checkpoint follows); Ctrl-C again to abort");
    })?;
    Ok(stop)
}

/// Why a run stopped, in words.
pub fn stop_words(reason: StopReason) -> &'static str {
    match reason {
        StopReason::ScheduleDone => "the schedule is complete",
        StopReason::MaxSteps => "--max-steps reached",
        StopReason::TimeBudget => "--time-budget spent",
        StopReason::Interrupted => "interrupted",
    }
}

pub fn run(cmd: TrainCmd, ui: &Ui) -> anyhow::Result<()> {
    let config = TrainConfig::load(&cmd.config)?;
    let opts = Options {
        data: cmd.data,
        out: cmd.out,
        config,
        resume: cmd.resume,
        init_from: cmd.init_from,
        max_steps: cmd.max_steps,
        time_budget: cmd.time_budget,
        text_model: assets::minilm()?,
    };
    let stop = stop_on_ctrl_c()?;
    let end = opts
        .max_steps
        .unwrap_or(opts.config.optim.steps)
        .min(opts.config.optim.steps);
    let mut view = TrainView::new(ui.bar(end, "training"));
    let outcome = musicdiff_train::train(&opts, &stop, &mut |event| view.show(ui, event))?;
    view.bar.finish_and_clear();
    let why = stop_words(outcome.reason);
    // Before the first logging interval ends there is no loss to report.
    let loss = if outcome.last_loss.is_finite() {
        format!("{:.4}", outcome.last_loss)
    } else {
        "none yet".to_string()
    };
    println!(
        "stopped at step {} ({why}); last logged loss {loss}; checkpoint {}",
        outcome.step,
        outcome
            .checkpoint
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}
