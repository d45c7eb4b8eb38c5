//! `musicdiff export`: a training checkpoint -> a model directory that `generate`, `fill` and
//! `continue` load (EMA weights in f16 by default, config, provenance, model card).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use musicdiff_diffusion::sampler::SamplerKind;
use musicdiff_pipeline::model_dir::{SamplingDefaults, WeightDtype};
use musicdiff_train::export::{ExportOptions, export};

use crate::progress::Ui;

#[derive(Debug, Args)]
#[command(after_long_help = "\
The model directory holds model.json (architecture, data normalisation, provenance, default
sampling settings, weights hash), model.safetensors (the EMA weights) and README.md (the model
card, from the run's numbers plus --notes).

Example:
  musicdiff export runs/small -o models/default --notes configs/model-card-notes.md")]
pub struct ExportCmd {
    /// Run directory (the --out of `musicdiff train`).
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// Model directory to write (refused if it exists and is not empty, unless --force).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Replace the files of an existing model directory.
    #[arg(long)]
    pub force: bool,
    /// Checkpoint step to export [default: the latest].
    #[arg(long, value_name = "N")]
    pub step: Option<u64>,
    /// Model name shown in sidecars [default: musicdiff-CONFIG-STEP].
    #[arg(long, value_name = "NAME")]
    pub id: Option<String>,
    /// Store f32 weights instead of f16 (twice the size, no rounding).
    #[arg(long)]
    pub f32: bool,
    /// Markdown file appended to the model card (data licences, intended use).
    #[arg(long, value_name = "FILE")]
    pub notes: Option<PathBuf>,
    /// Default sampler written into the model.
    #[arg(long, value_name = "NAME", default_value = "dpm++2m")]
    pub sampler: SamplerKind,
    /// Default sampling steps written into the model.
    #[arg(long, value_name = "K", default_value_t = SamplingDefaults::default().steps)]
    pub steps: usize,
    /// Default guidance scale written into the model.
    #[arg(long, value_name = "W", default_value_t = SamplingDefaults::default().cfg)]
    pub cfg: f32,
    /// Default window overlap (seconds) written into the model [default: a quarter of the
    /// model's window].
    #[arg(long, value_name = "SECONDS")]
    pub overlap: Option<f32>,
}

pub fn run(cmd: ExportCmd, ui: &Ui) -> Result<()> {
    let notes = match &cmd.notes {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let opts = ExportOptions {
        run: cmd.run,
        step: cmd.step,
        out: cmd.output.clone(),
        force: cmd.force,
        id: cmd.id,
        dtype: if cmd.f32 {
            WeightDtype::F32
        } else {
            WeightDtype::F16
        },
        sampling: SamplingDefaults {
            sampler: cmd.sampler,
            steps: cmd.steps,
            cfg: cmd.cfg,
            overlap_seconds: cmd.overlap.unwrap_or(0.0),
            ..Default::default()
        },
        notes,
    };
    let sp = ui.spinner("exporting");
    let meta = export(&opts);
    sp.finish_and_clear();
    let meta = meta?;
    let size = std::fs::metadata(cmd.output.join("model.safetensors"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "wrote {} ({}: step {}, {:.2} M parameters, {:?} weights {:.1} MB, sha256 {})",
        cmd.output.display(),
        meta.id,
        meta.training.step,
        meta.weights.parameters as f64 / 1e6,
        meta.weights.dtype,
        size as f64 / 1e6,
        &meta.weights.sha256[..12]
    );
    Ok(())
}
