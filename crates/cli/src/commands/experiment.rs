//! `musicdiff experiment`: runs an experiment config's arms (train, export, evaluate; the
//! `musicdiff-experiment` crate does the work) with the training and evaluation progress of
//! `train` and `eval`, and prints where the report is. Ctrl-C stops after the current training
//! step with a checkpoint; the same command resumes.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use musicdiff_common::assets;
use musicdiff_experiment::{Event, ExperimentConfig, ExperimentError, Options, Stage};

use super::eval::EvalView;
use super::train::{TrainView, stop_on_ctrl_c};
use crate::progress::Ui;

#[derive(Debug, Args)]
#[command(after_long_help = "\
The config (configs/experiments/*.toml) names a base training config, the prepared data, one
budget (steps, or training wall time summed over resumes), the evaluation sets and the arms,
each a set of overrides of the base:

  description = \"masking strategies (JEN-1)\"
  base = \"configs/train/small.toml\"
  data = \"data/shards\"
  [budget]
  steps = 1500                       # or: time = \"40m\"
  [[eval]]
  name = \"main\"
  reference = \"data/corpus/test\"
  n = 64
  conversion = \"models/vocoder\"      # or \"griffin-lim\"
  [[arm]]
  name = \"full-only\"
  description = \"generation only\"
  set.masks = { full = 1.0, spans = 0.0, prefix = 0.0 }

Every arm trains under the same budget on its data and seed, is exported and is scored by the
evaluation suite (as `musicdiff eval --no-baselines`) on the same clips and seeds. OUT (default
experiments/NAME, NAME the config's file stem) receives:
  report.md, report.json   the arms side by side (training table; one table per evaluation set
                           with 95% intervals, best in bold), rewritten after every arm
  loss.svg                 the arms' training and held-out loss curves overlaid
  arms/ARM/run/            the training run (checkpoints, metrics.jsonl, loss.png)
  arms/ARM/model/          the exported model
  arms/ARM/eval/SET/       the evaluation report, audio and cache
  arms/ARM/result.json     the finished arm: never redone; refused if the config changed it

Interrupted (Ctrl-C, a kill, a crash), the same command continues: finished arms are kept, a
training run resumes from its last checkpoint, an evaluation from its cache.

Examples:
  musicdiff experiment configs/experiments/masking.toml
  musicdiff experiment configs/experiments/masking.toml --only full-only,mix
  nohup musicdiff -q experiment configs/experiments/positions.toml > positions.log 2>&1 &")]
pub struct ExperimentCmd {
    /// The experiment config (TOML).
    #[arg(value_name = "CONFIG")]
    pub config: PathBuf,
    /// Experiment directory [default: experiments/NAME].
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run only these arms (comma-separated names); the report covers the arms finished.
    #[arg(long, value_name = "ARMS", value_delimiter = ',')]
    pub only: Vec<String>,
    /// musicnn asset directory [default: assets/musicnn, found like the other assets].
    #[arg(long, value_name = "DIR")]
    pub musicnn: Option<PathBuf>,
    /// Bootstrap resamples of every interval.
    #[arg(long, value_name = "N", default_value_t = musicdiff_eval::stats::BOOTSTRAP_RESAMPLES)]
    pub resamples: usize,
}

pub fn run(cmd: ExperimentCmd, ui: &Ui) -> Result<()> {
    let (config, mut arms) = ExperimentConfig::load(&cmd.config)?;
    let name = cmd
        .config
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("experiment")
        .to_string();
    if !cmd.only.is_empty() {
        if let Some(unknown) = cmd
            .only
            .iter()
            .find(|o| !arms.iter().any(|a| &a.arm.name == *o))
        {
            return Err(ExperimentError::Config {
                path: cmd.config.clone(),
                detail: format!(
                    "--only: no arm `{unknown}` (arms: {})",
                    arms.iter()
                        .map(|a| a.arm.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
            .into());
        }
        arms.retain(|a| cmd.only.contains(&a.arm.name));
    }
    let out = cmd
        .out
        .unwrap_or_else(|| PathBuf::from("experiments").join(&name));
    let opts = Options {
        name,
        config,
        arms,
        out: out.clone(),
        text_model: assets::minilm()?,
        musicnn: cmd.musicnn,
        resamples: cmd.resamples,
    };
    let stop = stop_on_ctrl_c()?;
    let mut train_view: Option<TrainView> = None;
    let mut eval_view = EvalView::default();
    let results = musicdiff_experiment::run(&opts, &stop, &mut |event| match event {
        Event::Arm {
            index,
            total,
            name,
            kept,
        } => {
            eval_view.finish();
            if kept {
                ui.note(format!(
                    "arm {}/{total} `{name}`: finished earlier, kept",
                    index + 1
                ));
            } else {
                ui.note(format!("arm {}/{total} `{name}`", index + 1));
            }
        }
        Event::Stage(stage) => {
            eval_view.finish();
            if let Some(v) = train_view.take() {
                v.bar.finish_and_clear();
            }
            match stage {
                Stage::Train { from, until } => {
                    let end = until.unwrap_or(0);
                    let bar = if end > 0 {
                        ui.bar(end, "training")
                    } else {
                        ui.spinner("training (time budget)")
                    };
                    bar.set_position(from);
                    train_view = Some(TrainView::new(bar));
                }
                Stage::Export => ui.note("exporting"),
                Stage::Eval { set } => ui.note(format!("evaluating on `{set}`")),
            }
        }
        Event::Train(e) => {
            if let Some(v) = train_view.as_mut() {
                v.show(ui, e);
            }
        }
        Event::Eval(e) => eval_view.show(ui, e),
        Event::Note(n) => ui.note(n),
    });
    eval_view.finish();
    if let Some(v) = train_view.take() {
        v.bar.finish_and_clear();
    }
    let results = results?;
    println!(
        "{} arm(s) finished; report: {}",
        results.len(),
        out.join("report.md").display()
    );
    Ok(())
}
