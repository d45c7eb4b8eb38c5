//! Offline evaluation of musicdiff models, with judges that install from packages and run on
//! a CPU: musicnn's MagnaTagATune tagger (Pons & Serra 2019) for embeddings and tags, and the
//! dsp crate's tempo and key estimators. It reports what the papers this project follows
//! report, with substitutes where their judges cannot be installed here:
//! FAD (Kilgour et al. 2019) and KID (Bińkowski et al. 2018) on musicnn embeddings, paired KL
//! over tags (AudioLDM, Liu et al. 2023), tag adherence as a CLAP-score substitute, tempo and
//! key accuracy against the prompt, the conversion's spectral convergence, seam distances for
//! in-painting and continuation, each beside baselines (oracle, Mozart's dice game, a Markov
//! chain, shaped noise, the unprompted model). `docs/evaluation.md` defines every number.
//!
//! [`suite::run`] is the whole evaluation; the modules below are its parts.

pub mod baselines;
pub mod error;
pub mod metrics;
pub mod prompt;
pub mod reference;
pub mod report;
pub mod seams;
pub mod stats;
pub mod suite;

pub use error::{EvalError, Result};
pub use report::Report;
pub use suite::{EvalTask, Event, Options, System, run};
