//! The runner: every arm of an experiment trained under the same budget on its data and seed,
//! exported, scored by the evaluation suite on the same held-out sets, and summarised.
//!
//! Per arm, in `OUT/arms/ARM/`:
//! 0. if the same arm (the same training config but for its description, data, starting
//!    weights and budget) has finished in a sibling experiment (`OUT/../*/arms/*`), copy its
//!    run and model instead of training again (hard links where possible);
//! 1. train `run/` (a run with a checkpoint resumes; the step or wall-time budget is the
//!    arm's total over all sessions), unless the budget is already spent;
//! 2. export `model/` (through `model.partial/`, renamed when complete);
//! 3. evaluate it on every evaluation set into `eval/SET/` (resumable clip by clip);
//! 4. write `result.json` (settings, training figures, held-out losses, reports): an arm with
//!    one is finished and is not redone, unless its settings changed (then refused).
//!
//! After every finished arm the experiment report is rewritten (`report::write`), so a long
//! experiment can be read while it runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use musicdiff_common::atomic::write_bytes;
use musicdiff_pipeline::model_dir::{SamplingDefaults, WeightDtype};
use musicdiff_train::checkpoint;
use musicdiff_train::export::{ExportOptions, export};
use musicdiff_train::{StopReason, TrainError};
use serde::{Deserialize, Serialize};

use crate::config::{Budget, EvalSet, ExperimentConfig, ResolvedArm};
use crate::error::{ExperimentError, Result};
use crate::report;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The experiment's name (the config's file stem): report titles and model ids.
    pub name: String,
    pub config: ExperimentConfig,
    /// The arms to run, resolved (`ExperimentConfig::load`).
    pub arms: Vec<ResolvedArm>,
    /// The experiment directory (`experiments/NAME`).
    pub out: PathBuf,
    /// The MiniLM model directory (the trainer's text encoder).
    pub text_model: PathBuf,
    /// The musicnn asset directory; `None` finds it like the other assets.
    pub musicnn: Option<PathBuf>,
    /// Bootstrap resamples of every interval.
    pub resamples: usize,
}

/// Where the runner is, for the caller to show.
#[derive(Debug, Clone)]
pub enum Event {
    /// Arm `index` of `total` begins (or is found finished: `kept`).
    Arm {
        index: usize,
        total: usize,
        name: String,
        kept: bool,
    },
    /// A stage of the current arm begins.
    Stage(Stage),
    Train(musicdiff_train::Event),
    Eval(musicdiff_eval::Event),
    Note(String),
}

/// The stages of one arm.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Training up to `until` steps (or until the wall-time budget is spent: `None`).
    Train {
        from: u64,
        until: Option<u64>,
    },
    Export,
    Eval {
        set: String,
    },
}

/// What an arm was run with; a finished arm whose settings differ from the config's is refused
/// rather than silently kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmSettings {
    pub train: musicdiff_train::TrainConfig,
    pub data: PathBuf,
    pub init_from: Option<PathBuf>,
    pub budget: Budget,
    /// Every evaluation set with the conversion this arm used for it.
    pub eval: Vec<(EvalSet, String)>,
}

/// One finished arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmResult {
    pub name: String,
    pub description: String,
    pub settings: ArmSettings,
    /// Optimiser steps trained and the training wall time (all sessions).
    pub steps: u64,
    pub train_seconds: f64,
    pub parameters: usize,
    /// The last held-out loss per task (full, spans, prefix) and its step.
    pub heldout: Option<(u64, [f64; 3])>,
    /// The full task's held-out loss with the conditioning dropped, at the same step.
    pub heldout_uncond: Option<f64>,
    /// `(step, training loss)` and `(step, held-out losses)`: the curves of the report's plot.
    pub train_curve: Vec<(u64, f64)>,
    pub eval_curve: Vec<(u64, [f64; 3])>,
    /// The evaluation reports, by set name.
    pub reports: BTreeMap<String, musicdiff_eval::Report>,
    /// The arm of another experiment whose run and model this one copied (step 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<PathBuf>,
}

const RESULT: &str = "result.json";

fn arm_dir(out: &Path, arm: &str) -> PathBuf {
    out.join("arms").join(arm)
}

fn settings(opts: &Options, arm: &ResolvedArm) -> ArmSettings {
    ArmSettings {
        train: arm.train.clone(),
        data: arm.data.clone(),
        init_from: opts.config.init_from.clone(),
        budget: opts.config.budget.clone(),
        eval: opts
            .config
            .eval
            .iter()
            .map(|s| (s.clone(), arm.conversion(s).to_string()))
            .collect(),
    }
}

/// The finished result of `arm` in `out`, if there is one.
pub fn read_result(out: &Path, arm: &str) -> Result<Option<ArmResult>> {
    let path = arm_dir(out, arm).join(RESULT);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ExperimentError::Json {
                path,
                detail: format!("not an arm result ({e}); delete it to redo the arm's report"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ExperimentError::io(path, e)),
    }
}

/// Runs every arm not yet finished, then writes the report; returns every arm's result.
pub fn run(
    opts: &Options,
    stop: &AtomicBool,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<Vec<ArmResult>> {
    std::fs::create_dir_all(&opts.out).map_err(|e| ExperimentError::io(&opts.out, e))?;
    let total = opts.arms.len();
    let mut results = Vec::with_capacity(total);
    for (index, arm) in opts.arms.iter().enumerate() {
        let name = arm.arm.name.clone();
        let wanted = settings(opts, arm);
        if let Some(done) = read_result(&opts.out, &name)? {
            if done.settings != wanted {
                return Err(ExperimentError::Output {
                    path: arm_dir(&opts.out, &name),
                    detail: format!(
                        "arm `{name}` was run with other settings than the config now gives; \
                         delete this directory to run it again, or give the changed arm a new name"
                    ),
                });
            }
            on_event(Event::Arm {
                index,
                total,
                name,
                kept: true,
            });
            results.push(done);
            continue;
        }
        on_event(Event::Arm {
            index,
            total,
            name: name.clone(),
            kept: false,
        });
        let result = run_arm(opts, arm, wanted, stop, on_event)?;
        results.push(result);
        report::write(opts, &results)?;
    }
    report::write(opts, &results)?;
    Ok(results)
}

/// Steps 1-4 of the module header for one arm.
fn run_arm(
    opts: &Options,
    arm: &ResolvedArm,
    wanted: ArmSettings,
    stop: &AtomicBool,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<ArmResult> {
    let name = arm.arm.name.as_str();
    let dir = arm_dir(&opts.out, name);
    let train_err = |source: TrainError| ExperimentError::Train {
        arm: name.to_string(),
        source: Box::new(source),
    };
    // 0. The same arm finished elsewhere: its run and model.
    let run = dir.join("run");
    let mut reused_from = None;
    if checkpoint::latest(&run).map_err(train_err)?.is_none()
        && let Some(donor) = find_donor(opts, &wanted)?
    {
        on_event(Event::Note(format!(
            "arm `{name}`: the same training finished in {}; copying its run and model",
            donor.display()
        )));
        for part in ["run", "model"] {
            let partial = dir.join(format!("{part}.partial"));
            if partial.exists() {
                std::fs::remove_dir_all(&partial).map_err(|e| ExperimentError::io(&partial, e))?;
            }
            if dir.join(part).exists() {
                let stale = dir.join(part);
                std::fs::remove_dir_all(&stale).map_err(|e| ExperimentError::io(&stale, e))?;
            }
            copy_tree(&donor.join(part), &partial)?;
            std::fs::rename(&partial, dir.join(part))
                .map_err(|e| ExperimentError::io(dir.join(part), e))?;
        }
        reused_from = Some(donor);
    }
    // 1. Train to the budget.
    let state = match checkpoint::latest(&run).map_err(train_err)? {
        Some(c) => Some(checkpoint::read_state(&c).map_err(train_err)?),
        None => None,
    };
    let budget = &opts.config.budget;
    let (step, elapsed) = state
        .as_ref()
        .map_or((0, 0.0), |s| (s.step, s.elapsed_seconds));
    let spent = match (budget.steps, budget.duration()) {
        (Some(steps), _) => step >= steps,
        (None, Some(t)) => elapsed >= t.as_secs_f64(),
        (None, None) => unreachable!("validated at load"),
    };
    if !spent {
        if state.is_none() && run.exists() {
            // A run killed before its first checkpoint holds nothing worth keeping.
            std::fs::remove_dir_all(&run).map_err(|e| ExperimentError::io(&run, e))?;
        }
        on_event(Event::Stage(Stage::Train {
            from: step,
            until: budget.steps,
        }));
        let train_opts = musicdiff_train::Options {
            data: arm.data.clone(),
            out: run.clone(),
            config: arm.train.clone(),
            resume: state.is_some(),
            init_from: if state.is_none() {
                opts.config.init_from.clone()
            } else {
                None
            },
            max_steps: budget.steps,
            time_budget: budget
                .duration()
                .map(|t| t.saturating_sub(std::time::Duration::from_secs_f64(elapsed))),
            text_model: opts.text_model.clone(),
        };
        let outcome = musicdiff_train::train(&train_opts, stop, &mut |e| on_event(Event::Train(e)))
            .map_err(train_err)?;
        if outcome.reason == StopReason::Interrupted {
            return Err(ExperimentError::Interrupted {
                arm: name.to_string(),
            });
        }
    }
    let last = checkpoint::latest(&run)
        .map_err(train_err)?
        .ok_or_else(|| {
            train_err(TrainError::Checkpoint {
                path: checkpoint::root(&run),
                detail: "training ended without a checkpoint".into(),
            })
        })?;
    let state = checkpoint::read_state(&last).map_err(train_err)?;

    // 2. Export (atomically: a directory renamed into place once complete).
    let model = dir.join("model");
    let meta = if model.join("model.json").exists() {
        musicdiff_pipeline::model_dir::read_meta(&model).map_err(|e| train_err(e.into()))?
    } else {
        on_event(Event::Stage(Stage::Export));
        let partial = dir.join("model.partial");
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| ExperimentError::io(&partial, e))?;
        }
        let meta = export(&ExportOptions {
            run: run.clone(),
            step: Some(state.step),
            out: partial.clone(),
            force: true,
            id: Some(format!("{}-{name}", opts.name)),
            dtype: WeightDtype::F16,
            sampling: SamplingDefaults {
                overlap_seconds: 0.0,
                ..Default::default()
            },
            notes: Some(format!(
                "Arm `{name}` of the experiment `{}` ({}).",
                opts.name,
                if arm.arm.description.is_empty() {
                    "no description"
                } else {
                    &arm.arm.description
                }
            )),
        })
        .map_err(train_err)?;
        std::fs::rename(&partial, &model).map_err(|e| ExperimentError::io(&model, e))?;
        meta
    };

    // 3. Every evaluation set.
    let mut reports = BTreeMap::new();
    for set in &opts.config.eval {
        on_event(Event::Stage(Stage::Eval {
            set: set.name.clone(),
        }));
        let mut eval = musicdiff_eval::Options::new(
            model.clone(),
            set.reference.clone(),
            dir.join("eval").join(&set.name),
        );
        eval.n = set.n;
        eval.tasks = set.tasks.clone();
        eval.seconds = set.seconds;
        eval.steps = set.steps;
        eval.seed = set.seed;
        eval.musicnn = opts.musicnn.clone();
        eval.baselines = false;
        eval.resamples = opts.resamples;
        eval.vocoder = match arm.conversion(set) {
            "griffin-lim" => None,
            dir => Some(PathBuf::from(dir)),
        };
        let report =
            musicdiff_eval::run(&eval, &mut |e| on_event(Event::Eval(e))).map_err(|source| {
                ExperimentError::Eval {
                    arm: name.to_string(),
                    set: set.name.clone(),
                    source: Box::new(source),
                }
            })?;
        reports.insert(set.name.clone(), report);
    }

    // 4. The arm's result.
    let curves = musicdiff_train::read_curves(&run.join("metrics.jsonl"));
    let heldout = curves
        .eval
        .iter()
        .rev()
        .find(|(s, _)| *s <= state.step)
        .copied();
    let heldout_uncond = heldout.and_then(|(step, _)| {
        curves
            .uncond
            .iter()
            .find(|(s, _)| *s == step)
            .map(|(_, u)| *u)
    });
    let result = ArmResult {
        name: name.to_string(),
        description: arm.arm.description.clone(),
        settings: wanted,
        steps: state.step,
        train_seconds: state.elapsed_seconds,
        parameters: meta.weights.parameters,
        heldout,
        heldout_uncond,
        train_curve: curves.train,
        eval_curve: curves.eval,
        reports,
        reused_from,
    };
    let json = serde_json::to_vec_pretty(&result).expect("results serialise");
    write_bytes(&dir.join(RESULT), &json)?;
    Ok(result)
}

/// Whether two arms train the same model: equal settings but for the configs' descriptions and
/// the evaluation sets.
fn same_training(a: &ArmSettings, b: &ArmSettings) -> bool {
    let plain = |s: &ArmSettings| {
        let mut t = s.train.clone();
        t.description.clear();
        t
    };
    plain(a) == plain(b) && a.data == b.data && a.init_from == b.init_from && a.budget == b.budget
}

/// A finished arm of a sibling experiment (a directory beside `opts.out`) that trained what
/// `wanted` asks, if any (the first in name order).
fn find_donor(opts: &Options, wanted: &ArmSettings) -> Result<Option<PathBuf>> {
    let Some(root) = opts.out.parent().filter(|p| p.is_dir()) else {
        return Ok(None);
    };
    let sorted = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let here = opts.out.canonicalize().ok();
    for exp in sorted(root) {
        if exp.canonicalize().ok() == here || !exp.join("arms").is_dir() {
            continue;
        }
        for arm in sorted(&exp.join("arms")) {
            let Some(name) = arm.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            // An unreadable result elsewhere is that experiment's business, not this one's.
            if let Ok(Some(r)) = read_result(&exp, name)
                && same_training(&r.settings, wanted)
                && arm.join("model").join("model.json").exists()
            {
                return Ok(Some(arm));
            }
        }
    }
    Ok(None)
}

/// Copies the directory tree `from` to `to` (created). Weights (`.safetensors`, written once
/// and never modified in place) are hard-linked where the file system allows; everything else
/// (metrics a resumed run appends to, configs) is copied.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| ExperimentError::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| ExperimentError::io(from, e))? {
        let entry = entry.map_err(|e| ExperimentError::io(from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry
            .file_type()
            .map_err(|e| ExperimentError::io(&src, e))?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if entry.file_name() != "lock" {
            let weights = src.extension().is_some_and(|e| e == "safetensors");
            if !(weights && std::fs::hard_link(&src, &dst).is_ok()) {
                std::fs::copy(&src, &dst).map_err(|e| ExperimentError::io(&src, e))?;
            }
        }
    }
    Ok(())
}
