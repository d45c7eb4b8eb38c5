//! The experiment configuration (`configs/experiments/NAME.toml`): one base training config,
//! the prepared data and the budget every arm shares, the evaluation sets every arm is scored
//! on, and the arms, each a named set of overrides of the base config (merged key by key, so
//! an arm states only what it changes).
//!
//! ```toml
//! description = "masking strategies (JEN-1)"
//! base = "configs/train/small.toml"
//! data = "data/shards"
//!
//! [budget]
//! steps = 1500          # or: time = "40m" (training wall time, summed over resumes)
//!
//! [[eval]]
//! name = "main"
//! reference = "data/corpus/test"
//! n = 64
//! conversion = "models/vocoder"   # or "griffin-lim"
//!
//! [[arm]]
//! name = "full-only"
//! set.masks = { full = 1.0, spans = 0.0, prefix = 0.0 }
//! ```
//!
//! Paths are relative to the working directory, as on the command line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use musicdiff_eval::EvalTask;
use musicdiff_train::TrainConfig;
use serde::{Deserialize, Serialize};

use crate::error::{ExperimentError, Result};

/// How long every arm trains: optimiser steps, or training wall time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Every arm stops at this many optimiser steps.
    #[serde(default)]
    pub steps: Option<u64>,
    /// Every arm trains this long (`40m`, `1h30m`), summed over resumed sessions: the budget
    /// for arms whose steps cost differently (equal wall-clock comparisons).
    #[serde(default)]
    pub time: Option<String>,
}

impl Budget {
    /// The time budget, parsed.
    pub fn duration(&self) -> Option<Duration> {
        self.time
            .as_deref()
            .map(|t| musicdiff_common::duration::parse(t).expect("validated at load"))
    }

    /// `1500 steps` or `40m of training`.
    pub fn describe(&self) -> String {
        match (&self.steps, &self.time) {
            (Some(s), _) => format!("{s} steps"),
            (None, Some(t)) => format!("{t} of training"),
            (None, None) => unreachable!("validated at load"),
        }
    }
}

/// One evaluation every arm's model gets (`musicdiff eval` with these settings, no baselines
/// but the oracle).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSet {
    /// Short name: the report's column group and the directory `ARM/eval/NAME`.
    pub name: String,
    /// Held-out captioned clips (AudioFolder).
    pub reference: PathBuf,
    /// Reference clips used.
    pub n: usize,
    /// The tasks scored.
    #[serde(default = "all_tasks")]
    pub tasks: Vec<EvalTask>,
    /// Clip length in seconds; absent: the model's window (longer: windowed generation).
    #[serde(default)]
    pub seconds: Option<f64>,
    /// Sampling steps; absent: the model's default.
    #[serde(default)]
    pub steps: Option<usize>,
    #[serde(default)]
    pub seed: u64,
    /// `griffin-lim`, or a vocoder directory (arms may name their own: a vocoder reads one
    /// hop length).
    pub conversion: String,
}

fn all_tasks() -> Vec<EvalTask> {
    EvalTask::ALL.to_vec()
}

/// One arm: a name, what it tests, and its differences from the base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Lower-case letters, digits and `-`: the arm's directory and row.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Prepared shards of its own (e.g. another hop length); absent: the experiment's.
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// Conversion of its own for every evaluation (`griffin-lim` or a vocoder directory).
    #[serde(default)]
    pub conversion: Option<String>,
    /// Overrides of the base training config, as TOML tables (`set.masks.full = 1.0`).
    #[serde(default)]
    pub set: toml::Table,
}

/// The whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// What the experiment asks, in a sentence or two.
    #[serde(default)]
    pub description: String,
    /// The training config every arm starts from.
    pub base: PathBuf,
    /// Prepared shards (`musicdiff data prepare`) every arm trains on unless it names its own.
    pub data: PathBuf,
    /// Fine-tune every arm from these weights (a model directory, run or checkpoint) instead of
    /// training from scratch.
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    pub budget: Budget,
    #[serde(default)]
    pub eval: Vec<EvalSet>,
    #[serde(rename = "arm", default)]
    pub arms: Vec<Arm>,
}

/// An arm made concrete: the training config it runs and where its data and conversion are.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedArm {
    pub arm: Arm,
    pub train: TrainConfig,
    pub data: PathBuf,
}

impl ResolvedArm {
    /// The conversion this arm's evaluations use for `set`.
    pub fn conversion<'a>(&'a self, set: &'a EvalSet) -> &'a str {
        self.arm.conversion.as_deref().unwrap_or(&set.conversion)
    }
}

/// Every name valid and none twice; `kind` names them in the message ("arm", "eval").
fn check_names<'a>(kind: &str, names: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for name in names {
        if !valid_name(name) {
            return Err(format!(
                "{kind} name `{name}`: use lower-case letters, digits and `-` (at most 48)"
            ));
        }
        if !seen.insert(name) {
            return Err(format!("{kind} `{name}` appears twice"));
        }
    }
    Ok(())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
}

/// `over` merged into `base`: tables key by key, anything else replaced.
pub fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

impl ExperimentConfig {
    /// Reads `path` and checks it, down to every arm's merged training config.
    pub fn load(path: &Path) -> Result<(Self, Vec<ResolvedArm>)> {
        let text = std::fs::read_to_string(path).map_err(|e| ExperimentError::io(path, e))?;
        let cfg: Self = toml::from_str(&text).map_err(|e| ExperimentError::Config {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let arms = cfg.resolve().map_err(|detail| ExperimentError::Config {
            path: path.to_path_buf(),
            detail,
        })?;
        Ok((cfg, arms))
    }

    /// Checks the settings and merges every arm into the base; the error names the key.
    pub fn resolve(&self) -> std::result::Result<Vec<ResolvedArm>, String> {
        match (&self.budget.steps, &self.budget.time) {
            (Some(_), Some(_)) => return Err("budget: give steps or time, not both".into()),
            (None, None) => return Err("budget: give steps or time".into()),
            (Some(0), _) => return Err("budget.steps must be at least 1".into()),
            (_, Some(t)) => {
                musicdiff_common::duration::parse(t).map_err(|e| format!("budget.time: {e}"))?;
            }
            _ => {}
        }
        if self.arms.is_empty() {
            return Err("no [[arm]]: an experiment compares at least one arm".into());
        }
        check_names("arm", self.arms.iter().map(|a| a.name.as_str()))?;
        check_names("eval", self.eval.iter().map(|e| e.name.as_str()))?;
        for e in &self.eval {
            if e.n < 2 {
                return Err(format!("eval `{}`: n must be at least 2", e.name));
            }
            if e.tasks.is_empty() {
                return Err(format!("eval `{}`: no tasks", e.name));
            }
            if e.seconds.is_some_and(|s| !(s > 0.0 && s.is_finite())) {
                return Err(format!("eval `{}`: seconds must be positive", e.name));
            }
        }
        let text = std::fs::read_to_string(&self.base)
            .map_err(|e| format!("base {}: {e}", self.base.display()))?;
        let base: toml::Table =
            toml::from_str(&text).map_err(|e| format!("base {}: {e}", self.base.display()))?;
        self.arms
            .iter()
            .map(|arm| {
                let mut table = base.clone();
                merge(&mut table, &arm.set);
                let mut train = TrainConfig::deserialize(toml::Value::Table(table))
                    .map_err(|e| format!("arm `{}`: {e}", arm.name))?;
                train
                    .validate()
                    .map_err(|e| format!("arm `{}`: {e}", arm.name))?;
                if let Some(steps) = self.budget.steps
                    && steps > train.optim.steps
                {
                    return Err(format!(
                        "arm `{}`: its schedule (optim.steps = {}) ends before the budget of {steps} steps",
                        arm.name, train.optim.steps
                    ));
                }
                let what = if arm.description.is_empty() {
                    arm.name.clone()
                } else {
                    format!("{}: {}", arm.name, arm.description)
                };
                train.description = format!("arm {what} (base: {})", train.description);
                Ok(ResolvedArm {
                    arm: arm.clone(),
                    train,
                    data: arm.data.clone().unwrap_or_else(|| self.data.clone()),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_must_be_valid_and_distinct_per_kind() {
        assert_eq!(super::check_names("arm", ["a", "b-2"].into_iter()), Ok(()));
        assert_eq!(
            super::check_names("arm", ["mix", "mix"].into_iter()),
            Err("arm `mix` appears twice".to_string())
        );
        let long = "x".repeat(49);
        for bad in ["Main", "-a", "", long.as_str()] {
            let e = super::check_names("eval", [bad].into_iter()).unwrap_err();
            assert!(e.starts_with(&format!("eval name `{bad}`")), "{e}");
        }
    }

    use super::*;

    const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/train/tiny.toml");

    fn config(extra: &str) -> String {
        format!(
            "base = \"{TINY}\"\ndata = \"shards\"\n[budget]\nsteps = 4\n\
             [[eval]]\nname = \"main\"\nreference = \"ref\"\nn = 4\nconversion = \"griffin-lim\"\n{extra}"
        )
    }

    fn resolve(text: &str) -> std::result::Result<Vec<ResolvedArm>, String> {
        let cfg: ExperimentConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.resolve()
    }

    #[test]
    fn arms_override_only_what_they_set() {
        let arms = resolve(&config(
            "[[arm]]\nname = \"mix\"\n[[arm]]\nname = \"full-only\"\n\
             set.masks = { full = 1.0, spans = 0.0, prefix = 0.0 }\nset.run.seed = 7\n",
        ))
        .unwrap();
        let base = TrainConfig::load(Path::new(TINY)).unwrap();
        assert_eq!(arms[0].train.masks, base.masks);
        assert_eq!(arms[1].train.masks.full, 1.0);
        assert_eq!(arms[1].train.masks.spans, 0.0);
        assert_eq!(arms[1].train.run.seed, 7);
        // Untouched keys of a touched table keep the base's values.
        assert_eq!(arms[1].train.run.log_every, base.run.log_every);
        assert_eq!(arms[1].train.model, base.model);
        assert_eq!(arms[1].data, PathBuf::from("shards"));
        assert!(arms[1].train.description.starts_with("arm full-only"));
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let cases = [
            (
                config("[[arm]]\nname = \"a\"\nset.masks.ful = 1.0\n"),
                "ful",
            ),
            (
                config("[[arm]]\nname = \"a\"\n[[arm]]\nname = \"a\"\n"),
                "twice",
            ),
            (config("[[arm]]\nname = \"Big Arm\"\n"), "lower-case"),
            (config(""), "at least one arm"),
            (
                config("[[arm]]\nname = \"a\"\nset.masks = { full = -1.0 }\n"),
                "masks",
            ),
            (
                config("[[arm]]\nname = \"a\"\nset.optim.steps = 2\n"),
                "ends before the budget",
            ),
            (
                config("[[arm]]\nname = \"a\"\n").replace("steps = 4", "time = \"10\""),
                "budget.time",
            ),
            (
                config("[[arm]]\nname = \"a\"\n").replace("steps = 4", "steps = 4\ntime = \"1m\""),
                "not both",
            ),
            (
                config("[[arm]]\nname = \"a\"\n").replace("n = 4", "n = 1"),
                "at least 2",
            ),
        ];
        for (text, want) in cases {
            let err = resolve(&text).unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn merge_replaces_leaves_and_recurses_into_tables() {
        let mut a: toml::Table = toml::from_str("x = 1\n[t]\ny = 2\nz = 3\n").unwrap();
        let b: toml::Table = toml::from_str("x = 5\n[t]\nz = 4\n[u]\nw = 1\n").unwrap();
        merge(&mut a, &b);
        let want: toml::Table = toml::from_str("x = 5\n[t]\ny = 2\nz = 4\n[u]\nw = 1\n").unwrap();
        assert_eq!(a, want);
    }
}
