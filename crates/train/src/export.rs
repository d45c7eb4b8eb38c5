//! Checkpoint -> model directory (the format of `musicdiff_pipeline::model_dir`): the EMA
//! weights in f16 or f32 (refused if any value is NaN or infinite; the same checkpoint always
//! gives the same bytes), `model.json` with the config, the data facts and the run's provenance
//! (steps, samples, wall time, last losses), and a model card written from the same numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use musicdiff_pipeline::model_dir::{
    self, ModelMeta, SamplingDefaults, TrainingInfo, WeightDtype, WeightsInfo,
};

use crate::checkpoint::{self, TrainState};
use crate::error::{Result, TrainError};
use crate::trainer::read_curves;

/// What to export and how.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The run directory (`musicdiff train --out`).
    pub run: PathBuf,
    /// A checkpoint step; the latest when `None`.
    pub step: Option<u64>,
    pub out: PathBuf,
    /// Replace `out` if it already holds something (otherwise refused).
    pub force: bool,
    /// The model's name; `musicdiff-<config>-<step>` when `None`.
    pub id: Option<String>,
    pub dtype: WeightDtype,
    /// Default sampling settings; an `overlap_seconds` of 0 or less means a quarter window.
    pub sampling: SamplingDefaults,
    /// Extra markdown appended to the model card (data licences, intended use).
    pub notes: Option<String>,
}

/// Training loss averaged over the last `n` logged points.
fn recent_loss(train: &[(u64, f64)], upto: u64, n: usize) -> Option<f64> {
    let pts: Vec<f64> = train
        .iter()
        .filter(|(s, _)| *s <= upto)
        .rev()
        .take(n)
        .map(|p| p.1)
        .collect();
    (!pts.is_empty()).then(|| pts.iter().sum::<f64>() / pts.len() as f64)
}

/// Writes the model directory and returns its metadata.
pub fn export(opts: &ExportOptions) -> Result<ModelMeta> {
    let occupied = opts.out.exists()
        && (!opts.out.is_dir()
            || std::fs::read_dir(&opts.out)
                .map_err(|e| TrainError::io(&opts.out, e))?
                .next()
                .is_some());
    if occupied && !opts.force {
        return Err(TrainError::Exists {
            path: opts.out.clone(),
        });
    }
    let dir = match opts.step {
        Some(step) => checkpoint::root(&opts.run).join(checkpoint::dir_name(step)),
        None => checkpoint::latest(&opts.run)?.ok_or_else(|| TrainError::Checkpoint {
            path: checkpoint::root(&opts.run),
            detail: "no checkpoint to export".into(),
        })?,
    };
    if !dir.join(checkpoint::STATE).exists() {
        return Err(TrainError::Checkpoint {
            path: dir,
            detail: "not a complete checkpoint (no state.json)".into(),
        });
    }
    let state = checkpoint::read_state(&dir)?;
    let ema_path = dir.join(checkpoint::EMA);
    let weights = std::fs::read(&ema_path).map_err(|e| TrainError::io(&ema_path, e))?;
    // A diverged run's NaN weights would export fine and then generate silence.
    if let Some((tensor, v)) = musicdiff_model::io::first_non_finite(&weights, &ema_path)? {
        return Err(TrainError::Checkpoint {
            path: dir,
            detail: format!(
                "its EMA weights ({}) hold {v} in tensor {tensor}; non-finite weights are not exported (export an earlier step with --step)",
                checkpoint::EMA
            ),
        });
    }
    // Loading checks that the weights fit the config before anything is written.
    let model = musicdiff_model::io::load_bytes(
        &state.config.model,
        weights.clone(),
        &ema_path,
        &burn::prelude::Device::flex(),
    )?;
    let parameters = burn::module::Module::num_params(&model);
    let curves = read_curves(&opts.run.join("metrics.jsonl"));
    let train = curves.train;
    let mut eval_loss = BTreeMap::new();
    let last_eval = curves.eval.iter().rev().find(|(s, _)| *s <= state.step);
    if let Some((step, [full, fill, cont])) = last_eval {
        eval_loss.insert("full".to_string(), *full);
        eval_loss.insert("fill".to_string(), *fill);
        eval_loss.insert("continue".to_string(), *cont);
        if let Some((_, u)) = curves.uncond.iter().find(|(s, _)| s == step) {
            eval_loss.insert("full_unconditioned".to_string(), *u);
        }
    }
    let config_name = state
        .config
        .description
        .split(':')
        .next()
        .unwrap_or("model")
        .trim()
        .replace(' ', "-");
    let meta = ModelMeta {
        format: model_dir::FORMAT.into(),
        id: opts
            .id
            .clone()
            .unwrap_or_else(|| format!("musicdiff-{config_name}-{}", state.step)),
        model: state.config.model.clone(),
        data: state.data.clone(),
        weights: WeightsInfo {
            dtype: opts.dtype,
            sha256: String::new(),
            parameters,
        },
        training: TrainingInfo {
            config: state.config.description.clone(),
            step: state.step,
            samples_seen: state.samples_seen,
            train_seconds: state.elapsed_seconds,
            train_loss: recent_loss(&train, state.step, 10),
            eval_loss,
            eval_step: last_eval.map(|e| e.0),
        },
        sampling: SamplingDefaults {
            overlap_seconds: if opts.sampling.overlap_seconds > 0.0 {
                opts.sampling.overlap_seconds
            } else {
                // A quarter window, whole patches.
                let p = state.config.model.patch_frames;
                let tokens = state.config.model.tokens().div_ceil(4);
                ((tokens * p) as f64 * state.data.frame_seconds()) as f32
            },
            ..opts.sampling.clone()
        },
    };
    // The run's training-clip hashes travel with the model (absent: not known).
    let clips = model_dir::read_training_clips(&opts.run)?;
    let count = clips.as_ref().map(Vec::len);
    let mut card = card(&meta, &state, opts.notes.as_deref());
    card.push_str(&match count {
        Some(n) => format!(
            "\nThe content hashes of the {n} training clips are in `{}`; `musicdiff eval` warns when a reference set overlaps them.\n",
            model_dir::TRAINING_CLIPS
        ),
        None => "\nThe training clips are not recorded (data prepared before their hashes were), so an evaluation cannot check its reference set against them.\n".to_string(),
    });
    model_dir::write(&opts.out, &meta, &weights, &card)?;
    model_dir::write_training_clips(&opts.out, clips)?;
    model_dir::read_meta(&opts.out).map_err(TrainError::from)
}

/// The model card: what the model is, how it was trained, how to use it.
fn card(meta: &ModelMeta, state: &TrainState, notes: Option<&str>) -> String {
    let m = &meta.model;
    let d = &meta.data;
    let t = &meta.training;
    let window = m.frames as f64 * d.frame_seconds();
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", meta.id);
    let _ = writeln!(
        s,
        "A musicdiff text-to-music model: a diffusion transformer ({:.2} M parameters) over \
         {}-band log-mel spectrograms ({} Hz, hop {}), conditioned on {} caption states, genre and \
         artist fields and timing. It generates {window:.2} s windows; longer audio, filling and \
         continuation come from windowed sampling with the same weights.\n",
        meta.weights.parameters as f64 / 1e6,
        m.n_mels,
        d.sample_rate,
        d.hop_length,
        d.text_model
    );
    let _ = writeln!(s, "## Use\n");
    let _ = writeln!(
        s,
        "```sh\nmusicdiff generate \"slow bossa nova on nylon guitar, A minor, 90 bpm\" --model DIR -o out.wav\n```\n"
    );
    let _ = writeln!(
        s,
        "Defaults: {} sampler, {} steps, guidance {}, {:.2} s window overlap, {} Griffin-Lim iterations.\n",
        meta.sampling.sampler,
        meta.sampling.steps,
        meta.sampling.cfg,
        meta.sampling.overlap_seconds,
        meta.sampling.griffin_lim_iters
    );
    let _ = writeln!(s, "## Training\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| config | {} |", t.config);
    let _ = writeln!(
        s,
        "| model | d {}, {} blocks, {} heads, patches of {} frames, position {}, predicts {}{} |",
        m.d_model,
        m.depth,
        m.heads,
        m.patch_frames,
        format!("{:?}", m.position).to_lowercase(),
        format!("{:?}", m.prediction).to_lowercase(),
        m.head_hidden
            .map_or(String::new(), |h| format!(", {h}-wide output head branch"))
    );
    let _ = writeln!(
        s,
        "| diffusion | cosine schedule{}, loss weight {} (gamma {}) |",
        if m.schedule_shift == 1.0 {
            String::new()
        } else {
            format!(" with SNR shift {}", m.schedule_shift)
        },
        match state.config.diffusion.weighting {
            musicdiff_diffusion::Weighting::MinSnr => "min-SNR",
            musicdiff_diffusion::Weighting::MinSnrPlusOne => "min-SNR + 1",
        },
        state.config.diffusion.min_snr_gamma
    );
    let _ = writeln!(
        s,
        "| optimiser steps | {} of a {}-step schedule (batch {}, lr {}) |",
        t.step, state.config.optim.steps, state.config.optim.batch_size, state.config.optim.lr
    );
    let _ = writeln!(s, "| windows seen | {} |", t.samples_seen);
    if let Some(init) = &state.init {
        let _ = writeln!(
            s,
            "| started from | the EMA weights of a run after {} steps ({} windows, {:.2} h){} |",
            init.step,
            init.samples_seen,
            init.train_seconds / 3600.0,
            if init.fresh.is_empty() {
                String::new()
            } else {
                format!("; new parameters: {}", init.fresh.join(", "))
            }
        );
    }
    // The last two components of where the data came from (the rest is the machine's).
    let source: Vec<&str> = d.source.rsplit('/').take(2).collect();
    let source: Vec<&str> = source.into_iter().rev().collect();
    let _ = writeln!(
        s,
        "| training data | {:.2} h of audio from `{}` |",
        d.hours,
        source.join("/")
    );
    let _ = writeln!(
        s,
        "| training wall time | {:.2} h on 2 CPU cores |",
        t.train_seconds / 3600.0
    );
    if let Some(l) = t.train_loss {
        let _ = writeln!(s, "| training loss (last 10 logs) | {l:.4} |");
    }
    if !t.eval_loss.is_empty() {
        let parts: Vec<String> = t
            .eval_loss
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        let _ = writeln!(
            s,
            "| held-out loss (EMA, step {}) | {} |",
            t.eval_step.unwrap_or(t.step),
            parts.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "\n## Weights\n\nEMA weights (decay {}), stored as {}; SHA-256 in `model.json`.\n",
        state.config.optim.ema_decay,
        format!("{:?}", meta.weights.dtype).to_lowercase()
    );
    if let Some(notes) = notes {
        let _ = writeln!(s, "{}", notes.trim_end());
    }
    s
}
