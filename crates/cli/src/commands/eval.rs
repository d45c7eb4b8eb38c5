//! `musicdiff eval`: measures a model against a held-out reference set beside its baselines
//! (the `musicdiff-eval` crate does the work; this shows progress and prints the table).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::ProgressBar;
use musicdiff_eval::{EvalTask, Event, Options};

use crate::progress::Ui;

#[derive(Debug, Args)]
#[command(after_long_help = "\
For each of --n reference clips (spread over the set), the model generates from the clip's own
caption (seed = --seed + clip index), fills the clip's middle third and continues its first half;
the baselines are the reference through the conversion (oracle), Mozart's dice game over the
reference bars, a Markov chain over clustered training frames, shaped noise and the model
without its prompt. The judges: musicnn's MagnaTagATune tagger (embeddings, tags), and the
tempo and key estimators. The metrics (docs/evaluation.md): FAD and KID on musicnn embeddings,
paired KL over tags, tag adherence (ROC AUC per prompt tag), tempo Acc1/Acc2 and MIREX key
score against the prompt, seam distances for fill and continue, the conversion's spectral
convergence and log-spectral distance, and the held-out loss training logged.

OUT receives report.md (one table, baselines as rows), report.json, plots/*.svg, the audio
(audio/SYSTEM/ID.wav) and a cache of analyses (cache/): an interrupted run started again with
the same settings resumes where it stopped; other settings in the same OUT are refused.

Example:
  musicdiff eval --model models/default --reference data/corpus/test --n 128 --out reports/default")]
pub struct EvalCmd {
    /// Model directory [default: models/default or $MUSICDIFF_MODEL].
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Reference set: captioned clips held out from training (AudioFolder, e.g. a corpus's
    /// test/ directory).
    #[arg(long, value_name = "DIR")]
    pub reference: PathBuf,
    /// Report directory (created; resumable).
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of reference clips.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub n: usize,
    /// Tasks to evaluate the model on, comma-separated.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "generate,fill,continue",
        value_delimiter = ','
    )]
    pub tasks: Vec<String>,
    /// Clip length in seconds [default: the model's window, one window per clip].
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// Base seed; clip i uses seed + i.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Sampling steps [default: the model's].
    #[arg(long, value_name = "K")]
    pub steps: Option<usize>,
    /// Training audio for the Markov-chain baseline [default: train/ beside --reference].
    #[arg(long, value_name = "DIR")]
    pub train: Option<PathBuf>,
    /// musicnn asset directory [default: assets/musicnn, found like the other assets].
    #[arg(long, value_name = "DIR")]
    pub musicnn: Option<PathBuf>,
    /// Leave out the baselines other than the oracle (dice game, Markov chain, noise, unprompted).
    #[arg(long)]
    pub no_baselines: bool,
    /// Log-mel -> waveform for every system: a vocoder directory or `griffin-lim` [default:
    /// $MUSICDIFF_VOCODER, else the bundled models/vocoder, else Griffin-Lim].
    #[arg(long, value_name = "DIR|griffin-lim")]
    pub vocoder: Option<super::VocoderChoice>,
    /// Bootstrap resamples of every interval.
    #[arg(long, value_name = "N", default_value_t = musicdiff_eval::stats::BOOTSTRAP_RESAMPLES)]
    pub resamples: usize,
}

pub fn run(cmd: EvalCmd, ui: &Ui) -> Result<()> {
    let model = musicdiff_common::locate::model_dir(cmd.model.as_deref())?;
    let tasks = cmd
        .tasks
        .iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| EvalTask::parse(t))
        .collect::<musicdiff_eval::Result<Vec<_>>>()?;
    let mut opts = Options::new(model, cmd.reference, cmd.out.clone());
    opts.n = cmd.n;
    opts.tasks = tasks;
    opts.seconds = cmd.seconds;
    opts.seed = cmd.seed;
    opts.steps = cmd.steps;
    opts.train = cmd.train;
    opts.musicnn = cmd.musicnn;
    opts.baselines = !cmd.no_baselines;
    opts.resamples = cmd.resamples;
    opts.vocoder = super::vocoder_dir(cmd.vocoder.as_ref(), ui);
    let mut view = EvalView::default();
    let report = musicdiff_eval::run(&opts, &mut |event| view.show(ui, event))?;
    view.finish();
    println!("{}", musicdiff_eval::report::summary(&report));
    println!(
        "report: {}  ({:.1} min)",
        cmd.out.join("report.md").display(),
        report.wall_seconds / 60.0
    );
    Ok(())
}

/// The evaluation's progress: a bar (or spinner) per stage, notes and warnings above it.
/// Shared by `eval` and `experiment`.
#[derive(Default)]
pub struct EvalView {
    bar: Option<ProgressBar>,
}

impl EvalView {
    pub fn show(&mut self, ui: &Ui, event: Event) {
        match event {
            Event::Stage { name, total } => {
                self.finish();
                self.bar = Some(if total == 0 {
                    ui.spinner(&name)
                } else {
                    ui.bar(total as u64, &name)
                });
            }
            Event::Step => {
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
            }
            Event::Note(n) => match &self.bar {
                Some(b) => b.suspend(|| ui.note(&n)),
                None => ui.note(&n),
            },
            Event::Warning(w) => match &self.bar {
                Some(b) => b.suspend(|| ui.warn(&w)),
                None => ui.warn(&w),
            },
        }
    }

    /// Clears the current stage's bar.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
